//! `fernando-cache process <paths…>`: runs the document pipeline over files and folders, with a progress bar,
//! and prints a summary of what the cache saved.

use std::{
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::Context;
use fernando_cache_config::Settings;
use fernando_cache_keys::TenantId;
use fernando_cache_ops::summary::count;
use fernando_cache_processor::{
    DocumentKind, DocumentProcessor, EngineError, ProcessError, ProcessedDocument, StageOutcome,
};
use fernando_cache_store::Store;
use futures_util::StreamExt;
use serde_json::json;
use std::io::Write as _;

use crate::output::outln;

mod json;

/// Documents processed at once.
const PARALLEL: usize = 4;

/// One row of a run, from the paths given: a file to process, or a given path that cannot be read — a failed
/// row of its own, so that one mistyped path does not keep the others from being processed.
enum Input {
    File(PathBuf),
    Unreadable(PathBuf, std::io::Error),
}

/// Every regular file under `paths` (folders walked recursively, symbolic links followed with loops detected),
/// in a stable order, and every given path that cannot be read — and every pipe, socket or device met, which is
/// not read. A walk passes over hidden entries and README
/// files ([`passed_over`]).
fn collect(paths: &[PathBuf]) -> Vec<Input> {
    let mut out = Vec::new();
    for p in paths {
        if let Err(e) = std::fs::metadata(p) {
            out.push(Input::Unreadable(p.clone(), e));
            continue;
        }
        let walk = walkdir::WalkDir::new(p)
            .follow_links(true)
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || !passed_over(e));
        let mut files = Vec::new();
        for entry in walk {
            // A symbolic link loop or an unreadable folder inside: said, and the rest is still processed.
            let entry = match entry {
                Ok(e) => e,
                // An entry met that cannot be read (a link to itself, a folder without permission): a failed
                // row in its place. A link back to a folder being walked is no document: said, and passed over.
                Err(e) if e.path().is_some() && e.loop_ancestor().is_none() => {
                    let path = e
                        .path()
                        .map(std::path::Path::to_path_buf)
                        .unwrap_or_default();
                    files.push((path, Err(std::io::Error::other(e.to_string()))));
                    continue;
                }
                Err(e) => {
                    eprintln!(
                        "fernando-cache: skipped while walking {}: {}",
                        printable(&p.display().to_string()),
                        printable(&e.to_string())
                    );
                    continue;
                }
            };
            let kind = entry.file_type();
            if kind.is_file() {
                files.push((entry.into_path(), Ok(())));
            } else if !kind.is_dir() {
                // A pipe, socket or device: a failed row of its own, never opened (a pipe would block the run).
                files.push((
                    entry.into_path(),
                    Err(std::io::Error::other(
                        "not a regular file (a pipe, a socket or a device); not read",
                    )),
                ));
            }
        }
        // In the order of a walk that visits each folder's entries by name: the paths' components compared in
        // turn, which is their bytes compared with the separator below every other byte. (A walk sorting as it
        // goes parses each name again for every comparison: a tenth of an inbox's time.)
        files.sort_by_cached_key(|(path, _)| {
            let mut key = path.as_os_str().as_encoded_bytes().to_vec();
            for b in &mut key {
                if *b == std::path::MAIN_SEPARATOR as u8 {
                    *b = 0;
                }
            }
            key
        });
        out.extend(files.into_iter().map(|(path, readable)| match readable {
            Ok(()) => Input::File(path),
            Err(e) => Input::Unreadable(path, e),
        }));
    }
    out
}

/// Whether a walk passes over an entry of a folder: hidden ones (`.git`, `.DS_Store`), and files named `README`
/// or `README.<anything>` in any case (`README.md`, `readme.txt`), which describe a folder's documents rather
/// than being one (the samples' own README among them). A path named on the command line is never passed over.
fn passed_over(entry: &walkdir::DirEntry) -> bool {
    let Some(name) = entry.file_name().to_str() else {
        return false;
    };
    let lower = name.to_ascii_lowercase();
    name.starts_with('.')
        || (entry.file_type().is_file() && (lower == "readme" || lower.starts_with("readme.")))
}

/// Writes the answered rows from `from` on, up to the first still unanswered, as `--json` objects, and lets go
/// of their texts; where the next write starts.
fn write_ready(
    rows: &mut json::JsonDocuments,
    results: &mut [Row],
    from: usize,
) -> anyhow::Result<usize> {
    let mut at = from;
    while let Some((path, Some(r))) = results.get_mut(at) {
        let path = path.display().to_string();
        let object = match &*r {
            Ok(doc) => {
                let mut v = serde_json::to_value(doc).unwrap_or_default();
                v["path"] = json!(path);
                v
            }
            Err(e) => match skip_reason(e) {
                Some(why) => json!({"path": path, "skipped": why}),
                None => json!({"path": path, "error": e.to_string()}),
            },
        };
        rows.push(&object)?;
        if let Ok(doc) = r {
            doc.result.text = String::new();
        }
        at += 1;
    }
    Ok(at)
}

/// `text` for one row of the table (or a warning): control characters (a newline in a file name, an escape
/// sequence) and invisible reordering ones (U+202E) shown escaped, so that no name or field can end a row, forge
/// another, move the terminal's cursor or show itself as another name.
fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    // Control characters, and the invisible ones that reorder or break what follows: zero-width marks, line and
    // paragraph separators, bidirectional embeddings, overrides and isolates.
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
    };
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars()
            .map(|c| {
                if unsafe_char(c) {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// The failed row of a given path that cannot be read.
fn unreadable(path: &std::path::Path, e: &std::io::Error) -> ProcessError {
    let why = match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or folder".to_owned(),
        _ => e.to_string(),
    };
    ProcessError::Io(format!("{}: {why}", path.display()))
}

/// `process --help`'s closing text: the documents read, from [`DocumentKind`]'s own lists, and what a walk
/// passes over.
pub(crate) fn help() -> String {
    let kinds: Vec<String> = DocumentKind::ALL
        .iter()
        .map(|k| {
            let extensions: Vec<String> = k.extensions().iter().map(|e| format!(".{e}")).collect();
            format!("  {:<5} {}", k.as_str(), extensions.join(" "))
        })
        .collect();
    format!(
        "Documents (the kind is told by the bytes, else by the file name's extension):\n{}\n\n\
         Text may be UTF-8, UTF-16 with a byte-order mark, or a legacy encoding such as Latin-1 (detected).\n\
         HTML is read without its markup, a PDF by its text layer. Images, and PDF pages without a text layer,\n\
         are read by OCR with tesseract (and pdftoppm): where it is missing they are skipped, not failed\n\
         (--strict fails them).\n\n\
         Folders are walked recursively, passing over hidden entries and files named README or README.*.\n\
         A path that cannot be read is a failed row; the others are still processed.\n\
         Exit code: 0; 1 when a document failed (or, with --strict, was skipped); 2 on an error.",
        kinds.join("\n")
    )
}

fn outcome(o: StageOutcome) -> &'static str {
    o.as_str()
}

/// Why a document is skipped rather than failed: an engine it needs is not installed here (tesseract on a
/// fresh machine). The message says how to install it.
fn skip_reason(e: &ProcessError) -> Option<String> {
    match e {
        ProcessError::Engine(EngineError::Missing { .. }) => Some(e.to_string()),
        _ => None,
    }
}

fn human_bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

pub(crate) async fn run(
    settings: &Settings,
    paths: Vec<PathBuf>,
    tenant: &str,
    json_output: bool,
    strict: bool,
) -> anyhow::Result<ExitCode> {
    let tenant = TenantId::new(tenant).context("--tenant")?;
    let inputs = collect(&paths);
    if inputs.is_empty() {
        // An empty inbox is no error: the empty result and its summary are printed as for any run.
        eprintln!(
            "fernando-cache: no documents found under {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let to_process = inputs
        .iter()
        .filter(|i| matches!(i, Input::File(_)))
        .count();
    let store = Store::from_settings(settings)?;
    let recorder = crate::wiring::start_recorder(settings, &store).await;
    let parsers = crate::wiring::parser_host()?;
    let processor = DocumentProcessor::from_settings(settings, store.clone(), parsers)
        .await
        .for_tenant(tenant.clone());
    // Reads are counted for the shared access history, which only the statistics database keeps: without
    // it, counting them would be work for nothing.
    let processor = if recorder.is_some() {
        processor
    } else {
        processor.without_read_tracking()
    };
    let before = store.metrics().totals();
    let started = Instant::now();

    let bar = if json_output {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(to_process as u64).with_style(
            indicatif::ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {wide_msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        )
    };
    // Paths that cannot be read are failed rows in their places; the files go through the processor's
    // batches, which answer in input order.
    let mut results: Vec<Row> = Vec::with_capacity(inputs.len());
    let mut files = Vec::with_capacity(to_process);
    for input in inputs {
        match input {
            Input::File(path) => {
                files.push(path.clone());
                results.push((path, None));
            }
            Input::Unreadable(path, e) => {
                let failed = unreadable(&path, &e);
                results.push((path, Some(Err(failed))));
            }
        }
    }
    let mut unreachable = 0;
    // `--json` writes each row as soon as it and every row before it are answered; then its text is let go,
    // as the table (which prints no text) lets it go at once: a long run does not hold every document's text.
    let mut json_rows = json_output.then(json::JsonDocuments::default);
    let mut written = 0;
    {
        let pending: Vec<usize> = (0..results.len())
            .filter(|&at| results[at].1.is_none())
            .collect();
        let mut pending = pending.into_iter();
        let mut answers = std::pin::pin!(processor.process_files(files, PARALLEL));
        while let Some(outcome) = answers.next().await {
            let Some(at) = pending.next() else {
                anyhow::bail!("the processor answered more documents than it was given");
            };
            if !bar.is_hidden() {
                bar.set_message(results[at].0.display().to_string());
            }
            unreachable += usize::from(outcome.cache_unavailable);
            results[at].1 = Some(outcome.result);
            if let Some(rows) = &mut json_rows {
                written = write_ready(rows, &mut results, written)?;
            } else if let Some(Ok(doc)) = &mut results[at].1 {
                doc.result.text = String::new();
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    for (path, r) in &mut results {
        if r.is_none() {
            *r = Some(Err(ProcessError::Io(format!(
                "{}: not processed",
                path.display()
            ))));
        }
    }
    if let Some(rows) = &mut json_rows {
        write_ready(rows, &mut results, written)?;
    }
    let results: Vec<Done> = results
        .into_iter()
        .filter_map(|(path, r)| Some((path, r?)))
        .collect();
    let elapsed = started.elapsed();
    let t = processor.telemetry();
    let cache = store.metrics().totals().since(&before);
    let skipped: Vec<String> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().err().and_then(skip_reason))
        .collect();
    let failed = results.iter().filter(|(_, r)| r.is_err()).count() - skipped.len();
    let whereabouts = crate::wiring::Whereabouts::of(settings);
    // Degradation is never silent: the summary says for how many documents, where the cache is and why.
    let unavailable = match unreachable {
        0 => None,
        documents => Some((documents, store.admin().last_unavailable())),
    };

    if let Some(rows) = json_rows {
        let summary = json!({
            "tenant": tenant.as_str(),
            "documents": results.len(),
            "from_cache": t.documents_cached(),
            "processed": t.documents_processed(),
            "failed": failed,
            "skipped": skipped.len(),
            "stages": {"document": t.document, "text": t.ocr, "extraction": t.extraction},
            "time_saved_ms": t.time_saved.as_millis() as u64,
            "engine_time_ms": t.time_spent.as_millis() as u64,
            "bytes_raw": cache.raw_bytes,
            "bytes_stored": cache.stored_bytes,
            "tokens_spent": cache.tokens_spent,
            "tokens_saved": cache.tokens_saved,
            "money_spent_micros": cache.money_spent_micros,
            "money_saved_micros": cache.money_saved_micros,
            "currency": settings.prices.currency,
            "elapsed_ms": elapsed.as_millis() as u64,
            // Which cache this run used and where its statistics went.
            "storage": whereabouts.json(),
            "cache_unavailable": unavailable.as_ref().map(|(documents, cause)| json!({
                "documents": documents,
                "cache": whereabouts.cache,
                "cause": cause,
            })),
        });
        rows.finish(&summary)?;
    } else {
        print_table(
            &results,
            &t,
            &cache,
            &settings.prices,
            elapsed,
            &tenant,
            (failed, &skipped),
        );
        whereabouts.print();
        if let Some((documents, cause)) = &unavailable {
            outln!(
                "cache unavailable for {} of {}: {} could not be reached{}; they were computed without it and \
                 nothing was stored",
                count(*documents as u64, "document", "documents"),
                results.len(),
                whereabouts.cache,
                cause
                    .as_deref()
                    .map_or_else(String::new, |c| format!(" ({c})")),
            );
        }
    }
    if let Some((documents, _)) = &unavailable {
        tracing::warn!(
            documents,
            cache = %whereabouts.cache,
            "the cache was unavailable; documents were computed without it"
        );
    }
    // What this run wrote of replicated types reaches other regions' queue before the process ends.
    store.flush_replication().await;
    if let Some(recorder) = recorder {
        // The reads of this run join the shared access history the warmup jobs read.
        if let Ok(url) = crate::wiring::database_url(settings) {
            fernando_cache_ops::warming::flush_accesses(&processor, &url, &settings.warming).await;
        }
        recorder.shutdown(Duration::from_secs(5)).await;
    }
    // Skipped documents fail the run only when asked (`--strict`): a fresh machine without tesseract still
    // processes everything else.
    Ok(if failed == 0 && (skipped.is_empty() || !strict) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A row of the run while it runs: its path, and its answer once it has one.
type Row = (PathBuf, Option<Result<ProcessedDocument, ProcessError>>);

/// A row of the run, answered.
type Done = (PathBuf, Result<ProcessedDocument, ProcessError>);

fn print_table(
    results: &[Done],
    t: &fernando_cache_processor::TelemetrySnapshot,
    cache: &fernando_cache_store::Counters,
    prices: &fernando_cache_config::Prices,
    elapsed: Duration,
    tenant: &TenantId,
    (failed, skipped): (usize, &[String]),
) {
    // One write for many rows: standard output is line-buffered, and an inbox has thousands of them.
    crate::output::write_all(|stdout| {
        let mut out = std::io::BufWriter::new(stdout);
        writeln!(
            out,
            "{:<48} {:<5} {:<9} {:<5} {:<10}  fields",
            "document", "kind", "document", "text", "extraction"
        )?;
        for (path, r) in results {
            let name = printable(&path.display().to_string()).into_owned();
            let name = if name.chars().count() > 48 {
                format!(
                    "…{}",
                    name.chars()
                        .rev()
                        .take(47)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect::<String>()
                )
            } else {
                name
            };
            match r {
                Ok(doc) => {
                    let f = &doc.result.fields;
                    let mut fields = Vec::new();
                    if let Some(n) = &f.invoice_number {
                        fields.push(format!("invoice {n}"));
                    }
                    if let Some(total) = &f.total {
                        fields.push(format!("total {total}"));
                    }
                    if let Some(d) = f.dates.first() {
                        fields.push(format!("date {d}"));
                    }
                    if !f.ibans.is_empty() {
                        fields.push(format!("{} IBAN", f.ibans.len()));
                    }
                    writeln!(
                        out,
                        "{:<48} {:<5} {:<9} {:<5} {:<10}  {}",
                        name,
                        doc.result.kind.as_str(),
                        outcome(doc.stages.document),
                        outcome(doc.stages.ocr),
                        outcome(doc.stages.extraction),
                        printable(&fields.join(", "))
                    )?;
                }
                Err(e) => match skip_reason(e) {
                    Some(_) => writeln!(out, "{name:<48} skipped (see below)")?,
                    None => writeln!(out, "{name:<48} error: {}", printable(&e.to_string()))?,
                },
            }
        }
        // The rows before the summary, which is printed unbuffered.
        out.flush()
    });
    let stage = |s: &fernando_cache_processor::StageFigures| {
        let total = s.hits + s.misses;
        if total == 0 {
            return "no reads yet".to_owned();
        }
        let ratio = s.hits as f64 * 100.0 / total as f64;
        format!(
            "{} / {} ({ratio:.0} %)",
            count(s.hits, "hit", "hits"),
            count(s.misses, "miss", "misses")
        )
    };
    outln!();
    outln!("tenant            {}", tenant.as_str());
    outln!(
        "documents         {} ({} from cache, {} processed, {} failed, {} skipped)",
        results.len(),
        t.documents_cached(),
        t.documents_processed(),
        failed,
        skipped.len()
    );
    // One line per distinct reason (they say how to install what is missing).
    let mut reasons: Vec<&String> = skipped.iter().collect();
    reasons.sort();
    reasons.dedup();
    for why in reasons {
        outln!("skipped           {why}");
    }
    outln!("document stage    {}", stage(&t.document));
    outln!("text stage        {}", stage(&t.ocr));
    outln!("extraction stage  {}", stage(&t.extraction));
    outln!(
        "time saved        {} of engine time (spent {})",
        humantime::format_duration(Duration::from_millis(t.time_saved.as_millis() as u64)),
        humantime::format_duration(Duration::from_millis(t.time_spent.as_millis() as u64)),
    );
    outln!(
        "tokens            {} saved (spent {})",
        cache.tokens_saved,
        cache.tokens_spent
    );
    outln!(
        "money             {} saved (spent {})",
        prices.amount(cache.money_saved_micros),
        prices.amount(cache.money_spent_micros)
    );
    outln!(
        "bytes             {} not reprocessed; cache stored {} for {} raw",
        human_bytes(t.bytes_not_reprocessed),
        human_bytes(cache.stored_bytes),
        human_bytes(cache.raw_bytes)
    );
    for (kind, k) in &t.by_kind {
        outln!(
            "  {:<6}          {}, {} from cache ({:.0} %)",
            kind.as_str(),
            count(k.documents, "document", "documents"),
            k.cached,
            k.efficiency().unwrap_or(0.0) * 100.0
        );
    }
    outln!("elapsed           {:.2?}", elapsed);
}
