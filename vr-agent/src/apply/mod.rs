//! Executors: apply plans to the kernel and processes of this namespace.

pub mod dnsmasq;
pub mod garp;
pub mod haproxy;
pub mod netlink;
pub mod nft;
pub mod nft_netlink;
