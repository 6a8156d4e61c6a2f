//! Executing a plan: the executor walks the plan's graph on tokio, every
//! change is journaled, and a failure rolls the run back.

pub mod executor;
pub mod retry;

pub use executor::{ExecOptions, Order, Outcome, Stop, execute};
pub use retry::{RetryPolicy, with_retry};
