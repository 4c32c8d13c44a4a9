//! `updateLoadBalancerRule`: a new name or algorithm, checked during the
//! request; the job stores it and pushes the VPC's load balancer list, or
//! puts the old values back when the router refuses.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::super::{LB_FIELDS, lb_by_uuid, lb_result, push_lb_list, reload, vpc_of_rule};
use super::{DESCRIPTION, FOR_DISPLAY};
use crate::error::Error;
use crate::orchestration::ElementResult;
use crate::orchestration::model::RouterState;
use crate::provision::RouterElement;
use crate::provision::change::RouterChange;
use crate::rules;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Id, Spec, Submission, Text};
use crate::server::jobs::{JobCtx, vpc_sync};
use crate::server::registry::ALL;
use crate::services::args::{CUSTOM_ID, NEW_NAME};
use crate::store::{Db, Tx, rule};

const ID: Arg<Id> = Arg::req("id", "the ID of the rule");
const ALGORITHM: Arg<Text> = Arg::opt("algorithm", "roundrobin, leastconn (tcp only) or source");

/// `updateLoadBalancerRule`.
pub struct UpdateLoadBalancerRule {
    id: Uuid,
    name: Option<String>,
    algorithm: Option<String>,
    description: Option<String>,
}

/// The job of `updateLoadBalancerRule`: the rule, its VPC and the checked
/// new values (absent: unchanged).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpdateLbJob {
    #[serde(rename = "rule")]
    pub rule_id: i64,
    #[serde(rename = "vpc")]
    pub vpc_id: i64,
    pub name: Option<String>,
    pub algorithm: Option<String>,
}

impl Command for UpdateLoadBalancerRule {
    const NAME: &'static str = "updateLoadBalancerRule";

    fn spec() -> Spec {
        Spec::new("Changes the name or algorithm of a load balancer rule")
            .roles(ALL)
            .param(ID)
            .param(NEW_NAME)
            .param(ALGORITHM)
            .param(DESCRIPTION)
            .param(FOR_DISPLAY)
            .param(CUSTOM_ID)
            .returns("loadbalancer", LB_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(UpdateLoadBalancerRule {
            id: args.need(&ID)?,
            name: args.text(&NEW_NAME)?,
            algorithm: args.text(&ALGORITHM)?,
            description: args.get(&DESCRIPTION)?,
        })
    }
}

impl AsyncCommand for UpdateLoadBalancerRule {
    /// It writes the same name and algorithm again and pushes the list with a new
    /// generation. (Run again after a complete run, the values it would put
    /// back on a refused push are the new ones: the job then fails with
    /// the rows and, after the monitor's resync, the router agreeing.)
    const RERUN: bool = true;
    type Job = UpdateLbJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<UpdateLbJob>, Error> {
        let r = lb_by_uuid(ctx, ID.name(), self.id).await?;
        if let Some(name) = &self.name {
            rules::check_name(NEW_NAME.name(), name)?;
        }
        let algorithm = match &self.algorithm {
            Some(a) => {
                let algorithm = rules::lb::Algorithm::parse(a)?;
                algorithm.check_transport(r.protocol.eq_ignore_ascii_case("udp"))?;
                Some(algorithm.as_str().to_string())
            }
            None => None,
        };
        if let Some(d) = &self.description {
            rules::check_length(DESCRIPTION.name(), d, rules::MAX_DISPLAY_TEXT_LEN)?;
        }
        let vpc_id = vpc_of_rule(&ctx.app.db, &r).await?;
        let job = UpdateLbJob {
            rule_id: r.id,
            vpc_id,
            name: self.name,
            algorithm,
        };
        Ok(Submission::new(
            job,
            ("LoadBalancerRule", r.uuid),
            vpc_sync(vpc_id),
        ))
    }

    async fn run(job: &JobCtx, payload: UpdateLbJob) -> Result<Value, Error> {
        let db = &job.app.db;
        let id = payload.rule_id;
        let lock = job.app.network.lock(db, payload.vpc_id).await?;
        let r = reload(db, id).await?;
        let old = rule::load_balancer(db, id)
            .await?
            .ok_or_else(|| Error::internal("a load balancer rule lost its balancer row"))?;
        lock.apply(&LbSettings {
            rule_id: id,
            name: payload.name,
            algorithm: payload.algorithm,
            old_name: old.name,
            old_algorithm: old.algorithm,
            old_state: r.state,
        })
        .await?;
        rule::set_state(db, id, rule::STATE_ACTIVE).await?;
        lb_result(db, id).await
    }
}

/// A rule's name and algorithm (Add while the router takes them); the old
/// values and state again when it refuses.
struct LbSettings {
    rule_id: i64,
    name: Option<String>,
    algorithm: Option<String>,
    old_name: String,
    old_algorithm: String,
    old_state: rule::State,
}

impl RouterChange for LbSettings {
    type Written = ();

    fn what(&self) -> &'static str {
        "a load balancer rule's new settings"
    }

    async fn write(&self, tx: &mut Tx) -> Result<(), Error> {
        rule::update_load_balancer(
            &mut *tx,
            self.rule_id,
            self.name.as_deref(),
            self.algorithm.as_deref(),
        )
        .await?;
        rule::set_state(tx, self.rule_id, rule::STATE_ADD).await?;
        Ok(())
    }

    async fn push(
        &self,
        element: &RouterElement,
        state: &RouterState,
        generation: u64,
    ) -> ElementResult {
        push_lb_list(element, state, generation).await
    }

    async fn undo(&self, db: &Db, _: &()) -> Result<(), Error> {
        let mut tx = db.begin().await?;
        rule::update_load_balancer(
            &mut tx,
            self.rule_id,
            Some(&self.old_name),
            Some(&self.old_algorithm),
        )
        .await?;
        rule::set_state(&mut tx, self.rule_id, self.old_state).await?;
        tx.commit().await?;
        Ok(())
    }
}
