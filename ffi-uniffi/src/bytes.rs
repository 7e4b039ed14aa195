//! [`Bytes`]: pixel data and response bodies on their way to the JVM, written into
//! uniffi's `RustBuffer` with one bulk copy per engine chunk.
//!
//! uniffi 0.32 lowers a `Vec<u8>` with its generic `Vec<T>` code: one `u8::write` (a
//! `Vec::push`) per byte, into a buffer that starts empty and grows by doubling. For an
//! 8 KiB frame that loop was most of the binding's per-call cost (perf: the three top
//! symbols of the calling thread), and it grows with the frame. [`Bytes`] has the same
//! wire format and the same type metadata as `Vec<u8>` (Kotlin still sees a
//! `ByteArray`, read with one bulk `ByteBuffer.get`), but keeps the engine's own chunks
//! (shared, not copied: a range of a mapping, a cached buffer) until uniffi serialises
//! the record, and then copies each chunk once with `extend_from_slice`.
//!
//! Wire format (uniffi's for `bytes`): a big-endian `i32` length, then the bytes.

use uniffi::{FfiConverter, MetadataBuffer, RustBuffer, TypeId};

use crate::error::SiaError;

/// Bytes for a Kotlin `ByteArray`: the engine's chunks, joined only when serialised.
///
/// At most `i32::MAX` bytes (a JVM array's limit); [`Bytes::from_chunks`] refuses more.
#[derive(Clone, Default)]
pub struct Bytes {
    chunks: Vec<sia::Chunk>,
    len: usize,
}

/// The longest byte string a JVM `ByteArray` (and uniffi's `i32` length) holds.
const MAX_LEN: usize = i32::MAX as usize;

impl Bytes {
    /// The bytes of `chunks`, in order, without copying them.
    ///
    /// Errors: `TooCostly` when they add up to more than `i32::MAX` bytes, which no
    /// `ByteArray` can hold.
    pub fn from_chunks(chunks: Vec<sia::Chunk>) -> Result<Bytes, SiaError> {
        let len = total_len(chunks.iter().map(sia::Chunk::len))?;
        Ok(Bytes { chunks, len })
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A copy of the bytes in one buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len);
        for c in &self.chunks {
            v.extend_from_slice(c.as_bytes());
        }
        v
    }
}

/// The sum of `lens`, or `TooCostly` past what a `ByteArray` holds.
fn total_len(lens: impl IntoIterator<Item = usize>) -> Result<usize, SiaError> {
    lens.into_iter()
        .try_fold(0usize, usize::checked_add)
        .filter(|&n| n <= MAX_LEN)
        .ok_or_else(|| {
            SiaError::TooCostly(
                "more than 2 GiB in one answer: a JVM ByteArray cannot hold it".into(),
            )
        })
}

impl From<Vec<u8>> for Bytes {
    /// Bytes owning `v`. Panics past `i32::MAX` bytes; use [`Bytes::from_chunks`] for
    /// lengths that are not known to be small.
    fn from(v: Vec<u8>) -> Bytes {
        assert!(v.len() <= MAX_LEN, "Bytes holds at most i32::MAX bytes");
        Bytes {
            len: v.len(),
            chunks: vec![sia::Chunk::from_vec(v)],
        }
    }
}

impl PartialEq for Bytes {
    fn eq(&self, other: &Bytes) -> bool {
        self.len == other.len
            && self
                .chunks
                .iter()
                .flat_map(|c| c.as_bytes())
                .eq(other.chunks.iter().flat_map(|c| c.as_bytes()))
    }
}

impl Eq for Bytes {}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Bytes({} bytes in {} chunks)",
            self.len,
            self.chunks.len()
        )
    }
}

// SAFETY: the wire format is exactly the one uniffi's Kotlin `FfiConverterByteArray`
// reads and writes for the `bytes` type named by `TYPE_ID_META` (a big-endian i32 length,
// then the bytes; uniffi's own Vec<u8> writes the same bytes one by one); the length
// never exceeds i32::MAX (checked by every constructor), and `try_read` checks the
// length against what the buffer holds before reading.
unsafe impl FfiConverter<crate::UniFfiTag> for Bytes {
    type FfiType = RustBuffer;

    fn lower(obj: Bytes) -> RustBuffer {
        let mut buf = Vec::with_capacity(4 + obj.len);
        <Bytes as FfiConverter<crate::UniFfiTag>>::write(obj, &mut buf);
        RustBuffer::from_vec(buf)
    }

    fn try_lift(v: RustBuffer) -> uniffi::Result<Bytes> {
        let vec = v.destroy_into_vec();
        let mut buf = vec.as_slice();
        let value = <Bytes as FfiConverter<crate::UniFfiTag>>::try_read(&mut buf)?;
        if !buf.is_empty() {
            uniffi::deps::anyhow::bail!("{} bytes left after a byte string", buf.len());
        }
        Ok(value)
    }

    fn write(obj: Bytes, buf: &mut Vec<u8>) {
        // In range by construction (MAX_LEN); saturating only to stay panic-free.
        let len = i32::try_from(obj.len).unwrap_or(i32::MAX);
        buf.reserve(4 + obj.len);
        buf.extend_from_slice(&len.to_be_bytes());
        for c in &obj.chunks {
            buf.extend_from_slice(c.as_bytes());
        }
    }

    fn try_read(buf: &mut &[u8]) -> uniffi::Result<Bytes> {
        let Some((head, rest)) = buf.split_first_chunk::<4>() else {
            uniffi::deps::anyhow::bail!("a byte string without its length");
        };
        let len = usize::try_from(i32::from_be_bytes(*head))
            .map_err(|_| uniffi::deps::anyhow::anyhow!("a negative byte string length"))?;
        if rest.len() < len {
            uniffi::deps::anyhow::bail!(
                "a byte string of {len} bytes with {} left in the buffer",
                rest.len()
            );
        }
        let (bytes, rest) = rest.split_at(len);
        *buf = rest;
        Ok(Bytes::from(bytes.to_vec()))
    }

    const TYPE_ID_META: MetadataBuffer = <Vec<u8> as TypeId<crate::UniFfiTag>>::TYPE_ID_META;
}

uniffi::derive_ffi_traits!(local Bytes);

#[cfg(test)]
mod tests {
    use super::*;
    use uniffi::Lower;

    /// The bytes uniffi's generic `Vec<u8>` lowering writes: what Kotlin's reader expects.
    fn reference(v: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        <Vec<u8> as Lower<crate::UniFfiTag>>::write(v.to_vec(), &mut buf);
        buf
    }

    #[test]
    fn writes_what_uniffis_vec_u8_writes() {
        let lowered = |b| {
            let mut buf = Vec::new();
            <Bytes as Lower<crate::UniFfiTag>>::write(b, &mut buf);
            buf
        };
        for parts in [
            vec![],
            vec![vec![]],
            vec![vec![1u8, 2, 3]],
            vec![vec![0u8; 8192], vec![7; 5], vec![]],
        ] {
            let joined: Vec<u8> = parts.concat();
            let chunks = parts.into_iter().map(sia::Chunk::from_vec).collect();
            let b = Bytes::from_chunks(chunks).unwrap();
            assert_eq!(b.len(), joined.len());
            assert_eq!(b.to_vec(), joined);
            assert_eq!(lowered(b), reference(&joined));
        }
    }

    #[test]
    fn lower_then_lift_round_trips() {
        let b = Bytes::from_chunks(vec![
            sia::Chunk::from_vec(vec![9; 3]),
            sia::Chunk::from_static(b"abc"),
        ])
        .unwrap();
        let rb = <Bytes as FfiConverter<crate::UniFfiTag>>::lower(b.clone());
        let back = <Bytes as FfiConverter<crate::UniFfiTag>>::try_lift(rb).unwrap();
        assert_eq!(back, b);
        assert_eq!(back.to_vec(), b"\x09\x09\x09abc");
    }

    #[test]
    fn malformed_buffers_are_errors() {
        let read = |bytes: &[u8]| {
            let mut s = bytes;
            <Bytes as FfiConverter<crate::UniFfiTag>>::try_read(&mut s)
        };
        assert!(read(&[0, 0]).is_err(), "no length");
        assert!(read(&[0xff, 0xff, 0xff, 0xff]).is_err(), "negative length");
        assert!(
            read(&[0, 0, 0, 5, 1, 2]).is_err(),
            "shorter than its length"
        );
        let mut s: &[u8] = &[0, 0, 0, 2, 1, 2, 3];
        let b = <Bytes as FfiConverter<crate::UniFfiTag>>::try_read(&mut s).unwrap();
        assert_eq!(
            (b.to_vec(), s),
            (vec![1, 2], &[3u8][..]),
            "reads its length only"
        );
        let rb = RustBuffer::from_vec(vec![0, 0, 0, 1, 1, 9]);
        assert!(
            <Bytes as FfiConverter<crate::UniFfiTag>>::try_lift(rb).is_err(),
            "junk after"
        );
    }

    #[test]
    fn more_than_a_byte_array_holds_is_too_costly() {
        assert_eq!(total_len([MAX_LEN - 1, 1]).unwrap(), MAX_LEN);
        assert!(matches!(
            total_len([1 << 30, 1 << 30]),
            Err(SiaError::TooCostly(_))
        ));
        assert!(matches!(
            total_len([usize::MAX, 1]),
            Err(SiaError::TooCostly(_))
        ));
    }
}
