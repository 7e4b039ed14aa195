//! The Accept parser and frame negotiation: any header value parses or errors without
//! panicking, and negotiation only ever picks something the header accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sia::internal::wado::{AcceptHeader, negotiate_frames};

const SYNTAXES: &[&str] = &[
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.4.90",
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let Ok(accept) = AcceptHeader::parse(text) else {
        return;
    };
    let ts = SYNTAXES[usize::from(sel) % SYNTAXES.len()];
    let native = sel & 0x80 != 0;
    let frames = usize::from(sel & 0x40 != 0) + 1;
    if let Some(rep) = negotiate_frames(&accept, native, ts, frames) {
        // Something with q > 0 must have matched the chosen media type.
        assert!(
            accept.ranges.iter().any(|r| r.q > 0
                && (r.kind == "*" || r.kind == "multipart" || r.matches(rep.media_type)))
        );
        assert!(rep.multipart || frames == 1);
    }
});
