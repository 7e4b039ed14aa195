//! Rendered images out: scaled to the viewport and encoded as JPEG, PNG or GIF with the
//! `image` crate (PS3.18 8.3.5 and 10.4).

use image::codecs::gif::GifEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::imageops::FilterType;
use image::{ExtendedColorType, ImageBuffer, ImageEncoder, Luma, Rgb};

use super::window::Rendered;

/// The media types rendered resources are offered in, the default first (PS3.18 Table
/// 8.7.4-1: `image/jpeg` is the default for single-frame renderings).
pub const RENDERED_MEDIA_TYPES: [&str; 3] = ["image/jpeg", "image/png", "image/gif"];

/// The viewport parameter (PS3.18 8.3.5.1.3): the rendering is scaled to fit `width` ×
/// `height` keeping its aspect ratio, after cutting the source region when given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Viewport {
    /// Viewport width in pixels (1..=8192).
    pub width: u32,
    /// Viewport height in pixels (1..=8192).
    pub height: u32,
    /// Source region: x, y, width, height in image pixels.
    pub region: Option<(u32, u32, u32, u32)>,
}

/// Largest viewport side: bounds the memory a request can ask the scaler for.
pub const MAX_VIEWPORT: u32 = 8192;

impl Viewport {
    /// Parses `vw,vh` or `vw,vh,sx,sy,sw,sh`.
    pub fn parse(s: &str) -> Result<Viewport, String> {
        let v: Vec<u32> = s
            .split(',')
            .map(|p| p.trim().parse::<u32>())
            .collect::<Result<_, _>>()
            .map_err(|_| {
                format!(
                    "viewport={s}: expected vw,vh or vw,vh,sx,sy,sw,sh as non-negative integers"
                )
            })?;
        let (w, h, region) = match v.as_slice() {
            [w, h] => (*w, *h, None),
            [w, h, x, y, sw, sh] => (*w, *h, Some((*x, *y, *sw, *sh))),
            _ => return Err(format!("viewport={s}: expected 2 or 6 values")),
        };
        if w == 0 || h == 0 || w > MAX_VIEWPORT || h > MAX_VIEWPORT {
            return Err(format!(
                "viewport={s}: width and height must be 1..={MAX_VIEWPORT}"
            ));
        }
        Ok(Viewport {
            width: w,
            height: h,
            region,
        })
    }
}

/// Cuts the region and scales `img` to fit `vp` (aspect kept; never enlarged past the
/// viewport, always at least 1 × 1).
pub fn fit(img: Rendered, vp: Option<Viewport>) -> Result<Rendered, String> {
    let Some(vp) = vp else { return Ok(img) };
    let mut img = img;
    if let Some((x, y, w, h)) = vp.region {
        if w == 0 || h == 0 || x.saturating_add(w) > img.width || y.saturating_add(h) > img.height {
            return Err(format!(
                "viewport region {x},{y},{w},{h} lies outside the {}×{} image",
                img.width, img.height
            ));
        }
        let ch = usize::from(img.channels);
        let mut data = Vec::with_capacity(w as usize * h as usize * ch);
        for row in y..y + h {
            let start = (row as usize * img.width as usize + x as usize) * ch;
            data.extend_from_slice(&img.data[start..start + w as usize * ch]);
        }
        img = Rendered {
            width: w,
            height: h,
            channels: img.channels,
            data,
        };
    }
    let scale = f64::min(
        f64::from(vp.width) / f64::from(img.width),
        f64::from(vp.height) / f64::from(img.height),
    );
    let w = ((f64::from(img.width) * scale).round() as u32).clamp(1, vp.width);
    let h = ((f64::from(img.height) * scale).round() as u32).clamp(1, vp.height);
    if (w, h) == (img.width, img.height) {
        return Ok(img);
    }
    let data = if img.channels == 1 {
        let buf = ImageBuffer::<Luma<u8>, _>::from_raw(img.width, img.height, img.data)
            .ok_or("rendered buffer size mismatch")?;
        image::imageops::resize(&buf, w, h, FilterType::Triangle).into_raw()
    } else {
        let buf = ImageBuffer::<Rgb<u8>, _>::from_raw(img.width, img.height, img.data)
            .ok_or("rendered buffer size mismatch")?;
        image::imageops::resize(&buf, w, h, FilterType::Triangle).into_raw()
    };
    Ok(Rendered {
        width: w,
        height: h,
        channels: img.channels,
        data,
    })
}

/// Encodes `img` as `media_type` (one of [`RENDERED_MEDIA_TYPES`]); `quality` (1..=100)
/// applies to JPEG only.
pub fn encode(img: &Rendered, media_type: &str, quality: u8) -> Result<Vec<u8>, String> {
    let color = if img.channels == 1 {
        ExtendedColorType::L8
    } else {
        ExtendedColorType::Rgb8
    };
    let mut out = Vec::new();
    let r = match media_type {
        "image/jpeg" => JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100))
            .write_image(&img.data, img.width, img.height, color),
        "image/png" => {
            PngEncoder::new(&mut out).write_image(&img.data, img.width, img.height, color)
        }
        "image/gif" => {
            // GIF holds 8-bit indexed colour: grey goes as RGB so that the encoder's
            // quantiser keeps all 256 levels in the palette.
            let rgb: Vec<u8> = if img.channels == 1 {
                img.data.iter().flat_map(|&v| [v, v, v]).collect()
            } else {
                img.data.clone()
            };
            GifEncoder::new(&mut out).encode(&rgb, img.width, img.height, ExtendedColorType::Rgb8)
        }
        other => return Err(format!("{other} is not a rendered media type")),
    };
    r.map_err(|e| format!("cannot encode {media_type}: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grey(w: u32, h: u32) -> Rendered {
        Rendered {
            width: w,
            height: h,
            channels: 1,
            data: (0..w * h).map(|i| (i % 256) as u8).collect(),
        }
    }

    #[test]
    fn viewport_parsing_and_fit() {
        assert!(Viewport::parse("0,10").is_err());
        assert!(Viewport::parse("10").is_err());
        assert!(Viewport::parse("99999,10").is_err());
        let vp = Viewport::parse("64,64").unwrap();
        let r = fit(grey(256, 128), Some(vp)).unwrap();
        assert_eq!((r.width, r.height), (64, 32), "aspect kept");
        let vp = Viewport::parse("10,10,2,2,4,4").unwrap();
        let r = fit(grey(8, 8), Some(vp)).unwrap();
        assert_eq!((r.width, r.height), (10, 10));
        assert!(fit(grey(8, 8), Some(Viewport::parse("10,10,6,6,4,4").unwrap())).is_err());
    }

    #[test]
    fn png_round_trips_exactly() {
        let img = grey(16, 4);
        let png = encode(&img, "image/png", 90).unwrap();
        let back = image::load_from_memory(&png).unwrap().into_luma8();
        assert_eq!(back.into_raw(), img.data);
        assert_eq!(&encode(&img, "image/jpeg", 90).unwrap()[..2], &[0xFF, 0xD8]);
        assert_eq!(&encode(&img, "image/gif", 90).unwrap()[..3], b"GIF");
    }
}
