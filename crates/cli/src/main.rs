//! The `fernando-cache` program: operator commands over the same store API a user's code gets.
//!
//! This crate is the top of the workspace: it wires configuration to the store and prints results. It holds no
//! caching logic of its own; everything it does goes through the public APIs of the crates below it.
//!
//! Exit codes: 0 success (for `get`, a hit), 1 a miss or an absent key, 2 an error — always one clear line on
//! stderr, never a backtrace.

mod args;
mod cli;
mod commands;
mod output;
mod wiring;

use std::process::ExitCode;

use clap::Parser;

// mimalloc rather than glibc malloc: the hot paths allocate on one thread and free on another (a reply buffer
// read by the connection task, dropped by the caller), which glibc's arenas handle poorly. Measured with the
// same code in one run (docs/benchmarks.md, session 3): a 100-byte hit under glibc ran at 0.87× of its rate
// under mimalloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // A document parser child (`__parse`, started by `serve` and `process`): first, so that it starts no runtime,
    // thread or log, and reads no configuration.
    let mut args = std::env::args_os().skip(1);
    if args.next().is_some_and(|a| a == wiring::PARSE_COMMAND) {
        return fernando_cache_processor::run_child(args);
    }
    // Errors are reported as one line; a panic (a bug) is too, rather than a backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("fernando-cache: internal error: {info}");
    }));
    let args = cli::Cli::parse();
    let settings = match args.settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fernando-cache: {}", one_line(&e));
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fernando-cache: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERNANDO_CACHE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,access=info"));
    // The log lines, and the OTLP span export when `telemetry.otlp_endpoint` is set (nothing of it otherwise).
    let tracing = match fernando_cache_ops::telemetry::install_subscriber(
        filter,
        &settings.telemetry,
        runtime.handle(),
    ) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("fernando-cache: {e}");
            return ExitCode::from(2);
        }
    };
    let code = match runtime.block_on(cli::run(args, settings)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fernando-cache: {}", one_line(&e));
            ExitCode::from(2)
        }
    };
    // The last spans go out on the runtime, which still runs; this thread is outside it and may block.
    tracing.shutdown();
    // Output that could not be written (said on stderr when it failed) is a failed run, whatever it computed.
    if output::failed() {
        return ExitCode::from(2);
    }
    code
}

/// The error and its causes, on one line. A cause whose text its parent's message already shows (errors that
/// name their source in their own message, as most of ours do) is not repeated.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for message in e.chain().map(ToString::to_string) {
        if parts.last().is_some_and(|shown| shown.contains(&message)) {
            continue;
        }
        parts.push(message);
    }
    parts.join(": ").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[derive(Debug, thiserror::Error)]
    #[error("connection failed: {0}")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn causes_are_shown_once_on_one_line() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused\nby peer");
        let e = anyhow::Error::new(Outer(io)).context("cache store could not be created");
        assert_eq!(
            one_line(&e),
            "cache store could not be created: connection failed: refused by peer"
        );
    }
}
