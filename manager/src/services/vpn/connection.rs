//! VPN connections: `createVpnConnection` (async-create: checked and stored
//! Pending during the request, started by its job), `resetVpnConnection`,
//! `deleteVpnConnection` (async) and `listVpnConnections`.
//!
//! Every change sends the VPC's whole VPN configuration to its router
//! through the change protocol; the connection's state then follows
//! CloudStack's `startVpnConnection`: Connected (Disconnected when passive)
//! once the router took it, Error with the router's reason when it refused.
//! The list shows the live state the router reports where it can
//! ([`super::live`]).

use serde_json::{Value, json};
use uuid::Uuid;

use super::views::{Lookups, connection_fields};
use super::{connection_limit, connection_param, customer_gateway_param, vpn_gateway_param};
use crate::error::Error;
use crate::rules::vpn as rule;
use crate::server::command::{
    Arg, Args, AsyncCommand, Command, Flag, Id, IdJob, Spec, Submission, SyncCommand,
};
use crate::server::jobs::{JobCtx, vpc_sync};
use crate::server::registry::ALL;
use crate::server::{App, Ctx, Reply, page_of};
use crate::services::owner::ListArgs;
use crate::store::vpn::ConnectionState;
use crate::store::{Db, StoreError, vpc, vpn};

/// Sends the VPC's VPN connections to its router (rows already stored),
/// then records the state of connections `ids` as CloudStack's
/// `startVpnConnection` does. A refused push leaves them in Error with the
/// router's text, and the job fails with it.
pub(super) async fn start_connections(app: &App, vpc_id: i64, ids: &[i64]) -> Result<(), Error> {
    let db = &app.db;
    let lock = app.network.lock(db, vpc_id).await?;
    let pushed = lock
        .push_stored("the VPC's VPN connections", |e, s, g| {
            Box::pin(e.set_vpn(s, g))
        })
        .await;
    for &id in ids {
        let Some(c) = vpn::connection_by_id(db, id).await? else {
            continue;
        };
        let (state, why) = match &pushed {
            Ok(()) if c.passive => (ConnectionState::Disconnected, String::new()),
            Ok(()) => (ConnectionState::Connected, String::new()),
            Err(e) => (ConnectionState::Error, e.text()),
        };
        vpn::set_connection_state(db, id, state, &why).await?;
    }
    pushed
}

/// The live connection of a job, by row id.
async fn job_connection(db: &Db, id: i64) -> Result<vpn::Connection, Error> {
    vpn::connection_by_id(db, id)
        .await?
        .filter(|c| c.removed.is_none())
        .ok_or_else(|| Error::invalid("The VPN connection was deleted meanwhile"))
}

/// The VPC of a connection's VPN gateway.
pub(super) async fn vpc_of(db: &Db, c: &vpn::Connection) -> Result<i64, Error> {
    vpn::gateway_by_id(db, c.vpn_gateway_id)
        .await?
        .map(|g| g.vpc_id)
        .ok_or_else(|| Error::internal("a VPN connection's gateway is gone"))
}

/// The job on the connection `id` (the `id` parameter) a reset or delete
/// runs, with the other jobs of its VPC.
async fn submission(ctx: &Ctx, id: Uuid) -> Result<Submission<IdJob>, Error> {
    let c = connection_param(ctx, ID.name(), id).await?;
    let vpc_id = vpc_of(&ctx.app.db, &c).await?;
    Ok(Submission::new(
        IdJob { id: c.id },
        ("VpnConnection", c.uuid),
        vpc_sync(vpc_id),
    ))
}

/// `{"vpnconnection": …}` of a job's result.
async fn result_of(job: &JobCtx, id: i64) -> Result<Value, Error> {
    let db = &job.app.db;
    let c = job_connection(db, id).await?;
    let lookups = Lookups::for_connections(db, std::slice::from_ref(&c)).await?;
    let show_psk = job.caller.account_id == c.account_id;
    Ok(json!({ "vpnconnection": lookups.connection(&c, show_psk) }))
}

const VPN_GATEWAY: Arg<Id> = Arg::req("s2svpngatewayid", "id of the vpn gateway");
const CUSTOMER_GATEWAY: Arg<Id> = Arg::req("s2scustomergatewayid", "id of the customer gateway");
const PASSIVE: Arg<Flag> = Arg::opt("passive", "connection is passive or not");

/// `createVpnConnection`.
pub struct CreateVpnConnection {
    vpn_gateway: Uuid,
    customer_gateway: Uuid,
    passive: bool,
}

impl Command for CreateVpnConnection {
    const NAME: &'static str = "createVpnConnection";

    fn spec() -> Spec {
        Spec::new("Create site to site vpn connection")
            .roles(ALL)
            .param(VPN_GATEWAY)
            .param(CUSTOMER_GATEWAY)
            .param(PASSIVE)
            .returns("vpnconnection", connection_fields())
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(CreateVpnConnection {
            vpn_gateway: args.need(&VPN_GATEWAY)?,
            customer_gateway: args.need(&CUSTOMER_GATEWAY)?,
            passive: args.get(&PASSIVE)?.unwrap_or(false),
        })
    }
}

impl AsyncCommand for CreateVpnConnection {
    /// The connection's row comes from `submit`; the router gets the VPC's
    /// stored connections again.
    const RERUN: bool = true;
    const CREATES: bool = true;
    type Job = IdJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<IdJob>, Error> {
        let db = &ctx.app.db;
        // CloudStack's order: the customer gateway, then the VPN gateway.
        let cg =
            customer_gateway_param(ctx, CUSTOMER_GATEWAY.name(), self.customer_gateway).await?;
        let g = vpn_gateway_param(ctx, VPN_GATEWAY.name(), self.vpn_gateway).await?;
        if cg.account_id != g.account_id || cg.domain_id != g.domain_id {
            return Err(Error::invalid(
                "VPN connection can only be esitablished between same account's VPN gateway and customer gateway!",
            ));
        }
        let v = vpc::get_by_id(db, g.vpc_id)
            .await?
            .filter(|v| v.removed.is_none())
            .ok_or_else(|| Error::invalid_id(VPN_GATEWAY.name(), g.uuid))?;
        let _lock = ctx.app.network.lock(db, v.id).await?;
        let existing = vpn::connections_of_gateway(db, g.id).await?;
        let duplicate = || {
            Error::invalid(format!(
                "The vpn connection with customer gateway id {} and vpn gateway id {} already existed!",
                cg.uuid, g.uuid
            ))
        };
        if existing.iter().any(|c| c.customer_gateway_id == cg.id) {
            return Err(duplicate());
        }
        let cidrs = rule::parse_cidr_list(&cg.guest_cidr_list)
            .ok_or_else(|| Error::internal("a stored customer gateway has a bad CIDR list"))?;
        let mut others = Vec::new();
        for c in &existing {
            if let Some(other) = vpn::customer_gateway_by_id(db, c.customer_gateway_id).await? {
                others.push(other);
            }
        }
        let others: Vec<rule::OtherConnection> = others
            .iter()
            .map(|o| rule::OtherConnection {
                customer_gateway_name: &o.name,
                cidrs: rule::parse_cidr_list(&o.guest_cidr_list).unwrap_or_default(),
            })
            .collect();
        rule::check_new_connection(
            &cg.uuid.to_string(),
            &cidrs,
            &v.cidr,
            &others,
            connection_limit(db).await?,
        )?;
        let id =
            match vpn::create_connection(db, g.id, cg.id, self.passive, g.account_id, g.domain_id)
                .await
            {
                Err(StoreError::Duplicate(_)) => return Err(duplicate()),
                other => other?,
            };
        let c = job_connection(db, id).await?;
        Ok(Submission::created(
            IdJob { id },
            ("VpnConnection", c.uuid),
            vpc_sync(v.id),
        ))
    }

    async fn run(job: &JobCtx, payload: IdJob) -> Result<Value, Error> {
        let db = &job.app.db;
        let c = job_connection(db, payload.id).await?;
        start_connections(&job.app, vpc_of(db, &c).await?, &[c.id]).await?;
        result_of(job, c.id).await
    }
}

const ID: Arg<Id> = Arg::req("id", "id of vpn connection");

/// `resetVpnConnection`: the router tears the tunnel down and starts it
/// again (a new `resets` count in its desired state).
pub struct ResetVpnConnection {
    id: Uuid,
}

impl Command for ResetVpnConnection {
    const NAME: &'static str = "resetVpnConnection";

    fn spec() -> Spec {
        Spec::new("Reset site to site vpn connection")
            .roles(ALL)
            .param(ID)
            .returns("vpnconnection", connection_fields())
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ResetVpnConnection {
            id: args.need(&ID)?,
        })
    }
}

impl AsyncCommand for ResetVpnConnection {
    /// The router gets the VPC's stored connections again.
    const RERUN: bool = true;
    type Job = IdJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<IdJob>, Error> {
        submission(ctx, self.id).await
    }

    async fn run(job: &JobCtx, payload: IdJob) -> Result<Value, Error> {
        let db = &job.app.db;
        let c = job_connection(db, payload.id).await?;
        // CloudStack stops it (Disconnected), then starts it again.
        vpn::set_connection_state(db, c.id, ConnectionState::Disconnected, "").await?;
        vpn::count_reset(db, c.id).await?;
        start_connections(&job.app, vpc_of(db, &c).await?, &[c.id]).await?;
        result_of(job, c.id).await
    }
}

/// `deleteVpnConnection`: the router drops the tunnel (and, with the VPC's
/// last connection, closes the IKE ports), then the row goes.
pub struct DeleteVpnConnection {
    id: Uuid,
}

impl Command for DeleteVpnConnection {
    const NAME: &'static str = "deleteVpnConnection";

    fn spec() -> Spec {
        Spec::new("Delete site to site vpn connection")
            .roles(ALL)
            .param(ID)
            .returns("vpnconnection", vec![])
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DeleteVpnConnection {
            id: args.need(&ID)?,
        })
    }
}

impl AsyncCommand for DeleteVpnConnection {
    /// A connection removed already is done.
    const RERUN: bool = true;
    type Job = IdJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<IdJob>, Error> {
        submission(ctx, self.id).await
    }

    async fn run(job: &JobCtx, payload: IdJob) -> Result<Value, Error> {
        let app = &job.app;
        let db = &app.db;
        let Some(c) = vpn::connection_by_id(db, payload.id)
            .await?
            .filter(|c| c.removed.is_none())
        else {
            return Ok(json!({ "success": true }));
        };
        let lock = app.network.lock(db, vpc_of(db, &c).await?).await?;
        lock.apply(&ConnectionLeaves { id: c.id }).await?;
        Ok(json!({ "success": true }))
    }
}

/// A connection leaving the router: its row is removed with the new
/// generation and the router gets the VPC's remaining connections; the row
/// comes back when the router refuses.
struct ConnectionLeaves {
    id: i64,
}

impl crate::provision::change::RouterChange for ConnectionLeaves {
    type Written = ();

    fn what(&self) -> &'static str {
        "a VPN connection being deleted"
    }

    async fn write(&self, tx: &mut crate::store::Tx) -> Result<(), Error> {
        vpn::remove_connection(tx, self.id).await?;
        Ok(())
    }

    fn reaches_router(&self, _: &()) -> bool {
        true
    }

    async fn push(
        &self,
        element: &crate::provision::RouterElement,
        state: &crate::orchestration::model::RouterState,
        generation: u64,
    ) -> crate::orchestration::ElementResult {
        element.set_vpn(state, generation).await
    }

    async fn undo(&self, db: &Db, _: &()) -> Result<(), Error> {
        vpn::restore_connection(db, self.id).await?;
        Ok(())
    }
}

const LIST_ID: Arg<Id> = Arg::opt("id", "id of the vpn connection");
const LIST_VPC: Arg<Id> = Arg::opt("vpcid", "id of vpc");

/// `listVpnConnections`.
pub struct ListVpnConnections {
    id: Option<Uuid>,
    vpc: Option<Uuid>,
    list: ListArgs,
}

impl Command for ListVpnConnections {
    const NAME: &'static str = "listVpnConnections";

    fn spec() -> Spec {
        Spec::new("Lists site to site vpn connection gateways")
            .roles(ALL)
            .param(LIST_ID)
            .param(LIST_VPC)
            .params(ListArgs::specs())
            .returns("vpnconnection", connection_fields())
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListVpnConnections {
            id: args.get(&LIST_ID)?,
            vpc: args.get(&LIST_VPC)?,
            list: ListArgs::parse(args)?,
        })
    }
}

impl SyncCommand for ListVpnConnections {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let scope = self.list.scope(ctx, self.id.is_some()).await?;
        let page = self.list.page(ctx).await?;
        let gateway_of_vpc = match self.vpc {
            Some(u) => match vpc::get_by_uuid(db, u).await? {
                Some(v) => vpn::gateway_of_vpc(db, v.id).await?.map(|g| g.id),
                None => None,
            },
            None => None,
        };
        if self.vpc.is_some() && gateway_of_vpc.is_none() {
            return Ok(Reply::List {
                count: 0,
                items: Vec::new(),
            });
        }
        let rows: Vec<_> = vpn::connections(db)
            .await?
            .into_iter()
            .filter(|c| {
                scope.shows(c.account_id, c.domain_id, &c.domain_path)
                    && self.id.is_none_or(|i| i == c.uuid)
                    && gateway_of_vpc.is_none_or(|g| g == c.vpn_gateway_id)
            })
            .collect();
        let count = rows.len() as u64;
        let mut rows = page_of(rows, page);
        super::live::live_states(&ctx.app, &mut rows).await?;
        let lookups = Lookups::for_connections(db, &rows).await?;
        let items = rows
            .iter()
            .map(|c| lookups.connection(c, ctx.caller.account_id == c.account_id))
            .collect();
        Ok(Reply::List { count, items })
    }
}
