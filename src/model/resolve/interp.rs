//! Interpolation at resolve time: `${var.…}` and `${env.…}` are replaced,
//! resource references are collected (and stay in template form), and
//! malformed `${` are reported at their exact place in the file. Each
//! string is parsed once.

use super::Ctx;
use crate::diagnostic::suggest::{did_you_mean, list};
use crate::diagnostic::{Diagnostic, Span};
use crate::model::template::{self, Part, Ref};
use crate::model::{Address, Value};
use crate::stack::{RawKind, RawValue};

/// A reference to a resource found in a value.
#[derive(Debug, Clone)]
pub(super) struct ResRef {
    pub address: Address,
    pub path: Vec<String>,
    /// The span of the string value holding the reference…
    pub value_span: Span,
    /// …and the reference's range inside the string's value.
    pub sub: Span,
}

impl Ctx<'_> {
    /// The value in template form with variables and environment variables
    /// substituted; resource references are pushed to `refs`. With
    /// `vars_allowed` false, `${var.…}` is an error (inside `[vars]`).
    pub(super) fn interpolate(
        &mut self,
        value: &RawValue,
        vars_allowed: bool,
        refs: &mut Vec<ResRef>,
    ) -> Value {
        match &value.kind {
            RawKind::String(s) if s.contains("${") => {
                self.interpolate_str(s, &value.span, vars_allowed, refs)
            }
            RawKind::Float(f) if !f.is_finite() => {
                self.report(
                    Diagnostic::error(
                        "cairn::unsupported_value",
                        "`nan` and `inf` are not supported",
                    )
                    .label(value.span.clone(), "not a finite number"),
                );
                Value::Null
            }
            RawKind::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| self.interpolate(i, vars_allowed, refs))
                    .collect(),
            ),
            RawKind::Table(t) => Value::Object(
                t.entries
                    .iter()
                    .map(|e| {
                        (
                            e.key.clone(),
                            self.interpolate(&e.value, vars_allowed, refs),
                        )
                    })
                    .collect(),
            ),
            _ => value.to_json(),
        }
    }

    fn interpolate_str(
        &mut self,
        s: &str,
        span: &Span,
        vars_allowed: bool,
        refs: &mut Vec<ResRef>,
    ) -> Value {
        let parts = match template::parse(s) {
            Ok(parts) => parts,
            Err(e) => {
                let at = self.sub_span(span, &e.span);
                let unterminated = e.message.starts_with("unterminated");
                let mut d = Diagnostic::error("cairn::bad_template", e.message)
                    .label(at, "malformed reference");
                if unterminated {
                    d = d.help("close it with `}`, or write `$${` for a literal `${`");
                }
                self.report(d);
                return Value::String(s.to_string());
            }
        };
        if let [
            Part::Ref {
                reference,
                span: sub,
            },
        ] = parts.as_slice()
        {
            match self.lookup(reference, span, sub, vars_allowed, refs) {
                Some(v) => return v,
                None => return Value::String(s.to_string()),
            }
        }
        let mut out = String::with_capacity(s.len());
        for part in &parts {
            match part {
                Part::Lit(l) => out.push_str(l),
                Part::Ref {
                    reference,
                    span: sub,
                } => {
                    match self.lookup(reference, span, sub, vars_allowed, refs) {
                        // Values are in template form already: insert as is.
                        Some(Value::String(found)) => out.push_str(&found),
                        Some(other) => out.push_str(&template::display_scalar(&other)),
                        None => out.push_str(&s[sub.clone()]),
                    }
                }
            }
        }
        Value::String(out)
    }

    /// The template-form value of a variable or environment variable;
    /// `None` for resource references (recorded) and for errors (reported).
    fn lookup(
        &mut self,
        reference: &Ref,
        span: &Span,
        sub: &Span,
        vars_allowed: bool,
        refs: &mut Vec<ResRef>,
    ) -> Option<Value> {
        match reference {
            Ref::Var(name) if !vars_allowed => {
                let at = self.sub_span(span, sub);
                self.report(
                    Diagnostic::error(
                        "cairn::var_in_var",
                        format!("a variable cannot refer to another variable (`${{var.{name}}}`)"),
                    )
                    .label(at, "not allowed in [vars]")
                    .help("variables may use `${env.NAME}`; combine variables where they are used"),
                );
                None
            }
            Ref::Var(name) => match self.vars.get(name) {
                Some(v) => Some(v.clone()),
                None => {
                    let at = self.sub_span(span, sub);
                    let mut known: Vec<&str> = self.vars.keys().map(String::as_str).collect();
                    known.sort_unstable();
                    let help = match did_you_mean(name, known.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None if known.is_empty() => "declare it in [vars]".to_string(),
                        None => format!("the defined variables are {}", list(&known)),
                    };
                    self.report(
                        Diagnostic::error(
                            "cairn::undefined_var",
                            format!("undefined variable `{name}`"),
                        )
                        .label(at, "not defined")
                        .help(help),
                    );
                    None
                }
            },
            Ref::Env(name) => match self.environment.get(name) {
                Some(v) => Some(Value::String(template::escape(v))),
                None => {
                    let at = self.sub_span(span, sub);
                    self.report(
                        Diagnostic::error(
                            "cairn::unset_env",
                            format!("environment variable `{name}` is not set"),
                        )
                        .label(at, "not set")
                        .help(format!(
                            "set it before running cairn, e.g. `export {name}=…`"
                        )),
                    );
                    None
                }
            },
            Ref::Resource { address, path } => {
                refs.push(ResRef {
                    address: address.clone(),
                    path: path.clone(),
                    value_span: span.clone(),
                    sub: sub.clone(),
                });
                None
            }
        }
    }

    /// Reports resource references where none are allowed (`what`: e.g.
    /// "provider settings").
    pub(super) fn no_resource_refs(&mut self, refs: &[ResRef], what: &str) {
        for r in refs {
            let at = self.sub_span(&r.value_span, &r.sub);
            self.report(
                Diagnostic::error(
                    "cairn::reference_not_allowed",
                    format!("{what} cannot reference resources (`{}`)", r.address),
                )
                .label(at, "resource reference")
                .help(format!("{what} are known before any resource exists")),
            );
        }
    }
}
