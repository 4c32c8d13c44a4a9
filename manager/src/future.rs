//! The one boxed future of the manager's seams.
//!
//! The manager picks its agent client (gRPC or recording) and its router
//! driver (netns or recording) when it starts, from its settings, so the
//! seams to them, the network elements and the gurus are object-safe traits
//! used as `dyn`: one concrete service layer, no type parameters spreading
//! from the element through every command. An object-safe trait cannot
//! have `async fn` (nor return `impl Future`), so its async methods return
//! this boxed future instead. The cost, one allocation per call, is nothing
//! next to an RPC to a router or a database statement.

use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future borrowing for `'a`: what the async methods of
/// the `dyn` seams (agent client, router driver, elements, gurus,
/// allocators) and the API's handlers return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
