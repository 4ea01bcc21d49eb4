//! PostgreSQL rows of the engine-facts table (13–18 are tested; rows start where the behaviour began).

use super::Engine::Postgres as PG;
use super::Version as V;
use super::facts::{Cost, Cost::*, Fact, Proof, Proof::*};

const AX: &str = "ACCESS EXCLUSIVE";
const SUE: &str = "SHARE UPDATE EXCLUSIVE";
const SRX: &str = "SHARE ROW EXCLUSIVE (both tables)";
const LOCKS: &str = "tests/postgres_lifecycle.rs::every_step_takes_the_lock_it_claims";
const CATALOG: &str = "tests/postgres_lifecycle.rs::constant_and_time_defaults_are_catalog_only";
/// Runs each row's statement on PostgreSQL 13–18 and checks lock, who waits and cost.
const PROBED: &str = "tests/analysis.rs::postgres_facts_hold_on_the_real_engine";

#[allow(clippy::too_many_arguments)]
const fn row(
    kind: &'static str,
    shape: &'static str,
    lock: &'static str,
    reads: bool,
    writes: bool,
    cost: Cost,
    proof: Proof,
) -> Fact {
    Fact {
        kind,
        shape,
        engine: PG,
        since: V(11, 0, 0),
        until: None,
        lock,
        blocks_reads: reads,
        blocks_writes: writes,
        cost,
        proof,
    }
}

// SET NOT NULL skips its scan when a validated CHECK (col IS NOT NULL) exists (12+); LOCKS proves
// that on 13–17. The lint rule asks for that CHECK; the row is the plain statement.
#[rustfmt::skip]
pub(super) static FACTS: &[Fact] = &[
    //  kind                  shape                  lock  reads  writes cost         proof
    row("add_column",         "nullable",            AX,   true,  true,  CatalogOnly, Test(LOCKS)),
    row("add_column",         "constant_default",    AX,   true,  true,  CatalogOnly, Test(CATALOG)),
    row("add_column",         "stable_default",      AX,   true,  true,  CatalogOnly, Test(CATALOG)),
    row("add_column",         "volatile_default",    AX,   true,  true,  Rewrite,     Test(PROBED)),
    row("add_column",         "not_null_no_default", AX,   true,  true,  Fails,       Test(PROBED)),
    row("add_column",         "generated_stored",    AX,   true,  true,  Rewrite,     Test(PROBED)),
    row("add_column",         "serial",              AX,   true,  true,  Rewrite,     Test(PROBED)),
    // Before 11 any default, constant or not, rewrote the table.
    Fact { since: V(9, 0, 0), until: Some(V(11, 0, 0)), ..row("add_column", "constant_default", AX, true, true, Rewrite, NotYetProven) },
    Fact { since: V(9, 0, 0), until: Some(V(11, 0, 0)), ..row("add_column", "stable_default", AX, true, true, Rewrite, NotYetProven) },
    row("create_index",       "plain",               "SHARE", false, true, Scan,      Test(PROBED)),
    row("create_index",       "concurrently",        SUE,  false, false, Scan,        Test(LOCKS)),
    row("add_foreign_key",    "validated",           SRX,  false, true,  Scan,        Test(PROBED)),
    row("add_foreign_key",    "not_valid",           SRX,  false, true,  CatalogOnly, Test(LOCKS)),
    row("add_check",          "validated",           AX,   true,  true,  Scan,        Test(PROBED)),
    row("add_check",          "not_valid",           AX,   true,  true,  CatalogOnly, Test(LOCKS)),
    row("validate_constraint", "*", "SHARE UPDATE EXCLUSIVE (ROW SHARE on a referenced table)", false, false, Scan, Test(LOCKS)),
    row("set_not_null",       "*",                   AX,   true,  true,  Scan,        Test(PROBED)),
    row("drop_not_null",      "*",                   AX,   true,  true,  CatalogOnly, Test(PROBED)),
    row("set_default",        "*",                   AX,   true,  true,  CatalogOnly, Test(LOCKS)),
    row("drop_default",       "*",                   AX,   true,  true,  CatalogOnly, Test(PROBED)),
    row("change_column_type", "*",                   AX,   true,  true,  Rewrite,     Test(PROBED)),
    row("rename_column",      "*",                   AX,   true,  true,  CatalogOnly, Test(PROBED)),
    row("rename_table",       "*",                   AX,   true,  true,  CatalogOnly, Test(PROBED)),
    row("drop_column",        "*",                   AX,   true,  true,  CatalogOnly, Test(PROBED)),
    row("drop_constraint",    "*",                   AX,   true,  true,  CatalogOnly, Test(PROBED)),
    row("drop_table",         "*",                   AX,   true,  true,  CatalogOnly, NotYetProven),
    row("drop_index",         "plain",               AX,   true,  true,  CatalogOnly, Test(PROBED)),
    row("drop_index",         "concurrently",        SUE,  false, false, CatalogOnly, NotYetProven),
    row("add_unique",         "build",               AX,   true,  true,  Scan,        Test(PROBED)),
    row("add_unique",         "using_index",         AX,   true,  true,  CatalogOnly, Test(PROBED)),
    row("add_primary_key",    "build",               AX,   true,  true,  Scan,        Test(PROBED)),
    row("add_primary_key",    "using_index",         AX,   true,  true,  CatalogOnly, Test(PROBED)),
    row("create_table",       "*", "none on existing tables", false, false, CatalogOnly, Test(PROBED)),
    row("truncate",           "*",                   AX,   true,  true,  CatalogOnly, NotYetProven),
    row("reindex",            "plain", "SHARE (ACCESS EXCLUSIVE on the index)", true, true, Scan, NotYetProven),
    row("reindex",            "concurrently",        SUE,  false, false, Scan,        NotYetProven),
    row("rewrite_table",      "*",                   AX,   true,  true,  Rewrite,     Test(PROBED)),
    row("detach_partition",   "plain",               AX,   true,  true,  CatalogOnly, NotYetProven),
    row("detach_partition",   "concurrently",        SUE,  false, false, CatalogOnly, NotYetProven),
    row("alter_domain_add_constraint", "*", "SHARE on every table using the domain", false, true, Scan, NotYetProven),
    row("data",               "whole_table", "ROW EXCLUSIVE, every row locked", false, true, Scan, Test(PROBED)),
    row("data",               "rows",        "ROW EXCLUSIVE, the rows written", false, false, CatalogOnly, NotYetProven),
];
