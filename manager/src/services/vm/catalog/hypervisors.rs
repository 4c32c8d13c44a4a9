//! `listHypervisors`: what runs the VMs and routers, which Ansible's
//! `cs_instance` matches against a template's `hypervisor` before every
//! deploy: the hypervisors the hosts (of the zone, when given) report, or,
//! where there is no host yet, the one of the manager's own driver.

use serde_json::json;
use uuid::Uuid;

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Id, Spec, SyncCommand};
use crate::server::registry::{ALL, field};
use crate::server::{Ctx, Reply};
use crate::store::{host, zone};

const ZONE: Arg<Id> = Arg::opt("zoneid", "only the hypervisors of this zone");

/// `listHypervisors`.
pub struct ListHypervisors {
    zone: Option<Uuid>,
}

impl Command for ListHypervisors {
    const NAME: &'static str = "listHypervisors";

    fn spec() -> Spec {
        Spec::new("Lists the hypervisors that run VMs and routers")
            .roles(ALL)
            .param(ZONE)
            .returns(
                "hypervisor",
                vec![field("name", "string", "the name of the hypervisor")],
            )
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListHypervisors {
            zone: args.get(&ZONE)?,
        })
    }
}

impl SyncCommand for ListHypervisors {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        if let Some(id) = self.zone
            && zone::get_by_uuid(&ctx.app.db, id)
                .await?
                .is_none_or(|z| z.removed.is_some())
        {
            return Ok(Reply::empty_list());
        }
        let zone_id = match self.zone {
            Some(id) => zone::get_by_uuid(&ctx.app.db, id).await?.map(|z| z.id),
            None => None,
        };
        let mut names = host::hypervisors(&ctx.app.db, zone_id).await?;
        if names.is_empty() {
            names.push(ctx.app.network.hypervisor().to_string());
        }
        Ok(Reply::List {
            count: names.len() as u64,
            items: names.iter().map(|n| json!({ "name": n })).collect(),
        })
    }
}
