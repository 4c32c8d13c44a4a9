//! Routers: a namespace with one veth per NIC and a supervised `vr-agent`.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use vpc_proto::v1 as pb;
use vpc_proto::v1::virtual_router_client::VirtualRouterClient;

use super::error::{NetnsError, Result};
use super::links::{self, Port};
use super::names::{self, Segment};
use super::process::{Prepare, ProcessSpec, Supervisor};
use super::{AGENT_TCP_PORT, Inner, connect, ip};
use crate::orchestration::agent::AgentEndpoint;
use crate::orchestration::model::{NicRole, RouterNicView, RouterView};
use crate::settings::AgentTransport;

/// The longest Unix socket path (`sun_path` is 108 bytes with the NUL).
const SUN_PATH_MAX: usize = 107;

/// How long one readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How much of the agent's log an error shows.
const LOG_TAIL: usize = 2000;

impl Inner {
    pub(super) async fn start_router(self: &Arc<Self>, view: &RouterView) -> Result<AgentEndpoint> {
        names::check_object_name("router", &view.name)?;
        self.state().standby.remove(&view.name);
        self.start_router_as_set(view).await
    }

    /// Starts the router with its guest, public and private ports off their
    /// segments ([`Port::standby`]); [`Self::activate_router`] ends it.
    pub(super) async fn start_router_standby(
        self: &Arc<Self>,
        view: &RouterView,
    ) -> Result<AgentEndpoint> {
        names::check_object_name("router", &view.name)?;
        self.state().standby.insert(view.name.clone());
        self.start_router_as_set(view).await
    }

    /// Puts a router's ports onto their segments (ending a standby), then
    /// announces the addresses of its NICs: the neighbours keep the same
    /// MACs for them, but the bridges between them and this host learnt
    /// those MACs behind another host's port and must hear from them here.
    pub(super) async fn activate_router(self: &Arc<Self>, view: &RouterView) -> Result<()> {
        names::check_object_name("router", &view.name)?;
        let ns = self.names.router_ns(&view.name);
        if !ip::exists(&ns) {
            return Err(NetnsError::Invalid(format!(
                "router {} is not running (no namespace {ns})",
                view.name
            )));
        }
        {
            let mut state = self.state();
            state.standby.remove(&view.name);
            state.routers.insert(view.name.clone(), view.clone());
        }
        self.ensure_router_topology(&view.name).await?;
        let announce = view
            .nics
            .iter()
            .filter(|n| n.role != NicRole::Control)
            .map(|n| names::normalize_mac(&n.mac))
            .collect::<Result<Vec<_>>>()?;
        super::garp::announce(&ns, &announce).await
    }

    async fn start_router_as_set(self: &Arc<Self>, view: &RouterView) -> Result<AgentEndpoint> {
        let ns = self.names.router_ns(&view.name);
        self.state().routers.insert(view.name.clone(), view.clone());
        self.ensure_router_topology(&view.name).await?;
        let endpoint = self.agent_endpoint(view)?;
        if !self.is_supervised(&ns) {
            let spec = self.agent_spec(view)?;
            let state_dir = self.router_dir(&view.name).join("state");
            let state_arg = state_dir.display().to_string();
            let listen = self.listen_arg(view);
            // An agent left by an earlier manager is adopted; one of this
            // router with other settings is stopped first, so two agents
            // never share the state directory.
            let adopt = spec.find_running(&[&state_arg, &listen]).await;
            if adopt.is_none() {
                spec.stop_strays(&[&state_arg]).await;
            }
            let supervisor = Supervisor::start(
                spec,
                adopt,
                Some(self.router_repair(&view.name)),
                self.halted.clone(),
            )?;
            self.state()
                .supervisors
                .insert(ns.clone(), vec![supervisor]);
        }
        if let Err(e) = self.wait_ready(&view.name, &endpoint).await {
            let _ = self.stop_router(view).await;
            return Err(e);
        }
        self.endpoints.set(&view.name, endpoint.clone());
        Ok(endpoint)
    }

    pub(super) async fn stop_router(&self, view: &RouterView) -> Result<()> {
        names::check_object_name("router", &view.name)?;
        self.endpoints.remove(&view.name);
        {
            let mut state = self.state();
            state.routers.remove(&view.name);
            state.standby.remove(&view.name);
        }
        let ns = self.names.router_ns(&view.name);
        self.remove_ns(&ns, Some(&view.zone_id)).await
    }

    pub(super) fn remove_router_files(&self, router: &str) -> Result<()> {
        names::check_object_name("router", router)?;
        remove_dir(&self.router_dir(router))
    }

    pub(super) async fn plug_nic(&self, view: &RouterView, nic: &RouterNicView) -> Result<()> {
        names::check_object_name("router", &view.name)?;
        let ns = self.names.router_ns(&view.name);
        if !ip::exists(&ns) {
            return Err(NetnsError::Invalid(format!(
                "router {} is not running (no namespace {ns})",
                view.name
            )));
        }
        self.remember_nic(view, Some(nic));
        let standby = self.state().standby.contains(&view.name);
        let _topology = self.topology.lock().await;
        self.plug_router_nic(&ns, &view.zone_id, nic, standby).await
    }

    pub(super) async fn unplug_nic(&self, view: &RouterView, nic: &RouterNicView) -> Result<()> {
        names::check_object_name("router", &view.name)?;
        let ns = self.names.router_ns(&view.name);
        let mac = names::normalize_mac(&nic.mac)?;
        {
            let mut state = self.state();
            if let Some(r) = state.routers.get_mut(&view.name) {
                r.nics.retain(|n| !n.mac.eq_ignore_ascii_case(&mac));
            }
        }
        let zone_ns = self.names.zone_ns(&view.zone_id);
        let _topology = self.topology.lock().await;
        let zone = ip::links_if_exists(&zone_ns).await?;
        let target = ip::links_if_exists(&ns).await?;
        let zone_port = names::zone_port(&mac)?;
        ip::apply(&links::unplug(
            &zone_ns, &zone, &ns, &target, &mac, &zone_port,
        ))
        .await?;
        NetnsError::collect(self.collect_bridges(&zone_ns).await)
    }

    /// Keeps the driver's copy of a router's NICs current, so a repair
    /// re-creates what was plugged last.
    fn remember_nic(&self, view: &RouterView, nic: Option<&RouterNicView>) {
        let mut state = self.state();
        let router = state
            .routers
            .entry(view.name.clone())
            .or_insert_with(|| view.clone());
        if let Some(nic) = nic {
            router.nics.retain(|n| {
                !n.mac.eq_ignore_ascii_case(&nic.mac) && n.device_index != nic.device_index
            });
            router.nics.push(nic.clone());
        }
    }

    /// Creates what the router needs, from the driver's copy of its view:
    /// the zone, the upstream of each public NIC, the namespace and every
    /// NIC; removes NICs no longer in the view. Idempotent; it also repairs
    /// a router whose namespace was deleted.
    async fn ensure_router_topology(&self, router: &str) -> Result<()> {
        let Some(view) = self.state().routers.get(router).cloned() else {
            return Ok(());
        };
        let ns = self.names.router_ns(&view.name);
        let _topology = self.topology.lock().await;
        self.ensure_zone(&view.zone_id).await?;
        // With an underlay the public segment spans hosts through the
        // fabric, which leads to the real upstream: no zone has its own.
        let own_upstream = self.underlay.is_none();
        for nic in view
            .nics
            .iter()
            .filter(|n| own_upstream && n.role == NicRole::Public)
        {
            if let (Some(IpAddr::V4(gateway)), Some(uri)) = (nic.gateway, &nic.broadcast_uri) {
                let segment = Segment::from_uri(Some(uri))?;
                let cidr = format!("{gateway}/{}", nic.prefix);
                self.ensure_upstream(&view.zone_id, segment, &cidr).await?;
            }
        }
        ip::ensure(&ns).await?;
        let macs = view
            .nics
            .iter()
            .map(|n| names::normalize_mac(&n.mac))
            .collect::<Result<Vec<_>>>()?;
        let own = ip::links(&ns).await?;
        ip::apply(&links::prune(&ns, &own, &macs)).await?;
        let standby = self.state().standby.contains(&view.name);
        for nic in &view.nics {
            self.plug_router_nic(&ns, &view.zone_id, nic, standby)
                .await?;
        }
        Ok(())
    }

    /// Plugs one NIC; the caller holds the topology lock.
    async fn plug_router_nic(
        &self,
        ns: &str,
        zone: &uuid::Uuid,
        nic: &RouterNicView,
        standby: bool,
    ) -> Result<()> {
        let segment = match nic.role {
            NicRole::Control => Segment::Control,
            _ if nic.broadcast_uri.is_none() => {
                return Err(NetnsError::Invalid(format!(
                    "NIC {} ({}) has no broadcast URI: its network is not implemented",
                    nic.device_index, nic.mac
                )));
            }
            _ => Segment::from_uri(nic.broadcast_uri.as_deref())?,
        };
        let zone_ns = self.ensure_zone(zone).await?;
        let mac = names::normalize_mac(&nic.mac)?;
        // The control NIC carries the agent's TCP listener: its address must
        // be there before the agent's first config, so the driver sets it.
        let control = match (nic.role, nic.ip) {
            (NicRole::Control, Some(IpAddr::V4(ip))) => Some(format!("{ip}/{}", nic.prefix)),
            _ => None,
        };
        self.plug_port(&Port {
            zone_ns,
            zone_port: names::zone_port(&mac)?,
            segment,
            target_ns: ns.to_string(),
            ifname: names::nic_ifname(nic.device_index),
            mac: Some(mac),
            mtu: nic.mtu,
            up: control.is_some(),
            vtep: self.vtep(),
            // The control NIC is the manager's way to the agent: never off.
            standby: standby && nic.role != NicRole::Control,
            addresses: control.into_iter().collect(),
        })
        .await
    }

    /// Re-creates the router's namespace and NICs before the agent restarts.
    fn router_repair(self: &Arc<Self>, router: &str) -> Prepare {
        let inner = Arc::downgrade(self);
        let router = router.to_string();
        Arc::new(move || {
            let inner = inner.clone();
            let router = router.clone();
            Box::pin(async move {
                match inner.upgrade() {
                    Some(inner) => inner.ensure_router_topology(&router).await,
                    None => Ok(()),
                }
            })
        })
    }

    fn socket_path(&self, router: &str) -> PathBuf {
        self.router_dir(router).join("agent.sock")
    }

    pub(super) fn listen_arg(&self, view: &RouterView) -> String {
        match self.transport {
            AgentTransport::Unix => format!("unix://{}", self.socket_path(&view.name).display()),
            // Every address of the namespace: the control NIC's (a router
            // VM's) and the loopback (reached through connect_in_netns).
            AgentTransport::Tcp => format!("tcp://0.0.0.0:{AGENT_TCP_PORT}"),
        }
    }

    /// Where the agent is reached: the Unix socket, or the control NIC's
    /// address (the loopback without one) inside the router's namespace.
    pub(super) fn agent_endpoint(&self, view: &RouterView) -> Result<AgentEndpoint> {
        Ok(match self.transport {
            AgentTransport::Unix => {
                let path = self.socket_path(&view.name);
                if path.as_os_str().len() > SUN_PATH_MAX {
                    return Err(NetnsError::Invalid(format!(
                        "the agent socket path {} is longer than {SUN_PATH_MAX} bytes; \
                         use a shorter data directory",
                        path.display()
                    )));
                }
                AgentEndpoint::UnixSocket(path)
            }
            AgentTransport::Tcp => {
                let control = view
                    .nics
                    .iter()
                    .filter(|n| n.role == NicRole::Control)
                    .find_map(|n| match n.ip {
                        Some(IpAddr::V4(ip)) => Some(ip),
                        _ => None,
                    });
                let ip = control.unwrap_or(Ipv4Addr::LOCALHOST);
                AgentEndpoint::Tcp(SocketAddr::new(IpAddr::V4(ip), AGENT_TCP_PORT))
            }
        })
    }

    /// The agent's command line; writes its TLS files for the TCP transport.
    pub(super) fn agent_spec(&self, view: &RouterView) -> Result<ProcessSpec> {
        let executable = std::fs::metadata(&self.agent_path)
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
        if !executable {
            return Err(NetnsError::Invalid(format!(
                "the router agent {} is missing or not executable (build it with \
                 `cargo build -p vr-agent`, or set agent_path)",
                self.agent_path.display()
            )));
        }
        check_searchable(&self.data_dir)?;
        let dir = self.router_dir(&view.name);
        let state_dir = dir.join("state");
        // Searchable by others, not listable: dnsmasq, started by the
        // agent, drops to `nobody` and re-reads its files in the state dir.
        for d in [&dir, &state_dir] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o711)
                .create(d)
                .map_err(|e| NetnsError::io(format!("creating {}", d.display()), e))?;
        }
        let mut argv = vec![
            self.agent_path.display().to_string(),
            "--listen".into(),
            self.listen_arg(view),
            "--state-dir".into(),
            state_dir.display().to_string(),
        ];
        if self.transport == AgentTransport::Tcp {
            argv.extend(self.write_tls(&view.name, &dir)?);
        }
        argv.extend(self.agent_args.iter().cloned());
        Ok(ProcessSpec {
            label: format!("agent of {}", view.name),
            ns: self.names.router_ns(&view.name),
            argv,
            pid_file: dir.join("agent.pid"),
            log_file: dir.join("agent.log"),
        })
    }

    /// Writes the router's certificate, key and CA (mode 0600) and returns
    /// the agent's TLS arguments.
    fn write_tls(&self, router: &str, dir: &Path) -> Result<Vec<String>> {
        let provider = self.tls.as_ref().ok_or_else(|| {
            NetnsError::Invalid("the TCP agent transport needs TLS material".into())
        })?;
        let (cert, key, ca) = provider(router).map_err(|e| {
            NetnsError::Invalid(format!("issuing the certificate of router {router}: {e:#}"))
        })?;
        let tls = dir.join("tls");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&tls)
            .map_err(|e| NetnsError::io(format!("creating {}", tls.display()), e))?;
        let mut args = Vec::new();
        for (flag, file, pem) in [
            ("--tls-cert", "agent.pem", cert),
            ("--tls-key", "agent.key", key),
            ("--tls-ca", "ca.pem", ca),
        ] {
            let path = tls.join(file);
            write_private(&path, &pem)?;
            args.push(flag.to_string());
            args.push(path.display().to_string());
        }
        // The agent admits only the client certificate that names the
        // manager (and is limited to client authentication).
        args.push("--tls-client-name".into());
        args.push(crate::pki::CLIENT_NAME.into());
        Ok(args)
    }

    /// Waits until the agent answers: GetState over the Unix socket, or a
    /// TCP connection from inside the namespace (the TLS handshake needs the
    /// manager's client certificate, which the agent client holds).
    async fn wait_ready(&self, router: &str, endpoint: &AgentEndpoint) -> Result<()> {
        let ns = self.names.router_ns(router);
        let deadline = tokio::time::Instant::now() + self.ready_timeout;
        loop {
            let ready = match endpoint {
                AgentEndpoint::UnixSocket(path) => {
                    path.exists()
                        && tokio::time::timeout(PROBE_TIMEOUT, get_state(path))
                            .await
                            .is_ok_and(|r| r)
                }
                AgentEndpoint::Tcp(addr) => {
                    tokio::time::timeout(PROBE_TIMEOUT, connect::connect_in_netns_async(&ns, *addr))
                        .await
                        .is_ok_and(|r| r.is_ok())
                }
                // Only a manager's host driver makes relayed endpoints.
                AgentEndpoint::Relay { .. } => false,
            };
            if ready {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(NetnsError::NotReady {
                    router: router.to_string(),
                    timeout: self.ready_timeout,
                    log: log_tail(&self.router_dir(router).join("agent.log")),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Whether the agent on `socket` answers GetState.
async fn get_state(socket: &Path) -> bool {
    let Ok(channel) = vpc_proto::channel::unix(socket.to_path_buf()).await else {
        return false;
    };
    VirtualRouterClient::new(channel)
        .get_state(pb::GetStateRequest::default())
        .await
        .is_ok()
}

/// The end of a log file.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(LOG_TAIL);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    text[start..].to_string()
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, text: &str) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| NetnsError::io(format!("writing {}", path.display()), e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| NetnsError::io(format!("writing {}", path.display()), e))?;
    // An older file keeps its mode through open(): set it.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| NetnsError::io(format!("protecting {}", path.display()), e))
}

/// Removes a directory tree; a missing one is fine.
pub(super) fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(NetnsError::io(format!("removing {}", dir.display()), e)),
    }
}

/// dnsmasq, started by the agent, drops to `nobody` and re-reads its files
/// in the router's state directory: the data directory and every parent
/// must be searchable by others (mode o+x). Refused early with the fix.
fn check_searchable(data_dir: &Path) -> Result<()> {
    let absolute = std::path::absolute(data_dir)
        .map_err(|e| NetnsError::io(format!("resolving {}", data_dir.display()), e))?;
    for dir in absolute.ancestors() {
        let Ok(meta) = std::fs::metadata(dir) else {
            // Not created yet: create_dir_all gives it 0755 under umask 022.
            continue;
        };
        if meta.permissions().mode() & 0o001 == 0 {
            return Err(NetnsError::Invalid(format!(
                "{} is not searchable by other users (mode {:o}); dnsmasq in the routers \
                 runs as nobody and reads its files below {}: `chmod o+x {}`",
                dir.display(),
                meta.permissions().mode() & 0o7777,
                data_dir.display(),
                dir.display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_dir_dnsmasq_cannot_traverse_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let data = dir.path().join("data");
        let err = check_searchable(&data).unwrap_err().to_string();
        assert!(err.contains("chmod o+x"), "{err}");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        check_searchable(&data).unwrap();
    }
}
