//! Port forwarding rules on VPC public IPs (reference §2.5).

use ipnet::Ipv4Net;

use super::{PortRange, Transport, parse_ipv4_cidr};
use crate::error::Error;

/// createPortForwardingRule's port and protocol parameters.
#[derive(Debug, Clone, Default)]
pub struct NewPortForward<'a> {
    pub protocol: &'a str,
    pub public_port: i64,
    pub public_end_port: Option<i64>,
    pub private_port: i64,
    pub private_end_port: Option<i64>,
    /// `openfirewall`; VPC IPs have no firewall, so only false/absent is allowed.
    pub open_firewall: Option<bool>,
    /// `cidrlist`: source CIDRs allowed to use the rule; empty = everyone.
    pub source_cidrs: &'a [&'a str],
}

/// A checked port forwarding rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortForward {
    pub protocol: Transport,
    pub public: PortRange,
    pub private: PortRange,
    /// Source CIDRs; `0.0.0.0/0` when none were given.
    pub source_cidrs: Vec<Ipv4Net>,
}

/// Validates a port forwarding rule for an IP of a VPC: tcp/udp, ports in
/// 1–65535 with start ≤ end, public and private ranges of the same length,
/// and no `openfirewall=true`.
pub fn validate_port_forward(req: &NewPortForward<'_>) -> Result<PortForward, Error> {
    if req.open_firewall == Some(true) {
        return Err(Error::invalid(
            // CloudStack's text (its commands' getOpenFirewall): a VPC has
            // no firewall service, the tier's network ACL filters instead.
            "Can't have openFirewall=true when IP address belongs to VPC",
        ));
    }
    let protocol = Transport::parse(req.protocol)?;
    let public = PortRange::new("publicport", req.public_port, req.public_end_port, 1)?;
    let private = PortRange::new("privateport", req.private_port, req.private_end_port, 1)?;
    if public.len() != private.len() {
        return Err(Error::invalid(format!(
            "Public port range {public} and private port range {private} must have the same \
             number of ports ({} vs {})",
            public.len(),
            private.len()
        )));
    }
    let mut source_cidrs = req
        .source_cidrs
        .iter()
        .map(|c| c.trim())
        .filter(|c| !c.is_empty())
        .map(|c| parse_ipv4_cidr("cidrlist", c))
        .collect::<Result<Vec<_>, _>>()?;
    if source_cidrs.is_empty() {
        source_cidrs.push(Ipv4Net::default());
    }
    Ok(PortForward {
        protocol,
        public,
        private,
        source_cidrs,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    fn pf(proto: &str, pub_: (i64, Option<i64>), priv_: (i64, Option<i64>)) -> NewPortForward<'_> {
        NewPortForward {
            protocol: proto,
            public_port: pub_.0,
            public_end_port: pub_.1,
            private_port: priv_.0,
            private_end_port: priv_.1,
            open_firewall: None,
            source_cidrs: &[],
        }
    }

    #[test]
    fn accepted() {
        let r = validate_port_forward(&pf("TCP", (2222, None), (22, None))).unwrap();
        assert_eq!(
            (r.protocol, r.public.start, r.private.end),
            (Transport::Tcp, 2222, 22)
        );
        let r = validate_port_forward(&pf("udp", (5000, Some(5010)), (6000, Some(6010)))).unwrap();
        assert_eq!(r.public.len(), 11);
        let closed = NewPortForward {
            open_firewall: Some(false),
            ..pf("tcp", (80, None), (8080, None))
        };
        validate_port_forward(&closed).unwrap();
    }

    #[test]
    fn refused() {
        assert_err(
            validate_port_forward(&pf("icmp", (80, None), (80, None))),
            431,
            "\"icmp\"",
        );
        assert_err(
            validate_port_forward(&pf("tcp", (0, None), (80, None))),
            431,
            "publicport start port 0",
        );
        assert_err(
            validate_port_forward(&pf("tcp", (80, None), (65536, None))),
            431,
            "65536",
        );
        assert_err(
            validate_port_forward(&pf("tcp", (90, Some(80)), (90, Some(80)))),
            431,
            "90-80",
        );
        assert_err(
            validate_port_forward(&pf("tcp", (80, Some(81)), (80, None))),
            431,
            "80-81 and private port range 80",
        );
        let open = NewPortForward {
            open_firewall: Some(true),
            ..pf("tcp", (80, None), (80, None))
        };
        assert_err(validate_port_forward(&open), 431, "openFirewall=true");
    }

    #[test]
    fn source_cidrs() {
        let r = validate_port_forward(&pf("tcp", (22, None), (22, None))).unwrap();
        assert_eq!(r.source_cidrs, vec![Ipv4Net::default()]);
        assert_eq!(r.source_cidrs[0].to_string(), "0.0.0.0/0");
        let cidrs = ["192.0.2.0/24", " 198.51.100.7/32"];
        let r = validate_port_forward(&NewPortForward {
            source_cidrs: &cidrs,
            ..pf("tcp", (22, None), (22, None))
        })
        .unwrap();
        assert_eq!(r.source_cidrs.len(), 2);
        let bad = ["192.0.2.0/24", "2001:db8::/32"];
        assert_err(
            validate_port_forward(&NewPortForward {
                source_cidrs: &bad,
                ..pf("tcp", (22, None), (22, None))
            }),
            431,
            "cidrlist",
        );
    }
}
