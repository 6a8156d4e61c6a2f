//! Compressed adjacency lists: one flat array of neighbours and one array
//! of offsets, so a 300,000-edge graph is two allocations, not one per node.

use super::NodeId;

/// For each node, a sorted list of distinct neighbours.
#[derive(Debug, Clone, Default)]
pub(super) struct Adjacency {
    /// `targets[start[n]..start[n + 1]]` are node `n`'s neighbours.
    start: Vec<u32>,
    targets: Vec<NodeId>,
}

impl Adjacency {
    /// From (node, neighbour) pairs over `nodes` nodes, any order,
    /// duplicates merged. Every id must be below `nodes`.
    pub(super) fn from_pairs(nodes: usize, pairs: &[(NodeId, NodeId)]) -> Adjacency {
        let mut start = vec![0u32; nodes + 1];
        for (from, _) in pairs {
            start[from.index() + 1] += 1;
        }
        for i in 0..nodes {
            start[i + 1] += start[i];
        }
        let mut fill = start.clone();
        let mut targets = vec![NodeId(0); pairs.len()];
        for &(from, to) in pairs {
            targets[fill[from.index()] as usize] = to;
            fill[from.index()] += 1;
        }
        // Sort each list and squeeze out duplicates, moving lists left.
        let mut write = 0usize;
        for n in 0..nodes {
            let (begin, end) = (start[n] as usize, start[n + 1] as usize);
            targets[begin..end].sort_unstable();
            start[n] = write as u32;
            let mut last = None;
            for read in begin..end {
                let target = targets[read];
                if last != Some(target) {
                    targets[write] = target;
                    write += 1;
                    last = Some(target);
                }
            }
        }
        start[nodes] = write as u32;
        targets.truncate(write);
        Adjacency { start, targets }
    }

    /// The lists turned around: `m` is a neighbour of `n` in the result
    /// iff `n` is a neighbour of `m` here. Sorted by construction.
    pub(super) fn inverted(&self) -> Adjacency {
        let nodes = self.len();
        let mut start = vec![0u32; nodes + 1];
        for to in &self.targets {
            start[to.index() + 1] += 1;
        }
        for i in 0..nodes {
            start[i + 1] += start[i];
        }
        let mut fill = start.clone();
        let mut targets = vec![NodeId(0); self.targets.len()];
        // Visiting sources in id order leaves every list sorted.
        for from in 0..nodes {
            for to in self.of(NodeId(from as u32)) {
                targets[fill[to.index()] as usize] = NodeId(from as u32);
                fill[to.index()] += 1;
            }
        }
        Adjacency { start, targets }
    }

    /// The number of nodes.
    pub(super) fn len(&self) -> usize {
        self.start.len().saturating_sub(1)
    }

    /// The number of (node, neighbour) pairs.
    pub(super) fn edge_count(&self) -> usize {
        self.targets.len()
    }

    /// Node `n`'s neighbours.
    pub(super) fn of(&self, n: NodeId) -> &[NodeId] {
        &self.targets[self.start[n.index()] as usize..self.start[n.index() + 1] as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_sorted_distinct_lists_and_inverts() {
        let p = |a: u32, b: u32| (NodeId(a), NodeId(b));
        let adj = Adjacency::from_pairs(4, &[p(2, 1), p(0, 3), p(2, 0), p(2, 1), p(0, 1)]);
        assert_eq!(adj.of(NodeId(0)), [NodeId(1), NodeId(3)]);
        assert!(adj.of(NodeId(1)).is_empty());
        assert_eq!(adj.of(NodeId(2)), [NodeId(0), NodeId(1)]);
        assert!(adj.of(NodeId(3)).is_empty());
        assert_eq!(adj.edge_count(), 4);
        let inv = adj.inverted();
        assert_eq!(inv.of(NodeId(0)), [NodeId(2)]);
        assert_eq!(inv.of(NodeId(1)), [NodeId(0), NodeId(2)]);
        assert_eq!(inv.of(NodeId(3)), [NodeId(0)]);
        assert_eq!(Adjacency::from_pairs(0, &[]).len(), 0);
    }
}
