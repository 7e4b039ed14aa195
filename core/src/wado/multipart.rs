//! `multipart/related` bodies whose parts can be zero-copy chunks of mapped files.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::http::{Body, Chunk};

/// Builds a `multipart/related` body part by part.
pub struct Multipart {
    boundary: String,
    body: Body,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl Multipart {
    /// A new body with a fresh boundary. The boundary mixes the time and a counter: it
    /// only has to be unlikely to occur in binary content, and 32 hex digits are.
    pub fn new() -> Multipart {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mix =
            nanos.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ n.rotate_left(32) ^ 0x5DEE_CE66_D1CE_4E5B;
        let mut boundary = String::with_capacity(36);
        boundary.push_str("sia-");
        for word in [nanos, mix] {
            for shift in (0..16).rev() {
                let digit = ((word >> (shift * 4)) & 0xF) as u8;
                boundary.push(char::from(b"0123456789abcdef"[usize::from(digit)]));
            }
        }
        Multipart {
            boundary,
            body: Body::new(),
        }
    }

    /// The boundary.
    pub fn boundary(&self) -> &str {
        &self.boundary
    }

    /// Adds a part with the given header fields and content chunks.
    pub fn part(&mut self, headers: &[(&str, &str)], content: impl IntoIterator<Item = Chunk>) {
        let len = headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum::<usize>();
        let mut head = String::with_capacity(self.boundary.len() + len + 6);
        head.push_str("--");
        head.push_str(&self.boundary);
        head.push_str("\r\n");
        for (name, value) in headers {
            head.push_str(name);
            head.push_str(": ");
            head.push_str(value);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        self.body.push(Chunk::from_vec(head.into_bytes()));
        for c in content {
            self.body.push(c);
        }
        self.body.push(Chunk::from_static(b"\r\n"));
    }

    /// Closes the body; returns it with the boundary.
    pub fn finish(mut self) -> (String, Body) {
        let mut close = Vec::with_capacity(self.boundary.len() + 6);
        close.extend_from_slice(b"--");
        close.extend_from_slice(self.boundary.as_bytes());
        close.extend_from_slice(b"--\r\n");
        self.body.push(Chunk::from_vec(close));
        (self.boundary, self.body)
    }
}

impl Default for Multipart {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::Multipart;

    #[test]
    fn boundaries_are_fresh_hex_after_a_prefix() {
        let (a, b) = (Multipart::new(), Multipart::new());
        for m in [&a, &b] {
            let hex = m.boundary().strip_prefix("sia-").unwrap();
            assert_eq!(hex.len(), 32);
            assert!(
                hex.bytes()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            );
        }
        assert_ne!(a.boundary(), b.boundary());
        let (boundary, body) = {
            let mut m = a;
            m.part(&[("Content-Type", "image/jpeg")], []);
            m.finish()
        };
        let bytes: Vec<u8> = body
            .into_chunks()
            .iter()
            .flat_map(|c| c.as_bytes().to_vec())
            .collect();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            format!("--{boundary}\r\nContent-Type: image/jpeg\r\n\r\n\r\n--{boundary}--\r\n")
        );
    }
}
