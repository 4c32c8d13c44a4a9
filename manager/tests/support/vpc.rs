//! Fixtures for VPC tests: a zone ready for VPCs, user accounts, VPCs.

use serde_json::Value;

use super::api::{Client, id, job_ok};

/// A zone with a VLAN physical network (guest VLANs 100-199), a public range
/// 203.0.113.10-203.0.113.60 (gateway 203.0.113.1/24) and the ids of the
/// default VPC offering and the default VPC tier offering.
#[derive(Debug, Clone)]
pub struct Env {
    pub zone: String,
    pub physnet: String,
    pub vpc_offering: String,
    pub tier_offering: String,
    /// A tier offering with a public load balancer (`Lb` service).
    pub tier_offering_lb: String,
}

/// Sets up [`Env`] in a new zone named `name`.
pub async fn zone_env(admin: &Client, name: &str) -> Env {
    zone_env_range(admin, name, "203.0.113.1", "203.0.113.10", "203.0.113.60").await
}

/// A zone `name` (Advanced) whose physical network isolates guests by
/// `isolation` (`VLAN`, `VXLAN`) over `vnets`, carrying Guest and Public
/// traffic, with the public range `start`-`end` (gateway `gateway`, /24);
/// returns (zone, physical network).
pub async fn zone_isolated(
    admin: &Client,
    name: &str,
    isolation: &str,
    vnets: &str,
    gateway: &str,
    start: &str,
    end: &str,
) -> (String, String) {
    let zone = id(
        &admin
            .ok(
                "createZone",
                &[
                    ("name", name),
                    ("networktype", "Advanced"),
                    ("dns1", "198.51.100.1"),
                    ("internaldns1", "198.51.100.2"),
                ],
            )
            .await,
        "zone",
    );
    let accepted = admin
        .ok(
            "createPhysicalNetwork",
            &[
                ("zoneid", &zone),
                ("name", &format!("{name}-pn")),
                ("vlan", vnets),
                ("isolationmethods", isolation),
            ],
        )
        .await;
    let physnet = accepted["id"].as_str().unwrap().to_string();
    admin.wait_job(accepted["jobid"].as_str().unwrap()).await;
    for traffic in ["Guest", "Public"] {
        job_ok(
            admin,
            "addTrafficType",
            &[("physicalnetworkid", &physnet), ("traffictype", traffic)],
        )
        .await;
    }
    admin
        .ok(
            "createVlanIpRange",
            &[
                ("zoneid", &zone),
                ("gateway", gateway),
                ("netmask", "255.255.255.0"),
                ("startip", start),
                ("endip", end),
                ("forvirtualnetwork", "true"),
            ],
        )
        .await;
    (zone, physnet)
}

/// [`zone_env`] with the public range `start`-`end` (gateway `gateway`, /24).
pub async fn zone_env_range(
    admin: &Client,
    name: &str,
    gateway: &str,
    start: &str,
    end: &str,
) -> Env {
    let (zone, physnet) = zone_isolated(admin, name, "VLAN", "100-199", gateway, start, end).await;
    let vpc_offering = admin.ok("listVPCOfferings", &[("isdefault", "true")]).await["vpcoffering"]
        [0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let offerings = admin
        .ok("listNetworkOfferings", &[("forvpc", "true")])
        .await;
    let offerings = offerings["networkoffering"].as_array().unwrap();
    let has_lb = |o: &Value| {
        o["service"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "Lb")
    };
    let tier_offering = offerings
        .iter()
        .find(|o| !has_lb(o))
        .or_else(|| offerings.first())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let tier_offering_lb = offerings
        .iter()
        .find(|o| has_lb(o))
        .unwrap_or(&offerings[0])["id"]
        .as_str()
        .unwrap()
        .to_string();
    Env {
        zone,
        physnet,
        vpc_offering,
        tier_offering,
        tier_offering_lb,
    }
}

/// A user account (type 0) named `name` in a new domain `name`, with API keys.
pub async fn user(admin: &Client, name: &str) -> Client {
    let d = id(&admin.ok("createDomain", &[("name", name)]).await, "domain");
    account_in(admin, name, &d, "0").await
}

/// An account of `accounttype` (0 user, 2 domain admin) in domain `domain_id`.
pub async fn account_in(admin: &Client, name: &str, domain_id: &str, accounttype: &str) -> Client {
    new_account(admin, name, domain_id, accounttype).await.2
}

/// Creates an account as `admin` and registers keys for its first user: the
/// createAccount response, the user's id and a client signing with its keys.
pub async fn new_account(
    admin: &Client,
    name: &str,
    domain_id: &str,
    accounttype: &str,
) -> (Value, String, Client) {
    let a = admin
        .ok(
            "createAccount",
            &[
                ("username", name),
                ("password", "pw"),
                ("email", "x@example.org"),
                ("firstname", "F"),
                ("lastname", "L"),
                ("domainid", domain_id),
                ("accounttype", accounttype),
            ],
        )
        .await;
    let user_id = a["account"]["user"][0]["id"].as_str().unwrap().to_string();
    let keys = admin.ok("registerUserKeys", &[("id", &user_id)]).await;
    let client = Client {
        addr: admin.addr,
        key: keys["userkeys"]["apikey"].as_str().unwrap().into(),
        secret: keys["userkeys"]["secretkey"].as_str().unwrap().into(),
    };
    (a, user_id, client)
}

/// Creates a VPC through createVPC and waits for its job; returns the VPC
/// object of the job result.
pub async fn create_vpc(client: &Client, env: &Env, name: &str, cidr: &str) -> Value {
    let done = job_ok(
        client,
        "createVPC",
        &[
            ("name", name),
            ("displaytext", name),
            ("cidr", cidr),
            ("zoneid", &env.zone),
            ("vpcofferingid", &env.vpc_offering),
        ],
    )
    .await;
    done["vpc"].clone()
}

/// Creates a tier of `vpc` (createNetwork with vpcid, synchronous); returns
/// the network object.
pub async fn create_tier(
    client: &Client,
    env: &Env,
    vpc: &str,
    name: &str,
    gateway: &str,
    netmask: &str,
) -> Value {
    client
        .ok(
            "createNetwork",
            &[
                ("name", name),
                ("displaytext", name),
                ("zoneid", &env.zone),
                ("vpcid", vpc),
                ("networkofferingid", &env.tier_offering),
                ("gateway", gateway),
                ("netmask", netmask),
            ],
        )
        .await["network"]
        .clone()
}

/// The seeded service offering ("Small Instance") test VMs run with.
pub const SMALL: &str = "4c3e1a52-0001-4b8e-8d1f-5e0a00000001";
/// The seeded featured template test VMs run from.
pub const TEMPLATE: &str = "4c3e1a52-0101-4b8e-8d1f-5e0a00000101";

/// The parameters of deployVirtualMachine for a VM named `name` in
/// `networks` (comma-separated tiers), with [`SMALL`] and [`TEMPLATE`].
pub fn vm_params<'a>(env: &'a Env, networks: &'a str, name: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("zoneid", env.zone.as_str()),
        ("serviceofferingid", SMALL),
        ("templateid", TEMPLATE),
        ("networkids", networks),
        ("name", name),
    ]
}

/// Deploys a VM named `name` in `networks` (comma-separated tiers) and waits
/// for its job; returns the VM of the job result.
pub async fn deploy_vm(client: &Client, env: &Env, networks: &str, name: &str) -> Value {
    job_ok(
        client,
        "deployVirtualMachine",
        &vm_params(env, networks, name),
    )
    .await["virtualmachine"]
        .clone()
}

/// [`deploy_vm`], returning the VM's id and its address in the first tier.
pub async fn deploy_vm_addr(
    client: &Client,
    env: &Env,
    networks: &str,
    name: &str,
) -> (String, String) {
    let vm = deploy_vm(client, env, networks, name).await;
    (
        vm["id"].as_str().unwrap().to_string(),
        vm["nic"][0]["ipaddress"].as_str().unwrap().to_string(),
    )
}
