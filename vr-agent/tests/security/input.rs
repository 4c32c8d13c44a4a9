//! Input the agent receives: strings that reach files or command lines, sizes,
//! the control socket and TLS identities. One submodule per item; `agent` is
//! the small router namespace the tests against the real binary share.

mod agent;
mod bounds;
mod dnsmasq;
mod fuzz;
mod socket;
mod strings;
mod tls;
