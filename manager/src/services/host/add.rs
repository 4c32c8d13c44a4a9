//! `addHost`: records a host agent as a host of a zone, pod and cluster
//! (the cluster named `clustername` is made if it does not exist; with
//! neither cluster parameter, CloudStack's `Standalone-<url>` cluster).
//! The host agent must answer at `url` before anything is recorded: a host
//! agent that cannot be reached (or, over TLS, presents no certificate of
//! the cluster CA) fails the command with CloudStack's discovery error and
//! leaves no row. What it reports about itself (`Describe`) fills the row.
//!
//! Kept whole because addHost's probe, its enrollment path and its re-add of a known host agent are
//! one command's steps.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;
use vpc_proto::host::v1 as pb;

use super::add_cluster::supported_hypervisor;
use super::views::HOST_FIELDS;
use super::{cluster_by_id, host_views, pod_by_id};
use crate::error::Error;
use crate::host::HostDriver;
use crate::host::enroll::Token;
use crate::server::command::{Arg, Args, Command, Id, Spec, SyncCommand, Text, Texts};
use crate::server::registry::ROOT;
use crate::server::{Ctx, Reply};
use crate::services::zone::zone_by_id;
use crate::store::{self, host, pod};

const ZONE: Arg<Id> = Arg::req("zoneid", "the Zone ID for the host");
const POD: Arg<Id> = Arg::req("podid", "the Pod ID for the host");
const CLUSTER: Arg<Id> = Arg::opt("clusterid", "the cluster ID for the host");
const CLUSTER_NAME: Arg<Text> = Arg::opt("clustername", "the cluster name for the host");
const URL: Arg<Text> = Arg::req(
    "url",
    "the host URL: the host agent's unix:///path or https://host:port",
);
const HYPERVISOR: Arg<Text> = Arg::req("hypervisor", "hypervisor type of the host");
const USERNAME: Arg<Text> = Arg::opt("username", "the username for the host");
const PASSWORD: Arg<Text> = Arg::opt(
    "password",
    "the password for the host: a new host agent's one-time enrollment token",
);
const ALLOCATION_STATE: Arg<Text> = Arg::opt(
    "allocationstate",
    "Allocation state of this Host for allocation of new resources",
);
const HOST_TAGS: Arg<Texts> = Arg::opt(
    "hosttags",
    "list of tags to be added to the host (accepted)",
);

/// How long the host agent may take to answer when it is added.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an enrolled host agent may take to serve with its certificate.
const ENROLLED_TIMEOUT: Duration = Duration::from_secs(10);

/// `addHost`.
pub struct AddHost {
    zone: Uuid,
    pod: Uuid,
    cluster: Option<Uuid>,
    cluster_name: Option<String>,
    url: String,
    hypervisor: String,
    /// A new host agent's enrollment token.
    password: Option<String>,
    allocation_state: Option<String>,
}

impl Command for AddHost {
    const NAME: &'static str = "addHost";

    fn spec() -> Spec {
        Spec::new("Adds a new host.")
            .roles(ROOT)
            .param(ZONE)
            .param(POD)
            .param(CLUSTER)
            .param(CLUSTER_NAME)
            .param(URL)
            .param(HYPERVISOR)
            .param(USERNAME)
            .param(PASSWORD)
            .param(ALLOCATION_STATE)
            .param(HOST_TAGS)
            .returns("host", HOST_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(AddHost {
            zone: args.need(&ZONE)?,
            pod: args.need(&POD)?,
            cluster: args.get(&CLUSTER)?,
            cluster_name: args.text(&CLUSTER_NAME)?.filter(|n| !n.is_empty()),
            url: args.need(&URL)?,
            hypervisor: args.need(&HYPERVISOR)?,
            password: args.text(&PASSWORD)?.filter(|p| !p.is_empty()),
            allocation_state: args.get(&ALLOCATION_STATE)?,
        })
    }
}

/// How a host agent URL is reached.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HostUrl {
    /// Its Unix socket.
    Unix(String),
    /// TCP with mutual TLS; the host part.
    Tls(String),
}

/// Reads a host agent URL: `unix:///absolute/path` or `https://host:port`.
pub(crate) fn host_url(url: &str) -> Result<HostUrl, Error> {
    if let Some(path) = url.strip_prefix("unix://") {
        if !path.starts_with('/') || path.contains('\0') {
            return Err(Error::invalid(format!(
                "{url} is not a valid uri: unix:// needs the socket's absolute path"
            )));
        }
        return Ok(HostUrl::Unix(path.to_string()));
    }
    if let Some(rest) = url.strip_prefix("https://") {
        let bad = || {
            Error::invalid(format!(
                "{url} is not a valid uri: expected https://host:port"
            ))
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@']) {
            return Err(bad());
        }
        let (host, port) = authority.rsplit_once(':').ok_or_else(bad)?;
        port.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(bad)?;
        let host = match host.strip_prefix('[') {
            Some(v6) => v6.strip_suffix(']').ok_or_else(bad)?,
            None if host.contains(':') => return Err(bad()),
            None => host,
        };
        if host.is_empty() {
            return Err(bad());
        }
        return Ok(HostUrl::Tls(host.to_string()));
    }
    Err(Error::invalid(format!(
        "uri.scheme is not supported in {url}: use unix:///path or https://host:port"
    )))
}

/// Reaches the host agent at `url` and asks what it runs and what it is,
/// within `within`; the text says why it cannot.
async fn probe(
    pki: Option<&Arc<crate::pki::Pki>>,
    url: &str,
    parsed: &HostUrl,
    within: Duration,
) -> Result<Option<pb::DescribeResponse>, String> {
    let driver = match (parsed, pki) {
        (HostUrl::Unix(path), _) => HostDriver::unix(path, Arc::default()),
        (HostUrl::Tls(_), Some(pki)) => crate::host::tls::host_driver(url, pki, Arc::default())
            .await
            .map_err(|e| e.to_string())?,
        (HostUrl::Tls(_), None) => return Err("the cluster CA is not loaded".into()),
    };
    let asked = async {
        driver.inventory().await.map_err(|e| e.0)?;
        driver.describe().await.map_err(|e| e.0)
    };
    tokio::time::timeout(within, asked)
        .await
        .map_err(|_| format!("the host agent {url} did not answer in time"))?
}

/// Probes the host agent until it answers or [`ENROLLED_TIMEOUT`] passes
/// (an enrolled host agent switches to mutual TLS a moment after).
async fn probe_until_answered(
    pki: &Arc<crate::pki::Pki>,
    url: &str,
    parsed: &HostUrl,
) -> Result<Option<pb::DescribeResponse>, String> {
    let deadline = tokio::time::Instant::now() + ENROLLED_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match probe(Some(pki), url, parsed, left.min(PROBE_TIMEOUT)).await {
            Ok(described) => return Ok(described),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Reaches the host agent at `url` as [`probe`] does. Over TLS, when it
/// does not answer, the certificate it presents tells why: one the cluster
/// CA issued means it was enrolled here already (an earlier addHost
/// enrolled it and then did not hear from it): it proved its token then,
/// so it is waited for, with or without a token. Otherwise, with a
/// `token`, it is enrolled (it answers only enrollment until then), then
/// waited for while it switches to mutual TLS.
async fn probe_or_enroll(
    ctx: &Ctx,
    url: &str,
    parsed: &HostUrl,
    token: Option<&str>,
) -> Result<Option<pb::DescribeResponse>, String> {
    let pki = match parsed {
        HostUrl::Unix(_) => None,
        HostUrl::Tls(_) => Some(Arc::new(
            crate::pki::Pki::load_or_create(&ctx.app.settings.data_dir)
                .map_err(|e| format!("the cluster CA: {e}"))?,
        )),
    };
    let first = probe(pki.as_ref(), url, parsed, PROBE_TIMEOUT).await;
    let (Err(why), Some(pki)) = (&first, &pki) else {
        return first;
    };
    if let Ok(der) = crate::host::enroll::presented_certificate(url).await
        && crate::host::enroll::issued_by(pki, &der)
    {
        return probe_until_answered(pki, url, parsed)
            .await
            .map_err(|e| format!("it is enrolled in this cluster, but it does not answer: {e}"));
    }
    let Some(token) = token else {
        return first;
    };
    let token = Token::parse(token).map_err(|e| format!("{why}; {e}"))?;
    crate::host::enroll::enroll(url, &token, pki)
        .await
        .map_err(|e| format!("{why}; enrolling it: {e}"))?;
    probe_until_answered(pki, url, parsed)
        .await
        .map_err(|e| format!("enrolled, but it does not answer: {e}"))
}

/// This machine's name (the embedded host agent's host).
pub fn local_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

impl SyncCommand for AddHost {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let zone = zone_by_id(ctx, self.zone, ZONE.name()).await?;
        let pod = pod_by_id(ctx, self.pod, POD.name()).await?;
        if pod.data_center_id != zone.id {
            return Err(Error::invalid(format!(
                "Pod with specified podId{} doesn't belong to the zone with specified zoneId{}",
                pod.uuid, zone.uuid
            )));
        }
        if self.cluster.is_some() && self.cluster_name.is_some() {
            return Err(Error::invalid("Can't specify cluster by both id and name"));
        }
        if self.hypervisor.trim().is_empty() {
            return Err(Error::invalid("Need to specify Hypervisor Type"));
        }
        let cluster = match self.cluster {
            Some(id) => {
                let c = cluster_by_id(ctx, id, CLUSTER.name()).await?;
                if c.pod_id != pod.id {
                    return Err(Error::invalid(format!(
                        "Cluster {} does not belong to the pod {}",
                        c.uuid, pod.uuid
                    )));
                }
                Some(c)
            }
            None => None,
        };
        let resource_state = match self.allocation_state.as_deref() {
            None | Some("") => host::RESOURCE_ENABLED,
            Some(s) if s.eq_ignore_ascii_case("enabled") || s.eq_ignore_ascii_case("enable") => {
                host::RESOURCE_ENABLED
            }
            Some(s) if s.eq_ignore_ascii_case("disabled") || s.eq_ignore_ascii_case("disable") => {
                host::RESOURCE_DISABLED
            }
            Some(s) => {
                return Err(Error::invalid(format!(
                    "Invalid allocation state: {s}, only Enable/Disable are allowed"
                )));
            }
        };
        let parsed = host_url(&self.url)?;
        let discovery = |why: &str| {
            Error::internal(format!(
                "Could not add host at [{}] with zone [{}], pod [{}] and cluster [{}] due to: [{why}].",
                self.url,
                zone.uuid,
                pod.uuid,
                cluster
                    .as_ref()
                    .map(|c| c.uuid.to_string())
                    .unwrap_or_default()
            ))
        };
        let Some(hypervisor) = supported_hypervisor(ctx, &self.hypervisor) else {
            return Err(Error::internal(format!(
                "Do not support HypervisorType {} for {}",
                self.hypervisor, self.url
            )));
        };
        if host::live_by_url(db, zone.id, &self.url).await?.is_some() {
            return Err(discovery("the host is already added"));
        }
        // Nothing is recorded until the host agent has answered.
        let described = probe_or_enroll(ctx, &self.url, &parsed, self.password.as_deref())
            .await
            .map_err(|why| discovery(&why))?;
        let d = described.unwrap_or_default();
        let name = Some(d.name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| match &parsed {
                HostUrl::Unix(_) => local_host_name(),
                HostUrl::Tls(host) => host.clone(),
            });
        let underlay = Some(d.underlay_address.clone()).filter(|a| !a.is_empty());
        let ip_address = underlay.clone().or_else(|| match &parsed {
            HostUrl::Unix(_) => Some("127.0.0.1".to_string()),
            HostUrl::Tls(host) => Some(host.clone()),
        });
        let url = self.url.clone();
        let cluster_name = self.cluster_name.clone();
        let cluster_id = cluster.as_ref().map(|c| c.id);
        let new = host::NewHost {
            name,
            url: url.clone(),
            ip_address,
            zone_id: zone.id,
            pod_id: pod.id,
            cluster_id: None,
            hypervisor: hypervisor.to_string(),
            resource_state: resource_state.to_string(),
            underlay_address: underlay,
            underlay_mtu: (d.underlay_mtu > 0).then_some(i64::from(d.underlay_mtu)),
            version: Some(d.version.clone()).filter(|v| !v.is_empty()),
            cpus: (d.cpus > 0).then_some(i64::from(d.cpus)),
            ram: (d.memory_total_bytes > 0).then_some(d.memory_total_bytes as i64),
        };
        let (zone_id, pod_id) = (zone.id, pod.id);
        // The cluster (when named) and the host in one transaction: a host
        // that cannot be recorded leaves no new cluster behind.
        let created = db
            .transaction(move |tx| {
                Box::pin(async move {
                    let cluster_id = match cluster_id {
                        Some(id) => id,
                        None => {
                            let name = cluster_name.unwrap_or_else(|| format!("Standalone-{url}"));
                            match pod::cluster_by_name(&mut *tx, pod_id, &name).await? {
                                Some(c) => c.id,
                                None => {
                                    pod::create_cluster(
                                        &mut *tx,
                                        pod::NewCluster {
                                            name,
                                            pod_id,
                                            zone_id,
                                            hypervisor: new.hypervisor.clone(),
                                            cluster_type: "CloudManaged".into(),
                                            allocation_state: "Enabled".into(),
                                        },
                                    )
                                    .await?
                                    .id
                                }
                            }
                        }
                    };
                    host::create(
                        &mut *tx,
                        host::NewHost {
                            cluster_id: Some(cluster_id),
                            ..new
                        },
                    )
                    .await
                })
            })
            .await
            .map_err(|e| match e {
                store::StoreError::Duplicate(_) => discovery("the host is already added"),
                other => other.into(),
            })?;
        let items = host_views(&ctx.app.db, std::slice::from_ref(&created)).await?;
        Ok(Reply::List { count: 1, items })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_urls_are_a_unix_socket_path_or_https_with_a_port() {
        assert_eq!(
            host_url("unix:///var/lib/vpc/host-agent.sock").unwrap(),
            HostUrl::Unix("/var/lib/vpc/host-agent.sock".into())
        );
        assert_eq!(
            host_url("https://192.0.2.7:8250").unwrap(),
            HostUrl::Tls("192.0.2.7".into())
        );
        assert_eq!(
            host_url("https://[2001:db8::7]:8250").unwrap(),
            HostUrl::Tls("2001:db8::7".into())
        );
        for bad in [
            "unix://relative.sock",
            "https://192.0.2.7",
            "https://192.0.2.7:8250/path",
            "http://192.0.2.7:8250",
            "192.0.2.7",
        ] {
            assert!(host_url(bad).is_err(), "{bad} accepted");
        }
    }
}
