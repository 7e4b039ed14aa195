//! `--watch`: files added, changed or removed under the served paths are re-indexed.
//! notify reports changes, its debouncer groups a burst (a copy of many files) into one
//! event, and one re-index runs at a time; a change during a run causes one more run.
//! A re-index is the ordinary incremental `sia index`, so unchanged files cost a `stat`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify_debouncer_mini::{DebounceEventResult, new_debouncer, notify::RecursiveMode};
use sia::Engine;
use sia::internal::index::IndexOptions;
use tokio::sync::mpsc;

/// How long the file system must stay quiet before a re-index starts.
pub const DEBOUNCE: Duration = Duration::from_millis(400);

/// Watches `paths` and re-indexes them into `engine` on change, until the process ends.
/// Events about the index's own files (`db`, its `-wal`, `-shm`, `-journal`) and the
/// development EHR's files beside it are ignored, so an index inside a served folder
/// does not re-trigger itself.
pub fn spawn(engine: Arc<Engine>, paths: Vec<PathBuf>, db: PathBuf) -> Result<(), String> {
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let db_name = db
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let own_file = move |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy())
            .is_some_and(|n| !db_name.is_empty() && n.starts_with(db_name.as_str()))
    };
    let mut debouncer = new_debouncer(DEBOUNCE, move |res: DebounceEventResult| match res {
        Ok(events) => {
            if events.iter().any(|e| !own_file(&e.path)) {
                // A full channel already holds a pending re-index: nothing is lost.
                let _ = tx.try_send(());
            }
        }
        Err(e) => tracing::warn!("watch: {e}"),
    })
    .map_err(|e| format!("watch: {e}"))?;
    for p in &paths {
        debouncer
            .watcher()
            .watch(p, RecursiveMode::Recursive)
            .map_err(|e| format!("watch {}: {e}", p.display()))?;
    }
    tokio::spawn(async move {
        // The debouncer stops watching when dropped: it lives as long as this task.
        let _debouncer = debouncer;
        while rx.recv().await.is_some() {
            let engine = engine.clone();
            let paths = paths.clone();
            let run =
                tokio::task::spawn_blocking(move || engine.index(&paths, &IndexOptions::default()))
                    .await;
            match run {
                Ok(Ok(r))
                    if r.indexed + r.removed > 0
                        || !r.skipped.is_empty()
                        || !r.conflicts.is_empty() =>
                {
                    tracing::info!(
                        "watch: re-indexed: {} indexed, {} removed, {} skipped, {} conflicts, {} unchanged in {:.3} s",
                        r.indexed,
                        r.removed,
                        r.skipped.len(),
                        r.conflicts.len(),
                        r.unchanged,
                        r.seconds
                    );
                    for c in &r.conflicts {
                        tracing::warn!("watch: conflict: {c}; not indexed");
                    }
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!("watch: re-index failed: {e}"),
                Err(e) => tracing::warn!("watch: re-index task: {e}"),
            }
        }
    });
    Ok(())
}
