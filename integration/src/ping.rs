//! Reachability checks with the real `ping` binary.

use std::net::IpAddr;
use std::time::Duration;

use crate::cmd::command_line;
use crate::error::{Error, Result};
use crate::lab::{Lab, Netns};

/// Packet counts from `ping`'s summary line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PingStats {
    /// Echo requests sent.
    pub transmitted: u32,
    /// Echo replies received.
    pub received: u32,
}

impl PingStats {
    /// True if every request was answered.
    pub fn all_received(&self) -> bool {
        self.transmitted > 0 && self.received >= self.transmitted
    }
}

/// Finds `N packets transmitted, M received` in `ping` output.
pub(crate) fn parse_ping_summary(text: &str) -> Option<PingStats> {
    text.lines().find_map(|line| {
        let (sent, rest) = line.split_once(" packets transmitted, ")?;
        let received = rest.split_once(" received")?.0;
        Some(PingStats {
            transmitted: sent.trim().parse().ok()?,
            received: received.trim().parse().ok()?,
        })
    })
}

impl Lab {
    /// Pings `addr` from `ns` with the real `ping` (`-c count -W 1 -i 0.2`).
    ///
    /// Lost replies are not an error (check the stats); a missing summary (e.g. "Network
    /// is unreachable") or the `timeout` is.
    pub fn ping(
        &self,
        ns: &Netns,
        addr: impl Into<IpAddr>,
        count: u32,
        timeout: Duration,
    ) -> Result<PingStats> {
        let (count, addr) = (count.to_string(), addr.into().to_string());
        let argv = ["ping", "-n", "-c", &count, "-W", "1", "-i", "0.2", &addr];
        let out = self.exec_unchecked(ns, &argv, timeout)?;
        parse_ping_summary(&out.stdout).ok_or_else(|| {
            let err = Error::CommandFailed {
                command: command_line(&argv),
                status: out.status.to_string(),
                stdout: out.stdout,
                stderr: out.stderr,
            };
            eprintln!("[vpc-lab] in {ns}: {err}");
            err
        })
    }

    /// True if a single ping from `ns` to `addr` is answered.
    pub fn ping_ok(&self, ns: &Netns, addr: impl Into<IpAddr>) -> bool {
        self.ping(ns, addr, 1, Duration::from_secs(5))
            .is_ok_and(|stats| stats.received > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_summary_all_received() {
        let text = "PING 10.200.0.2 (10.200.0.2) 56(84) bytes of data.\n\
            64 bytes from 10.200.0.2: icmp_seq=1 ttl=64 time=0.049 ms\n\n\
            --- 10.200.0.2 ping statistics ---\n\
            3 packets transmitted, 3 received, 0% packet loss, time 405ms\n\
            rtt min/avg/max/mdev = 0.031/0.040/0.049/0.007 ms\n";
        let stats = parse_ping_summary(text).unwrap();
        assert_eq!(
            stats,
            PingStats {
                transmitted: 3,
                received: 3
            }
        );
        assert!(stats.all_received());
    }

    #[test]
    fn ping_summary_with_errors_and_no_replies() {
        let text = "--- 10.200.0.99 ping statistics ---\n\
            3 packets transmitted, 0 received, +3 errors, 100% packet loss, time 2040ms\n";
        let stats = parse_ping_summary(text).unwrap();
        assert_eq!(
            stats,
            PingStats {
                transmitted: 3,
                received: 0
            }
        );
        assert!(!stats.all_received());
    }

    #[test]
    fn ping_without_summary_is_none() {
        assert_eq!(
            parse_ping_summary("ping: connect: Network is unreachable\n"),
            None
        );
    }
}
