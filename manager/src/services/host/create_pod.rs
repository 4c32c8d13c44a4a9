//! `createPod`: a pod of a zone, with its management network (gateway and
//! netmask) and the reserved system range (startip, endip) in it.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use uuid::Uuid;

use super::grouping_allocation_state;
use super::views::{POD_FIELDS, pod_view};
use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Id, Spec, SyncCommand, Text};
use crate::server::registry::ROOT;
use crate::server::{Ctx, Reply};
use crate::services::zone::zone_by_id;
use crate::store::{self, pod};

const NAME: Arg<Text> = Arg::req("name", "the name of the Pod");
const ZONE: Arg<Id> = Arg::req("zoneid", "the Zone ID in which the Pod will be created");
const START_IP: Arg<Text> = Arg::req("startip", "the starting IP address for the Pod");
const END_IP: Arg<Text> = Arg::opt("endip", "the ending IP address for the Pod");
const NETMASK: Arg<Text> = Arg::req("netmask", "the netmask for the Pod");
const GATEWAY: Arg<Text> = Arg::req("gateway", "the gateway for the Pod");
const ALLOCATION_STATE: Arg<Text> = Arg::opt(
    "allocationstate",
    "Allocation state of this Pod for allocation of new resources",
);

/// `createPod`.
pub struct CreatePod {
    name: String,
    zone: Uuid,
    start_ip: String,
    end_ip: Option<String>,
    netmask: String,
    gateway: String,
    allocation_state: Option<String>,
}

impl Command for CreatePod {
    const NAME: &'static str = "createPod";

    fn spec() -> Spec {
        Spec::new("Creates a new Pod.")
            .roles(ROOT)
            .param(NAME)
            .param(ZONE)
            .param(START_IP)
            .param(END_IP)
            .param(NETMASK)
            .param(GATEWAY)
            .param(ALLOCATION_STATE)
            .returns("pod", POD_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(CreatePod {
            name: args.need(&NAME)?,
            zone: args.need(&ZONE)?,
            start_ip: args.need(&START_IP)?,
            end_ip: args.text(&END_IP)?.filter(|e| !e.is_empty()),
            netmask: args.need(&NETMASK)?,
            gateway: args.need(&GATEWAY)?,
            allocation_state: args.get(&ALLOCATION_STATE)?,
        })
    }
}

/// The pod's network and range, checked: addresses, a contiguous netmask,
/// the range inside the network and in order, the gateway outside it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct PodNetwork {
    pub net: Ipv4Net,
    pub start: Ipv4Addr,
    pub end: Option<Ipv4Addr>,
}

pub(crate) fn pod_network(
    gateway: &str,
    netmask: &str,
    start: &str,
    end: Option<&str>,
) -> Result<PodNetwork, Error> {
    let ip = |name: &str, v: &str| {
        v.parse::<Ipv4Addr>()
            .map_err(|_| Error::invalid(format!("Please specify a valid {name}")))
    };
    let gw = ip("gateway", gateway)?;
    let mask = ip("netmask", netmask)?;
    let bits = u32::from(mask);
    // A netmask is ones then zeros.
    if bits.leading_ones() + bits.trailing_zeros() != 32 {
        return Err(Error::invalid("Please specify a valid netmask"));
    }
    let net = Ipv4Net::new(gw, bits.leading_ones() as u8)
        .map_err(|_| Error::invalid("Please specify a valid netmask"))?
        .trunc();
    let start = ip("start IP", start)?;
    let end = end.map(|e| ip("end IP", e)).transpose()?;
    if !net.contains(&start) {
        return Err(Error::invalid(format!(
            "The start address of the IP range is not in the CIDR subnet {net}"
        )));
    }
    if let Some(end) = end {
        if !net.contains(&end) {
            return Err(Error::invalid(format!(
                "The end address of the IP range is not in the CIDR subnet {net}"
            )));
        }
        if end < start {
            return Err(Error::invalid(
                "The start IP address must have a lower value than the end IP address",
            ));
        }
    }
    let in_range = gw >= start && end.map_or(gw == start, |e| gw <= e);
    if in_range {
        return Err(Error::invalid(
            "The gateway IP address cannot be in the pod's IP range",
        ));
    }
    Ok(PodNetwork { net, start, end })
}

impl SyncCommand for CreatePod {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let zone = zone_by_id(ctx, self.zone, ZONE.name()).await?;
        let checked = pod_network(
            &self.gateway,
            &self.netmask,
            &self.start_ip,
            self.end_ip.as_deref(),
        )?;
        let allocation_state = grouping_allocation_state(self.allocation_state.as_deref())?;
        let name = self.name;
        let created = pod::create_pod(
            &ctx.app.db,
            pod::NewPod {
                name: name.clone(),
                zone_id: zone.id,
                gateway: self.gateway,
                cidr_address: checked.net.network().to_string(),
                cidr_size: i64::from(checked.net.prefix_len()),
                start_ip: checked.start.to_string(),
                end_ip: checked.end.map(|e| e.to_string()),
                allocation_state: allocation_state.to_string(),
            },
        )
        .await
        .map_err(|e| match e {
            // CloudStack's text, the trailing space included.
            store::StoreError::Duplicate(_) => Error::invalid(format!(
                "A pod with name: {name} already exists in zone {}. Please specify a different pod name. ",
                zone.uuid
            )),
            other => other.into(),
        })?;
        Ok(Reply::Object(pod_view(&created, Some(&zone))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_network_is_the_gateway_under_its_netmask_with_the_range_inside() {
        let p = pod_network("10.0.0.1", "255.255.255.0", "10.0.0.10", Some("10.0.0.20")).unwrap();
        assert_eq!(p.net, "10.0.0.0/24".parse().unwrap());
        assert_eq!(p.end, Some("10.0.0.20".parse().unwrap()));
    }

    #[test]
    fn bad_pod_networks_are_refused_with_the_reason() {
        let text = |g, m, s, e| pod_network(g, m, s, e).unwrap_err().text();
        assert_eq!(
            text("10.0.0.1", "255.0.255.0", "10.0.0.10", None),
            "Please specify a valid netmask"
        );
        assert_eq!(
            text("gw", "255.255.255.0", "10.0.0.10", None),
            "Please specify a valid gateway"
        );
        assert!(text("10.0.0.1", "255.255.255.0", "10.0.1.10", None).contains("not in the CIDR"));
        assert!(
            text("10.0.0.1", "255.255.255.0", "10.0.0.20", Some("10.0.0.10"))
                .contains("lower value")
        );
        assert!(
            text("10.0.0.15", "255.255.255.0", "10.0.0.10", Some("10.0.0.20")).contains("gateway")
        );
    }
}
