//! `createDomain`: a domain below a parent the caller covers.

use uuid::Uuid;

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Id, Spec, SyncCommand, Text};
use crate::server::registry::ADMINS;
use crate::server::{Ctx, Reply};
use crate::store::{self, domain};

use super::super::domain_or_own;
use super::super::views::{DOMAIN_FIELDS, domain_view};

const NAME: Arg<Text> = Arg::req("name", "the name of the domain");
const PARENT: Arg<Id> = Arg::opt("parentdomainid", "the parent domain; default the caller's");
const NETWORK_DOMAIN: Arg<Text> = Arg::opt(
    "networkdomain",
    "the network domain of the domain's networks",
);

/// `createDomain`.
pub struct CreateDomain {
    name: String,
    parent: Option<Uuid>,
    network_domain: Option<String>,
}

impl Command for CreateDomain {
    const NAME: &'static str = "createDomain";

    fn spec() -> Spec {
        Spec::new("Creates a domain below a parent domain")
            .roles(ADMINS)
            .param(NAME)
            .param(PARENT)
            .param(NETWORK_DOMAIN)
            .returns("domain", DOMAIN_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(CreateDomain {
            name: args.need(&NAME)?,
            parent: args.get(&PARENT)?,
            network_domain: args.get(&NETWORK_DOMAIN)?,
        })
    }
}

impl SyncCommand for CreateDomain {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let parent = domain_or_own(ctx, self.parent, PARENT.name()).await?;
        let name = self.name;
        let created = domain::create(
            &ctx.app.db,
            domain::NewDomain {
                parent_id: parent.id,
                name: name.clone(),
                network_domain: self.network_domain,
            },
        )
        .await
        .map_err(|e| match e {
            store::StoreError::Duplicate(_) => Error::invalid(format!(
                "Domain with name {name} already exists for the parent {}",
                parent.uuid
            )),
            other => other.into(),
        })?;
        Ok(Reply::Object(domain_view(ctx, &created).await?))
    }
}
