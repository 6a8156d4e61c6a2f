//! Finding a cycle to report once Kahn's algorithm has shown there is one.
//!
//! petgraph's Tarjan strongly-connected-components pass finds the cyclic
//! components; a breadth-first search inside one of them then gives the
//! shortest cycle through its smallest address, so the report is short and
//! the same on every run.

use std::collections::VecDeque;

use petgraph::graph::{DiGraph, NodeIndex};

use super::adjacency::Adjacency;
use super::{Cycle, NodeId};
use crate::model::Address;

/// A cycle of a graph given as "depends on" lists without self-edges. The
/// graph must have a cycle; if it had none, the path would be empty.
pub(super) fn find(addresses: &[Address], dependencies: &Adjacency) -> Cycle {
    let mut graph: DiGraph<(), (), u32> =
        DiGraph::with_capacity(addresses.len(), dependencies.edge_count());
    for _ in addresses {
        graph.add_node(());
    }
    for from in 0..addresses.len() {
        for to in dependencies.of(NodeId(from as u32)) {
            graph.add_edge(NodeIndex::new(from), NodeIndex::new(to.index()), ());
        }
    }
    // The smallest address of each cyclic component; the component whose
    // smallest address is smallest overall is reported.
    let components = petgraph::algo::tarjan_scc(&graph);
    let start = components
        .iter()
        .filter(|scc| scc.len() > 1)
        .filter_map(|scc| {
            let smallest = scc
                .iter()
                .map(|n| n.index())
                .min_by(|&x, &y| addresses[x].cmp(&addresses[y]))?;
            Some((scc, smallest))
        })
        .min_by(|(_, x), (_, y)| addresses[*x].cmp(&addresses[*y]));
    let Some((component, start)) = start else {
        return Cycle { path: Vec::new() };
    };
    let mut inside = vec![false; addresses.len()];
    for n in component {
        inside[n.index()] = true;
    }
    // Breadth-first from `start` along "depends on" edges within the
    // component, until a node that depends on `start` closes the cycle.
    const UNSEEN: usize = usize::MAX;
    let mut parent = vec![UNSEEN; addresses.len()];
    parent[start] = start;
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        if dependencies
            .of(NodeId(node as u32))
            .iter()
            .any(|d| d.index() == start)
        {
            let mut path = vec![node];
            let mut current = node;
            while current != start {
                current = parent[current];
                path.push(current);
            }
            path.reverse();
            return Cycle {
                path: path.into_iter().map(|n| addresses[n].clone()).collect(),
            };
        }
        for next in dependencies.of(NodeId(node as u32)) {
            let next = next.index();
            if inside[next] && parent[next] == UNSEEN {
                parent[next] = node;
                queue.push_back(next);
            }
        }
    }
    Cycle { path: Vec::new() }
}
