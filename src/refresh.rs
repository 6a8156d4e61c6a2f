//! Reading the world before planning: for each resource, the object state
//! records (by id), and any object holding its identity (by name, and by its
//! `unique` name). The result, [`Live`], is all the diff knows of the world.
//!
//! Lookups are batched: where a provider can list a type, one `list` call
//! answers every lookup of that type; otherwise reads run concurrently.
//! The lists of different types run concurrently too.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::task::{JoinHandle, JoinSet};

use crate::hash::{FastMap, Positions};
use crate::model::template;
use crate::model::{Address, Policy, Stack, Value};
use crate::plan::{Live, LiveEntry, Lookup, unique_name};
use crate::provider::{
    LiveObject, Operation, Provider, ProviderError, Providers, SchemaCache, type_schema,
};
use crate::state::{Ownership, ResourceState, State};

/// A provider call that failed while reading the world.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{address}: {operation} failed: {error}")]
pub struct RefreshError {
    pub address: Address,
    pub operation: Operation,
    pub error: ProviderError,
}

/// How many reads run at once when a type cannot be listed.
const READ_CONCURRENCY: usize = 32;

/// The reads a plan needs: every resource of `stack` (if given) and every
/// resource in `state`, in address order.
///
/// The stack's resources are put in address order (their positions
/// sorted) and walked beside state's records, which are in that order
/// already: each resource meets its record without a search, and the
/// records the stack no longer names fall out between them. At 100,000
/// resources a search of state per resource, and a set of the names seen,
/// cost more than the sort.
pub fn lookups(stack: Option<&Stack>, state: &State) -> Vec<Lookup> {
    let resources = stack.map_or(&[][..], |s| &s.resources[..]);
    let mut order: Vec<u32> = (0..resources.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| {
        resources[a as usize]
            .address
            .cmp(&resources[b as usize].address)
            .then(a.cmp(&b))
    });
    // Resolution refuses duplicate addresses; should one come, keep the first.
    order.dedup_by(|a, b| resources[*a as usize].address == resources[*b as usize].address);
    let orphan = |address: &Address, owned: &ResourceState| Lookup {
        address: address.clone(),
        id: Some(owned.id.clone()),
        identity: None,
        identity_attr: None,
        unique: None,
    };
    let mut wanted: Vec<Lookup> = Vec::with_capacity(order.len() + state.resources.len());
    let mut records = state.resources.iter().peekable();
    let mut schemas = SchemaCache::default();
    for &i in &order {
        let r = &resources[i as usize];
        let mut owned = None;
        while let Some((address, record)) = records.peek() {
            match (*address).cmp(&r.address) {
                std::cmp::Ordering::Less => wanted.push(orphan(address, record)),
                std::cmp::Ordering::Equal => owned = Some(*record),
                std::cmp::Ordering::Greater => break,
            }
            records.next();
            if owned.is_some() {
                break;
            }
        }
        let identity_attr = schemas.get(&r.address.type_name).and_then(|s| s.identity);
        let identity = identity_attr.and_then(|attr| known_string(r.attrs.get(attr)?));
        // The unique name matters only where the policy chain may run:
        // for objects state does not manage yet (or only reuses).
        let chain_may_run = owned.is_none_or(|o| o.ownership == Ownership::Reused);
        let unique = match (
            &identity,
            r.if_exists.contains(&Policy::Unique) && chain_may_run,
        ) {
            (Some(name), true) => stack.map(|stack| unique_name(stack, &r.address, name)),
            _ => None,
        };
        wanted.push(Lookup {
            address: r.address.clone(),
            id: owned.map(|o| o.id.clone()),
            identity,
            identity_attr: identity_attr.map(str::to_string),
            unique,
        });
    }
    wanted.extend(records.map(|(address, record)| orphan(address, record)));
    wanted
}

/// What a `list` call returns: every object of a type, or `None` when the
/// provider cannot list it.
type Listed = Result<Option<Vec<Arc<LiveObject>>>, ProviderError>;

/// Whether a type with this many lookups is listed rather than read object
/// by object: one list call answers two lookups or more.
fn worth_listing(lookups: usize) -> bool {
    lookups > 1
}

/// `list` calls running in the background, one per type, so that the
/// lists of different types overlap, and the lists of a stack's types
/// overlap the state's load ([`prefetch`]). Dropping it cancels the calls
/// still running (a read that failed ends the plan).
#[derive(Default)]
pub struct Listings {
    running: FastMap<String, JoinHandle<Listed>>,
}

/// Starts listing, in the background, every type of which `stack` has more
/// than one resource: the lists [`read_live_with`] would make for them,
/// started before the state is loaded (they need only the providers).
/// Reads of a single object wait for their lookup, which needs the state's
/// ids.
pub fn prefetch(stack: &Stack, providers: &Providers) -> Listings {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &stack.resources {
        *counts.entry(r.address.type_name.as_str()).or_default() += 1;
    }
    let mut listings = Listings::default();
    for (type_name, count) in counts {
        if worth_listing(count)
            && let Some(provider) = providers.for_type(type_name)
        {
            listings.spawn(type_name, provider);
        }
    }
    listings
}

impl Listings {
    /// Starts listing `type_name`, unless its list is already running.
    fn spawn(&mut self, type_name: &str, provider: &Arc<dyn Provider>) {
        if self.running.contains_key(type_name) {
            return;
        }
        let provider = provider.clone();
        let name = type_name.to_string();
        let handle = tokio::spawn(async move { provider.list_shared(&name).await });
        self.running.insert(type_name.to_string(), handle);
    }

    /// The result of listing `type_name`: of the call started in the
    /// background, else of one made now.
    async fn take(&mut self, type_name: &str, provider: &Arc<dyn Provider>) -> Listed {
        match self.running.remove(type_name) {
            Some(handle) => handle.await.unwrap_or_else(|join| {
                Err(ProviderError::fatal(format!("a list task failed: {join}")))
            }),
            None => provider.list_shared(type_name).await,
        }
    }
}

impl Drop for Listings {
    fn drop(&mut self) {
        for handle in self.running.values() {
            handle.abort();
        }
    }
}

/// Performs the reads. When several types are listed, every `list` is
/// started before any is awaited, so they run concurrently.
pub async fn read_live(lookups: &[Lookup], providers: &Providers) -> Result<Live, RefreshError> {
    read_live_with(lookups, providers, Listings::default()).await
}

/// [`read_live`], taking the lists `started` already made or is making
/// instead of listing those types again.
pub async fn read_live_with(
    lookups: &[Lookup],
    providers: &Providers,
    started: Listings,
) -> Result<Live, RefreshError> {
    let mut by_type: BTreeMap<&str, Vec<&Lookup>> = BTreeMap::new();
    for w in lookups {
        by_type
            .entry(w.address.type_name.as_str())
            .or_default()
            .push(w);
    }
    // A single list not started ahead is made in place, on this thread.
    let listed: Vec<&str> = by_type
        .iter()
        .filter(|(t, items)| worth_listing(items.len()) && providers.for_type(t).is_some())
        .map(|(t, _)| *t)
        .collect();
    let mut listings = started;
    if listed.len() > 1 {
        for type_name in listed {
            if let Some(provider) = providers.for_type(type_name) {
                listings.spawn(type_name, provider);
            }
        }
    }
    // Built at once from sorted entries: inserting 100,000 addresses one by
    // one into a tree costs a cache miss per level.
    let mut listed_entries = Vec::new();
    let mut singles: Vec<(Arc<dyn Provider>, Lookup)> = Vec::new();
    for (type_name, items) in by_type {
        let Some(provider) = providers.for_type(type_name) else {
            continue;
        };
        let listed = if worth_listing(items.len()) {
            listings
                .take(type_name, provider)
                .await
                .map_err(|error| RefreshError {
                    address: items[0].address.clone(),
                    operation: Operation::List,
                    error,
                })?
        } else {
            None
        };
        match listed {
            Some(objects) => {
                let identity_attr = type_schema(type_name).ok().and_then(|s| s.identity);
                let index = ListIndex::new(objects, identity_attr);
                listed_entries.extend(
                    items
                        .into_iter()
                        .map(|w| (w.address.clone(), index.entry(w))),
                );
            }
            None => singles.extend(items.into_iter().map(|w| (provider.clone(), w.clone()))),
        }
    }

    listed_entries.sort_unstable_by(|a: &(Address, _), b| a.0.cmp(&b.0));
    let mut live: Live = listed_entries.into_iter().collect();
    let mut tasks = JoinSet::new();
    let mut pending = singles.into_iter();
    loop {
        while tasks.len() < READ_CONCURRENCY {
            let Some((provider, w)) = pending.next() else {
                break;
            };
            tasks.spawn(async move {
                read_one(provider.as_ref(), &w)
                    .await
                    .map(|e| (w.address, e))
            });
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        match joined {
            Ok(Ok((address, entry))) => {
                live.insert(address, entry);
            }
            Ok(Err(e)) => return Err(e),
            Err(join) => {
                return Err(RefreshError {
                    address: Address::new("unknown_type", "unknown"),
                    operation: Operation::Read,
                    error: ProviderError::fatal(format!("a read task failed: {join}")),
                });
            }
        }
    }
    Ok(live)
}

async fn read_one(provider: &dyn Provider, w: &Lookup) -> Result<LiveEntry, RefreshError> {
    let fail = |operation| {
        move |error| RefreshError {
            address: w.address.clone(),
            operation,
            error,
        }
    };
    let mut entry = LiveEntry::default();
    if let Some(id) = &w.id {
        entry.by_id = provider
            .read(&w.address, id)
            .await
            .map_err(fail(Operation::Read))?
            .map(Arc::new);
    }
    if let Some(identity) = &w.identity {
        let same = entry
            .by_id
            .as_ref()
            .is_some_and(|o| identity_matches(o, w.identity_attr.as_deref(), identity));
        if !same {
            entry.by_identity = provider
                .find(&w.address, identity)
                .await
                .map_err(fail(Operation::Find))?
                .map(Arc::new);
        }
    }
    if let Some(unique) = &w.unique {
        entry.by_unique_name = provider
            .find(&w.address, unique)
            .await
            .map_err(fail(Operation::Find))?
            .map(Arc::new);
    }
    Ok(entry)
}

/// Whether the object read by id already is the one holding the identity
/// (then no `find` is needed).
fn identity_matches(obj: &LiveObject, attr: Option<&str>, identity: &str) -> bool {
    attr.and_then(|a| obj.attributes.get(a))
        .and_then(Value::as_str)
        == Some(identity)
}

fn known_string(v: &Value) -> Option<String> {
    if !template::is_known(v) {
        return None;
    }
    match template::finalize(v) {
        Value::String(s) => Some(s),
        other => Some(template::display_scalar(&other)),
    }
}

/// Objects of one type, indexed for lookups by id and identity. Entries
/// share the listed objects: no lookup copies one.
struct ListIndex<'a> {
    objects: Vec<Arc<LiveObject>>,
    identity_attr: Option<&'a str>,
    /// Positions in `objects` by id, and by identity (the last object of
    /// an id or identity wins, as in a map filled in list order).
    by_id: Positions,
    by_identity: Positions,
}

/// An object's identity: the string value of its identity attribute.
fn identity_of<'o>(obj: &'o LiveObject, identity_attr: Option<&str>) -> Option<&'o str> {
    obj.attributes.get(identity_attr?).and_then(Value::as_str)
}

/// The key of `by_id` at a position of `objects`.
fn id_key<'o>(objects: &'o [Arc<LiveObject>]) -> impl Fn(u32) -> &'o str {
    move |i| objects[i as usize].id.as_str()
}

/// The key of `by_identity` at a position of `objects` (only objects with
/// an identity are in it).
fn identity_key<'o>(
    objects: &'o [Arc<LiveObject>],
    identity_attr: Option<&'o str>,
) -> impl Fn(u32) -> &'o str {
    move |i| identity_of(&objects[i as usize], identity_attr).unwrap_or_default()
}

impl<'a> ListIndex<'a> {
    fn new(objects: Vec<Arc<LiveObject>>, identity_attr: Option<&'a str>) -> ListIndex<'a> {
        let mut by_identity = Positions::with_capacity(objects.len());
        let mut by_id = Positions::with_capacity(objects.len());
        for (i, obj) in objects.iter().enumerate() {
            if let Some(name) = identity_of(obj, identity_attr) {
                by_identity.insert(name, i as u32, identity_key(&objects, identity_attr));
            }
            by_id.insert(obj.id.as_str(), i as u32, id_key(&objects));
        }
        ListIndex {
            objects,
            identity_attr,
            by_id,
            by_identity,
        }
    }

    fn find(&self, identity: &str) -> Option<Arc<LiveObject>> {
        let at = identity_key(&self.objects, self.identity_attr);
        let i = self.by_identity.get(identity, at)?;
        Some(self.objects[i as usize].clone())
    }

    fn by_id(&self, id: &str) -> Option<Arc<LiveObject>> {
        let i = self.by_id.get(id, id_key(&self.objects))?;
        Some(self.objects[i as usize].clone())
    }

    /// The entry for one lookup.
    fn entry(&self, w: &Lookup) -> LiveEntry {
        let by_id = w.id.as_deref().and_then(|id| self.by_id(id));
        let by_identity = match (&w.identity, &by_id) {
            (Some(identity), Some(obj))
                if identity_matches(obj, w.identity_attr.as_deref(), identity) =>
            {
                None
            }
            (Some(identity), _) => self.find(identity),
            (None, _) => None,
        };
        let by_unique_name = w.unique.as_ref().and_then(|u| self.find(u));
        LiveEntry {
            by_id,
            by_identity,
            by_unique_name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> ResourceState {
        ResourceState {
            id: id.into(),
            ownership: Ownership::Created,
            attributes: Default::default(),
            depends_on: Vec::new(),
            identity: None,
        }
    }

    #[test]
    fn lookups_merge_the_stack_with_state_in_address_order() {
        let text = r#"
[stack]
name = "s"
[resource.sim_x.d]
name = "dee"
if_exists = ["unique"]
[resource.sim_x.b]
name = "bee"
[resource.sim_x.c]
name = "cee"
if_exists = ["unique"]
"#;
        let raw = crate::stack::parse("stack.toml", text.to_string()).unwrap();
        let stack = crate::model::resolve(&raw, &Default::default()).unwrap();
        let mut state = State::new("s", "default");
        for name in ["a", "c", "e"] {
            state
                .resources
                .insert(Address::new("sim_x", name), record(&format!("id-{name}")));
        }
        let wanted = lookups(Some(&stack), &state);
        let names: Vec<&str> = wanted.iter().map(|w| w.address.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "d", "e"]);
        let ids: Vec<Option<&str>> = wanted.iter().map(|w| w.id.as_deref()).collect();
        assert_eq!(ids, [Some("id-a"), None, Some("id-c"), None, Some("id-e")]);
        // Only the stack's resources have an identity to look for.
        assert_eq!(wanted[1].identity.as_deref(), Some("bee"));
        assert_eq!(wanted[1].identity_attr.as_deref(), Some("name"));
        assert_eq!(wanted[0].identity, None);
        // `c` is managed: its unique name cannot be needed; `d` is not.
        assert_eq!(wanted[2].unique, None);
        assert!(
            wanted[3]
                .unique
                .as_deref()
                .is_some_and(|u| u.starts_with("dee-"))
        );
        // Without a stack (destroy), state alone.
        let names: Vec<String> = lookups(None, &state)
            .into_iter()
            .map(|w| w.address.name)
            .collect();
        assert_eq!(names, ["a", "c", "e"]);
    }
}
