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

    /// The kind a MIME type names (`text/plain; charset=utf-8`, `application/pdf`, `image/png`, …).
    pub fn from_content_type(content_type: &str) -> Option<DocumentKind> {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "text/plain" | "text/markdown" | "text/csv" => Some(DocumentKind::Text),
            "text/html" | "application/xhtml+xml" => Some(DocumentKind::Html),
            "application/pdf" => Some(DocumentKind::Pdf),
            "image/png" => Some(DocumentKind::Png),
            "image/jpeg" | "image/jpg" => Some(DocumentKind::Jpeg),
            "image/tiff" => Some(DocumentKind::Tiff),
            _ => None,
        }
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
        if bytes.starts_with(b"%PDF-") {
            Some(DocumentKind::Pdf)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(DocumentKind::Png)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(DocumentKind::Jpeg)
        } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
            Some(DocumentKind::Tiff)
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
    match infer::get(bytes) {
        Some(t) => format!("detected {} (.{})", t.mime_type(), t.extension()),
        None if bytes.is_empty() => "the document is empty".to_owned(),
        None => "detected binary data of no known format".to_owned(),
    }
}

/// The kind of a document in memory: the declared content type wins over sniffing the bytes.
pub(crate) fn kind_of(
    content_type: Option<&str>,
    bytes: &[u8],
) -> Result<DocumentKind, ProcessError> {
    match content_type {
        Some(ct) if !ct.is_empty() && ct != "application/octet-stream" => {
            DocumentKind::from_content_type(ct)
                .ok_or_else(|| ProcessError::UnknownKind(format!(" {ct:?}")))
        }
        _ => DocumentKind::sniff(bytes)
            .ok_or_else(|| ProcessError::UnknownKind(format!(": {}", describe_unsupported(bytes)))),
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
}
