//! Rendering plans: the human view (ordered steps with per-attribute diffs),
//! the stable JSON view (`--json`), and a Markdown summary for CI.
//!
//! Every renderer masks sensitive values: attributes a provider marks
//! sensitive, and any value containing a secret the stack declared.

use std::fmt::Write as _;

use serde_json::json;

use super::{Action, ActionKind, Plan, Summary};
use crate::model::template;
use crate::model::{Attrs, Value};
use crate::provider::type_schema;

/// What an unknown value prints as.
pub const UNKNOWN: &str = "(known after apply)";
/// What a sensitive value prints as.
pub const SENSITIVE: &str = "(sensitive)";

/// Masks sensitive values for display.
pub struct Masker<'a> {
    secrets: &'a [String],
}

impl<'a> Masker<'a> {
    pub fn new(secrets: &'a [String]) -> Masker<'a> {
        Masker { secrets }
    }

    /// Whether `v` holds any secret (in any string inside it).
    pub fn is_secret(&self, v: &Value) -> bool {
        match v {
            Value::String(s) => self
                .secrets
                .iter()
                .any(|secret| !secret.is_empty() && s.contains(secret.as_str())),
            Value::Array(items) => items.iter().any(|i| self.is_secret(i)),
            Value::Object(map) => map.values().any(|i| self.is_secret(i)),
            _ => false,
        }
    }

    /// Replaces secrets inside free text.
    pub fn text(&self, s: &str) -> String {
        let mut out = s.to_string();
        for secret in self.secrets {
            if !secret.is_empty() {
                out = out.replace(secret.as_str(), SENSITIVE);
            }
        }
        out
    }
}

/// How one attribute value reads in the human plan.
fn show(v: &Value, sensitive: bool, masker: &Masker<'_>) -> String {
    if sensitive || masker.is_secret(v) {
        return SENSITIVE.to_string();
    }
    if !template::is_known(v) {
        return UNKNOWN.to_string();
    }
    let v = template::finalize(v);
    match &v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn is_sensitive_attr(action: &Action, attr: &str) -> bool {
    type_schema(&action.address.type_name).is_ok_and(|s| s.is_sensitive(attr))
}

/// The human plan.
pub fn human(plan: &Plan) -> String {
    let masker = Masker::new(&plan.sensitive_values);
    let mut out = String::new();
    let verb = if plan.destroy { "Destroy plan" } else { "Plan" };
    let _ = writeln!(out, "{verb} for stack {} (env {})", plan.stack, plan.env);
    if plan.actions().next().is_none() && plan.forget.is_empty() {
        let _ = writeln!(
            out,
            "\nNo changes: the world matches the stack ({} resource{} unchanged).",
            plan.summary.unchanged,
            if plan.summary.unchanged == 1 { "" } else { "s" }
        );
        return out;
    }
    for step in &plan.steps {
        let _ = writeln!(out, "\nStep {}", step.step);
        for action in &step.actions {
            render_action(&mut out, action, &masker);
        }
    }
    if !plan.forget.is_empty() {
        let _ = writeln!(out, "\nForget (dropped from state, never touched)");
        for address in &plan.forget {
            let _ = writeln!(out, "  {address}");
        }
    }
    let _ = writeln!(out, "\n{}", summary_line(&plan.summary));
    out
}

/// `Plan: 2 to create, 1 to update, …` — only the non-zero counts.
pub fn summary_line(s: &Summary) -> String {
    let parts: Vec<String> = [
        (s.create, "to create"),
        (s.create_unique, "to create under a unique name"),
        (s.reuse, "to reuse"),
        (s.adopt, "to adopt"),
        (s.update, "to update"),
        (s.replace, "to replace"),
        (s.delete, "to delete"),
        (s.skip, "to skip"),
        (s.unchanged, "unchanged"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    if parts.is_empty() {
        "Plan: nothing to do.".to_string()
    } else {
        format!("Plan: {}.", parts.join(", "))
    }
}

fn render_action(out: &mut String, action: &Action, masker: &Masker<'_>) {
    let headline = match (&action.action, &action.unique_name) {
        // The suffix holds no `-`: what precedes the last one is the name.
        (ActionKind::CreateUnique, Some(unique)) => match unique.rsplit_once('-') {
            Some((original, _)) => format!("create unique ({original} → {unique})"),
            None => format!("create unique ({unique})"),
        },
        (kind, _) => kind.verb().to_string(),
    };
    let _ = writeln!(
        out,
        "  {} {} {headline}",
        action.action.symbol(),
        action.address
    );
    let _ = writeln!(out, "      reason: {}", masker.text(&action.reason));
    if !action.depends_on.is_empty() {
        let deps: Vec<String> = action.depends_on.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "      after: {}", deps.join(", "));
    }
    let empty = Attrs::new();
    let before = action.before.as_ref().unwrap_or(&empty);
    match action.action {
        ActionKind::Create | ActionKind::CreateUnique => {
            for (k, v) in action.after.iter().flatten() {
                let _ = writeln!(
                    out,
                    "      + {k} = {}",
                    show(v, is_sensitive_attr(action, k), masker)
                );
            }
        }
        ActionKind::Update | ActionKind::Adopt | ActionKind::Replace => {
            // Values equal in meaning (policy JSON, rule spelling) are not
            // shown as changes, as the diff does not count them.
            let type_name = &action.address.type_name;
            let canonical_before = crate::provider::normalizes(type_name)
                .then(|| crate::provider::normalize(type_name, before));
            for (k, v) in action.after.iter().flatten() {
                let sensitive = is_sensitive_attr(action, k);
                let same = template::is_known(v) && {
                    let value = template::finalize(v);
                    before.get(k) == Some(&value)
                        || canonical_before.as_ref().is_some_and(|canon| {
                            let one = Attrs::from([(k.clone(), value)]);
                            crate::provider::normalize(type_name, &one).get(k) == canon.get(k)
                        })
                };
                if same {
                    continue;
                }
                let mark = if action.replace_because.contains(k) {
                    "  # forces replacement"
                } else {
                    ""
                };
                match before.get(k) {
                    Some(old) => {
                        let old = template::escape_value(old.clone());
                        let _ = writeln!(
                            out,
                            "      ~ {k} = {} → {}{mark}",
                            show(&old, sensitive, masker),
                            show(v, sensitive, masker)
                        );
                    }
                    None => {
                        let _ = writeln!(out, "      + {k} = {}{mark}", show(v, sensitive, masker));
                    }
                }
            }
        }
        ActionKind::Delete => {
            if let Some(id) = &action.id {
                let _ = writeln!(out, "      id: {id}");
            }
        }
        ActionKind::Reuse | ActionKind::Skip => {
            if let Some(id) = &action.id {
                let _ = writeln!(out, "      existing: {id}");
            }
        }
    }
}

/// Values for JSON: unknown values become null (their names are listed in
/// `after_unknown`), sensitive ones `"(sensitive)"`.
fn json_attrs(action: &Action, attrs: &Attrs, masker: &Masker<'_>) -> (Value, Vec<String>) {
    let mut unknown = Vec::new();
    let mut map = serde_json::Map::new();
    for (k, v) in attrs {
        let shown = if is_sensitive_attr(action, k) || masker.is_secret(v) {
            Value::String(SENSITIVE.into())
        } else if !template::is_known(v) {
            unknown.push(k.clone());
            Value::Null
        } else {
            template::finalize(v)
        };
        map.insert(k.clone(), shown);
    }
    (Value::Object(map), unknown)
}

fn json_before(action: &Action, attrs: &Attrs, masker: &Masker<'_>) -> Value {
    Value::Object(
        attrs
            .iter()
            .map(|(k, v)| {
                let shown = if is_sensitive_attr(action, k) || masker.is_secret(v) {
                    Value::String(SENSITIVE.into())
                } else {
                    v.clone()
                };
                (k.clone(), shown)
            })
            .collect(),
    )
}

/// The stable JSON view printed by `plan --json` (format_version 1).
pub fn json(plan: &Plan) -> Value {
    let masker = Masker::new(&plan.sensitive_values);
    let steps: Vec<Value> = plan
        .steps
        .iter()
        .map(|step| {
            let actions: Vec<Value> = step
                .actions
                .iter()
                .map(|a| {
                    let (after, after_unknown) = match &a.after {
                        Some(after) if a.action != ActionKind::Delete => {
                            let (v, u) = json_attrs(a, after, &masker);
                            (v, u)
                        }
                        _ => (Value::Null, Vec::new()),
                    };
                    let mut obj = json!({
                        "address": a.address.to_string(),
                        "action": a.action,
                        "reason": masker.text(&a.reason),
                        "depends_on": a.depends_on.iter().map(ToString::to_string).collect::<Vec<_>>(),
                        "before": a.before.as_ref().map_or(Value::Null, |b| json_before(a, b, &masker)),
                        "after": after,
                        "after_unknown": after_unknown,
                    });
                    if let Some(map) = obj.as_object_mut() {
                        if let Some(id) = &a.id {
                            map.insert("id".into(), json!(id));
                        }
                        if let Some(unique) = &a.unique_name {
                            map.insert("unique_name".into(), json!(unique));
                        }
                        if !a.replace_because.is_empty() {
                            map.insert("replace_because".into(), json!(a.replace_because));
                        }
                    }
                    obj
                })
                .collect();
            json!({ "step": step.step, "actions": actions })
        })
        .collect();
    json!({
        "format_version": plan.format_version,
        "stack": plan.stack,
        "env": plan.env,
        "destroy": plan.destroy,
        "steps": steps,
        "forget": plan.forget.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "summary": plan.summary,
        "has_changes": plan.has_changes(),
    })
}

/// A Markdown summary (for `$GITHUB_STEP_SUMMARY`).
pub fn markdown(plan: &Plan) -> String {
    let masker = Masker::new(&plan.sensitive_values);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### cairn plan: `{}` (env `{}`)\n",
        plan.stack, plan.env
    );
    let _ = writeln!(out, "{}\n", summary_line(&plan.summary));
    if plan.actions().next().is_none() {
        return out;
    }
    let _ = writeln!(
        out,
        "| step | action | address | reason |\n|---:|---|---|---|"
    );
    for step in &plan.steps {
        for a in &step.actions {
            let _ = writeln!(
                out,
                "| {} | `{}` {} | `{}` | {} |",
                step.step,
                a.action.symbol(),
                a.action.verb(),
                a.address,
                masker.text(&a.reason).replace('|', "\\|")
            );
        }
    }
    out
}

#[cfg(all(test, feature = "aws"))]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plan::{Basis, PLAN_FORMAT_VERSION, Step};

    /// Attributes a provider marks sensitive never print, in any renderer.
    #[test]
    fn provider_sensitive_attributes_are_masked() {
        let after: Attrs = serde_json::from_value(json!({
            "name": "fn",
            "environment": { "DB_PASSWORD": "hunter2" }
        }))
        .unwrap();
        let action = Action {
            address: "aws_lambda_function.f".parse().unwrap(),
            action: ActionKind::Create,
            reason: "not in state and not found live".into(),
            depends_on: Vec::new(),
            before: None,
            after: Some(after),
            id: None,
            identity: None,
            unique_name: None,
            ownership: None,
            replace_because: Vec::new(),
        };
        let plan = Plan {
            format_version: PLAN_FORMAT_VERSION,
            stack: "s".into(),
            env: "default".into(),
            destroy: false,
            steps: vec![Step {
                step: 1,
                actions: vec![action],
            }],
            summary: Summary::default(),
            unchanged: Default::default(),
            forget: Vec::new(),
            checks: Vec::new(),
            outputs: Default::default(),
            providers: Default::default(),
            dir: ".".into(),
            state: Default::default(),
            sensitive_values: Vec::new(),
            basis: Basis {
                lineage: String::new(),
                serial: 0,
                live_digest: String::new(),
            },
            lookups: Vec::new(),
        };
        let human = human(&plan);
        assert!(human.contains("+ environment = (sensitive)"), "{human}");
        assert!(!human.contains("hunter2"));
        let json = json(&plan).to_string();
        assert!(json.contains("\"environment\":\"(sensitive)\""), "{json}");
        assert!(!json.contains("hunter2"));
        assert!(!markdown(&plan).contains("hunter2"));
    }
}
