//! The registry of enabled gurus: at most one per isolation method and
//! traffic type, so no network is ever claimed by two gurus.

use std::collections::HashMap;
use std::fmt;

use super::*;

/// Errors building a registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "unknown network guru {0:?} (known: GuestVlan, GuestVxlan, PrivateGateway, Public, Control)"
    )]
    UnknownGuru(String),
    #[error("network gurus {first} and {second} both claim {isolation:?}/{traffic:?} networks")]
    Clash {
        first: &'static str,
        second: &'static str,
        isolation: IsolationMethod,
        traffic: NetworkTraffic,
    },
    #[error("network guru {0} is enabled twice")]
    Duplicate(&'static str),
    #[error("no network guru handles {isolation:?}/{traffic:?} networks")]
    NoGuru {
        isolation: IsolationMethod,
        traffic: NetworkTraffic,
    },
}

/// The names of every built-in guru, in their default order.
pub const ALL_GURUS: [&str; 5] = [
    "GuestVlan",
    "GuestVxlan",
    "PrivateGateway",
    "Public",
    "Control",
];

/// A built-in guru by its configuration name (case-insensitive).
pub fn guru_by_name(name: &str) -> Option<Box<dyn NetworkGuru>> {
    let guru: Box<dyn NetworkGuru> = match name.trim().to_ascii_lowercase().as_str() {
        "guestvlan" => Box::new(GUEST_VLAN_GURU),
        "guestvxlan" => Box::new(GUEST_VXLAN_GURU),
        "privategateway" => Box::new(PrivateGatewayGuru),
        "public" => Box::new(PublicGuru),
        "control" => Box::new(ControlGuru),
        _ => return None,
    };
    Some(guru)
}

/// The enabled gurus, at most one per (isolation method, traffic type).
pub struct GuruRegistry {
    gurus: Vec<Box<dyn NetworkGuru>>,
    by_claim: HashMap<(IsolationMethod, NetworkTraffic), usize>,
}

impl fmt::Debug for GuruRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuruRegistry")
            .field("gurus", &self.names())
            .finish()
    }
}

impl GuruRegistry {
    /// Builds a registry; refuses two gurus that claim the same pair.
    pub fn new(gurus: Vec<Box<dyn NetworkGuru>>) -> Result<Self, RegistryError> {
        let mut by_claim: HashMap<(IsolationMethod, NetworkTraffic), usize> = HashMap::new();
        for (i, guru) in gurus.iter().enumerate() {
            if gurus[..i].iter().any(|g| g.name() == guru.name()) {
                return Err(RegistryError::Duplicate(guru.name()));
            }
            // Use can_handle over every pair, so a guru whose can_handle says
            // more than its claims is caught too.
            for isolation in IsolationMethod::ALL {
                for traffic in [
                    NetworkTraffic::Guest,
                    NetworkTraffic::Public,
                    NetworkTraffic::Private,
                    NetworkTraffic::Control,
                ] {
                    if !guru.can_handle(isolation, traffic) {
                        continue;
                    }
                    if let Some(&other) = by_claim.get(&(isolation, traffic)) {
                        return Err(RegistryError::Clash {
                            first: gurus[other].name(),
                            second: guru.name(),
                            isolation,
                            traffic,
                        });
                    }
                    by_claim.insert((isolation, traffic), i);
                }
            }
        }
        Ok(GuruRegistry { gurus, by_claim })
    }

    /// Builds a registry of the built-in gurus with these names.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<Self, RegistryError> {
        let gurus = names
            .iter()
            .map(|n| {
                guru_by_name(n.as_ref())
                    .ok_or_else(|| RegistryError::UnknownGuru(n.as_ref().to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(gurus)
    }

    /// Every built-in guru.
    pub fn all() -> Self {
        Self::from_names(&ALL_GURUS).expect("the built-in gurus do not clash")
    }

    /// The one guru for this pair.
    pub fn choose(
        &self,
        isolation: IsolationMethod,
        traffic: NetworkTraffic,
    ) -> Result<&dyn NetworkGuru, RegistryError> {
        self.by_claim
            .get(&(isolation, traffic))
            .map(|&i| self.gurus[i].as_ref())
            .ok_or(RegistryError::NoGuru { isolation, traffic })
    }

    /// The guru with this name (as stored on a designed network).
    pub fn by_name(&self, name: &str) -> Option<&dyn NetworkGuru> {
        self.gurus
            .iter()
            .find(|g| g.name() == name)
            .map(|g| g.as_ref())
    }

    /// The names of the enabled gurus.
    pub fn names(&self) -> Vec<&'static str> {
        self.gurus.iter().map(|g| g.name()).collect()
    }
}

impl Default for GuruRegistry {
    fn default() -> Self {
        Self::all()
    }
}
