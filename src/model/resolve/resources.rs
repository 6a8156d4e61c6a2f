//! Resources: meta keys, attributes checked against the provider's schema,
//! identity clashes, and (once all resources are known) references.

use crate::hash::FastMap;

use super::Ctx;
use super::interp::ResRef;
use crate::diagnostic::suggest::{did_you_mean, help_did_you_mean, list};
use crate::diagnostic::{Diagnostic, Span};
use crate::model::template::{self, Part};
use crate::model::{Address, AttrSpans, Attrs, Policy, Resource, Value, is_identifier};
use crate::provider::{AttrKind, PROVIDERS, TypeSchema, UnknownType, type_schema, validate_attrs};
use crate::stack::{RawKind, RawResource, RawValue};

/// Resources being resolved, with what reference checking needs.
pub(super) struct Resources {
    pub list: Vec<Resource>,
    /// Per resource: references found in its attributes…
    pub refs: Vec<Vec<ResRef>>,
    /// …and its `depends_on` entries with their spans.
    pub explicit: Vec<Vec<(Address, Span)>>,
    /// Per resource: its schema (an index into `type_schemas`), if the type is known.
    pub schemas: Vec<Option<usize>>,
    /// Schemas by index, one per type seen.
    pub type_schemas: Vec<TypeSchema>,
}

const POLICIES: &[&str] = &["fail", "reuse", "adopt", "unique", "skip"];

fn policy(s: &str) -> Option<Policy> {
    Some(match s {
        "fail" => Policy::Fail,
        "reuse" => Policy::Reuse,
        "adopt" => Policy::Adopt,
        "unique" => Policy::Unique,
        "skip" => Policy::Skip,
        _ => return None,
    })
}

/// "a string", "an integer"… for an expected kind.
fn expected(kind: AttrKind) -> &'static str {
    match kind {
        AttrKind::String => "a string",
        AttrKind::Integer => "an integer",
        AttrKind::Number => "a number",
        AttrKind::Bool => "a boolean",
        AttrKind::List => "a list",
        AttrKind::Table => "a table",
        AttrKind::Any => "any value",
    }
}

/// "a string", "an integer"… for a value.
fn found(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Number(n) if n.is_f64() => "a float",
        Value::Number(_) => "an integer",
        Value::Bool(_) => "a boolean",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
        Value::Null => "nothing",
    }
}

fn kind_matches(kind: AttrKind, v: &Value) -> bool {
    match kind {
        AttrKind::String => v.is_string(),
        AttrKind::Integer => v.is_i64() || v.is_u64(),
        AttrKind::Number => v.is_number(),
        AttrKind::Bool => v.is_boolean(),
        AttrKind::List => v.is_array(),
        AttrKind::Table => v.is_object(),
        AttrKind::Any => true,
    }
}

/// Whether `v` is one resource reference and nothing else (so its type is
/// not known until apply).
fn is_single_ref(v: &Value) -> bool {
    match v {
        Value::String(s) if s.contains("${") => {
            matches!(template::parse(s), Ok(p) if matches!(p.as_slice(), [Part::Ref { .. }]))
        }
        _ => false,
    }
}

const NAME_HELP: &str = "use ASCII letters, digits, `_` and `-`, starting with a letter or `_`";

impl Ctx<'_> {
    /// Resolves every `[resource.TYPE.NAME]` (references are checked later,
    /// by [`Resources::check_references`]).
    pub(super) fn resources(&mut self, raw: &crate::stack::RawStack) -> Resources {
        let n = raw.resources.len();
        let mut out = Resources {
            list: Vec::with_capacity(n),
            refs: Vec::with_capacity(n),
            explicit: Vec::with_capacity(n),
            schemas: Vec::with_capacity(n),
            type_schemas: Vec::new(),
        };
        let mut schema_index: FastMap<String, Option<usize>> = FastMap::default();
        // (type's schema, identity value) → index of the resource that
        // claimed it.
        let mut identities: FastMap<(usize, String), usize> =
            FastMap::with_capacity_and_hasher(n, Default::default());
        for r in &raw.resources {
            let valid_type = is_identifier(&r.type_name) && r.type_name.contains('_');
            if !valid_type {
                self.report(
                    Diagnostic::error(
                        "cairn::invalid_name",
                        format!("`{}` is not a valid resource type", r.type_name),
                    )
                    .label(r.type_span.clone(), "not a resource type")
                    .help("types are named PROVIDER_KIND, e.g. `sim_role` or `local_file`"),
                );
            }
            if !is_identifier(&r.name) {
                self.report(
                    Diagnostic::error(
                        "cairn::invalid_name",
                        format!("`{}` is not a valid resource name", r.name),
                    )
                    .label(r.name_span.clone(), "not an identifier")
                    .help(NAME_HELP),
                );
            }
            let schema = if valid_type {
                match schema_index.get(&r.type_name) {
                    Some(i) => *i,
                    None => {
                        let i = match type_schema(&r.type_name) {
                            Ok(s) => {
                                out.type_schemas.push(s);
                                Some(out.type_schemas.len() - 1)
                            }
                            Err(e) => {
                                self.unknown_type(r, &e);
                                None
                            }
                        };
                        schema_index.insert(r.type_name.clone(), i);
                        i
                    }
                }
            } else {
                None
            };
            let ts = schema.map(|i| &out.type_schemas[i]);
            let identity = ts.and_then(|ts| ts.identity);
            let resource = self.resource(r, ts, &mut out.refs, &mut out.explicit);
            if let (Some(id_attr), Some(ts)) = (identity, schema) {
                self.claim_identity(&mut identities, &out.list, &resource, ts, id_attr);
            }
            out.schemas.push(schema);
            out.list.push(resource);
        }
        out
    }

    /// Records the resource's identity; a clash with an earlier resource of
    /// the same type is an error showing both.
    fn claim_identity(
        &mut self,
        identities: &mut FastMap<(usize, String), usize>,
        earlier: &[Resource],
        resource: &Resource,
        schema: usize,
        id_attr: &str,
    ) {
        let Some(v) = resource
            .attrs
            .get(id_attr)
            .filter(|v| template::is_known(v))
        else {
            return;
        };
        let value = template::display_scalar(&template::finalize(v));
        let type_name = &resource.address.type_name;
        let key = (schema, value);
        let Some(&first) = identities.get(&key) else {
            identities.insert(key, earlier.len());
            return;
        };
        let first = &earlier[first];
        let span_of = |r: &Resource| r.attr_spans.get(id_attr).unwrap_or(&r.span).clone();
        self.report(
            Diagnostic::error(
                "cairn::duplicate_identity",
                format!(
                    "`{}` and `{}` both claim the {type_name} with {id_attr} `{}`",
                    first.address, resource.address, key.1
                ),
            )
            .label(span_of(resource), "claimed again here")
            .label(span_of(first), "first claimed here")
            .help(format!("each {type_name} needs its own `{id_attr}`")),
        );
    }

    fn unknown_type(&mut self, r: &RawResource, e: &UnknownType) {
        let t = &r.type_name;
        let (prefix, kind) = t.split_once('_').unwrap_or((t.as_str(), ""));
        let d = match e {
            UnknownType::NoProvider => {
                let help = match did_you_mean(prefix, PROVIDERS.iter().copied()) {
                    Some(p) => format!("did you mean `{p}_{kind}`?"),
                    None => format!(
                        "resource types start with their provider's name: {}",
                        list(PROVIDERS)
                    ),
                };
                Diagnostic::error(
                    "cairn::unknown_type",
                    format!("unknown resource type `{t}`: there is no provider `{prefix}`"),
                )
                .label(r.type_span.clone(), "unknown provider")
                .help(help)
            }
            UnknownType::NoSuchType(types) => {
                let help = if types.is_empty() {
                    format!("`{prefix}` types are named `{prefix}_KIND`")
                } else {
                    help_did_you_mean(t, types.iter().map(String::as_str))
                        .unwrap_or_else(|| format!("the `{prefix}` types are {}", list(types)))
                };
                Diagnostic::error(
                    "cairn::unknown_type",
                    format!("unknown resource type `{t}`: provider `{prefix}` has no such type"),
                )
                .label(r.type_span.clone(), "unknown type")
                .help(help)
            }
            UnknownType::NotCompiled(p) => Diagnostic::error(
                "cairn::unknown_type",
                format!("resource type `{t}` needs the `{p}` cargo feature, which this build of cairn does not include"),
            )
            .label(r.type_span.clone(), "provider not compiled in")
            .help(format!("build cairn with the `{p}` cargo feature")),
        };
        self.report(d);
    }

    /// One resource: meta keys, attributes, schema checks.
    fn resource(
        &mut self,
        r: &RawResource,
        schema: Option<&TypeSchema>,
        all_refs: &mut Vec<Vec<ResRef>>,
        all_explicit: &mut Vec<Vec<(Address, Span)>>,
    ) -> Resource {
        let address = Address::new(&r.type_name, &r.name);
        let mut attrs = Attrs::new();
        let mut attr_spans = AttrSpans::default();
        let mut if_exists = vec![Policy::Fail];
        let mut refs = Vec::new();
        let mut explicit = Vec::new();
        for entry in &r.table.entries {
            match entry.key.as_str() {
                "if_exists" => if_exists = self.if_exists(&entry.value),
                "depends_on" => explicit = self.depends_on(&entry.value),
                key => {
                    let value = self.interpolate(&entry.value, true, &mut refs);
                    if let Some(ts) = schema {
                        self.check_attr(&address, ts, key, &entry.key_span, &entry.value, &value);
                    }
                    attrs.insert(key.to_string(), value);
                    attr_spans.insert(key.to_string(), entry.value.span.clone());
                }
            }
        }
        let span = r.table.span.clone();
        if let Some(ts) = schema {
            for a in ts.attributes.iter().flatten() {
                if a.required && !a.computed && !attrs.contains_key(a.name) {
                    self.report(
                        Diagnostic::error(
                            "cairn::missing_attribute",
                            format!("`{address}` is missing the required attribute `{}`", a.name),
                        )
                        .label(span.clone(), format!("`{}` missing", a.name))
                        .help(if a.description.is_empty() {
                            format!("add `{} = …`", a.name)
                        } else {
                            format!("add `{} = …` ({})", a.name, a.description)
                        }),
                    );
                }
            }
            for (attr, message) in validate_attrs(&address, &attrs) {
                // A nested path (`ingress[0].protocol`) points at its
                // top-level attribute and names itself in the message.
                let top = attr.split(['.', '[']).next().unwrap_or(&attr);
                let (at, label) = match attr_spans.get(top) {
                    Some(s) => (s.clone(), "invalid value".to_string()),
                    None => (span.clone(), format!("`{attr}` missing")),
                };
                let message = if top == attr {
                    message
                } else {
                    format!("`{attr}`: {message}")
                };
                self.report(
                    Diagnostic::error(
                        "cairn::invalid_attribute",
                        format!("`{address}`: {message}"),
                    )
                    .label(at, label),
                );
            }
        }
        all_refs.push(refs);
        all_explicit.push(explicit);
        attr_spans.shrink_to_fit();
        attrs.shrink_to_fit();
        Resource {
            address,
            attrs,
            if_exists,
            depends_on: Vec::new(),
            span,
            attr_spans,
        }
    }

    /// Checks one attribute against a type's schema.
    fn check_attr(
        &mut self,
        address: &Address,
        ts: &TypeSchema,
        key: &str,
        key_span: &Span,
        raw: &RawValue,
        value: &Value,
    ) {
        if ts.is_computed(key) {
            self.report(
                Diagnostic::error(
                    "cairn::computed_attribute",
                    format!("`{key}` of `{address}` is set by the provider and cannot be given"),
                )
                .label(key_span.clone(), "computed attribute")
                .help(format!(
                    "remove it; refer to it elsewhere as `${{{address}.{key}}}`"
                )),
            );
            return;
        }
        let Some(attributes) = &ts.attributes else {
            return;
        };
        let Some(a) = attributes.iter().find(|a| a.name == key) else {
            let inputs: Vec<&str> = attributes
                .iter()
                .filter(|a| !a.computed)
                .map(|a| a.name)
                .collect();
            let help = help_did_you_mean(key, inputs.iter().copied()).unwrap_or_else(|| {
                format!("the attributes of {} are {}", ts.type_name, list(&inputs))
            });
            self.report(
                Diagnostic::error(
                    "cairn::unknown_attribute",
                    format!("`{}` has no attribute `{key}`", ts.type_name),
                )
                .label(key_span.clone(), "unknown attribute")
                .help(help),
            );
            return;
        };
        if !kind_matches(a.kind, value) && !is_single_ref(value) && !value.is_null() {
            self.report(
                Diagnostic::error(
                    "cairn::attribute_type",
                    format!(
                        "`{key}` of `{address}`: expected {}, found {}",
                        expected(a.kind),
                        found(value)
                    ),
                )
                .label(raw.span.clone(), format!("expected {}", expected(a.kind))),
            );
        }
    }

    /// `if_exists = "reuse"` or `["reuse", "unique"]`.
    fn if_exists(&mut self, value: &RawValue) -> Vec<Policy> {
        let items: Vec<&RawValue> = match &value.kind {
            RawKind::String(_) => vec![value],
            RawKind::Array(items) if !items.is_empty() => items.iter().collect(),
            RawKind::Array(_) => {
                self.report(
                    Diagnostic::error("cairn::bad_if_exists", "`if_exists` is empty")
                        .label(value.span.clone(), "no policy")
                        .help(format!("give one or more of {}", list(POLICIES))),
                );
                return vec![Policy::Fail];
            }
            _ => {
                self.wrong_type(value, "`if_exists`", "a policy or a list of policies");
                return vec![Policy::Fail];
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let Some(s) = self.expect_str(item, "each `if_exists` policy") else {
                continue;
            };
            let Some(p) = policy(s) else {
                let help = help_did_you_mean(s, POLICIES.iter().copied())
                    .unwrap_or_else(|| format!("the policies are {}", list(POLICIES)));
                self.report(
                    Diagnostic::error("cairn::bad_if_exists", format!("unknown policy `{s}`"))
                        .label(item.span.clone(), "not a policy")
                        .help(help),
                );
                continue;
            };
            if out.contains(&p) {
                self.report(
                    Diagnostic::error(
                        "cairn::bad_if_exists",
                        format!("policy `{s}` appears twice"),
                    )
                    .label(item.span.clone(), "repeated"),
                );
            } else if matches!(p, Policy::Fail | Policy::Skip) && i + 1 < items.len() {
                self.report(
                    Diagnostic::error(
                        "cairn::bad_if_exists",
                        format!("`{s}` ends the chain: the policies after it would never be used"),
                    )
                    .label(item.span.clone(), "must come last"),
                );
            }
            out.push(p);
        }
        if out.is_empty() {
            out.push(Policy::Fail);
        }
        out
    }

    /// `depends_on = ["TYPE.NAME", …]`: well-formed addresses.
    fn depends_on(&mut self, value: &RawValue) -> Vec<(Address, Span)> {
        let RawKind::Array(items) = &value.kind else {
            self.wrong_type(value, "`depends_on`", "a list of \"TYPE.NAME\" strings");
            return Vec::new();
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let Some(s) = self.expect_str(item, "each `depends_on` entry") else {
                continue;
            };
            match s.parse::<Address>() {
                Ok(a) => out.push((a, item.span.clone())),
                Err(e) => self.report(
                    Diagnostic::error("cairn::bad_depends_on", e.to_string())
                        .label(item.span.clone(), "not TYPE.NAME")
                        .help("name a resource of this stack, e.g. \"sim_role.exec\" (no `${…}`)"),
                ),
            }
        }
        out
    }
}
