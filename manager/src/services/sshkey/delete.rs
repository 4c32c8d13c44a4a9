//! `deleteSSHKeyPair`: by name, in the caller's account (or the one named by
//! `account` + `domainid`). VMs keep the public key they were given.

use crate::error::Error;
use crate::server::command::{Args, Command, Spec, SyncCommand};
use crate::server::registry::ALL;
use crate::server::{Ctx, Reply};
use crate::services::owner::OwnerArgs;
use crate::store::sshkey;

use super::NAME;

/// `deleteSSHKeyPair`.
pub struct DeleteSshKeyPair {
    name: String,
    owner: OwnerArgs,
}

impl Command for DeleteSshKeyPair {
    const NAME: &'static str = "deleteSSHKeyPair";

    fn spec() -> Spec {
        Spec::new("Deletes an SSH key pair of an account")
            .roles(ALL)
            .param(NAME)
            .params(OwnerArgs::specs())
            .returns("keypair", Vec::new())
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DeleteSshKeyPair {
            name: args.need(&NAME)?,
            owner: OwnerArgs::parse(args)?,
        })
    }
}

impl SyncCommand for DeleteSshKeyPair {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let owner = self.owner.resolve(ctx).await?;
        let Some(pair) = sshkey::by_name(db, owner.account_id, &self.name).await? else {
            return Err(Error::invalid(format!(
                "A key pair with name '{}' does not exist for account {} in specified domain id",
                self.name, owner.account_name
            )));
        };
        sshkey::delete(db, pair.id).await?;
        Ok(Reply::Success)
    }
}
