//! How each engine computes a column default for the rows a table already has, as the reader
//! classifies it (`analysis::volatility`), checked on the real server.

mod support;

use zerodown::analysis::{self, Engine, facts};

/// A call of each function the MariaDB lists of `analysis::volatility` name.
const MARIADB_DEFAULTS: &[&str] = &[
    "now()",
    "current_timestamp()",
    "current_date()",
    "current_time()",
    "localtimestamp()",
    "localtime()",
    "curdate()",
    "curtime()",
    "utc_date()",
    "utc_time()",
    "unix_timestamp()",
    "rand()",
    "user()",
    "current_user()",
    "database()",
    "connection_id()",
    "version()",
    "pi()",
    "concat('a', 'b')",
    "lower('X')",
    "upper('x')",
    "md5('a')",
    "round(1.5)",
    "coalesce(NULL, 1)",
    "ifnull(NULL, 1)",
    "round(rand() * 10)",
    "uuid()",
    "uuid_short()",
    "sys_guid()",
    "sysdate()",
    "utc_timestamp()",
    "random_bytes(4)",
    "nextval(sq)",
    "md5(uuid())",
    "123",
    "(1 + 1)",
];

/// MariaDB adds a column with each default as the reader says: `ALGORITHM=INSTANT` (and one value
/// in every existing row) for the defaults it classifies as evaluated once, a table copy for the
/// ones it classifies as per row. `rand()` is the case that differs from PostgreSQL's `random()`.
#[test]
fn mariadb_defaults_are_classified_as_the_server_adds_them() {
    use analysis::volatility::{MARIADB_ONCE, MARIADB_PER_ROW};
    use mysql::prelude::Queryable;
    for f in MARIADB_ONCE.iter().chain(MARIADB_PER_ROW) {
        assert!(
            MARIADB_DEFAULTS
                .iter()
                .any(|d| d.starts_with(&format!("{f}("))),
            "no probe calls {f}"
        );
    }
    let Some(server) = support::mariadb() else {
        return;
    };
    let db = server.fresh_database("defaults");
    let mut c = db.connect();
    c.query_drop(
        "CREATE SEQUENCE sq;
         CREATE TABLE tmpl (id int PRIMARY KEY, v int) ENGINE=InnoDB;
         INSERT INTO tmpl SELECT seq, seq FROM seq_1_to_50;",
    )
    .unwrap();
    for (n, d) in MARIADB_DEFAULTS.iter().enumerate() {
        let alter = format!("ALTER TABLE t{n} ADD COLUMN x varbinary(64) DEFAULT ({d})");
        let file = analysis::read("probe.sql", &format!("{alter};"), Engine::Mariadb);
        let shape = facts::shape(&file.statements[0].actions()[0].kind);
        c.query_drop(format!(
            "CREATE TABLE t{n} LIKE tmpl; INSERT INTO t{n} SELECT * FROM tmpl"
        ))
        .unwrap();
        let instant = c.query_drop(format!("{alter}, ALGORITHM=INSTANT")).is_ok();
        if !instant {
            c.query_drop(format!("{alter}, ALGORITHM=COPY")).unwrap();
        }
        let distinct: i64 = c
            .query_first(format!("SELECT count(DISTINCT x) FROM t{n}"))
            .unwrap()
            .unwrap();
        let once = shape == "constant_default" || shape == "stable_default";
        assert_eq!(once, instant, "DEFAULT ({d}): the reader says {shape}");
        if once {
            assert!(distinct <= 1, "DEFAULT ({d}): {distinct} values");
        }
    }
}
