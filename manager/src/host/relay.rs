//! Routers' agents reached through their host agent (`RelayRouterAgent`):
//! a manager on another machine cannot open a router's Unix socket, so the
//! host agent carries the bytes of the manager's connection to it. The
//! manager's gRPC client runs over the relayed stream unchanged (HTTP/2
//! inside the host agent's mutually authenticated HTTP/2), so an agent call
//! reads the same whichever way it went.
//!
//! Both halves pump between a byte stream and the chunk stream: [`pump`].

use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tonic::Status;
use vpc_proto::host::v1 as pb;
use vpc_proto::host::v1::host_agent_client::HostAgentClient;

/// The largest chunk sent at once.
const CHUNK: usize = 32 * 1024;

/// Chunks coming in: a gRPC request or response stream.
pub type Inbound = Pin<Box<dyn Stream<Item = Result<pb::RelayChunk, Status>> + Send>>;

/// Copies `io`'s bytes out as chunks on `out`, and `inbound`'s chunks into
/// `io`, until either side ends; then both directions stop.
pub fn pump<Io>(
    io: Io,
    mut inbound: Inbound,
    out: mpsc::Sender<Result<pb::RelayChunk, Status>>,
) -> tokio::task::JoinHandle<()>
where
    Io: AsyncRead + AsyncWrite + Send + 'static,
{
    tokio::spawn(async move {
        let (mut reader, mut writer) = tokio::io::split(io);
        let outward = async {
            let mut buf = vec![0u8; CHUNK];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let chunk = pb::RelayChunk {
                            router: String::new(),
                            data: buf[..n].to_vec(),
                        };
                        if out.send(Ok(chunk)).await.is_err() {
                            break;
                        }
                    }
                }
            }
        };
        let inward = async {
            while let Some(Ok(chunk)) = inbound.next().await {
                if writer.write_all(&chunk.data).await.is_err() {
                    break;
                }
            }
            let _ = writer.shutdown().await;
        };
        // Whichever ends first ends the relay: a half-open agent
        // connection is of no use to HTTP/2.
        tokio::select! {
            () = outward => {}
            () = inward => {}
        }
    })
}

/// The manager's side: a byte stream to `router`'s agent through the host
/// agent behind `host` (a channel with the managers' client certificate).
pub async fn open(
    host: tonic::transport::Channel,
    router: &str,
) -> std::io::Result<tokio::io::DuplexStream> {
    let (tx, rx) = mpsc::channel::<Result<pb::RelayChunk, Status>>(16);
    tx.send(Ok(pb::RelayChunk {
        router: router.to_string(),
        data: Vec::new(),
    }))
    .await
    .map_err(|_| std::io::Error::other("the relay closed"))?;
    let outgoing = tokio_stream::wrappers::ReceiverStream::new(rx).filter_map(|c| async { c.ok() });
    let inbound = HostAgentClient::new(host)
        .relay_router_agent(outgoing)
        .await
        .map_err(|s| {
            std::io::Error::new(
                if s.code() == tonic::Code::NotFound {
                    std::io::ErrorKind::NotFound
                } else {
                    std::io::ErrorKind::ConnectionRefused
                },
                format!("the host agent's relay to {router}: {}", s.message()),
            )
        })?
        .into_inner();
    let (ours, theirs) = tokio::io::duplex(2 * CHUNK);
    pump(theirs, Box::pin(inbound), tx);
    Ok(ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_cross_both_ways_and_an_end_on_one_side_ends_the_other() {
        // "io" is the far end (an agent's socket); the chunks stand for the
        // gRPC streams.
        let (far, mut agent) = tokio::io::duplex(64);
        let (to_far, from_manager) = mpsc::channel(4);
        let (to_manager, mut out) = mpsc::channel(4);
        let inbound: Inbound = Box::pin(tokio_stream::wrappers::ReceiverStream::new(from_manager));
        let task = pump(far, inbound, to_manager);
        to_far
            .send(Ok(pb::RelayChunk {
                router: String::new(),
                data: b"ping".to_vec(),
            }))
            .await
            .unwrap();
        let mut got = [0u8; 4];
        agent.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        agent.write_all(b"pong").await.unwrap();
        let chunk = out.recv().await.unwrap().unwrap();
        assert_eq!(chunk.data, b"pong");
        // The agent closes: the relay ends, the manager's stream too.
        drop(agent);
        task.await.unwrap();
        assert!(out.recv().await.is_none());
    }
}
