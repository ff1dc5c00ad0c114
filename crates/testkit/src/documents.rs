//! Documents built by tests from images they know the text of: scanned and mixed PDFs (an image per scanned
//! page, no text layer), PDF bombs (a page tree claiming more pages than it has, pages larger than any scan),
//! and multi-page TIFFs — the forms documents arrive in, so the OCR output can be checked for known text.

use std::path::Path;

use lopdf::{Document, Object, Stream, dictionary};

/// A PNG file as 8-bit grey: width, height, pixels (row-major).
///
/// # Panics
/// When the file is not an 8-bit PNG.
pub fn grey_png(path: &Path) -> (u32, u32, Vec<u8>) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let decoder = png::Decoder::new(std::io::BufReader::new(file));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a bounded PNG")];
    let info = reader.next_frame(&mut buf).expect("a PNG frame");
    assert_eq!(info.bit_depth, png::BitDepth::Eight, "{}", path.display());
    let channels = info.color_type.samples();
    let pixels = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|px| match channels {
            1 | 2 => px[0],
            _ => ((u16::from(px[0]) + u16::from(px[1]) + u16::from(px[2])) / 3) as u8,
        })
        .collect();
    (info.width, info.height, pixels)
}

/// What one page of a built PDF holds.
#[derive(Debug, Clone, Copy)]
pub enum PdfPage<'a> {
    /// A typed line, as a text layer (Helvetica).
    Typed(&'a str),
    /// A scan (a PNG file), as an image filling the page at 200 dpi — no text layer.
    Scan(&'a Path),
}

/// A PDF of `pages`. `claimed_pages` overrides the page tree's `/Count` (a bomb's claim); `scan_size` overrides
/// the scanned pages' size in points.
///
/// # Panics
/// When a scan cannot be read.
pub fn pdf(
    pages: &[PdfPage<'_>],
    claimed_pages: Option<i64>,
    scan_size: Option<(f32, f32)>,
) -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
    });
    let mut kids = Vec::new();
    for (i, page) in pages.iter().enumerate() {
        let (content, resources, (w, h)) = match page {
            PdfPage::Typed(line) => (
                format!("BT /F1 14 Tf 72 720 Td ({line}) Tj ET"),
                dictionary! { "Font" => dictionary! { "F1" => font } },
                (612.0, 792.0),
            ),
            PdfPage::Scan(path) => {
                let (width, height, pixels) = grey_png(path);
                let image = doc.add_object(Stream::new(
                    dictionary! {
                        "Type" => "XObject", "Subtype" => "Image",
                        "Width" => i64::from(width), "Height" => i64::from(height),
                        "ColorSpace" => "DeviceGray", "BitsPerComponent" => 8,
                    },
                    pixels,
                ));
                let size = scan_size
                    .unwrap_or((width as f32 * 72.0 / 200.0, height as f32 * 72.0 / 200.0));
                (
                    format!("q {} 0 0 {} 0 0 cm /Im{i} Do Q", size.0, size.1),
                    dictionary! { "XObject" => dictionary! { format!("Im{i}") => image } },
                    size,
                )
            }
        };
        let contents = doc.add_object(Stream::new(dictionary! {}, content.into_bytes()));
        let page = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "Contents" => contents,
            "Resources" => resources,
            "MediaBox" => vec![0.into(), 0.into(), Object::Real(w), Object::Real(h)],
        });
        kids.push(Object::Reference(page));
    }
    let count = claimed_pages.unwrap_or(kids.len() as i64);
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => kids, "Count" => count }),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog);
    // Flate-compressed, as scanners' PDFs are (an uncompressed grey A4 page is megabytes).
    doc.compress();
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("a PDF in memory");
    out
}

/// A grey TIFF with one page per PNG file, as a scanner writes a multi-page scan.
///
/// # Panics
/// When a scan cannot be read.
pub fn multi_page_tiff(scans: &[&Path]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut tiff = tiff::encoder::TiffEncoder::new(&mut out).expect("a TIFF encoder");
    for scan in scans {
        let (width, height, grey) = grey_png(scan);
        tiff.write_image::<tiff::encoder::colortype::Gray8>(width, height, &grey)
            .expect("a TIFF page");
    }
    out.into_inner()
}
