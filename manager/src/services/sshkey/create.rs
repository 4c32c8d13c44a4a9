//! `createSSHKeyPair`: a new RSA key pair (2048 bits, CloudStack's
//! `ssh.key.length` default) under a name unique in the account; the
//! private key is in this response only and never stored.
//!
//! The key is made by OpenSSH's `ssh-keygen` (Debian's openssh-client), in a
//! directory only root can read that is removed at once: a maintained key
//! generator rather than RSA code of our own.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::Error;
use crate::server::command::{Args, Command, Spec, SyncCommand};
use crate::server::registry::{ALL, field};
use crate::server::{Ctx, Reply};
use crate::services::owner::OwnerArgs;
use crate::store::{StoreError, new_uuid, sshkey};

use super::{NAME, fingerprint, keypair_fields, parse_public_key, view};

/// CloudStack's `ssh.key.length` default.
const KEY_BITS: &str = "2048";
/// ssh-keygen makes a 2048-bit key in well under a second.
const KEYGEN_TIMEOUT: Duration = Duration::from_secs(30);

/// `createSSHKeyPair`.
pub struct CreateSshKeyPair {
    name: String,
    owner: OwnerArgs,
}

impl Command for CreateSshKeyPair {
    const NAME: &'static str = "createSSHKeyPair";

    fn spec() -> Spec {
        let mut response = keypair_fields();
        response.push(field(
            "privatekey",
            "string",
            "the private key, in this response only",
        ));
        Spec::new("Creates an SSH key pair; the private key is returned once")
            .roles(ALL)
            .param(NAME)
            .params(OwnerArgs::specs())
            .returns("keypair", response)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(CreateSshKeyPair {
            name: args.need(&NAME)?,
            owner: OwnerArgs::parse(args)?,
        })
    }
}

impl SyncCommand for CreateSshKeyPair {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        if self.name.trim().is_empty() {
            return Err(Error::invalid(
                "Please specify a valid name for the key pair. The key name can't be empty",
            ));
        }
        let owner = self.owner.resolve(ctx).await?;
        let taken = || {
            Error::invalid(format!(
                "A key pair with name '{}' already exists.",
                self.name
            ))
        };
        if sshkey::by_name(db, owner.account_id, &self.name)
            .await?
            .is_some()
        {
            return Err(taken());
        }
        let (public, private) = generate().await?;
        let (public, blob) = parse_public_key(&public)
            .map_err(|_| Error::internal("ssh-keygen made a public key that does not parse"))?;
        let stored = match sshkey::create(
            db,
            &self.name,
            owner.account_id,
            owner.domain_id,
            &public,
            &fingerprint(&blob),
        )
        .await
        {
            Err(StoreError::Duplicate(_)) => return Err(taken()),
            other => other?,
        };
        let mut body = view(&stored, &owner);
        body["privatekey"] = private.into();
        Ok(Reply::Object(body))
    }
}

/// A new RSA key pair: (public key line, PEM private key).
async fn generate() -> Result<(String, String), Error> {
    let dir = std::env::temp_dir().join(format!("vpc-keygen-{}", new_uuid()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| Error::internal(format!("creating {}: {e}", dir.display())))?;
    let result = generate_in(&dir).await;
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "removing the key generation directory");
    }
    result
}

async fn generate_in(dir: &Path) -> Result<(String, String), Error> {
    let key: PathBuf = dir.join("key");
    let run = tokio::process::Command::new("ssh-keygen")
        .args([
            "-q", "-t", "rsa", "-b", KEY_BITS, "-m", "PEM", "-N", "", "-C", "", "-f",
        ])
        .arg(&key)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(KEYGEN_TIMEOUT, run)
        .await
        .map_err(|_| Error::internal("ssh-keygen did not finish in time"))?
        .map_err(|e| Error::internal(format!("running ssh-keygen: {e}")))?;
    if !output.status.success() {
        return Err(Error::internal(format!(
            "ssh-keygen failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .map_err(|e| Error::internal(format!("reading {}: {e}", p.display())))
    };
    Ok((read(&key.with_extension("pub"))?, read(&key)?))
}
