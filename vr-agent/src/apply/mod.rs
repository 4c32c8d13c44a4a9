//! Executors: apply plans to the kernel and processes of this namespace.

pub mod netlink;
pub mod nft;
