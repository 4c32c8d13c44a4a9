//! `CheckNeighbour`: a host agent tells the manager whether it still
//! reaches another host on the underlay (issue 12). When a host agent goes
//! silent the manager's host monitor asks a few live hosts of the same zone
//! before it moves anything, as CloudStack's investigators send
//! `CheckOnHostCommand` to the Up neighbours of the host's cluster: one that
//! still reaches it means the host runs (only its agent is gone) and
//! nothing moves; when every neighbour asked answers and none reaches it,
//! the host is Down.
//!
//! The probe is ICMP echo from this host's underlay end in the zone (`ul0`
//! in the zone namespace, the link the zone's VXLAN devices bind to) to the
//! silent host's underlay address: the path the data plane between the two
//! hosts takes. It runs iputils `ping` under `ip netns exec`, as the driver
//! runs every process in a namespace: `ping -c 1 -w N` keeps sending
//! (every 0.2 s) until one answer or the deadline, and its exit status is
//! exactly "answered within the deadline"; ping is already a package the
//! set-up installs. A raw ICMP socket would need a thread entered into the
//! zone namespace and a hand-made echo exchange for the same answer.
//! Only a parsed IPv4 address and the driver's own namespace name (from a
//! parsed zone UUID) reach the command line.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use uuid::Uuid;
use vpc_proto::host::v1 as pb;

use super::convert::FieldError;

/// The shortest and longest probe a manager may ask for.
pub const DEADLINE_MIN: Duration = Duration::from_secs(1);
pub const DEADLINE_MAX: Duration = Duration::from_secs(5);

/// How long the ping process may outlive its own deadline before it is
/// killed (it exits on its deadline; this only guards a stuck `ip`).
const GRACE: Duration = Duration::from_secs(2);

/// A checked `CheckNeighbourRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighbourCheck {
    pub zone_id: Uuid,
    pub address: Ipv4Addr,
    /// Whole seconds, [`DEADLINE_MIN`] to [`DEADLINE_MAX`].
    pub deadline: Duration,
}

fn bad(field: &str, why: impl std::fmt::Display) -> FieldError {
    FieldError {
        field: field.to_string(),
        why: why.to_string(),
    }
}

/// Checks a request: a zone UUID, a unicast IPv4 address other than
/// `own` (this host's underlay address), a deadline within bounds.
pub fn check_request(
    r: &pb::CheckNeighbourRequest,
    own: Option<Ipv4Addr>,
) -> Result<NeighbourCheck, FieldError> {
    let zone_id: Uuid = r
        .zone_id
        .parse()
        .map_err(|_| bad("zone_id", format!("{:?} is not a UUID", r.zone_id)))?;
    let address: Ipv4Addr = r.underlay_address.parse().map_err(|_| {
        bad(
            "underlay_address",
            format!("{:?} is not an IPv4 address", r.underlay_address),
        )
    })?;
    if address.is_unspecified()
        || address.is_loopback()
        || address.is_multicast()
        || address.is_broadcast()
        || address.is_link_local()
    {
        return Err(bad(
            "underlay_address",
            format!("{address} is not a unicast host address"),
        ));
    }
    if Some(address) == own {
        return Err(bad(
            "underlay_address",
            format!("{address} is this host's own underlay address"),
        ));
    }
    let asked = Duration::from_millis(u64::from(r.deadline_ms));
    if asked > DEADLINE_MAX {
        return Err(bad(
            "deadline_ms",
            format!(
                "{} is more than {} ms",
                r.deadline_ms,
                DEADLINE_MAX.as_millis()
            ),
        ));
    }
    // ping's deadline is whole seconds: rounded up, at least one.
    let secs = asked.as_millis().div_ceil(1000).max(1) as u64;
    Ok(NeighbourCheck {
        zone_id,
        address,
        deadline: Duration::from_secs(secs).max(DEADLINE_MIN),
    })
}

/// The command that probes `address` from namespace `ns` within `deadline`
/// (whole seconds): one answer ends it with status 0.
pub fn ping_argv(ns: &str, address: Ipv4Addr, deadline: Duration) -> Vec<String> {
    [
        "netns",
        "exec",
        ns,
        "ping",
        "-n",
        "-q",
        "-c",
        "1",
        "-i",
        "0.2",
        "-w",
        &deadline.as_secs().max(1).to_string(),
        &address.to_string(),
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

/// Probes `address` from namespace `ns`: whether it answered, and how long
/// the probe took. A probe that cannot run is an error (the manager counts
/// the neighbour as not answering, never as a "no").
pub async fn probe(
    ns: &str,
    address: Ipv4Addr,
    deadline: Duration,
) -> Result<(bool, Duration), String> {
    let started = Instant::now();
    let argv = ping_argv(ns, address, deadline);
    let child = tokio::process::Command::new("ip")
        .args(&argv)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting `ip {}`: {e}", argv.join(" ")))?;
    let output = tokio::time::timeout(deadline + GRACE, child.wait_with_output())
        .await
        .map_err(|_| format!("`ip {}` outlived its deadline", argv.join(" ")))?
        .map_err(|e| format!("running `ip {}`: {e}", argv.join(" ")))?;
    // ping: 0 answered, 1 no answer; anything else (2: an error such as
    // no route, or `ip` failing to enter the namespace) says nothing.
    match output.status.code() {
        Some(0) => Ok((true, started.elapsed())),
        Some(1) => Ok((false, started.elapsed())),
        _ => Err(format!(
            "`ip {}` failed ({}): {}",
            argv.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(zone: &str, address: &str, deadline_ms: u32) -> pb::CheckNeighbourRequest {
        pb::CheckNeighbourRequest {
            zone_id: zone.into(),
            underlay_address: address.into(),
            deadline_ms,
        }
    }

    const ZONE: &str = "1a2b3c4d-0000-4000-8000-000000000001";

    #[test]
    fn a_request_carries_a_zone_a_unicast_address_and_a_bounded_deadline() {
        let own = Some(Ipv4Addr::new(10, 250, 0, 2));
        let ok = check_request(&request(ZONE, "10.250.0.1", 1500), own).unwrap();
        assert_eq!(ok.address, Ipv4Addr::new(10, 250, 0, 1));
        assert_eq!(ok.zone_id.to_string(), ZONE);
        assert_eq!(ok.deadline, Duration::from_secs(2), "rounded up");
        assert_eq!(
            check_request(&request(ZONE, "10.250.0.1", 0), own)
                .unwrap()
                .deadline,
            DEADLINE_MIN
        );
        for (zone, address, deadline, field) in [
            ("zone-1", "10.250.0.1", 1000, "zone_id"),
            (ZONE, "10.250.0.1; reboot", 1000, "underlay_address"),
            (ZONE, "-f", 1000, "underlay_address"),
            (ZONE, "", 1000, "underlay_address"),
            (ZONE, "fe80::1", 1000, "underlay_address"),
            (ZONE, "0.0.0.0", 1000, "underlay_address"),
            (ZONE, "127.0.0.1", 1000, "underlay_address"),
            (ZONE, "224.0.0.1", 1000, "underlay_address"),
            (ZONE, "255.255.255.255", 1000, "underlay_address"),
            (ZONE, "10.250.0.2", 1000, "underlay_address"),
            (ZONE, "10.250.0.1", 5001, "deadline_ms"),
        ] {
            let e = check_request(&request(zone, address, deadline), own).unwrap_err();
            assert_eq!(e.field, field, "{zone} {address} {deadline}: {e}");
        }
    }

    #[test]
    fn the_probe_is_one_answer_within_whole_seconds_from_the_zone_namespace() {
        assert_eq!(
            ping_argv(
                "vpc-zone-1a2b3c4d",
                Ipv4Addr::new(10, 250, 0, 1),
                Duration::from_secs(2)
            )
            .join(" "),
            "netns exec vpc-zone-1a2b3c4d ping -n -q -c 1 -i 0.2 -w 2 10.250.0.1"
        );
    }
}
