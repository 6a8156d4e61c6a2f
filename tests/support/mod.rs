//! Helpers shared by integration tests.
#![allow(dead_code)]

#[cfg(feature = "aws")]
pub mod aws;
pub mod moto;
pub mod run;
