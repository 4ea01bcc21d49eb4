//! The demo's database: where it lives (a temporary directory unless kept) and its loaded table.

use crate::error::{Error, Result};
use rusqlite::Connection;
use std::path::{Path, PathBuf};

/// Where the demo database lives: a fresh temporary directory (removed on drop) or the kept path.
pub(super) struct Place {
    pub(super) db: PathBuf,
    pub(super) temp_dir: Option<PathBuf>,
}

impl Place {
    pub(super) fn new(keep: Option<&Path>) -> Result<Place> {
        if let Some(path) = keep {
            if path.exists() {
                return Err(Error::Refused(format!(
                    "`{}` already exists; give --keep a new file path (the demo creates the database)",
                    path.display()
                )));
            }
            return Ok(Place {
                db: path.to_path_buf(),
                temp_dir: None,
            });
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("zerodown-demo-{}-{nanos:08x}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| {
            Error::Io(format!(
                "cannot create the demo directory `{}`: {e}",
                dir.display()
            ))
        })?;
        Ok(Place {
            db: dir.join("demo.db"),
            temp_dir: Some(dir),
        })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Some(dir) = &self.temp_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub(super) fn sql_err(context: &str) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| Error::db(context, e)
}

/// Creates the demo database in WAL mode and loads `rows` accounts in one transaction.
pub(super) fn create_database(path: &Path, rows: i64) -> Result<()> {
    let conn = Connection::open(path).map_err(sql_err("creating the demo database"))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(sql_err("switching the demo database to WAL"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::db(
            "switching the demo database to WAL",
            format!("it stayed `{mode}`"),
        ));
    }
    conn.execute_batch(
        "PRAGMA synchronous = OFF;
         CREATE TABLE accounts(
             id      INTEGER PRIMARY KEY,
             email   TEXT NOT NULL,
             balance INTEGER NOT NULL,
             pad     TEXT
         );
         BEGIN;",
    )
    .map_err(sql_err("creating the accounts table"))?;
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
         INSERT INTO accounts(id, email, balance, pad)
         SELECT i, 'user' || i || '@example.com', (i * 7919) % 20001, hex(randomblob(24)) FROM n",
        [rows],
    )
    .map_err(sql_err("loading the accounts table"))?;
    conn.execute_batch(
        "CREATE UNIQUE INDEX accounts_email ON accounts(email);
         CREATE INDEX accounts_balance ON accounts(balance);
         COMMIT;
         PRAGMA wal_checkpoint(TRUNCATE);",
    )
    .map_err(sql_err("indexing the accounts table"))?;
    Ok(())
}
