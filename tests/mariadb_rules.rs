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
        row_versions: None,
        definer: None,
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
    render_text(&build_plan(&m.name, added(&m), &accounts(), env).unwrap())
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
        let p = build_plan(&m.name, added(&m), &accounts(), &env(Flavour::MariaDb)).unwrap();
        assert_eq!(p.single_step, single, "{sql}");
        assert!(
            p.steps
                .iter()
                .any(|s| s.sql.iter().any(|q| q.sql.ends_with("ALGORITHM=INSTANT")))
        );
        assert!(
            p.steps
                .iter()
                .all(|s| s.sql.iter().all(|q| !q.sql.contains("ALGORITHM=COPY")))
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
    let p = build_plan(&m.name, added(&m), &schema, &env(Flavour::MariaDb)).unwrap();
    assert!(
        p.steps[0].sql[0].sql.starts_with(
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
    // ALGORITHM=INSTANT is accepted (else error 1845); the orphans left prove no row was checked.
    c.query_drop("SET STATEMENT foreign_key_checks=0 FOR ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY IF NOT EXISTS (a) REFERENCES p (id), ALGORITHM=INSTANT")
        .unwrap();
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
    // With the lock wait at 30 s, only max_statement_time can end the wait early: the statement
    // ends with an error long before the lock wait could have, however slow the machine.
    for stmt in [
        "ALTER TABLE t ADD COLUMN x int, ALGORITHM=INSTANT",
        "CREATE TRIGGER IF NOT EXISTS tr BEFORE INSERT ON t FOR EACH ROW BEGIN IF NEW.a IS NULL THEN SET NEW.a = 1; END IF; END",
    ] {
        let t0 = Instant::now();
        let r = c.query_drop(format!(
            "SET STATEMENT lock_wait_timeout=30, max_statement_time=0.300 FOR {stmt}"
        ));
        let took = t0.elapsed();
        assert!(matches!(code(r), Some(1969 | 1205)), "{stmt}");
        assert!(took < Duration::from_secs(20), "{stmt}: {took:?}");
    }
    // A build gets only the whole-second lock wait.
    let t0 = Instant::now();
    let r = c.query_drop("SET STATEMENT lock_wait_timeout=1 FOR ALTER TABLE t ADD INDEX ix (a), ALGORITHM=INPLACE, LOCK=NONE");
    assert_eq!(code(r), Some(1205));
    assert!(t0.elapsed() >= Duration::from_millis(900));
    a.query_drop("COMMIT").unwrap();
}

// ---- MySQL 8 rows: documented, not run. Plans are data, so what the rules decide for a MySQL 8 server
// is proven here without one; what the server does with it is from the MySQL 8.0 manual. ----

fn mysql8(version: (u32, u32, u32), row_versions: Option<u32>) -> MyEnv {
    MyEnv {
        version,
        row_versions,
        ..env(Flavour::MySql)
    }
}

fn plan_for(body: &str, env: &MyEnv) -> zerodown::plan::Plan {
    let m = Migration::from_toml("0042_example", body, "test.toml").unwrap();
    build_plan(&m.name, added(&m), &accounts(), env).unwrap()
}

const DERIVED: &str = "[add_column]\ntable = \"accounts\"\ncolumn = \"tier\"\ntype = \"varchar(20)\"\nbackfill = \"CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END\"\nindex = true\n";

#[test]
fn mysql8_row_versions_used_up_documented_not_run() {
    // 64 instant changes since the last rebuild: INSTANT would fail with 4092, so the expand is an
    // online rebuild, and the plan says why.
    let p = plan_for(DERIVED, &mysql8((8, 0, 40), Some(64)));
    let expand = &p.steps[0];
    assert_eq!(
        zerodown::plan::Statement::texts(&expand.sql),
        vec!["ALTER TABLE `accounts` ADD COLUMN `tier` varchar(20), ALGORITHM=INPLACE, LOCK=NONE"]
    );
    assert_eq!(expand.cost, zerodown::plan::Cost::Rewrite);
    assert!(!expand.lock.blocks_writes);
    assert!(expand.reason.contains("error 4092"), "{}", expand.reason);
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("64 instant column changes") && n.contains("INPLACE")),
        "{:#?}",
        p.notes
    );
    insta::assert_snapshot!(render_text(&p));
}

#[test]
fn mysql8_last_row_version_makes_the_rollback_a_rebuild_documented_not_run() {
    let p = plan_for(DERIVED, &mysql8((8, 0, 40), Some(63)));
    assert!(p.steps[0].sql[0].sql.ends_with("ALGORITHM=INSTANT"));
    assert_eq!(
        zerodown::plan::Statement::texts(&p.steps[0].undo),
        vec!["ALTER TABLE `accounts` DROP COLUMN `tier`, ALGORITHM=INPLACE, LOCK=NONE"]
    );
    assert_eq!(p.steps[0].undo_cost, Some(zerodown::plan::Cost::Rewrite));
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("uses the last of the 64"))
    );
    // Far from the limit: instant both ways, no row-version note.
    let p = plan_for(DERIVED, &mysql8((8, 0, 40), Some(3)));
    assert!(p.steps[0].undo[0].sql.ends_with("ALGORITHM=INSTANT"));
    assert!(!p.notes.iter().any(|n| n.contains("TOTAL_ROW_VERSIONS")));
    // Close to it: said.
    let p = plan_for(DERIVED, &mysql8((8, 0, 40), Some(60)));
    assert!(p.steps[0].undo[0].sql.ends_with("ALGORITHM=INSTANT"));
    assert!(p.notes.iter().any(|n| n.contains("has had 60 of the 64")));
}

#[test]
fn mysql8_before_8_0_29_documented_not_run() {
    // Instant ADD only as the last column (zerodown adds it last), no instant DROP: the rollback of
    // the expand is an online rebuild. TOTAL_ROW_VERSIONS does not exist yet.
    let p = plan_for(DERIVED, &mysql8((8, 0, 28), None));
    assert!(p.steps[0].sql[0].sql.ends_with("ALGORITHM=INSTANT"));
    assert!(
        !p.steps[0].sql[0].sql.contains(" AFTER ") && !p.steps[0].sql[0].sql.contains(" FIRST")
    );
    assert_eq!(
        zerodown::plan::Statement::texts(&p.steps[0].undo),
        vec!["ALTER TABLE `accounts` DROP COLUMN `tier`, ALGORITHM=INPLACE, LOCK=NONE"]
    );
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("before 8.0.29") && n.contains("only as the last column"))
    );
    // Older than the first instant ADD COLUMN: refused.
    let m = Migration::from_toml("m", DERIVED, "t.toml").unwrap();
    let e = build_plan(&m.name, added(&m), &accounts(), &mysql8((8, 0, 11), None))
        .unwrap_err()
        .to_string();
    assert!(e.contains("8.0.12"), "{e}");
}

#[test]
fn mysql8_statements_exist_in_mysql_documented_not_run() {
    // No SET STATEMENT, no SEQUENCE, no IF [NOT] EXISTS where MySQL 8 has none; the deploy-order
    // counter is an insert-only AUTO_INCREMENT table; the build timeout and lock wait are stated.
    let mut e = mysql8((8, 0, 40), Some(0));
    e.reference = Some(MyReference {
        table: "plans".into(),
        column: "id".into(),
    });
    let p = plan_for(
        "[add_column]\ntable = \"accounts\"\ncolumn = \"plan_id\"\ntype = \"int\"\nnot_null = true\nbackfill = \"CASE WHEN balance > 10000 THEN 2 ELSE 1 END\"\nreferences = \"plans(id)\"\nindex = true\n",
        &e,
    );
    let all: Vec<&String> = p
        .steps
        .iter()
        .flat_map(|s| s.sql.iter().chain(s.undo.iter()))
        .map(|s| &s.sql)
        .collect();
    for q in &all {
        assert!(!q.contains("SET STATEMENT"), "{q}");
        assert!(!q.contains("SEQUENCE") && !q.contains("NEXTVAL"), "{q}");
        let allowed = q.starts_with("DROP TRIGGER IF EXISTS")
            || q.starts_with("DROP TABLE IF EXISTS")
            || q.starts_with("CREATE TABLE IF NOT EXISTS");
        assert!(
            allowed || !(q.contains("IF EXISTS") || q.contains("IF NOT EXISTS")),
            "{q}"
        );
    }
    let fk = p
        .steps
        .iter()
        .find(|s| s.sql.iter().any(|q| q.sql.contains("FOREIGN KEY")))
        .unwrap();
    assert_eq!(fk.sql[0].sql, "SET SESSION foreign_key_checks = 0");
    assert!(fk.sql[1].sql.ends_with("ALGORITHM=INPLACE, LOCK=NONE"));
    assert_eq!(fk.sql[2].sql, "SET SESSION foreign_key_checks = 1");
    let dual = p
        .steps
        .iter()
        .find(|s| s.summary.contains("dual-write"))
        .unwrap();
    assert!(dual.sql[0].sql.contains("AUTO_INCREMENT PRIMARY KEY"));
    assert!(dual.sql[1].sql.contains("INSERT INTO `zd_guard_"));
    for needle in [
        "KILL QUERY",
        "SET SESSION lock_wait_timeout",
        "documented, not run",
    ] {
        assert!(
            p.notes.iter().any(|n| n.contains(needle)),
            "{needle}: {:#?}",
            p.notes
        );
    }
    let modify = p
        .steps
        .iter()
        .find(|s| s.sql.iter().any(|q| q.sql.contains("MODIFY COLUMN")))
        .unwrap();
    assert!(
        modify.reason.contains("strict sql_mode") && modify.reason.contains("KILL QUERY"),
        "{}",
        modify.reason
    );
}

/// The KILL QUERY watchdog that holds MySQL 8 builds to --build-timeout, proven on MariaDB: an INPLACE
/// build stuck behind an open transaction is killed from a second connection with error 1317 and
/// leaves no index; a watchdog disarmed in time kills nothing, then or later.
#[test]
fn kill_query_watchdog_stops_a_build_and_nothing_else() {
    let Some((db, mut c)) = server_table("rules_watchdog", 2000) else {
        return;
    };
    let target = zerodown::engine::mysql::Target::parse(db.url()).unwrap();
    let mut a = db.connect();
    a.query_drop("START TRANSACTION").unwrap();
    let _: Vec<i64> = a.query("SELECT id FROM t LIMIT 1").unwrap();
    c.query_drop("SET SESSION lock_wait_timeout = 30").unwrap();
    let dog = target
        .kill_query_after(c.connection_id(), Duration::from_millis(500))
        .unwrap();
    let t0 = Instant::now();
    let r = c.query_drop("ALTER TABLE t ADD INDEX ix_a (a), ALGORITHM=INPLACE, LOCK=NONE");
    let took = t0.elapsed();
    assert!(dog.disarm(), "the watchdog fired");
    assert_eq!(code(r), Some(1317), "Query execution was interrupted");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(10),
        "{took:?}"
    );
    a.query_drop("COMMIT").unwrap();
    let indexes: Option<i64> = c
        .query_first("SELECT count(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' AND INDEX_NAME = 'ix_a'")
        .unwrap();
    assert_eq!(indexes, Some(0), "the interrupted build left nothing");
    // Disarmed before its time: it kills nothing, and the next statements run.
    let dog = target
        .kill_query_after(c.connection_id(), Duration::from_millis(300))
        .unwrap();
    c.query_drop("ALTER TABLE t ADD INDEX ix_a (a), ALGORITHM=INPLACE, LOCK=NONE")
        .unwrap();
    assert!(!dog.disarm());
    std::thread::sleep(Duration::from_millis(400));
    let n: Option<i64> = c.query_first("SELECT count(*) FROM t").unwrap();
    assert_eq!(n, Some(2000));
}

// ---- Trigger DEFINER ----

/// A MariaDB trigger runs as its DEFINER: once that account is dropped, every write to the table fails
/// with 1449 until the trigger goes. Why the plan names the account zerodown's triggers will have.
#[test]
fn a_trigger_whose_definer_is_dropped_breaks_every_write() {
    let Some((db, mut c)) = server_table("rules_definer", 10) else {
        return;
    };
    let user = format!("{}_def", db.name);
    c.query_drop(format!(
        "CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'definer-pw';
         GRANT ALL PRIVILEGES ON `{}`.* TO '{user}'@'127.0.0.1'",
        db.name
    ))
    .unwrap();
    let mut owner =
        mysql::Conn::new(mysql::Opts::from_url(&db.url_as(&user, "definer-pw")).unwrap()).unwrap();
    owner
        .query_drop("CREATE TRIGGER zd_ins_definer BEFORE INSERT ON t FOR EACH ROW BEGIN IF NEW.a IS NULL THEN SET NEW.a = 0; END IF; END")
        .unwrap();
    drop(owner);
    let definer: Option<String> = c
        .query_first("SELECT DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME = 'zd_ins_definer'")
        .unwrap();
    assert_eq!(definer, Some(format!("{user}@127.0.0.1")));
    c.query_drop("INSERT INTO t (a) VALUES (NULL)").unwrap();
    c.query_drop(format!("DROP USER '{user}'@'127.0.0.1'"))
        .unwrap();
    // Any writer, even one with every privilege, is refused now.
    assert_eq!(
        code(c.query_drop("INSERT INTO t (a) VALUES (1)")),
        Some(1449)
    );
    c.query_drop("DROP TRIGGER zd_ins_definer").unwrap();
    c.query_drop("INSERT INTO t (a) VALUES (1)").unwrap();
}

#[test]
fn the_plan_names_the_triggers_definer() {
    let mut e = env(Flavour::MariaDb);
    e.definer = Some("app@10.0.%".into());
    let p = plan_for(DERIVED, &e);
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("DEFINER = 'app'@'10.0.%'")
                && n.contains("error 1449")
                && n.contains("`accounts`")),
        "{:#?}",
        p.notes
    );
    // On a real server the plan reads CURRENT_USER().
    let Some((db, mut c)) = server_table("rules_definer_plan", 10) else {
        return;
    };
    c.query_drop("CREATE TABLE accounts (id bigint PRIMARY KEY, balance bigint NOT NULL)")
        .unwrap();
    let m = Migration::from_toml("m", "[add_column]\ntable = \"accounts\"\ncolumn = \"twice\"\ntype = \"bigint\"\nbackfill = \"balance * 2\"\n", "t.toml").unwrap();
    let p = zerodown::plan(&zerodown::DatabaseUrl::parse(db.url()).unwrap(), &m).unwrap();
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("DEFINER = 'zerodown'@'127.0.0.1'")),
        "{:#?}",
        p.notes
    );
}

/// The one column a test migration adds.
fn added(m: &Migration) -> &zerodown::spec::AddColumn {
    match m.operations.as_slice() {
        [zerodown::spec::Operation::AddColumn(a)] => a,
        other => panic!("one add_column expected: {other:?}"),
    }
}
