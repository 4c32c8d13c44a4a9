//! Links, addresses, routes and sysctls inside lab namespaces.
//!
//! Everything here runs `ip -n <ns> ...` or `ip netns exec <ns> ...`: the host
//! namespace is never addressed.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::lab::{Lab, Netns};

/// Linux limits interface names to `IFNAMSIZ - 1` bytes.
pub const IFNAME_MAX: usize = 15;

impl Lab {
    /// Creates a veth pair with one end in each namespace (`ip -n A link add ... netns B`).
    pub fn veth(&self, ns_a: &Netns, name_a: &str, ns_b: &Netns, name_b: &str) -> Result<()> {
        self.veth_with_mac(ns_a, name_a, None, ns_b, name_b, None)
    }

    /// Like [`Lab::veth`], optionally fixing either end's MAC address (`02:00:...`).
    pub fn veth_with_mac(
        &self,
        ns_a: &Netns,
        name_a: &str,
        mac_a: Option<&str>,
        ns_b: &Netns,
        name_b: &str,
        mac_b: Option<&str>,
    ) -> Result<()> {
        check_ifname(name_a)?;
        check_ifname(name_b)?;
        let mut args = vec!["link", "add", name_a];
        if let Some(mac) = mac_a {
            check_mac(mac)?;
            args.extend(["address", mac]);
        }
        args.extend(["type", "veth", "peer", "name", name_b]);
        if let Some(mac) = mac_b {
            check_mac(mac)?;
            args.extend(["address", mac]);
        }
        // Creating the peer directly in B avoids a window where it sits in A under a
        // name that might clash with one of A's own interfaces.
        args.extend(["netns", ns_b.name()]);
        self.ip(ns_a, &args).map(drop)
    }

    /// Creates a Linux bridge (STP off, so ports forward immediately); it starts down.
    pub fn bridge(&self, ns: &Netns, name: &str) -> Result<()> {
        check_ifname(name)?;
        self.ip(ns, &["link", "add", name, "type", "bridge"])
            .map(drop)
    }

    /// Enslaves `link` to `bridge` (both in `ns`).
    pub fn set_master(&self, ns: &Netns, link: &str, bridge: &str) -> Result<()> {
        check_ifname(link)?;
        check_ifname(bridge)?;
        self.ip(ns, &["link", "set", "dev", link, "master", bridge])
            .map(drop)
    }

    /// Moves `link` from one lab namespace to another (it comes out down, without addresses).
    pub fn move_link(&self, from: &Netns, link: &str, to: &Netns) -> Result<()> {
        check_ifname(link)?;
        self.ip(from, &["link", "set", "dev", link, "netns", to.name()])
            .map(drop)
    }

    /// Sets `link` up.
    pub fn link_up(&self, ns: &Netns, link: &str) -> Result<()> {
        check_ifname(link)?;
        self.ip(ns, &["link", "set", "dev", link, "up"]).map(drop)
    }

    /// Adds an address in CIDR form (`10.0.0.1/24`) to `link`.
    pub fn addr_add(&self, ns: &Netns, link: &str, cidr: &str) -> Result<()> {
        check_ifname(link)?;
        self.ip(ns, &["addr", "add", cidr, "dev", link]).map(drop)
    }

    /// Runs `ip -n <ns> route add <args...>`, e.g. `&["default", "via", "10.0.0.1"]`.
    pub fn route_add(&self, ns: &Netns, args: &[&str]) -> Result<()> {
        let mut argv = vec!["route", "add"];
        argv.extend_from_slice(args);
        self.ip(ns, &argv).map(drop)
    }

    /// Sets a sysctl inside `ns` (`ip netns exec <ns> sysctl -w key=value`).
    ///
    /// Only `net.*` keys are accepted: inside a non-initial network namespace those are
    /// all per-namespace, whereas e.g. `kernel.*` or `vm.*` would change the host.
    pub fn sysctl(&self, ns: &Netns, key: &str, value: &str) -> Result<()> {
        let key_ok = key.starts_with("net.")
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c));
        if !key_ok {
            return Err(Error::InvalidArgument(format!(
                "sysctl key `{key}` refused: only per-namespace `net.*` keys are allowed"
            )));
        }
        if value.contains('\n') {
            return Err(Error::InvalidArgument(format!(
                "sysctl value {value:?} contains a newline"
            )));
        }
        let assignment = format!("{key}={value}");
        self.exec(ns, &["sysctl", "-q", "-w", &assignment])
            .map(drop)
    }

    /// The MAC address of `link`, as `ip` prints it (`aa:bb:cc:dd:ee:ff`).
    pub fn link_mac(&self, ns: &Netns, link: &str) -> Result<String> {
        check_ifname(link)?;
        let out = self.ip(ns, &["-j", "link", "show", "dev", link])?;
        parse_link_mac(&out.stdout)
    }

    /// The IPv4 addresses of `link` as `addr/prefix` strings, in kernel order.
    pub fn addresses(&self, ns: &Netns, link: &str) -> Result<Vec<String>> {
        check_ifname(link)?;
        let out = self.ip(ns, &["-j", "-4", "addr", "show", "dev", link])?;
        parse_ipv4_addresses(&out.stdout)
    }
}

/// Rejects names the kernel would refuse, with a clearer message than `ip`'s.
pub fn check_ifname(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("must not be empty")
    } else if name.len() > IFNAME_MAX {
        Some("longer than 15 bytes (IFNAMSIZ)")
    } else if name == "." || name == ".." {
        Some("reserved")
    } else if name.contains(['/', ':']) || name.chars().any(char::is_whitespace) {
        Some("contains '/', ':' or whitespace")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidName {
            kind: "interface",
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Accepts `xx:xx:xx:xx:xx:xx` (hex, either case).
fn check_mac(mac: &str) -> Result<()> {
    let parts: Vec<&str> = mac.split(':').collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "`{mac}` is not a MAC address (xx:xx:xx:xx:xx:xx)"
        )))
    }
}

fn parse_json(what: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| Error::parse(what, e.to_string(), text))
}

/// Extracts `address` from `ip -j link show dev X`.
pub(crate) fn parse_link_mac(text: &str) -> Result<String> {
    let json = parse_json("`ip -j link show`", text)?;
    json.get(0)
        .and_then(|link| link.get("address"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| Error::parse("`ip -j link show`", "no `address` field", text))
}

/// Extracts the `inet` entries of `ip -j addr show` as `local/prefixlen`.
pub(crate) fn parse_ipv4_addresses(text: &str) -> Result<Vec<String>> {
    let what = "`ip -j addr show`";
    let json = parse_json(what, text)?;
    let links = json
        .as_array()
        .ok_or_else(|| Error::parse(what, "not a JSON array", text))?;
    let mut addresses = Vec::new();
    for info in links
        .iter()
        .filter_map(|link| link.get("addr_info").and_then(Value::as_array))
        .flatten()
    {
        if info.get("family").and_then(Value::as_str) != Some("inet") {
            continue;
        }
        let local = info.get("local").and_then(Value::as_str);
        let prefix = info.get("prefixlen").and_then(Value::as_u64);
        match (local, prefix) {
            (Some(local), Some(prefix)) => addresses.push(format!("{local}/{prefix}")),
            _ => {
                return Err(Error::parse(
                    what,
                    "inet entry without local/prefixlen",
                    text,
                ));
            }
        }
    }
    Ok(addresses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_longer_than_15_bytes_are_refused() {
        assert!(check_ifname("veth-0123456789").is_ok());
        let err = check_ifname("veth-0123456789a").unwrap_err();
        assert!(err.to_string().contains("15"), "{err}");
        for bad in ["", "a/b", "a b", "eth0:1", ".."] {
            assert!(check_ifname(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn mac_addresses_are_checked() {
        assert!(check_mac("02:00:0a:C9:00:63").is_ok());
        for bad in ["02:00:0a:c9:00", "02:00:0a:c9:00:6", "zz:00:0a:c9:00:63"] {
            assert!(check_mac(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn link_mac_from_ip_json() {
        let text = r#"[{"ifindex":2,"ifname":"eth0","flags":["BROADCAST","MULTICAST"],"mtu":1500,
            "link_type":"ether","address":"02:00:0a:c9:00:63","broadcast":"ff:ff:ff:ff:ff:ff"}]"#;
        assert_eq!(parse_link_mac(text).unwrap(), "02:00:0a:c9:00:63");
        assert!(parse_link_mac("[]").is_err());
    }

    #[test]
    fn ipv4_addresses_from_ip_json() {
        let text = r#"[{"ifindex":2,"ifname":"eth0","addr_info":[
            {"family":"inet","local":"10.201.0.50","prefixlen":24,"broadcast":"10.201.0.255",
             "scope":"global","label":"eth0","valid_life_time":4294967295},
            {"family":"inet6","local":"fe80::1","prefixlen":64,"scope":"link"},
            {"family":"inet","local":"10.9.0.1","prefixlen":32}]}]"#;
        assert_eq!(
            parse_ipv4_addresses(text).unwrap(),
            ["10.201.0.50/24", "10.9.0.1/32"]
        );
        // `ip -j addr show` prints objects without addr_info for links with no addresses.
        assert!(parse_ipv4_addresses(r#"[{}]"#).unwrap().is_empty());
        assert!(parse_ipv4_addresses("not json").is_err());
    }
}
