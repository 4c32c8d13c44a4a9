//! Which network namespace the agent runs in.

use std::os::unix::fs::MetadataExt;

/// Processes that always live in the initial network namespace: init, and
/// kthreadd (kernel threads never leave the initial namespaces). Some
/// sandboxes hide PID 1's namespace links even from root, so both are tried.
const INITIAL_NETNS_WITNESSES: [&str; 2] = ["/proc/1/ns/net", "/proc/2/ns/net"];

/// True when this process shares the host's initial network namespace, whose
/// routes and firewall the agent must not touch.
pub fn is_initial_netns() -> std::io::Result<bool> {
    let own = std::fs::metadata("/proc/self/ns/net")?;
    let mut last_error = None;
    for witness in INITIAL_NETNS_WITNESSES {
        match std::fs::metadata(witness) {
            Ok(init) => return Ok(own.dev() == init.dev() && own.ino() == init.ino()),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.expect("at least one witness"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn test_process_runs_in_the_initial_namespace() {
        // cargo test runs in the host namespace; the agent's kernel tests run it
        // inside lab namespaces and check the opposite answer there.
        assert!(super::is_initial_netns().expect("readable"));
    }
}
