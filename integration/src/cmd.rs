//! Running external commands with a hard timeout.
//!
//! Every command the harness runs goes through one runner (`run_unchecked`), which puts
//! the child in its own process group so that a timeout can kill everything the command
//! started, and captures its output into anonymous temporary files rather than pipes: a command
//! that leaves a background process behind (`sh -c 'sleep 1000 &'`) would otherwise keep
//! the pipe open and block the reader until that process died.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::error::{Error, Result};

/// Timeout used by commands that do not name their own.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The result of a command that ran to completion.
#[derive(Debug, Clone)]
pub struct Output {
    /// How the command exited.
    pub status: ExitStatus,
    /// Everything written to stdout (lossily decoded as UTF-8).
    pub stdout: String,
    /// Everything written to stderr (lossily decoded as UTF-8).
    pub stderr: String,
}

impl Output {
    /// True if the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

/// Renders a command line the way a shell user would type it, for error messages.
pub fn command_line<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter()
        .map(|arg| shell_quote(arg.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(arg: &str) -> String {
    let safe = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c));
    if safe {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Runs `argv` and fails unless it exits with status 0 within `timeout`.
///
/// Failures are also printed to stderr, which the test harness captures and shows for
/// failing tests, so the log keeps the context even if the caller swallows the error.
pub(crate) fn run<S: AsRef<str>>(argv: &[S], timeout: Duration) -> Result<Output> {
    let output = run_unchecked(argv, timeout)?;
    if output.success() {
        return Ok(output);
    }
    let err = Error::CommandFailed {
        command: command_line(argv),
        status: output.status.to_string(),
        stdout: output.stdout,
        stderr: output.stderr,
    };
    eprintln!("[vpc-lab] {err}");
    Err(err)
}

/// Runs `argv` with a hard timeout and returns its output whatever its exit status.
///
/// Only failure to start and the timeout are errors. On timeout the whole process
/// group is killed with `SIGKILL` and the child is reaped before returning.
pub(crate) fn run_unchecked<S: AsRef<str>>(argv: &[S], timeout: Duration) -> Result<Output> {
    let command = command_line(argv);
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::InvalidArgument("empty command line".into()));
    };
    let spawn_err = |source| Error::Spawn {
        command: command.clone(),
        source,
    };
    let mut stdout = tempfile::tempfile().map_err(spawn_err)?;
    let mut stderr = tempfile::tempfile().map_err(spawn_err)?;

    let mut child = Command::new(OsStr::new(program.as_ref()))
        .args(args.iter().map(|a| OsStr::new(a.as_ref())))
        .stdin(Stdio::null())
        .stdout(stdout.try_clone().map_err(spawn_err)?)
        .stderr(stderr.try_clone().map_err(spawn_err)?)
        .process_group(0)
        .spawn()
        .map_err(spawn_err)?;
    let pgid = Pid::from_raw(child.id() as i32);

    let deadline = Instant::now() + timeout;
    // Most commands (`ip ...`) finish in a few milliseconds: start polling fast and back
    // off, so short commands are not slowed down and long ones do not burn CPU.
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(source) => {
                // Should not happen for our own child; make sure it does not outlive us.
                let _ = killpg(pgid, Signal::SIGKILL);
                let _ = child.wait();
                return Err(Error::io(format!("waiting for `{command}`"), source));
            }
        }
        let now = Instant::now();
        if now >= deadline {
            break None;
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    };

    let Some(status) = status else {
        // The child is still unreaped here, so its pid (= the group id) cannot have been
        // reused: the group we signal is certainly ours.
        match killpg(pgid, Signal::SIGKILL) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => eprintln!("[vpc-lab] killing process group of `{command}`: {e}"),
        }
        let _ = child.wait();
        let err = Error::Timeout {
            command,
            timeout,
            stdout: read_capture(&mut stdout),
            stderr: read_capture(&mut stderr),
        };
        eprintln!("[vpc-lab] {err}");
        return Err(err);
    };

    Ok(Output {
        status,
        stdout: read_capture(&mut stdout),
        stderr: read_capture(&mut stderr),
    })
}

/// Reads a capture file from its start (the child shared, and moved, its offset).
fn read_capture(file: &mut File) -> String {
    let mut bytes = Vec::new();
    let read = file
        .seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes));
    match read {
        Ok(_) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => format!("<could not read captured output: {e}>"),
    }
}

/// Runs `ip netns <args>` in the host namespace.
///
/// This is the only host-level runner, and it only accepts the sub-commands that manage
/// namespace *names* (`add`, `del`, `list`, `pids`): none of them changes the host's own
/// interfaces, addresses or routes.
pub fn ip_netns(args: &[&str]) -> Result<Output> {
    match args.first() {
        Some(&("add" | "del" | "delete" | "list" | "pids")) => {}
        _ => {
            return Err(Error::InvalidArgument(format!(
                "host-level `ip netns` runner only allows add/del/list/pids, got {args:?}"
            )));
        }
    }
    let mut argv = vec!["ip", "netns"];
    argv.extend_from_slice(args);
    run(&argv, DEFAULT_TIMEOUT)
}

/// Names of all named network namespaces on the host (`ip netns list`).
pub fn list_netns() -> Result<Vec<String>> {
    Ok(parse_netns_list(&ip_netns(&["list"])?.stdout))
}

/// Pids of the processes running inside the named namespace (`ip netns pids`).
pub fn netns_pids(name: &str) -> Result<Vec<i32>> {
    let out = ip_netns(&["pids", name])?;
    out.stdout
        .split_whitespace()
        .map(|pid| {
            pid.parse().map_err(|_| {
                Error::parse(format!("`ip netns pids {name}`"), "not a pid", &out.stdout)
            })
        })
        .collect()
}

/// Extracts the names from `ip netns list` output (`name` or `name (id: 3)` per line).
pub(crate) fn parse_netns_list(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_quotes_only_what_needs_it() {
        assert_eq!(
            command_line(&["ip", "-n", "ns", "addr", "add", "10.0.0.1/24"]),
            "ip -n ns addr add 10.0.0.1/24"
        );
        assert_eq!(
            command_line(&["sh", "-c", "echo 'hi' $x", ""]),
            r"sh -c 'echo '\''hi'\'' $x' ''"
        );
    }

    #[test]
    fn netns_list_lines_with_and_without_ids() {
        let text = "vpclab-1-0-a (id: 2)\nvpclab-1-0-b\n\n";
        assert_eq!(parse_netns_list(text), ["vpclab-1-0-a", "vpclab-1-0-b"]);
    }

    #[test]
    fn host_runner_refuses_anything_but_name_management() {
        let err = ip_netns(&["exec", "x", "true"]).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    }

    #[test]
    fn timeout_kills_and_names_the_command() {
        let started = Instant::now();
        let err = run_unchecked(&["sleep", "30"], Duration::from_millis(200)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(err.is_timeout(), "{err}");
        assert!(err.to_string().contains("sleep 30"), "{err}");
    }

    #[test]
    fn failure_reports_status_and_both_streams() {
        let err = run(
            &["sh", "-c", "echo out; echo err >&2; exit 3"],
            DEFAULT_TIMEOUT,
        )
        .unwrap_err()
        .to_string();
        for needle in ["sh -c", "exit status: 3", "out", "err"] {
            assert!(err.contains(needle), "{needle:?} missing from {err}");
        }
    }

    #[test]
    fn background_child_does_not_block_output_capture() {
        let started = Instant::now();
        let out = run(&["sh", "-c", "sleep 3 & echo $!"], DEFAULT_TIMEOUT).unwrap();
        assert!(started.elapsed() < Duration::from_secs(2));
        let pid: i32 = out.stdout.trim().parse().unwrap();
        // Our own stray: it is in the group we started, so killing it is ours to do.
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}
