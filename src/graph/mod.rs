//! The dependency graph: resources as nodes, "depends on" as edges.
//!
//! [`DepGraph`] is acyclic by construction: [`DepGraph::new`] refuses a
//! cycle and returns its path. Everything downstream (planning order, the
//! executor, rollback, destroy) takes a `DepGraph` and so never sees a
//! cycle. petgraph is used inside this module only; callers see [`NodeId`].

mod export;

use crate::model::Address;

pub use export::{Format, NodeStyle};

/// A node of a [`DepGraph`]: an index, stable for the graph's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

impl NodeId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A dependency cycle: `path[0]` depends on `path[1]` … depends on `path[0]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    pub path: Vec<Address>,
}

/// An acyclic dependency graph over addresses.
#[derive(Debug, Clone)]
pub struct DepGraph {
    addresses: Vec<Address>,
    /// For each node, the nodes it depends on.
    dependencies: Vec<Vec<NodeId>>,
    /// For each node, the nodes that depend on it.
    dependents: Vec<Vec<NodeId>>,
    /// Dependencies before dependents.
    topo: Vec<NodeId>,
}

impl DepGraph {
    /// Builds the graph. `edges` are (dependent, dependency) pairs; edges
    /// naming an address not in `nodes` are ignored (validation reports
    /// those). Duplicate edges are merged. Fails with the first cycle found.
    pub fn new(
        _nodes: Vec<Address>,
        _edges: impl IntoIterator<Item = (Address, Address)>,
    ) -> Result<DepGraph, Cycle> {
        todo!("graph helper")
    }

    pub fn len(&self) -> usize {
        self.addresses.len()
    }

    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty()
    }

    pub fn nodes(&self) -> impl ExactSizeIterator<Item = NodeId> + '_ {
        (0..self.addresses.len() as u32).map(NodeId)
    }

    pub fn address(&self, node: NodeId) -> &Address {
        &self.addresses[node.index()]
    }

    pub fn node(&self, _address: &Address) -> Option<NodeId> {
        todo!("graph helper")
    }

    pub fn dependencies(&self, node: NodeId) -> &[NodeId] {
        &self.dependencies[node.index()]
    }

    pub fn dependents(&self, node: NodeId) -> &[NodeId] {
        &self.dependents[node.index()]
    }

    /// Every node, dependencies before dependents.
    pub fn topological(&self) -> &[NodeId] {
        &self.topo
    }

    /// Nodes grouped in steps: a node's step is one more than the latest
    /// step of its dependencies (roots are step 0). Each step's nodes can run
    /// together once the previous steps are done.
    pub fn steps(&self) -> Vec<Vec<NodeId>> {
        todo!("graph helper")
    }

    /// The graph with every edge turned around (for destroy and rollback).
    pub fn reversed(&self) -> DepGraph {
        todo!("graph helper")
    }

    /// The subgraph on `keep` (in any order), with an edge between two kept
    /// nodes wherever the full graph has a path between them through
    /// dropped nodes. Node ids of the result are its own.
    pub fn subgraph(&self, _keep: &[NodeId]) -> DepGraph {
        todo!("graph helper")
    }

    /// For each node, the heaviest path from it to a node with no
    /// dependents, counting its own weight: the executor's priority.
    pub fn remaining_path(&self, _weight: &dyn Fn(NodeId) -> f64) -> Vec<f64> {
        todo!("graph helper")
    }

    /// The heaviest dependency chain: its total weight and its nodes, root first.
    pub fn critical_path(&self, _weight: &dyn Fn(NodeId) -> f64) -> (f64, Vec<NodeId>) {
        todo!("graph helper")
    }
}
