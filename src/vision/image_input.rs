//! Decoding image files or bytes into 8-bit RGB exactly as the Python side would see them.
//!
//! HF reaches an RGB image by two routes, and both end in the same Pillow calls: `load_image` (a path or URL
//! in the chat) and `datasets`' `Image` feature (parquet bytes, as in CVQA) each apply
//! `ImageOps.exif_transpose` and the processor's `convert_to_rgb` is a plain `image.convert("RGB")`.
//! So the rules here are Pillow's, not the `image` crate's own conversions:
//! - alpha is dropped, never composited on white (only a few models such as Idefics2 composite);
//! - 16-bit colour PNGs keep the high byte (Pillow unpacks them with the "RGB;16B" raw mode);
//! - 16-bit greyscale opens as "I;16", and I;16 -> RGB clips every value above 255 to 255.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

use super::ImageError;

/// Largest side an image may declare, in pixels.
const MAX_SIDE: u32 = 1 << 15;
/// Most memory one decode may allocate (a 100-megapixel RGBA image is 400 MB).
const MAX_DECODED_BYTES: u64 = 1 << 30;

/// Whether a JPEG stream reaches its end-of-image marker, walking its segments from the start
/// (so an EXIF thumbnail or data appended after the image, as in motion photos, does not
/// confuse it); PIL refuses a stream that stops early ("image file is truncated"), so do we.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let mut i = 2; // after SOI
    while i + 1 < bytes.len() {
        if bytes[i] != 0xFF {
            return false;
        }
        let marker = bytes[i + 1];
        i += 2;
        match marker {
            0xD9 => return true,
            0xFF => i -= 1,          // fill byte
            0x01 | 0xD0..=0xD7 => {} // no length
            _ => {
                let Some(len) = bytes.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]) as usize) else {
                    return false;
                };
                i += len;
                if marker == 0xDA {
                    // Entropy-coded data runs to the next marker that is not a stuffed 0xFF00 or a restart.
                    let data = |i: usize| bytes[i] != 0xFF || matches!(bytes[i + 1], 0x00 | 0xD0..=0xD7);
                    while i + 1 < bytes.len() && data(i) {
                        i += 1;
                    }
                }
            }
        }
    }
    false
}

/// Reads and decodes an image file; see the module docs for how it is turned into RGB.
pub fn load_rgb(path: &Path) -> Result<RgbImage, ImageError> {
    let bytes = std::fs::read(path).map_err(|source| ImageError::Io { path: path.to_path_buf(), source })?;
    decode_rgb(&bytes, &path.display().to_string())
}

/// Decodes an in-memory image (any format the `image` crate reads, recognised by content, not by name);
/// `origin` names the source in errors, e.g. `"cvqa.parquet row 17"`.
pub fn decode_rgb(bytes: &[u8], origin: &str) -> Result<RgbImage, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty { origin: origin.to_string() });
    }
    let decode_err = |cause| ImageError::Decode { origin: origin.to_string(), cause };
    // A Cursor cannot fail to read, so the io::Error arm is unreachable in practice.
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| decode_err(image::ImageError::IoError(e)))?;
    if reader.format().is_none() {
        let head = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ");
        return Err(ImageError::UnknownFormat { origin: origin.to_string(), head });
    }
    if reader.format() == Some(image::ImageFormat::Jpeg) && !jpeg_is_complete(bytes) {
        return Err(ImageError::Truncated { origin: origin.to_string() });
    }
    // A header may claim any size; refuse what no photo needs before allocating it.
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(decode_err)?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(ImageError::ZeroSize { origin: origin.to_string(), width, height });
    }
    // A damaged EXIF block must not cost the image: Pillow's exif_transpose also ignores what it cannot parse.
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(decode_err)?;
    img.apply_orientation(orientation);
    Ok(to_rgb_like_pillow(img))
}

fn to_rgb_like_pillow(img: DynamicImage) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    let from_fn = |f: &dyn Fn(u32, u32) -> [u8; 3]| RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)));
    match img {
        DynamicImage::ImageRgb8(b) => b,
        DynamicImage::ImageRgba8(b) => from_fn(&|x, y| {
            let p = b.get_pixel(x, y).0;
            [p[0], p[1], p[2]]
        }),
        DynamicImage::ImageLuma8(b) => from_fn(&|x, y| [b.get_pixel(x, y).0[0]; 3]),
        DynamicImage::ImageLumaA8(b) => from_fn(&|x, y| [b.get_pixel(x, y).0[0]; 3]),
        DynamicImage::ImageLuma16(b) => from_fn(&|x, y| [b.get_pixel(x, y).0[0].min(255) as u8; 3]),
        DynamicImage::ImageLumaA16(b) => from_fn(&|x, y| [(b.get_pixel(x, y).0[0] >> 8) as u8; 3]),
        DynamicImage::ImageRgb16(b) => from_fn(&|x, y| b.get_pixel(x, y).0.map(|v| (v >> 8) as u8)),
        DynamicImage::ImageRgba16(b) => from_fn(&|x, y| {
            let p = b.get_pixel(x, y).0;
            [p[0], p[1], p[2]].map(|v| (v >> 8) as u8)
        }),
        // Float images (HDR/EXR) have no Pillow counterpart worth imitating; clamp-and-scale is the usual reading.
        other => other.to_rgb8(),
    }
}
