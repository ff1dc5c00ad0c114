//! The walkthrough's reading of a Markdown file: its runnable blocks, their commands and expected lines, and each
//! command as a run executes it.

/// The comment that marks a block as runnable, on the line before its fence.
const MARKER: &str = "<!-- walkthrough";

/// How an expected line is written in a `sh` block.
const EXPECT: &str = "# expect:";

/// What the binary is called in the README, beside `cargo run` forms.
pub(crate) const PROGRAM: &str = "fernando-cache";

/// The ways the README runs the program through cargo, each standing for the binary.
const CARGO_RUNS: [&str; 4] = [
    "cargo run --release -p fernando-cache -- ",
    "cargo run -p fernando-cache -- ",
    "cargo run --release -- ",
    "cargo run -- ",
];

/// A line the output of a command must have.
#[derive(Debug)]
pub(crate) struct Expect {
    /// Its line in the Markdown file.
    pub(crate) line: usize,
    pub(crate) text: String,
}

/// One command of a block, with what its output must show.
#[derive(Debug)]
pub(crate) struct Step {
    /// The line it starts on in the Markdown file.
    pub(crate) line: usize,
    /// The command as written (continuation lines included).
    pub(crate) text: String,
    pub(crate) expects: Vec<Expect>,
}

/// A runnable block.
#[derive(Debug)]
pub(crate) struct Block {
    /// The line of its opening fence.
    pub(crate) line: usize,
    pub(crate) steps: Vec<Step>,
}

/// Whether a command line goes on on the next line.
fn continues(line: &str) -> bool {
    let line = line.trim_end();
    ["\\", "|", "&&", "||"]
        .iter()
        .any(|end| line.ends_with(end))
}

/// The runnable blocks of `markdown` (named `source` in errors).
pub(crate) fn parse(markdown: &str, source: &str) -> Result<Vec<Block>, String> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let marked = i > 0 && lines[i - 1].trim_start().starts_with(MARKER);
        let Some(lang) = lines[i].trim_start().strip_prefix("```") else {
            i += 1;
            continue;
        };
        let lang = lang.trim().to_owned();
        let fence = i + 1;
        let end = (i + 1..lines.len())
            .find(|&j| lines[j].trim_start().starts_with("```"))
            .ok_or_else(|| format!("{source}:{fence}: the block never ends"))?;
        if marked {
            let body: Vec<(usize, &str)> = (i + 1..end).map(|j| (j + 1, lines[j])).collect();
            let steps = match lang.as_str() {
                "sh" | "shell" | "bash" => sh_steps(&body, source)?,
                "console" => console_steps(&body, source)?,
                other => {
                    return Err(format!(
                        "{source}:{fence}: a walkthrough block must be sh or console, not {other:?}"
                    ));
                }
            };
            if steps.is_empty() {
                return Err(format!(
                    "{source}:{fence}: a walkthrough block without a command"
                ));
            }
            out.push(Block { line: fence, steps });
        }
        i = end + 1;
    }
    Ok(out)
}

/// The commands of a `sh` block, with their `# expect:` lines.
fn sh_steps(body: &[(usize, &str)], source: &str) -> Result<Vec<Step>, String> {
    let mut steps: Vec<Step> = Vec::new();
    let mut continuing = false;
    for &(n, line) in body {
        let trimmed = line.trim();
        if continuing {
            let step = steps.last_mut().expect("a continued step exists");
            step.text.push('\n');
            step.text.push_str(line);
            continuing = continues(line);
        } else if let Some(expected) = trimmed.strip_prefix(EXPECT) {
            let step = steps.last_mut().ok_or_else(|| {
                format!("{source}:{n}: `{EXPECT}` before any command of its block")
            })?;
            step.expects.push(Expect {
                line: n,
                text: expected.trim().to_owned(),
            });
        } else if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        } else {
            steps.push(Step {
                line: n,
                text: line.to_owned(),
                expects: Vec::new(),
            });
            continuing = continues(line);
        }
    }
    Ok(steps)
}

/// The commands of a `console` block (after `$ `), each followed by lines of what it prints.
fn console_steps(body: &[(usize, &str)], source: &str) -> Result<Vec<Step>, String> {
    let mut steps: Vec<Step> = Vec::new();
    let mut continuing = false;
    for &(n, line) in body {
        if continuing {
            let step = steps.last_mut().expect("a continued step exists");
            step.text.push('\n');
            step.text.push_str(line);
            continuing = continues(line);
        } else if let Some(command) = line.strip_prefix("$ ") {
            steps.push(Step {
                line: n,
                text: command.to_owned(),
                expects: Vec::new(),
            });
            continuing = continues(command);
        } else if !line.trim().is_empty() {
            let step = steps.last_mut().ok_or_else(|| {
                format!("{source}:{n}: output before any `$ ` command of its block")
            })?;
            let text = line.trim();
            step.expects.push(Expect {
                line: n,
                text: text.strip_prefix(EXPECT).unwrap_or(text).trim().to_owned(),
            });
        }
    }
    Ok(steps)
}

/// `text` with every run of white space made one space, for comparing table rows whose columns may move.
pub(crate) fn collapsed(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `command` as this run executes it: the cargo forms replaced by the binary, and, from a folder that is not a
/// checkout, `samples/…` paths at the start of a word made the repository's.
pub(crate) fn rewritten(command: &str, samples: Option<&str>) -> String {
    let mut text = command.to_owned();
    for form in CARGO_RUNS {
        text = text.replace(form, &format!("{PROGRAM} "));
    }
    let Some(var) = samples else {
        return text;
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find("samples/") {
        out.push_str(&rest[..at]);
        let word_start = out
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || c == '@' || c == '=');
        out.push_str(if word_start { var } else { "samples/" });
        rest = &rest[at + "samples/".len()..];
    }
    out.push_str(rest);
    out
}
