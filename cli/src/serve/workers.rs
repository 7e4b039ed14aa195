//! The threads that serve connections: one single-threaded tokio runtime per core, each
//! given whole connections in turn by the accept loop.
//!
//! Why not the multi-threaded runtime that runs the rest of the server: under load its
//! workers park and wake one another to share tasks (a `futex` wake-up and a context
//! switch for every other request here), and a connection's task moves between cores.
//! A frame costs a few microseconds of work; those hand-offs cost as much. A runtime per
//! thread owns its connections' sockets in its own `epoll`, so a request is read,
//! answered and written by one thread with no hand-off. What may block for long still
//! goes to a blocking pool (the engine's slower answers to the main runtime's, shared by
//! every connection thread; what handlers block on themselves to the runtime's own), so
//! a decode or a whole-study retrieve never holds a connection thread. Requests the
//! server makes to EHRs and issuers go out on the main runtime too (`outbound.rs`). An HTTP/2 connection's streams all run on
//! its thread; a client that wants more than one core opens more connections, as
//! browsers and `wrk` do.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// Single-threaded runtimes, one per thread, that connections are spread over.
pub struct ConnectionWorkers {
    handles: Vec<Handle>,
    next: AtomicUsize,
    /// Dropping a sender ends its thread's runtime (after [`ConnectionWorkers::stop`]'s
    /// grace for blocking work).
    stops: Vec<oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl ConnectionWorkers {
    /// Starts `count` threads (at least one), each running a current-thread runtime with
    /// I/O and timers. Errors: the runtime or the thread could not be created.
    pub fn start(count: usize) -> std::io::Result<ConnectionWorkers> {
        let count = count.max(1);
        let mut workers = ConnectionWorkers {
            handles: Vec::with_capacity(count),
            next: AtomicUsize::new(0),
            stops: Vec::with_capacity(count),
            threads: Vec::with_capacity(count),
        };
        for i in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                // The engine's slow answers go to the main runtime's pool
                // (`EngineState::blocking`); this one has what handlers block on
                // themselves (static files, index writes of patient resolution).
                .max_blocking_threads((512 / count).max(64))
                .thread_name(format!("sia-conn-{i}-blocking"))
                .build()?;
            let (stop, stopped) = oneshot::channel::<()>();
            workers.handles.push(runtime.handle().clone());
            workers.stops.push(stop);
            workers.threads.push(
                std::thread::Builder::new()
                    .name(format!("sia-conn-{i}"))
                    .spawn(move || {
                        runtime.block_on(async {
                            let _ = stopped.await;
                        });
                        // Tasks still running (connections past the shutdown grace) are
                        // dropped; blocking work gets a moment to return its thread.
                        runtime.shutdown_timeout(Duration::from_secs(1));
                    })?,
            );
        }
        Ok(workers)
    }

    /// The number of threads to start by default: one per core the process may use.
    pub fn default_count() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// The runtime the next connection goes to (in turn).
    pub fn next(&self) -> &Handle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        &self.handles[i]
    }

    /// Ends every runtime and joins its thread: connections still open are closed.
    pub fn stop(mut self) {
        self.stops.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_spread_over_every_thread_in_turn() {
        let workers = ConnectionWorkers::start(3).unwrap();
        let names: Vec<String> = (0..6)
            .map(|_| {
                let (tx, rx) = std::sync::mpsc::channel();
                workers.next().spawn(async move {
                    let _ = tx.send(std::thread::current().name().unwrap_or("").to_string());
                });
                rx.recv().unwrap()
            })
            .collect();
        assert_eq!(
            names,
            [
                "sia-conn-0",
                "sia-conn-1",
                "sia-conn-2",
                "sia-conn-0",
                "sia-conn-1",
                "sia-conn-2"
            ]
        );
        workers.stop();
    }

    #[test]
    fn stopping_ends_tasks_that_never_finish() {
        let workers = ConnectionWorkers::start(2).unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        for _ in 0..2 {
            let tx = tx.clone();
            workers.next().spawn(async move {
                let _keep = tx;
                std::future::pending::<()>().await;
            });
        }
        drop(tx);
        workers.stop();
        // Every sender was dropped with its task.
        assert!(rx.recv().is_err());
    }
}
