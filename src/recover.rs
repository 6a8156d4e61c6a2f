//! Recovery of a run that died between an intent and its result.
//!
//! The journal records an intent before every change. An intent with no
//! recorded outcome means the process died while the provider call was in
//! flight: the object may or may not exist. Before planning, each such
//! intent is resolved by reading the world: an object found by its identity
//! and carrying this stack's tags is recorded as ours; an object read back by
//! id is refreshed; anything else is cleared.

use crate::model::Address;
use crate::provider::{Operation, Providers};
use crate::refresh::RefreshError;
use crate::state::{JournalEntry, Ownership, PendingIntent, ResourceState, State};

/// What recovering one intent found.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovered {
    pub address: Address,
    pub operation: Operation,
    /// In words: "created before the interruption: recorded", …
    pub outcome: String,
}

/// Resolves pending intents against the world. Returns the journal entries
/// that bring `state` up to date (the caller records them) and a report.
pub async fn recover(
    pending: &[PendingIntent],
    state: &State,
    providers: &Providers,
) -> Result<(Vec<JournalEntry>, Vec<Recovered>), RefreshError> {
    let mut entries = Vec::new();
    let mut report = Vec::new();
    for intent in pending {
        let address = &intent.address;
        let Some(provider) = providers.for_type(&address.type_name) else {
            continue;
        };
        let fail = |operation| {
            move |error| RefreshError {
                address: address.clone(),
                operation,
                error,
            }
        };
        let prior = state.resources.get(address);
        let outcome = match intent.operation {
            Operation::Create => {
                let found = match &intent.identity {
                    Some(identity) => provider
                        .find(address, identity)
                        .await
                        .map_err(fail(Operation::Find))?,
                    None => None,
                };
                match found {
                    Some(obj) if obj.is_ours(&state.stack, &state.env, address) => {
                        let resource = ResourceState {
                            id: obj.id.clone(),
                            ownership: prior.map_or(Ownership::Created, |p| p.ownership),
                            attributes: obj.attributes,
                            depends_on: prior.map(|p| p.depends_on.clone()).unwrap_or_default(),
                            identity: intent.identity.clone(),
                        };
                        entries.push(JournalEntry::Put {
                            address: address.clone(),
                            resource,
                        });
                        format!(
                            "created before the interruption as {}: recorded in state",
                            obj.id
                        )
                    }
                    _ => {
                        entries.push(JournalEntry::Done {
                            address: address.clone(),
                        });
                        "was not created before the interruption".to_string()
                    }
                }
            }
            Operation::Update | Operation::Delete => {
                let id = intent.id.clone().or_else(|| prior.map(|p| p.id.clone()));
                let obj = match &id {
                    Some(id) => provider
                        .read(address, id)
                        .await
                        .map_err(fail(Operation::Read))?,
                    None => None,
                };
                match (obj, prior) {
                    (Some(obj), Some(p)) => {
                        let mut resource = p.clone();
                        resource.attributes = obj.attributes;
                        entries.push(JournalEntry::Put {
                            address: address.clone(),
                            resource,
                        });
                        "still exists: state refreshed from the world".to_string()
                    }
                    (None, _) => {
                        entries.push(JournalEntry::Remove {
                            address: address.clone(),
                        });
                        "no longer exists: removed from state".to_string()
                    }
                    (Some(_), None) => {
                        entries.push(JournalEntry::Done {
                            address: address.clone(),
                        });
                        "exists but was never in state: left alone".to_string()
                    }
                }
            }
            Operation::Read | Operation::Find | Operation::List => continue,
        };
        report.push(Recovered {
            address: address.clone(),
            operation: intent.operation,
            outcome,
        });
    }
    Ok((entries, report))
}
