//! Pure planners: desired state in, kernel state to reach out. No syscalls.

pub mod boxes;
pub mod net;
pub mod nft;
