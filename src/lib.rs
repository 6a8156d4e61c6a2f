//! cairn: a declarative plan/apply engine for cloud infrastructure.
//!
//! The data flow, stage by stage (see `docs/ARCHITECTURE.md`):
//! stack file → [`stack::load`] → [`model::resolve`] → [`graph::DepGraph`] →
//! [`plan::diff`] (against state and live objects read by providers) →
//! [`apply::execute`] → state saved by [`state`].

pub mod apply;
pub mod cli;
pub mod commands;
pub mod diagnostic;
pub mod graph;
pub mod hash;
pub mod model;
pub mod plan;
pub mod provider;
pub mod recover;
pub mod refresh;
pub mod stack;
pub mod state;
pub mod ui;
