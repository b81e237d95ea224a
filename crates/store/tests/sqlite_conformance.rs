//! Runs the shared `Store` conformance suite against the SQLite backend.

use std::sync::Arc;

use store::conformance::{Fixture, t0};
use store::{ManualClock, SqliteOptions, SqliteStore};

fn fresh() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Arc::new(ManualClock::new(t0()));
    let options = SqliteOptions {
        clock: clock.clone(),
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open_with(dir.path().join("reborn.db"), options).expect("open store");
    Fixture {
        store: Box::new(store),
        clock,
        guard: Box::new(dir),
    }
}

store::conformance_tests!(fresh);
