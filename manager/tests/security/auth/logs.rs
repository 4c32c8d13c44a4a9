//! Logs: one INFO line per request, refusals are not errors, no colour
//! codes in files.

use super::*;

on_both_backends!(refused_requests_are_one_info_line_not_an_error, |m| {
    let logs = captured_logs();
    let admin = m.admin();
    let (_, user) = keyed_user(&admin, "refused").await;
    let me = admin.ok("listUsers", &[("username", "admin")]).await["user"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(user.call("getUserKeys", &[("id", &me)]).await.0, 531);
    assert_eq!(user.call("listZones", &[("id", "not-a-uuid")]).await.0, 431);
    assert_eq!(user.call("listConfigurations", &[]).await.0, 432);
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    for (command, status) in [
        ("getUserKeys", 531),
        ("listZones", 431),
        ("listConfigurations", 432),
    ] {
        let line = text
            .lines()
            .find(|l| {
                l.contains("api request")
                    && l.contains(&format!("command={command}"))
                    && l.contains("account=refused")
                    && l.contains(&format!("status={status}"))
            })
            .unwrap_or_else(|| panic!("no request line for {command} {status}"));
        assert!(line.contains(" INFO "), "{line}");
        assert!(line.contains("micros="), "the time: {line}");
    }
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.contains(" ERROR ") && (l.contains("status=5") || l.contains("response failed"))
        })
        .collect();
    assert!(
        errors.is_empty(),
        "refused requests logged as errors: {errors:?}"
    );
});

#[test]
fn logs_have_no_colour_codes_when_stderr_is_not_a_terminal() {
    use std::io::Read;
    let data = tempfile::tempdir().unwrap();
    let log_path = data.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vpc-manager"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path().join("data"))
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start vpc-manager");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut text = String::new();
    while std::time::Instant::now() < deadline && !text.contains("admin credentials written") {
        std::thread::sleep(std::time::Duration::from_millis(100));
        text.clear();
        std::fs::File::open(&log_path)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
    }
    // Only the child this test started.
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains("admin credentials written"), "{text}");
    assert!(!text.contains('\u{1b}'), "colour codes in a file: {text:?}");
}
