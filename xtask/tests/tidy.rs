//! House rules checked under `cargo test`, from the files and from `cargo metadata` rather than from wording:
//! the crate graph ARCHITECTURE.md draws (no dependency edge it forbids, `testkit` only ever a dev-dependency),
//! a size budget for source files, and a `//!` header on every Rust file (each `lib.rs` saying what the crate
//! owns and what it must not depend on).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

/// The crate graph ARCHITECTURE.md draws (its first `text` block): each member and the workspace crates it
/// depends on, short names (`store`) expanded to `fernando-cache-store`. A new member must be drawn there,
/// which is the moment to decide where it sits.
fn drawn_graph() -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let start = text
        .find("```text")
        .expect("ARCHITECTURE.md draws the crate graph in a text block")
        + 7;
    let end = start + text[start..].find("```").expect("the block ends");
    let full = |name: &str| match name {
        "xtask" => name.to_owned(),
        n if n.starts_with("fernando-cache") => n.to_owned(),
        n => format!("fernando-cache-{n}"),
    };
    text[start..end]
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (member, deps) = line.split_once("──►").unwrap_or((line, ""));
            let deps = deps
                .split('·')
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(full)
                .collect();
            (full(member.trim()), deps)
        })
        .collect()
}

/// Lines a source file may have before it must say at its top why it is longer (a `//! Size:` line).
const FILE_BUDGET: usize = 600;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The standard output of `cargo <args>` at the workspace root; a failure fails the test with cargo's stderr.
fn cargo(args: &[&str]) -> Vec<u8> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(args)
        .current_dir(root())
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Per member: (dependency on a workspace crate, its kind: "normal", "dev" or "build").
fn workspace_edges() -> BTreeMap<String, Vec<(String, String)>> {
    let out = cargo(&[
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
        "--offline",
    ]);
    let meta: serde_json::Value = serde_json::from_slice(&out).expect("metadata JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let members: Vec<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    let mut edges = BTreeMap::new();
    for p in packages {
        let name = p["name"].as_str().unwrap().to_owned();
        let deps = p["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| members.contains(&d["name"].as_str().unwrap_or("")))
            .map(|d| {
                (
                    d["name"].as_str().unwrap().to_owned(),
                    d["kind"].as_str().unwrap_or("normal").to_owned(),
                )
            })
            .collect();
        edges.insert(name, deps);
    }
    edges
}

#[test]
fn the_crate_graph_is_the_one_architecture_md_draws() {
    let edges = workspace_edges();
    let drawn = drawn_graph();
    assert!(edges.len() >= 10, "found only {edges:?}");
    let mut violations = Vec::new();
    for (member, deps) in &edges {
        let Some(allowed) = drawn.get(member) else {
            violations.push(format!(
                "{member} is not drawn in ARCHITECTURE.md's crate graph: decide which layer it belongs to"
            ));
            continue;
        };
        for (dep, kind) in deps {
            if kind == "dev" {
                // Tests may use anything below them and the testkit, but never a crate above them.
                if drawn.get(dep).is_some_and(|theirs| theirs.contains(member)) {
                    violations.push(format!(
                        "{member} dev-depends on {dep}, which depends on {member}"
                    ));
                }
                continue;
            }
            if !allowed.contains(dep) {
                violations.push(format!(
                    "{member} depends on {dep} ({kind}), an edge the diagram does not draw"
                ));
            }
        }
        for dep in allowed {
            if !deps.iter().any(|(d, kind)| d == dep && kind != "dev") {
                violations.push(format!(
                    "the diagram draws {member} ──► {dep}, which no dependency uses"
                ));
            }
        }
    }
    for member in drawn.keys() {
        if !edges.contains_key(member) {
            violations.push(format!("the diagram draws {member}, which is not a member"));
        }
    }
    assert!(
        violations.is_empty(),
        "the crate graph and ARCHITECTURE.md disagree:\n{}",
        violations.join("\n")
    );
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target" || n == "ui") {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn all_rust_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(&root().join("crates"), &mut files);
    rust_files(&root().join("xtask"), &mut files);
    rust_files(&root().join("examples"), &mut files);
    assert!(files.len() > 20, "found only {} files", files.len());
    files
}

fn header(text: &str) -> String {
    text.lines()
        .take_while(|l| l.starts_with("//!"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module files ARCHITECTURE.md's code map lists, per crate folder (`crates/<dir>`), as paths under `src/`.
fn code_map() -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("- **`crates/") {
            current = rest.split('`').next().map(str::to_owned);
        } else if line.starts_with("## ")
            || (line.starts_with("- ") && !line.starts_with("- **`crates/"))
        {
            current = None;
        } else if let (Some(krate), Some(rest)) = (&current, line.trim_start().strip_prefix("- `"))
            && let Some(file) = rest.split('`').next().filter(|f| f.ends_with(".rs"))
        {
            map.entry(krate.clone()).or_default().push(file.to_owned());
        }
    }
    map
}

#[test]
fn the_code_map_lists_every_module_file_and_no_other() {
    let map = code_map();
    let mut violations = Vec::new();
    let crates = root().join("crates");
    for entry in std::fs::read_dir(&crates).unwrap() {
        let dir = entry.unwrap().path();
        let src = dir.join("src");
        if !src.is_dir() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let listed = map.get(&name).cloned().unwrap_or_default();
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for file in &files {
            let rel = file
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if !listed.contains(&rel) {
                violations.push(format!(
                    "crates/{name}/src/{rel} is missing from the code map"
                ));
            }
        }
        for rel in &listed {
            if !src.join(rel).is_file() {
                violations.push(format!(
                    "the code map lists crates/{name}/src/{rel}, which does not exist"
                ));
            }
        }
    }
    assert!(map.len() >= 8, "the code map was not found: {map:?}");
    assert!(
        violations.is_empty(),
        "ARCHITECTURE.md's code map and the source tree disagree:\n{}",
        violations.join("\n")
    );
}

#[test]
fn every_rust_file_starts_with_a_module_doc() {
    let offenders: Vec<_> = all_rust_files()
        .into_iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap().starts_with("//!"))
        .collect();
    assert!(
        offenders.is_empty(),
        "files without a leading //! line: {offenders:#?}"
    );
}

#[test]
fn source_files_stay_within_budget_or_say_why() {
    let offenders: Vec<String> = all_rust_files()
        .into_iter()
        .filter(|f| f.components().any(|c| c.as_os_str() == "src"))
        .filter_map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            let lines = text.lines().count();
            (lines > FILE_BUDGET && !header(&text).contains("//! Size:"))
                .then(|| format!("{} ({lines} lines)", f.display()))
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "source files over {FILE_BUDGET} lines without a `//! Size:` reason at their top (split them by \
         concern):\n{}",
        offenders.join("\n")
    );
}

#[test]
fn every_lib_says_what_it_owns_and_must_not_depend_on() {
    let mut libs = Vec::new();
    for entry in std::fs::read_dir(root().join("crates")).unwrap() {
        let lib = entry.unwrap().path().join("src/lib.rs");
        if lib.is_file() {
            libs.push(lib);
        }
    }
    assert!(libs.len() >= 8, "found only {libs:?}");
    for lib in libs {
        let header = header(&std::fs::read_to_string(&lib).unwrap());
        assert!(
            header.lines().count() >= 2 && header.contains("must not"),
            "{} must open with a //! header that says what the crate owns and what it must not depend on",
            lib.display()
        );
    }
}

/// The distinct packages `cargo tree` lists for these arguments (normal dependencies, every platform's).
fn packages(args: &[&str]) -> std::collections::BTreeSet<String> {
    let mut all = vec!["tree", "--edges", "normal", "--prefix", "none", "--offline"];
    all.extend_from_slice(args);
    String::from_utf8_lossy(&cargo(&all))
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Issue 29: a service that only wants `#[cached]` over the in-process backend (the store without its `redis`,
/// `disk` and `seal` features) builds no Redis client, TLS, SQLite or AEAD, and at most 105 packages.
#[test]
fn cached_over_the_in_process_backend_stays_light() {
    let mut all = packages(&["--package", "fernando-cache-store", "--no-default-features"]);
    all.extend(packages(&["--package", "fernando-cache-decorators"]));
    for heavy in [
        "redis",
        "deadpool-redis",
        "rustls",
        "ring",
        "rusqlite",
        "libsqlite3-sys",
        "aegis",
    ] {
        assert!(!all.contains(heavy), "{heavy} is built for #[cached]");
    }
    assert!(all.len() <= 105, "{} packages: {all:?}", all.len());
}
