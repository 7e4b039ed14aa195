//! `sia_config`: an engine configuration, read from a TOML file (the format of
//! `sia serve --config`, see the engine's `config` module) or made with defaults, then
//! adjusted (database path, base URL) before `sia_engine_open`.

use std::ffi::{CString, c_char};
use std::path::PathBuf;

use crate::error::*;

/// An engine configuration. Made by `sia_config_new` or `sia_config_from_file`, freed by
/// `sia_config_free`.
///
/// Thread safety: a `const sia_config *` may be read from several threads at once; the
/// setters need exclusive access (as `&mut`).
pub struct sia_config {
    pub(crate) config: sia::Config,
    /// `[server] listen`, NUL-terminated for `sia_config_listen`.
    listen: Option<CString>,
}

impl sia_config {
    fn new(config: sia::Config) -> *mut sia_config {
        let listen = config
            .server
            .listen
            .as_deref()
            .and_then(|l| CString::new(l).ok());
        Box::into_raw(Box::new(sia_config { config, listen }))
    }
}

/// Borrows a configuration argument.
///
/// # Safety
/// `p` is NULL or a live `sia_config` from this library.
pub(crate) unsafe fn config_ref<'a>(p: *const sia_config) -> Result<&'a sia_config, Failure> {
    // SAFETY: non-NULL pointers come from `sia_config::new` and live until freed.
    unsafe { p.as_ref() }.ok_or_else(|| Failure::new(SIA_ERR_NULL_ARGUMENT, "config is NULL"))
}

/// A configuration with the engine's defaults and the SQLite index at `db_path` (created
/// on open when missing). No token checks: every request is served (the local
/// administrator, as `sia get` without `--config`); base URL `http://127.0.0.1:8080`.
///
/// Writes `*out` on success; free it with `sia_config_free`.
/// Errors: `SIA_ERR_NULL_ARGUMENT`, `SIA_ERR_INVALID_UTF8`.
/// Thread safety: any thread.
///
/// # Safety
/// `db_path` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_config_new(
    db_path: *const c_char,
    out: *mut *mut sia_config,
) -> sia_status {
    boundary(|| {
        check_out(out, "out")?;
        // SAFETY: as the function's contract.
        let db = unsafe { c_str(db_path, "db_path") }?;
        let config = sia::Config::builder().db(PathBuf::from(db)).build();
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, sia_config::new(config)) };
        Ok(())
    })
}

/// Reads a configuration file (TOML: `[server]` with `db` and `base_url`, `[[issuers]]`,
/// `[patients]`, `[capabilities]`, `[storage]`; the format of `sia serve --config`).
/// Relative paths in it resolve against the file's folder.
///
/// Writes `*out` on success; free it with `sia_config_free`.
/// Errors: `SIA_ERR_NULL_ARGUMENT`, `SIA_ERR_INVALID_UTF8`, `SIA_ERR_CONFIG` (unreadable
/// or invalid file; the message names the file and the problem).
/// Thread safety: any thread.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_config_from_file(
    path: *const c_char,
    out: *mut *mut sia_config,
) -> sia_status {
    boundary(|| {
        check_out(out, "out")?;
        // SAFETY: as the function's contract.
        let path = unsafe { c_str(path, "path") }?;
        let config = sia::Config::from_file(path)
            .map_err(|e| Failure::new(SIA_ERR_CONFIG, Failure::from(e).message))?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, sia_config::new(config)) };
        Ok(())
    })
}

/// Reads a configuration from TOML text (the format of `sia_config_from_file`) of
/// `toml_len` bytes; relative paths in it (the index, key files) resolve against
/// `base_dir`, a folder.
///
/// Writes `*out` on success; free it with `sia_config_free`.
/// Errors: `SIA_ERR_NULL_ARGUMENT`, `SIA_ERR_INVALID_UTF8`, `SIA_ERR_INVALID_ARGUMENT`
/// (length past any object), `SIA_ERR_CONFIG` (invalid TOML or values, unreadable key
/// files; the message says which).
/// Thread safety: any thread.
///
/// # Safety
/// `toml` is NULL or points to `toml_len` readable bytes; `base_dir` is NULL or
/// NUL-terminated; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_config_from_toml(
    toml: *const c_char,
    toml_len: usize,
    base_dir: *const c_char,
    out: *mut *mut sia_config,
) -> sia_status {
    boundary(|| {
        check_out(out, "out")?;
        if toml.is_null() {
            return Err(Failure::new(SIA_ERR_NULL_ARGUMENT, "toml is NULL"));
        }
        // SAFETY: as the function's contract.
        let text = unsafe { c_text(toml, toml_len, "toml") }?;
        let dir = unsafe { c_str(base_dir, "base_dir") }?;
        let config = sia::Config::from_toml_str(text, std::path::Path::new(dir))
            .map_err(|e| Failure::new(SIA_ERR_CONFIG, Failure::from(e).message))?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, sia_config::new(config)) };
        Ok(())
    })
}

/// Replaces the SQLite index path (as `sia serve --db` overrides the file's).
///
/// Errors: `SIA_ERR_NULL_ARGUMENT`, `SIA_ERR_INVALID_UTF8`; on error the configuration is
/// unchanged. Thread safety: no other thread may use `config` during the call.
///
/// # Safety
/// `config` is NULL or a live `sia_config`; `db_path` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_config_set_db(
    config: *mut sia_config,
    db_path: *const c_char,
) -> sia_status {
    boundary(|| {
        // SAFETY: non-NULL pointers come from `sia_config::new`; exclusive by contract.
        let c = unsafe { config.as_mut() }
            .ok_or_else(|| Failure::new(SIA_ERR_NULL_ARGUMENT, "config is NULL"))?;
        // SAFETY: as the function's contract.
        let db = unsafe { c_str(db_path, "db_path") }?;
        c.config.db = PathBuf::from(db);
        Ok(())
    })
}

/// Replaces the public base URL (`http://host:port[/path]`): FHIR is answered under
/// `{base_url}/fhir`, DICOMweb under `{base_url}/dicom-web`, WADO-URI at
/// `{base_url}/wado`, and every URL the engine writes into a response starts with it.
///
/// Errors: `SIA_ERR_NULL_ARGUMENT`, `SIA_ERR_INVALID_UTF8`, `SIA_ERR_INVALID_ARGUMENT`
/// (not an `http://` or `https://` URL); on error the configuration is unchanged.
/// Thread safety: no other thread may use `config` during the call.
///
/// # Safety
/// `config` is NULL or a live `sia_config`; `base_url` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_config_set_base_url(
    config: *mut sia_config,
    base_url: *const c_char,
) -> sia_status {
    boundary(|| {
        // SAFETY: non-NULL pointers come from `sia_config::new`; exclusive by contract.
        let c = unsafe { config.as_mut() }
            .ok_or_else(|| Failure::new(SIA_ERR_NULL_ARGUMENT, "config is NULL"))?;
        // SAFETY: as the function's contract.
        let url = unsafe { c_str(base_url, "base_url") }?;
        sia::Config::check_base_url(url)
            .map_err(|e| Failure::new(SIA_ERR_INVALID_ARGUMENT, e.message()))?;
        c.config.base_url = url.trim_end_matches('/').to_string();
        Ok(())
    })
}

/// Adds storage root `name` at `folder` on this host (as `[storage.roots] name =
/// "folder"` in the TOML file): files under the folder are indexed as (name, path
/// relative to it) and read through this host's folder, so hosts that mount one archive
/// at different paths share an index. A row whose root this host does not configure is
/// answered with an error, not read.
///
/// Errors: `SIA_ERR_NULL_ARGUMENT`, `SIA_ERR_INVALID_UTF8`, `SIA_ERR_INVALID_ARGUMENT`
/// (a name that is empty, longer than 64 bytes, not of `A-Z a-z 0-9 _ . -` or already
/// added; a folder that is not absolute or holds `.` or `..`); on error the
/// configuration is unchanged. Thread safety: no other thread may use `config` during
/// the call.
///
/// # Safety
/// `config` is NULL or a live `sia_config`; `name` and `folder` are NULL or
/// NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_config_add_storage_root(
    config: *mut sia_config,
    name: *const c_char,
    folder: *const c_char,
) -> sia_status {
    boundary(|| {
        // SAFETY: non-NULL pointers come from `sia_config::new`; exclusive by contract.
        let c = unsafe { config.as_mut() }
            .ok_or_else(|| Failure::new(SIA_ERR_NULL_ARGUMENT, "config is NULL"))?;
        // SAFETY: as the function's contract.
        let name = unsafe { c_str(name, "name") }?;
        // SAFETY: as the function's contract.
        let folder = unsafe { c_str(folder, "folder") }?;
        let mut roots = c.config.storage_roots.clone();
        roots.push((name.to_string(), PathBuf::from(folder)));
        let mut checked = sia::StorageRoots::new();
        for (n, f) in &roots {
            checked
                .add(n, f)
                .map_err(|e| Failure::new(SIA_ERR_INVALID_ARGUMENT, e.message()))?;
        }
        c.config.storage_roots = roots;
        Ok(())
    })
}

/// The configuration's `[server] listen` address (`"127.0.0.1:8080"`), or NULL when it
/// names none (or `config` is NULL).
///
/// Thread safety: any thread. Lifetime: until `config` is freed.
///
/// # Safety
/// `config` is NULL or a live `sia_config`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_config_listen(config: *const sia_config) -> *const c_char {
    infallible(std::ptr::null(), || {
        // SAFETY: as the function's contract.
        match unsafe { config.as_ref() } {
            Some(c) => c.listen.as_ref().map_or(std::ptr::null(), |l| l.as_ptr()),
            None => std::ptr::null(),
        }
    })
}

/// Frees a configuration; NULL is a no-op. An engine opened from it does not need it.
///
/// Thread safety: no other thread may use `config` during or after the call.
///
/// # Safety
/// `config` is NULL or a live `sia_config` not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_config_free(config: *mut sia_config) {
    infallible((), || {
        if !config.is_null() {
            // SAFETY: made by Box::into_raw in `sia_config::new`, freed once by contract.
            drop(unsafe { Box::from_raw(config) });
        }
    })
}
