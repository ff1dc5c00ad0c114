//! OCR with the `tesseract` program (Debian package `tesseract-ocr`), fed through stdin and read from stdout.

use std::{process::Stdio, time::Duration};

use async_trait::async_trait;
use tokio::{io::AsyncWriteExt, process::Command};

use crate::{DocumentKind, EngineError, EngineId, TextEngine, engines::text_layer::normalise};

const INSTALL_HINT: &str = "install it with `apt-get install tesseract-ocr` (Debian/Ubuntu) or \
`brew install tesseract`, or set processor.tesseract to its path";

/// Runs `tesseract` on images.
#[derive(Debug, Clone)]
pub struct Tesseract {
    program: String,
    languages: String,
    timeout: Duration,
    /// The program's version, or why it could not be run.
    version: Result<String, EngineError>,
}

impl Tesseract {
    /// Finds the program and its version (`tesseract --version`). A missing program is not an error here:
    /// each image then fails with a message saying how to install it.
    pub async fn new(program: &str, languages: &str, timeout: Duration) -> Self {
        let version = match Command::new(program).arg("--version").output().await {
            Ok(out) if out.status.success() || !out.stdout.is_empty() || !out.stderr.is_empty() => {
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
            Ok(out) => Err(EngineError::Unreadable {
                engine: "tesseract".into(),
                reason: format!("`{program} --version` failed with {}", out.status),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(EngineError::Missing {
                program: program.to_owned(),
                hint: INSTALL_HINT.to_owned(),
            }),
            Err(e) => Err(EngineError::Unreadable {
                engine: "tesseract".into(),
                reason: format!("`{program}` could not be started: {e}"),
            }),
        };
        Tesseract {
            program: program.to_owned(),
            languages: languages.to_owned(),
            timeout,
            version,
        }
    }

    /// Whether the program was found.
    pub fn is_available(&self) -> bool {
        self.version.is_ok()
    }
}

#[async_trait]
impl TextEngine for Tesseract {
    fn id(&self) -> EngineId {
        let version = self.version.as_deref().unwrap_or("missing");
        EngineId::new("tesseract", format!("{version}+{}", self.languages))
    }

    fn accepts(&self, kind: DocumentKind) -> bool {
        kind.is_image()
    }

    async fn text(&self, _kind: DocumentKind, bytes: &[u8]) -> Result<String, EngineError> {
        if let Err(e) = &self.version {
            return Err(e.clone());
        }
        let failed = |reason: String| EngineError::Unreadable {
            engine: "tesseract".into(),
            reason,
        };
        let mut child = Command::new(&self.program)
            .args(["stdin", "stdout", "-l", &self.languages, "--psm", "3"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed(format!("could not start {}: {e}", self.program)))?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| failed("no stdin".into()))?;
        let input = bytes.to_vec();
        let writer = tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
            let _ = stdin.shutdown().await;
        });
        let out = tokio::time::timeout(self.timeout, child.wait_with_output())
            .await
            .map_err(|_| EngineError::Timeout {
                engine: "tesseract".into(),
                seconds: self.timeout.as_secs(),
            })?
            .map_err(|e| failed(format!("tesseract did not finish: {e}")))?;
        let _ = writer.await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_program_is_a_clear_error_that_says_how_to_install_it() {
        let t = Tesseract::new("/nonexistent/tesseract", "eng", Duration::from_secs(5)).await;
        assert!(!t.is_available());
        let err = t.text(DocumentKind::Png, b"\x89PNG").await.unwrap_err();
        assert!(matches!(err, EngineError::Missing { .. }));
        assert!(
            err.to_string().contains("apt-get install tesseract-ocr"),
            "{err}"
        );
        assert_eq!(t.id().to_string(), "tesseract@missing+eng");
    }
}
