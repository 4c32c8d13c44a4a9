//! createPrivateGateway: the checks of a new gateway and its rows, stored
//! during the request; the job that plugs its NIC on the router (or removes
//! the rows again when the router refuses).

use serde_json::{Value, json};
use uuid::Uuid;

use super::super::vpc_param;
use super::joins::GatewayJoins;
use super::lookups::{
    acl_of_new_gateway, existing_gateways, physical_network, refuse_associated, tier_cidrs,
};
use super::router_nics;
use super::{GATEWAY_FIELDS, gateway_uuid, gateway_view, job_gateway, remove_rows};
use crate::error::Error;
use crate::orchestration::guru::NetworkSpec;
use crate::orchestration::{IsolationMethod, NetworkTraffic};
use crate::rules::gateway as rule;
use crate::server::command::{
    Arg, Args, AsyncCommand, Command, Flag, Id, IdJob, Spec, Submission, Text,
};
use crate::server::jobs::{JobCtx, vpc_sync};
use crate::server::registry::{ALL, fields};
use crate::server::{App, Ctx};
use crate::services::related::Related;
use crate::store::{self, Page, acl, gateway, network, vnet, vpc};

const VPC: Arg<Id> = Arg::req("vpcid", "the VPC");
const IP_ADDRESS: Arg<Text> = Arg::req("ipaddress", "the router's address on the private network");
const GATEWAY: Arg<Text> = Arg::req("gateway", "the next hop on the private network");
const NETMASK: Arg<Text> = Arg::req("netmask", "the netmask of the private network");
const VLAN: Arg<Text> = Arg::opt(
    "vlan",
    "the VLAN of the private network, N or vlan://N (ROOT admin only)",
);
const PHYSICAL_NETWORK: Arg<Id> = Arg::opt(
    "physicalnetworkid",
    "the physical network; default the zone's only guest physical network",
);
const SOURCE_NAT: Arg<Flag> = Arg::opt(
    "sourcenatsupported",
    "true: source-NAT traffic leaving through the gateway (default false)",
);
const ACL: Arg<Id> = Arg::opt("aclid", "the ACL list of the gateway; default default_deny");
const ASSOCIATED_NETWORK: Arg<Id> = Arg::opt(
    "associatednetworkid",
    "instead of a VLAN: an isolated network to ride on",
);
const BYPASS_VLAN_CHECK: Arg<Flag> = Arg::opt(
    "bypassvlanoverlapcheck",
    "ROOT admin: accept a VLAN a tier of the zone uses",
);

/// `createPrivateGateway`.
pub struct CreatePrivateGateway {
    vpc: Uuid,
    ip_address: String,
    gateway: String,
    netmask: String,
    vlan: Option<String>,
    physical_network: Option<Uuid>,
    source_nat: bool,
    acl: Option<Uuid>,
    associated_network: Option<Uuid>,
    bypass_vlan_check: bool,
}

impl Command for CreatePrivateGateway {
    const NAME: &'static str = "createPrivateGateway";

    fn spec() -> Spec {
        Spec::new("Creates a private gateway of a VPC on a VLAN")
            .roles(ALL)
            .param(VPC)
            .param(IP_ADDRESS)
            .param(GATEWAY)
            .param(NETMASK)
            .param(VLAN)
            .param(PHYSICAL_NETWORK)
            .param(SOURCE_NAT)
            .param(ACL)
            .param(ASSOCIATED_NETWORK)
            .param(BYPASS_VLAN_CHECK)
            .returns("privategateway", fields(GATEWAY_FIELDS))
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(CreatePrivateGateway {
            vpc: args.need(&VPC)?,
            ip_address: args.need(&IP_ADDRESS)?,
            gateway: args.need(&GATEWAY)?,
            netmask: args.need(&NETMASK)?,
            // A blank VLAN is no VLAN.
            vlan: args.get(&VLAN)?.filter(|s| !s.trim().is_empty()),
            physical_network: args.get(&PHYSICAL_NETWORK)?,
            source_nat: args.get(&SOURCE_NAT)?.unwrap_or(false),
            acl: args.get(&ACL)?,
            associated_network: args.get(&ASSOCIATED_NETWORK)?,
            bypass_vlan_check: args.get(&BYPASS_VLAN_CHECK)? == Some(true),
        })
    }
}

impl AsyncCommand for CreatePrivateGateway {
    const CREATES: bool = true;
    /// The gateway's rows come from `submit`; its router NIC is made once
    /// (`GatewayJoins`) and a Ready gateway is not pushed again.
    const RERUN: bool = true;
    type Job = IdJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<IdJob>, Error> {
        let db = &ctx.app.db;
        let is_root = ctx.caller.is_root_admin();
        let v = vpc_param(ctx, VPC.name(), self.vpc).await?;
        if v.state != vpc::STATE_ENABLED {
            return Err(Error::invalid(format!(
                "VPC {} is {}, not Enabled: it can't get a private gateway",
                v.uuid, v.state
            )));
        }
        let associated = self.associated_network.map(|u| u.to_string());
        let request = rule::NewGateway {
            ip_address: &self.ip_address,
            gateway: &self.gateway,
            netmask: &self.netmask,
            vlan: self.vlan.as_deref(),
            associated_network: associated.as_deref(),
            caller_is_root: is_root,
        };
        // Parameters first, before anything is looked up in the store.
        rule::validate_private_gateway(&request, &[], &[])?;
        if let Some(id) = self.associated_network {
            return Err(refuse_associated(ctx, ASSOCIATED_NETWORK.name(), id).await);
        }
        let list = acl_of_new_gateway(db, ACL.name(), self.acl, &v).await?;
        let physnet =
            physical_network(db, PHYSICAL_NETWORK.name(), self.physical_network, &v).await?;
        let _lock = ctx.app.network.lock(db, v.id).await?;
        // Gateways of other VPCs on this physical network are checked too.
        let _physnet_lock = ctx
            .app
            .network
            .lock_physical_network(db, physnet.id)
            .await?;
        let checked = rule::validate_private_gateway(
            &request,
            &existing_gateways(db, physnet.id, v.id).await?,
            &tier_cidrs(db, v.id).await?,
        )?;
        let vlan_id: u32 = checked
            .vlan
            .strip_prefix("vlan://")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| {
                Error::invalid(format!(
                    "A private gateway needs a VLAN id; {} is not one",
                    checked.vlan
                ))
            })?;
        let ranges = match physnet
            .vnet_range
            .as_deref()
            .filter(|r| !r.trim().is_empty())
        {
            Some(r) => vnet::parse_range(r)?,
            None => Vec::new(),
        };
        rule::check_vlan_not_dynamic(vlan_id, &ranges)?;
        let isolation = IsolationMethod::parse(&physnet.isolation_method).ok_or_else(|| {
            Error::invalid(format!(
                "Physical network {} has the unknown isolation method {}",
                physnet.uuid, physnet.isolation_method
            ))
        })?;
        let guru = ctx
            .app
            .network
            .plugins
            .gurus
            .choose(isolation, NetworkTraffic::Private)
            .map_err(|e| Error::invalid(format!("Can't create the private network: {e}")))?;
        let name = format!("vpc-{}-privateNetwork", v.name);
        let designed = guru
            .design(&NetworkSpec {
                id: Uuid::new_v4(),
                name: name.clone(),
                traffic: NetworkTraffic::Private,
                isolation,
                physical_network_id: Some(physnet.uuid),
                cidr: Some(checked.cidr),
                gateway: Some(checked.gateway),
                vlan: Some(vlan_id),
                mtu: None,
                network_domain: None,
                vpc_cidr: None,
            })
            .map_err(|e| Error::invalid(format!("Can't create the private network: {e}")))?;
        let uri = designed
            .broadcast_uri
            .clone()
            .unwrap_or_else(|| checked.vlan.clone());
        let tier_on_vlan = network::list(
            db,
            &network::NetworkFilter {
                zone_id: Some(v.zone_id),
                traffic_type: Some(network::TRAFFIC_GUEST.into()),
                ..Default::default()
            },
            Page::ALL,
        )
        .await?
        .items
        .into_iter()
        .find(|n| {
            n.physical_network_id == Some(physnet.id) && n.broadcast_uri.as_deref() == Some(&uri)
        });
        let bypass = is_root && self.bypass_vlan_check;
        if let Some(n) = tier_on_vlan.filter(|_| !bypass) {
            return Err(Error::invalid(format!(
                "The VLAN {uri} is already used by network {} in the zone",
                n.uuid
            )));
        }
        let offering = store::offering::network_offering_by_unique_name(
            db,
            store::bootstrap::DEFAULT_VPC_TIER_OFFERING_NO_LB,
        )
        .await?
        .ok_or_else(|| Error::internal("the default VPC tier offering is missing"))?;
        let netmask = self.netmask.trim().to_string();
        let mut tx = db.begin().await?;
        if list.is_global && !acl::lock_live_list(&mut tx, list.id).await? {
            return Err(Error::invalid("The ACL list was deleted meanwhile"));
        }
        // CloudStack leaves the VPC of a private network empty: it is no tier.
        let net = network::create(
            &mut tx,
            network::NewNetwork {
                name: name.clone(),
                display_text: name,
                zone_id: v.zone_id,
                physical_network_id: Some(physnet.id),
                vpc_id: None,
                account_id: v.account_id,
                domain_id: v.domain_id,
                network_offering_id: offering.id,
                cidr: Some(checked.cidr.to_string()),
                gateway: Some(checked.gateway.to_string()),
                netmask: Some(netmask.clone()),
                network_domain: None,
                broadcast_uri: Some(uri.clone()),
                vnet: Some(vlan_id.to_string()),
                network_acl_id: None,
                traffic_type: network::TRAFFIC_PRIVATE_GATEWAY.into(),
                guru_name: Some(designed.guru.to_string()),
            },
        )
        .await?;
        network::set_state(&mut tx, net.id, network::STATE_IMPLEMENTED).await?;
        let g = gateway::create(
            &mut tx,
            gateway::NewPrivateGateway {
                vpc_id: v.id,
                network_id: net.id,
                ip4_address: checked.ip.to_string(),
                gateway: checked.gateway.to_string(),
                netmask,
                broadcast_uri: uri,
                source_nat: self.source_nat,
                network_acl_id: Some(list.id),
                account_id: v.account_id,
                domain_id: v.domain_id,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Submission::created(
            IdJob { id: g.id },
            ("PrivateGateway", g.uuid),
            vpc_sync(v.id),
        ))
    }

    async fn run(job: &JobCtx, payload: IdJob) -> Result<Value, Error> {
        let app = &job.app;
        let db = &app.db;
        let g = job_gateway(db, payload.id).await?;
        let lock = app.network.lock(db, g.vpc_id).await?;
        // A Ready gateway is one an earlier run of this job made: the
        // router took it then, and the monitor keeps it there.
        if job_gateway(db, payload.id).await?.state != gateway::GATEWAY_READY {
            let change = GatewayJoins {
                app,
                id: gateway_uuid(&g)?,
                gateway: &g,
            };
            lock.apply(&change).await?;
            gateway::set_state(db, g.id, gateway::GATEWAY_READY).await?;
        }
        let g = job_gateway(db, payload.id).await?;
        let related = Related::for_gateways(db, std::slice::from_ref(&g)).await?;
        Ok(json!({ "privategateway": gateway_view(&related, &g, job.caller.is_root_admin())? }))
    }

    /// A gateway whose job never got to plug its NIC (the job could not be
    /// stored, or its manager died first) goes with its rows, as after a
    /// refused push. Once its NIC row exists the job may have reached the
    /// router: the gateway is left to the background loops, which send the
    /// router the stored state.
    async fn abandon(app: &App, payload: IdJob) -> Result<(), Error> {
        let db = &app.db;
        let Some(g) = gateway::get_by_id(db, payload.id)
            .await?
            .filter(|g| g.removed.is_none() && g.state == gateway::GATEWAY_CREATING)
        else {
            return Ok(());
        };
        let _lock = app.network.lock(db, g.vpc_id).await?;
        if router_nics(db, &g).await?.is_empty() {
            remove_rows(db, &g).await?;
        }
        Ok(())
    }
}
