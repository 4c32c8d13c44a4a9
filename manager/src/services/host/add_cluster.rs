//! `addCluster`: a cluster of hosts of one hypervisor in a pod (CloudStack
//! calls the command addCluster; there is no createCluster).

use uuid::Uuid;

use super::views::{CLUSTER_FIELDS, cluster_view};
use super::{grouping_allocation_state, pod_by_id};
use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Id, Spec, SyncCommand, Text};
use crate::server::registry::ROOT;
use crate::server::{Ctx, Reply};
use crate::services::zone::zone_by_id;
use crate::store::{self, pod};

const NAME: Arg<Text> = Arg::req("clustername", "the cluster name");
const CLUSTER_TYPE: Arg<Text> = Arg::req(
    "clustertype",
    "type of the cluster: CloudManaged, ExternalManaged",
);
const HYPERVISOR: Arg<Text> = Arg::req("hypervisor", "hypervisor type of the cluster");
const POD: Arg<Id> = Arg::req("podid", "the Pod ID for the host");
const ZONE: Arg<Id> = Arg::req("zoneid", "the Zone ID for the cluster");
const ALLOCATION_STATE: Arg<Text> = Arg::opt(
    "allocationstate",
    "Allocation state of this cluster for allocation of new resources",
);
const URL: Arg<Text> = Arg::opt("url", "the URL (accepted; hosts are added with addHost)");
const USERNAME: Arg<Text> = Arg::opt("username", "the username for the cluster (accepted)");
const PASSWORD: Arg<Text> = Arg::opt("password", "the password for the cluster (accepted)");

/// `addCluster`.
pub struct AddCluster {
    name: String,
    cluster_type: String,
    hypervisor: String,
    pod: Uuid,
    zone: Uuid,
    allocation_state: Option<String>,
}

impl Command for AddCluster {
    const NAME: &'static str = "addCluster";

    fn spec() -> Spec {
        Spec::new("Adds a new cluster")
            .roles(ROOT)
            .param(NAME)
            .param(CLUSTER_TYPE)
            .param(HYPERVISOR)
            .param(POD)
            .param(ZONE)
            .param(ALLOCATION_STATE)
            .param(URL)
            .param(USERNAME)
            .param(PASSWORD)
            .returns("cluster", CLUSTER_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(AddCluster {
            name: args.need(&NAME)?,
            cluster_type: args.need(&CLUSTER_TYPE)?,
            hypervisor: args.need(&HYPERVISOR)?,
            pod: args.need(&POD)?,
            zone: args.need(&ZONE)?,
            allocation_state: args.get(&ALLOCATION_STATE)?,
        })
    }
}

/// CloudStack's cluster types, as stored.
fn cluster_type(given: &str) -> Result<&'static str, Error> {
    match given {
        "CloudManaged" => Ok("CloudManaged"),
        "ExternalManaged" => Ok("ExternalManaged"),
        other => Err(Error::invalid(format!(
            "Unable to resolve {other} to a supported type"
        ))),
    }
}

/// The hypervisor `given` names, as the manager's driver spells it: the
/// only one whose routers and VMs this manager can run.
pub(crate) fn supported_hypervisor(ctx: &Ctx, given: &str) -> Option<&'static str> {
    let ours = ctx.app.network.hypervisor();
    given.eq_ignore_ascii_case(ours).then_some(ours)
}

impl SyncCommand for AddCluster {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let zone = zone_by_id(ctx, self.zone, ZONE.name()).await?;
        let pod = pod_by_id(ctx, self.pod, POD.name()).await?;
        if pod.data_center_id != zone.id {
            return Err(Error::invalid(format!(
                "Pod with specified id doesn't belong to the zone {}",
                zone.uuid
            )));
        }
        if self.name.trim().is_empty() {
            return Err(Error::invalid("Please specify cluster name"));
        }
        let Some(hypervisor) = supported_hypervisor(ctx, &self.hypervisor) else {
            return Err(Error::invalid(format!(
                "Could not find corresponding resource manager for {}",
                self.hypervisor
            )));
        };
        let cluster_type = cluster_type(&self.cluster_type)?;
        let allocation_state = grouping_allocation_state(self.allocation_state.as_deref())?;
        let name = self.name;
        let created = pod::create_cluster(
            &ctx.app.db,
            pod::NewCluster {
                name: name.clone(),
                pod_id: pod.id,
                zone_id: zone.id,
                hypervisor: hypervisor.to_string(),
                cluster_type: cluster_type.to_string(),
                allocation_state: allocation_state.to_string(),
            },
        )
        .await
        .map_err(|e| match e {
            store::StoreError::Duplicate(_) => Error::internal(format!(
                "Unable to create cluster {name} in pod and data center with specified ids"
            )),
            other => other.into(),
        })?;
        // addCluster answers with a list, as CloudStack's does.
        Ok(Reply::List {
            count: 1,
            items: vec![cluster_view(&created, Some(&pod), Some(&zone))],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_types_are_cloudstacks_two_spelled_exactly() {
        assert_eq!(cluster_type("CloudManaged").unwrap(), "CloudManaged");
        assert_eq!(cluster_type("ExternalManaged").unwrap(), "ExternalManaged");
        assert_eq!(
            cluster_type("cloudmanaged").unwrap_err().text(),
            "Unable to resolve cloudmanaged to a supported type"
        );
    }
}
