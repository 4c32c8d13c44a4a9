//! The listeners of the VM services: the metadata server (port 80) and the
//! password server (port 8080), both on every address of the router.
//!
//! They listen on the wildcard address rather than on each tier gateway, so
//! a tier that comes or goes needs no listener of its own; the nftables
//! input chain lets these ports in only on tier NICs that serve VM data
//! (from the tier's own addresses, to its gateway), and every request is
//! answered from the address it was sent to (the tier) and the address and
//! MAC it came from (the VM). What is served follows the agent's desired
//! state through a watch channel, so a change of user data or keys is
//! served from the moment it is applied, with nothing restarted.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{
    Answer, Caller, Directory, PasswordEffect, metadata_answer, neighbours, password_answer,
};
use crate::model::dev_name;

/// Both ends of a connection.
#[derive(Debug, Clone, Copy)]
struct Ends {
    local: Option<SocketAddr>,
    peer: SocketAddr,
}

impl Connected<IncomingStream<'_, TcpListener>> for Ends {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        Ends {
            local: stream.io().local_addr().ok(),
            peer: *stream.remote_addr(),
        }
    }
}

struct Shared {
    directory: watch::Receiver<Arc<Directory>>,
    /// The password each VM address last acknowledged (`saved_password`).
    acknowledged: Mutex<HashMap<Ipv4Addr, String>>,
    /// Where the acknowledgements are kept across restarts of the agent, so
    /// a password the manager sends again is not served a second time.
    acks_file: Option<std::path::PathBuf>,
}

/// The acknowledged passwords kept in `path` (none when it is missing or
/// unreadable: the worst case is a password served once more).
fn load_acks(path: &std::path::Path) -> HashMap<Ipv4Addr, String> {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Writes the acknowledged passwords to `path` atomically (a new file
/// renamed over the old one), readable by root only.
fn store_acks(path: &std::path::Path, acks: &HashMap<Ipv4Addr, String>) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&serde_json::to_vec(acks).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl Shared {
    /// Who asked, and what they may read.
    fn caller(&self, ends: Ends) -> (Arc<Directory>, Option<Caller>) {
        let directory = self.directory.borrow().clone();
        let v4 = |a: IpAddr| match a {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(a) => a.to_ipv4_mapped(),
        };
        let caller = match (ends.local.and_then(|l| v4(l.ip())), v4(ends.peer.ip())) {
            (Some(local), Some(peer)) => Some(Caller { local, peer }),
            _ => None,
        };
        (directory, caller)
    }
}

/// What `caller` may read, its MAC checked in the neighbour table.
fn lookup(directory: &Directory, caller: Option<Caller>) -> Option<&crate::model::VmData> {
    let caller = caller?;
    let index = directory.tier_of(caller.local)?;
    let mac = neighbours::mac_of(caller.peer, &dev_name(index));
    directory.vm(caller, mac)
}

fn respond(answer: Answer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "text/plain")], answer.body).into_response()
}

async fn metadata(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(ends): ConnectInfo<Ends>,
    method: Method,
    uri: Uri,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let (directory, caller) = shared.caller(ends);
    let vm = lookup(&directory, caller);
    let answer = metadata_answer(vm, uri.path());
    tracing::debug!(peer = %ends.peer, path = uri.path(), status = answer.status, "metadata");
    respond(answer)
}

async fn password(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(ends): ConnectInfo<Ends>,
    headers: HeaderMap,
) -> Response {
    let (directory, caller) = shared.caller(ends);
    let vm = lookup(&directory, caller);
    let request = headers
        .get("DomU_Request")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let (answer, effect) = {
        let mut acknowledged = shared
            .acknowledged
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let acked = vm
            .and_then(|vm| acknowledged.get(&vm.ip))
            .map(String::as_str);
        let (answer, effect) = password_answer(vm, acked, request);
        if let (PasswordEffect::Acknowledged(p), Some(vm)) = (&effect, vm) {
            acknowledged.insert(vm.ip, p.clone());
            if let Some(path) = &shared.acks_file
                && let Err(e) = store_acks(path, &acknowledged)
            {
                tracing::warn!(error = %e, path = %path.display(), "keeping the acknowledged passwords failed");
            }
        }
        (answer, effect)
    };
    tracing::info!(peer = %ends.peer, request = request.unwrap_or(""), status = answer.status,
        acknowledged = matches!(effect, PasswordEffect::Acknowledged(_)), "password server");
    respond(answer)
}

/// Where the two servers listen.
#[derive(Debug, Clone, Copy)]
pub struct Listen {
    pub metadata: SocketAddr,
    pub password: SocketAddr,
}

impl Default for Listen {
    fn default() -> Self {
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        Listen {
            metadata: SocketAddr::new(any, super::METADATA_PORT),
            password: SocketAddr::new(any, super::PASSWORD_PORT),
        }
    }
}

/// A listener on `addr` with SO_REUSEPORT: the router's HAProxy may then
/// listen on a public address with the same port (a load balancer rule on
/// port 80), and the kernel gives each connection to the socket bound to its
/// exact address, the wildcard one serving only the rest.
fn shared_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Binds both listeners and serves them until the task is aborted. The
/// acknowledged passwords are kept in `acks_file` when one is given.
pub async fn serve(
    directory: watch::Receiver<Arc<Directory>>,
    listen: Listen,
    acks_file: Option<std::path::PathBuf>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let acknowledged = acks_file.as_deref().map(load_acks).unwrap_or_default();
    let shared = Arc::new(Shared {
        directory,
        acknowledged: Mutex::new(acknowledged),
        acks_file,
    });
    let metadata_listener = shared_listener(listen.metadata)?;
    let password_listener = shared_listener(listen.password)?;
    let metadata_app = Router::new()
        .fallback(metadata)
        .with_state(shared.clone())
        .into_make_service_with_connect_info::<Ends>();
    let password_app = Router::new()
        .fallback(password)
        .with_state(shared)
        .into_make_service_with_connect_info::<Ends>();
    Ok(tokio::spawn(async move {
        let (m, p) = tokio::join!(
            axum::serve(metadata_listener, metadata_app),
            axum::serve(password_listener, password_app),
        );
        for (what, result) in [("metadata", m), ("password", p)] {
            if let Err(e) = result {
                tracing::error!(error = %e, "the {what} server stopped");
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledged_passwords_survive_a_restart_of_the_agent() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("passwords-acknowledged.json");
        assert!(load_acks(&path).is_empty(), "nothing kept yet");
        let mut acks = HashMap::new();
        acks.insert(Ipv4Addr::new(10, 1, 1, 5), "Ab3def".to_string());
        store_acks(&path, &acks).expect("store");
        assert_eq!(load_acks(&path), acks);
        let mode = std::fs::metadata(&path).expect("meta").permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        std::fs::write(&path, b"garbage").expect("damage");
        assert!(load_acks(&path).is_empty(), "a damaged file counts as none");
    }
}
