//! The one boxed-future type of the manager.
//!
//! The seams (agent client, router driver, network gurus) are chosen when the
//! manager starts (gRPC or recording client, netns or recording driver), so
//! they live behind `Arc<dyn ...>` and their async methods return this type;
//! the command registry stores its handlers and job bodies as plain function
//! pointers returning it too.

use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future borrowing for `'a`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
