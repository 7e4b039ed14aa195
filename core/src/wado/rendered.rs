//! Rendered and thumbnail resources (PS3.18 10.4 and the thumbnail resources of
//! PS3.18 10.4.1.1), and WADO-URI's rendered default (PS3.18 9.4: `image/jpeg` when no
//! `contentType` asks for `application/dicom`).
//!
//! A frame is read (native), inflated (deflated data set) or decoded (`pixels`), turned
//! into display values with the data set's own Modality LUT / rescale, VOI (or the
//! request's `window`), MONOCHROME1 inversion, palette and colour model
//! (`pixels::window`), scaled to the `viewport` and encoded (`pixels::encode`). Nothing
//! is burnt into the image: a thumbnail carries no patient data, and the encoders
//! write no metadata.
//!
//! Levels: a frame list renders those frames; an instance renders its first frame (a
//! multi-frame instance as a whole would be a video, which sia does not make); a series
//! or study renders every frame of every instance with pixel data as a
//! `multipart/related` answer (at most [`MAX_PARTS`] frames). Thumbnails of a series or
//! study show the middle instance of the (first) series; thumbnails default to a
//! 128 × 128 viewport.

use crate::dicom::FrameTable;
use crate::http::{Body, Chunk, Request, Response};
use crate::pixels;
use crate::pixels::encode::{self, RENDERED_MEDIA_TYPES, Viewport};
use crate::pixels::window::{self, VoiFunction, Window};
use crate::wado::frames::{FrameBytes, frame_chunks};
use crate::wado::{AcceptHeader, Multipart, qido};
use crate::{Engine, Error, ErrorKind, Result};

/// Most frames one rendered answer holds.
pub const MAX_PARTS: usize = 1000;
/// Thumbnail viewport when the request names none.
pub const THUMBNAIL_SIDE: u32 = 128;
/// JPEG quality when the request names none.
pub const DEFAULT_QUALITY: u8 = 90;

/// What the request asks of the rendering.
#[derive(Clone, Debug)]
struct Options {
    media_type: &'static str,
    window: Option<Window>,
    viewport: Option<Viewport>,
    quality: u8,
}

/// What a rendered path names.
enum Target<'a> {
    Study(&'a str),
    Series(&'a str, &'a str),
    Instance(&'a str, &'a str, &'a str),
    Frames(&'a str, &'a str, &'a str, Vec<u32>),
}

impl Engine {
    /// Answers a `.../rendered` or `.../thumbnail` path (`p` relative to the DICOMweb
    /// root, UIDs already checked and the study authorized; `base` the root URL the
    /// request came through, a capability URL's included); other unserved resources
    /// (`pixeldata`, study-level `bulkdata`) answer 501.
    ///
    /// # Errors
    /// As the resource's answer: `InvalidInput` (bad path, query or options),
    /// `NotAcceptable`, `NotFound`, `NotImplemented` (the other resources),
    /// `TooCostly`, `Unavailable`, `InvalidDicom`, `Gone`, `Internal`.
    pub(crate) fn rendered(&self, req: &Request, base: &str, p: &str) -> Result<Response> {
        let segs: Vec<&str> = p.split('/').collect();
        let (kind, target) = match segs.as_slice() {
            ["studies", s, k] => (*k, Target::Study(s)),
            ["studies", s, "series", se, k] => (*k, Target::Series(s, se)),
            ["studies", s, "series", se, "instances", i, k] => (*k, Target::Instance(s, se, i)),
            [
                "studies",
                s,
                "series",
                se,
                "instances",
                i,
                "frames",
                list,
                k,
            ] => match crate::wado::parse_frame_list(list) {
                Ok(f) => (*k, Target::Frames(s, se, i, f)),
                Err(e) if e.status == 404 => return Err(Error::not_found(e.message)),
                Err(e) => return Err(Error::invalid(e.message)),
            },
            _ => ("", Target::Study("")),
        };
        if kind != "rendered" && kind != "thumbnail" {
            return Err(Error::new(
                ErrorKind::NotImplemented,
                format!("{p}: this resource is not served"),
            ));
        }
        let thumbnail = kind == "thumbnail";
        let params = query_params(&req.query)?;
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let accept = AcceptHeader::parse_fields(req.header_values("accept"))
            .map_err(|e| Error::invalid(e.to_string()))?;
        let several = !thumbnail
            && match &target {
                Target::Study(_) | Target::Series(..) => true,
                Target::Frames(.., f) => f.len() > 1,
                Target::Instance(..) => false,
            };
        let Some(media_type) = negotiate(&accept, several) else {
            return Err(Error::not_acceptable(format!(
                "rendered resources are sent as {}{}",
                RENDERED_MEDIA_TYPES.join(", "),
                if several {
                    " inside multipart/related"
                } else {
                    ""
                }
            )));
        };
        let mut opts = options(&get, media_type).map_err(Error::invalid)?;
        if thumbnail && opts.viewport.is_none() {
            opts.viewport = Some(Viewport {
                width: THUMBNAIL_SIDE,
                height: THUMBNAIL_SIDE,
                region: None,
            });
        }
        // (instance, frame) pairs to render, with their Content-Location.
        let (study, series, instance) = match &target {
            Target::Study(s) => (*s, None, None),
            Target::Series(s, se) => (*s, Some(*se), None),
            Target::Instance(s, se, i) | Target::Frames(s, se, i, _) => (*s, Some(*se), Some(*i)),
        };
        let files = self.index.instance_files(study, series, instance)?;
        if files.is_empty() {
            return Err(Error::not_found(format!("nothing to render at {p}")));
        }
        let mut wanted: Vec<(String, String, u32)> = Vec::new();
        match &target {
            Target::Frames(.., list) => wanted.extend(list.iter().map(|&n| {
                (
                    files[0].sop_instance_uid.clone(),
                    files[0].series_uid.clone(),
                    n,
                )
            })),
            Target::Instance(..) => wanted.push((
                files[0].sop_instance_uid.clone(),
                files[0].series_uid.clone(),
                1,
            )),
            _ => {
                let images: Vec<_> = files
                    .iter()
                    .filter_map(|f| {
                        let frames = self
                            .instance_location(&f.sop_instance_uid)
                            .ok()??
                            .frames
                            .count();
                        (frames > 0).then_some((f, frames))
                    })
                    .collect();
                if images.is_empty() {
                    return Err(Error::not_found(format!(
                        "no instance with pixel data at {p}"
                    )));
                }
                if thumbnail {
                    // The middle instance of the first series with images.
                    let first = &images[0].0.series_uid;
                    let in_series: Vec<_> = images
                        .iter()
                        .filter(|(f, _)| &f.series_uid == first)
                        .collect();
                    let (f, _) = in_series[in_series.len() / 2];
                    wanted.push((f.sop_instance_uid.clone(), f.series_uid.clone(), 1));
                } else {
                    for (f, frames) in images {
                        for n in 1..=frames {
                            wanted.push((f.sop_instance_uid.clone(), f.series_uid.clone(), n));
                        }
                    }
                }
            }
        }
        if wanted.len() > MAX_PARTS {
            return Err(Error::new(
                ErrorKind::TooCostly,
                format!(
                    "{} frames to render; at most {MAX_PARTS} a request: ask per series or instance",
                    wanted.len()
                ),
            ));
        }
        let base = base.trim_end_matches('/');
        let mut images = Vec::with_capacity(wanted.len());
        for (sop, se, n) in &wanted {
            let img = self.render_frame(sop, *n, &opts)?;
            images.push((
                format!("{base}/studies/{study}/series/{se}/instances/{sop}/frames/{n}/{kind}"),
                img,
            ));
        }
        if !several {
            let (location, img) = images.pop().expect("one image");
            let mut r = Response::with_body(200, opts.media_type, Body::from_vec(img));
            r.headers.push(("Content-Location".into(), location));
            return Ok(r);
        }
        let mut mp = Multipart::new();
        for (location, img) in images {
            mp.part(
                &[
                    ("Content-Type", opts.media_type),
                    ("Content-Location", &location),
                ],
                [Chunk::from_vec(img)],
            );
        }
        let (boundary, body) = mp.finish();
        let ct = format!(
            "multipart/related; type=\"{}\"; boundary={boundary}",
            opts.media_type
        );
        Ok(Response::with_body(200, &ct, body))
    }

    /// WADO-URI with a `contentType` other than `application/dicom`, or none (PS3.18
    /// 9.4.1: the default is `image/jpeg`): one frame (`frameNumber`, default 1) of the
    /// object, rendered with `windowCenter` / `windowWidth`, scaled to fit `rows` ×
    /// `columns`, `imageQuality` for JPEG. `get` reads the decoded query; `uids` are
    /// study, series and object UIDs, already checked and authorized.
    pub(crate) fn wado_uri_rendered<'p>(
        &self,
        get: &impl Fn(&str) -> Option<&'p str>,
        uids: &[String],
    ) -> Result<Response> {
        let media_type = match get("contentType") {
            None => "image/jpeg",
            Some(list) => {
                let offered = list
                    .split(',')
                    .map(|t| t.split(';').next().unwrap_or("").trim())
                    .find_map(|t| {
                        RENDERED_MEDIA_TYPES
                            .into_iter()
                            .find(|m| *m == t || (t == "image/*" || t == "*/*"))
                    });
                match offered {
                    Some(m) => m,
                    None => {
                        return Err(Error::not_acceptable(format!(
                            "contentType={list}: objects are sent as application/dicom, {}",
                            RENDERED_MEDIA_TYPES.join(", ")
                        )));
                    }
                }
            }
        };
        let parse = |name: &str, lo: f64| -> Result<Option<f64>> {
            match get(name) {
                None => Ok(None),
                Some(v) => v
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= lo)
                    .map(Some)
                    .ok_or_else(|| {
                        Error::invalid(format!("{name}={v} is not a number of at least {lo}"))
                    }),
            }
        };
        let frame = parse("frameNumber", 1.0)?.map_or(1, |x| x as u32);
        let window = match (parse("windowCenter", f64::MIN), parse("windowWidth", 1.0)) {
            (Ok(Some(center)), Ok(Some(width))) => Some(Window {
                center,
                width,
                function: VoiFunction::Linear,
            }),
            (Ok(None), Ok(None)) => None,
            (Err(e), _) | (_, Err(e)) => return Err(e),
            _ => return Err(Error::invalid("windowCenter and windowWidth go together")),
        };
        let side = |name: &str| -> Result<Option<u32>> {
            Ok(parse(name, 1.0)?.map(|x| (x as u32).min(encode::MAX_VIEWPORT)))
        };
        let viewport = match (side("columns"), side("rows")) {
            (Ok(None), Ok(None)) => None,
            (Ok(c), Ok(r)) => Some(Viewport {
                width: c.unwrap_or(encode::MAX_VIEWPORT),
                height: r.unwrap_or(encode::MAX_VIEWPORT),
                region: None,
            }),
            (Err(e), _) | (_, Err(e)) => return Err(e),
        };
        let quality = parse("imageQuality", 1.0)?.map_or(DEFAULT_QUALITY, |q| q.min(100.0) as u8);
        let opts = Options {
            media_type,
            window,
            viewport,
            quality,
        };
        let files = self
            .index
            .instance_files(&uids[0], Some(&uids[1]), Some(&uids[2]))?;
        if files.is_empty() {
            return Err(Error::not_found(format!(
                "no object {} in series {} of study {}",
                uids[2], uids[1], uids[0]
            )));
        }
        let img = self.render_frame(&uids[2], frame, &opts)?;
        Ok(Response::with_body(200, media_type, Body::from_vec(img)))
    }

    /// Frame `n` of instance `sop`, rendered and encoded.
    fn render_frame(&self, sop: &str, n: u32, opts: &Options) -> Result<Vec<u8>> {
        let Some(loc) = self.instance_location(sop)? else {
            return Err(Error::not_found(format!("no instance {sop}")));
        };
        let count = loc.frames.count();
        if count == 0 {
            return Err(Error::not_found(format!(
                "instance {sop} has no pixel data to render"
            )));
        }
        if n > count {
            return Err(Error::not_found(format!(
                "instance {sop} has {count} frame(s); asked for {n}"
            )));
        }
        let Some(image) = self.index.image_pixel_info(sop)? else {
            return Err(Error::not_found(format!(
                "instance {sop} has no image pixel module"
            )));
        };
        // Rendering costs milliseconds even for native frames (windowing, encoding).
        if !pixels::may_work_slowly() {
            return Err(super::decoded::deferred());
        }
        let file = self.files.open(&loc.file)?;
        let unrenderable = |m: String| {
            Error::new(
                ErrorKind::InvalidDicom,
                format!("instance {sop} frame {n} cannot be rendered: {m}"),
            )
        };
        // The frame's bytes, and the header bytes the presentation attributes are read
        // from (every one of them precedes Pixel Data).
        let whole;
        let (frame, header, decoded): (
            std::borrow::Cow<'_, [u8]>,
            std::borrow::Cow<'_, [u8]>,
            bool,
        ) = match &loc.frames {
            FrameTable::Native { offset, .. } => {
                let chunks = frame_chunks(&FrameBytes::File(&file), &loc.frames, n)?;
                let bytes: Vec<u8> = chunks
                    .iter()
                    .flat_map(|c| c.as_bytes().iter().copied())
                    .collect();
                (bytes.into(), file.read(0, *offset)?.into(), false)
            }
            FrameTable::Deflated { .. } => {
                whole = file.whole()?;
                let (data, table) = crate::dicom::inflated_frames(&whole)
                    .map_err(|e| unrenderable(format!("cannot inflate the data set: {e}")))?;
                if n > table.count() {
                    return Err(unrenderable(
                        "the inflated data set holds fewer frames than the index".into(),
                    ));
                }
                let chunks = frame_chunks(&FrameBytes::Inflated(&data), &table, n)?;
                let bytes: Vec<u8> = chunks
                    .iter()
                    .flat_map(|c| c.as_bytes().iter().copied())
                    .collect();
                (bytes.into(), std::borrow::Cow::Borrowed(&whole[..]), false)
            }
            FrameTable::Encapsulated {
                fragments,
                frame_starts,
                ..
            } => {
                let frame =
                    self.decode_fragments(&file, &loc, &image, fragments, frame_starts, n)?;
                let head = fragments.first().map_or(0, |f| f.offset);
                (frame.to_vec().into(), file.read(0, head)?.into(), true)
            }
            FrameTable::None => {
                return Err(Error::not_found(format!(
                    "instance {sop} has no pixel data"
                )));
            }
        };
        let p = pixels::attributes::presentation(
            &header,
            &image,
            &loc.transfer_syntax,
            decoded,
            opts.window,
        )
        .map_err(unrenderable)?;
        let img = window::render(&frame, &p).map_err(unrenderable)?;
        let img = encode::fit(img, opts.viewport).map_err(Error::invalid)?;
        encode::encode(&img, opts.media_type, opts.quality).map_err(Error::internal)
    }
}

/// The decoded query parameters (`InvalidInput` for bad percent-encoding).
fn query_params(query: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match (qido::decode(k), qido::decode(v)) {
            (Ok(k), Ok(v)) => out.push((k, v)),
            _ => return Err(Error::invalid("bad percent-encoding in the query")),
        }
    }
    Ok(out)
}

/// `window`, `viewport`, `quality` (PS3.18 8.3.5.1); `annotation` is accepted and
/// nothing is burnt in.
fn options<'p>(
    get: &impl Fn(&str) -> Option<&'p str>,
    media_type: &'static str,
) -> std::result::Result<Options, String> {
    let window = match get("window") {
        None => None,
        Some(w) => {
            let parts: Vec<&str> = w.split(',').map(str::trim).collect();
            let num = |s: &str| s.parse::<f64>().ok().filter(|x| x.is_finite());
            let (center, width) = match parts.as_slice() {
                [c, wd] | [c, wd, _] => (num(c), num(wd)),
                _ => (None, None),
            };
            let function = match parts.get(2) {
                None => Some(VoiFunction::Linear),
                Some(f) => VoiFunction::parse(f),
            };
            match (center, width, function) {
                (Some(center), Some(width), Some(function)) if width > 0.0 => Some(Window {
                    center,
                    width,
                    function,
                }),
                _ => {
                    return Err(format!(
                        "window={w}: expected center,width[,linear|linear-exact|sigmoid] with a positive width"
                    ));
                }
            }
        }
    };
    let viewport = get("viewport").map(Viewport::parse).transpose()?;
    let quality = match get("quality") {
        None => DEFAULT_QUALITY,
        Some(q) => q
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|q| (1..=100).contains(q))
            .ok_or_else(|| format!("quality={q}: expected 1..100"))?,
    };
    Ok(Options {
        media_type,
        window,
        viewport,
        quality,
    })
}

/// The rendered media type the client prefers: the highest q among `image/jpeg`
/// (the default, also for `*/*` or no `Accept`), `image/png`, `image/gif`; for several
/// images, inside `multipart/related` (its `type` parameter) or a wildcard.
fn negotiate(accept: &AcceptHeader, several: bool) -> Option<&'static str> {
    let mut best: Option<(u16, usize)> = None;
    for r in accept.ranges.iter().filter(|r| r.q > 0) {
        let multipart = r.kind == "multipart" && (r.subtype == "related" || r.subtype == "*");
        let wanted = if multipart {
            r.param("type").unwrap_or("image/jpeg").to_string()
        } else if several && r.kind != "*" {
            continue;
        } else {
            r.essence()
        };
        let (k, s) = wanted.split_once('/').unwrap_or((&wanted, ""));
        for (rank, m) in RENDERED_MEDIA_TYPES.iter().enumerate() {
            let (mk, ms) = m.split_once('/').unwrap_or((m, ""));
            if (k == "*" || k == mk)
                && (s == "*" || s == ms)
                && best.is_none_or(|(q, br)| r.q > q || (r.q == q && rank < br))
            {
                best = Some((r.q, rank));
            }
        }
    }
    best.map(|(_, rank)| RENDERED_MEDIA_TYPES[rank])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neg(a: &str, several: bool) -> Option<&'static str> {
        negotiate(&AcceptHeader::parse(a).unwrap(), several)
    }

    #[test]
    fn media_type_negotiation() {
        assert_eq!(neg("*/*", false), Some("image/jpeg"));
        assert_eq!(neg("image/png", false), Some("image/png"));
        assert_eq!(neg("image/png;q=0.5, image/gif", false), Some("image/gif"));
        assert_eq!(neg("image/*", false), Some("image/jpeg"));
        assert_eq!(neg("application/dicom", false), None);
        assert_eq!(
            neg("image/png", true),
            None,
            "several images need multipart"
        );
        assert_eq!(
            neg("multipart/related; type=\"image/png\"", true),
            Some("image/png")
        );
        assert_eq!(neg("*/*", true), Some("image/jpeg"));
    }

    #[test]
    fn options_are_checked() {
        let get = |q: &'static str| {
            move |n: &str| {
                q.split('&')
                    .find_map(|kv| kv.strip_prefix(n)?.strip_prefix('='))
            }
        };
        let o = options(
            &get("window=40,400,sigmoid&viewport=64,64&quality=50"),
            "image/jpeg",
        )
        .unwrap();
        assert_eq!(o.window.unwrap().function, VoiFunction::Sigmoid);
        assert_eq!(o.quality, 50);
        for bad in [
            "window=40",
            "window=40,0",
            "window=40,400,cubic",
            "quality=0",
            "quality=101",
            "viewport=0,1",
        ] {
            assert!(options(&get(bad), "image/jpeg").is_err(), "{bad}");
        }
    }
}
