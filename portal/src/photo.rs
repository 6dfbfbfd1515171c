//! ID photos (证件照片): what an upload must be before the portal keeps it, and what it keeps.
//! An upload is decoded as the JPEG or PNG its first bytes say it is (and its Content-Type
//! must agree), within byte, side and pixel limits checked from the header before any pixel
//! is decoded (a small file that declares a huge image is refused unread), then re-encoded:
//! EXIF (GPS position, camera serial), text chunks and anything appended to the image never
//! reach the store or a reviewer's browser.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, ImageReader, Limits};

/// Image types accepted for ID photos, told by their first bytes (not by the name or the
/// declared type alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhotoType {
    Jpeg,
    Png,
}

impl PhotoType {
    pub fn sniff(bytes: &[u8]) -> Option<PhotoType> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(PhotoType::Jpeg)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(PhotoType::Png)
        } else {
            None
        }
    }
    pub fn mime(self) -> &'static str {
        match self {
            PhotoType::Jpeg => "image/jpeg",
            PhotoType::Png => "image/png",
        }
    }
    fn format(self) -> ImageFormat {
        match self {
            PhotoType::Jpeg => ImageFormat::Jpeg,
            PhotoType::Png => ImageFormat::Png,
        }
    }
}

/// What an accepted photo may be.
#[derive(Debug, Clone, Copy)]
pub struct PhotoLimits {
    pub min_bytes: usize,
    pub max_bytes: usize,
    /// Each side at least this many pixels (a legible ID card) and at most `max_side`.
    pub min_side: u32,
    pub max_side: u32,
    /// Width times height at most this (what decoding may allocate follows from it).
    pub max_pixels: u64,
}

/// Why a photo was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhotoProblem {
    /// Not a JPEG or PNG, or the declared type says otherwise.
    Type,
    /// Smaller than `min_bytes` or larger than `max_bytes`.
    Size,
    /// A JPEG or PNG by its first bytes that does not decode (truncated, corrupt).
    Unreadable,
    /// Sides or pixel count outside the limits (a decompression bomb among them).
    Dimensions { width: u32, height: u32 },
}

/// An accepted photo, as kept: re-encoded in its own format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Photo {
    pub kind: PhotoType,
    pub bytes: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// Quality of re-encoded JPEGs: the photo stays legible, its size about what was uploaded.
const JPEG_QUALITY: u8 = 90;

/// Judge an upload with Content-Type `declared`, and re-encode it. CPU-bound (a few tens of
/// milliseconds for a phone photo): call it off the async workers.
pub fn accept(declared: &str, bytes: &[u8], limits: &PhotoLimits) -> Result<Photo, PhotoProblem> {
    if bytes.len() < limits.min_bytes || bytes.len() > limits.max_bytes {
        return Err(PhotoProblem::Size);
    }
    let declared = declared.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let kind = match PhotoType::sniff(bytes) {
        Some(t) if t.mime() == declared || (t == PhotoType::Jpeg && declared == "image/jpg") => t,
        _ => return Err(PhotoProblem::Type),
    };
    // The JPEG decoder fills a cut-short image with grey rather than fail: an upload cut off
    // on the way is told by its missing end-of-image marker, so the user sends it again.
    if kind == PhotoType::Jpeg && !ends_after_its_scan(bytes) {
        return Err(PhotoProblem::Unreadable);
    }
    let (width, height) = ImageReader::with_format(Cursor::new(bytes), kind.format())
        .into_dimensions()
        .map_err(|_| PhotoProblem::Unreadable)?;
    let sides_ok = |s: u32| (limits.min_side..=limits.max_side).contains(&s);
    if !sides_ok(width) || !sides_ok(height) || u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(PhotoProblem::Dimensions { width, height });
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), kind.format());
    let mut l = Limits::default();
    l.max_image_width = Some(limits.max_side);
    l.max_image_height = Some(limits.max_side);
    // The decoded image (up to 4 bytes a pixel, 8 for 16-bit PNGs) and the decoder's buffers.
    l.max_alloc = Some(limits.max_pixels * 8 + (16 << 20));
    reader.limits(l);
    let unreadable = |_| PhotoProblem::Unreadable;
    let mut decoder = reader.into_decoder().map_err(unreadable)?;
    // Phones store the picture sideways and say so in EXIF, which re-encoding drops: turn
    // the pixels instead, so a reviewer sees the card upright.
    let orientation =
        image::ImageDecoder::orientation(&mut decoder).unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(unreadable)?;
    image.apply_orientation(orientation);
    let (width, height) = (image.width(), image.height());
    let bytes = encode(&image, kind).map_err(|_| PhotoProblem::Unreadable)?;
    Ok(Photo { kind, bytes, width, height })
}

/// Whether a JPEG's end-of-image marker comes after its (last) start of scan: a marker inside
/// an EXIF thumbnail, before the scan, does not count.
fn ends_after_its_scan(jpeg: &[u8]) -> bool {
    let scan = jpeg.windows(2).rposition(|m| m == [0xFF, 0xDA]);
    scan.is_some_and(|at| jpeg[at..].windows(2).any(|m| m == [0xFF, 0xD9]))
}

fn encode(image: &DynamicImage, kind: PhotoType) -> image::ImageResult<Vec<u8>> {
    let mut out = Vec::new();
    match kind {
        // JPEG has no alpha: flatten to RGB.
        PhotoType::Jpeg => DynamicImage::ImageRgb8(image.to_rgb8())
            .write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY))?,
        PhotoType::Png => image.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)?,
    }
    Ok(out)
}

/// A stand-in ID photo for tests and `ukey flows`: a `width` x `height` card with a coloured
/// band and a grey "portrait" block, encoded as `kind`. `seed` varies the colours, so two
/// photos differ.
pub fn sample(kind: PhotoType, width: u32, height: u32, seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        let band = y < height / 5;
        let portrait = x > width * 2 / 3 && x < width * 9 / 10 && y > height / 4 && y < height * 3 / 4;
        match (band, portrait) {
            (true, _) => image::Rgb([30u8.wrapping_add(seed), 90, 160]),
            (_, true) => image::Rgb([120, 120, 120]),
            // A little texture, so the JPEG is not trivially small.
            _ => image::Rgb([235, 232u8.wrapping_sub(((x ^ y) & 7) as u8), 220u8.wrapping_add(seed / 2)]),
        }
    });
    encode(&DynamicImage::ImageRgb8(img), kind).expect("encoding an in-memory image")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: PhotoLimits =
        PhotoLimits { min_bytes: 1024, max_bytes: 2 << 20, min_side: 200, max_side: 8000, max_pixels: 24_000_000 };

    #[test]
    fn photos_are_judged_by_their_bytes_and_decoded() {
        let jpeg = sample(PhotoType::Jpeg, 640, 400, 1);
        let png = sample(PhotoType::Png, 640, 400, 2);
        let j = accept("image/jpeg", &jpeg, &LIMITS).unwrap();
        assert_eq!((j.kind, j.width, j.height), (PhotoType::Jpeg, 640, 400));
        assert_eq!(accept("image/png; charset=x", &png, &LIMITS).unwrap().kind, PhotoType::Png);
        assert_eq!(accept("image/jpg", &jpeg, &LIMITS).unwrap().kind, PhotoType::Jpeg);
        // Declared type and bytes disagree, or neither is an image type we take.
        assert_eq!(accept("image/png", &jpeg, &LIMITS), Err(PhotoProblem::Type));
        let gif = [&b"GIF89a"[..], &[0u8; 2000]].concat();
        assert_eq!(accept("image/gif", &gif, &LIMITS), Err(PhotoProblem::Type));
        // Sizes in bytes, before anything is decoded.
        assert_eq!(accept("image/jpeg", &jpeg[..500], &LIMITS), Err(PhotoProblem::Size));
        let small = PhotoLimits { max_bytes: jpeg.len() - 1, ..LIMITS };
        assert_eq!(accept("image/jpeg", &jpeg, &small), Err(PhotoProblem::Size));
        // JPEG and PNG magic, then nothing an image decoder can read.
        let fake = [&[0xFF, 0xD8, 0xFF, 0xE0][..], &[0x42u8; 4000]].concat();
        assert_eq!(accept("image/jpeg", &fake, &LIMITS), Err(PhotoProblem::Unreadable));
        let cut = &jpeg[..jpeg.len() * 2 / 3];
        assert_eq!(accept("image/jpeg", cut, &LIMITS), Err(PhotoProblem::Unreadable));
        let truncated = &png[..png.len() / 2];
        assert!(truncated.len() > 1024);
        assert_eq!(accept("image/png", truncated, &LIMITS), Err(PhotoProblem::Unreadable));
    }

    #[test]
    fn sides_and_pixels_are_capped_from_the_header() {
        let tiny = sample(PhotoType::Png, 100, 400, 3);
        let bigger = PhotoLimits { min_bytes: 10, ..LIMITS };
        assert_eq!(accept("image/png", &tiny, &bigger), Err(PhotoProblem::Dimensions { width: 100, height: 400 }));
        let few = PhotoLimits { max_pixels: 640 * 400 - 1, ..LIMITS };
        let jpeg = sample(PhotoType::Jpeg, 640, 400, 4);
        assert_eq!(accept("image/jpeg", &jpeg, &few), Err(PhotoProblem::Dimensions { width: 640, height: 400 }));
    }
}
