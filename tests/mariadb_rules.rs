//! MySQL/MariaDB rules. Plans are data: snapshot-tested without a server from a schema given by hand
//! (MariaDB 10.11, and MySQL 8 — documented, not run). Every row of knowledge the plans rely on is then
//! proven on the real MariaDB 10.11 the harness starts, with the statements the plans write.

mod support;

use mysql::Conn;
use mysql::prelude::Queryable;
use std::time::{Duration, Instant};
use zerodown::engine::mysql::{Flavour, MyEnv, MyReference, build_plan};
use zerodown::engine::{Column, TableSchema, Trigger};
use zerodown::plan::render_text;
use zerodown::spec::{Dialect, Migration};

fn accounts() -> TableSchema {
    let col = |name: &str, ty: &str, pk: u32| Column {
        name: name.into(),
        data_type: ty.into(),
        not_null: pk > 0,
        default: None,
        pk,
    };
    TableSchema {
        name: "accounts".into(),
        columns: vec![
            col("id", "bigint(20)", 1),
            col("email", "varchar(100)", 0),
            col("balance", "bigint(20)", 0),
            col("touched", "timestamp(3)", 0),
        ],
        key: vec!["id".into()],
        strict: false,
        triggers: vec![Trigger {
            name: "accounts_audit".into(),
            event: "UPDATE".into(),
        }],
    }
}

fn env(flavour: Flavour) -> MyEnv {
    MyEnv {
        flavour,
        version: match flavour {
            Flavour::MariaDb => (10, 11, 19),
            Flavour::MySql => (8, 0, 40),
        },
        reference: None,
        on_update_columns: vec!["touched".into()],
    }
}

const TIER: &str = r#"[add_column]
table = "accounts"
column = "tier"
type = "varchar(20)"
not_null = true
backfill = "CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END"
default = "'standard'"
check = "tier IN ('gold', 'standard')"
index = true
"#;

fn plan(body: &str, env: &MyEnv) -> String {
    let m = Migration::from_toml("0042_example", body, "test.toml").unwrap();
    render_text(&build_plan(&m, &accounts(), env).unwrap())
}

#[test]
fn derived_not_null_column_mariadb() {
    insta::assert_snapshot!(plan(TIER, &env(Flavour::MariaDb)));
}

#[test]
fn derived_not_null_column_mysql8_documented_not_run() {
    insta::assert_snapshot!(plan(TIER, &env(Flavour::MySql)));
}

#[test]
fn reference_with_backfill() {
    let mut e = env(Flavour::MariaDb);
    e.reference = Some(MyReference {
        table: "plans".into(),
        column: "id".into(),
    });
    insta::assert_snapshot!(plan(
        "[add_column]\ntable = \"accounts\"\ncolumn = \"plan_id\"\ntype = \"int\"\nbackfill = \"CASE WHEN balance > 10000 THEN 2 ELSE 1 END\"\nreferences = \"plans(id)\"\n",
        &e
    ));
}

#[test]
fn defaults_are_classified_by_the_function_table() {
    for (sql, single) in [
        (
            "ALTER TABLE accounts ADD COLUMN a int NOT NULL DEFAULT 0",
            true,
        ),
        (
            "ALTER TABLE accounts ADD COLUMN a datetime NOT NULL DEFAULT now()",
            true,
        ),
        (
            "ALTER TABLE accounts ADD COLUMN a timestamp(6) NOT NULL DEFAULT current_timestamp(6)",
            true,
        ),
        (
            "ALTER TABLE accounts ADD COLUMN a char(36) DEFAULT (uuid())",
            false,
        ),
        (
            "ALTER TABLE accounts ADD COLUMN a double DEFAULT (rand())",
            false,
        ),
        (
            "ALTER TABLE accounts ADD COLUMN a datetime DEFAULT (sysdate())",
            false,
        ),
    ] {
        let m = Migration::from_sql("m", sql, Dialect::Mysql, "--sql").unwrap();
        let p = build_plan(&m, &accounts(), &env(Flavour::MariaDb)).unwrap();
        assert_eq!(p.single_step, single, "{sql}");
        assert!(
            p.steps
                .iter()
                .any(|s| s.sql.iter().any(|q| q.ends_with("ALGORITHM=INSTANT")))
        );
        assert!(
            p.steps
                .iter()
                .all(|s| s.sql.iter().all(|q| !q.contains("ALGORITHM=COPY")))
        );
    }
}

#[test]
fn hostile_names_are_quoted_with_backticks() {
    let mut schema = accounts();
    schema.name = "acc`; DROP TABLE x; --".into();
    let m = Migration::from_toml(
        "m",
        "[add_column]\ntable = \"acc`; DROP TABLE x; --\"\ncolumn = \"c`x\"\ntype = \"text\"\nbackfill = \"email\"\n",
        "t.toml",
    )
    .unwrap();
    let p = build_plan(&m, &schema, &env(Flavour::MariaDb)).unwrap();
    assert!(
        p.steps[0].sql[0].starts_with(
            "ALTER TABLE `acc``; DROP TABLE x; --` ADD COLUMN IF NOT EXISTS `c``x` text"
        ),
        "{}",
        p.steps[0].sql[0]
    );
}

// ---- Knowledge rows, proven on MariaDB 10.11 ----

fn server_table(name: &str, rows: i64) -> Option<(support::MariaDbTestDb, Conn)> {
    let server = support::mariadb()?;
    let db = server.fresh_database(name);
    let mut c = db.connect();
    c.query_drop(
        "CREATE TABLE t (id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, a int) ENGINE=InnoDB",
    )
    .unwrap();
    c.query_drop(format!("INSERT INTO t (a) SELECT seq FROM seq_1_to_{rows}"))
        .unwrap();
    Some((db, c))
}

fn code(r: Result<(), mysql::Error>) -> Option<u16> {
    match r {
        Ok(()) => None,
        Err(mysql::Error::MySqlError(e)) => Some(e.code),
        Err(e) => panic!("{e}"),
    }
}

fn instant_counter(c: &mut Conn) -> i64 {
    let row: Option<(String, i64)> = c
        .query_first("SHOW GLOBAL STATUS LIKE 'innodb_instant_alter_column'")
        .unwrap();
    row.unwrap().1
}

#[test]
fn expand_runs_instant() {
    let Some((_db, mut c)) = server_table("rules_instant", 2000) else {
        return;
    };
    for add in [
        "ADD COLUMN IF NOT EXISTS c1 int",
        "ADD COLUMN IF NOT EXISTS c2 varchar(10) NOT NULL DEFAULT 'x'",
        "ADD COLUMN IF NOT EXISTS c3 datetime DEFAULT (now())",
        "ADD COLUMN IF NOT EXISTS c4 int DEFAULT (1+1)",
    ] {
        let before = instant_counter(&mut c);
        c.query_drop(format!("ALTER TABLE t {add}, ALGORITHM=INSTANT"))
            .unwrap_or_else(|e| panic!("{add}: {e}"));
        assert!(instant_counter(&mut c) > before, "{add}: instant counter");
    }
    // IF NOT EXISTS makes a re-run after a crash harmless.
    c.query_drop("ALTER TABLE t ADD COLUMN IF NOT EXISTS c1 int, ALGORITHM=INSTANT")
        .unwrap();
    // uuid() needs COPY: refused under INSTANT and INPLACE (1845), so zerodown backfills it.
    assert_eq!(
        code(
            c.query_drop("ALTER TABLE t ADD COLUMN u char(36) DEFAULT (uuid()), ALGORITHM=INSTANT")
        ),
        Some(1845)
    );
    assert_eq!(
        code(c.query_drop(
            "ALTER TABLE t ADD COLUMN u char(36) DEFAULT (uuid()), ALGORITHM=INPLACE, LOCK=NONE"
        )),
        Some(1845)
    );
    // rand(): accepted INSTANT, but every old row gets the same value — why it is classified volatile.
    c.query_drop("ALTER TABLE t ADD COLUMN r double DEFAULT (rand()), ALGORITHM=INSTANT")
        .unwrap();
    let distinct: Option<i64> = c.query_first("SELECT count(DISTINCT r) FROM t").unwrap();
    assert_eq!(distinct, Some(1));
    // Instant DROP COLUMN (rollback of expand).
    c.query_drop("ALTER TABLE t DROP COLUMN IF EXISTS c1, ALGORITHM=INSTANT")
        .unwrap();
}

#[test]
fn contract_steps_run_online_or_are_refused() {
    let Some((_db, mut c)) = server_table("rules_contract", 2000) else {
        return;
    };
    c.query_drop("CREATE TABLE p (id int PRIMARY KEY) ENGINE=InnoDB; INSERT INTO p VALUES (1)")
        .unwrap();
    // NOT NULL: INSTANT refused; INPLACE, LOCK=NONE works (online rebuild).
    assert_eq!(
        code(c.query_drop("ALTER TABLE t MODIFY COLUMN a int NOT NULL, ALGORITHM=INSTANT")),
        Some(1845)
    );
    c.query_drop("ALTER TABLE t MODIFY COLUMN a int NOT NULL, ALGORITHM=INPLACE, LOCK=NONE")
        .unwrap();
    // Under the strict sql_mode zerodown sets, a NULL fails the MODIFY instead of becoming 0.
    c.query_drop("ALTER TABLE t ADD COLUMN b int, ALGORITHM=INSTANT")
        .unwrap();
    c.query_drop("UPDATE t SET b = 1 WHERE id > 1").unwrap();
    c.query_drop("SET SESSION sql_mode = ''").unwrap();
    assert_eq!(
        code(c.query_drop("SET STATEMENT sql_mode='STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION' FOR ALTER TABLE t MODIFY COLUMN b int NOT NULL, ALGORITHM=INPLACE, LOCK=NONE")),
        Some(1265)
    );
    let nulls: Option<i64> = c
        .query_first("SELECT count(*) FROM t WHERE b IS NULL")
        .unwrap();
    assert_eq!(nulls, Some(1), "data unchanged");
    // Index and unique: INPLACE, LOCK=NONE.
    c.query_drop("ALTER TABLE t ADD INDEX IF NOT EXISTS ix (a), ALGORITHM=INPLACE, LOCK=NONE")
        .unwrap();
    c.query_drop(
        "ALTER TABLE t ADD UNIQUE INDEX IF NOT EXISTS uq (id, a), ALGORITHM=INPLACE, LOCK=NONE",
    )
    .unwrap();
    // CHECK: COPY only on MariaDB 10.11.
    for alg in [
        "ALGORITHM=INSTANT",
        "ALGORITHM=NOCOPY",
        "ALGORITHM=INPLACE, LOCK=NONE",
    ] {
        assert_eq!(
            code(c.query_drop(format!(
                "ALTER TABLE t ADD CONSTRAINT ck CHECK (a >= 0), {alg}"
            ))),
            Some(1845),
            "{alg}"
        );
    }
    c.query_drop("ALTER TABLE t ADD CONSTRAINT IF NOT EXISTS ck CHECK (a >= 0), ALGORITHM=COPY")
        .unwrap();
    // FOREIGN KEY: with checks on, no online path; with foreign_key_checks=0, instant — orphans and all.
    assert!(matches!(
        code(c.query_drop("ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES p (id), ALGORITHM=INPLACE, LOCK=NONE")),
        Some(1845 | 1846)
    ));
    let before = Instant::now();
    c.query_drop("SET STATEMENT foreign_key_checks=0 FOR ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY IF NOT EXISTS (a) REFERENCES p (id), ALGORITHM=INSTANT")
        .unwrap();
    assert!(before.elapsed() < Duration::from_secs(2));
    let orphans: Option<i64> = c
        .query_first("SELECT count(*) FROM t WHERE a IS NOT NULL AND NOT EXISTS (SELECT 1 FROM p WHERE p.id = t.a)")
        .unwrap();
    assert_eq!(orphans, Some(1999), "existing rows were not checked");
    // A trigger cannot name a missing column: the column comes first.
    assert_eq!(
        code(c.query_drop("CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.missing = 1")),
        Some(1054)
    );
}

#[test]
fn max_statement_time_caps_a_blocked_alter_below_a_second() {
    let Some((db, mut c)) = server_table("rules_mdl", 100) else {
        return;
    };
    let mut a = db.connect();
    a.query_drop("START TRANSACTION").unwrap();
    let _: Vec<i64> = a.query("SELECT id FROM t LIMIT 1").unwrap();
    for stmt in [
        "ALTER TABLE t ADD COLUMN x int, ALGORITHM=INSTANT",
        "CREATE TRIGGER IF NOT EXISTS tr BEFORE INSERT ON t FOR EACH ROW BEGIN IF NEW.a IS NULL THEN SET NEW.a = 1; END IF; END",
    ] {
        let t0 = Instant::now();
        let r = c.query_drop(format!(
            "SET STATEMENT lock_wait_timeout=1, max_statement_time=0.300 FOR {stmt}"
        ));
        let took = t0.elapsed();
        assert!(matches!(code(r), Some(1969 | 1205)), "{stmt}");
        assert!(took < Duration::from_millis(800), "{stmt}: {took:?}");
    }
    // A build gets only the whole-second lock wait.
    let t0 = Instant::now();
    let r = c.query_drop("SET STATEMENT lock_wait_timeout=1 FOR ALTER TABLE t ADD INDEX ix (a), ALGORITHM=INPLACE, LOCK=NONE");
    assert_eq!(code(r), Some(1205));
    assert!(t0.elapsed() >= Duration::from_millis(900));
    a.query_drop("COMMIT").unwrap();
}
