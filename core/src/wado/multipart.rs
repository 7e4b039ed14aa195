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
        Multipart {
            boundary: format!("sia-{nanos:016x}{mix:016x}"),
            body: Body::new(),
        }
    }

    /// The boundary.
    pub fn boundary(&self) -> &str {
        &self.boundary
    }

    /// Adds a part with the given header fields and content chunks.
    pub fn part(&mut self, headers: &[(&str, &str)], content: impl IntoIterator<Item = Chunk>) {
        let mut head = format!("--{}\r\n", self.boundary);
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
        self.body.push(Chunk::from_vec(
            format!("--{}--\r\n", self.boundary).into_bytes(),
        ));
        (self.boundary, self.body)
    }
}

impl Default for Multipart {
    fn default() -> Self {
        Self::new()
    }
}
