//! `listSSHKeyPairs`: the key pairs the caller may see, by id, name,
//! fingerprint or keyword (a substring of the name or the fingerprint).

use serde_json::json;
use uuid::Uuid;

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Id, Spec, SyncCommand, Text};
use crate::server::registry::ALL;
use crate::server::{Ctx, Reply, page_of};
use crate::services::owner::ListArgs;
use crate::store::sshkey;

use super::keypair_fields;

const ID: Arg<Id> = Arg::opt("id", "the ID of the key pair");
const NAME: Arg<Text> = Arg::opt("name", "only the key pair of this name");
const FINGERPRINT: Arg<Text> = Arg::opt("fingerprint", "only key pairs with this fingerprint");

/// `listSSHKeyPairs`.
pub struct ListSshKeyPairs {
    id: Option<Uuid>,
    name: Option<String>,
    fingerprint: Option<String>,
    list: ListArgs,
}

impl Command for ListSshKeyPairs {
    const NAME: &'static str = "listSSHKeyPairs";

    fn spec() -> Spec {
        Spec::new("Lists SSH key pairs")
            .roles(ALL)
            .param(ID)
            .param(NAME)
            .param(FINGERPRINT)
            .params(ListArgs::specs())
            .returns("sshkeypair", keypair_fields())
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListSshKeyPairs {
            id: args.get(&ID)?,
            name: args.text(&NAME)?,
            fingerprint: args.text(&FINGERPRINT)?,
            list: ListArgs::parse(args)?,
        })
    }
}

impl SyncCommand for ListSshKeyPairs {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let scope = self.list.scope(ctx, self.id.is_some()).await?;
        let page = self.list.page(ctx).await?;
        let id = self.id.map(|u| u.to_string());
        let keyword = self.list.keyword.as_deref();
        let rows: Vec<_> = sshkey::all(&ctx.app.db)
            .await?
            .into_iter()
            .filter(|k| {
                scope.shows(k.account_id, k.domain_id, &k.domain_path)
                    && id.as_deref().is_none_or(|i| i == k.uuid)
                    && self.name.as_deref().is_none_or(|n| n == k.name)
                    && self
                        .fingerprint
                        .as_deref()
                        .is_none_or(|f| f == k.fingerprint)
                    && keyword.is_none_or(|w| k.name.contains(w) || k.fingerprint.contains(w))
            })
            .collect();
        let count = rows.len() as u64;
        let items = page_of(rows, page)
            .iter()
            .map(|k| {
                json!({
                    "id": k.uuid,
                    "name": k.name,
                    "fingerprint": k.fingerprint,
                    "account": k.account_name,
                    "domainid": k.domain_uuid,
                    "domain": k.domain_name,
                })
            })
            .collect();
        Ok(Reply::List { count, items })
    }
}
