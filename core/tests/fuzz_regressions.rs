//! Inputs the fuzzers found, kept as regression tests (see fuzz/README.md).

use sia::dicom::FrameTable;

/// frame_table_blob: a Deflated table with a non-zero reserved byte read back, then
/// wrote different bytes. Reserved bytes are now required to be zero.
#[test]
fn frame_table_with_nonzero_reserved_bytes_is_corrupt() {
    assert!(FrameTable::from_bytes(&[3, 0, 0x5d, 0, 1, 0, 0, 0]).is_err());
    assert!(FrameTable::from_bytes(&[3, 7, 0, 0, 1, 0, 0, 0]).is_err());
    assert_eq!(
        FrameTable::from_bytes(&[3, 0, 0, 0, 1, 0, 0, 0]).unwrap(),
        FrameTable::Deflated { count: 1 }
    );
}
