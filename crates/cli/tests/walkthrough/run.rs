//! The walkthrough's runs: the blocks as one `sh -e` script in a fresh home, each command's output told apart by
//! the mark printed before it, and the exit code and expected lines checked.

use std::{
    collections::BTreeMap,
    io::Read,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::blocks::{Block, PROGRAM, Step, collapsed, rewritten};

/// The longest one run may take: every block of the README, the sample inbox processed a few times.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// Where one run starts: its working folder and how it sees the sample inbox.
pub(crate) struct Place {
    /// For messages: `from a folder laid out as a fresh clone's root`.
    pub(crate) name: &'static str,
    pub(crate) cwd: PathBuf,
    /// What `samples/` at the start of a word becomes (`None`: left as it is).
    pub(crate) samples: Option<&'static str>,
}

/// What `samples/` at the start of a word becomes from a folder that is not a checkout: the repository's
/// `samples` folder, from an environment variable (quoted: the path may hold spaces).
pub(crate) const SAMPLES_VAR: &str = "\"$WALKTHROUGH_SAMPLES\"/";

/// The start of the line each command prints before it runs, with its line in the Markdown file.
const STEP_MARK: char = '\u{1e}';

/// Runs `blocks` (read from `source`) at `place` in a fresh home and checks each command's exit and expected lines.
pub(crate) fn walk(blocks: &[Block], source: &str, place: &Place) -> Result<(), String> {
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let home = scratch.path().join("home");
    let bin = scratch.path().join("bin");
    std::fs::create_dir_all(&home).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_fernando-cache"), bin.join(PROGRAM))
        .map_err(|e| e.to_string())?;

    let mut script =
        String::from("# README.md walkthrough: each command is preceded by its line's mark.\n");
    let mut steps: BTreeMap<usize, (&Block, &Step)> = BTreeMap::new();
    for block in blocks {
        for step in &block.steps {
            let command = rewritten(&step.text, place.samples);
            if command.split_whitespace().any(|w| w == "cargo") {
                return Err(format!(
                    "{source}:{}: a walkthrough block runs `cargo`, which the walkthrough cannot (only {} and the \
                     `cargo run` forms that stand for it): {}",
                    step.line,
                    PROGRAM,
                    step.text.trim()
                ));
            }
            script.push_str(&format!("printf '\\036%s\\n' {}\n{command}\n", step.line));
            steps.insert(step.line, (block, step));
        }
    }
    let script_path = scratch.path().join("walkthrough.sh");
    std::fs::write(&script_path, &script).map_err(|e| e.to_string())?;

    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let samples = crate::repo().join("samples").display().to_string();
    let mut env = vec![
        ("PATH".to_owned(), path),
        ("HOME".to_owned(), home.display().to_string()),
        ("WALKTHROUGH_SAMPLES".to_owned(), samples),
    ];
    for keep in ["TMPDIR", "TESSDATA_PREFIX"] {
        if let Ok(v) = std::env::var(keep) {
            env.push((keep.to_owned(), v));
        }
    }
    let (code, output, timed_out) = run_script(&script_path, &place.cwd, &env);

    // The output of each command, by its line.
    let mut outputs: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut current: Option<usize> = None;
    for line in output.lines() {
        if let Some(n) = line.strip_prefix(STEP_MARK) {
            current = n.trim().parse().ok();
            outputs.entry(current.unwrap_or(0)).or_default();
        } else if let Some(n) = current {
            outputs.entry(n).or_default().push(line.to_owned());
        }
    }
    let shown = |n: usize| -> String {
        let lines = outputs.get(&n).cloned().unwrap_or_default();
        let from = lines.len().saturating_sub(60);
        let mut text: String = lines[from..]
            .iter()
            .map(|l| format!("    | {l}\n"))
            .collect();
        if text.is_empty() {
            text = "    (no output)\n".to_owned();
        }
        text
    };
    let describe = |step: &Step, block: &Block| {
        format!(
            "{source}:{} `{}` (block at {source}:{}, run {}, in a fresh HOME)",
            step.line,
            collapsed(&step.text),
            block.line,
            place.name
        )
    };
    // The command that ran last: the one that failed, or did not finish.
    let last: Option<(usize, &Block, &Step)> =
        current.and_then(|n| steps.get(&n).map(|&(block, step)| (n, block, step)));
    if timed_out {
        let at = last.map_or_else(
            || "before its first command".to_owned(),
            |(_, block, step)| describe(step, block),
        );
        return Err(format!(
            "the walkthrough did not finish within {RUN_TIMEOUT:?}; it was at {at}:\n{}",
            last.map_or_else(String::new, |(n, _, _)| shown(n))
        ));
    }
    if code != Some(0) {
        return Err(match last {
            Some((n, block, step)) => format!(
                "{} failed with exit code {}:\n{}",
                describe(step, block),
                code.map_or_else(|| "none (killed by a signal)".to_owned(), |c| c.to_string()),
                shown(n)
            ),
            None => format!(
                "the walkthrough script failed before its first command (exit code {code:?}):\n{output}"
            ),
        });
    }
    let mut missing = Vec::new();
    for (&n, &(block, step)) in &steps {
        let lines: Vec<String> = outputs
            .get(&n)
            .map(|l| l.iter().map(|l| collapsed(l)).collect())
            .unwrap_or_default();
        for expect in &step.expects {
            let wanted = collapsed(&expect.text);
            if !lines.iter().any(|l| l.contains(&wanted)) {
                missing.push(format!(
                    "{source}:{}: no line with `{wanted}` in the output of {}:\n{}",
                    expect.line,
                    describe(step, block),
                    shown(n)
                ));
            }
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing.join("\n"))
    }
}

/// Runs `sh -e script` in `cwd` with exactly `env`, stdout and stderr in one stream; ends it and everything it
/// started (its process group) after [`RUN_TIMEOUT`]. Returns its exit code, its output and whether it timed out.
fn run_script(script: &Path, cwd: &Path, env: &[(String, String)]) -> (Option<i32>, String, bool) {
    let (mut reader, writer) = std::io::pipe().expect("a pipe");
    let mut command = Command::new("sh");
    command
        .arg("-e")
        .arg(script)
        .current_dir(cwd)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(writer.try_clone().expect("a pipe"))
        .stderr(writer)
        .process_group(0);
    let mut child = command.spawn().expect("start sh");
    // The pipe's write ends are the child's alone now: the reader sees its end once they all are closed.
    drop(command);
    let output = Arc::new(Mutex::new(Vec::new()));
    let sink = output.clone();
    let reading = std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let deadline = Instant::now() + RUN_TIMEOUT;
    let (code, timed_out) = loop {
        if let Some(status) = child.try_wait().expect("wait for sh") {
            break (status.code(), false);
        }
        if Instant::now() >= deadline {
            break (None, true);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Whatever a command left running (a server started in the background) ends with the run.
    let group = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    let _ = child.wait();
    let _ = reading.join();
    let bytes = output.lock().unwrap().clone();
    (
        code,
        String::from_utf8_lossy(&bytes).into_owned(),
        timed_out,
    )
}
