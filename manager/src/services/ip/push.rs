//! What the router gets when the rules on VPC public addresses change: the
//! VPC's whole port forwarding, static NAT or load balancer list (the agent
//! replaces a list at once), and IpAssoc for one address.
//!
//! These are the `push` halves of the [`RouterChange`]s of the IP, NAT and
//! LB commands; the change protocol ([`crate::provision::change`]) decides
//! when they run.
//!
//! [`RouterChange`]: crate::provision::change::RouterChange

use std::future::Future;

use crate::error::Error;
use crate::orchestration::ElementResult;
use crate::orchestration::element::{Gateway, Lb, PortForwarding, StaticNat};
use crate::orchestration::model::{NicRole, PublicIpView, RouterState};
use crate::provision::RouterElement;
use crate::provision::change::RouterChange;
use crate::store::{Db, Tx, vlan, vpc};

/// Which of the VPC's rule lists a change touches (the lists a released
/// address had rules in, the list a new rule joins).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleLists {
    pub port_forwards: bool,
    pub static_nats: bool,
    pub load_balancers: bool,
}

impl RuleLists {
    /// Only the port forwarding list.
    pub const PORT_FORWARDS: RuleLists = RuleLists {
        port_forwards: true,
        static_nats: false,
        load_balancers: false,
    };
    /// Only the static NAT list.
    pub const STATIC_NATS: RuleLists = RuleLists {
        port_forwards: false,
        static_nats: true,
        load_balancers: false,
    };
    /// Only the load balancer list.
    pub const LOAD_BALANCERS: RuleLists = RuleLists {
        port_forwards: false,
        static_nats: false,
        load_balancers: true,
    };
    /// Every NAT and LB list (rules of several kinds went at once).
    pub const ALL: RuleLists = RuleLists {
        port_forwards: true,
        static_nats: true,
        load_balancers: true,
    };

    /// Sends the chosen lists, as stored in `state`, in the order the
    /// agent's dstnat chain is built: port forwards, static NAT, LB.
    pub async fn send(
        self,
        element: &RouterElement,
        state: &RouterState,
        generation: u64,
    ) -> ElementResult {
        if self.port_forwards {
            element
                .apply_port_forwards(&state.router, generation, &state.port_forwards)
                .await?;
        }
        if self.static_nats {
            element
                .apply_static_nats(&state.router, generation, &state.static_nats)
                .await?;
        }
        if self.load_balancers {
            element
                .apply_lb_rules(&state.router, generation, &state.lb_rules)
                .await?;
        }
        Ok(())
    }
}

/// The rows that go for good with something they point at (a deleted
/// tier, an expunged VM): rules of several kinds, so the router gets every
/// NAT and LB list again. The removal stands even when the router refuses
/// ([`Withdraw`]).
pub trait Withdrawal: Send + Sync {
    /// What goes, for the log of a failed undo ("a deleted tier's rules").
    fn what(&self) -> &'static str;

    /// The VPC whose router held the rules.
    fn vpc_id(&self) -> i64;

    /// Removes the rows, the VPC's row locked; whether anything the router
    /// holds went.
    fn remove(&self, tx: &mut Tx) -> impl Future<Output = Result<bool, Error>> + Send;
}

/// The change of a [`Withdrawal`]: on a refusal the rows stay removed and
/// the VPC is flagged for a restart, which sends the router its stored
/// lists without the stale rules.
pub struct Withdraw<W>(pub W);

impl<W: Withdrawal> RouterChange for Withdraw<W> {
    type Written = bool;

    fn what(&self) -> &'static str {
        self.0.what()
    }

    async fn write(&self, tx: &mut Tx) -> Result<bool, Error> {
        vpc::lock(&mut *tx, self.0.vpc_id()).await?;
        self.0.remove(tx).await
    }

    fn reaches_router(&self, removed: &bool) -> bool {
        *removed
    }

    async fn push(
        &self,
        element: &RouterElement,
        state: &RouterState,
        generation: u64,
    ) -> ElementResult {
        RuleLists::ALL.send(element, state, generation).await
    }

    async fn undo(&self, db: &Db, _: &bool) -> Result<(), Error> {
        vpc::set_restart_required(db, self.0.vpc_id(), true).await?;
        Ok(())
    }
}

/// Associates one held address of the VPC on its router (IpAssoc
/// add=true), as the stored state shows it.
pub async fn send_ip(
    element: &RouterElement,
    state: &RouterState,
    generation: u64,
    ip_uuid: uuid::Uuid,
) -> ElementResult {
    let ips: Vec<PublicIpView> = state
        .public_ips
        .iter()
        .filter(|ip| ip.id == ip_uuid)
        .cloned()
        .collect();
    element.apply_ips(&state.router, generation, &ips).await
}

/// The public range of an address: what the router needs to give the
/// address up, read before the change (the push has no store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleasedIp {
    pub id: uuid::Uuid,
    pub address: std::net::Ipv4Addr,
    pub prefix: u8,
    pub gateway: std::net::Ipv4Addr,
    pub vlan: String,
    pub source_nat: bool,
    pub one_to_one_nat: bool,
}

impl ReleasedIp {
    /// The address `ip` of the public range `range`.
    pub fn of(ip: &vlan::PublicIp, range: &vlan::VlanRange) -> Result<Self, Error> {
        let id = ip.uuid;
        Ok(ReleasedIp {
            id,
            address: ip.public_ip_address,
            prefix: ipnet::ipv4_mask_to_prefix(range.netmask)
                .map_err(|_| Error::internal("a public range has a bad netmask"))?,
            gateway: range.gateway,
            vlan: range.vlan_id.clone(),
            source_nat: ip.source_nat,
            one_to_one_nat: ip.one_to_one_nat,
        })
    }

    /// What the router gets when the address leaves it (IpAssoc
    /// add=false), on the router's public NIC; None when the router has
    /// none. The state shows only allocated addresses, so the view is built
    /// here.
    pub fn view(&self, state: &RouterState) -> Option<PublicIpView> {
        let nic = state
            .router
            .nics
            .iter()
            .find(|n| n.role == NicRole::Public)?;
        Some(PublicIpView {
            id: self.id,
            address: self.address,
            prefix: self.prefix,
            gateway: self.gateway,
            nic_index: nic.device_index,
            mac: nic.mac.clone(),
            source_nat: self.source_nat,
            one_to_one_nat: self.one_to_one_nat,
            private_gateway: false,
            vlan: self.vlan.clone(),
            add: false,
        })
    }
}
