//! The smaller sections: `[provider.NAME]`, `[check.NAME]`, `[output]`
//! and `[state]`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::Ctx;
use super::interp::ResRef;
use crate::diagnostic::Diagnostic;
use crate::diagnostic::suggest::{help_did_you_mean, list};
use crate::model::{Attrs, Check, ProviderConfig, StateConfig, Value, is_identifier, template};
use crate::provider::{PROVIDERS, validate_config};
use crate::stack::{RawKind, RawStack, RawTable};

/// Resolved checks and the resource references in their commands.
pub(super) struct Checks {
    pub checks: Vec<Check>,
    pub refs: Vec<ResRef>,
}

/// Resolved outputs and the resource references in them.
pub(super) struct Outputs {
    pub values: BTreeMap<String, Value>,
    pub refs: Vec<ResRef>,
}

/// `[state]` as written; the folder is applied by [`StateDraft::into_config`].
pub(super) enum StateDraft {
    Local(Option<String>),
    S3 {
        bucket: String,
        key: String,
        region: Option<String>,
        endpoint_url: Option<String>,
    },
}

impl StateDraft {
    /// The state configuration; a local `dir` is resolved against the
    /// stack's folder.
    pub(super) fn into_config(self, stack_dir: &Path) -> StateConfig {
        match self {
            StateDraft::Local(None) => StateConfig::Local,
            StateDraft::Local(Some(dir)) => StateConfig::LocalDir {
                dir: stack_dir.join(PathBuf::from(dir)),
            },
            StateDraft::S3 {
                bucket,
                key,
                region,
                endpoint_url,
            } => StateConfig::S3 {
                bucket,
                key,
                region,
                endpoint_url,
            },
        }
    }
}

const CHECK_KEYS: &[&str] = &["command", "retries", "interval_s"];
const BACKENDS: &[&str] = &["local", "s3"];
const LOCAL_KEYS: &[&str] = &["backend", "dir"];
const S3_KEYS: &[&str] = &["backend", "bucket", "key", "region", "endpoint_url"];

impl Ctx<'_> {
    /// `[provider.NAME]` tables, variables substituted and settings checked.
    pub(super) fn providers(&mut self, raw: &RawStack) -> BTreeMap<String, ProviderConfig> {
        let mut out = BTreeMap::new();
        for section in &raw.providers {
            let mut refs = Vec::new();
            let settings: Attrs = section
                .table
                .entries
                .iter()
                .map(|e| (e.key.clone(), self.interpolate(&e.value, true, &mut refs)))
                .collect();
            self.no_resource_refs(&refs, "provider settings");
            let finalized: Attrs = settings
                .iter()
                .map(|(k, v)| (k.clone(), template::finalize(v)))
                .collect();
            for (setting, message) in validate_config(&section.name, &finalized) {
                let (span, label) = match section.table.get(&setting) {
                    Some(e) if !setting.is_empty() => (e.key_span.clone(), "invalid setting"),
                    _ => (section.name_span.clone(), "invalid provider"),
                };
                let mut d = Diagnostic::error("cairn::provider_config", message).label(span, label);
                if setting.is_empty()
                    && !PROVIDERS.contains(&section.name.as_str())
                    && let Some(help) = help_did_you_mean(&section.name, PROVIDERS.iter().copied())
                {
                    d = d.help(help);
                }
                self.report(d);
            }
            out.insert(
                section.name.clone(),
                ProviderConfig {
                    name: section.name.clone(),
                    settings: finalized,
                    span: section.table.span.clone(),
                },
            );
        }
        out
    }

    /// `[check.NAME]` tables.
    pub(super) fn checks(&mut self, raw: &RawStack) -> Checks {
        let mut out = Checks {
            checks: Vec::with_capacity(raw.checks.len()),
            refs: Vec::new(),
        };
        for section in &raw.checks {
            if !is_identifier(&section.name) {
                self.report(
                    Diagnostic::error(
                        "cairn::invalid_name",
                        format!("`{}` is not a valid check name", section.name),
                    )
                    .label(section.name_span.clone(), "not an identifier")
                    .help("use ASCII letters, digits, `_` and `-`, starting with a letter or `_`"),
                );
            }
            let what = format!("[check.{}]", section.name);
            let mut check = Check {
                name: section.name.clone(),
                command: String::new(),
                retries: 0,
                interval_s: 1.0,
                span: section.table.span.clone(),
            };
            for entry in &section.table.entries {
                let v = &entry.value;
                match entry.key.as_str() {
                    "command" => match self.interpolate(v, true, &mut out.refs) {
                        Value::String(s) if !s.trim().is_empty() => check.command = s,
                        Value::String(_) => self.report(
                            Diagnostic::error(
                                "cairn::bad_check",
                                format!("the command of {what} is empty"),
                            )
                            .label(v.span.clone(), "empty command"),
                        ),
                        _ => self.wrong_type(v, "`command`", "a string"),
                    },
                    "retries" => match v.kind {
                        RawKind::Integer(n) => match u32::try_from(n) {
                            Ok(n) => check.retries = n,
                            Err(_) => self.out_of_range(v, "`retries`", "between 0 and 4294967295"),
                        },
                        _ => self.wrong_type(v, "`retries`", "an integer"),
                    },
                    "interval_s" => match v.kind {
                        RawKind::Integer(n) if n >= 0 => check.interval_s = n as f64,
                        RawKind::Float(f) if f.is_finite() && f >= 0.0 => check.interval_s = f,
                        RawKind::Integer(_) | RawKind::Float(_) => {
                            self.out_of_range(
                                v,
                                "`interval_s`",
                                "a finite number of seconds, 0 or more",
                            );
                        }
                        _ => self.wrong_type(v, "`interval_s`", "a number of seconds"),
                    },
                    _ => self.unknown_key(entry, &what, CHECK_KEYS),
                }
            }
            if section.table.get("command").is_none() {
                self.report(
                    Diagnostic::error("cairn::bad_check", format!("{what} has no `command`"))
                        .label(section.table.span.clone(), "`command` missing")
                        .help(
                            "add `command = \"…\"`: a shell command that exits 0 when all is well",
                        ),
                );
            }
            out.checks.push(check);
        }
        out
    }

    /// `[output]`: name → value.
    pub(super) fn outputs(&mut self, raw: &RawStack) -> Outputs {
        let mut out = Outputs {
            values: BTreeMap::new(),
            refs: Vec::new(),
        };
        for entry in raw.outputs.iter().flat_map(|t| &t.entries) {
            let v = self.interpolate(&entry.value, true, &mut out.refs);
            out.values.insert(entry.key.clone(), v);
        }
        out
    }

    /// `[state]`.
    pub(super) fn state(&mut self, raw: &RawStack) -> StateDraft {
        let Some(table) = &raw.state else {
            return StateDraft::Local(None);
        };
        let mut refs = Vec::new();
        let mut strings: BTreeMap<&str, String> = BTreeMap::new();
        for entry in &table.entries {
            match self.interpolate(&entry.value, true, &mut refs) {
                Value::String(s) => {
                    strings.insert(
                        entry.key.as_str(),
                        template::display_scalar(&template::finalize(&Value::String(s))),
                    );
                }
                _ => self.wrong_type(
                    &entry.value,
                    &format!("`{}` in [state]", entry.key),
                    "a string",
                ),
            }
        }
        self.no_resource_refs(&refs, "state settings");
        let backend = strings.get("backend").map_or("local", String::as_str);
        let (allowed, other) = match backend {
            "local" => (LOCAL_KEYS, S3_KEYS),
            "s3" => (S3_KEYS, LOCAL_KEYS),
            unknown => {
                let entry = table.get("backend");
                let help = help_did_you_mean(unknown, BACKENDS.iter().copied())
                    .unwrap_or_else(|| format!("the backends are {}", list(BACKENDS)));
                self.report(
                    Diagnostic::error(
                        "cairn::state_config",
                        format!("unknown state backend `{unknown}`"),
                    )
                    .label(
                        entry.map_or(table.span.clone(), |e| e.value.span.clone()),
                        "unknown backend",
                    )
                    .help(help),
                );
                return StateDraft::Local(None);
            }
        };
        self.state_keys(table, backend, allowed, other);
        if backend == "local" {
            return StateDraft::Local(strings.remove("dir"));
        }
        for required in ["bucket", "key"] {
            if !strings.contains_key(required) && table.get(required).is_none() {
                self.report(
                    Diagnostic::error(
                        "cairn::state_config",
                        format!("the s3 state backend needs `{required}`"),
                    )
                    .label(table.span.clone(), format!("`{required}` missing"))
                    .help(format!("add `{required} = \"…\"` under [state]")),
                );
            }
        }
        StateDraft::S3 {
            bucket: strings.remove("bucket").unwrap_or_default(),
            key: strings.remove("key").unwrap_or_default(),
            region: strings.remove("region"),
            endpoint_url: strings.remove("endpoint_url"),
        }
    }

    fn state_keys(&mut self, table: &RawTable, backend: &str, allowed: &[&str], other: &[&str]) {
        for entry in &table.entries {
            if allowed.contains(&entry.key.as_str()) {
                continue;
            }
            if other.contains(&entry.key.as_str()) {
                self.report(
                    Diagnostic::error(
                        "cairn::state_config",
                        format!(
                            "`{}` does not apply to the {backend} state backend",
                            entry.key
                        ),
                    )
                    .label(
                        entry.key_span.clone(),
                        format!("not a setting of the {backend} backend"),
                    )
                    .help(format!("the {backend} backend takes {}", list(allowed))),
                );
            } else {
                self.unknown_key(entry, "[state]", allowed);
            }
        }
    }
}
