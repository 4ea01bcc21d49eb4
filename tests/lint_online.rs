//! `zerodown lint` online, on the real engines: the server's version replaces `--version`, table
//! sizes turn findings on empty or small tables into notes and give large ones their size and a
//! rough duration, existing NOT NULLs and validated CHECKs are seen, names not on the server are
//! reported at their statement, and the session never writes (the server says it is read-only, a
//! write on it fails, and the catalog and the rows are the same after the lint).

mod support;

use zerodown::engine::lint_catalog::LintCatalog;
use zerodown::lint::online::Live;
use zerodown::lint::{self, Config, Finding, Severity};

/// The findings of `sql` linted against `url`, as (line, rule, severity, message).
fn lint_online(url: &str, sql: &str) -> (Vec<Finding>, Vec<String>, Live) {
    let mut live = Live::connect(url).expect("connects read-only");
    let report =
        lint::lint_texts_online([("m.sql", sql)], &Config::default(), false, Some(&mut live));
    (report.findings, report.input_errors, live)
}

fn at<'a>(findings: &'a [Finding], line: usize, rule: &str) -> &'a Finding {
    findings
        .iter()
        .find(|f| f.line == line && f.rule == rule)
        .unwrap_or_else(|| panic!("no {rule} at line {line}: {findings:#?}"))
}

fn none_at(findings: &[Finding], line: usize, rule: &str) {
    assert!(
        !findings.iter().any(|f| f.line == line && f.rule == rule),
        "{rule} at line {line}: {findings:#?}"
    );
}

/// One migration over tables of every size, with the verdicts that follow on each engine.
const FILE: &str = "CREATE INDEX ix_small ON small (v);
CREATE INDEX ix_big ON big (v);
ALTER TABLE empty ADD COLUMN c int NOT NULL;
ALTER TABLE big ADD COLUMN c int NOT NULL;
ALTER TABLE nosuch ADD COLUMN x int;
ALTER TABLE small DROP COLUMN nope;
CREATE TABLE fresh (id int);
CREATE INDEX ix_fresh ON fresh (id);
ALTER TABLE small ADD COLUMN v int;
CREATE INDEX ix_small_v ON small (v);
CREATE INDEX IF NOT EXISTS ix_small_v ON small (v);
CREATE INDEX ix_nocol ON small (nocol);
";

fn check_common(findings: &[Finding], big_rule_line2: bool) {
    if big_rule_line2 {
        assert_eq!(
            at(findings, 1, "create-index-blocking").severity,
            Severity::Note
        );
        let big = at(findings, 2, "create-index-blocking");
        assert_eq!(big.severity, Severity::Error, "{big:#?}");
        assert!(big.message.contains("`big` holds"), "{}", big.message);
        assert!(big.message.contains("MB"), "{}", big.message);
    }
    let unknown = at(findings, 5, "unknown-object");
    assert!(unknown.message.contains("`nosuch`"), "{}", unknown.message);
    assert!(
        at(findings, 6, "unknown-object")
            .message
            .contains("`small.nope`")
    );
    let exists = at(findings, 9, "unknown-object");
    assert!(exists.message.contains("already"), "{}", exists.message);
    let ix = at(findings, 10, "unknown-object");
    assert!(
        ix.message.contains("index `ix_small_v` is already"),
        "{}",
        ix.message
    );
    assert!(
        at(findings, 12, "unknown-object")
            .message
            .contains("`small.nocol`")
    );
    for line in [1, 2, 3, 4, 7, 8, 11] {
        none_at(findings, line, "unknown-object");
    }
    none_at(findings, 8, "create-index-blocking");
}

#[test]
fn postgres_online_lint_reads_sizes_and_names_read_only() {
    let Some(server) = support::pg_debian() else {
        return;
    };
    let db = server.fresh_database("lint_online");
    let mut c = db.connect();
    c.batch_execute(
        "CREATE TABLE small (id int PRIMARY KEY, v int, nn int NOT NULL DEFAULT 0, ck int,
                             CONSTRAINT ck_nn CHECK (ck IS NOT NULL));
         INSERT INTO small SELECT g, g, g, g FROM generate_series(1, 5) g;
         CREATE INDEX ix_small_v ON small (v);
         CREATE TABLE empty (id int PRIMARY KEY);
         CREATE TABLE big (id int PRIMARY KEY, v int, pad text);
         INSERT INTO big SELECT g, g, repeat('x', 200) FROM generate_series(1, 120000) g;
         ANALYZE small; ANALYZE empty; ANALYZE big;",
    )
    .unwrap();
    let before = pg_fingerprint(&mut c);
    let file = format!(
        "{FILE}ALTER TABLE small ALTER COLUMN nn SET NOT NULL;
ALTER TABLE small ALTER COLUMN ck SET NOT NULL;
ALTER TABLE big ALTER COLUMN v SET NOT NULL;
ALTER TABLE empty ADD CONSTRAINT ck_e CHECK (id > 0);
ALTER TABLE big ADD CONSTRAINT ck_b CHECK (id > 0);
"
    );
    let (findings, errors, live) = lint_online(db.url(), &file);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(live.engine, zerodown::analysis::Engine::Postgres);
    assert_eq!(live.version.0, server.major());
    check_common(&findings, true);
    let again = at(&findings, 11, "create-index-blocking");
    assert_eq!(again.severity, Severity::Note);
    assert!(again.message.contains("already there"), "{}", again.message);
    let empty = at(&findings, 3, "add-column-required");
    assert_eq!(empty.severity, Severity::Note, "{empty:#?}");
    assert!(empty.message.contains("empty"), "{}", empty.message);
    let full = at(&findings, 4, "add-column-required");
    assert_eq!(full.severity, Severity::Error);
    assert!(full.message.contains("fails"), "{}", full.message);
    let fact = full.engine_fact.as_deref().unwrap_or_default();
    assert!(
        fact.starts_with(&format!("postgres {}.", server.major())),
        "the server's version, not --version's default: {fact}"
    );
    assert!(
        at(&findings, 13, "set-not-null")
            .message
            .contains("already NOT NULL")
    );
    assert_eq!(at(&findings, 14, "set-not-null").severity, Severity::Note);
    assert!(
        at(&findings, 14, "set-not-null")
            .message
            .contains("validated CHECK")
    );
    assert_eq!(at(&findings, 15, "set-not-null").severity, Severity::Error);
    assert_eq!(at(&findings, 16, "add-check").severity, Severity::Note);
    assert_eq!(at(&findings, 17, "add-check").severity, Severity::Error);

    // The session lint reads through is read-only: the server says so, and a write on it fails.
    let mut pg = zerodown::engine::postgres::Postgres::open_read_only(db.url()).unwrap();
    assert!(pg.is_read_only().unwrap());
    for write in [
        "CREATE TABLE w (id int)",
        "INSERT INTO small VALUES (99, 99, 99, 99)",
        "CREATE INDEX ix_w ON small (v)",
    ] {
        let e = pg.client().batch_execute(write).unwrap_err();
        assert!(format!("{e:?}").contains("read-only"), "{write}: {e:?}");
    }
    // The command line, online, changes nothing: same catalog, same rows.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.sql"), &file).unwrap();
    let mut out = Vec::new();
    let code = lint::cli::run(
        &lint::cli::Options {
            paths: vec![dir.path().join("m.sql")],
            format: "text".into(),
            url: Some(db.url().to_string()),
            ..Default::default()
        },
        &mut out,
    );
    let text = String::from_utf8(out).unwrap();
    assert_eq!(code, 1, "{text}");
    assert!(text.starts_with("online: PostgreSQL 15"), "{text}");
    assert!(text.contains("note[create-index-blocking]"), "{text}");
    let mut out = Vec::new();
    lint::cli::run(
        &lint::cli::Options {
            paths: vec![dir.path().join("m.sql")],
            format: "json".into(),
            url: Some(db.url().to_string()),
            ..Default::default()
        },
        &mut out,
    );
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert!(
        v["online"]["server"]
            .as_str()
            .unwrap()
            .starts_with("PostgreSQL 15")
    );
    assert!(v["summary"]["notes"].as_u64().unwrap() >= 3, "{v}");
    assert_eq!(pg_fingerprint(&mut c), before);
}

/// The user tables' catalog rows and a checksum of their contents.
fn pg_fingerprint(c: &mut postgres::Client) -> String {
    c.query_one(
        "SELECT md5(string_agg(format('%s %s %s %s', c.relname, c.relkind, c.relfilenode,
                   (SELECT string_agg(attname || attnotnull, ',' ORDER BY attnum)
                    FROM pg_attribute WHERE attrelid = c.oid AND attnum > 0)), ';' ORDER BY c.relname))
                || (SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM small t)
                || (SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM big t)
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'",
        &[],
    )
    .unwrap()
    .get(0)
}

#[test]
fn mariadb_online_lint_reads_sizes_and_names_read_only() {
    use mysql::prelude::Queryable;
    let Some(server) = support::mariadb() else {
        return;
    };
    let db = server.fresh_database("lint_online");
    let mut c = db.connect();
    c.query_drop(
        "CREATE TABLE small (id int PRIMARY KEY, v int) ENGINE=InnoDB;
         INSERT INTO small SELECT seq, seq FROM seq_1_to_5;
         CREATE INDEX ix_small_v ON small (v);
         CREATE TABLE empty (id int PRIMARY KEY) ENGINE=InnoDB;
         CREATE TABLE big (id int PRIMARY KEY, v int, pad varchar(255)) ENGINE=InnoDB;
         INSERT INTO big SELECT seq, seq, repeat('x', 200) FROM seq_1_to_120000;
         ANALYZE TABLE small, empty, big;",
    )
    .unwrap();
    let before = my_fingerprint(&mut c);
    let file = format!(
        "{FILE}ALTER TABLE big ADD COLUMN u char(36) DEFAULT (uuid());
ALTER TABLE empty ADD COLUMN u char(36) DEFAULT (uuid());
ALTER TABLE big ADD COLUMN r double DEFAULT (rand());
ALTER TABLE empty ADD CONSTRAINT fk_e FOREIGN KEY (id) REFERENCES small (id);
ALTER TABLE big ADD CONSTRAINT fk_b FOREIGN KEY (id) REFERENCES small (id);
"
    );
    let (findings, errors, live) = lint_online(db.url(), &file);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(live.engine, zerodown::analysis::Engine::Mariadb);
    check_common(&findings, false);
    let big = at(&findings, 13, "add-column-volatile-default");
    assert_eq!(big.severity, Severity::Error, "{big:#?}");
    assert!(big.message.contains("ALGORITHM=COPY"), "{}", big.message);
    assert_eq!(
        at(&findings, 14, "add-column-volatile-default").severity,
        Severity::Note
    );
    none_at(&findings, 15, "add-column-volatile-default");
    assert_eq!(
        at(&findings, 16, "add-foreign-key").severity,
        Severity::Note
    );
    assert_eq!(
        at(&findings, 17, "add-foreign-key").severity,
        Severity::Error
    );
    let fact = big.engine_fact.as_deref().unwrap_or_default();
    assert!(
        fact.starts_with("mariadb 10.") || fact.starts_with("mariadb 11."),
        "{fact}"
    );

    let mut my = zerodown::engine::mysql::MySql::open_read_only(db.url()).unwrap();
    assert!(my.is_read_only().unwrap());
    for write in [
        "INSERT INTO small VALUES (99, 99)",
        "UPDATE small SET v = 0",
        "CREATE TABLE w (id int)",
        "START TRANSACTION",
    ] {
        let r = my.conn().query_drop(write);
        if write == "START TRANSACTION" {
            // A transaction opened here is read-only too.
            r.unwrap();
            let e = my.conn().query_drop("DELETE FROM small").unwrap_err();
            assert!(e.to_string().contains("READ ONLY"), "{e}");
            my.conn().query_drop("ROLLBACK").unwrap();
        } else {
            let e = r.unwrap_err();
            assert!(e.to_string().contains("READ ONLY"), "{write}: {e}");
        }
    }
    assert_eq!(my_fingerprint(&mut c), before);
}

fn my_fingerprint(c: &mut mysql::Conn) -> String {
    use mysql::prelude::Queryable;
    let schema: Option<String> = c
        .query_first(
            "SELECT md5(group_concat(concat_ws(' ', TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE)
                    ORDER BY TABLE_NAME, ORDINAL_POSITION))
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()",
        )
        .unwrap()
        .unwrap();
    let rows: Option<String> = c
        .query_first("SELECT concat((SELECT count(*) FROM small), ' ', (SELECT sum(crc32(concat(id, v, pad))) FROM big))")
        .unwrap()
        .unwrap();
    format!("{schema:?} {rows:?}")
}

#[test]
fn sqlite_online_lint_counts_rows_and_never_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(
        "CREATE TABLE small (id INTEGER PRIMARY KEY, v int);
         INSERT INTO small (v) VALUES (1), (2), (3);
         CREATE INDEX ix_small_v ON small (v);
         CREATE TABLE empty (id INTEGER PRIMARY KEY);
         CREATE TABLE big (id INTEGER PRIMARY KEY, v int);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30000)
         INSERT INTO big (v) SELECT i FROM n;",
    )
    .unwrap();
    drop(c);
    let before = std::fs::read(&path).unwrap();
    let url = format!("sqlite://{}", path.display());
    let file = format!("{FILE}ALTER TABLE empty ADD COLUMN t text DEFAULT CURRENT_TIMESTAMP;\n");
    let (findings, errors, live) = lint_online(&url, &file);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(live.engine, zerodown::analysis::Engine::Sqlite);
    check_common(&findings, false);
    assert_eq!(
        at(&findings, 1, "create-index-blocking").severity,
        Severity::Note
    );
    let big = at(&findings, 2, "create-index-blocking");
    assert_eq!(big.severity, Severity::Error, "{big:#?}");
    assert!(big.message.contains("~30k rows"), "{}", big.message);
    assert_eq!(
        at(&findings, 13, "add-column-volatile-default").severity,
        Severity::Note
    );

    let db = zerodown::engine::sqlite::Sqlite::open_read_only(&path).unwrap();
    let mut db = db;
    assert!(db.is_read_only().unwrap());
    let e = db
        .connection()
        .execute_batch("CREATE TABLE w (id int)")
        .unwrap_err();
    assert!(
        e.to_string().contains("readonly") || e.to_string().contains("read-only"),
        "{e}"
    );
    drop(db);
    assert_eq!(std::fs::read(&path).unwrap(), before, "the file changed");
}

/// Pending migrations span files: a table or column an earlier file of the run creates is not
/// reported as unknown in a later one (files are linted in path order, as the tools run them).
#[test]
fn names_created_by_an_earlier_file_of_the_run_are_known() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY);")
        .unwrap();
    let mut live = Live::connect(&format!("sqlite://{}", path.display())).unwrap();
    let report = lint::lint_texts_online(
        [
            (
                "0001.sql",
                "CREATE TABLE later (id int);\nALTER TABLE t ADD COLUMN c int;\n",
            ),
            (
                "0002.sql",
                "CREATE INDEX ix ON later (id);\nCREATE INDEX ix_c ON t (c);\nALTER TABLE gone ADD COLUMN d int;\n",
            ),
        ],
        &Config::default(),
        false,
        Some(&mut live),
    );
    let unknown: Vec<(&str, usize)> = report
        .findings
        .iter()
        .filter(|f| f.rule == "unknown-object")
        .map(|f| (f.file.as_str(), f.line))
        .collect();
    assert_eq!(unknown, [("0002.sql", 3)], "{:#?}", report.findings);
}
