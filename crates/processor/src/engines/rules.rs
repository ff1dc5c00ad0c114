//! The built-in field extractor: regular expressions for invoice numbers, dates, totals, VAT / tax ids,
//! IBANs (checksum verified) and email addresses, in English, German and French wording.

use std::sync::LazyLock;

use async_trait::async_trait;
use regex::Regex;

use crate::{EngineError, EngineId, ExtractedFields, Extraction, FieldExtractor};

/// Rule-based extraction: no network, deterministic, the embedded default.
#[derive(Debug, Clone, Copy, Default)]
pub struct RuleExtractor;

impl RuleExtractor {
    /// Bumped whenever a rule changes what is extracted.
    const VERSION: &'static str = "1";
}

static INVOICE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?im)\b(?:invoice|rechnung|facture)\s*(?:no\.?|number|nr\.?|nummer|n°|num[ée]ro|#)?\s*[:#]?\s*([A-Z0-9][A-Z0-9\-/.]{2,30}[A-Z0-9])",
    )
    .expect("invoice rule")
});
static ISO_DATE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(\d{4})-(\d{2})-(\d{2})\b").expect("ISO date rule"));
static DMY_DATE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(\d{1,2})[./](\d{1,2})[./](\d{4})\b").expect("d.m.y rule"));
static NAMED_DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(\d{1,2})\.?\s+(january|february|march|april|may|june|july|august|september|october|november|december|januar|februar|märz|mai|juni|juli|oktober|dezember)\s+(\d{4})\b",
    )
    .expect("named date rule")
});
static TOTAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?im)\b(?:grand\s+total|total\s+amount|amount\s+due|total|gesamtbetrag|gesamtsumme|rechnungsbetrag|montant\s+total|total\s+ttc)\b[^\n\d€$£]{0,20}?(EUR|USD|GBP|CHF|€|\$|£)?\s*(\d{1,3}(?:[.,' ]\d{3})*(?:[.,]\d{2})|\d+(?:[.,]\d{2})?)\s*(EUR|USD|GBP|CHF|€|\$|£)?",
    )
    .expect("total rule")
});
static VAT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\b(ATU\d{8}|BE[01]\d{9}|DE\d{9}|FR[0-9A-HJ-NP-Z]{2}\d{9}|NL\d{9}B\d{2}|IT\d{11}|ES[0-9A-Z]\d{7}[0-9A-Z]|GB\d{9}(?:\d{3})?|PL\d{10}|SE\d{12}|DK\d{8}|FI\d{8}|IE\d{7}[A-W][A-I]?|LU\d{8}|PT\d{9}|CHE-?\d{3}\.?\d{3}\.?\d{3})\b",
    )
    .expect("VAT rule")
});
static IBAN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b([A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?)\b").expect("IBAN rule")
});
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b[a-z0-9._%+\-]+@[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.[a-z]{2,}\b")
        .expect("email rule")
});

fn month(name: &str) -> Option<u32> {
    let n = name.to_lowercase();
    let months = [
        ["january", "januar"],
        ["february", "februar"],
        ["march", "märz"],
        ["april", "april"],
        ["may", "mai"],
        ["june", "juni"],
        ["july", "juli"],
        ["august", "august"],
        ["september", "september"],
        ["october", "oktober"],
        ["november", "november"],
        ["december", "dezember"],
    ];
    months
        .iter()
        .position(|m| m.contains(&n.as_str()))
        .and_then(|i| u32::try_from(i + 1).ok())
}

fn iso(y: &str, m: u32, d: u32) -> Option<String> {
    let y: u32 = y.parse().ok()?;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        2 => 28,
        _ => return None,
    };
    ((1900..=2200).contains(&y) && (1..=days).contains(&d)).then(|| format!("{y:04}-{m:02}-{d:02}"))
}

fn dates(text: &str) -> Vec<String> {
    let mut found: Vec<(usize, String)> = Vec::new();
    for c in ISO_DATE.captures_iter(text) {
        if let (Ok(m), Ok(d)) = (c[2].parse(), c[3].parse())
            && let Some(s) = iso(&c[1], m, d)
        {
            found.push((c.get(0).map_or(0, |m| m.start()), s));
        }
    }
    for c in DMY_DATE.captures_iter(text) {
        if let (Ok(d), Ok(m)) = (c[1].parse(), c[2].parse())
            && let Some(s) = iso(&c[3], m, d)
        {
            found.push((c.get(0).map_or(0, |m| m.start()), s));
        }
    }
    for c in NAMED_DATE.captures_iter(text) {
        if let (Ok(d), Some(m)) = (c[1].parse(), month(&c[2]))
            && let Some(s) = iso(&c[3], m, d)
        {
            found.push((c.get(0).map_or(0, |m| m.start()), s));
        }
    }
    found.sort();
    let mut out: Vec<String> = Vec::new();
    for (_, d) in found {
        if !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

/// `1.234,56` (European), `1,234.56` (English), `1'234.56` (Swiss) and `1234` all become `1234.56`/`1234.00`.
fn amount(raw: &str) -> Option<String> {
    let digits: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    let (int, frac) = match digits.rfind([',', '.']) {
        Some(i) if digits.len() - i == 3 => (&digits[..i], &digits[i + 1..]),
        _ => (digits.as_str(), "00"),
    };
    let int: String = int.chars().filter(char::is_ascii_digit).collect();
    if int.is_empty() || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let int = int.trim_start_matches('0');
    Some(format!("{}.{frac}", if int.is_empty() { "0" } else { int }))
}

fn currency(symbol: &str) -> &str {
    match symbol {
        "€" => "EUR",
        "$" => "USD",
        "£" => "GBP",
        other => other,
    }
}

fn total(text: &str) -> Option<String> {
    // The last total line wins: subtotals come first on invoices.
    let c = TOTAL.captures_iter(text).last()?;
    let value = amount(&c[2])?;
    let cur = c.get(1).or_else(|| c.get(3)).map(|m| currency(m.as_str()));
    Some(match cur {
        Some(cur) => format!("{value} {cur}"),
        None => value,
    })
}

/// ISO 13616 check: move the first four characters to the end, letters to numbers, mod 97 must be 1.
fn iban_valid(iban: &str) -> bool {
    if !(15..=34).contains(&iban.len()) {
        return false;
    }
    let rearranged = iban[4..].chars().chain(iban[..4].chars());
    let mut rem: u32 = 0;
    for c in rearranged {
        let v = match c {
            '0'..='9' => c as u32 - '0' as u32,
            'A'..='Z' => c as u32 - 'A' as u32 + 10,
            _ => return false,
        };
        let width = if v >= 10 { 100 } else { 10 };
        rem = (rem * width + v) % 97;
    }
    rem == 1
}

/// The extraction itself, shared with tests and other extractors' fallbacks.
pub(crate) fn extract(text: &str) -> ExtractedFields {
    ExtractedFields {
        // A number has digits: "invoice sent" is not one.
        invoice_number: INVOICE
            .captures_iter(text)
            .map(|c| c[1].to_owned())
            .find(|n| n.chars().any(|c| c.is_ascii_digit())),
        dates: dates(text),
        total: total(text),
        vat_ids: VAT
            .find_iter(text)
            .map(|m| m.as_str().replace(['-', '.'], ""))
            .collect(),
        ibans: IBAN
            .find_iter(text)
            .map(|m| m.as_str().replace(' ', ""))
            .filter(|i| iban_valid(i))
            .collect(),
        emails: EMAIL
            .find_iter(text)
            .map(|m| m.as_str().to_lowercase())
            .collect(),
    }
}

#[async_trait]
impl FieldExtractor for RuleExtractor {
    fn id(&self) -> EngineId {
        EngineId::new("rules", Self::VERSION)
    }

    async fn extract(&self, text: &str) -> Result<Extraction, EngineError> {
        Ok(extract(text).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invoice_gives_its_fields() {
        let text = "ACME GmbH · USt-IdNr. DE123456789\n\
                    Rechnung Nr. RE-2026/0042\n\
                    Rechnungsdatum: 25.11.2026, fällig am 2026-12-09\n\
                    Zwischensumme 1.000,00 EUR\n\
                    Gesamtbetrag: 1.190,00 EUR\n\
                    IBAN: DE89 3704 0044 0532 0130 00\n\
                    Fragen an billing@ACME.example";
        let f = extract(text);
        assert_eq!(f.invoice_number.as_deref(), Some("RE-2026/0042"));
        assert_eq!(f.dates, ["2026-11-25", "2026-12-09"]);
        assert_eq!(f.total.as_deref(), Some("1190.00 EUR"));
        assert_eq!(f.vat_ids.iter().collect::<Vec<_>>(), ["DE123456789"]);
        assert_eq!(
            f.ibans.iter().collect::<Vec<_>>(),
            ["DE89370400440532013000"]
        );
        assert_eq!(
            f.emails.iter().collect::<Vec<_>>(),
            ["billing@acme.example"]
        );
    }

    #[test]
    fn english_wording_amounts_and_invalid_values() {
        let f = extract(
            "Invoice number: INV-7781\nDate: 3 November 2026\nTotal amount due: $1,234.50\n\
             IBAN GB82 WEST 1234 5698 7654 32, bad IBAN GB00 WEST 1234 5698 7654 32\nOn 31.02.2026 nothing",
        );
        assert_eq!(f.invoice_number.as_deref(), Some("INV-7781"));
        assert_eq!(f.dates, ["2026-11-03"]);
        assert_eq!(f.total.as_deref(), Some("1234.50 USD"));
        assert_eq!(
            f.ibans.iter().collect::<Vec<_>>(),
            ["GB82WEST12345698765432"]
        );
        assert_eq!(amount("1'234.56").as_deref(), Some("1234.56"));
        assert_eq!(amount("1234").as_deref(), Some("1234.00"));
        assert_eq!(extract("Dear Ms Smith, thank you.").invoice_number, None);
        assert_eq!(extract("the same invoice sent again").invoice_number, None);
        assert_eq!(
            extract("Total EUR 13.50").total.as_deref(),
            Some("13.50 EUR")
        );
    }
}
