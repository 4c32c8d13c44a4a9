//! The CloudStack wire protocol (reference §1): request parameters and their
//! typed reading, API-key signatures, errors with CloudStack's codes, and the
//! JSON/XML response envelopes. Pure code: no I/O, no state.

pub mod error;
pub mod params;
pub mod response;
pub mod signature;
pub mod xml;

pub use error::ApiError;
pub use params::Params;
pub use response::{Format, format_date, response_name};
pub use signature::{canonical_query, parse_expires, sign, verify};
