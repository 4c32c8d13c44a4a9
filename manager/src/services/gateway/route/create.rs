//! `createStaticRoute` (async-create): the target and the CIDR are checked
//! and the route stored Staged during the request; the job makes it Add,
//! pushes the VPC's route set and makes it Active, or removes it when the
//! router refuses.

use ipnet::Ipv4Net;
use serde_json::{Value, json};
use uuid::Uuid;

use super::super::{check_vpc_access, vpc_by_id, vpc_param};
use super::{
    ROUTE_FIELDS, RouteMove, RouteUndo, gateway_state, job_route, other_routes, reachable_subnets,
    route_view,
};
use crate::error::Error;
use crate::provision;
use crate::rules::route::{self as rule, Target};
use crate::server::command::{Arg, Args, AsyncCommand, Command, Id, IdJob, Spec, Submission, Text};
use crate::server::jobs::{JobCtx, vpc_sync};
use crate::server::registry::{ALL, fields};
use crate::server::{App, Ctx};
use crate::services::related::Related;
use crate::store::{gateway, vpc};

const CIDR: Arg<Text> = Arg::req("cidr", "the destination CIDR");
const GATEWAY: Arg<Id> = Arg::opt("gatewayid", "the private gateway the route goes through");
const NEXT_HOP: Arg<Text> = Arg::opt(
    "nexthop",
    "instead of gatewayid: the next-hop address (needs vpcid)",
);
const VPC: Arg<Id> = Arg::opt("vpcid", "the VPC (required with nexthop)");

/// `createStaticRoute`.
pub struct CreateStaticRoute {
    cidr: String,
    gateway: Option<Uuid>,
    next_hop: Option<String>,
    vpc: Option<Uuid>,
}

impl Command for CreateStaticRoute {
    const NAME: &'static str = "createStaticRoute";

    fn spec() -> Spec {
        Spec::new("Creates a static route of a VPC through a private gateway or to a next hop")
            .roles(ALL)
            .param(CIDR)
            .param(GATEWAY)
            .param(NEXT_HOP)
            .param(VPC)
            .returns("staticroute", fields(ROUTE_FIELDS))
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(CreateStaticRoute {
            cidr: args.need(&CIDR)?,
            gateway: args.get(&GATEWAY)?,
            // Given but empty is given: the rules say what is wrong with it.
            next_hop: args.get(&NEXT_HOP)?,
            vpc: args.get(&VPC)?,
        })
    }
}

impl AsyncCommand for CreateStaticRoute {
    const CREATES: bool = true;
    /// The route's row comes from `submit`; an Active one is not moved
    /// again.
    const RERUN: bool = true;
    type Job = IdJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<IdJob>, Error> {
        let db = &ctx.app.db;
        let gateway_id = self.gateway.map(|u| u.to_string());
        let vpc_id = self.vpc.map(|u| u.to_string());
        let target = rule::route_target(
            gateway_id.as_deref(),
            self.next_hop.as_deref(),
            vpc_id.is_some(),
        )?;
        let (v, via, hop) = match target {
            Target::Gateway(_) => {
                // route_target saw gatewayid: it is `self.gateway`.
                let id = self
                    .gateway
                    .ok_or_else(|| Error::internal("a gateway target without gatewayid"))?;
                let g = gateway::get_by_uuid(db, id)
                    .await?
                    .filter(|g| g.removed.is_none())
                    .ok_or_else(|| Error::invalid_id(GATEWAY.name(), id))?;
                let v = vpc_by_id(db, g.vpc_id).await?;
                check_vpc_access(ctx, &v)?;
                if let Some(asked) = self.vpc
                    && asked != v.uuid
                {
                    return Err(Error::invalid(format!(
                        "Private gateway {id} does not belong to VPC {asked}"
                    )));
                }
                rule::check_gateway_ready(g.uuid, gateway_state(g.state))?;
                (v, Some(g.id), None)
            }
            Target::NextHop(ip) => {
                // route_target refuses a next hop without vpcid.
                let asked = self
                    .vpc
                    .ok_or_else(|| Error::internal("a next hop without vpcid"))?;
                let v = vpc_param(ctx, VPC.name(), asked).await?;
                let vpc_cidr = vpc_cidr(&v)?;
                rule::check_next_hop(ip, &vpc_cidr, &reachable_subnets(db, v.id).await?)?;
                (v, None, Some(ip.to_string()))
            }
        };
        if v.state != vpc::STATE_ENABLED {
            return Err(Error::invalid(format!(
                "Can't add static route to VPC {} that is being deleted",
                v.uuid
            )));
        }
        let vpc_cidr = vpc_cidr(&v)?;
        let config = provision::rules_config(db).await?;
        // The overlap check and the insert under the VPC's lock: two routes
        // checked at once cannot both pass.
        let _lock = ctx.app.network.lock(db, v.id).await?;
        let net = rule::validate_route_cidr(
            &self.cidr,
            &vpc_cidr,
            &config.denied_routes,
            &other_routes(db, v.id).await?,
        )?;
        let r = gateway::create_route(
            db,
            gateway::NewStaticRoute {
                vpc_id: v.id,
                vpc_gateway_id: via,
                cidr: net.to_string(),
                next_hop: hop,
                account_id: v.account_id,
                domain_id: v.domain_id,
            },
        )
        .await?;
        Ok(Submission::created(
            IdJob { id: r.id },
            ("StaticRoute", r.uuid),
            vpc_sync(v.id),
        ))
    }

    async fn run(job: &JobCtx, payload: IdJob) -> Result<Value, Error> {
        let db = &job.app.db;
        let r = job_route(db, payload.id).await?;
        let lock = job.app.network.lock(db, r.vpc_id).await?;
        // An Active route is one an earlier run of this job moved: the
        // router took it then, and the monitor keeps it there.
        if job_route(db, payload.id).await?.state != gateway::ROUTE_ACTIVE {
            // A new route: Add, then the VPC's route set; removed when the
            // router refuses.
            lock.apply(&RouteMove {
                row_id: r.id,
                to: gateway::ROUTE_ADD,
                what: "a new static route",
                undo: RouteUndo::Remove,
            })
            .await?;
            gateway::set_route_state(db, r.id, gateway::ROUTE_ACTIVE).await?;
        }
        let r = job_route(db, payload.id).await?;
        let related = Related::for_routes(db, std::slice::from_ref(&r)).await?;
        Ok(json!({ "staticroute": route_view(&related, &r)? }))
    }

    /// A route still Staged never reached the router: it goes, as after a
    /// refused push. A route the job made Add may be on the router; it is
    /// left to the background loops, which send the router the stored state.
    async fn abandon(app: &App, payload: IdJob) -> Result<(), Error> {
        let db = &app.db;
        let Some(r) = gateway::route_by_id(db, payload.id)
            .await?
            .filter(|r| r.removed.is_none())
        else {
            return Ok(());
        };
        let _lock = app.network.lock(db, r.vpc_id).await?;
        if gateway::route_by_id(db, r.id)
            .await?
            .is_some_and(|r| r.removed.is_none() && r.state == gateway::ROUTE_STAGED)
        {
            gateway::remove_route(db, r.id).await?;
        }
        Ok(())
    }
}

/// The stored CIDR of a VPC.
fn vpc_cidr(v: &vpc::Vpc) -> Result<Ipv4Net, Error> {
    Ok(v.cidr)
}
