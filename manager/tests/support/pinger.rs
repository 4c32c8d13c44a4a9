//! A continuous ping from a namespace (`ping -D -i 0.05`), every answer
//! timestamped, stopped with SIGINT so ping prints its statistics: how
//! many were lost and how long traffic stopped, measured for the host-loss
//! tests (`e2e_host_loss`, `e2e_host_probe`).

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use vpc_integration::Netns;

use super::e2e::blocking;

/// A running continuous ping.
pub struct Pinger {
    child: Option<Child>,
    interval: Duration,
}

/// What a stopped [`Pinger`] saw.
#[derive(Debug)]
pub struct PingRun {
    pub transmitted: u64,
    pub received: u64,
    /// The sequence numbers that got no answer, sorted.
    pub lost: Vec<u64>,
    /// (sequence, epoch seconds) of every answer.
    pub answers: Vec<(u64, f64)>,
    /// Between two pings.
    pub interval: Duration,
}

impl Pinger {
    /// Pings `to` from `from` every 50 ms.
    pub fn start(from: &Netns, to: Ipv4Addr) -> Pinger {
        let interval = Duration::from_millis(50);
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                from.name(),
                "ping",
                "-n",
                "-D",
                "-i",
                "0.05",
            ])
            .args(["-W", "1", &to.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ping starts");
        Pinger {
            child: Some(child),
            interval,
        }
    }

    /// SIGINT (ping prints its statistics), then reads what it printed.
    pub async fn stop(mut self) -> PingRun {
        let mut child = self.child.take().expect("ping runs");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let stdout = child.stdout.take().expect("stdout");
        let interval = self.interval;
        blocking(move || {
            let lines: Vec<String> = BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect();
            let _ = child.wait();
            parse_ping(&lines, interval)
        })
        .await
    }
}

impl Drop for Pinger {
    fn drop(&mut self) {
        // A test that panics before stop() leaves no ping behind.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl PingRun {
    /// The time from the last answer before the first loss to the first
    /// answer after the last loss (seconds); 0 when nothing was lost.
    pub fn gap_s(&self) -> f64 {
        let (Some(&first), Some(&last)) = (self.lost.first(), self.lost.last()) else {
            return 0.0;
        };
        let before = self
            .answers
            .iter()
            .filter(|(s, _)| *s < first)
            .map(|a| a.1)
            .fold(0.0, f64::max);
        let after = self
            .answers
            .iter()
            .filter(|(s, _)| *s > last)
            .map(|a| a.1)
            .fold(f64::MAX, f64::min);
        after - before
    }

    /// One line: lost of transmitted, the time they stand for, the gap.
    pub fn outage(&self) -> String {
        format!(
            "{} of {} pings lost at {} ms each = {:.2} s (icmp_seq {}-{}); last answer before to \
             first answer after: {:.2} s",
            self.lost.len(),
            self.transmitted,
            self.interval.as_millis(),
            self.lost.len() as f64 * self.interval.as_secs_f64(),
            self.lost.first().copied().unwrap_or_default(),
            self.lost.last().copied().unwrap_or_default(),
            self.gap_s(),
        )
    }
}

/// Reads ping's output: `[1700000000.123456] 64 bytes from …: icmp_seq=N …`
/// per answer and `N packets transmitted, M received` at the end.
pub fn parse_ping(lines: &[String], interval: Duration) -> PingRun {
    let mut answers = Vec::new();
    let (mut transmitted, mut received) = (0, 0);
    for l in lines {
        if let Some(seq) = l
            .split("icmp_seq=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            && l.contains("bytes from")
        {
            let at = l
                .strip_prefix('[')
                .and_then(|r| r.split(']').next())
                .and_then(|t| t.parse::<f64>().ok())
                .unwrap_or_default();
            answers.push((seq, at));
        }
        if let Some((tx, rest)) = l.split_once(" packets transmitted, ") {
            transmitted = tx.trim().parse().unwrap_or_default();
            received = rest
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_default();
        }
    }
    let seen: std::collections::BTreeSet<u64> = answers.iter().map(|(s, _)| *s).collect();
    let lost = (1..=transmitted).filter(|s| !seen.contains(s)).collect();
    PingRun {
        transmitted,
        received,
        lost,
        answers,
        interval,
    }
}
