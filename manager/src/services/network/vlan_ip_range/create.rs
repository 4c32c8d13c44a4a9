//! `createVlanIpRange`: a public IP range of a zone, on the physical network
//! that carries its Public traffic.

use uuid::Uuid;

use super::super::{physnet_param, zone_param};
use super::{RANGE_FIELDS, RangeText, check_range, normalize_public_vlan, range_view};
use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Flag, Id, Spec, SyncCommand, Text};
use crate::server::registry::ROOT;
use crate::server::{Ctx, Reply};
use crate::store::{self, Page, vlan, zone};

/// Why the parameters that dedicate a public range are refused.
const DEDICATION: &str = "dedicating a public range to an account, domain or project is not implemented; every range \
     serves every account";

const ZONE: Arg<Id> = Arg::opt(
    "zoneid",
    "the ID of the zone; default the physical network's zone",
);
const PHYSNET: Arg<Id> = Arg::opt(
    "physicalnetworkid",
    "the physical network; default the zone's one carrying Public traffic",
);
const VLAN: Arg<Text> = Arg::opt(
    "vlan",
    "the VLAN of the range: a number, vlan://<n> or untagged (default)",
);
const GATEWAY: Arg<Text> = Arg::req("gateway", "the gateway of the range's subnet");
const NETMASK: Arg<Text> = Arg::req("netmask", "the netmask of the range's subnet");
const START: Arg<Text> = Arg::req("startip", "the first address of the range");
const END: Arg<Text> = Arg::opt("endip", "the last address of the range; default startip");
const FOR_VIRTUAL_NETWORK: Arg<Flag> = Arg::opt(
    "forvirtualnetwork",
    "true (default): public IPs of virtual networks; false is not supported",
);
const ACCOUNT: Arg<Text> =
    Arg::opt("account", "refused: ranges are not dedicated to accounts").refused(DEDICATION);
const DOMAIN: Arg<Id> =
    Arg::opt("domainid", "refused: ranges are not dedicated to domains").refused(DEDICATION);
const PROJECT: Arg<Id> =
    Arg::opt("projectid", "refused: ranges are not dedicated to projects").refused(DEDICATION);

/// `createVlanIpRange`.
pub struct CreateVlanIpRange {
    zone: Option<Uuid>,
    physnet: Option<Uuid>,
    vlan: Option<String>,
    gateway: String,
    netmask: String,
    start: String,
    end: Option<String>,
    for_virtual_network: Option<bool>,
}

impl Command for CreateVlanIpRange {
    const NAME: &'static str = "createVlanIpRange";

    fn spec() -> Spec {
        Spec::new("Creates a public IP range in a zone")
            .roles(ROOT)
            .param(ZONE)
            .param(PHYSNET)
            .param(VLAN)
            .param(GATEWAY)
            .param(NETMASK)
            .param(START)
            .param(END)
            .param(FOR_VIRTUAL_NETWORK)
            .param(ACCOUNT)
            .param(DOMAIN)
            .param(PROJECT)
            .returns("vlan", RANGE_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(CreateVlanIpRange {
            zone: args.get(&ZONE)?,
            physnet: args.get(&PHYSNET)?,
            vlan: args.get(&VLAN)?,
            gateway: args.need(&GATEWAY)?,
            netmask: args.need(&NETMASK)?,
            start: args.need(&START)?,
            end: args.get(&END)?,
            for_virtual_network: args.get(&FOR_VIRTUAL_NETWORK)?,
        })
    }
}

impl SyncCommand for CreateVlanIpRange {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        if self.for_virtual_network == Some(false) {
            return Err(Error::invalid(
                "Only ranges for virtual networks (forvirtualnetwork=true) are supported",
            ));
        }
        let db = &ctx.app.db;
        let zone_given = zone_param(ctx, self.zone, ZONE.name()).await?;
        let physnet_given = physnet_param(ctx, self.physnet, PHYSNET.name()).await?;
        let (z, pn) = match (zone_given, physnet_given) {
            (Some(z), Some(pn)) => {
                if pn.zone_id != z.id {
                    return Err(Error::invalid(format!(
                        "The physical network {} is not in zone {}",
                        pn.uuid, z.uuid
                    )));
                }
                (z, pn)
            }
            (None, Some(pn)) => {
                let z = zone::get_by_id(db, pn.zone_id)
                    .await?
                    .filter(|z| z.removed.is_none())
                    .ok_or_else(|| Error::invalid("The physical network's zone was deleted"))?;
                (z, pn)
            }
            (Some(z), None) => {
                let pn = zone::physical_network_for_traffic(db, z.id, "Public")
                    .await?
                    .ok_or_else(|| {
                        Error::invalid(format!(
                            "The zone {} has no physical network carrying Public traffic; \
                             add the Public traffic type first",
                            z.uuid
                        ))
                    })?;
                (z, pn)
            }
            (None, None) => return Err(Error::missing_param(Self::NAME, ZONE.name())),
        };
        let carried = zone::traffic_types(db, pn.id).await?;
        if !carried.iter().any(|t| t.traffic_type == "Public") {
            return Err(Error::invalid(format!(
                "The physical network {} does not carry Public traffic",
                pn.uuid
            )));
        }
        let vlan_id = normalize_public_vlan(self.vlan.as_deref())?;
        let range = check_range(&RangeText {
            gateway: &self.gateway,
            netmask: &self.netmask,
            start: &self.start,
            end: self.end.as_deref(),
        })?;
        // Every range of one subnet must agree on the VLAN, gateway and netmask.
        let existing = vlan::list_ranges(db, Some(z.id), Page::ALL).await?;
        for other in &existing.items {
            let other_subnet = ipnet::ipv4_mask_to_prefix(other.netmask)
                .ok()
                .and_then(|prefix| ipnet::Ipv4Net::new(other.gateway, prefix).ok())
                .map(|n| n.trunc());
            let Some(other_subnet) = other_subnet else {
                continue;
            };
            let shares =
                other_subnet.contains(&range.subnet) || range.subnet.contains(&other_subnet);
            if shares
                && (other.vlan_id != vlan_id
                    || other.gateway != range.gateway
                    || other.netmask != range.netmask)
            {
                return Err(Error::invalid(format!(
                    "The subnet {} overlaps the range {}-{} (vlan {}, gateway {}, netmask {}); \
                     ranges of one subnet must use the same vlan, gateway and netmask",
                    range.subnet,
                    other.start_ip,
                    other.end_ip,
                    other.vlan_id,
                    other.gateway,
                    other.netmask
                )));
            }
        }
        if let Some(other) = vlan::overlapping_range(db, z.id, range.start, range.end).await? {
            return Err(Error::invalid(format!(
                "The IP range {}-{} overlaps the existing range {}-{} of zone {}",
                range.start, range.end, other.start_ip, other.end_ip, z.uuid
            )));
        }
        let created = vlan::create_range(
            db,
            vlan::NewVlanRange {
                zone_id: z.id,
                physical_network_id: Some(pn.id),
                vlan_id,
                gateway: range.gateway,
                netmask: range.netmask,
                start_ip: range.start,
                end_ip: range.end,
            },
        )
        .await
        .map_err(|e| match e {
            // Overlap found by the store inside its transaction (a concurrent create).
            store::StoreError::Conflict(why) => Error::invalid(why),
            other => other.into(),
        })?;
        Ok(Reply::Object(range_view(db, &created).await?))
    }
}
