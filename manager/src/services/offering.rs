//! Offerings (CloudStack reference §2.2, §2.4): `listNetworkOfferings` and
//! `listVPCOfferings`, for every role; `createVPCOffering`,
//! `updateVPCOffering` and `deleteVPCOffering` for the root admin. Network
//! (tier) offerings cannot be created, changed or deleted yet.

mod vpc_change;

use serde_json::{Value, json};

use crate::api::Params;
use crate::error::Error;
use crate::handler;
use crate::server::registry::{
    ALL, CommandSpec, FieldSpec, Kind, ParamSpec, ParamType::*, ROOT, field, opt, req,
};
use crate::server::{Reply, date, page, page_of};
use crate::store::{Db, Page, offering};

/// `service` of an offering response: one entry per service, in the order the
/// offering lists them, each with the providers giving it.
pub(crate) fn services_view(services: &[offering::ServiceProvider]) -> Vec<Value> {
    let mut grouped: Vec<(&str, Vec<&str>)> = Vec::new();
    for sp in services {
        match grouped.iter_mut().find(|(name, _)| *name == sp.service) {
            Some((_, providers)) => {
                if !providers.contains(&sp.provider.as_str()) {
                    providers.push(&sp.provider);
                }
            }
            None => grouped.push((&sp.service, vec![&sp.provider])),
        }
    }
    grouped
        .into_iter()
        .map(|(name, providers)| {
            json!({
                "name": name,
                "provider": providers
                    .into_iter()
                    .map(|p| json!({ "name": p }))
                    .collect::<Vec<_>>(),
            })
        })
        .collect()
}

fn network_offering_view(
    o: &offering::NetworkOffering,
    services: &[offering::ServiceProvider],
) -> Value {
    json!({
        "id": o.uuid,
        "name": o.name,
        "displaytext": o.display_text,
        "traffictype": o.traffic_type,
        "guestiptype": o.guest_type,
        "state": o.state,
        "isdefault": o.is_default,
        "forvpc": o.for_vpc,
        "specifyvlan": o.specify_vlan,
        "specifyipranges": false,
        "conservemode": o.conserve_mode,
        "egressdefaultpolicy": false,
        "availability": o.availability,
        "ispersistent": o.is_persistent,
        "supportsstrechedl2subnet": false,
        "supportspublicaccess": false,
        "fornsx": false,
        "service": services_view(services),
        "created": date(o.created),
    })
}

fn vpc_offering_view(o: &offering::VpcOffering, services: &[offering::ServiceProvider]) -> Value {
    json!({
        "id": o.uuid,
        "name": o.name,
        "displaytext": o.display_text,
        "isdefault": o.is_default,
        "state": o.state,
        "service": services_view(services),
        "created": date(o.created),
        "distributedvpcrouter": o.distributed_router,
        "supportsregionLevelvpc": false,
        "fornsx": false,
        "networkmode": o.network_mode,
        "internetprotocol": o.internet_protocol,
    })
}

fn service_field() -> FieldSpec {
    field(
        "service",
        "list",
        "the services of the offering, each with its providers",
    )
}

fn network_offering_fields() -> Vec<FieldSpec> {
    vec![
        field("id", "string", "the ID of the network offering"),
        field("name", "string", "the name of the network offering"),
        field("displaytext", "string", "the description of the offering"),
        field("traffictype", "string", "the traffic type: Guest"),
        field("guestiptype", "string", "the guest IP type: Isolated"),
        field("state", "string", "Enabled or Disabled"),
        field("isdefault", "boolean", "whether it is a default offering"),
        field("forvpc", "boolean", "whether it is for VPC tiers"),
        field(
            "specifyvlan",
            "boolean",
            "whether the creator picks the VLAN",
        ),
        field("conservemode", "boolean", "whether conserve mode is on"),
        field(
            "egressdefaultpolicy",
            "boolean",
            "the default egress policy (false: deny)",
        ),
        service_field(),
        field("created", "date", "when the offering was created"),
    ]
}

fn vpc_offering_fields() -> Vec<FieldSpec> {
    vec![
        field("id", "string", "the ID of the VPC offering"),
        field("name", "string", "the name of the VPC offering"),
        field("displaytext", "string", "the description of the offering"),
        field("isdefault", "boolean", "whether it is the default offering"),
        field("state", "string", "Enabled or Disabled"),
        service_field(),
        field("created", "date", "when the offering was created"),
        field(
            "distributedvpcrouter",
            "boolean",
            "whether the VPC router is distributed",
        ),
        field(
            "supportsregionLevelvpc",
            "boolean",
            "whether region-level VPCs are supported",
        ),
    ]
}

fn paging() -> Vec<ParamSpec> {
    vec![
        opt("keyword", String, "a substring of the name or description"),
        opt("page", Integer, "the page to return"),
        opt("pagesize", Integer, "the number of offerings per page"),
    ]
}

/// The commands of this module.
pub fn commands() -> Vec<CommandSpec> {
    let mut network_params = vec![
        opt("id", Uuid, "the ID of the network offering"),
        opt("name", String, "the name of the network offering"),
        opt(
            "forvpc",
            Boolean,
            "true: only offerings for VPC tiers; false: only the others",
        ),
        opt("state", String, "Enabled or Disabled"),
        opt(
            "isdefault",
            Boolean,
            "only default (or non-default) offerings",
        ),
        opt(
            "guestiptype",
            String,
            "only offerings of this guest IP type (all are Isolated)",
        ),
        opt(
            "traffictype",
            String,
            "only offerings of this traffic type (all are Guest)",
        ),
        opt(
            "supportedservices",
            List,
            "only offerings giving all these services",
        ),
        opt(
            "zoneid",
            Uuid,
            "only offerings usable in this zone (all offerings are)",
        ),
    ];
    network_params.extend(paging());
    let mut vpc_params = vec![
        opt("id", Uuid, "the ID of the VPC offering"),
        opt("name", String, "the name of the VPC offering"),
        opt("state", String, "Enabled or Disabled"),
        opt(
            "isdefault",
            Boolean,
            "only the default (or non-default) offerings",
        ),
        opt(
            "supportedservices",
            List,
            "only offerings giving all these services",
        ),
        opt(
            "zoneid",
            Uuid,
            "only offerings usable in this zone (all offerings are)",
        ),
    ];
    vpc_params.extend(paging());
    vec![
        CommandSpec {
            name: "listNetworkOfferings",
            description: "Lists network offerings",
            kind: Kind::Sync,
            roles: ALL,
            params: network_params,
            object: "networkoffering",
            response: network_offering_fields(),
            since: "",
            handler: list_network_offerings,
            job: None,
        },
        CommandSpec {
            name: "listVPCOfferings",
            description: "Lists VPC offerings",
            kind: Kind::Sync,
            roles: ALL,
            params: vpc_params,
            object: "vpcoffering",
            response: vpc_offering_fields(),
            since: "",
            handler: list_vpc_offerings,
            job: None,
        },
        CommandSpec {
            name: "createVPCOffering",
            description: "Creates a VPC offering (Disabled unless enable=true)",
            kind: Kind::AsyncCreate,
            roles: ROOT,
            params: vec![
                req("name", String, "the name of the VPC offering"),
                opt(
                    "displaytext",
                    String,
                    "the description of the offering; default its name",
                ),
                req(
                    "supportedservices",
                    List,
                    "the services of the offering, among Dhcp, Dns, SourceNat, \
                     PortForwarding, Lb, UserData, StaticNat, NetworkACL, Vpn, Gateway",
                ),
                opt(
                    "serviceproviderlist",
                    Map,
                    "the provider of each service, as serviceproviderlist[i].service \
                     and serviceproviderlist[i].provider; only VpcVirtualRouter",
                ),
                opt(
                    "enable",
                    Boolean,
                    "true: create the offering Enabled (default Disabled)",
                ),
            ],
            object: "vpcoffering",
            response: vpc_offering_fields(),
            since: "",
            handler: vpc_change::CREATE_VPC_OFFERING,
            job: None,
        },
        CommandSpec {
            name: "updateVPCOffering",
            description: "Changes the name, description or state of a VPC offering",
            kind: Kind::Async,
            roles: ROOT,
            params: vec![
                req("id", Uuid, "the ID of the VPC offering"),
                opt("name", String, "the new name of the VPC offering"),
                opt("displaytext", String, "the new description of the offering"),
                opt("state", String, "Enabled or Disabled"),
                opt("sortkey", Integer, "the position of the offering in lists"),
            ],
            object: "vpcoffering",
            response: vpc_offering_fields(),
            since: "",
            handler: vpc_change::UPDATE_VPC_OFFERING,
            job: None,
        },
        CommandSpec {
            name: "deleteVPCOffering",
            description: "Deletes a VPC offering that is not the default and no VPC uses",
            kind: Kind::Async,
            roles: ROOT,
            params: vec![req("id", Uuid, "the ID of the VPC offering")],
            object: "vpcoffering",
            response: vec![],
            since: "",
            handler: vpc_change::DELETE_VPC_OFFERING,
            job: None,
        },
    ]
}

/// The job body of every async command of this module.
pub fn job_bodies() -> Vec<(&'static str, crate::server::jobs::JobBody)> {
    vec![
        ("createVPCOffering", vpc_change::CREATE_VPC_OFFERING_JOB),
        ("updateVPCOffering", vpc_change::UPDATE_VPC_OFFERING_JOB),
        ("deleteVPCOffering", vpc_change::DELETE_VPC_OFFERING_JOB),
    ]
}

fn state_param(params: &Params) -> Result<Option<std::string::String>, Error> {
    match params.string("state")?.as_deref() {
        None | Some("") => Ok(None),
        Some(s) if s.eq_ignore_ascii_case(offering::STATE_ENABLED) => {
            Ok(Some(offering::STATE_ENABLED.into()))
        }
        Some(s) if s.eq_ignore_ascii_case(offering::STATE_DISABLED) => {
            Ok(Some(offering::STATE_DISABLED.into()))
        }
        Some(s) => Err(Error::invalid(format!(
            "state {s} is neither Enabled nor Disabled"
        ))),
    }
}

fn filter_of(params: &Params) -> Result<offering::OfferingFilter, Error> {
    Ok(offering::OfferingFilter {
        uuid: params.uuid("id")?.map(|u| u.to_string()),
        name: params.string("name")?.filter(|n| !n.is_empty()),
        keyword: params.string("keyword")?,
        state: state_param(params)?,
        is_default: params.boolean("isdefault")?,
        for_vpc: None,
    })
}

/// Whether `services` give every service of `wanted` (names case-insensitive).
pub(crate) fn gives_all(
    services: &[offering::ServiceProvider],
    wanted: &[std::string::String],
) -> bool {
    wanted
        .iter()
        .all(|w| services.iter().any(|s| s.service.eq_ignore_ascii_case(w)))
}

/// Rows of a list with their services: paged by the store unless a filter on
/// services has to run in memory first. Returns the total and the page.
async fn with_services<T, F>(
    db: &Db,
    wanted: Option<Vec<std::string::String>>,
    page: Page,
    list: impl AsyncFnOnce(Page) -> Result<crate::store::Listed<T>, Error>,
    services_of: F,
) -> Result<(u64, Vec<(T, Vec<offering::ServiceProvider>)>), Error>
where
    F: AsyncFn(&Db, &T) -> Result<Vec<offering::ServiceProvider>, Error>,
{
    match wanted {
        None => {
            let listed = list(page).await?;
            let mut rows = Vec::with_capacity(listed.items.len());
            for o in listed.items {
                let services = services_of(db, &o).await?;
                rows.push((o, services));
            }
            Ok((listed.total as u64, rows))
        }
        Some(wanted) => {
            let listed = list(Page::ALL).await?;
            let mut rows = Vec::new();
            for o in listed.items {
                let services = services_of(db, &o).await?;
                if gives_all(&services, &wanted) {
                    rows.push((o, services));
                }
            }
            let total = rows.len() as u64;
            Ok((total, page_of(rows, page)))
        }
    }
}

handler!(list_network_offerings, |ctx, params| {
    let db = &ctx.app.db;
    // Every offering here is an Isolated offering for Guest traffic.
    let other_kind = params
        .string("guestiptype")?
        .filter(|t| !t.is_empty())
        .is_some_and(|t| !t.eq_ignore_ascii_case("Isolated"))
        || params
            .string("traffictype")?
            .filter(|t| !t.is_empty())
            .is_some_and(|t| !t.eq_ignore_ascii_case("Guest"));
    if other_kind {
        return Ok(Reply::List {
            count: 0,
            items: vec![],
        });
    }
    let filter = offering::OfferingFilter {
        for_vpc: params.boolean("forvpc")?,
        ..filter_of(params)?
    };
    let page = page(ctx, params).await?;
    let (count, rows) = with_services(
        db,
        params.list("supportedservices")?,
        page,
        async |p| Ok(offering::list_network_offerings(db, &filter, p).await?),
        async |db: &Db, o: &offering::NetworkOffering| {
            Ok(offering::network_offering_services(db, o.id).await?)
        },
    )
    .await?;
    let items = rows
        .iter()
        .map(|(o, services)| network_offering_view(o, services))
        .collect();
    Ok(Reply::List { count, items })
});

handler!(list_vpc_offerings, |ctx, params| {
    let db = &ctx.app.db;
    let filter = filter_of(params)?;
    let page = page(ctx, params).await?;
    let (count, rows) = with_services(
        db,
        params.list("supportedservices")?,
        page,
        async |p| Ok(offering::list_vpc_offerings(db, &filter, p).await?),
        async |db: &Db, o: &offering::VpcOffering| {
            Ok(offering::vpc_offering_services(db, o.id).await?)
        },
    )
    .await?;
    let items = rows
        .iter()
        .map(|(o, services)| vpc_offering_view(o, services))
        .collect();
    Ok(Reply::List { count, items })
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_are_grouped_with_their_providers() {
        let services = [
            offering::ServiceProvider::new("Dhcp", "VpcVirtualRouter"),
            offering::ServiceProvider::new("Lb", "VpcVirtualRouter"),
            offering::ServiceProvider::new("Lb", "InternalLbVm"),
        ];
        assert_eq!(
            services_view(&services),
            vec![
                json!({"name": "Dhcp", "provider": [{"name": "VpcVirtualRouter"}]}),
                json!({"name": "Lb", "provider": [{"name": "VpcVirtualRouter"}, {"name": "InternalLbVm"}]}),
            ]
        );
        assert!(gives_all(&services, &["lb".into(), "DHCP".into()]));
        assert!(!gives_all(&services, &["SourceNat".into()]));
    }
}
