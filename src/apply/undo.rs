//! Rollback: undoing what one run did, in reverse dependency order.
//!
//! Every change an operation makes pushes an [`Undo`] record. When the run
//! fails, the records' addresses form a subgraph of the plan's graph; walked
//! reversed (dependents first), each address's records are undone newest
//! first: created objects are deleted, updated ones restored to their prior
//! attributes, adopted ones released, deleted ones re-created, and state is
//! put back as it was.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError};

use super::executor::{ExecOptions, Order, Stop, execute};
use super::run::{ApplyError, ApplyOptions, Event, OpError, Run, inputs_of};
use crate::graph::DepGraph;
use crate::model::{Address, Attrs};
use crate::provider::{CreateRequest, DeleteRequest, Operation, UpdateRequest, ownership_tags};
use crate::state::{JournalEntry, ResourceState};

/// One change to undo. `prior` is the state record before the change.
#[derive(Debug, Clone)]
pub enum Undo {
    /// Only state changed (reuse, or adopt with nothing to update).
    Recorded { prior: Option<ResourceState> },
    Created {
        id: String,
        attributes: Attrs,
        prior: Option<ResourceState>,
    },
    Updated {
        id: String,
        before: Attrs,
        prior: Option<ResourceState>,
    },
    Deleted {
        attributes: Attrs,
        prior: Option<ResourceState>,
    },
}

/// Undoes the run: returns what was undone and what could not be.
pub(super) async fn rollback(
    run: &Arc<Run>,
    graph: &DepGraph,
    options: &ApplyOptions,
) -> Result<(Vec<(Address, String)>, Vec<(Address, String)>), ApplyError> {
    let records = std::mem::take(&mut *run.undo.lock().unwrap_or_else(PoisonError::into_inner));
    let mut by_address: BTreeMap<Address, Vec<Undo>> = BTreeMap::new();
    for (address, undo) in records {
        by_address.entry(address).or_default().push(undo);
    }
    run.observer.event(Event::RollbackStarted {
        count: by_address.len(),
    });
    let keep: Vec<_> = by_address.keys().filter_map(|a| graph.node(a)).collect();
    let sub = graph.subgraph(&keep).reversed();
    let by_address = Arc::new(std::sync::Mutex::new(by_address));
    let results: Arc<std::sync::Mutex<HashMap<Address, Result<String, String>>>> = Arc::default();
    let weights = vec![1.0; sub.len()];
    let exec = ExecOptions {
        parallelism: options.parallelism,
        order: Order::CriticalPath,
    };
    // Rollback runs to the end even if a second signal arrives: a fresh stop.
    let stop = Stop::new();
    let sub_addresses: Vec<Address> = sub.nodes().map(|n| sub.address(n).clone()).collect();
    let outcome = execute(&sub, &weights, &exec, &stop, |node| {
        let run = run.clone();
        let address = sub_addresses[node.index()].clone();
        let undos = by_address
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&address)
            .unwrap_or_default();
        let results = results.clone();
        async move {
            let result = undo_all(&run, &address, undos).await;
            match &result {
                Ok(what) => run.observer.event(Event::RolledBack {
                    address: address.clone(),
                    what: what.clone(),
                }),
                Err(error) => run.observer.event(Event::RollbackFailed {
                    address: address.clone(),
                    error: error.clone(),
                }),
            }
            results
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(address, result);
            Ok::<(), ()>(())
        }
    })
    .await;
    drop(outcome);
    let results = std::mem::take(&mut *results.lock().unwrap_or_else(PoisonError::into_inner));
    let mut undone = Vec::new();
    let mut failures = Vec::new();
    for (address, r) in results {
        match r {
            Ok(what) => undone.push((address, what)),
            Err(e) => failures.push((address, e)),
        }
    }
    undone.sort();
    failures.sort();
    Ok((undone, failures))
}

/// Undoes one address's records, newest first.
async fn undo_all(run: &Run, address: &Address, undos: Vec<Undo>) -> Result<String, String> {
    let mut done = Vec::new();
    for undo in undos.into_iter().rev() {
        done.push(
            undo_one(run, address, undo)
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    Ok(done.join(", then "))
}

async fn restore_record(
    run: &Run,
    address: &Address,
    prior: Option<ResourceState>,
) -> Result<(), OpError> {
    let entry = match prior {
        Some(resource) => JournalEntry::Put {
            address: address.clone(),
            resource,
        },
        None => JournalEntry::Remove {
            address: address.clone(),
        },
    };
    run.record(entry)
        .await
        .map_err(|e| Run::journal_error(address, e))
}

async fn undo_one(run: &Run, address: &Address, undo: Undo) -> Result<String, OpError> {
    let provider = run
        .providers
        .for_type(&address.type_name)
        .cloned()
        .ok_or_else(|| OpError {
            address: address.clone(),
            operation: "rollback".into(),
            message: "no provider serves this type".into(),
        })?;
    match undo {
        Undo::Recorded { prior } => {
            let what = if prior.is_some() {
                "state entry restored"
            } else {
                "released (dropped from state)"
            };
            restore_record(run, address, prior).await?;
            Ok(what.into())
        }
        Undo::Created {
            id,
            attributes,
            prior,
        } => {
            let request = DeleteRequest {
                address: address.clone(),
                id: id.clone(),
                attributes,
            };
            run.call(address, Operation::Delete, || provider.delete(&request))
                .await?;
            restore_record(run, address, prior).await?;
            Ok(format!("deleted {id}"))
        }
        Undo::Updated { id, before, prior } => {
            let request = UpdateRequest {
                address: address.clone(),
                id: id.clone(),
                before: Attrs::new(),
                after: inputs_of(address, &before),
                tags: Default::default(),
            };
            run.call(address, Operation::Update, || provider.update(&request))
                .await?;
            let what = if prior.is_some() {
                "restored its prior attributes"
            } else {
                "restored and released"
            };
            restore_record(run, address, prior).await?;
            Ok(what.into())
        }
        Undo::Deleted { attributes, prior } => {
            let tags = ownership_tags(&run.plan.stack, &run.plan.env, address);
            let request = CreateRequest {
                address: address.clone(),
                attributes: inputs_of(address, &attributes),
                tags,
            };
            let obj = run
                .call(address, Operation::Create, || provider.create(&request))
                .await?;
            let resource = prior.map(|mut p| {
                p.id = obj.id.clone();
                p.attributes = obj.attributes.clone();
                p
            });
            restore_record(run, address, resource).await?;
            Ok(format!("re-created as {}", obj.id))
        }
    }
}
