//! Property tests of the parsers that take request input.

use proptest::prelude::*;
use sia::wado::{AcceptHeader, parse_frame_list};

proptest! {
    #[test]
    fn accept_parser_never_panics(s in "\\PC{0,200}") {
        let _ = AcceptHeader::parse(&s);
    }

    #[test]
    fn accept_parser_reads_back_what_was_written(
        ranges in proptest::collection::vec(
            ("[a-z]{1,8}", "[a-z0-9.+-]{1,12}", proptest::option::of("[0-9.]{1,20}"), 0u16..=1000), 1..5)
    ) {
        let text: Vec<String> = ranges.iter().map(|(k, s, ts, q)| {
            let mut r = format!("multipart/related; type=\"{k}/{s}\"");
            if let Some(ts) = ts { r.push_str(&format!("; transfer-syntax={ts}")); }
            r.push_str(&format!(";q={}.{:03}", q / 1000, q % 1000));
            r
        }).collect();
        let parsed = AcceptHeader::parse(&text.join(" , ")).unwrap();
        prop_assert_eq!(parsed.ranges.len(), ranges.len());
        for (got, (k, s, ts, q)) in parsed.ranges.iter().zip(&ranges) {
            let want = format!("{k}/{s}");
            prop_assert_eq!(got.param("type"), Some(want.as_str()));
            prop_assert_eq!(got.param("transfer-syntax"), ts.as_deref());
            prop_assert_eq!(got.q, *q);
        }
    }

    #[test]
    fn frame_lists_round_trip(frames in proptest::collection::hash_set(1u32..1_000_000, 1..50)) {
        let frames: Vec<u32> = frames.into_iter().collect();
        let text = frames.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        prop_assert_eq!(parse_frame_list(&text).unwrap(), frames.clone());
        prop_assert_eq!(parse_frame_list(&text.replace(',', "%2C")).unwrap(), frames);
    }

    #[test]
    fn frame_lists_with_zero_or_duplicates_are_400(frames in proptest::collection::vec(0u32..20, 2..10)) {
        let text = frames.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        let mut seen = std::collections::HashSet::new();
        let valid = frames.iter().all(|&f| f > 0 && seen.insert(f));
        prop_assert_eq!(parse_frame_list(&text).is_ok(), valid);
    }

    #[test]
    fn frame_list_parser_never_panics(s in "\\PC{0,60}") {
        if let Err(e) = parse_frame_list(&s) { prop_assert_eq!(e.status, 400); }
    }
}
