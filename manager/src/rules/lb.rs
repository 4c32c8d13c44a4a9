//! Public load balancing rules served by the VPC virtual router
//! (reference §2.5, §3.4 item 9).

use super::{MAX_DISPLAY_TEXT_LEN, PortRange, check_length, check_name};
use crate::error::Error;

/// Balancing algorithms the VPC virtual router supports, as CloudStack's
/// VR offers them (`SupportedLBAlgorithms`: roundrobin, leastconn, source).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    RoundRobin,
    Source,
    /// Served by the router's HAProxy (TCP only).
    LeastConn,
}

impl Algorithm {
    /// Parses `roundrobin`, `leastconn` or `source` (case-insensitive).
    pub fn parse(text: &str) -> Result<Self, Error> {
        match text.trim().to_ascii_lowercase().as_str() {
            "roundrobin" => Ok(Self::RoundRobin),
            "source" => Ok(Self::Source),
            "leastconn" => Ok(Self::LeastConn),
            _ => Err(Error::invalid(format!(
                "Invalid algorithm {text:?}: use roundrobin, leastconn or source"
            ))),
        }
    }

    /// Refuses leastconn on UDP: the router's HAProxy, which counts
    /// connections, proxies TCP only.
    pub fn check_transport(self, udp: bool) -> Result<(), Error> {
        if self == Self::LeastConn && udp {
            return Err(Error::invalid(
                "Algorithm leastconn balances tcp only on the VPC virtual router; \
                 use roundrobin or source for udp",
            ));
        }
        Ok(())
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::RoundRobin => "roundrobin",
            Self::Source => "source",
            Self::LeastConn => "leastconn",
        }
    }
}

/// LB protocols accepted for the VPC virtual router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbProtocol {
    Tcp,
    Udp,
    TcpProxy,
}

impl LbProtocol {
    /// Parses `tcp` (the default when absent), `udp` or `tcp-proxy`.
    pub fn parse(text: Option<&str>) -> Result<Self, Error> {
        match text.map(|t| t.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("tcp") => Ok(Self::Tcp),
            Some("udp") => Ok(Self::Udp),
            Some("tcp-proxy") => Ok(Self::TcpProxy),
            Some(other) => Err(Error::invalid(format!(
                "Invalid load balancer protocol {other:?}: use tcp, udp or tcp-proxy"
            ))),
        }
    }
}

impl LbProtocol {
    /// The transport the VPC virtual router balances. Its in-kernel balancer
    /// forwards connections and cannot speak the PROXY protocol, so
    /// `tcp-proxy` is refused.
    pub fn vpc_router_transport(self) -> Result<super::Transport, Error> {
        match self {
            Self::Tcp => Ok(super::Transport::Tcp),
            Self::Udp => Ok(super::Transport::Udp),
            Self::TcpProxy => Err(Error::invalid(
                "Load balancer protocol tcp-proxy is not supported by the VPC virtual router; \
                 use tcp or udp",
            )),
        }
    }
}

/// createLoadBalancerRule's parameters the rules check.
#[derive(Debug, Clone, Default)]
pub struct NewLoadBalancer<'a> {
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub algorithm: &'a str,
    pub protocol: Option<&'a str>,
    pub public_port: i64,
    pub private_port: i64,
}

/// A checked load balancing rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadBalancer {
    pub algorithm: Algorithm,
    pub protocol: LbProtocol,
    pub public_port: u16,
    pub private_port: u16,
}

/// Validates an LB rule: name and description lengths, algorithm, protocol
/// and both ports in 1–65535.
pub fn validate_load_balancer(req: &NewLoadBalancer<'_>) -> Result<LoadBalancer, Error> {
    check_name("name", req.name)?;
    if let Some(d) = req.description {
        check_length("description", d, MAX_DISPLAY_TEXT_LEN)?;
    }
    let algorithm = Algorithm::parse(req.algorithm)?;
    let protocol = LbProtocol::parse(req.protocol)?;
    algorithm.check_transport(protocol == LbProtocol::Udp)?;
    let public = PortRange::new("publicport", req.public_port, None, 1)?;
    let private = PortRange::new("privateport", req.private_port, None, 1)?;
    Ok(LoadBalancer {
        algorithm,
        protocol,
        public_port: public.start,
        private_port: private.start,
    })
}

/// Only one tier per VPC may host public LB rules: `lb_tier` is the tier
/// that already has some (if any), `target` the tier of the new rule.
pub fn check_public_lb_tier<T: PartialEq + std::fmt::Display>(
    lb_tier: Option<&T>,
    target: &T,
) -> Result<(), Error> {
    match lb_tier {
        Some(t) if t != target => Err(Error::invalid(format!(
            "Public load balancing is already used on tier {t} of this VPC; \
             only one tier per VPC may have public LB rules (asked for tier {target})"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    fn lb(algorithm: &str) -> NewLoadBalancer<'_> {
        NewLoadBalancer {
            name: "web",
            algorithm,
            public_port: 80,
            private_port: 8080,
            ..Default::default()
        }
    }

    #[test]
    fn accepted() {
        let r = validate_load_balancer(&lb("roundrobin")).unwrap();
        assert_eq!(
            (r.algorithm, r.protocol, r.public_port, r.private_port),
            (Algorithm::RoundRobin, LbProtocol::Tcp, 80, 8080)
        );
        assert_eq!(
            validate_load_balancer(&lb("Source")).unwrap().algorithm,
            Algorithm::Source
        );
        let udp = NewLoadBalancer {
            protocol: Some("udp"),
            ..lb("source")
        };
        assert_eq!(
            validate_load_balancer(&udp).unwrap().protocol,
            LbProtocol::Udp
        );
    }

    #[test]
    fn leastconn_is_accepted_for_tcp_and_refused_for_udp() {
        assert_eq!(
            validate_load_balancer(&lb("LeastConn")).unwrap().algorithm,
            Algorithm::LeastConn
        );
        let udp = NewLoadBalancer {
            protocol: Some("udp"),
            ..lb("leastconn")
        };
        let e = validate_load_balancer(&udp)
            .map_err(crate::api::ApiError::from)
            .unwrap_err();
        assert_eq!((e.code, e.cs_code), (431, 4350));
        assert!(e.text.contains("leastconn balances tcp only"), "{}", e.text);
        assert_err(validate_load_balancer(&lb("random")), 431, "\"random\"");
    }

    #[test]
    fn ports_name_and_protocol_checked() {
        assert_err(
            validate_load_balancer(&NewLoadBalancer {
                public_port: 0,
                ..lb("source")
            }),
            431,
            "publicport",
        );
        assert_err(
            validate_load_balancer(&NewLoadBalancer {
                private_port: 70000,
                ..lb("source")
            }),
            431,
            "privateport",
        );
        assert_err(
            validate_load_balancer(&NewLoadBalancer {
                name: "",
                ..lb("source")
            }),
            431,
            "name",
        );
        let long = "d".repeat(256);
        assert_err(
            validate_load_balancer(&NewLoadBalancer {
                description: Some(&long),
                ..lb("source")
            }),
            431,
            "description",
        );
        assert_err(
            validate_load_balancer(&NewLoadBalancer {
                protocol: Some("ssl"),
                ..lb("source")
            }),
            431,
            "\"ssl\"",
        );
    }

    #[test]
    fn the_vpc_router_balances_tcp_and_udp() {
        use super::super::Transport;
        assert_eq!(
            LbProtocol::Tcp.vpc_router_transport().unwrap(),
            Transport::Tcp
        );
        assert_eq!(
            LbProtocol::Udp.vpc_router_transport().unwrap(),
            Transport::Udp
        );
        assert_err(
            LbProtocol::TcpProxy.vpc_router_transport(),
            431,
            "tcp-proxy is not supported by the VPC virtual router",
        );
    }

    #[test]
    fn one_public_lb_tier_per_vpc() {
        check_public_lb_tier(None, &"web").unwrap();
        check_public_lb_tier(Some(&"web"), &"web").unwrap();
        assert_err(check_public_lb_tier(Some(&"web"), &"db"), 431, "tier web");
    }
}
