//! OCR with the `tesseract` program (Debian package `tesseract-ocr`), fed through stdin and read from stdout.
//! Every page's pixels are bounded from the image's header before tesseract sees it.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use async_trait::async_trait;

use crate::{
    DocumentKind, EngineError, EngineId, TextEngine,
    engines::{
        image_size::{self, MAX_TIFF_PAGES, SizeError},
        subprocess,
        text_layer::normalise,
    },
};

const INSTALL_HINT: &str = "install it with `apt-get install tesseract-ocr` (Debian/Ubuntu) or \
`brew install tesseract`, or set processor.tesseract to its path";

/// The default of [`Tesseract::with_max_page_pixels`], the same as `processor.max_page_pixels`'s: 40 MP (an A4
/// page at 600 dpi is 35 MP).
pub(crate) const DEFAULT_MAX_PAGE_PIXELS: u64 = 40_000_000;

/// Runs `tesseract` on images.
#[derive(Debug, Clone)]
pub struct Tesseract {
    program: String,
    languages: String,
    timeout: Duration,
    max_page_pixels: u64,
    /// The program's version, or why it could not be run: asked on first use (see [`Tesseract::new`]).
    version: Arc<OnceLock<Result<String, EngineError>>>,
}

impl Tesseract {
    /// An engine running `program`. Its version (`tesseract --version`) is asked on first use, not here: a run
    /// that reads no image (a text document, a cache hit of a PDF) starts no program — asking took ~25 ms of
    /// every `process` run. A missing program is not an error here either: each image then fails with a message
    /// saying how to install it.
    pub async fn new(program: &str, languages: &str, timeout: Duration) -> Self {
        Tesseract {
            program: program.to_owned(),
            languages: languages.to_owned(),
            timeout,
            max_page_pixels: DEFAULT_MAX_PAGE_PIXELS,
            version: Arc::default(),
        }
    }

    /// The program's version, asked once (blocking, a few tens of milliseconds: only the first image of a
    /// process pays it).
    fn version(&self) -> &Result<String, EngineError> {
        self.version.get_or_init(|| probe(&self.program))
    }

    /// Refuses images with a page of more than `pixels` pixels (`processor.max_page_pixels`; 40 000 000 unless
    /// set), read from the image's header before tesseract is started: decoding allocates every pixel, whatever
    /// the file's size.
    #[must_use]
    pub fn with_max_page_pixels(mut self, pixels: u64) -> Self {
        self.max_page_pixels = pixels;
        self
    }

    /// Every page's size from the image's header, each within the pixel bound.
    fn check_pixels(&self, bytes: &[u8]) -> Result<(), EngineError> {
        let refused = |reason: String| EngineError::OverBudget {
            engine: "tesseract".into(),
            reason,
        };
        let pages = image_size::page_sizes(bytes).map_err(|e| match e {
            SizeError::TooManyPages => {
                refused(format!("the image has more than {MAX_TIFF_PAGES} pages"))
            }
            SizeError::Malformed(reason) => EngineError::Unreadable {
                engine: "tesseract".into(),
                reason: format!("the image's size could not be read: {reason}"),
            },
        })?;
        let single = pages.len() == 1;
        for (i, &(width, height)) in pages.iter().enumerate() {
            if width.saturating_mul(height) > self.max_page_pixels {
                let which = if single {
                    "the image".to_owned()
                } else {
                    format!("page {} of the image", i + 1)
                };
                return Err(refused(format!(
                    "{which} is {width} × {height} pixels, above the {} allowed (processor.max_page_pixels)",
                    self.max_page_pixels
                )));
            }
        }
        Ok(())
    }

    /// Whether the program was found.
    pub fn is_available(&self) -> bool {
        self.version().is_ok()
    }
}

#[async_trait]
impl TextEngine for Tesseract {
    fn id(&self) -> EngineId {
        let version = self.version().as_deref().unwrap_or("missing");
        EngineId::new("tesseract", format!("{version}+{}", self.languages))
    }

    fn accepts(&self, kind: DocumentKind) -> bool {
        kind.is_image()
    }

    async fn text(&self, _kind: DocumentKind, bytes: &[u8]) -> Result<String, EngineError> {
        if let Err(e) = self.version() {
            return Err(e.clone());
        }
        self.check_pixels(bytes)?;
        let failed = |reason: String| EngineError::Unreadable {
            engine: "tesseract".into(),
            reason,
        };
        let out = subprocess::run(
            "tesseract",
            &self.program,
            &["stdin", "stdout", "-l", &self.languages, "--psm", "3"],
            bytes,
            self.timeout,
        )
        .await?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr.lines().last().unwrap_or("").trim();
            return Err(failed(format!(
                "tesseract exited with {}: {last}",
                out.status
            )));
        }
        Ok(normalise(&String::from_utf8_lossy(&out.stdout)))
    }
}

/// `program --version`: the version, or why the program could not be run.
fn probe(program: &str) -> Result<String, EngineError> {
    let out = subprocess::probe("tesseract", program, "--version", INSTALL_HINT)?;
    if !out.status.success() && out.stdout.is_empty() && out.stderr.is_empty() {
        return Err(EngineError::Unreadable {
            engine: "tesseract".into(),
            reason: format!("`{program} --version` failed with {}", out.status),
        });
    }
    // Older releases print the version on stderr.
    let text = String::from_utf8_lossy(if out.stdout.is_empty() {
        &out.stderr
    } else {
        &out.stdout
    })
    .into_owned();
    Ok(text
        .split_whitespace()
        .nth(1)
        .unwrap_or("unknown")
        .trim_start_matches('v')
        .to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_program_is_a_clear_error_that_says_how_to_install_it() {
        let t = Tesseract::new("/nonexistent/tesseract", "eng", Duration::from_secs(5)).await;
        assert!(!t.is_available());
        // Said before anything is read from the image.
        let err = t.text(DocumentKind::Png, b"\x89PNG").await.unwrap_err();
        assert!(matches!(err, EngineError::Missing { .. }));
        assert!(
            err.to_string().contains("apt-get install tesseract-ocr"),
            "{err}"
        );
        assert_eq!(t.id().to_string(), "tesseract@missing+eng");
    }

    #[test]
    fn the_default_pixel_bound_is_the_configured_default() {
        let settings = fernando_cache_config::Settings::embedded(
            fernando_cache_config::Environment::Development,
        )
        .unwrap();
        assert_eq!(DEFAULT_MAX_PAGE_PIXELS, settings.processor.max_page_pixels);
    }
}
