//! Security tests of the manager: each test tries one hole found by probing
//! (as a hostile tenant or a careless operator would) and fails if it opens
//! again. One module per area.

#[path = "../support/mod.rs"]
mod support;

mod auth;
mod robust;
mod scope;
