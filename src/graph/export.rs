//! Rendering a [`DepGraph`] as DOT, mermaid or JSON, for `cairn graph`.
//!
//! All three formats draw edges in execution order: **from a dependency to
//! its dependent** (the arrow points at what runs later). Output is
//! deterministic: nodes sorted by address, edges by (from, to) address.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use super::{DepGraph, NodeId};

/// An output format of [`DepGraph::render`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Graphviz DOT (`dot -Tsvg`), left to right.
    Dot,
    /// A mermaid `flowchart LR`.
    Mermaid,
    /// `{"nodes":[{"address","note"?}],"edges":[{"from","to"}]}`, edges
    /// from dependency to dependent.
    Json,
}

/// How one node is drawn: an extra label line (e.g. the planned action) and
/// a fill colour name (`palegreen`, `gold`…).
#[derive(Debug, Clone, Default)]
pub struct NodeStyle {
    pub note: Option<String>,
    pub color: Option<&'static str>,
}

/// The graph in drawing order: nodes sorted by address, with their style,
/// and edges (dependency, dependent) as positions in that order, sorted.
struct Sorted {
    nodes: Vec<(String, NodeStyle)>,
    edges: Vec<(usize, usize)>,
}

impl Sorted {
    fn new(graph: &DepGraph, style: &dyn Fn(NodeId) -> NodeStyle) -> Sorted {
        let mut order: Vec<NodeId> = graph.nodes().collect();
        order.sort_unstable_by(|a, b| graph.address(*a).cmp(graph.address(*b)));
        let mut position = vec![0; graph.len()];
        for (i, node) in order.iter().enumerate() {
            position[node.index()] = i;
        }
        let nodes = order
            .iter()
            .map(|&n| (graph.address(n).to_string(), style(n)))
            .collect();
        let mut edges: Vec<(usize, usize)> = Vec::with_capacity(graph.edge_count());
        for node in graph.nodes() {
            for dependency in graph.dependencies(node) {
                edges.push((position[dependency.index()], position[node.index()]));
            }
        }
        edges.sort_unstable();
        Sorted { nodes, edges }
    }
}

impl DepGraph {
    /// Renders the graph; `style` gives each node's decoration. Edges go
    /// from a dependency to its dependent in every format.
    pub fn render(&self, format: Format, style: &dyn Fn(NodeId) -> NodeStyle) -> String {
        let sorted = Sorted::new(self, style);
        match format {
            Format::Dot => dot(&sorted),
            Format::Mermaid => mermaid(&sorted),
            Format::Json => json(&sorted),
        }
    }
}

/// A DOT quoted string: `"` and `\` escaped, newlines as `\n`.
fn dot_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn dot(g: &Sorted) -> String {
    let mut out = String::from("digraph cairn {\n    rankdir=LR;\n    node [shape=box];\n");
    for (address, style) in &g.nodes {
        let label = match &style.note {
            Some(note) => format!("{address}\n{note}"),
            None => address.clone(),
        };
        let _ = write!(
            out,
            "    {} [label={}",
            dot_quote(address),
            dot_quote(&label)
        );
        if let Some(color) = style.color {
            let _ = write!(out, ", style=filled, fillcolor={}", dot_quote(color));
        }
        out.push_str("];\n");
    }
    for &(from, to) in &g.edges {
        let _ = writeln!(
            out,
            "    {} -> {};",
            dot_quote(&g.nodes[from].0),
            dot_quote(&g.nodes[to].0)
        );
    }
    out.push_str("}\n");
    out
}

/// A mermaid node id: letters, digits and `_` only.
fn mermaid_id(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Text for a quoted mermaid label, with entity codes for what would break it.
fn mermaid_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' => out.push_str("#35;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '\n' => out.push_str("<br/>"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

fn mermaid(g: &Sorted) -> String {
    // Sanitising can merge two addresses (`a_b.c`, `a.b_c`): number repeats.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let ids: Vec<String> = g
        .nodes
        .iter()
        .map(|(address, _)| {
            let base = mermaid_id(address);
            let count = seen.entry(base.clone()).or_insert(0);
            *count += 1;
            if *count == 1 {
                base
            } else {
                format!("{base}__{count}")
            }
        })
        .collect();
    let mut out = String::from("flowchart LR\n");
    let mut classes: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for ((address, style), id) in g.nodes.iter().zip(&ids) {
        let mut label = mermaid_text(address);
        if let Some(note) = &style.note {
            label.push_str("<br/>");
            label.push_str(&mermaid_text(note));
        }
        let _ = writeln!(out, "    {id}[\"{label}\"]");
        if let Some(color) = style.color {
            classes.entry(color).or_default().push(id);
        }
    }
    for &(from, to) in &g.edges {
        let _ = writeln!(out, "    {} --> {}", ids[from], ids[to]);
    }
    for (color, members) in classes {
        let class = format!("fill_{}", mermaid_id(color));
        let _ = writeln!(
            out,
            "    classDef {class} fill:{},color:#000",
            mermaid_id(color)
        );
        let _ = writeln!(out, "    class {} {class}", members.join(","));
    }
    out
}

#[derive(Serialize)]
struct JsonGraph<'a> {
    nodes: Vec<JsonNode<'a>>,
    edges: Vec<JsonEdge<'a>>,
}

#[derive(Serialize)]
struct JsonNode<'a> {
    address: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'a str>,
}

/// `from` is the dependency, `to` the dependent.
#[derive(Serialize)]
struct JsonEdge<'a> {
    from: &'a str,
    to: &'a str,
}

fn json(g: &Sorted) -> String {
    let doc = JsonGraph {
        nodes: g
            .nodes
            .iter()
            .map(|(address, style)| JsonNode {
                address,
                note: style.note.as_deref(),
            })
            .collect(),
        edges: g
            .edges
            .iter()
            .map(|&(from, to)| JsonEdge {
                from: &g.nodes[from].0,
                to: &g.nodes[to].0,
            })
            .collect(),
    };
    // Serialising plain strings into a String cannot fail.
    let mut out = serde_json::to_string_pretty(&doc).unwrap_or_default();
    out.push('\n');
    out
}
