//! Opening an index that does not exist yet, from several engines at the same moment (as
//! two `sia index` or `sia serve` processes started together do): every one opens it.

use std::sync::{Arc, Barrier};

use sia::{Config, Engine};

#[test]
fn engines_creating_the_same_new_index_at_once_all_open_it() {
    // Several rounds: the race is between the first statements on a new file.
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join(format!("new-{round}.db"));
        let gate = Arc::new(Barrier::new(4));
        let opened: Vec<_> = (0..4)
            .map(|_| {
                let (gate, db) = (gate.clone(), db.clone());
                std::thread::spawn(move || {
                    gate.wait();
                    Engine::open(Config::builder().db(&db).build()).map(|_| ())
                })
            })
            .collect();
        for t in opened {
            t.join()
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e} ({:?})", e.detail()));
        }
        let journal: String = rusqlite::Connection::open(&db)
            .unwrap()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(journal, "wal");
    }
}
