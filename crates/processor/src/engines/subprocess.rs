//! The engines' programs (`tesseract`, `pdftoppm`) run as child processes, through this one helper: asked their
//! version once ([`probe`]), and given a document on stdin while stdout and stderr are read, within a
//! wall-clock limit past which the child is killed ([`run`]).

use std::{
    process::{Output, Stdio},
    time::Duration,
};

use tokio::{io::AsyncWriteExt, process::Command};

use crate::EngineError;

/// Runs `program flag` (`--version`, `-v`) to the end, blocking (a few milliseconds, once per engine: callers
/// keep the answer). A program that is not there is [`EngineError::Missing`] with `hint` (how to install it);
/// one that cannot be started otherwise is [`EngineError::Unreadable`] naming `engine`. Its exit status and
/// output are the caller's to read: programs print their version in different places.
pub(crate) fn probe(
    engine: &str,
    program: &str,
    flag: &str,
    hint: &str,
) -> Result<Output, EngineError> {
    std::process::Command::new(program)
        .arg(flag)
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => EngineError::Missing {
                program: program.to_owned(),
                hint: hint.to_owned(),
            },
            _ => EngineError::Unreadable {
                engine: engine.to_owned(),
                reason: format!("`{program}` could not be started: {e}"),
            },
        })
}

/// Runs `program args…` with `input` on its stdin and waits at most `timeout` for it to end; a child still
/// running then is killed (it is dropped, spawned with `kill_on_drop`). Errors name `engine`: a program that
/// cannot be started, or whose end cannot be read, is [`EngineError::Unreadable`]; one that takes too long is
/// [`EngineError::Timeout`]. Its exit status, stdout and stderr are the caller's to judge.
pub(crate) async fn run(
    engine: &str,
    program: &str,
    args: &[&str],
    input: &[u8],
    timeout: Duration,
) -> Result<Output, EngineError> {
    let failed = |reason: String| EngineError::Unreadable {
        engine: engine.to_owned(),
        reason,
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(format!("could not start {program}: {e}")))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| failed("no stdin".into()))?;
    let input = input.to_vec();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&input).await;
        let _ = stdin.shutdown().await;
    });
    let out = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| EngineError::Timeout {
            engine: engine.to_owned(),
            seconds: timeout.as_secs(),
        })?
        .map_err(|e| failed(format!("{engine} did not finish: {e}")))?;
    let _ = writer.await;
    Ok(out)
}
