//! `Engine.index`: the engine's index run on a thread of its own while the calling
//! Python thread waits without the GIL, waking every `interval` seconds to report
//! progress and to notice Ctrl-C. Python code (the progress callback, signal handlers)
//! therefore only ever runs on the caller's thread, and a `KeyboardInterrupt` — or an
//! exception from the callback — cancels the run through the engine's progress hook:
//! the engine stops at the next file, keeps what it committed, and the next run
//! completes the index.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use sia::Engine;
use sia::{IndexOptions, IndexProgress as Progress, IndexReport};

/// Where an index run is, as the Python callback sees it.
#[pyclass(module = "sia._sia", name = "IndexProgress", frozen, get_all)]
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IndexProgress {
    /// Files read and written so far in this run.
    pub files_done: u64,
    /// Files this run reads (new and changed ones) found so far; the total once
    /// `walk_done` is true.
    pub files_found: u64,
    /// Whether the walk has finished, so `files_found` is final.
    pub walk_done: bool,
    /// Bytes of the files read so far.
    pub bytes_done: u64,
    /// The file written last.
    pub current: String,
}

#[pymethods]
impl IndexProgress {
    fn __repr__(&self) -> String {
        format!(
            "IndexProgress(files_done={}, files_found={}, walk_done={}, bytes_done={}, current={:?})",
            self.files_done, self.files_found, self.walk_done, self.bytes_done, self.current
        )
    }
}

impl From<&Progress<'_>> for IndexProgress {
    fn from(p: &Progress<'_>) -> Self {
        IndexProgress {
            files_done: p.files_done,
            files_found: p.files_found,
            walk_done: p.walk_done,
            bytes_done: p.bytes_done,
            current: p.current.to_string_lossy().into_owned(),
        }
    }
}

/// How an interrupted run ended: the exception to raise once the engine has stopped.
pub enum Outcome {
    /// The engine's answer.
    Done(sia::Result<IndexReport>),
    /// Ctrl-C or the callback raised; the run was cancelled and this is re-raised.
    Interrupted(PyErr),
}

/// Runs `engine.index(roots)`; `progress` is called on this thread with an
/// [`IndexProgress`] at most every `interval` (and once at the end when anything moved).
pub fn run(
    py: Python<'_>,
    engine: Arc<Engine>,
    roots: Vec<PathBuf>,
    progress: Option<Bound<'_, PyAny>>,
    interval: Duration,
) -> PyResult<Outcome> {
    let latest: Arc<Mutex<Option<IndexProgress>>> = Arc::default();
    let cancel = Arc::new(AtomicBool::new(false));
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let worker = {
        let (latest, cancel) = (latest.clone(), cancel.clone());
        std::thread::Builder::new()
            .name("sia-index".into())
            .spawn(move || {
                let opts = IndexOptions::default().progress(|p: &Progress<'_>| {
                    *latest.lock().unwrap_or_else(|e| e.into_inner()) = Some(p.into());
                    if cancel.load(Ordering::Relaxed) {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                });
                let report = engine.index(&roots, &opts);
                // The receiver is gone only if the caller's thread died; nothing to tell.
                let _ = done_tx.send(());
                report
            })
            .map_err(|e| {
                pyo3::exceptions::PyRuntimeError::new_err(format!(
                    "cannot start the index thread: {e}"
                ))
            })?
    };
    let mut pending: Option<PyErr> = None;
    let mut shown: Option<IndexProgress> = None;
    let report_progress = |pending: &mut Option<PyErr>, shown: &mut Option<IndexProgress>| {
        let Some(cb) = &progress else { return };
        let now = latest.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if now.is_none() || now == *shown {
            return;
        }
        shown.clone_from(&now);
        if let Some(p) = now
            && let Err(e) = cb.call1((p,))
        {
            cancel.store(true, Ordering::Relaxed);
            *pending = Some(e);
        }
    };
    let mut done_rx = done_rx;
    loop {
        // The receiver is `Send` but not `Sync`: it moves to the detached closure and back.
        let (rx, woke) = py.detach(move || {
            let woke = done_rx.recv_timeout(interval);
            (done_rx, woke)
        });
        done_rx = rx;
        if pending.is_none() {
            if let Err(e) = py.check_signals() {
                cancel.store(true, Ordering::Relaxed);
                pending = Some(e);
            } else {
                report_progress(&mut pending, &mut shown);
            }
        }
        match woke {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
    let report = py
        .detach(|| worker.join())
        .map_err(|_| pyo3::exceptions::PyRuntimeError::new_err("the index thread panicked"))?;
    Ok(match pending {
        Some(e) => Outcome::Interrupted(e),
        None => Outcome::Done(report),
    })
}
