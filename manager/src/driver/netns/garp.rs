//! Gratuitous ARP sent by the host agent from inside a router's namespace,
//! when a router that moved here joins its segments ([`super::Inner::
//! activate_router`]). The router keeps its NICs' MACs and addresses, so
//! the neighbours' ARP caches stay right; what is wrong is every bridge
//! between them and this host (the fabric's, the VXLAN tiers' on the other
//! hosts, this host's own), which learnt those MACs behind the old host's
//! port. A broadcast from each MAC teaches them the new port at once.
//!
//! The router's agent announces an address when it adds it, but in standby
//! its links had no carrier then, so those frames went nowhere. The frame
//! is built by [`frame`] (pure); [`announce`] reads the links and sends.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use nix::libc;
use nix::sched::{CloneFlags, setns};

use super::error::{NetnsError, Result};
use super::ip::{self, netns_path};

/// EtherType of ARP.
const ETH_P_ARP: u16 = 0x0806;

/// The shortest Ethernet frame without its FCS.
const FRAME_LEN: usize = 60;

/// After the first round, the announcement is sent again after each of
/// these delays: a neighbour that missed one (a bridge port still coming
/// up) hears the next, as keepalived repeats its own after a takeover.
const REPEATS: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(2)];

/// One address to announce from one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub ifindex: u32,
    pub mac: [u8; 6],
    pub ip: Ipv4Addr,
}

/// The gratuitous ARP frame for `ip` from `mac`: a broadcast ARP request
/// whose sender and target address are both `ip` (target MAC zero), as the
/// kernel sends on `arp_notify`.
pub fn frame(mac: [u8; 6], ip: Ipv4Addr) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    f[14..16].copy_from_slice(&1u16.to_be_bytes()); // hardware: Ethernet
    f[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // protocol: IPv4
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&1u16.to_be_bytes()); // request
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&ip.octets());
    f[38..42].copy_from_slice(&ip.octets());
    f
}

/// `aa:bb:cc:dd:ee:ff` as bytes.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = text.split(':');
    for b in &mut out {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// The announcements of the links with `macs` (lower case), from `ip -j -d
/// link show` and `ip -j -4 addr show` of the namespace.
pub fn announcements(
    links_json: &str,
    addrs_json: &str,
    macs: &[String],
) -> std::result::Result<Vec<Announcement>, String> {
    let parse = |json: &str| -> std::result::Result<Vec<serde_json::Value>, String> {
        serde_json::from_str::<serde_json::Value>(json)
            .map_err(|e| format!("ip -j: {e}"))?
            .as_array()
            .cloned()
            .ok_or_else(|| "ip -j: not a list".to_string())
    };
    let links = parse(links_json)?;
    let addrs = parse(addrs_json)?;
    let mut out = Vec::new();
    for l in &links {
        let Some(text) = l.get("address").and_then(|a| a.as_str()) else {
            continue;
        };
        let text = text.to_ascii_lowercase();
        if !macs.contains(&text) {
            continue;
        }
        let (Some(mac), Some(ifindex)) = (
            parse_mac(&text),
            l.get("ifindex")
                .and_then(|i| i.as_u64())
                .and_then(|i| u32::try_from(i).ok()),
        ) else {
            continue;
        };
        let infos = addrs
            .iter()
            .filter(|a| a.get("ifindex").and_then(|i| i.as_u64()) == Some(u64::from(ifindex)))
            .filter_map(|a| a.get("addr_info")?.as_array())
            .flatten();
        for info in infos {
            if info.get("family").and_then(|f| f.as_str()) != Some("inet") {
                continue;
            }
            if let Some(ip) = info
                .get("local")
                .and_then(|a| a.as_str())
                .and_then(|a| a.parse().ok())
            {
                out.push(Announcement { ifindex, mac, ip });
            }
        }
    }
    Ok(out)
}

/// Announces every IPv4 address of the links of namespace `ns` whose MAC
/// is in `macs`: once now (an error if it cannot be sent), then again after
/// each of [`REPEATS`] in the background (failures logged).
pub async fn announce(ns: &str, macs: &[String]) -> Result<()> {
    let links = ip::run("ip", &["-j", "-n", ns, "link", "show"].map(String::from)).await?;
    let addrs = ip::run(
        "ip",
        &["-j", "-n", ns, "-4", "addr", "show"].map(String::from),
    )
    .await?;
    let list = announcements(&links, &addrs, macs).map_err(NetnsError::Invalid)?;
    if list.is_empty() {
        return Ok(());
    }
    send_round(ns, &list)
        .await
        .map_err(|e| NetnsError::io(format!("gratuitous ARP in {ns}"), e))?;
    let ns = ns.to_string();
    tokio::spawn(async move {
        for delay in REPEATS {
            tokio::time::sleep(delay).await;
            if let Err(e) = send_round(&ns, &list).await {
                tracing::warn!(namespace = %ns, error = %e, "repeating a gratuitous ARP failed");
            }
        }
    });
    Ok(())
}

/// Sends each announcement once from inside `ns`, on a short-lived thread
/// that enters the namespace (`setns` changes only that thread) and opens
/// the packet socket there, so the socket belongs to `ns`.
async fn send_round(ns: &str, list: &[Announcement]) -> std::io::Result<()> {
    let path = netns_path(ns);
    let target = File::open(&path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("opening {}: {e}", path.display())))?;
    let list = list.to_vec();
    tokio::task::spawn_blocking(move || {
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    setns(&target, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
                    let socket = packet_socket()?;
                    for a in &list {
                        send(&socket, a)?;
                    }
                    Ok(())
                })
                .join()
                .map_err(|_| std::io::Error::other("the gratuitous ARP thread panicked"))?
        })
    })
    .await
    .map_err(std::io::Error::other)?
}

/// An AF_PACKET socket that sends whole frames and receives nothing
/// (protocol 0).
fn packet_socket() -> std::io::Result<OwnedFd> {
    // SAFETY: a plain socket(2) call; the descriptor is checked, then owned.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn send(socket: &OwnedFd, a: &Announcement) -> std::io::Result<()> {
    let frame = frame(a.mac, a.ip);
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = ETH_P_ARP.to_be();
    addr.sll_ifindex = i32::try_from(a.ifindex)
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    addr.sll_halen = 6;
    addr.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    // SAFETY: the buffer and the address are valid for the lengths given.
    let sent = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_is_a_broadcast_arp_request_for_the_address_itself() {
        let mac = [0x02, 0, 0, 0, 0x01, 0x02];
        let f = frame(mac, Ipv4Addr::new(203, 0, 113, 11));
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(&f[6..12], &mac);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 1]);
        assert_eq!(&f[22..28], &mac);
        assert_eq!(&f[28..32], &[203, 0, 113, 11]);
        assert_eq!(&f[32..38], &[0; 6]);
        assert_eq!(&f[38..42], &[203, 0, 113, 11]);
    }

    #[test]
    fn only_the_listed_links_ipv4_addresses_are_announced() {
        let links = r#"[
            {"ifindex":1,"ifname":"lo","address":"00:00:00:00:00:00"},
            {"ifindex":5,"ifname":"eth1","address":"1E:00:CB:00:71:0B"},
            {"ifindex":6,"ifname":"eth2","address":"1e:00:0a:01:01:01"},
            {"ifindex":7,"ifname":"eth0","address":"0e:00:a9:fe:00:05"}]"#;
        let addrs = r#"[
            {"ifindex":1,"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1"}]},
            {"ifindex":5,"ifname":"eth1","addr_info":[
                {"family":"inet","local":"203.0.113.11"},
                {"family":"inet","local":"203.0.113.12"}]},
            {"ifindex":6,"ifname":"eth2","addr_info":[{"family":"inet","local":"10.1.1.1"}]},
            {"ifindex":7,"ifname":"eth0","addr_info":[{"family":"inet","local":"169.254.0.5"}]}]"#;
        let macs = ["1e:00:cb:00:71:0b".to_string(), "1e:00:0a:01:01:01".into()];
        let got = announcements(links, addrs, &macs).unwrap();
        let ips: Vec<(u32, String)> = got.iter().map(|a| (a.ifindex, a.ip.to_string())).collect();
        assert_eq!(
            ips,
            [
                (5, "203.0.113.11".to_string()),
                (5, "203.0.113.12".into()),
                (6, "10.1.1.1".into())
            ]
        );
        assert_eq!(got[0].mac, [0x1e, 0, 0xcb, 0, 0x71, 0x0b]);
        assert_eq!(parse_mac("1e:00:cb:00:71"), None);
        assert_eq!(parse_mac("1e:00:cb:00:71:0b:00"), None);
    }
}
