//! The shared statement analysis over the migration corpus (tests/corpus): every file is read without
//! error, and its statements become what tests/corpus/manifest.toml says (operations, refusals,
//! scaffolding, bookkeeping). No database: the analysis is engine-independent.

#[macro_use]
mod support;
mod sqlite_util;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use zerodown::analysis::{self, Class, Engine, Scaffold, Version, facts, operations};

#[derive(serde::Deserialize)]
struct Manifest {
    file: Vec<Entry>,
}

#[derive(serde::Deserialize)]
struct Entry {
    path: String,
    engine: String,
    role: String,
    #[serde(default)]
    operations: Vec<String>,
    #[serde(default)]
    scaffolding: Vec<String>,
    #[serde(default)]
    bookkeeping: Vec<String>,
    #[serde(default)]
    refuse: Vec<Refuse>,
}

#[derive(serde::Deserialize)]
struct Refuse {
    statement: String,
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn manifest() -> Manifest {
    toml::from_str(&std::fs::read_to_string(corpus().join("manifest.toml")).unwrap()).unwrap()
}

fn engine(name: &str) -> Engine {
    match name {
        "postgresql" => Engine::Postgres,
        "mysql" => Engine::Mariadb,
        "sqlite" => Engine::Sqlite,
        other => panic!("engine {other}"),
    }
}

fn read(e: &Entry) -> analysis::File {
    let text = std::fs::read_to_string(corpus().join(&e.path)).unwrap();
    analysis::read(&e.path, &text, engine(&e.engine))
}

/// A manifest operation as (verb, subject): the subject is its first word, `(unnamed)` for an
/// unnamed constraint.
fn expected(op: &str) -> (String, String) {
    let (verb, rest) = op.split_once(' ').unwrap();
    let subject = if rest.starts_with("(unnamed") {
        "(unnamed)".to_string()
    } else {
        rest.split_whitespace().next().unwrap().to_string()
    };
    (verb.to_string(), subject)
}

#[test]
fn every_corpus_file_is_read_and_folded_as_the_manifest_says() {
    let m = manifest();
    let (mut files, mut statements, mut ops) = (0, 0, 0);
    let mut failures = Vec::new();
    for e in m.file.iter().filter(|e| e.path.ends_with(".sql")) {
        let file = read(e);
        files += 1;
        statements += file.statements.len();
        let errors = file.errors();
        if !errors.is_empty() {
            failures.push(format!("{}: unreadable: {errors:?}", e.path));
            continue;
        }
        if e.role == "down" {
            continue;
        }
        let folded = operations::fold(&file);
        let got: Vec<(String, String)> = folded
            .operations
            .iter()
            .map(|o| (o.verb.to_string(), o.subject.clone()))
            .collect();
        let want: Vec<(String, String)> = e.operations.iter().map(|o| expected(o)).collect();
        ops += got.len();
        if got != want {
            failures.push(format!(
                "{}: operations\n  got  {got:?}\n  want {want:?}",
                e.path
            ));
        }
        let refused: Vec<&str> = folded
            .refusals
            .iter()
            .map(|r| r.statement.as_str())
            .collect();
        let want_refused: Vec<&str> = e.refuse.iter().map(|r| r.statement.as_str()).collect();
        if refused != want_refused {
            failures.push(format!(
                "{}: refusals\n  got  {refused:?}\n  want {want_refused:?}",
                e.path
            ));
        }
        let kept = file
            .statements
            .iter()
            .filter(|s| s.bookkeeping.is_some())
            .count();
        if kept != e.bookkeeping.len() {
            failures.push(format!(
                "{}: {kept} bookkeeping statements, manifest lists {}",
                e.path,
                e.bookkeeping.len()
            ));
        }
        for want in &e.scaffolding {
            if !scaffolding_found(&file, want) {
                failures.push(format!("{}: scaffolding {want:?} not recognised", e.path));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("{files} files, {statements} statements, {ops} operations as the manifest says");
    assert!(files >= 85, "only {files} corpus files");
}

/// A manifest scaffolding entry is a statement (`BEGIN`, `SET …`, `SELECT 'up SQL query'`) read as
/// scaffolding, or a tool annotation comment (`-- +goose Up`, `--changeset …`).
fn scaffolding_found(file: &analysis::File, want: &str) -> bool {
    let head = want
        .split(['…', '('])
        .next()
        .unwrap()
        .trim()
        .to_ascii_lowercase();
    if want.starts_with("--") {
        return file
            .annotations
            .iter()
            .any(|a| a.text.to_ascii_lowercase().starts_with(&head));
    }
    file.statements.iter().any(|s| {
        matches!(s.class, Class::Scaffolding(_)) && s.text.to_ascii_lowercase().starts_with(&head)
    })
}

#[test]
fn a_bad_statement_is_located_and_hides_nothing() {
    let sql =
        "ALTER TABLE t ADD COLUMN a int;\nALTER TABLE t FROBNICATE;\nCREATE INDEX i ON t (a);\n";
    let file = analysis::read("bad.sql", sql, Engine::Postgres);
    assert_eq!(file.statements.len(), 3);
    let errors = file.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("bad.sql:2:1: "), "{errors:?}");
    assert!(errors[0].contains("zerodown-ignore"), "{errors:?}");
    assert_eq!(file.statements[2].actions()[0].kind.tag(), "create_index");
}

#[test]
fn a_file_that_cannot_be_split_is_one_located_error() {
    let sql = "ALTER TABLE t ADD COLUMN a int;\nALTER TABLE t ADD COLUMN b text DEFAULT 'oops;\n";
    let file = analysis::read("broken.sql", sql, Engine::Postgres);
    let errors = file.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("broken.sql:2:"), "{errors:?}");
    assert!(
        errors[0].contains("check quotes and comments"),
        "{errors:?}"
    );
}

#[test]
fn clauses_become_actions_with_their_subject() {
    let sql = r#"
SET lock_timeout = '1s';
BEGIN;
ALTER TABLE "billing"."Invoice" ADD COLUMN "a" int, ADD "b" text DEFAULT now() NOT NULL;
ALTER TABLE invoices ADD CONSTRAINT fk FOREIGN KEY (c) REFERENCES customers (id) NOT VALID;
ALTER TABLE invoices VALIDATE CONSTRAINT fk;
ALTER TABLE invoices ALTER COLUMN c SET NOT NULL, ALTER COLUMN d SET DEFAULT random();
CREATE UNIQUE INDEX CONCURRENTLY ix ON billing.invoices (c);
DROP INDEX CONCURRENTLY IF EXISTS billing.ix;
COMMIT;
"#;
    let file = analysis::read("x.sql", sql, Engine::Postgres);
    assert!(file.errors().is_empty(), "{:?}", file.errors());
    let tags: Vec<String> = file
        .statements
        .iter()
        .flat_map(|s| match &s.class {
            Class::Scaffolding(Scaffold::Set { name, .. }) => vec![format!("set {name}")],
            Class::Scaffolding(sc) => vec![format!("{sc:?}")],
            _ => s
                .actions()
                .iter()
                .map(|a| {
                    format!(
                        "{} {} {}",
                        a.kind.tag(),
                        a.table.as_ref().map(|t| t.to_string()).unwrap_or_default(),
                        facts::shape(&a.kind)
                    )
                })
                .collect(),
        })
        .collect();
    assert_eq!(
        tags,
        [
            "set lock_timeout",
            "Begin",
            "add_column billing.Invoice nullable",
            "add_column billing.Invoice stable_default",
            "add_foreign_key invoices not_valid",
            "validate_constraint invoices *",
            "set_not_null invoices *",
            "set_default invoices *",
            "create_index billing.invoices concurrently",
            "drop_index  concurrently",
            "Commit",
        ]
    );
    assert_eq!(file.statements[2].line, 4);
    assert!(file.statements[2].in_transaction);
}

#[test]
fn goose_down_sections_and_liquibase_lines_are_not_the_migration() {
    let goose = "-- +goose Up\nALTER TABLE t ADD COLUMN a int;\n-- +goose Down\nALTER TABLE t DROP COLUMN a;\n";
    let file = analysis::read("g.sql", goose, Engine::Mysql);
    assert_eq!(file.statements.len(), 1);
    assert_eq!(file.annotations.len(), 2);
    let lb = "--liquibase formatted sql\n--changeset a:1\nALTER TABLE t ADD COLUMN a int;\n--rollback ALTER TABLE t DROP COLUMN a;\n";
    let file = analysis::read("l.sql", lb, Engine::Mysql);
    assert!(file.errors().is_empty(), "{:?}", file.errors());
    assert_eq!(file.statements.len(), 1);
    assert_eq!(file.statements[0].line, 3);
}

/// Every row's proof names a test function that exists in the named file under tests/.
#[test]
fn every_fact_names_a_real_test_or_says_it_is_not_proven() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut proven = 0;
    for f in facts::all() {
        if let facts::Proof::Test(t) = f.proof {
            facts::named_test_exists(root, t).unwrap();
            proven += 1;
        }
        if f.engine == Engine::Mysql {
            assert!(matches!(f.proof, facts::Proof::DocumentedNotRun(_)));
        }
    }
    let count = |e: Engine| facts::all().filter(|f| f.engine == e).count();
    eprintln!(
        "facts: {} rows, {proven} proven by a test; postgres {}, mariadb {}, mysql {}, sqlite {}",
        facts::all().count(),
        count(Engine::Postgres),
        count(Engine::Mariadb),
        count(Engine::Mysql),
        count(Engine::Sqlite)
    );
    assert!(proven >= 15, "{proven}");
}

#[test]
fn procedural_bodies_and_statement_settings_are_read_whole() {
    let sqlite = "CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  UPDATE t SET c = 'x' WHERE id = NEW.id;\n  SELECT CASE WHEN 1 THEN 2 END;\nEND;\nALTER TABLE t ADD COLUMN d int;\n";
    let file = analysis::read("s.sql", sqlite, Engine::Sqlite);
    assert!(file.errors().is_empty(), "{:?}", file.errors());
    assert_eq!(file.statements.len(), 2);
    assert_eq!(file.statements[1].line, 5);

    let pg = "DO $$ BEGIN PERFORM 1; END $$;\nCREATE FUNCTION f() RETURNS int AS $$ BEGIN RETURN 1; END; $$ LANGUAGE plpgsql;\n";
    let file = analysis::read("p.sql", pg, Engine::Postgres);
    assert!(file.errors().is_empty(), "{:?}", file.errors());
    assert_eq!(file.statements.len(), 2);

    let maria = "SET STATEMENT lock_wait_timeout=1, max_statement_time=5 FOR ALTER TABLE t ADD COLUMN c int;";
    let file = analysis::read("m.sql", maria, Engine::Mariadb);
    assert!(file.errors().is_empty(), "{:?}", file.errors());
    let s = &file.statements[0];
    assert_eq!(s.settings, ["lock_wait_timeout", "max_statement_time"]);
    assert_eq!(s.actions()[0].kind.tag(), "add_column");
}

#[test]
fn an_ignore_all_comment_accepts_a_statement_the_reader_cannot_read() {
    let sql =
        "-- zerodown-ignore all\nALTER TABLE t FROBNICATE;\nALTER TABLE t ADD COLUMN a int;\n";
    let file = analysis::read("x.sql", sql, Engine::Postgres);
    assert!(file.errors().is_empty(), "{:?}", file.errors());
    assert_eq!(file.statements.len(), 2);
}

/// A statement that shows each PostgreSQL fact row on a real server: (kind, shape, statement, whether
/// to check the cost). Statements that cannot run in a transaction block (CONCURRENTLY, VACUUM FULL)
/// are proven elsewhere or not yet.
#[rustfmt::skip]
const PG_PROBES: &[(&str, &str, &str, bool)] = &[
    ("add_column", "nullable", "ALTER TABLE t ADD COLUMN x int", true),
    ("add_column", "constant_default", "ALTER TABLE t ADD COLUMN x int NOT NULL DEFAULT 5", true),
    ("add_column", "stable_default", "ALTER TABLE t ADD COLUMN x timestamptz DEFAULT now()", true),
    ("add_column", "volatile_default", "ALTER TABLE t ADD COLUMN x float8 DEFAULT random()", true),
    ("add_column", "not_null_no_default", "ALTER TABLE t ADD COLUMN x int NOT NULL", true),
    ("add_column", "generated_stored", "ALTER TABLE t ADD COLUMN x bigint GENERATED ALWAYS AS (id * 2) STORED", true),
    ("add_column", "serial", "ALTER TABLE t ADD COLUMN x bigserial", true),
    ("create_index", "plain", "CREATE INDEX ix_probe ON t (v)", true),
    ("add_foreign_key", "validated", "ALTER TABLE t ADD CONSTRAINT fk_probe FOREIGN KEY (pid) REFERENCES p (id)", true),
    ("add_foreign_key", "not_valid", "ALTER TABLE t ADD CONSTRAINT fk_probe FOREIGN KEY (pid) REFERENCES p (id) NOT VALID", true),
    ("add_check", "validated", "ALTER TABLE t ADD CONSTRAINT ck_probe CHECK (v >= 0)", true),
    ("add_check", "not_valid", "ALTER TABLE t ADD CONSTRAINT ck_probe CHECK (v >= 0) NOT VALID", true),
    ("validate_constraint", "*", "ALTER TABLE t VALIDATE CONSTRAINT ck_nv", true),
    ("set_not_null", "*", "ALTER TABLE t ALTER COLUMN v SET NOT NULL", true),
    ("drop_not_null", "*", "ALTER TABLE t ALTER COLUMN w DROP NOT NULL", true),
    ("set_default", "*", "ALTER TABLE t ALTER COLUMN v SET DEFAULT 0", true),
    ("drop_default", "*", "ALTER TABLE t ALTER COLUMN w DROP DEFAULT", true),
    ("change_column_type", "*", "ALTER TABLE t ALTER COLUMN v TYPE bigint", true),
    ("rename_column", "*", "ALTER TABLE t RENAME COLUMN v TO v2", true),
    ("rename_table", "*", "ALTER TABLE t RENAME TO t2", true),
    ("drop_column", "*", "ALTER TABLE t DROP COLUMN w", true),
    ("drop_constraint", "*", "ALTER TABLE t DROP CONSTRAINT ck_nv", true),
    ("drop_table", "*", "DROP TABLE t", false),
    ("drop_index", "plain", "DROP INDEX ix_v", true),
    ("add_unique", "build", "ALTER TABLE t ADD CONSTRAINT u_probe UNIQUE (v)", true),
    ("add_unique", "using_index", "ALTER TABLE t ADD CONSTRAINT u_probe UNIQUE USING INDEX ux_id", true),
    ("add_primary_key", "build", "ALTER TABLE t ADD PRIMARY KEY (id)", true),
    ("add_primary_key", "using_index", "ALTER TABLE t ADD CONSTRAINT pk_probe PRIMARY KEY USING INDEX ux_id", true),
    ("create_table", "*", "CREATE TABLE n (id int)", true),
    ("truncate", "*", "TRUNCATE t", false),
    ("reindex", "plain", "REINDEX TABLE t", false),
    ("rewrite_table", "*", "CLUSTER t USING ix_v", true),
    ("data", "whole_table", "UPDATE t SET v = v", true),
];

/// `ShareRowExclusiveLock` -> `SHARE ROW EXCLUSIVE`.
fn lock_words(mode: &str) -> String {
    let mut out = String::new();
    for ch in mode.trim_end_matches("Lock").chars() {
        if ch.is_uppercase() && !out.is_empty() {
            out.push(' ');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

const MODES: &[&str] = &[
    "ACCESS SHARE",
    "ROW SHARE",
    "ROW EXCLUSIVE",
    "SHARE UPDATE EXCLUSIVE",
    "SHARE",
    "SHARE ROW EXCLUSIVE",
    "EXCLUSIVE",
    "ACCESS EXCLUSIVE",
];

/// The strongest lock this transaction holds on a relation, by oid ("" for none).
fn strongest(tx: &mut postgres::Transaction, oid: u32) -> String {
    tx.query(
        "SELECT mode FROM pg_locks WHERE locktype = 'relation' AND relation = $1::oid AND pid = pg_backend_pid() AND granted",
        &[&oid],
    )
    .unwrap()
    .iter()
    .map(|r| lock_words(&r.get::<_, String>(0)))
    .max_by_key(|m| MODES.iter().position(|x| x == m))
    .unwrap_or_default()
}

/// Every PostgreSQL row of the facts table that has a probe, checked on the server: the lock seen in
/// pg_locks (on the table, and on the referenced table for a foreign key), whether readers/writers
/// conflict with it, and the cost — a rewrite changes the table's relfilenode, a scan reads the
/// table (pg_stat_xact_user_tables.seq_scan, or DEBUG1 "verifying table"), catalog-only does neither,
/// and "fails" fails on a table with rows. Each statement runs in a transaction that is rolled back.
fn postgres_facts_hold_on_the_real_engine(major: u32) {
    let Some(pg) = support::pg(major) else {
        return;
    };
    let db = pg.fresh_database("facts");
    let notices: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut c = {
        let notices = notices.clone();
        let mut config: postgres::Config = db.url().parse().unwrap();
        config.notice_callback(move |n| notices.lock().unwrap().push(n.message().to_string()));
        config.connect(postgres::NoTls).unwrap()
    };
    c.batch_execute(
        "CREATE TABLE p (id int PRIMARY KEY); INSERT INTO p SELECT generate_series(1, 10);
         CREATE TABLE t (id int NOT NULL, v int, w int NOT NULL DEFAULT 1, pid int);
         INSERT INTO t SELECT g, g, g, g % 10 + 1 FROM generate_series(1, 2000) g;
         CREATE UNIQUE INDEX ux_id ON t (id); CREATE INDEX ix_v ON t (v);
         ALTER TABLE t ADD CONSTRAINT ck_nv CHECK (w > 0) NOT VALID;
         ANALYZE t;",
    )
    .unwrap();
    let version = Version(major, 0, 0);
    let mut checked = 0;
    for f in facts::all().filter(|f| f.engine == Engine::Postgres) {
        if !(f.since <= version && f.until.is_none_or(|u| version < u)) {
            continue;
        }
        let Some((_, _, sql, cost)) = PG_PROBES
            .iter()
            .find(|(k, s, ..)| *k == f.kind && *s == f.shape)
        else {
            continue;
        };
        let oid = |c: &mut postgres::Client, t: &str| -> u32 {
            c.query_one("SELECT $1::text::regclass::oid", &[&t])
                .unwrap()
                .get(0)
        };
        let (t_oid, p_oid) = (oid(&mut c, "t"), oid(&mut c, "p"));
        // Queries on t also lock its existing indexes when they are planned.
        let index_oids: Vec<u32> = c
            .query(
                "SELECT indexrelid FROM pg_index WHERE indrelid = $1::oid",
                &[&t_oid],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut tx = c.transaction().unwrap();
        tx.batch_execute("SET LOCAL client_min_messages = debug1")
            .unwrap();
        let filenode = |tx: &mut postgres::Transaction| -> Option<u32> {
            tx.query_one("SELECT pg_relation_filenode($1::oid)", &[&t_oid])
                .unwrap()
                .get(0)
        };
        let scans = |tx: &mut postgres::Transaction| -> i64 {
            tx.query_one(
                "SELECT coalesce(pg_stat_get_xact_numscans($1::oid), 0)",
                &[&t_oid],
            )
            .unwrap()
            .get(0)
        };
        let before = filenode(&mut tx);
        let scans_before = scans(&mut tx);
        notices.lock().unwrap().clear();
        let result = tx.batch_execute(sql);
        let what = format!("pg{major} {} {} `{sql}`", f.kind, f.shape);
        if f.cost == facts::Cost::Fails {
            assert!(result.is_err(), "{what}: claimed to fail, it ran");
            checked += 1;
            continue;
        }
        result.unwrap_or_else(|e| panic!("{what}: {e}"));
        let lock = strongest(&mut tx, t_oid);
        let claimed = f.lock.split(['(', ',']).next().unwrap().trim().to_string();
        if f.lock.starts_with("none") {
            assert_eq!(lock, "", "{what}");
        } else {
            assert_eq!(
                lock, claimed,
                "{what}: pg_locks shows {lock:?}, the row says {:?}",
                f.lock
            );
        }
        if f.kind == "add_foreign_key" {
            assert_eq!(
                strongest(&mut tx, p_oid),
                claimed,
                "{what}: referenced table"
            );
        }
        if f.kind != "data" && !f.lock.starts_with("none") {
            let rank = MODES.iter().position(|m| *m == lock).unwrap();
            let on_indexes = index_oids
                .iter()
                .map(|&o| strongest(&mut tx, o))
                .filter_map(|m| MODES.iter().position(|x| *x == m))
                .max()
                .unwrap_or(0);
            assert_eq!(f.blocks_writes, rank >= 4, "{what}: blocks writes");
            assert_eq!(
                f.blocks_reads,
                rank.max(on_indexes) == 7,
                "{what}: blocks reads"
            );
        }
        if *cost {
            let rewritten = filenode(&mut tx) != before;
            let seen = notices.lock().unwrap().clone();
            let scanned =
                scans(&mut tx) > scans_before || seen.iter().any(|n| n.contains("verifying table"));
            let observed = match (rewritten, scanned) {
                (true, _) => facts::Cost::Rewrite,
                (false, true) => facts::Cost::Scan,
                (false, false) => facts::Cost::CatalogOnly,
            };
            assert_eq!(observed, f.cost, "{what}: notices {seen:?}");
        }
        tx.rollback().unwrap();
        checked += 1;
    }
    assert!(checked >= 30, "pg{major}: only {checked} rows checked");
    // A row that names this test as its proof has a probe that checks its cost.
    for f in facts::all() {
        if f.proof
            == facts::Proof::Test("tests/analysis.rs::postgres_facts_hold_on_the_real_engine")
        {
            assert!(
                PG_PROBES
                    .iter()
                    .any(|(k, s, _, cost)| *k == f.kind && *s == f.shape && *cost),
                "{} {} names this test but has no probe",
                f.kind,
                f.shape
            );
        }
    }
}

on_each_major!(postgres_facts_hold_on_the_real_engine);

/// MariaDB rows, each shown by the weakest algorithm the server accepts for the statement on a table
/// with rows: ALGORITHM=INSTANT (catalog only), else NOCOPY with LOCK=NONE (in place without a
/// rebuild: an index build reads the table, an index drop does not; writes go on), else INPLACE with
/// LOCK=NONE (rebuilds it, writes go on), else COPY (writes wait). `{t}` is a fresh copy of the table
/// for each attempt.
#[rustfmt::skip]
const MARIADB_PROBES: &[(&str, &str, &str)] = &[
    ("add_column", "nullable", "ALTER TABLE {t} ADD COLUMN x int"),
    ("add_column", "constant_default", "ALTER TABLE {t} ADD COLUMN x int NOT NULL DEFAULT 5"),
    ("add_column", "stable_default", "ALTER TABLE {t} ADD COLUMN x datetime DEFAULT (now())"),
    ("add_column", "not_null_no_default", "ALTER TABLE {t} ADD COLUMN x int NOT NULL"),
    ("add_column", "volatile_default", "ALTER TABLE {t} ADD COLUMN x char(36) DEFAULT (uuid())"),
    ("add_column", "generated_stored", "ALTER TABLE {t} ADD COLUMN x bigint AS (id * 2) STORED"),
    ("add_column", "serial", "ALTER TABLE {t} ADD COLUMN x bigint NOT NULL AUTO_INCREMENT UNIQUE"),
    ("create_index", "*", "ALTER TABLE {t} ADD INDEX ix_probe (v)"),
    ("add_foreign_key", "*", "ALTER TABLE {t} ADD CONSTRAINT fk_probe FOREIGN KEY (pid) REFERENCES p (id)"),
    ("add_check", "*", "ALTER TABLE {t} ADD CONSTRAINT ck_probe CHECK (v >= 0)"),
    ("change_column_type", "*", "ALTER TABLE {t} MODIFY v bigint"),
    ("set_default", "*", "ALTER TABLE {t} ALTER COLUMN v SET DEFAULT 0"),
    ("drop_default", "*", "ALTER TABLE {t} ALTER COLUMN w DROP DEFAULT"),
    ("rename_column", "*", "ALTER TABLE {t} RENAME COLUMN v TO v2"),
    ("drop_column", "*", "ALTER TABLE {t} DROP COLUMN w"),
    ("drop_index", "*", "ALTER TABLE {t} DROP INDEX ix_v"),
];

#[test]
fn mariadb_facts_hold_on_the_real_engine() {
    use mysql::prelude::Queryable;
    let Some(server) = support::mariadb() else {
        return;
    };
    let version = Version::parse(server.version().split('-').next().unwrap()).unwrap();
    let db = server.fresh_database("facts");
    let mut c = db.connect();
    c.query_drop(
        "CREATE TABLE p (id int PRIMARY KEY) ENGINE=InnoDB;
         INSERT INTO p SELECT seq FROM seq_1_to_10;
         CREATE TABLE tmpl (id int NOT NULL PRIMARY KEY, v int, w int NOT NULL DEFAULT 1, pid int,
                            INDEX ix_v (v)) ENGINE=InnoDB;
         INSERT INTO tmpl SELECT seq, seq, seq, seq % 10 + 1 FROM seq_1_to_2000;",
    )
    .unwrap();
    let mut n = 0;
    let mut attempt = |c: &mut mysql::Conn, sql: &str, clause: &str| -> bool {
        n += 1;
        let t = format!("t{n}");
        c.query_drop(format!(
            "CREATE TABLE {t} LIKE tmpl; INSERT INTO {t} SELECT * FROM tmpl"
        ))
        .unwrap();
        c.query_drop(format!("{}, {clause}", sql.replace("{t}", &t)))
            .is_ok()
    };
    let mut checked = 0;
    for f in facts::all().filter(|f| f.engine == Engine::Mariadb) {
        if !(f.since <= version && f.until.is_none_or(|u| version < u)) {
            continue;
        }
        let Some((_, _, sql)) = MARIADB_PROBES
            .iter()
            .find(|(k, s, _)| *k == f.kind && *s == f.shape)
        else {
            continue;
        };
        let what = format!("mariadb {version} {} {} `{sql}`", f.kind, f.shape);
        use facts::Cost::*;
        let (costs, writes_wait, lock) = if attempt(&mut c, sql, "ALGORITHM=INSTANT") {
            (&[CatalogOnly][..], false, "metadata lock")
        } else if attempt(&mut c, sql, "ALGORITHM=NOCOPY, LOCK=NONE") {
            (&[Scan, CatalogOnly][..], false, "ALGORITHM=INPLACE")
        } else if attempt(&mut c, sql, "ALGORITHM=INPLACE, LOCK=NONE") {
            (&[Rewrite][..], false, "ALGORITHM=INPLACE")
        } else {
            assert!(
                attempt(&mut c, sql, "ALGORITHM=COPY"),
                "{what}: not even COPY runs"
            );
            (&[Rewrite][..], true, "ALGORITHM=COPY")
        };
        assert!(
            costs.contains(&f.cost),
            "{what}: the row says {:?}, the server {costs:?}",
            f.cost
        );
        assert_eq!(f.blocks_writes, writes_wait, "{what}");
        assert!(
            f.lock.starts_with(lock),
            "{what}: the row says {:?}, the server {lock}",
            f.lock
        );
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} rows checked");
    for f in facts::all() {
        if f.proof == facts::Proof::Test("tests/analysis.rs::mariadb_facts_hold_on_the_real_engine")
        {
            assert!(
                MARIADB_PROBES
                    .iter()
                    .any(|(k, s, _)| *k == f.kind && *s == f.shape),
                "{} {} names this test but has no probe",
                f.kind,
                f.shape
            );
        }
    }
}

/// SQLite rows: (kind, shape, statement on `accounts`, whether to check the cost).
#[rustfmt::skip]
const SQLITE_PROBES: &[(&str, &str, &str, bool)] = &[
    ("add_column", "nullable", "ALTER TABLE accounts ADD COLUMN x int", true),
    ("add_column", "constant_default", "ALTER TABLE accounts ADD COLUMN x int NOT NULL DEFAULT 5", true),
    ("add_column", "stable_default", "ALTER TABLE accounts ADD COLUMN x text DEFAULT CURRENT_TIMESTAMP", true),
    ("add_column", "volatile_default", "ALTER TABLE accounts ADD COLUMN x real DEFAULT (random())", true),
    ("add_column", "not_null_no_default", "ALTER TABLE accounts ADD COLUMN x int NOT NULL", true),
    ("add_column", "generated_stored", "ALTER TABLE accounts ADD COLUMN x int GENERATED ALWAYS AS (balance * 2) STORED", true),
    ("add_column", "serial", "ALTER TABLE accounts ADD COLUMN x INTEGER PRIMARY KEY AUTOINCREMENT", true),
    ("create_index", "*", "CREATE INDEX ix_probe ON accounts (balance)", true),
    ("drop_column", "*", "ALTER TABLE accounts DROP COLUMN pad", true),
    ("rename_column", "*", "ALTER TABLE accounts RENAME COLUMN pad TO pad2", true),
    ("rename_table", "*", "ALTER TABLE accounts RENAME TO accounts2", true),
    ("drop_table", "*", "DROP TABLE accounts", false),
    ("drop_index", "*", "DROP INDEX accounts_email", false),
    ("create_table", "*", "CREATE TABLE n (id int)", true),
    ("data", "*", "UPDATE accounts SET balance = balance + 1", false),
];

/// Every SQLite row with a probe, on the bundled SQLite: while the statement's transaction is open
/// another connection cannot start writing but can read (WAL); the cost is seen in the table's pages
/// (rewritten = changed in place) and in the statement's VM steps (a scan takes more steps than the
/// table has rows); "fails" fails on a table with rows.
#[test]
fn sqlite_facts_hold_on_the_real_engine() {
    use rusqlite::{StatementStatus, TransactionBehavior};
    const ROWS: i64 = 2_000;
    let mut checked = 0;
    for f in facts::all().filter(|f| f.engine == Engine::Sqlite) {
        let Some((_, _, sql, cost)) = SQLITE_PROBES
            .iter()
            .find(|(k, s, ..)| *k == f.kind && *s == f.shape)
        else {
            continue;
        };
        let what = format!("sqlite {} {} `{sql}`", f.kind, f.shape);
        // Who waits: the statement in an open transaction, a writer and a reader beside it.
        let db = sqlite_util::TestDb::new(ROWS);
        let mut c = db.conn();
        let tx = c
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        let ran = tx.execute_batch(sql);
        if f.cost == facts::Cost::Fails {
            assert!(ran.is_err(), "{what}: claimed to fail, it ran");
            checked += 1;
            continue;
        }
        ran.unwrap_or_else(|e| panic!("{what}: {e}"));
        let other = rusqlite::Connection::open(&db.path).unwrap();
        let writer = other.execute_batch("BEGIN IMMEDIATE; ROLLBACK");
        assert_eq!(f.blocks_writes, writer.is_err(), "{what}: a writer");
        let reader = other.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        });
        assert_eq!(f.blocks_reads, reader.is_err(), "{what}: a reader");
        drop(other);
        tx.rollback().unwrap();
        drop(c);
        if *cost {
            let before = db.row_pages();
            let c = db.conn();
            let mut stmt = c.prepare(sql).unwrap();
            stmt.raw_execute().unwrap();
            let steps = i64::from(stmt.get_status(StatementStatus::VmStep));
            drop(stmt);
            drop(c);
            let after = db.row_pages();
            let rewritten = before.iter().zip(&after).any(|(a, b)| a != b);
            let observed = match (rewritten, steps > ROWS) {
                (true, _) => facts::Cost::Rewrite,
                (false, true) => facts::Cost::Scan,
                (false, false) => facts::Cost::CatalogOnly,
            };
            assert_eq!(observed, f.cost, "{what}: {steps} VM steps");
        }
        checked += 1;
    }
    assert!(checked >= 14, "only {checked} rows checked");
    for f in facts::all() {
        if f.proof == facts::Proof::Test("tests/analysis.rs::sqlite_facts_hold_on_the_real_engine")
        {
            assert!(
                SQLITE_PROBES
                    .iter()
                    .any(|(k, s, _, cost)| *k == f.kind && *s == f.shape && *cost),
                "{} {} names this test but has no probe",
                f.kind,
                f.shape
            );
        }
    }
}
