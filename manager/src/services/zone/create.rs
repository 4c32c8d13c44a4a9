//! `createZone`: an Advanced zone (VPCs need one), root admins only.

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Spec, SyncCommand, Text};
use crate::server::registry::ROOT;
use crate::server::{Ctx, Reply};
use crate::store::{self, zone};

use super::{ALLOCATION_STATE, ZONE_FIELDS, allocation_state, reloaded, zone_view};

const NAME: Arg<Text> = Arg::req("name", "the name of the zone");
const NETWORK_TYPE: Arg<Text> = Arg::req(
    "networktype",
    "the network type; only Advanced is supported",
);
const DNS1: Arg<Text> = Arg::req("dns1", "the first public DNS server");
const INTERNAL_DNS1: Arg<Text> = Arg::req("internaldns1", "the first internal DNS server");
const DNS2: Arg<Text> = Arg::opt("dns2", "the second public DNS server");
const INTERNAL_DNS2: Arg<Text> = Arg::opt("internaldns2", "the second internal DNS server");
const GUEST_CIDR: Arg<Text> = Arg::opt("guestcidraddress", "the guest CIDR of the zone");
const DOMAIN: Arg<Text> = Arg::opt("domain", "the network domain of the zone");
const DESCRIPTION: Arg<Text> = Arg::opt("description", "a description of the zone");

/// `createZone`.
pub struct CreateZone {
    name: String,
    network_type: String,
    dns1: Option<String>,
    dns2: Option<String>,
    internal_dns1: Option<String>,
    internal_dns2: Option<String>,
    guest_cidr: Option<String>,
    domain: Option<String>,
    description: Option<String>,
    allocation_state: Option<String>,
}

impl Command for CreateZone {
    const NAME: &'static str = "createZone";

    fn spec() -> Spec {
        Spec::new("Creates an Advanced zone")
            .roles(ROOT)
            .param(NAME)
            .param(NETWORK_TYPE)
            .param(DNS1)
            .param(INTERNAL_DNS1)
            .param(DNS2)
            .param(INTERNAL_DNS2)
            .param(GUEST_CIDR)
            .param(DOMAIN)
            .param(DESCRIPTION)
            .param(ALLOCATION_STATE)
            .returns("zone", ZONE_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(CreateZone {
            name: args.need(&NAME)?,
            network_type: args.need(&NETWORK_TYPE)?,
            dns1: args.get(&DNS1)?,
            dns2: args.get(&DNS2)?,
            internal_dns1: args.get(&INTERNAL_DNS1)?,
            internal_dns2: args.get(&INTERNAL_DNS2)?,
            guest_cidr: args.get(&GUEST_CIDR)?,
            domain: args.get(&DOMAIN)?,
            description: args.get(&DESCRIPTION)?,
            allocation_state: args.get(&ALLOCATION_STATE)?,
        })
    }
}

impl SyncCommand for CreateZone {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        if !self.network_type.eq_ignore_ascii_case("advanced") {
            return Err(Error::invalid(format!(
                "networktype {} is not supported: VPCs need Advanced zones",
                self.network_type
            )));
        }
        for (arg, value) in [
            (DNS1, &self.dns1),
            (DNS2, &self.dns2),
            (INTERNAL_DNS1, &self.internal_dns1),
            (INTERNAL_DNS2, &self.internal_dns2),
        ] {
            check_ip(arg.name(), value.as_deref())?;
        }
        if let Some(cidr) = &self.guest_cidr {
            cidr.parse::<ipnet::Ipv4Net>().map_err(|_| {
                Error::invalid(format!("guestcidraddress {cidr} is not an IPv4 CIDR"))
            })?;
        }
        // Checked before the zone is created, so a bad state creates nothing.
        let state = allocation_state(self.allocation_state.as_deref())?;
        let name = self.name;
        let created = zone::create(
            &ctx.app.db,
            zone::NewZone {
                name: name.clone(),
                description: self.description,
                dns1: self.dns1,
                dns2: self.dns2,
                internal_dns1: self.internal_dns1,
                internal_dns2: self.internal_dns2,
                guest_cidr: self.guest_cidr,
                domain_id: None,
                network_domain: self.domain,
            },
        )
        .await
        .map_err(|e| match e {
            store::StoreError::Duplicate(_) => {
                Error::invalid(format!("A zone with name {name} already exists"))
            }
            other => other.into(),
        })?;
        if let Some(state) = state {
            zone::set_allocation_state(&ctx.app.db, created.id, state).await?;
        }
        Ok(Reply::Object(zone_view(
            ctx,
            &reloaded(ctx, created.id).await?,
        )))
    }
}

/// 431 unless `value` (when given, even empty) is an IP address.
fn check_ip(name: &str, value: Option<&str>) -> Result<(), Error> {
    match value {
        Some(v) if v.parse::<std::net::IpAddr>().is_err() => {
            Err(Error::invalid(format!("{name} {v} is not an IP address")))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_servers_must_be_addresses_when_given() {
        assert!(check_ip("dns1", None).is_ok());
        assert!(check_ip("dns1", Some("192.0.2.53")).is_ok());
        assert!(check_ip("dns2", Some("2001:db8::53")).is_ok());
        assert_eq!(
            check_ip("dns2", Some("resolver")).unwrap_err().text(),
            "dns2 resolver is not an IP address"
        );
        assert!(
            check_ip("dns2", Some("")).is_err(),
            "empty is not an address"
        );
    }
}
