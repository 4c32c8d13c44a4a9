//! The VPC's VPN gateway: `createVpnGateway` (async-create, one per VPC, on
//! the VPC's source NAT address), `listVpnGateways`, `deleteVpnGateway`
//! (refused while a connection uses it). A gateway alone changes nothing on
//! the router: the IKE ports open with its first connection.

use serde_json::{Value, json};
use uuid::Uuid;

use super::views::{Lookups, gateway_fields};
use super::vpn_gateway_param;
use crate::error::Error;
use crate::server::command::{
    Arg, Args, AsyncCommand, Command, Id, IdJob, Spec, Submission, SyncCommand,
};
use crate::server::jobs::{JobCtx, vpc_sync};
use crate::server::registry::ALL;
use crate::server::{Ctx, Reply, page_of};
use crate::services::owner::ListArgs;
use crate::services::vpc::vpc_param;
use crate::store::{Page, StoreError, vlan, vpn};

const VPC: Arg<Id> = Arg::req("vpcid", "public ip address id of the vpn gateway");

/// `createVpnGateway`.
pub struct CreateVpnGateway {
    vpc: Uuid,
}

impl Command for CreateVpnGateway {
    const NAME: &'static str = "createVpnGateway";

    fn spec() -> Spec {
        Spec::new("Creates site to site vpn local gateway")
            .roles(ALL)
            .param(VPC)
            .returns("vpngateway", gateway_fields())
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(CreateVpnGateway {
            vpc: args.need(&VPC)?,
        })
    }
}

impl AsyncCommand for CreateVpnGateway {
    /// The row comes from `submit`; the job only reads it.
    const RERUN: bool = true;
    const CREATES: bool = true;
    type Job = IdJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<IdJob>, Error> {
        let db = &ctx.app.db;
        let v = vpc_param(ctx, VPC.name(), self.vpc).await?;
        let _lock = ctx.app.network.lock(db, v.id).await?;
        let exists = || {
            Error::invalid(format!(
                "The VPN gateway of VPC {} already existed!",
                v.uuid
            ))
        };
        if vpn::gateway_of_vpc(db, v.id).await?.is_some() {
            return Err(exists());
        }
        // CloudStack's gateway uses the VPC's one source NAT address.
        let ips = vlan::list_ips(
            db,
            &vlan::PublicIpFilter {
                vpc_id: Some(v.id),
                source_nat: Some(true),
                ..Default::default()
            },
            Page::ALL,
        )
        .await?
        .items;
        let [ip] = ips.as_slice() else {
            return Err(Error::internal(format!(
                "Cannot found source nat ip of vpc {}",
                v.uuid
            )));
        };
        let id = match vpn::create_gateway(db, v.id, ip.id, v.account_id, v.domain_id).await {
            Err(StoreError::Duplicate(_)) => return Err(exists()),
            other => other?,
        };
        let g = vpn::gateway_by_id(db, id)
            .await?
            .ok_or_else(|| Error::internal("the new VPN gateway is gone"))?;
        Ok(Submission::created(
            IdJob { id },
            ("VpnGateway", g.uuid),
            vpc_sync(v.id),
        ))
    }

    async fn run(job: &JobCtx, payload: IdJob) -> Result<Value, Error> {
        let db = &job.app.db;
        let g = vpn::gateway_by_id(db, payload.id)
            .await?
            .filter(|g| g.removed.is_none())
            .ok_or_else(|| Error::invalid("The VPN gateway was deleted meanwhile"))?;
        let lookups = Lookups::for_gateways(db, std::slice::from_ref(&g)).await?;
        Ok(json!({ "vpngateway": lookups.gateway(&g) }))
    }
}

const ID: Arg<Id> = Arg::req("id", "id of the vpn gateway");

/// `deleteVpnGateway`.
pub struct DeleteVpnGateway {
    id: Uuid,
}

impl Command for DeleteVpnGateway {
    const NAME: &'static str = "deleteVpnGateway";

    fn spec() -> Spec {
        Spec::new("Delete site to site vpn gateway")
            .roles(ALL)
            .param(ID)
            .returns("vpngateway", vec![])
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DeleteVpnGateway {
            id: args.need(&ID)?,
        })
    }
}

/// CloudStack's `doDeleteVpnGateway` check.
async fn check_unused(db: &crate::store::Db, g: &vpn::VpnGateway) -> Result<(), Error> {
    if !vpn::connections_of_gateway(db, g.id).await?.is_empty() {
        return Err(Error::invalid(format!(
            "Unable to delete VPN gateway {} because there is still related VPN connections!",
            g.uuid
        )));
    }
    Ok(())
}

impl AsyncCommand for DeleteVpnGateway {
    /// A gateway removed already is done.
    const RERUN: bool = true;
    type Job = IdJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<IdJob>, Error> {
        let g = vpn_gateway_param(ctx, ID.name(), self.id).await?;
        check_unused(&ctx.app.db, &g).await?;
        Ok(Submission::new(
            IdJob { id: g.id },
            ("VpnGateway", g.uuid),
            vpc_sync(g.vpc_id),
        ))
    }

    async fn run(job: &JobCtx, payload: IdJob) -> Result<Value, Error> {
        let db = &job.app.db;
        let Some(g) = vpn::gateway_by_id(db, payload.id)
            .await?
            .filter(|g| g.removed.is_none())
        else {
            return Ok(json!({ "success": true }));
        };
        let _lock = job.app.network.lock(db, g.vpc_id).await?;
        // Checked again: a connection may have come meanwhile.
        check_unused(db, &g).await?;
        vpn::remove_gateway(db, g.id).await?;
        Ok(json!({ "success": true }))
    }
}

const LIST_ID: Arg<Id> = Arg::opt("id", "id of the vpn gateway");
const LIST_VPC: Arg<Id> = Arg::opt("vpcid", "id of vpc");

/// `listVpnGateways`.
pub struct ListVpnGateways {
    id: Option<Uuid>,
    vpc: Option<Uuid>,
    list: ListArgs,
}

impl Command for ListVpnGateways {
    const NAME: &'static str = "listVpnGateways";

    fn spec() -> Spec {
        Spec::new("Lists site 2 site vpn gateways")
            .roles(ALL)
            .param(LIST_ID)
            .param(LIST_VPC)
            .params(ListArgs::specs())
            .returns("vpngateway", gateway_fields())
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListVpnGateways {
            id: args.get(&LIST_ID)?,
            vpc: args.get(&LIST_VPC)?,
            list: ListArgs::parse(args)?,
        })
    }
}

impl SyncCommand for ListVpnGateways {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let scope = self.list.scope(ctx, self.id.is_some()).await?;
        let page = self.list.page(ctx).await?;
        let vpc_id = match self.vpc {
            Some(u) => match crate::store::vpc::get_by_uuid(db, u).await? {
                Some(v) => Some(v.id),
                None => {
                    return Ok(Reply::List {
                        count: 0,
                        items: Vec::new(),
                    });
                }
            },
            None => None,
        };
        let rows: Vec<_> = vpn::gateways(db)
            .await?
            .into_iter()
            .filter(|g| {
                scope.shows(g.account_id, g.domain_id, &g.domain_path)
                    && self.id.is_none_or(|i| i == g.uuid)
                    && vpc_id.is_none_or(|v| v == g.vpc_id)
            })
            .collect();
        let count = rows.len() as u64;
        let rows = page_of(rows, page);
        let lookups = Lookups::for_gateways(db, &rows).await?;
        let items = rows.iter().map(|g| lookups.gateway(g)).collect();
        Ok(Reply::List { count, items })
    }
}
