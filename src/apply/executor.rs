//! stub: being written
use std::future::Future;

use crate::graph::{DepGraph, NodeId};

/// Which ready operation starts first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Longest remaining dependency chain (by weight) first.
    CriticalPath,
    /// No priority: ready operations in an arbitrary (seeded) order, like a
    /// plain semaphore. The benchmark baseline.
    Arbitrary { seed: u64 },
}

#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// At most this many operations at once; `None`: as many as are ready.
    pub parallelism: Option<usize>,
    pub order: Order,
}

/// Tells the executor to start nothing new (first Ctrl-C, or a failure).
#[derive(Debug, Clone, Default)]
pub struct Stop;

impl Stop {
    pub fn new() -> Stop {
        todo!()
    }
    pub fn trigger(&self) {
        todo!()
    }
    pub fn is_triggered(&self) -> bool {
        todo!()
    }
    /// Resolves once triggered.
    pub async fn triggered(&self) {
        todo!()
    }
}

/// What happened to every node.
#[derive(Debug)]
pub struct Outcome<E> {
    /// Nodes whose operation succeeded, in completion order.
    pub completed: Vec<NodeId>,
    /// Nodes whose operation failed, with the error.
    pub failed: Vec<(NodeId, E)>,
    /// Nodes never started (a failure or stop came first).
    pub not_started: Vec<NodeId>,
    /// Nodes whose task panicked (a bug): neither completed nor failed.
    pub panicked: Vec<NodeId>,
    /// Whether `stop` was triggered from outside.
    pub stopped: bool,
}

/// Runs `run(node)` for every node once all its dependencies succeeded, at
/// most `parallelism` at once, ready nodes ordered by `order` using
/// `weights` (one per node: expected duration). After the first failure (or
/// `stop`), starts nothing new and waits for operations in flight.
pub async fn execute<E, F, Fut>(
    _graph: &DepGraph,
    _weights: &[f64],
    _options: &ExecOptions,
    _stop: &Stop,
    _run: F,
) -> Outcome<E>
where
    E: Send + 'static,
    F: FnMut(NodeId) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
{
    todo!()
}
