//! Shared helpers for the SQLite integration tests: a throwaway database file with an `accounts` table.
#![allow(dead_code)]

use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use zerodown::spec::{AddColumn, Migration};
use zerodown::{DatabaseUrl, Event, Settings, StartOutcome};

pub struct TestDb {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
    pub url: DatabaseUrl,
}

pub fn migration(name: &str, f: impl FnOnce(&mut AddColumn)) -> Migration {
    let mut a = AddColumn::new("accounts", "c", "text");
    f(&mut a);
    Migration::adding(name, a)
}

/// The design's running example as a user writes it: a derived NOT NULL column with a check, a default
/// and an index.
pub const TIER_TOML: &str = r#"[add_column]
table = "accounts"
column = "tier"
type = "text"
not_null = true
backfill = "CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END"
default = "'standard'"
check = "tier IN ('gold', 'standard')"
index = true
"#;

/// [`TIER_TOML`] as a migration named `0042_tier`.
pub fn tier_migration() -> Migration {
    migration("0042_tier", |a| {
        a.column = "tier".into();
        a.data_type = "text".into();
        a.not_null = true;
        a.backfill = Some("CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END".into());
        a.default = Some("'standard'".into());
        a.check = Some("tier IN ('gold', 'standard')".into());
        a.index = true;
    })
}

pub fn quiet(d: Duration) -> Settings {
    Settings {
        quiet_period: Some(d),
        ..Settings::default()
    }
}

pub fn count(c: &Connection, sql: &str) -> i64 {
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

pub fn mismatches(c: &Connection) -> i64 {
    count(
        c,
        "SELECT count(*) FROM accounts WHERE tier IS NOT (CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END)",
    )
}

pub fn zd_triggers(c: &Connection) -> Vec<String> {
    let mut s = c.prepare("SELECT name FROM sqlite_schema WHERE type = 'trigger' AND name LIKE 'zd\\_%' ESCAPE '\\'").unwrap();
    s.query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

pub fn integrity(c: &Connection) -> String {
    c.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

impl TestDb {
    pub fn empty() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        let c = Connection::open(&path).unwrap();
        c.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .unwrap();
        drop(c);
        let url = DatabaseUrl::Sqlite(path.clone());
        TestDb {
            _dir: dir,
            path,
            url,
        }
    }

    /// `accounts(id INTEGER PRIMARY KEY, email, balance, pad)` with `rows` rows, in WAL mode.
    pub fn new(rows: i64) -> TestDb {
        let db = TestDb::empty();
        db.conn()
            .execute_batch(&format!(
                "CREATE TABLE accounts(id INTEGER PRIMARY KEY, email TEXT, balance INTEGER NOT NULL, pad TEXT);
                 CREATE INDEX accounts_email ON accounts(email);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
                 INSERT INTO accounts(email, balance, pad) SELECT 'u' || i || '@example.com', (i * 7919) % 20000, 'xxxxxxxxxxxxxxxx' FROM n;"
            ))
            .unwrap();
        db
    }

    pub fn conn(&self) -> Connection {
        let c = Connection::open(&self.path).unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        c
    }

    pub fn start_with(
        &self,
        m: &Migration,
        f: impl FnOnce(&mut Settings),
    ) -> zerodown::Result<StartOutcome> {
        let mut s = Settings::default();
        f(&mut s);
        zerodown::start(&self.url, m, &s, &mut |_| {}, &AtomicBool::new(false))
    }

    pub fn start(&self, m: &Migration) -> zerodown::Result<StartOutcome> {
        self.start_with(m, |_| {})
    }

    pub fn complete(&self, name: &str) -> zerodown::Result<()> {
        zerodown::complete(
            &self.url,
            name,
            &quiet(Duration::ZERO),
            &mut |_| {},
            &AtomicBool::new(false),
        )
    }

    /// Completes while `during` runs on another thread (e.g. an old writer inserting).
    /// `complete` with `during` running beside it; `during` is told through its flag once
    /// `complete` has returned, so it can go on for exactly as long as `complete` runs.
    pub fn complete_with(
        &self,
        name: &str,
        s: Settings,
        during: impl FnOnce(&AtomicBool) + Send,
    ) -> zerodown::Result<()> {
        let returned = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let h = scope.spawn(|| during(&returned));
            let r = zerodown::complete(&self.url, name, &s, &mut |_| {}, &AtomicBool::new(false));
            returned.store(true, std::sync::atomic::Ordering::SeqCst);
            h.join().unwrap();
            r
        })
    }

    pub fn rollback(&self, name: &str) -> zerodown::Result<()> {
        zerodown::rollback(&self.url, name, &Settings::default(), &mut |_| {})
    }

    pub fn status(&self, name: &str) -> zerodown::status::Report {
        zerodown::status(&self.url, Some(name)).unwrap().remove(0)
    }

    /// Runs start (and complete, if needed) but stops once `n` steps are done, as a crash would.
    pub fn drive_steps(&self, m: &Migration, n: usize) {
        let cancel = AtomicBool::new(false);
        let mut done = 0usize;
        let mut emit = |e: Event| {
            if let Event::StepDone { .. } = e {
                done += 1;
                if done >= n {
                    cancel.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            }
        };
        if n == 0 {
            return;
        }
        let s = quiet(Duration::ZERO);
        let r = zerodown::start(&self.url, m, &s, &mut emit, &cancel);
        if let Ok(StartOutcome::Backfilled { .. }) = r
            && !cancel.load(std::sync::atomic::Ordering::SeqCst)
        {
            let _ = zerodown::complete(&self.url, &m.name, &s, &mut emit, &cancel);
        }
    }

    /// The user-visible schema: every object's SQL except zerodown's own state tables.
    pub fn schema_sql(&self) -> Vec<String> {
        let c = self.conn();
        let mut s = c
            .prepare("SELECT coalesce(sql, name) FROM sqlite_schema WHERE tbl_name NOT LIKE '\\_zerodown%' ESCAPE '\\' ORDER BY name")
            .unwrap();
        s.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    pub fn data_checksum(&self) -> String {
        self.conn()
            .query_row("SELECT group_concat(id || ':' || coalesce(email, '') || ':' || balance, ',') FROM (SELECT * FROM accounts ORDER BY id)", [], |r| r.get(0))
            .unwrap()
    }

    /// Every page of the file except page 1 (which holds the schema), after a full checkpoint.
    pub fn row_pages(&self) -> Vec<u64> {
        let c = self.conn();
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        let page_size: usize = c
            .query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))
            .unwrap() as usize;
        drop(c);
        let bytes = std::fs::read(&self.path).unwrap();
        bytes
            .chunks(page_size)
            .skip(1)
            .map(|p| {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                p.hash(&mut h);
                h.finish()
            })
            .collect()
    }
}
