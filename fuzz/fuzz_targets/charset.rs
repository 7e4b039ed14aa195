//! Specific Character Set decoding, ISO 2022 escape sequences included: any value and
//! any text decode to a string without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sia::internal::dicom::charset::CharacterSet;

const SETS: &[&[u8]] = &[
    b"",
    b"ISO_IR 100",
    b"ISO_IR 192",
    b"GB18030",
    b"\\ISO 2022 IR 87",
    b"ISO 2022 IR 13\\ISO 2022 IR 87",
    b"\\ISO 2022 IR 149",
    b"ISO 2022 IR 6\\ISO 2022 IR 100\\ISO 2022 IR 58",
    b"ISO 2022 IR 100\\ISO 2022 IR 126",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector == 0xFF {
        // The Specific Character Set value itself from the input, up to a backtick.
        let cut = rest.iter().position(|&b| b == b'`').unwrap_or(rest.len());
        let cs = CharacterSet::from_value(&rest[..cut]);
        let text = rest.get(cut + 1..).unwrap_or(&[]);
        let _ = cs.decode(text, true);
        let _ = cs.decode(text, false);
        return;
    }
    let cs = CharacterSet::from_value(SETS[usize::from(selector) % SETS.len()]);
    let person = cs.decode(rest, true);
    let other = cs.decode(rest, false);
    // Every listed set starts with ASCII in G0: ASCII text without escapes is itself.
    if rest.iter().all(|&b| b.is_ascii() && b != 0x1B) {
        let ascii = std::str::from_utf8(rest).unwrap();
        assert_eq!(person, ascii);
        assert_eq!(other, ascii);
    }
});
