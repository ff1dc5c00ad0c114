//! Documents and their kinds: told by the declared content type, else by the bytes themselves.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ProcessError;

/// What a document is, as far as the pipeline cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DocumentKind {
    /// Plain text: UTF-8, or UTF-16 or a legacy encoding such as Latin-1, which the text engine detects.
    Text,
    /// An HTML page; its text is read without the markup.
    Html,
    /// A PDF; its text layer is read directly.
    Pdf,
    /// A PNG image (OCR).
    Png,
    /// A JPEG image (OCR).
    Jpeg,
    /// A TIFF image (OCR).
    Tiff,
}

impl DocumentKind {
    /// Every kind, for reports.
    pub const ALL: [DocumentKind; 6] = [
        DocumentKind::Text,
        DocumentKind::Html,
        DocumentKind::Pdf,
        DocumentKind::Png,
        DocumentKind::Jpeg,
        DocumentKind::Tiff,
    ];

    /// The kind's name (`text`, `pdf`, `png`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentKind::Text => "text",
            DocumentKind::Html => "html",
            DocumentKind::Pdf => "pdf",
            DocumentKind::Png => "png",
            DocumentKind::Jpeg => "jpeg",
            DocumentKind::Tiff => "tiff",
        }
    }

    /// Whether the text comes from OCR.
    pub fn is_image(self) -> bool {
        matches!(
            self,
            DocumentKind::Png | DocumentKind::Jpeg | DocumentKind::Tiff
        )
    }

    /// The MIME types a document may be sent as, each with the kind it names: the one list
    /// [`from_content_type`](Self::from_content_type) reads and the HTTP API shows a client that sent another.
    pub const MIME_TYPES: [(&'static str, DocumentKind); 10] = [
        ("text/plain", DocumentKind::Text),
        ("text/markdown", DocumentKind::Text),
        ("text/csv", DocumentKind::Text),
        ("text/html", DocumentKind::Html),
        ("application/xhtml+xml", DocumentKind::Html),
        ("application/pdf", DocumentKind::Pdf),
        ("image/png", DocumentKind::Png),
        ("image/jpeg", DocumentKind::Jpeg),
        ("image/jpg", DocumentKind::Jpeg),
        ("image/tiff", DocumentKind::Tiff),
    ];

    /// The kind a MIME type names (`text/plain; charset=utf-8`, `application/pdf`, `image/png`, …).
    pub fn from_content_type(content_type: &str) -> Option<DocumentKind> {
        let essence = essence(content_type);
        Self::MIME_TYPES
            .iter()
            .find(|(mime, _)| *mime == essence)
            .map(|(_, kind)| *kind)
    }

    /// The kind's own MIME type (`text/plain`, `application/pdf`, …): what a document read as this kind is.
    pub fn mime_type(self) -> &'static str {
        match self {
            DocumentKind::Text => "text/plain",
            DocumentKind::Html => "text/html",
            DocumentKind::Pdf => "application/pdf",
            DocumentKind::Png => "image/png",
            DocumentKind::Jpeg => "image/jpeg",
            DocumentKind::Tiff => "image/tiff",
        }
    }

    /// The kind as a reader names it in a sentence: "a PDF", "a PNG image", "text".
    fn described(self) -> &'static str {
        match self {
            DocumentKind::Text => "text",
            DocumentKind::Html => "an HTML page",
            DocumentKind::Pdf => "a PDF",
            DocumentKind::Png => "a PNG image",
            DocumentKind::Jpeg => "a JPEG image",
            DocumentKind::Tiff => "a TIFF image",
        }
    }

    /// Whether the kind is read as text (plain or HTML), as opposed to a binary format with a magic number.
    fn is_text(self) -> bool {
        matches!(self, DocumentKind::Text | DocumentKind::Html)
    }

    /// The file name extensions of this kind, in lower case and without the dot: what `process` goes by when
    /// a file's bytes do not tell its kind, and what `process --help` lists.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            DocumentKind::Text => &["txt", "text", "md", "csv"],
            DocumentKind::Html => &["html", "htm", "xhtml"],
            DocumentKind::Pdf => &["pdf"],
            DocumentKind::Png => &["png"],
            DocumentKind::Jpeg => &["jpg", "jpeg"],
            DocumentKind::Tiff => &["tif", "tiff"],
        }
    }

    /// The kind a file name's extension (`pdf`, `HTM`, `tiff`, …) suggests: one of [`Self::extensions`].
    pub fn from_extension(extension: &str) -> Option<DocumentKind> {
        let extension = extension.to_ascii_lowercase();
        DocumentKind::ALL
            .into_iter()
            .find(|k| k.extensions().contains(&extension.as_str()))
    }

    /// The kind the bytes show: magic numbers for PDF and images, an HTML start for pages, valid UTF-8 for
    /// text.
    pub fn sniff(bytes: &[u8]) -> Option<DocumentKind> {
        if let Some(kind) = magic(bytes) {
            Some(kind)
        } else if let Ok(text) = std::str::from_utf8(bytes)
            && !bytes.contains(&0)
        {
            Some(if looks_like_html(text) {
                DocumentKind::Html
            } else {
                DocumentKind::Text
            })
        } else {
            None
        }
    }
}

/// Whether text starts like an HTML page: `<!doctype html` or `<html`, after white space, a byte-order mark
/// or comments.
pub(crate) fn looks_like_html(text: &str) -> bool {
    let mut rest = text.trim_start_matches('\u{feff}').trim_start();
    while let Some(after) = rest.strip_prefix("<!--") {
        rest = after.split_once("-->").map_or("", |(_, r)| r).trim_start();
    }
    let head: String = rest
        .chars()
        .take(14)
        .collect::<String>()
        .to_ascii_lowercase();
    head.starts_with("<!doctype html") || head.starts_with("<html")
}

/// What unsupported bytes look like, for the error that refuses them: the detected format when it is a known
/// one (`application/zip`, `application/x-executable`, …).
pub(crate) fn describe_unsupported(bytes: &[u8]) -> String {
    match other_format(bytes, |_| false) {
        Some(format) => format!("detected {format}"),
        None if bytes.is_empty() => "the document is empty".to_owned(),
        None => "detected binary data of no known format".to_owned(),
    }
}

/// A MIME type's essence, lowercase and without parameters: `Text/Plain; charset=utf-8` is `text/plain`.
fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The binary kind whose magic number the bytes start with: evidence no declaration outweighs.
fn magic(bytes: &[u8]) -> Option<DocumentKind> {
    if bytes.starts_with(b"%PDF-") {
        Some(DocumentKind::Pdf)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(DocumentKind::Png)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(DocumentKind::Jpeg)
    } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        Some(DocumentKind::Tiff)
    } else {
        None
    }
}

/// The format `infer` sees in the bytes, as it names it (`application/zip (.zip)`), unless it is a kind
/// `readable` accepts.
fn other_format(head: &[u8], readable: impl Fn(DocumentKind) -> bool) -> Option<String> {
    let t = infer::get(head)?;
    if DocumentKind::from_content_type(t.mime_type()).is_some_and(readable) {
        return None;
    }
    Some(format!("{} (.{})", t.mime_type(), t.extension()))
}

/// How a document held in memory is read: its kind, and the declared type its bytes overruled, if they did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reading {
    pub(crate) kind: DocumentKind,
    /// The declared type's essence, when the bytes showed another kind and were believed.
    pub(crate) overruled: Option<String>,
}

impl Reading {
    fn as_declared(kind: DocumentKind) -> Reading {
        Reading {
            kind,
            overruled: None,
        }
    }

    /// What the caller is told when its declared type was overruled.
    pub(crate) fn warning(&self) -> Option<String> {
        let declared = self.overruled.as_deref()?;
        Some(format!(
            "sent as {declared}, but the bytes are {}: read as {}",
            self.kind.described(),
            self.kind.mime_type()
        ))
    }
}

/// The kind of a document in memory. Without a declared type (or with `application/octet-stream`) the bytes
/// tell. With one, the bytes win when they plainly say otherwise — a magic number (a PDF sent as `text/plain`
/// is read as a PDF), or text sent as a PDF or an image — and the caller is told ([`Reading::overruled`]);
/// bytes that are plainly a format the pipeline does not read are refused as [`ProcessError::Mislabelled`];
/// otherwise the declaration stands and the engine reads the bytes or says why not. Believing the bytes
/// bypasses no bound: the size was checked before, and every engine bounds what it reads from the bytes
/// themselves (pixels from the image's header, a PDF's pages and parsing, the text's length).
///
/// # Errors
/// [`ProcessError::UnknownKind`] when neither the declared type nor the bytes name a supported kind;
/// [`ProcessError::Mislabelled`] when the bytes are plainly something else than declared and not readable.
pub(crate) fn kind_of(content_type: Option<&str>, bytes: &[u8]) -> Result<Reading, ProcessError> {
    let declared = content_type
        .map(essence)
        .filter(|e| !e.is_empty() && e != "application/octet-stream");
    let Some(declared) = declared else {
        return DocumentKind::sniff(bytes)
            .map(Reading::as_declared)
            .ok_or_else(|| {
                ProcessError::UnknownKind(format!(": {}", describe_unsupported(bytes)))
            });
    };
    let named = DocumentKind::from_content_type(&declared);
    let head = &bytes[..bytes.len().min(SNIFFED_BYTES)];
    if let Some(found) = magic(head) {
        return Ok(Reading {
            kind: found,
            overruled: (named != Some(found)).then_some(declared),
        });
    }
    let Some(kind) = named else {
        return Err(ProcessError::UnknownKind(format!(
            " {:?}",
            content_type.unwrap_or_default()
        )));
    };
    let mislabelled = |found: String| ProcessError::Mislabelled {
        declared: declared.clone(),
        found,
    };
    if kind.is_text() {
        // Text it stays, in whatever encoding (the text engine reads it or says why not), unless the bytes are
        // binary — text never holds a NUL — of a format someone can name.
        if head.contains(&0)
            && let Some(format) = other_format(head, DocumentKind::is_text)
        {
            return Err(mislabelled(format));
        }
        return Ok(Reading::as_declared(kind));
    }
    // A PDF may have a few bytes before its header (readers look within the first 1024).
    if kind == DocumentKind::Pdf
        && head[..head.len().min(1024)]
            .windows(5)
            .any(|w| w == b"%PDF-")
    {
        return Ok(Reading::as_declared(kind));
    }
    if bytes.is_empty() {
        return Err(mislabelled("empty".to_owned()));
    }
    if let Some(text) = sniff_head(head) {
        return Ok(Reading {
            kind: text,
            overruled: Some(declared),
        });
    }
    match other_format(head, |k| k == kind) {
        Some(format) => Err(mislabelled(format)),
        None => Ok(Reading::as_declared(kind)),
    }
}

/// How much of a file's start tells its kind.
pub(crate) const SNIFFED_BYTES: usize = 8192;

/// Sniffs the first bytes of a file; a UTF-8 sequence cut at the end of the head still counts as text.
pub(crate) fn sniff_head(head: &[u8]) -> Option<DocumentKind> {
    if let Some(k) = DocumentKind::sniff(head) {
        return Some(k);
    }
    match std::str::from_utf8(head) {
        Err(e) if e.error_len().is_none() && !head.contains(&0) => {
            let valid = std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default();
            Some(if looks_like_html(valid) {
                DocumentKind::Html
            } else {
                DocumentKind::Text
            })
        }
        _ => None,
    }
}

impl fmt::Display for DocumentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_content_types_and_magic_numbers() {
        assert_eq!(
            DocumentKind::from_content_type("Application/PDF"),
            Some(DocumentKind::Pdf)
        );
        assert_eq!(
            DocumentKind::from_content_type("text/plain; charset=utf-8"),
            Some(DocumentKind::Text)
        );
        assert_eq!(DocumentKind::from_content_type("application/zip"), None);
        assert_eq!(DocumentKind::sniff(b"%PDF-1.4\n"), Some(DocumentKind::Pdf));
        assert_eq!(
            DocumentKind::sniff(b"\x89PNG\r\n\x1a\n...."),
            Some(DocumentKind::Png)
        );
        assert_eq!(
            DocumentKind::sniff("Rechnung Nr. 1".as_bytes()),
            Some(DocumentKind::Text)
        );
        assert_eq!(DocumentKind::sniff(&[0xC3, 0x28, 0x00]), None);
        assert_eq!(
            DocumentKind::sniff(b"\xef\xbb\xbf  <!-- x --><!DOCTYPE html><p>hi"),
            Some(DocumentKind::Html)
        );
        assert_eq!(
            DocumentKind::sniff(b"<HTML lang=en>"),
            Some(DocumentKind::Html)
        );
        assert_eq!(
            DocumentKind::sniff(b"a <html> tag in prose"),
            Some(DocumentKind::Text)
        );
        assert_eq!(
            DocumentKind::from_content_type("text/html; charset=utf-8"),
            Some(DocumentKind::Html)
        );
        assert_eq!(
            describe_unsupported(b"PK\x03\x04\x14\x00\x00\x00"),
            "detected application/zip (.zip)"
        );
        assert_eq!(
            DocumentKind::from_extension("HTM"),
            Some(DocumentKind::Html)
        );
        assert_eq!(DocumentKind::from_extension("docx"), None);
        assert_eq!(
            describe_unsupported(&[0x01, 0x02, 0xfe, 0x00]),
            "detected binary data of no known format"
        );
    }

    #[test]
    fn every_mime_type_names_its_kind_and_every_kind_its_own_mime_type() {
        for (mime, kind) in DocumentKind::MIME_TYPES {
            assert_eq!(DocumentKind::from_content_type(mime), Some(kind), "{mime}");
        }
        for kind in DocumentKind::ALL {
            assert_eq!(
                DocumentKind::from_content_type(kind.mime_type()),
                Some(kind)
            );
        }
    }

    #[test]
    fn the_bytes_overrule_a_declared_type_they_plainly_contradict() {
        let pdf = b"%PDF-1.4\n1 0 obj\n";
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        let kind = |ct: &str, bytes: &[u8]| kind_of(Some(ct), bytes);
        // A magic number wins over any declaration, known or not, and says so.
        for declared in [
            "text/plain",
            "image/png",
            "application/x-www-form-urlencoded",
        ] {
            let r = kind(declared, pdf).unwrap();
            assert_eq!(r.kind, DocumentKind::Pdf, "{declared}");
            assert_eq!(r.overruled.as_deref(), Some(declared));
            assert_eq!(
                r.warning().unwrap(),
                format!("sent as {declared}, but the bytes are a PDF: read as application/pdf")
            );
        }
        let r = kind("Text/Plain; charset=utf-8", png).unwrap();
        assert_eq!(
            (r.kind, r.overruled.as_deref()),
            (DocumentKind::Png, Some("text/plain"))
        );
        // Agreeing declarations are not overruled.
        assert_eq!(kind("application/pdf", pdf).unwrap().overruled, None);
        assert_eq!(
            kind("application/pdf", b"\n\n%PDF-1.7").unwrap().kind,
            DocumentKind::Pdf
        );
        // Declared text stays text, HTML stays HTML, whatever the encoding.
        let r = kind("text/html", b"<p>hello").unwrap();
        assert_eq!((r.kind, r.overruled), (DocumentKind::Html, None));
        let r = kind("text/plain", b"<!DOCTYPE html><p>hi").unwrap();
        assert_eq!((r.kind, r.overruled), (DocumentKind::Text, None));
        let latin1 = b"Rechnung f\xfcr M\xfcller";
        assert_eq!(kind("text/plain", latin1).unwrap().kind, DocumentKind::Text);
        // Text sent as a binary kind is read as text.
        let r = kind("image/png", b"Invoice number: INV-1").unwrap();
        assert_eq!(
            (r.kind, r.overruled.as_deref()),
            (DocumentKind::Text, Some("image/png"))
        );
        // Bytes plainly of another format are refused, naming both.
        let zip = b"PK\x03\x04\x14\x00\x00\x00\x08\x00";
        let err = kind("text/plain", zip).unwrap_err();
        assert_eq!(
            err.to_string(),
            "sent as text/plain, but the bytes are application/zip (.zip)"
        );
        assert!(matches!(
            kind("application/pdf", b"").unwrap_err(),
            ProcessError::Mislabelled { .. }
        ));
        let gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00";
        assert_eq!(
            kind("image/png", gif).unwrap_err().to_string(),
            "sent as image/png, but the bytes are image/gif (.gif)"
        );
        // Unknown binary under a binary declaration is the engine's to judge; an unknown declaration without a
        // magic number is refused as before.
        assert_eq!(
            kind("image/tiff", &[0x01, 0x02, 0xfe, 0x00]).unwrap().kind,
            DocumentKind::Tiff
        );
        assert!(matches!(
            kind("application/zip", b"PK..").unwrap_err(),
            ProcessError::UnknownKind(_)
        ));
    }
}
