//! `registerSSHKeyPair`: a public key the user already has, under a name
//! unique in its account.

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Spec, SyncCommand, Text};
use crate::server::registry::ALL;
use crate::server::{Ctx, Reply};
use crate::services::owner::OwnerArgs;
use crate::store::{StoreError, sshkey};

use super::{MAX_PUBLIC_KEY_LEN, NAME, fingerprint, keypair_fields, parse_public_key, view};

const PUBLIC_KEY: Arg<Text> =
    Arg::req("publickey", "the public key, as an OpenSSH line").length(MAX_PUBLIC_KEY_LEN as u32);

/// `registerSSHKeyPair`.
pub struct RegisterSshKeyPair {
    name: String,
    public_key: String,
    owner: OwnerArgs,
}

impl Command for RegisterSshKeyPair {
    const NAME: &'static str = "registerSSHKeyPair";

    fn spec() -> Spec {
        Spec::new("Registers a public key as an SSH key pair of an account")
            .roles(ALL)
            .param(NAME)
            .param(PUBLIC_KEY)
            .params(OwnerArgs::specs())
            .returns("keypair", keypair_fields())
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(RegisterSshKeyPair {
            name: args.need(&NAME)?,
            public_key: args.need(&PUBLIC_KEY)?,
            owner: OwnerArgs::parse(args)?,
        })
    }
}

impl SyncCommand for RegisterSshKeyPair {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let owner = self.owner.resolve(ctx).await?;
        // CloudStack's order: the name, then the key, then the same key twice.
        if sshkey::by_name(db, owner.account_id, &self.name)
            .await?
            .is_some()
        {
            return Err(name_taken(&self.name));
        }
        let (key, blob) = parse_public_key(&self.public_key)?;
        if sshkey::by_public_key(db, owner.account_id, &key)
            .await?
            .is_some()
        {
            return Err(Error::invalid(format!(
                "A key pair with key '{key}' already exists for this account."
            )));
        }
        let stored = match sshkey::create(
            db,
            &self.name,
            owner.account_id,
            owner.domain_id,
            &key,
            &fingerprint(&blob),
        )
        .await
        {
            // Registered meanwhile by a parallel request.
            Err(StoreError::Duplicate(_)) => return Err(name_taken(&self.name)),
            other => other?,
        };
        Ok(Reply::Object(view(&stored, &owner)))
    }
}

fn name_taken(name: &str) -> Error {
    Error::invalid(format!(
        "A key pair with name '{name}' already exists for this account."
    ))
}
