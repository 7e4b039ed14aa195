//! What retrieval makes of a file, on arbitrary bytes: the Explicit VR Little Endian
//! rewrite a WADO-RS instance response sends, and the values the `BulkDataURI`s of the
//! DICOM JSON name. Each is an error or a consistent answer, never a panic:
//! - a rewritten file scans again, in a syntax DICOMweb allows, as the same instance,
//!   and is then sent as it is;
//! - every `BulkDataURI` the metadata writer emits resolves with `bulk::find`.
//!
//! Deflated files are left out: inflating a whole instance is bounded at 1 GiB on
//! purpose (it may really be that large), past this target's -malloc_limit_mb.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sia::internal::dicom::json::{JsonContext, instance_json};
use sia::internal::dicom::source::SliceSource;
use sia::internal::dicom::transcode::{Output, for_web};
use sia::internal::dicom::{Scanned, bulk, scan};

const DEFLATED: &str = "1.2.840.10008.1.2.1.99";
const BASE: &str = "http://x/dicom-web/studies/1/series/2/instances/3";

fn bulk_uris(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            if let Some(uri) = map.get("BulkDataURI").and_then(|u| u.as_str()) {
                out.push(uri.to_string());
            }
            map.values().for_each(|x| bulk_uris(x, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|x| bulk_uris(x, out)),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let record = match scan(&mut SliceSource(data)) {
        Ok(Scanned::Instance(r)) if r.transfer_syntax != DEFLATED => r,
        _ => return,
    };
    if let Ok(Output::Rewritten(out)) = for_web(data) {
        let again = match scan(&mut SliceSource(&out)) {
            Ok(Scanned::Instance(r)) => r,
            Ok(Scanned::Dicomdir) => panic!("rewrite became a DICOMDIR"),
            Err(e) => panic!("rewritten file does not scan: {e}"),
        };
        assert_eq!(again.sop_instance_uid, record.sop_instance_uid);
        assert_eq!(again.frames.count(), record.frames.count());
        assert!(
            matches!(for_web(&out), Ok(Output::AsStored(_))),
            "rewrite is rewritten again"
        );
    }
    let Ok(json) = instance_json(data, &JsonContext { instance_url: BASE }) else {
        return;
    };
    let v: serde_json::Value = serde_json::from_slice(&json).expect("valid JSON");
    let mut uris = Vec::new();
    bulk_uris(&v, &mut uris);
    let bits = record.image.as_ref().map_or(0, |i| i.bits_allocated);
    for uri in uris {
        let rest = uri
            .strip_prefix(BASE)
            .and_then(|r| r.strip_prefix("/bulkdata/"))
            .unwrap_or_else(|| panic!("BulkDataURI outside the instance: {uri}"));
        let segments: Vec<&str> = rest.split('/').collect();
        let path = bulk::parse_path(&segments).unwrap_or_else(|| panic!("unparsable {uri}"));
        match bulk::find(data, &path, bits) {
            Ok(Some(_)) => {}
            Ok(None) => panic!("{uri} names nothing"),
            Err(e) => panic!("{uri}: {e}"),
        }
    }
});
