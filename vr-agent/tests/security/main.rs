//! Security tests of the agent: each test tries one hole found by probing and
//! fails if it opens again. One module per area.

#[path = "../router/fixture.rs"]
#[allow(dead_code)]
mod fixture;
mod input;
mod runtime;
