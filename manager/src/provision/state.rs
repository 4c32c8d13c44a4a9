//! Builds a router's whole [`RouterState`] from the store: the VPC, the
//! router and its NICs, the implemented tiers, public IPs, private gateways,
//! the ACL lists in use, static routes, NAT and LB rules and DHCP leases.
//! Only what belongs on the router is included (live rules, plugged tiers).
//!
//! (Over 400 lines: one loader of the router's whole state, one statement
//! per table; its views are next to move into their own file.)

use std::net::{IpAddr, Ipv4Addr};

use uuid::Uuid;

use crate::error::Error;
use crate::orchestration::model::{
    AclAction, AclItemView, AclListView, AclProtocol, AclTraffic, DhcpEntryView, L4Protocol,
    LbAlgorithm, LbBackendView, LbRuleView, NicRole, PortForwardView, PrivateGatewayView,
    PublicIpView, RouterNicView, RouterState, RouterView, RuleState, StaticNatView,
    StaticRouteView, StickinessMethod, StickinessView, TierDhcpView, TierView, TierVmDataView,
    VmDataView, VpcView,
};
use crate::store::{self, Db, Page, acl, gateway, network, router, rule, vlan, vm, vpc};

use super::vpc_router;

fn corrupt(what: &str, value: &str) -> Error {
    Error::internal(format!("stored {what} {value:?} is not valid"))
}

/// The VPC's allocated public addresses.
async fn allocated_ips(db: &Db, vpc_id: i64) -> Result<Vec<vlan::PublicIp>, Error> {
    let filter = vlan::PublicIpFilter {
        vpc_id: Some(vpc_id),
        state: Some(vlan::IP_ALLOCATED.into()),
        ..Default::default()
    };
    Ok(vlan::list_ips(db, &filter, Page::ALL).await?.items)
}

fn prefix(netmask: Option<Ipv4Addr>) -> Result<u8, Error> {
    let mask = netmask.unwrap_or(Ipv4Addr::BROADCAST);
    ipnet::ipv4_mask_to_prefix(mask).map_err(|_| corrupt("netmask", &mask.to_string()))
}

fn rule_state(text: &str) -> RuleState {
    match text {
        "Staged" => RuleState::Staged,
        "Add" => RuleState::Add,
        "Active" => RuleState::Active,
        _ => RuleState::Revoke,
    }
}

fn index(i: i64) -> u32 {
    u32::try_from(i).unwrap_or_default()
}

fn nic_role(role: &str) -> NicRole {
    match role {
        router::ROLE_PUBLIC => NicRole::Public,
        router::ROLE_PRIVATE => NicRole::Private,
        router::ROLE_CONTROL => NicRole::Control,
        _ => NicRole::Guest,
    }
}

/// The state of the VPC's live router, or None when the VPC has none.
pub async fn load(db: &Db, vpc_id: i64) -> Result<Option<RouterState>, Error> {
    let Some(r) = vpc_router(db, vpc_id).await? else {
        return Ok(None);
    };
    load_router(db, &r).await
}

/// What an edit-form push reads of the ACL lists (see
/// [`load_edit`]): of list `list_id`, only the items `item_ids`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EditScope {
    pub list_id: i64,
    pub item_ids: Vec<i64>,
}

/// The state of the VPC's live router as an edit of a few ACL items needs
/// it: the VPC, the router and its NICs, the tiers and private gateways on
/// it, and the ACL lists in use, of whose items only the scope's, live or
/// not (a revoked one is sent as taken out); the other lists have no items.
/// What an edit does not send (DHCP leases, VM data, public addresses,
/// routes, NAT and LB rules, the VPN) is left empty. At 10,000 items this
/// reads a few rows instead of every item of every list.
pub async fn load_edit(
    db: &Db,
    vpc_id: i64,
    scope: &EditScope,
) -> Result<Option<RouterState>, Error> {
    let Some(r) = vpc_router(db, vpc_id).await? else {
        return Ok(None);
    };
    load_router_with(db, &r, Some(scope)).await
}

/// The state of one router of a VPC (during a restart with cleanup a VPC
/// has two), or None when its VPC is gone.
pub async fn load_router(db: &Db, r: &router::Router) -> Result<Option<RouterState>, Error> {
    load_router_with(db, r, None).await
}

/// [`load_router`], with only the items of `edit` when given.
async fn load_router_with(
    db: &Db,
    r: &router::Router,
    edit: Option<&EditScope>,
) -> Result<Option<RouterState>, Error> {
    let Some(vpc_id) = r.vpc_id else {
        return Ok(None);
    };
    let Some(v) = vpc::get_by_id(db, vpc_id).await? else {
        return Ok(None);
    };
    let (nics, networks) = nics_and_networks(db, r.id, vpc_id).await?;

    // The zone's row gives the VPC's zone id and the resolvers it falls
    // back to; the router's zone is read again only when it differs.
    let vpc_zone = store::zone::get_by_id(db, v.zone_id)
        .await?
        .ok_or_else(|| corrupt("zone id", &v.zone_id.to_string()))?;
    let public_mtu = u32::try_from(v.public_mtu)
        .map_err(|_| corrupt("public MTU", &v.public_mtu.to_string()))?;
    let mut router_nics = Vec::new();
    for n in &nics {
        let (network_id, broadcast_uri) = network_of(db, n.network_id, &networks).await?;
        let role = nic_role(&n.role);
        router_nics.push(RouterNicView {
            device_index: index(n.device_index),
            mac: n.mac_address.clone(),
            role,
            network_id,
            broadcast_uri: match role {
                NicRole::Control => None,
                NicRole::Public => broadcast_uri.or_else(|| Some("untagged".into())),
                _ => broadcast_uri,
            },
            ip: n.ip4_address.map(IpAddr::V4),
            prefix: prefix(n.netmask)?,
            gateway: n.gateway.map(IpAddr::V4),
            // The VPC's `publicmtu` is the public NIC's (CloudStack's
            // "MTU configured on the public interfaces of the VPC VR").
            mtu: if role == NicRole::Public {
                public_mtu
            } else {
                0
            },
        });
    }
    let vpc_zone_id = vpc_zone.uuid;
    let router_view = RouterView {
        id: r.uuid,
        name: r.name.clone(),
        zone_id: if r.zone_id == v.zone_id {
            vpc_zone_id
        } else {
            zone_uuid(db, r.zone_id).await?
        },
        generation: u64::try_from(r.config_generation).unwrap_or_default(),
        nics: router_nics,
        host: host_url(db, r.host_id).await?,
    };

    let domain = v.network_domain.clone().unwrap_or_default();
    let dns_servers = upstream_resolvers(&v, &vpc_zone);
    let plugged = plugged_tiers(&networks, &nics);
    let gateway_rows = live_gateways(db, vpc_id, &nics).await?;
    // Every ACL list in use, with its items, in two statements.
    let acl_ids = acl_ids_in_use(&plugged, &gateway_rows);
    let acl_lists = load_acl_lists(db, &acl_ids, edit).await?;
    let acl_uuid = |id: i64| -> Result<Uuid, Error> {
        acl_ids
            .iter()
            .position(|x| *x == id)
            .map(|i| acl_lists[i].id)
            .ok_or_else(|| corrupt("ACL list id", &id.to_string()))
    };
    // An edit sends the ACL alone: no leases, VM data, addresses or rules.
    let whole = edit.is_none();
    let tier_ids: Vec<i64> = plugged.iter().map(|(t, _)| t.id).collect();
    let (leases, vm_rows) = if whole {
        (
            store::batch::dhcp_entries(db, &tier_ids).await?,
            store::vmdata::for_tiers(db, &tier_ids).await?,
        )
    } else {
        Default::default()
    };
    // Two settings more per load, only when some VM reads them.
    let cloud = if vm_rows.is_empty() {
        Default::default()
    } else {
        cloud_metadata(db).await?
    };
    let mut vm_data = Vec::new();

    let mut tiers = Vec::new();
    let mut dhcp = Vec::new();
    for (t, nic) in &plugged {
        let cidr = t.cidr.ok_or_else(|| corrupt("tier CIDR", ""))?;
        let gateway = t.gateway.ok_or_else(|| corrupt("tier gateway", ""))?;
        let acl_id = t.network_acl_id.map(acl_uuid).transpose()?;
        let tier_uuid = t.uuid;
        tiers.push(TierView {
            id: tier_uuid,
            name: t.name.clone(),
            cidr,
            gateway,
            domain: t.network_domain.clone().unwrap_or_else(|| domain.clone()),
            dns_servers: dns_servers.clone(),
            mtu: 0,
            broadcast_uri: t.broadcast_uri.clone(),
            acl_id,
            device_index: index(nic.device_index),
            mac: nic.mac_address.clone(),
        });
        if !whole {
            continue;
        }
        let entries = leases
            .iter()
            .filter(|e| e.network_id == t.id)
            .map(|e| {
                Ok(DhcpEntryView {
                    mac: e.mac.clone(),
                    ip: e.ip,
                    hostname: e.hostname.clone(),
                    default_gateway: e.default_nic,
                    ip6: None,
                    duid: None,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        dhcp.push(TierDhcpView {
            tier_id: tier_uuid,
            entries,
        });
        vm_data.push(TierVmDataView {
            tier_id: tier_uuid,
            vms: vm_rows
                .iter()
                .filter(|r| r.network_id == t.id)
                .map(|r| vm_data_view(r, &cloud))
                .collect::<Result<Vec<_>, Error>>()?,
        });
    }

    let private_gateways = load_gateways(db, &gateway_rows, &networks, &acl_uuid).await?;
    let mut state = RouterState {
        vpc: VpcView {
            id: v.uuid,
            name: v.name.clone(),
            cidr: v.cidr,
            network_domain: domain,
            zone_id: vpc_zone_id,
        },
        router: router_view,
        tiers,
        public_ips: Vec::new(),
        private_gateways,
        acl_lists,
        static_routes: Vec::new(),
        port_forwards: Vec::new(),
        static_nats: Vec::new(),
        lb_rules: Vec::new(),
        dhcp,
        vm_data,
        vpn: None,
    };
    if whole {
        let allocated = allocated_ips(db, v.id).await?;
        state.public_ips = load_public_ips(db, &allocated, &nics).await?;
        state.static_routes = load_routes(db, vpc_id, &state.private_gateways).await?;
        (state.port_forwards, state.lb_rules) = load_rules(db, vpc_id).await?;
        state.static_nats = public_ips_static_nat(&allocated)?;
        state.vpn = super::vpn::load(db, vpc_id).await?;
    }
    Ok(Some(state))
}

/// The NICs of router `router_id` and the networks of VPC `vpc_id`.
async fn nics_and_networks(
    db: &Db,
    router_id: i64,
    vpc_id: i64,
) -> Result<(Vec<router::Nic>, Vec<network::Network>), Error> {
    let nics = router::nics_of(db, router::NicOwner::Router(router_id)).await?;
    let networks = network::list(
        db,
        &network::NetworkFilter {
            vpc_id: Some(vpc_id),
            ..Default::default()
        },
        Page::ALL,
    )
    .await?
    .items;
    Ok((nics, networks))
}

/// The guest tiers plugged into the router (a guest NIC on it), with
/// their NIC: only those are on it.
fn plugged_tiers<'a>(
    networks: &'a [network::Network],
    nics: &'a [router::Nic],
) -> Vec<(&'a network::Network, &'a router::Nic)> {
    networks
        .iter()
        .filter(|n| n.traffic_type == network::TRAFFIC_GUEST)
        .filter_map(|t| {
            nics.iter()
                .find(|n| n.network_id == t.id && n.role == router::ROLE_GUEST)
                .map(|nic| (t, nic))
        })
        .collect()
}

/// The ACL lists (row ids, sorted, distinct) of the plugged tiers and live
/// private gateways: the lists on the router.
fn acl_ids_in_use(
    plugged: &[(&network::Network, &router::Nic)],
    gateways: &[(gateway::PrivateGateway, &router::Nic)],
) -> Vec<i64> {
    let mut ids: Vec<i64> = plugged
        .iter()
        .filter_map(|(t, _)| t.network_acl_id)
        .chain(gateways.iter().filter_map(|(g, _)| g.network_acl_id))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The ACL lists (row ids, sorted) on the VPC's live router, as [`load`]
/// would name them in `acl_lists`, read from the router's NICs, the VPC's
/// tiers and private gateways alone: whether a change of a list's items
/// reaches the router, without reading any item.
pub async fn acl_lists_on_router(db: &Db, vpc_id: i64) -> Result<Vec<i64>, Error> {
    let Some(r) = vpc_router(db, vpc_id).await? else {
        return Ok(Vec::new());
    };
    if vpc::get_by_id(db, vpc_id).await?.is_none() {
        return Ok(Vec::new());
    }
    let (nics, networks) = nics_and_networks(db, r.id, vpc_id).await?;
    let gateways = live_gateways(db, vpc_id, &nics).await?;
    Ok(acl_ids_in_use(&plugged_tiers(&networks, &nics), &gateways))
}

/// What every VM reads alike: (`cloud-identifier`, `hypervisor-host-name`).
async fn cloud_metadata(db: &Db) -> Result<(String, String), Error> {
    let identifier = store::config::value(db, "cloud.identifier")
        .await?
        .filter(|v| !v.is_empty())
        .map(|v| format!("CloudStack-{{{v}}}"))
        .unwrap_or_default();
    // Routers and VMs run on this host (the netns driver).
    let host = if store::config::value_bool(db, "global.allow.expose.host.hostname")
        .await?
        .unwrap_or(false)
    {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok((identifier, host))
}

/// What one VM NIC reads from the router, from its stored row. A password
/// no key of this process opens is left out (and logged): the VM then gets
/// none rather than a wrong one.
fn vm_data_view(
    r: &store::vmdata::TierVmRow,
    cloud: &(String, String),
) -> Result<VmDataView, Error> {
    let password = if r.password.is_empty() {
        String::new()
    } else {
        crate::store::secret::open_with_ring(&r.password).unwrap_or_else(|| {
            tracing::error!(vm = %r.vm_uuid, "the VM's password does not open with any database key of this process");
            String::new()
        })
    };
    Ok(VmDataView {
        mac: r.mac.clone(),
        ip: r.ip,
        vm_id: r.vm_uuid,
        hostname: r.hostname.clone(),
        service_offering: r.service_offering.clone(),
        zone_name: r.zone_name.clone(),
        user_data: crate::services::userdata::decode_stored(&r.user_data),
        public_keys: r
            .public_keys
            .lines()
            .filter(|k| !k.trim().is_empty())
            .map(str::to_owned)
            .collect(),
        password,
        details: crate::services::userdata::stored_details(&r.user_data_details),
        cloud_identifier: cloud.0.clone(),
        hypervisor_host_name: cloud.1.clone(),
    })
}

/// The upstream resolvers of the router's DNS, which the tiers' DHCP also
/// hands out after the router: the VPC's `dns1`/`dns2` when createVPC was
/// given them, else the zone's (CloudStack: "if not provided, the DNS
/// specified for the zone is used").
pub fn upstream_resolvers(v: &vpc::Vpc, zone: &store::zone::Zone) -> Vec<String> {
    let (dns1, dns2) = if v.dns1.as_deref().is_some_and(|d| !d.is_empty()) {
        (&v.dns1, &v.dns2)
    } else {
        (&zone.dns1, &zone.dns2)
    };
    [dns1, dns2]
        .into_iter()
        .flatten()
        // Both were checked as addresses when given; one that is not would
        // make the agent refuse the whole configuration.
        .filter_map(|d| d.trim().parse::<IpAddr>().ok())
        .map(|d| d.to_string())
        .collect()
}

/// The UUID and broadcast URI of a network.
async fn network_of(
    db: &Db,
    id: i64,
    known: &[network::Network],
) -> Result<(Uuid, Option<String>), Error> {
    if let Some(n) = known.iter().find(|n| n.id == id) {
        return Ok((n.uuid, n.broadcast_uri.clone()));
    }
    let n = network::get_by_id(db, id)
        .await?
        .ok_or_else(|| corrupt("network id", &id.to_string()))?;
    Ok((n.uuid, n.broadcast_uri))
}

/// The UUID of a zone.
pub async fn zone_uuid(db: &Db, id: i64) -> Result<Uuid, Error> {
    let z = store::zone::get_by_id(db, id)
        .await?
        .ok_or_else(|| corrupt("zone id", &id.to_string()))?;
    Ok(z.uuid)
}

/// The ACL lists `ids` (sorted, distinct) with their live items, in the
/// same order, in two statements.
async fn load_acl_lists(
    db: &Db,
    ids: &[i64],
    edit: Option<&EditScope>,
) -> Result<Vec<AclListView>, Error> {
    let lists = store::batch::acl_lists(db, ids).await?;
    let items = match edit {
        None => store::batch::acl_items(db, ids).await?,
        Some(e) => store::batch::acl_items_among(db, e.list_id, &e.item_ids).await?,
    };
    let mut views = Vec::new();
    for id in ids {
        let list = lists
            .iter()
            .find(|l| l.id == *id)
            .ok_or_else(|| corrupt("ACL list id", &id.to_string()))?;
        let mut item_views = Vec::new();
        for i in items.iter().filter(|i| i.acl_id == *id) {
            item_views.push(acl_item_view(i)?);
        }
        views.push(AclListView {
            id: list.uuid,
            name: list.name.clone(),
            items: item_views,
        });
    }
    Ok(views)
}

/// The view of a stored ACL item.
pub fn acl_item_view(i: &acl::AclItem) -> Result<AclItemView, Error> {
    let protocol = match i.protocol.to_ascii_lowercase().as_str() {
        "all" => AclProtocol::All,
        "tcp" => AclProtocol::Tcp,
        "udp" => AclProtocol::Udp,
        "icmp" => AclProtocol::Icmp,
        n => AclProtocol::Number(n.parse().map_err(|_| corrupt("ACL protocol", n))?),
    };
    let port = |p: Option<i64>| p.and_then(|p| u16::try_from(p).ok());
    Ok(AclItemView {
        id: i.uuid,
        number: u32::try_from(i.number).unwrap_or_default(),
        action: if i.action.eq_ignore_ascii_case("deny") {
            AclAction::Deny
        } else {
            AclAction::Allow
        },
        traffic: if i.traffic_type.eq_ignore_ascii_case("egress") {
            AclTraffic::Egress
        } else {
            AclTraffic::Ingress
        },
        protocol,
        cidrs: i.cidrs().into_iter().map(str::to_string).collect(),
        start_port: port(i.start_port),
        end_port: port(i.end_port),
        icmp_type: i.icmp_type.and_then(|v| i32::try_from(v).ok()),
        icmp_code: i.icmp_code.and_then(|v| i32::try_from(v).ok()),
        state: rule_state(i.state.as_str()),
    })
}

/// The VPC's private gateways that are on the router (a private NIC, not
/// being deleted), with their NIC.
async fn live_gateways<'n>(
    db: &Db,
    vpc_id: i64,
    nics: &'n [router::Nic],
) -> Result<Vec<(gateway::PrivateGateway, &'n router::Nic)>, Error> {
    let gateways = gateway::of_vpc(db, vpc_id).await?;
    Ok(gateways
        .into_iter()
        .filter(|g| g.state != gateway::GATEWAY_DELETING)
        .filter_map(|g| {
            nics.iter()
                .find(|n| n.network_id == g.network_id && n.role == router::ROLE_PRIVATE)
                .map(|nic| (g, nic))
        })
        .collect())
}

async fn load_gateways(
    db: &Db,
    gateways: &[(gateway::PrivateGateway, &router::Nic)],
    networks: &[network::Network],
    acl_uuid: &(dyn Fn(i64) -> Result<Uuid, Error> + Sync),
) -> Result<Vec<PrivateGatewayView>, Error> {
    let mut views = Vec::new();
    for (g, nic) in gateways {
        let acl_id = g.network_acl_id.map(acl_uuid).transpose()?;
        let (network_id, _) = network_of(db, g.network_id, networks).await?;
        views.push(PrivateGatewayView {
            id: g.uuid,
            network_id,
            ip: g.ip4_address,
            prefix: prefix(Some(g.netmask))?,
            gateway: g.gateway,
            vlan: g.broadcast_uri.clone(),
            source_nat_supported: g.source_nat,
            acl_id,
            device_index: index(nic.device_index),
            mac: nic.mac_address.clone(),
            mtu: 0,
        });
    }
    Ok(views)
}

async fn load_public_ips(
    db: &Db,
    ips: &[vlan::PublicIp],
    nics: &[router::Nic],
) -> Result<Vec<PublicIpView>, Error> {
    let Some(public_nic) = nics.iter().find(|n| n.role == router::ROLE_PUBLIC) else {
        return Ok(Vec::new());
    };
    // A VPC's addresses come from a few ranges: each is read once.
    let mut ranges: Vec<vlan::VlanRange> = Vec::new();
    let mut views = Vec::new();
    for ip in ips {
        if !ranges.iter().any(|r| r.id == ip.vlan_db_id) {
            let range = vlan::range_by_id(db, ip.vlan_db_id)
                .await?
                .ok_or_else(|| corrupt("public range id", &ip.vlan_db_id.to_string()))?;
            ranges.push(range);
        }
        let range = ranges
            .iter()
            .find(|r| r.id == ip.vlan_db_id)
            .ok_or_else(|| corrupt("public range id", &ip.vlan_db_id.to_string()))?;
        views.push(PublicIpView {
            id: ip.uuid,
            address: ip.public_ip_address,
            prefix: prefix(Some(range.netmask))?,
            gateway: range.gateway,
            nic_index: index(public_nic.device_index),
            mac: public_nic.mac_address.clone(),
            source_nat: ip.source_nat,
            one_to_one_nat: ip.one_to_one_nat,
            private_gateway: false,
            vlan: range.vlan_id.clone(),
            add: true,
        });
    }
    // The source-NAT address first: the agent makes the first address of
    // the public NIC its primary one.
    views.sort_by_key(|ip| !ip.source_nat);
    Ok(views)
}

async fn load_routes(
    db: &Db,
    vpc_id: i64,
    gateways: &[PrivateGatewayView],
) -> Result<Vec<StaticRouteView>, Error> {
    let routes = gateway::list_routes(
        db,
        &gateway::RouteFilter {
            vpc_id: Some(vpc_id),
            ..Default::default()
        },
        Page::ALL,
    )
    .await?
    .items;
    let mut views = Vec::new();
    for r in routes {
        let state = rule_state(r.state.as_str());
        if !state.is_live() {
            continue;
        }
        let gateway_row = match r.vpc_gateway_id {
            Some(id) => gateway::get_by_id(db, id).await?,
            None => None,
        };
        let gateway_ip = gateway_row.as_ref().map(|g| g.ip4_address);
        // A route through a gateway that is not on the router is not either.
        if let Some(ip) = gateway_ip
            && !gateways.iter().any(|g| g.ip == ip)
        {
            continue;
        }
        let next_hop = match (&r.next_hop, &gateway_row) {
            (Some(hop), _) => *hop,
            (None, Some(g)) => g.gateway,
            (None, None) => continue,
        };
        views.push(StaticRouteView {
            id: r.uuid,
            cidr: r.cidr,
            next_hop,
            gateway_ip,
            state,
        });
    }
    Ok(views)
}

fn l4(protocol: &str) -> Result<L4Protocol, Error> {
    match protocol.to_ascii_lowercase().as_str() {
        "tcp" => Ok(L4Protocol::Tcp),
        "udp" => Ok(L4Protocol::Udp),
        other => Err(corrupt("rule protocol", other)),
    }
}

fn port(p: Option<i64>) -> u16 {
    p.and_then(|p| u16::try_from(p).ok()).unwrap_or_default()
}

fn cidr_list(text: Option<&str>) -> Vec<String> {
    text.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

async fn load_rules(
    db: &Db,
    vpc_id: i64,
) -> Result<(Vec<PortForwardView>, Vec<LbRuleView>), Error> {
    let rules = rule::list(
        db,
        &rule::RuleFilter {
            vpc_id: Some(vpc_id),
            ..Default::default()
        },
        Page::ALL,
    )
    .await?
    .items;
    let ips = vlan::list_ips(
        db,
        &vlan::PublicIpFilter {
            vpc_id: Some(vpc_id),
            ..Default::default()
        },
        Page::ALL,
    )
    .await?
    .items;
    let lb_ids: Vec<i64> = rules
        .iter()
        .filter(|r| {
            r.purpose == rule::PURPOSE_LOAD_BALANCING && rule_state(r.state.as_str()).is_live()
        })
        .map(|r| r.id)
        .collect();
    let members = store::batch::lb_members(db, &lb_ids).await?;
    let policies = store::lb_sticky::of_rules(db, &lb_ids).await?;
    let mut forwards = Vec::new();
    let mut balancers = Vec::new();
    for r in rules {
        let state = rule_state(r.state.as_str());
        if !state.is_live() {
            continue;
        }
        let ip = ips
            .iter()
            .find(|ip| ip.id == r.ip_address_id)
            .ok_or_else(|| corrupt("rule address id", &r.ip_address_id.to_string()))?;
        let public_ip = ip.public_ip_address;
        match r.purpose {
            rule::PURPOSE_PORT_FORWARDING => forwards.push(PortForwardView {
                id: r.uuid,
                public_ip,
                protocol: l4(&r.protocol)?,
                public_start_port: port(r.start_port),
                public_end_port: port(r.end_port.or(r.start_port)),
                private_ip: r.dest_ip.ok_or_else(|| corrupt("forward target", ""))?,
                private_start_port: port(r.dest_start_port),
                private_end_port: port(r.dest_end_port.or(r.dest_start_port)),
                source_cidrs: cidr_list(r.source_cidrs.as_deref()),
                state,
            }),
            rule::PURPOSE_LOAD_BALANCING => {
                let Some(lb) = rule::load_balancer(db, r.id).await? else {
                    continue;
                };
                let mut backends = Vec::new();
                for member in members.iter().filter(|m| m.load_balancer_id == r.id) {
                    // The VM's UUID names the backend in the agent's logs.
                    let vm_id = match &member.vm_uuid {
                        Some(uuid) => *uuid,
                        None => Uuid::nil(),
                    };
                    backends.push(LbBackendView {
                        vm_id,
                        ip: member.instance_ip,
                        port: None,
                    });
                }
                balancers.push(LbRuleView {
                    id: r.uuid,
                    name: lb.name,
                    public_ip,
                    protocol: l4(&r.protocol)?,
                    public_port: u16::try_from(lb.public_port).unwrap_or_default(),
                    private_port: u16::try_from(lb.private_port).unwrap_or_default(),
                    algorithm: LbAlgorithm::parse(&lb.algorithm)
                        .ok_or_else(|| corrupt("LB algorithm", &lb.algorithm))?,
                    backends,
                    source_cidrs: cidr_list(r.source_cidrs.as_deref()),
                    state,
                    stickiness: policies
                        .iter()
                        .find(|p| p.load_balancer_id == r.id)
                        .and_then(|p| {
                            Some(StickinessView {
                                method: StickinessMethod::parse(&p.method_name)?,
                                params: p.param_pairs(),
                            })
                        }),
                });
            }
            _ => {}
        }
    }
    Ok((forwards, balancers))
}

/// Static NAT: every address of the VPC with one-to-one NAT and a VM address.
fn public_ips_static_nat(ips: &[vlan::PublicIp]) -> Result<Vec<StaticNatView>, Error> {
    let mut views = Vec::new();
    for ip in ips.iter().filter(|ip| ip.one_to_one_nat) {
        let Some(vm_ip) = ip.vm_ip else {
            continue;
        };
        views.push(StaticNatView {
            id: ip.uuid,
            public_ip: ip.public_ip_address,
            private_ip: vm_ip,
            state: RuleState::Active,
        });
    }
    Ok(views)
}

/// A VM as the driver runs it: its NICs with their tiers' bridges.
pub async fn vm_view(db: &Db, v: &vm::Vm) -> Result<crate::orchestration::model::VmView, Error> {
    use crate::orchestration::model::{VmNicView, VmView};
    let nics = router::nics_of(db, router::NicOwner::Vm(v.id)).await?;
    let mut views = Vec::new();
    for n in &nics {
        let (network_id, broadcast_uri) = network_of(db, n.network_id, &[]).await?;
        views.push(VmNicView {
            device_index: index(n.device_index),
            mac: n.mac_address.clone(),
            network_id,
            broadcast_uri,
            ip: n.ip4_address,
            prefix: prefix(n.netmask)?,
            gateway: n.gateway,
            default: n.device_index == 0,
        });
    }
    Ok(VmView {
        id: v.uuid,
        hostname: v.name.clone(),
        instance_name: v.instance_name.clone(),
        zone_id: zone_uuid(db, v.zone_id).await?,
        nics: views,
        host: host_url(db, v.host_id).await?,
    })
}

/// The host agent URL of the host `host_id` (None: no host recorded, the
/// manager's default host agent).
pub async fn host_url(db: &Db, host_id: Option<i64>) -> Result<Option<String>, Error> {
    let Some(id) = host_id else {
        return Ok(None);
    };
    Ok(crate::store::host::get_by_id(db, id).await?.map(|h| h.url))
}
