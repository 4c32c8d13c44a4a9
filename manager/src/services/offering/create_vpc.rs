//! `createVPCOffering` (async-create, root admin): the services and
//! providers of a new offering, checked; the row now, the job reports it.

use std::collections::BTreeMap;

use serde_json::Value;

use super::scope::{DOMAINS, ZONES, parse_domains, parse_zones};
use super::views::VPC_OFFERING_FIELDS;
use super::{DISPLAY_TEXT, ENABLE, check_name_free, vpc_offering_result, vpc_offering_sync};
use crate::error::Error;
use crate::server::command::{
    Arg, Args, AsyncCommand, Command, IdJob, Map, Spec, Submission, Text, Texts,
};
use crate::server::jobs::JobCtx;
use crate::server::registry::ROOT;
use crate::server::{App, Ctx};
use crate::store::bootstrap::VPC_SERVICES;
use crate::store::{Page, offering, vpc};

const NAME: Arg<Text> = Arg::req("name", "the name of the VPC offering");
const SERVICES: Arg<Texts> = Arg::req(
    "supportedservices",
    "the services of the offering, among Dhcp, Dns, SourceNat, \
     PortForwarding, Lb, UserData, StaticNat, NetworkACL, Vpn, Gateway",
);
const PROVIDERS: Arg<Map> = Arg::opt(
    "serviceproviderlist",
    "the provider of each service, as serviceproviderlist[i].service \
     and serviceproviderlist[i].provider; only VpcVirtualRouter",
);

/// Services every VPC offering gets, listed or not (§2.2: SourceNat unless
/// routed, NetworkACL always, Gateway with the SourceNat provider).
const ALWAYS_ADDED: &[&str] = &["SourceNat", "NetworkACL", "Gateway"];

/// `createVPCOffering`.
pub struct CreateVpcOffering {
    name: String,
    display_text: Option<String>,
    services: Option<Vec<String>>,
    providers: Vec<BTreeMap<String, String>>,
    enable: bool,
    domains: Option<String>,
    zones: Option<String>,
}

impl Command for CreateVpcOffering {
    const NAME: &'static str = "createVPCOffering";

    fn spec() -> Spec {
        Spec::new("Creates a VPC offering (Disabled unless enable=true)")
            .roles(ROOT)
            .param(NAME)
            .param(DISPLAY_TEXT)
            .param(SERVICES)
            .param(PROVIDERS)
            .param(ENABLE)
            .param(DOMAINS)
            .param(ZONES)
            .returns("vpcoffering", VPC_OFFERING_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(CreateVpcOffering {
            name: args.need(&NAME)?,
            display_text: args.text(&DISPLAY_TEXT)?,
            services: args.get(&SERVICES)?,
            providers: args.get(&PROVIDERS)?.unwrap_or_default(),
            enable: args.get(&ENABLE)? == Some(true),
            domains: args.get(&DOMAINS)?,
            zones: args.get(&ZONES)?,
        })
    }
}

impl AsyncCommand for CreateVpcOffering {
    /// The row comes from `submit`; the job only reads it.
    const RERUN: bool = true;
    const CREATES: bool = true;
    type Job = IdJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<IdJob>, Error> {
        let db = &ctx.app.db;
        let name = self.name;
        // A blank name is no name (the registry refuses only an empty one).
        if name.trim().is_empty() {
            return Err(Error::missing_param(Self::NAME, NAME.name()));
        }
        let listed = self
            .services
            .ok_or_else(|| Error::missing_param(Self::NAME, SERVICES.name()))?;
        let services = new_offering_services(&listed, &self.providers)?;
        let display_text = self.display_text.unwrap_or_else(|| name.clone());
        let state = if self.enable {
            offering::STATE_ENABLED
        } else {
            offering::STATE_DISABLED
        };
        check_name_free(db, &name, None).await?;
        let domains = parse_domains(db, self.domains.as_deref()).await?;
        let zones = parse_zones(db, self.zones.as_deref()).await?;
        // The offering with its domains and zones, or nothing.
        let mut tx = db.begin().await?;
        let created = offering::create_vpc_offering(
            &mut tx,
            offering::NewVpcOffering {
                name,
                unique_name: None,
                display_text,
                state: state.into(),
                is_default: false,
                distributed_router: false,
                redundant_router: false,
                network_mode: "NATTED".into(),
                internet_protocol: "ipv4".into(),
                services,
            },
        )
        .await?;
        if let Some(domains) = &domains {
            offering::set_vpc_offering_domains(&mut tx, created.id, domains).await?;
        }
        if let Some(zones) = &zones {
            offering::set_vpc_offering_zones(&mut tx, created.id, zones).await?;
        }
        tx.commit().await?;
        Ok(Submission::created(
            IdJob { id: created.id },
            ("VpcOffering", created.uuid),
            vpc_offering_sync(created.id),
        ))
    }

    async fn run(job: &JobCtx, payload: IdJob) -> Result<Value, Error> {
        vpc_offering_result(&job.app.db, payload.id).await
    }

    /// Without its job the row would stay half-created (the API answered no
    /// id for it, or its job failed), so it goes again; unless a VPC was
    /// created with it meanwhile (an offering can be created Enabled), which
    /// must keep its offering.
    async fn abandon(app: &App, payload: IdJob) -> Result<(), Error> {
        let users = vpc::list(
            &app.db,
            &vpc::VpcFilter {
                vpc_offering_id: Some(payload.id),
                ..Default::default()
            },
            Page::first(1),
        )
        .await?
        .total;
        if users == 0 {
            offering::remove_vpc_offering(&app.db, payload.id).await?;
        }
        Ok(())
    }
}

/// The CloudStack spelling of a VPC service (case-insensitive), or 431.
fn vpc_service(name: &str) -> Result<&'static str, Error> {
    VPC_SERVICES
        .iter()
        .copied()
        .find(|s| s.eq_ignore_ascii_case(name.trim()))
        .ok_or_else(|| {
            Error::invalid(format!(
                "Service {name} is not supported by the VPC virtual router; use one of {}",
                VPC_SERVICES.join(", ")
            ))
        })
}

/// The (service, provider) pairs of a new offering: the listed services, each
/// with the provider the map names (VpcVirtualRouter by default), plus the
/// services every offering gets.
fn new_offering_services(
    listed: &[String],
    providers: &[BTreeMap<String, String>],
) -> Result<Vec<offering::ServiceProvider>, Error> {
    let mut services: Vec<&'static str> = Vec::new();
    for name in listed {
        let service = vpc_service(name)?;
        if !services.contains(&service) {
            services.push(service);
        }
    }
    if services.is_empty() {
        return Err(Error::invalid(
            "supportedservices must name at least one service",
        ));
    }
    for entry in providers {
        let (Some(service), Some(provider)) = (entry.get("service"), entry.get("provider")) else {
            return Err(Error::invalid(
                "each serviceproviderlist entry needs a service and a provider",
            ));
        };
        // CloudStack's VpcManagerImpl.createVpcOffering: a provider for a
        // service the offering does not list is refused, with its text
        // naming the service as given.
        let given = service;
        let service = vpc_service(service)?;
        if !services.contains(&service) {
            return Err(Error::invalid(format!(
                "Service {given} is not enabled for the network offering, can't add a provider to it"
            )));
        }
        if !provider.eq_ignore_ascii_case(offering::PROVIDER_VPC_VIRTUAL_ROUTER) {
            return Err(Error::invalid(format!(
                "Provider {provider} is not supported for service {service}; only {} is",
                offering::PROVIDER_VPC_VIRTUAL_ROUTER
            )));
        }
    }
    for service in ALWAYS_ADDED {
        if !services.contains(service) {
            services.push(service);
        }
    }
    Ok(services
        .into_iter()
        .map(|s| offering::ServiceProvider::new(s, offering::PROVIDER_VPC_VIRTUAL_ROUTER))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_offerings_get_the_always_added_services() {
        let listed = ["dhcp".to_string(), "Lb".to_string()];
        let services = new_offering_services(&listed, &[]).unwrap();
        let names: Vec<&str> = services.iter().map(|s| s.service.as_str()).collect();
        assert_eq!(names, ["Dhcp", "Lb", "SourceNat", "NetworkACL", "Gateway"]);
        assert!(
            services
                .iter()
                .all(|s| s.provider == offering::PROVIDER_VPC_VIRTUAL_ROUTER)
        );
    }

    #[test]
    fn unknown_services_and_providers_are_refused() {
        let code = |r: Result<Vec<offering::ServiceProvider>, Error>| {
            r.map_err(crate::api::ApiError::from).unwrap_err().code
        };
        assert_eq!(code(new_offering_services(&["Firewall".into()], &[])), 431);
        assert_eq!(code(new_offering_services(&[], &[])), 431);
        let entry = |service: &str, provider: &str| {
            BTreeMap::from([
                ("service".to_string(), service.to_string()),
                ("provider".to_string(), provider.to_string()),
            ])
        };
        let listed = ["Dhcp".to_string()];
        let outside = new_offering_services(&listed, &[entry("dns", "VpcVirtualRouter")])
            .map_err(crate::api::ApiError::from)
            .unwrap_err();
        assert_eq!(outside.code, 431);
        assert_eq!(
            outside.text,
            "Service dns is not enabled for the network offering, can't add a provider to it"
        );
        assert_eq!(
            code(new_offering_services(
                &listed,
                &[entry("Dhcp", "VirtualRouter")]
            )),
            431
        );
        assert!(new_offering_services(&listed, &[entry("dhcp", "vpcvirtualrouter")]).is_ok());
    }
}
