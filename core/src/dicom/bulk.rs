//! Finding the value a `BulkDataURI` names: `{tag}` or `{tag}/{item}/{tag}...` from the
//! root of the data set, the same paths [`super::json`] writes.

use std::borrow::Cow;

use super::ScanError;
use super::deflate::inflate_up_to;
use super::elements::{self, DataSetEnd, InDataSet, InSequence};
use super::elements::{Header, MAX_DEPTH, UNDEFINED, decode_header};
use super::frames::big_endian_pixel_unit;
use super::scan::{locate_data_set, skip_undefined_sequence};
use super::source::SliceSource;
use super::tag::{Encoding, Tag, Vr, tags};

/// One step of a bulk data path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// An attribute.
    Tag(Tag),
    /// The n-th item (from 0) of the sequence named by the step before.
    Item(usize),
}

/// Parses `7FE00010` or `00540016/0/00181072`: tags of 8 hex digits alternating with item
/// numbers, ending with a tag.
pub fn parse_path(segments: &[&str]) -> Option<Vec<Step>> {
    if segments.is_empty() || segments.len().is_multiple_of(2) || segments.len() > 2 * MAX_DEPTH + 1
    {
        return None;
    }
    segments
        .iter()
        .enumerate()
        .map(|(k, s)| {
            if k % 2 == 0 {
                let ok = s.len() == 8 && s.bytes().all(|b| b.is_ascii_hexdigit());
                let v = u32::from_str_radix(s, 16).ok().filter(|_| ok)?;
                Some(Step::Tag(Tag((v >> 16) as u16, v as u16)))
            } else {
                let ok = !s.is_empty() && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit());
                s.parse().ok().filter(|_| ok).map(Step::Item)
            }
        })
        .collect()
}

/// What a bulk data path names.
pub enum BulkValue<'a> {
    /// The value's bytes, little endian.
    Bytes {
        /// The bytes (borrowed from the file when they needed no change).
        data: Cow<'a, [u8]>,
        /// Where they are in the file, when borrowed.
        file_offset: Option<u64>,
    },
    /// Encapsulated Pixel Data: served as its frames.
    EncapsulatedPixelData,
}

/// Finds the value at `path` in the DICOM file `bytes`; `Ok(None)` when there is none.
pub fn find<'a>(
    bytes: &'a [u8],
    path: &[Step],
    bits_allocated: u32,
) -> Result<Option<BulkValue<'a>>, ScanError> {
    let start = locate_data_set(&mut SliceSource(bytes))?;
    if start.deflated {
        let inflated = inflate_up_to(
            &mut SliceSource(bytes),
            start.pos,
            bytes.len() as u64,
            super::deflate::MAX_INFLATED_INSTANCE,
        )?;
        let found = find_in(&inflated, 0, start.encoding, path, bits_allocated)?;
        return Ok(found.map(|v| match v {
            BulkValue::Bytes { data, .. } => BulkValue::Bytes {
                data: Cow::Owned(data.into_owned()),
                file_offset: None,
            },
            BulkValue::EncapsulatedPixelData => BulkValue::EncapsulatedPixelData,
        }));
    }
    find_in(bytes, start.pos, start.encoding, path, bits_allocated)
}

fn header(b: &[u8], pos: u64, enc: Encoding) -> Result<Header, ScanError> {
    decode_header(b.get(pos as usize..).unwrap_or(&[]), pos, enc)
}

/// Position after the element whose header is `h` (at `pos`).
fn skip(b: &[u8], h: &Header, enc: Encoding, limit: u64) -> Result<u64, ScanError> {
    if h.len != UNDEFINED {
        let end = h.value_pos + u64::from(h.len);
        return if end <= limit {
            Ok(end)
        } else {
            Err(ScanError::truncated(format!(
                "element {} runs past its end",
                h.tag
            )))
        };
    }
    if h.tag == tags::PIXEL_DATA {
        // Encapsulated fragments: items, then the delimiter.
        let item_enc = Encoding {
            explicit_vr: false,
            big_endian: enc.big_endian,
        };
        let mut p = h.value_pos;
        loop {
            let it = header(b, p, item_enc)?;
            match it.tag {
                tags::SEQUENCE_DELIMITATION => return Ok(it.value_pos),
                tags::ITEM if it.len != UNDEFINED => p = it.value_pos + u64::from(it.len),
                other => {
                    return Err(ScanError::malformed(format!(
                        "unexpected {other} in pixel data"
                    )));
                }
            }
        }
    }
    let nested = if h.vr == Some(Vr::UN) {
        Encoding::IMPLICIT_LE
    } else {
        enc
    };
    skip_undefined_sequence(b, h.value_pos, nested)
}

fn find_in<'a>(
    b: &'a [u8],
    mut pos: u64,
    mut enc: Encoding,
    path: &[Step],
    bits: u32,
) -> Result<Option<BulkValue<'a>>, ScanError> {
    let mut limit = b.len() as u64;
    let mut delimited = false;
    let mut steps = path.iter();
    let mut depth = 0;
    while let Some(step) = steps.next() {
        let Step::Tag(target) = *step else {
            return Ok(None);
        };
        // Find `target` in the current data set.
        let h = loop {
            if pos >= limit || (depth == 0 && elements::root_ends(pos, limit)) {
                return Ok(None);
            }
            let h = header(b, pos, enc)?;
            if h.tag.0 == 0xFFFE {
                let ends = if delimited {
                    DataSetEnd::Delimiter
                } else {
                    DataSetEnd::Length
                };
                match elements::in_data_set(&h, pos, ends)? {
                    InDataSet::Closes(_) => return Ok(None),
                    InDataSet::Stray(next) => pos = next,
                }
                continue;
            }
            if h.tag == target {
                break h;
            }
            pos = skip(b, &h, enc, limit)?;
        };
        let Some(&Step::Item(index)) = steps.next() else {
            // The last step: the value.
            if h.len == UNDEFINED {
                if h.tag == tags::PIXEL_DATA && depth == 0 {
                    return Ok(Some(BulkValue::EncapsulatedPixelData));
                }
                // A sequence the metadata keeps as its bytes: its items, without the
                // sequence delimiter.
                let end = skip(b, &h, enc, limit)?;
                let raw = &b[h.value_pos as usize..(end - 8) as usize];
                return Ok(Some(BulkValue::Bytes {
                    data: Cow::Borrowed(raw),
                    file_offset: Some(h.value_pos),
                }));
            }
            let end = h.value_pos + u64::from(h.len);
            // `limit` may be an item's declared end, which is not checked against the
            // data: check both.
            if end > limit || end > b.len() as u64 {
                return Err(ScanError::truncated(format!(
                    "element {} runs past its end",
                    h.tag
                )));
            }
            let raw = &b[h.value_pos as usize..end as usize];
            let vr = h.vr.unwrap_or(Vr::UN);
            let unit = match vr {
                _ if !enc.big_endian => 1,
                Vr::OB | Vr::UN => 1,
                _ if h.tag == tags::PIXEL_DATA => big_endian_pixel_unit(bits),
                Vr::OW | Vr::US | Vr::SS | Vr::AT => 2,
                Vr::OF | Vr::OL | Vr::UL | Vr::SL | Vr::FL => 4,
                Vr::OD | Vr::OV | Vr::FD | Vr::SV | Vr::UV => 8,
                _ => 1,
            };
            if unit == 1 {
                return Ok(Some(BulkValue::Bytes {
                    data: Cow::Borrowed(raw),
                    file_offset: Some(h.value_pos),
                }));
            }
            let mut v = raw.to_vec();
            for u in v.chunks_exact_mut(unit) {
                u.reverse();
            }
            return Ok(Some(BulkValue::Bytes {
                data: Cow::Owned(v),
                file_offset: None,
            }));
        };
        // Into item `index` of this sequence.
        let seq_end = if h.len == UNDEFINED {
            None
        } else {
            Some(h.value_pos + u64::from(h.len))
        };
        if h.vr == Some(Vr::UN) && h.len == UNDEFINED {
            enc = Encoding::IMPLICIT_LE;
        }
        let mut p = h.value_pos;
        let mut k = 0;
        loop {
            if seq_end.is_some_and(|e| p >= e) {
                return Ok(None);
            }
            let it = header(b, p, enc)?;
            if let InSequence::End(_) = elements::in_sequence(&it, p, seq_end)? {
                return Ok(None);
            }
            match it.tag {
                tags::ITEM if k == index => {
                    pos = it.value_pos;
                    if it.len == UNDEFINED {
                        delimited = true;
                        limit = seq_end.unwrap_or(b.len() as u64);
                    } else {
                        delimited = false;
                        limit = it.value_pos + u64::from(it.len);
                    }
                    break;
                }
                tags::ITEM if it.len != UNDEFINED => p = it.value_pos + u64::from(it.len),
                tags::ITEM => {
                    // Skip an undefined-length item element by element.
                    p = it.value_pos;
                    loop {
                        let e = header(b, p, enc)?;
                        if e.tag.0 == 0xFFFE {
                            match elements::in_data_set(&e, p, DataSetEnd::Delimiter)? {
                                InDataSet::Closes(next) => {
                                    p = next;
                                    break;
                                }
                                InDataSet::Stray(next) => p = next,
                            }
                            continue;
                        }
                        p = skip(b, &e, enc, b.len() as u64)?;
                    }
                }
                other => {
                    return Err(ScanError::malformed(format!(
                        "expected an item, found {other}"
                    )));
                }
            }
            k += 1;
        }
        depth += 1;
    }
    Ok(None)
}
