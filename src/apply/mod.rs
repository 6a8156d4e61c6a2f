//! Executing a plan: the executor walks the plan's graph on tokio, every
//! change is journaled, and a failure rolls the run back.

mod check;
pub mod executor;
mod outbox;
pub mod retry;
mod run;
mod undo;

pub use executor::{ExecOptions, Order, Outcome, Stop, execute, execute_prepared};
pub use retry::{RetryPolicy, with_retry, with_retry_notify};
pub use run::{
    ApplyError, ApplyOptions, ApplyReport, Ending, Event, Observer, OnFailure, OpError, apply,
};
