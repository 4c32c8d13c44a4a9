//! `createNetwork` for a VPC tier (§2.4, §3.4): synchronous in CloudStack;
//! the checks over the VPC's tiers and the insert run in one transaction
//! that first locks the VPC row, so parallel creations never exceed
//! `vpc.max.networks` nor overlap.

use ipnet::Ipv4Net;
use uuid::Uuid;

use super::{NETWORK_FIELDS, network_view, sees_admin_fields};
use crate::error::Error;
use crate::provision::{self, tier::TierDesign};
use crate::rules::{self, tier as tier_rules};
use crate::server::command::{Arg, Args, Command, Flag, Id, Spec, SyncCommand, Text};
use crate::server::registry::{ALL, fields};
use crate::server::{Ctx, Reply};
use crate::services::owner::{self, OwnerArgs};
use crate::services::related::Related;
use crate::services::zone::zone_by_id;
use crate::store::{acl, config, gateway, network, offering, vpc};

const NAME: Arg<Text> = Arg::req("name", "the name of the tier");
const DISPLAY_TEXT: Arg<Text> = Arg::opt("displaytext", "the description; default the name");
const OFFERING: Arg<Id> = Arg::req(
    "networkofferingid",
    "the network offering (Enabled, for VPC tiers)",
);
const ZONE: Arg<Id> = Arg::req("zoneid", "the zone (the VPC's)");
const VPC: Arg<Id> = Arg::opt(
    "vpcid",
    "the VPC the tier belongs to (only VPC tiers are supported)",
);
const GATEWAY: Arg<Text> = Arg::opt(
    "gateway",
    "the tier gateway, the router's address on it (required for tiers)",
);
const NETMASK: Arg<Text> = Arg::opt(
    "netmask",
    "the tier netmask (required for tiers); CIDR = gateway/netmask",
);
const ACL: Arg<Id> = Arg::opt(
    "aclid",
    "the ACL list of the tier: one of the VPC or a default list; none if omitted",
);
const NETWORK_DOMAIN: Arg<Text> = Arg::opt(
    "networkdomain",
    "the DNS domain; must be the VPC's (its default)",
);
const ACL_TYPE: Arg<Text> = Arg::opt("acltype", "Account (the only type of a VPC tier)");
const DISPLAY_NETWORK: Arg<Flag> = Arg::opt("displaynetwork", "accepted; every tier is displayed");

/// `createNetwork`.
pub struct CreateNetwork {
    name: String,
    display_text: Option<String>,
    offering: Uuid,
    zone: Uuid,
    vpc: Option<Uuid>,
    gateway: Option<String>,
    netmask: Option<String>,
    acl: Option<Uuid>,
    network_domain: Option<String>,
    acl_type: Option<String>,
    owner: OwnerArgs,
}

/// Whether an offering's services include a public load balancer (the
/// router's own haproxy, not an internal LB).
fn has_public_lb(services: &[offering::ServiceProvider]) -> bool {
    services
        .iter()
        .any(|s| s.service == "Lb" && s.provider == offering::PROVIDER_VPC_VIRTUAL_ROUTER)
}

/// An offering's (service, provider) pairs.
fn pairs(services: &[offering::ServiceProvider]) -> Vec<(&str, &str)> {
    services
        .iter()
        .map(|sp| (sp.service.as_str(), sp.provider.as_str()))
        .collect()
}

/// The CIDR of a private gateway's network.
fn gateway_cidr(g: &gateway::PrivateGateway) -> Option<Ipv4Net> {
    let prefix = ipnet::ipv4_mask_to_prefix(g.netmask).ok()?;
    Ipv4Net::new(g.gateway, prefix).ok().map(|n| n.trunc())
}

impl Command for CreateNetwork {
    const NAME: &'static str = "createNetwork";

    fn spec() -> Spec {
        Spec::new("Creates a tier of a VPC")
            .roles(ALL)
            .param(NAME)
            .param(DISPLAY_TEXT)
            .param(OFFERING)
            .param(ZONE)
            .param(VPC)
            .param(GATEWAY)
            .param(NETMASK)
            .param(ACL)
            .param(NETWORK_DOMAIN)
            .param(ACL_TYPE)
            .param(DISPLAY_NETWORK)
            .params(OwnerArgs::specs())
            .returns("network", fields(NETWORK_FIELDS))
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(CreateNetwork {
            name: args.need(&NAME)?,
            display_text: args.text(&DISPLAY_TEXT)?,
            offering: args.need(&OFFERING)?,
            zone: args.need(&ZONE)?,
            vpc: args.get(&VPC)?,
            gateway: args.get(&GATEWAY)?,
            netmask: args.get(&NETMASK)?,
            acl: args.get(&ACL)?,
            network_domain: args.get(&NETWORK_DOMAIN)?,
            acl_type: args.text(&ACL_TYPE)?,
            owner: OwnerArgs::parse(args)?,
        })
    }
}

impl SyncCommand for CreateNetwork {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let name = self.name;
        rules::check_name(NAME.name(), &name)?;
        let display_text = self.display_text.unwrap_or_else(|| name.clone());
        rules::check_length(
            DISPLAY_TEXT.name(),
            &display_text,
            rules::MAX_DISPLAY_TEXT_LEN,
        )?;
        if let Some(t) = self.acl_type
            && !t.eq_ignore_ascii_case("Account")
        {
            return Err(Error::invalid(format!(
                "ACL type {t} is not supported for VPC tiers: a tier belongs to one account (Account)"
            )));
        }
        let z = zone_by_id(ctx, self.zone, ZONE.name()).await?;
        let offering_id = self.offering;
        let o = offering::network_offering_by_uuid(db, offering_id)
            .await?
            .filter(|o| o.removed.is_none())
            .ok_or_else(|| Error::invalid_id(OFFERING.name(), offering_id))?;
        let Some(vpc_uuid) = self.vpc else {
            return Err(Error::invalid(
                "Only VPC tiers can be created here: vpcid is required (with gateway and netmask)",
            ));
        };
        let v = vpc::get_by_uuid(db, vpc_uuid)
            .await?
            .filter(|v| v.removed.is_none())
            .ok_or_else(|| Error::invalid_id(VPC.name(), vpc_uuid))?;
        owner::check_access(
            ctx,
            v.account_id,
            &v.domain_path,
            &format!("VPC {vpc_uuid}"),
        )?;
        let owner = self.owner.resolve(ctx).await?;
        // Only the VPC's own account has tiers in it (§3.4 rule 5: the VPC
        // owner must have access to the tier owner).
        if owner.account_id != v.account_id {
            return Err(Error::permission_denied(format!(
                "Account {} does not have access to VPC {}: only the VPC's account can have tiers in it",
                owner.account_name, v.uuid
            )));
        }
        if v.state != vpc::STATE_ENABLED {
            return Err(Error::invalid(format!(
                "Can't create a network in VPC {}: it is not in Enabled state (state {})",
                v.uuid, v.state
            )));
        }
        if z.id != v.zone_id {
            return Err(Error::invalid(format!(
                "New network doesn't belong to the VPC's zone: VPC {} is not in zone {}",
                v.uuid, z.uuid
            )));
        }
        if o.state != offering::STATE_ENABLED {
            return Err(Error::invalid(format!(
                "Network offering with specified id {} is not in Enabled state, can't use it",
                o.uuid
            )));
        }
        let services = offering::network_offering_services(db, o.id).await?;
        let vpc_services = offering::vpc_offering_services(db, v.vpc_offering_id).await?;
        let tier_offering = tier_rules::TierOffering {
            id: o.id,
            for_vpc: o.for_vpc,
            public_lb: has_public_lb(&services),
            network_acl: services.iter().any(|s| s.service == "NetworkACL"),
        };
        if o.for_vpc && o.conserve_mode {
            return Err(Error::invalid(format!(
                "Only networks with conserve mode Off can belong to VPC: network offering {} has it on",
                o.uuid
            )));
        }
        if o.for_vpc {
            tier_rules::check_offering_services(
                o.uuid,
                &pairs(&services),
                &v.name,
                &pairs(&vpc_services),
            )?;
        }
        let acl_list = match self.acl {
            Some(id) => {
                let l = acl::get_by_uuid(db, id)
                    .await?
                    .filter(|l| l.removed.is_none())
                    .ok_or_else(|| Error::invalid_id(ACL.name(), id))?;
                // The built-in and global lists (no VPC) serve every VPC.
                if l.vpc_id.is_some_and(|lv| lv != v.id) {
                    return Err(Error::invalid(format!(
                        "Can't use ACL list {} for the network: it belongs to a different VPC than {}",
                        l.uuid, v.uuid
                    )));
                }
                Some(l)
            }
            None => None,
        };
        let settings = provision::rules_config(db).await?;
        let prepend = config::value_bool(db, "vpc.tier.name.prepend")
            .await?
            .unwrap_or(false);
        let delimiter = config::value(db, "vpc.tier.name.prepend.delimiter")
            .await?
            .unwrap_or_else(|| " ".into());
        let gateway_param = self.gateway;
        let netmask_param = self.netmask;
        let network_domain = self.network_domain;
        let vpc_cidr = v.cidr;
        let vpc_domain = v.network_domain.clone().unwrap_or_default();
        let new_tier = tier_rules::NewTier {
            name: &name,
            gateway: gateway_param.as_deref(),
            netmask: netmask_param.as_deref(),
            network_domain: network_domain.as_deref(),
            offering: tier_offering,
            caller_is_root: ctx.caller.is_root_admin(),
            acl_given: acl_list.is_some(),
        };
        // The request's own checks first (no other tier involved), then the
        // guru's design; both before the transaction.
        let alone = tier_rules::validate_new_tier(
            &new_tier,
            &tier_rules::VpcView {
                name: &v.name,
                cidr: Some(vpc_cidr),
                network_domain: &vpc_domain,
                tiers: &[],
                private_gateway_cidrs: &[],
            },
            &rules::Config {
                vpc_max_networks: u32::MAX,
                ..settings.clone()
            },
        )?;
        let (pn, isolation) = provision::tier::guest_physical_network(db, z.id).await?;
        let designed = provision::tier::design_tier(
            &ctx.app.network,
            &pn,
            isolation,
            TierDesign {
                name: &name,
                cidr: alone.cidr,
                gateway: alone.gateway,
                vpc_cidr,
                network_domain: &alone.network_domain,
            },
        )?;

        let _lock = ctx.app.network.lock(db, v.id).await?;
        let mut tx = db.begin().await?;
        vpc::lock(&mut tx, v.id).await?;
        let live = vpc::get_by_id(&mut tx, v.id)
            .await?
            .filter(|v| v.removed.is_none() && v.state == vpc::STATE_ENABLED)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "Can't create a network in VPC {}: it is being deleted",
                    v.uuid
                ))
            })?;
        let tiers = network::tiers_of_vpc(&mut tx, live.id).await?;
        let mut existing = Vec::with_capacity(tiers.len());
        for t in &tiers {
            let Some(cidr) = t.cidr else {
                continue;
            };
            let services =
                offering::network_offering_services(&mut tx, t.network_offering_id).await?;
            existing.push(tier_rules::ExistingTier {
                name: t.name.clone(),
                cidr,
                public_lb: has_public_lb(&services),
                offering_id: t.network_offering_id,
            });
        }
        let gateways = gateway::of_vpc(&mut tx, live.id).await?;
        let gateway_cidrs: Vec<Ipv4Net> = gateways.iter().filter_map(gateway_cidr).collect();
        let checked = tier_rules::validate_new_tier(
            &new_tier,
            &tier_rules::VpcView {
                name: &live.name,
                cidr: Some(vpc_cidr),
                network_domain: &vpc_domain,
                tiers: &existing,
                private_gateway_cidrs: &gateway_cidrs,
            },
            &settings,
        )?;
        if let Some(l) = acl_list.as_ref().filter(|l| l.is_global)
            && !acl::lock_live_list(&mut tx, l.id).await?
        {
            return Err(Error::invalid("The ACL list was deleted meanwhile"));
        }
        // Resource type 6 (`network`): counted under the owner's lock with the
        // insert that follows.
        owner::check_limit(&mut tx, owner.account_id, "network", 1).await?;
        let created = network::create(
            &mut tx,
            network::NewNetwork {
                name: tier_rules::tier_name(&live.name, &name, prepend, &delimiter),
                display_text,
                zone_id: z.id,
                physical_network_id: Some(pn.id),
                vpc_id: Some(live.id),
                account_id: owner.account_id,
                domain_id: owner.domain_id,
                network_offering_id: o.id,
                cidr: Some(checked.cidr.to_string()),
                gateway: Some(checked.gateway.to_string()),
                netmask: netmask_param
                    .as_deref()
                    .map(|m| m.trim().to_string())
                    .filter(|m| !m.is_empty()),
                network_domain: Some(checked.network_domain),
                broadcast_uri: designed.broadcast_uri.clone(),
                vnet: None,
                network_acl_id: acl_list.as_ref().map(|l| l.id),
                traffic_type: network::TRAFFIC_GUEST.into(),
                guru_name: Some(designed.guru.to_string()),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Reply::Object(network_view(
            &Related::for_networks(db, std::slice::from_ref(&created)).await?,
            &created,
            sees_admin_fields(ctx.caller.role),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_routers_lb_is_a_public_lb() {
        let router_lb = [offering::ServiceProvider::new("Lb", "VpcVirtualRouter")];
        let internal = [offering::ServiceProvider::new("Lb", "InternalLbVm")];
        assert!(has_public_lb(&router_lb));
        assert!(!has_public_lb(&internal));
        assert!(!has_public_lb(&[]));
    }
}
