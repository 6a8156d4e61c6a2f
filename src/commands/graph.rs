//! `cairn graph`: the dependency graph as DOT, mermaid or JSON, optionally
//! coloured by the planned action.

use std::collections::HashMap;

use super::plan::{Goal, make_plan};
use super::{EXIT_OK, Failure, load_args};
use crate::cli::GraphArgs;
use crate::graph::NodeStyle;
use crate::model::Address;
use crate::plan::ActionKind;
use crate::ui::Printer;

/// The fill colour of a planned action.
fn color(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::Create => "palegreen",
        ActionKind::CreateUnique => "lightblue",
        ActionKind::Reuse => "lightgrey",
        ActionKind::Adopt => "gold",
        ActionKind::Update => "khaki",
        ActionKind::Replace => "orange",
        ActionKind::Delete => "salmon",
        ActionKind::Skip => "grey",
    }
}

pub(crate) async fn run(printer: &Printer, args: &GraphArgs) -> Result<u8, Failure> {
    let loaded = load_args(&args.stack)?;
    let mut actions: HashMap<Address, ActionKind> = HashMap::new();
    if args.plan {
        let stack = &loaded.stack;
        let backend = super::backend(&stack.state, &stack.dir, &stack.name, &stack.env).await?;
        let planned = make_plan(&loaded, Goal::Converge, backend).await?;
        actions = planned
            .plan
            .actions()
            .map(|a| (a.address.clone(), a.action))
            .collect();
    }
    let graph = &loaded.graph;
    let style = |node| match actions.get(graph.address(node)) {
        Some(kind) => NodeStyle {
            note: Some(kind.verb().to_string()),
            color: Some(color(*kind)),
        },
        None if args.plan => NodeStyle {
            note: Some("no change".into()),
            color: None,
        },
        None => NodeStyle::default(),
    };
    printer.out(&graph.render(args.format, &style));
    Ok(EXIT_OK)
}
