//! `sia_engine`: an open engine. The handle C holds is an identifier in a registry, not a
//! pointer to the engine, so that a handle used after `sia_engine_close` (or one never
//! opened) is `SIA_ERR_CLOSED` and never a use-after-free; identifiers are never reused.
//! Each call holds its own reference to the engine, so closing while calls run on other
//! threads lets them finish and frees the engine after the last one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, RwLock};

use crate::config::{config_ref, sia_config};
use crate::error::*;

/// An open engine (opaque). Thread safety: every call taking a `const sia_engine *` may
/// run on any number of threads at once; reads run in parallel and index writes are
/// serialised by SQLite.
pub struct sia_engine {
    _opaque: (),
}

/// Open engines by handle.
static ENGINES: LazyLock<RwLock<HashMap<usize, Arc<sia::Engine>>>> =
    LazyLock::new(|| RwLock::new(HashMap::new()));
/// The next handle: multiples of 16 from 16, so a handle looks like an aligned pointer
/// and is never NULL.
static NEXT: AtomicUsize = AtomicUsize::new(1);

/// The engine behind a handle, or `SIA_ERR_CLOSED`.
pub(crate) fn engine_of(handle: *const sia_engine) -> Result<Arc<sia::Engine>, Failure> {
    if handle.is_null() {
        return Err(Failure::new(SIA_ERR_NULL_ARGUMENT, "engine is NULL"));
    }
    let engines = ENGINES.read().unwrap_or_else(|p| p.into_inner());
    engines.get(&handle.addr()).cloned().ok_or_else(|| {
        Failure::new(
            SIA_ERR_CLOSED,
            "the engine handle is not open (closed already, or not from sia_engine_open)",
        )
    })
}

/// Opens (or creates) the index named in `config` and returns the engine in `*out`.
/// `config` is not consumed; free it when convenient.
///
/// Errors: `SIA_ERR_NULL_ARGUMENT`, `SIA_ERR_IO`, `SIA_ERR_DATABASE` (not a sia index,
/// or one written by a newer sia). Thread safety: any thread.
///
/// # Safety
/// `config` is NULL or a live `sia_config`; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_engine_open(
    config: *const sia_config,
    out: *mut *mut sia_engine,
) -> sia_status {
    boundary(|| {
        check_out(out, "out")?;
        // SAFETY: as the function's contract.
        let config = unsafe { config_ref(config) }?;
        let engine = sia::Engine::open(config.config.clone())?;
        let id = NEXT.fetch_add(1, Ordering::Relaxed) << 4;
        ENGINES
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Arc::new(engine));
        // SAFETY: checked non-NULL above. The handle is an identifier, never dereferenced.
        unsafe { write_out(out, std::ptr::without_provenance_mut(id)) };
        Ok(())
    })
}

/// Closes an engine; NULL, or a handle closed already, is a no-op. Returns at once: calls
/// already running on other threads go on to their end (they hold the engine, which is
/// dropped, its index closed, when the last of them returns); calls made with the handle
/// afterwards return `SIA_ERR_CLOSED`. Opening the same SQLite index again while such a
/// call (an index run) still runs can fail with `SIA_ERR_UNAVAILABLE` (busy) until it
/// ends. Responses and frames obtained from the engine stay valid until
/// freed: they own what they point into.
///
/// Thread safety: any thread.
#[unsafe(no_mangle)]
pub extern "C" fn sia_engine_close(engine: *mut sia_engine) {
    infallible((), || {
        if engine.is_null() {
            return;
        }
        let removed = ENGINES
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&engine.addr());
        // Dropped outside the lock: closing SQLite and unmapping files takes time.
        drop(removed);
    })
}
