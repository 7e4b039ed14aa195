//! Random access to a file's bytes with a bounded buffer.
//!
//! The scanner never trusts a declared length: every access is checked against the
//! source's length first, so a hostile length fails with [`ScanError`](super::ScanError) instead of an
//! allocation. Skipping a value costs nothing; only bytes the scanner looks at are read.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Opens `path` for reading only if it is a regular file, without ever blocking.
///
/// A plain `open(2)` of a FIFO waits for a writer, forever: a file replaced by a FIFO
/// after indexing (or between the walk's `stat` and the scan's open) would hang the
/// request, and with enough such requests every worker of the host. `O_NONBLOCK` makes
/// that open return at once (it changes nothing for a regular file's reads), and the
/// `fstat` after it refuses anything that is not a regular file (FIFO, device, socket,
/// directory) with `InvalidInput`.
pub(crate) fn open_regular_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// Bytes the scanner reads from: a file (read through a window) or memory.
pub trait ByteSource {
    /// Total length in bytes.
    fn len(&self) -> u64;
    /// Whether the source has no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `n` bytes at `offset`. The caller has checked `offset + n <= len()`.
    fn get(&mut self, offset: u64, n: usize) -> io::Result<&[u8]>;
}

/// A byte slice as a source (tests, fuzzing, inflated data sets).
pub struct SliceSource<'a>(pub &'a [u8]);

impl ByteSource for SliceSource<'_> {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    fn get(&mut self, offset: u64, n: usize) -> io::Result<&[u8]> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        self.0
            .get(start..start.saturating_add(n))
            .ok_or_else(|| io::ErrorKind::UnexpectedEof.into())
    }
}

/// A file read through a sliding window with `pread`, so a header scan reads a few
/// kilobytes of a multi-gigabyte file and a value that is skipped is never read.
pub struct FileSource {
    file: File,
    len: u64,
    window: Vec<u8>,
    window_start: u64,
    chunk: usize,
}

impl FileSource {
    /// Wraps an open file of known length; `chunk` is how much one read fetches.
    pub fn new(file: File, len: u64, chunk: usize) -> FileSource {
        FileSource {
            file,
            len,
            window: Vec::new(),
            window_start: 0,
            chunk: chunk.max(4096),
        }
    }
}

impl ByteSource for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn get(&mut self, offset: u64, n: usize) -> io::Result<&[u8]> {
        let end = offset.checked_add(n as u64).filter(|&e| e <= self.len);
        let Some(end) = end else {
            return Err(io::ErrorKind::UnexpectedEof.into());
        };
        let in_window =
            offset >= self.window_start && end <= self.window_start + self.window.len() as u64;
        if !in_window {
            let want = (n.max(self.chunk) as u64).min(self.len - offset) as usize;
            self.window.clear();
            self.window.resize(want, 0);
            let mut filled = 0;
            while filled < want {
                match self
                    .file
                    .read_at(&mut self.window[filled..], offset + filled as u64)
                {
                    // The file shrank since it was measured: a truncation, not a hang.
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(k) => filled += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            self.window_start = offset;
        }
        let start = (offset - self.window_start) as usize;
        Ok(&self.window[start..start + n])
    }
}

/// How much one read of a file fetches; most headers fit in one.
pub(crate) const READ_CHUNK: usize = 64 * 1024;
