//! Deflated Explicit VR Little Endian data sets (PS3.5 A.5): inflating them, bounded.
//!
//! A deflated file's data set is one raw DEFLATE stream (RFC 1951) after the File Meta
//! Information. Every inflate here stops at a cap so that a small hostile file cannot
//! make sia allocate gigabytes (a decompression bomb): [`MAX_INFLATED`] while indexing,
//! where only the header is needed, [`MAX_INFLATED_INSTANCE`] when the whole instance is.

use std::io::Read;

use super::ScanError;
use super::source::{ByteSource, READ_CHUNK};

/// Most a deflated data set may inflate to before Pixel Data (a bound against
/// decompression bombs; real headers are far smaller).
pub(crate) const MAX_INFLATED: usize = 16 * 1024 * 1024;
/// Most a deflated data set may inflate to when all of it is needed: a whole instance
/// sent, its bulk data or its frames served.
pub(crate) const MAX_INFLATED_INSTANCE: usize = 1 << 30;
/// Inflates the deflated data set that starts at `pos`, reading the file in chunks and
/// stopping at [`MAX_INFLATED`] bytes.
pub(crate) fn inflate<S: ByteSource>(
    src: &mut S,
    pos: u64,
    total: u64,
) -> Result<Vec<u8>, ScanError> {
    inflate_up_to(src, pos, total, MAX_INFLATED)
}

/// Inflates at most `limit` bytes of the deflated data set at `pos`.
pub(crate) fn inflate_up_to<S: ByteSource>(
    src: &mut S,
    pos: u64,
    total: u64,
    limit: usize,
) -> Result<Vec<u8>, ScanError> {
    let reader = SourceReader {
        src,
        pos,
        end: total,
    };
    let mut z =
        flate2::read::DeflateDecoder::new(std::io::BufReader::with_capacity(READ_CHUNK, reader));
    let mut out: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    while out.len() < limit {
        let want = chunk.len().min(limit - out.len());
        let n = z.read(&mut chunk[..want]).map_err(|e| {
            ScanError::malformed(format!("deflated data set does not inflate: {e}"))
        })?;
        if n == 0 {
            break;
        }
        if out.capacity() - out.len() < n {
            // Grow by doubling, but never past the cap.
            let target = (out.capacity() * 2).clamp(READ_CHUNK, limit);
            out.reserve_exact(target - out.len());
        }
        out.extend_from_slice(&chunk[..n]);
    }
    Ok(out)
}

/// `Read` over a byte range of a [`ByteSource`].
struct SourceReader<'a, S: ByteSource> {
    src: &'a mut S,
    pos: u64,
    end: u64,
}

impl<S: ByteSource> Read for SourceReader<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.end - self.pos).min(buf.len() as u64) as usize;
        if n == 0 {
            return Ok(0);
        }
        buf[..n].copy_from_slice(self.src.get(self.pos, n)?);
        self.pos += n as u64;
        Ok(n)
    }
}
