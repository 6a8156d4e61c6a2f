//! The `sim` provider: a simulated cloud kept in a JSON "world" file, so
//! the whole engine (plans, parallel applies, rollbacks, adoption of
//! pre-existing objects, 100,000-resource runs) can be exercised and
//! demonstrated without any cloud account.
//!
//! Every `sim_*` type exists; an object's identity is its `name`, its id is
//! `<type>-<name>-<6 base-36 chars>` and its arn `arn:sim:<type>:<name>`.
//! Settings: `world` (path, default `.cairn/world.json` beside the stack),
//! `latency_ms` and `jitter_ms` (delay every call, on time: see `clock.rs`), `fail` (a list of
//! `"TYPE.NAME:operation"` to make fail), `latency_log` (a file that
//! receives, when the run ends, the delay drawn for each resource's calls:
//! the benchmark computes the physical limit of a run from it). See
//! [`store`] for how several processes share one world.

mod clock;
mod store;
mod world;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use super::registry::ProviderContext;
use super::*;
use crate::model::Attrs;
use clock::Clock;
use store::Store;
use world::{LogEntry, World, WorldObject};

/// The caller's own copy of a stored object.
fn owned(stored: &world::Stored) -> LiveObject {
    LiveObject::clone(&stored.live)
}

/// Where the world lives when `world` is not set, relative to the stack's folder.
pub const DEFAULT_WORLD: &str = ".cairn/world.json";

/// Every `sim_*` type exists: open attributes, identity `name` (required,
/// forces replacement), computed `id` and `arn`.
pub fn schema(type_name: &str) -> Option<TypeSchema> {
    let rest = type_name.strip_prefix("sim_")?;
    if rest.is_empty() {
        return None;
    }
    Some(TypeSchema {
        type_name: type_name.to_string(),
        attributes: None,
        identity: Some("name"),
        computed: vec!["id", "arn"],
        force_new: vec!["name"],
    })
}

/// The sim provider has no fixed list of types.
pub fn type_names() -> Vec<String> {
    Vec::new()
}

/// Settings of `[provider.sim]`.
pub const SETTINGS: &[&str] = &["world", "latency_ms", "jitter_ms", "fail", "latency_log"];

pub fn validate_config(settings: &Attrs) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for (key, value) in settings {
        let ok = match key.as_str() {
            "world" | "latency_log" => value.is_string(),
            "latency_ms" | "jitter_ms" => value.as_u64().is_some(),
            "fail" => value.as_array().is_some_and(|items| {
                items.iter().all(|i| {
                    i.as_str()
                        .and_then(|s| s.rsplit_once(':'))
                        .is_some_and(|(addr, op)| {
                            addr.parse::<Address>().is_ok()
                                && matches!(op, "create" | "update" | "delete" | "read" | "find")
                        })
                })
            }),
            _ => {
                problems.push((
                    key.clone(),
                    format!(
                        "unknown setting `{key}` of provider `sim`: known settings are {}",
                        SETTINGS.join(", ")
                    ),
                ));
                continue;
            }
        };
        if !ok {
            let expected = match key.as_str() {
                "world" | "latency_log" => "a path (string)",
                "latency_ms" | "jitter_ms" => "a non-negative integer (milliseconds)",
                _ => {
                    "a list of \"TYPE.NAME:operation\" strings (operation: create, update, delete, read, find)"
                }
            };
            problems.push((key.clone(), format!("`{key}` must be {expected}")));
        }
    }
    problems
}

/// `name` is required and, once known, must be a non-empty string.
pub fn validate(_address: &Address, attrs: &Attrs) -> Vec<(String, String)> {
    match attrs.get("name") {
        None => vec![(
            "name".into(),
            "sim resources need a `name` (their identity)".into(),
        )],
        Some(v) if !crate::model::template::is_known(v) => Vec::new(),
        Some(serde_json::Value::String(s)) if !s.is_empty() => Vec::new(),
        Some(_) => vec![("name".into(), "`name` must be a non-empty string".into())],
    }
}

/// The simulated cloud. Cheap to call concurrently: each call takes a
/// process-local mutex and, unless this process's lease of it still runs,
/// the world's file lock for a few system calls (see [`store`]).
pub struct SimProvider {
    store: Arc<Store>,
    latency_ms: u64,
    jitter_ms: u64,
    /// `"TYPE.NAME:operation"` entries of `fail`.
    fail: HashSet<String>,
    /// xorshift state for jitter and id suffixes.
    rng: AtomicU64,
    /// Where to write the drawn delays, and the delays so far (address →
    /// milliseconds, summed over its calls).
    latency_log: Option<(std::path::PathBuf, std::sync::Mutex<HashMap<String, u64>>)>,
    /// Keeps the delays on time (tokio's timers fire late).
    clock: Clock,
}

impl SimProvider {
    /// Reads the settings (the checks of [`validate_config`]); touches no
    /// file: the world is loaded by the first call.
    pub fn new(settings: &Attrs, ctx: &ProviderContext) -> Result<Self, String> {
        if let Some((_, message)) = validate_config(settings).into_iter().next() {
            return Err(message);
        }
        let world = settings
            .get("world")
            .and_then(|v| v.as_str())
            .unwrap_or(DEFAULT_WORLD);
        let millis = |key: &str| settings.get(key).and_then(|v| v.as_u64()).unwrap_or(0);
        let fail = settings
            .get("fail")
            .and_then(|v| v.as_array())
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ (u64::from(std::process::id()) << 32);
        Ok(SimProvider {
            store: Arc::new(Store::new(ctx.dir.join(world))),
            latency_ms: millis("latency_ms"),
            jitter_ms: millis("jitter_ms"),
            fail,
            rng: AtomicU64::new(seed | 1),
            latency_log: settings
                .get("latency_log")
                .and_then(|v| v.as_str())
                .map(|p| (ctx.dir.join(p), std::sync::Mutex::new(HashMap::new()))),
            clock: Clock::default(),
        })
    }

    /// The world file this provider uses.
    pub fn world_path(&self) -> &std::path::Path {
        self.store.world_path()
    }

    fn next_random(&self) -> u64 {
        let mut x = self.rng.load(Ordering::Relaxed);
        loop {
            let mut y = x;
            y ^= y << 13;
            y ^= y >> 7;
            y ^= y << 17;
            match self
                .rng
                .compare_exchange_weak(x, y, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return y,
                Err(current) => x = current,
            }
        }
    }

    /// The simulated network: latency, jitter, injected failures.
    async fn call(&self, address: Option<&Address>, op: Operation) -> Result<(), ProviderError> {
        let mut delay = self.latency_ms;
        if self.jitter_ms > 0 {
            delay += self.next_random() % (self.jitter_ms + 1);
        }
        // Only changes: an apply's makespan is made of them (reads happen
        // while planning).
        let change = matches!(
            op,
            Operation::Create | Operation::Update | Operation::Delete
        );
        if let (Some((_, log)), Some(address), true) = (&self.latency_log, address, change) {
            *log.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(address.to_string())
                .or_default() += delay;
        }
        if delay > 0 {
            self.clock.sleep(Duration::from_millis(delay)).await;
        }
        if let Some(address) = address.filter(|_| !self.fail.is_empty())
            && self.fail.contains(&format!("{address}:{op}"))
        {
            return Err(ProviderError::fatal(format!(
                "injected failure: {address} {op}"
            )));
        }
        Ok(())
    }

    /// A fresh id for `<type>-<name>`, unused in `world`.
    fn new_id(&self, world: &World, type_name: &str, name: &str) -> String {
        loop {
            let mut n = self.next_random();
            let mut suffix = String::with_capacity(6);
            for _ in 0..6 {
                suffix.push(char::from(
                    b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize],
                ));
                n /= 36;
            }
            let id = format!("{type_name}-{name}-{suffix}");
            if !world.contains_id(&id) {
                return id;
            }
        }
    }
}

/// The name in a request's attributes.
fn request_name<'a>(address: &Address, attrs: &'a Attrs) -> Result<&'a str, ProviderError> {
    match attrs.get("name").and_then(|v| v.as_str()) {
        Some(name) if !name.is_empty() => Ok(name),
        _ => Err(ProviderError::fatal(format!(
            "{address}: sim resources need a non-empty string `name`"
        ))),
    }
}

/// The object a write just stored under `id`, as the caller's own copy.
fn written(id: String, world: &World) -> Result<LiveObject, ProviderError> {
    world.get_by_id(&id).map(owned).ok_or_else(|| {
        ProviderError::fatal(format!(
            "sim world: the object `{id}` just written is missing"
        ))
    })
}

/// Input attributes as stored: without the computed `id` and `arn`.
fn stored_attributes(attrs: &Attrs) -> Attrs {
    let mut attrs = attrs.clone();
    attrs.remove("id");
    attrs.remove("arn");
    attrs
}

#[async_trait]
impl Provider for SimProvider {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn schema(&self, type_name: &str) -> Option<TypeSchema> {
        schema(type_name)
    }

    async fn read(&self, address: &Address, id: &str) -> Result<Option<LiveObject>, ProviderError> {
        self.call(Some(address), Operation::Read).await?;
        self.store.read(&self.clock, |world| {
            world.get_typed(&address.type_name, id).map(owned)
        })
    }

    async fn find(
        &self,
        address: &Address,
        identity: &str,
    ) -> Result<Option<LiveObject>, ProviderError> {
        self.call(Some(address), Operation::Find).await?;
        self.store.read(&self.clock, |world| {
            world.find(&address.type_name, identity).map(owned)
        })
    }

    async fn list(&self, type_name: &str) -> Result<Option<Vec<LiveObject>>, ProviderError> {
        Ok(self.list_shared(type_name).await?.map(|objects| {
            objects
                .into_iter()
                .map(|o| Arc::try_unwrap(o).unwrap_or_else(|o| LiveObject::clone(&o)))
                .collect()
        }))
    }

    /// The world's own objects, not copies.
    async fn list_shared(
        &self,
        type_name: &str,
    ) -> Result<Option<Vec<Arc<LiveObject>>>, ProviderError> {
        self.call(None, Operation::List).await?;
        self.store
            .read(&self.clock, |world| Some(world.list(type_name)))
    }

    async fn create(&self, request: &CreateRequest) -> Result<LiveObject, ProviderError> {
        let address = &request.address;
        self.call(Some(address), Operation::Create).await?;
        let name = request_name(address, &request.attributes)?;
        self.store.write(
            &self.clock,
            |world| {
                if let Some(existing) = world.find(&address.type_name, name) {
                    return Err(ProviderError::fatal(format!(
                        "{address}: a {} named `{name}` already exists (id {})",
                        address.type_name,
                        existing.id()
                    )));
                }
                let object = WorldObject {
                    type_name: address.type_name.clone(),
                    id: self.new_id(world, &address.type_name, name),
                    attributes: stored_attributes(&request.attributes),
                    tags: request.tags.clone(),
                };
                Ok((object.id.clone(), vec![LogEntry::Put { object }]))
            },
            written,
        )?
    }

    async fn update(&self, request: &UpdateRequest) -> Result<LiveObject, ProviderError> {
        let address = &request.address;
        self.call(Some(address), Operation::Update).await?;
        self.store.write(&self.clock, |world| {
            let Some(old) = world.get_typed(&address.type_name, &request.id) else {
                return Err(ProviderError::not_found(format!(
                    "{address}: no sim object has the id `{}`",
                    request.id
                )));
            };
            let mut attributes = stored_attributes(&request.after);
            match attributes.get("name") {
                None => {
                    if let Some(name) = old.live.attributes.get("name") {
                        attributes.insert("name".into(), name.clone());
                    }
                }
                Some(name) if name.as_str() != old.name() => {
                    return Err(ProviderError::fatal(format!(
                        "{address}: the name of a sim object cannot change in place (it must be replaced)"
                    )));
                }
                Some(_) => {}
            }
            let mut tags = old.live.tags.clone();
            tags.extend(request.tags.clone());
            let object = WorldObject {
                type_name: old.type_name.clone(),
                id: old.live.id.clone(),
                attributes,
                tags,
            };
            Ok((object.id.clone(), vec![LogEntry::Put { object }]))
        }, written)?
    }

    async fn delete(&self, request: &DeleteRequest) -> Result<(), ProviderError> {
        self.call(Some(&request.address), Operation::Delete).await?;
        self.store.write(
            &self.clock,
            |world| {
                let entries = if world
                    .get_typed(&request.address.type_name, &request.id)
                    .is_some()
                {
                    vec![LogEntry::Remove {
                        id: request.id.clone(),
                    }]
                } else {
                    Vec::new()
                };
                Ok(((), entries))
            },
            |(), _| (),
        )
    }

    /// Compacts the change log into the world file.
    async fn finish(&self) -> Result<(), ProviderError> {
        if let Some((path, log)) = &self.latency_log {
            let drawn = std::mem::take(
                &mut *log
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            let text = serde_json::to_vec(&drawn).unwrap_or_default();
            std::fs::write(path, text).map_err(|e| {
                ProviderError::fatal(format!("write the latency log {}: {e}", path.display()))
            })?;
        }
        self.store.compact(&self.clock)
    }
}
