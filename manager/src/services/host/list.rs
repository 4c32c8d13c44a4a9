//! `listHosts`: the live hosts, by name, with the routers and VMs on each.

use uuid::Uuid;

use super::views::HOST_FIELDS;
use super::{cluster_by_id, host_views, pod_by_id};
use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Id, Spec, SyncCommand, Text};
use crate::server::list_paging::Paging;
use crate::server::registry::ROOT;
use crate::server::{Ctx, Reply};
use crate::services::zone::zone_by_id;
use crate::store::host;

const ID: Arg<Id> = Arg::opt("id", "the id of the host");
const NAME: Arg<Text> = Arg::opt("name", "the name of the host");
const ZONE: Arg<Id> = Arg::opt("zoneid", "the Zone ID for the host");
const POD: Arg<Id> = Arg::opt("podid", "the Pod ID for the host");
const CLUSTER: Arg<Id> = Arg::opt("clusterid", "lists hosts existing in particular cluster");
const STATE: Arg<Text> = Arg::opt("state", "the state of the host: Up, Disconnected, Down");
const RESOURCE_STATE: Arg<Text> = Arg::opt(
    "resourcestate",
    "list hosts by resource state: Enabled, Disabled, PrepareForMaintenance, \
     ErrorInMaintenance, Maintenance",
);
const HYPERVISOR: Arg<Text> = Arg::opt("hypervisor", "hypervisor type of host");
const TYPE: Arg<Text> = Arg::opt("type", "the host type (Routing)");

/// `listHosts`.
pub struct ListHosts {
    id: Option<Uuid>,
    name: Option<String>,
    zone: Option<Uuid>,
    pod: Option<Uuid>,
    cluster: Option<Uuid>,
    state: Option<String>,
    resource_state: Option<String>,
    hypervisor: Option<String>,
    host_type: Option<String>,
    paging: Paging,
}

impl Command for ListHosts {
    const NAME: &'static str = "listHosts";

    fn spec() -> Spec {
        Spec::new("Lists hosts.")
            .roles(ROOT)
            .param(ID)
            .param(NAME)
            .param(ZONE)
            .param(POD)
            .param(CLUSTER)
            .param(STATE)
            .param(RESOURCE_STATE)
            .param(HYPERVISOR)
            .param(TYPE)
            .params(Paging::specs())
            .returns("host", HOST_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListHosts {
            id: args.get(&ID)?,
            name: args.text(&NAME)?,
            zone: args.get(&ZONE)?,
            pod: args.get(&POD)?,
            cluster: args.get(&CLUSTER)?,
            state: args.text(&STATE)?.filter(|s| !s.is_empty()),
            resource_state: args.text(&RESOURCE_STATE)?.filter(|s| !s.is_empty()),
            hypervisor: args.text(&HYPERVISOR)?.filter(|s| !s.is_empty()),
            host_type: args.text(&TYPE)?.filter(|s| !s.is_empty()),
            paging: Paging::parse(args)?,
        })
    }
}

impl SyncCommand for ListHosts {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        // Every host here runs routers and VMs (CloudStack's Routing type).
        if self
            .host_type
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case("routing"))
        {
            return Ok(Reply::empty_list());
        }
        let zone_id = match self.zone {
            Some(id) => Some(zone_by_id(ctx, id, ZONE.name()).await?.id),
            None => None,
        };
        let pod_id = match self.pod {
            Some(id) => Some(pod_by_id(ctx, id, POD.name()).await?.id),
            None => None,
        };
        let cluster_id = match self.cluster {
            Some(id) => Some(cluster_by_id(ctx, id, CLUSTER.name()).await?.id),
            None => None,
        };
        let filter = host::HostFilter {
            uuid: self.id,
            name: self.name,
            zone_id,
            pod_id,
            cluster_id,
            status: self.state,
            resource_state: self.resource_state,
            hypervisor: self.hypervisor,
            keyword: self.paging.keyword.clone(),
        };
        let listed = host::list(&ctx.app.db, &filter, self.paging.page(ctx).await?).await?;
        let items = host_views(&ctx.app.db, &listed.items).await?;
        Ok(Reply::List {
            count: listed.total as u64,
            items,
        })
    }
}
