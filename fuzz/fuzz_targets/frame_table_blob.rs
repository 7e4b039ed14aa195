//! Frame tables read back from an index file (which is input too): any bytes give a
//! table or an error, and a table that reads back writes the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sia::internal::dicom::FrameTable;

fuzz_target!(|data: &[u8]| {
    if let Ok(table) = FrameTable::from_bytes(data) {
        assert_eq!(table.to_bytes(), data);
    }
});
