//! The control socket: root only (0600), or root and one named group (0660).

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use super::agent::AgentLab;

/// `nogroup` on Debian: a group that exists and that nobody is in.
const GROUP: u32 = 65534;

#[test]
fn the_control_socket_is_0600_root_or_0660_with_the_named_group() {
    let r = AgentLab::start("sec_socket", &[]);
    let meta = std::fs::metadata(&r.socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.mode() & 0o7777, 0o600, "mode {:o}", meta.mode());
    assert_eq!((meta.uid(), meta.gid()), (0, 0));
    drop(r);

    let r = AgentLab::start("sec_socket_group", &["--socket-group", &GROUP.to_string()]);
    let meta = std::fs::metadata(&r.socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.mode() & 0o7777, 0o660, "mode {:o}", meta.mode());
    assert_eq!((meta.uid(), meta.gid()), (0, GROUP));
    // Served at its final name, and no temporary name is left behind.
    r.state().unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(r.socket.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("binding"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn an_unknown_socket_group_stops_the_agent_before_it_serves() {
    let mut r = AgentLab::without_agent("sec_socket_nogroup");
    let argv = [
        env!("CARGO_BIN_EXE_vr-agent").to_string(),
        "--listen".into(),
        format!("unix://{}", r.socket.display()),
        "--socket-group".into(),
        "no-such-group-here".into(),
    ];
    r.spawn(&argv);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while r.agent().is_running() {
        assert!(std::time::Instant::now() < deadline, "{}", r.log());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        r.log()
            .contains("there is no group named no-such-group-here"),
        "{}",
        r.log()
    );
    assert!(!r.socket.exists());
}
