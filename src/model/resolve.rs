//! stub: being written
use std::collections::BTreeMap;

use super::Stack;
use crate::diagnostic::Diagnostics;
use crate::graph::DepGraph;
use crate::stack::RawStack;

/// Inputs to resolution besides the stack file.
#[derive(Debug, Clone, Default)]
pub struct ResolveOptions {
    /// `--env NAME`; `None` is the env `default`.
    pub env: Option<String>,
    /// `--var k=v`, in command-line order (later wins).
    pub vars: Vec<(String, String)>,
    /// The process environment, for `${env.NAME}`.
    pub environment: BTreeMap<String, String>,
}

/// Resolves a parsed stack: every problem found is reported, not only the first.
pub fn resolve(_raw: &RawStack, _opts: &ResolveOptions) -> Result<Stack, Diagnostics> {
    todo!()
}

/// The stack's dependency graph; a cycle is a diagnostic showing its path.
pub fn dependency_graph(_stack: &Stack) -> Result<DepGraph, Diagnostics> {
    todo!()
}
