//! Static NAT (reference §2.5, §3.5): `enableStaticNat` maps a VPC address
//! one-to-one to a VM's address in a tier (synchronously, as in CloudStack);
//! `disableStaticNat` removes the mapping. Both change the address's row
//! and send the VPC's whole static NAT list through the change protocol
//! (`StaticNatMapping`). `listIpForwardingRules` lists CloudStack's static
//! NAT rules (none: see its file).

mod disable;
mod enable;
mod list;

use crate::error::Error;
use crate::orchestration::ElementResult;
use crate::orchestration::model::RouterState;
use crate::provision::RouterElement;
use crate::provision::change::RouterChange;
use crate::server::registry::Registry;
use crate::services::ip::push::RuleLists;
use crate::store::{Db, Tx, vlan};

pub use disable::DisableStaticNat;
pub use enable::EnableStaticNat;
pub use list::ListIpForwardingRules;

/// Registers the static NAT commands.
pub fn register(registry: &mut Registry) {
    registry.sync::<EnableStaticNat>();
    registry.job::<DisableStaticNat>();
    registry.sync::<ListIpForwardingRules>();
}

/// What an address's static NAT columns hold: its tier and the VM (row id,
/// address) it maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mapping {
    tier: Option<i64>,
    vm: Option<(i64, String)>,
}

impl Mapping {
    /// The address's mapping as stored.
    fn of(ip: &vlan::PublicIp) -> Self {
        Mapping {
            tier: ip.associated_network_id,
            vm: ip.vm_id.zip(ip.vm_ip.map(|a| a.to_string())),
        }
    }

    async fn store(&self, ex: impl Into<crate::store::Exec<'_>>, ip_id: i64) -> Result<(), Error> {
        let vm = self.vm.as_ref().map(|(id, a)| (*id, a.as_str()));
        vlan::set_static_nat(ex, ip_id, self.tier, vm).await?;
        Ok(())
    }
}

/// An address's static NAT mapping changing (`to`), with what it was
/// (`back`) for when the router keeps its old list.
struct StaticNatMapping {
    ip_id: i64,
    to: Mapping,
    back: Mapping,
}

impl RouterChange for StaticNatMapping {
    type Written = ();

    fn what(&self) -> &'static str {
        "a static NAT mapping"
    }

    async fn write(&self, tx: &mut Tx) -> Result<(), Error> {
        self.to.store(tx, self.ip_id).await
    }

    async fn push(
        &self,
        element: &RouterElement,
        state: &RouterState,
        generation: u64,
    ) -> ElementResult {
        RuleLists::STATIC_NATS
            .send(element, state, generation)
            .await
    }

    async fn undo(&self, db: &Db, _: &()) -> Result<(), Error> {
        self.back.store(db, self.ip_id).await
    }
}

/// 431 unless static NAT is enabled on the address.
fn check_has_static_nat(ip: &vlan::PublicIp) -> Result<(), Error> {
    if ip.one_to_one_nat {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "Specified IP address id is not associated with any vm Id: static nat is not enabled on \
         ip address {}",
        ip.public_ip_address
    )))
}
