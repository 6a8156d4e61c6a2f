//! Reference checking, once every resource is known: each
//! `${TYPE.NAME.ATTR}` and `depends_on` entry must name a resource of the
//! stack (not the one it is in) and an attribute that resource can have.
//! Lookups go through hash maps, so this is linear in the references.

use std::cell::OnceCell;
use std::collections::HashMap;

use crate::hash::FastMap;

use super::Ctx;
use super::interp::ResRef;
use super::resources::Resources;
use crate::diagnostic::suggest::{did_you_mean, help_did_you_mean, list};
use crate::diagnostic::{Diagnostic, Span};
use crate::model::{Address, Resource};

impl Resources {
    /// Checks every reference (from resources, checks and outputs) and
    /// fills each resource's `depends_on`.
    pub(super) fn check_references(
        &mut self,
        ctx: &mut Ctx<'_>,
        check_refs: &[ResRef],
        output_refs: &[ResRef],
    ) {
        let index: FastMap<&Address, usize> = self
            .list
            .iter()
            .enumerate()
            .map(|(i, r)| (&r.address, i))
            .collect();
        // The names by type, for the help of a missing reference: built
        // when the first one is found.
        let by_type: OnceCell<ByType<'_>> = OnceCell::new();
        let mut depends: Vec<Vec<Address>> = Vec::with_capacity(self.list.len());
        for i in 0..self.list.len() {
            let me = &self.list[i].address;
            let mut deps = Vec::with_capacity(self.refs[i].len() + self.explicit[i].len());
            for r in &self.refs[i] {
                if self.check_ref(ctx, &index, &by_type, r, Some(me)) {
                    deps.push(r.address.clone());
                }
            }
            for (a, span) in &self.explicit[i] {
                if a == me {
                    ctx.report(
                        Diagnostic::error(
                            "cairn::self_reference",
                            format!("`{me}` depends on itself"),
                        )
                        .label(span.clone(), "itself"),
                    );
                } else if index.contains_key(a) {
                    deps.push(a.clone());
                } else {
                    let d = missing_resource(names_by_type(&by_type, &self.list), a, span.clone());
                    ctx.report(d);
                }
            }
            deps.sort_unstable();
            deps.dedup();
            // Kept for the whole run, at every resource: no spare capacity
            // (sized exactly, unless a reference was refused or repeated).
            if deps.len() < deps.capacity() {
                deps.shrink_to_fit();
            }
            depends.push(deps);
        }
        for r in check_refs.iter().chain(output_refs.iter()) {
            self.check_ref(ctx, &index, &by_type, r, None);
        }
        drop(index);
        for (r, deps) in self.list.iter_mut().zip(depends) {
            r.depends_on = deps;
        }
    }

    /// Whether the reference names an existing resource (other than `me`)
    /// and an attribute it can have; reports it if not.
    fn check_ref<'a>(
        &'a self,
        ctx: &mut Ctx<'_>,
        index: &FastMap<&Address, usize>,
        by_type: &OnceCell<ByType<'a>>,
        r: &ResRef,
        me: Option<&Address>,
    ) -> bool {
        let Some(&target) = index.get(&r.address) else {
            let d = missing_resource(
                names_by_type(by_type, &self.list),
                &r.address,
                ctx_span(ctx, r),
            );
            ctx.report(d);
            return false;
        };
        if me == Some(&r.address) {
            let span = ctx_span(ctx, r);
            ctx.report(
                Diagnostic::error(
                    "cairn::self_reference",
                    format!("`{}` refers to itself", r.address),
                )
                .label(span, "self-reference")
                .help("a resource cannot use its own attributes"),
            );
            return false;
        }
        let Some(ts) = self.schemas[target].map(|i| &self.type_schemas[i]) else {
            return true; // unknown type: already reported
        };
        let Some(attr) = r.path.first() else {
            return true;
        };
        let known = match &ts.attributes {
            Some(attrs) => attrs.iter().any(|a| a.name == attr),
            None => {
                self.list[target].attrs.contains_key(attr) || ts.computed.contains(&attr.as_str())
            }
        };
        if known {
            return true;
        }
        let candidates: Vec<&str> = match &ts.attributes {
            Some(attrs) => attrs.iter().map(|a| a.name).collect(),
            None => self.list[target]
                .attrs
                .keys()
                .map(String::as_str)
                .chain(ts.computed.iter().copied())
                .collect(),
        };
        let help = help_did_you_mean(attr, candidates.iter().copied())
            .unwrap_or_else(|| format!("`{}` has {}", r.address, list(&candidates)));
        let span = ctx_span(ctx, r);
        ctx.report(
            Diagnostic::error(
                "cairn::undefined_attribute",
                format!("`{}` has no attribute `{attr}`", r.address),
            )
            .label(span, "unknown attribute")
            .help(help),
        );
        false
    }

    /// The resolved resources, in file order.
    pub(super) fn into_resources(self) -> Vec<Resource> {
        self.list
    }
}

/// Resource names by type.
type ByType<'a> = HashMap<&'a str, Vec<&'a str>>;

/// The names of `list` by type, built once.
fn names_by_type<'c, 'a>(cell: &'c OnceCell<ByType<'a>>, list: &'a [Resource]) -> &'c ByType<'a> {
    cell.get_or_init(|| {
        let mut by_type: ByType<'a> = HashMap::new();
        for r in list {
            by_type
                .entry(r.address.type_name.as_str())
                .or_default()
                .push(r.address.name.as_str());
        }
        by_type
    })
}

/// A reference to a resource the stack does not have, with the likely one.
fn missing_resource(by_type: &ByType<'_>, address: &Address, span: Span) -> Diagnostic {
    let t = address.type_name.as_str();
    let help = match by_type.get(t) {
        Some(names) => match did_you_mean(&address.name, names.iter().copied()) {
            Some(n) => format!("did you mean `{t}.{n}`?"),
            None if names.len() <= 10 => format!("the `{t}` resources are {}", list(names)),
            None => format!(
                "the stack has {} `{t}` resources, none named so",
                names.len()
            ),
        },
        None => {
            let close = did_you_mean(t, by_type.keys().copied()).and_then(|other| {
                let names = by_type.get(other)?;
                let n = if names.contains(&address.name.as_str()) {
                    address.name.as_str()
                } else {
                    did_you_mean(&address.name, names.iter().copied())?
                };
                Some(format!("did you mean `{other}.{n}`?"))
            });
            close.unwrap_or_else(|| format!("the stack has no `{t}` resource"))
        }
    };
    Diagnostic::error(
        "cairn::undefined_resource",
        format!("reference to undefined resource `{address}`"),
    )
    .label(span, "no such resource")
    .help(help)
}

fn ctx_span(ctx: &Ctx<'_>, r: &ResRef) -> Span {
    ctx.sub_span(&r.value_span, &r.sub)
}
