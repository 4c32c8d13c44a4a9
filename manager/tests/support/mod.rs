//! Helpers shared by the manager's integration tests (`mod support;` in a test file).

// Each test binary uses a different part of this module.
#![allow(dead_code)]

pub mod api;
pub mod e2e;
pub mod fabric;
pub mod host_agent;
pub mod netns;
pub mod pinger;
pub mod postgres;
pub mod restart;
pub mod store;
pub mod vpc;

/// A free TCP port on loopback (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
