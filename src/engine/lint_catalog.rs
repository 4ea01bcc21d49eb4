//! What `zerodown lint` reads of a live database, on a connection it first makes read-only: the
//! server's version, and per table its estimated size, columns, indexes and validated CHECKs.
//! Each engine's SQL is in its own `lint_catalog.rs`; nothing here writes.

use crate::error::{Error, Result};
use crate::url::DatabaseUrl;

/// A table as lint sees it on the server.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LintTable {
    /// The name as the catalog spells it.
    pub name: String,
    /// Rows by the catalog's estimate (PostgreSQL `reltuples` scaled to the pages now, MariaDB
    /// `TABLE_ROWS`; SQLite counts them); None when the statistics are missing.
    pub rows: Option<f64>,
    /// Bytes of the table's data (PostgreSQL `pg_relation_size` over its partitions, MariaDB
    /// `DATA_LENGTH`, SQLite `dbstat` where compiled in).
    pub bytes: Option<i64>,
    /// (column, NOT NULL), in order.
    pub columns: Vec<(String, bool)>,
    pub indexes: Vec<String>,
    /// Expressions of the validated CHECK constraints, as the server prints them.
    pub validated_checks: Vec<String>,
}

impl LintTable {
    pub fn column(&self, name: &str) -> Option<&(String, bool)> {
        self.columns
            .iter()
            .find(|(c, _)| c.eq_ignore_ascii_case(name))
    }
}

/// One read-only connection for lint.
pub trait LintCatalog {
    /// "PostgreSQL 15.8", "MariaDB 10.11.6", "SQLite 3.46.0".
    fn server(&self) -> String;
    /// Whether the server says this session cannot write (PostgreSQL
    /// `default_transaction_read_only`, MariaDB/MySQL `@@session.tx_read_only`, SQLite
    /// `PRAGMA query_only`).
    fn is_read_only(&mut self) -> Result<bool>;
    /// The table (in `schema`, else the search path / current database), None when there is none.
    fn table(&mut self, schema: Option<&str>, name: &str) -> Result<Option<LintTable>>;
}

/// Opens the database the URL names and makes the session read-only before anything else is
/// read; refuses to go on when the server does not confirm it.
pub fn open(url: &DatabaseUrl) -> Result<Box<dyn LintCatalog>> {
    let mut c: Box<dyn LintCatalog> = match url {
        DatabaseUrl::Postgres(u) => Box::new(super::postgres::Postgres::open_read_only(u)?),
        DatabaseUrl::Mysql(u) => Box::new(super::mysql::MySql::open_read_only(u)?),
        DatabaseUrl::Sqlite(p) => Box::new(super::sqlite::Sqlite::open_read_only(p)?),
    };
    if !c.is_read_only()? {
        return Err(Error::Refused(format!(
            "{}: the session did not become read-only; lint reads nothing from it",
            c.server()
        )));
    }
    Ok(c)
}
