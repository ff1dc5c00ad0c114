//! `process --json` written as the documents are answered, in input order: each document's object leaves
//! memory once written (a run of a hundred thousand OCR'd documents held every text until its end), and the
//! summary follows them. The output is the same bytes `serde_json::to_string_pretty` makes of
//! `{"documents": [...], "summary": {...}}`.

use std::io::{self, Write};

use crate::output;

/// The documents of one `--json` run, written so far.
#[derive(Default)]
pub(super) struct JsonDocuments {
    written: usize,
}

impl JsonDocuments {
    /// Writes the next document's object to standard output.
    ///
    /// # Errors
    /// When it cannot be serialised.
    pub(super) fn push(&mut self, document: &serde_json::Value) -> anyhow::Result<()> {
        let pretty = serde_json::to_string_pretty(document)?;
        let first = self.written == 0;
        output::write_all(|out| write_document(out, first, &pretty));
        self.written += 1;
        Ok(())
    }

    /// Ends the documents and writes `summary` after them.
    ///
    /// # Errors
    /// When the summary cannot be serialised.
    pub(super) fn finish(self, summary: &serde_json::Value) -> anyhow::Result<()> {
        let pretty = serde_json::to_string_pretty(summary)?;
        let none = self.written == 0;
        output::write_all(|out| write_end(out, none, &pretty));
        Ok(())
    }
}

/// One document's pretty JSON as an element of the `documents` array (opening the object and the array first).
fn write_document(out: &mut dyn Write, first: bool, pretty: &str) -> io::Result<()> {
    out.write_all(if first {
        b"{\n  \"documents\": [\n    "
    } else {
        b",\n    "
    })?;
    write_indented(out, pretty, b"\n    ")
}

/// The end of the `documents` array (an empty one when `none` was written), then the summary's pretty JSON.
fn write_end(out: &mut dyn Write, none: bool, pretty: &str) -> io::Result<()> {
    out.write_all(if none {
        b"{\n  \"documents\": [],\n"
    } else {
        b"\n  ],\n"
    })?;
    out.write_all(b"  \"summary\": ")?;
    write_indented(out, pretty, b"\n  ")?;
    out.write_all(b"\n}\n")
}

/// `pretty`'s lines, each after the first preceded by `break_and_pad` (a newline and the nesting's indent).
fn write_indented(out: &mut dyn Write, pretty: &str, break_and_pad: &[u8]) -> io::Result<()> {
    for (i, line) in pretty.lines().enumerate() {
        if i > 0 {
            out.write_all(break_and_pad)?;
        }
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_streamed_output_is_the_whole_runs_pretty_printing() {
        let summary =
            json!({"documents": 2, "stages": {"text": {"hits": 1}}, "cache_unavailable": null});
        for documents in [
            vec![],
            vec![json!({"path": "a.txt", "fields": {"ibans": ["DE02"], "total": null}})],
            vec![
                json!({"path": "a.txt", "error": "no"}),
                json!({"path": "b\nc", "skipped": "x", "n": [], "m": {}}),
            ],
        ] {
            let mut out = Vec::new();
            for (i, d) in documents.iter().enumerate() {
                write_document(&mut out, i == 0, &serde_json::to_string_pretty(d).unwrap())
                    .unwrap();
            }
            write_end(
                &mut out,
                documents.is_empty(),
                &serde_json::to_string_pretty(&summary).unwrap(),
            )
            .unwrap();
            let whole =
                serde_json::to_string_pretty(&json!({"documents": documents, "summary": summary}))
                    .unwrap()
                    + "\n";
            assert_eq!(String::from_utf8(out).unwrap(), whole);
        }
    }
}
