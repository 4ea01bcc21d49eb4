//! MySQL and MariaDB rows of the engine-facts table. MariaDB rows are proven on Debian's MariaDB
//! (10.11); MySQL 8 rows come from its manual ("Online DDL Operations") and are documented, not run.
//! MySQL and MariaDB never block reads for these statements (InnoDB online DDL keeps readers going);
//! every ALTER takes a brief exclusive metadata lock at its start and end.

use super::Engine::{Mariadb as MDB, Mysql as MY};
use super::Version as V;
use super::facts::{Cost, Cost::*, Fact, Proof, Proof::*};

const MDL: &str = "metadata lock (exclusive, brief)";
const INPLACE: &str = "ALGORITHM=INPLACE, LOCK=NONE (metadata lock at start and end)";
const COPY: &str = "ALGORITHM=COPY (writes wait for the whole copy)";
const NEW: &str = "none on existing tables";
const ROWS: &str = "every row locked";
const INSTANT: &str = "tests/mariadb_rules.rs::expand_runs_instant";
const CONTRACT: &str = "tests/mariadb_rules.rs::contract_steps_run_online_or_are_refused";
/// Runs each MariaDB row's statement under ALGORITHM=INSTANT / NOCOPY / INPLACE / COPY.
const PROBED: &str = "tests/analysis.rs::mariadb_facts_hold_on_the_real_engine";
const MANUAL: &str = "MySQL 8.0 manual, 17.12.1 Online DDL Operations";
const DOC: Proof = DocumentedNotRun(MANUAL);
const M104: V = V(10, 4, 0);
const M8: V = V(8, 0, 29);

#[allow(clippy::too_many_arguments)]
const fn row(
    engine: super::Engine,
    since: V,
    kind: &'static str,
    shape: &'static str,
    lock: &'static str,
    writes: bool,
    cost: Cost,
    proof: Proof,
) -> Fact {
    Fact {
        kind,
        shape,
        engine,
        since,
        until: None,
        lock,
        blocks_reads: false,
        blocks_writes: writes,
        cost,
        proof,
    }
}

#[rustfmt::skip]
pub(super) static FACTS: &[Fact] = &[
    //  engine     kind                  shape                  lock     writes cost         proof
    row(MDB, M104, "add_column",         "nullable",            MDL,     false, CatalogOnly, Test(INSTANT)),
    row(MDB, M104, "add_column",         "constant_default",    MDL,     false, CatalogOnly, Test(INSTANT)),
    row(MDB, M104, "add_column",         "stable_default",      MDL,     false, CatalogOnly, Test(INSTANT)),
    row(MDB, M104, "add_column",         "not_null_no_default", MDL,     false, CatalogOnly, Test(PROBED)),
    row(MDB, M104, "add_column",         "volatile_default",    COPY,    true,  Rewrite,     Test(INSTANT)),
    row(MDB, M104, "add_column",         "generated_stored",    COPY,    true,  Rewrite,     Test(PROBED)),
    row(MDB, M104, "add_column",         "serial",              COPY,    true,  Rewrite,     Test(PROBED)),
    row(MDB, M104, "create_index",       "*",                   INPLACE, false, Scan,        Test(CONTRACT)),
    row(MDB, M104, "add_foreign_key",    "*",                   COPY,    true,  Rewrite,     Test(CONTRACT)),
    row(MDB, M104, "add_check",          "*",                   COPY,    true,  Rewrite,     Test(CONTRACT)),
    row(MDB, M104, "change_column_type", "*",                   COPY,    true,  Rewrite,     Test(PROBED)),
    row(MDB, M104, "set_default",        "*",                   MDL,     false, CatalogOnly, Test(PROBED)),
    row(MDB, M104, "drop_default",       "*",                   MDL,     false, CatalogOnly, Test(PROBED)),
    row(MDB, M104, "rename_column",      "*",                   MDL,     false, CatalogOnly, Test(PROBED)),
    row(MDB, M104, "rename_table",       "*",                   MDL,     false, CatalogOnly, NotYetProven),
    row(MDB, M104, "drop_column",        "*",                   MDL,     false, CatalogOnly, Test(INSTANT)),
    row(MDB, M104, "drop_table",         "*",                   MDL,     false, CatalogOnly, NotYetProven),
    row(MDB, M104, "drop_index",         "*",                   INPLACE, false, CatalogOnly, Test(PROBED)),
    row(MDB, M104, "create_table",       "*",                   NEW,     false, CatalogOnly, NotYetProven),
    row(MDB, M104, "data",               "whole_table",         ROWS,    true,  Scan,        NotYetProven),
    // MySQL 8.0.29+: INSTANT ADD/DROP COLUMN at any position.
    row(MY,  M8,   "add_column",         "nullable",            MDL,     false, CatalogOnly, DOC),
    row(MY,  M8,   "add_column",         "constant_default",    MDL,     false, CatalogOnly, DOC),
    row(MY,  M8,   "add_column",         "stable_default",      INPLACE, false, Rewrite,     DOC),
    row(MY,  M8,   "add_column",         "volatile_default",    INPLACE, false, Rewrite,     DOC),
    row(MY,  M8,   "add_column",         "not_null_no_default", MDL,     false, CatalogOnly, DOC),
    row(MY,  M8,   "add_column",         "generated_stored",    COPY,    true,  Rewrite,     DOC),
    row(MY,  M8,   "add_column",         "serial",              INPLACE, false, Rewrite,     DOC),
    row(MY,  M8,   "create_index",       "*",                   INPLACE, false, Scan,        DOC),
    row(MY,  M8,   "add_foreign_key",    "*",                   COPY,    true,  Rewrite,     DOC),
    row(MY,  M8,   "add_check",          "*",                   COPY,    true,  Rewrite,     DOC),
    row(MY,  M8,   "change_column_type", "*",                   COPY,    true,  Rewrite,     DOC),
    row(MY,  M8,   "set_default",        "*",                   MDL,     false, CatalogOnly, DOC),
    row(MY,  M8,   "drop_default",       "*",                   MDL,     false, CatalogOnly, DOC),
    row(MY,  M8,   "rename_column",      "*",                   MDL,     false, CatalogOnly, DOC),
    row(MY,  M8,   "rename_table",       "*",                   MDL,     false, CatalogOnly, DOC),
    row(MY,  M8,   "drop_column",        "*",                   MDL,     false, CatalogOnly, DOC),
    row(MY,  M8,   "drop_table",         "*",                   MDL,     false, CatalogOnly, DOC),
    row(MY,  M8,   "drop_index",         "*",                   MDL,     false, CatalogOnly, DOC),
    row(MY,  M8,   "create_table",       "*",                   NEW,     false, CatalogOnly, DOC),
    row(MY,  M8,   "data",               "whole_table",         ROWS,    true,  Scan,        DOC),
    // MySQL before 8.0.29: INSTANT ADD COLUMN only as the last column; counted here as a rebuild.
    Fact { until: Some(M8), ..row(MY, V(8, 0, 0), "add_column", "*", INPLACE, false, Rewrite, DOC) },
];
