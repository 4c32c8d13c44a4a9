//! Traffic probes: echo servers and TCP/UDP probes (ping lives in [`crate::ping`]).
//!
//! Network-namespace membership is per thread, so every in-process probe or server runs
//! on a fresh thread that first `setns`es into the lab namespace. Sockets remember the
//! namespace they were created in, so a server's accepted connections can be served
//! from any thread afterwards.

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};

use crate::error::{Error, Result};
use crate::lab::Netns;

/// Numbers UDP probe payloads.
static PROBE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// How often server threads look at their stop flag.
const POLL: Duration = Duration::from_millis(20);

/// Runs `f` on a new thread that has joined `netns`, and returns its result.
pub fn run_in_netns<T, F>(netns: &Netns, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let path = netns.path().to_owned();
    let name = netns.name().to_owned();
    let thread = std::thread::Builder::new()
        .name(format!("netns-{name}"))
        .spawn(move || {
            enter_netns(&path, &name)?;
            f()
        })
        .map_err(|e| Error::io("spawning a probe thread", e))?;
    thread.join().unwrap_or_else(|_| {
        Err(Error::Probe {
            target: netns.name().to_owned(),
            reason: "probe thread panicked".into(),
        })
    })
}

/// Moves the calling thread into the namespace at `path` (never call on a shared thread).
fn enter_netns(path: &std::path::Path, name: &str) -> Result<()> {
    let file = File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| Error::sys(format!("setns into {name}"), e))
}

/// Parses the `peer <ip>:<port>` greeting the echo servers send.
pub(crate) fn parse_peer_line(line: &str) -> Option<SocketAddr> {
    line.trim_end().strip_prefix("peer ")?.parse().ok()
}

fn probe_err(target: SocketAddr, reason: impl Into<String>) -> Error {
    Error::Probe {
        target: target.to_string(),
        reason: reason.into(),
    }
}

/// A server thread plus the flag that stops it; stopping and joining happen on drop.
struct ServerThread {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ServerThread {
    /// Starts `serve` in `netns` after `bind` succeeded there; returns the bound address.
    fn start<S, B>(
        netns: &Netns,
        bind: B,
        serve: fn(S, Arc<AtomicBool>, Peers),
    ) -> Result<(Self, SocketAddr, Peers)>
    where
        S: Send + 'static,
        B: FnOnce() -> Result<(S, SocketAddr)> + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let peers = Peers::default();
        let (tx, rx) = mpsc::channel();
        let (path, name) = (netns.path().to_owned(), netns.name().to_owned());
        let (thread_stop, thread_peers) = (Arc::clone(&stop), peers.clone());
        let thread = std::thread::Builder::new()
            .name(format!("echo-{name}"))
            .spawn(move || {
                let bound = enter_netns(&path, &name).and_then(|()| bind());
                match bound {
                    Ok((socket, addr)) => {
                        let _ = tx.send(Ok(addr));
                        serve(socket, thread_stop, thread_peers);
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| Error::io("spawning a server thread", e))?;
        let server = Self {
            stop,
            thread: Some(thread),
        };
        let addr = rx.recv().unwrap_or_else(|_| {
            Err(Error::Probe {
                target: netns.name().to_owned(),
                reason: "server thread died before binding".into(),
            })
        })?;
        Ok((server, addr, peers))
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            eprintln!("[vpc-lab] echo server thread panicked");
        }
    }
}

/// Every peer address a server has seen, in order.
#[derive(Clone, Default)]
struct Peers(Arc<Mutex<Vec<SocketAddr>>>);

impl Peers {
    fn push(&self, peer: SocketAddr) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(peer);
    }

    fn snapshot(&self) -> Vec<SocketAddr> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A TCP server in a namespace that greets with `peer <ip>:<port>\n` and echoes.
///
/// The greeting carries the source address the server saw, which is how tests observe
/// NAT. Stopped (and its threads joined) on drop.
pub struct TcpEchoServer {
    addr: SocketAddr,
    peers: Peers,
    _thread: ServerThread,
}

impl TcpEchoServer {
    /// Binds `bind` (e.g. `0.0.0.0:7000`, or port 0 for any) inside `netns` and serves.
    pub fn start(netns: &Netns, bind: SocketAddr) -> Result<Self> {
        let (thread, addr, peers) = ServerThread::start(
            netns,
            move || {
                let listener = TcpListener::bind(bind)
                    .map_err(|e| Error::io(format!("binding TCP {bind}"), e))?;
                // Nonblocking accept lets the thread notice the stop flag.
                listener
                    .set_nonblocking(true)
                    .map_err(|e| Error::io("making the listener nonblocking", e))?;
                let addr = listener
                    .local_addr()
                    .map_err(|e| Error::io("reading the listener address", e))?;
                Ok((listener, addr))
            },
            serve_tcp,
        )?;
        Ok(Self {
            addr,
            peers,
            _thread: thread,
        })
    }

    /// The bound address (with the real port if 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every client address seen so far.
    pub fn peers(&self) -> Vec<SocketAddr> {
        self.peers.snapshot()
    }
}

fn serve_tcp(listener: TcpListener, stop: Arc<AtomicBool>, peers: Peers) {
    let mut connections = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                peers.push(peer);
                let stop = Arc::clone(&stop);
                connections.push(std::thread::spawn(move || echo_tcp(stream, peer, &stop)));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(e) => {
                eprintln!("[vpc-lab] TCP echo accept: {e}");
                std::thread::sleep(POLL);
            }
        }
    }
    for connection in connections {
        let _ = connection.join();
    }
}

fn echo_tcp(mut stream: TcpStream, peer: SocketAddr, stop: &AtomicBool) {
    // Short read timeouts so the connection thread notices the stop flag.
    if stream.set_nonblocking(false).is_err()
        || stream.set_read_timeout(Some(POLL)).is_err()
        || stream
            .write_all(format!("peer {peer}\n").as_bytes())
            .is_err()
    {
        return;
    }
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

/// What a successful [`tcp_probe`] or [`udp_probe`] learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeResult {
    /// The client address as the server saw it (differs from `local` behind NAT).
    pub seen_as: SocketAddr,
    /// The client socket's own address.
    pub local: SocketAddr,
}

/// Result of [`tcp_probe`].
pub type TcpProbeResult = ProbeResult;
/// Result of [`udp_probe`].
pub type UdpProbeResult = ProbeResult;

/// Connects from `netns` to a [`TcpEchoServer`], reads its greeting and checks an echo.
pub fn tcp_probe(netns: &Netns, target: SocketAddr, timeout: Duration) -> Result<TcpProbeResult> {
    run_in_netns(netns, move || {
        let deadline = Instant::now() + timeout;
        let stream = TcpStream::connect_timeout(&target, timeout)
            .map_err(|e| probe_err(target, format!("connect: {e}")))?;
        let local = stream
            .local_addr()
            .map_err(|e| probe_err(target, format!("local_addr: {e}")))?;
        let remaining = || {
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1))
        };
        let mut reader = BufReader::new(
            stream
                .try_clone()
                .map_err(|e| probe_err(target, format!("clone: {e}")))?,
        );
        let mut writer = stream;
        let mut read_line = |what: &str| {
            reader
                .get_ref()
                .set_read_timeout(Some(remaining()))
                .map_err(|e| probe_err(target, format!("set timeout: {e}")))?;
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) => Err(probe_err(
                    target,
                    format!("connection closed before {what}"),
                )),
                Ok(_) => Ok(line),
                Err(e) => Err(probe_err(target, format!("reading {what}: {e}"))),
            }
        };
        let greeting = read_line("the peer line")?;
        let seen_as = parse_peer_line(&greeting)
            .ok_or_else(|| probe_err(target, format!("unexpected greeting {greeting:?}")))?;
        writer
            .write_all(b"ping\n")
            .map_err(|e| probe_err(target, format!("sending ping: {e}")))?;
        let echo = read_line("the echo")?;
        if echo != "ping\n" {
            return Err(probe_err(
                target,
                format!("echo was {echo:?}, not \"ping\\n\""),
            ));
        }
        Ok(ProbeResult { seen_as, local })
    })
}

/// True if a TCP connection from `netns` to `target` is established within `timeout`
/// (any server will do). Refused, unreachable or timed-out connections give `false`.
pub fn tcp_connect(netns: &Netns, target: SocketAddr, timeout: Duration) -> Result<bool> {
    run_in_netns(netns, move || {
        Ok(TcpStream::connect_timeout(&target, timeout).is_ok())
    })
}

/// A UDP server in a namespace that answers each datagram with
/// `peer <ip>:<port>\n` followed by the datagram itself. Stopped on drop.
pub struct UdpEchoServer {
    addr: SocketAddr,
    peers: Peers,
    _thread: ServerThread,
}

impl UdpEchoServer {
    /// Binds `bind` inside `netns` and serves.
    pub fn start(netns: &Netns, bind: SocketAddr) -> Result<Self> {
        let (thread, addr, peers) = ServerThread::start(
            netns,
            move || {
                let socket = UdpSocket::bind(bind)
                    .map_err(|e| Error::io(format!("binding UDP {bind}"), e))?;
                socket
                    .set_read_timeout(Some(POLL))
                    .map_err(|e| Error::io("setting the UDP read timeout", e))?;
                let addr = socket
                    .local_addr()
                    .map_err(|e| Error::io("reading the UDP socket address", e))?;
                Ok((socket, addr))
            },
            serve_udp,
        )?;
        Ok(Self {
            addr,
            peers,
            _thread: thread,
        })
    }

    /// The bound address (with the real port if 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every client address seen so far (one entry per datagram).
    pub fn peers(&self) -> Vec<SocketAddr> {
        self.peers.snapshot()
    }
}

fn serve_udp(socket: UdpSocket, stop: Arc<AtomicBool>, peers: Peers) {
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buf) {
            Ok((n, peer)) => {
                peers.push(peer);
                let mut reply = format!("peer {peer}\n").into_bytes();
                reply.extend_from_slice(&buf[..n]);
                if let Err(e) = socket.send_to(&reply, peer) {
                    eprintln!("[vpc-lab] UDP echo reply to {peer}: {e}");
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => {
                // e.g. ECONNREFUSED from an ICMP error about an earlier reply.
                eprintln!("[vpc-lab] UDP echo receive: {e}");
                std::thread::sleep(POLL);
            }
        }
    }
}

/// Sends datagrams from `netns` to a [`UdpEchoServer`] (resending every 200 ms, as
/// datagrams may be lost while neighbours resolve) until an answer arrives.
pub fn udp_probe(netns: &Netns, target: SocketAddr, timeout: Duration) -> Result<UdpProbeResult> {
    run_in_netns(netns, move || {
        let deadline = Instant::now() + timeout;
        let bind: SocketAddr = match target {
            SocketAddr::V4(_) => "0.0.0.0:0".parse().expect("valid literal"),
            SocketAddr::V6(_) => "[::]:0".parse().expect("valid literal"),
        };
        let io =
            |what: &'static str| move |e: std::io::Error| probe_err(target, format!("{what}: {e}"));
        let socket = UdpSocket::bind(bind).map_err(io("bind"))?;
        socket.connect(target).map_err(io("connect"))?;
        let local = socket.local_addr().map_err(io("local_addr"))?;
        // Unique per probe, so a late answer to another probe is never taken for ours.
        let token = format!(
            "probe {}-{}\n",
            std::process::id(),
            PROBE_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            socket.send(token.as_bytes()).map_err(io("send"))?;
            let resend_at = (Instant::now() + Duration::from_millis(200)).min(deadline);
            while let Some(wait) = resend_at
                .checked_duration_since(Instant::now())
                .filter(|w| !w.is_zero())
            {
                socket
                    .set_read_timeout(Some(wait))
                    .map_err(io("set timeout"))?;
                let n = match socket.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        break;
                    }
                    Err(e) => return Err(probe_err(target, format!("receive: {e}"))),
                };
                let reply = String::from_utf8_lossy(&buf[..n]);
                let Some((peer_line, echoed)) = reply.split_once('\n') else {
                    continue;
                };
                if echoed != token {
                    continue; // Not an answer to this probe (e.g. stray traffic to our port).
                }
                let seen_as = parse_peer_line(peer_line)
                    .ok_or_else(|| probe_err(target, format!("unexpected reply {reply:?}")))?;
                return Ok(ProbeResult { seen_as, local });
            }
        }
        Err(probe_err(target, format!("no answer within {timeout:?}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_lines_for_both_families() {
        assert_eq!(
            parse_peer_line("peer 10.0.0.2:40000\n"),
            Some("10.0.0.2:40000".parse().unwrap())
        );
        assert_eq!(
            parse_peer_line("peer [fd00::2]:40000"),
            Some("[fd00::2]:40000".parse().unwrap())
        );
        assert_eq!(parse_peer_line("hello"), None);
    }
}
