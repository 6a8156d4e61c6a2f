//! The parallel executor: runs one operation per graph node on tokio, each
//! once all of its dependencies have succeeded.
//!
//! The apply driver, rollback and destroy all go through [`execute`]. It
//! bounds how many operations run at once, picks among ready operations by
//! the longest remaining chain (so the run's makespan tracks the critical
//! path), and stops starting work at the first failure or when a [`Stop`]
//! is triggered, while letting operations already in flight finish.
//!
//! [`execute_prepared`] also announces operations about to start, so the
//! caller can do their preparation (the apply driver writes their journal
//! intent) while the operations they wait for are still running: a node is
//! announced once every one of its dependencies has started, and, when all
//! slots are busy, up to `parallelism` ready nodes next in line are
//! announced too; any other node is announced just before it starts.
//! Nodes announced at the same point come as one batch (the driver writes
//! their intents with one journal write). Announcing never changes which
//! node starts when; only the run's first batch, announced as it starts,
//! waits for the gate its preparation may return (see
//! [`execute_prepared`]).
//!
//! Scheduling cost is O((V + E) log V) in total: every node is ranked once,
//! the ready set is a binary heap of ranks, and each start or completion
//! only visits that node's dependents.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;
use tokio::task::{self, JoinSet};

use super::retry::SplitMix64;
use crate::graph::{DepGraph, NodeId};

/// Which ready operation starts first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Longest remaining dependency chain (by weight) first; ties by node id.
    CriticalPath,
    /// No priority: ready operations in an arbitrary (seeded) order, like a
    /// plain semaphore. The benchmark baseline.
    Arbitrary { seed: u64 },
}

/// How [`execute`] schedules.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// At most this many operations at once; `None`: as many as are ready.
    /// `Some(0)` is taken as `Some(1)`.
    pub parallelism: Option<usize>,
    /// Which ready operation starts first.
    pub order: Order,
}

#[derive(Debug, Default)]
struct StopInner {
    flag: AtomicBool,
    notify: Notify,
}

/// Tells the executor to start nothing new (first Ctrl-C, or a failure).
/// Cheap to clone: clones share one flag.
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<StopInner>);

impl Stop {
    /// A stop not yet triggered.
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Triggers the stop, waking every [`Stop::triggered`] waiter. Idempotent.
    pub fn trigger(&self) {
        self.0.flag.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    /// Whether [`Stop::trigger`] was called on this stop or a clone.
    pub fn is_triggered(&self) -> bool {
        self.0.flag.load(Ordering::SeqCst)
    }

    /// Resolves once triggered (at once if it already was).
    pub async fn triggered(&self) {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            // Registered before the flag is read, so a trigger in between
            // is not missed.
            notified.as_mut().enable();
            if self.is_triggered() {
                return;
            }
            notified.await;
        }
    }
}

/// What happened to every node.
#[derive(Debug)]
pub struct Outcome<E> {
    /// Nodes whose operation succeeded, in completion order.
    pub completed: Vec<NodeId>,
    /// Nodes whose operation failed, with the error.
    pub failed: Vec<(NodeId, E)>,
    /// Nodes whose operation panicked (or its task was cancelled): failed
    /// without an error value. A panic counts as a failure: nothing new
    /// starts after it.
    pub panicked: Vec<NodeId>,
    /// Nodes never started (a failure or stop came first), in id order.
    pub not_started: Vec<NodeId>,
    /// Whether `stop` was triggered from outside while the run was going.
    pub stopped: bool,
}

impl<E> Outcome<E> {
    /// Whether every node completed.
    pub fn is_success(&self) -> bool {
        self.failed.is_empty()
            && self.panicked.is_empty()
            && self.not_started.is_empty()
            && !self.stopped
    }
}

/// `rank_of[node]`: the node's place in the order in which ready nodes are
/// preferred (lower first); `node_at[rank]` is the inverse.
fn ranks(graph: &DepGraph, weights: &[f64], order: Order) -> (Vec<u32>, Vec<NodeId>) {
    let mut node_at: Vec<NodeId> = graph.nodes().collect();
    match order {
        Order::CriticalPath => {
            let weight = |n: NodeId| weights.get(n.index()).copied().unwrap_or(0.0);
            let remaining = graph.remaining_path(&weight);
            node_at.sort_unstable_by(|a, b| {
                remaining[b.index()]
                    .total_cmp(&remaining[a.index()])
                    .then(a.cmp(b))
            });
        }
        Order::Arbitrary { seed } => {
            let mut rng = SplitMix64::new(seed);
            for i in (1..node_at.len()).rev() {
                node_at.swap(i, rng.below(i as u64 + 1) as usize);
            }
        }
    }
    let mut rank_of = vec![0u32; node_at.len()];
    for (rank, node) in node_at.iter().enumerate() {
        rank_of[node.index()] = rank as u32;
    }
    (rank_of, node_at)
}

/// Runs `run(node)` for every node once all its dependencies succeeded, at
/// most `parallelism` at once, ready nodes ordered by `order` using
/// `weights` (one per node: expected duration; a missing weight is 0).
/// After the first failure or panic (or `stop`), starts nothing new and
/// waits for operations in flight. `run` is called on the executor's task
/// at the moment the operation starts; its future is spawned on tokio, so
/// this must be called inside a tokio runtime. Dropping the returned
/// future aborts the operations in flight (they live in a `JoinSet`).
pub async fn execute<E, F, Fut>(
    graph: &DepGraph,
    weights: &[f64],
    options: &ExecOptions,
    stop: &Stop,
    run: F,
) -> Outcome<E>
where
    E: Send + 'static,
    F: FnMut(NodeId) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
{
    let prepare = |_: &[NodeId]| None::<std::future::Ready<()>>;
    execute_prepared(graph, weights, options, stop, prepare, run).await
}

/// [`execute`], announcing every node before `run(node)` (at most once
/// per node) with `prepare(nodes)`: a node is announced once all of its
/// dependencies have started (it then waits only for operations in
/// flight), when it is ready and among the next `parallelism` in line
/// while every slot is busy, or, at the latest, just before it starts.
/// The nodes announced at one point of the schedule come in one call, so
/// the caller can handle them as a batch. A prepared node may still never
/// start (a failure or stop came first): [`Outcome::not_started`] lists it.
/// The order in which nodes start is the same as with [`execute`].
///
/// `prepare` may return a *gate*: a future that operations announced in
/// that call wait for anyway (the apply's intents becoming durable). When
/// some of them start at once and nothing is in flight — the run's first
/// batch: later nodes are announced ahead of their start — the executor
/// awaits the gate before it spawns them rather than spawning them to
/// wait: a thousand tasks spawned and parked take the CPU the
/// preparation's own thread needs (an fsync finishes later on a busy
/// machine), and each is then woken on its own. A stop that comes
/// meanwhile leaves them not started. Otherwise the gate is dropped:
/// completions in flight must not wait for it.
pub async fn execute_prepared<E, P, G, F, Fut>(
    graph: &DepGraph,
    weights: &[f64],
    options: &ExecOptions,
    stop: &Stop,
    mut prepare: P,
    mut run: F,
) -> Outcome<E>
where
    E: Send + 'static,
    P: FnMut(&[NodeId]) -> Option<G>,
    G: Future<Output = ()>,
    F: FnMut(NodeId) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
{
    let limit = options.parallelism.map_or(usize::MAX, |p| p.max(1));
    let (rank_of, node_at) = ranks(graph, weights, options.order);
    let mut waiting: Vec<u32> = graph
        .nodes()
        .map(|n| graph.dependencies(n).len() as u32)
        .collect();
    let mut started = vec![false; graph.len()];
    // Dependencies not started yet, per node; and whether it was announced.
    let mut unstarted = waiting.clone();
    let mut prepared = vec![false; graph.len()];
    // Ready nodes next in line, announced while every slot was busy: taken
    // out of `ready` only so as not to announce them twice. The next node
    // to start is the lower rank of the two heaps' tops.
    let mut staged: BinaryHeap<Reverse<u32>> = BinaryHeap::new();
    let lookahead = options.parallelism.map_or(0, |p| p.max(1));
    let mut ready: BinaryHeap<Reverse<u32>> = graph
        .nodes()
        .filter(|n| waiting[n.index()] == 0)
        .map(|n| Reverse(rank_of[n.index()]))
        .collect();
    let mut outcome = Outcome {
        completed: Vec::with_capacity(graph.len()),
        failed: Vec::new(),
        panicked: Vec::new(),
        not_started: Vec::new(),
        stopped: false,
    };
    let mut tasks: JoinSet<Result<(), E>> = JoinSet::new();
    let mut in_flight: HashMap<task::Id, NodeId> = HashMap::new();
    let mut failed = false;
    let stop_signal = stop.triggered();
    tokio::pin!(stop_signal);

    loop {
        if !outcome.stopped && stop.is_triggered() {
            outcome.stopped = true;
        }
        if !failed && !outcome.stopped {
            // What starts now and what is announced are chosen first and
            // announced together, before anything starts: one batch (for
            // the apply, one journal write for all of their intents).
            let mut starting: Vec<NodeId> = Vec::new();
            let mut announce: Vec<NodeId> = Vec::new();
            // Some node starting now is announced only now.
            let mut unannounced_start = false;
            while in_flight.len() + starting.len() < limit {
                let from_staged = match (staged.peek(), ready.peek()) {
                    (Some(s), Some(r)) => s > r,
                    (staged, _) => staged.is_some(),
                };
                let next = if from_staged {
                    staged.pop()
                } else {
                    ready.pop()
                };
                let Some(Reverse(rank)) = next else {
                    break;
                };
                let node = node_at[rank as usize];
                started[node.index()] = true;
                if !prepared[node.index()] {
                    prepared[node.index()] = true;
                    announce.push(node);
                    unannounced_start = true;
                }
                starting.push(node);
                for &dependent in graph.dependents(node) {
                    let count = &mut unstarted[dependent.index()];
                    *count -= 1;
                    if *count == 0 && !prepared[dependent.index()] {
                        prepared[dependent.index()] = true;
                        announce.push(dependent);
                    }
                }
            }
            if in_flight.len() + starting.len() >= limit {
                while staged.len() < lookahead {
                    let Some(Reverse(rank)) = ready.pop() else {
                        break;
                    };
                    let node = node_at[rank as usize];
                    if !prepared[node.index()] {
                        prepared[node.index()] = true;
                        announce.push(node);
                    }
                    staged.push(Reverse(rank));
                }
            }
            let gate = if announce.is_empty() {
                None
            } else {
                prepare(&announce)
            };
            if let Some(gate) = gate.filter(|_| unannounced_start && in_flight.is_empty()) {
                gate.await;
                if stop.is_triggered() {
                    outcome.stopped = true;
                    for node in starting.drain(..) {
                        started[node.index()] = false;
                    }
                }
            }
            for node in starting {
                let handle = tasks.spawn(run(node));
                in_flight.insert(handle.id(), node);
            }
        }
        if in_flight.is_empty() {
            break;
        }
        let joined = tokio::select! {
            joined = tasks.join_next_with_id() => joined,
            () = &mut stop_signal, if !outcome.stopped => {
                outcome.stopped = true;
                continue;
            }
        };
        // Take every completion already there before starting anything,
        // so a failure is seen before more work starts.
        let mut next = joined;
        while let Some(result) = next {
            let (id, result) = match result {
                Ok((id, result)) => (id, Some(result)),
                Err(error) => (error.id(), None),
            };
            let Some(node) = in_flight.remove(&id) else {
                next = tasks.try_join_next_with_id();
                continue;
            };
            match result {
                Some(Ok(())) => {
                    outcome.completed.push(node);
                    for &dependent in graph.dependents(node) {
                        let count = &mut waiting[dependent.index()];
                        *count -= 1;
                        if *count == 0 {
                            ready.push(Reverse(rank_of[dependent.index()]));
                        }
                    }
                }
                Some(Err(error)) => {
                    failed = true;
                    outcome.failed.push((node, error));
                }
                None => {
                    failed = true;
                    outcome.panicked.push(node);
                }
            }
            next = tasks.try_join_next_with_id();
        }
    }
    outcome.not_started = graph.nodes().filter(|n| !started[n.index()]).collect();
    outcome
}
