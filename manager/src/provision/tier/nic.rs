//! A VM NIC's address in its tier, through the tier's guru: the lowest
//! free address (or the one asked for) when the VM is created, kept while
//! it is stopped, freed when it is expunged.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use uuid::Uuid;

use crate::error::Error;
use crate::orchestration::guru::{AddressAllocator, BoxFuture, GuruError, NicRequest, ReservedNic};
use crate::provision::Network;
use crate::store::{Page, Tx, network, router, vm};

use super::{guru_error, guru_of, physical_of, tier_network};

/// The addresses of one tier, inside the caller's transaction: the lowest
/// address no live NIC on the tier holds (or the one asked for, when free).
struct TxAddresses<'t> {
    tx: &'t mut Tx,
    network_id: i64,
}

impl AddressAllocator for TxAddresses<'_> {
    fn allocate_ip(
        &mut self,
        _network_id: Uuid,
        cidr: Ipv4Net,
        requested: Option<Ipv4Addr>,
        excluded: Vec<Ipv4Addr>,
    ) -> BoxFuture<'_, Result<Ipv4Addr, GuruError>> {
        Box::pin(async move {
            let nics = router::list_nics(
                &mut *self.tx,
                &router::NicFilter {
                    network_id: Some(self.network_id),
                    ..Default::default()
                },
                Page::ALL,
            )
            .await
            .map_err(|e| GuruError::Allocator(e.to_string()))?
            .items;
            let used: Vec<Ipv4Addr> = nics
                .iter()
                .filter_map(|n| n.ip4_address)
                .chain(excluded)
                .collect();
            pick_address(cidr, requested, &used)
        })
    }

    fn release_ip(
        &mut self,
        _network_id: Uuid,
        ip: Ipv4Addr,
    ) -> BoxFuture<'_, Result<(), GuruError>> {
        // A VPC VM keeps its address while it is stopped (CloudStack keeps
        // the NIC's IP for the VM): release only marks the NIC unused; the
        // address is freed when the VM is expunged.
        Box::pin(async move {
            let nics = router::list_nics(
                &mut *self.tx,
                &router::NicFilter {
                    network_id: Some(self.network_id),
                    ip4_address: Some(ip.to_string()),
                    ..Default::default()
                },
                Page::ALL,
            )
            .await
            .map_err(|e| GuruError::Allocator(e.to_string()))?
            .items;
            for n in nics.iter().filter(|n| n.vm_id.is_some()) {
                router::set_nic_state(&mut *self.tx, n.id, vm::NIC_ALLOCATED)
                    .await
                    .map_err(|e| GuruError::Allocator(e.to_string()))?;
            }
            Ok(())
        })
    }

    fn allocate_mac(&mut self, _network_id: Uuid) -> BoxFuture<'_, Result<String, GuruError>> {
        // The store draws the MAC when it creates the NIC (unique among live
        // NICs); this one only fills the reservation.
        Box::pin(async move { Ok(router::random_mac()) })
    }
}

/// `requested` when it is a free host address of `cidr`, else the lowest
/// free host address; never one of `used`, the network or the broadcast
/// address.
pub fn pick_address(
    cidr: Ipv4Net,
    requested: Option<Ipv4Addr>,
    used: &[Ipv4Addr],
) -> Result<Ipv4Addr, GuruError> {
    let usable = |ip: &Ipv4Addr| {
        cidr.contains(ip) && *ip != cidr.network() && *ip != cidr.broadcast() && !used.contains(ip)
    };
    match requested {
        Some(ip) if usable(&ip) => Ok(ip),
        Some(ip) => Err(GuruError::Invalid(format!(
            "the requested address {ip} is not available in {cidr}"
        ))),
        None => cidr
            .hosts()
            .find(usable)
            .ok_or(GuruError::NoFreeAddress(cidr)),
    }
}

/// Reserves a VM NIC on a tier (inside the caller's transaction, which has
/// locked the VPC row): the guru picks `requested` when it is free, else the
/// tier's lowest free address, never the gateway; the NIC row is created
/// with the VM as holder, in state Allocated.
pub async fn reserve_nic(
    network: &Network,
    tx: &mut Tx,
    tier: &network::Network,
    vm_row: &vm::Vm,
    device_index: i64,
    requested: Option<Ipv4Addr>,
) -> Result<router::Nic, Error> {
    let (pn, isolation) = physical_of(&mut *tx, tier).await?;
    let guru = guru_of(network, tier, isolation)?;
    let designed = tier_network(tier, guru, isolation, Some(&pn))?;
    let reserved: ReservedNic = {
        let mut addresses = TxAddresses {
            tx: &mut *tx,
            network_id: tier.id,
        };
        guru.reserve(
            &designed,
            &NicRequest {
                network_id: designed.network.id,
                owner_id: vm_row.uuid,
                requested_ip: requested,
                requested_mac: None,
            },
            &mut addresses,
        )
        .await
        .map_err(|e| match e {
            GuruError::Invalid(text) => Error::insufficient(
                crate::error::Capacity::GuestNetwork,
                format!(
                    "Unable to acquire Guest IP address for network {}: {text}",
                    tier.uuid
                ),
            ),
            other => guru_error(other),
        })?
    };
    let nic = router::create_nic(
        &mut *tx,
        router::NewNic {
            owner: router::NicOwner::Vm(vm_row.id),
            network_id: tier.id,
            device_index: Some(device_index),
            ip4_address: Some(reserved.ip),
            netmask: tier.netmask,
            gateway: tier.gateway,
            role: router::ROLE_GUEST.into(),
        },
    )
    .await?;
    Ok(nic)
}

/// Releases a VM NIC (the VM stops): the guru's `release`; the address stays
/// the VM's (see [`TxAddresses`]).
pub async fn release_nic(
    network: &Network,
    tx: &mut Tx,
    tier: &network::Network,
    nic: &router::Nic,
) -> Result<(), Error> {
    let (pn, isolation) = physical_of(&mut *tx, tier).await?;
    let guru = guru_of(network, tier, isolation)?;
    let designed = tier_network(tier, guru, isolation, Some(&pn))?;
    let Some(ip) = nic.ip4_address else {
        return Ok(());
    };
    let reserved = ReservedNic {
        network_id: designed.network.id,
        owner_id: Uuid::nil(),
        ip,
        prefix: designed.network.cidr.prefix_len(),
        gateway: designed.network.gateway,
        mac: nic.mac_address.clone(),
        broadcast_uri: designed.broadcast_uri.clone(),
    };
    let mut addresses = TxAddresses {
        tx: &mut *tx,
        network_id: tier.id,
    };
    guru.release(&reserved, &mut addresses)
        .await
        .map_err(guru_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn the_lowest_free_host_address_is_picked() {
        let cidr = net("10.1.1.0/29");
        let gateway = ip("10.1.1.1");
        assert_eq!(
            pick_address(cidr, None, &[gateway]).unwrap(),
            ip("10.1.1.2")
        );
        let used = [gateway, ip("10.1.1.2"), ip("10.1.1.4")];
        assert_eq!(pick_address(cidr, None, &used).unwrap(), ip("10.1.1.3"));
        let full: Vec<Ipv4Addr> = cidr.hosts().collect();
        assert_eq!(
            pick_address(cidr, None, &full).unwrap_err(),
            GuruError::NoFreeAddress(cidr)
        );
    }

    #[test]
    fn a_requested_address_must_be_a_free_host_of_the_cidr() {
        let cidr = net("10.1.1.0/24");
        let used = [ip("10.1.1.1"), ip("10.1.1.7")];
        assert_eq!(
            pick_address(cidr, Some(ip("10.1.1.50")), &used).unwrap(),
            ip("10.1.1.50")
        );
        for bad in ["10.1.1.7", "10.1.1.1", "10.1.1.0", "10.1.1.255", "10.1.2.5"] {
            assert!(
                matches!(
                    pick_address(cidr, Some(ip(bad)), &used),
                    Err(GuruError::Invalid(_))
                ),
                "{bad}"
            );
        }
    }
}
