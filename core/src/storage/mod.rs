//! Access to indexed files at request time: `pread` into owned buffers (the default), or
//! a bounded cache of memory mappings for hosts that own their storage.
//!
//! Before a file is used its identity (size, mtime, inode) is checked against the index,
//! a cached mapping is re-checked with `stat` on every use, and every `pread` is
//! followed by an `fstat` of the descriptor (a kept descriptor is reused under the rules
//! of [`descriptors`]), so a file changed or removed since indexing gives
//! [`FileError::Changed`] / [`FileError::Gone`] (410 to clients), not stale bytes.
//!
//! Why `pread` is the default: a page of a mapping that lies beyond the end of a file
//! truncated by another process raises SIGBUS when touched, and that touch can happen
//! anywhere — in a frame copy, or in the host writing a mapped [`Chunk`] to a socket
//! long after `handle` returned. A signal kills the host (a PACS, a Python notebook),
//! which no panic boundary can catch, and a library cannot install a SIGBUS handler
//! without taking one over from its host. `pread` turns the same event into a short read
//! (`UnexpectedEof`, answered 410); an NFS/SMB server that goes away becomes an `EIO`
//! (500) instead of a fault. The cost is one copy of each range served (see README,
//! "Read modes").
//!
//! [`ReadMode::Mmap`] is the opt-in for hosts whose files are never truncated or
//! rewritten in place while indexed: written once, and replaced (if ever) by writing a
//! new file and renaming it over the old one — a mapping keeps the old inode alive, so a
//! rename or unlink cannot fault. Frames in their stored syntax are then zero-copy
//! slices of the mapping. Truncating a mapped file in place remains a SIGBUS by design
//! of the operating system; that is the contract the host accepts with `Mmap`.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};

use crate::http::Chunk;

mod descriptors;

use descriptors::{CheckedFile, KeptFiles};

/// How frames are read from files (configuration: `[storage] read_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadMode {
    /// Memory-map files and hand out ranges without copying. Only for storage the host
    /// owns: a file truncated or rewritten in place while mapped raises SIGBUS, which
    /// kills the process. Replacing files by rename and deleting them are safe.
    Mmap,
    /// Read ranges with `pread` into owned buffers (the default): a file truncated,
    /// replaced or unreachable while it is read gives 410 or 500, never a signal.
    #[default]
    Pread,
}

impl std::str::FromStr for ReadMode {
    type Err = String;
    fn from_str(s: &str) -> Result<ReadMode, String> {
        match s {
            "pread" => Ok(ReadMode::Pread),
            "mmap" => Ok(ReadMode::Mmap),
            _ => Err(format!("read mode {s:?} is not \"pread\" or \"mmap\"")),
        }
    }
}

/// What the index says a file is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileIdentity {
    /// Row id in `files`.
    pub id: i64,
    /// Absolute path on this host (a path stored under a storage root is resolved
    /// through this host's root folder).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Inode number; 0 for a file under a storage root, whose inode numbers differ
    /// between mounts: then size and modification time alone identify the file.
    pub inode: u64,
}

#[cfg(test)]
impl FileIdentity {
    /// Writes `bytes` to `path` and returns the identity the index would record for it
    /// under row id `id` (for unit tests of the caches keyed by identity).
    pub(crate) fn written(path: &std::path::Path, id: i64, bytes: &[u8]) -> FileIdentity {
        use std::os::unix::fs::MetadataExt;
        std::fs::write(path, bytes).unwrap();
        let md = std::fs::metadata(path).unwrap();
        FileIdentity {
            id,
            path: path.to_string_lossy().into_owned(),
            size: md.len(),
            mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
            inode: md.ino(),
        }
    }
}

/// Why a file cannot be served. Each variant holds the detail for the host's log (it
/// names the file); [`FileError::client_message`] is what a client may read.
#[derive(Debug)]
pub enum FileError {
    /// The file no longer exists.
    Gone(String),
    /// The file exists but is not the one that was indexed.
    Changed(String),
    /// Reading failed.
    Io(String),
}

impl FileError {
    /// A message for clients: no path, no system error text.
    pub fn client_message(&self) -> &'static str {
        match self {
            FileError::Gone(_) => "the file of this instance was removed since it was indexed",
            FileError::Changed(_) => {
                "the file of this instance changed since it was indexed; run `sia index` again"
            }
            FileError::Io(_) => "the file of this instance cannot be read",
        }
    }

    /// The detail for the host's log (names the file).
    pub fn detail(&self) -> &str {
        match self {
            FileError::Gone(m) | FileError::Changed(m) | FileError::Io(m) => m,
        }
    }
}

impl From<FileError> for crate::Error {
    /// Gone or changed: 410 ([`crate::ErrorKind::Gone`]); unreadable: 500.
    fn from(e: FileError) -> crate::Error {
        let kind = match e {
            FileError::Gone(_) | FileError::Changed(_) => crate::ErrorKind::Gone,
            FileError::Io(_) => crate::ErrorKind::Internal,
        };
        crate::Error::new(kind, e.client_message()).with_detail(e.detail())
    }
}

/// A read-only memory mapping of an indexed file.
pub struct MappedFile {
    map: memmap2::Mmap,
    identity: FileIdentity,
}

impl std::fmt::Debug for MappedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedFile")
            .field("path", &self.identity.path)
            .field("len", &self.map.len())
            .finish()
    }
}

impl MappedFile {
    /// The mapped bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }
}

/// `st_ctime` in nanoseconds: moved by every write, truncation or `utimes`, and not
/// settable by the writer.
fn status_changed_ns(md: &std::fs::Metadata) -> i64 {
    md.ctime()
        .saturating_mul(1_000_000_000)
        .saturating_add(md.ctime_nsec())
}

fn check_metadata(md: &std::fs::Metadata, id: &FileIdentity) -> Result<(), FileError> {
    let mtime = md.mtime() * 1_000_000_000 + md.mtime_nsec();
    if md.len() != id.size || mtime != id.mtime_ns || (id.inode != 0 && md.ino() != id.inode) {
        return Err(FileError::Changed(format!(
            "{} changed since it was indexed (size {} -> {}); run `sia index` again",
            id.path,
            id.size,
            md.len()
        )));
    }
    Ok(())
}

/// Whether the file at `id.path` still has the identity the index recorded (one `stat`).
pub(crate) fn still_indexed(id: &FileIdentity) -> bool {
    std::fs::metadata(&id.path).is_ok_and(|md| check_metadata(&md, id).is_ok())
}

fn check(file: &File, id: &FileIdentity) -> Result<(), FileError> {
    check_metadata(
        &file
            .metadata()
            .map_err(|e| FileError::Io(format!("{}: {e}", id.path)))?,
        id,
    )
}

fn open(id: &FileIdentity) -> Result<File, FileError> {
    crate::dicom::source::open_regular_file(std::path::Path::new(&id.path)).map_err(|e| {
        match e.kind() {
            std::io::ErrorKind::NotFound => {
                FileError::Gone(format!("{} was removed since it was indexed", id.path))
            }
            std::io::ErrorKind::InvalidInput => FileError::Changed(format!(
                "{} is no longer a regular file since it was indexed",
                id.path
            )),
            _ => FileError::Io(format!("{}: {e}", id.path)),
        }
    })
}

/// An opened file a request reads from.
pub enum OpenFile {
    /// A checked mapping.
    Mapped(Arc<MappedFile>),
    /// A checked file for `pread`.
    Pread(PreadFile),
}

/// A file read with `pread`: opened and checked for this request, or kept open from an
/// earlier one (see the `descriptors` module); every read is checked again after it.
pub struct PreadFile {
    file: Arc<CheckedFile>,
    /// Kept from an earlier request: a read that finds it changed is done again on a
    /// freshly opened file, which decides between the bytes and a 410.
    kept: bool,
}

impl PreadFile {
    /// `len` bytes at `start`, checked as [`read_checked`] does; a kept descriptor that
    /// fails is dropped from the cache and the read made again on the path's file.
    fn chunk(&self, start: u64, len: u64) -> Result<Chunk, FileError> {
        match read_checked(&self.file, start, len) {
            Err(_) if self.kept => {
                self.file.mark_stale();
                read_checked(&CheckedFile::open(&self.file.identity)?, start, len)
            }
            read => read,
        }
    }
}

/// `len` bytes of `f` at `start`, then an `fstat` of its descriptor: the size, mtime and
/// status-change time must still be those of the check, else `Changed` (a write
/// between the check and this read, or during it: better a 410 than bytes of two
/// versions). A writer that restores size and mtime still moves the status-change time,
/// which nobody can set back.
fn read_checked(f: &CheckedFile, start: u64, len: u64) -> Result<Chunk, FileError> {
    let id = &f.identity;
    let len = usize::try_from(len).map_err(|_| FileError::Io("range too large".into()))?;
    let buf = pread_exact(&f.file, start, len).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            FileError::Changed(format!("{} is shorter than when indexed", id.path))
        }
        _ => FileError::Io(format!("{}: {e}", id.path)),
    })?;
    let md = f
        .file
        .metadata()
        .map_err(|e| FileError::Io(format!("{}: {e}", id.path)))?;
    check_metadata(&md, id)?;
    if status_changed_ns(&md) != f.ctime_ns {
        return Err(FileError::Changed(format!(
            "{} changed while it was being read",
            id.path
        )));
    }
    Ok(Chunk::from_vec(buf))
}

impl OpenFile {
    /// `len` bytes at `start` as a body chunk (zero-copy when mapped). The caller took
    /// the range from the frame table, which was validated against the indexed size;
    /// the size was re-checked when the file was opened.
    pub fn chunk(&self, start: u64, len: u64) -> Result<Chunk, FileError> {
        match self {
            OpenFile::Mapped(m) => Chunk::mapped(m.clone(), start, len).ok_or_else(|| {
                FileError::Changed(format!(
                    "{}: range beyond the end of the file",
                    m.identity.path
                ))
            }),
            OpenFile::Pread(p) => p.chunk(start, len),
        }
    }

    /// The whole file: borrowed from the mapping, or read (pread mode).
    pub fn whole(&self) -> Result<std::borrow::Cow<'_, [u8]>, FileError> {
        match self {
            OpenFile::Mapped(m) => Ok(std::borrow::Cow::Borrowed(m.bytes())),
            OpenFile::Pread(p) => Ok(std::borrow::Cow::Owned(self.read(0, p.file.identity.size)?)),
        }
    }

    /// The bytes of a range, copied (for frames that must be transformed).
    pub fn read(&self, start: u64, len: u64) -> Result<Vec<u8>, FileError> {
        Ok(self.chunk(start, len)?.into_vec())
    }
}

/// `len` bytes of `f` at `start` in a new buffer, read with `pread` straight into its
/// uninitialised capacity: a frame is read once, not zero-filled and then read (the
/// zero-fill cost as much as the copy). `UnexpectedEof` when the file ends first.
fn pread_exact(f: &File, start: u64, len: usize) -> std::io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    while buf.len() < len {
        let done = buf.len();
        let at = start
            .checked_add(done as u64)
            .and_then(|o| libc::off_t::try_from(o).ok())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        let spare = &mut buf.spare_capacity_mut()[..len - done];
        // SAFETY: `spare` is memory owned by `buf`, writable for `spare.len()` bytes; the
        // kernel writes at most that many and returns how many it wrote (or -1).
        let n = unsafe { libc::pread(f.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len(), at) };
        match n {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n if n < 0 => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            // SAFETY: the kernel initialised the first `n` (> 0, at most `len - done`)
            // bytes of the spare capacity.
            n => unsafe { buf.set_len(done + n as usize) },
        }
    }
    Ok(buf)
}

/// Least-recently-used mappings, keyed by file row id.
#[derive(Default)]
struct MappingLru {
    maps: HashMap<i64, (Arc<MappedFile>, u64)>,
    tick: u64,
}

impl MappingLru {
    fn get(&mut self, id: &FileIdentity) -> Option<Arc<MappedFile>> {
        self.tick += 1;
        let now = self.tick;
        let (m, used) = self
            .maps
            .get_mut(&id.id)
            .filter(|(m, _)| m.identity == *id)?;
        *used = now;
        Some(m.clone())
    }

    fn insert(&mut self, id: i64, m: Arc<MappedFile>, capacity: usize) {
        if self.maps.len() >= capacity
            && let Some((&oldest, _)) = self.maps.iter().min_by_key(|(_, (_, used))| *used)
        {
            // A linear scan: capacity is a few hundred and misses are rare.
            self.maps.remove(&oldest);
        }
        self.tick += 1;
        self.maps.insert(id, (m, self.tick));
    }
}

/// A bounded cache of mappings (read mode `mmap`) or of open descriptors (`pread`).
pub struct FileCache {
    mode: ReadMode,
    capacity: usize,
    lru: Mutex<MappingLru>,
    kept: KeptFiles,
}

impl std::fmt::Debug for FileCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileCache")
            .field("mode", &self.mode)
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl FileCache {
    /// A cache holding at most `capacity` mappings, or in `pread` mode at most
    /// [`descriptors::KEPT_FILES`] open descriptors.
    pub fn new(mode: ReadMode, capacity: usize) -> FileCache {
        FileCache {
            mode,
            capacity: capacity.max(1),
            lru: Mutex::new(MappingLru::default()),
            kept: KeptFiles::default(),
        }
    }

    fn lru(&self) -> std::sync::MutexGuard<'_, MappingLru> {
        self.lru.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens (or reuses) the file, checking it is still the one that was indexed.
    pub fn open(&self, id: &FileIdentity) -> Result<OpenFile, FileError> {
        if self.mode == ReadMode::Pread {
            let (file, kept) = self.kept.open(id)?;
            return Ok(OpenFile::Pread(PreadFile { file, kept }));
        }
        let cached = self.lru().get(id);
        if let Some(m) = cached {
            // The mapped file may have been rewritten, or the path may now name another
            // file. (The mapping keeps no descriptor open, so a study of thousands of
            // instances does not run into the descriptor limit.)
            if std::fs::metadata(&id.path).is_ok_and(|md| check_metadata(&md, id).is_ok()) {
                return Ok(OpenFile::Mapped(m));
            }
            // Stale: drop it and open afresh, which reports what changed.
            self.lru().maps.remove(&id.id);
        }
        let file = open(id)?;
        check(&file, id)?;
        // SAFETY: the mapping is read-only and private to this process. Its contents can
        // change if another process writes the file; sia checks size, mtime and inode
        // before every use and never relies on the bytes for memory safety (they are
        // copied out or handed to the host as plain bytes). Truncation in place by another
        // process after the check can fault: ReadMode::Mmap is an opt-in for hosts whose
        // files are never truncated in place (see the module documentation).
        let map = unsafe { memmap2::Mmap::map(&file) }
            .map_err(|e| FileError::Io(format!("{}: {e}", id.path)))?;
        drop(file);
        let mapped = Arc::new(MappedFile {
            map,
            identity: id.clone(),
        });
        self.lru().insert(id.id, mapped.clone(), self.capacity);
        Ok(OpenFile::Mapped(mapped))
    }
}
