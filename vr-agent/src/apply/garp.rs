//! Gratuitous ARP: tells the neighbours of a link that an address now lives
//! behind the link's MAC, so upstream routers update their ARP caches at once
//! instead of sending to a previous holder until their entries expire (what
//! CloudStack's router does with `arping -U`).

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::model::Mac;

/// EtherType of ARP.
const ETH_P_ARP: u16 = 0x0806;
/// The smallest Ethernet frame without its FCS; shorter frames are padded.
pub const FRAME_LEN: usize = 60;
/// Ethernet header (14) + ARP for IPv4 over Ethernet (28).
const ARP_END: usize = 42;
const _: () = assert!(ARP_END <= FRAME_LEN);

/// The gratuitous ARP frame for `ip` on a link with `mac`: a broadcast ARP
/// request whose sender and target IP are both `ip`, as the kernel itself
/// sends on `arp_notify` (target MAC zero).
pub fn frame(mac: Mac, ip: Ipv4Addr) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac.0);
    f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    f[14..16].copy_from_slice(&1u16.to_be_bytes()); // hardware: Ethernet
    f[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // protocol: IPv4
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&1u16.to_be_bytes()); // request
    f[22..28].copy_from_slice(&mac.0);
    f[28..32].copy_from_slice(&ip.octets());
    // f[32..38]: target MAC, zero.
    f[38..42].copy_from_slice(&ip.octets());
    f
}

/// An AF_PACKET socket that sends whole Ethernet frames. It belongs to the
/// network namespace of the thread that opened it, like a netlink socket.
#[derive(Debug)]
pub struct PacketSocket(OwnedFd);

impl PacketSocket {
    /// Opens the socket (needs CAP_NET_RAW). Protocol 0 means it receives
    /// nothing, so it never queues traffic nobody reads.
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2) call; the returned descriptor is checked
        // and then owned by the OwnedFd.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        Ok(PacketSocket(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Sends one gratuitous ARP for `ip` from `mac` out of link `ifindex`.
    pub fn send_garp(&self, ifindex: u32, mac: Mac, ip: Ipv4Addr) -> io::Result<()> {
        let frame = frame(mac, ip);
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ETH_P_ARP.to_be();
        addr.sll_ifindex =
            i32::try_from(ifindex).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        // SAFETY: the buffer and address are valid for the lengths given.
        let sent = unsafe {
            libc::sendto(
                self.0.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        match sent {
            n if n < 0 => Err(io::Error::last_os_error()),
            n if n as usize != frame.len() => Err(io::Error::other(format!(
                "sent {n} of {} bytes",
                frame.len()
            ))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_is_a_broadcast_arp_request_for_the_address_itself() {
        let mac = Mac([0x02, 0x00, 0x5e, 0x10, 0x20, 0x30]);
        let f = frame(mac, Ipv4Addr::new(203, 0, 113, 10));
        #[rustfmt::skip]
        let expected: [u8; ARP_END] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // destination: broadcast
            0x02, 0x00, 0x5e, 0x10, 0x20, 0x30, // source: the link
            0x08, 0x06,                         // ARP
            0x00, 0x01, 0x08, 0x00, 6, 4,       // Ethernet, IPv4, lengths
            0x00, 0x01,                         // request
            0x02, 0x00, 0x5e, 0x10, 0x20, 0x30, // sender MAC
            203, 0, 113, 10,                    // sender IP
            0, 0, 0, 0, 0, 0,                   // target MAC: unknown
            203, 0, 113, 10,                    // target IP = sender IP
        ];
        assert_eq!(f[..ARP_END], expected);
        assert!(f[ARP_END..].iter().all(|b| *b == 0), "padding is zero");
        assert_eq!(f.len(), 60);
    }
}
