//! Benchmarks of the dependency graph and of the executor's scheduling
//! overhead, at the scale the brief promises: 100,000 nodes and 300,000
//! edges, operations that take no time at all.

use std::hint::black_box;

use cairn::apply::{ExecOptions, Order, Stop, execute};
use cairn::graph::{DepGraph, NodeId};
use cairn::model::Address;
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

criterion_group!(benches, graph, executor);
criterion_main!(benches);
