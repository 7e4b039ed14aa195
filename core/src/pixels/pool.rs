//! A bounded number of decodes at once.
//!
//! Decoding a 512 × 512 JPEG Lossless frame costs milliseconds, a large JPEG 2000 frame
//! far more, while a frame in its stored syntax costs microseconds. The host answers
//! frame requests on its few async workers, so decodes hold at most [`DecodeSlots::new`]'s
//! `slots` of them at once (by default half the cores, at least one), and a request that
//! finds every slot taken waits at most `wait` with at most `queue` others before it is
//! answered 503 with `Retry-After`: a burst of decodes cannot take every worker from the
//! frames that need none.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// The slots; `Send + Sync`.
#[derive(Debug)]
pub(crate) struct DecodeSlots {
    slots: usize,
    queue: usize,
    wait: Duration,
    state: Mutex<(usize, usize)>,
    freed: Condvar,
}

/// A taken slot, given back on drop.
pub(crate) struct Slot<'a>(&'a DecodeSlots);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut s = self.0.state.lock().unwrap_or_else(|p| p.into_inner());
        s.0 -= 1;
        self.0.freed.notify_one();
    }
}

impl DecodeSlots {
    /// `slots` decodes at once; up to `queue` more wait up to `wait` each.
    pub(crate) fn new(slots: usize, queue: usize, wait: Duration) -> DecodeSlots {
        DecodeSlots {
            slots: slots.max(1),
            queue,
            wait,
            state: Mutex::new((0, 0)),
            freed: Condvar::new(),
        }
    }

    /// Takes a slot, waiting as bounded above; `None` when none came free.
    pub(crate) fn take(&self) -> Option<Slot<'_>> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.0 < self.slots {
            s.0 += 1;
            return Some(Slot(self));
        }
        if s.1 >= self.queue {
            return None;
        }
        s.1 += 1;
        let deadline = Instant::now() + self.wait;
        loop {
            let now = Instant::now();
            if s.0 < self.slots {
                s.0 += 1;
                s.1 -= 1;
                return Some(Slot(self));
            }
            if now >= deadline {
                s.1 -= 1;
                return None;
            }
            s = self
                .freed
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_queue_and_timeout() {
        let p = DecodeSlots::new(1, 1, Duration::from_millis(50));
        let a = p.take().expect("a free slot");
        let t = Instant::now();
        assert!(p.take().is_none(), "all taken: waits, then gives up");
        assert!(t.elapsed() >= Duration::from_millis(50));
        std::thread::scope(|sc| {
            let waiter = sc.spawn(|| p.take().is_some());
            std::thread::sleep(Duration::from_millis(10));
            drop(a);
            assert!(waiter.join().unwrap(), "a freed slot goes to the waiter");
        });
        let p = DecodeSlots::new(1, 0, Duration::from_secs(5));
        let _a = p.take().unwrap();
        let t = Instant::now();
        assert!(p.take().is_none());
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "no queue: refused at once"
        );
    }
}
