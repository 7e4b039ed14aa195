//! The frame table: where each frame's bytes are in the file, found once at index time
//! so that serving a frame is arithmetic plus a slice, with no parsing.

use super::ScanError;
use super::source::ByteSource;

/// One fragment of encapsulated Pixel Data: the value bytes of one item, without its
/// 8-byte item header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// Absolute file offset of the first value byte.
    pub offset: u64,
    /// Value length in bytes.
    pub len: u32,
}

/// How the boundaries between encapsulated frames were found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameBoundaries {
    /// Extended Offset Table (7FE0,0001).
    ExtendedOffsetTable = 1,
    /// A non-empty Basic Offset Table.
    BasicOffsetTable = 2,
    /// As many fragments as frames.
    OneFragmentPerFrame = 3,
    /// One frame made of every fragment.
    SingleFrame = 4,
    /// Fragments that start with a JPEG SOI or J2K SOC marker start a frame.
    MarkerScan = 5,
}

impl FrameBoundaries {
    fn from_u8(v: u8) -> Option<Self> {
        use FrameBoundaries::*;
        Some(match v {
            1 => ExtendedOffsetTable,
            2 => BasicOffsetTable,
            3 => OneFragmentPerFrame,
            4 => SingleFrame,
            5 => MarkerScan,
            _ => return None,
        })
    }
}

/// Where the frames of one instance are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameTable {
    /// No Pixel Data (structured reports, presentation states, ...).
    None,
    /// Native pixel data: frame `i` (0-based) is bits `[i*frame_bits, (i+1)*frame_bits)`
    /// from `offset`. Frames are not padded, so with Bits Allocated 1 a frame may start
    /// inside a byte.
    Native {
        /// File offset of the first Pixel Data value byte.
        offset: u64,
        /// Size of one frame in bits.
        frame_bits: u64,
        /// Number of frames.
        count: u32,
        /// Size of the unit to byte-swap when the file is big endian (2, 4 or 8), else 0.
        swap_unit: u8,
    },
    /// Encapsulated pixel data: frame `i` is the concatenated values of
    /// `fragments[frame_starts[i]..frame_starts[i+1]]`.
    Encapsulated {
        /// Every fragment after the Basic Offset Table item, in file order.
        fragments: Vec<Fragment>,
        /// Index of the first fragment of each frame, plus `fragments.len()` at the end.
        frame_starts: Vec<u32>,
        /// How the boundaries were found.
        boundaries: FrameBoundaries,
    },
    /// Pixel data inside a deflated data set: the bytes exist only after inflating, so
    /// frames cannot be served from the file as they are.
    Deflated {
        /// Number of frames.
        count: u32,
    },
}

impl FrameTable {
    /// Number of frames.
    pub fn count(&self) -> u32 {
        match self {
            FrameTable::None => 0,
            FrameTable::Native { count, .. } | FrameTable::Deflated { count } => *count,
            FrameTable::Encapsulated { frame_starts, .. } => {
                frame_starts.len().saturating_sub(1) as u32
            }
        }
    }

    /// Serialises the table for the index. Layout (little endian), documented because
    /// the Python tests read it:
    /// - Native: `[1, swap_unit, 0, 0]`, u32 count, u64 offset, u64 frame_bits.
    /// - Encapsulated: `[2, boundaries, 0, 0]`, u32 frame count, u32 fragment count,
    ///   then per fragment u64 offset + u32 length, then `count + 1` u32 frame starts.
    /// - Deflated: `[3, 0, 0, 0]`, u32 count.
    /// - None: empty.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            FrameTable::None => {}
            FrameTable::Native {
                offset,
                frame_bits,
                count,
                swap_unit,
            } => {
                out.extend_from_slice(&[1, *swap_unit, 0, 0]);
                out.extend_from_slice(&count.to_le_bytes());
                out.extend_from_slice(&offset.to_le_bytes());
                out.extend_from_slice(&frame_bits.to_le_bytes());
            }
            FrameTable::Encapsulated {
                fragments,
                frame_starts,
                boundaries,
            } => {
                out.reserve(12 + fragments.len() * 12 + frame_starts.len() * 4);
                out.extend_from_slice(&[2, *boundaries as u8, 0, 0]);
                out.extend_from_slice(&(self.count()).to_le_bytes());
                out.extend_from_slice(&(fragments.len() as u32).to_le_bytes());
                for f in fragments {
                    out.extend_from_slice(&f.offset.to_le_bytes());
                    out.extend_from_slice(&f.len.to_le_bytes());
                }
                for s in frame_starts {
                    out.extend_from_slice(&s.to_le_bytes());
                }
            }
            FrameTable::Deflated { count } => {
                out.extend_from_slice(&[3, 0, 0, 0]);
                out.extend_from_slice(&count.to_le_bytes());
            }
        }
        out
    }

    /// Reads a table written by [`FrameTable::to_bytes`], checking every count against
    /// the bytes present (an index file is input too).
    pub fn from_bytes(b: &[u8]) -> Result<FrameTable, String> {
        let bad = || "corrupt frame table in index".to_string();
        if b.is_empty() {
            return Ok(FrameTable::None);
        }
        let u32_at = |o: usize| -> Result<u32, String> {
            b.get(o..o + 4)
                .map(|s| u32::from_le_bytes(s.try_into().unwrap()))
                .ok_or_else(bad)
        };
        let u64_at = |o: usize| -> Result<u64, String> {
            b.get(o..o + 8)
                .map(|s| u64::from_le_bytes(s.try_into().unwrap()))
                .ok_or_else(bad)
        };
        // Reserved bytes must be zero, so that a table that reads back writes the same bytes.
        if b.len() < 4 || b[2] != 0 || b[3] != 0 {
            return Err(bad());
        }
        match b[0] {
            1 if b.len() == 24 && matches!(b[1], 0 | 2 | 4 | 8) => Ok(FrameTable::Native {
                swap_unit: b[1],
                count: u32_at(4)?,
                offset: u64_at(8)?,
                frame_bits: u64_at(16)?,
            }),
            2 => {
                let boundaries =
                    FrameBoundaries::from_u8(*b.get(1).ok_or_else(bad)?).ok_or_else(bad)?;
                let count = u32_at(4)? as usize;
                let nfrag = u32_at(8)? as usize;
                let expected = nfrag
                    .checked_mul(12)
                    .and_then(|f| count.checked_add(1)?.checked_mul(4)?.checked_add(f))
                    .and_then(|v| v.checked_add(12))
                    .ok_or_else(bad)?;
                if b.len() != expected {
                    return Err(bad());
                }
                let mut fragments = Vec::with_capacity(nfrag);
                for i in 0..nfrag {
                    let o = 12 + i * 12;
                    fragments.push(Fragment {
                        offset: u64_at(o)?,
                        len: u32_at(o + 8)?,
                    });
                }
                let base = 12 + nfrag * 12;
                let mut frame_starts = Vec::with_capacity(count + 1);
                for i in 0..=count {
                    frame_starts.push(u32_at(base + i * 4)?);
                }
                let ordered = frame_starts.windows(2).all(|w| w[0] < w[1])
                    && frame_starts.last().is_some_and(|&l| l as usize == nfrag);
                if !ordered {
                    return Err(bad());
                }
                Ok(FrameTable::Encapsulated {
                    fragments,
                    frame_starts,
                    boundaries,
                })
            }
            3 if b.len() == 8 && b[1] == 0 => Ok(FrameTable::Deflated { count: u32_at(4)? }),
            _ => Err(bad()),
        }
    }
}

/// Image attributes the frame arithmetic needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImagePixelInfo {
    /// Rows (0028,0010).
    pub rows: u32,
    /// Columns (0028,0011).
    pub columns: u32,
    /// Samples per Pixel (0028,0002).
    pub samples_per_pixel: u32,
    /// Bits Allocated (0028,0100).
    pub bits_allocated: u32,
    /// Bits Stored (0028,0101).
    pub bits_stored: u32,
    /// Pixel Representation (0028,0103).
    pub pixel_representation: u32,
    /// Photometric Interpretation (0028,0004).
    pub photometric: String,
    /// Planar Configuration (0028,0006).
    pub planar_configuration: u32,
    /// The number of frames, as [`frame_count`] decides it from Number of Frames
    /// (0028,0008) and the pixel data.
    pub frames: u32,
}

impl ImagePixelInfo {
    /// Bits in one native frame. 4:2:2 subsampled colour stores two samples per pixel.
    pub fn native_frame_bits(&self) -> Option<u64> {
        let samples = match self.photometric.as_str() {
            "YBR_FULL_422" | "YBR_PARTIAL_422" => 2,
            _ => u64::from(self.samples_per_pixel.max(1)),
        };
        u64::from(self.rows)
            .checked_mul(u64::from(self.columns))?
            .checked_mul(samples)?
            .checked_mul(u64::from(self.bits_allocated))
    }
}

/// How many frames an instance has: **the one place that decides it**, for native,
/// encapsulated and deflated pixel data alike.
///
/// `declared` is Number of Frames (0028,0008) as read (`None` when the attribute is
/// absent, empty, or not a number); `held` is how many frames the pixel data holds:
/// whole native frames in the value's length, or for encapsulated data the entries of a
/// usable Extended or Basic Offset Table, else the number of fragments (a frame has at
/// least one).
///
/// - absent, empty, not a number, zero or negative: **one frame** (pydicom reads 0 and
///   an empty value as 1; a value that is no number says nothing, and an image has at
///   least one frame);
/// - a positive number up to what the data holds: that number;
/// - more than the data holds: **the frames the data holds** (the ones present can be
///   served; those past the end of the data do not exist);
/// - pixel data holding no whole frame gives 0, and the caller refuses the file.
pub fn frame_count(declared: Option<i64>, held: u64) -> u32 {
    let wanted = match declared {
        Some(n) if n >= 1 => n as u64,
        _ => 1,
    };
    wanted.min(held).min(u64::from(u32::MAX)) as u32
}

/// Bits in one native frame of `image`, refusing dimensions that make no frame.
pub(crate) fn native_frame_bits(image: &ImagePixelInfo) -> Result<u64, ScanError> {
    if image.rows == 0 || image.columns == 0 || image.bits_allocated == 0 {
        return Err(ScanError::malformed(format!(
            "native Pixel Data but Rows={}, Columns={}, Bits Allocated={}",
            image.rows, image.columns, image.bits_allocated
        )));
    }
    image
        .native_frame_bits()
        .filter(|&b| b > 0)
        .ok_or_else(|| ScanError::malformed("image dimensions overflow".to_string()))
}

/// The number of frames of native Pixel Data of `len` bytes, by [`frame_count`]; an
/// error when the value does not hold one whole frame.
pub(crate) fn native_count(
    image: &ImagePixelInfo,
    declared: Option<i64>,
    len: u64,
) -> Result<u32, ScanError> {
    let frame_bits = native_frame_bits(image)?;
    let held = len.saturating_mul(8) / frame_bits;
    let count = frame_count(declared, held);
    if count == 0 {
        return Err(ScanError::malformed(format!(
            "Pixel Data holds {len} bytes but one frame of {}x{}x{} at {} bits needs {}",
            image.rows,
            image.columns,
            image.samples_per_pixel,
            image.bits_allocated,
            frame_bits.div_ceil(8)
        )));
    }
    Ok(count)
}

/// Builds the table of native Pixel Data whose value is `len` bytes at `offset`; the
/// number of frames follows [`frame_count`].
pub(crate) fn native(
    image: &ImagePixelInfo,
    declared: Option<i64>,
    offset: u64,
    len: u64,
    swap_unit: u8,
) -> Result<FrameTable, ScanError> {
    let frame_bits = native_frame_bits(image)?;
    let count = native_count(image, declared, len)?;
    Ok(FrameTable::Native {
        offset,
        frame_bits,
        count,
        swap_unit,
    })
}

/// Offset tables found before or at the start of encapsulated Pixel Data.
pub(crate) struct OffsetTables {
    /// Basic Offset Table values (offsets from the first fragment's item tag).
    pub basic: Vec<u32>,
    /// Extended Offset Table values, and its lengths if present.
    pub extended: Option<(Vec<u64>, Option<Vec<u64>>)>,
}

/// Splits the fragments of encapsulated Pixel Data into frames (as many as
/// [`frame_count`] decides from `declared`), trying the Extended Offset Table, a
/// non-empty Basic Offset Table, one fragment per frame, one frame, and finally
/// start-of-codestream markers, in that order.
pub(crate) fn encapsulated<S: ByteSource>(
    src: &mut S,
    declared: Option<i64>,
    fragments: Vec<Fragment>,
    tables: &OffsetTables,
) -> Result<FrameTable, ScanError> {
    let (frame_starts, boundaries) = frame_starts(src, declared, &fragments, tables)?;
    Ok(FrameTable::Encapsulated {
        fragments,
        frame_starts,
        boundaries,
    })
}

fn frame_starts<S: ByteSource>(
    src: &mut S,
    declared: Option<i64>,
    fragments: &[Fragment],
    tables: &OffsetTables,
) -> Result<(Vec<u32>, FrameBoundaries), ScanError> {
    let n = fragments.len();
    if n == 0 {
        return Err(ScanError::malformed(
            "encapsulated Pixel Data has no fragments".to_string(),
        ));
    }
    if n > u32::MAX as usize - 1 {
        return Err(ScanError::malformed("too many fragments".to_string()));
    }

    // Offsets in both tables count from the first byte of the first fragment's item tag.
    let first_item = fragments[0].offset - 8;
    let index_of = |rel: u64| -> Option<u32> {
        let target = first_item.checked_add(rel)?.checked_add(8)?;
        fragments
            .binary_search_by_key(&target, |f| f.offset)
            .ok()
            .map(|i| i as u32)
    };
    // Frame starts from an offset table: every offset names a fragment, in increasing
    // order from the first; `None` when the table is unusable.
    let from_offsets = |offsets: &mut dyn Iterator<Item = u64>| -> Option<Vec<u32>> {
        let mut starts = Vec::new();
        for rel in offsets {
            let idx = index_of(rel)?;
            if starts.last().is_some_and(|&prev| prev >= idx) {
                return None;
            }
            starts.push(idx);
        }
        if starts.first() != Some(&0) {
            return None;
        }
        starts.push(n as u32);
        Some(starts)
    };
    let extended = tables.extended.as_ref().and_then(|(offsets, lengths)| {
        let starts = from_offsets(&mut offsets.iter().copied())?;
        let lengths_agree = lengths.as_ref().is_none_or(|lens| {
            lens.len() == offsets.len()
                && starts.windows(2).zip(lens).all(|(w, &len)| {
                    fragments[w[0] as usize..w[1] as usize]
                        .iter()
                        .map(|f| u64::from(f.len))
                        .sum::<u64>()
                        == len
                })
        });
        lengths_agree.then_some(starts)
    });
    let basic = if tables.basic.is_empty() {
        None
    } else {
        from_offsets(&mut tables.basic.iter().map(|&o| u64::from(o)))
    };
    // What the data holds: the frames a usable table names, else one per fragment.
    let held = extended
        .as_ref()
        .or(basic.as_ref())
        .map_or(n, |starts| starts.len() - 1);
    let frames = frame_count(declared, held as u64);

    if let Some(starts) = extended.filter(|s| s.len() - 1 == frames as usize) {
        return Ok((starts, FrameBoundaries::ExtendedOffsetTable));
    }
    if let Some(starts) = basic.filter(|s| s.len() - 1 == frames as usize) {
        return Ok((starts, FrameBoundaries::BasicOffsetTable));
    }
    if n == frames as usize {
        return Ok((
            (0..=n as u32).collect(),
            FrameBoundaries::OneFragmentPerFrame,
        ));
    }
    if frames == 1 {
        return Ok((vec![0, n as u32], FrameBoundaries::SingleFrame));
    }
    if n > frames as usize {
        let mut starts = Vec::with_capacity(frames as usize + 1);
        for (i, f) in fragments.iter().enumerate() {
            if f.len >= 2 {
                let head = src.get(f.offset, 2).map_err(ScanError::io)?;
                // JPEG family (incl. JPEG-LS) SOI, or JPEG 2000 / HTJ2K SOC.
                if head == [0xFF, 0xD8] || head == [0xFF, 0x4F] {
                    starts.push(i as u32);
                }
            }
        }
        if starts.len() == frames as usize && starts[0] == 0 {
            starts.push(n as u32);
            return Ok((starts, FrameBoundaries::MarkerScan));
        }
    }
    Err(ScanError::malformed(format!(
        "cannot tell where {frames} frames start among {n} fragments (no usable offset table, no frame markers)"
    )))
}

/// The byte-swap unit of big-endian OW/OF/OD Pixel Data: 16-bit words at least (so
/// 8-bit samples in OW are swapped in pairs), whole samples beyond 16 bits. Checked
/// against pydicom on MR_small_bigendian (16), rtdose_expb (32) and
/// SC_rgb_small_odd_big_endian (8 in OW).
pub(crate) fn big_endian_pixel_unit(bits_allocated: u32) -> usize {
    (bits_allocated as usize / 8).max(2)
}
