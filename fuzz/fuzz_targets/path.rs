//! The DICOMweb path grammar and frame lists: any path parses to a route or a 400/404,
//! and nothing but UIDs (digits and dots) comes out of it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sia::internal::wado::{Route, is_uid, parse_path};

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    match parse_path(path) {
        Ok(Route::Frames {
            study,
            series,
            instance,
            frames,
        }) => {
            assert!(is_uid(&study) && is_uid(&series) && is_uid(&instance));
            assert!(!frames.is_empty() && frames.iter().all(|&f| f > 0));
        }
        Ok(_) => assert!(
            path.split('/')
                .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        ),
        Err(e) => assert!(e.status == 400 || e.status == 404),
    }
});
