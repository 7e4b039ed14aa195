//! DICOMweb: the path grammar, media types and negotiation, and the multipart writer.

pub mod accept;
mod bulkdata;
pub(crate) mod decoded;
pub(crate) mod frames;
pub(crate) mod metadata;
mod multipart;
pub mod qido;
mod refs;
pub(crate) mod rendered;
mod retrieve;
pub(crate) mod search;
mod uri;

pub use accept::{AcceptError, AcceptHeader, MediaRange};
pub use frames::{Frame, Frames};
pub use multipart::Multipart;
pub use refs::{DicomJson, DicomRef};
pub use retrieve::Retrieved;
pub use search::QidoLevel;

use crate::dicom::tag::ts;
use crate::index::search::Level;

/// A DICOMweb resource named by a path under the DICOMweb base.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// A study, series or instance as `multipart/related; type="application/dicom"`.
    Retrieve {
        /// Study Instance UID.
        study: String,
        /// Series Instance UID, for series and instance retrieval.
        series: Option<String>,
        /// SOP Instance UID, for instance retrieval.
        instance: Option<String>,
    },
    /// `.../metadata` of a study, a series or an instance.
    Metadata {
        /// Study Instance UID.
        study: String,
        /// Series Instance UID, for series and instance metadata.
        series: Option<String>,
        /// SOP Instance UID, for instance metadata.
        instance: Option<String>,
    },
    /// `studies/{s}/series/{se}/instances/{i}/frames/{list}`.
    Frames {
        /// Study Instance UID.
        study: String,
        /// Series Instance UID.
        series: String,
        /// SOP Instance UID.
        instance: String,
        /// Frame numbers, 1-based, in the order asked.
        frames: Vec<u32>,
    },
    /// QIDO-RS search at a level, within a study or series given in the path.
    Search {
        /// What is searched for.
        level: crate::index::search::Level,
        /// Study from the path.
        study: Option<String>,
        /// Series from the path.
        series: Option<String>,
    },
    /// `.../instances/{i}/bulkdata/{tag}[/{item}/{tag}...]`, as named by `BulkDataURI`s.
    Bulkdata {
        /// Study Instance UID.
        study: String,
        /// Series Instance UID.
        series: String,
        /// SOP Instance UID.
        instance: String,
        /// The path to the value.
        path: Vec<crate::dicom::bulk::Step>,
    },
    /// Rendered and thumbnail resources, and bulkdata above the instance level (not
    /// served yet).
    Other(String),
}

/// Why a path names no resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteError {
    /// 400 for a malformed path, 404 for a well-formed one that names nothing.
    pub status: u16,
    /// What is wrong.
    pub message: String,
}

fn bad(message: impl Into<String>) -> RouteError {
    RouteError {
        status: 400,
        message: message.into(),
    }
}

/// Whether `s` may name a study, series or instance in a path or query: a DICOM UID, or
/// a non-conformant but safe identifier, by the rule the scanner indexes with
/// ([`crate::dicom::is_safe_uid`]).
pub fn is_uid(s: &str) -> bool {
    crate::dicom::is_safe_uid(s)
}

fn uid(s: &str, what: &str) -> Result<(), RouteError> {
    if is_uid(s) {
        Ok(())
    } else {
        Err(bad(format!("{what} {s:?} is not a valid UID")))
    }
}

/// Parses a frame list (`1,3,2` or `1%2C3`): numbers from 1, no duplicates.
pub fn parse_frame_list(s: &str) -> Result<Vec<u32>, RouteError> {
    let normalised = if s.contains('%') {
        std::borrow::Cow::Owned(s.replace("%2C", ",").replace("%2c", ","))
    } else {
        std::borrow::Cow::Borrowed(s)
    };
    let mut out: Vec<u32> = Vec::new();
    for part in normalised.split(',') {
        if part.is_empty() || part.len() > 10 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(format!(
                "frame list {s:?}: {part:?} is not a frame number"
            )));
        }
        let n: u32 = part
            .parse()
            .map_err(|_| bad(format!("frame number {part} is too large")))?;
        if n == 0 {
            return Err(bad("frame numbers start at 1"));
        }
        if out.contains(&n) {
            return Err(bad(format!("frame {n} is listed twice")));
        }
        out.push(n);
    }
    Ok(out)
}

fn search(level: Level, study: Option<&str>, series: Option<&str>) -> Route {
    Route::Search {
        level,
        study: study.map(str::to_string),
        series: series.map(str::to_string),
    }
}

/// Parses a path relative to the DICOMweb base (no leading slash). Only UIDs (by
/// [`is_uid`]: no `/`, `\`, `..`, `%` or control characters) and the fixed keywords can
/// appear, so no request can name a file.
pub fn parse_path(rest: &str) -> Result<Route, RouteError> {
    let segs: Vec<&str> = rest.split('/').collect();
    if segs.iter().any(|s| s.is_empty() || *s == "." || *s == "..") {
        return Err(bad("empty, '.' or '..' path segment"));
    }
    // Percent-encoding is allowed only for the %2C of a frame list.
    let frame_list_at = (segs.len() == 8 && segs[6] == "frames").then_some(7);
    for (i, s) in segs.iter().enumerate() {
        if s.contains('%') && Some(i) != frame_list_at {
            return Err(bad(
                "percent-encoded characters are not allowed in this path",
            ));
        }
    }
    let not_found = || RouteError {
        status: 404,
        message: format!("no DICOMweb resource at {rest:?}"),
    };
    match segs.as_slice() {
        ["studies"] => Ok(search(Level::Study, None, None)),
        ["series"] => Ok(search(Level::Series, None, None)),
        ["instances"] => Ok(search(Level::Instance, None, None)),
        ["studies", s, rest_ @ ..] => {
            uid(s, "Study Instance UID")?;
            match rest_ {
                [] => Ok(Route::Retrieve {
                    study: s.to_string(),
                    series: None,
                    instance: None,
                }),
                ["metadata"] => Ok(Route::Metadata {
                    study: s.to_string(),
                    series: None,
                    instance: None,
                }),
                ["series"] => Ok(search(Level::Series, Some(s), None)),
                ["instances"] => Ok(search(Level::Instance, Some(s), None)),
                ["rendered"] | ["thumbnail"] | ["bulkdata", ..] | ["pixeldata"] => {
                    Ok(Route::Other(rest.into()))
                }
                ["series", se, more @ ..] => {
                    uid(se, "Series Instance UID")?;
                    match more {
                        [] => Ok(Route::Retrieve {
                            study: s.to_string(),
                            series: Some(se.to_string()),
                            instance: None,
                        }),
                        ["metadata"] => Ok(Route::Metadata {
                            study: s.to_string(),
                            series: Some(se.to_string()),
                            instance: None,
                        }),
                        ["instances"] => Ok(search(Level::Instance, Some(s), Some(se))),
                        ["rendered"] | ["thumbnail"] | ["bulkdata", ..] | ["pixeldata"] => {
                            Ok(Route::Other(rest.into()))
                        }
                        ["instances", i, tail @ ..] => {
                            uid(i, "SOP Instance UID")?;
                            match tail {
                                [] => Ok(Route::Retrieve {
                                    study: s.to_string(),
                                    series: Some(se.to_string()),
                                    instance: Some(i.to_string()),
                                }),
                                ["metadata"] => Ok(Route::Metadata {
                                    study: s.to_string(),
                                    series: Some(se.to_string()),
                                    instance: Some(i.to_string()),
                                }),
                                ["frames", list] => Ok(Route::Frames {
                                    study: s.to_string(),
                                    series: se.to_string(),
                                    instance: i.to_string(),
                                    frames: parse_frame_list(list)?,
                                }),
                                ["frames", _, "rendered"] | ["frames", _, "thumbnail"] => {
                                    Ok(Route::Other(rest.into()))
                                }
                                ["bulkdata", steps @ ..] => {
                                    match crate::dicom::bulk::parse_path(steps) {
                                        Some(path) => Ok(Route::Bulkdata {
                                            study: s.to_string(),
                                            series: se.to_string(),
                                            instance: i.to_string(),
                                            path,
                                        }),
                                        None => Err(bad(
                                            "a bulkdata path is 8-hex-digit tags separated by item numbers",
                                        )),
                                    }
                                }
                                ["rendered"] | ["thumbnail"] | ["pixeldata"] => {
                                    Ok(Route::Other(rest.into()))
                                }
                                _ => Err(not_found()),
                            }
                        }
                        _ => Err(not_found()),
                    }
                }
                _ => Err(not_found()),
            }
        }
        _ => Err(not_found()),
    }
}

/// The media type of frames in a transfer syntax (PS3.18 Table 8.7.3-5); native syntaxes
/// give `application/octet-stream`.
pub fn frame_media_type(transfer_syntax: &str) -> &'static str {
    match transfer_syntax {
        "1.2.840.10008.1.2.4.50"
        | "1.2.840.10008.1.2.4.51"
        | "1.2.840.10008.1.2.4.57"
        | ts::JPEG_LOSSLESS_SV1 => "image/jpeg",
        "1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81" => "image/jls",
        ts::JPEG2000_LOSSLESS | "1.2.840.10008.1.2.4.91" => "image/jp2",
        "1.2.840.10008.1.2.4.92" | "1.2.840.10008.1.2.4.93" => "image/jpx",
        "1.2.840.10008.1.2.4.201" | "1.2.840.10008.1.2.4.202" | "1.2.840.10008.1.2.4.203" => {
            "image/jphc"
        }
        "1.2.840.10008.1.2.4.110" | "1.2.840.10008.1.2.4.111" | "1.2.840.10008.1.2.4.112" => {
            "image/jxl"
        }
        ts::RLE_LOSSLESS => "image/dicom-rle",
        "1.2.840.10008.1.2.4.100" | "1.2.840.10008.1.2.4.101" => "video/mpeg",
        "1.2.840.10008.1.2.4.102"
        | "1.2.840.10008.1.2.4.103"
        | "1.2.840.10008.1.2.4.104"
        | "1.2.840.10008.1.2.4.105"
        | "1.2.840.10008.1.2.4.106" => "video/mp4",
        "1.2.840.10008.1.2.4.107" | "1.2.840.10008.1.2.4.108" => "video/H265",
        _ => "application/octet-stream",
    }
}

/// How a client accepts whole instances (`application/dicom`) in `transfer_syntax`:
/// `Some(true)` inside `multipart/related`, `Some(false)` as a single part, `None` not at
/// all. Without a transfer-syntax parameter, a compressed instance is accepted as it is
/// stored (PS3.18 8.7.3.3 allows that for lossy data; lossless sources that this build
/// decodes were already rewritten to Explicit VR Little Endian by `decoded.rs`).
pub fn accepts_dicom(accept: &AcceptHeader, transfer_syntax: &str) -> Option<bool> {
    let mut best: Option<(u16, bool)> = None;
    for r in accept.ranges.iter().filter(|r| r.q > 0) {
        let multipart = r.kind == "multipart" && (r.subtype == "related" || r.subtype == "*");
        let single = !multipart && r.kind != "*" && r.matches("application/dicom");
        let any = r.kind == "*";
        if !(multipart || single || any) {
            continue;
        }
        if multipart {
            let t = r.param("type").unwrap_or("application/dicom");
            let (k, sub) = t.split_once('/').unwrap_or((t, ""));
            let range = MediaRange {
                kind: k.into(),
                subtype: sub.into(),
                params: Vec::new(),
                q: 0,
            };
            if !range.matches("application/dicom") {
                continue;
            }
        }
        let ts_ok = match r.param("transfer-syntax") {
            None | Some("*") => true,
            Some(uid) => uid == transfer_syntax,
        };
        if ts_ok && best.is_none_or(|(q, _)| r.q > q) {
            best = Some((r.q, !single));
        }
    }
    best.map(|(_, multipart)| multipart)
}

/// A representation the server can send for frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameRepresentation {
    /// Media type of each part (or of the whole body when not multipart).
    pub media_type: &'static str,
    /// Transfer syntax of the bytes.
    pub transfer_syntax: String,
    /// Sent as `multipart/related` (else a single-part body, only for one frame).
    pub multipart: bool,
}

/// Chooses how to send frames of an instance whose pixel data is in `transfer_syntax`
/// (`native`: uncompressed, sent as Explicit VR Little Endian bytes). `None`: nothing the
/// client accepts (406).
pub fn negotiate_frames(
    accept: &AcceptHeader,
    native: bool,
    transfer_syntax: &str,
    frames: usize,
) -> Option<FrameRepresentation> {
    let own_media = if native {
        "application/octet-stream"
    } else {
        frame_media_type(transfer_syntax)
    };
    let own_ts = if native {
        ts::EXPLICIT_VR_LE
    } else {
        transfer_syntax
    };
    // What the server can send, in its order of preference.
    let mut candidates = vec![(own_media, own_ts)];
    if !native && own_media != "application/octet-stream" {
        // Compressed bytes labelled as octet-stream, for clients that ask for that with
        // transfer-syntax=* (OHIF does).
        candidates.push(("application/octet-stream", own_ts));
    }
    let mut best: Option<(u16, usize, FrameRepresentation)> = None;
    for range in accept.ranges.iter().filter(|r| r.q > 0) {
        let is_multipart =
            range.kind == "multipart" && (range.subtype == "related" || range.subtype == "*");
        let any = range.kind == "*";
        for (rank, &(media, ts_uid)) in candidates.iter().enumerate() {
            let (wanted_kind, wanted_subtype, multipart) = if is_multipart {
                let t = range.param("type").unwrap_or("application/octet-stream");
                let mut halves = t.split('/');
                (
                    halves.next().unwrap_or(""),
                    halves.next().unwrap_or(""),
                    true,
                )
            } else if any {
                ("*", "*", true)
            } else {
                (range.kind.as_str(), range.subtype.as_str(), false)
            };
            if !multipart && frames != 1 {
                continue;
            }
            if !accept::type_matches(wanted_kind, wanted_subtype, media) {
                continue;
            }
            let ts_ok = match range.param("transfer-syntax") {
                Some("*") => true,
                Some(uid) => uid == ts_uid,
                // No parameter: the media type's default. For octet-stream that is
                // Explicit VR Little Endian; compressed bytes need an explicit ask.
                None => media != "application/octet-stream" || ts_uid == ts::EXPLICIT_VR_LE || any,
            };
            // A wildcard without a transfer syntax gets the server's own first choice only.
            if !ts_ok || (any && rank > 0) {
                continue;
            }
            let better = match &best {
                None => true,
                Some((q, r, _)) => range.q > *q || (range.q == *q && rank < *r),
            };
            if better {
                best = Some((
                    range.q,
                    rank,
                    FrameRepresentation {
                        media_type: media,
                        transfer_syntax: ts_uid.to_string(),
                        multipart,
                    },
                ));
            }
        }
    }
    best.map(|(_, _, r)| r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neg(accept: &str, native: bool, ts_uid: &str, n: usize) -> Option<FrameRepresentation> {
        negotiate_frames(&AcceptHeader::parse(accept).unwrap(), native, ts_uid, n)
    }

    #[test]
    fn frame_lists() {
        assert_eq!(parse_frame_list("3,1,2").unwrap(), vec![3, 1, 2]);
        assert_eq!(parse_frame_list("1%2C2").unwrap(), vec![1, 2]);
        for bad in ["0", "1,1", "", "1,", "a", "-1", "99999999999", "1 ,2"] {
            assert_eq!(parse_frame_list(bad).unwrap_err().status, 400, "{bad}");
        }
    }

    #[test]
    fn retrieve_paths_name_their_level() {
        let r = parse_path("studies/1.2/series/1.3/instances/1.4").unwrap();
        assert_eq!(
            r,
            Route::Retrieve {
                study: "1.2".into(),
                series: Some("1.3".into()),
                instance: Some("1.4".into())
            }
        );
        let r = parse_path("studies/1.2/series/1.3").unwrap();
        assert_eq!(
            r,
            Route::Retrieve {
                study: "1.2".into(),
                series: Some("1.3".into()),
                instance: None
            }
        );
        let r = parse_path("studies/1.2/series/1.3/instances/1.4/metadata").unwrap();
        assert_eq!(
            r,
            Route::Metadata {
                study: "1.2".into(),
                series: Some("1.3".into()),
                instance: Some("1.4".into())
            }
        );
    }

    #[test]
    fn paths() {
        assert!(matches!(
            parse_path("studies/1.2/series/1.3/instances/1.4/frames/1,2"),
            Ok(Route::Frames { .. })
        ));
        assert_eq!(
            parse_path("studies/1.2/series/../instances")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            parse_path("studies/1.2%2F..%2Fetc").unwrap_err().status,
            400
        );
        // Non-conformant but safe UIDs are names; unsafe ones are 400.
        assert!(parse_path(&format!("studies/{}", "ab12".repeat(16))).is_ok());
        for unsafe_uid in [
            "a\\b",
            "1..2",
            "1.2\u{e9}",
            "1 2",
            "1,2",
            "a?b",
            "a#b",
            "a\"b",
            "\u{1}",
        ] {
            assert_eq!(
                parse_path(&format!("studies/{unsafe_uid}"))
                    .unwrap_err()
                    .status,
                400,
                "{unsafe_uid:?}"
            );
        }
        assert_eq!(parse_path("studies//x").unwrap_err().status, 400);
        assert_eq!(parse_path("patients").unwrap_err().status, 404);
        assert_eq!(
            parse_path(&format!("studies/{}", "1".repeat(65)))
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn native_frames() {
        let r = neg(
            "multipart/related; type=\"application/octet-stream\"",
            true,
            ts::EXPLICIT_VR_BE,
            2,
        )
        .unwrap();
        assert_eq!(
            (r.media_type, r.transfer_syntax.as_str(), r.multipart),
            ("application/octet-stream", ts::EXPLICIT_VR_LE, true)
        );
        assert!(neg("*/*", true, ts::IMPLICIT_VR_LE, 3).unwrap().multipart);
        assert!(
            !neg("application/octet-stream", true, ts::EXPLICIT_VR_LE, 1)
                .unwrap()
                .multipart
        );
        assert!(neg("application/octet-stream", true, ts::EXPLICIT_VR_LE, 2).is_none());
        assert!(
            neg(
                "multipart/related; type=\"image/jpeg\"",
                true,
                ts::EXPLICIT_VR_LE,
                1
            )
            .is_none()
        );
    }

    #[test]
    fn encapsulated_frames() {
        let jpeg = "1.2.840.10008.1.2.4.50";
        assert_eq!(
            neg("multipart/related; type=\"image/jpeg\"", false, jpeg, 1)
                .unwrap()
                .media_type,
            "image/jpeg"
        );
        assert_eq!(neg("*/*", false, jpeg, 1).unwrap().media_type, "image/jpeg");
        // Uncompressed asked for, only compressed available: 406.
        assert!(
            neg(
                "multipart/related; type=\"application/octet-stream\"",
                false,
                jpeg,
                1
            )
            .is_none()
        );
        let ohif = neg(
            "multipart/related; type=application/octet-stream; transfer-syntax=*",
            false,
            jpeg,
            1,
        )
        .unwrap();
        assert_eq!(
            (ohif.media_type, ohif.transfer_syntax.as_str()),
            ("application/octet-stream", jpeg)
        );
        assert!(
            neg(
                "multipart/related; type=\"image/jpeg\"; transfer-syntax=1.2.840.10008.1.2.4.70",
                false,
                jpeg,
                1
            )
            .is_none()
        );
        let rle = neg(
            "multipart/related; type=\"image/x-dicom-rle\"",
            false,
            ts::RLE_LOSSLESS,
            2,
        )
        .unwrap();
        assert_eq!(rle.media_type, "image/dicom-rle");
        // q-values pick the preferred acceptable one.
        let q = neg("multipart/related; type=\"image/jpeg\";q=0.4, multipart/related; type=application/octet-stream; transfer-syntax=*;q=0.9", false, jpeg, 1).unwrap();
        assert_eq!(q.media_type, "application/octet-stream");
        assert!(neg("image/jpeg;q=0", false, jpeg, 1).is_none());
    }
}
