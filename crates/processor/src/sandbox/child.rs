//! The child's side of the parser protocol: the request from its argument, its limits entered, the document
//! from stdin, the answer to stdout.

use std::{
    ffi::OsString,
    io::{Read, Write},
    os::unix::process::CommandExt,
    process::ExitCode,
};

use nix::sys::resource::{Resource, getrlimit, rlim_t, setrlimit};

use super::{
    ParseBudget, Refusal, execute,
    protocol::{self, Request, VERSION},
};

/// Runs one parse as the child process a [`ParserHost::Child`](super::ParserHost::Child) starts, and answers
/// the exit code to end with. `args` are the arguments after the program's own (its command word); the first
/// is the request. Call it first thing in `main`, before any runtime, thread or log is started.
///
/// The limits come before anything is read: no core files, the CPU time, and the address space. An allocator
/// reserves address space as a program starts (mimalloc takes arenas of 1 GiB), and a limit set afterwards
/// would not count it; so when the program is not yet under the memory limit, it sets it and runs itself again
/// (`exec`, the same arguments), to be under it from its first instruction.
pub fn run_child(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let Some(request) = args.into_iter().next() else {
        eprintln!("parser: the request is missing");
        return ExitCode::from(2);
    };
    let request = match request.to_str().map(serde_json::from_str::<Request>) {
        Some(Ok(request)) => request,
        _ => {
            eprintln!("parser: the request is not one");
            return ExitCode::from(2);
        }
    };
    if request.version != VERSION {
        eprintln!(
            "parser: the request is of protocol version {}, this program speaks {VERSION}",
            request.version
        );
        return ExitCode::from(2);
    }
    if let Err(e) = enter_limits(&request.budget) {
        eprintln!("parser: {e}");
        return ExitCode::from(3);
    }
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin()
        .lock()
        .take(request.input_bytes)
        .read_to_end(&mut input)
    {
        eprintln!("parser: the document could not be read: {e}");
        return ExitCode::from(2);
    }
    let max_text_bytes = request.budget.max_text_bytes;
    let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        execute(&request.job, &input, max_text_bytes)
    }))
    .unwrap_or_else(|_| {
        Err(Refusal::Unreadable(
            "the reader failed on this document".into(),
        ))
    });
    let encoded = protocol::encode(&answer, protocol::answer_cap(&request.budget));
    let mut out = std::io::stdout().lock();
    match out.write_all(&encoded).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("parser: the answer could not be written: {e}");
            ExitCode::from(2)
        }
    }
}

/// Puts this process under the budget's limits; returns only once it is (or when it cannot be).
fn enter_limits(budget: &ParseBudget) -> Result<(), String> {
    let failed = |what: &str, e: nix::Error| format!("the {what} limit could not be set: {e}");
    // An abort (a failed allocation) must not leave a core file behind.
    setrlimit(Resource::RLIMIT_CORE, 0, 0).map_err(|e| failed("core file", e))?;
    let seconds = budget.cpu_time.as_secs() + u64::from(budget.cpu_time.subsec_nanos() > 0);
    let cpu = seconds.max(1) as rlim_t;
    let (_, cpu_hard) = getrlimit(Resource::RLIMIT_CPU).map_err(|e| failed("CPU time", e))?;
    // SIGXCPU at the soft limit; SIGKILL a second later, should it be ignored. Never above an inherited limit.
    setrlimit(
        Resource::RLIMIT_CPU,
        cpu.min(cpu_hard),
        cpu.saturating_add(1).min(cpu_hard),
    )
    .map_err(|e| failed("CPU time", e))?;
    let memory = budget.memory_bytes as rlim_t;
    let (soft, hard) = getrlimit(Resource::RLIMIT_AS).map_err(|e| failed("memory", e))?;
    if soft <= memory {
        return Ok(());
    }
    let memory = memory.min(hard);
    setrlimit(Resource::RLIMIT_AS, memory, memory).map_err(|e| failed("memory", e))?;
    let program = super::this_program().map_err(|e| {
        format!("this program could not be found to run again under the limit: {e}")
    })?;
    let e = std::process::Command::new(program)
        .args(std::env::args_os().skip(1))
        .exec();
    Err(format!(
        "this program could not run again under the memory limit: {e}"
    ))
}
