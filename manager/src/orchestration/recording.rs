//! Test doubles: an agent client and a router driver that record what they
//! are asked to do, and in-memory vnet and address allocators.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Mutex;

use ipnet::Ipv4Net;
use uuid::Uuid;
use vpc_proto::v1 as pb;

use super::agent::{
    AgentClient, AgentCommand, AgentEndpoint, AgentError, AgentReply, DriverError, RouterDriver,
};
use super::guru::{AddressAllocator, BoxFuture, GuruError, VnetAllocator};
use super::model::{RouterNicView, RouterView, VmView};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An agent client that records every command and answers like an agent
/// would about generations: a lower generation than the applied one is
/// refused.
#[derive(Debug, Default)]
pub struct RecordingAgentClient {
    sent: Mutex<Vec<(String, AgentCommand)>>,
    /// The generation each router has applied (by name).
    applied: Mutex<HashMap<String, u64>>,
    /// What a router not heard of yet has applied.
    initial: Mutex<u64>,
    /// The router that got the last command.
    last: Mutex<Option<String>>,
    failures: Mutex<HashMap<&'static str, AgentError>>,
}

impl RecordingAgentClient {
    pub fn new() -> Self {
        Self::default()
    }

    /// An agent that has already applied `generation`.
    pub fn at_generation(generation: u64) -> Self {
        let client = Self::default();
        *lock(&client.initial) = generation;
        client
    }

    /// Makes every later `rpc` fail with `error`.
    pub fn fail(&self, rpc: &'static str, error: AgentError) {
        lock(&self.failures).insert(rpc, error);
    }

    /// Makes `rpc` succeed again.
    pub fn unfail(&self, rpc: &str) {
        lock(&self.failures).remove(rpc);
    }

    /// The commands sent so far (router name, command).
    pub fn sent(&self) -> Vec<(String, AgentCommand)> {
        lock(&self.sent).clone()
    }

    /// The commands sent so far, without router names.
    pub fn commands(&self) -> Vec<AgentCommand> {
        lock(&self.sent).iter().map(|(_, c)| c.clone()).collect()
    }

    /// The RPC names sent so far, in order.
    pub fn rpcs(&self) -> Vec<&'static str> {
        lock(&self.sent).iter().map(|(_, c)| c.rpc()).collect()
    }

    /// Forgets the commands sent so far.
    pub fn clear(&self) {
        lock(&self.sent).clear();
    }

    /// The generation the router that got the last command has applied
    /// (the initial one before any command).
    pub fn applied_generation(&self) -> u64 {
        match lock(&self.last).as_ref() {
            Some(name) => self.applied_by(name),
            None => *lock(&self.initial),
        }
    }

    /// Router `name`'s agent forgets its state, as an agent restarted with
    /// an empty state directory would: it reports generation 0.
    pub fn reset_router(&self, name: &str) {
        lock(&self.applied).insert(name.to_string(), 0);
    }

    /// The generation router `name` has applied.
    pub fn applied_by(&self, name: &str) -> u64 {
        lock(&self.applied)
            .get(name)
            .copied()
            .unwrap_or_else(|| *lock(&self.initial))
    }
}

impl AgentClient for RecordingAgentClient {
    async fn send(
        &self,
        router: &RouterView,
        command: AgentCommand,
    ) -> Result<AgentReply, AgentError> {
        lock(&self.sent).push((router.name.clone(), command.clone()));
        if let Some(error) = lock(&self.failures).get(command.rpc()) {
            return Err(error.clone());
        }
        *lock(&self.last) = Some(router.name.clone());
        let initial = *lock(&self.initial);
        let mut routers = lock(&self.applied);
        let applied = routers.entry(router.name.clone()).or_insert(initial);
        match command.generation() {
            None => Ok(AgentReply::State(Box::new(pb::GetStateResponse {
                generation: *applied,
                ..Default::default()
            }))),
            Some(sent) if sent < *applied => Err(AgentError::StaleGeneration {
                sent,
                applied: *applied,
            }),
            Some(sent) => {
                let unchanged = sent == *applied;
                *applied = sent;
                Ok(AgentReply::Applied(pb::ApplyResponse {
                    generation: sent,
                    apply_micros: 1,
                    unchanged,
                    ..Default::default()
                }))
            }
        }
    }
}

/// One call a driver received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverCall {
    StartRouter(String),
    StopRouter(String),
    DestroyRouter(String),
    /// Router name, device index, MAC.
    PlugNic(String, u32, String),
    UnplugNic(String, u32, String),
    /// VM instance name.
    StartVm(String),
    StopVm(String),
    DestroyVm(String),
}

/// The `hypervisor` of routers on the [`RecordingDriver`]: CloudStack's
/// simulator hypervisor type, which also runs nothing.
pub const SIMULATOR: &str = "Simulator";

/// A driver that records calls; routers' agents are at `/run/vpc/<name>.sock`.
#[derive(Debug, Default)]
pub struct RecordingDriver {
    calls: Mutex<Vec<DriverCall>>,
    fail_plug: Mutex<bool>,
    failing: Mutex<BTreeSet<&'static str>>,
}

impl RecordingDriver {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn calls(&self) -> Vec<DriverCall> {
        lock(&self.calls).clone()
    }

    /// Makes NIC plugging fail.
    pub fn fail_plug(&self) {
        *lock(&self.fail_plug) = true;
    }

    /// Makes every later call of `operation` fail: `start_router`,
    /// `stop_router`, `destroy_router`, `plug_nic` or `unplug_nic`.
    pub fn fail(&self, operation: &'static str) {
        lock(&self.failing).insert(operation);
    }

    /// Makes `operation` succeed again.
    pub fn unfail(&self, operation: &str) {
        lock(&self.failing).remove(operation);
        if operation == "plug_nic" {
            *lock(&self.fail_plug) = false;
        }
    }

    /// Forgets the calls so far.
    pub fn clear(&self) {
        lock(&self.calls).clear();
    }

    fn record(&self, call: DriverCall) {
        lock(&self.calls).push(call);
    }

    fn check(&self, operation: &'static str, router: &str) -> Result<(), DriverError> {
        if lock(&self.failing).contains(operation) {
            return Err(DriverError(format!("{operation} failed for {router}")));
        }
        Ok(())
    }
}

impl RouterDriver for RecordingDriver {
    fn hypervisor(&self) -> &'static str {
        SIMULATOR
    }

    async fn start_router(&self, router: &RouterView) -> Result<AgentEndpoint, DriverError> {
        self.record(DriverCall::StartRouter(router.name.clone()));
        self.check("start_router", &router.name)?;
        Ok(AgentEndpoint::UnixSocket(PathBuf::from(format!(
            "/run/vpc/{}.sock",
            router.name
        ))))
    }

    async fn stop_router(&self, router: &RouterView) -> Result<(), DriverError> {
        self.record(DriverCall::StopRouter(router.name.clone()));
        self.check("stop_router", &router.name)
    }

    async fn destroy_router(&self, router: &RouterView) -> Result<(), DriverError> {
        self.record(DriverCall::DestroyRouter(router.name.clone()));
        self.check("destroy_router", &router.name)
    }

    async fn plug_nic(&self, router: &RouterView, nic: &RouterNicView) -> Result<(), DriverError> {
        self.record(DriverCall::PlugNic(
            router.name.clone(),
            nic.device_index,
            nic.mac.clone(),
        ));
        self.check("plug_nic", &router.name)?;
        if *lock(&self.fail_plug) {
            return Err(DriverError(format!(
                "cannot plug eth{} into {}",
                nic.device_index, router.name
            )));
        }
        Ok(())
    }

    async fn unplug_nic(
        &self,
        router: &RouterView,
        nic: &RouterNicView,
    ) -> Result<(), DriverError> {
        self.record(DriverCall::UnplugNic(
            router.name.clone(),
            nic.device_index,
            nic.mac.clone(),
        ));
        self.check("unplug_nic", &router.name)
    }

    async fn start_vm(&self, vm: &VmView) -> Result<(), DriverError> {
        self.record(DriverCall::StartVm(vm.instance_name.clone()));
        self.check("start_vm", &vm.instance_name)
    }

    async fn stop_vm(&self, vm: &VmView) -> Result<(), DriverError> {
        self.record(DriverCall::StopVm(vm.instance_name.clone()));
        self.check("stop_vm", &vm.instance_name)
    }

    async fn destroy_vm(&self, vm: &VmView) -> Result<(), DriverError> {
        self.record(DriverCall::DestroyVm(vm.instance_name.clone()));
        self.check("destroy_vm", &vm.instance_name)
    }
}

/// A vnet range per physical network, in memory.
#[derive(Debug, Default)]
pub struct MemoryVnetAllocator {
    ranges: HashMap<Uuid, (u32, u32)>,
    taken: HashMap<Uuid, BTreeSet<u32>>,
}

impl MemoryVnetAllocator {
    /// One physical network with the vnet range `first..=last`.
    pub fn with_range(physical_network_id: Uuid, first: u32, last: u32) -> Self {
        let mut a = Self::default();
        a.ranges.insert(physical_network_id, (first, last));
        a
    }

    /// The vnets in use on a physical network.
    pub fn taken(&self, physical_network_id: Uuid) -> Vec<u32> {
        self.taken
            .get(&physical_network_id)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }
}

impl VnetAllocator for MemoryVnetAllocator {
    fn acquire_vnet(
        &mut self,
        physical_network_id: Uuid,
        _network_id: Uuid,
    ) -> BoxFuture<'_, Result<u32, GuruError>> {
        Box::pin(async move {
            let (first, last) = *self
                .ranges
                .get(&physical_network_id)
                .ok_or(GuruError::NoFreeVnet(physical_network_id))?;
            let taken = self.taken.entry(physical_network_id).or_default();
            let vnet = (first..=last)
                .find(|v| !taken.contains(v))
                .ok_or(GuruError::NoFreeVnet(physical_network_id))?;
            taken.insert(vnet);
            Ok(vnet)
        })
    }

    fn release_vnet(
        &mut self,
        physical_network_id: Uuid,
        vnet: u32,
    ) -> BoxFuture<'_, Result<(), GuruError>> {
        Box::pin(async move {
            if let Some(taken) = self.taken.get_mut(&physical_network_id) {
                taken.remove(&vnet);
            }
            Ok(())
        })
    }
}

/// Addresses and MACs in memory.
#[derive(Debug, Default)]
pub struct MemoryAddressAllocator {
    used: HashMap<Uuid, BTreeSet<Ipv4Addr>>,
    next_mac: u32,
}

impl MemoryAddressAllocator {
    pub fn new() -> Self {
        Self::default()
    }

    /// The addresses in use on a network.
    pub fn used(&self, network_id: Uuid) -> Vec<Ipv4Addr> {
        self.used
            .get(&network_id)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }
}

impl AddressAllocator for MemoryAddressAllocator {
    fn allocate_ip(
        &mut self,
        network_id: Uuid,
        cidr: Ipv4Net,
        requested: Option<Ipv4Addr>,
        excluded: Vec<Ipv4Addr>,
    ) -> BoxFuture<'_, Result<Ipv4Addr, GuruError>> {
        Box::pin(async move {
            let used = self.used.entry(network_id).or_default();
            let ip = match requested {
                Some(ip) if used.contains(&ip) || excluded.contains(&ip) => {
                    return Err(GuruError::Allocator(format!("{ip} is already in use")));
                }
                Some(ip) => ip,
                None => cidr
                    .hosts()
                    .find(|ip| !used.contains(ip) && !excluded.contains(ip))
                    .ok_or(GuruError::NoFreeAddress(cidr))?,
            };
            used.insert(ip);
            Ok(ip)
        })
    }

    fn release_ip(
        &mut self,
        network_id: Uuid,
        ip: Ipv4Addr,
    ) -> BoxFuture<'_, Result<(), GuruError>> {
        Box::pin(async move {
            if let Some(used) = self.used.get_mut(&network_id) {
                used.remove(&ip);
            }
            Ok(())
        })
    }

    fn allocate_mac(&mut self, _network_id: Uuid) -> BoxFuture<'_, Result<String, GuruError>> {
        Box::pin(async move {
            self.next_mac += 1;
            let n = self.next_mac;
            Ok(format!(
                "02:00:{:02x}:{:02x}:{:02x}:{:02x}",
                (n >> 24) & 0xff,
                (n >> 16) & 0xff,
                (n >> 8) & 0xff,
                n & 0xff
            ))
        })
    }
}

/// Sample views shared by tests: a VPC 10.1.0.0/16 whose router `r-1-VM`
/// (generation 7) has a control NIC (eth0), a public NIC (eth1), two tiers
/// `web` (eth2, 10.1.1.0/24) and `app` (eth3, 10.1.2.0/24) that both use ACL
/// list `acl-web`, and a private gateway (eth4, 172.16.0.10/24, VLAN 100,
/// source NAT) using list `acl-onprem`.
pub mod sample {
    use std::net::{IpAddr, Ipv4Addr};

    use uuid::Uuid;

    use crate::orchestration::model::*;

    pub const VPC: Uuid = Uuid::from_u128(0x100);
    pub const ZONE: Uuid = Uuid::from_u128(0x10);
    pub const ROUTER: Uuid = Uuid::from_u128(0x200);
    pub const WEB: Uuid = Uuid::from_u128(0x302);
    pub const APP: Uuid = Uuid::from_u128(0x303);
    pub const PUBLIC_NET: Uuid = Uuid::from_u128(0x301);
    pub const CONTROL_NET: Uuid = Uuid::from_u128(0x300);
    pub const GATEWAY: Uuid = Uuid::from_u128(0x400);
    pub const GATEWAY_NET: Uuid = Uuid::from_u128(0x304);
    pub const ACL_WEB: Uuid = Uuid::from_u128(0x500);
    pub const ACL_ONPREM: Uuid = Uuid::from_u128(0x501);

    /// The MAC of router NIC `index`.
    pub fn mac(index: u32) -> String {
        format!("02:00:00:00:00:{index:02x}")
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("sample address")
    }

    pub fn router() -> RouterView {
        RouterView {
            id: ROUTER,
            name: "r-1-VM".into(),
            zone_id: ZONE,
            generation: 7,
            nics: vec![
                RouterNicView {
                    device_index: 0,
                    mac: mac(0),
                    role: NicRole::Control,
                    network_id: CONTROL_NET,
                    ip: Some(IpAddr::V4(ip("169.254.3.7"))),
                    prefix: 16,
                    gateway: None,
                    mtu: 0,
                    broadcast_uri: None,
                },
                RouterNicView {
                    device_index: 1,
                    mac: mac(1),
                    role: NicRole::Public,
                    network_id: PUBLIC_NET,
                    ip: Some(IpAddr::V4(ip("203.0.113.10"))),
                    prefix: 24,
                    gateway: Some(IpAddr::V4(ip("203.0.113.1"))),
                    mtu: 1500,
                    broadcast_uri: Some("untagged".into()),
                },
            ],
        }
    }

    pub fn tier(id: Uuid, name: &str, index: u32) -> TierView {
        let n = index - 1;
        TierView {
            id,
            name: name.into(),
            cidr: format!("10.1.{n}.0/24").parse().expect("sample cidr"),
            gateway: ip(&format!("10.1.{n}.1")),
            domain: format!("{name}.vpc.internal"),
            dns_servers: vec!["192.0.2.53".into()],
            mtu: 1450,
            broadcast_uri: Some(format!("vxlan://{}", 5000 + index)),
            acl_id: Some(ACL_WEB),
            device_index: index,
            mac: mac(index),
        }
    }

    pub fn web() -> TierView {
        tier(WEB, "web", 2)
    }

    pub fn app() -> TierView {
        tier(APP, "app", 3)
    }

    pub fn acl_item(
        n: u128,
        number: u32,
        action: AclAction,
        traffic: AclTraffic,
        protocol: AclProtocol,
        cidrs: &[&str],
        ports: Option<(u16, u16)>,
    ) -> AclItemView {
        AclItemView {
            id: Uuid::from_u128(0x5000 + n),
            number,
            action,
            traffic,
            protocol,
            cidrs: cidrs.iter().map(|c| c.to_string()).collect(),
            start_port: ports.map(|p| p.0),
            end_port: ports.map(|p| p.1),
            icmp_type: None,
            icmp_code: None,
            state: RuleState::Active,
        }
    }

    /// `acl-web`, stored out of order: 30, 10, 20 and a revoked 40.
    pub fn acl_web() -> AclListView {
        use AclAction::*;
        use AclTraffic::*;
        let mut revoked = acl_item(4, 40, Deny, Ingress, AclProtocol::All, &[], None);
        revoked.state = RuleState::Revoke;
        AclListView {
            id: ACL_WEB,
            name: "acl-web".into(),
            items: vec![
                acl_item(3, 30, Allow, Egress, AclProtocol::All, &["0.0.0.0/0"], None),
                acl_item(
                    1,
                    10,
                    Allow,
                    Ingress,
                    AclProtocol::Tcp,
                    &["0.0.0.0/0"],
                    Some((80, 80)),
                ),
                acl_item(
                    2,
                    20,
                    Deny,
                    Ingress,
                    AclProtocol::Tcp,
                    &["10.0.0.0/8"],
                    Some((22, 22)),
                ),
                revoked,
            ],
        }
    }

    pub fn acl_onprem() -> AclListView {
        AclListView {
            id: ACL_ONPREM,
            name: "acl-onprem".into(),
            items: vec![acl_item(
                10,
                1,
                AclAction::Allow,
                AclTraffic::Ingress,
                AclProtocol::All,
                &["10.1.0.0/16"],
                None,
            )],
        }
    }

    pub fn private_gateway() -> PrivateGatewayView {
        PrivateGatewayView {
            id: GATEWAY,
            network_id: GATEWAY_NET,
            ip: ip("172.16.0.10"),
            prefix: 24,
            gateway: ip("172.16.0.1"),
            vlan: "vlan://100".into(),
            source_nat_supported: true,
            acl_id: Some(ACL_ONPREM),
            device_index: 4,
            mac: mac(4),
            mtu: 1500,
        }
    }

    pub fn public_ip(
        n: u128,
        address: &str,
        source_nat: bool,
        one_to_one_nat: bool,
    ) -> PublicIpView {
        PublicIpView {
            id: Uuid::from_u128(0x600 + n),
            address: ip(address),
            prefix: 24,
            gateway: ip("203.0.113.1"),
            nic_index: 1,
            mac: mac(1),
            source_nat,
            one_to_one_nat,
            private_gateway: false,
            vlan: "vlan://untagged".into(),
            add: true,
        }
    }

    pub fn public_ips() -> Vec<PublicIpView> {
        vec![
            public_ip(10, "203.0.113.10", true, false),
            public_ip(11, "203.0.113.11", false, false),
            public_ip(12, "203.0.113.12", false, true),
        ]
    }

    pub fn route(n: u128, cidr: &str, state: RuleState) -> StaticRouteView {
        StaticRouteView {
            id: Uuid::from_u128(0x700 + n),
            cidr: cidr.parse().expect("sample route"),
            next_hop: ip("172.16.0.1"),
            gateway_ip: Some(ip("172.16.0.10")),
            state,
        }
    }

    pub fn routes() -> Vec<StaticRouteView> {
        vec![
            route(1, "192.168.50.0/24", RuleState::Active),
            route(2, "192.168.60.0/24", RuleState::Revoke),
            route(3, "192.168.70.0/24", RuleState::Add),
        ]
    }

    pub fn port_forward() -> PortForwardView {
        PortForwardView {
            id: Uuid::from_u128(0x800),
            public_ip: ip("203.0.113.11"),
            protocol: L4Protocol::Tcp,
            public_start_port: 2222,
            public_end_port: 2222,
            private_ip: ip("10.1.1.5"),
            private_start_port: 22,
            private_end_port: 22,
            source_cidrs: vec![],
            state: RuleState::Active,
        }
    }

    pub fn static_nat() -> StaticNatView {
        StaticNatView {
            id: Uuid::from_u128(0x612),
            public_ip: ip("203.0.113.12"),
            private_ip: ip("10.1.2.6"),
            state: RuleState::Active,
        }
    }

    pub fn lb_rule(algorithm: LbAlgorithm) -> LbRuleView {
        LbRuleView {
            id: Uuid::from_u128(0x900),
            name: "web".into(),
            public_ip: ip("203.0.113.11"),
            protocol: L4Protocol::Tcp,
            public_port: 80,
            private_port: 8080,
            algorithm,
            backends: vec![
                LbBackendView {
                    vm_id: Uuid::from_u128(0xa01),
                    ip: ip("10.1.1.5"),
                    port: None,
                },
                LbBackendView {
                    vm_id: Uuid::from_u128(0xa02),
                    ip: ip("10.1.2.5"),
                    port: Some(8081),
                },
            ],
            source_cidrs: vec![],
            state: RuleState::Active,
        }
    }

    pub fn dhcp_entry(mac: &str, address: &str, hostname: &str) -> DhcpEntryView {
        DhcpEntryView {
            mac: mac.into(),
            ip: ip(address),
            hostname: hostname.into(),
            default_gateway: true,
            ip6: None,
            duid: None,
        }
    }

    /// The whole sample.
    pub fn state() -> RouterState {
        RouterState {
            vpc: VpcView {
                id: VPC,
                name: "vpc-1".into(),
                cidr: "10.1.0.0/16".parse().expect("sample vpc"),
                network_domain: "vpc.internal".into(),
                zone_id: Uuid::from_u128(0x1),
            },
            router: router(),
            tiers: vec![web(), app()],
            public_ips: public_ips(),
            private_gateways: vec![private_gateway()],
            acl_lists: vec![acl_web(), acl_onprem()],
            static_routes: routes(),
            port_forwards: vec![port_forward()],
            static_nats: vec![static_nat()],
            lb_rules: vec![lb_rule(LbAlgorithm::RoundRobin)],
            dhcp: vec![TierDhcpView {
                tier_id: WEB,
                entries: vec![dhcp_entry("02:00:00:00:aa:05", "10.1.1.5", "web-1")],
            }],
        }
    }
}
