//! Customer gateways: `createVpnCustomerGateway` (async-create: checked and
//! stored during the request), `updateVpnCustomerGateway` (async: the new
//! values, then the connections using it start again), `deleteVpnCustomerGateway`
//! (async, refused while a connection uses it) and `listVpnCustomerGateways`.
//! Create and update share their parameters and checks (one family in one
//! file, hence its 400-odd lines).
//!
//! Kept whole because create and update share the parameters and IKE/ESP checks written here.

use serde_json::{Value, json};
use uuid::Uuid;

use super::connection::start_connections;
use super::views::{Lookups, customer_gateway_fields};
use super::{customer_gateway_param, customer_gateway_sync, subnets_limit};
use crate::error::Error;
use crate::rules::vpn as rule;
use crate::server::command::{
    Arg, Args, AsyncCommand, Command, Flag, Id, IdJob, Long, Spec, Submission, SyncCommand, Text,
};
use crate::server::jobs::JobCtx;
use crate::server::registry::{ALL, ParamSpec};
use crate::server::{Ctx, Reply, page_of};
use crate::services::owner::{ListArgs, OwnerArgs};
use crate::store::vpn::{ConnectionState, CustomerGatewayFields};
use crate::store::{Db, StoreError, vpn};

/// The longest name (CloudStack's column is a `varchar(255)`).
const MAX_NAME_LEN: u32 = 255;

const NAME: Arg<Text> = Arg::opt("name", "name of this customer gateway").length(MAX_NAME_LEN);
const GATEWAY: Arg<Text> = Arg::req("gateway", "public ip address id of the customer gateway");
const CIDR_LIST: Arg<Text> = Arg::req(
    "cidrlist",
    "guest cidr list of the customer gateway. Multiple entries must be separated by a single comma character (,).",
);
const IPSEC_PSK: Arg<Text> = Arg::req(
    "ipsecpsk",
    "IPsec Preshared-Key of the customer gateway. Cannot contain newline or double quotes.",
);
const IKE_POLICY: Arg<Text> = Arg::req("ikepolicy", "IKE policy of the customer gateway");
const ESP_POLICY: Arg<Text> = Arg::req("esppolicy", "ESP policy of the customer gateway");
const IKE_LIFETIME: Arg<Long> = Arg::opt(
    "ikelifetime",
    "Lifetime of phase 1 VPN connection to the customer gateway, in seconds",
);
const ESP_LIFETIME: Arg<Long> = Arg::opt(
    "esplifetime",
    "Lifetime of phase 2 VPN connection to the customer gateway, in seconds",
);
const DPD: Arg<Flag> = Arg::opt("dpd", "If DPD is enabled for VPN connection");
const FORCE_ENCAP: Arg<Flag> = Arg::opt("forceencap", "Force Encapsulation for NAT traversal");
const SPLIT_CONNECTIONS: Arg<Flag> = Arg::opt(
    "splitconnections",
    "For IKEv2, whether to split multiple right subnet cidrs into multiple connection statements.",
)
.since("4.15.1");
const IKE_VERSION: Arg<Text> = Arg::opt(
    "ikeversion",
    "Which IKE Version to use, one of ike (autoselect), ikev1, or ikev2. Connections marked with 'ike' will use 'ikev2' when initiating, but accept any protocol version when responding. Defaults to ike",
)
.since("4.15.1");

/// The parameters create and update share, parsed.
#[derive(Clone)]
struct Values {
    name: Option<String>,
    gateway: String,
    cidr_list: String,
    ipsec_psk: String,
    ike_policy: String,
    esp_policy: String,
    ike_lifetime: Option<i64>,
    esp_lifetime: Option<i64>,
    dpd: Option<bool>,
    force_encap: Option<bool>,
    split_connections: Option<bool>,
    ike_version: Option<String>,
}

impl Values {
    fn specs() -> Vec<ParamSpec> {
        vec![
            NAME.spec(),
            GATEWAY.spec(),
            CIDR_LIST.spec(),
            IPSEC_PSK.spec(),
            IKE_POLICY.spec(),
            ESP_POLICY.spec(),
            IKE_LIFETIME.spec(),
            ESP_LIFETIME.spec(),
            DPD.spec(),
            FORCE_ENCAP.spec(),
        ]
    }

    fn later_specs() -> Vec<ParamSpec> {
        vec![SPLIT_CONNECTIONS.spec(), IKE_VERSION.spec()]
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(Values {
            name: args.text(&NAME)?,
            gateway: args.need(&GATEWAY)?,
            cidr_list: args.need(&CIDR_LIST)?,
            ipsec_psk: args.need(&IPSEC_PSK)?,
            ike_policy: args.need(&IKE_POLICY)?,
            esp_policy: args.need(&ESP_POLICY)?,
            ike_lifetime: args.get(&IKE_LIFETIME)?,
            esp_lifetime: args.get(&ESP_LIFETIME)?,
            dpd: args.get(&DPD)?,
            force_encap: args.get(&FORCE_ENCAP)?,
            split_connections: args.get(&SPLIT_CONNECTIONS)?,
            ike_version: args.text(&IKE_VERSION)?,
        })
    }

    /// Checked as CloudStack checks them, with its defaults applied; the
    /// name is `VPN-<gateway>` when none is given.
    async fn check(&self, db: &Db) -> Result<CustomerGatewayFields, Error> {
        let checked = rule::check_customer_gateway(
            &rule::CustomerGatewayRequest {
                gateway: &self.gateway,
                cidr_list: &self.cidr_list,
                ipsec_psk: &self.ipsec_psk,
                ike_policy: &self.ike_policy,
                esp_policy: &self.esp_policy,
                ike_lifetime: self.ike_lifetime,
                esp_lifetime: self.esp_lifetime,
                ike_version: self.ike_version.as_deref(),
            },
            subnets_limit(db).await?,
        )?;
        Ok(CustomerGatewayFields {
            name: self
                .name
                .clone()
                .unwrap_or_else(|| format!("VPN-{}", self.gateway)),
            gateway_ip: self.gateway.clone(),
            guest_cidr_list: self.cidr_list.clone(),
            ipsec_psk: self.ipsec_psk.clone(),
            ike_policy: self.ike_policy.clone(),
            esp_policy: self.esp_policy.clone(),
            ike_lifetime: checked.ike_lifetime,
            esp_lifetime: checked.esp_lifetime,
            dpd: self.dpd.unwrap_or(false),
            force_encap: self.force_encap.unwrap_or(false),
            split_connections: self.split_connections.unwrap_or(false),
            ike_version: checked.ike_version,
        })
    }
}

fn name_taken(name: &str) -> Error {
    Error::invalid(format!(
        "The customer gateway with name {name} already existed!"
    ))
}

/// `{"vpncustomergateway": …}` of a job's result.
async fn result_of(job: &JobCtx, id: i64) -> Result<Value, Error> {
    let db = &job.app.db;
    let g = vpn::customer_gateway_by_id(db, id)
        .await?
        .filter(|g| g.removed.is_none())
        .ok_or_else(|| Error::invalid("The VPN customer gateway was deleted meanwhile"))?;
    let lookups = Lookups::for_customer_gateways(db, std::slice::from_ref(&g)).await?;
    let show_psk = job.caller.account_id == g.account_id;
    Ok(json!({ "vpncustomergateway": lookups.customer_gateway(&g, show_psk) }))
}

/// `createVpnCustomerGateway`.
pub struct CreateVpnCustomerGateway {
    values: Values,
    owner: OwnerArgs,
}

impl Command for CreateVpnCustomerGateway {
    const NAME: &'static str = "createVpnCustomerGateway";

    fn spec() -> Spec {
        Spec::new("Creates site to site vpn customer gateway")
            .roles(ALL)
            .params(Values::specs())
            .params(OwnerArgs::specs())
            .params(Values::later_specs())
            .returns("vpncustomergateway", customer_gateway_fields())
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(CreateVpnCustomerGateway {
            values: Values::parse(args)?,
            owner: OwnerArgs::parse(args)?,
        })
    }
}

impl AsyncCommand for CreateVpnCustomerGateway {
    /// The row comes from `submit`; the job only reads it.
    const RERUN: bool = true;
    const CREATES: bool = true;
    type Job = IdJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<IdJob>, Error> {
        let db = &ctx.app.db;
        let owner = self.owner.resolve(ctx).await?;
        let fields = self.values.check(db).await?;
        if vpn::customer_gateway_by_name(db, owner.account_id, &fields.name)
            .await?
            .is_some()
        {
            return Err(name_taken(&fields.name));
        }
        let id = match vpn::create_customer_gateway(db, &fields, owner.account_id, owner.domain_id)
            .await
        {
            Err(StoreError::Duplicate(_)) => return Err(name_taken(&fields.name)),
            other => other?,
        };
        let g = vpn::customer_gateway_by_id(db, id)
            .await?
            .ok_or_else(|| Error::internal("the new customer gateway is gone"))?;
        Ok(Submission::created(
            IdJob { id },
            ("VpnCustomerGateway", g.uuid),
            customer_gateway_sync(id),
        ))
    }

    async fn run(job: &JobCtx, payload: IdJob) -> Result<Value, Error> {
        result_of(job, payload.id).await
    }
}

const ID: Arg<Id> = Arg::req("id", "id of customer gateway");

/// `updateVpnCustomerGateway`: all values given again (CloudStack's
/// required parameters are the create's). The checked values are stored
/// during the request, so the key never sits in a job row; the job restarts
/// the connections using the gateway.
pub struct UpdateVpnCustomerGateway {
    id: Uuid,
    values: Values,
}

impl Command for UpdateVpnCustomerGateway {
    const NAME: &'static str = "updateVpnCustomerGateway";

    fn spec() -> Spec {
        Spec::new("Update site to site vpn customer gateway")
            .roles(ALL)
            .param(ID)
            .params(Values::specs())
            .params(Values::later_specs())
            .returns("vpncustomergateway", customer_gateway_fields())
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(UpdateVpnCustomerGateway {
            id: args.need(&ID)?,
            values: Values::parse(args)?,
        })
    }
}

impl AsyncCommand for UpdateVpnCustomerGateway {
    /// The rows change in `submit`; the routers get their stored connections
    /// again.
    const RERUN: bool = true;
    type Job = IdJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<IdJob>, Error> {
        let db = &ctx.app.db;
        let g = customer_gateway_param(ctx, ID.name(), self.id).await?;
        let f = self.values.check(db).await?;
        if vpn::customer_gateway_by_name(db, g.account_id, &f.name)
            .await?
            .is_some_and(|other| other.id != g.id)
        {
            return Err(name_taken(&f.name));
        }
        match vpn::update_customer_gateway(db, g.id, &f).await {
            Err(StoreError::Duplicate(_)) => return Err(name_taken(&f.name)),
            other => other?,
        };
        Ok(Submission::new(
            IdJob { id: g.id },
            ("VpnCustomerGateway", g.uuid),
            customer_gateway_sync(g.id),
        ))
    }

    async fn run(job: &JobCtx, p: IdJob) -> Result<Value, Error> {
        let db = &job.app.db;
        // CloudStack restarts the connections that are not Pending and that
        // the caller may act on, VPC by VPC (each VPC's router gets its
        // connections in one push).
        let mut by_vpc: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
        for c in vpn::connections_to_customer(db, p.id).await? {
            if c.state == ConnectionState::Pending
                || !job.caller.covers(c.account_id, &c.domain_path)
            {
                continue;
            }
            if let Some(g) = vpn::gateway_by_id(db, c.vpn_gateway_id).await? {
                vpn::count_reset(db, c.id).await?;
                by_vpc.entry(g.vpc_id).or_default().push(c.id);
            }
        }
        for (vpc_id, ids) in by_vpc {
            start_connections(&job.app, vpc_id, &ids).await?;
        }
        result_of(job, p.id).await
    }
}

/// `deleteVpnCustomerGateway`.
pub struct DeleteVpnCustomerGateway {
    id: Uuid,
}

impl Command for DeleteVpnCustomerGateway {
    const NAME: &'static str = "deleteVpnCustomerGateway";

    fn spec() -> Spec {
        Spec::new("Delete site to site vpn customer gateway")
            .roles(ALL)
            .param(ID)
            .returns("vpncustomergateway", vec![])
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DeleteVpnCustomerGateway {
            id: args.need(&ID)?,
        })
    }
}

/// CloudStack's `doDeleteCustomerGateway` check.
async fn check_unused(db: &Db, g: &vpn::CustomerGateway) -> Result<(), Error> {
    if !vpn::connections_to_customer(db, g.id).await?.is_empty() {
        return Err(Error::invalid(format!(
            "Unable to delete VPN customer gateway with id {} because there is still related VPN connections!",
            g.uuid
        )));
    }
    Ok(())
}

impl AsyncCommand for DeleteVpnCustomerGateway {
    /// A gateway removed already is done.
    const RERUN: bool = true;
    type Job = IdJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<IdJob>, Error> {
        let g = customer_gateway_param(ctx, ID.name(), self.id).await?;
        check_unused(&ctx.app.db, &g).await?;
        Ok(Submission::new(
            IdJob { id: g.id },
            ("VpnCustomerGateway", g.uuid),
            customer_gateway_sync(g.id),
        ))
    }

    async fn run(job: &JobCtx, payload: IdJob) -> Result<Value, Error> {
        let db = &job.app.db;
        let Some(g) = vpn::customer_gateway_by_id(db, payload.id)
            .await?
            .filter(|g| g.removed.is_none())
        else {
            return Ok(json!({ "success": true }));
        };
        check_unused(db, &g).await?;
        vpn::remove_customer_gateway(db, g.id).await?;
        Ok(json!({ "success": true }))
    }
}

const LIST_ID: Arg<Id> = Arg::opt("id", "id of the customer gateway");

/// `listVpnCustomerGateways`: the keyword matches the name.
pub struct ListVpnCustomerGateways {
    id: Option<Uuid>,
    list: ListArgs,
}

impl Command for ListVpnCustomerGateways {
    const NAME: &'static str = "listVpnCustomerGateways";

    fn spec() -> Spec {
        Spec::new("Lists site to site vpn customer gateways")
            .roles(ALL)
            .param(LIST_ID)
            .params(ListArgs::specs())
            .returns("vpncustomergateway", customer_gateway_fields())
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListVpnCustomerGateways {
            id: args.get(&LIST_ID)?,
            list: ListArgs::parse(args)?,
        })
    }
}

impl SyncCommand for ListVpnCustomerGateways {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let scope = self.list.scope(ctx, self.id.is_some()).await?;
        let page = self.list.page(ctx).await?;
        let keyword = self.list.keyword.as_deref();
        let rows: Vec<_> = vpn::customer_gateways(db, scope.account_id)
            .await?
            .into_iter()
            .filter(|g| {
                scope.shows(g.account_id, g.domain_id, &g.domain_path)
                    && self.id.is_none_or(|i| i == g.uuid)
                    && keyword.is_none_or(|w| g.name.contains(w))
            })
            .collect();
        let count = rows.len() as u64;
        let rows = page_of(rows, page);
        let lookups = Lookups::for_customer_gateways(db, &rows).await?;
        let items = rows
            .iter()
            .map(|g| lookups.customer_gateway(g, ctx.caller.account_id == g.account_id))
            .collect();
        Ok(Reply::List { count, items })
    }
}
