//! Unit tests of the graph and its exports.

use super::*;

fn a(name: &str) -> Address {
    Address::new("sim_x", name)
}

fn graph(nodes: &[&str], edges: &[(&str, &str)]) -> Result<DepGraph, Cycle> {
    DepGraph::new(
        nodes.iter().map(|n| a(n)).collect(),
        edges.iter().map(|(x, y)| (a(x), a(y))),
    )
}

fn names(g: &DepGraph, nodes: &[NodeId]) -> Vec<String> {
    nodes.iter().map(|n| g.address(*n).name.clone()).collect()
}

fn id(g: &DepGraph, name: &str) -> NodeId {
    g.node(&a(name)).unwrap()
}

/// Every consecutive pair of the cycle is an edge of `edges`, and so is
/// last → first; no address repeats.
fn assert_real_cycle(cycle: &Cycle, edges: &[(&str, &str)]) {
    let path: Vec<&str> = cycle.path.iter().map(|x| x.name.as_str()).collect();
    assert!(!path.is_empty());
    let mut sorted = path.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), path.len(), "not simple: {path:?}");
    for i in 0..path.len() {
        let pair = (path[i], path[(i + 1) % path.len()]);
        assert!(edges.contains(&pair), "{pair:?} is not an edge of {path:?}");
    }
}

#[test]
fn builds_and_looks_up() {
    let g = graph(
        &["app", "role", "bucket", "role"],
        &[
            ("app", "role"),
            ("app", "bucket"),
            ("app", "role"),
            ("app", "ghost"),
        ],
    )
    .unwrap();
    assert_eq!(g.len(), 3);
    assert_eq!(g.edge_count(), 2);
    let app = id(&g, "app");
    assert_eq!(names(&g, g.dependencies(app)), ["role", "bucket"]);
    assert_eq!(names(&g, g.dependents(id(&g, "role"))), ["app"]);
    assert_eq!(g.node(&a("ghost")), None);
    assert_eq!(names(&g, g.topological()), ["role", "bucket", "app"]);
}

#[test]
fn self_edge_is_a_cycle_of_one() {
    let err = graph(&["a", "b"], &[("b", "a"), ("a", "a")]).unwrap_err();
    assert_eq!(err.path, vec![a("a")]);
    assert_eq!(err.to_string(), "sim_x.a → sim_x.a");
}

#[test]
fn two_cycle() {
    let edges = [("a", "b"), ("b", "a")];
    let err = graph(&["a", "b"], &edges).unwrap_err();
    assert_eq!(err.path, vec![a("a"), a("b")]);
    assert_real_cycle(&err, &edges);
}

#[test]
fn cycle_behind_a_tail_and_with_chords() {
    // x → c1 → c2 → c3 → c4 → c1, plus a chord c1 → c3 (shortest cycle
    // through c1 is c1 → c3 → c4 → c1), and a dependent z of the cycle.
    let edges = [
        ("x", "c1"),
        ("c1", "c2"),
        ("c2", "c3"),
        ("c3", "c4"),
        ("c4", "c1"),
        ("c1", "c3"),
        ("z", "x"),
        ("c2", "ok"),
    ];
    let err = graph(&["z", "x", "c1", "c2", "c3", "c4", "ok"], &edges).unwrap_err();
    assert_real_cycle(&err, &edges);
    assert_eq!(err.path, vec![a("c1"), a("c3"), a("c4")]);
}

#[test]
fn two_disjoint_cycles_report_one() {
    let edges = [("p", "q"), ("q", "p"), ("m", "n"), ("n", "o"), ("o", "m")];
    let err = graph(&["p", "q", "m", "n", "o"], &edges).unwrap_err();
    assert_real_cycle(&err, &edges);
    // The component holding the smallest address.
    assert_eq!(err.path[0], a("m"));
    assert_eq!(err.path.len(), 3);
}

#[test]
fn large_cycle_is_found() {
    let names: Vec<String> = (0..2000).map(|i| format!("n{i}")).collect();
    let mut edges: Vec<(&str, &str)> = names.windows(2).map(|w| (&*w[0], &*w[1])).collect();
    edges.push((&names[1999], &names[0]));
    let nodes: Vec<&str> = names.iter().map(String::as_str).collect();
    let err = graph(&nodes, &edges).unwrap_err();
    assert_eq!(err.path.len(), 2000);
    assert_real_cycle(&err, &edges);
}

fn diamond() -> DepGraph {
    // d depends on b and c, which depend on a; e depends on a.
    graph(
        &["d", "c", "b", "a", "e"],
        &[("d", "b"), ("d", "c"), ("b", "a"), ("c", "a"), ("e", "a")],
    )
    .unwrap()
}

#[test]
fn steps_are_longest_path_levels() {
    let g = graph(
        &["a", "b", "c", "d"],
        &[("b", "a"), ("c", "b"), ("d", "a"), ("c", "d")],
    )
    .unwrap();
    let steps: Vec<Vec<String>> = g.steps().iter().map(|s| names(&g, s)).collect();
    assert_eq!(steps, vec![vec!["a"], vec!["b", "d"], vec!["c"]]);
    let g = diamond();
    let steps: Vec<Vec<String>> = g.steps().iter().map(|s| names(&g, s)).collect();
    assert_eq!(steps, vec![vec!["a"], vec!["c", "b", "e"], vec!["d"]]);
    assert!(graph(&[], &[]).unwrap().steps().is_empty());
}

#[test]
fn topological_order_keeps_to_file_order_where_edges_allow() {
    // Listed dependencies first: walked as listed, not breadth first
    // (which would take d before c).
    let g = graph(&["a", "b", "c", "d"], &[("b", "a"), ("c", "b"), ("d", "a")]).unwrap();
    assert_eq!(names(&g, g.topological()), ["a", "b", "c", "d"]);
    // A dependency listed after its dependent comes first, right before it
    // is needed; the rest keeps its order.
    let g = graph(&["x", "b", "a", "y"], &[("b", "a"), ("y", "b")]).unwrap();
    assert_eq!(names(&g, g.topological()), ["x", "a", "b", "y"]);
}

#[test]
fn reversed_swaps_edges() {
    let g = diamond();
    let r = g.reversed();
    for n in g.nodes() {
        assert_eq!(g.dependencies(n), r.dependents(n));
        assert_eq!(g.dependents(n), r.dependencies(n));
        assert_eq!(g.address(n), r.address(n));
    }
    assert_eq!(names(&r, r.topological()), ["e", "d", "b", "c", "a"]);
    let steps: Vec<Vec<String>> = r.steps().iter().map(|s| names(&r, s)).collect();
    assert_eq!(steps, vec![vec!["d", "e"], vec!["c", "b"], vec!["a"]]);
}

#[test]
fn subgraph_keeps_transitive_edges() {
    // Chain a ← b ← c ← d ← e plus f depending on b and g on nothing.
    let g = graph(
        &["a", "b", "c", "d", "e", "f", "g"],
        &[("b", "a"), ("c", "b"), ("d", "c"), ("e", "d"), ("f", "b")],
    )
    .unwrap();
    let keep = [
        id(&g, "e"),
        id(&g, "a"),
        id(&g, "f"),
        id(&g, "g"),
        id(&g, "a"),
    ];
    let s = g.subgraph(&keep);
    assert_eq!(
        names(&s, &s.nodes().collect::<Vec<_>>()),
        ["a", "e", "f", "g"]
    );
    assert_eq!(names(&s, s.dependencies(id(&s, "e"))), ["a"]);
    assert_eq!(names(&s, s.dependencies(id(&s, "f"))), ["a"]);
    assert_eq!(names(&s, s.dependents(id(&s, "a"))), ["e", "f"]);
    assert!(s.dependencies(id(&s, "g")).is_empty());
    assert_eq!(s.edge_count(), 2);
    let topo = names(&s, s.topological());
    assert_eq!(topo[0], "a");
}

#[test]
fn subgraph_merges_paths_through_dropped_nodes() {
    // top depends on x1, x2 (dropped), which both depend on k1 and k2.
    let g = graph(
        &["top", "x1", "x2", "k1", "k2", "y"],
        &[
            ("top", "x1"),
            ("top", "x2"),
            ("x1", "k1"),
            ("x1", "k2"),
            ("x2", "k2"),
            ("x2", "y"),
            ("y", "k1"),
            ("top", "k1"),
        ],
    )
    .unwrap();
    let s = g.subgraph(&[id(&g, "top"), id(&g, "k1"), id(&g, "k2")]);
    assert_eq!(names(&s, s.dependencies(id(&s, "top"))), ["k1", "k2"]);
    assert_eq!(s.edge_count(), 2);
    let all = g.subgraph(&g.nodes().collect::<Vec<_>>());
    assert_eq!(all.edge_count(), g.edge_count());
    assert!(g.subgraph(&[]).is_empty());
}

#[test]
fn remaining_and_critical_path() {
    let g = diamond();
    let w = |n: NodeId| match g.address(n).name.as_str() {
        "a" => 1.0,
        "b" => 5.0,
        "c" => 2.0,
        "d" => 1.0,
        _ => 3.0,
    };
    let r = g.remaining_path(&w);
    assert_eq!(r[id(&g, "d").index()], 1.0);
    assert_eq!(r[id(&g, "b").index()], 6.0);
    assert_eq!(r[id(&g, "c").index()], 3.0);
    assert_eq!(r[id(&g, "e").index()], 3.0);
    assert_eq!(r[id(&g, "a").index()], 7.0);
    let (total, path) = g.critical_path(&w);
    assert_eq!(total, 7.0);
    assert_eq!(names(&g, &path), ["a", "b", "d"]);
    assert_eq!(graph(&[], &[]).unwrap().critical_path(&w), (0.0, vec![]));
    // Zero weights: ties go to the lowest id, still a real chain.
    let (total, path) = g.critical_path(&|_| 0.0);
    assert_eq!(total, 0.0);
    assert_eq!(names(&g, &path), ["a", "c", "d"]);
}

fn styled(g: &DepGraph) -> impl Fn(NodeId) -> NodeStyle + '_ {
    move |n| match g.address(n).name.as_str() {
        "a" => NodeStyle {
            note: Some("create \"x\"".into()),
            color: Some("palegreen"),
        },
        "b" => NodeStyle {
            note: Some("reuse".into()),
            color: Some("gold"),
        },
        "d" => NodeStyle {
            note: None,
            color: Some("palegreen"),
        },
        _ => NodeStyle::default(),
    }
}

#[test]
fn renders_dot() {
    let g = graph(&["d", "b", "a"], &[("d", "b"), ("b", "a"), ("d", "a")]).unwrap();
    let dot = g.render(Format::Dot, &styled(&g));
    let expected = r#"digraph cairn {
    rankdir=LR;
    node [shape=box];
    "sim_x.a" [label="sim_x.a\ncreate \"x\"", style=filled, fillcolor="palegreen"];
    "sim_x.b" [label="sim_x.b\nreuse", style=filled, fillcolor="gold"];
    "sim_x.d" [label="sim_x.d", style=filled, fillcolor="palegreen"];
    "sim_x.a" -> "sim_x.b";
    "sim_x.a" -> "sim_x.d";
    "sim_x.b" -> "sim_x.d";
}
"#;
    assert_eq!(dot, expected);
}

#[test]
fn renders_mermaid() {
    let g = graph(&["d", "b", "a"], &[("d", "b"), ("b", "a"), ("d", "a")]).unwrap();
    let text = g.render(Format::Mermaid, &styled(&g));
    let expected = r#"flowchart LR
    sim_x_a["sim_x.a<br/>create #quot;x#quot;"]
    sim_x_b["sim_x.b<br/>reuse"]
    sim_x_d["sim_x.d"]
    sim_x_a --> sim_x_b
    sim_x_a --> sim_x_d
    sim_x_b --> sim_x_d
    classDef fill_gold fill:gold,color:#000
    class sim_x_b fill_gold
    classDef fill_palegreen fill:palegreen,color:#000
    class sim_x_a,sim_x_d fill_palegreen
"#;
    assert_eq!(text, expected);
}

#[test]
fn mermaid_ids_stay_unique() {
    let g = DepGraph::new(
        vec![Address::new("sim_a", "b_c"), Address::new("sim_a_b", "c")],
        [],
    )
    .unwrap();
    let text = g.render(Format::Mermaid, &|_| NodeStyle::default());
    assert!(text.contains("    sim_a_b_c[\"sim_a.b_c\"]\n"), "{text}");
    assert!(text.contains("    sim_a_b_c__2[\"sim_a_b.c\"]\n"), "{text}");
}

#[test]
fn renders_json() {
    let g = graph(&["d", "b", "a"], &[("d", "b"), ("b", "a"), ("d", "a")]).unwrap();
    let text = g.render(Format::Json, &styled(&g));
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let expected = serde_json::json!({
        "nodes": [
            {"address": "sim_x.a", "note": "create \"x\""},
            {"address": "sim_x.b", "note": "reuse"},
            {"address": "sim_x.d"},
        ],
        "edges": [
            {"from": "sim_x.a", "to": "sim_x.b"},
            {"from": "sim_x.a", "to": "sim_x.d"},
            {"from": "sim_x.b", "to": "sim_x.d"},
        ],
    });
    assert_eq!(value, expected);
    assert!(text.ends_with("}\n"));
}

#[test]
fn large_graph_builds_quickly() {
    // 100,000 nodes and ~300,000 edges, each node depending on up to three
    // earlier ones: a smoke test of the linear-time build.
    let n = 100_000u64;
    let nodes: Vec<Address> = (0..n).map(|i| a(&format!("n{i}"))).collect();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut edges = Vec::with_capacity(300_000);
    for i in 1..n {
        for _ in 0..3 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let j = x % i;
            edges.push((nodes[i as usize].clone(), nodes[j as usize].clone()));
        }
    }
    let start = std::time::Instant::now();
    let g = DepGraph::new(nodes, edges).unwrap();
    let built = start.elapsed();
    assert_eq!(g.len(), 100_000);
    assert!(g.edge_count() > 290_000);
    let steps = g.steps();
    assert_eq!(steps.iter().map(Vec::len).sum::<usize>(), g.len());
    // The first half is closed under dependencies, as in a rollback.
    let half: Vec<NodeId> = g.nodes().filter(|n| n.0 < 50_000).collect();
    let s = g.subgraph(&half);
    assert_eq!(s.len(), 50_000);
    let kept_edges: usize = half.iter().map(|n| g.dependencies(*n).len()).sum();
    assert_eq!(s.edge_count(), kept_edges);
    // Generous even for a debug build on a busy machine.
    assert!(built.as_secs() < 20, "build took {built:?}");
}

mod order {
    use super::*;
    use proptest::prelude::*;

    /// A DAG over `n` nodes listed in a shuffled order: each edge goes from
    /// a node to one of lower rank, ranks being a random permutation of
    /// the listing.
    fn dag() -> impl Strategy<Value = (Vec<usize>, Vec<(usize, usize)>)> {
        (1usize..40).prop_flat_map(|n| {
            let ranks = Just((0..n).collect::<Vec<_>>()).prop_shuffle();
            let edges = proptest::collection::vec((0..n, 0..n), 0..(3 * n));
            (ranks, edges)
        })
    }

    proptest! {
        /// Every node once, each after all of its dependencies; and the
        /// listing itself when every dependency is listed first.
        #[test]
        fn the_order_is_topological_and_keeps_a_topological_listing((ranks, pairs) in dag()) {
            let n = ranks.len();
            let name = |i: usize| format!("n{i}");
            // Dependent → dependency, from higher rank to lower.
            let edges: Vec<(String, String)> = pairs
                .iter()
                .filter(|(x, y)| ranks[*x] != ranks[*y])
                .map(|&(x, y)| if ranks[x] > ranks[y] { (name(x), name(y)) } else { (name(y), name(x)) })
                .collect();
            let g = DepGraph::new(
                (0..n).map(|i| a(&name(i))).collect(),
                edges.iter().map(|(x, y)| (a(x), a(y))),
            )
            .unwrap();
            let topo = g.topological();
            prop_assert_eq!(topo.len(), n);
            let mut place = vec![usize::MAX; n];
            for (at, node) in topo.iter().enumerate() {
                prop_assert_eq!(place[node.index()], usize::MAX, "listed twice");
                place[node.index()] = at;
            }
            for node in g.nodes() {
                for dep in g.dependencies(node) {
                    prop_assert!(place[dep.index()] < place[node.index()]);
                }
            }
            // Listed in rank order, every dependency comes first: kept as listed.
            let mut by_rank: Vec<usize> = (0..n).collect();
            by_rank.sort_by_key(|&i| ranks[i]);
            let listed = DepGraph::new(
                by_rank.iter().map(|&i| a(&name(i))).collect(),
                edges.iter().map(|(x, y)| (a(x), a(y))),
            )
            .unwrap();
            let ids: Vec<u32> = listed.topological().iter().map(|n| n.0).collect();
            prop_assert_eq!(ids, (0..n as u32).collect::<Vec<_>>());
        }
    }
}
