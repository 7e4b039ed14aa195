//! Pixel data: decoding compressed frames (through the dicom-rs codecs), and the bounds
//! around it — a size check before any allocation, a per-request cap, a bounded number
//! of decodes at once and a byte-bounded cache of decoded frames.
//!
//! Frames in their stored syntax never come here: they are served from the frame table
//! without parsing (`router.rs`). This module is used when a client asks for what the
//! file does not hold: uncompressed frames of a compressed instance (PS3.18 8.7.3.5),
//! rendered images and thumbnails (PS3.18 10.4).

pub(crate) mod attributes;
mod cache;
mod codestream;
mod decode;
pub mod encode;
mod jpeg12;
mod pool;
mod rle32;
pub mod syntax;
pub mod window;

use std::sync::Arc;
use std::time::Duration;

pub use decode::{decode_frame, decoded_frame_len, decoded_photometric};

use crate::dicom::ImagePixelInfo;
use crate::storage::{FileError, FileIdentity};

/// Largest decoded frame, in bytes (1 GiB): past this a frame is refused before
/// anything is allocated. A 16-bit 16384 × 16384 whole-slide tile plane is 512 MiB.
pub const MAX_FRAME_BYTES: u64 = 1 << 30;
/// Most decoded bytes one request may produce (frames answered together), 1 GiB.
pub const MAX_REQUEST_BYTES: u64 = 1 << 30;
/// Default bound of the decoded-frame cache, 256 MiB.
pub const DEFAULT_CACHE_BYTES: usize = 256 << 20;

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// This build cannot decode it (no codec for the syntax, or a codestream feature
    /// the codec lacks); a client asking for decoded data gets 406.
    Unsupported(String),
    /// The decoded frame (or request) would exceed the memory cap.
    TooLarge(String),
    /// The codestream is damaged or disagrees with the data set.
    Corrupt(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Unsupported(m) | DecodeError::TooLarge(m) | DecodeError::Corrupt(m) => {
                f.write_str(m)
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why a decoded frame could not be produced for a request.
#[derive(Debug)]
pub(crate) enum FrameFailure {
    /// Decoding failed.
    Decode(DecodeError),
    /// The file could not be read (410 / 500 as for stored frames).
    File(FileError),
    /// Every decode slot stayed busy (503).
    Busy,
    /// The thread asked not to decode ([`quick_only`]); the host answers elsewhere.
    Deferred,
}

/// The engine's decoding state: slots and cache. `Send + Sync`.
#[derive(Debug)]
pub(crate) struct Pixels {
    slots: pool::DecodeSlots,
    cache: cache::FrameCache,
}

impl Pixels {
    /// Half the cores decode at once (at least one), four requests per slot may wait up
    /// to 5 s; `cache_bytes` of decoded frames are kept.
    pub(crate) fn new(cache_bytes: usize) -> Pixels {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let slots = (cores / 2).max(1);
        Pixels {
            slots: pool::DecodeSlots::new(slots, 4 * slots, Duration::from_secs(5)),
            cache: cache::FrameCache::new(cache_bytes),
        }
    }

    /// Frame `n` (1-based) of `file`, decoded: from the cache, else read with `encoded`
    /// and decoded in a slot. The result is [`decode_frame`]'s.
    pub(crate) fn frame(
        &self,
        file: &FileIdentity,
        n: u32,
        transfer_syntax: &str,
        image: &ImagePixelInfo,
        encoded: impl FnOnce() -> Result<Vec<u8>, FileError>,
    ) -> Result<Arc<[u8]>, FrameFailure> {
        let key = cache::key(file, n);
        if let Some(hit) = self.cache.get(&key) {
            return Ok(hit);
        }
        // Refuse what cannot be decoded before reading or waiting for anything.
        if !syntax::decodes(transfer_syntax) {
            return Err(FrameFailure::Decode(DecodeError::Unsupported(format!(
                "sia does not decode transfer syntax {transfer_syntax}"
            ))));
        }
        if !may_work_slowly() {
            return Err(FrameFailure::Deferred);
        }
        let bytes = encoded().map_err(FrameFailure::File)?;
        let _slot = self.slots.take().ok_or(FrameFailure::Busy)?;
        let frame: Arc<[u8]> = decode_frame(transfer_syntax, image, &bytes, MAX_FRAME_BYTES)
            .map_err(FrameFailure::Decode)?
            .into();
        self.cache.put(key, frame.clone());
        Ok(frame)
    }
}

thread_local! {
    /// `None` outside [`quick_only`]; inside it, whether slow work was refused.
    static QUICK_ONLY: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with decoding and rendering refused on this thread ([`may_work_slowly`]
/// answers `false` inside it) and returns `f`'s result with whether any such work was
/// refused — then the result is not the answer, and the caller must run the request
/// again where blocking is fine. Used by `Engine::handle_without_decoding`.
pub(crate) fn quick_only<T>(f: impl FnOnce() -> T) -> (T, bool) {
    /// Leaves the mode even if `f` unwinds.
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            QUICK_ONLY.set(None);
        }
    }
    QUICK_ONLY.set(Some(false));
    let reset = Reset;
    let out = f();
    let refused = QUICK_ONLY.get() == Some(true);
    drop(reset);
    (out, refused)
}

/// Whether this thread may start work that takes milliseconds to seconds (a decode, a
/// rendering): `true` except inside [`quick_only`], where the refusal is recorded.
pub(crate) fn may_work_slowly() -> bool {
    match QUICK_ONLY.get() {
        None => true,
        Some(_) => {
            QUICK_ONLY.set(Some(true));
            false
        }
    }
}
