//! Whole-file header scan: any bytes give a record or an error, never a panic, a hang
//! or an allocation by a declared length (libFuzzer's -malloc_limit_mb catches those).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sia::internal::dicom::source::SliceSource;
use sia::internal::dicom::{FrameTable, Scanned, scan};

fuzz_target!(|data: &[u8]| {
    if let Ok(Scanned::Instance(record)) = scan(&mut SliceSource(data)) {
        // Every range the frame table names lies inside the input.
        match &record.frames {
            FrameTable::Native {
                offset,
                frame_bits,
                count,
                ..
            } => {
                let bits = u128::from(*frame_bits) * u128::from(*count);
                assert!(u128::from(*offset) + bits.div_ceil(8) <= data.len() as u128);
            }
            FrameTable::Encapsulated {
                fragments,
                frame_starts,
                ..
            } => {
                for f in fragments {
                    assert!(f.offset + u64::from(f.len) <= data.len() as u64);
                }
                assert!(frame_starts.windows(2).all(|w| w[0] < w[1]) || record.frames.count() == 0);
                assert_eq!(*frame_starts.last().unwrap() as usize, fragments.len());
            }
            FrameTable::None | FrameTable::Deflated { .. } => {}
        }
        // The table survives the trip through the index.
        let blob = record.frames.to_bytes();
        assert_eq!(FrameTable::from_bytes(&blob).unwrap(), record.frames);
    }
});
