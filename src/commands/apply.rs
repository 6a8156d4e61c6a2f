//! `cairn apply` and `cairn destroy`: plan (or load a saved plan), ask,
//! lock state, execute, report.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::plan::{Goal, Planned, github_summary, make_plan, print_recovery};
use super::{EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, Failure, load_stack};
use crate::apply::{ApplyOptions, ApplyReport, Ending, OnFailure, Order, RetryPolicy, Stop, apply};
use crate::cli::{ApplyArgs, DestroyArgs, RunArgs, Scheduler};
use crate::model::ProviderConfig;
use crate::plan::{Plan, live_digest, render};
use crate::provider::ProviderContext;
use crate::refresh::read_live;
use crate::state::{Backend, LockInfo};
use crate::ui::{Printer, Progress};

pub(crate) async fn run(printer: &Arc<Printer>, args: &ApplyArgs) -> Result<u8, Failure> {
    if is_saved_plan(&args.target) {
        if args.env.is_some() || !args.vars.is_empty() || args.state.is_set() {
            return Err(Failure::Message(
                "--env, --var and --state-* apply to stack files, not to saved plans (a plan keeps its state location)".into(),
            ));
        }
        return apply_saved(printer, args).await;
    }
    let loaded = load_stack(&args.target, args.env.as_deref(), &args.vars, &args.state)?;
    let code = converge(printer, &loaded, Goal::Converge, &args.run, args.json).await;
    super::dispose(loaded);
    code
}

pub(crate) async fn destroy(printer: &Arc<Printer>, args: &DestroyArgs) -> Result<u8, Failure> {
    let loaded = super::load_args(&args.stack)?;
    let code = converge(printer, &loaded, Goal::Destroy, &args.run, args.stack.json).await;
    super::dispose(loaded);
    code
}

/// A saved plan is JSON with a `basis`; a stack file is TOML.
fn is_saved_plan(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    text.trim_start().starts_with('{') && text.contains("\"basis\"")
}

fn options(run: &RunArgs) -> ApplyOptions {
    ApplyOptions {
        parallelism: Some(run.parallelism as usize),
        order: match run.scheduler {
            Scheduler::CriticalPath => Order::CriticalPath,
            Scheduler::Baseline => Order::Arbitrary { seed: 7 },
        },
        on_failure: if run.no_rollback {
            OnFailure::Keep
        } else {
            OnFailure::Rollback
        },
        retry: RetryPolicy::default(),
        retry_timeout: run
            .retry_timeout
            .map(|s| Duration::from_secs_f64(s.max(0.0))),
    }
}

async fn take_lock(
    backend: &Arc<dyn Backend>,
    operation: &str,
    run: &RunArgs,
) -> Result<(), Failure> {
    let wait = Duration::from_secs_f64(run.lock.lock_timeout.max(0.0));
    backend.lock(&LockInfo::new(operation), wait).await.map_err(|e| {
        Failure::Message(format!("{e}\n  (state: {}; if that process is gone, run `cairn force-unlock` with the lock id)", backend.location()))
    })
}

/// Plan under the lock, show it, ask, apply.
async fn converge(
    printer: &Arc<Printer>,
    loaded: &super::Loaded,
    goal: Goal,
    run: &RunArgs,
    json: bool,
) -> Result<u8, Failure> {
    let stack = &loaded.stack;
    let backend = super::backend(&stack.state, &stack.dir, &stack.name, &stack.env).await?;
    let operation = if goal == Goal::Destroy {
        "destroy"
    } else {
        "apply"
    };
    take_lock(&backend, operation, run).await?;
    let result = async {
        let planned = make_plan(loaded, goal, backend.clone()).await?;
        print_recovery(printer, &planned);
        execute(printer, planned, run, json, true).await
    }
    .await;
    let unlocked = backend.unlock().await;
    let code = result?;
    unlocked?;
    Ok(code)
}

/// Applies a plan saved by `cairn plan --out`, if nothing changed since.
async fn apply_saved(printer: &Arc<Printer>, args: &ApplyArgs) -> Result<u8, Failure> {
    let text = std::fs::read_to_string(&args.target)
        .map_err(|e| Failure::Message(format!("could not read {}: {e}", args.target.display())))?;
    let plan: Plan = serde_json::from_str(&text).map_err(|e| {
        Failure::Message(format!(
            "{} is not a cairn plan: {e}",
            args.target.display()
        ))
    })?;
    if plan.format_version != crate::plan::PLAN_FORMAT_VERSION {
        return Err(Failure::Message(format!(
            "the plan has format version {}; this cairn reads version {}",
            plan.format_version,
            crate::plan::PLAN_FORMAT_VERSION
        )));
    }
    let backend = super::backend(&plan.state, &plan.dir, &plan.stack, &plan.env).await?;
    take_lock(&backend, "apply", &args.run).await?;
    let result = async {
        let ctx = ProviderContext {
            stack: plan.stack.clone(),
            env: plan.env.clone(),
            dir: plan.dir.clone(),
        };
        let configs = plan
            .providers
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    ProviderConfig {
                        name: k.clone(),
                        settings: v.clone(),
                        span: 0..0,
                    },
                )
            })
            .collect();
        let types: Vec<String> = plan
            .lookups
            .iter()
            .map(|l| l.address.type_name.clone())
            .collect();
        let providers = super::providers(&configs, types.iter().map(String::as_str), &ctx).await?;
        let loaded_state = backend.load().await?;
        let stale = |why: String| {
            Failure::Message(format!(
                "the saved plan is stale: {why}. Run `cairn plan` again and apply the new plan."
            ))
        };
        let state = loaded_state.state;
        let fresh = state.serial == 0 && plan.basis.serial == 0;
        if !fresh && (state.lineage != plan.basis.lineage || state.serial != plan.basis.serial) {
            return Err(stale(format!(
                "state changed since it was made (serial {} then, {} now)",
                plan.basis.serial, state.serial
            )));
        }
        if !loaded_state.pending.is_empty() || loaded_state.replayed > 0 {
            return Err(stale("state holds records of an interrupted run".into()));
        }
        let live = read_live(&plan.lookups, &providers)
            .await
            .map_err(|e| Failure::Message(e.to_string()))?;
        if live_digest(&live) != plan.basis.live_digest {
            return Err(stale("live objects changed since it was made".into()));
        }
        let planned = Planned {
            plan: plan.clone(),
            providers,
            backend: backend.clone(),
            state,
            recovered: Vec::new(),
            recovery_entries: Vec::new(),
            replayed: 0,
        };
        execute(printer, planned, &args.run, args.json, false).await
    }
    .await;
    let unlocked = backend.unlock().await;
    let code = result?;
    unlocked?;
    Ok(code)
}

/// Shows the plan, asks when it should, applies and reports.
async fn execute(
    printer: &Arc<Printer>,
    planned: Planned,
    run: &RunArgs,
    json: bool,
    show_plan: bool,
) -> Result<u8, Failure> {
    let Planned {
        plan,
        providers,
        backend,
        state,
        recovery_entries,
        replayed,
        ..
    } = planned;
    if !recovery_entries.is_empty() {
        backend.append(&recovery_entries).await?;
    }
    if show_plan && !json {
        printer.out(&render::human(&plan));
    }
    github_summary(&plan);
    if !plan.has_changes() {
        // Nothing to change in the world; still fold what a previous run
        // left in the journal (or recovery found) into the state file.
        if replayed > 0 || !recovery_entries.is_empty() {
            let mut state = state.clone();
            state.serial += 1;
            backend.commit(&state).await?;
        }
        for provider in providers.all() {
            provider
                .finish()
                .await
                .map_err(|e| Failure::Message(format!("provider `{}`: {e}", provider.name())))?;
        }
        if json {
            printer.out(
                &serde_json::to_string_pretty(&serde_json::json!({"outcome": "no_changes"}))
                    .unwrap_or_default(),
            );
        }
        return Ok(EXIT_OK);
    }
    if !run.auto_approve && plan.has_changes() {
        if !printer.can_prompt {
            return Err(Failure::Message(
                "refusing to apply without --auto-approve: there is no terminal to ask for confirmation".into(),
            ));
        }
        let verb = if plan.destroy { "destroy" } else { "apply" };
        if !printer.confirm(&format!(
            "\nDo you want to {verb} these changes? Only 'yes' will be accepted."
        )) {
            printer.err("Cancelled: nothing was changed.");
            return Ok(EXIT_ERROR);
        }
    }
    let total = plan.actions().count();
    let progress = Arc::new(Progress::new(
        printer.clone(),
        total,
        plan.sensitive_values.clone(),
    ));
    let stop = Stop::new();
    let signals = tokio::spawn(watch_signals(stop.clone(), printer.clone()));
    let started = Instant::now();
    let secrets = plan.sensitive_values.clone();
    let destroy = plan.destroy;
    let result = apply(
        plan,
        providers,
        backend.clone(),
        state,
        &options(run),
        &stop,
        progress.clone(),
    )
    .await;
    // The apply's own time: what follows is reporting.
    let elapsed = started.elapsed();
    signals.abort();
    progress.finish();
    let report = result.map_err(|e| Failure::Message(e.to_string()))?;
    write_stats(backend.as_ref(), &report, elapsed);
    print_report(printer, &report, elapsed, destroy, &secrets, json);
    Ok(match report.ending {
        Ending::Applied => EXIT_OK,
        Ending::Failed => EXIT_ERROR,
        Ending::Interrupted => EXIT_INTERRUPTED,
    })
}

/// First SIGINT/SIGTERM: start nothing new. Second: exit at once.
async fn watch_signals(stop: Stop, printer: Arc<Printer>) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let next = async |term: &mut Option<tokio::signal::unix::Signal>| match term {
        Some(t) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = t.recv() => {}
            }
        }
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    };
    next(&mut term).await;
    stop.trigger();
    printer.err("interrupt: starting nothing new; waiting for operations in flight, then saving state (interrupt again to exit at once)");
    next(&mut term).await;
    printer
        .err("second interrupt: exiting now; the state journal records every finished operation");
    std::process::exit(i32::from(EXIT_INTERRUPTED));
}

fn print_report(
    printer: &Printer,
    report: &ApplyReport,
    elapsed: Duration,
    destroy: bool,
    secrets: &[String],
    json: bool,
) {
    let mask = crate::plan::render::Masker::new(secrets);
    if json {
        let value = serde_json::json!({
            "outcome": match report.ending { Ending::Applied => "applied", Ending::Failed => "failed", Ending::Interrupted => "interrupted" },
            "completed": report.completed,
            "errors": report.errors.iter().map(|e| mask.text(&e.to_string())).collect::<Vec<_>>(),
            "rolled_back": report.rolled_back,
            "undone": report.undone.iter().map(|(a, w)| serde_json::json!({"address": a.to_string(), "what": w})).collect::<Vec<_>>(),
            "undo_failures": report.undo_failures.iter().map(|(a, w)| serde_json::json!({"address": a.to_string(), "error": mask.text(w)})).collect::<Vec<_>>(),
            "outputs": report.outputs.iter().map(|(k, v)| (k.clone(), if mask.is_secret(v) { serde_json::json!("(sensitive)") } else { v.clone() })).collect::<serde_json::Map<_, _>>(),
            "elapsed_ms": elapsed.as_millis() as u64,
            "elapsed_us": elapsed.as_micros() as u64,
            "provider_ms": report.provider_time.iter().map(|(a, t)| (a.to_string(), serde_json::json!(t.as_secs_f64() * 1000.0))).collect::<serde_json::Map<_, _>>(),
        });
        printer.out(&serde_json::to_string_pretty(&value).unwrap_or_default());
        return;
    }
    let secs = elapsed.as_secs_f64();
    match report.ending {
        Ending::Applied => {
            let what = if destroy {
                "Destroy complete"
            } else {
                "Apply complete"
            };
            printer.err(&format!(
                "\n{what}: {} action{} in {secs:.1}s.",
                report.completed,
                if report.completed == 1 { "" } else { "s" }
            ));
            if !report.outputs.is_empty() {
                let mut lines = vec!["\nOutputs:".to_string()];
                for (k, v) in &report.outputs {
                    let shown = if mask.is_secret(v) {
                        "(sensitive)".to_string()
                    } else {
                        v.to_string()
                    };
                    lines.push(format!("  {k} = {shown}"));
                }
                printer.out(&lines.join("\n"));
            }
        }
        Ending::Interrupted => {
            printer.err(&format!(
                "\nInterrupted after {secs:.1}s: {} action{} finished and recorded in state; nothing was rolled back. Run apply again to continue.",
                report.completed,
                if report.completed == 1 { "" } else { "s" }
            ));
        }
        Ending::Failed => {
            printer.err("\nApply failed:");
            for e in &report.errors {
                printer.err(&format!("  ✗ {}", mask.text(&e.to_string())));
            }
            if report.rolled_back {
                printer.err(&format!(
                    "Rolled back {} resource{}:",
                    report.undone.len(),
                    if report.undone.len() == 1 { "" } else { "s" }
                ));
                for (a, what) in &report.undone {
                    printer.err(&format!("  ↩ {a}: {what}"));
                }
                if !report.undo_failures.is_empty() {
                    printer.err("Could not roll back (still recorded in state):");
                    for (a, e) in &report.undo_failures {
                        printer.err(&format!("  ✗ {a}: {}", mask.text(e)));
                    }
                }
            } else {
                printer
                    .err("Not rolled back (--no-rollback): the partial work is recorded in state.");
            }
        }
    }
}

/// With `CAIRN_STATS=FILE`, appends one JSON line of counters for the run
/// (used by the benchmarks).
fn write_stats(backend: &dyn Backend, report: &ApplyReport, elapsed: Duration) {
    let Some(path) = std::env::var_os("CAIRN_STATS") else {
        return;
    };
    let line = serde_json::json!({
        "completed": report.completed,
        "state_bytes_written": backend.bytes_written(),
        "state_compactions": backend.compactions(),
        "elapsed_ms": elapsed.as_secs_f64() * 1000.0,
    });
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}
