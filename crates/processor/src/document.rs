//! Documents and their kinds: told by the declared content type, else by the bytes themselves.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a document is, as far as the pipeline cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DocumentKind {
    /// UTF-8 text.
    Text,
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
    pub const ALL: [DocumentKind; 5] = [
        DocumentKind::Text,
        DocumentKind::Pdf,
        DocumentKind::Png,
        DocumentKind::Jpeg,
        DocumentKind::Tiff,
    ];

    /// The kind's name (`text`, `pdf`, `png`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentKind::Text => "text",
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
            "application/pdf" => Some(DocumentKind::Pdf),
            "image/png" => Some(DocumentKind::Png),
            "image/jpeg" | "image/jpg" => Some(DocumentKind::Jpeg),
            "image/tiff" => Some(DocumentKind::Tiff),
            _ => None,
        }
    }

    /// The kind the bytes show: magic numbers for PDF and images, valid UTF-8 for text.
    pub fn sniff(bytes: &[u8]) -> Option<DocumentKind> {
        if bytes.starts_with(b"%PDF-") {
            Some(DocumentKind::Pdf)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(DocumentKind::Png)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(DocumentKind::Jpeg)
        } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
            Some(DocumentKind::Tiff)
        } else if std::str::from_utf8(bytes).is_ok() && !bytes.contains(&0) {
            Some(DocumentKind::Text)
        } else {
            None
        }
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
    }
}
