//! Errors of the netns driver.

use std::time::Duration;

use crate::orchestration::agent::DriverError;

/// Why a namespace, link or process operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// A command exited with a failure status; stderr says why.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    /// A command did not finish in time (it was killed).
    #[error("`{command}` did not finish within {timeout:?}")]
    Timeout { command: String, timeout: Duration },
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// Input the driver cannot work with (a name, a broadcast URI …).
    #[error("{0}")]
    Invalid(String),
    /// The agent started but never answered.
    #[error(
        "the agent of router {router} did not answer within {timeout:?}; its log ends with:\n{log}"
    )]
    NotReady {
        router: String,
        timeout: Duration,
        log: String,
    },
    /// Several best-effort steps of a teardown failed.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Many(Vec<NetnsError>),
}

impl NetnsError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> NetnsError {
        NetnsError::Io {
            what: what.into(),
            source,
        }
    }

    /// Ok when `errors` is empty, one error, or [`NetnsError::Many`].
    pub(crate) fn collect(mut errors: Vec<NetnsError>) -> Result<(), NetnsError> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(NetnsError::Many(errors)),
        }
    }
}

impl From<NetnsError> for DriverError {
    fn from(e: NetnsError) -> DriverError {
        DriverError(e.to_string())
    }
}

pub type Result<T, E = NetnsError> = std::result::Result<T, E>;
