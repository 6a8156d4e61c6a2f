//! Post-apply checks: `[check.NAME]` commands run in the stack's folder,
//! retried as configured. A failing check fails the apply.

use std::collections::HashMap;
use std::time::Duration;

use super::executor::Stop;
use super::run::{Event, Observer, OpError, fill};
use crate::model::template;
use crate::model::{Address, Attrs};
use crate::plan::Plan;

/// Runs every check in order; the first that fails after its retries ends it.
pub(super) async fn run_checks(
    plan: &Plan,
    values: &HashMap<Address, Attrs>,
    observer: &dyn Observer,
    stop: &Stop,
) -> Result<(), OpError> {
    for check in &plan.checks {
        let fail = |message: String| OpError {
            address: Address::new("check", check.name.clone()),
            operation: "check".into(),
            message,
        };
        let filled = fill(&check.command, values);
        if !template::is_known(&filled) {
            return Err(fail(
                "the command references a value that is not known".into(),
            ));
        }
        let command = template::display_scalar(&template::finalize(&filled));
        let mut attempts = 0;
        loop {
            attempts += 1;
            let output = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(&command)
                .current_dir(&plan.dir)
                .stdin(std::process::Stdio::null())
                .output()
                .await;
            let error = match output {
                Ok(o) if o.status.success() => {
                    observer.event(Event::CheckPassed {
                        name: check.name.clone(),
                        attempts,
                    });
                    break;
                }
                Ok(o) => {
                    let stderr = String::from_utf8_lossy(&o.stderr);
                    let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    format!(
                        "`{command}` exited with {}{}",
                        o.status
                            .code()
                            .map_or("a signal".to_string(), |c| format!("status {c}")),
                        if tail.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", tail.join(" / "))
                        }
                    )
                }
                Err(e) => format!("could not run `{command}`: {e}"),
            };
            if attempts > check.retries || stop.is_triggered() {
                observer.event(Event::CheckFailed {
                    name: check.name.clone(),
                    error: error.clone(),
                });
                return Err(fail(format!(
                    "{error} (after {attempts} attempt{})",
                    if attempts == 1 { "" } else { "s" }
                )));
            }
            tokio::time::sleep(Duration::from_secs_f64(check.interval_s.max(0.0))).await;
        }
    }
    Ok(())
}
