//! Loads nft scripts into the kernel. The agent's only firewall side effect:
//! one `nft -f -` process per transaction; nft applies a file atomically, so a
//! failing script leaves the previous ruleset in place.

use std::path::PathBuf;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use crate::plan::nft::TABLE;

/// Errors from the nft binary, with its stderr (the only useful part).
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("running {binary}: {source}")]
    Spawn {
        binary: String,
        source: std::io::Error,
    },
    #[error("nft {action} failed ({status}): {stderr}")]
    Failed {
        action: &'static str,
        status: std::process::ExitStatus,
        stderr: String,
    },
}

/// The nft command line tool.
#[derive(Debug, Clone)]
pub struct Nft {
    binary: PathBuf,
}

impl Default for Nft {
    fn default() -> Self {
        Self {
            binary: "nft".into(),
        }
    }
}

impl Nft {
    /// Uses the nft binary at `binary`.
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        Self {
            binary: binary.into(),
        }
    }

    async fn run(
        &self,
        action: &'static str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<String, NftError> {
        let spawn_err = |source| NftError::Spawn {
            binary: self.binary.display().to_string(),
            source,
        };
        let mut child = tokio::process::Command::new(&self.binary)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(spawn_err)?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes()).await.map_err(spawn_err)?;
        }
        let output = child.wait_with_output().await.map_err(spawn_err)?;
        if !output.status.success() {
            return Err(NftError::Failed {
                action,
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Applies a script in one transaction.
    pub async fn apply(&self, script: &str) -> Result<(), NftError> {
        self.run("apply", &["-f", "-"], Some(script))
            .await
            .map(|_| ())
    }

    /// The agent's table as nft prints it, or `None` when it does not exist.
    pub async fn list(&self) -> Result<Option<String>, NftError> {
        self.list_with(&["list", "table", "inet", TABLE]).await
    }

    /// The agent's table in nft's JSON form, or `None` when it does not exist.
    pub async fn list_json(&self) -> Result<Option<String>, NftError> {
        self.list_with(&["-j", "list", "table", "inet", TABLE])
            .await
    }

    /// One set of the agent's table in nft's JSON form, or `None` when it
    /// does not exist.
    pub async fn list_set_json(&self, name: &str) -> Result<Option<String>, NftError> {
        self.list_with(&["-j", "list", "set", "inet", TABLE, name])
            .await
    }

    /// `nft get element` of `keys` in one set of the agent's table: nft's
    /// text answer (it prints text even with `-j`).
    pub async fn get_elements(&self, set: &str, keys: &[String]) -> Result<String, NftError> {
        let keys = format!("{{ {} }}", keys.join(", "));
        self.run("get", &["get", "element", "inet", TABLE, set, &keys], None)
            .await
    }

    async fn list_with(&self, args: &[&str]) -> Result<Option<String>, NftError> {
        match self.run("list", args, None).await {
            Ok(text) => Ok(Some(text)),
            Err(NftError::Failed { stderr, .. })
                if stderr.contains("No such file or directory") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}
