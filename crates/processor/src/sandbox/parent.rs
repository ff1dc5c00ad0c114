//! The parent's side: one child per document, its input written while its answer and its stderr are read,
//! everything bounded — the answer's size, the stderr kept for the log, the wall clock — and an end without an
//! answer explained: over the memory or CPU budget (the document's doing, said to its sender) or a crash (kept
//! for the log).

use std::{
    ffi::OsString,
    os::unix::process::ExitStatusExt,
    path::Path,
    process::{ExitStatus, Stdio},
};

use nix::sys::signal::Signal;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    process::Command,
};

use super::{
    Job, Output, ParseBudget,
    protocol::{self, Request, VERSION},
};
use crate::EngineError;

/// How much of the end of a child's stderr is kept for the log; the rest is read and dropped.
const STDERR_KEPT: usize = 8 << 10;

/// Runs `job` on `bytes` in a child: `program args… <request>`.
pub(super) async fn run(
    program: &Path,
    args: &[OsString],
    engine: &str,
    job: Job,
    budget: &ParseBudget,
    bytes: &[u8],
) -> Result<Output, EngineError> {
    let unreadable = |reason: String| EngineError::Unreadable {
        engine: engine.to_owned(),
        reason,
    };
    let request = Request {
        version: VERSION,
        job,
        budget: *budget,
        input_bytes: bytes.len() as u64,
    };
    let request = serde_json::to_string(&request)
        .map_err(|e| unreadable(format!("the parser's request could not be written: {e}")))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .arg(request)
        // Nothing of this process's environment (keys, URLs) is the parser's business; PATH finds the program.
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(EngineError::Missing {
                program: program.display().to_string(),
                hint: "HTML and PDF documents are parsed by it in a child process: give the pipeline a program \
                       that runs the parser (the fernando-cache binary does)"
                    .into(),
            });
        }
        Err(e) => return Err(unreadable(format!("the parser could not be started: {e}"))),
    };
    let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(unreadable("the parser's pipes could not be opened".into()));
    };
    let cap = protocol::answer_cap(budget);
    let exchange = async {
        // A child that stops reading (a limit, a crash) closes its end: its exit status says why.
        let write = async move {
            let _ = stdin.write_all(bytes).await;
            let _ = stdin.shutdown().await;
        };
        let read = async {
            let mut answer = Vec::new();
            let read = (&mut stdout)
                .take(cap as u64 + 1)
                .read_to_end(&mut answer)
                .await;
            if answer.len() > cap {
                // A child writing more than its cap would block on a pipe nobody reads any more.
                let _ = child.start_kill();
            }
            read.map(|_| answer)
        };
        // The end of stderr is kept: a dying child's last words (a failed allocation) come last.
        let log = async {
            let mut kept = Vec::new();
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = stderr.read(&mut chunk).await {
                kept.extend_from_slice(&chunk[..n]);
                if kept.len() > 2 * STDERR_KEPT {
                    kept.drain(..kept.len() - STDERR_KEPT);
                }
            }
            kept
        };
        let ((), answer, said) = tokio::join!(write, read, log);
        (answer, said, child.wait().await)
    };
    let wall = budget.wall_time();
    let outcome = tokio::time::timeout(wall, exchange).await;
    let (answer, said, status) = match outcome {
        Ok(ended) => ended,
        Err(_) => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Err(EngineError::Timeout {
                engine: engine.to_owned(),
                seconds: wall.as_secs(),
            });
        }
    };
    let answer =
        answer.map_err(|e| unreadable(format!("the parser's answer could not be read: {e}")))?;
    let status = status.map_err(|e| unreadable(format!("the parser did not finish: {e}")))?;
    if answer.len() > cap {
        return Err(EngineError::OverBudget {
            engine: engine.to_owned(),
            reason: format!(
                "the document's text is longer than the {} bytes allowed (processor.max_text_bytes)",
                budget.max_text_bytes
            ),
        });
    }
    if !status.success() {
        return Err(explain(engine, status, &said, budget));
    }
    match protocol::decode(&answer) {
        Ok(answer) => answer.map_err(|r| r.into_error(engine)),
        Err(e) => Err(unreadable(format!("the parser's answer is not one: {e}"))),
    }
}

/// Why a child ended without an answer, from its exit status and what it said on stderr.
fn explain(engine: &str, status: ExitStatus, said: &[u8], budget: &ParseBudget) -> EngineError {
    let said = String::from_utf8_lossy(said);
    let said = said.trim();
    tracing::warn!(engine, %status, stderr = said, "a parser child ended without an answer");
    let over = |reason: String| EngineError::OverBudget {
        engine: engine.to_owned(),
        reason,
    };
    // What Rust's handler of a failed allocation says before it aborts: the address-space limit was reached.
    if said.contains("memory allocation of") {
        return over(format!(
            "reading the document needs more than {} MiB of memory (processor.parse_memory_bytes)",
            budget.memory_bytes >> 20
        ));
    }
    match status.signal().and_then(|s| Signal::try_from(s).ok()) {
        // The soft CPU limit; the hard one, a second later, kills.
        Some(Signal::SIGXCPU) => over(format!(
            "reading the document needs more than {}s of CPU time (processor.parse_timeout)",
            budget.cpu_time.as_secs()
        )),
        Some(Signal::SIGKILL) => over(
            "reading the document went over its memory or CPU budget (processor.parse_memory_bytes, \
             processor.parse_timeout)"
                .into(),
        ),
        _ if said.contains("overflowed its stack") => {
            over("the document nests deeper than its reader can follow".into())
        }
        _ => EngineError::Unreadable {
            engine: engine.to_owned(),
            reason: format!("the reader stopped on this document ({status}): {said}"),
        },
    }
}
