//! Taking routers and VMs back after a restart of the host agent: their
//! processes run in their own process groups, with pid files in the data
//! directory, and outlive the agent that started them (SIGKILL included). A
//! starting host agent hands each router and VM it had been asked to run to
//! these functions, which take the live ones under supervision again and
//! leave the others alone (the manager restarts them on request).

use super::NetnsDriver;
use super::error::Result;
use super::{ip, names};
use crate::orchestration::agent::AgentEndpoint;
use crate::orchestration::model::{RouterView, VmView};

impl NetnsDriver {
    /// Supervises the router's agent again when its namespace exists and
    /// its agent still runs there; returns the agent's endpoint. `None`
    /// (nothing changed) when the namespace or the agent is gone. A router
    /// taken back in `standby` keeps its guest, public and private ports
    /// off their segments until it is activated.
    pub async fn adopt_router(
        &self,
        view: &RouterView,
        standby: bool,
    ) -> Result<Option<AgentEndpoint>> {
        names::check_object_name("router", &view.name)?;
        let ns = self.router_ns(&view.name);
        if !ip::exists(&ns) {
            return Ok(None);
        }
        let spec = self.inner.agent_spec(view)?;
        let state_arg = self
            .router_dir(&view.name)
            .join("state")
            .display()
            .to_string();
        let listen = self.inner.listen_arg(view);
        if spec.find_running(&[&state_arg, &listen]).await.is_none() {
            return Ok(None);
        }
        // The start path adopts a running agent (it does not start a
        // second one) and re-plugs nothing that is in place.
        Ok(Some(if standby {
            self.inner.start_router_standby(view).await?
        } else {
            self.inner.start_router(view).await?
        }))
    }

    /// Supervises the VM's DHCP clients again when its namespace exists
    /// (a client that died meanwhile is started); false when it is gone.
    pub async fn adopt_vm(&self, view: &VmView) -> Result<bool> {
        names::check_object_name("VM", &view.instance_name)?;
        if !ip::exists(&self.vm_ns(&view.instance_name)) {
            return Ok(false);
        }
        self.inner.start_vm(view).await?;
        Ok(true)
    }

    /// Where the router's agent is reached (for the inventory).
    pub fn agent_endpoint(&self, view: &RouterView) -> Result<AgentEndpoint> {
        self.inner.agent_endpoint(view)
    }

    /// Whether every supervised process of the VM runs (its namespace
    /// exists and each NIC's DHCP client has a pid).
    pub fn vm_running(&self, view: &VmView) -> bool {
        ip::exists(&self.vm_ns(&view.instance_name))
            && (0..view.nics.len()).all(|n| {
                self.dhcp_client_pid(&view.instance_name, n)
                    .is_some_and(ip::alive)
            })
    }

    /// Whether the router's namespace exists and its supervised agent runs.
    pub fn router_running(&self, router: &str) -> bool {
        ip::exists(&self.router_ns(router)) && self.agent_pid(router).is_some_and(ip::alive)
    }
}
