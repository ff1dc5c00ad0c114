//! Where the parsers that run as library code — html2text for HTML, lopdf for PDF text layers and page plans —
//! run, and the budget each document gets there (issue 28, item 17; design 0021). A bound on a document's
//! size is no bound on what parsing makes of it: a 610 KB page was laid out into gigabytes, a 195 KB PDF's
//! object stream parsed into a 100-million-element array, and either took the whole server down. So a server
//! runs them in a child process per document, limited in address space (`RLIMIT_AS`) and CPU time, under a
//! wall-clock timeout and with a cap on what it may answer: a document over its budget is an
//! [`EngineError::OverBudget`] for that document alone.
//!
//! The protocol (`protocol.rs`): the child is `program args… <request as JSON>`; the document arrives on its
//! stdin and the answer, JSON of at most twice `max_text_bytes`, leaves on its stdout; an exit without an
//! answer is explained from its status (`parent.rs`). The child's side is [`run_child`] (`child.rs`).

mod child;
mod parent;
mod protocol;

use std::{ffi::OsString, path::PathBuf, time::Duration};

use fernando_cache_config::ProcessorSettings;
use serde::{Deserialize, Serialize};

pub use child::run_child;

use crate::{
    EngineError, PdfLimits,
    engines::{Page, html_text, pdf_text, plan},
};

/// Where the parsers run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ParserHost {
    /// A child process per document: `program`, then `args`, then the request. The program hands the
    /// arguments after `args` to [`run_child`] (the `fernando-cache` binary does, as `fernando-cache __parse`).
    Child {
        /// The program: a path, or a name on `PATH`.
        program: PathBuf,
        /// Its arguments before the request, such as the command word that makes it a parser.
        args: Vec<OsString>,
    },
    /// A blocking thread of this process. The text cap holds, but nothing bounds the parsers' memory or time:
    /// for tests, and for libraries that choose it knowing where their documents come from.
    InProcess,
}

impl ParserHost {
    /// A child process per document: `program args… <request>`.
    pub fn child<A: Into<OsString>>(
        program: impl Into<PathBuf>,
        args: impl IntoIterator<Item = A>,
    ) -> Self {
        ParserHost::Child {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
        }
    }

    /// A child of this very program per document (`this-program args… <request>`), for a program whose `main`
    /// hands those arguments to [`run_child`].
    ///
    /// # Errors
    /// When this program's file cannot be found.
    pub fn this_program<A: Into<OsString>>(
        args: impl IntoIterator<Item = A>,
    ) -> std::io::Result<Self> {
        Ok(ParserHost::child(this_program()?, args))
    }
}

/// This very program, even when its file was replaced or removed since it started (an upgrade in place): Linux's
/// `/proc/self/exe` names the running image whatever became of its path.
pub(crate) fn this_program() -> std::io::Result<PathBuf> {
    let running = std::path::Path::new("/proc/self/exe");
    if running.exists() {
        Ok(running.to_path_buf())
    } else {
        std::env::current_exe()
    }
}

/// What one document's parsing may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ParseBudget {
    /// Most address space, in bytes (`processor.parse_memory_bytes`); enforced in a child process only.
    pub memory_bytes: u64,
    /// Most CPU time (`processor.parse_timeout`), the wall clock allowing twice this; enforced in a child only.
    pub cpu_time: Duration,
    /// Most bytes of text (`processor.max_text_bytes`), wherever the parsers run.
    pub max_text_bytes: usize,
}

impl ParseBudget {
    /// The configured budget.
    pub fn from_settings(p: &ProcessorSettings) -> Self {
        ParseBudget {
            memory_bytes: p.parse_memory_bytes,
            cpu_time: p.parse_timeout,
            max_text_bytes: usize::try_from(p.max_text_bytes).unwrap_or(usize::MAX),
        }
    }

    /// How long a child may take in all: twice its CPU time, so that a busy machine is not taken for a hostile
    /// document.
    pub(crate) fn wall_time(&self) -> Duration {
        self.cpu_time.saturating_mul(2)
    }
}

impl Default for ParseBudget {
    /// The defaults of `processor.parse_memory_bytes`, `parse_timeout` and `max_text_bytes`: 1 GiB, 30 s and
    /// 8 MiB.
    fn default() -> Self {
        ParseBudget {
            memory_bytes: 1 << 30,
            cpu_time: Duration::from_secs(30),
            max_text_bytes: 8 << 20,
        }
    }
}

/// The parsers of a pipeline: where they run and with what budget. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Parsers {
    host: ParserHost,
    budget: ParseBudget,
}

impl Parsers {
    /// Parsers on `host` within `budget`.
    pub fn new(host: ParserHost, budget: ParseBudget) -> Self {
        Parsers { host, budget }
    }

    /// Parsers in this process with the default budget (no memory or time bound): for tests.
    pub fn in_process() -> Self {
        Parsers::new(ParserHost::InProcess, ParseBudget::default())
    }

    /// The budget each document gets.
    pub fn budget(&self) -> &ParseBudget {
        &self.budget
    }

    /// A text: an HTML page's or a PDF's text layer.
    pub(crate) async fn text(
        &self,
        engine: &str,
        job: Job,
        bytes: &[u8],
    ) -> Result<String, EngineError> {
        match self.run(engine, job, bytes).await? {
            Output::Text(text) => Ok(text),
            Output::Pages(_) => Err(unexpected(engine)),
        }
    }

    /// A PDF's pages: each one's text layer, or its size for rendering.
    pub(crate) async fn pages(
        &self,
        engine: &str,
        limits: PdfLimits,
        bytes: &[u8],
    ) -> Result<Vec<Page>, EngineError> {
        match self.run(engine, Job::PdfPlan(limits), bytes).await? {
            Output::Pages(pages) => Ok(pages),
            Output::Text(_) => Err(unexpected(engine)),
        }
    }

    async fn run(&self, engine: &str, job: Job, bytes: &[u8]) -> Result<Output, EngineError> {
        match &self.host {
            ParserHost::Child { program, args } => {
                parent::run(program, args, engine, job, &self.budget, bytes).await
            }
            ParserHost::InProcess => {
                // CPU work on untrusted input: off the async threads; a parser panic fails this document only.
                let owned = bytes.to_vec();
                let max = self.budget.max_text_bytes;
                tokio::task::spawn_blocking(move || execute(&job, &owned, max))
                    .await
                    .map_err(|e| EngineError::Unreadable {
                        engine: engine.to_owned(),
                        reason: format!("the reader failed: {e}"),
                    })?
                    .map_err(|r| r.into_error(engine))
            }
        }
    }
}

fn unexpected(engine: &str) -> EngineError {
    EngineError::Unreadable {
        engine: engine.to_owned(),
        reason: "the parser answered another kind of result than asked".into(),
    }
}

/// What one parse is asked to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Job {
    /// An HTML page's text (html2text).
    Html,
    /// A PDF's text layer, every page (lopdf), no stream decompressed past `max_stream_bytes`.
    PdfText {
        /// Largest decompressed stream.
        max_stream_bytes: usize,
    },
    /// A PDF's pages within the limits: each one's text layer, or its rendering size (lopdf).
    PdfPlan(PdfLimits),
}

/// What a parse produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Output {
    Text(String),
    Pages(Vec<Page>),
}

impl Output {
    fn text_len(&self) -> usize {
        match self {
            Output::Text(text) => text.len(),
            Output::Pages(pages) => pages.iter().map(Page::text_len).sum(),
        }
    }
}

/// Why a parse produced nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Refusal {
    /// The document cannot be read (kept for the log).
    Unreadable(String),
    /// The document is over a bound; the reason names the setting and may be shown to its sender.
    OverBudget(String),
}

impl Refusal {
    pub(crate) fn into_error(self, engine: &str) -> EngineError {
        let engine = engine.to_owned();
        match self {
            Refusal::Unreadable(reason) => EngineError::Unreadable { engine, reason },
            Refusal::OverBudget(reason) => EngineError::OverBudget { engine, reason },
        }
    }
}

/// The refusal of a text past `processor.max_text_bytes`.
pub(crate) fn text_too_long(len: usize, max: usize) -> String {
    format!(
        "the document's text is {len} bytes, above the {max} allowed (processor.max_text_bytes)"
    )
}

/// One parse, wherever it runs.
fn execute(job: &Job, bytes: &[u8], max_text_bytes: usize) -> Result<Output, Refusal> {
    let output = match job {
        Job::Html => Output::Text(html_text(bytes)?),
        Job::PdfText { max_stream_bytes } => Output::Text(pdf_text(bytes, *max_stream_bytes)?),
        Job::PdfPlan(limits) => Output::Pages(plan(bytes, limits)?),
    };
    let len = output.text_len();
    if len > max_text_bytes {
        return Err(Refusal::OverBudget(text_too_long(len, max_text_bytes)));
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_text_past_the_cap_is_refused_and_names_the_setting() {
        let budget = ParseBudget {
            max_text_bytes: 1000,
            ..ParseBudget::default()
        };
        let parsers = Parsers::new(ParserHost::InProcess, budget);
        let page = format!("<html><body><p>{}</p></body></html>", "word ".repeat(400));
        let err = parsers
            .text("text-layer", Job::Html, page.as_bytes())
            .await
            .unwrap_err();
        assert!(matches!(err, EngineError::OverBudget { .. }), "{err:?}");
        assert!(
            err.to_string().contains("processor.max_text_bytes"),
            "{err}"
        );
        let short = "<html><body><p>Invoice number: INV-1</p></body></html>";
        assert_eq!(
            parsers
                .text("text-layer", Job::Html, short.as_bytes())
                .await
                .unwrap(),
            "Invoice number: INV-1"
        );
    }

    #[tokio::test]
    async fn a_missing_parser_program_says_so() {
        let parsers = Parsers::new(
            ParserHost::child("/nonexistent/fernando-cache", ["__parse"]),
            ParseBudget::default(),
        );
        let err = parsers
            .text("text-layer", Job::Html, b"<p>x</p>")
            .await
            .unwrap_err();
        assert!(matches!(err, EngineError::Missing { .. }), "{err:?}");
    }

    #[test]
    fn the_default_budget_is_the_configured_default() {
        let settings = fernando_cache_config::Settings::embedded(
            fernando_cache_config::Environment::Development,
        )
        .unwrap();
        assert_eq!(
            ParseBudget::default(),
            ParseBudget::from_settings(&settings.processor)
        );
    }
}
