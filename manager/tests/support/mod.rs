//! Helpers shared by the manager's integration tests (`mod support;` in a test file).

// Each test binary uses a different part of this module.
#![allow(dead_code)]

pub mod api;
pub mod e2e;
pub mod fabric;
pub mod netns;
pub mod postgres;
pub mod restart;
pub mod store;
pub mod vpc;
