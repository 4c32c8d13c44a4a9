//! Pure planners: desired state in, kernel state to reach out. No syscalls.

pub mod acl;
pub mod boxes;
pub mod dnsmasq;
pub mod haproxy;
pub mod net;
pub mod nft;
pub mod vpn;
