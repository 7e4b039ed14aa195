//! A small DICOM writer: File Meta plus data-set elements in any of the four encodings.
//!
//! `sia demo` writes its synthetic data set with it, and the tests use it to build files
//! that exercise every branch of the scanner (including malformed ones, through the
//! unpadded and raw calls). Elements must be written in ascending tag order.

use super::tag::{Encoding, Tag, Vr, tags};

/// Builds the bytes of a data set.
#[derive(Clone, Debug)]
pub struct DataSetWriter {
    buf: Vec<u8>,
    enc: Encoding,
}

impl DataSetWriter {
    /// An empty data set in the given encoding.
    pub fn new(enc: Encoding) -> Self {
        DataSetWriter {
            buf: Vec::new(),
            enc,
        }
    }

    fn u16(&mut self, v: u16) {
        let b = if self.enc.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.buf.extend_from_slice(&b);
    }

    fn u32(&mut self, v: u32) {
        let b = if self.enc.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.buf.extend_from_slice(&b);
    }

    /// Writes an element header with an explicit length (0xFFFFFFFF for undefined).
    pub fn header(&mut self, tag: Tag, vr: Vr, len: u32) -> &mut Self {
        self.u16(tag.0);
        self.u16(tag.1);
        if tag.0 == 0xFFFE || !self.enc.explicit_vr {
            self.u32(len);
        } else if vr.has_long_length() {
            self.buf.extend_from_slice(vr.as_str().as_bytes());
            self.buf.extend_from_slice(&[0, 0]);
            self.u32(len);
        } else {
            self.buf.extend_from_slice(vr.as_str().as_bytes());
            self.u16(len as u16);
        }
        self
    }

    /// Writes an element, padding an odd-length value to even length as PS3.5 requires
    /// (UI with NUL, other text with a space, binary with a zero byte).
    pub fn element(&mut self, tag: Tag, vr: Vr, value: &[u8]) -> &mut Self {
        if value.len().is_multiple_of(2) {
            return self.element_unpadded(tag, vr, value);
        }
        let pad = match vr {
            Vr::UI | Vr::OB | Vr::UN => 0u8,
            _ => b' ',
        };
        let mut v = Vec::with_capacity(value.len() + 1);
        v.extend_from_slice(value);
        v.push(pad);
        self.element_unpadded(tag, vr, &v)
    }

    /// Writes an element exactly as given (odd lengths included).
    pub fn element_unpadded(&mut self, tag: Tag, vr: Vr, value: &[u8]) -> &mut Self {
        self.header(tag, vr, value.len() as u32);
        self.buf.extend_from_slice(value);
        self
    }

    /// A text or UID element.
    pub fn str(&mut self, tag: Tag, vr: Vr, value: &str) -> &mut Self {
        self.element(tag, vr, value.as_bytes())
    }

    /// A US element.
    pub fn us(&mut self, tag: Tag, value: u16) -> &mut Self {
        let b = if self.enc.big_endian {
            value.to_be_bytes()
        } else {
            value.to_le_bytes()
        };
        self.element(tag, Vr::US, &b)
    }

    /// Starts an undefined-length sequence.
    pub fn sequence_start(&mut self, tag: Tag) -> &mut Self {
        self.header(tag, Vr::SQ, 0xFFFF_FFFF)
    }

    /// Starts an undefined-length item.
    pub fn item_start(&mut self) -> &mut Self {
        self.header(tags::ITEM, Vr::UN, 0xFFFF_FFFF)
    }

    /// Ends an undefined-length item.
    pub fn item_end(&mut self) -> &mut Self {
        self.header(tags::ITEM_DELIMITATION, Vr::UN, 0)
    }

    /// Ends an undefined-length sequence.
    pub fn sequence_end(&mut self) -> &mut Self {
        self.header(tags::SEQUENCE_DELIMITATION, Vr::UN, 0)
    }

    /// Appends bytes as they are.
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self
    }

    /// Native Pixel Data (OW, or OB for 8-bit data), padded to even length.
    pub fn native_pixel_data(&mut self, vr: Vr, data: &[u8]) -> &mut Self {
        self.element(tags::PIXEL_DATA, vr, data)
    }

    /// Encapsulated Pixel Data: a Basic Offset Table item with `basic_offsets`, then one
    /// item per fragment (odd fragments padded), then the sequence delimiter.
    pub fn encapsulated_pixel_data(
        &mut self,
        basic_offsets: &[u32],
        fragments: &[&[u8]],
    ) -> &mut Self {
        self.header(tags::PIXEL_DATA, Vr::OB, 0xFFFF_FFFF);
        self.header(tags::ITEM, Vr::UN, (basic_offsets.len() * 4) as u32);
        for &o in basic_offsets {
            self.u32(o);
        }
        for f in fragments {
            let len = f.len() + f.len() % 2;
            self.header(tags::ITEM, Vr::UN, len as u32);
            self.buf.extend_from_slice(f);
            if f.len() % 2 == 1 {
                self.buf.push(0);
            }
        }
        self.sequence_end()
    }

    /// Drops what was written after the first `len` bytes.
    pub(crate) fn truncate(&mut self, len: usize) {
        self.buf.truncate(len);
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The finished data set.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// The Basic Offset Table for fragments written one or more per frame: the offset of each
/// frame's first item, counted from the first fragment's item tag.
pub fn basic_offsets(frames: &[Vec<&[u8]>]) -> Vec<u32> {
    let mut offsets = Vec::with_capacity(frames.len());
    let mut at = 0u32;
    for frame in frames {
        offsets.push(at);
        for f in frame {
            at += 8 + (f.len() + f.len() % 2) as u32;
        }
    }
    offsets
}

/// A 128-byte preamble, `DICM`, and the File Meta group (Explicit VR Little Endian with
/// its group length), ready to be followed by a data set in `transfer_syntax`.
pub fn file_meta(sop_class_uid: &str, sop_instance_uid: &str, transfer_syntax: &str) -> Vec<u8> {
    let mut group = DataSetWriter::new(Encoding::EXPLICIT_LE);
    group
        .element(Tag(0x0002, 0x0001), Vr::OB, &[0, 1])
        .str(Tag(0x0002, 0x0002), Vr::UI, sop_class_uid)
        .str(Tag(0x0002, 0x0003), Vr::UI, sop_instance_uid)
        .str(Tag(0x0002, 0x0010), Vr::UI, transfer_syntax)
        .str(Tag(0x0002, 0x0012), Vr::UI, IMPLEMENTATION_CLASS_UID)
        .str(Tag(0x0002, 0x0013), Vr::SH, IMPLEMENTATION_VERSION_NAME);
    let body = group.into_bytes();
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    let mut head = DataSetWriter::new(Encoding::EXPLICIT_LE);
    head.element(
        tags::FILE_META_GROUP_LENGTH,
        Vr::UL,
        &(body.len() as u32).to_le_bytes(),
    );
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(&body);
    out
}

/// sia's implementation class UID (under the UUID-derived 2.25 root).
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.191843372707207434866337540224352401841";
/// sia's implementation version name (at most 16 characters).
pub const IMPLEMENTATION_VERSION_NAME: &str = "SIA_0_1";
