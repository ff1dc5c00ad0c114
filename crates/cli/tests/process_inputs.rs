//! What `fernando-cache process` makes of the paths it is given (issue 30): README files in a walked folder are
//! not documents, a path that cannot be read is one failed row while the others are processed, an empty folder
//! still prints its (empty) result, the JSON names the text stage as the table does, text in a legacy encoding
//! is read, `--help` lists the file types, and a pipe is a failed row. The test profile's in-process backend: no
//! server needed.

use std::{path::Path, process::Command};

use serde_json::Value;

/// Runs `fernando-cache --env test process ARGS…` in `cwd` and returns the exit code, stdout and stderr.
fn process_in(cwd: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fernando-cache"))
        .args(["--env", "test", "process"])
        .args(args)
        .current_dir(cwd)
        .env_remove("FERNANDO_CACHE_ENV")
        .output()
        .expect("run fernando-cache");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// [`process_in`] with `--json`, its stdout parsed.
fn process_json(cwd: &Path, args: &[&str]) -> (Option<i32>, Value, String) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = process_in(cwd, &all);
    let json = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout:?}\nstderr: {stderr}"));
    (code, json, stderr)
}

fn paths(report: &Value) -> Vec<String> {
    report["documents"]
        .as_array()
        .unwrap_or_else(|| panic!("no documents array: {report}"))
        .iter()
        .map(|d| d["path"].as_str().unwrap_or_default().to_owned())
        .collect()
}

const INVOICE: &[u8] = b"Invoice number: N-3001\nTotal: 10.00 EUR\n";

/// A folder's README (any case, any extension) describes its documents and is not one of them; a README named
/// on the command line is still processed.
#[test]
fn readme_files_in_a_walked_folder_are_not_documents() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(inbox.join("sub")).unwrap();
    std::fs::write(inbox.join("README.md"), "# Inbox\nInvoices land here.\n").unwrap();
    std::fs::write(inbox.join("sub/readme.txt"), "notes").unwrap();
    std::fs::write(inbox.join("invoice.txt"), INVOICE).unwrap();
    let (code, report, stderr) = process_json(dir.path(), &["inbox"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(paths(&report), vec!["inbox/invoice.txt"], "{report}");
    assert_eq!(report["summary"]["documents"], 1);

    let (code, report, stderr) = process_json(dir.path(), &["inbox/README.md"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        paths(&report),
        vec!["inbox/README.md"],
        "named, it is processed"
    );
}

/// The repository's own sample inbox: its README is not processed as a document.
#[test]
fn the_samples_readme_is_not_a_document() {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples");
    let (code, report, stderr) = process_json(&samples, &["."]);
    assert!(matches!(code, Some(0 | 1)), "{stderr}");
    let names = paths(&report);
    assert!(
        names.len() >= 10,
        "every sample document is there: {names:?}"
    );
    assert!(
        !names.iter().any(|p| p.to_lowercase().contains("readme")),
        "{names:?}"
    );
}

/// A mistyped path no longer aborts the run before anything is processed: the other paths are processed, the
/// missing one is a failed row that names it, and the exit code is 1 — in the table and in JSON.
#[test]
fn a_missing_path_is_one_failed_row_and_the_rest_is_processed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("invoice.txt"), INVOICE).unwrap();
    let (code, report, stderr) = process_json(dir.path(), &["invoice.txt", "no-such-inbox"]);
    assert_eq!(code, Some(1), "{stderr}");
    let docs = report["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 2, "{report}");
    assert_eq!(docs[0]["fields"]["invoice_number"], "N-3001", "{report}");
    assert_eq!(docs[1]["path"], "no-such-inbox");
    assert_eq!(
        docs[1]["error"], "no-such-inbox: no such file or folder",
        "{report}"
    );
    assert_eq!(report["summary"]["failed"], 1, "{report}");

    let (code, table, stderr) = process_in(dir.path(), &["no-such-inbox", "invoice.txt"]);
    assert_eq!(code, Some(1), "{stderr}");
    let row = table
        .lines()
        .find(|l| l.starts_with("no-such-inbox"))
        .unwrap_or_else(|| panic!("no row for the missing path:\n{table}"));
    assert!(row.contains("no such file or folder"), "{row}");
    assert!(
        table.lines().any(|l| l.starts_with("invoice.txt")),
        "{table}"
    );
}

/// An empty folder is an empty result, not silence: `--json` prints the documents (none) and the summary, the
/// table its header and summary, and stderr says nothing was found.
#[test]
fn an_empty_folder_prints_an_empty_result_with_its_summary() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    let (code, report, stderr) = process_json(dir.path(), &["--tenant", "acme", "empty"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(report["documents"], serde_json::json!([]), "{report}");
    assert_eq!(report["summary"]["documents"], 0, "{report}");
    assert_eq!(report["summary"]["tenant"], "acme", "{report}");
    assert!(
        stderr.contains("no documents found under empty"),
        "{stderr}"
    );

    let (code, table, _) = process_in(dir.path(), &["empty"]);
    assert_eq!(code, Some(0));
    assert!(table.lines().any(|l| l.starts_with("tenant")), "{table}");
}

/// The text stage has one name: `text` in the table, in each document's `stages` and in the summary's.
#[test]
fn the_json_names_the_text_stage_as_the_table_does() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("invoice.txt"), INVOICE).unwrap();
    let (code, report, stderr) = process_json(dir.path(), &["invoice.txt"]);
    assert_eq!(code, Some(0), "{stderr}");
    let stages = &report["documents"][0]["stages"];
    assert_eq!(stages["text"], "miss", "{stages}");
    assert!(stages.get("ocr").is_none(), "{stages}");
    let summary = &report["summary"]["stages"];
    assert_eq!(summary["text"]["misses"], 1, "{summary}");
    assert!(summary.get("ocr").is_none(), "{summary}");

    let (_, table, _) = process_in(dir.path(), &["invoice.txt"]);
    assert!(table.contains("text stage"), "{table}");
}

/// A text file in Latin-1 (ISO 8859-1 / windows-1252, as older systems write German invoices) is read, umlauts
/// and all, instead of failing as "not UTF-8".
#[test]
fn latin1_text_is_read_in_its_detected_encoding() {
    let dir = tempfile::tempdir().unwrap();
    // "Straße", "Müller", "Gebühr" in Latin-1: ß = DF, ü = FC.
    let latin1: &[u8] = b"M\xfcller B\xfcrobedarf GmbH, Hauptstra\xdfe 5\n\
        Rechnung Nr. RE-2026-0099\n\
        Bearbeitungsgeb\xfchr 2,50 EUR\n\
        Gesamtbetrag: 12,50 EUR\n";
    // Not UTF-8: 0xFC (ü) and 0xDF (ß) are Latin-1 bytes that never stand alone in UTF-8.
    std::fs::write(dir.path().join("rechnung.txt"), latin1).unwrap();
    let (code, report, stderr) = process_json(dir.path(), &["rechnung.txt"]);
    assert_eq!(code, Some(0), "{stderr}\n{report}");
    let doc = &report["documents"][0];
    let text = doc["text"].as_str().unwrap_or_else(|| panic!("{doc}"));
    assert!(
        text.contains("Müller Bürobedarf GmbH, Hauptstraße 5"),
        "{text}"
    );
    assert!(text.contains("Bearbeitungsgebühr"), "{text}");
    assert_eq!(doc["fields"]["invoice_number"], "RE-2026-0099", "{doc}");
}

/// `process --help` says which files it reads and which it passes over.
#[test]
fn process_help_lists_the_file_types() {
    let out = Command::new(env!("CARGO_BIN_EXE_fernando-cache"))
        .args(["process", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        ".txt",
        ".html",
        ".pdf",
        ".png",
        ".jpg",
        ".tiff",
        "README",
        "tesseract",
    ] {
        assert!(help.contains(needle), "{needle} in:\n{help}");
    }
}

/// A walked folder's documents come in the order of a walk visiting each folder's entries by name (byte order),
/// a folder's documents where its name falls — across more than one batch of lookups, and for the paths given in
/// the order given.
#[test]
fn documents_are_answered_in_the_order_of_a_walk_by_name_and_paths_in_the_order_given() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(inbox.join("a")).unwrap();
    for name in ["b.txt", "a-b.txt", "A.txt", "a/x.txt", "a/w.txt"] {
        std::fs::write(inbox.join(name), format!("Invoice number: {name}\n")).unwrap();
    }
    // Many documents in one folder: more than one batch, answered in their places.
    std::fs::create_dir_all(inbox.join("many")).unwrap();
    for i in 0..300 {
        std::fs::write(
            inbox.join(format!("many/{i:03}.txt")),
            format!("Invoice number: M-{i}\n"),
        )
        .unwrap();
    }
    std::fs::write(dir.path().join("first.txt"), INVOICE).unwrap();
    let (code, report, stderr) = process_json(dir.path(), &["inbox", "first.txt"]);
    assert_eq!(code, Some(0), "{stderr}");
    let mut expected: Vec<String> = [
        "inbox/A.txt",
        "inbox/a/w.txt",
        "inbox/a/x.txt",
        "inbox/a-b.txt",
        "inbox/b.txt",
    ]
    .map(String::from)
    .to_vec();
    expected.extend((0..300).map(|i| format!("inbox/many/{i:03}.txt")));
    expected.push("first.txt".into());
    assert_eq!(paths(&report), expected);
    // Each answer is its own document's.
    for d in report["documents"].as_array().unwrap() {
        let path = d["path"].as_str().unwrap();
        let text = d["text"].as_str().unwrap_or_default();
        if let Some(i) = path
            .strip_prefix("inbox/many/")
            .and_then(|n| n.strip_suffix(".txt"))
        {
            let i: u32 = i.parse().unwrap();
            assert!(text.contains(&format!("M-{i}")), "{path}: {text}");
        }
    }
}

/// A reader that goes away (`process inbox | head -1`) ends the output, not the run: no internal error (a
/// panic of `println!` on a broken pipe), and the run's own exit code — as table and as JSON.
#[test]
fn a_closed_output_ends_the_printing_not_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    for n in 0..40 {
        std::fs::write(
            inbox.join(format!("invoice-{n}.txt")),
            format!("Invoice number: N-{n}\nTotal: {n}.00 EUR\n"),
        )
        .unwrap();
    }
    for json in [false, true] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fernando-cache"))
            .args(["--env", "test", "process"])
            .args(json.then_some("--json"))
            .arg("inbox")
            .current_dir(dir.path())
            .env_remove("FERNANDO_CACHE_ENV")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run fernando-cache");
        // The reader is gone before the run prints anything.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "json {json}: {stderr}");
        assert!(
            !stderr.contains("internal error") && !stderr.contains("panicked"),
            "json {json}: {stderr}"
        );
    }
}

/// Found in an outside attack: a pipe (or socket, or device) in a walked folder was passed over in silence, and
/// a pipe named on the command line too — the user never learned a path was not processed. It is a failed row
/// of its own ("not a regular file"), never opened (a pipe would block the run), and the rest is processed.
#[test]
fn a_pipe_in_an_inbox_is_a_failed_row_not_silence() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    std::fs::write(inbox.join("a-invoice.txt"), INVOICE).unwrap();
    let made = Command::new("mkfifo")
        .arg(inbox.join("b-pipe.txt"))
        .status()
        .expect("mkfifo (coreutils) runs");
    assert!(made.success());
    let (code, report, stderr) = process_json(dir.path(), &["inbox"]);
    assert_eq!(code, Some(1), "{stderr}");
    let docs = report["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 2, "{report}");
    assert_eq!(docs[0]["fields"]["invoice_number"], "N-3001", "{report}");
    assert_eq!(docs[1]["path"], "inbox/b-pipe.txt", "{report}");
    assert!(
        docs[1]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("not a regular file"),
        "{report}"
    );
    assert_eq!(report["summary"]["failed"], 1, "{report}");
    // Named on the command line: the same row.
    let (code, report, stderr) = process_json(dir.path(), &["inbox/b-pipe.txt"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(paths(&report), vec!["inbox/b-pipe.txt"], "{report}");
}

/// Found in an outside attack: a file name with a newline in it printed as two lines of the table, the second
/// whatever the name said (a forged row). Control characters in a row are shown escaped; the JSON keeps the
/// name as it is (JSON escapes it).
#[test]
fn a_newline_in_a_file_name_cannot_forge_a_table_row() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    // Short enough that the row shows the whole name.
    let forged = "p\nforged.txt text hit hit hit";
    std::fs::write(inbox.join(forged), INVOICE).unwrap();
    let (code, table, stderr) = process_in(dir.path(), &["inbox"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        !table.lines().any(|l| l.starts_with("forged.txt")),
        "a forged row:\n{table}"
    );
    assert!(table.contains("inbox/p\\nforged.txt"), "{table}");
    let (_, report, _) = process_json(dir.path(), &["inbox"]);
    assert_eq!(paths(&report), vec![format!("inbox/{forged}")], "{report}");
}

/// A fourth outside attack: invisible characters that reorder what follows (U+202E, the right-to-left override)
/// showed `bidi\u{202e}txt.exe` as `bidiexe.txt`; a link to itself inside a folder (which cannot be read) was
/// a warning on standard error (its name printed raw), not a row; and output that could not be written (a full
/// disk) left the exit code 0.
#[test]
fn names_cannot_disguise_themselves_loops_are_rows_and_lost_output_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    std::fs::write(inbox.join("a\u{202e}txt.exe"), INVOICE).unwrap();
    std::os::unix::fs::symlink("b-loop", inbox.join("b-loop")).unwrap();
    let (code, table, stderr) = process_in(dir.path(), &["inbox"]);
    assert_eq!(code, Some(1), "{table}{stderr}");
    assert!(table.contains("inbox/a\\u{202e}txt.exe"), "{table}");
    assert!(!table.contains('\u{202e}'), "{table}");
    let row = table
        .lines()
        .find(|l| l.starts_with("inbox/b-loop"))
        .unwrap_or_else(|| panic!("no row for the loop:\n{table}\n{stderr}"));
    assert!(row.contains("error"), "{row}");

    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fernando-cache"))
        .args(["--env", "test", "process", "--json", "inbox"])
        .current_dir(dir.path())
        .env_remove("FERNANDO_CACHE_ENV")
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot write the output"));
}
