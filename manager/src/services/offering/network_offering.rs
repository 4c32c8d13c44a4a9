//! The root admin's network (tier) offering writes, which test suites run
//! before anything else: `createNetworkOffering` (Guest traffic, Isolated,
//! services of the VPC virtual router; Disabled unless `enable=true`, as
//! since CloudStack 4.16), `updateNetworkOffering` (name, description,
//! state) and `deleteNetworkOffering` (not a default one, not one in use).
//! Only what the VPC virtual router gives can be offered: other guest IP
//! types, traffic types and providers are refused with a reason.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::views::{NETWORK_OFFERING_FIELDS, network_offering_view};
use super::{DISPLAY_TEXT, ENABLE, offering_state};
use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Flag, Id, Map, Spec, SyncCommand, Text, Texts};
use crate::server::registry::ROOT;
use crate::server::{Ctx, Reply};
use crate::services::args::NEW_TEXT;
use crate::store::bootstrap::TIER_SERVICES;
use crate::store::{Db, offering, vm};

const NAME: Arg<Text> = Arg::req("name", "the name of the network offering");
const TRAFFIC_TYPE: Arg<Text> = Arg::req("traffictype", "the traffic type: only GUEST");
const GUEST_IP_TYPE: Arg<Text> = Arg::req("guestiptype", "the guest IP type: only Isolated");
const SERVICES: Arg<Texts> = Arg::opt(
    "supportedservices",
    "the services of the offering, among Dhcp, Dns, UserData, SourceNat, StaticNat, \
     PortForwarding, Lb, NetworkACL, Vpn",
);
const PROVIDERS: Arg<Map> = Arg::opt(
    "serviceproviderlist",
    "the provider of each service (serviceproviderlist[i].service, .provider); \
     only VpcVirtualRouter",
);
const FOR_VPC: Arg<Flag> = Arg::opt("forvpc", "true: an offering for VPC tiers");
const PERSISTENT: Arg<Flag> = Arg::opt(
    "ispersistent",
    "true: its networks are implemented without VMs",
);
const ID: Arg<Id> = Arg::req("id", "the ID of the network offering");
const NEW_NAME: Arg<Text> = Arg::opt("name", "the new name of the network offering");
const STATE: Arg<Text> = Arg::opt("state", "Enabled or Disabled");

/// `createNetworkOffering`.
pub struct CreateNetworkOffering {
    name: String,
    display_text: Option<String>,
    traffic_type: String,
    guest_ip_type: String,
    services: Vec<String>,
    providers: Vec<BTreeMap<String, String>>,
    for_vpc: bool,
    persistent: bool,
    enable: bool,
}

impl Command for CreateNetworkOffering {
    const NAME: &'static str = "createNetworkOffering";

    fn spec() -> Spec {
        Spec::new("Creates a network offering of VPC tiers (Disabled unless enable=true)")
            .roles(ROOT)
            .param(NAME)
            .param(DISPLAY_TEXT)
            .param(TRAFFIC_TYPE)
            .param(GUEST_IP_TYPE)
            .param(SERVICES)
            .param(PROVIDERS)
            .param(FOR_VPC)
            .param(PERSISTENT)
            .param(ENABLE)
            .returns("networkoffering", NETWORK_OFFERING_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(CreateNetworkOffering {
            name: args.need(&NAME)?,
            display_text: args.text(&DISPLAY_TEXT)?,
            traffic_type: args.need(&TRAFFIC_TYPE)?,
            guest_ip_type: args.need(&GUEST_IP_TYPE)?,
            services: args.get(&SERVICES)?.unwrap_or_default(),
            providers: args.get(&PROVIDERS)?.unwrap_or_default(),
            for_vpc: args.get(&FOR_VPC)? == Some(true),
            persistent: args.get(&PERSISTENT)? == Some(true),
            enable: args.get(&ENABLE)? == Some(true),
        })
    }
}

/// The CloudStack spelling of a tier service (any case), or 431.
fn tier_service(name: &str) -> Result<&'static str, Error> {
    TIER_SERVICES
        .iter()
        .copied()
        .find(|s| s.eq_ignore_ascii_case(name.trim()))
        .ok_or_else(|| {
            Error::invalid(format!(
                "Invalid service {}: the VPC virtual router gives {}",
                name.trim(),
                TIER_SERVICES.join(", ")
            ))
        })
}

/// The (service, provider) pairs of a new offering: each listed service with
/// the provider the map names, which must be the VPC virtual router; a map
/// entry for a service not listed is refused, as CloudStack refuses it.
fn offering_services(
    listed: &[String],
    providers: &[BTreeMap<String, String>],
) -> Result<Vec<offering::ServiceProvider>, Error> {
    let mut services: Vec<&'static str> = Vec::new();
    for name in listed.iter().filter(|n| !n.trim().is_empty()) {
        let s = tier_service(name)?;
        if !services.contains(&s) {
            services.push(s);
        }
    }
    for entry in providers {
        let (Some(service), Some(provider)) = (entry.get("service"), entry.get("provider")) else {
            return Err(Error::invalid(
                "each serviceproviderlist entry needs a service and a provider",
            ));
        };
        let service = tier_service(service)?;
        if !services.contains(&service) {
            return Err(Error::invalid(format!(
                "Cannot add provider {provider} for service {service}: the service is not in \
                 supportedservices"
            )));
        }
        if !provider.eq_ignore_ascii_case(offering::PROVIDER_VPC_VIRTUAL_ROUTER) {
            return Err(Error::invalid(format!(
                "Provider {provider} is not supported for service {service}; only {} is",
                offering::PROVIDER_VPC_VIRTUAL_ROUTER
            )));
        }
    }
    Ok(services
        .into_iter()
        .map(|s| offering::ServiceProvider::new(s, offering::PROVIDER_VPC_VIRTUAL_ROUTER))
        .collect())
}

/// The routers' offering, shown as every network offering's `serviceofferingid`.
async fn router_offering(db: &Db) -> Result<Option<Uuid>, Error> {
    Ok(
        vm::offering_by_unique_name(db, vm::ROUTER_OFFERING_UNIQUE_NAME)
            .await?
            .map(|o| o.uuid),
    )
}

/// A network offering as the commands answer it.
async fn answer(db: &Db, id: i64) -> Result<Reply, Error> {
    let o = offering::network_offering_by_id(db, id)
        .await?
        .ok_or_else(|| Error::internal("a network offering just written is gone"))?;
    let services = offering::network_offering_services(db, o.id).await?;
    Ok(Reply::Object(network_offering_view(
        &o,
        &services,
        router_offering(db).await?,
    )))
}

impl SyncCommand for CreateNetworkOffering {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let name = self.name.trim().to_string();
        if name.is_empty() {
            return Err(Error::missing_param(Self::NAME, NAME.name()));
        }
        // CloudStack: only Guest traffic can be offered.
        if !self.traffic_type.trim().eq_ignore_ascii_case("Guest") {
            return Err(Error::invalid(format!(
                "Only traffic type Guest is supported in the current release (traffictype {})",
                self.traffic_type.trim()
            )));
        }
        if !self.guest_ip_type.trim().eq_ignore_ascii_case("Isolated") {
            return Err(Error::invalid(format!(
                "Invalid guestiptype {}: only Isolated networks (VPC tiers) are supported",
                self.guest_ip_type.trim()
            )));
        }
        let services = offering_services(&self.services, &self.providers)?;
        let display_text = self
            .display_text
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| name.clone());
        let state = if self.enable {
            offering::STATE_ENABLED
        } else {
            offering::STATE_DISABLED
        };
        let created = offering::create_network_offering(
            db,
            offering::NewNetworkOffering {
                name,
                unique_name: None,
                display_text,
                state: state.into(),
                is_default: false,
                for_vpc: self.for_vpc,
                is_persistent: self.persistent,
                services,
            },
        )
        .await?;
        answer(db, created.id).await
    }
}

/// The live network offering `id`, or 431.
async fn live_offering(db: &Db, id: Uuid) -> Result<offering::NetworkOffering, Error> {
    offering::network_offering_by_uuid(db, id)
        .await?
        .filter(|o| o.removed.is_none())
        .ok_or_else(|| Error::invalid_id(ID.name(), id))
}

/// `updateNetworkOffering`.
pub struct UpdateNetworkOffering {
    id: Uuid,
    name: Option<String>,
    display_text: Option<String>,
    state: Option<String>,
}

impl Command for UpdateNetworkOffering {
    const NAME: &'static str = "updateNetworkOffering";

    fn spec() -> Spec {
        Spec::new("Updates the name, description or state of a network offering")
            .roles(ROOT)
            .param(ID)
            .param(NEW_NAME)
            .param(NEW_TEXT)
            .param(STATE)
            .returns("networkoffering", NETWORK_OFFERING_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(UpdateNetworkOffering {
            id: args.need(&ID)?,
            name: args.text(&NEW_NAME)?,
            display_text: args.text(&NEW_TEXT)?,
            state: args.text(&STATE)?,
        })
    }
}

impl SyncCommand for UpdateNetworkOffering {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let o = live_offering(db, self.id).await?;
        let state = offering_state(self.state.as_deref())?;
        let name = self
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty());
        let text = self.display_text.as_deref().filter(|t| !t.is_empty());
        offering::update_network_offering(db, o.id, name, text, state).await?;
        answer(db, o.id).await
    }
}

/// `deleteNetworkOffering`.
pub struct DeleteNetworkOffering {
    id: Uuid,
}

impl Command for DeleteNetworkOffering {
    const NAME: &'static str = "deleteNetworkOffering";

    fn spec() -> Spec {
        Spec::new("Deletes a network offering no network uses")
            .roles(ROOT)
            .param(ID)
            .returns("success", vec![])
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DeleteNetworkOffering {
            id: args.need(&ID)?,
        })
    }
}

impl SyncCommand for DeleteNetworkOffering {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let o = live_offering(db, self.id).await?;
        // CloudStack's checks and texts (ConfigurationManagerImpl).
        if o.is_default {
            return Err(Error::invalid("Default network offering can't be deleted"));
        }
        let users = offering::networks_of_offering(db, o.id).await?;
        if users > 0 {
            return Err(Error::invalid(format!(
                "Can't delete network offering {} as its used by {users} networks. \
                 To make the network offering unavaiable, disable it",
                o.uuid
            )));
        }
        offering::remove_network_offering(db, o.id).await?;
        Ok(Reply::Success)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn providers(pairs: &[(&str, &str)]) -> Vec<BTreeMap<String, String>> {
        pairs
            .iter()
            .map(|(s, p)| {
                BTreeMap::from([
                    ("service".to_string(), s.to_string()),
                    ("provider".to_string(), p.to_string()),
                ])
            })
            .collect()
    }

    #[test]
    fn services_take_the_vpc_virtual_router_only() {
        let listed = vec!["dhcp".to_string(), "Lb".to_string(), "Dhcp".to_string()];
        let got = offering_services(&listed, &providers(&[("Lb", "VpcVirtualRouter")])).unwrap();
        let names: Vec<&str> = got.iter().map(|s| s.service.as_str()).collect();
        assert_eq!(names, ["Dhcp", "Lb"]);
        assert!(offering_services(&["Firewall".to_string()], &[]).is_err());
        assert!(offering_services(&listed, &providers(&[("Lb", "InternalLbVm")])).is_err());
        assert!(offering_services(&listed, &providers(&[("Dns", "VpcVirtualRouter")])).is_err());
    }
}
