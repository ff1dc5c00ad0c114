//! House rules checked under `cargo test`, from the files and from `cargo metadata` rather than from wording:
//! the crate graph ARCHITECTURE.md draws (no dependency edge it forbids, `testkit` only ever a dev-dependency),
//! a size budget for source files, and a `//!` header on every Rust file (each `lib.rs` saying what the crate
//! owns and what it must not depend on).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

/// Every workspace member and the workspace crates it may depend on (normal and build dependencies). A new
/// member must be added here, which is the moment to decide where it sits.
const ALLOWED: &[(&str, &[&str])] = &[
    ("fernando-cache-config", &[]),
    ("fernando-cache-keys", &["fernando-cache-config"]),
    (
        "fernando-cache-store",
        &["fernando-cache-config", "fernando-cache-keys"],
    ),
    ("fernando-cache-models", &[]),
    ("fernando-cache-decorators", &[]),
    (
        "fernando-cache-processor",
        &[
            "fernando-cache-config",
            "fernando-cache-keys",
            "fernando-cache-store",
        ],
    ),
    (
        "fernando-cache-http",
        &[
            "fernando-cache-config",
            "fernando-cache-keys",
            "fernando-cache-store",
        ],
    ),
    (
        "fernando-cache-ops",
        &[
            "fernando-cache-config",
            "fernando-cache-keys",
            "fernando-cache-store",
            "fernando-cache-models",
        ],
    ),
    (
        "fernando-cache",
        &[
            "fernando-cache-config",
            "fernando-cache-keys",
            "fernando-cache-store",
            "fernando-cache-models",
            "fernando-cache-processor",
            "fernando-cache-http",
            "fernando-cache-ops",
        ],
    ),
    // Runnable examples (`examples/`): above every library, and nothing depends on them.
    (
        "fernando-cache-examples",
        &[
            "fernando-cache-store",
            "fernando-cache-decorators",
            "fernando-cache-http",
            "fernando-cache-processor",
        ],
    ),
    ("fernando-cache-testkit", &[]),
    ("xtask", &["fernando-cache-models"]),
];

/// Lines a source file may have before it must say at its top why it is longer (a `//! Size:` line).
const FILE_BUDGET: usize = 600;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Per member: (dependency on a workspace crate, its kind: "normal", "dev" or "build").
fn workspace_edges() -> BTreeMap<String, Vec<(String, String)>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
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
    assert!(edges.len() >= 10, "found only {edges:?}");
    let mut violations = Vec::new();
    for (member, deps) in &edges {
        let Some((_, allowed)) = ALLOWED.iter().find(|(n, _)| n == member) else {
            violations.push(format!(
                "{member} is not in tidy's ALLOWED table: decide which layer it belongs to"
            ));
            continue;
        };
        for (dep, kind) in deps {
            if kind == "dev" {
                // Tests may use anything below them and the testkit, but never a crate above them.
                let above = ALLOWED
                    .iter()
                    .find(|(n, _)| n == dep)
                    .is_some_and(|(_, theirs)| theirs.contains(&member.as_str()));
                if above {
                    violations.push(format!(
                        "{member} dev-depends on {dep}, which depends on {member}"
                    ));
                }
                continue;
            }
            if !allowed.contains(&dep.as_str()) {
                violations.push(format!("{member} must not depend on {dep} ({kind})"));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "dependency rules broken:\n{}",
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
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "--edges", "normal", "--prefix", "none", "--offline"])
        .args(args)
        .current_dir(root())
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
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
