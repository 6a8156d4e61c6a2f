//! The command line, exactly as typed: clap derive types whose doc comments
//! are the `--help` text. [`crate::commands`] turns them into work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::graph::Format;

/// cairn: declarative infrastructure stacks, planned against the live world
/// and applied in dependency order, in parallel, with rollback.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Never use colour.
    #[arg(long, global = true)]
    pub no_color: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a stack file: syntax, types, references, cycles, identity clashes.
    Validate(StackArgs),
    /// Show what apply would do, in order, compared with the live world.
    Plan(PlanArgs),
    /// Make the world match the stack (or apply a saved plan).
    Apply(ApplyArgs),
    /// Delete everything the stack created or adopted, in reverse dependency order.
    Destroy(DestroyArgs),
    /// Export the dependency graph (DOT, mermaid or JSON).
    Graph(GraphArgs),
    /// Print the stack's outputs from state.
    Output(OutputArgs),
    /// Inspect state.
    #[command(subcommand)]
    State(StateCommand),
    /// Remove a stale state lock left by a process that died.
    ForceUnlock(ForceUnlockArgs),
    /// Print the JSON Schema of the stack format.
    Schema,
    /// Run the embedded demo stack: validate, plan, apply, re-plan, destroy.
    Demo(DemoArgs),
}

/// Which stack, with which variables.
#[derive(Debug, Clone, Args)]
pub struct StackArgs {
    /// The stack file (TOML).
    pub stack: PathBuf,
    /// Environment: applies `[env.NAME.vars]` and keeps a separate state.
    #[arg(long, short)]
    pub env: Option<String>,
    /// Set a variable (repeatable): `--var replicas=3`.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Print diagnostics as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub state: StateArgs,
}

/// Where state lives, overriding the stack's `[state]` table.
#[derive(Debug, Clone, Default, Args)]
pub struct StateArgs {
    /// Keep state in this S3 bucket (the S3 backend), whatever `[state]` says.
    #[arg(long, value_name = "BUCKET")]
    pub state_bucket: Option<String>,
    /// The S3 object key of the state (default: `[state] key`, else
    /// `STACK.ENV.state.json`).
    #[arg(long, value_name = "KEY")]
    pub state_key: Option<String>,
    /// The region of the state bucket.
    #[arg(long, value_name = "REGION")]
    pub state_region: Option<String>,
    /// An S3-compatible endpoint for the state bucket (MinIO, moto…).
    #[arg(long, value_name = "URL")]
    pub state_endpoint_url: Option<String>,
}

impl StateArgs {
    /// Whether any `--state-*` flag was given.
    pub fn is_set(&self) -> bool {
        self.state_bucket.is_some()
            || self.state_key.is_some()
            || self.state_region.is_some()
            || self.state_endpoint_url.is_some()
    }
}

/// How long to wait for the state lock.
#[derive(Debug, Clone, Args)]
pub struct LockArgs {
    /// Wait up to this many seconds for a state lock held by another run
    /// (default: fail at once, naming the holder).
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    pub lock_timeout: f64,
}

#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Save the plan to FILE, for `cairn apply FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit 0 when there are no changes, 2 when there are, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Plan the destruction of the stack instead.
    #[arg(long)]
    pub destroy: bool,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Apply without asking.
    #[arg(long)]
    pub auto_approve: bool,
    /// At most this many operations at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub parallelism: u32,
    /// On failure, keep the partial work (recorded in state) instead of rolling back.
    #[arg(long)]
    pub no_rollback: bool,
    /// Give up retrying throttled or not-yet-consistent calls after this many
    /// seconds (default: the provider's `retry_timeout_s`, else 120).
    #[arg(long, value_name = "SECONDS")]
    pub retry_timeout: Option<f64>,
    #[command(flatten)]
    pub lock: LockArgs,
    /// Scheduling of ready operations (`baseline`: no priority, as a plain
    /// semaphore would; for benchmarks).
    #[arg(long, value_enum, default_value_t = Scheduler::CriticalPath, hide = true)]
    pub scheduler: Scheduler,
}

/// How apply picks among ready operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scheduler {
    /// Longest remaining dependency chain first.
    CriticalPath,
    /// Arbitrary order (seeded), no priority.
    Baseline,
}

#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    /// A stack file, or a plan saved with `cairn plan --out`.
    pub target: PathBuf,
    /// Environment (stack files only).
    #[arg(long, short)]
    pub env: Option<String>,
    /// Set a variable (stack files only).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Clone, Args)]
pub struct GraphArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Dot)]
    pub format: Format,
    /// Colour nodes by their planned action (reads the live world).
    #[arg(long)]
    pub plan: bool,
}

#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Print only this output, raw.
    pub name: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// List the resources in state with their ownership and ids.
    List(StackArgs),
    /// Show one resource's state.
    Show {
        #[command(flatten)]
        stack: StackArgs,
        /// TYPE.NAME
        address: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ForceUnlockArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// The lock id printed by the error that named the holder.
    pub lock_id: String,
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Folder to run the demo in (created; default `./cairn-demo`).
    #[arg(default_value = "cairn-demo")]
    pub dir: PathBuf,
    /// Keep what the demo created instead of destroying it at the end.
    #[arg(long)]
    pub keep: bool,
}
