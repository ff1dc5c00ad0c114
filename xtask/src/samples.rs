//! `cargo xtask samples`: writes the sample corpus in `samples/` — invoices and letters as text, PDF (with a
//! text layer) and scanned PNG — including the duplicates a real inbox has.
//!
//! The files are committed; this command only regenerates them. PNG scans are rendered with DejaVu Sans
//! (Debian package `fonts-dejavu-core`).

use std::path::{Path, PathBuf};

use ab_glyph::{Font, FontVec, PxScale, ScaleFont};
use anyhow::{Context, bail};
use lopdf::{
    Document, Object, Stream,
    content::{Content, Operation},
    dictionary,
};

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

const ACME_INVOICE: &str = "\
ACME Office Supplies GmbH
Hauptstrasse 12, 10115 Berlin
USt-IdNr. DE123456789

Rechnung Nr. RE-2026-0042
Rechnungsdatum: 25.11.2026
Faellig am: 2026-12-09

Kunde: Example Logistics AG, billing@example-logistics.example

Pos  Artikel                 Menge  Einzelpreis   Summe
1    Druckerpapier A4        10     4,99 EUR      49,90 EUR
2    Toner schwarz           2      89,00 EUR     178,00 EUR
3    Ordner breit            25     2,40 EUR      60,00 EUR

Zwischensumme 287,90 EUR
MwSt 19 % 54,70 EUR
Gesamtbetrag: 342,60 EUR

Bitte ueberweisen Sie auf IBAN DE89 3704 0044 0532 0130 00
Fragen: rechnungen@acme-office.example
";

const GLOBEX_INVOICE: &str = "\
Globex Corporation Ltd
1 Market Street, London EC2A 4BX
VAT GB123456789

Invoice number: INV-7781
Invoice date: 3 November 2026
Due date: 2026-12-03

Bill to: Example Logistics AG, accounts@example-logistics.example

Description                    Qty   Unit price    Amount
Freight handling, November     1     1,000.00 GBP  1,000.00 GBP
Customs paperwork              4     58.75 GBP     235.00 GBP

Subtotal 1,235.00 GBP
VAT 20% 247.00 GBP
Total amount due: 1,482.00 GBP

Pay to IBAN GB82 WEST 1234 5698 7654 32
";

const INITECH_INVOICE: &str = "\
Initech SARL
8 rue de la Paix, 75002 Paris
TVA FR40303265045

Facture numero FA-553
Date: 14/10/2026

Prestations de conseil, octobre 2026     3 jours   650,00 EUR   1 950,00 EUR

Total HT 1 950,00 EUR
TVA 20 % 390,00 EUR
Total TTC 2 340,00 EUR

IBAN FR14 2004 1010 0505 0001 3M02 606
contact@initech.example
";

const REMINDER_LETTER: &str = "\
Example Logistics AG
Am Hafen 3, 20457 Hamburg

Hamburg, 20.11.2026

Payment reminder

Dear Sir or Madam,

according to our records, invoice INV-7781 of 3 November 2026 is still open.
We kindly ask you to settle the amount within the next ten days.

Kind regards,
Accounts Receivable
accounts@example-logistics.example
";

const CONTRACT_LETTER: &str = "\
Example Logistics AG
Am Hafen 3, 20457 Hamburg

Hamburg, 2026-11-02

Renewal of the warehouse service contract

Dear Ms Novak,

we are pleased to confirm the renewal of the warehouse service contract
for the period 2027-01-01 to 2027-12-31 under unchanged conditions.

Yours sincerely,
Contract Management
contracts@example-logistics.example
";

const RECEIPT: &str = "\
CITY CAFE
Receipt 2026-11-21 12:41

2 x Espresso        5.60
1 x Sandwich        7.90

Total EUR 13.50
Thank you!
";

/// Writes every sample under `root`.
pub(crate) fn write(root: &Path) -> anyhow::Result<()> {
    let font_bytes = std::fs::read(FONT).with_context(|| {
        format!("{FONT} is needed to render the scanned samples (Debian package fonts-dejavu-core)")
    })?;
    let font = FontVec::try_from_vec(font_bytes).context("DejaVu Sans could not be read")?;
    let files: Vec<(PathBuf, Vec<u8>)> = vec![
        ("acme/invoices/RE-2026-0042.txt".into(), ACME_INVOICE.into()),
        // The same invoice sent twice (a resend with another file name).
        (
            "acme/invoices/RE-2026-0042 (resent).txt".into(),
            ACME_INVOICE.into(),
        ),
        ("acme/invoices/INV-7781.pdf".into(), pdf(GLOBEX_INVOICE)?),
        ("acme/invoices/FA-553.pdf".into(), pdf(INITECH_INVOICE)?),
        (
            "acme/letters/payment-reminder.txt".into(),
            REMINDER_LETTER.into(),
        ),
        (
            "acme/letters/contract-renewal.pdf".into(),
            pdf(CONTRACT_LETTER)?,
        ),
        (
            "acme/scans/RE-2026-0042-scan.png".into(),
            png(&font, ACME_INVOICE)?,
        ),
        ("acme/scans/receipt.png".into(), png(&font, RECEIPT)?),
        // Another tenant received the very same invoices.
        ("globex/invoices/INV-7781.pdf".into(), pdf(GLOBEX_INVOICE)?),
        (
            "globex/invoices/RE-2026-0042.txt".into(),
            ACME_INVOICE.into(),
        ),
        (
            "globex/letters/payment-reminder.txt".into(),
            REMINDER_LETTER.into(),
        ),
    ];
    for (rel, bytes) in files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().context("sample path")?)?;
        std::fs::write(&path, bytes).with_context(|| path.display().to_string())?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// A one-page A4 PDF with the text in Helvetica (a real text layer). ASCII only: the standard fonts'
/// encoding is what `lopdf` reads back.
fn pdf(text: &str) -> anyhow::Result<Vec<u8>> {
    if !text.is_ascii() {
        bail!("PDF samples are ASCII");
    }
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Helvetica",
    });
    let resources_id = doc.add_object(dictionary! {
        "Font" => dictionary! { "F1" => font_id },
    });
    let mut ops = vec![
        Operation::new("BT", vec![]),
        Operation::new("Tf", vec!["F1".into(), 10.into()]),
        Operation::new("TL", vec![14.into()]),
        Operation::new("Td", vec![56.into(), 780.into()]),
    ];
    for line in text.lines() {
        ops.push(Operation::new("Tj", vec![Object::string_literal(line)]));
        ops.push(Operation::new("T*", vec![]));
    }
    ops.push(Operation::new("ET", vec![]));
    let content = Content { operations: ops };
    let content_id = doc.add_object(Stream::new(dictionary! {}, content.encode()?));
    let page_id = doc.add_object(dictionary! {
        "Type" => "Page",
        "Parent" => pages_id,
        "Contents" => content_id,
    });
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => vec![page_id.into()],
            "Count" => 1,
            "Resources" => resources_id,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! {
        "Type" => "Catalog",
        "Pages" => pages_id,
    });
    doc.trailer.set("Root", catalog_id);
    doc.compress();
    let mut out = Vec::new();
    doc.save_to(&mut out)?;
    Ok(out)
}

/// A grey-scale "scan" at about 200 dpi: dark text on a slightly uneven paper tone.
fn png(font: &FontVec, text: &str) -> anyhow::Result<Vec<u8>> {
    let scale = PxScale::from(30.0);
    let scaled = font.as_scaled(scale);
    let line_height = (scaled.height() + scaled.line_gap()).ceil() as usize + 6;
    let lines: Vec<&str> = text.lines().collect();
    let (width, margin) = (1700usize, 80usize);
    let height = margin * 2 + line_height * lines.len();
    // Paper: light grey with a faint diagonal shade, like a flatbed scan.
    let mut pixels: Vec<u8> = (0..width * height)
        .map(|i| {
            let (x, y) = (i % width, i / width);
            238 - (((x + y) / 97) % 5) as u8
        })
        .collect();
    for (n, line) in lines.iter().enumerate() {
        let baseline = margin as f32 + (n * line_height) as f32 + scaled.ascent();
        let mut x = margin as f32;
        let mut previous = None;
        for c in line.chars() {
            let id = scaled.glyph_id(c);
            if let Some(p) = previous {
                x += scaled.kern(p, id);
            }
            let glyph = id.with_scale_and_position(scale, ab_glyph::point(x, baseline));
            x += scaled.h_advance(id);
            previous = Some(id);
            if let Some(outlined) = font.outline_glyph(glyph) {
                let b = outlined.px_bounds();
                outlined.draw(|gx, gy, coverage| {
                    let px = b.min.x as i64 + i64::from(gx);
                    let py = b.min.y as i64 + i64::from(gy);
                    if px >= 0 && py >= 0 && (px as usize) < width && (py as usize) < height {
                        let i = py as usize * width + px as usize;
                        let ink = (coverage.clamp(0.0, 1.0) * 215.0) as u8;
                        pixels[i] = pixels[i].saturating_sub(ink);
                    }
                });
            }
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width as u32, height as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(out)
}
