//! Rendering a [`DepGraph`] as DOT, mermaid or JSON.

use super::{DepGraph, NodeId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Dot,
    Mermaid,
    Json,
}

/// How one node is drawn: an extra label line (e.g. the planned action) and
/// a fill colour name (`palegreen`, `gold`…).
#[derive(Debug, Clone, Default)]
pub struct NodeStyle {
    pub note: Option<String>,
    pub color: Option<&'static str>,
}

impl DepGraph {
    /// Renders the graph; `style` gives each node's decoration.
    pub fn render(&self, _format: Format, _style: &dyn Fn(NodeId) -> NodeStyle) -> String {
        todo!("graph helper")
    }
}
