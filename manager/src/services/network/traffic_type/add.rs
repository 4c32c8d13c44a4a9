//! `addTrafficType`: a physical network starts carrying Guest, Public,
//! Management or Storage traffic (async, as in CloudStack).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::super::{live_physnet, physnet_sync};
use super::{
    PHYSNET, TRAFFIC_TYPE_FIELDS, canonical_traffic_type, duplicate_traffic_type, traffic_type_view,
};
use crate::error::Error;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Spec, Submission, Text};
use crate::server::jobs::JobCtx;
use crate::server::registry::ROOT;
use crate::store::{self, zone};

const TRAFFIC_TYPE: Arg<Text> = Arg::req("traffictype", "Guest, Public, Management or Storage");
const KVM_LABEL: Arg<Text> = Arg::opt(
    "kvmnetworklabel",
    "the host-side label (bridge or device) of the traffic",
);
const XEN_LABEL: Arg<Text> = Arg::opt(
    "xennetworklabel",
    "the XenServer network label (accepted, not used)",
);
const VMWARE_LABEL: Arg<Text> = Arg::opt(
    "vmwarenetworklabel",
    "the VMware network label (accepted, not used)",
);
const HYPERV_LABEL: Arg<Text> = Arg::opt(
    "hypervnetworklabel",
    "the Hyper-V network label (accepted, not used)",
);
const OVM3_LABEL: Arg<Text> = Arg::opt(
    "ovm3networklabel",
    "the OVM3 network label (accepted, not used)",
);

/// `addTrafficType`.
pub struct AddTrafficType {
    physnet: Uuid,
    traffic_type: String,
    label: Option<String>,
}

/// The job of `addTrafficType` (its keys are those of the previous
/// version's job rows).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddTrafficTypeJob {
    pub physical_network_id: i64,
    /// Canonical spelling (`Public`).
    pub traffic_type: String,
    pub label: Option<String>,
}

impl Command for AddTrafficType {
    const NAME: &'static str = "addTrafficType";

    fn spec() -> Spec {
        Spec::new("Adds a traffic type to a physical network")
            .roles(ROOT)
            .param(PHYSNET)
            .param(TRAFFIC_TYPE)
            .param(KVM_LABEL)
            .param(XEN_LABEL)
            .param(VMWARE_LABEL)
            .param(HYPERV_LABEL)
            .param(OVM3_LABEL)
            .returns("traffictype", TRAFFIC_TYPE_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(AddTrafficType {
            physnet: args.need(&PHYSNET)?,
            traffic_type: args.need(&TRAFFIC_TYPE)?,
            label: args.text(&KVM_LABEL)?,
        })
    }
}

impl AsyncCommand for AddTrafficType {
    /// The same type with the same label on the network (an earlier run
    /// added it) is the answer, not added twice.
    const RERUN: bool = true;
    type Job = AddTrafficTypeJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<AddTrafficTypeJob>, Error> {
        let pn = live_physnet(ctx, self.physnet, PHYSNET.name()).await?;
        let traffic_type = canonical_traffic_type(&self.traffic_type)?;
        let existing = zone::traffic_types(&ctx.app.db, pn.id).await?;
        if existing.iter().any(|t| t.traffic_type == traffic_type) {
            return Err(duplicate_traffic_type(&pn, traffic_type));
        }
        let job = AddTrafficTypeJob {
            physical_network_id: pn.id,
            traffic_type: traffic_type.to_string(),
            label: self.label,
        };
        Ok(Submission::new(
            job,
            ("PhysicalNetwork", pn.uuid),
            physnet_sync(pn.id),
        ))
    }

    async fn run(job: &JobCtx, payload: AddTrafficTypeJob) -> Result<Value, Error> {
        let db = &job.app.db;
        let id = payload.physical_network_id;
        let traffic_type = payload.traffic_type.as_str();
        let pn = zone::physical_network_by_id(db, id)
            .await?
            .ok_or_else(|| Error::internal("physical network vanished"))?;
        // The same type with the same label is one an earlier run of this
        // job added.
        if let Some(added) = zone::traffic_types(db, id)
            .await?
            .into_iter()
            .find(|t| t.traffic_type == traffic_type && t.label == payload.label)
        {
            return Ok(json!({ "traffictype": traffic_type_view(&pn, &added) }));
        }
        // The store's unique key settles a race with another add of the
        // same type that passed the request's check too.
        let added = zone::add_traffic_type(db, id, traffic_type, payload.label.as_deref())
            .await
            .map_err(|e| match e {
                store::StoreError::Duplicate(_) => duplicate_traffic_type(&pn, traffic_type),
                store::StoreError::NotFound { .. } => {
                    Error::invalid(format!("The physical network {} was deleted", pn.uuid))
                }
                other => other.into(),
            })?;
        Ok(json!({ "traffictype": traffic_type_view(&pn, &added) }))
    }
}
