//! What the public IP, NAT, load balancing and firewall commands share:
//! resolving their ids with ownership checks, binding an IP to a tier
//! (reference §3.5) and the VM a rule targets. What the router gets is in
//! [`super::push`]; the life of a rule in [`super::rule_flow`].

use std::net::Ipv4Addr;

pub use super::names::{Names, Wanted};
use crate::api::Params;
use crate::error::Error;
use crate::rules;
use crate::rules::ip::{PortRule, RulePurpose};
use crate::server::Ctx;
use crate::server::command::{Arg, Id};
use crate::services::owner::check_access;
use crate::store::{Db, Exec, Page, domain, network, offering, router, rule, vlan, vm, vpc};
use uuid::Uuid;

pub use crate::server::jobs::vpc_sync;

/// The public IP address a rule or static NAT is on.
pub const IP: Arg<Id> = Arg::req("ipaddressid", "the public IP address");

/// The public IP named by `uuid` (parameter `name`) that somebody holds and
/// the caller may act on: 431 when there is none, 531 when it is another
/// account's.
pub async fn held_ip(ctx: &Ctx, name: &str, uuid: Uuid) -> Result<vlan::PublicIp, Error> {
    let db = &ctx.app.db;
    let ip = vlan::ip_by_uuid(db, uuid)
        .await?
        .filter(|ip| ip.state != vlan::IP_FREE)
        .ok_or_else(|| Error::invalid_id(name, uuid))?;
    check_ip_access(ctx, &ip).await?;
    Ok(ip)
}

/// 531 unless the caller may act on the held IP.
pub async fn check_ip_access(ctx: &Ctx, ip: &vlan::PublicIp) -> Result<(), Error> {
    let (Some(account_id), Some(domain_id)) = (ip.account_id, ip.domain_id) else {
        return Err(Error::invalid_id("ipaddressid", ip.uuid));
    };
    let path = domain_path(&ctx.app.db, domain_id).await?;
    check_access(
        ctx,
        account_id,
        &path,
        &format!("ip address {}", ip.public_ip_address),
    )
}

/// The path of a domain.
pub async fn domain_path(db: &Db, domain_id: i64) -> Result<String, Error> {
    Ok(domain::get_by_id(db, domain_id)
        .await?
        .ok_or_else(|| Error::internal("an owner's domain is gone"))?
        .path)
}

/// A held IP again, by internal id (jobs re-read what the request checked).
pub async fn reload_ip(db: &Db, id: i64) -> Result<vlan::PublicIp, Error> {
    vlan::ip_by_id(db, id)
        .await?
        .filter(|ip| ip.state != vlan::IP_FREE)
        .ok_or_else(|| Error::invalid("The ip address was released meanwhile"))
}

/// The live VPC an IP is acquired for.
pub async fn vpc_of_ip(db: &Db, ip: &vlan::PublicIp) -> Result<vpc::Vpc, Error> {
    let vpc_id = ip.vpc_id.ok_or_else(|| {
        Error::invalid(format!(
            "ip address {} is not acquired for a VPC; acquire one with associateIpAddress vpcid=...",
            ip.public_ip_address
        ))
    })?;
    vpc::get_by_id(db, vpc_id)
        .await?
        .filter(|v| v.removed.is_none())
        .ok_or_else(|| {
            Error::invalid(format!(
                "The VPC of ip address {} is gone",
                ip.public_ip_address
            ))
        })
}

/// Refuses changes to a VPC that is being deleted.
pub fn check_enabled(v: &vpc::Vpc) -> Result<(), Error> {
    let state = if v.state == vpc::STATE_ENABLED {
        rules::vpc::VpcState::Enabled
    } else {
        rules::vpc::VpcState::Inactive
    };
    rules::vpc::check_vpc_enabled(v.uuid, state)
}

/// The IP as the business rules see it.
pub fn rules_ip(ip: &vlan::PublicIp) -> Result<rules::ip::PublicIp<i64>, Error> {
    Ok(rules::ip::PublicIp {
        address: ip.public_ip_address,
        source_nat: ip.source_nat,
        static_nat: ip.one_to_one_nat,
        tier: ip.associated_network_id,
    })
}

/// The rules on an IP that are not being withdrawn (any purpose).
pub async fn live_rules_on_ip<'a>(
    ex: impl Into<Exec<'a>>,
    ip_id: i64,
) -> Result<Vec<rule::Rule>, Error> {
    let filter = rule::RuleFilter {
        ip_address_id: Some(ip_id),
        ..Default::default()
    };
    Ok(rule::list(ex, &filter, Page::ALL)
        .await?
        .items
        .into_iter()
        .filter(|r| r.state != rule::STATE_REVOKE)
        .collect())
}

/// The port rules (PF and LB) on an IP, as the conflict checks see them.
pub async fn port_rules_on_ip(db: &Db, ip_id: i64) -> Result<Vec<PortRule>, Error> {
    let mut out = Vec::new();
    for r in live_rules_on_ip(db, ip_id).await? {
        let purpose = match r.purpose {
            rule::PURPOSE_PORT_FORWARDING => RulePurpose::PortForwarding,
            rule::PURPOSE_LOAD_BALANCING => RulePurpose::LoadBalancing,
            _ => continue,
        };
        let Some(start) = r.start_port else { continue };
        out.push(PortRule {
            purpose,
            protocol: rules::Transport::parse(&r.protocol)?,
            public: rules::PortRange::new("publicport", start, r.end_port, 1)?,
        });
    }
    Ok(out)
}

/// A live tier (guest network of a VPC) by UUID, which the caller may use.
pub async fn tier_by_uuid(ctx: &Ctx, name: &str, uuid: Uuid) -> Result<network::Network, Error> {
    let n = network::get_by_uuid(&ctx.app.db, uuid)
        .await?
        .filter(|n| n.removed.is_none() && n.traffic_type == network::TRAFFIC_GUEST)
        .ok_or_else(|| Error::invalid_id(name, uuid))?;
    check_access(
        ctx,
        n.account_id,
        &n.domain_path,
        &format!("network {}", n.uuid),
    )?;
    Ok(n)
}

/// The tier named by the optional UUID parameter `name`.
pub async fn tier_param(
    ctx: &Ctx,
    params: &Params,
    name: &str,
) -> Result<Option<network::Network>, Error> {
    tier_opt(ctx, name, params.uuid(name)?).await
}

/// The tier named by the optional UUID `id` (parameter `name`).
pub async fn tier_opt(
    ctx: &Ctx,
    name: &str,
    id: Option<uuid::Uuid>,
) -> Result<Option<network::Network>, Error> {
    match id {
        Some(id) => Ok(Some(tier_by_uuid(ctx, name, id).await?)),
        None => Ok(None),
    }
}

/// A live tier by internal id.
pub async fn tier_by_id(db: &Db, id: i64) -> Result<network::Network, Error> {
    network::get_by_id(db, id)
        .await?
        .filter(|n| n.removed.is_none())
        .ok_or_else(|| Error::invalid("The tier of the rule was deleted meanwhile"))
}

/// 431 unless the tier belongs to the VPC.
pub fn check_tier_of_vpc(tier: &network::Network, v: &vpc::Vpc) -> Result<(), Error> {
    if tier.vpc_id == Some(v.id) {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "Network {} is not a tier of VPC {}, the VPC of the ip address",
        tier.uuid, v.uuid
    )))
}

/// A VM named by `uuid` (parameter `name`) that can take a rule: live and not
/// destroyed (431 otherwise), the caller's to use (531).
pub async fn vm_by_uuid(ctx: &Ctx, name: &str, uuid: Uuid) -> Result<vm::Vm, Error> {
    let v = vm::get_by_uuid(&ctx.app.db, uuid)
        .await?
        .filter(|v| v.removed.is_none())
        .ok_or_else(|| Error::invalid_id(name, uuid))?;
    check_access(
        ctx,
        v.account_id,
        &v.domain_path,
        &format!("virtual machine {}", v.uuid),
    )?;
    if [vm::STATE_DESTROYED, vm::STATE_EXPUNGING, vm::STATE_ERROR].contains(&v.state) {
        return Err(Error::invalid(format!(
            "Invalid user vm {}: it is in state {}",
            v.name, v.state
        )));
    }
    Ok(v)
}

/// 431 unless the VM belongs to the account that holds the IP (CloudStack
/// forwards an account's addresses only to its own VMs).
pub fn check_same_owner(v: &vm::Vm, owner_account: i64, what: &str) -> Result<(), Error> {
    if v.account_id == owner_account {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "Virtual machine {} and {what} belong to different accounts",
        v.name
    )))
}

/// What a NAT rule on `ip` points at: the VM `vm_uuid` (parameter
/// `virtualmachineid`; the caller's to use and owned by the address's
/// account) and the tier asked for (`networkid`).
pub async fn nat_target(
    ctx: &Ctx,
    ip: &vlan::PublicIp,
    vm_uuid: uuid::Uuid,
    network: Option<uuid::Uuid>,
) -> Result<(vm::Vm, Option<network::Network>), Error> {
    let target = vm_by_uuid(ctx, "virtualmachineid", vm_uuid).await?;
    check_same_owner(
        &target,
        ip.account_id.unwrap_or_default(),
        &format!("ip address {}", ip.public_ip_address),
    )?;
    let asked = tier_opt(ctx, "networkid", network).await?;
    Ok((target, asked))
}

/// The VM's live NICs, with their tiers.
pub async fn vm_nics(db: &Db, vm_id: i64) -> Result<Vec<router::Nic>, Error> {
    Ok(router::nics_of(db, router::NicOwner::Vm(vm_id)).await?)
}

/// The tier a new rule on the IP goes to (§3.5): the IP's tier when bound,
/// else `networkid`; without either, the VM's only tier in the VPC.
pub async fn rule_tier(
    db: &Db,
    ip: &vlan::PublicIp,
    v: &vpc::Vpc,
    asked: Option<&network::Network>,
    target: Option<&vm::Vm>,
) -> Result<network::Network, Error> {
    if let Some(t) = asked {
        check_tier_of_vpc(t, v)?;
    }
    let rules_view = rules_ip(ip)?;
    let id = match (ip.associated_network_id, asked, target) {
        (None, None, Some(target)) => {
            let mut tiers = Vec::new();
            for nic in vm_nics(db, target.id).await? {
                let t = tier_by_id(db, nic.network_id).await?;
                if t.vpc_id == Some(v.id) && !tiers.contains(&t.id) {
                    tiers.push(t.id);
                }
            }
            match tiers.as_slice() {
                [only] => *only,
                _ => rules::ip::bind_tier::<i64>(&rules_view, None)?,
            }
        }
        _ => rules::ip::bind_tier(&rules_view, asked.map(|t| &t.id)).map_err(|e| {
            // The rule names internal ids; the API names UUIDs.
            match (ip.associated_network_id, asked) {
                (Some(_), Some(t)) => Error::invalid(format!(
                    "ip address {} is associated with another tier, not with networkid {}",
                    ip.public_ip_address, t.uuid
                )),
                _ => e,
            }
        })?,
    };
    let tier = tier_by_id(db, id).await?;
    check_tier_of_vpc(&tier, v)?;
    Ok(tier)
}

/// 431 unless the tier's offering gives `service`.
pub async fn check_service(db: &Db, tier: &network::Network, service: &str) -> Result<(), Error> {
    let services = offering::network_offering_services(db, tier.network_offering_id).await?;
    let names: Vec<&str> = services.iter().map(|s| s.service.as_str()).collect();
    rules::ip::check_tier_service(&tier.name, service, &names)
}

/// The VM's address a rule in `tier` targets (§3.5: the VM must have a NIC in
/// the tier; `vmguestip`, when given, must be that NIC's address).
pub async fn vm_target(
    db: &Db,
    target: &vm::Vm,
    tier: &network::Network,
    vmguestip: Option<&str>,
) -> Result<Ipv4Addr, Error> {
    let nics = vm_nics(db, target.id).await?;
    let tiers: Vec<String> = nics
        .iter()
        .filter(|n| n.network_id == tier.id)
        .map(|_| tier.name.clone())
        .collect();
    rules::ip::check_vm_in_tier(&target.name, &tiers, &tier.name)?;
    let nic = nics
        .iter()
        .find(|n| n.network_id == tier.id && n.ip4_address.is_some())
        .ok_or_else(|| {
            Error::invalid(format!(
                "Virtual machine {} has no address in tier {}",
                target.name, tier.name
            ))
        })?;
    let nic_address = nic
        .ip4_address
        .ok_or_else(|| Error::internal("stored address \"\" is not valid"))?;
    rules::ip::target_address(&target.name, nic_address, vmguestip)
}

/// After a rule on the IP went: an IP with no rule left and no static NAT is
/// no longer bound to a tier (§3.5).
pub async fn unbind_if_unused<'a>(ex: impl Into<Exec<'a>>, ip_id: i64) -> Result<(), Error> {
    let mut ex = ex.into();
    if !live_rules_on_ip(ex.reborrow(), ip_id).await?.is_empty() {
        return Ok(());
    }
    let still = vlan::ip_by_id(ex.reborrow(), ip_id).await?;
    if let Some(ip) = still
        && !ip.one_to_one_nat
        && ip.associated_network_id.is_some()
    {
        vlan::set_association(ex, ip_id, None, false).await?;
    }
    Ok(())
}

/// Adds the fields of `extra` (an object) to `base` (an object).
pub fn merge(mut base: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    if let (Some(b), serde_json::Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}
