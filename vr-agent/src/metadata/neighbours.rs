//! The MAC a request came from: the router's IPv4 neighbour entry for the
//! peer address on the tier's link.
//!
//! The kernel answered the peer's TCP handshake, so it resolved the peer's
//! address on that link a moment ago: the entry is complete. It is read from
//! `/proc/net/arp`, which shows the neighbour table of the reading process's
//! network namespace (the router's: the agent runs inside it).

use std::net::Ipv4Addr;

use crate::model::Mac;

/// The table the kernel shows for the agent's namespace.
const ARP_TABLE: &str = "/proc/net/arp";
/// `ATF_COM`: the entry is complete (the MAC is known).
const ATF_COM: u32 = 0x2;

/// The MAC of `ip` on link `dev` in an `/proc/net/arp` listing, when the
/// entry is complete.
pub fn mac_in(listing: &str, ip: Ipv4Addr, dev: &str) -> Option<Mac> {
    // IP address  HW type  Flags  HW address  Mask  Device
    listing.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [addr, _, flags, hw, _, device] = fields.as_slice() else {
            return None;
        };
        let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).ok()?;
        (addr.parse::<Ipv4Addr>().ok()? == ip && *device == dev && flags & ATF_COM != 0)
            .then(|| hw.to_ascii_lowercase().parse().ok())
            .flatten()
    })
}

/// The MAC of `ip` on link `dev` in the agent's namespace.
pub fn mac_of(ip: Ipv4Addr, dev: &str) -> Option<Mac> {
    let listing = std::fs::read_to_string(ARP_TABLE).ok()?;
    mac_in(&listing, ip, dev)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = "\
IP address       HW type     Flags       HW address            Mask     Device
10.1.1.5         0x1         0x2         02:00:00:00:AA:05     *        eth2
10.1.1.6         0x1         0x0         00:00:00:00:00:00     *        eth2
10.1.2.5         0x1         0x2         02:00:00:00:bb:05     *        eth3
";

    #[test]
    fn a_complete_entry_on_the_link_gives_the_mac_and_nothing_else_does() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(
            mac_in(LISTING, ip("10.1.1.5"), "eth2").map(|m| m.to_string()),
            Some("02:00:00:00:aa:05".into())
        );
        assert_eq!(mac_in(LISTING, ip("10.1.1.6"), "eth2"), None, "incomplete");
        assert_eq!(mac_in(LISTING, ip("10.1.2.5"), "eth2"), None, "other link");
        assert_eq!(mac_in(LISTING, ip("10.1.9.9"), "eth2"), None);
    }
}
