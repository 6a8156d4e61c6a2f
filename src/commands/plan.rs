//! `cairn plan`: the ordered diff between the stack and the live world.

use std::sync::Arc;

use super::{EXIT_CHANGES, EXIT_OK, Failure, Loaded, load_args};
use crate::cli::PlanArgs;
use crate::plan::{self, DiffInput, Plan, render};
use crate::provider::{self, ProviderContext, Providers};
use crate::recover::{Recovered, recover};
use crate::refresh::{Listings, lookups, prefetch, read_live_with};
use crate::state::{Backend, JournalEntry, State};
use crate::ui::Printer;

/// Whether a plan makes the world match the stack, or removes the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Goal {
    Converge,
    Destroy,
}

/// A plan with what it was made from.
pub(crate) struct Planned {
    pub plan: Plan,
    pub providers: Providers,
    pub backend: Arc<dyn Backend>,
    pub state: State,
    pub recovered: Vec<Recovered>,
    /// Journal records recovery produced (written only by commands holding the lock).
    pub recovery_entries: Vec<JournalEntry>,
    pub replayed: usize,
}

/// Builds providers, loads state (resolving interrupted intents in memory),
/// reads the world and diffs.
pub(crate) async fn make_plan(
    loaded: &Loaded,
    goal: Goal,
    backend: Arc<dyn Backend>,
) -> Result<Planned, Failure> {
    let stack = &loaded.stack;
    let ctx = ProviderContext {
        stack: stack.name.clone(),
        env: stack.env.clone(),
        dir: stack.dir.clone(),
    };
    let timer = crate::ui::PhaseTimer::from_env();
    // The stack's providers first, so that the lists of its types run
    // while the state loads: a plan waits for the longer of the two, not
    // for their sum.
    let stack_types = stack.resources.iter().map(|r| r.address.type_name.as_str());
    let mut providers = super::providers(&stack.providers, stack_types, &ctx).await?;
    let started = match goal {
        Goal::Converge => prefetch(stack, &providers),
        Goal::Destroy => Listings::default(),
    };
    let loaded_state = backend.load().await?;
    backend.prepare();
    timer.mark("load state");
    let mut state = loaded_state.state;
    // Objects the stack no longer names still need their provider.
    let state_types = state.resources.keys().map(|a| a.type_name.as_str());
    provider::configure_more(&mut providers, &stack.providers, state_types, &ctx)
        .await
        .map_err(super::provider_failure)?;
    let (recovery_entries, recovered) = recover(&loaded_state.pending, &state, &providers)
        .await
        .map_err(|e| Failure::Message(format!("recovering an interrupted run: {e}")))?;
    for entry in &recovery_entries {
        state.apply_entry(entry);
    }
    timer.mark("recover");
    let wanted = lookups((goal == Goal::Converge).then_some(stack), &state);
    let live = read_live_with(&wanted, &providers, started)
        .await
        .map_err(|e| Failure::Message(e.to_string()))?;
    timer.mark("read live");
    let mut plan = match goal {
        Goal::Converge => plan::diff(&DiffInput {
            stack,
            graph: &loaded.graph,
            state: &state,
            live: &live,
        })?,
        Goal::Destroy => plan::destroy(stack, &state, &live)?,
    };
    timer.mark("diff");
    plan.lookups = wanted;
    Ok(Planned {
        plan,
        providers,
        backend,
        state,
        recovered,
        recovery_entries,
        replayed: loaded_state.replayed,
    })
}

/// Prints what recovery found.
pub(crate) fn print_recovery(printer: &Printer, planned: &Planned) {
    if planned.replayed > 0 {
        printer.err(&format!(
            "note: resumed after an interrupted run: {} journal record{} replayed",
            planned.replayed,
            if planned.replayed == 1 { "" } else { "s" }
        ));
    }
    for r in &planned.recovered {
        printer.err(&format!(
            "note: recovered {} ({} in flight): {}",
            r.address, r.operation, r.outcome
        ));
    }
}

/// Appends the plan summary to `$GITHUB_STEP_SUMMARY` when in GitHub Actions.
pub(crate) fn github_summary(plan: &Plan) {
    if std::env::var("GITHUB_ACTIONS").as_deref() != Ok("true") {
        return;
    }
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") else {
        return;
    };
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(render::markdown(plan).as_bytes());
    }
}

pub(crate) async fn run(printer: &Printer, args: &PlanArgs) -> Result<u8, Failure> {
    let loaded = load_args(&args.stack)?;
    let stack = &loaded.stack;
    let backend = super::backend(&stack.state, &stack.dir, &stack.name, &stack.env).await?;
    let goal = if args.destroy {
        Goal::Destroy
    } else {
        Goal::Converge
    };
    let planned = make_plan(&loaded, goal, backend).await?;
    print_recovery(printer, &planned);
    let plan = &planned.plan;
    let timer = crate::ui::PhaseTimer::from_env();
    if args.stack.json {
        printer.out(&serde_json::to_string_pretty(&render::json(plan)).unwrap_or_default());
    } else {
        printer.out(&render::human(plan));
    }
    timer.mark("render");
    github_summary(plan);
    if let Some(out) = &args.out {
        let text = serde_json::to_string_pretty(plan)
            .map_err(|e| Failure::Message(format!("could not serialise the plan: {e}")))?;
        crate::state::write_atomic(out, text.as_bytes()).map_err(|e| {
            Failure::Message(format!("could not save the plan to {}: {e}", out.display()))
        })?;
        if !args.stack.json {
            printer.err(&format!(
                "Saved the plan to {}: apply it with `cairn apply {}`.",
                out.display(),
                out.display()
            ));
        }
    }
    let code = if args.detailed_exitcode && plan.has_changes() {
        EXIT_CHANGES
    } else {
        EXIT_OK
    };
    super::dispose((planned.plan, planned.state, planned.providers, loaded));
    Ok(code)
}
