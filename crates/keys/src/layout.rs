//! The specific keys the library itself writes inside a scope and cache type — the document pipeline's stages,
//! `#[cached]` derived keys, HTTP responses and their path epochs — each built here and nowhere else, and pinned
//! by the golden test below.
//!
//! **Subjects.** Every entry about one subject (a document and everything derived from it, the HTTP copy of a
//! route that names the subject) has a specific key equal to the subject or starting with `{subject}/`. So
//! [`subject_globs`] reaches all of them, in every cache type, and nothing of another subject — the one rule
//! event-driven and admin invalidation rely on. A subject that itself contains `/` nests under its prefix.

use std::fmt::Write as _;

use crate::{DocumentFingerprint, escape::escape_glob};

/// What separates a subject from the rest of a specific key.
pub const SUBJECT_SEPARATOR: char = '/';

/// `{subject}/{rest}`: a key that invalidating `subject` reaches.
pub fn subject_key(subject: &str, rest: &str) -> String {
    let mut key = String::with_capacity(subject.len() + 1 + rest.len());
    key.push_str(subject);
    key.push(SUBJECT_SEPARATOR);
    key.push_str(rest);
    key
}

/// The two specific-key globs that match exactly the entries of `subject`: the subject itself, and every key
/// under `{subject}/`. Glob characters in the subject are escaped, so a subject `*` matches only itself.
pub fn subject_globs(subject: &str) -> [String; 2] {
    let exact = escape_glob(subject).into_owned();
    let mut nested = exact.clone();
    nested.push(SUBJECT_SEPARATOR);
    nested.push('*');
    [exact, nested]
}

/// The keys of the document pipeline's entries for one document, all under the document's fingerprint as
/// subject.
///
/// ```
/// use fernando_cache_keys::{DocumentFingerprint, layout::DocumentKeys};
///
/// let doc = DocumentFingerprint::of_bytes(b"invoice");
/// let keys = DocumentKeys::new(&doc);
/// assert!(keys.text("tesseract@5.3").starts_with(keys.subject()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentKeys {
    subject: String,
}

impl DocumentKeys {
    /// The keys of the document with this fingerprint.
    pub fn new(fingerprint: &DocumentFingerprint) -> Self {
        DocumentKeys {
            subject: fingerprint.to_hex(),
        }
    }

    /// The subject every key of this document is under: its fingerprint in hex.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The document's own entry (`doc_hash`) for callers that do not name engines: the subject itself.
    pub fn document(&self) -> &str {
        &self.subject
    }

    /// The pipeline's whole result (`doc_hash`) as produced by one text engine and one extractor (names with
    /// versions): `{fp}/result/{text_engine}+{extractor}`.
    pub fn result(&self, text_engine: &str, extractor: &str) -> String {
        self.under(format_args!("result/{text_engine}+{extractor}"))
    }

    /// The document's text (`ocr_result`) by one engine: `{fp}/text/{engine}`. A new engine version is a new
    /// key, so it never reads an old engine's output.
    pub fn text(&self, engine: &str) -> String {
        self.under(format_args!("text/{engine}"))
    }

    /// The fields (`llm_extraction`) one extractor found in the document's text: `{fp}/fields/{extractor}/
    /// {text fingerprint}`. Keyed by the text too, so a new text engine whose text is unchanged keeps the
    /// extraction, and a changed text never reads the old one.
    pub fn fields(&self, extractor: &str, text: &DocumentFingerprint) -> String {
        self.under(format_args!("fields/{extractor}/{text}"))
    }

    fn under(&self, rest: std::fmt::Arguments<'_>) -> String {
        let mut key = String::with_capacity(self.subject.len() + 96);
        key.push_str(&self.subject);
        key.push(SUBJECT_SEPARATOR);
        // Writing into a String cannot fail.
        let _ = key.write_fmt(rest);
        key
    }
}

/// The prefix of every key derived from a `#[cached]` function's arguments: `{path with '.' for '::'}/v
/// {version}/`, followed by the arguments' digest.
pub fn derived_prefix(function_path: &str, version: u32) -> String {
    format!("{}/v{version}/", function_path.replace("::", "."))
}

/// The key of a `#[cached]` function with a key template: the rendered template, under `v{version}/` when a
/// version is set.
pub fn templated_key(version: u32, rendered: String) -> String {
    if version == 0 {
        rendered
    } else {
        format!("v{version}/{rendered}")
    }
}

/// The key of the entry holding an HTTP path's current epoch (replaced by every invalidation of the path):
/// `http-epoch/{path digest}`, under the route's subject when it names one.
pub fn http_epoch(subject: Option<&str>, path_digest: &str) -> String {
    http_key(subject, "http-epoch/", path_digest)
}

/// The primary key of a cached HTTP response: `http/{request digest}`, under the route's subject when it names
/// one.
pub fn http_entry(subject: Option<&str>, request_digest: &str) -> String {
    http_key(subject, "http/", request_digest)
}

/// The key of one `Vary` variant under a primary key: `{primary}/{variant digest}` (so under the same subject).
pub fn http_variant(primary: &str, variant_digest: &str) -> String {
    format!("{primary}/{variant_digest}")
}

/// The key of the set that bounds how many variants a tenant stores for one route across replicas:
/// `http-budget/{route digest}`.
pub fn http_budget(route_digest: &str) -> String {
    format!("http-budget/{route_digest}")
}

fn http_key(subject: Option<&str>, kind: &str, digest: &str) -> String {
    match subject {
        Some(s) => subject_key(s, &format!("{kind}{digest}")),
        None => format!("{kind}{digest}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden: these strings are what existing caches hold. Changing one is a format change.
    #[test]
    fn layouts_are_pinned() {
        let doc = DocumentFingerprint::of_bytes(b"invoice");
        let text = DocumentFingerprint::of_bytes(b"text");
        let fp = doc.to_hex();
        let keys = DocumentKeys::new(&doc);
        assert_eq!(keys.subject(), fp);
        assert_eq!(keys.document(), fp);
        assert_eq!(
            keys.result("text-layer@1", "rules@1"),
            format!("{fp}/result/text-layer@1+rules@1")
        );
        assert_eq!(
            keys.text("tesseract@5.3"),
            format!("{fp}/text/tesseract@5.3")
        );
        assert_eq!(
            keys.fields("rules@1", &text),
            format!("{fp}/fields/rules@1/{}", text.to_hex())
        );
        assert_eq!(
            derived_prefix("app::billing::total", 2),
            "app.billing.total/v2/"
        );
        assert_eq!(templated_key(0, "inv-7".into()), "inv-7");
        assert_eq!(templated_key(3, "inv-7".into()), "v3/inv-7");
        assert_eq!(http_epoch(None, "ab"), "http-epoch/ab");
        assert_eq!(http_epoch(Some("s1"), "ab"), "s1/http-epoch/ab");
        assert_eq!(http_entry(None, "cd"), "http/cd");
        assert_eq!(http_entry(Some("s1"), "cd"), "s1/http/cd");
        assert_eq!(http_variant("s1/http/cd", "ef"), "s1/http/cd/ef");
        assert_eq!(http_budget("ab"), "http-budget/ab");
        assert_eq!(subject_key("sess-1", "x"), "sess-1/x");
    }

    #[test]
    fn subject_globs_cover_the_subject_and_escape_glob_characters() {
        assert_eq!(subject_globs("abc"), ["abc".to_owned(), "abc/*".to_owned()]);
        assert_eq!(
            subject_globs("a*[b]?"),
            [r"a\*\[b\]\?".to_owned(), r"a\*\[b\]\?/*".to_owned()]
        );
    }

    #[test]
    fn every_document_key_is_under_its_subject() {
        let doc = DocumentFingerprint::of_bytes(b"x");
        let keys = DocumentKeys::new(&doc);
        let prefix = format!("{}/", keys.subject());
        for key in [
            keys.result("a", "b"),
            keys.text("a"),
            keys.fields("b", &doc),
            http_entry(Some(keys.subject()), "d"),
            http_epoch(Some(keys.subject()), "d"),
        ] {
            assert!(key.starts_with(&prefix), "{key}");
        }
    }
}
