//! [`HostPool`]: the manager's [`RouterDriver`] when routers and VMs run on
//! several hosts. Each call goes to the host agent of the host the router
//! or VM runs on (its view's `host`, the host row's URL): one [`HostDriver`]
//! per URL, made at first use and kept. A view with no host, or with the
//! default host's URL, goes to the default driver (the embedded host agent
//! or the one `--host-agent-url` names), so orchestration keeps one driver.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::HostDriver;
use crate::future::BoxFuture;
use crate::orchestration::agent::{
    AgentEndpoint, DriverError, Endpoints, FloodListView, HostInventory, RouterDriver, SharedDriver,
};
use crate::orchestration::model::{RouterNicView, RouterView, VmView};
use crate::pki::Pki;

/// Routers and VMs driven on the host agent of their host.
pub struct HostPool {
    default: SharedDriver,
    default_url: Option<String>,
    pki: Option<Arc<Pki>>,
    endpoints: Arc<Endpoints>,
    hosts: Mutex<HashMap<String, SharedDriver>>,
    /// The channels to TLS host agents, shared with the agent client's
    /// relays; None: a channel of its own per host agent.
    channels: Option<Arc<super::tls::HostChannels>>,
}

/// How a host URL is reached, decided without side effects.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    /// The default driver.
    Default,
    /// The host agent on this Unix socket.
    Unix(&'a str),
    /// The host agent at this `https://host:port`.
    Tls(&'a str),
    /// A URL no driver can reach.
    Unknown(&'a str),
}

/// Which driver `host` (a view's host URL) goes to.
pub(crate) fn route<'a>(host: Option<&'a str>, default_url: Option<&str>) -> Route<'a> {
    match host {
        None => Route::Default,
        Some(url) if Some(url) == default_url => Route::Default,
        Some(url) => match url.strip_prefix("unix://") {
            Some(path) if path.starts_with('/') => Route::Unix(path),
            Some(_) => Route::Unknown(url),
            None if url.starts_with("https://") => Route::Tls(url),
            None => Route::Unknown(url),
        },
    }
}

impl HostPool {
    /// A pool whose views without a host (or on `default_url`) go to
    /// `default`; TLS host agents are reached with `pki`'s client identity.
    pub fn new(
        default: SharedDriver,
        default_url: Option<String>,
        pki: Option<Arc<Pki>>,
        endpoints: Arc<Endpoints>,
    ) -> HostPool {
        HostPool {
            default,
            default_url,
            pki,
            endpoints,
            hosts: Mutex::default(),
            channels: None,
        }
    }

    /// Reaches TLS host agents over `channels` (one per host agent, shared
    /// with the relays of its routers' agents).
    pub fn with_host_channels(mut self, channels: Arc<super::tls::HostChannels>) -> HostPool {
        self.channels = Some(channels);
        self
    }

    /// The driver of `host`.
    async fn driver(&self, host: Option<&str>) -> Result<SharedDriver, DriverError> {
        let url = match route(host, self.default_url.as_deref()) {
            Route::Default => return Ok(self.default.clone()),
            Route::Unknown(url) => {
                return Err(DriverError(format!(
                    "the host agent URL {url} is neither unix:///path nor https://host:port"
                )));
            }
            Route::Unix(_) | Route::Tls(_) => host.unwrap_or_default(),
        };
        if let Some(d) = self.known(url) {
            return Ok(d);
        }
        let made: SharedDriver = match route(Some(url), None) {
            Route::Unix(path) => Arc::new(HostDriver::unix(path, self.endpoints.clone())),
            _ => {
                let pki = self.pki.as_ref().ok_or_else(|| {
                    DriverError(format!("no cluster CA to reach the host agent {url}"))
                })?;
                let made = match &self.channels {
                    Some(channels) => {
                        super::tls::shared_host_driver(url, channels, pki, self.endpoints.clone())
                    }
                    None => super::tls::host_driver(url, pki, self.endpoints.clone()).await,
                };
                Arc::new(made.map_err(|e| DriverError(format!("the host agent {url}: {e}")))?)
            }
        };
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        Ok(hosts.entry(url.to_string()).or_insert(made).clone())
    }

    fn known(&self, url: &str) -> Option<SharedDriver> {
        let hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        hosts.get(url).cloned()
    }
}

impl RouterDriver for HostPool {
    fn hypervisor(&self) -> &'static str {
        self.default.hypervisor()
    }

    fn start_router<'a>(
        &'a self,
        router: &'a RouterView,
    ) -> BoxFuture<'a, Result<AgentEndpoint, DriverError>> {
        Box::pin(async move {
            let d = self.driver(router.host.as_deref()).await?;
            d.start_router(router).await
        })
    }

    fn start_router_standby<'a>(
        &'a self,
        router: &'a RouterView,
    ) -> BoxFuture<'a, Result<AgentEndpoint, DriverError>> {
        Box::pin(async move {
            let d = self.driver(router.host.as_deref()).await?;
            d.start_router_standby(router).await
        })
    }

    fn activate_router<'a>(
        &'a self,
        router: &'a RouterView,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let d = self.driver(router.host.as_deref()).await?;
            d.activate_router(router).await
        })
    }

    fn stop_router<'a>(&'a self, router: &'a RouterView) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let d = self.driver(router.host.as_deref()).await?;
            d.stop_router(router).await
        })
    }

    fn destroy_router<'a>(
        &'a self,
        router: &'a RouterView,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let d = self.driver(router.host.as_deref()).await?;
            d.destroy_router(router).await
        })
    }

    fn plug_nic<'a>(
        &'a self,
        router: &'a RouterView,
        nic: &'a RouterNicView,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let d = self.driver(router.host.as_deref()).await?;
            d.plug_nic(router, nic).await
        })
    }

    fn unplug_nic<'a>(
        &'a self,
        router: &'a RouterView,
        nic: &'a RouterNicView,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let d = self.driver(router.host.as_deref()).await?;
            d.unplug_nic(router, nic).await
        })
    }

    fn start_vm<'a>(&'a self, vm: &'a VmView) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let d = self.driver(vm.host.as_deref()).await?;
            d.start_vm(vm).await
        })
    }

    fn stop_vm<'a>(&'a self, vm: &'a VmView) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let d = self.driver(vm.host.as_deref()).await?;
            d.stop_vm(vm).await
        })
    }

    fn destroy_vm<'a>(&'a self, vm: &'a VmView) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let d = self.driver(vm.host.as_deref()).await?;
            d.destroy_vm(vm).await
        })
    }

    /// The default host's inventory: a starting manager re-adopts what the
    /// embedded (or named) host agent runs.
    fn inventory(&self) -> BoxFuture<'_, Result<Option<HostInventory>, DriverError>> {
        self.default.inventory()
    }

    fn set_flood_list<'a>(
        &'a self,
        host: Option<&'a str>,
        flood: &'a FloodListView,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let d = self.driver(host).await?;
            d.set_flood_list(host, flood).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_go_to_the_default_driver_unless_they_name_another_host() {
        let default = Some("unix:///var/lib/vpc/host-agent.sock");
        assert_eq!(route(None, default), Route::Default);
        assert_eq!(
            route(Some("unix:///var/lib/vpc/host-agent.sock"), default),
            Route::Default
        );
        assert_eq!(
            route(Some("unix:///srv/b/host-agent.sock"), default),
            Route::Unix("/srv/b/host-agent.sock")
        );
        assert_eq!(
            route(Some("https://192.0.2.9:8250"), default),
            Route::Tls("https://192.0.2.9:8250")
        );
        assert_eq!(
            route(Some("tcp://192.0.2.9:8250"), default),
            Route::Unknown("tcp://192.0.2.9:8250")
        );
        assert_eq!(
            route(Some("unix://relative"), None),
            Route::Unknown("unix://relative")
        );
    }
}
