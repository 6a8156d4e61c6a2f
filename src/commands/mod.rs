//! One module per verb. Each wires the stages together (load → resolve →
//! graph → refresh → diff → apply) and prints through the [`Printer`]; none
//! holds domain logic.

mod apply;
mod demo;
mod graph;
mod output;
mod plan;
mod state;
mod validate;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::cli::{Cli, Command, StackArgs, StateArgs, StateCommand};
use crate::diagnostic::Diagnostics;
use crate::graph::DepGraph;
use crate::model::{self, ResolveOptions, Stack, StateConfig};
use crate::provider::{self, ProviderContext, Providers};
use crate::state::{Backend, LocalBackend, StateError};
use crate::ui::Printer;

/// Exit codes.
pub const EXIT_OK: u8 = 0;
pub const EXIT_ERROR: u8 = 1;
/// `plan --detailed-exitcode` with changes.
pub const EXIT_CHANGES: u8 = 2;
/// Interrupted by a signal.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Why a command stopped.
#[derive(Debug)]
pub enum Failure {
    /// Problems in the stack file: rendered with their spans.
    Diagnostics(Diagnostics),
    /// Anything else, already worded for the user.
    Message(String),
    /// The outcome was already printed; exit with this code.
    Exit(u8),
}

impl From<Diagnostics> for Failure {
    fn from(d: Diagnostics) -> Failure {
        Failure::Diagnostics(d)
    }
}

impl From<StateError> for Failure {
    fn from(e: StateError) -> Failure {
        Failure::Message(e.to_string())
    }
}

/// Runs a parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> u8 {
    let printer = Arc::new(Printer::new(cli.no_color));
    let json = match &cli.command {
        Command::Validate(a) | Command::State(StateCommand::List(a)) => a.json,
        Command::Plan(a) => a.stack.json,
        Command::Apply(a) => a.json,
        _ => false,
    };
    let result = match cli.command {
        Command::Validate(args) => validate::run(&printer, &args),
        Command::Plan(args) => plan::run(&printer, &args).await,
        Command::Apply(args) => apply::run(&printer, &args).await,
        Command::Destroy(args) => apply::destroy(&printer, &args).await,
        Command::Graph(args) => graph::run(&printer, &args).await,
        Command::Output(args) => output::run(&printer, &args).await,
        Command::State(StateCommand::List(args)) => state::list(&printer, &args).await,
        Command::State(StateCommand::Show { stack, address }) => {
            state::show(&printer, &stack, &address).await
        }
        Command::ForceUnlock(args) => state::force_unlock(&printer, &args).await,
        Command::Schema => {
            printer.out(
                &serde_json::to_string_pretty(&crate::stack::json_schema()).unwrap_or_default(),
            );
            Ok(EXIT_OK)
        }
        Command::Demo(args) => demo::run(&printer, &args).await,
    };
    match result {
        Ok(code) => code,
        Err(Failure::Diagnostics(d)) => {
            crate::ui::diagnostics::print(&printer, &d, json);
            EXIT_ERROR
        }
        Err(Failure::Message(m)) => {
            printer.err(&format!("error: {m}"));
            EXIT_ERROR
        }
        Err(Failure::Exit(code)) => code,
    }
}

/// Frees a large value off the command's path: dropping the stack, state,
/// world and plan of 100,000 resources frees millions of small allocations,
/// about a tenth of a plan's CPU time, which the command's result need not
/// wait for. A thread does it; if the process exits first, the OS takes the
/// memory back at once. Only for plain data: nothing whose `Drop` must run
/// (the state backend's lock is released where it is dropped, not here).
pub(crate) fn dispose<T: Send + 'static>(value: T) {
    // If no thread can be started, the closure (and the value) drops here.
    let _ = std::thread::Builder::new()
        .name("cairn-dispose".into())
        .spawn(move || drop(value));
}

/// Parses `--var NAME=VALUE` arguments.
fn parse_vars(vars: &[String]) -> Result<Vec<(String, String)>, Failure> {
    vars.iter()
        .map(|v| match v.split_once('=') {
            Some((k, val)) if model::is_identifier(k) => Ok((k.to_string(), val.to_string())),
            _ => Err(Failure::Message(format!(
                "`--var {v}` is not of the form NAME=VALUE"
            ))),
        })
        .collect()
}

/// A validated stack and its dependency graph.
pub(crate) struct Loaded {
    pub stack: Stack,
    pub graph: DepGraph,
}

/// Reads, resolves and validates a stack: every problem is a diagnostic.
pub(crate) fn load_stack(
    path: &Path,
    env: Option<&str>,
    vars: &[String],
    state: &StateArgs,
) -> Result<Loaded, Failure> {
    let options = ResolveOptions {
        env: env.map(str::to_string),
        vars: parse_vars(vars)?,
        environment: std::env::vars().collect::<BTreeMap<_, _>>(),
    };
    let timer = crate::ui::PhaseTimer::from_env();
    let raw = crate::stack::load(path)?;
    timer.mark("parse");
    let mut stack = model::resolve(&raw, &options)?;
    drop(raw);
    timer.mark("resolve");
    stack.state = state_config(&stack, state)?;
    let graph = model::dependency_graph(&stack)?;
    timer.mark("graph");
    Ok(Loaded { stack, graph })
}

pub(crate) fn load_args(args: &StackArgs) -> Result<Loaded, Failure> {
    load_stack(&args.stack, args.env.as_deref(), &args.vars, &args.state)
}

/// The stack's `[state]` with the `--state-*` flags applied: a bucket
/// switches to the S3 backend; the other flags change an S3 state's fields.
fn state_config(stack: &Stack, flags: &StateArgs) -> Result<StateConfig, Failure> {
    let (bucket, key, region, endpoint_url) = match &stack.state {
        StateConfig::S3 {
            bucket,
            key,
            region,
            endpoint_url,
        } => (
            Some(bucket.clone()),
            Some(key.clone()),
            region.clone(),
            endpoint_url.clone(),
        ),
        local if flags.state_bucket.is_none() => {
            if flags.is_set() {
                return Err(Failure::Message(
                    "--state-key, --state-region and --state-endpoint-url change an S3 state: \
                     give --state-bucket too, or set [state] backend = \"s3\" in the stack"
                        .into(),
                ));
            }
            return Ok(local.clone());
        }
        _ => (None, None, None, None),
    };
    let bucket = flags.state_bucket.clone().or(bucket).unwrap_or_default();
    let key = flags
        .state_key
        .clone()
        .or(key)
        .unwrap_or_else(|| format!("{}.{}.state.json", stack.name, stack.env));
    if let Some(url) = &flags.state_endpoint_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(Failure::Message(format!(
            "--state-endpoint-url must start with http:// or https:// (got `{url}`)"
        )));
    }
    Ok(StateConfig::S3 {
        bucket,
        key,
        region: flags.state_region.clone().or(region),
        endpoint_url: flags.state_endpoint_url.clone().or(endpoint_url),
    })
}

/// Builds the providers the stack (or plan) uses.
pub(crate) async fn providers(
    configs: &BTreeMap<String, crate::model::ProviderConfig>,
    types: impl IntoIterator<Item = &str>,
    ctx: &ProviderContext,
) -> Result<Providers, Failure> {
    provider::configure(configs, types, ctx)
        .await
        .map_err(provider_failure)
}

/// A provider that could not be built, as the command's failure.
pub(crate) fn provider_failure((name, message): (String, String)) -> Failure {
    Failure::Message(format!("provider `{name}`: {message}"))
}

/// The state backend for a stack.
pub(crate) async fn backend(
    config: &StateConfig,
    dir: &Path,
    stack: &str,
    env: &str,
) -> Result<Arc<dyn Backend>, Failure> {
    match config {
        StateConfig::Local => Ok(Arc::new(LocalBackend::new(dir.join(".cairn"), stack, env))),
        // Already relative to the stack's folder (resolution joined them).
        StateConfig::LocalDir { dir: d } => Ok(Arc::new(LocalBackend::new(d.clone(), stack, env))),
        #[cfg(feature = "aws")]
        StateConfig::S3 {
            bucket,
            key,
            region,
            endpoint_url,
        } => Ok(Arc::new(
            crate::state::S3Backend::connect(
                bucket,
                key,
                region.as_deref(),
                endpoint_url.as_deref(),
                stack,
                env,
            )
            .await?,
        )),
        #[cfg(not(feature = "aws"))]
        StateConfig::S3 { bucket, key, .. } => Err(Failure::Message(format!(
            "the S3 state backend (s3://{bucket}/{key}) is not available in this build (built without the `aws` feature)"
        ))),
    }
}
