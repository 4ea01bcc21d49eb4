//! Throwaway database servers for the integration tests.
//!
//! ```ignore
//! mod support;
//!
//! #[test]
//! fn adds_a_column() {
//!     let Some(pg) = support::pg(15) else { return };   // None (one SKIP line) when not installed
//!     let db = pg.fresh_database("adds_a_column");      // unique name, empty database
//!     let mut client = db.connect();                     // postgres::Client, superuser
//!     // db.url: postgres://postgres:zerodown@127.0.0.1:<port>/<name>
//! }
//! ```
//!
//! One server per engine and major per test process, shared by its tests, started on first use in a
//! directory `/tmp/zd-XXXXXX` and stopped when the process exits (or dies: see `process.rs`). Tests
//! that restart a server or need other settings take a dedicated one:
//! [`PgServer::start_dedicated`], [`MariaDbServer::start_dedicated`].
//!
//! `ZERODOWN_REQUIRE_ENGINES=1` makes a missing engine a failure instead of a skip (CI sets it).
//! Binaries come from Debian packages and from `scripts/install-test-deps.sh` (PostgreSQL 13, 14, 16,
//! 17 and 18).

// Each test file uses its own part of this module.
#![allow(dead_code, unused_imports, unused_macros)]

pub mod mariadb;
pub mod mariadb_replica;
pub mod pg;
pub mod pg_standby;
pub mod process;
pub mod two_tables;

pub use mariadb::{MariaDbOptions, MariaDbServer, MariaDbTestDb};
pub use pg::{PgServer, PgTestDb};

/// The shared PostgreSQL server of this test process for `major` (e.g. 15 from Debian, 18 from npm),
/// started on first use. `None`, after one `SKIP:` line on stderr, when that major is not installed
/// (a panic instead under `ZERODOWN_REQUIRE_ENGINES=1`).
pub fn pg(major: u32) -> Option<&'static PgServer> {
    pg::shared(major)
}

/// The shared server of the highest PostgreSQL major installed from Debian packages (15 on Debian 12).
pub fn pg_debian() -> Option<&'static PgServer> {
    match pg::debian_major() {
        Some(major) => pg(major),
        None => {
            process::engine_missing(
                "PostgreSQL (Debian package)",
                "no /usr/lib/postgresql/*/bin",
            );
            None
        }
    }
}

/// The majors most tests cover: Debian's (15 on Debian 12) and 18 from npm. (13, 14, 16 and 17, also
/// from npm, run the lifecycle tests.)
pub fn pg_majors() -> Vec<u32> {
    let mut majors = vec![pg::debian_major().unwrap_or(15), pg::NPM_MAJOR];
    majors.dedup();
    majors
}

/// The shared MariaDB server of this test process (binary log off), started on first use. `None`,
/// after one `SKIP:` line on stderr, when MariaDB is not installed.
pub fn mariadb() -> Option<&'static MariaDbServer> {
    mariadb::shared()
}

/// How long [`wait_for`] polls before it gives up: a guard against a hang, not a measure of speed
/// (what it waits for happens in well under a second on a quiet machine).
pub const HANG_GUARD: std::time::Duration = std::time::Duration::from_secs(120);

/// Polls `done` (a look at the real state: the server's views, the state table, events seen) until
/// it holds; panics after [`HANG_GUARD`], naming `what` it waited for.
pub fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + HANG_GUARD;
    while !done() {
        assert!(
            std::time::Instant::now() < until,
            "gave up waiting for {what} after {HANG_GUARD:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Runs `$f(major)` as one test per supported PostgreSQL major (13–18): `$f::pg13` … `$f::pg18`.
/// Test files that use it declare `#[macro_use] mod support;`.
macro_rules! on_each_major {
    ($($f:ident),* $(,)?) => {$(
        mod $f {
            #[test]
            fn pg13() {
                super::$f(13)
            }
            #[test]
            fn pg14() {
                super::$f(14)
            }
            #[test]
            fn pg15() {
                super::$f(15)
            }
            #[test]
            fn pg16() {
                super::$f(16)
            }
            #[test]
            fn pg17() {
                super::$f(17)
            }
            #[test]
            fn pg18() {
                super::$f(18)
            }
        }
    )*};
}

/// The backfill's closing note ("the backfill rested … for …") among a run's events.
pub fn closing_note(events: &[zerodown::Event]) -> &str {
    events
        .iter()
        .rev()
        .find_map(|e| match e {
            zerodown::Event::Note(n) if n.starts_with("the backfill rested") => Some(n.as_str()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no closing note: {events:?}"))
}
