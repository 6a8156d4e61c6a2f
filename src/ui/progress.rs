//! Progress of apply and destroy: an indicatif bar on a terminal, plain
//! timestamped lines otherwise (CI logs).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Printer, push_clock};
use crate::apply::{Event, Observer};
use crate::plan::ActionKind;
use crate::plan::render::Masker;

/// Draws apply events.
pub struct Progress {
    printer: Arc<Printer>,
    bar: Option<ProgressBar>,
    secrets: Vec<String>,
}

impl Progress {
    pub fn new(printer: Arc<Printer>, total: usize, secrets: Vec<String>) -> Progress {
        let bar = printer.interactive.then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        if bar.is_none() {
            printer.start_gathering();
        }
        Progress {
            printer,
            bar,
            secrets,
        }
    }

    /// Writes one line: on the bar, or timestamped and gathered. Without
    /// secrets to mask (the usual case) the line is built in one buffer:
    /// an apply writes two per operation.
    fn line(&self, text: std::fmt::Arguments<'_>) {
        if let Some(bar) = &self.bar {
            bar.println(Masker::new(&self.secrets).text(&text.to_string()));
            return;
        }
        let mut line = String::with_capacity(96);
        line.push('[');
        push_clock(&mut line);
        line.push_str("] ");
        if self.secrets.is_empty() {
            let _ = line.write_fmt(text);
        } else {
            line.push_str(&Masker::new(&self.secrets).text(&text.to_string()));
        }
        self.printer.progress(&line);
    }

    /// Removes the bar, or writes the gathered lines (call before printing
    /// the final report).
    pub fn finish(&self) {
        match &self.bar {
            Some(bar) => bar.finish_and_clear(),
            None => self.printer.stop_gathering(),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.bar.is_none() {
            self.printer.stop_gathering();
        }
    }
}

fn past(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::Create => "created",
        ActionKind::CreateUnique => "created under a unique name",
        ActionKind::Reuse => "reused",
        ActionKind::Adopt => "adopted",
        ActionKind::Update => "updated",
        ActionKind::Replace => "replaced",
        ActionKind::Delete => "deleted",
        ActionKind::Skip => "skipped",
    }
}

impl Observer for Progress {
    fn event(&self, event: Event) {
        match event {
            Event::Started { address, action } => {
                if let Some(bar) = &self.bar {
                    bar.set_message(format!("{} {address}", action.verb()));
                } else if action.changes_world() {
                    self.line(format_args!(
                        "{} {address}: {}…",
                        action.symbol(),
                        action.verb()
                    ));
                }
            }
            Event::Finished {
                address,
                action,
                elapsed,
                id,
            } => {
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                }
                let (open, id, close) = match &id {
                    Some(id) => (" [", id.as_str(), "]"),
                    None => ("", "", ""),
                };
                self.line(format_args!(
                    "{} {address}: {}{open}{id}{close} in {}ms",
                    action.symbol(),
                    past(action),
                    elapsed.as_millis()
                ));
            }
            Event::Failed {
                address,
                action,
                error,
            } => {
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                }
                let _ = address;
                self.line(format_args!("✗ {} failed: {error}", action.verb()));
            }
            Event::Retrying {
                address,
                operation,
                attempt,
                error,
            } => {
                self.line(format_args!(
                    "↻ {address}: {operation} attempt {attempt} ({error})"
                ));
            }
            Event::RollbackStarted { count } => {
                self.line(format_args!(
                    "rolling back {count} resource{} changed by this run…",
                    if count == 1 { "" } else { "s" }
                ));
            }
            Event::RolledBack { address, what } => self.line(format_args!("↩ {address}: {what}")),
            Event::RollbackFailed { address, error } => {
                self.line(format_args!("✗ {address}: could not roll back: {error}"))
            }
            Event::CheckPassed { name, attempts } => self.line(format_args!(
                "✓ check {name} passed{}",
                if attempts > 1 {
                    format!(" after {attempts} attempts")
                } else {
                    String::new()
                }
            )),
            Event::CheckFailed { name, error } => {
                self.line(format_args!("✗ check {name} failed: {error}"))
            }
        }
    }
}
