//! `zerodown migrate` beside the migration tools' own history tables, on SQLite, PostgreSQL and
//! MariaDB: what the tool recorded is skipped, what zerodown applies is recorded the way the tool
//! would (sqlx, golang-migrate, Diesel, goose; Flyway's is only read), and a version the tool failed
//! halfway stops the run.

#[macro_use]
mod support;
mod migrate_fixtures;
mod sqlite_util;

use migrate_fixtures::{Db, actions, folder, migrate};
use sqlite_util::TestDb;
use std::time::Duration;
use zerodown::migrate::{Action, Point, Stop};

fn sha384_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha384::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn sqlx_history(db: Db) {
    db.two_tables(20);
    let files = [
        (
            "0001_add_a.sql",
            "ALTER TABLE accounts ADD COLUMN a integer;\n",
        ),
        (
            "0002_add_b.sql",
            "ALTER TABLE accounts ADD COLUMN b integer;\n",
        ),
        (
            "0003_add_c.sql",
            "ALTER TABLE accounts ADD COLUMN c integer;\n",
        ),
    ];
    let dir = folder(&files);
    // sqlx itself applied the first one.
    let mut s = db.session();
    s.exec(files[0].1).unwrap();
    s.exec(db.sqlx_table()).unwrap();
    s.exec(&format!(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (1, 'add a', TRUE, {}, 1000)",
        db.bytes_literal(&sha384_hex(files[0].1.as_bytes()))
    ))
    .unwrap();

    let report = migrate(&db, dir.path(), Point::BeforeDeploy, Duration::ZERO).unwrap();
    assert_eq!(report.layout, zerodown::migrate::layout::Layout::Sqlx);
    assert_eq!(
        actions(&report),
        [
            ("0001_add_a", &Action::AppliedByTool),
            ("0002_add_b", &Action::Completed),
            ("0003_add_c", &Action::Completed)
        ]
    );
    assert!(
        report
            .migrations
            .iter()
            .all(|m| m.tool_recorded == Some(true))
    );
    // zerodown never ran the first one: no state row for it.
    let recorded = zerodown::status(&db.url(), None).unwrap();
    assert!(recorded.iter().all(|r| r.name != "0001_add_a"));
    // Rows as sqlx writes them: description, success, the file's SHA-384, a run time.
    assert_eq!(s.int("SELECT count(*) FROM _sqlx_migrations"), Some(3));
    for (version, (_, text)) in files.iter().enumerate().skip(1) {
        let v = version + 1;
        let hex = db.hex("checksum");
        assert_eq!(
            s.text(&format!(
                "SELECT {hex} FROM _sqlx_migrations WHERE version = {v}"
            )),
            Some(sha384_hex(text.as_bytes()))
        );
        assert_eq!(
            s.text(&format!(
                "SELECT description FROM _sqlx_migrations WHERE version = {v}"
            )),
            Some(format!("add {}", ["a", "b", "c"][version]))
        );
        assert_eq!(
            s.int(&format!("SELECT count(*) FROM _sqlx_migrations WHERE version = {v} AND success AND execution_time >= 0")),
            Some(1)
        );
    }
    // A re-run records nothing twice.
    let again = migrate(&db, dir.path(), Point::BeforeDeploy, Duration::ZERO).unwrap();
    assert_eq!(again.migrations[1].action, Action::AlreadyCompleted);
    assert_eq!(s.int("SELECT count(*) FROM _sqlx_migrations"), Some(3));

    // A version sqlx failed halfway: refused before anything changes.
    std::fs::write(
        dir.path().join("0004_add_d.sql"),
        "ALTER TABLE accounts ADD COLUMN d integer;\n",
    )
    .unwrap();
    s.exec(&format!(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (4, 'add d', FALSE, {}, 1)",
        db.bytes_literal("00")
    ))
    .unwrap();
    let refused = migrate(&db, dir.path(), Point::BeforeDeploy, Duration::ZERO).unwrap_err();
    assert_eq!(refused.stop, Stop::Refused);
    assert!(
        refused.error.to_string().contains("failed halfway"),
        "{}",
        refused.error
    );
    assert!(!db.has_column("accounts", "d"));
}

fn golang_migrate_history(db: Db) {
    db.two_tables(20);
    let dir = folder(&[
        (
            "1_add_a.up.sql",
            "ALTER TABLE accounts ADD COLUMN a integer;\n",
        ),
        ("1_add_a.down.sql", "ALTER TABLE accounts DROP COLUMN a;\n"),
        (
            "2_add_b.up.sql",
            "ALTER TABLE accounts ADD COLUMN b integer;\n",
        ),
        ("2_add_b.down.sql", "ALTER TABLE accounts DROP COLUMN b;\n"),
        (
            "3_add_c.up.sql",
            "ALTER TABLE accounts ADD COLUMN c integer;\n",
        ),
    ]);
    // golang-migrate itself applied up to version 2.
    let mut s = db.session();
    s.exec("ALTER TABLE accounts ADD COLUMN a integer").unwrap();
    s.exec("ALTER TABLE accounts ADD COLUMN b integer").unwrap();
    s.exec("CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)").unwrap();
    s.exec("INSERT INTO schema_migrations (version, dirty) VALUES (2, FALSE)")
        .unwrap();

    let report = migrate(&db, dir.path(), Point::BeforeDeploy, Duration::ZERO).unwrap();
    assert_eq!(
        report.layout,
        zerodown::migrate::layout::Layout::GolangMigrate
    );
    assert_eq!(
        actions(&report),
        [
            ("1_add_a", &Action::AppliedByTool),
            ("2_add_b", &Action::AppliedByTool),
            ("3_add_c", &Action::Completed)
        ]
    );
    assert!(db.has_column("accounts", "c"));
    // One row, as golang-migrate keeps it: the newest version, clean.
    assert_eq!(s.int("SELECT count(*) FROM schema_migrations"), Some(1));
    assert_eq!(
        s.int("SELECT version FROM schema_migrations WHERE NOT dirty"),
        Some(3)
    );
    let again = migrate(&db, dir.path(), Point::BeforeDeploy, Duration::ZERO).unwrap();
    assert_eq!(again.migrations[2].action, Action::AlreadyCompleted);
    assert_eq!(s.int("SELECT count(*) FROM schema_migrations"), Some(1));

    // A dirty version (golang-migrate failed halfway): refused before anything changes.
    std::fs::write(
        dir.path().join("4_add_d.up.sql"),
        "ALTER TABLE accounts ADD COLUMN d integer;\n",
    )
    .unwrap();
    s.exec("UPDATE schema_migrations SET dirty = TRUE").unwrap();
    let refused = migrate(&db, dir.path(), Point::BeforeDeploy, Duration::ZERO).unwrap_err();
    assert_eq!(refused.stop, Stop::Refused);
    assert!(!db.has_column("accounts", "d"));
}

#[test]
fn sqlx_history_sqlite() {
    sqlx_history(Db::Lite(TestDb::empty()));
}

#[test]
fn sqlx_history_postgres() {
    let Some(pg) = support::pg_debian() else {
        return;
    };
    sqlx_history(Db::Pg(pg.fresh_database("migrate_sqlx")));
}

#[test]
fn sqlx_history_mariadb() {
    let Some(my) = support::mariadb() else { return };
    sqlx_history(Db::My(my.fresh_database("migrate_sqlx")));
}

#[test]
fn golang_migrate_history_sqlite() {
    golang_migrate_history(Db::Lite(TestDb::empty()));
}

#[test]
fn golang_migrate_history_postgres() {
    let Some(pg) = support::pg_debian() else {
        return;
    };
    golang_migrate_history(Db::Pg(pg.fresh_database("migrate_gm")));
}

#[test]
fn golang_migrate_history_mariadb() {
    let Some(my) = support::mariadb() else { return };
    golang_migrate_history(Db::My(my.fresh_database("migrate_gm")));
}

fn diesel_history(db: Db) {
    db.two_tables(20);
    let dir = folder(&[
        (
            "2024-01-01-000000_add_a/up.sql",
            "ALTER TABLE accounts ADD COLUMN a integer;\n",
        ),
        (
            "2024-01-01-000000_add_a/down.sql",
            "ALTER TABLE accounts DROP COLUMN a;\n",
        ),
        (
            "2024-01-02-000000_add_b/up.sql",
            "ALTER TABLE accounts ADD COLUMN b integer;\n",
        ),
    ]);
    // Diesel itself applied the first one.
    let mut s = db.session();
    s.exec("ALTER TABLE accounts ADD COLUMN a integer").unwrap();
    s.exec("CREATE TABLE __diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY NOT NULL, run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)").unwrap();
    s.exec("INSERT INTO __diesel_schema_migrations (version) VALUES ('20240101000000')")
        .unwrap();
    let report = migrate(&db, dir.path(), Point::BeforeDeploy, Duration::ZERO).unwrap();
    assert_eq!(report.layout, zerodown::migrate::layout::Layout::Diesel);
    assert_eq!(
        actions(&report),
        [
            ("2024-01-01-000000_add_a", &Action::AppliedByTool),
            ("2024-01-02-000000_add_b", &Action::Completed)
        ]
    );
    assert!(db.has_column("accounts", "b"));
    assert_eq!(
        s.int("SELECT count(*) FROM __diesel_schema_migrations WHERE version = '20240102000000'"),
        Some(1)
    );
    migrate(&db, dir.path(), Point::BeforeDeploy, Duration::ZERO).unwrap();
    assert_eq!(
        s.int("SELECT count(*) FROM __diesel_schema_migrations"),
        Some(2)
    );
}

fn goose_history(db: Db) {
    db.two_tables(20);
    let file = |column: &str| {
        format!(
            "-- +goose Up\n-- +goose StatementBegin\nALTER TABLE accounts ADD COLUMN {column} integer;\n-- +goose StatementEnd\n\n-- +goose Down\nALTER TABLE accounts DROP COLUMN {column};\n"
        )
    };
    let (a, b, c) = (file("a"), file("b"), file("c"));
    let dir = folder(&[
        ("00001_add_a.sql", &a),
        ("00002_add_b.sql", &b),
        ("00003_add_c.sql", &c),
    ]);
    // goose itself applied the first one and took the third down again.
    let create = match &db {
        Db::Pg(_) => {
            "CREATE TABLE goose_db_version (id integer PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, version_id bigint NOT NULL, is_applied boolean NOT NULL, tstamp timestamp NOT NULL DEFAULT now())"
        }
        Db::My(_) => {
            "CREATE TABLE goose_db_version (id bigint(20) unsigned NOT NULL AUTO_INCREMENT, version_id bigint NOT NULL, is_applied boolean NOT NULL, tstamp timestamp NULL default now(), PRIMARY KEY(id))"
        }
        Db::Lite(_) => {
            "CREATE TABLE goose_db_version (id INTEGER PRIMARY KEY AUTOINCREMENT, version_id INTEGER NOT NULL, is_applied INTEGER NOT NULL, tstamp TIMESTAMP DEFAULT (datetime('now')))"
        }
    };
    let mut s = db.session();
    s.exec("ALTER TABLE accounts ADD COLUMN a integer").unwrap();
    s.exec(create).unwrap();
    s.exec("INSERT INTO goose_db_version (version_id, is_applied) VALUES (0, TRUE), (1, TRUE), (3, TRUE), (3, FALSE)").unwrap();
    let report = migrate(&db, dir.path(), Point::BeforeDeploy, Duration::ZERO).unwrap();
    assert_eq!(report.layout, zerodown::migrate::layout::Layout::Goose);
    assert_eq!(
        actions(&report),
        [
            ("00001_add_a", &Action::AppliedByTool),
            ("00002_add_b", &Action::Completed),
            ("00003_add_c", &Action::Completed)
        ]
    );
    // Only the Up sections ran.
    assert!(db.has_column("accounts", "b") && db.has_column("accounts", "c"));
    // The newest row of each version says it is applied.
    let newest = |v: i64| {
        db.session().int(&format!(
            "SELECT CASE WHEN is_applied THEN 1 ELSE 0 END FROM goose_db_version WHERE id = (SELECT max(id) FROM goose_db_version WHERE version_id = {v})"
        ))
    };
    assert_eq!((newest(2), newest(3)), (Some(1), Some(1)));
    migrate(&db, dir.path(), Point::BeforeDeploy, Duration::ZERO).unwrap();
    assert_eq!(s.int("SELECT count(*) FROM goose_db_version"), Some(6));
}

fn flyway_history(db: Db) {
    db.two_tables(20);
    let dir = folder(&[
        (
            "V1__add_a.sql",
            "ALTER TABLE accounts ADD COLUMN a integer;\n",
        ),
        (
            "V1_1__add_b.sql",
            "ALTER TABLE accounts ADD COLUMN b integer;\n",
        ),
        ("R__report.sql", "CREATE VIEW report AS SELECT 1 AS one;\n"),
    ]);
    // Flyway itself applied version 1 (its table as Flyway creates it, in a portable spelling).
    let mut s = db.session();
    s.exec("ALTER TABLE accounts ADD COLUMN a integer").unwrap();
    s.exec("CREATE TABLE flyway_schema_history (installed_rank INT NOT NULL PRIMARY KEY, version VARCHAR(50), description VARCHAR(200) NOT NULL, type VARCHAR(20) NOT NULL, script VARCHAR(1000) NOT NULL, checksum INT, installed_by VARCHAR(100) NOT NULL, installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, execution_time INT NOT NULL, success BOOLEAN NOT NULL)").unwrap();
    s.exec("INSERT INTO flyway_schema_history (installed_rank, version, description, type, script, checksum, installed_by, execution_time, success) VALUES (1, '1', 'add a', 'SQL', 'V1__add_a.sql', 12345, 'ci', 3, TRUE)").unwrap();
    let report = migrate(&db, dir.path(), Point::BeforeDeploy, Duration::ZERO).unwrap();
    assert_eq!(report.layout, zerodown::migrate::layout::Layout::Flyway);
    assert_eq!(
        actions(&report),
        [
            ("V1__add_a", &Action::AppliedByTool),
            ("V1_1__add_b", &Action::Completed)
        ]
    );
    assert!(db.has_column("accounts", "b"));
    // The repeatable file is left to Flyway, and zerodown says it does not write Flyway's table.
    assert!(report.notes.iter().any(|n| n.contains("R__report.sql")));
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("flyway_schema_history"))
    );
    assert_eq!(s.int("SELECT count(*) FROM flyway_schema_history"), Some(1));
}

#[test]
fn flyway_history_sqlite() {
    flyway_history(Db::Lite(TestDb::empty()));
}

#[test]
fn flyway_history_postgres() {
    let Some(pg) = support::pg_debian() else {
        return;
    };
    flyway_history(Db::Pg(pg.fresh_database("migrate_flyway")));
}

#[test]
fn flyway_history_mariadb() {
    let Some(my) = support::mariadb() else { return };
    flyway_history(Db::My(my.fresh_database("migrate_flyway")));
}

#[test]
fn diesel_history_sqlite() {
    diesel_history(Db::Lite(TestDb::empty()));
}

#[test]
fn diesel_history_postgres() {
    let Some(pg) = support::pg_debian() else {
        return;
    };
    diesel_history(Db::Pg(pg.fresh_database("migrate_diesel")));
}

#[test]
fn diesel_history_mariadb() {
    let Some(my) = support::mariadb() else { return };
    diesel_history(Db::My(my.fresh_database("migrate_diesel")));
}

#[test]
fn goose_history_sqlite() {
    goose_history(Db::Lite(TestDb::empty()));
}

#[test]
fn goose_history_postgres() {
    let Some(pg) = support::pg_debian() else {
        return;
    };
    goose_history(Db::Pg(pg.fresh_database("migrate_goose")));
}

#[test]
fn goose_history_mariadb() {
    let Some(my) = support::mariadb() else { return };
    goose_history(Db::My(my.fresh_database("migrate_goose")));
}
