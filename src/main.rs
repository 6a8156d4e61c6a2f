//! The `cairn` binary: parse arguments, run, exit with the command's code.

use clap::Parser;

/// mimalloc rather than the system allocator: an apply allocates from
/// several threads at once, and a plan at 100,000 resources holds a few
/// million small objects. Built without transparent huge pages (the
/// `no_thp` feature): the kernel zeroed whole 2 MB pages on first touch,
/// most of an apply's CPU time, and a large plan's time varied with how
/// many it could get. Measured in `docs/benchmarks.md`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = cairn::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    // On a worker thread rather than this one: the operations' tasks then
    // wake the command's task without waking a thread outside the pool.
    let code = runtime.block_on(async { tokio::spawn(cairn::commands::run(cli)).await });
    match code {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => std::process::ExitCode::from(1),
    }
}
