//! The server's log: request lines formatted without re-escaping, and every line written
//! to stderr in batches.
//!
//! Every request logs one line. Written straight to stderr that is a `write` system call
//! per request, and a slow terminal or pipe stalls the request that logs. Here a line is
//! appended to a shared buffer (a lock held for one copy, no system call), and a thread of
//! its own writes the buffer out every [`FLUSH_INTERVAL`], so under load one `write`
//! carries hundreds of lines. `tracing-appender`'s non-blocking writer was measured first
//! (`wrk` with `strace -f -c`, JPEG frame): it removes the `write` but its channel wakes
//! the writer thread for nearly every line (a `futex`, and `sched_yield` from its
//! back-off), so the system calls per request barely fell (8.2 -> 7.6; 7.2 here).
//!
//! Bounded: past [`MAX_BUFFERED`] bytes a line's writer flushes the buffer itself, so a
//! stalled stderr slows requests down instead of growing memory. Nothing is dropped; the
//! [`FlushGuard`] writes what is left when the server stops (a process killed outright
//! loses at most the last [`FLUSH_INTERVAL`] of lines).
//!
//! [`RequestLineFormat`] writes the request line (target [`REQUEST_TARGET`]) as the
//! default format does, but copies its message as it is: `tracing-subscriber` escapes
//! every message character by character (9,000 instructions of a 109,000-instruction
//! JPEG frame request), and the request line is made of parts that are already safe
//! (`layers::Front` escapes control characters in the path; the rest are a method,
//! numbers and a header value that is visible ASCII).

use std::fmt;
use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// The `tracing` target of the one line per request (`layers::Front`).
pub const REQUEST_TARGET: &str = "sia::request";

/// How long a line may wait in memory before it is written.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(50);

/// Bytes buffered before the logging request writes them out itself.
pub const MAX_BUFFERED: usize = 1024 * 1024;

struct Shared {
    lines: Mutex<Vec<u8>>,
    /// Where lines go (stderr); its lock keeps two flushes from interleaving.
    sink: Mutex<Box<dyn Write + Send>>,
    /// Set when the guard is dropped; the flushing thread waits on `wake` under it.
    stop: Mutex<bool>,
    wake: Condvar,
}

impl Shared {
    fn lines(&self) -> MutexGuard<'_, Vec<u8>> {
        // A thread that panicked while appending left at worst a partial line.
        self.lines.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes out what is buffered; the buffer's allocation is kept for the next lines.
    fn flush(&self, spare: &mut Vec<u8>) {
        {
            let mut lines = self.lines();
            if lines.is_empty() {
                return;
            }
            std::mem::swap(&mut *lines, spare);
        }
        // Written outside the buffer's lock, so requests keep appending meanwhile. An
        // error (stderr closed) loses the lines, as a direct write would.
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        let _ = sink.write_all(spare).and_then(|()| sink.flush());
        spare.clear();
    }
}

/// A [`MakeWriter`] for `tracing_subscriber::fmt` that batches lines to a sink (stderr).
#[derive(Clone)]
pub struct BatchedWriter {
    shared: Arc<Shared>,
}

/// Keeps the flushing thread running; dropping it stops the thread and writes every
/// buffered line.
pub struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl BatchedWriter {
    /// Starts the flushing thread (`sia-log`) writing to `sink`. If the thread cannot be started, lines are
    /// still written, by the logging thread itself once [`MAX_BUFFERED`] is reached and by
    /// the guard at the end; the error is returned beside the writer so it can be logged.
    pub fn start(
        sink: impl Write + Send + 'static,
    ) -> (BatchedWriter, FlushGuard, Option<io::Error>) {
        let shared = Arc::new(Shared {
            lines: Mutex::new(Vec::with_capacity(64 * 1024)),
            sink: Mutex::new(Box::new(sink)),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let flusher = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("sia-log".into())
            .spawn(move || {
                let mut spare = Vec::with_capacity(64 * 1024);
                let mut stop = flusher.stop.lock().unwrap_or_else(|e| e.into_inner());
                while !*stop {
                    stop = flusher
                        .wake
                        .wait_timeout(stop, FLUSH_INTERVAL)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    flusher.flush(&mut spare);
                }
            });
        let (thread, error) = match spawned {
            Ok(t) => (Some(t), None),
            Err(e) => (None, Some(e)),
        };
        let guard = FlushGuard {
            shared: Arc::clone(&shared),
            thread,
        };
        (BatchedWriter { shared }, guard, error)
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        *self.shared.stop.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.shared.flush(&mut Vec::new());
    }
}

/// The writer of one log line.
pub struct LineWriter<'a> {
    shared: &'a Shared,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let full = {
            let mut lines = self.shared.lines();
            lines.extend_from_slice(buf);
            lines.len() >= MAX_BUFFERED
        };
        if full {
            self.shared.flush(&mut Vec::new());
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            shared: &self.shared,
        }
    }
}

/// The event format of `sia serve`: `inner` (the default full format) for every line
/// but the request line, which it writes itself in the same shape (`TIMESTAMP  INFO
/// MESSAGE`) without escaping the message again. With ANSI colours (a terminal) every
/// line goes to `inner`.
pub struct RequestLineFormat<T> {
    inner: Format<Full, T>,
    timer: T,
}

impl<T: FormatTime + Clone> RequestLineFormat<T> {
    /// The default format without targets, with `timer` for the timestamp.
    pub fn new(timer: T) -> Self {
        let inner = tracing_subscriber::fmt::format()
            .with_target(false)
            .with_timer(timer.clone());
        RequestLineFormat { inner, timer }
    }
}

impl<S, N, T> FormatEvent<S, N> for RequestLineFormat<T>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    T: FormatTime,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        if meta.target() != REQUEST_TARGET
            || *meta.level() != tracing::Level::INFO
            || writer.has_ansi_escapes()
            || ctx.lookup_current().is_some()
        {
            return self.inner.format_event(ctx, writer, event);
        }
        self.timer.format_time(&mut writer)?;
        writer.write_str("  INFO ")?;
        let mut message = MessageOnly {
            writer: &mut writer,
            result: Ok(()),
        };
        event.record(&mut message);
        message.result?;
        writer.write_char('\n')
    }
}

/// Timestamps as `tracing-subscriber`'s `SystemTime` writes them (RFC 3339 in UTC with
/// microseconds, `2026-11-30T16:03:37.123456Z`), with the part up to the second written
/// once per second per thread: its calendar arithmetic and `fmt` machinery were 2,400
/// instructions of every request line.
#[derive(Clone, Copy, Debug, Default)]
pub struct UtcTimestamp;

impl FormatTime for UtcTimestamp {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        use std::cell::RefCell;
        thread_local! {
            /// The second last written, and `YYYY-MM-DDTHH:MM:SS.` for it.
            static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        SECOND.with(|cell| {
            let mut cached = cell.borrow_mut();
            if cached.0 != now.as_secs() {
                *cached = (now.as_secs(), up_to_the_second(now.as_secs()));
            }
            w.write_str(&cached.1)?;
            let micros = now.subsec_micros();
            let mut digits = [b'0'; 6];
            for (i, d) in digits.iter_mut().enumerate() {
                *d = b'0' + ((micros / 10u32.pow(5 - i as u32)) % 10) as u8;
            }
            w.write_str(std::str::from_utf8(&digits).unwrap_or("000000"))?;
            w.write_char('Z')
        })
    }
}

/// `YYYY-MM-DDTHH:MM:SS.` of `secs` seconds after the Unix epoch, in UTC (the proleptic
/// Gregorian calendar; H. Hinnant's `civil_from_days`).
fn up_to_the_second(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let (hour, minute, second) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.")
}

/// Writes an event's `message` field as it is, and nothing else.
struct MessageOnly<'w, 'a> {
    writer: &'w mut Writer<'a>,
    result: fmt::Result,
}

impl Visit for MessageOnly<'_, '_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" && self.result.is_ok() {
            self.result = write!(self.writer, "{value:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_read_as_tracing_subscribers_do() {
        for (secs, text) in [
            (0, "1970-01-01T00:00:00."),
            (951_782_400, "2000-02-29T00:00:00."),
            (1_796_054_185, "2026-11-30T15:56:25."),
            (4_102_444_799, "2099-12-31T23:59:59."),
            (4_107_542_400, "2100-03-01T00:00:00."),
        ] {
            assert_eq!(up_to_the_second(secs), text);
        }
        // Against the library's own clock reading, up to the microseconds (retried when a
        // second begins between the two readings).
        for _ in 0..100 {
            let (mut ours, mut theirs) = (String::new(), String::new());
            UtcTimestamp
                .format_time(&mut Writer::new(&mut ours))
                .unwrap();
            tracing_subscriber::fmt::time::SystemTime
                .format_time(&mut Writer::new(&mut theirs))
                .unwrap();
            assert_eq!(ours.len(), theirs.len(), "{ours} {theirs}");
            assert!(ours.ends_with('Z') && ours.as_bytes()[19] == b'.');
            if ours[..19] == theirs[..19] {
                return;
            }
        }
        panic!("the timestamps never agreed to the second");
    }

    /// A sink that keeps what it is given.
    #[derive(Clone, Default)]
    struct Kept(Arc<Mutex<Vec<u8>>>);

    impl Write for Kept {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn buffered(w: &BatchedWriter) -> usize {
        w.shared.lines().len()
    }

    #[test]
    fn a_line_waits_in_memory_then_the_flusher_writes_it() {
        let kept = Kept::default();
        let (w, _guard, error) = BatchedWriter::start(kept.clone());
        assert!(error.is_none());
        w.make_writer().write_all(b"one line\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while kept.0.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "never flushed");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(*kept.0.lock().unwrap(), b"one line\n");
        assert_eq!(buffered(&w), 0);
    }

    #[test]
    fn past_the_bound_the_logging_thread_writes_itself() {
        let kept = Kept::default();
        let (w, guard, _) = BatchedWriter::start(kept.clone());
        // Stop the flusher first: only the bound can empty the buffer now.
        drop(guard);
        let line = vec![b'x'; 1000];
        let mut writer = w.make_writer();
        let n = MAX_BUFFERED / 1000 + 1;
        for _ in 0..n {
            writer.write_all(&line).unwrap();
            assert!(
                buffered(&w) < MAX_BUFFERED,
                "the buffer grew past its bound"
            );
        }
        assert_eq!(
            kept.0.lock().unwrap().len() + buffered(&w),
            n * 1000,
            "a line was lost"
        );
    }

    #[test]
    fn dropping_the_guard_writes_every_buffered_line_in_order() {
        let kept = Kept::default();
        let (w, guard, _) = BatchedWriter::start(kept.clone());
        for i in 0..1000 {
            w.make_writer()
                .write_all(format!("{i}\n").as_bytes())
                .unwrap();
        }
        drop(guard);
        let text = String::from_utf8(kept.0.lock().unwrap().clone()).unwrap();
        let got: Vec<usize> = text.lines().map(|l| l.parse().unwrap()).collect();
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
    }

    /// A clock that always says the same.
    #[derive(Clone)]
    struct Fixed;

    impl FormatTime for Fixed {
        fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
            w.write_str("2026-11-30T12:00:00.000000Z")
        }
    }

    /// The lines `log` writes through a subscriber formatting with `format`.
    fn lines_of<F>(format: F, log: impl FnOnce()) -> String
    where
        F: FormatEvent<
                tracing_subscriber::Registry,
                tracing_subscriber::fmt::format::DefaultFields,
            > + Send
            + Sync
            + 'static,
    {
        let kept = Kept::default();
        let sink = kept.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .event_format(format)
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        String::from_utf8(kept.0.lock().unwrap().clone()).unwrap()
    }

    /// What `log` writes through [`RequestLineFormat`], and through the default format.
    fn ours_and_default(log: impl Fn()) -> (String, String) {
        let ours = lines_of(RequestLineFormat::new(Fixed), &log);
        let default = lines_of(
            tracing_subscriber::fmt::format()
                .with_target(false)
                .with_timer(Fixed),
            &log,
        );
        (ours, default)
    }

    #[test]
    fn the_request_line_reads_as_the_default_format_writes_it() {
        let line = || {
            let (method, path) = ("GET", "/dicom-web/studies/1.2.3/series");
            tracing::info!(target: REQUEST_TARGET, "{method} {path} 200 1234 56us");
        };
        let (ours, default) = ours_and_default(line);
        assert_eq!(ours, default);
        assert_eq!(
            ours,
            "2026-11-30T12:00:00.000000Z  INFO GET /dicom-web/studies/1.2.3/series 200 1234 56us\n"
        );
    }

    #[test]
    fn every_other_line_is_the_default_format_with_its_escaping() {
        // A warning of the server carries text from outside (an issuer's error, a file
        // name): it keeps the default format's escaping of control characters.
        let line = || {
            let outside = "bad\u{1b}[31mname";
            tracing::warn!("cannot read {outside}");
            tracing::info!(target: "sia::other", "started {outside}");
        };
        let (ours, default) = ours_and_default(line);
        assert_eq!(ours, default);
        assert!(!ours.contains('\u{1b}'), "{ours}");
    }
}
