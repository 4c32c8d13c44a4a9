//! `enableStaticNat` (synchronous, as in CloudStack): maps a VPC address
//! one-to-one to a VM's address in a tier, binding the address to the tier.

use uuid::Uuid;

use crate::error::Error;
use crate::rules;
use crate::server::command::{Arg, Args, Command, Id, Spec, SyncCommand, Text};
use crate::server::registry::ALL;
use crate::server::{Ctx, Reply};
use crate::services::ip::common::{self, IP, held_ip};
use crate::store::{Page, vlan};

use super::super::VM_TIER as NETWORK;
use super::{Mapping, StaticNatMapping};

const VM: Arg<Id> = Arg::req("virtualmachineid", "the VM to map it to");
const VM_GUEST_IP: Arg<Text> = Arg::opt(
    "vmguestip",
    "the VM's address in the tier (its NIC address; secondary addresses are \
     not supported)",
);

/// `enableStaticNat`.
pub struct EnableStaticNat {
    ip: Uuid,
    vm: Uuid,
    network: Option<Uuid>,
    vm_guest_ip: Option<String>,
}

impl Command for EnableStaticNat {
    const NAME: &'static str = "enableStaticNat";

    fn spec() -> Spec {
        Spec::new("Maps a public IP address of a VPC one-to-one to a VM address in a tier")
            .roles(ALL)
            .param(IP)
            .param(VM)
            .param(NETWORK)
            .param(VM_GUEST_IP)
            .returns("success", vec![])
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(EnableStaticNat {
            ip: args.need(&IP)?,
            vm: args.need(&VM)?,
            network: args.get(&NETWORK)?,
            // Read as given, an empty value included, as before.
            vm_guest_ip: args.get(&VM_GUEST_IP)?,
        })
    }
}

impl SyncCommand for EnableStaticNat {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let ip = held_ip(ctx, IP.name(), self.ip).await?;
        let v = common::vpc_of_ip(db, &ip).await?;
        common::check_enabled(&v)?;
        let (target, asked) = common::nat_target(ctx, &ip, self.vm, self.network).await?;

        let lock = ctx.app.network.lock(db, v.id).await?;
        // Re-read under the lock: another change may have come first.
        let ip = common::reload_ip(db, ip.id).await?;
        let tier = common::rule_tier(db, &ip, &v, asked.as_ref(), Some(&target)).await?;
        common::check_service(db, &tier, "StaticNat").await?;
        rules::ip::check_enable_static_nat(
            &common::rules_ip(&ip)?,
            &common::port_rules_on_ip(db, ip.id).await?,
        )?;
        let address = common::vm_target(db, &target, &tier, self.vm_guest_ip.as_deref()).await?;
        let taken = vlan::list_ips(
            db,
            &vlan::PublicIpFilter {
                vm_id: Some(target.id),
                one_to_one_nat: Some(true),
                held_only: true,
                ..Default::default()
            },
            Page::ALL,
        )
        .await?
        .items
        .into_iter()
        .find(|other| other.vm_ip == Some(address))
        .map(|other| other.public_ip_address);
        rules::ip::check_vm_static_nat_free(&target.name, ip.public_ip_address, taken)?;

        // When the router keeps its old list, so does the address: its
        // tier as before, no VM.
        lock.apply(&StaticNatMapping {
            ip_id: ip.id,
            to: Mapping {
                tier: Some(tier.id),
                vm: Some((target.id, address.to_string())),
            },
            back: Mapping {
                tier: ip.associated_network_id,
                vm: None,
            },
        })
        .await?;
        Ok(Reply::Success)
    }
}
