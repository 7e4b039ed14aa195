//! The structural rules every reader of a data set shares: how an element header is
//! decoded (PS3.5 §7.1) and what an item or delimiter tag means where it is met. The
//! scanner, the DICOM JSON writer, the bulk-data finder and the retrieve rewriter all
//! walk elements with [`decode_header`] and decide every (FFFE,xxxx) tag here, so that
//! they are equally tolerant: what the index accepts, every later reader can read.
//!
//! Tolerated, as pydicom reads them: fewer bytes than an element header at the end of the
//! root data set (ignored); a delimiter that closes nothing (a Sequence Delimitation Item
//! inside a data set, an Item Delimitation Item outside an undefined-length item) is
//! stepped over; a Sequence Delimitation Item inside a defined-length sequence ends that
//! sequence, and the walk goes on where the sequence's length says it ends. Everything
//! else out of place is an error.

use super::ScanError;
use super::tag::{self, Encoding, Tag, Vr, tags};

/// The undefined length (PS3.5 §7.1.1): a sequence or item ends at its delimiter.
pub(crate) const UNDEFINED: u32 = 0xFFFF_FFFF;
/// Deepest sequence nesting walked; real files stay below 10.
pub(crate) const MAX_DEPTH: usize = 64;

/// One element header.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header {
    pub(crate) tag: Tag,
    pub(crate) vr: Option<Vr>,
    pub(crate) len: u32,
    pub(crate) value_pos: u64,
    /// The VR was read from the element (else it came from the dictionary).
    pub(crate) explicit: bool,
}

/// Decodes the element header at the start of `b` (the bytes from `pos` on; 8 are
/// needed, 12 for an explicit-VR element with a 32-bit length).
pub(crate) fn decode_header(b: &[u8], pos: u64, enc: Encoding) -> Result<Header, ScanError> {
    let short = || {
        ScanError::truncated(format!(
            "element header at byte {pos} runs past the end of the data"
        ))
    };
    if b.len() < 8 {
        return Err(short());
    }
    let u16_at = |o: usize| {
        let a = [b[o], b[o + 1]];
        if enc.big_endian {
            u16::from_be_bytes(a)
        } else {
            u16::from_le_bytes(a)
        }
    };
    let u32_at = |o: usize| {
        let a = [b[o], b[o + 1], b[o + 2], b[o + 3]];
        if enc.big_endian {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }
    };
    let tag = Tag(u16_at(0), u16_at(2));
    if tag.0 == 0xFFFE {
        return Ok(Header {
            tag,
            vr: None,
            len: u32_at(4),
            value_pos: pos + 8,
            explicit: false,
        });
    }
    if enc.explicit_vr
        && let Some(vr) = Vr::from_bytes([b[4], b[5]])
    {
        if !vr.has_long_length() {
            return Ok(Header {
                tag,
                vr: Some(vr),
                len: u32::from(u16_at(6)),
                value_pos: pos + 8,
                explicit: true,
            });
        }
        if b.len() < 12 {
            return Err(ScanError::truncated(format!(
                "element {tag} at byte {pos} has no room for its length"
            )));
        }
        return Ok(Header {
            tag,
            vr: Some(vr),
            len: u32_at(8),
            value_pos: pos + 12,
            explicit: true,
        });
    }
    // Implicit VR, or an explicit-VR file with an implicitly encoded element (found in
    // the wild for private elements): the VR comes from the dictionary.
    Ok(Header {
        tag,
        vr: tag::dictionary_vr(tag),
        len: u32_at(4),
        value_pos: pos + 8,
        explicit: false,
    })
}

/// How the data set being walked ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DataSetEnd {
    /// The root data set, or a defined-length item: at a known offset.
    Length,
    /// An undefined-length item: at an Item Delimitation Item.
    Delimiter,
}

/// What an (FFFE,xxxx) header met where a data element was expected means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InDataSet {
    /// It closes the data set (the delimiter of an undefined-length item); go on at
    /// the offset.
    Closes(u64),
    /// It closes nothing: step over it to the offset.
    Stray(u64),
}

/// Decides an (FFFE,xxxx) header `h` at byte `at` inside a data set ending as `end`.
pub(crate) fn in_data_set(h: &Header, at: u64, end: DataSetEnd) -> Result<InDataSet, ScanError> {
    match (h.tag, end) {
        (tags::ITEM_DELIMITATION, DataSetEnd::Delimiter) => Ok(InDataSet::Closes(h.value_pos)),
        (tags::ITEM_DELIMITATION, DataSetEnd::Length) | (tags::SEQUENCE_DELIMITATION, _) => {
            Ok(InDataSet::Stray(h.value_pos))
        }
        (other, _) => Err(ScanError::malformed(format!(
            "unexpected {other} inside a data set at byte {at}"
        ))),
    }
}

/// Whether the root data set ends at `pos` of `total` bytes: at the end, or with fewer
/// bytes left than an element header (trailing padding or garbage, which pydicom ignores
/// too).
pub(crate) fn root_ends(pos: u64, total: u64) -> bool {
    total.saturating_sub(pos) < 8
}

/// What comes next in a sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InSequence {
    /// An item starts.
    Item,
    /// The sequence ends; go on at the offset.
    End(u64),
}

/// Decides the header `h` at byte `at` inside a sequence that ends at `end` (defined
/// length) or at its delimiter (`None`).
pub(crate) fn in_sequence(h: &Header, at: u64, end: Option<u64>) -> Result<InSequence, ScanError> {
    match (h.tag, end) {
        (tags::ITEM, _) => Ok(InSequence::Item),
        (tags::SEQUENCE_DELIMITATION, None) => Ok(InSequence::End(h.value_pos)),
        // A stray delimiter in a defined-length sequence: its length says where the
        // data set goes on (pydicom ends the sequence there too).
        (tags::SEQUENCE_DELIMITATION, Some(e)) => Ok(InSequence::End(e.max(h.value_pos))),
        (other, _) => Err(ScanError::malformed(format!(
            "expected an item in a sequence at byte {at}, found {other}"
        ))),
    }
}
