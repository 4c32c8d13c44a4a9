//! What the offering commands answer: the network and VPC offering objects
//! and their `service` lists, and the response fields `listApis` shows.

use serde_json::{Value, json};

use crate::server::date;
use crate::server::registry::{FieldSpec, field};
use crate::store::offering;

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

/// `router_offering`: the service offering of the routers, which CloudStack
/// shows as `serviceofferingid` of every network offering that names none of
/// its own (ApiResponseHelper falls back to the default router offering), so
/// clients such as libcloud always find the key.
pub(super) fn network_offering_view(
    o: &offering::NetworkOffering,
    services: &[offering::ServiceProvider],
    router_offering: Option<uuid::Uuid>,
) -> Value {
    json!({
        "serviceofferingid": router_offering,
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

pub(super) fn vpc_offering_view(
    o: &offering::VpcOffering,
    services: &[offering::ServiceProvider],
) -> Value {
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

const SERVICE_FIELD: FieldSpec = field(
    "service",
    "list",
    "the services of the offering, each with its providers",
);

pub(super) const NETWORK_OFFERING_FIELDS: &[FieldSpec] = &[
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
    SERVICE_FIELD,
    field("created", "date", "when the offering was created"),
    field(
        "serviceofferingid",
        "string",
        "the service offering of the routers giving its services",
    ),
];

pub(super) const VPC_OFFERING_FIELDS: &[FieldSpec] = &[
    field("id", "string", "the ID of the VPC offering"),
    field("name", "string", "the name of the VPC offering"),
    field("displaytext", "string", "the description of the offering"),
    field("isdefault", "boolean", "whether it is the default offering"),
    field("state", "string", "Enabled or Disabled"),
    SERVICE_FIELD,
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
    field(
        "domainid",
        "string",
        "the IDs of the domains that may use the offering, comma-separated; absent: every domain",
    ),
    field(
        "domain",
        "string",
        "the names of those domains, comma-separated",
    ),
    field(
        "zoneid",
        "string",
        "the IDs of the zones where the offering may be used, comma-separated; absent: every zone",
    ),
    field(
        "zone",
        "string",
        "the names of those zones, comma-separated",
    ),
];

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
    }
}
