//! The router's strongSwan configuration, planned from the desired VPN: the
//! daemon's `strongswan.conf` (which plugins charon loads: the IPsec backend
//! is `kernel-netlink` where the kernel has ESP, `kernel-libipsec` where it
//! does not) and `swanctl.conf` (one IKE connection per VPN connection,
//! named by its id, with its pre-shared key).
//!
//! Every value comes from a validated [`Vpn`]: ids are UUIDs, peers are
//! addresses or DNS names, proposals keep to `[a-z0-9_-]`, and the key holds
//! no quote, backslash or control character, so quoting it is enough.

use std::fmt::Write;
use std::path::Path;

use crate::model::{IkeVersion, Vpn, VpnConnection};

/// Where the kernel's IPsec lives: in the kernel (xfrm with ESP) or in
/// charon itself (a TUN device carrying the tunnelled packets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Kernel,
    Userspace,
}

impl Backend {
    /// The plugin that installs SAs and policies.
    pub fn plugin(self) -> &'static str {
        match self {
            Backend::Kernel => "kernel-netlink",
            Backend::Userspace => "kernel-libipsec kernel-netlink",
        }
    }
}

/// The TUN device of the userspace backend (kernel-libipsec's default name):
/// decrypted traffic comes in on it and traffic for the peers leaves by it.
pub const USERSPACE_DEV: &str = "ipsec0";
/// The route table charon puts the peers' subnets in (strongSwan's
/// default), looked up by a rule of priority 220, before the agent's.
pub const ROUTE_TABLE: u32 = 220;
/// How often a peer is probed when dead peer detection is on.
pub const DPD_DELAY_SECS: u32 = 30;

/// charon's `strongswan.conf`: only the plugins it needs (the backend's
/// kernel interface loaded first, so it installs the SAs), the VICI socket
/// and the log in the agent's VPN directory.
pub fn strongswan_conf(backend: Backend, dir: &Path) -> String {
    let plugins = format!(
        "random nonce openssl aes sha1 sha2 md5 hmac gmp kdf pem pkcs1 pubkey {} \
         socket-default vici updown",
        backend.plugin()
    );
    format!(
        "# Written by vr-agent; replaced at every start of charon.\n\
         charon {{\n\
         \x20 load = {plugins}\n\
         \x20 install_routes = yes\n\
         \x20 routing_table = {ROUTE_TABLE}\n\
         \x20 plugins {{\n\
         \x20   vici {{\n\
         \x20     socket = unix://{socket}\n\
         \x20   }}\n\
         \x20 }}\n\
         \x20 filelog {{\n\
         \x20   agent {{\n\
         \x20     path = {log}\n\
         \x20     time_format = %s\n\
         \x20     ike_name = yes\n\
         \x20     flush_line = yes\n\
         \x20     default = 1\n\
         \x20     ike = 1\n\
         \x20   }}\n\
         \x20 }}\n\
         }}\n",
        socket = dir.join("charon.vici").display(),
        log = dir.join("charon.log").display(),
    )
}

fn version(v: IkeVersion) -> u8 {
    match v {
        IkeVersion::Any => 0,
        IkeVersion::V1 => 1,
        IkeVersion::V2 => 2,
    }
}

fn joined<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The child SAs of a connection: one for all remote subnets, or (IKEv2
/// with `split_connections`) one per remote subnet, named `<id>-<n>`.
pub fn children(c: &VpnConnection) -> Vec<(String, String)> {
    if c.split_connections && c.ike_version != IkeVersion::V1 && c.remote.len() > 1 {
        c.remote
            .iter()
            .enumerate()
            .map(|(n, r)| (format!("{}-{n}", c.id), r.to_string()))
            .collect()
    } else {
        vec![(c.id.clone(), joined(&c.remote))]
    }
}

fn connection(out: &mut String, vpn: &Vpn, c: &VpnConnection) {
    // `start` initiates at load and again when the peer closes; a passive
    // end only answers.
    let start = if c.passive { "none" } else { "start" };
    let _ = writeln!(out, "  {} {{", c.id);
    let _ = writeln!(out, "    version = {}", version(c.ike_version));
    let _ = writeln!(out, "    local_addrs = {}", vpn.public_ip);
    let _ = writeln!(out, "    remote_addrs = {}", c.peer);
    let _ = writeln!(out, "    proposals = {}", joined(&c.ike_proposals));
    let _ = writeln!(out, "    rekey_time = {}s", c.ike_lifetime);
    let _ = writeln!(
        out,
        "    encap = {}",
        if c.force_encap { "yes" } else { "no" }
    );
    if c.dpd {
        let _ = writeln!(out, "    dpd_delay = {DPD_DELAY_SECS}s");
    }
    let _ = writeln!(
        out,
        "    local {{\n      auth = psk\n      id = {}\n    }}",
        vpn.public_ip
    );
    let _ = writeln!(
        out,
        "    remote {{\n      auth = psk\n      id = {}\n    }}",
        c.peer
    );
    let _ = writeln!(out, "    children {{");
    for (name, remote) in children(c) {
        let _ = writeln!(out, "      {name} {{");
        let _ = writeln!(out, "        local_ts = {}", joined(&c.local));
        let _ = writeln!(out, "        remote_ts = {remote}");
        let _ = writeln!(out, "        esp_proposals = {}", joined(&c.esp_proposals));
        let _ = writeln!(out, "        rekey_time = {}s", c.esp_lifetime);
        let _ = writeln!(out, "        start_action = {start}");
        if c.dpd {
            let _ = writeln!(
                out,
                "        dpd_action = {}",
                if c.passive { "clear" } else { "restart" }
            );
        }
        let _ = writeln!(out, "      }}");
    }
    let _ = writeln!(out, "    }}");
    let _ = writeln!(out, "  }}");
}

/// `swanctl.conf` for `vpn`: its connections and their keys. The file holds
/// the keys: the supervisor writes it with mode 0600.
pub fn swanctl_conf(vpn: &Vpn) -> String {
    let mut out = String::from("# Written by vr-agent from the desired state.\nconnections {\n");
    for c in &vpn.connections {
        connection(&mut out, vpn, c);
    }
    out.push_str("}\nsecrets {\n");
    for c in &vpn.connections {
        let _ = writeln!(
            out,
            "  ike-{} {{\n    id-1 = {}\n    id-2 = {}\n    secret = \"{}\"\n  }}",
            c.id, vpn.public_ip, c.peer, c.psk
        );
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vpn {
        Vpn {
            public_ip: "203.0.113.10".parse().unwrap(),
            index: 1,
            connections: vec![VpnConnection {
                id: "3f1c2a52-0001-4b8e-8d1f-5e0a00000001".into(),
                peer: "198.51.100.20".into(),
                local: vec!["10.1.0.0/16".parse().unwrap()],
                remote: vec![
                    "10.9.0.0/16".parse().unwrap(),
                    "10.10.0.0/24".parse().unwrap(),
                ],
                psk: "open sesame".into(),
                ike_proposals: vec!["aes128-sha1-modp1536".into()],
                esp_proposals: vec!["aes128-sha1".into(), "aes256-sha256".into()],
                ike_lifetime: 86_400,
                esp_lifetime: 3_600,
                dpd: true,
                ike_version: IkeVersion::Any,
                passive: false,
                force_encap: false,
                split_connections: false,
                reset_serial: 0,
            }],
        }
    }

    #[test]
    fn a_connection_becomes_one_ike_connection_with_its_key() {
        let conf = swanctl_conf(&sample());
        insta::assert_snapshot!(conf, @r#"
        # Written by vr-agent from the desired state.
        connections {
          3f1c2a52-0001-4b8e-8d1f-5e0a00000001 {
            version = 0
            local_addrs = 203.0.113.10
            remote_addrs = 198.51.100.20
            proposals = aes128-sha1-modp1536
            rekey_time = 86400s
            encap = no
            dpd_delay = 30s
            local {
              auth = psk
              id = 203.0.113.10
            }
            remote {
              auth = psk
              id = 198.51.100.20
            }
            children {
              3f1c2a52-0001-4b8e-8d1f-5e0a00000001 {
                local_ts = 10.1.0.0/16
                remote_ts = 10.9.0.0/16,10.10.0.0/24
                esp_proposals = aes128-sha1,aes256-sha256
                rekey_time = 3600s
                start_action = start
                dpd_action = restart
              }
            }
          }
        }
        secrets {
          ike-3f1c2a52-0001-4b8e-8d1f-5e0a00000001 {
            id-1 = 203.0.113.10
            id-2 = 198.51.100.20
            secret = "open sesame"
          }
        }
        "#);
    }

    #[test]
    fn a_passive_split_ikev2_connection_answers_with_one_child_per_subnet() {
        let mut vpn = sample();
        let c = &mut vpn.connections[0];
        c.passive = true;
        c.split_connections = true;
        c.ike_version = IkeVersion::V2;
        let conf = swanctl_conf(&vpn);
        assert!(conf.contains("version = 2"));
        assert!(conf.contains("3f1c2a52-0001-4b8e-8d1f-5e0a00000001-0 {\n        local_ts = 10.1.0.0/16\n        remote_ts = 10.9.0.0/16\n"));
        assert!(
            conf.contains(
                "-1 {\n        local_ts = 10.1.0.0/16\n        remote_ts = 10.10.0.0/24\n"
            )
        );
        assert_eq!(conf.matches("start_action = none").count(), 2);
        assert!(!conf.contains("start_action = start"));
    }

    #[test]
    fn the_backend_decides_which_kernel_interface_charon_loads() {
        let dir = Path::new("/var/lib/vr-agent/vpn");
        let user = strongswan_conf(Backend::Userspace, dir);
        assert!(user.contains("pubkey kernel-libipsec kernel-netlink socket-default"));
        assert!(user.contains("socket = unix:///var/lib/vr-agent/vpn/charon.vici"));
        let kernel = strongswan_conf(Backend::Kernel, dir);
        assert!(!kernel.contains("libipsec"));
    }
}
