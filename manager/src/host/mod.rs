//! The host agent (DESIGN §4): what runs routers and VMs on a host, served
//! over gRPC (`vpc.host.v1`), and the manager's driver that calls it.
//!
//! - [`server`]: the `HostAgent` service over the netns driver, with
//!   health and reflection; `vpc-manager host-agent` serves it on its own,
//!   `vpc-manager serve` runs one in-process on a Unix socket in the data
//!   directory (the embedded default).
//! - [`client`]: [`HostDriver`], the manager's `RouterDriver` over a host
//!   agent; the manager drives routers and VMs only through it.
//! - [`convert`]: the views to and from the messages, with the checks the
//!   host agent makes on every field.
//! - [`describe`]: the host's facts `Describe` reports.
//! - [`enroll`]: a new host agent's enrollment into the cluster (a one-time
//!   token, a certificate from the cluster CA).
//! - [`neighbour`]: `CheckNeighbour`, whether this host still reaches a
//!   silent one on the underlay (the host monitor's investigation).
//! - [`relay`]: routers' agents reached through their host agent.
//! - [`tls`]: the host agent on TCP with mutual TLS from the cluster CA.
//! - [`views`]: the host agent's records of what it runs, read at its next
//!   start to take the live routers and VMs back.

pub mod client;
pub mod convert;
pub mod describe;
pub mod enroll;
pub mod neighbour;
pub mod pool;
pub mod relay;
pub mod run;
pub mod server;
pub mod tls;
pub mod views;

pub use client::HostDriver;
pub use server::{HostAgent, Recovered, SOCKET_FILE};
