//! PostgreSQL's knowledge for operations: one row per statement kind, each naming the test that
//! shows it on the real server (PostgreSQL 13–18, each major in the test matrix).

use crate::engine::dialect::{Fact, Kind};
use crate::plan::Cost;

pub const FACTS: &[Fact] = &[
    Fact {
        kind: Kind::SetDefault,
        versions: "13–18",
        lock: "ACCESS EXCLUSIVE",
        held: "a few milliseconds (catalog only), taken under the lock guard",
        blocks_writes: true,
        blocks_reads: true,
        cost: Cost::CatalogOnly,
        reason: "a default changes only the catalog: existing rows keep their values, and only later INSERTs that leave the column out get it",
        proven_by: "tests/operations.rs::postgres_15_defaults",
    },
    Fact {
        kind: Kind::DropDefault,
        versions: "13–18",
        lock: "ACCESS EXCLUSIVE",
        held: "a few milliseconds (catalog only), taken under the lock guard",
        blocks_writes: true,
        blocks_reads: true,
        cost: Cost::CatalogOnly,
        reason: "dropping a default changes only the catalog; application versions that still leave the column out of their INSERTs then write NULL",
        proven_by: "tests/operations.rs::postgres_15_defaults",
    },
    Fact {
        kind: Kind::CreateIndex,
        versions: "13–18",
        lock: "SHARE UPDATE EXCLUSIVE",
        held: "two passes over the table, after waiting for older transactions (--build-timeout); application reads and writes go on",
        blocks_writes: false,
        blocks_reads: false,
        cost: Cost::Scan,
        reason: "CONCURRENTLY builds without blocking writes; it runs outside any transaction, and an INVALID index left by a failed or interrupted build is dropped and built again",
        proven_by: "tests/op_create_index.rs::postgres_15_create_index",
    },
    Fact {
        kind: Kind::AddCheck,
        versions: "13–18",
        lock: "ACCESS EXCLUSIVE",
        held: "a few milliseconds (catalog only: NOT VALID), taken under the lock guard",
        blocks_writes: true,
        blocks_reads: true,
        cost: Cost::CatalogOnly,
        reason: "NOT VALID: new writes are checked at once; existing rows by the next step",
        proven_by: "tests/op_add_check.rs::postgres_15_add_check",
    },
    Fact {
        kind: Kind::ValidateConstraint,
        versions: "13–18",
        lock: "SHARE UPDATE EXCLUSIVE",
        held: "one pass over the table; application reads and writes go on",
        blocks_writes: false,
        blocks_reads: false,
        cost: Cost::Scan,
        reason: "VALIDATE checks the existing rows under SHARE UPDATE EXCLUSIVE, which blocks no application query",
        proven_by: "tests/op_add_check.rs::postgres_15_add_check",
    },
];
