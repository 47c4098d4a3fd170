//! Helpers shared by the integration tests that run something outside Rust.
#![allow(dead_code)] // each test binary uses its own subset

pub mod python;
