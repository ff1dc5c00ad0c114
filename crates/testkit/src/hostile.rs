//! Hostile documents (issue 28, items 17 and 19): small files that parsers or decoders turn into something huge —
//! an HTML table with one very wide cell and many rows, a PDF whose object stream inflates to one enormous
//! array that nothing refers to, and images whose headers claim hundreds of millions of pixels. Each is a valid
//! file, built in memory by the test that needs it; none is committed.

use std::path::Path;

use crate::{
    deflate::{crc32, zlib_repeat},
    documents::grey_png,
};

/// An HTML page with an invoice line, then a table whose first row has a cell of `cell_words` words and whose
/// `rows` further rows have two one-letter cells. Laid out as a table at a wide render width, every row is
/// padded to the wide cell: 20 000 words and 17 000 rows (610 KB) asked html2text for gigabytes.
pub fn wide_table_html(cell_words: usize, rows: usize) -> String {
    let mut page = String::with_capacity(cell_words * 5 + rows * 30 + 200);
    page.push_str("<!DOCTYPE html><html><body><p>Invoice number: INV-5150</p><table><tr><td>");
    for _ in 0..cell_words {
        page.push_str("wide ");
    }
    page.push_str("</td><td>x</td></tr>");
    for _ in 0..rows {
        page.push_str("<tr><td>a</td><td>b</td></tr>");
    }
    page.push_str("</table></body></html>");
    page
}

/// A one-page PDF with a text layer ("Invoice number: INV-4242") and an object stream, referred to by nothing,
/// holding one array of `elements` zeros. Its compressed stream takes about a byte per 80 elements; a PDF parser
/// that loads object streams eagerly builds every element (about 100 bytes each in lopdf).
pub fn object_stream_bomb_pdf(elements: usize) -> Vec<u8> {
    // Object 7 starts right after the stream's header "7 0 " (its /First).
    let bomb = zlib_repeat(b"7 0 [", b"0 ", elements, b"]");
    let content = b"BT /F1 14 Tf 72 720 Td (Invoice number: INV-4242) Tj ET";
    let mut objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
           /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_vec(),
    ];
    let mut page_content = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
    page_content.extend_from_slice(content);
    page_content.extend_from_slice(b"\nendstream");
    objects.push(page_content);
    objects.push(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec());
    let mut stream = format!(
        "<< /Type /ObjStm /N 1 /First 4 /Filter /FlateDecode /Length {} >>\nstream\n",
        bomb.len()
    )
    .into_bytes();
    stream.extend_from_slice(&bomb);
    stream.extend_from_slice(b"\nendstream");
    objects.push(stream);

    let mut pdf = b"%PDF-1.5\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, body) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        pdf.extend_from_slice(body);
        pdf.extend_from_slice(b"\nendobj\n");
    }
    let xref = pdf.len();
    pdf.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    pdf
}

/// A valid PNG of `width` × `height` black pixels, one bit each: 25 000 × 25 000 is under 500 KB, and a
/// decoder that trusts it allocates hundreds of megabytes.
pub fn huge_png(width: u32, height: u32) -> Vec<u8> {
    let row = 1 + (width as usize).div_ceil(8);
    // Every row: filter type 0, then zero bits. All of it zeros.
    let data = zlib_repeat(b"", &[0], row * height as usize, b"");
    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    // Bit depth 1, greyscale, deflate, adaptive filtering, no interlace.
    header.extend_from_slice(&[1, 0, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, body) in [
        (b"IHDR", &header[..]),
        (b"IDAT", &data[..]),
        (b"IEND", &[][..]),
    ] {
        png.extend_from_slice(&(body.len() as u32).to_be_bytes());
        png.extend_from_slice(kind);
        png.extend_from_slice(body);
        png.extend_from_slice(&crc32(&[&kind[..], body]).to_be_bytes());
    }
    png
}

/// A two-page TIFF as a scanner writes one: the scan `first` (a PNG file) as an 8-bit grey page, then a blank
/// bilevel page of `blank` pixels, deflate-compressed (10 000 × 10 000 is under 100 KB).
///
/// # Panics
/// When the scan cannot be read.
pub fn tiff_with_blank_page(first: &Path, blank: (u32, u32)) -> Vec<u8> {
    let (width, height, grey) = grey_png(first);
    let (blank_width, blank_height) = blank;
    let blank_data = zlib_repeat(
        b"",
        &[0],
        (blank_width as usize).div_ceil(8) * blank_height as usize,
        b"",
    );
    // Per page: the size, bits per sample, compression (1 none, 8 deflate), photometric interpretation (1:
    // black is zero for the grey page, 0: white is zero for the bilevel one, so zero bits are white) and the
    // pixels as one strip.
    let pages = [
        (width, height, 8u16, 1u16, 1u16, grey),
        (blank_width, blank_height, 1, 8, 0, blank_data),
    ];
    let mut tiff = b"II*\0".to_vec();
    tiff.extend_from_slice(&0u32.to_le_bytes());
    // Where the previous directory's "next" offset is written.
    let mut link = 4;
    for (width, height, bits, compression, photometric, data) in pages {
        let strip = tiff.len() as u32;
        tiff.extend_from_slice(&data);
        if tiff.len() % 2 == 1 {
            tiff.push(0);
        }
        let here = tiff.len() as u32;
        tiff[link..link + 4].copy_from_slice(&here.to_le_bytes());
        // Tag, type (3 SHORT, 4 LONG), value; entries in tag order.
        let entries: [(u16, u16, u32); 9] = [
            (256, 4, width),
            (257, 4, height),
            (258, 3, u32::from(bits)),
            (259, 3, u32::from(compression)),
            (262, 3, u32::from(photometric)),
            (273, 4, strip),
            (277, 3, 1),
            (278, 4, height),
            (279, 4, data.len() as u32),
        ];
        tiff.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for (tag, kind, value) in entries {
            tiff.extend_from_slice(&tag.to_le_bytes());
            tiff.extend_from_slice(&kind.to_le_bytes());
            tiff.extend_from_slice(&1u32.to_le_bytes());
            // A SHORT is left-justified in the value field: little-endian, its two bytes come first.
            tiff.extend_from_slice(&value.to_le_bytes());
        }
        link = tiff.len();
        tiff.extend_from_slice(&0u32.to_le_bytes());
    }
    tiff
}
