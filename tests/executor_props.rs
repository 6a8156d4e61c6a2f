//! Properties of the executor on random DAGs, and its scheduling quality.
//!
//! Operations sleep on tokio's paused clock (so the suite is fast and
//! deterministic) and record events in one shared log: `Spawn` when the
//! executor calls `run` (the moment it starts the operation), `Start` when
//! the operation first runs, `End` just before it returns, and `Prepare`
//! when [`execute_prepared`] announces an operation about to start.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn::apply::{ExecOptions, Order, Outcome, Stop, execute, execute_prepared};
use cairn::graph::{DepGraph, NodeId};
use cairn::model::Address;
use proptest::prelude::*;
use tokio::time::{Instant, sleep};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    /// The start of one call of `prepare` (a batch of announcements).
    Batch,
    Prepare(NodeId),
    Spawn(NodeId),
    Start(NodeId),
    End(NodeId),
    StopTriggered,
    /// A gate returned by `prepare` resolved.
    GateOpen,
}

type Log = Arc<Mutex<Vec<Event>>>;

/// A random DAG over `n` nodes: `index` is a topological index (edges go
/// from a higher index, the dependent, to a lower one), `ids` shuffles
/// which NodeId each index gets.
#[derive(Debug, Clone)]
struct Dag {
    n: usize,
    edges: Vec<(usize, usize)>,
    order: Vec<usize>,
    durations: Vec<u64>,
}

fn address(i: usize) -> Address {
    Address::new("sim_x", format!("n{i}"))
}

impl Dag {
    fn graph(&self) -> DepGraph {
        // NodeId k is topological index order[k].
        let nodes = self.order.iter().map(|&i| address(i)).collect();
        let edges = self.edges.iter().map(|&(a, b)| (address(a), address(b)));
        DepGraph::new(nodes, edges).unwrap()
    }
}

fn dag() -> impl Strategy<Value = Dag> {
    (1usize..60)
        .prop_flat_map(|n| {
            let edges = prop::collection::vec((0..n, 0..n), 0..=3 * n);
            let order = Just((0..n).collect::<Vec<_>>()).prop_shuffle();
            let durations = prop::collection::vec(0u64..6, n);
            (Just(n), edges, order, durations)
        })
        .prop_map(|(n, edges, order, durations)| Dag {
            n,
            edges: edges
                .into_iter()
                .filter(|(a, b)| a != b)
                .map(|(a, b)| (a.max(b), a.min(b)))
                .collect(),
            order,
            durations,
        })
}

fn parallelism() -> impl Strategy<Value = Option<usize>> {
    prop_oneof![Just(None), (1usize..8).prop_map(Some)]
}

fn order() -> impl Strategy<Value = Order> {
    prop_oneof![
        Just(Order::CriticalPath),
        any::<u64>().prop_map(|seed| Order::Arbitrary { seed })
    ]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

/// Runs `graph`; node `n` sleeps `duration(n)` ms and fails if `fails(n)`.
async fn run_logged(
    graph: &DepGraph,
    options: &ExecOptions,
    stop: &Stop,
    duration: impl Fn(NodeId) -> u64,
    fails: impl Fn(NodeId) -> bool,
    log: &Log,
) -> Outcome<String> {
    let weights: Vec<f64> = graph.nodes().map(|n| duration(n) as f64).collect();
    execute(graph, &weights, options, stop, |node| {
        operation(log, node, duration(node), fails(node))
    })
    .await
}

/// [`run_logged`] through [`execute_prepared`], logging announcements.
async fn run_prepared(
    graph: &DepGraph,
    options: &ExecOptions,
    duration: impl Fn(NodeId) -> u64,
    fails: impl Fn(NodeId) -> bool,
    log: &Log,
) -> Outcome<String> {
    let weights: Vec<f64> = graph.nodes().map(|n| duration(n) as f64).collect();
    let prepare = |nodes: &[NodeId]| {
        let mut log = log.lock().unwrap();
        log.push(Event::Batch);
        log.extend(nodes.iter().map(|n| Event::Prepare(*n)));
        None::<std::future::Ready<()>>
    };
    execute_prepared(graph, &weights, options, &Stop::new(), prepare, |node| {
        operation(log, node, duration(node), fails(node))
    })
    .await
}

/// One logged operation: spawned now, sleeps `ms`, fails if `fail`.
fn operation(
    log: &Log,
    node: NodeId,
    ms: u64,
    fail: bool,
) -> impl Future<Output = Result<(), String>> + Send + 'static {
    log.lock().unwrap().push(Event::Spawn(node));
    let log = log.clone();
    async move {
        log.lock().unwrap().push(Event::Start(node));
        sleep(Duration::from_millis(ms)).await;
        log.lock().unwrap().push(Event::End(node));
        if fail {
            Err(format!("node {} failed", node.0))
        } else {
            Ok(())
        }
    }
}

fn position(log: &[Event], event: Event) -> Option<usize> {
    log.iter().position(|e| *e == event)
}

/// (1) every operation is spawned after all its dependencies ended, and
/// (2) no more than `bound` are between spawn and end at once.
fn check_order_and_bound(graph: &DepGraph, log: &[Event], bound: Option<usize>) {
    for (i, event) in log.iter().enumerate() {
        if let Event::Spawn(node) = event {
            for &dep in graph.dependencies(*node) {
                let end = position(log, Event::End(dep));
                assert!(
                    end.is_some_and(|e| e < i),
                    "{node:?} spawned before its dependency {dep:?} ended"
                );
            }
        }
    }
    let mut running = 0usize;
    for event in log {
        match event {
            Event::Spawn(_) => running += 1,
            Event::End(_) => running -= 1,
            _ => {}
        }
        if let Some(bound) = bound {
            assert!(running <= bound, "{running} running, bound {bound}");
        }
    }
}

fn spawn_count(log: &[Event], node: NodeId) -> usize {
    log.iter().filter(|e| **e == Event::Spawn(node)).count()
}

/// Bitmask per node id: every node it transitively depends on (n < 64).
fn ancestors(graph: &DepGraph) -> Vec<u64> {
    let mut reach = vec![0u64; graph.len()];
    for &node in graph.topological() {
        for &dep in graph.dependencies(node) {
            reach[node.index()] |= reach[dep.index()] | (1 << dep.0);
        }
    }
    reach
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_node_runs_once_in_dependency_order(
        dag in dag(), parallelism in parallelism(), order in order()
    ) {
        let graph = dag.graph();
        let options = ExecOptions { parallelism, order };
        let log: Log = Arc::default();
        let durations = |n: NodeId| dag.durations[n.index()];
        let outcome = runtime().block_on(
            run_logged(&graph, &options, &Stop::new(), durations, |_| false, &log),
        );
        let log = log.lock().unwrap().clone();
        check_order_and_bound(&graph, &log, parallelism);
        prop_assert!(outcome.is_success());
        prop_assert_eq!(outcome.completed.len(), dag.n);
        for node in graph.nodes() {
            prop_assert_eq!(spawn_count(&log, node), 1);
        }
        // Completion order is itself a dependency order.
        let mut done = vec![false; graph.len()];
        for &node in &outcome.completed {
            for dep in graph.dependencies(node) {
                prop_assert!(done[dep.index()]);
            }
            done[node.index()] = true;
        }
    }

    #[test]
    fn a_failure_starts_nothing_new(
        dag in dag(), parallelism in parallelism(), order in order(),
        failing in any::<prop::sample::Index>(),
    ) {
        let graph = dag.graph();
        let failing = NodeId(failing.index(dag.n) as u32);
        let options = ExecOptions { parallelism, order };
        let log: Log = Arc::default();
        let durations = |n: NodeId| dag.durations[n.index()];
        let outcome = runtime().block_on(
            run_logged(&graph, &options, &Stop::new(), durations, |n| n == failing, &log),
        );
        let log = log.lock().unwrap().clone();
        check_order_and_bound(&graph, &log, parallelism);
        prop_assert!(!outcome.stopped);
        prop_assert_eq!(outcome.failed.len(), 1);
        prop_assert_eq!(outcome.failed[0].0, failing);
        prop_assert_eq!(&outcome.failed[0].1, &format!("node {} failed", failing.0));
        // Nothing is spawned once the failure happened.
        let failed_at = position(&log, Event::End(failing)).unwrap();
        prop_assert!(!log[failed_at..].iter().any(|e| matches!(e, Event::Spawn(_))));
        // Every node is accounted for exactly once.
        for node in graph.nodes() {
            let spawned = spawn_count(&log, node);
            let completed = outcome.completed.contains(&node);
            let not_started = outcome.not_started.contains(&node);
            prop_assert_eq!(spawned, usize::from(completed || node == failing));
            prop_assert_eq!(not_started, spawned == 0);
        }
        // Every dependent of the failed node, direct or not, never started.
        let reach = ancestors(&graph);
        for node in graph.nodes() {
            if reach[node.index()] & (1 << failing.0) != 0 {
                prop_assert!(outcome.not_started.contains(&node));
            }
        }
    }

    #[test]
    fn a_stop_starts_nothing_new(
        dag in dag(), parallelism in parallelism(), after_ms in 0u64..12,
    ) {
        let graph = dag.graph();
        let options = ExecOptions { parallelism, order: Order::CriticalPath };
        let log: Log = Arc::default();
        let durations = |n: NodeId| dag.durations[n.index()] + 1;
        let stop = Stop::new();
        let outcome = runtime().block_on(async {
            let trigger = {
                let (stop, log) = (stop.clone(), log.clone());
                tokio::spawn(async move {
                    sleep(Duration::from_millis(after_ms)).await;
                    log.lock().unwrap().push(Event::StopTriggered);
                    stop.trigger();
                })
            };
            let outcome = run_logged(&graph, &options, &stop, durations, |_| false, &log).await;
            trigger.await.unwrap();
            outcome
        });
        let log = log.lock().unwrap().clone();
        check_order_and_bound(&graph, &log, parallelism);
        if let Some(at) = position(&log, Event::StopTriggered) {
            prop_assert!(!log[at..].iter().any(|e| matches!(e, Event::Spawn(_))));
        }
        prop_assert!(outcome.failed.is_empty());
        prop_assert_eq!(outcome.completed.len() + outcome.not_started.len(), dag.n);
        if !outcome.not_started.is_empty() {
            prop_assert!(outcome.stopped);
        }
    }

    /// Announcing operations ahead changes nothing about when they start;
    /// each is announced once, after all its dependencies started and
    /// before it starts itself, and every operation that waited for
    /// another was announced.
    #[test]
    fn announcing_comes_first_and_changes_no_start(
        dag in dag(), parallelism in parallelism(), order in order(),
        failing in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let graph = dag.graph();
        let failing = failing.map(|i| NodeId(i.index(dag.n) as u32));
        let options = ExecOptions { parallelism, order };
        let durations = |n: NodeId| dag.durations[n.index()];
        let fails = |n: NodeId| Some(n) == failing;
        let plain: Log = Arc::default();
        let plain_outcome = runtime().block_on(
            run_logged(&graph, &options, &Stop::new(), durations, fails, &plain),
        );
        let log: Log = Arc::default();
        let outcome = runtime().block_on(run_prepared(&graph, &options, durations, fails, &log));
        let plain = plain.lock().unwrap().clone();
        let log = log.lock().unwrap().clone();
        let spawns = |log: &[Event]| -> Vec<Event> {
            log.iter().filter(|e| matches!(e, Event::Spawn(_))).copied().collect()
        };
        prop_assert_eq!(spawns(&plain), spawns(&log));
        prop_assert_eq!(&plain_outcome.completed, &outcome.completed);
        prop_assert_eq!(&plain_outcome.not_started, &outcome.not_started);
        check_order_and_bound(&graph, &log, parallelism);
        for node in graph.nodes() {
            let announced = log.iter().filter(|e| **e == Event::Prepare(node)).count();
            prop_assert!(announced <= 1);
            let spawned = position(&log, Event::Spawn(node));
            let Some(at) = position(&log, Event::Prepare(node)) else {
                prop_assert!(spawned.is_none(), "{:?} started without being announced", node);
                continue;
            };
            if let Some(spawned) = spawned {
                prop_assert!(at < spawned);
            }
            // Announced once every dependency has started: before, or at
            // the same scheduling point (spawned before the next batch).
            let next_batch = log[at..]
                .iter()
                .position(|e| *e == Event::Batch)
                .map_or(usize::MAX, |i| at + i);
            for dep in graph.dependencies(node) {
                let dep_spawned = position(&log, Event::Spawn(*dep));
                prop_assert!(dep_spawned.is_some_and(|d| d < next_batch));
            }
        }
    }

    /// Rollback order: the reversed subgraph on any kept set runs every
    /// node only after everything kept that (transitively) depends on it,
    /// and adds no ordering the full graph does not have.
    #[test]
    fn reversed_subgraph_runs_dependents_first(
        dag in dag(), parallelism in parallelism(), keep_mask in any::<u64>(),
    ) {
        let graph = dag.graph();
        let keep: Vec<NodeId> = graph.nodes().filter(|n| keep_mask & (1 << n.0) != 0).collect();
        let rollback = graph.subgraph(&keep).reversed();
        prop_assert_eq!(rollback.len(), keep.len());
        // Subgraph node → full-graph node.
        let full = |n: NodeId| graph.node(rollback.address(n)).unwrap();
        let reach = ancestors(&graph);
        for n in rollback.nodes() {
            for &m in rollback.dependencies(n) {
                // Rollback: n runs after m, so m depends on n in the graph.
                prop_assert!(reach[full(m).index()] & (1 << full(n).0) != 0);
            }
        }
        let options = ExecOptions { parallelism, order: Order::CriticalPath };
        let log: Log = Arc::default();
        let durations = |n: NodeId| dag.durations[full(n).index()];
        let outcome = runtime().block_on(
            run_logged(&rollback, &options, &Stop::new(), durations, |_| false, &log),
        );
        prop_assert_eq!(outcome.completed.len(), keep.len());
        let log = log.lock().unwrap().clone();
        check_order_and_bound(&rollback, &log, parallelism);
        for a in rollback.nodes() {
            for b in rollback.nodes() {
                // b depends on a in the full graph: b is undone before a.
                if reach[full(b).index()] & (1 << full(a).0) != 0 {
                    let b_end = position(&log, Event::End(b)).unwrap();
                    let a_spawn = position(&log, Event::Spawn(a)).unwrap();
                    prop_assert!(b_end < a_spawn);
                }
            }
        }
    }
}

/// A chain of 10 nodes of 10 ms beside 20 independent nodes of 10 ms, two
/// at a time: 300 ms of work, so no schedule beats 150 ms, and the chain
/// alone needs 100 ms from the moment it starts.
fn chain_and_crowd() -> (DepGraph, Vec<f64>) {
    let chain: Vec<Address> = (0..10)
        .map(|i| Address::new("sim_chain", format!("c{i}")))
        .collect();
    let crowd = (0..20).map(|i| Address::new("sim_crowd", format!("x{i}")));
    // The crowd first, so that ids favour it on ties.
    let nodes: Vec<Address> = crowd.chain(chain.iter().cloned()).collect();
    let edges: Vec<(Address, Address)> = chain
        .windows(2)
        .map(|w| (w[1].clone(), w[0].clone()))
        .collect();
    let graph = DepGraph::new(nodes, edges).unwrap();
    let weights = vec![10.0; graph.len()];
    (graph, weights)
}

async fn makespan(graph: &DepGraph, weights: &[f64], order: Order) -> Duration {
    let options = ExecOptions {
        parallelism: Some(2),
        order,
    };
    let start = Instant::now();
    let outcome = execute(graph, weights, &options, &Stop::new(), |n| {
        let ms = weights[n.index()] as u64;
        async move {
            sleep(Duration::from_millis(ms)).await;
            Ok::<(), ()>(())
        }
    })
    .await;
    assert!(outcome.is_success());
    start.elapsed()
}

#[tokio::test(start_paused = true)]
async fn critical_path_order_beats_arbitrary_order() {
    let (graph, weights) = chain_and_crowd();
    let best = makespan(&graph, &weights, Order::CriticalPath).await;
    assert_eq!(best, Duration::from_millis(150));
    let mut worse = 0;
    let mut total = Duration::ZERO;
    for seed in 0..20 {
        let time = makespan(&graph, &weights, Order::Arbitrary { seed }).await;
        assert!(time >= best, "seed {seed}: {time:?}");
        worse += usize::from(time > best);
        total += time;
    }
    assert!(worse >= 10, "only {worse} of 20 random orders were slower");
    assert!(total / 20 > Duration::from_millis(170), "{:?}", total / 20);
}

#[tokio::test(start_paused = true)]
async fn a_panic_is_reported_and_stops_the_run() {
    // b and c depend on a; a panics.
    let nodes: Vec<Address> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| Address::new("sim_x", *n))
        .collect();
    let edges = [(1, 0), (2, 0)].map(|(x, y): (usize, usize)| (nodes[x].clone(), nodes[y].clone()));
    let graph = DepGraph::new(nodes.clone(), edges).unwrap();
    let options = ExecOptions {
        parallelism: Some(1),
        order: Order::CriticalPath,
    };
    let outcome = execute(
        &graph,
        &[1.0, 1.0, 1.0, 0.0],
        &options,
        &Stop::new(),
        |n| async move {
            if n.0 == 0 {
                panic!("operation bug");
            }
            Ok::<(), String>(())
        },
    )
    .await;
    assert_eq!(outcome.panicked, [NodeId(0)]);
    assert!(outcome.failed.is_empty());
    assert!(outcome.completed.is_empty());
    assert_eq!(outcome.not_started, [NodeId(1), NodeId(2), NodeId(3)]);
    assert!(!outcome.is_success());
}

#[tokio::test(start_paused = true)]
async fn a_stop_before_the_run_starts_nothing() {
    let graph = DepGraph::new(vec![Address::new("sim_x", "a")], []).unwrap();
    let stop = Stop::new();
    stop.trigger();
    // Already triggered: resolves at once.
    stop.clone().triggered().await;
    let options = ExecOptions {
        parallelism: None,
        order: Order::Arbitrary { seed: 1 },
    };
    let outcome = execute(&graph, &[], &options, &stop, |_| async { Ok::<(), ()>(()) }).await;
    assert!(outcome.stopped);
    assert_eq!(outcome.not_started, [NodeId(0)]);
    assert!(outcome.completed.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_zero_latency_nodes_on_threads() {
    // 20,000 nodes in layers of 100, each depending on two of the layer
    // before: all run, in dependency order, with real threads.
    let nodes: Vec<Address> = (0..20_000)
        .map(|i| Address::new("sim_x", format!("n{i}")))
        .collect();
    let mut edges = Vec::new();
    for i in 100..nodes.len() {
        edges.push((nodes[i].clone(), nodes[i - 100].clone()));
        let layer_before = i - 100 - i % 100;
        edges.push((
            nodes[i].clone(),
            nodes[layer_before + (i * 7) % 100].clone(),
        ));
    }
    let graph = DepGraph::new(nodes, edges).unwrap();
    let done: Arc<Vec<std::sync::atomic::AtomicBool>> =
        Arc::new((0..graph.len()).map(|_| Default::default()).collect());
    let deps: Arc<Vec<Vec<NodeId>>> = Arc::new(
        graph
            .nodes()
            .map(|n| graph.dependencies(n).to_vec())
            .collect(),
    );
    let options = ExecOptions {
        parallelism: Some(8),
        order: Order::CriticalPath,
    };
    let outcome = execute(&graph, &[], &options, &Stop::new(), |n| {
        let (done, deps) = (done.clone(), deps.clone());
        async move {
            use std::sync::atomic::Ordering::SeqCst;
            if deps[n.index()].iter().all(|d| done[d.index()].load(SeqCst)) {
                done[n.index()].store(true, SeqCst);
                Ok(())
            } else {
                Err(n)
            }
        }
    })
    .await;
    assert!(
        outcome.failed.is_empty(),
        "ran before a dependency: {:?}",
        outcome.failed.first()
    );
    assert_eq!(outcome.completed.len(), 20_000);
}

/// `n` independent nodes, run `parallelism` at a time, longest chain first.
fn independent(n: usize, parallelism: usize) -> (DepGraph, ExecOptions) {
    let nodes: Vec<Address> = (0..n).map(address).collect();
    let options = ExecOptions {
        parallelism: Some(parallelism),
        order: Order::CriticalPath,
    };
    (DepGraph::new(nodes, []).unwrap(), options)
}

#[tokio::test(start_paused = true)]
async fn ready_operations_next_in_line_are_announced_while_slots_are_busy() {
    // Six independent operations of 10 ms, two at a time: while 0 and 1
    // run, 2 and 3 (next in line) are announced, and 4 only once a slot
    // has freed up.
    let (graph, options) = independent(6, 2);
    let log: Log = Arc::default();
    let outcome = run_prepared(&graph, &options, |_| 10, |_| false, &log).await;
    assert!(outcome.is_success());
    let log = log.lock().unwrap().clone();
    let at = |e| position(&log, e).unwrap_or(usize::MAX);
    let first_end = log.iter().position(|e| matches!(e, Event::End(_))).unwrap();
    assert!(at(Event::Prepare(NodeId(2))) < first_end, "{log:?}");
    assert!(at(Event::Prepare(NodeId(3))) < first_end, "{log:?}");
    assert!(at(Event::Prepare(NodeId(4))) > first_end, "{log:?}");
    // The two that start at once are announced together, just before.
    for started_at_once in [0, 1] {
        assert!(at(Event::Prepare(NodeId(started_at_once))) < at(Event::Spawn(NodeId(0))));
    }
    // Announced nodes start in the same order as the others would.
    let spawns: Vec<NodeId> = log
        .iter()
        .filter_map(|e| match e {
            Event::Spawn(n) => Some(*n),
            _ => None,
        })
        .collect();
    assert_eq!(spawns, (0..6).map(NodeId).collect::<Vec<_>>());
}

/// Runs `graph` (every operation 10 ms) with a `prepare` whose every call
/// returns a gate that opens after `gate_ms`, triggering `stop` first if
/// `stop_in_gate`.
async fn run_gated(
    graph: &DepGraph,
    options: &ExecOptions,
    gate_ms: u64,
    stop: &Stop,
    stop_in_gate: bool,
    log: &Log,
) -> Outcome<String> {
    let weights = vec![10.0; graph.len()];
    let prepare = |nodes: &[NodeId]| {
        log.lock()
            .unwrap()
            .extend(nodes.iter().map(|n| Event::Prepare(*n)));
        let (log, stop) = (log.clone(), stop.clone());
        Some(async move {
            sleep(Duration::from_millis(gate_ms)).await;
            if stop_in_gate {
                stop.trigger();
            }
            log.lock().unwrap().push(Event::GateOpen);
        })
    };
    execute_prepared(graph, &weights, options, stop, prepare, |node| {
        operation(log, node, 10, false)
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn the_first_batch_waits_for_its_gate_and_later_ones_do_not() {
    // Three independent operations and a chain of three: everything that
    // starts at once is announced at once, behind one gate; the chain's
    // later links are announced while their dependency runs, so their
    // gates are not awaited.
    let names = ["a", "b", "c", "x", "y", "z"];
    let nodes: Vec<Address> = names.iter().map(|n| Address::new("sim_x", *n)).collect();
    let edges = [(4, 3), (5, 4)].map(|(a, b): (usize, usize)| (nodes[a].clone(), nodes[b].clone()));
    let graph = DepGraph::new(nodes, edges).unwrap();
    let options = ExecOptions {
        parallelism: None,
        order: Order::CriticalPath,
    };
    let log: Log = Arc::default();
    let began = Instant::now();
    let stop = Stop::new();
    let outcome = run_gated(&graph, &options, 5, &stop, false, &log).await;
    assert!(outcome.is_success(), "{outcome:?}");
    // One gate of 5 ms, then the chain's 30 ms.
    assert_eq!(began.elapsed(), Duration::from_millis(35));
    let log = log.lock().unwrap().clone();
    let gate = position(&log, Event::GateOpen).unwrap();
    let first_spawn = log
        .iter()
        .position(|e| matches!(e, Event::Spawn(_)))
        .unwrap();
    assert!(gate < first_spawn, "{log:?}");
}

#[tokio::test(start_paused = true)]
async fn a_stop_while_the_gate_is_shut_starts_nothing() {
    let (graph, options) = independent(4, 2);
    let log: Log = Arc::default();
    let stop = Stop::new();
    let outcome = run_gated(&graph, &options, 5, &stop, true, &log).await;
    assert!(outcome.stopped, "{outcome:?}");
    assert!(outcome.completed.is_empty(), "{outcome:?}");
    assert_eq!(outcome.not_started.len(), 4, "{outcome:?}");
    let log = log.lock().unwrap().clone();
    assert!(!log.iter().any(|e| matches!(e, Event::Spawn(_))), "{log:?}");
}
