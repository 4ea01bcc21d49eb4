//! SQLite rows of the engine-facts table. SQLite has one writer: any schema change holds the
//! database's write lock until it commits; in WAL mode readers go on, in rollback-journal mode they
//! wait at the commit.

use super::Engine::Sqlite as SQ;
use super::Version as V;
use super::facts::{Cost, Cost::*, Fact, Proof, Proof::*};

const CATALOG: &str =
    "tests/sqlite_facts.rs::add_column_nullable_or_with_a_literal_default_is_catalog_only";
const REFUSED: &str = "tests/sqlite_facts.rs::sqlite_refuses_non_constant_defaults_and_referencing_defaults_on_add_column";
const VERIFY: &str = "tests/sqlite_facts.rs::set_not_null_and_add_check_verify_every_existing_row";
const DROP: &str = "tests/sqlite_facts.rs::drop_column_rewrites_the_table";
/// Runs each row's statement: who waits beside its transaction, pages rewritten, VM steps.
const PROBED: &str = "tests/analysis.rs::sqlite_facts_hold_on_the_real_engine";

const fn row(kind: &'static str, shape: &'static str, cost: Cost, proof: Proof) -> Fact {
    Fact {
        kind,
        shape,
        engine: SQ,
        since: V(3, 35, 0),
        until: None,
        lock: "database write lock",
        blocks_reads: false,
        blocks_writes: true,
        cost,
        proof,
    }
}

#[rustfmt::skip]
pub(super) static FACTS: &[Fact] = &[
    row("add_column",    "nullable",            CatalogOnly, Test(CATALOG)),
    row("add_column",    "constant_default",    CatalogOnly, Test(CATALOG)),
    row("add_column",    "stable_default",      Fails,       Test(REFUSED)),
    row("add_column",    "volatile_default",    Fails,       Test(REFUSED)),
    row("add_column",    "not_null_no_default", Fails,       Test(PROBED)),
    row("add_column",    "generated_stored",    Fails,       Test(PROBED)),
    row("add_column",    "serial",              Fails,       Test(PROBED)),
    row("create_index",  "*",                   Scan,        Test(PROBED)),
    // SQLite has no ADD CONSTRAINT: a CHECK comes by remaking the table, which reads every row.
    row("add_check",     "*",                   Scan,        Test(VERIFY)),
    row("drop_column",   "*",                   Rewrite,     Test(DROP)),
    row("rename_column", "*",                   CatalogOnly, Test(PROBED)),
    row("rename_table",  "*",                   CatalogOnly, Test(PROBED)),
    row("drop_table",    "*",                   CatalogOnly, NotYetProven),
    row("drop_index",    "*",                   CatalogOnly, NotYetProven),
    row("create_table",  "*",                   CatalogOnly, Test(PROBED)),
    row("data",          "*",                   Scan,        NotYetProven),
];
