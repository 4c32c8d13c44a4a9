//! The tiers a new VM asks for (`networkids` or `iptonetworklist`, with
//! the addresses asked for) and the checks on them: live VPC tiers of the
//! VM's zone, of its account, all in one VPC.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use uuid::Uuid;

use crate::error::Error;
use crate::rules;
use crate::server::Ctx;
use crate::services::owner;
use crate::store::network;

/// A value whose reading can fail after the registry's checks (a list of
/// UUIDs, a map): kept as read and looked at where the command always
/// looked at it, so a request with several faults gets the same first error.
pub(super) type Deferred<T> = Result<T, Error>;

/// The tiers asked for, in NIC order, each with the address asked for.
pub(super) fn requested_networks(
    network_ids: Deferred<Option<Vec<Uuid>>>,
    ip_to_network: Deferred<Option<Vec<BTreeMap<String, String>>>>,
    ip_address: Option<&str>,
) -> Result<Vec<(Uuid, Option<Ipv4Addr>)>, Error> {
    let listed = network_ids?.unwrap_or_default();
    let mapped = ip_to_network?.unwrap_or_default();
    let ip = ip_address
        .map(|a| rules::parse_ipv4("ipaddress", a))
        .transpose()?;
    let requested: Vec<(Uuid, Option<Ipv4Addr>)> = match (listed.is_empty(), mapped.is_empty()) {
        (false, false) => {
            return Err(Error::invalid(
                "networkids and iptonetworklist can't be specified at the same time",
            ));
        }
        (true, true) => {
            return Err(Error::invalid(
                "networkids (or iptonetworklist) is required: a VM is deployed into VPC tiers",
            ));
        }
        (false, true) => listed
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, if i == 0 { ip } else { None }))
            .collect(),
        (true, false) => {
            if ip.is_some() {
                return Err(Error::invalid(
                    "ipaddress can't be given with iptonetworklist: give iptonetworklist[i].ip",
                ));
            }
            let mut out = Vec::new();
            for entry in &mapped {
                let id = entry
                    .get("networkid")
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| {
                        Error::invalid("each iptonetworklist entry needs a networkid")
                    })?;
                let id = Uuid::parse_str(id).map_err(|_| Error::invalid_id("networkid", id))?;
                let ip = entry
                    .get("ip")
                    .filter(|v| !v.is_empty())
                    .map(|a| rules::parse_ipv4("iptonetworklist.ip", a))
                    .transpose()?;
                out.push((id, ip));
            }
            out
        }
    };
    for (i, (id, _)) in requested.iter().enumerate() {
        if requested[..i].iter().any(|(other, _)| other == id) {
            return Err(Error::invalid(format!(
                "Network {id} is given more than once: a VM has one NIC per tier"
            )));
        }
    }
    Ok(requested)
}

/// The tiers of a new VM: live VPC tiers of the zone, usable by the caller
/// and owned by the VM's account, all in one VPC.
pub(super) async fn tiers_of(
    ctx: &Ctx,
    zone_id: i64,
    owner: &owner::Owner,
    requested: &[(Uuid, Option<Ipv4Addr>)],
) -> Result<Vec<(network::Network, Option<Ipv4Addr>)>, Error> {
    let mut tiers: Vec<(network::Network, Option<Ipv4Addr>)> = Vec::new();
    for (id, ip) in requested {
        let t = network::get_by_uuid(&ctx.app.db, *id)
            .await?
            .filter(|t| {
                t.removed.is_none()
                    && t.traffic_type == network::TRAFFIC_GUEST
                    && t.vpc_id.is_some()
            })
            .ok_or_else(|| Error::invalid_id("networkids", id))?;
        owner::check_access(ctx, t.account_id, &t.domain_path, &format!("network {id}"))?;
        // CloudStack checks the VM's owner may use the network: a tier of
        // another account never gets a NIC of this VM.
        if t.account_id != owner.account_id {
            return Err(Error::permission_denied(format!(
                "Account {} does not have permission to use network {id}: it belongs to another \
                 account",
                owner.account_name
            )));
        }
        if t.zone_id != zone_id {
            return Err(Error::invalid(format!(
                "Network {id} is not in the zone of the VM"
            )));
        }
        if let Some((first, _)) = tiers.first()
            && first.vpc_id != t.vpc_id
        {
            return Err(Error::invalid(format!(
                "A VM can be in the tiers of one VPC only: network {id} is in another VPC than \
                 network {}",
                first.uuid
            )));
        }
        tiers.push((t, *ip));
    }
    Ok(tiers)
}
