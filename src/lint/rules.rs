//! The rule table, as data: id, the squawk rule(s) it answers to, engines, default severity, a
//! paragraph on why, the documented fix, and whether `zerodown start` runs the change safely.
//! Engine claims in the explanations are rows of [`crate::analysis::facts`], which name their proofs.

use super::{Ctx, Severity, checks as c};
use crate::analysis::{Action, Engine, Statement};

/// How a rule looks at a file.
#[derive(Clone, Copy)]
pub enum Check {
    /// Once per action of each statement.
    Action(fn(&Ctx, &Statement, &Action) -> Option<String>),
    /// Once per statement.
    Statement(fn(&Ctx, &Statement) -> Option<String>),
}

pub struct Rule {
    pub id: &'static str,
    /// squawk's rule(s) for the same danger (empty where squawk has none).
    pub squawk: &'static [&'static str],
    pub engines: &'static [Engine],
    pub severity: Severity,
    pub explanation: &'static str,
    pub fix: &'static str,
    /// `zerodown start` covers the change: "run it with `zerodown start`".
    pub zerodown: bool,
    pub check: Check,
}

impl serde::Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Rule", 7)?;
        st.serialize_field("id", self.id)?;
        st.serialize_field("squawk", self.squawk)?;
        st.serialize_field("engines", self.engines)?;
        st.serialize_field("severity", &self.severity)?;
        st.serialize_field("explanation", self.explanation)?;
        st.serialize_field("fix", self.fix)?;
        st.serialize_field("zerodown", &self.zerodown)?;
        st.end()
    }
}

const PG: &[Engine] = &[Engine::Postgres];
const MY: &[Engine] = &[Engine::Mysql, Engine::Mariadb];
const PG_MY: &[Engine] = &[Engine::Postgres, Engine::Mysql, Engine::Mariadb];
const PG_SQ: &[Engine] = &[Engine::Postgres, Engine::Sqlite];
const SQ: &[Engine] = &[Engine::Sqlite];
const ALL: &[Engine] = &Engine::ALL;

use Check::{Action as A, Statement as S};
use Severity::{Error as E, Warning as W};

pub fn by_id(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

pub static RULES: &[Rule] = &[
    Rule {
        id: "add-column-volatile-default",
        squawk: &["adding-field-with-default"],
        engines: ALL,
        severity: E,
        explanation: "A column whose default is evaluated per row (random(), gen_random_uuid(), \
            uuid(), clock_timestamp()), a stored generated column or a serial/identity column has a \
            value to write into every existing row. PostgreSQL rewrites the table under ACCESS \
            EXCLUSIVE (reads and writes wait for the whole rewrite); MariaDB/MySQL rebuild it; \
            SQLite refuses the statement. A constant or now()-style default is catalog-only on \
            PostgreSQL 11+ and instant on MariaDB 10.4+/MySQL 8.0.29+.",
        fix: "Add the column without the default (or with a constant one), set the default for new \
            rows, then fill existing rows in small batches. zerodown start does exactly this: add, \
            dual-write trigger, keyset backfill.",
        zerodown: true,
        check: A(c::add_column_rewrite),
    },
    Rule {
        id: "add-column-required",
        squawk: &["adding-required-field"],
        engines: PG_SQ,
        severity: E,
        explanation: "ADD COLUMN … NOT NULL with no default fails on any table that has rows \
            (PostgreSQL and SQLite refuse it; MySQL/MariaDB fill an implicit value instead).",
        fix: "Give the column a default, or add it nullable, backfill, then add NOT NULL the safe \
            way (a validated CHECK, then SET NOT NULL). zerodown start takes a backfill expression \
            and does all of it.",
        zerodown: true,
        check: A(c::add_column_required),
    },
    Rule {
        id: "set-not-null",
        squawk: &["adding-not-nullable-field"],
        engines: PG,
        severity: E,
        explanation: "ALTER COLUMN … SET NOT NULL reads every row under ACCESS EXCLUSIVE: reads \
            and writes wait for the whole scan. From PostgreSQL 12 the scan is skipped when a \
            validated CHECK (col IS NOT NULL) already proves it.",
        fix: "ADD CONSTRAINT c CHECK (col IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT c (in a later \
            transaction); SET NOT NULL; DROP CONSTRAINT c. zerodown start does this sequence.",
        zerodown: true,
        check: A(c::set_not_null),
    },
    Rule {
        id: "add-foreign-key",
        squawk: &[
            "adding-foreign-key-constraint",
            "constraint-missing-not-valid",
        ],
        engines: PG_MY,
        severity: E,
        explanation: "A foreign key added in one step is checked against every row while both \
            tables are locked: PostgreSQL holds SHARE ROW EXCLUSIVE on both (writes wait for the \
            scan); InnoDB with foreign_key_checks on copies the table (ALGORITHM=COPY). An inline \
            REFERENCES in ADD COLUMN is the same.",
        fix: "PostgreSQL: ADD CONSTRAINT … FOREIGN KEY … NOT VALID, then VALIDATE CONSTRAINT in a \
            later transaction. MariaDB/MySQL: SET foreign_key_checks = 0 for the ALTER (instant), \
            then check for orphans with a query. zerodown start does either.",
        zerodown: true,
        check: A(c::add_foreign_key),
    },
    Rule {
        id: "add-check",
        squawk: &["constraint-missing-not-valid"],
        engines: PG_MY,
        severity: E,
        explanation: "A CHECK added in one step reads every row: PostgreSQL holds ACCESS EXCLUSIVE \
            for the scan (reads and writes wait); MariaDB/MySQL copy the table (ALGORITHM=COPY). \
            A CHECK written inline in ADD COLUMN is validated the same way.",
        fix: "PostgreSQL: ADD CONSTRAINT … CHECK (…) NOT VALID, then VALIDATE CONSTRAINT in a later \
            transaction (SHARE UPDATE EXCLUSIVE: reads and writes go on). zerodown start does this.",
        zerodown: true,
        check: A(c::add_check),
    },
    Rule {
        id: "add-unique-constraint",
        squawk: &["disallowed-unique-constraint"],
        engines: PG,
        severity: E,
        explanation: "ADD CONSTRAINT … UNIQUE (or an inline UNIQUE) builds its index under ACCESS \
            EXCLUSIVE: reads and writes wait for the whole build.",
        fix: "CREATE UNIQUE INDEX CONCURRENTLY ix ON t (col); then ALTER TABLE t ADD CONSTRAINT c \
            UNIQUE USING INDEX ix.",
        zerodown: false,
        check: A(c::add_unique),
    },
    Rule {
        id: "add-primary-key",
        squawk: &["adding-serial-primary-key-field"],
        engines: PG,
        severity: E,
        explanation: "ADD PRIMARY KEY builds its index (and checks NOT NULL) under ACCESS \
            EXCLUSIVE: reads and writes wait for the whole build.",
        fix: "CREATE UNIQUE INDEX CONCURRENTLY ix ON t (id); then ALTER TABLE t ADD CONSTRAINT pk \
            PRIMARY KEY USING INDEX ix.",
        zerodown: false,
        check: A(c::add_primary_key),
    },
    Rule {
        id: "create-index-blocking",
        squawk: &["require-concurrent-index-creation"],
        engines: PG_SQ,
        severity: E,
        explanation: "CREATE INDEX without CONCURRENTLY holds SHARE on PostgreSQL: reads go on, \
            writes wait for the whole build. On SQLite the build holds the database's write lock. \
            (MariaDB/MySQL build indexes online by default.) An index on a table created in the \
            same file is fine.",
        fix: "PostgreSQL: CREATE INDEX CONCURRENTLY, outside a transaction block. zerodown start \
            builds it online, keeps its name, and rebuilds it if a build fails.",
        zerodown: true,
        check: A(c::create_index_blocking),
    },
    Rule {
        id: "concurrently-in-transaction",
        squawk: &["ban-concurrent-index-creation-in-transaction"],
        engines: PG,
        severity: E,
        explanation: "CREATE/DROP INDEX CONCURRENTLY, REINDEX CONCURRENTLY and DETACH PARTITION \
            CONCURRENTLY cannot run inside a transaction block: PostgreSQL refuses the statement.",
        fix: "Move the statement out of BEGIN … COMMIT (sqlx: `-- no-transaction`; goose: `-- +goose \
            NO TRANSACTION`; Rails: disable_ddl_transaction!; set assume_in_transaction = false in \
            zerodown-lint.toml when the tool does not wrap it).",
        zerodown: true,
        check: A(c::concurrently_in_transaction),
    },
    Rule {
        id: "drop-index-blocking",
        squawk: &["require-concurrent-index-deletion"],
        engines: PG,
        severity: W,
        explanation: "DROP INDEX without CONCURRENTLY takes ACCESS EXCLUSIVE on the index's table; \
            while it waits for running queries, everything else on the table queues behind it.",
        fix: "DROP INDEX CONCURRENTLY, outside a transaction block.",
        zerodown: false,
        check: A(c::drop_index_blocking),
    },
    Rule {
        id: "change-column-type",
        squawk: &["changing-column-type"],
        engines: PG_MY,
        severity: E,
        explanation: "Changing a column's type rewrites the table unless the conversion is binary \
            compatible (PostgreSQL: ACCESS EXCLUSIVE for the whole rewrite; MariaDB/MySQL: \
            ALGORITHM=COPY, writes wait). MySQL MODIFY/CHANGE restate the whole column and count \
            as a type change.",
        fix: "Add a new column of the new type, dual-write and backfill it, switch the code, then \
            drop the old column in a later deploy.",
        zerodown: false,
        check: A(c::change_column_type),
    },
    Rule {
        id: "rename-column",
        squawk: &["renaming-column"],
        engines: ALL,
        severity: E,
        explanation: "Renaming is instant for the engine but breaks every running version of the \
            application that still uses the old name: during a deploy, old and new code run at \
            the same time.",
        fix: "Add the new column, dual-write, backfill, switch reads, then drop the old column \
            once no running version uses it.",
        zerodown: false,
        check: A(c::rename_column),
    },
    Rule {
        id: "rename-table",
        squawk: &["renaming-table"],
        engines: ALL,
        severity: E,
        explanation: "Renaming a table breaks every running version that still uses the old name.",
        fix: "Create the new table (or a view under the new name), move the code over in a deploy, \
            then drop the old name.",
        zerodown: false,
        check: A(c::rename_table),
    },
    Rule {
        id: "drop-column",
        squawk: &["ban-drop-column"],
        engines: ALL,
        severity: E,
        explanation: "Dropping a column that running code still reads or writes makes that code \
            fail (ORMs often select every column they know). SQLite also rewrites the table to drop \
            it.",
        fix: "First deploy code that no longer uses the column (Rails: ignored_columns; Django: \
            remove the field with SeparateDatabaseAndState), then drop it in a later migration.",
        zerodown: false,
        check: A(c::drop_column),
    },
    Rule {
        id: "drop-table",
        squawk: &["ban-drop-table"],
        engines: ALL,
        severity: E,
        explanation: "Dropping a table that running code still uses makes that code fail.",
        fix: "Deploy code that no longer uses the table first; drop it in a later migration.",
        zerodown: false,
        check: A(c::drop_table),
    },
    Rule {
        id: "drop-database",
        squawk: &["ban-drop-database"],
        engines: PG_MY,
        severity: E,
        explanation: "DROP DATABASE in a migration destroys everything in it.",
        fix: "Do not drop databases from migrations.",
        zerodown: false,
        check: A(c::drop_database),
    },
    Rule {
        id: "drop-not-null",
        squawk: &["ban-drop-not-null"],
        engines: PG,
        severity: W,
        explanation: "After DROP NOT NULL the column may hold NULL; running code that assumes it \
            never does may fail.",
        fix: "Deploy code that handles NULL first.",
        zerodown: false,
        check: A(c::drop_not_null),
    },
    Rule {
        id: "drop-default",
        squawk: &["ban-drop-default"],
        engines: PG_MY,
        severity: W,
        explanation: "After DROP DEFAULT, running code that omits the column writes NULL (or fails \
            on NOT NULL). Not reported for Django's idiom, ADD COLUMN … DEFAULT x then DROP \
            DEFAULT in the same file: that is one add whose existing rows get x.",
        fix: "Deploy code that always writes the column first; or let zerodown start run the add \
            with a fill and no lasting default.",
        zerodown: true,
        check: A(c::drop_default),
    },
    Rule {
        id: "truncate-cascade",
        squawk: &["ban-truncate-cascade"],
        engines: PG,
        severity: E,
        explanation: "TRUNCATE … CASCADE also empties every table with a foreign key to it, \
            recursively, under ACCESS EXCLUSIVE.",
        fix: "Name every table to truncate explicitly.",
        zerodown: false,
        check: A(c::truncate_cascade),
    },
    Rule {
        id: "transaction-nesting",
        squawk: &["transaction-nesting"],
        engines: ALL,
        severity: E,
        explanation: "BEGIN inside an open transaction: PostgreSQL warns and ignores it, so the \
            COMMIT meant for the inner block ends the outer one early; SQLite refuses it.",
        fix: "One BEGIN … COMMIT per file, or none when the tool wraps the migration itself.",
        zerodown: false,
        check: S(c::transaction_nesting),
    },
    Rule {
        id: "uncommitted-transaction",
        squawk: &["ban-uncommitted-transaction"],
        engines: ALL,
        severity: E,
        explanation: "The file opens a transaction and never commits it: its locks are held until \
            the session ends, and the changes may be rolled back.",
        fix: "End the file with COMMIT.",
        zerodown: false,
        check: S(c::never),
    },
    Rule {
        id: "missing-lock-timeout",
        squawk: &["require-lock-timeout", "require-timeout-settings"],
        engines: PG_MY,
        severity: W,
        explanation: "A statement that needs a table lock waits for every running transaction on \
            the table, and while it waits every new query on the table queues behind it: one long \
            report query becomes an outage. A lock timeout makes the migration give up instead. \
            Reported once per file, at the first statement that waits for a lock.",
        fix: "SET lock_timeout = '2s' (MySQL/MariaDB: SET SESSION lock_wait_timeout = 2) at the \
            top, and retry on timeout. zerodown start sets its own and retries with backoff.",
        zerodown: true,
        check: S(c::missing_lock_timeout),
    },
    Rule {
        id: "missing-statement-timeout",
        squawk: &["require-statement-timeout", "require-timeout-settings"],
        engines: PG,
        severity: W,
        explanation: "Without a statement timeout a statement that holds a lock (a validation, a \
            rewrite) runs as long as it takes. Reported once per file.",
        fix: "SET statement_timeout = '5s' at the top for lock-holding statements; run long \
            scans (VALIDATE, CREATE INDEX CONCURRENTLY) where a long runtime is harmless.",
        zerodown: true,
        check: S(c::missing_statement_timeout),
    },
    Rule {
        id: "reindex-blocking",
        squawk: &["require-concurrent-reindex"],
        engines: PG,
        severity: E,
        explanation: "REINDEX without CONCURRENTLY locks out writes to the table (and reads that \
            would use the index) for the whole rebuild.",
        fix: "REINDEX … CONCURRENTLY (PostgreSQL 12+), outside a transaction block.",
        zerodown: false,
        check: A(c::reindex_blocking),
    },
    Rule {
        id: "detach-partition-blocking",
        squawk: &["require-concurrent-partition-detach"],
        engines: PG,
        severity: E,
        explanation: "DETACH PARTITION without CONCURRENTLY takes ACCESS EXCLUSIVE on the \
            partitioned table.",
        fix: "ALTER TABLE … DETACH PARTITION … CONCURRENTLY (PostgreSQL 14+), outside a \
            transaction block.",
        zerodown: false,
        check: A(c::detach_blocking),
    },
    Rule {
        id: "rewrite-table",
        squawk: &["prefer-repack"],
        engines: PG,
        severity: E,
        explanation: "VACUUM FULL and CLUSTER rewrite the whole table under ACCESS EXCLUSIVE: reads \
            and writes wait for the rewrite.",
        fix: "pg_repack (or REPACK CONCURRENTLY on PostgreSQL 19), outside migrations.",
        zerodown: false,
        check: A(c::rewrite_table),
    },
    Rule {
        id: "alter-domain-add-constraint",
        squawk: &["ban-alter-domain-with-add-constraint"],
        engines: PG,
        severity: E,
        explanation: "ALTER DOMAIN … ADD CONSTRAINT checks every column of every table that uses \
            the domain, under locks that block writes.",
        fix: "Put the CHECK on the tables (NOT VALID, then VALIDATE) instead of the domain.",
        zerodown: false,
        check: A(c::alter_domain_add_constraint),
    },
    Rule {
        id: "create-domain-with-constraint",
        squawk: &["ban-create-domain-with-constraint"],
        engines: PG,
        severity: W,
        explanation: "A domain's constraint cannot later be changed without checking every table \
            that uses it.",
        fix: "Create the domain without a constraint; put CHECKs on the tables.",
        zerodown: false,
        check: A(c::create_domain_with_constraint),
    },
    Rule {
        id: "long-statement-after-lock",
        squawk: &["constraint-missing-not-valid"],
        engines: PG,
        severity: W,
        explanation: "In one transaction, a statement that reads or rewrites the table (CREATE \
            INDEX, VALIDATE CONSTRAINT, a whole-table UPDATE) after one that took ACCESS EXCLUSIVE \
            (ADD COLUMN, ADD CONSTRAINT … NOT VALID): the lock is held until COMMIT, so reads and \
            writes wait for the long statement too. VALIDATE in the same transaction as its NOT \
            VALID gains nothing.",
        fix: "Commit after the short lock-taking statements; run the long one in its own \
            transaction (or CONCURRENTLY, outside one). zerodown start splits the steps this way.",
        zerodown: true,
        check: S(c::long_statement_after_lock),
    },
    Rule {
        id: "algorithm-copy",
        squawk: &[],
        engines: MY,
        severity: E,
        explanation: "ALGORITHM=COPY makes InnoDB copy the whole table while writes wait; \
            LOCK=SHARED blocks writes and LOCK=EXCLUSIVE reads and writes for the whole ALTER.",
        fix: "Ask for ALGORITHM=INSTANT, or ALGORITHM=INPLACE, LOCK=NONE, so the server refuses \
            rather than blocks; when neither is possible, use the expand/backfill path \
            (zerodown start).",
        zerodown: true,
        check: S(c::algorithm_copy),
    },
    Rule {
        id: "add-column-position",
        squawk: &[],
        engines: MY,
        severity: W,
        explanation: "ADD COLUMN … FIRST/AFTER is instant only on MariaDB 10.4+ and MySQL 8.0.29+; \
            on older servers it rebuilds the table.",
        fix: "Drop the FIRST/AFTER clause (column order rarely matters to code), or upgrade.",
        zerodown: true,
        check: A(c::add_column_position),
    },
    Rule {
        id: "sqlite-table-copy",
        squawk: &[],
        engines: SQ,
        severity: E,
        explanation: "Copying a whole table into a new one (Django's SQLite remake: CREATE TABLE \
            \"new__t\"; INSERT … SELECT … FROM t; DROP TABLE t; RENAME) holds SQLite's only write \
            lock for the whole copy: every writer waits.",
        fix: "When the remake only adds columns or constraints, zerodown start runs it as those \
            operations (ADD COLUMN plus a batched backfill); otherwise run it in a maintenance \
            window.",
        zerodown: true,
        check: A(c::sqlite_table_copy),
    },
    Rule {
        id: "whole-table-write",
        squawk: &[],
        engines: ALL,
        severity: W,
        explanation: "An UPDATE or DELETE with no WHERE touches every row in one statement: each \
            row stays locked until it commits (and SQLite's write lock is held throughout), so \
            writers to the table wait.",
        fix: "Backfill in small keyset batches, each its own transaction. zerodown start does this \
            for a new column's fill.",
        zerodown: true,
        check: A(c::whole_table_write),
    },
    Rule {
        id: "unknown-object",
        squawk: &[],
        engines: ALL,
        severity: E,
        explanation: "Online only (with a database URL): the statement names a table or column \
            that the database does not have and that the file has not created, or adds a column \
            that is already there. The statement fails when it runs, and in a file run as one \
            transaction every change before it is rolled back.",
        fix: "Check the name against the schema (a typo, a missing earlier migration, or the wrong \
            database in the URL).",
        zerodown: false,
        check: S(c::never),
    },
];
