//! dnsmasq runs as an explicit unprivileged user, and its log is rotated.

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use vr_agent::accounts;

use super::agent::{AgentLab, one_tier};

const BOUND: u64 = 4096;

/// The real, effective, saved and file-system ids on a `Uid:`/`Gid:` line.
fn ids(status: &str, key: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_default()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect()
}

#[test]
fn dnsmasq_runs_unprivileged_and_its_log_stays_bounded_while_it_keeps_logging() {
    let mut r = AgentLab::start(
        "sec_dnsmasq_log",
        &[
            "--dnsmasq-log-bytes",
            &BOUND.to_string(),
            "--reconcile-interval",
            "0.2",
        ],
    );
    r.apply_config(one_tier())
        .unwrap_or_else(|e| panic!("{e:?}\n{}", r.log()));
    let pid = r.state().unwrap().dnsmasq[0].pid;
    let (nobody, _) = accounts::user_ids("nobody").unwrap();
    let nogroup = accounts::group_id("nogroup").unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert_eq!(ids(&status, "Uid:"), [nobody; 4], "{status}");
    assert_eq!(ids(&status, "Gid:"), [nogroup; 4], "{status}");

    let log = r.state_dir.join("dnsmasq/eth2.log");
    let old = r.state_dir.join("dnsmasq/eth2.log.1");
    let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
    // SIGUSR1 makes dnsmasq log its cache statistics: about 500 bytes a time,
    // 10 kB a second, against a bound of 4 kB checked every 0.2 s.
    let mut largest = 0;
    let mut written = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        let before = size(&log);
        kill(Pid::from_raw(pid as i32), Signal::SIGUSR1).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        written += size(&log).saturating_sub(before);
        largest = largest.max(size(&log)).max(size(&old));
    }
    println!("{written} bytes logged, largest file {largest} bytes");
    assert!(written > 4 * BOUND, "only {written} bytes were logged");
    assert!(old.exists(), "never rotated:\n{}", r.log());
    // The bound, plus what dnsmasq writes between two checks (two or three
    // intervals' worth on a loaded machine).
    assert!(largest <= 3 * BOUND, "a log reached {largest} bytes");
    let meta = std::fs::metadata(&log).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (nobody, nogroup));

    // After the last rotation dnsmasq still writes to the fresh file.
    std::thread::sleep(Duration::from_millis(600));
    let before = size(&log);
    kill(Pid::from_raw(pid as i32), Signal::SIGUSR1).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while size(&log) <= before {
        assert!(
            Instant::now() < deadline,
            "dnsmasq stopped logging:\n{}",
            r.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("cache size")
    );
    assert_eq!(
        r.state().unwrap().dnsmasq[0].pid,
        pid,
        "dnsmasq was restarted"
    );
    assert!(r.log().contains("rotated the dnsmasq log"), "{}", r.log());
}

#[test]
fn the_agent_refuses_to_run_dnsmasq_as_root() {
    let mut r = AgentLab::without_agent("sec_dnsmasq_root");
    let argv = [
        env!("CARGO_BIN_EXE_vr-agent").to_string(),
        "--listen".into(),
        format!("unix://{}", r.socket.display()),
        "--dnsmasq-user".into(),
        "root".into(),
    ];
    r.spawn(&argv);
    let deadline = Instant::now() + Duration::from_secs(10);
    while r.agent().is_running() {
        assert!(Instant::now() < deadline, "{}", r.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(r.log().contains("unprivileged"), "{}", r.log());
}
