//! The DICOM JSON model (PS3.18 Annex F.2), written straight from a file's bytes.
//!
//! Rules followed: keys are 8 uppercase hex digits in ascending order; no group lengths
//! and no File Meta; PN values are objects with `Alphabetic` / `Ideographic` /
//! `Phonetic`; IS and DS are JSON numbers written with the file's digits (no float
//! round-trip, so no precision is lost) or strings when they are not numbers; AT is 8
//! hex digits; empty values have no `Value`, empty values inside a multi-value are
//! `null`; OB/OD/OF/OL/OV/OW/UN values and Pixel Data are `BulkDataURI`s; sequences are
//! arrays of objects (`{}` for empty items); private creators are kept; text is decoded
//! with the Specific Character Set in force (items may change it).

use super::charset::CharacterSet;
use super::deflate::inflate;
use super::elements::{self, DataSetEnd, InDataSet, InSequence};
use super::elements::{MAX_DEPTH, UNDEFINED, decode_header};
use super::scan::{locate_data_set, skip_undefined_sequence};
use super::source::SliceSource;
use super::tag::{self, Encoding, Tag, Vr, tags};
use super::{ScanError, ScanErrorKind};

/// Where bulk data of the instance is served: `BulkDataURI`s are
/// `{bulkdata_base}/bulkdata/{tag}[/{item}/{tag}...]`.
pub struct JsonContext<'a> {
    /// The instance's WADO-RS URL.
    pub instance_url: &'a str,
}

/// The DICOM JSON object of the instance whose file bytes are `bytes`.
pub fn instance_json(bytes: &[u8], ctx: &JsonContext<'_>) -> Result<Vec<u8>, ScanError> {
    let start = locate_data_set(&mut SliceSource(bytes))?;
    if start.deflated {
        let inflated = inflate(&mut SliceSource(bytes), start.pos, bytes.len() as u64)?;
        let mut w = JsonWriter {
            b: &inflated,
            ctx,
            pixel_signed: false,
        };
        return w.root(0, start.encoding);
    }
    let mut w = JsonWriter {
        b: bytes,
        ctx,
        pixel_signed: false,
    };
    w.root(start.pos, start.encoding)
}

/// Where a data set ends.
#[derive(Clone, Copy)]
enum End {
    /// At the end of the bytes (the root data set).
    Eof,
    /// At this offset (a defined-length item).
    At(u64),
    /// At an Item Delimitation Item (an undefined-length item).
    Delimiter,
}

struct JsonWriter<'b, 'c> {
    b: &'b [u8],
    ctx: &'c JsonContext<'c>,
    /// Pixel Representation 1 seen: "US or SS" attributes are signed.
    pixel_signed: bool,
}

impl<'b> JsonWriter<'b, '_> {
    fn root(&mut self, pos: u64, enc: Encoding) -> Result<Vec<u8>, ScanError> {
        let mut p = pos;
        self.data_set(&mut p, End::Eof, enc, &CharacterSet::default(), "", 0)
    }

    fn value(&self, pos: u64, len: u32, limit: u64, tag: Tag) -> Result<&'b [u8], ScanError> {
        let end = pos + u64::from(len);
        if end > limit {
            return Err(ScanError::truncated(format!(
                "element {tag} at byte {pos} declares {len} bytes but only {} remain",
                limit.saturating_sub(pos)
            )));
        }
        let b: &'b [u8] = self.b;
        Ok(&b[pos as usize..end as usize])
    }

    fn header_at(&self, pos: u64, enc: Encoding) -> Result<super::elements::Header, ScanError> {
        let rest = self.b.get(pos as usize..).unwrap_or(&[]);
        decode_header(rest, pos, enc)
    }

    fn data_set(
        &mut self,
        pos: &mut u64,
        end: End,
        enc: Encoding,
        inherited: &CharacterSet,
        path: &str,
        depth: usize,
    ) -> Result<Vec<u8>, ScanError> {
        if depth > MAX_DEPTH {
            return Err(ScanError::malformed(format!(
                "sequences nested deeper than {MAX_DEPTH} levels"
            )));
        }
        let total = self.b.len() as u64;
        let limit = match end {
            End::At(e) => e,
            _ => total,
        };
        let mut cs = inherited.clone();
        let mut members: Vec<(u32, Vec<u8>)> = Vec::new();
        loop {
            if *pos >= limit || (matches!(end, End::Eof) && elements::root_ends(*pos, limit)) {
                if matches!(end, End::Delimiter) {
                    return Err(ScanError::truncated(
                        "item has no delimiter before the end of the data",
                    ));
                }
                break;
            }
            let h = self.header_at(*pos, enc)?;
            if h.tag.0 == 0xFFFE {
                let ends = match end {
                    End::Delimiter => DataSetEnd::Delimiter,
                    End::Eof | End::At(_) => DataSetEnd::Length,
                };
                match elements::in_data_set(&h, *pos, ends)? {
                    InDataSet::Closes(next) => {
                        *pos = next;
                        break;
                    }
                    // A stray delimiter (seen in the wild): step over it.
                    InDataSet::Stray(next) => {
                        *pos = next;
                        continue;
                    }
                }
            }
            let key = h.tag.as_u32();
            let member_path = if path.is_empty() {
                format!("{key:08X}")
            } else {
                format!("{path}/{key:08X}")
            };
            let mut vr = h.vr.unwrap_or(Vr::UN);
            // Implicit VR: "US or SS" follows Pixel Representation. ("OB or OW" stays OW:
            // native Pixel Data in Implicit VR Little Endian is OW, PS3.5 A.1.)
            if !h.explicit && self.pixel_signed && vr == Vr::US && tag::is_us_or_ss(h.tag) {
                vr = Vr::SS;
            }
            let mut json = Vec::new();
            if h.len == UNDEFINED {
                let is_pixels = matches!(
                    h.tag,
                    tags::PIXEL_DATA | tags::FLOAT_PIXEL_DATA | tags::DOUBLE_FLOAT_PIXEL_DATA
                );
                if is_pixels && depth == 0 {
                    *pos = self.skip_fragments(h.value_pos, enc)?;
                    // Encapsulated Pixel Data is OB (PS3.5 A.4); a VR the file states is
                    // kept, as other readers do.
                    let vr_name = if h.explicit && vr != Vr::UN {
                        vr.as_str()
                    } else {
                        "OB"
                    };
                    write_bulk(&mut json, vr_name, self.ctx.instance_url, &member_path);
                } else if matches!(vr, Vr::SQ | Vr::UN) || h.vr.is_none() {
                    // Undefined-length UN is a sequence in Implicit VR Little Endian.
                    let nested = if vr == Vr::UN {
                        Encoding::IMPLICIT_LE
                    } else {
                        enc
                    };
                    *pos = h.value_pos;
                    let start = *pos;
                    match self.sequence(pos, None, nested, &cs, &member_path, depth) {
                        Ok(items) => write_sequence(&mut json, &items),
                        // Items the scanner stepped over unread (defined-length ones)
                        // that cannot be read: the sequence is kept as its bytes, found
                        // by the scanner's own walk, which the index passed.
                        Err(e) => {
                            *pos = skip_undefined_sequence(self.b, start, nested).map_err(|_| e)?;
                            write_bulk(&mut json, "UN", self.ctx.instance_url, &member_path);
                        }
                    }
                } else {
                    return Err(ScanError::malformed(format!(
                        "element {} (VR {}) at byte {} has undefined length",
                        h.tag,
                        vr.as_str(),
                        *pos
                    )));
                }
            } else {
                let value = self.value(h.value_pos, h.len, limit, h.tag)?;
                let value_end = h.value_pos + u64::from(h.len);
                if vr == Vr::SQ {
                    let mut p = h.value_pos;
                    match self.sequence(&mut p, Some(value_end), enc, &cs, &member_path, depth) {
                        Ok(items) => write_sequence(&mut json, &items),
                        // The scanner steps over a defined-length value unread, so the
                        // index accepts any bytes in it; what cannot be read as items is
                        // kept as those bytes (bulk data), never failing the instance.
                        Err(_) => write_bulk(&mut json, "UN", self.ctx.instance_url, &member_path),
                    }
                } else {
                    if h.tag == tags::SPECIFIC_CHARACTER_SET {
                        cs = CharacterSet::from_value(value);
                    }
                    if h.tag == tags::PIXEL_REPRESENTATION && value.len() >= 2 {
                        let a = [value[0], value[1]];
                        let v = if enc.big_endian {
                            u16::from_be_bytes(a)
                        } else {
                            u16::from_le_bytes(a)
                        };
                        self.pixel_signed = v == 1;
                    }
                    element_json(
                        &mut json,
                        vr,
                        value,
                        enc,
                        &cs,
                        self.ctx.instance_url,
                        &member_path,
                    );
                }
                *pos = value_end;
            }
            // Group lengths and the File Meta group are not part of the model.
            if h.tag.1 != 0x0000 && h.tag.0 != 0x0002 {
                members.push((key, json));
            }
        }
        // A valid data set is already in order; a broken one is put in order, keeping the
        // first of any repeated tag.
        members.sort_by_key(|(k, _)| *k);
        members.dedup_by_key(|(k, _)| *k);
        let mut out =
            Vec::with_capacity(members.iter().map(|(_, j)| j.len() + 12).sum::<usize>() + 2);
        out.push(b'{');
        for (i, (k, j)) in members.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(format!("\"{k:08X}\":").as_bytes());
            out.extend_from_slice(j);
        }
        out.push(b'}');
        Ok(out)
    }

    /// Items of a sequence as a JSON array; `end` is the end of a defined-length value.
    fn sequence(
        &mut self,
        pos: &mut u64,
        end: Option<u64>,
        enc: Encoding,
        cs: &CharacterSet,
        path: &str,
        depth: usize,
    ) -> Result<Vec<u8>, ScanError> {
        let mut out = vec![b'['];
        let mut index = 0usize;
        loop {
            if let Some(e) = end
                && *pos >= e
            {
                break;
            }
            let h = self.header_at(*pos, enc)?;
            match elements::in_sequence(&h, *pos, end)? {
                InSequence::End(next) => {
                    *pos = next;
                    break;
                }
                InSequence::Item => {
                    let item_path = format!("{path}/{index}");
                    let obj = if h.len == UNDEFINED {
                        *pos = h.value_pos;
                        self.data_set(pos, End::Delimiter, enc, cs, &item_path, depth + 1)?
                    } else {
                        let limit = end.unwrap_or(self.b.len() as u64);
                        self.value(h.value_pos, h.len, limit, h.tag)?;
                        let item_end = h.value_pos + u64::from(h.len);
                        let mut p = h.value_pos;
                        let obj = self.data_set(
                            &mut p,
                            End::At(item_end),
                            enc,
                            cs,
                            &item_path,
                            depth + 1,
                        )?;
                        *pos = item_end;
                        obj
                    };
                    if index > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(&obj);
                    index += 1;
                }
            }
        }
        out.push(b']');
        Ok(out)
    }

    /// Skips encapsulated Pixel Data items, by their lengths, to the sequence delimiter.
    fn skip_fragments(&self, mut pos: u64, enc: Encoding) -> Result<u64, ScanError> {
        let item_enc = Encoding {
            explicit_vr: false,
            big_endian: enc.big_endian,
        };
        loop {
            let h = self.header_at(pos, item_enc)?;
            match h.tag {
                tags::SEQUENCE_DELIMITATION => return Ok(h.value_pos),
                tags::ITEM if h.len != UNDEFINED => {
                    self.value(h.value_pos, h.len, self.b.len() as u64, h.tag)?;
                    pos = h.value_pos + u64::from(h.len);
                }
                other => {
                    return Err(ScanError::new(
                        ScanErrorKind::Malformed,
                        format!("expected a pixel data fragment at byte {pos}, found {other}"),
                    ));
                }
            }
        }
    }
}

/// `{"vr":"SQ","Value":[...]}`, without `Value` for an empty sequence.
fn write_sequence(out: &mut Vec<u8>, items: &[u8]) {
    out.extend_from_slice(b"{\"vr\":\"SQ\"");
    if items != b"[]" {
        out.extend_from_slice(b",\"Value\":");
        out.extend_from_slice(items);
    }
    out.push(b'}');
}

fn write_bulk(out: &mut Vec<u8>, vr: &str, base: &str, path: &str) {
    out.extend_from_slice(b"{\"vr\":\"");
    out.extend_from_slice(vr.as_bytes());
    out.extend_from_slice(b"\",\"BulkDataURI\":");
    json_string(out, &format!("{base}/bulkdata/{path}"));
    out.push(b'}');
}

/// One element's `{"vr": ..., "Value": [...]}` (or `BulkDataURI`).
fn element_json(
    out: &mut Vec<u8>,
    vr: Vr,
    value: &[u8],
    enc: Encoding,
    cs: &CharacterSet,
    base: &str,
    path: &str,
) {
    use Vr::*;
    if matches!(vr, OB | OD | OF | OL | OV | OW | UN) {
        if value.is_empty() {
            out.extend_from_slice(format!("{{\"vr\":\"{}\"}}", vr.as_str()).as_bytes());
        } else {
            write_bulk(out, vr.as_str(), base, path);
        }
        return;
    }
    let mut values: Vec<Vec<u8>> = Vec::new();
    match vr {
        US | SS | UL | SL | FL | FD | SV | UV => {
            let size = match vr {
                US | SS => 2,
                UL | SL | FL => 4,
                _ => 8,
            };
            for c in value.chunks_exact(size) {
                let mut a = [0u8; 8];
                a[..size].copy_from_slice(c);
                if enc.big_endian {
                    a[..size].reverse();
                }
                let text = match vr {
                    US => u16::from_le_bytes([a[0], a[1]]).to_string(),
                    SS => i16::from_le_bytes([a[0], a[1]]).to_string(),
                    UL => u32::from_le_bytes([a[0], a[1], a[2], a[3]]).to_string(),
                    SL => i32::from_le_bytes([a[0], a[1], a[2], a[3]]).to_string(),
                    FL => float_json(f64::from(f32::from_le_bytes([a[0], a[1], a[2], a[3]]))),
                    FD => float_json(f64::from_le_bytes(a)),
                    // Beyond 2^53 a JSON number loses precision in most readers: a string.
                    SV => big_int_json(i128::from(i64::from_le_bytes(a))),
                    _ => big_int_json(i128::from(u64::from_le_bytes(a))),
                };
                values.push(text.into_bytes());
            }
        }
        AT => {
            for c in value.chunks_exact(4) {
                let (g, e) = if enc.big_endian {
                    (
                        u16::from_be_bytes([c[0], c[1]]),
                        u16::from_be_bytes([c[2], c[3]]),
                    )
                } else {
                    (
                        u16::from_le_bytes([c[0], c[1]]),
                        u16::from_le_bytes([c[2], c[3]]),
                    )
                };
                let mut s = Vec::new();
                json_string(&mut s, &format!("{g:04X}{e:04X}"));
                values.push(s);
            }
        }
        _ => {
            let texts = text_values(value, vr, cs);
            if texts.len() == 1 && texts[0].is_none() {
                values.clear();
            } else {
                for t in texts {
                    let mut s = Vec::new();
                    match (t, vr) {
                        (None, _) => s.extend_from_slice(b"null"),
                        (Some(t), PN) => person_name_json(&mut s, &t),
                        (Some(t), IS | DS) => match json_number(&t) {
                            Some(n) => s.extend_from_slice(n.as_bytes()),
                            None => json_string(&mut s, &t),
                        },
                        (Some(t), _) => json_string(&mut s, &t),
                    }
                    values.push(s);
                }
            }
        }
    }
    out.extend_from_slice(format!("{{\"vr\":\"{}\"", vr.as_str()).as_bytes());
    if !values.is_empty() {
        out.extend_from_slice(b",\"Value\":[");
        out.extend_from_slice(&values.join(&b','));
        out.push(b']');
    }
    out.push(b'}');
}

/// The values of a text element, decoded and trimmed; empty ones are `None`.
fn text_values(value: &[u8], vr: Vr, cs: &CharacterSet) -> Vec<Option<String>> {
    use Vr::*;
    let single = matches!(vr, LT | ST | UT | UR);
    let parts: Vec<&[u8]> = if single {
        vec![value]
    } else {
        value.split(|&b| b == b'\\').collect()
    };
    parts
        .into_iter()
        .map(|p| {
            let text = if vr.uses_character_set() {
                cs.decode(p, vr == PN)
            } else {
                p.iter().map(|&b| b as char).collect()
            };
            // Leading spaces are significant in LT, ST and UT; trailing padding never is.
            let t = if single {
                text.trim_end_matches([' ', '\0'])
            } else {
                text.trim_matches([' ', '\0'])
            };
            (!t.is_empty()).then(|| t.to_string())
        })
        .collect()
}

/// Appends a PN value as a DICOM JSON person-name object.
pub(crate) fn person_name_json(out: &mut Vec<u8>, pn: &str) {
    let groups: Vec<&str> = pn.splitn(3, '=').collect();
    let mut first = true;
    out.push(b'{');
    for (name, g) in ["Alphabetic", "Ideographic", "Phonetic"].iter().zip(groups) {
        if g.is_empty() {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(format!("\"{name}\":").as_bytes());
        json_string(out, g);
    }
    out.push(b'}');
}

fn float_json(v: f64) -> String {
    if v.is_finite() {
        // Debug gives the shortest text that reads back as the same value.
        format!("{v:?}")
    } else {
        format!("\"{v}\"")
    }
}

fn big_int_json(v: i128) -> String {
    if v.unsigned_abs() <= 1 << 53 {
        v.to_string()
    } else {
        format!("\"{v}\"")
    }
}

/// A decimal or integer string as a JSON number token with the same digits, or `None`
/// when it is not a number (then it is sent as a string, which PS3.18 allows).
///
/// A number beyond the range of a double (`1E400`) is not one either: JSON's grammar
/// allows it, but parsers that read numbers as doubles (serde_json, and JavaScript and
/// Python turn it into an infinity that cannot be written back) reject the whole
/// document, so one corrupt value would make an instance's metadata unreadable.
pub fn json_number(s: &str) -> Option<String> {
    let s = s.trim();
    let (neg, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || (int.is_empty() && frac.is_empty())
    {
        return None;
    }
    let int = int.trim_start_matches('0');
    let mut out = String::with_capacity(s.len() + 1);
    if neg {
        out.push('-');
    }
    out.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    if let Some(e) = exponent {
        let (esign, edigits) = match e.as_bytes().first()? {
            b'-' => ("-", &e[1..]),
            b'+' => ("", &e[1..]),
            _ => ("", e),
        };
        if edigits.is_empty() || !edigits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        out.push('e');
        out.push_str(esign);
        out.push_str(edigits);
    }
    // Rust parses any number of digits and exponent; only the range is in question.
    out.parse::<f64>().ok().filter(|v| v.is_finite())?;
    Some(out)
}

/// Appends `s` as a JSON string.
pub(crate) fn json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_their_digits() {
        assert_eq!(
            json_number("1.23456789012345678901").unwrap(),
            "1.23456789012345678901"
        );
        assert_eq!(json_number(" +007.50 ").unwrap(), "7.50");
        assert_eq!(json_number("-.5").unwrap(), "-0.5");
        assert_eq!(json_number("5.").unwrap(), "5");
        assert_eq!(json_number("1E+05").unwrap(), "1e05");
        assert_eq!(json_number("-0").unwrap(), "-0");
        // Tiny magnitudes are numbers (they read as 0); huge ones are not.
        assert_eq!(json_number("1E-400").unwrap(), "1e-400");
        let huge = "9".repeat(400);
        for bad in [
            "", "abc", "1.2.3", "1e", "--1", ".", "1,5", "NaN", "1E400", "-1e99999", &huge,
        ] {
            assert!(json_number(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn person_names() {
        let mut out = Vec::new();
        person_name_json(&mut out, "Yamada^Tarou=山田^太郎=やまだ^たろう");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"Alphabetic":"Yamada^Tarou","Ideographic":"山田^太郎","Phonetic":"やまだ^たろう"}"#
        );
        let mut out = Vec::new();
        person_name_json(&mut out, "=山田^太郎");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"Ideographic":"山田^太郎"}"#
        );
    }

    #[test]
    fn strings_are_escaped() {
        let mut out = Vec::new();
        json_string(&mut out, "a\"b\\c\u{1}\n");
        assert_eq!(String::from_utf8(out).unwrap(), r#""a\"b\\c\u0001\n""#);
    }
}
