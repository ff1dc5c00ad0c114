//! The newcomer walkthrough (issue 30): README.md's command blocks, run as a newcomer runs them, so that the README
//! cannot drift from the program again.
//!
//! A block is runnable when the line right before its fence is an HTML comment starting with `<!-- walkthrough`
//! (invisible on the rendered page). In a ```` ```sh ```` block every line that is not a comment is a command (a
//! line ending in `\`, `|`, `&&` or `||` continues on the next), and a `# expect: TEXT` line says that the output
//! of the command before it has a line containing TEXT (runs of spaces count as one, so table columns may move).
//! A ```` ```console ```` block has its commands after `$ ` and, on the other lines, what they print. The blocks
//! run in order in one `sh -e` script — a `cd` or an `export` carries on to the next block, as in a terminal —
//! with `cargo run --release --` (and `cargo run -p fernando-cache --`, `cargo run --`) standing for the built
//! binary, which is also `fernando-cache` on the `PATH`. Any other `cargo` command cannot be part of the
//! walkthrough.
//!
//! Each run has a fresh empty `HOME` and nothing else of this environment but `PATH` (no `XDG_*`, no
//! `FERNANDO_CACHE_*`), so per-user defaults land in that home, wherever the program keeps them. Two runs, from two
//! working folders: one laid out as a fresh clone's root (its `samples/` and `config/`, without an untracked
//! `config/local.toml`; never the checkout itself, whose `var/` may hold earlier runs' entries and would get this
//! run's), and an empty folder, where `samples/…` paths are rewritten to the repository's. A command that fails,
//! or whose output lacks an expected line, fails the test with its line in README.md, its block's line and its
//! output.

mod blocks;
mod run;

use std::path::{Path, PathBuf};

use blocks::{Block, Step, rewritten};
use run::{Place, SAMPLES_VAR, walk};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

fn readme_blocks() -> Vec<Block> {
    let text = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let blocks = blocks::parse(&text, "README.md").unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !blocks.is_empty(),
        "README.md marks no block `<!-- walkthrough -->`: the walkthrough would run nothing"
    );
    blocks
}

/// A folder laid out as a fresh clone's root: the repository's `samples/` and its tracked `config/*.toml`
/// (linked), and nothing else — no `var/`, no `config/local.toml`.
fn fresh_clone_root(into: &Path) -> PathBuf {
    let root = into.join("checkout");
    std::fs::create_dir_all(root.join("config")).unwrap();
    std::os::unix::fs::symlink(repo().join("samples"), root.join("samples")).unwrap();
    for entry in std::fs::read_dir(repo().join("config")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_owned();
        if path.extension().is_some_and(|e| e == "toml") && name != "local.toml" {
            std::os::unix::fs::symlink(&path, root.join("config").join(name)).unwrap();
        }
    }
    root
}

/// The README's runnable blocks, from the root of a fresh clone, as the quick start is written to be followed.
#[test]
fn the_readme_walkthrough_runs_from_the_repository_root() {
    let blocks = readme_blocks();
    let dir = tempfile::tempdir().unwrap();
    let place = Place {
        name: "from a folder laid out as a fresh clone's root (its samples/ and config/)",
        cwd: fresh_clone_root(dir.path()),
        samples: None,
    };
    if let Err(e) = walk(&blocks, "README.md", &place) {
        panic!("the README walkthrough failed:\n{e}");
    }
}

/// The same blocks from an empty folder elsewhere, the sample paths pointing at the repository's: nothing may
/// depend on being started in the checkout (its `config/`, a `var/` beside it).
#[test]
fn the_readme_walkthrough_runs_from_another_folder() {
    let blocks = readme_blocks();
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let place = Place {
        name: "from an empty folder, samples/ paths made the repository's",
        cwd: elsewhere,
        samples: Some(SAMPLES_VAR),
    };
    if let Err(e) = walk(&blocks, "README.md", &place) {
        panic!("the README walkthrough failed:\n{e}");
    }
}

/// The quick start is part of the walkthrough: its blocks process the sample inbox per tenant, and say what the
/// output shows.
#[test]
fn the_quick_start_is_walked() {
    let text = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = text
        .lines()
        .position(|l| l == "## Quick start")
        .expect("a Quick start section")
        + 1;
    let end = text
        .lines()
        .enumerate()
        .skip(start)
        .find(|(_, l)| l.starts_with("## "))
        .map_or(usize::MAX, |(i, _)| i + 1);
    let blocks = readme_blocks();
    let quick: Vec<&Block> = blocks
        .iter()
        .filter(|b| b.line > start && b.line < end)
        .collect();
    assert!(!quick.is_empty(), "no walkthrough block in the quick start");
    let steps: Vec<&Step> = quick.iter().flat_map(|b| &b.steps).collect();
    for tenant in ["--tenant acme", "--tenant globex"] {
        assert!(
            steps.iter().any(|s| s.text.contains(tenant)),
            "the quick start processes {tenant}: {steps:?}"
        );
    }
    assert!(
        steps.iter().all(|s| !s.expects.is_empty()),
        "every quick start command says what it prints: {steps:?}"
    );
}

/// A command that fails names its line in the file, its block's line and its output; an expected line that is
/// not printed names the `# expect:` line.
#[test]
fn a_failing_walkthrough_names_the_readme_line() {
    let markdown = "\
# Title

<!-- walkthrough -->
```sh
echo one
# expect: one
cargo run --release -- process no-such-inbox
```
";
    let parsed = blocks::parse(markdown, "DOC.md").unwrap();
    assert_eq!(parsed.len(), 1);
    assert_eq!(parsed[0].line, 4);
    let dir = tempfile::tempdir().unwrap();
    let place = Place {
        name: "from a test folder",
        cwd: dir.path().to_owned(),
        samples: None,
    };
    let e = walk(&parsed, "DOC.md", &place).unwrap_err();
    assert!(
        e.contains("DOC.md:7 `cargo run --release -- process no-such-inbox` (block at DOC.md:4"),
        "{e}"
    );
    assert!(e.contains("failed with exit code"), "{e}");
    assert!(e.contains("no-such-inbox"), "the output is shown: {e}");

    let markdown = "<!-- walkthrough -->\n```console\n$ echo  two   columns\ntwo columns\n$ echo three\nfour\n```\n";
    let parsed = blocks::parse(markdown, "DOC.md").unwrap();
    let e = walk(&parsed, "DOC.md", &place).unwrap_err();
    assert!(
        e.starts_with("DOC.md:6: no line with `four` in the output of DOC.md:5 `echo three`"),
        "{e}"
    );
    assert!(
        !e.contains("two columns"),
        "a met expectation is not reported: {e}"
    );
}

/// The parts of a block are read as written: continued commands, comments, `cargo` forms, sample paths.
#[test]
fn blocks_are_read_and_rewritten_as_written() {
    let markdown = "\
<!-- walkthrough: the part a newcomer runs -->
```sh
# a comment
echo -n hi | cargo run -p fernando-cache -- \\
    cache set --key k
# expect: stored
cargo xtask test
```

```sh
not marked
```
";
    let parsed = blocks::parse(markdown, "DOC.md").unwrap();
    assert_eq!(parsed.len(), 1, "{parsed:?}");
    let steps = &parsed[0].steps;
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert_eq!(steps[0].line, 4);
    assert!(steps[0].text.ends_with("cache set --key k"), "{steps:?}");
    assert_eq!(steps[0].expects[0].text, "stored");
    assert_eq!(
        rewritten(&steps[0].text, None),
        "echo -n hi | fernando-cache \\\n    cache set --key k"
    );
    assert_eq!(
        rewritten(
            "curl --data-binary @samples/a.pdf x && ls samples/b notsamples/c",
            Some("S/")
        ),
        "curl --data-binary @S/a.pdf x && ls S/b notsamples/c"
    );
    let dir = tempfile::tempdir().unwrap();
    let place = Place {
        name: "from a test folder",
        cwd: dir.path().to_owned(),
        samples: None,
    };
    let e = walk(&parsed, "DOC.md", &place).unwrap_err();
    assert!(
        e.starts_with("DOC.md:7: a walkthrough block runs `cargo`"),
        "{e}"
    );
}
