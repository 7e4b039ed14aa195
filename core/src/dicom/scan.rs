//! The header scan: File Meta + data set up to Pixel Data -> [`InstanceRecord`].

use std::path::Path;

use super::deflate::{MAX_INFLATED, MAX_INFLATED_INSTANCE, inflate, inflate_up_to};
use super::elements::{
    self, DataSetEnd, Header, InDataSet, InSequence, MAX_DEPTH, UNDEFINED, decode_header,
};
use super::frames::{Fragment, FrameTable};
use super::record::Found;
pub use super::record::{InstanceRecord, PatientInfo, Scanned, SeriesInfo, StudyInfo};
use super::source::{ByteSource, FileSource, READ_CHUNK, SliceSource};
use super::tag::{self, Encoding, Tag, Vr, tags};
use super::{ScanError, ScanErrorKind};

/// Largest value of a scanned text attribute; larger ones are ignored (kept in the file).
const MAX_TEXT_VALUE: u32 = 64 * 1024;
/// Most fragments in one Pixel Data element (180,000-frame slides have one per frame).
const MAX_FRAGMENTS: usize = 1 << 22;
/// Scans the file at `path`.
pub fn scan_file(path: &Path) -> Result<Scanned, ScanError> {
    let file = super::source::open_regular_file(path).map_err(ScanError::io)?;
    let len = file.metadata().map_err(ScanError::io)?.len();
    scan(&mut FileSource::new(file, len, READ_CHUNK))
}

/// Scans DICOM bytes from any source.
pub fn scan<S: ByteSource>(src: &mut S) -> Result<Scanned, ScanError> {
    let total = src.len();
    let mut w = Walker {
        src,
        total,
        deflated: false,
    };
    let mut found = Found::default();

    let DataSetStart {
        pos,
        encoding,
        deflated,
        transfer_syntax: ts_uid,
    } = w.locate(&mut found)?;

    let pixel = if deflated {
        let inflated = inflate(w.src, pos, total)?;
        let capped = inflated.len() >= MAX_INFLATED;
        let mut inner = Walker {
            src: &mut SliceSource(&inflated),
            total: inflated.len() as u64,
            deflated: true,
        };
        let pixel = inner.data_set(0, encoding, &mut found).map_err(|e| {
            if capped && e.kind() == ScanErrorKind::Truncated {
                ScanError::new(
                    ScanErrorKind::Unsupported,
                    format!(
                        "deflated data set is larger than {} MiB before Pixel Data",
                        MAX_INFLATED >> 20
                    ),
                )
            } else {
                e
            }
        })?;
        pixel.map(|p| PixelData {
            deflated: true,
            ..p
        })
    } else {
        w.data_set(pos, encoding, &mut found)?
    };
    found.into_record(ts_uid, encoding, pixel, w.src)
}

/// The frames of a Deflated Explicit VR Little Endian file: its data set inflated (at
/// most `MAX_INFLATED_INSTANCE` bytes) and the native frame table of its Pixel Data,
/// with offsets into the inflated bytes. The table is built by the same code, and the
/// same frame-count rule, as a native file's at index time.
pub fn inflated_frames(bytes: &[u8]) -> Result<(Vec<u8>, FrameTable), ScanError> {
    let total = bytes.len() as u64;
    let mut src = SliceSource(bytes);
    let mut found = Found::default();
    let start = Walker {
        src: &mut src,
        total,
        deflated: false,
    }
    .locate(&mut found)?;
    if !start.deflated {
        return Err(ScanError::malformed("the data set is not deflated"));
    }
    let inflated = inflate_up_to(&mut src, start.pos, total, MAX_INFLATED_INSTANCE)?;
    if inflated.len() >= MAX_INFLATED_INSTANCE {
        return Err(ScanError::new(
            ScanErrorKind::Unsupported,
            format!(
                "deflated data set inflates past {} MiB",
                MAX_INFLATED_INSTANCE >> 20
            ),
        ));
    }
    let table = {
        let mut inner = SliceSource(&inflated);
        let mut w = Walker {
            src: &mut inner,
            total: inflated.len() as u64,
            deflated: false,
        };
        let pixel = w.data_set(0, start.encoding, &mut found)?;
        match found.into_record(start.transfer_syntax, start.encoding, pixel, &mut inner)? {
            Scanned::Instance(r) => r.frames,
            Scanned::Dicomdir => FrameTable::None,
        }
    };
    match table {
        FrameTable::Native { .. } => Ok((inflated, table)),
        _ => Err(ScanError::malformed(
            "the deflated data set has no native Pixel Data",
        )),
    }
}

/// Pixel Data as found at the end of the root data set.
#[derive(Clone, Debug)]
pub(super) struct PixelData {
    pub(super) tag: Tag,
    pub(super) vr: Option<Vr>,
    pub(super) value_pos: u64,
    /// Defined length (native), or the walked fragments (encapsulated).
    pub(super) layout: PixelLayout,
    pub(super) basic_offsets: Vec<u32>,
    pub(super) deflated: bool,
}

#[derive(Clone, Debug)]
pub(super) enum PixelLayout {
    Native { len: u64 },
    Encapsulated { fragments: Vec<Fragment> },
}

struct Walker<'a, S: ByteSource> {
    src: &'a mut S,
    total: u64,
    /// Walking an inflated data set: Pixel Data is noted but not checked or walked,
    /// since its frames are never served from the file's bytes.
    deflated: bool,
}

/// Where a file's data set starts and how it is encoded.
pub(crate) struct DataSetStart {
    /// Offset of the first data-set element (of the deflated stream when `deflated`).
    pub(crate) pos: u64,
    pub(crate) encoding: Encoding,
    pub(crate) deflated: bool,
    pub(crate) transfer_syntax: String,
}

/// Finds the data set of the DICOM bytes in `src`: reads the File Meta group if there
/// is one and takes the encoding from its transfer syntax, else sniffs it.
pub(crate) fn locate_data_set<S: ByteSource>(src: &mut S) -> Result<DataSetStart, ScanError> {
    let total = src.len();
    Walker {
        src,
        total,
        deflated: false,
    }
    .locate(&mut Found::default())
}

impl<S: ByteSource> Walker<'_, S> {
    fn locate(&mut self, found: &mut Found) -> Result<DataSetStart, ScanError> {
        let total = self.total;
        // File Meta: after a 128-byte preamble + "DICM", after a bare "DICM", or absent.
        let meta_start = if total >= 132 && self.bytes(128, 4)? == b"DICM" {
            Some(132)
        } else if total >= 4 && self.bytes(0, 4)? == b"DICM" {
            Some(4)
        } else if total >= 8 && self.bytes(0, 2)? == [0x02, 0x00] {
            // Meta group without preamble or magic.
            Some(0)
        } else {
            None
        };
        let mut pos = 0;
        if let Some(start) = meta_start {
            pos = self.meta_group(start, found)?;
        }
        let ts = found
            .text(tags::TRANSFER_SYNTAX_UID)
            .map(|s| s.trim_end_matches(['\0', ' ']).to_string());
        Ok(match ts.filter(|t| !t.is_empty()) {
            Some(uid) => {
                let (encoding, deflated) = tag::encoding_of(&uid);
                DataSetStart {
                    pos,
                    encoding,
                    deflated,
                    transfer_syntax: uid,
                }
            }
            None => {
                let encoding = self.sniff(pos, meta_start.is_some())?;
                let uid = match (encoding.explicit_vr, encoding.big_endian) {
                    (false, _) => tag::ts::IMPLICIT_VR_LE,
                    (true, false) => tag::ts::EXPLICIT_VR_LE,
                    (true, true) => tag::ts::EXPLICIT_VR_BE,
                };
                DataSetStart {
                    pos,
                    encoding,
                    deflated: false,
                    transfer_syntax: uid.to_string(),
                }
            }
        })
    }

    fn bytes(&mut self, pos: u64, n: usize) -> Result<&[u8], ScanError> {
        if pos.checked_add(n as u64).is_none_or(|end| end > self.total) {
            return Err(ScanError::truncated(format!(
                "file ends at byte {} inside data needed at {pos}",
                self.total
            )));
        }
        self.src.get(pos, n).map_err(ScanError::io)
    }

    fn header(&mut self, pos: u64, enc: Encoding) -> Result<Header, ScanError> {
        let n = self.total.saturating_sub(pos).min(12) as usize;
        let total = self.total;
        let b = self.bytes(pos, n).map_err(|_| {
            ScanError::truncated(format!(
                "element header at byte {pos} runs past the end of the file ({total} bytes)"
            ))
        })?;
        decode_header(b, pos, enc)
    }

    /// Checks that a defined-length value fits in the file; returns where it ends.
    fn value_end(&self, h: &Header, at: u64) -> Result<u64, ScanError> {
        let end = h.value_pos + u64::from(h.len);
        if end > self.total {
            return Err(ScanError::truncated(format!(
                "element {} at byte {at} declares {} bytes but only {} remain",
                h.tag,
                h.len,
                self.total.saturating_sub(h.value_pos)
            )));
        }
        Ok(end)
    }

    fn meta_group(&mut self, start: u64, found: &mut Found) -> Result<u64, ScanError> {
        // The meta group is Explicit VR Little Endian; a few writers used big endian.
        let enc = if self.total >= start + 2 && self.bytes(start, 2)? == [0x00, 0x02] {
            Encoding::EXPLICIT_BE
        } else {
            Encoding::EXPLICIT_LE
        };
        let mut pos = start;
        while pos + 8 <= self.total {
            let h = self.header(pos, enc)?;
            if h.tag.0 != 0x0002 {
                break;
            }
            if h.len == UNDEFINED {
                return Err(ScanError::malformed(format!(
                    "File Meta element {} has undefined length",
                    h.tag
                )));
            }
            let end = self.value_end(&h, pos)?;
            if matches!(
                h.tag,
                tags::TRANSFER_SYNTAX_UID
                    | tags::MEDIA_STORAGE_SOP_CLASS_UID
                    | tag::tags::FILE_META_GROUP_LENGTH
            ) && h.len <= MAX_TEXT_VALUE
            {
                let v = self.bytes(h.value_pos, h.len as usize)?.to_vec();
                found.put(h.tag, h.vr, v);
            }
            pos = end;
        }
        Ok(pos)
    }

    /// Guesses the encoding of a data set that has no transfer syntax, from its first element.
    fn sniff(&mut self, pos: u64, had_meta: bool) -> Result<Encoding, ScanError> {
        let b = match self.bytes(pos, 8) {
            Ok(b) => b,
            Err(_) if had_meta => {
                return Err(ScanError::truncated("File Meta is followed by no data set"));
            }
            Err(_) => {
                return Err(ScanError::new(
                    ScanErrorKind::NotDicom,
                    "too short to be DICOM",
                ));
            }
        };
        let big_endian = b[0] == 0 && b[1] != 0;
        let group = if big_endian {
            u16::from_be_bytes([b[0], b[1]])
        } else {
            u16::from_le_bytes([b[0], b[1]])
        };
        let explicit_vr = Vr::from_bytes([b[4], b[5]]).is_some();
        let plausible = matches!(group, 0x0000 | 0x0002 | 0x0004 | 0x0008);
        if !had_meta && !plausible {
            return Err(ScanError::new(
                ScanErrorKind::NotDicom,
                "no DICM marker, and the first bytes are not a DICOM element of group 0000-0008",
            ));
        }
        if !had_meta && !explicit_vr {
            // An implicit-VR first element must at least have a length that fits.
            let len = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
            if len != UNDEFINED && pos + 8 + u64::from(len) > self.total {
                return Err(ScanError::new(
                    ScanErrorKind::NotDicom,
                    "no DICM marker, and the first element's length runs past the end",
                ));
            }
        }
        Ok(Encoding {
            explicit_vr,
            big_endian,
        })
    }

    /// Walks the root data set from `pos`, collecting wanted attributes, until Pixel Data
    /// or the end of the data.
    fn data_set(
        &mut self,
        mut pos: u64,
        enc: Encoding,
        found: &mut Found,
    ) -> Result<Option<PixelData>, ScanError> {
        while !elements::root_ends(pos, self.total) {
            let h = self.header(pos, enc)?;
            if h.tag.0 == 0xFFFE {
                // A stray delimiter at the root (a writer bug seen in the wild) is stepped
                // over; an item here is an error (the rules shared by every reader).
                match elements::in_data_set(&h, pos, DataSetEnd::Length)? {
                    InDataSet::Closes(next) | InDataSet::Stray(next) => pos = next,
                }
                continue;
            }
            if h.tag == tags::PIXEL_DATA
                || h.tag == tags::FLOAT_PIXEL_DATA
                || h.tag == tags::DOUBLE_FLOAT_PIXEL_DATA
            {
                return self.pixel_data(pos, h, enc).map(Some);
            }
            if h.len == UNDEFINED {
                let nested = match h.vr {
                    Some(Vr::SQ) => enc,
                    // Undefined-length UN is a sequence encoded Implicit VR Little Endian.
                    Some(Vr::UN) => Encoding::IMPLICIT_LE,
                    None => enc,
                    Some(vr) => {
                        return Err(ScanError::malformed(format!(
                            "element {} (VR {}) at byte {pos} has undefined length",
                            h.tag,
                            vr.as_str()
                        )));
                    }
                };
                if h.tag == tags::DIRECTORY_RECORD_SEQUENCE {
                    found.dicomdir = true;
                }
                pos = self.skip_sequence(h.value_pos, nested)?;
                continue;
            }
            let end = self.value_end(&h, pos)?;
            if h.tag == tags::DIRECTORY_RECORD_SEQUENCE {
                found.dicomdir = true;
            }
            if Found::wants(h.tag) {
                let limit = if matches!(
                    h.tag,
                    tags::EXTENDED_OFFSET_TABLE | tags::EXTENDED_OFFSET_TABLE_LENGTHS
                ) {
                    u32::MAX
                } else {
                    MAX_TEXT_VALUE
                };
                if h.len <= limit {
                    let v = self.bytes(h.value_pos, h.len as usize)?.to_vec();
                    found.put(h.tag, h.vr, v);
                }
            }
            pos = end;
        }
        Ok(None)
    }

    /// Skips an undefined-length sequence whose first item starts at `pos`; returns the
    /// position after its delimiter. Iterative, with a depth limit, so hostile nesting
    /// neither overflows the stack nor loops: every step advances by at least 8 bytes.
    fn skip_sequence(&mut self, mut pos: u64, enc: Encoding) -> Result<u64, ScanError> {
        #[derive(Clone, Copy)]
        enum Frame {
            Sequence(Encoding),
            Item(Encoding),
        }
        let mut stack = vec![Frame::Sequence(enc)];
        while let Some(&top) = stack.last() {
            if stack.len() > MAX_DEPTH {
                return Err(ScanError::malformed(format!(
                    "sequences nested deeper than {MAX_DEPTH} levels at byte {pos}"
                )));
            }
            match top {
                Frame::Sequence(enc) => {
                    let h = self.header(pos, enc)?;
                    match elements::in_sequence(&h, pos, None)? {
                        InSequence::End(next) => {
                            stack.pop();
                            pos = next;
                        }
                        InSequence::Item if h.len == UNDEFINED => {
                            stack.push(Frame::Item(enc));
                            pos = h.value_pos;
                        }
                        InSequence::Item => pos = self.value_end(&h, pos)?,
                    }
                }
                Frame::Item(enc) => {
                    let h = self.header(pos, enc)?;
                    if h.tag.0 == 0xFFFE {
                        match elements::in_data_set(&h, pos, DataSetEnd::Delimiter)? {
                            InDataSet::Closes(next) => {
                                stack.pop();
                                pos = next;
                            }
                            InDataSet::Stray(next) => pos = next,
                        }
                    } else if h.len == UNDEFINED {
                        let nested = match h.vr {
                            Some(Vr::SQ) | None => enc,
                            Some(Vr::UN) => Encoding::IMPLICIT_LE,
                            Some(vr) => {
                                return Err(ScanError::malformed(format!(
                                    "element {} (VR {}) at byte {pos} has undefined length",
                                    h.tag,
                                    vr.as_str()
                                )));
                            }
                        };
                        stack.push(Frame::Sequence(nested));
                        pos = h.value_pos;
                    } else {
                        pos = self.value_end(&h, pos)?;
                    }
                }
            }
        }
        Ok(pos)
    }

    fn pixel_data(&mut self, pos: u64, h: Header, enc: Encoding) -> Result<PixelData, ScanError> {
        let base = PixelData {
            tag: h.tag,
            vr: h.vr,
            value_pos: h.value_pos,
            layout: PixelLayout::Native { len: 0 },
            basic_offsets: Vec::new(),
            deflated: false,
        };
        if self.deflated {
            // The frames are counted from the declared length; the bytes may lie past
            // the part of the stream inflated for the header.
            let layout = if h.len == UNDEFINED {
                PixelLayout::Encapsulated {
                    fragments: Vec::new(),
                }
            } else {
                // When the whole stream was inflated (it is below the cap), the value
                // must fit in it, as in a file: what the index accepts, the metadata and
                // frames can read.
                if (self.total as usize) < MAX_INFLATED {
                    self.value_end(&h, pos)?;
                }
                PixelLayout::Native {
                    len: u64::from(h.len),
                }
            };
            return Ok(PixelData { layout, ..base });
        }
        if h.len != UNDEFINED {
            self.value_end(&h, pos)?;
            return Ok(PixelData {
                layout: PixelLayout::Native {
                    len: u64::from(h.len),
                },
                ..base
            });
        }
        // Encapsulated: a Basic Offset Table item, then fragment items.
        let item_enc = Encoding {
            explicit_vr: false,
            big_endian: enc.big_endian,
        };
        let p = h.value_pos;
        let bot = self.header(p, item_enc)?;
        if bot.tag != tags::ITEM || bot.len == UNDEFINED {
            return Err(ScanError::malformed(format!(
                "encapsulated Pixel Data at byte {pos} does not start with a Basic Offset Table item"
            )));
        }
        let bot_end = self.value_end(&bot, p)?;
        if bot.len % 4 != 0 {
            return Err(ScanError::malformed(format!(
                "Basic Offset Table length {} is not a multiple of 4",
                bot.len
            )));
        }
        let raw = self.bytes(bot.value_pos, bot.len as usize)?;
        let basic_offsets = raw
            .chunks_exact(4)
            .map(|c| {
                let a = [c[0], c[1], c[2], c[3]];
                if enc.big_endian {
                    u32::from_be_bytes(a)
                } else {
                    u32::from_le_bytes(a)
                }
            })
            .collect();
        // Two passes: count, then fill an exact allocation, so hostile runs of empty
        // items cost 16 bytes per 8-byte item and nothing for doubling.
        let count = self.fragments(pos, bot_end, item_enc, |_| {})?;
        let mut fragments = Vec::with_capacity(count);
        self.fragments(pos, bot_end, item_enc, |f| fragments.push(f))?;
        Ok(PixelData {
            layout: PixelLayout::Encapsulated { fragments },
            basic_offsets,
            ..base
        })
    }

    /// Walks the fragment items from `p` to the sequence delimiter, by their lengths
    /// (never by searching for delimiter bytes: JPEG 2000 data can contain FFFE,E0DD).
    fn fragments(
        &mut self,
        pixel_pos: u64,
        mut p: u64,
        item_enc: Encoding,
        mut each: impl FnMut(Fragment),
    ) -> Result<usize, ScanError> {
        let mut n = 0;
        loop {
            let item = self.header(p, item_enc).map_err(|_| {
                ScanError::truncated(format!(
                    "encapsulated Pixel Data at byte {pixel_pos} has no sequence delimiter before the end of the file"
                ))
            })?;
            match item.tag {
                tags::SEQUENCE_DELIMITATION => return Ok(n),
                tags::ITEM if item.len != UNDEFINED => {
                    let end = self.value_end(&item, p)?;
                    if n >= MAX_FRAGMENTS {
                        return Err(ScanError::malformed(format!(
                            "more than {MAX_FRAGMENTS} pixel data fragments"
                        )));
                    }
                    each(Fragment {
                        offset: item.value_pos,
                        len: item.len,
                    });
                    n += 1;
                    p = end;
                }
                other => {
                    return Err(ScanError::malformed(format!(
                        "expected a pixel data fragment at byte {p}, found {other} with length {:#x}",
                        item.len
                    )));
                }
            }
        }
    }
}

/// Skips the undefined-length sequence whose first item is at `pos` in `bytes`; returns
/// the position after its delimiter.
pub(crate) fn skip_undefined_sequence(
    bytes: &[u8],
    pos: u64,
    enc: Encoding,
) -> Result<u64, ScanError> {
    let mut src = SliceSource(bytes);
    let total = bytes.len() as u64;
    Walker {
        src: &mut src,
        total,
        deflated: false,
    }
    .skip_sequence(pos, enc)
}
