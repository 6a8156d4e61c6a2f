//! Benchmarks of the dependency graph and of the executor's scheduling
//! overhead, at the scale the brief promises: 100,000 nodes and 300,000
//! edges, operations that take no time at all; and of the planning path of
//! a no-change plan (resolve, graph, diff against a matching world) at
//! 20,000 resources, where hashing, copies of live objects and per-resource
//! maps show.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::Arc;

use cairn::apply::{ExecOptions, Order, Stop, execute};
use cairn::graph::{DepGraph, NodeId};
use cairn::model::{self, Address, Attrs, ResolveOptions};
use cairn::plan::{DiffInput, Live, LiveEntry, diff};
use cairn::provider::{LiveObject, ownership_tags};
use cairn::state::{Ownership, ResourceState, State};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

const NODES: usize = 100_000;

/// Each node depends on three random earlier ones (xorshift, fixed seed),
/// mostly near it, as resources of one stack module refer to each other.
fn inputs() -> (Vec<Address>, Vec<(Address, Address)>) {
    let nodes: Vec<Address> = (0..NODES)
        .map(|i| Address::new("sim_x", format!("n{i}")))
        .collect();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut edges = Vec::with_capacity(3 * NODES);
    for i in 1..NODES {
        for _ in 0..3 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let back = 1 + (x % 200) as usize;
            let j = i.saturating_sub(back);
            edges.push((nodes[i].clone(), nodes[j].clone()));
        }
    }
    (nodes, edges)
}

fn graph(c: &mut Criterion) {
    let (nodes, edges) = inputs();
    let mut group = c.benchmark_group("graph");
    group.sample_size(10);
    group.bench_function("build 100k nodes 300k edges", |b| {
        b.iter_batched(
            || (nodes.clone(), edges.clone()),
            |(nodes, edges)| DepGraph::new(nodes, edges),
            BatchSize::LargeInput,
        )
    });
    let g = DepGraph::new(nodes, edges).expect("the benchmark graph is acyclic");
    group.bench_function("remaining_path", |b| {
        b.iter(|| g.remaining_path(&|n| (n.0 % 7) as f64))
    });
    group.bench_function("steps", |b| b.iter(|| g.steps()));
    let completed: Vec<NodeId> = g.nodes().filter(|n| n.index() < NODES / 2).collect();
    group.bench_function("subgraph of half", |b| {
        b.iter(|| g.subgraph(black_box(&completed)))
    });
    group.bench_function("reversed", |b| b.iter(|| g.reversed()));
    group.finish();
}

fn executor(c: &mut Criterion) {
    let (nodes, edges) = inputs();
    let g = DepGraph::new(nodes, edges).expect("the benchmark graph is acyclic");
    let weights: Vec<f64> = g.nodes().map(|n| (n.0 % 7) as f64).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
    let mut group = c.benchmark_group("executor 100k no-op nodes");
    group.sample_size(10);
    let cases = [
        ("critical path, 64 at once", Some(64), Order::CriticalPath),
        (
            "arbitrary, 64 at once",
            Some(64),
            Order::Arbitrary { seed: 7 },
        ),
        ("critical path, unbounded", None, Order::CriticalPath),
    ];
    for (name, parallelism, order) in cases {
        let options = ExecOptions { parallelism, order };
        group.bench_function(name, |b| {
            b.iter(|| {
                let outcome =
                    runtime.block_on(execute(&g, &weights, &options, &Stop::new(), |_| async {
                        Ok::<(), ()>(())
                    }));
                assert_eq!(outcome.completed.len(), NODES);
            })
        });
    }
    group.finish();
}

/// Resources in the planning benchmarks.
const PLANNED: usize = 20_000;

/// A `sim_node` stack of [`PLANNED`] resources, each depending on up to two
/// earlier ones, as `bench/gen.py` writes them.
fn stack_text() -> String {
    let mut text = String::from("[stack]\nname = \"bench\"\n\n[provider.sim]\nlatency_ms = 0\n");
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..PLANNED {
        let _ = write!(text, "\n[resource.sim_node.n{i}]\nname = \"n{i}\"\n");
        if i > 0 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let a = i - 1 - (x % i as u64) as usize;
            let b = i - 1 - ((x >> 32) % i as u64) as usize;
            let _ = writeln!(text, "depends_on = [\"sim_node.n{a}\", \"sim_node.n{b}\"]");
        }
    }
    text
}

/// The state and live world after applying the stack: nothing to change.
fn applied(stack: &model::Stack) -> (State, Live) {
    let mut state = State::new("bench", "default");
    let mut live = Live::new();
    for r in &stack.resources {
        let name = &r.address.name;
        let id = format!("sim_node-{name}-abc123");
        let attributes: Attrs = Attrs::from([
            ("arn".into(), format!("arn:sim:sim_node:{name}").into()),
            ("id".into(), id.clone().into()),
            ("name".into(), name.clone().into()),
        ]);
        state.resources.insert(
            r.address.clone(),
            ResourceState {
                id: id.clone(),
                ownership: Ownership::Created,
                attributes: attributes.clone(),
                depends_on: r.depends_on.clone(),
                identity: Some(name.clone()),
            },
        );
        let object = LiveObject {
            id,
            attributes,
            tags: ownership_tags("bench", "default", &r.address),
        };
        live.insert(
            r.address.clone(),
            LiveEntry {
                by_id: Some(Arc::new(object)),
                ..LiveEntry::default()
            },
        );
    }
    (state, live)
}

fn planning(c: &mut Criterion) {
    let text = stack_text();
    let options = ResolveOptions {
        environment: BTreeMap::new(),
        ..ResolveOptions::default()
    };
    let mut group = c.benchmark_group("plan 20k resources, no change");
    group.sample_size(10);
    group.bench_function("parse and resolve", |b| {
        b.iter(|| {
            let raw = cairn::stack::parse("bench.toml", text.clone()).expect("parses");
            model::resolve(&raw, &options).expect("resolves")
        })
    });
    let raw = cairn::stack::parse("bench.toml", text.clone()).expect("parses");
    let stack = model::resolve(&raw, &options).expect("resolves");
    group.bench_function("dependency graph", |b| {
        b.iter(|| model::dependency_graph(black_box(&stack)).expect("acyclic"))
    });
    let graph = model::dependency_graph(&stack).expect("acyclic");
    let (state, live) = applied(&stack);
    group.bench_function("diff", |b| {
        b.iter(|| {
            let plan = diff(&DiffInput {
                stack: &stack,
                graph: &graph,
                state: &state,
                live: &live,
            })
            .expect("plans");
            assert!(!plan.has_changes());
            plan
        })
    });
    group.finish();
}

criterion_group!(benches, graph, executor, planning);
criterion_main!(benches);
