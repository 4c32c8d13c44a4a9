//! `listClusters`: the live clusters, by name.

use std::collections::HashMap;

use uuid::Uuid;

use super::pod_by_id;
use super::views::{CLUSTER_FIELDS, cluster_view};
use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Id, Spec, SyncCommand, Text};
use crate::server::list_paging::Paging;
use crate::server::registry::ROOT;
use crate::server::{Ctx, Reply};
use crate::services::zone::zone_by_id;
use crate::store::{pod, zone};

const ID: Arg<Id> = Arg::opt("id", "lists clusters by the cluster ID");
const NAME: Arg<Text> = Arg::opt("name", "lists clusters by the cluster name");
const POD: Arg<Id> = Arg::opt("podid", "lists clusters by Pod ID");
const ZONE: Arg<Id> = Arg::opt("zoneid", "lists clusters by Zone ID");
const HYPERVISOR: Arg<Text> = Arg::opt("hypervisor", "lists clusters by hypervisor type");
const CLUSTER_TYPE: Arg<Text> = Arg::opt("clustertype", "lists clusters by cluster type");
const ALLOCATION_STATE: Arg<Text> =
    Arg::opt("allocationstate", "lists clusters by allocation state");

/// `listClusters`.
pub struct ListClusters {
    id: Option<Uuid>,
    name: Option<String>,
    pod: Option<Uuid>,
    zone: Option<Uuid>,
    hypervisor: Option<String>,
    cluster_type: Option<String>,
    allocation_state: Option<String>,
    paging: Paging,
}

impl Command for ListClusters {
    const NAME: &'static str = "listClusters";

    fn spec() -> Spec {
        Spec::new("Lists clusters.")
            .roles(ROOT)
            .param(ID)
            .param(NAME)
            .param(POD)
            .param(ZONE)
            .param(HYPERVISOR)
            .param(CLUSTER_TYPE)
            .param(ALLOCATION_STATE)
            .params(Paging::specs())
            .returns("cluster", CLUSTER_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListClusters {
            id: args.get(&ID)?,
            name: args.text(&NAME)?,
            pod: args.get(&POD)?,
            zone: args.get(&ZONE)?,
            hypervisor: args.text(&HYPERVISOR)?,
            cluster_type: args.text(&CLUSTER_TYPE)?,
            allocation_state: args.text(&ALLOCATION_STATE)?,
            paging: Paging::parse(args)?,
        })
    }
}

impl SyncCommand for ListClusters {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let zone_id = match self.zone {
            Some(id) => Some(zone_by_id(ctx, id, ZONE.name()).await?.id),
            None => None,
        };
        let pod_id = match self.pod {
            Some(id) => Some(pod_by_id(ctx, id, POD.name()).await?.id),
            None => None,
        };
        let filter = pod::GroupFilter {
            uuid: self.id,
            name: self.name,
            zone_id,
            pod_id,
            hypervisor: self.hypervisor,
            cluster_type: self.cluster_type,
            allocation_state: self.allocation_state,
            keyword: self.paging.keyword.clone(),
        };
        let listed = pod::list_clusters(db, &filter, self.paging.page(ctx).await?).await?;
        let rows = &listed.items;
        let pod_ids: Vec<i64> = rows.iter().map(|c| c.pod_id).collect();
        let zone_ids: Vec<i64> = rows.iter().map(|c| c.data_center_id).collect();
        let pods: HashMap<i64, pod::Pod> = pod::pods_by_ids(db, &pod_ids)
            .await?
            .into_iter()
            .map(|p| (p.id, p))
            .collect();
        let zones: HashMap<i64, zone::Zone> = zone::by_ids(db, &zone_ids)
            .await?
            .into_iter()
            .map(|z| (z.id, z))
            .collect();
        let count = listed.total as u64;
        let items = rows
            .iter()
            .map(|c| cluster_view(c, pods.get(&c.pod_id), zones.get(&c.data_center_id)))
            .collect();
        Ok(Reply::List { count, items })
    }
}
