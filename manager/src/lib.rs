//! The VPC management service as a library: the CloudStack wire protocol
//! (`api`), the SQL store (`store`), the HTTP server with authentication and
//! async jobs (`server`), and the commands (`services`).

pub mod agent_client;
pub mod api;
pub mod cluster;
pub mod driver;
pub mod error;
pub mod future;
pub mod host;
pub mod orchestration;
pub mod pki;
pub mod provision;
pub mod rules;
pub mod serve;
pub mod server;
pub mod services;
pub mod settings;
pub mod store;
