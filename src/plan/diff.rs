//! The diff engine: (Stack × State × Live) → Plan. Pure: no IO, no provider
//! calls; everything it knows of the world comes in as [`Live`].
//!
//! Resources are decided in dependency order, so that when a resource is
//! decided, every value it references is either known (the dependency stays
//! as it is, or only its inputs change) or marked "known after apply".

use std::collections::BTreeMap;

use crate::hash::{FastMap, FastSet};
use std::sync::Arc;

use super::{
    Action, ActionKind, Basis, Live, LiveEntry, PLAN_FORMAT_VERSION, Plan, PlannedCheck, Step,
    Summary, Unchanged,
};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::graph::DepGraph;
use crate::hash::{Fnv64, unique_suffix};
use crate::model::template::{self, Ref};
use crate::model::{Address, Attrs, Policy, Resource, Stack, Value};
use crate::provider::{LiveObject, SchemaCache, TypeSchema, normalize};
use crate::state::{Ownership, ResourceState, State};

/// What the diff compares.
pub struct DiffInput<'a> {
    pub stack: &'a Stack,
    /// The stack's dependency graph (from [`crate::model::dependency_graph`]).
    pub graph: &'a DepGraph,
    pub state: &'a State,
    pub live: &'a Live,
}

/// The unique name `unique` gives a resource whose identity is `name`.
pub fn unique_name(stack: &Stack, address: &Address, name: &str) -> String {
    format!(
        "{name}-{}",
        unique_suffix(&stack.name, &stack.env, &address.to_string())
    )
}

/// Computes the plan that makes the world match the stack.
///
/// Fails (with diagnostics pointing at the resources) when an existing object
/// blocks a resource and its `if_exists` chain has no way forward.
pub fn diff(input: &DiffInput<'_>) -> Result<Plan, Diagnostics> {
    let stack = input.stack;
    let mut schemas = SchemaCache::default();
    // What dependents read of each decided resource; the actions and the
    // unchanged resources go straight to the plan's maps.
    let mut decided: Decided<'_> =
        FastMap::with_capacity_and_hasher(stack.resources.len(), Default::default());
    let mut diagnostics = Diagnostics::default();

    // Apply reads the values of unchanged resources only where something
    // references them: keep just those in the plan.
    let mut referenced: FastSet<Address> = FastSet::default();
    let mut note = |r: &Ref| {
        if let Ref::Resource { address, .. } = r
            && !referenced.contains(address)
        {
            referenced.insert(address.clone());
        }
    };
    for r in &stack.resources {
        r.attrs
            .values()
            .for_each(|v| template::for_each_ref(v, &mut note));
    }
    stack
        .outputs
        .values()
        .for_each(|v| template::for_each_ref(v, &mut note));
    for c in &stack.checks {
        template::for_each_ref(&Value::String(c.command.clone()), &mut note);
    }
    // Gathered in the graph's order, then each map built at once from its
    // sorted entries: at 100,000 resources inserting one by one into a
    // tree costs a cache miss per level.
    // Room for every resource up front: growing them copies what they
    // hold into fresh memory, the costliest thing on a large plan.
    let mut actions: Vec<(Address, Action)> = Vec::with_capacity(stack.resources.len());
    let mut unchanged = Vec::with_capacity(stack.resources.len());
    // How many of the stack's resources state records (when all of them,
    // nothing in state is gone from the stack).
    let mut in_state = 0;

    for node in input.graph.topological() {
        let address = input.graph.address(*node);
        // The graph numbers the stack's resources in order (a stack that
        // repeated an address, which parsing refuses, is searched instead).
        let Some(resource) = stack
            .resources
            .get(node.index())
            .filter(|r| r.address == *address)
            .or_else(|| stack.resources.iter().find(|r| r.address == *address))
        else {
            continue;
        };
        let schema = schemas.get(&address.type_name);
        let owned = input.state.resources.get(address);
        in_state += usize::from(owned.is_some());
        match decide(input, resource, owned, schema, &decided) {
            Ok(d) => {
                match (d.action, d.unchanged) {
                    (Some(action), _) => {
                        actions.push((address.clone(), action));
                    }
                    (None, Some(mut u)) => {
                        if referenced.contains(address) {
                            let live = input.live.get(address).and_then(|l| l.by_id.as_ref());
                            u.attributes = live.map(|o| o.attributes.clone()).unwrap_or_default();
                        }
                        unchanged.push((address.clone(), u));
                    }
                    (None, None) => {}
                }
                decided.insert(
                    address,
                    Seen {
                        known: d.known,
                        skipped: d.skipped,
                    },
                );
            }
            Err(d) => {
                diagnostics.push(*d);
                // Dependents see it as unknown and are still checked.
                decided.insert(
                    address,
                    Seen {
                        known: Known::Template(Attrs::new()),
                        skipped: false,
                    },
                );
            }
        }
    }
    drop(decided);
    if diagnostics.has_errors() {
        return Err(diagnostics);
    }

    // Objects in state that the stack no longer declares.
    let mut forget = Vec::new();
    let gone = input.state.resources.len() > in_state;
    let in_stack = |address: &Address| input.graph.node(address).is_some();
    for (address, owned) in input.state.resources.iter().filter(|_| gone) {
        if in_stack(address) {
            continue;
        }
        if owned.ownership == Ownership::Reused {
            forget.push(address.clone());
            continue;
        }
        let live = input.live.get(address).and_then(|l| l.by_id.as_ref());
        match live {
            Some(obj) => {
                actions.push((
                    address.clone(),
                    delete_action(address, owned, obj, "no longer in the stack"),
                ));
            }
            None => forget.push(address.clone()),
        }
    }

    let mut plan = assemble(
        stack,
        sorted_map(actions),
        input.state,
        input.live,
        if gone {
            orphan_edges(input.state, in_stack)
        } else {
            Vec::new()
        },
    )?;
    plan.unchanged = sorted_map(unchanged);
    plan.forget = forget;
    plan.checks = stack
        .checks
        .iter()
        .map(|c| PlannedCheck {
            name: c.name.clone(),
            command: Value::String(c.command.clone()),
            retries: c.retries,
            interval_s: c.interval_s,
        })
        .collect();
    plan.outputs = stack.outputs.clone();
    plan.summary.unchanged = plan.unchanged.len();
    Ok(plan)
}

/// The plan that deletes everything this stack manages (and forgets what it
/// reused), in reverse dependency order.
pub fn destroy(stack: &Stack, state: &State, live: &Live) -> Result<Plan, Diagnostics> {
    let mut actions = BTreeMap::new();
    let mut forget = Vec::new();
    for (address, owned) in &state.resources {
        let obj = live.get(address).and_then(|l| l.by_id.as_ref());
        match (owned.ownership.is_managed(), obj) {
            (true, Some(obj)) => {
                actions.insert(
                    address.clone(),
                    delete_action(address, owned, obj, "destroying the stack"),
                );
            }
            _ => forget.push(address.clone()),
        }
    }
    let mut plan = assemble(stack, actions, state, live, orphan_edges(state, |_| false))?;
    plan.destroy = true;
    plan.forget = forget;
    Ok(plan)
}

/// Dependencies among objects being deleted: (dependent, dependency) as recorded in state.
fn orphan_edges(state: &State, in_stack: impl Fn(&Address) -> bool) -> Vec<(Address, Address)> {
    let mut edges = Vec::new();
    for (address, owned) in &state.resources {
        if in_stack(address) {
            continue;
        }
        for dep in &owned.depends_on {
            edges.push((address.clone(), dep.clone()));
        }
    }
    edges
}

/// A map built at once from entries with distinct keys (sorted first).
fn sorted_map<V>(mut entries: Vec<(Address, V)>) -> BTreeMap<Address, V> {
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    entries.into_iter().collect()
}

/// Orders the actions into steps and fills in the plan's bookkeeping.
fn assemble(
    stack: &Stack,
    mut actions: BTreeMap<Address, Action>,
    state: &State,
    live: &Live,
    delete_edges: Vec<(Address, Address)>,
) -> Result<Plan, Diagnostics> {
    let nodes: Vec<Address> = actions.keys().cloned().collect();
    // Creates and updates wait for their dependencies; a delete goes before
    // whatever the deleted object depended on.
    let mut edges: Vec<(Address, Address)> = Vec::new();
    for action in actions.values() {
        if action.action != ActionKind::Delete {
            for dep in &action.depends_on {
                edges.push((action.address.clone(), dep.clone()));
            }
        }
    }
    for (dependent, dependency) in delete_edges {
        if actions.contains_key(&dependent) && actions.contains_key(&dependency) {
            // Both deleted: the dependent goes first.
            edges.push((dependency, dependent));
        } else if actions.contains_key(&dependent) {
            edges.push((dependency, dependent));
        }
    }
    let graph = DepGraph::new(nodes, edges).map_err(|cycle| {
        let path: Vec<String> = cycle.path.iter().map(ToString::to_string).collect();
        Diagnostics::from(
            Diagnostic::error(
                "cairn::state_cycle",
                format!(
                    "the state records a dependency cycle among objects to delete: {}",
                    path.join(" → ")
                ),
            )
            .help("the state file was edited by hand; fix its `depends_on` lists"),
        )
    })?;
    let mut steps = Vec::new();
    let mut summary = Summary::default();
    for (i, step_nodes) in graph.steps().into_iter().enumerate() {
        let mut step_actions = Vec::with_capacity(step_nodes.len());
        for node in step_nodes {
            let address = graph.address(node);
            if let Some(mut action) = actions.remove(address) {
                action.depends_on = graph
                    .dependencies(node)
                    .iter()
                    .map(|d| graph.address(*d).clone())
                    .collect();
                action.depends_on.sort();
                summary.count(action.action);
                step_actions.push(action);
            }
        }
        step_actions.sort_by(|a, b| a.address.cmp(&b.address));
        steps.push(Step {
            step: i + 1,
            actions: step_actions,
        });
    }
    Ok(Plan {
        format_version: PLAN_FORMAT_VERSION,
        stack: stack.name.clone(),
        env: stack.env.clone(),
        destroy: false,
        steps,
        summary,
        unchanged: BTreeMap::new(),
        forget: Vec::new(),
        checks: Vec::new(),
        outputs: BTreeMap::new(),
        providers: stack
            .providers
            .iter()
            .map(|(k, v)| (k.clone(), v.settings.clone()))
            .collect(),
        dir: stack.dir.clone(),
        state: stack.state.clone(),
        sensitive_values: stack.sensitive_values.clone(),
        basis: Basis {
            lineage: state.lineage.clone(),
            serial: state.serial,
            live_digest: live_digest(live),
        },
        lookups: Vec::new(),
    })
}

/// A stable hash of everything read from the world.
pub fn live_digest(live: &Live) -> String {
    let mut h = Fnv64::default();
    for (address, entry) in live {
        // The bytes of `TYPE.NAME`, without building the string.
        h.write(address.type_name.as_bytes());
        h.write(b".");
        h.part(address.name.as_bytes());
        for obj in [&entry.by_id, &entry.by_identity, &entry.by_unique_name] {
            match obj {
                Some(o) => {
                    // Serialized straight into the hash; writing to it cannot fail.
                    let _ = serde_json::to_writer(&mut h, &**o);
                    h.part(b"");
                }
                None => h.part(b"-"),
            }
        }
    }
    format!("{:016x}", h.finish())
}

fn delete_action(
    address: &Address,
    owned: &ResourceState,
    obj: &LiveObject,
    reason: &str,
) -> Action {
    Action {
        address: address.clone(),
        action: ActionKind::Delete,
        reason: reason.to_string(),
        depends_on: Vec::new(),
        before: Some(obj.attributes.clone()),
        after: None,
        id: Some(obj.id.clone()),
        identity: owned.identity.clone(),
        unique_name: None,
        ownership: None,
        replace_because: Vec::new(),
    }
}

/// What was decided for one resource, and what its dependents may read.
struct Decision {
    action: Option<Action>,
    unchanged: Option<Unchanged>,
    /// Attribute values known before apply; missing = unknown.
    known: Known,
    skipped: bool,
}

/// Where a resource's values known before apply come from. Reading them
/// from the live object in place (rather than copying every live object)
/// keeps the diff's memory and time proportional to what is referenced.
enum Known {
    /// Computed values, in template form.
    Template(Attrs),
    /// The live object read by id, as it is.
    LiveById,
    /// The live object found by identity, as it is.
    LiveByIdentity,
}

impl Known {
    /// One attribute's value in template form.
    fn get(&self, live: Option<&LiveEntry>, attr: &str) -> Option<Value> {
        let from_live = |obj: &Option<Arc<LiveObject>>| {
            obj.as_ref()?
                .attributes
                .get(attr)
                .map(|v| template::escape_value(v.clone()))
        };
        match self {
            Known::Template(attrs) => attrs.get(attr).cloned(),
            Known::LiveById => from_live(&live?.by_id),
            Known::LiveByIdentity => from_live(&live?.by_identity),
        }
    }
}

/// What dependents read of a decided resource.
struct Seen {
    known: Known,
    skipped: bool,
}

/// The resources decided so far, by address.
type Decided<'a> = FastMap<&'a Address, Seen>;

/// Which live object `found` is, for reading its values in place.
fn known_of(live: Option<&LiveEntry>, found: &LiveObject) -> Known {
    match live.and_then(|l| l.by_identity.as_ref()) {
        Some(obj) if obj.id == found.id => Known::LiveByIdentity,
        _ => Known::LiveById,
    }
}

/// The desired attributes with every reference to a known value filled.
fn desired(resource: &Resource, decided: &Decided<'_>, live: &Live) -> Attrs {
    let mut lookup = |r: &Ref| match r {
        Ref::Resource { address, path } => {
            let d = decided.get(address)?;
            let (first, rest) = path.split_first()?;
            let v = d.known.get(live.get(address), first)?;
            template::lookup_path(&v, rest).cloned()
        }
        _ => None,
    };
    resource
        .attrs
        .iter()
        .map(|(k, v)| (k.clone(), template::substitute(v, &mut lookup)))
        .collect()
}

/// Input attributes whose desired value differs from the live one, compared
/// in the provider's canonical form. Values not yet known count as different.
fn changed_attrs(type_name: &str, after: &Attrs, live: &Attrs) -> Vec<String> {
    if !crate::provider::normalizes(type_name) {
        return after
            .iter()
            .filter(|(k, v)| {
                !template::is_known(v)
                    || !live.get(*k).is_some_and(|l| template::equals_plain(v, l))
            })
            .map(|(k, _)| k.clone())
            .collect();
    }
    let known: Attrs = after
        .iter()
        .filter(|(_, v)| template::is_known(v))
        .map(|(k, v)| (k.clone(), template::finalize(v)))
        .collect();
    let desired = normalize(type_name, &known);
    let live = normalize(type_name, live);
    after
        .keys()
        .filter(|k| match desired.get(*k) {
            Some(v) => live.get(*k) != Some(v),
            None => true,
        })
        .cloned()
        .collect()
}

fn identity_of(schema: Option<&TypeSchema>, after: &Attrs) -> Option<String> {
    let v = after.get(schema?.identity?)?;
    if !template::is_known(v) {
        return None;
    }
    match template::finalize(v) {
        Value::String(s) => Some(s),
        other => Some(template::display_scalar(&other)),
    }
}

/// Values dependents can read: live attributes overlaid with known desired inputs.
fn known_after(live: Option<&Attrs>, after: &Attrs, creates: bool) -> Attrs {
    let mut known = if creates {
        Attrs::new()
    } else {
        live.cloned().unwrap_or_default()
    };
    for (k, v) in after {
        if template::is_known(v) {
            known.insert(k.clone(), v.clone());
        } else {
            known.remove(k);
        }
    }
    known
}

fn escape_attrs(attrs: &Attrs) -> Attrs {
    attrs
        .iter()
        .map(|(k, v)| (k.clone(), template::escape_value(v.clone())))
        .collect()
}

fn decide(
    input: &DiffInput<'_>,
    resource: &Resource,
    owned: Option<&ResourceState>,
    schema: Option<&TypeSchema>,
    decided: &Decided<'_>,
) -> Result<Decision, Box<Diagnostic>> {
    let address = &resource.address;
    let stack = input.stack;
    let mut after = desired(resource, decided, input.live);
    let empty = LiveEntry::default();
    let live = input.live.get(address).unwrap_or(&empty);
    let action = |kind: ActionKind, reason: String, after: &Attrs| Action {
        address: address.clone(),
        action: kind,
        reason,
        depends_on: resource.depends_on.clone(),
        before: None,
        after: Some(after.clone()),
        id: None,
        identity: None,
        unique_name: None,
        ownership: None,
        replace_because: Vec::new(),
    };

    // A dependency that is skipped skips this resource too.
    if let Some(dep) = resource
        .depends_on
        .iter()
        .find(|d| decided.get(*d).is_some_and(|d| d.skipped))
    {
        let mut a = action(
            ActionKind::Skip,
            format!("depends on {dep}, which is skipped"),
            &after,
        );
        a.before = live.by_id.as_ref().map(|o| o.attributes.clone());
        a.id = owned.map(|o| o.id.clone());
        let known = Known::LiveById;
        return Ok(Decision {
            action: Some(a),
            unchanged: None,
            known,
            skipped: true,
        });
    }

    // A resource created under its unique name keeps that name.
    if let (Some(schema), Some(owned)) = (schema, owned)
        && let (Some(id_attr), Some(name)) = (schema.identity, identity_of(Some(schema), &after))
        && owned.identity.as_deref().is_some_and(|i| {
            // Only a `NAME-…` identity can be the unique name.
            i.strip_prefix(name.as_str())
                .is_some_and(|rest| rest.starts_with('-'))
        })
    {
        let unique = unique_name(stack, address, &name);
        if owned.identity.as_deref() == Some(unique.as_str()) {
            after.insert(
                id_attr.to_string(),
                Value::String(template::escape(&unique)),
            );
        }
    }
    let identity = identity_of(schema, &after);

    if let Some(owned) = owned {
        if let Some(obj) = &live.by_id {
            if owned.ownership == Ownership::Reused {
                // Still compatible: nothing to do. Otherwise the chain goes on
                // from the policy after `reuse`.
                let changed = changed_attrs(&address.type_name, &after, &obj.attributes);
                if changed.is_empty() {
                    return Ok(unchanged(owned, obj));
                }
                let rest: Vec<Policy> = resource
                    .if_exists
                    .iter()
                    .skip_while(|p| **p != Policy::Reuse)
                    .skip(1)
                    .copied()
                    .collect();
                return foreign(
                    input, resource, schema, after, identity, obj, &rest, decided, &action,
                );
            }
            let changed = changed_attrs(&address.type_name, &after, &obj.attributes);
            if changed.is_empty() {
                return Ok(unchanged(owned, obj));
            }
            let replace_because: Vec<String> = changed
                .iter()
                .filter(|k| schema.is_some_and(|s| s.forces_replacement(k)))
                .cloned()
                .collect();
            let drifted = changed
                .iter()
                .all(|k| owned.attributes.get(k) != obj.attributes.get(k));
            let (kind, reason) = if !replace_because.is_empty() {
                (
                    ActionKind::Replace,
                    format!("{} forces replacement", list(&replace_because)),
                )
            } else if drifted {
                (
                    ActionKind::Update,
                    format!("drift: {} changed outside cairn", list(&changed)),
                )
            } else {
                (
                    ActionKind::Update,
                    format!("{} changed in the stack", list(&changed)),
                )
            };
            let mut a = action(kind, reason, &after);
            a.before = Some(obj.attributes.clone());
            a.id = Some(obj.id.clone());
            a.identity = identity.clone();
            a.ownership = Some(owned.ownership);
            a.replace_because = replace_because;
            let creates = kind == ActionKind::Replace;
            let known = Known::Template(known_after(
                Some(&escape_attrs(&obj.attributes)),
                &after,
                creates,
            ));
            return Ok(Decision {
                action: Some(a),
                unchanged: None,
                known,
                skipped: false,
            });
        }
        // In state but gone from the world: decided like a new resource.
        return new_resource(
            input, resource, schema, after, identity, live, decided, &action, true,
        );
    }
    new_resource(
        input, resource, schema, after, identity, live, decided, &action, false,
    )
}

fn unchanged(owned: &ResourceState, obj: &LiveObject) -> Decision {
    Decision {
        action: None,
        unchanged: Some(Unchanged {
            id: obj.id.clone(),
            // Filled by `diff` for resources something references.
            attributes: Attrs::new(),
            ownership: owned.ownership,
            depends_on: owned.depends_on.clone(),
            identity: owned.identity.clone(),
        }),
        known: Known::LiveById,
        skipped: false,
    }
}

/// An action on an existing object that stays (adopt, or taking back an
/// object this stack made): dependents read its live values overlaid with
/// the desired inputs.
fn take_over(
    mut a: Action,
    obj: &LiveObject,
    identity: Option<String>,
    ownership: Ownership,
    after: &Attrs,
) -> Decision {
    a.before = Some(obj.attributes.clone());
    a.id = Some(obj.id.clone());
    a.identity = identity;
    a.ownership = Some(ownership);
    let known = Known::Template(known_after(
        Some(&escape_attrs(&obj.attributes)),
        after,
        false,
    ));
    Decision {
        action: Some(a),
        unchanged: None,
        known,
        skipped: false,
    }
}

/// ` and updating `a`, `b`` when attributes change, else nothing.
fn updating(changed: &[String]) -> String {
    if changed.is_empty() {
        String::new()
    } else {
        format!(" and updating {}", list(changed))
    }
}

fn list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

type MakeAction<'f> = dyn Fn(ActionKind, String, &Attrs) -> Action + 'f;

#[allow(clippy::too_many_arguments)]
fn new_resource(
    input: &DiffInput<'_>,
    resource: &Resource,
    schema: Option<&TypeSchema>,
    after: Attrs,
    identity: Option<String>,
    live: &LiveEntry,
    decided: &Decided<'_>,
    action: &MakeAction<'_>,
    was_deleted: bool,
) -> Result<Decision, Box<Diagnostic>> {
    let stack = input.stack;
    let address = &resource.address;
    let create = |reason: &str| {
        let mut a = action(ActionKind::Create, reason.to_string(), &after);
        a.identity = identity.clone();
        a.ownership = Some(Ownership::Created);
        let known = Known::Template(known_after(None, &after, true));
        Decision {
            action: Some(a),
            unchanged: None,
            known,
            skipped: false,
        }
    };
    let gone = if was_deleted {
        "deleted outside cairn: "
    } else {
        ""
    };
    let found = match (&identity, &live.by_identity) {
        (Some(_), Some(obj)) => obj,
        _ => {
            let reason = if was_deleted {
                "deleted outside cairn; re-creating"
            } else {
                "not in state and not found live"
            };
            return Ok(create(reason));
        }
    };
    if found.is_ours(&stack.name, &stack.env, address) {
        // Made by this stack, but state lost track of it: take it back.
        let changed = changed_attrs(&address.type_name, &after, &found.attributes);
        let reason = format!(
            "{gone}found by its cairn tags: taking it back into state{}",
            updating(&changed)
        );
        let a = action(ActionKind::Adopt, reason, &after);
        return Ok(take_over(
            a,
            found,
            identity.clone(),
            Ownership::Created,
            &after,
        ));
    }
    foreign(
        input,
        resource,
        schema,
        after,
        identity,
        found,
        &resource.if_exists,
        decided,
        action,
    )
}

/// A foreign object holds the resource's identity: walk the `if_exists` chain.
#[allow(clippy::too_many_arguments)]
fn foreign(
    input: &DiffInput<'_>,
    resource: &Resource,
    schema: Option<&TypeSchema>,
    mut after: Attrs,
    identity: Option<String>,
    found: &LiveObject,
    chain: &[Policy],
    _decided: &Decided<'_>,
    action: &MakeAction<'_>,
) -> Result<Decision, Box<Diagnostic>> {
    let stack = input.stack;
    let address = &resource.address;
    let name = identity.clone().unwrap_or_default();
    let kind_name = &address.type_name;
    let a_kind = if kind_name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        format!("an {kind_name}")
    } else {
        format!("a {kind_name}")
    };
    let mut refused: Vec<String> = Vec::new();
    let live = input.live.get(address);
    for policy in chain {
        match policy {
            Policy::Fail => break,
            Policy::Reuse => {
                let changed = changed_attrs(&address.type_name, &after, &found.attributes);
                if changed.is_empty() {
                    let mut a = action(
                        ActionKind::Reuse,
                        format!("{a_kind} named `{name}` exists and matches: using it as it is"),
                        &after,
                    );
                    a.before = Some(found.attributes.clone());
                    a.id = Some(found.id.clone());
                    a.identity = identity.clone();
                    a.ownership = Some(Ownership::Reused);
                    let known = known_of(live, found);
                    return Ok(Decision {
                        action: Some(a),
                        unchanged: None,
                        known,
                        skipped: false,
                    });
                }
                refused.push(format!(
                    "reuse: the existing object differs in {}",
                    list(&changed)
                ));
            }
            Policy::Adopt => {
                if found.is_cairn_managed() {
                    let owner = found
                        .tags
                        .get(crate::provider::TAG_ADDRESS)
                        .cloned()
                        .unwrap_or_default();
                    refused.push(format!(
                        "adopt: it belongs to another cairn stack ({} {owner})",
                        found
                            .tags
                            .get(crate::provider::TAG_STACK)
                            .cloned()
                            .unwrap_or_default()
                    ));
                    continue;
                }
                let changed = changed_attrs(&address.type_name, &after, &found.attributes);
                let reason = format!(
                    "{a_kind} named `{name}` exists: taking it over{}",
                    updating(&changed)
                );
                let a = action(ActionKind::Adopt, reason, &after);
                return Ok(take_over(
                    a,
                    found,
                    identity.clone(),
                    Ownership::Adopted,
                    &after,
                ));
            }
            Policy::Unique => {
                let Some(id_attr) = schema.and_then(|s| s.identity) else {
                    refused.push("unique: the type has no name to make unique".into());
                    continue;
                };
                let unique = unique_name(stack, address, &name);
                let at_unique = live.and_then(|l| l.by_unique_name.as_ref());
                after.insert(
                    id_attr.to_string(),
                    Value::String(template::escape(&unique)),
                );
                match at_unique {
                    None => {
                        let mut a = action(
                            ActionKind::CreateUnique,
                            format!(
                                "a foreign {kind_name} named `{name}` exists: creating `{unique}` beside it"
                            ),
                            &after,
                        );
                        a.identity = Some(unique.clone());
                        a.unique_name = Some(unique);
                        a.ownership = Some(Ownership::Created);
                        let known = Known::Template(known_after(None, &after, true));
                        return Ok(Decision {
                            action: Some(a),
                            unchanged: None,
                            known,
                            skipped: false,
                        });
                    }
                    Some(obj) if obj.is_ours(&stack.name, &stack.env, address) => {
                        let reason = format!(
                            "`{unique}` was created by this stack: taking it back into state"
                        );
                        let a = action(ActionKind::Adopt, reason, &after);
                        return Ok(take_over(
                            a,
                            obj,
                            Some(unique.clone()),
                            Ownership::Created,
                            &after,
                        ));
                    }
                    Some(_) => {
                        refused.push(format!("unique: `{unique}` is taken too"));
                        after.insert(id_attr.to_string(), Value::String(template::escape(&name)));
                    }
                }
            }
            Policy::Skip => {
                let mut a = action(
                    ActionKind::Skip,
                    format!(
                        "a foreign {kind_name} named `{name}` exists: skipping it and what depends on it"
                    ),
                    &after,
                );
                a.before = Some(found.attributes.clone());
                a.id = Some(found.id.clone());
                a.identity = identity.clone();
                let known = known_of(live, found);
                return Ok(Decision {
                    action: Some(a),
                    unchanged: None,
                    known,
                    skipped: true,
                });
            }
        }
    }
    let mut d = Diagnostic::error(
        "cairn::exists",
        format!("{address}: {a_kind} named `{name}` already exists (id `{}`) and this stack does not own it", found.id),
    )
    .in_file(&stack.source)
    .label(resource.span.clone(), "declared here");
    d = if refused.is_empty() {
        d.help("set `if_exists` to \"reuse\", \"adopt\", \"unique\" or \"skip\" (or a list of them, tried in order)")
    } else {
        d.help(format!(
            "no policy of `if_exists` applies: {}",
            refused.join("; ")
        ))
    };
    Err(Box::new(d))
}
