//! Rewriting a file as Explicit VR Little Endian, the only uncompressed transfer syntax
//! DICOMweb allows (PS3.18 8.7.3: Implicit VR Little Endian and Explicit VR Big Endian
//! "shall not be used with Web Services"; deflated data sets are inflated).
//!
//! Files already in Explicit VR Little Endian (or an encapsulated syntax) with a File
//! Meta group need nothing and are sent as they are.

use super::deflate::{MAX_INFLATED_INSTANCE, inflate_up_to};
use super::elements::{self, DataSetEnd, InDataSet, InSequence};
use super::elements::{Header, MAX_DEPTH, UNDEFINED, decode_header};
use super::frames::big_endian_pixel_unit;
use super::scan::{locate_data_set, skip_undefined_sequence};
use super::source::SliceSource;
use super::tag::{Encoding, Tag, Vr, tags, ts};
use super::write::{DataSetWriter, file_meta};
use super::{ScanError, Scanned, scan};

/// What to send for an instance.
pub enum Output {
    /// The file as it is; its transfer syntax.
    AsStored(String),
    /// A rewritten file in Explicit VR Little Endian.
    Rewritten(Vec<u8>),
}

/// Decides whether `bytes` can go out as they are, else rewrites them.
pub fn for_web(bytes: &[u8]) -> Result<Output, ScanError> {
    let start = locate_data_set(&mut SliceSource(bytes))?;
    let has_meta = bytes.len() >= 132 && &bytes[128..132] == b"DICM";
    if has_meta && !start.deflated && start.encoding == Encoding::EXPLICIT_LE {
        return Ok(Output::AsStored(start.transfer_syntax));
    }
    // The new File Meta names the instance; take its identity from a scan.
    let record = match scan(&mut SliceSource(bytes))? {
        Scanned::Instance(r) => r,
        Scanned::Dicomdir => return Err(ScanError::malformed("a DICOMDIR is not an instance")),
    };
    // Encapsulated syntaxes are explicit little endian already; keep them.
    let out_ts = if start.encoding == Encoding::EXPLICIT_LE
        && !start.deflated
        && start.transfer_syntax != ts::DEFLATED_EXPLICIT_VR_LE
    {
        start.transfer_syntax.clone()
    } else {
        ts::EXPLICIT_VR_LE.to_string()
    };
    let mut out = file_meta(&record.sop_class_uid, &record.sop_instance_uid, &out_ts);
    if start.deflated {
        let inflated = inflate_up_to(
            &mut SliceSource(bytes),
            start.pos,
            bytes.len() as u64,
            MAX_INFLATED_INSTANCE,
        )?;
        if inflated.len() >= MAX_INFLATED_INSTANCE {
            return Err(ScanError::malformed(
                "deflated data set inflates past 1 GiB",
            ));
        }
        // Deflated Explicit VR Little Endian inflates to Explicit VR Little Endian.
        out.extend_from_slice(&inflated);
        return Ok(Output::Rewritten(out));
    }
    let swap_pixels = big_endian_pixel_unit(record.image.as_ref().map_or(16, |i| i.bits_allocated));
    let mut t = Rewriter {
        b: bytes,
        src: start.encoding,
        w: DataSetWriter::new(Encoding::EXPLICIT_LE),
        pixel_unit: swap_pixels,
    };
    let mut pos = start.pos;
    t.data_set(&mut pos, None, false, 0)?;
    out.extend_from_slice(t.w.as_bytes());
    Ok(Output::Rewritten(out))
}

struct Rewriter<'b> {
    b: &'b [u8],
    src: Encoding,
    w: DataSetWriter,
    /// Byte-swap unit of big-endian Pixel Data (Bits Allocated / 8).
    pixel_unit: usize,
}

impl<'b> Rewriter<'b> {
    fn header(&self, pos: u64, enc: Encoding) -> Result<Header, ScanError> {
        decode_header(self.b.get(pos as usize..).unwrap_or(&[]), pos, enc)
    }

    fn value(&self, h: &Header, limit: u64) -> Result<&'b [u8], ScanError> {
        let end = h.value_pos + u64::from(h.len);
        if end > limit {
            return Err(ScanError::truncated(format!(
                "element {} declares {} bytes beyond the data",
                h.tag, h.len
            )));
        }
        let b: &'b [u8] = self.b;
        Ok(&b[h.value_pos as usize..end as usize])
    }

    /// Copies a data set from `pos` to `end` (a defined-length item), to an item
    /// delimiter (`delimited`), or to the end of the bytes.
    fn data_set(
        &mut self,
        pos: &mut u64,
        end: Option<u64>,
        delimited: bool,
        depth: usize,
    ) -> Result<(), ScanError> {
        self.data_set_in(pos, end, delimited, depth, self.src)
    }

    fn data_set_in(
        &mut self,
        pos: &mut u64,
        end: Option<u64>,
        delimited: bool,
        depth: usize,
        enc: Encoding,
    ) -> Result<(), ScanError> {
        if depth > MAX_DEPTH {
            return Err(ScanError::malformed("sequences nested too deeply"));
        }
        let limit = end.unwrap_or(self.b.len() as u64);
        loop {
            let root = end.is_none() && !delimited;
            if *pos >= limit || (root && elements::root_ends(*pos, limit)) {
                if delimited {
                    return Err(ScanError::truncated(
                        "item has no delimiter before the end of the data",
                    ));
                }
                return Ok(());
            }
            let h = self.header(*pos, enc)?;
            if h.tag.0 == 0xFFFE {
                let ends = if delimited {
                    DataSetEnd::Delimiter
                } else {
                    DataSetEnd::Length
                };
                match elements::in_data_set(&h, *pos, ends)? {
                    InDataSet::Closes(next) => {
                        *pos = next;
                        return Ok(());
                    }
                    // A stray delimiter: stepped over, and not copied.
                    InDataSet::Stray(next) => {
                        *pos = next;
                        continue;
                    }
                }
            }
            let vr = h.vr.unwrap_or(Vr::UN);
            if h.len == UNDEFINED {
                if h.tag == tags::PIXEL_DATA && depth == 0 {
                    // Encapsulated: only in explicit little endian sources; copy the items.
                    *pos = self.copy_fragments(h.value_pos)?;
                    continue;
                }
                if !(matches!(vr, Vr::SQ | Vr::UN) || h.vr.is_none()) {
                    return Err(ScanError::malformed(format!(
                        "element {} has undefined length",
                        h.tag
                    )));
                }
                let nested = if vr == Vr::UN {
                    Encoding::IMPLICIT_LE
                } else {
                    enc
                };
                *pos = h.value_pos;
                let start = *pos;
                let written = self.w.as_bytes().len();
                if let Err(e) = self.sequence(h.tag, pos, None, depth, nested) {
                    // As the DICOM JSON writer does: kept as its bytes (UN of undefined
                    // length, items and delimiter as they are).
                    let end = skip_undefined_sequence(self.b, start, nested).map_err(|_| e)?;
                    self.w.truncate(written);
                    self.w
                        .header(h.tag, Vr::UN, UNDEFINED)
                        .raw(&self.b[start as usize..end as usize]);
                    *pos = end;
                }
                continue;
            }
            let value = self.value(&h, limit)?;
            let value_end = h.value_pos + u64::from(h.len);
            if vr == Vr::SQ {
                let mut p = h.value_pos;
                let written = self.w.as_bytes().len();
                if self
                    .sequence(h.tag, &mut p, Some(value_end), depth, enc)
                    .is_err()
                {
                    // As the DICOM JSON writer does: a defined-length sequence that cannot
                    // be read as items is kept as its bytes.
                    self.w.truncate(written);
                    self.w.element_unpadded(h.tag, Vr::UN, value);
                }
            } else if h.tag.1 != 0x0000 {
                self.element(h.tag, vr, value, enc);
            }
            *pos = value_end;
        }
    }

    fn sequence(
        &mut self,
        tag: Tag,
        pos: &mut u64,
        end: Option<u64>,
        depth: usize,
        enc: Encoding,
    ) -> Result<(), ScanError> {
        self.w.sequence_start(tag);
        loop {
            if let Some(e) = end
                && *pos >= e
            {
                break;
            }
            let h = self.header(*pos, enc)?;
            match elements::in_sequence(&h, *pos, end)? {
                InSequence::End(next) => {
                    *pos = next;
                    break;
                }
                InSequence::Item => {
                    self.w.item_start();
                    if h.len == UNDEFINED {
                        *pos = h.value_pos;
                        self.data_set_in(pos, None, true, depth + 1, enc)?;
                    } else {
                        let item_end = h.value_pos + u64::from(h.len);
                        self.value(&h, end.unwrap_or(self.b.len() as u64))?;
                        let mut p = h.value_pos;
                        self.data_set_in(&mut p, Some(item_end), false, depth + 1, enc)?;
                        *pos = item_end;
                    }
                    self.w.item_end();
                }
            }
        }
        self.w.sequence_end();
        Ok(())
    }

    fn element(&mut self, tag: Tag, vr: Vr, value: &[u8], enc: Encoding) {
        // A value too long for the 16-bit length of its VR can only be written as UN.
        let vr = if !vr.has_long_length() && value.len() > 0xFFFF {
            Vr::UN
        } else {
            vr
        };
        if !enc.big_endian {
            self.w.element_unpadded(tag, vr, value);
            return;
        }
        let unit = match vr {
            // OB Pixel Data is a byte stream; OW/OF/OD is swapped like the frames.
            Vr::OB | Vr::UN => 1,
            _ if tag == tags::PIXEL_DATA => self.pixel_unit,
            Vr::US | Vr::SS | Vr::OW | Vr::AT => 2,
            Vr::UL | Vr::SL | Vr::FL | Vr::OF | Vr::OL => 4,
            Vr::FD | Vr::OD | Vr::SV | Vr::UV | Vr::OV => 8,
            _ => 1,
        };
        if unit <= 1 {
            self.w.element_unpadded(tag, vr, value);
            return;
        }
        let mut v = value.to_vec();
        for c in v.chunks_exact_mut(unit) {
            c.reverse();
        }
        self.w.element_unpadded(tag, vr, &v);
    }

    fn copy_fragments(&mut self, mut pos: u64) -> Result<u64, ScanError> {
        let item_enc = Encoding {
            explicit_vr: false,
            big_endian: false,
        };
        self.w.header(tags::PIXEL_DATA, Vr::OB, UNDEFINED);
        loop {
            let h = self.header(pos, item_enc)?;
            match h.tag {
                tags::SEQUENCE_DELIMITATION => {
                    self.w.sequence_end();
                    return Ok(h.value_pos);
                }
                tags::ITEM if h.len != UNDEFINED => {
                    let v = self.value(&h, self.b.len() as u64)?;
                    self.w.header(tags::ITEM, Vr::UN, h.len).raw(v);
                    pos = h.value_pos + u64::from(h.len);
                }
                other => {
                    return Err(ScanError::malformed(format!(
                        "expected a pixel data fragment, found {other}"
                    )));
                }
            }
        }
    }
}
