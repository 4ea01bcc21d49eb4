//! SQLite's knowledge for operations: one row per statement kind, each naming the test that shows
//! it on the real library (the bundled SQLite).

use crate::engine::dialect::{Fact, Kind};
use crate::plan::Cost;

pub const FACTS: &[Fact] = &[
    Fact {
        kind: Kind::SetDefault,
        versions: "3.40+",
        lock: "none (refused)",
        held: "-",
        blocks_writes: false,
        blocks_reads: false,
        cost: Cost::CatalogOnly,
        reason: "refused: SQLite has no ALTER COLUMN … SET DEFAULT, and its schema-edit procedure (writable_schema) would change what rows written before the column was added read, since they store no value for it and read the table's default",
        proven_by: "tests/operations.rs::sqlite_defaults",
    },
    Fact {
        kind: Kind::DropDefault,
        versions: "3.40+",
        lock: "none (refused)",
        held: "-",
        blocks_writes: false,
        blocks_reads: false,
        cost: Cost::CatalogOnly,
        reason: "refused, as SetDefault: rows written before the column was added would read NULL instead of the old default",
        proven_by: "tests/operations.rs::sqlite_defaults",
    },
    Fact {
        kind: Kind::CreateIndex,
        versions: "3.40+",
        lock: "write lock (whole database)",
        held: "one pass over the table plus a sort: SQLite has no online index build",
        blocks_writes: true,
        blocks_reads: false,
        cost: Cost::Scan,
        reason: "SQLite has no online index build: CREATE INDEX holds the write lock for one pass over the table, so writers wait (up to their busy timeout) while readers go on (WAL); build it when the table is small enough for that wait",
        proven_by: "tests/op_create_index.rs::sqlite_create_index",
    },
    Fact {
        kind: Kind::AddCheck,
        versions: "3.54 (bundled)",
        lock: "write lock (whole database)",
        held: "one pass over the table: SQLite verifies every row",
        blocks_writes: true,
        blocks_reads: false,
        cost: Cost::Scan,
        reason: "SQLite has no NOT VALID: ADD CONSTRAINT checks every row while it holds the write lock, so writers wait one pass over the table (readers in WAL mode go on)",
        proven_by: "tests/op_add_check.rs::sqlite_add_check",
    },
    Fact {
        kind: Kind::AddForeignKey,
        versions: "3.54 (bundled)",
        lock: "none (refused)",
        held: "-",
        blocks_writes: false,
        blocks_reads: false,
        cost: Cost::CatalogOnly,
        reason: "refused: SQLite's ALTER TABLE cannot add a FOREIGN KEY to an existing table (ADD CONSTRAINT takes only CHECK); the only ways are a column added with REFERENCES or remaking the table",
        proven_by: "tests/op_add_foreign_key.rs::sqlite_add_foreign_key",
    },
    Fact {
        kind: Kind::SetNotNull,
        versions: "3.53+",
        lock: "write lock (whole database)",
        held: "one pass over the table: SQLite verifies every row",
        blocks_writes: true,
        blocks_reads: false,
        cost: Cost::Scan,
        reason: "SQLite 3.53+ adds NOT NULL in place (ALTER COLUMN … SET NOT NULL), verifying every row while it holds the write lock, so writers wait one pass over the table (readers in WAL mode go on)",
        proven_by: "tests/op_set_not_null.rs::sqlite_set_not_null",
    },
];
