//! The harness's error type.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while building, probing or tearing down a lab.
///
/// Command failures carry the full command line and both output streams, so that a
/// failing test's message alone is enough to see what the kernel or tool complained about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An external command could not be started at all.
    #[error("could not start `{command}`: {source}")]
    Spawn {
        /// The command line, shell-quoted.
        command: String,
        /// Why `fork`/`exec` failed.
        source: io::Error,
    },

    /// An external command ran but exited unsuccessfully.
    #[error(
        "command `{command}` failed ({status})\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    )]
    CommandFailed {
        /// The command line, shell-quoted.
        command: String,
        /// The exit status as printed by the standard library (`exit status: 1`, `signal: 9`).
        status: String,
        /// Everything the command wrote to stdout.
        stdout: String,
        /// Everything the command wrote to stderr.
        stderr: String,
    },

    /// An external command outlived its deadline and was killed with its process group.
    #[error(
        "command `{command}` timed out after {timeout:?} and was killed\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    )]
    Timeout {
        /// The command line, shell-quoted.
        command: String,
        /// The deadline that was exceeded.
        timeout: Duration,
        /// What the command wrote to stdout before it was killed.
        stdout: String,
        /// What the command wrote to stderr before it was killed.
        stderr: String,
    },

    /// A name (interface, namespace, process, bridge) that the kernel or the harness would reject.
    #[error("invalid {kind} name `{name}`: {reason}")]
    InvalidName {
        /// What the name was for ("interface", "namespace", ...).
        kind: &'static str,
        /// The offending name.
        name: String,
        /// Why it is rejected.
        reason: &'static str,
    },

    /// A caller-supplied argument that the harness refuses (for safety or sanity).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A tool's output did not look as expected.
    #[error("could not parse output of {what}: {reason}\n--- output ---\n{output}")]
    Parse {
        /// Which output (command or file) was being parsed.
        what: String,
        /// What was wrong with it.
        reason: String,
        /// The text that was parsed.
        output: String,
    },

    /// A file-system or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the harness was doing.
        context: String,
        /// The underlying error.
        source: io::Error,
    },

    /// A system call made through `nix` failed.
    #[error("{context}: {source}")]
    Sys {
        /// What the harness was doing.
        context: String,
        /// The underlying errno.
        source: nix::Error,
    },

    /// A traffic probe did not get the answer it expected.
    #[error("probe to {target} failed: {reason}")]
    Probe {
        /// The address that was probed.
        target: String,
        /// What went wrong.
        reason: String,
    },

    /// A spawned process did not reach the expected state.
    #[error("process `{name}` (pid {pid}): {reason}\n--- log {log:?} ---\n{log_text}")]
    Process {
        /// The name given at spawn time.
        name: String,
        /// Its pid.
        pid: u32,
        /// What went wrong.
        reason: String,
        /// Where its output is logged.
        log: PathBuf,
        /// The log's content at the time of the error.
        log_text: String,
    },

    /// Something could not be cleaned up (processes that would not die, for instance).
    #[error("clean-up of {what}: {reason}")]
    Cleanup {
        /// What was being cleaned up.
        what: String,
        /// What went wrong.
        reason: String,
    },

    /// The lab was already closed; no new namespaces or processes can be added.
    #[error("lab `{0}` is closed")]
    Closed(String),
}

/// Shorthand used throughout the harness.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with what the harness was doing.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    /// Wraps a `nix` error with what the harness was doing.
    pub(crate) fn sys(context: impl Into<String>, source: nix::Error) -> Self {
        Self::Sys {
            context: context.into(),
            source,
        }
    }

    /// Builds a parse error, keeping the offending text for the message.
    pub(crate) fn parse(
        what: impl Into<String>,
        reason: impl Into<String>,
        output: impl Into<String>,
    ) -> Self {
        Self::Parse {
            what: what.into(),
            reason: reason.into(),
            output: output.into(),
        }
    }

    /// True if this is a [`Error::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }
}
