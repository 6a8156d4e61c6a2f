//! The apply driver: executes exactly the actions of a [`Plan`], journaling
//! every change, then runs checks, records outputs and commits state. On a
//! failure it rolls the run back (see [`super::undo`]). An operation's
//! intent is written while the operations it waits for are still running
//! ([`Run::write_ahead`]), so the journal's sync is off the critical path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::check::run_checks;
use super::executor::{ExecOptions, Order, Stop, execute_prepared};
use super::outbox::Outbox;
use super::retry::{RetryPolicy, with_retry_notify};
use super::undo::{Undo, rollback};
use crate::graph::DepGraph;
use crate::model::template::{self, Ref};
use crate::model::{Address, Attrs, Value};
use crate::plan::{Action, ActionKind, Plan};
use crate::provider::{
    CreateRequest, DeleteRequest, LiveObject, Operation, ProviderError, Providers, UpdateRequest,
    ownership_tags, type_schema,
};
use crate::state::{Backend, JournalEntry, Ownership, ResourceState, State, StateError};

/// What to do with a run's work when something fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Undo this run in reverse dependency order (the default).
    Rollback,
    /// Keep the partial work, recorded in state (`--no-rollback`).
    Keep,
}

#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub parallelism: Option<usize>,
    pub order: Order,
    pub on_failure: OnFailure,
    /// Backoff shape; its `max_elapsed` applies to providers that set no
    /// retry budget of their own.
    pub retry: RetryPolicy,
    /// `--retry-timeout`: overrides every provider's retry budget.
    pub retry_timeout: Option<Duration>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            parallelism: Some(16),
            order: Order::CriticalPath,
            on_failure: OnFailure::Rollback,
            retry: RetryPolicy::default(),
            retry_timeout: None,
        }
    }
}

/// Something that happened during apply, for progress display.
#[derive(Debug, Clone)]
pub enum Event {
    Started {
        address: Address,
        action: ActionKind,
    },
    Finished {
        address: Address,
        action: ActionKind,
        elapsed: Duration,
        id: Option<String>,
    },
    Failed {
        address: Address,
        action: ActionKind,
        error: String,
    },
    Retrying {
        address: Address,
        operation: Operation,
        attempt: u32,
        error: String,
    },
    RollbackStarted {
        count: usize,
    },
    RolledBack {
        address: Address,
        what: String,
    },
    RollbackFailed {
        address: Address,
        error: String,
    },
    CheckPassed {
        name: String,
        attempts: u32,
    },
    CheckFailed {
        name: String,
        error: String,
    },
}

/// Receives [`Event`]s; the UI draws them.
pub trait Observer: Send + Sync {
    fn event(&self, event: Event);
}

/// An operation that failed, naming the resource and the operation.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{address}: {operation} failed: {message}")]
pub struct OpError {
    pub address: Address,
    pub operation: String,
    pub message: String,
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Every action and check succeeded.
    Applied,
    /// Something failed; the errors, in the order seen.
    Failed,
    /// Stopped by a signal: in-flight operations finished, state saved.
    Interrupted,
}

#[derive(Debug, Clone)]
pub struct ApplyReport {
    pub ending: Ending,
    pub errors: Vec<OpError>,
    /// Actions that completed (before any rollback).
    pub completed: usize,
    /// Whether a rollback ran.
    pub rolled_back: bool,
    /// What rollback undid, resource by resource.
    pub undone: Vec<(Address, String)>,
    /// What rollback could not undo.
    pub undo_failures: Vec<(Address, String)>,
    pub outputs: std::collections::BTreeMap<String, Value>,
    /// Time spent in provider calls, per address (retries and their pauses
    /// included; journal writes and waiting for a free slot not): what the
    /// cloud cost, as opposed to what the engine added.
    pub provider_time: std::collections::BTreeMap<Address, Duration>,
}

/// The failure of the run's bookkeeping itself (state could not be written).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("the plan's actions form a dependency cycle through {0}")]
    Cycle(String),
    #[error("no provider serves {0}")]
    NoProvider(Address),
}

/// A journal write in flight.
pub(super) type Pending = tokio::sync::watch::Receiver<Option<Result<(), StateError>>>;

/// Shared by every operation of one run.
pub(super) struct Run {
    pub plan: Plan,
    pub providers: Providers,
    pub backend: Arc<dyn Backend>,
    pub state: Mutex<State>,
    /// Attribute values produced so far, for references (template form).
    pub values: Mutex<HashMap<Address, Attrs>>,
    /// Per address, what to undo, in the order it was done.
    pub undo: Mutex<Vec<(Address, Undo)>>,
    /// Outcome records on their way to the journal (see [`Run::record_later`]).
    pub outbox: Arc<Outbox>,
    /// Intents written ahead of their operation (see [`Run::write_ahead`]),
    /// by address: the operation and the write.
    pub ahead: Mutex<HashMap<Address, (Operation, Pending)>>,
    pub retry: RetryPolicy,
    pub retry_timeout: Option<Duration>,
    pub observer: Arc<dyn Observer>,
    /// Time of each provider call (with its retries) so far, by address,
    /// in the order they ended; summed per address for
    /// [`ApplyReport::provider_time`].
    pub provider_time: Mutex<Vec<(Address, Duration)>>,
}

impl Run {
    /// Appends to the journal (durably), then to the in-memory state.
    pub async fn record(&self, entry: JournalEntry) -> Result<(), StateError> {
        self.backend.append(std::slice::from_ref(&entry)).await?;
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .apply_entry(&entry);
        Ok(())
    }

    /// Records an operation's outcome without making dependents wait for
    /// the journal's sync: only the intent must be durable before a provider
    /// call (a run killed before the outcome is durable leaves a pending
    /// intent, which the next run resolves by reading the world). Every
    /// deferred record is durable before checks or rollback
    /// ([`Run::settle`]), or else journaled by the commit (the outbox's
    /// hand-over). Use only for an address's last record of the run.
    pub fn record_later(&self, entry: JournalEntry) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .apply_entry(&entry);
        self.outbox.push(entry);
    }

    /// Waits until every deferred record is durable.
    pub async fn settle(&self) -> Result<(), StateError> {
        self.outbox.settle().await
    }

    pub fn push_undo(&self, address: &Address, undo: Undo) {
        self.undo
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((address.clone(), undo));
    }

    /// Calls a provider operation with retries, reporting retries.
    pub async fn call<T, F, Fut>(
        &self,
        address: &Address,
        operation: Operation,
        f: F,
    ) -> Result<T, OpError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ProviderError>>,
    {
        let mut policy = self.retry.clone();
        let budget = self
            .providers
            .for_type(&address.type_name)
            .and_then(|p| p.retry_budget());
        if let Some(limit) = self.retry_timeout.or(budget) {
            policy.max_elapsed = limit;
        }
        let started = std::time::Instant::now();
        let (result, _) = with_retry_notify(&policy, f, |attempts, error, pause| {
            self.observer.event(Event::Retrying {
                address: address.clone(),
                operation,
                attempt: attempts + 1,
                error: format!(
                    "{} — retrying in {:.1}s",
                    self.mask(&error.message),
                    pause.as_secs_f64()
                ),
            });
        })
        .await;
        let elapsed = started.elapsed();
        self.provider_time
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((address.clone(), elapsed));
        result.map_err(|e| OpError {
            address: address.clone(),
            operation: operation.to_string(),
            message: self.mask(&e.message),
        })
    }

    /// A journal write that failed, as the failure of `address`'s operation.
    pub fn journal_error(address: &Address, e: StateError) -> OpError {
        OpError {
            address: address.clone(),
            operation: "record".into(),
            message: format!("could not write the state journal: {e}"),
        }
    }

    /// The intent to journal before `operation` on `action`'s address.
    fn intent(&self, action: &Action, operation: Operation, id: Option<String>) -> JournalEntry {
        let address = &action.address;
        // Only what recovery needs: the identity a create will have, and the
        // id when state does not already hold it (recovery falls back to
        // the state's id). Intents are a good part of the bytes an apply
        // writes.
        let id = id.filter(|id| {
            self.state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .resources
                .get(address)
                .is_none_or(|r| &r.id != id)
        });
        JournalEntry::Intent {
            address: address.clone(),
            operation,
            identity: action
                .identity
                .clone()
                .filter(|_| operation == Operation::Create),
            id,
        }
    }

    /// Starts writing the intent of `action`'s first provider call, for an
    /// operation about to start (the executor's `prepare`), so that it is
    /// durable by the time the operations it waits for have finished: the
    /// journal's sync is then off the run's critical path. The intent
    /// depends only on the plan and on this address's own state record,
    /// which nothing else changes, so it is the one [`Run::journaled`]
    /// would write. Actions whose call depends on what their dependencies
    /// produce (an adoption may need none) are left to `journaled`. An
    /// intent written for an operation that then never starts is closed by
    /// [`Run::close_ahead`]; until then it is harmless: recovery reads the
    /// world and finds nothing done.
    ///
    /// Returns the batch's write, for the executor's gate; `None` when
    /// nothing was written.
    pub fn write_ahead<'a>(
        &self,
        actions: impl IntoIterator<Item = &'a Action>,
    ) -> Option<Pending> {
        let mut intents = Vec::new();
        let mut announced = Vec::new();
        for action in actions {
            let operation = match action.action {
                ActionKind::Create | ActionKind::CreateUnique => Operation::Create,
                ActionKind::Update => Operation::Update,
                ActionKind::Delete | ActionKind::Replace => Operation::Delete,
                ActionKind::Adopt | ActionKind::Reuse | ActionKind::Skip => continue,
            };
            let id = match operation {
                Operation::Create => None,
                _ => Some(action.id.clone().unwrap_or_default()),
            };
            intents.push(self.intent(action, operation, id));
            announced.push((action.address.clone(), operation));
        }
        if intents.is_empty() {
            return None;
        }
        // One write for the batch; every operation of it waits for it. A
        // backend that places records starts it now, before the operations
        // are even spawned (their tasks then mostly find it durable).
        let (done, written) = tokio::sync::watch::channel(None);
        let write: crate::state::Placed = match self.backend.place(&intents) {
            Some(placed) => placed,
            None => {
                let backend = self.backend.clone();
                Box::pin(async move { backend.append(&intents).await })
            }
        };
        tokio::spawn(async move {
            drop(done.send(Some(write.await)));
        });
        let mut ahead = self.ahead.lock().unwrap_or_else(PoisonError::into_inner);
        for (address, operation) in announced {
            ahead.insert(address, (operation, written.clone()));
        }
        Some(written)
    }

    /// Closes the intents written ahead for operations that never started
    /// (a failure or a stop came first) with `Done`.
    pub async fn close_ahead(&self) -> Result<(), StateError> {
        let ahead = std::mem::take(&mut *self.ahead.lock().unwrap_or_else(PoisonError::into_inner));
        let mut ahead: Vec<_> = ahead.into_iter().collect();
        ahead.sort_by(|a, b| a.0.cmp(&b.0));
        let mut done = Vec::new();
        for (address, (_, write)) in ahead {
            // An intent that did not reach the journal needs no closing.
            if Run::joined(write, &*self.backend).await.is_ok() {
                done.push(JournalEntry::Done { address });
            }
        }
        self.backend.append(&done).await
    }

    /// The result of a batch of intents written ahead, once it is known.
    async fn joined(mut write: Pending, backend: &dyn Backend) -> Result<(), StateError> {
        let stopped = || StateError::Io {
            operation: "append",
            location: backend.location(),
            message: "the journal write of intents written ahead stopped".to_string(),
        };
        match write.wait_for(Option::is_some).await {
            Ok(result) => result.clone().unwrap_or_else(|| Err(stopped())),
            Err(_) => Err(stopped()),
        }
    }

    /// Records the intent durably (or waits for the one written ahead, see
    /// [`Run::write_ahead`]), makes the provider call with retries, and on
    /// failure closes the intent with `Done`: the one way every change
    /// reaches the world.
    pub async fn journaled<T, F, Fut>(
        &self,
        action: &Action,
        operation: Operation,
        id: Option<String>,
        f: F,
    ) -> Result<T, OpError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ProviderError>>,
    {
        let address = &action.address;
        let ahead = {
            let mut ahead = self.ahead.lock().unwrap_or_else(PoisonError::into_inner);
            match ahead.get(address) {
                Some((op, _)) if *op == operation => ahead.remove(address),
                _ => None,
            }
        };
        let written = match ahead {
            // Written while the operations this one waited for were running.
            Some((_, write)) => Run::joined(write, &*self.backend).await,
            None => self.record(self.intent(action, operation, id)).await,
        };
        written.map_err(|e| Run::journal_error(address, e))?;
        match self.call(address, operation, f).await {
            Ok(value) => Ok(value),
            Err(e) => {
                let done = JournalEntry::Done {
                    address: address.clone(),
                };
                self.record(done)
                    .await
                    .map_err(|e| Run::journal_error(address, e))?;
                Err(e)
            }
        }
    }

    /// Hides sensitive values in a message.
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.plan.sensitive_values {
            if !secret.is_empty() {
                out = out.replace(secret.as_str(), "(sensitive)");
            }
        }
        out
    }
}

/// Applies `plan`. The caller holds the state lock and passes the loaded
/// state; the state is committed before this returns, whatever happened.
pub async fn apply(
    plan: Plan,
    providers: Providers,
    backend: Arc<dyn Backend>,
    state: State,
    options: &ApplyOptions,
    stop: &Stop,
    observer: Arc<dyn Observer>,
) -> Result<ApplyReport, ApplyError> {
    let timer = crate::ui::PhaseTimer::from_env();
    let actions: Vec<Action> = plan.actions().cloned().collect();
    let graph = DepGraph::from_borrowed(
        actions.iter().map(|a| a.address.clone()).collect(),
        actions
            .iter()
            .flat_map(|a| a.depends_on.iter().map(move |d| (&a.address, d))),
    )
    .map_err(|c| {
        ApplyError::Cycle(
            c.path
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" → "),
        )
    })?;
    for a in &actions {
        if providers.for_type(&a.address.type_name).is_none() && a.action.changes_world() {
            return Err(ApplyError::NoProvider(a.address.clone()));
        }
    }
    let values: HashMap<Address, Attrs> = plan
        .unchanged
        .iter()
        .map(|(a, u)| {
            (
                a.clone(),
                u.attributes
                    .iter()
                    .map(|(k, v)| (k.clone(), template::escape_value(v.clone())))
                    .collect(),
            )
        })
        .collect();
    let run = Arc::new(Run {
        providers,
        outbox: Outbox::new(backend.clone()),
        backend,
        state: Mutex::new(state),
        values: Mutex::new(values),
        // Every action may leave one undo: room for all of them at once.
        undo: Mutex::new(Vec::with_capacity(actions.len())),
        ahead: Mutex::default(),
        retry: options.retry.clone(),
        retry_timeout: options.retry_timeout,
        observer,
        provider_time: Mutex::new(Vec::with_capacity(actions.len())),
        plan,
    });

    for address in &run.plan.forget {
        run.record(JournalEntry::Remove {
            address: address.clone(),
        })
        .await?;
    }

    let weights: Vec<f64> = graph
        .nodes()
        .map(|n| {
            if actions[n.index()].action.changes_world() {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let exec = ExecOptions {
        parallelism: options.parallelism,
        order: options.order,
    };
    let actions = Arc::new(actions);
    let prepare = |nodes: &[crate::graph::NodeId]| {
        // The gate: the batch's write has ended, whatever its result (each
        // operation reads that for itself).
        let written = run.write_ahead(nodes.iter().map(|node| &actions[node.index()]));
        written.map(|mut written| async move {
            let _ = written.wait_for(Option::is_some).await;
        })
    };
    timer.mark("apply: set-up");
    let outcome = execute_prepared(&graph, &weights, &exec, stop, prepare, |node| {
        let run = run.clone();
        let actions = actions.clone();
        async move {
            let action = &actions[node.index()];
            run.observer.event(Event::Started {
                address: action.address.clone(),
                action: action.action,
            });
            let started = Instant::now();
            match perform(&run, action).await {
                Ok(id) => {
                    run.observer.event(Event::Finished {
                        address: action.address.clone(),
                        action: action.action,
                        elapsed: started.elapsed(),
                        id,
                    });
                    Ok(())
                }
                Err(e) => {
                    run.observer.event(Event::Failed {
                        address: action.address.clone(),
                        action: action.action,
                        error: e.to_string(),
                    });
                    Err(e)
                }
            }
        }
    })
    .await;
    timer.mark("apply: operations");

    run.close_ahead().await?;
    let mut errors: Vec<OpError> = outcome.failed.into_iter().map(|(_, e)| e).collect();
    for node in outcome.panicked {
        errors.push(OpError {
            address: graph.address(node).clone(),
            operation: "apply".into(),
            message: "the operation panicked (a bug in cairn)".into(),
        });
    }
    let mut ending = if !errors.is_empty() {
        Ending::Failed
    } else if outcome.stopped {
        Ending::Interrupted
    } else {
        Ending::Applied
    };
    let checks = ending == Ending::Applied && !run.plan.checks.is_empty();
    let rolls_back = ending == Ending::Failed && options.on_failure == OnFailure::Rollback;

    // The providers' own bookkeeping (the sim compacts its world file)
    // touches none of the state's files, so it runs beside the rest: from
    // now on when no provider is called again (no rollback) and no check
    // can look at the world meanwhile, else after the rollback.
    let mut finishing = (!checks && !rolls_back).then(|| finish_providers(&run));

    // Every outcome record is durable before checks or rollback. Without
    // either, the commit journals the records still queued itself.
    if checks || rolls_back {
        run.settle().await?;
    }

    let mut outputs = std::collections::BTreeMap::new();
    if ending == Ending::Applied {
        // Nothing reads the values after the checks and outputs.
        let values =
            std::mem::take(&mut *run.values.lock().unwrap_or_else(PoisonError::into_inner));
        match run_checks(&run.plan, &values, run.observer.as_ref(), stop).await {
            Ok(()) => {
                outputs = evaluate_outputs(&run.plan, &values);
                // Into the state only: the commit journals what changed
                // (they are recomputed by any run that does not commit).
                run.state
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .outputs = outputs.clone();
            }
            Err(e) => {
                errors.push(e);
                ending = Ending::Failed;
            }
        }
        drop_elsewhere(values);
    }

    let mut report = ApplyReport {
        ending: ending.clone(),
        errors,
        completed: outcome.completed.len(),
        rolled_back: false,
        undone: Vec::new(),
        undo_failures: Vec::new(),
        outputs,
        provider_time: std::collections::BTreeMap::new(),
    };
    timer.mark("apply: checks and outputs");
    // A failed check rolls back too (its records were settled before it).
    if ending == Ending::Failed && options.on_failure == OnFailure::Rollback {
        report.rolled_back = true;
        let (undone, failures) = rollback(&run, &graph, options).await?;
        report.undone = undone;
        report.undo_failures = failures;
    }
    let finishing = finishing.get_or_insert_with(|| finish_providers(&run));

    timer.mark("apply: rollback");
    let unwritten = run.outbox.hand_over().await?;
    // The report's provider times are summed while the commit is written.
    let (committed, ()) = tokio::join!(commit(&run), async {
        let calls = std::mem::take(
            &mut *run
                .provider_time
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for (address, elapsed) in calls {
            *report.provider_time.entry(address).or_default() += elapsed;
        }
    });
    // The outcome batches placed ahead of the commit: how they ended. One
    // that failed made the commit fail too (see `Backend::place`); its own
    // error says more.
    let batches = run.outbox.settle().await;
    if committed.is_err() {
        // Not committed: the records the commit would have journaled go to
        // the journal's tail as before, for the next run to replay. Best
        // effort: the commit's failure is what the run reports.
        let _ = run.backend.append(&unwritten).await;
    }
    match finishing.await {
        Ok(errors) => report.errors.extend(errors),
        Err(e) => report.errors.push(OpError {
            address: Address::new("provider", "finish"),
            operation: "finish".into(),
            message: e.to_string(),
        }),
    }
    batches?;
    committed?;
    timer.mark("apply: commit and providers' finish");
    // What the run held (the plan, every value and record) is freed off the
    // caller's path: at 100,000 resources that takes a good part of a second.
    drop_elsewhere((run, graph, actions));
    Ok(report)
}

/// Commits the run's state: the backend seals the journal's records (a
/// commit marker, or a compaction into a new state file). The outbox was
/// handed over first: no outcome record reaches the journal after the
/// marker, and those it did not write are in the difference the commit
/// journals (a rollback journals its own records durably).
async fn commit(run: &Run) -> Result<(), StateError> {
    // Nothing reads the run's state after the commit: taken, not copied.
    let mut state = {
        let mut held = run.state.lock().unwrap_or_else(PoisonError::into_inner);
        let empty = State::new(&held.stack, &held.env);
        std::mem::replace(&mut *held, empty)
    };
    for (address, u) in &run.plan.unchanged {
        if let Some(r) = state.resources.get_mut(address) {
            r.depends_on = u.depends_on.clone();
        }
    }
    state.serial += 1;
    let committed = run.backend.commit(&state).await;
    drop_elsewhere(state);
    committed
}

/// Runs every provider's `finish` (its own bookkeeping) on a thread of the
/// blocking pool. Not a task: one spawned from here waits in this worker's
/// next-task slot, which no other worker takes, until the caller's own
/// work (the commit's encoding) yields; and the sim's compaction is
/// blocking work besides.
fn finish_providers(run: &Arc<Run>) -> tokio::task::JoinHandle<Vec<OpError>> {
    let run = run.clone();
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        runtime.block_on(async move {
            let mut errors = Vec::new();
            for provider in run.providers.all() {
                if let Err(e) = provider.finish().await {
                    errors.push(OpError {
                        address: Address::new(format!("{}_provider", provider.name()), "finish"),
                        operation: "finish".into(),
                        message: e.message,
                    });
                }
            }
            errors
        })
    })
}

/// Drops `value` on a thread of its own (or here, with the closure holding
/// it, if no thread can be started).
fn drop_elsewhere<T: Send + 'static>(value: T) {
    let _ = std::thread::Builder::new()
        .name("cairn-free".into())
        .spawn(move || drop(value));
}

/// Values of the outputs, references filled; unresolvable ones become null.
fn evaluate_outputs(
    plan: &Plan,
    values: &HashMap<Address, Attrs>,
) -> std::collections::BTreeMap<String, Value> {
    plan.outputs
        .iter()
        .map(|(k, v)| {
            let filled = fill(v, values);
            let out = if template::is_known(&filled) {
                template::finalize(&filled)
            } else {
                Value::Null
            };
            (k.clone(), out)
        })
        .collect()
}

/// Fills resource references from the values produced so far.
pub(super) fn fill(v: &Value, values: &HashMap<Address, Attrs>) -> Value {
    template::substitute(v, &mut |r: &Ref| match r {
        Ref::Resource { address, path } => {
            let (first, rest) = path.split_first()?;
            template::lookup_path(values.get(address)?.get(first)?, rest).cloned()
        }
        _ => None,
    })
}

/// The desired attributes with every reference filled, as plain values.
fn resolved_after(run: &Run, action: &Action) -> Result<Attrs, OpError> {
    let values = run.values.lock().unwrap_or_else(PoisonError::into_inner);
    let mut out = Attrs::new();
    for (k, v) in action.after.iter().flatten() {
        let filled = fill(v, &values);
        if !template::is_known(&filled) {
            let mut missing = Vec::new();
            template::for_each_ref(&filled, &mut |r| missing.push(r.to_string()));
            return Err(OpError {
                address: action.address.clone(),
                operation: action.action.verb().to_string(),
                message: format!("`{k}` references {} which has no value", missing.join(", ")),
            });
        }
        out.insert(k.clone(), template::finalize(&filled));
    }
    Ok(out)
}

/// Input attributes of a live object: what re-creating or restoring it takes.
pub(super) fn inputs_of(address: &Address, attrs: &Attrs) -> Attrs {
    let schema = type_schema(&address.type_name).ok();
    attrs
        .iter()
        .filter(|(k, _)| !schema.as_ref().is_some_and(|s| s.is_computed(k)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn resource_state(action: &Action, obj: &LiveObject, ownership: Ownership) -> ResourceState {
    ResourceState {
        id: obj.id.clone(),
        ownership,
        attributes: obj.attributes.clone(),
        depends_on: action.depends_on.clone(),
        identity: action.identity.clone(),
    }
}

/// Performs one action; returns the physical id it ended with.
async fn perform(run: &Run, action: &Action) -> Result<Option<String>, OpError> {
    let address = &action.address;
    let prior = run
        .state
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .resources
        .get(address)
        .cloned();
    let tags = ownership_tags(&run.plan.stack, &run.plan.env, address);
    let provider = run.providers.for_type(&address.type_name).cloned();
    let provider = || {
        provider.clone().ok_or_else(|| OpError {
            address: address.clone(),
            operation: action.action.verb().into(),
            message: "no provider serves this type".into(),
        })
    };
    let produced = match action.action {
        ActionKind::Skip => return Ok(action.id.clone()),
        ActionKind::Reuse => {
            let obj = LiveObject {
                id: action.id.clone().unwrap_or_default(),
                attributes: action.before.clone().unwrap_or_default(),
                tags: Default::default(),
            };
            run.record_later(JournalEntry::Put {
                address: address.clone(),
                resource: resource_state(action, &obj, Ownership::Reused),
            });
            run.push_undo(address, Undo::Recorded { prior });
            obj
        }
        ActionKind::Create | ActionKind::CreateUnique => {
            let after = resolved_after(run, action)?;
            create(run, action, provider()?.as_ref(), after, tags, prior).await?
        }
        ActionKind::Replace => {
            let provider = provider()?;
            let after = resolved_after(run, action)?;
            delete(run, action, provider.as_ref(), prior.clone()).await?;
            create(run, action, provider.as_ref(), after, tags, None).await?
        }
        ActionKind::Update | ActionKind::Adopt => {
            let provider = provider()?;
            let after = resolved_after(run, action)?;
            let before = action.before.clone().unwrap_or_default();
            let id = action.id.clone().unwrap_or_default();
            let ownership = action.ownership.unwrap_or(Ownership::Created);
            let needs_call = action.action == ActionKind::Update
                || after.iter().any(|(k, v)| before.get(k) != Some(v))
                || ownership == Ownership::Adopted;
            let obj = if needs_call {
                let request = UpdateRequest {
                    address: address.clone(),
                    id: id.clone(),
                    before: before.clone(),
                    after,
                    tags,
                };
                let obj = run
                    .journaled(action, Operation::Update, Some(id.clone()), || {
                        provider.update(&request)
                    })
                    .await?;
                run.push_undo(
                    address,
                    Undo::Updated {
                        id: obj.id.clone(),
                        before: before.clone(),
                        prior: prior.clone(),
                    },
                );
                obj
            } else {
                run.push_undo(
                    address,
                    Undo::Recorded {
                        prior: prior.clone(),
                    },
                );
                LiveObject {
                    id,
                    attributes: before,
                    tags: Default::default(),
                }
            };
            run.record_later(JournalEntry::Put {
                address: address.clone(),
                resource: resource_state(action, &obj, ownership),
            });
            obj
        }
        ActionKind::Delete => {
            delete(run, action, provider()?.as_ref(), prior).await?;
            return Ok(None);
        }
    };
    let id = produced.id.clone();
    let escaped = produced
        .attributes
        .into_iter()
        .map(|(k, v)| (k, template::escape_value(v)))
        .collect();
    run.values
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(address.clone(), escaped);
    Ok(Some(id))
}

async fn create(
    run: &Run,
    action: &Action,
    provider: &dyn crate::provider::Provider,
    after: Attrs,
    tags: crate::model::Tags,
    prior: Option<ResourceState>,
) -> Result<LiveObject, OpError> {
    let address = &action.address;
    let request = CreateRequest {
        address: address.clone(),
        attributes: after,
        tags,
    };
    let obj = run
        .journaled(action, Operation::Create, None, || {
            provider.create(&request)
        })
        .await?;
    let ownership = action.ownership.unwrap_or(Ownership::Created);
    run.record_later(JournalEntry::Put {
        address: address.clone(),
        resource: resource_state(action, &obj, ownership),
    });
    run.push_undo(
        address,
        Undo::Created {
            id: obj.id.clone(),
            attributes: obj.attributes.clone(),
            prior,
        },
    );
    Ok(obj)
}

async fn delete(
    run: &Run,
    action: &Action,
    provider: &dyn crate::provider::Provider,
    prior: Option<ResourceState>,
) -> Result<(), OpError> {
    let address = &action.address;
    let id = action.id.clone().unwrap_or_default();
    let attributes = action.before.clone().unwrap_or_default();
    let request = DeleteRequest {
        address: address.clone(),
        id: id.clone(),
        attributes: attributes.clone(),
    };
    run.journaled(action, Operation::Delete, Some(id), || {
        provider.delete(&request)
    })
    .await?;
    let removed = JournalEntry::Remove {
        address: address.clone(),
    };
    if action.action == ActionKind::Delete {
        run.record_later(removed);
    } else {
        // A replace records its create next: keep the journal in order.
        run.record(removed)
            .await
            .map_err(|e| Run::journal_error(address, e))?;
    }
    run.push_undo(address, Undo::Deleted { attributes, prior });
    Ok(())
}
