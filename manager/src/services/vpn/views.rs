//! The response objects of the VPN commands (CloudStack's
//! `Site2SiteVpnGatewayResponse`, `Site2SiteCustomerGatewayResponse`,
//! `Site2SiteVpnConnectionResponse`), with the rows a page refers to read
//! once per table ([`Lookups`]).

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::error::Error;
use crate::server::date;
use crate::server::registry::{FieldSpec, field};
use crate::store::{Db, account, domain, vlan, vpc, vpn};

/// The owner fields every VPN object shows.
const OWNER_FIELDS: [FieldSpec; 3] = [
    field("account", "string", "the owner"),
    field("domainid", "string", "the domain id of the owner"),
    field("domain", "string", "the domain name of the owner"),
];

/// `vpngateway`'s fields.
pub fn gateway_fields() -> Vec<FieldSpec> {
    let mut f = vec![
        field("id", "string", "the vpn gateway ID"),
        field("publicip", "string", "the public IP address"),
        field("vpcid", "string", "the vpc id of this gateway"),
        field("vpcname", "string", "the vpc name of this gateway"),
    ];
    f.extend(OWNER_FIELDS);
    f
}

/// The customer gateway fields a connection repeats.
fn customer_policy_fields() -> Vec<FieldSpec> {
    vec![
        field(
            "gateway",
            "string",
            "public ip address id of the customer gateway",
        ),
        field(
            "cidrlist",
            "string",
            "guest cidr list of the customer gateway. Multiple entries are separated by a single comma character (,).",
        ),
        field(
            "ipsecpsk",
            "string",
            "IPsec Preshared-Key of the customer gateway (shown to its owner only)",
        ),
        field("ikepolicy", "string", "IKE policy of customer gateway"),
        field("esppolicy", "string", "IPsec policy of customer gateway"),
        field(
            "ikelifetime",
            "long",
            "Lifetime of IKE SA of customer gateway",
        ),
        field(
            "esplifetime",
            "long",
            "Lifetime of ESP SA of customer gateway",
        ),
        field("dpd", "boolean", "if DPD is enabled for customer gateway"),
        field(
            "forceencap",
            "boolean",
            "if Force NAT Encapsulation is enabled for customer gateway",
        ),
        field(
            "ikeversion",
            "string",
            "Which IKE Version to use, one of ike (autoselect), ikev1, or ikev2. Defaults to ike",
        ),
        field(
            "splitconnections",
            "boolean",
            "For IKEv2, whether to split multiple right subnet cidrs into multiple connection statements.",
        ),
    ]
}

/// `vpncustomergateway`'s fields.
pub fn customer_gateway_fields() -> Vec<FieldSpec> {
    let mut f = vec![
        field("id", "string", "the vpn gateway ID"),
        field("name", "string", "name of the customer gateway"),
    ];
    f.extend(customer_policy_fields());
    f.extend(OWNER_FIELDS);
    f
}

/// `vpnconnection`'s fields.
pub fn connection_fields() -> Vec<FieldSpec> {
    let mut f = vec![
        field("id", "string", "the connection ID"),
        field("s2svpngatewayid", "string", "the vpn gateway ID"),
        field("publicip", "string", "the public IP address"),
        field("s2scustomergatewayid", "string", "the customer gateway ID"),
    ];
    f.extend(customer_policy_fields());
    f.extend([
        field(
            "state",
            "string",
            "State of vpn connection: Pending, Connected, Disconnected or Error",
        ),
        field(
            "reason",
            "string",
            "why the state is Error, as the router reported it (this cloud's addition)",
        ),
        field("passive", "boolean", "whether the connection is passive"),
        field(
            "created",
            "date",
            "the date and time the connection was created",
        ),
    ]);
    f.extend(OWNER_FIELDS);
    f
}

/// The rows a page of VPN objects refers to, read once per table.
#[derive(Default)]
pub struct Lookups {
    accounts: HashMap<i64, account::Account>,
    domains: HashMap<i64, domain::Domain>,
    vpcs: HashMap<i64, vpc::Vpc>,
    ips: HashMap<i64, vlan::PublicIp>,
    gateways: HashMap<i64, vpn::VpnGateway>,
    customers: HashMap<i64, vpn::CustomerGateway>,
}

fn ids<T>(rows: &[T], f: impl Fn(&T) -> i64) -> Vec<i64> {
    let mut v: Vec<i64> = rows.iter().map(f).collect();
    v.sort_unstable();
    v.dedup();
    v
}

impl Lookups {
    async fn owners(db: &Db, accounts: &[i64], domains: &[i64]) -> Result<Self, Error> {
        Ok(Lookups {
            accounts: account::by_ids(db, accounts)
                .await?
                .into_iter()
                .map(|a| (a.id, a))
                .collect(),
            domains: domain::by_ids(db, domains)
                .await?
                .into_iter()
                .map(|d| (d.id, d))
                .collect(),
            ..Default::default()
        })
    }

    /// What a page of VPN gateways shows: owners, VPCs, addresses.
    pub async fn for_gateways(db: &Db, rows: &[vpn::VpnGateway]) -> Result<Self, Error> {
        let mut l = Self::owners(
            db,
            &ids(rows, |g| g.account_id),
            &ids(rows, |g| g.domain_id),
        )
        .await?;
        l.add_gateways(db, rows).await?;
        Ok(l)
    }

    async fn add_gateways(&mut self, db: &Db, rows: &[vpn::VpnGateway]) -> Result<(), Error> {
        self.vpcs = vpc::by_ids(db, &ids(rows, |g| g.vpc_id))
            .await?
            .into_iter()
            .map(|v| (v.id, v))
            .collect();
        self.ips = vlan::ips_by_ids(db, &ids(rows, |g| g.addr_id))
            .await?
            .into_iter()
            .map(|i| (i.id, i))
            .collect();
        self.gateways = rows.iter().map(|g| (g.id, g.clone())).collect();
        Ok(())
    }

    /// What a page of customer gateways shows: owners.
    pub async fn for_customer_gateways(
        db: &Db,
        rows: &[vpn::CustomerGateway],
    ) -> Result<Self, Error> {
        Self::owners(
            db,
            &ids(rows, |g| g.account_id),
            &ids(rows, |g| g.domain_id),
        )
        .await
    }

    /// What a page of connections shows: owners, both gateways, the VPN
    /// gateways' addresses.
    pub async fn for_connections(db: &Db, rows: &[vpn::Connection]) -> Result<Self, Error> {
        let mut l = Self::owners(
            db,
            &ids(rows, |c| c.account_id),
            &ids(rows, |c| c.domain_id),
        )
        .await?;
        // A handful of gateways per page: one read each keeps the store small.
        let mut gateways = Vec::new();
        for id in ids(rows, |c| c.vpn_gateway_id) {
            if let Some(g) = vpn::gateway_by_id(db, id).await? {
                gateways.push(g);
            }
        }
        l.add_gateways(db, &gateways).await?;
        for id in ids(rows, |c| c.customer_gateway_id) {
            if let Some(g) = vpn::customer_gateway_by_id(db, id).await? {
                l.customers.insert(g.id, g);
            }
        }
        Ok(l)
    }

    fn owner(&self, view: &mut Value, account_id: i64, domain_id: i64) {
        if let Some(a) = self.accounts.get(&account_id) {
            view["account"] = json!(a.account_name);
        }
        if let Some(d) = self.domains.get(&domain_id) {
            view["domainid"] = json!(d.uuid);
            view["domain"] = json!(d.name);
        }
    }

    /// `vpngateway`.
    pub fn gateway(&self, g: &vpn::VpnGateway) -> Value {
        let mut view = json!({ "id": g.uuid });
        if let Some(ip) = self.ips.get(&g.addr_id) {
            view["publicip"] = json!(ip.public_ip_address);
        }
        if let Some(v) = self.vpcs.get(&g.vpc_id) {
            view["vpcid"] = json!(v.uuid);
            view["vpcname"] = json!(v.name);
        }
        self.owner(&mut view, g.account_id, g.domain_id);
        view
    }

    /// `vpncustomergateway`; `show_psk` when the caller owns the gateway.
    pub fn customer_gateway(&self, g: &vpn::CustomerGateway, show_psk: bool) -> Value {
        let mut view = json!({ "id": g.uuid, "name": g.name });
        policies(&mut view, g, show_psk);
        self.owner(&mut view, g.account_id, g.domain_id);
        view
    }

    /// `vpnconnection`; `show_psk` when the caller owns the connection.
    pub fn connection(&self, c: &vpn::Connection, show_psk: bool) -> Value {
        let mut view = json!({
            "id": c.uuid,
            "state": c.state,
            "passive": c.passive,
            "created": date(c.created),
        });
        if !c.error.is_empty() {
            view["reason"] = json!(c.error);
        }
        if let Some(g) = self.gateways.get(&c.vpn_gateway_id) {
            view["s2svpngatewayid"] = json!(g.uuid);
            if let Some(ip) = self.ips.get(&g.addr_id) {
                view["publicip"] = json!(ip.public_ip_address);
            }
        }
        if let Some(g) = self.customers.get(&c.customer_gateway_id) {
            view["s2scustomergatewayid"] = json!(g.uuid);
            policies(&mut view, g, show_psk);
        }
        self.owner(&mut view, c.account_id, c.domain_id);
        view
    }
}

/// The customer gateway's fields a gateway and a connection both show.
fn policies(view: &mut Value, g: &vpn::CustomerGateway, show_psk: bool) {
    view["gateway"] = json!(g.gateway_ip);
    view["cidrlist"] = json!(g.guest_cidr_list);
    if show_psk {
        view["ipsecpsk"] = json!(g.ipsec_psk);
    }
    view["ikepolicy"] = json!(g.ike_policy);
    view["esppolicy"] = json!(g.esp_policy);
    view["ikelifetime"] = json!(g.ike_lifetime);
    view["esplifetime"] = json!(g.esp_lifetime);
    view["dpd"] = json!(g.dpd);
    view["forceencap"] = json!(g.force_encap);
    view["ikeversion"] = json!(g.ike_version);
    view["splitconnections"] = json!(g.split_connections);
}
