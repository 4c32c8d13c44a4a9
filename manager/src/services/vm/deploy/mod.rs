//! `deployVirtualMachine` (async-create, §2.9): the request checks, the VM
//! row and one NIC per tier with its address (the guru's reservation) in one
//! transaction under the VPC row lock; the job starts the VM. A VM whose
//! job never ran is removed ([`DeployVirtualMachine::abandon`]).
//!
//! Kept whole because the request's checks and the one transaction that writes the VM, its NICs and
//! addresses are one step.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

mod tiers;

use super::{VM_FIELDS, password, sees_admin_fields, start, vm_result};
use crate::error::Error;
use crate::orchestration::RouterDriver;
use crate::provision;
use crate::rules;
use crate::server::command::{
    Arg, Args, AsyncCommand, Command, Flag, Id, Ids, Map, Spec, Submission, Text, Texts,
};
use crate::server::jobs::{JobCtx, vpc_sync};
use crate::server::registry::{ALL, fields};
use crate::server::{App, Ctx};
use crate::services::owner::{self, OwnerArgs};
use crate::services::userdata;
use crate::services::zone::zone_by_id;
use crate::store::{self, router, vm, vmdata, vpc};
use tiers::Deferred;

const ZONE: Arg<Id> = Arg::req("zoneid", "the zone of the VM");
const SERVICE_OFFERING: Arg<Id> = Arg::req("serviceofferingid", "the service offering");
const TEMPLATE: Arg<Id> = Arg::req("templateid", "the template");
const NETWORK_IDS: Arg<Ids> = Arg::opt(
    "networkids",
    "the tiers of the VM; the first one holds the default NIC",
);
const IP_TO_NETWORK: Arg<Map> = Arg::opt(
    "iptonetworklist",
    "tiers with addresses, as iptonetworklist[i].networkid and iptonetworklist[i].ip \
     (instead of networkids)",
);
const IP_ADDRESS: Arg<Text> = Arg::opt(
    "ipaddress",
    "the address in the first tier (default: its lowest free one)",
);
const NAME: Arg<Text> = Arg::opt(
    "name",
    "the host name, unique in the account (default VM-<uuid>)",
);
const DISPLAY_NAME: Arg<Text> = Arg::opt("displayname", "the display name (default the name)");
const START_VM: Arg<Flag> = Arg::opt(
    "startvm",
    "false: only create the VM (default true: start it)",
);
const HYPERVISOR: Arg<Text> = Arg::opt("hypervisor", "accepted; VMs run as network namespaces");
const MAC_ADDRESS: Arg<Text> = Arg::opt(
    "macaddress",
    "the MAC address of the default NIC (unicast, unused)",
);
const USER_DATA: Arg<Text> = Arg::opt(
    "userdata",
    "the user data the VM reads from its router, base64 (at most 32768 characters)",
)
.length(1_048_576);
const USER_DATA_ID: Arg<Id> = Arg::opt(
    "userdataid",
    "registered userdata (registerUserData) the VM reads from its router, instead of userdata",
);
const USER_DATA_DETAILS: Arg<Map> = Arg::opt(
    "userdatadetails",
    "values of the registered userdata's params, as userdatadetails[0].<param>=<value>; \
     each is served to the VM as the metadata file of its name",
);
const KEY_PAIR: Arg<Text> = Arg::opt("keypair", "the SSH key pair whose key the VM reads");
const KEY_PAIRS: Arg<Texts> = Arg::opt(
    "keypairs",
    "the SSH key pairs whose keys the VM reads (instead of keypair)",
);
const HOST: Arg<Id> = Arg::opt(
    "hostid",
    "destination Host ID to deploy the VM to - parameter available for root admin only",
);

/// `deployVirtualMachine`.
pub struct DeployVirtualMachine {
    zone: Uuid,
    service_offering: Uuid,
    template: Uuid,
    network_ids: Deferred<Option<Vec<Uuid>>>,
    ip_to_network: Deferred<Option<Vec<BTreeMap<String, String>>>>,
    ip_address: Option<String>,
    name: Option<String>,
    display_name: Option<String>,
    start: bool,
    mac_address: Option<String>,
    user_data: Option<String>,
    user_data_id: Option<Uuid>,
    user_data_details: Option<Vec<BTreeMap<String, String>>>,
    key_pairs: Option<Vec<String>>,
    host: Option<Uuid>,
    owner: OwnerArgs,
}

/// The job of `deployVirtualMachine`: start the VM (unless `startvm=false`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployVmJob {
    /// The VM's row id.
    pub id: i64,
    #[serde(default = "start_by_default")]
    pub start: bool,
}

fn start_by_default() -> bool {
    true
}

impl Command for DeployVirtualMachine {
    const NAME: &'static str = "deployVirtualMachine";

    fn spec() -> Spec {
        Spec::new("Creates a VM in VPC tiers and starts it")
            .roles(ALL)
            .param(ZONE)
            .param(SERVICE_OFFERING)
            .param(TEMPLATE)
            .param(NETWORK_IDS)
            .param(IP_TO_NETWORK)
            .param(IP_ADDRESS)
            .param(NAME)
            .param(DISPLAY_NAME)
            .param(START_VM)
            .param(HYPERVISOR)
            .param(MAC_ADDRESS)
            .param(USER_DATA)
            .param(USER_DATA_ID)
            .param(USER_DATA_DETAILS)
            .param(KEY_PAIR)
            .param(KEY_PAIRS)
            .param(HOST)
            .params(OwnerArgs::specs())
            .returns("virtualmachine", fields(VM_FIELDS))
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DeployVirtualMachine {
            zone: args.need(&ZONE)?,
            service_offering: args.need(&SERVICE_OFFERING)?,
            template: args.need(&TEMPLATE)?,
            network_ids: args.get(&NETWORK_IDS),
            ip_to_network: args.get(&IP_TO_NETWORK),
            ip_address: args.text(&IP_ADDRESS)?,
            name: args.text(&NAME)?,
            display_name: args.text(&DISPLAY_NAME)?,
            start: args.get(&START_VM)?.unwrap_or(true),
            mac_address: args.text(&MAC_ADDRESS)?,
            user_data: args.text(&USER_DATA)?,
            user_data_id: args.get(&USER_DATA_ID)?,
            user_data_details: args.get(&USER_DATA_DETAILS)?,
            key_pairs: match args.get(&KEY_PAIRS)? {
                Some(names) => Some(names),
                None => args.text(&KEY_PAIR)?.map(|n| vec![n]),
            },
            host: args.get(&HOST)?,
            owner: OwnerArgs::parse(args)?,
        })
    }
}

impl AsyncCommand for DeployVirtualMachine {
    const CREATES: bool = true;
    /// The VM's rows come from `submit`; the start is idempotent
    /// ([`start::start`]).
    const RERUN: bool = true;
    type Job = DeployVmJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<DeployVmJob>, Error> {
        let db = &ctx.app.db;
        let z = zone_by_id(ctx, self.zone, ZONE.name()).await?;
        // CloudStack's rule: only a root admin picks the host.
        let wanted_host = match self.host {
            Some(_) if !ctx.caller.is_root_admin() => {
                return Err(Error::permission_denied(
                    "Parameter hostid can only be specified by a Root Admin, permission denied",
                ));
            }
            Some(id) => Some(
                crate::services::host::host_by_id(ctx, id, HOST.name())
                    .await?
                    .id,
            ),
            None => None,
        };
        let offering_id = self.service_offering;
        let o = vm::offering_by_uuid(db, offering_id)
            .await?
            .filter(|o| o.removed.is_none())
            .ok_or_else(|| Error::invalid_id(SERVICE_OFFERING.name(), offering_id))?;
        let template_id = self.template;
        let t = vm::template_by_uuid(db, template_id)
            .await?
            .filter(|t| t.removed.is_none())
            .ok_or_else(|| Error::invalid_id(TEMPLATE.name(), template_id))?;
        let owner = self.owner.resolve(ctx).await?;
        let requested = tiers::requested_networks(
            self.network_ids,
            self.ip_to_network,
            self.ip_address.as_deref(),
        )?;
        let tiers = tiers::tiers_of(ctx, z.id, &owner, &requested).await?;
        let vpc_id = tiers
            .first()
            .and_then(|(t, _)| t.vpc_id)
            .ok_or_else(|| Error::internal("a VM without tiers"))?;
        let name = match self.name {
            Some(n) => {
                super::check_host_name(&n)?;
                n
            }
            None => format!("VM-{}", store::new_uuid()),
        };
        let display_name = self.display_name.unwrap_or_else(|| name.clone());
        rules::check_length(
            DISPLAY_NAME.name(),
            &display_name,
            rules::MAX_DISPLAY_TEXT_LEN,
        )?;
        let mac = self
            .mac_address
            .map(|m| rules::parse_mac(MAC_ADDRESS.name(), &m))
            .transpose()?;
        let user_data = match (&self.user_data, self.user_data_id) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "Both userdata and userdata ID inputs are not allowed, please provide only one",
                ));
            }
            (Some(u), None) => Some(userdata::checked(ctx, u).await?),
            (None, _) => None,
        };
        let registered = userdata::registered_for(
            ctx,
            owner.account_id,
            self.user_data_id,
            self.user_data_details,
        )
        .await?;

        let mut tx = db.begin().await?;
        vpc::lock(&mut tx, vpc_id).await?;
        let live = vpc::get_by_id(&mut tx, vpc_id)
            .await?
            .filter(|v| v.removed.is_none() && v.state == vpc::STATE_ENABLED);
        if live.is_none() {
            return Err(Error::invalid(
                "The VPC of the VM's tiers is being deleted: no VM can join it",
            ));
        }
        owner::check_limit(&mut tx, owner.account_id, "user_vm", 1).await?;
        owner::check_limit(&mut tx, owner.account_id, "cpu", o.cpu).await?;
        owner::check_limit(&mut tx, owner.account_id, "memory", o.ram_size).await?;
        if vm::name_taken(&mut tx, owner.account_id, &name, None).await? {
            return Err(Error::invalid(format!(
                "The vm with hostName {name} already exists in account {}",
                owner.account_name
            )));
        }
        let created = vm::create(
            &mut tx,
            vm::NewVm {
                name,
                display_name,
                zone_id: z.id,
                account_id: owner.account_id,
                domain_id: owner.domain_id,
                service_offering_id: o.id,
                template_id: t.id,
                state: vm::STATE_STOPPED,
            },
        )
        .await?;
        provision::placement::place_vm(&mut tx, &created, wanted_host).await?;
        if user_data.is_some()
            || registered.is_some()
            || self.key_pairs.is_some()
            || t.enable_password
        {
            let (public_keys, keypair_names) = match &self.key_pairs {
                Some(names) => userdata::key_pairs(&mut tx, owner.account_id, names).await?,
                None => Default::default(),
            };
            let (user_data, user_data_id, user_data_details) = match registered {
                Some(r) => (r.user_data, Some(r.id), r.details),
                None => (user_data.unwrap_or_default(), None, String::new()),
            };
            // A password-enabled template's VM gets its password now; the
            // job shows it once.
            let password = if t.enable_password {
                ctx.app.secrets.seal(&password::generate(
                    password::configured_length(&ctx.app.db).await?,
                ))
            } else {
                String::new()
            };
            vmdata::set(
                &mut tx,
                &vmdata::VmUserData {
                    vm_id: created.id,
                    user_data,
                    public_keys,
                    keypair_names,
                    password,
                    user_data_id,
                    user_data_details,
                },
            )
            .await?;
        }
        for (i, (tier, ip)) in tiers.iter().enumerate() {
            let index = i64::try_from(i).unwrap_or(i64::MAX);
            let nic =
                provision::tier::reserve_nic(&ctx.app.network, &mut tx, tier, &created, index, *ip)
                    .await?;
            // `macaddress` is the default (first) NIC's, as in CloudStack.
            if let (0, Some(mac)) = (i, &mac) {
                match router::set_nic_mac(&mut tx, nic.id, mac).await {
                    Err(store::StoreError::Duplicate(_)) => {
                        return Err(Error::invalid(format!(
                            "macaddress {mac} is in use by another NIC; give an unused one"
                        )));
                    }
                    other => other?,
                }
            }
        }
        tx.commit().await?;
        Ok(Submission::created(
            DeployVmJob {
                id: created.id,
                start: self.start,
            },
            ("VirtualMachine", created.uuid),
            vpc_sync(vpc_id),
        ))
    }

    async fn run(job: &JobCtx, payload: DeployVmJob) -> Result<Value, Error> {
        let app = &job.app;
        let id = payload.id;
        if payload.start
            && let Err(e) = start::start(app, id).await
        {
            // A VM that could not start on deployment is not kept: its name
            // and addresses are free again.
            if let Err(undo) = vm::expunge(&app.db, id).await {
                tracing::error!(error = %undo, "expunging a VM that failed to start");
            }
            return Err(e);
        }
        let result = vm_result(&app.db, id, sees_admin_fields(job.caller.role)).await?;
        Ok(match password::current(app, id).await? {
            Some(clear) => password::shown(result, &clear),
            None => result,
        })
    }

    /// As when the start fails: the VM is removed through the driver and
    /// expunged; its VPC's router is marked for resync, so it forgets the
    /// VM's DHCP lease.
    async fn abandon(app: &App, payload: DeployVmJob) -> Result<(), Error> {
        let db = &app.db;
        let Some(v) = vm::get_by_id(db, payload.id)
            .await?
            .filter(|v| v.removed.is_none())
        else {
            return Ok(());
        };
        let vpc_id = super::vpc_of(db, v.id).await?;
        let _lock = match vpc_id {
            Some(id) => Some(app.network.lock(db, id).await?),
            None => None,
        };
        let view = provision::state::vm_view(db, &v).await?;
        if let Err(e) = app.network.element.driver().destroy_vm(&view).await {
            // The row goes anyway: the sweeper removes a namespace nobody
            // knows.
            tracing::warn!(vm = %v.instance_name, error = %e, "the driver could not remove an abandoned VM");
        }
        vm::expunge(db, v.id).await?;
        if let Some(vpc_id) = vpc_id
            && let Some(r) = provision::running_router(db, vpc_id).await?
        {
            provision::resync_after_failure(db, r.id).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deploy_job_stored_by_the_previous_version_still_reads() {
        let job: DeployVmJob = serde_json::from_str(r#"{"id": 7, "start": false}"#).unwrap();
        assert_eq!((job.id, job.start), (7, false));
        // The old body started the VM when `start` was missing.
        let job: DeployVmJob = serde_json::from_str(r#"{"id": 7}"#).unwrap();
        assert!(job.start);
        assert_eq!(
            serde_json::to_value(DeployVmJob { id: 3, start: true }).unwrap(),
            serde_json::json!({"id": 3, "start": true})
        );
    }
}
