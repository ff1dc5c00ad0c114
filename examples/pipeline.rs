//! The document pipeline as a library: a `DocumentProcessor` over the in-process store processes one plain-text
//! invoice twice. The first time every stage is a miss (fingerprint, text, field extraction by the built-in
//! rules); the second time the whole result is a hit, answered from the cache with the engine time it saved.
//! No Redis, no OCR program and no network: text documents need neither `tesseract` nor an LLM.
//!
//! ```sh
//! cargo run -p fernando-cache-examples --example pipeline
//! ```

use fernando_cache_processor::{DocumentProcessor, ParserHost};
use fernando_cache_store::{
    Store,
    config::{Environment, Settings},
    keys::TenantId,
};

/// The document: what a mail gateway would hand over, as bytes with a declared type.
const INVOICE: &[u8] = b"ACME Supplies Ltd\n\
Invoice number: INV-7781\n\
Date: 2026-11-25\n\
IBAN: DE89 3704 0044 0532 0130 00\n\
Questions: billing@acme.example\n\
Total: 1,234.50 EUR\n";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The test profile: in-process store, rules extractor. Its settings also carry the pipeline's limits.
    let settings = Settings::embedded(Environment::Test)?;
    let store = Store::from_settings(&settings)?;
    // HTML and PDF parsing in this process: a server gives `ParserHost::Child { … }` to bound each document.
    let mut processor =
        DocumentProcessor::from_settings(&settings, store, ParserHost::InProcess).await;
    processor.set_tenant_context(TenantId::new("acme")?);

    for round in 1..=2 {
        let done = processor.process(INVOICE, Some("text/plain")).await?;
        let stages = done.stages;
        println!(
            "round {round}: document {}, text {}, extraction {}; {} ms of engine time saved, {:.1} ms wall",
            stages.document.as_str(),
            stages.ocr.as_str(),
            stages.extraction.as_str(),
            done.time_saved.as_millis(),
            done.elapsed.as_secs_f64() * 1e3
        );
        if round == 2 {
            let result = &done.result;
            let fields = &result.fields;
            println!(
                "  fingerprint {} ({}, {} bytes)",
                result.fingerprint, result.kind, result.size
            );
            println!(
                "  invoice number {:?}, total {:?}",
                fields.invoice_number, fields.total
            );
            println!(
                "  dates {:?}, IBANs {:?}, emails {:?}",
                fields.dates, fields.ibans, fields.emails
            );
        }
    }
    Ok(())
}
