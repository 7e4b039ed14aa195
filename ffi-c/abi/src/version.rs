//! The library's version at run time (the header's `SIA_VERSION*` macros give it at
//! compile time; compare both to detect a header / library mismatch).

use std::ffi::c_char;

/// `"MAJOR.MINOR.PATCH"` of this library followed by NUL.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The library's version as a static NUL-terminated string, e.g. `"0.1.0"`.
///
/// Thread safety: any thread. Lifetime: static; never free it.
#[unsafe(no_mangle)]
pub extern "C" fn sia_version() -> *const c_char {
    VERSION.as_ptr().cast()
}

/// The library's version as one number: `MAJOR * 1000000 + MINOR * 1000 + PATCH`, the
/// same encoding as the header's `SIA_VERSION_NUMBER`.
///
/// Thread safety: any thread.
#[unsafe(no_mangle)]
pub extern "C" fn sia_version_number() -> u32 {
    let part = |s: &str| s.parse::<u32>().unwrap_or(0);
    part(env!("CARGO_PKG_VERSION_MAJOR")) * 1_000_000
        + part(env!("CARGO_PKG_VERSION_MINOR")) * 1_000
        + part(env!("CARGO_PKG_VERSION_PATCH"))
}
