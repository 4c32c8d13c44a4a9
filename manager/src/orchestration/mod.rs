//! The network plug-in layer, after CloudStack's network design:
//!
//! - [`guru`]: network gurus design networks, acquire their vnets and reserve
//!   NIC addresses; one guru per (isolation method, traffic type).
//! - [`element`]: network elements provide services; the VPC virtual router
//!   element turns every change into `vpc.agent.v1` commands.
//! - [`agent`]: the seams to a router's agent and to the driver that runs
//!   routers.
//! - [`model`]: the plain views the service layer fills from the store.
//! - [`wire`]: pure conversions to the agent protocol, including the whole
//!   `RouterConfig` of a router.
//! - [`recording`]: recording test doubles.
//!
//! Nothing here touches the database.

pub mod agent;
pub mod element;
pub mod guru;
pub mod model;
pub mod recording;
pub mod wire;

#[cfg(test)]
mod tests;

pub use agent::{
    AgentClient, AgentCommand, AgentEndpoint, AgentError, AgentReply, DriverError, RouterDriver,
};
pub use element::{
    Dhcp, Dns, ElementError, ElementResult, Gateway, Lb, NetworkAcl, NetworkElement,
    PortForwarding, SourceNat, StaticNat, UserData, VPC_VIRTUAL_ROUTER, VpcProvider,
    VpcVirtualRouterElement,
};
pub use guru::{
    GuruError, GuruRegistry, IsolationMethod, NetworkGuru, NetworkTraffic, RegistryError,
};

/// The element names the manager knows.
pub const ALL_ELEMENTS: [&str; 1] = [VPC_VIRTUAL_ROUTER];

/// Errors in the plug-in configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    #[error(transparent)]
    Gurus(#[from] RegistryError),
    #[error("unknown network element {0:?} (known: VpcVirtualRouter)")]
    UnknownElement(String),
}

/// The enabled plug-ins.
#[derive(Debug)]
pub struct Plugins {
    pub gurus: GuruRegistry,
    elements: Vec<&'static str>,
}

impl Plugins {
    /// The plug-ins named in the configuration; `None` enables every built-in
    /// one.
    pub fn from_config(
        gurus: Option<Vec<String>>,
        elements: Option<Vec<String>>,
    ) -> Result<Self, PluginError> {
        let gurus = match gurus {
            Some(names) => GuruRegistry::from_names(&names)?,
            None => GuruRegistry::all(),
        };
        let elements = match elements {
            None => ALL_ELEMENTS.to_vec(),
            Some(names) => {
                let mut enabled = Vec::new();
                for name in names {
                    let known = ALL_ELEMENTS
                        .iter()
                        .find(|e| e.eq_ignore_ascii_case(name.trim()))
                        .ok_or_else(|| PluginError::UnknownElement(name.clone()))?;
                    if !enabled.contains(known) {
                        enabled.push(*known);
                    }
                }
                enabled
            }
        };
        Ok(Plugins { gurus, elements })
    }

    /// Whether the element with this name is enabled.
    pub fn element_enabled(&self, name: &str) -> bool {
        self.elements.iter().any(|e| e.eq_ignore_ascii_case(name))
    }

    /// The enabled element names.
    pub fn elements(&self) -> &[&'static str] {
        &self.elements
    }
}

impl Default for Plugins {
    fn default() -> Self {
        Plugins {
            gurus: GuruRegistry::all(),
            elements: ALL_ELEMENTS.to_vec(),
        }
    }
}
