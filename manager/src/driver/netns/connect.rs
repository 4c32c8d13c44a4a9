//! TCP connections made from inside a namespace. The manager lives in the
//! host namespace and must not touch it, so no route leads from it to a
//! router's control address. Instead a short-lived thread enters the
//! router's namespace (`setns` changes only the calling thread), creates and
//! connects the socket there, and hands it back: a socket keeps the
//! namespace it was created in, so the rest of the process uses it as any
//! other connection.

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use nix::sched::{CloneFlags, setns};

use super::ip::netns_path;

/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to `addr` from inside the namespace named `ns` (as `ip netns`
/// names it). Blocking; see [`connect_in_netns_async`] for tokio.
pub fn connect_in_netns(ns: &str, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let path = netns_path(ns);
    let target = File::open(&path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("opening {}: {e}", path.display())))?;
    std::thread::Builder::new()
        .name(format!("connect-{ns}"))
        .spawn(move || {
            // This thread never returns to the host namespace: it ends
            // right after the connect.
            setns(&target, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
            TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        })?
        .join()
        .map_err(|_| std::io::Error::other("the namespace connect thread panicked"))?
}

/// [`connect_in_netns`] for tokio (the blocking part on a blocking thread).
pub async fn connect_in_netns_async(
    ns: &str,
    addr: SocketAddr,
) -> std::io::Result<tokio::net::TcpStream> {
    let ns = ns.to_string();
    let stream = tokio::task::spawn_blocking(move || connect_in_netns(&ns, addr))
        .await
        .map_err(std::io::Error::other)??;
    stream.set_nonblocking(true)?;
    stream.set_nodelay(true)?;
    tokio::net::TcpStream::from_std(stream)
}
