//! Lab harness for the kernel and end-to-end tests: private network namespaces, links,
//! processes, traffic probes and DHCP, all cleaned up when the [`Lab`] is dropped.
//!
//! Nothing here changes the host's own network namespace: link operations use
//! `ip -n <lab namespace>`, commands run under `ip netns exec <lab namespace>`, and the
//! only host-level commands are `ip netns add/del/list/pids`.
//!
//! ```no_run
//! use vpc_integration::Lab;
//!
//! let lab = Lab::new("example").unwrap();
//! let (a, b) = (lab.netns("a").unwrap(), lab.netns("b").unwrap());
//! lab.veth(&a, "eth0", &b, "eth0").unwrap();
//! ```

#![warn(missing_docs)]

pub mod cmd;
pub mod dhcp;
pub mod error;
pub mod lab;
pub mod link;
pub mod ping;
pub mod probe;
pub mod process;
pub mod sweep;

pub use cmd::{DEFAULT_TIMEOUT, Output, ip_netns, list_netns, netns_pids};
pub use dhcp::{Dnsmasq, DnsmasqConfig, Lease};
pub use error::{Error, Result};
pub use lab::{KEEP_DIR_ENV, LAB_PREFIX, Lab, Netns};
pub use link::{IFNAME_MAX, check_ifname};
pub use ping::PingStats;
pub use probe::{
    ProbeResult, TcpEchoServer, TcpProbeResult, UdpEchoServer, UdpProbeResult, run_in_netns,
    tcp_connect, tcp_probe, udp_probe,
};
pub use process::{ProcessHandle, process_exists};
pub use sweep::sweep_stale;

/// Panics with a clear message unless the process runs as root (labs need `CAP_SYS_ADMIN`
/// and `CAP_NET_ADMIN`). Tests call this first rather than silently skipping.
#[track_caller]
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail. (nix's safe wrapper needs
    // its `user` feature, which the workspace does not enable.)
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "these tests build network namespaces and must run as root (euid is {euid}); \
         run e.g. `sudo -E cargo test -p vpc-integration`"
    );
}
