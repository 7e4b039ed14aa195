//! The DICOM JSON writer on arbitrary bytes: an error or valid JSON whose object keys
//! are 8 hex digits in ascending order, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sia::internal::dicom::json::{JsonContext, instance_json};

fn check(v: &serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            let keys: Vec<&String> = map.keys().collect();
            assert!(keys.windows(2).all(|w| w[0] < w[1]), "keys out of order");
            for (k, attr) in map {
                assert!(
                    k.len() == 8 && k.bytes().all(|b| b.is_ascii_hexdigit()),
                    "bad key {k}"
                );
                assert!(attr["vr"].is_string());
                if let Some(items) = attr.get("Value").and_then(|v| v.as_array())
                    && attr["vr"] == "SQ"
                {
                    items.iter().for_each(check);
                }
            }
        }
        other => panic!("not an object: {other}"),
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(json) = instance_json(
        data,
        &JsonContext {
            instance_url: "http://x/dicom-web/studies/1/series/2/instances/3",
        },
    ) {
        let v: serde_json::Value = serde_json::from_slice(&json).expect("valid JSON");
        check(&v);
    }
});
