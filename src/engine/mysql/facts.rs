//! MySQL/MariaDB's knowledge for operations: one row per statement kind, each naming the test that
//! shows it on the real server (MariaDB 10.11); MySQL 8 rows are written from its manual.

use crate::engine::dialect::{Fact, Kind};
use crate::plan::Cost;

pub const FACTS: &[Fact] = &[
    Fact {
        kind: Kind::SetDefault,
        versions: "MariaDB 10.11; MySQL 8 (documented, not run)",
        lock: "metadata lock (exclusive, briefly)",
        held: "a few milliseconds: ALGORITHM=INSTANT changes only the data dictionary",
        blocks_writes: true,
        blocks_reads: true,
        cost: Cost::CatalogOnly,
        reason: "ALGORITHM=INSTANT changes only the default in the data dictionary (the server refuses rather than copy): existing rows keep their values",
        proven_by: "tests/operations.rs::mariadb_defaults",
    },
    Fact {
        kind: Kind::DropDefault,
        versions: "MariaDB 10.11; MySQL 8 (documented, not run)",
        lock: "metadata lock (exclusive, briefly)",
        held: "a few milliseconds: ALGORITHM=INSTANT changes only the data dictionary",
        blocks_writes: true,
        blocks_reads: true,
        cost: Cost::CatalogOnly,
        reason: "ALGORITHM=INSTANT drops only the default in the data dictionary; application versions that still leave the column out of their INSERTs then fail on a NOT NULL column or write NULL",
        proven_by: "tests/operations.rs::mariadb_defaults",
    },
    Fact {
        kind: Kind::CreateIndex,
        versions: "MariaDB 10.11; MySQL 8 (documented, not run: no IF [NOT] EXISTS for indexes)",
        lock: "metadata lock (exclusive at start and end; shared during the build)",
        held: "one pass over the table; application reads and writes go on; the exclusive moments wait for open transactions on the table (--build-timeout)",
        blocks_writes: false,
        blocks_reads: false,
        cost: Cost::Scan,
        reason: "ALGORITHM=INPLACE, LOCK=NONE builds the index while writes go on (the server refuses rather than copy or block)",
        proven_by: "tests/op_create_index.rs::mariadb_create_index",
    },
    Fact {
        kind: Kind::AddCheck,
        versions: "MariaDB 10.11; MySQL 8 (documented, not run)",
        lock: "metadata lock (shared, no writes) for the whole copy",
        held: "one full copy of the table",
        blocks_writes: true,
        blocks_reads: false,
        cost: Cost::Rewrite,
        reason: "MariaDB 10.11 has no online way to add a CHECK (INSTANT, NOCOPY and INPLACE are all refused): it copies the table while writes wait; zerodown runs it only with --allow-copy",
        proven_by: "tests/op_add_check.rs::mariadb_add_check",
    },
];
