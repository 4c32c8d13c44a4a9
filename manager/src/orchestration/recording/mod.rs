//! Test doubles: an agent client and a router driver that record what they
//! are asked to do, the VPC virtual router element over them, and in-memory
//! vnet and address allocators; [`sample`] views to feed them.
//!
//! Kept whole because its doubles (agent, driver, element, allocators) are used together by every
//! orchestration test.

pub mod sample;

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use ipnet::Ipv4Net;
use uuid::Uuid;
use vpc_proto::v1 as pb;

use super::agent::{
    AgentClient, AgentCommand, AgentEndpoint, AgentError, AgentReply, DriverError, RouterDriver,
};
use super::element::VpcVirtualRouterElement;
use super::guru::{AddressAllocator, GuruError, VnetAllocator};
use super::model::{RouterNicView, RouterView, VmView};
use crate::future::BoxFuture;

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
    /// While set, every command waits here before it is answered (a router
    /// that takes its time), until [`RecordingAgentClient::release`].
    held: Mutex<Option<Arc<tokio::sync::Semaphore>>>,
    /// The ACL counters every GetState answers with.
    acl_counters: Mutex<Vec<pb::AclItemCounters>>,
    /// The ACL edits asked for (kept apart from `sent`: see `answer`).
    edits: Mutex<Vec<(String, AgentCommand)>>,
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

    /// Makes every later command wait until [`RecordingAgentClient::release`].
    pub fn hold(&self) {
        *lock(&self.held) = Some(Arc::new(tokio::sync::Semaphore::new(0)));
    }

    /// Lets held and later commands through.
    pub fn release(&self) {
        if let Some(gate) = lock(&self.held).take() {
            gate.close();
        }
    }

    /// Makes every later GetState answer with these ACL counters.
    pub fn set_acl_counters(&self, counters: Vec<pb::AclItemCounters>) {
        *lock(&self.acl_counters) = counters;
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

    /// The ACL edits (EditNetworkAcl) asked for so far, each refused.
    pub fn edits(&self) -> Vec<(String, AgentCommand)> {
        lock(&self.edits).clone()
    }

    /// The commands sent so far, without router names.
    pub fn commands(&self) -> Vec<AgentCommand> {
        lock(&self.sent).iter().map(|(_, c)| c.clone()).collect()
    }

    /// The RPC names sent so far, in order.
    pub fn rpcs(&self) -> Vec<&'static str> {
        lock(&self.sent).iter().map(|(_, c)| c.rpc()).collect()
    }

    /// Forgets the commands sent so far (and the edits asked for).
    pub fn clear(&self) {
        lock(&self.sent).clear();
        lock(&self.edits).clear();
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
    fn send<'a>(
        &'a self,
        router: &'a RouterView,
        command: AgentCommand,
    ) -> BoxFuture<'a, Result<AgentReply, AgentError>> {
        Box::pin(async move {
            let gate = lock(&self.held).clone();
            if let Some(gate) = gate {
                // Closed by `release`: the wait ends with an error, by design.
                let _ = gate.acquire().await;
            }
            self.answer(router, command)
        })
    }
}

impl RecordingAgentClient {
    /// Records `command` and answers it the way an agent would.
    ///
    /// This agent keeps no lists, so it takes no ACL edit: it answers each
    /// as an agent that does not hold the edit's base, and the manager then
    /// sends the whole list. Edits are recorded apart ([`Self::edits`]), so
    /// `sent` is the sequence of commands the router ends up applying.
    fn answer(&self, router: &RouterView, command: AgentCommand) -> Result<AgentReply, AgentError> {
        if let AgentCommand::EditNetworkAcl(_) = &command {
            lock(&self.edits).push((router.name.clone(), command));
            return Err(AgentError::NotAtBase(
                "the recording agent keeps no lists".into(),
            ));
        }
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
                acl_counters: lock(&self.acl_counters).clone(),
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

impl RecordingDriver {
    /// Records `call`, then fails when `operation` was made to fail (for
    /// the router or VM `name`). Runs when the returned future is first
    /// polled, as the driver's `async` methods did.
    fn run<'a, T: Send + 'a>(
        &'a self,
        call: DriverCall,
        operation: &'static str,
        name: &'a str,
        ok: impl FnOnce() -> Result<T, DriverError> + Send + 'a,
    ) -> BoxFuture<'a, Result<T, DriverError>> {
        Box::pin(async move {
            self.record(call);
            self.check(operation, name)?;
            ok()
        })
    }
}

impl RouterDriver for RecordingDriver {
    fn hypervisor(&self) -> &'static str {
        SIMULATOR
    }

    fn start_router<'a>(
        &'a self,
        router: &'a RouterView,
    ) -> BoxFuture<'a, Result<AgentEndpoint, DriverError>> {
        let call = DriverCall::StartRouter(router.name.clone());
        self.run(call, "start_router", &router.name, || {
            let socket = format!("/run/vpc/{}.sock", router.name);
            Ok(AgentEndpoint::UnixSocket(PathBuf::from(socket)))
        })
    }

    fn stop_router<'a>(&'a self, router: &'a RouterView) -> BoxFuture<'a, Result<(), DriverError>> {
        let call = DriverCall::StopRouter(router.name.clone());
        self.run(call, "stop_router", &router.name, || Ok(()))
    }

    fn destroy_router<'a>(
        &'a self,
        router: &'a RouterView,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        let call = DriverCall::DestroyRouter(router.name.clone());
        self.run(call, "destroy_router", &router.name, || Ok(()))
    }

    fn plug_nic<'a>(
        &'a self,
        router: &'a RouterView,
        nic: &'a RouterNicView,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        let call = DriverCall::PlugNic(router.name.clone(), nic.device_index, nic.mac.clone());
        self.run(call, "plug_nic", &router.name, || {
            if *lock(&self.fail_plug) {
                return Err(DriverError(format!(
                    "cannot plug eth{} into {}",
                    nic.device_index, router.name
                )));
            }
            Ok(())
        })
    }

    fn unplug_nic<'a>(
        &'a self,
        router: &'a RouterView,
        nic: &'a RouterNicView,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        let call = DriverCall::UnplugNic(router.name.clone(), nic.device_index, nic.mac.clone());
        self.run(call, "unplug_nic", &router.name, || Ok(()))
    }

    fn start_vm<'a>(&'a self, vm: &'a VmView) -> BoxFuture<'a, Result<(), DriverError>> {
        let call = DriverCall::StartVm(vm.instance_name.clone());
        self.run(call, "start_vm", &vm.instance_name, || Ok(()))
    }

    fn stop_vm<'a>(&'a self, vm: &'a VmView) -> BoxFuture<'a, Result<(), DriverError>> {
        let call = DriverCall::StopVm(vm.instance_name.clone());
        self.run(call, "stop_vm", &vm.instance_name, || Ok(()))
    }

    fn destroy_vm<'a>(&'a self, vm: &'a VmView) -> BoxFuture<'a, Result<(), DriverError>> {
        let call = DriverCall::DestroyVm(vm.instance_name.clone());
        self.run(call, "destroy_vm", &vm.instance_name, || Ok(()))
    }
}

/// The VPC virtual router element over a recording agent client and driver
/// that stay at hand: the element holds them only as trait objects, and a
/// test asserts on what they recorded. Derefs to the element.
pub struct RecordedElement {
    element: VpcVirtualRouterElement,
    agent: Arc<RecordingAgentClient>,
    driver: Arc<RecordingDriver>,
}

impl RecordedElement {
    pub fn new(agent: RecordingAgentClient, driver: RecordingDriver) -> Self {
        let agent = Arc::new(agent);
        let driver = Arc::new(driver);
        RecordedElement {
            element: VpcVirtualRouterElement::new(agent.clone(), driver.clone()),
            agent,
            driver,
        }
    }

    /// The agent client the element sends to.
    pub fn agent(&self) -> &RecordingAgentClient {
        &self.agent
    }

    /// The driver the element calls.
    pub fn driver(&self) -> &RecordingDriver {
        &self.driver
    }
}

impl Deref for RecordedElement {
    type Target = VpcVirtualRouterElement;

    fn deref(&self) -> &VpcVirtualRouterElement {
        &self.element
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
