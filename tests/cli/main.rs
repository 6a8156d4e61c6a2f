//! End-to-end tests through the built `cairn` binary, one module per feature.

#[path = "../support/run.rs"]
mod run;
mod support;

mod apply;
mod ci;
mod if_exists;
mod interrupt;
mod reliability;
mod rollback;
mod saved_plan;
mod secrets;
mod write_ahead;
