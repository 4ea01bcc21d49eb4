//! Unit tests of the SQL migration reader (`sql.rs`).

use crate::spec::sql::*;
use crate::spec::{Migration, Operation};

fn add(sql: &str, dialect: Dialect) -> AddColumn {
    match Migration::from_sql("m", sql, dialect, "m.sql") {
        Ok(m) => match m.operations.as_slice() {
            [Operation::AddColumn(a)] => a.clone(),
            other => panic!("{sql}: one add_column expected, got {other:?}"),
        },
        Err(e) => panic!("{sql}: {e}"),
    }
}

fn refusal(sql: &str, dialect: Dialect) -> String {
    match Migration::from_sql("m", sql, dialect, "m.sql") {
        Ok(m) => panic!("{sql}: accepted as {m:?}"),
        Err(e) => e.to_string(),
    }
}

const ALL: [Dialect; 3] = [Dialect::Sqlite, Dialect::Postgres, Dialect::Mysql];

#[test]
fn the_design_example() {
    let a = add(
        "ALTER TABLE users ADD COLUMN token uuid NOT NULL DEFAULT gen_random_uuid();",
        Dialect::Postgres,
    );
    assert_eq!(a.table, "users");
    assert_eq!(a.column, "token");
    assert_eq!(a.data_type, "uuid");
    assert!(a.not_null);
    assert_eq!(a.default.as_deref(), Some("gen_random_uuid()"));
}

#[test]
fn everything_accepted_in_any_order() {
    for dialect in ALL {
        let a = add(
            "alter table Users add Tier varchar(20) unique\n  CHECK (Tier IN ('gold', 'standard')) \
             references plans(id) default 'standard' not null",
            dialect,
        );
        assert_eq!(a.table, "Users");
        assert_eq!(a.column, "Tier");
        assert_eq!(a.data_type, "varchar(20)");
        assert!(a.not_null && a.unique && !a.index);
        assert_eq!(a.default.as_deref(), Some("'standard'"));
        assert_eq!(a.check.as_deref(), Some("Tier IN ('gold', 'standard')"));
        assert_eq!(
            a.references,
            Some(Reference {
                table: "plans".into(),
                column: Some("id".into())
            })
        );
        assert!(a.backfill.is_none());
    }
}

#[test]
fn source_text_is_kept() {
    let a = add(
        "ALTER TABLE t ADD COLUMN c bigint DEFAULT ( 1 +  2 ) CHECK ((c > 0) AND c < 10) NULL;",
        Dialect::Postgres,
    );
    assert_eq!(a.data_type, "bigint");
    assert_eq!(a.default.as_deref(), Some("( 1 +  2 )"));
    assert_eq!(a.check.as_deref(), Some("(c > 0) AND c < 10"));
    let a = add(
        "ALTER TABLE t ADD COLUMN c double precision DEFAULT -1.5 NOT NULL",
        Dialect::Postgres,
    );
    assert_eq!(a.data_type, "double precision");
    assert_eq!(a.default.as_deref(), Some("-1.5"));
    let a = add(
        "ALTER TABLE t ADD c text DEFAULT 'é''x' -- note\n CHECK (length(c) > 0 /* why */)",
        Dialect::Sqlite,
    );
    assert_eq!(a.default.as_deref(), Some("'é''x'"));
    // Comments at the edges are not part of the expression; inside it they are kept.
    assert_eq!(a.check.as_deref(), Some("length(c) > 0"));
    let a = add(
        "ALTER TABLE t ADD c int CHECK (c /* why */ > 0)",
        Dialect::Sqlite,
    );
    assert_eq!(a.check.as_deref(), Some("c /* why */ > 0"));
    let a = add(
        "ALTER TABLE t ADD COLUMN c timestamp DEFAULT CURRENT_TIMESTAMP",
        Dialect::Sqlite,
    );
    assert_eq!(a.default.as_deref(), Some("CURRENT_TIMESTAMP"));
    let a = add(
        "ALTER TABLE t ADD COLUMN c int DEFAULT (x'00' || 'ü')\r\n",
        Dialect::Sqlite,
    );
    assert_eq!(a.default.as_deref(), Some("(x'00' || 'ü')"));
}

#[test]
fn identifiers_lose_quotes_and_keep_case() {
    let a = add(
        r#"ALTER TABLE "My Table" ADD COLUMN "My ""Col""" text REFERENCES "Plans""#,
        Dialect::Postgres,
    );
    assert_eq!(a.table, "My Table");
    assert_eq!(a.column, r#"My "Col""#);
    assert_eq!(
        a.references,
        Some(Reference {
            table: "Plans".into(),
            column: None
        })
    );
    let a = add("ALTER TABLE `t` ADD COLUMN `Col x` int", Dialect::Mysql);
    assert_eq!((a.table.as_str(), a.column.as_str()), ("t", "Col x"));
}

#[test]
fn comments_and_semicolons_around_the_statement() {
    let a = add(
        "-- 0042: tiers\n;\nALTER TABLE t /* x */ ADD c int; ;\n-- done\n",
        Dialect::Sqlite,
    );
    assert_eq!(
        (a.table.as_str(), a.column.as_str(), a.data_type.as_str()),
        ("t", "c", "int")
    );
}

#[test]
fn named_check_keeps_only_the_expression() {
    let a = add(
        "ALTER TABLE t ADD COLUMN c int CONSTRAINT c_positive CHECK (c > 0)",
        Dialect::Postgres,
    );
    assert_eq!(a.check.as_deref(), Some("c > 0"));
}

#[test]
fn refusals_are_named() {
    let cases: &[(&str, Dialect, &str)] = &[
        (
            "ALTER TABLE t ADD COLUMN c int PRIMARY KEY",
            Dialect::Postgres,
            "PRIMARY KEY on a new column is not supported",
        ),
        (
            "ALTER TABLE t ADD COLUMN c int GENERATED ALWAYS AS (a + 1) STORED",
            Dialect::Postgres,
            "GENERATED columns are not supported",
        ),
        (
            "ALTER TABLE t ADD COLUMN c int AS (a + 1)",
            Dialect::Sqlite,
            "GENERATED columns are not supported",
        ),
        (
            "ALTER TABLE t ADD COLUMN c int GENERATED ALWAYS AS IDENTITY",
            Dialect::Postgres,
            "GENERATED columns are not supported",
        ),
        (
            "ALTER TABLE t ADD COLUMN c text COLLATE \"C\"",
            Dialect::Postgres,
            "COLLATE is not supported yet",
        ),
        (
            "ALTER TABLE t ADD COLUMN c text COLLATE NOCASE",
            Dialect::Sqlite,
            "COLLATE is not supported yet",
        ),
        (
            "ALTER TABLE t ADD COLUMN c int, ADD COLUMN d int",
            Dialect::Postgres,
            "ALTER TABLE with several operations: write one ADD COLUMN per migration",
        ),
        (
            "ALTER TABLE t ADD COLUMN c int, ALGORITHM=INSTANT",
            Dialect::Mysql,
            "ALGORITHM= and LOCK= are not supported",
        ),
        (
            "DROP TABLE users",
            Dialect::Postgres,
            "expected ALTER TABLE … ADD COLUMN, found DROP TABLE",
        ),
        (
            "select 1",
            Dialect::Sqlite,
            "expected ALTER TABLE … ADD COLUMN, found SELECT",
        ),
        (
            "CREATE INDEX i ON t (c)",
            Dialect::Mysql,
            "found CREATE INDEX",
        ),
        (
            "ALTER TABLE t DROP COLUMN c",
            Dialect::Postgres,
            "found ALTER TABLE … DROP COLUMN",
        ),
        (
            "ALTER TABLE t RENAME TO u",
            Dialect::Sqlite,
            "found ALTER TABLE … RENAME TO",
        ),
        (
            "ALTER TABLE t ADD CONSTRAINT x CHECK (a > 0)",
            Dialect::Postgres,
            "found ALTER TABLE … ADD CONSTRAINT",
        ),
        (
            "ALTER TABLE t ADD INDEX i (c)",
            Dialect::Mysql,
            "found ALTER TABLE … ADD INDEX",
        ),
        (
            "ALTER TABLE t ADD COLUMN IF NOT EXISTS c int",
            Dialect::Postgres,
            "IF NOT EXISTS is not supported",
        ),
        (
            "ALTER TABLE t ADD COLUMN IF NOT EXISTS c int",
            Dialect::Sqlite,
            "IF NOT EXISTS is not supported",
        ),
        (
            "ALTER TABLE t ADD IF NOT EXISTS c int",
            Dialect::Mysql,
            "IF NOT EXISTS is not supported",
        ),
        (
            "ALTER TABLE IF EXISTS t ADD COLUMN c int",
            Dialect::Postgres,
            "IF EXISTS is not supported",
        ),
        (
            "ALTER TABLE ONLY t ADD COLUMN c int",
            Dialect::Postgres,
            "ALTER TABLE ONLY is not supported",
        ),
        (
            "ALTER TABLE public.t ADD COLUMN c int",
            Dialect::Postgres,
            "schema-qualified table names are not supported yet",
        ),
        (
            "ALTER TABLE t ADD COLUMN c int REFERENCES s.p(id)",
            Dialect::Postgres,
            "schema-qualified table names are not supported yet",
        ),
        (
            "ALTER TABLE t ADD COLUMN c int REFERENCES p(id) ON DELETE CASCADE",
            Dialect::Postgres,
            "ON DELETE / ON UPDATE",
        ),
        (
            "ALTER TABLE t ADD COLUMN c int REFERENCES p(a, b)",
            Dialect::Postgres,
            "several columns",
        ),
        (
            "ALTER TABLE t ADD COLUMN c int DEFAULT 1 DEFAULT 2",
            Dialect::Postgres,
            "DEFAULT is given twice",
        ),
        (
            "ALTER TABLE t ADD COLUMN c int NULL NOT NULL",
            Dialect::Postgres,
            "contradict",
        ),
        (
            "ALTER TABLE t ADD COLUMN c int CHECK (c > 0) CHECK (c < 9)",
            Dialect::Postgres,
            "combine them with AND",
        ),
        (
            "ALTER TABLE t ADD COLUMN c int CONSTRAINT u UNIQUE",
            Dialect::Postgres,
            "a constraint name is only accepted on CHECK",
        ),
        (
            "ALTER TABLE t ADD COLUMN c int AUTO_INCREMENT",
            Dialect::Mysql,
            "AUTO_INCREMENT is not supported",
        ),
        (
            "ALTER TABLE t ADD COLUMN c int FIRST",
            Dialect::Mysql,
            "FIRST / AFTER",
        ),
        (
            "ALTER TABLE t ADD COLUMN c int AFTER b",
            Dialect::Mysql,
            "FIRST / AFTER",
        ),
        (
            "ALTER TABLE t ADD COLUMN c int COMMENT 'x'",
            Dialect::Mysql,
            "COMMENT is not supported yet",
        ),
        (
            "ALTER TABLE t ADD COLUMN c timestamp ON UPDATE CURRENT_TIMESTAMP",
            Dialect::Mysql,
            "ON UPDATE is not supported",
        ),
        (
            "ALTER TABLE t ADD COLUMN c text CHARACTER SET utf8mb4",
            Dialect::Mysql,
            "CHARACTER SET is not supported yet",
        ),
        (
            "ALTER TABLE t ADD COLUMN c NOT NULL",
            Dialect::Sqlite,
            "needs a type",
        ),
        (
            "ALTER TABLE t ADD COLUMN c",
            Dialect::Sqlite,
            "needs a type",
        ),
        (
            "ALTER TABLE t ADD COLUMN c int; ALTER TABLE t ADD COLUMN d int;",
            Dialect::Sqlite,
            "several statements",
        ),
        ("", Dialect::Postgres, "no SQL statement"),
        (
            "ALTER TABLE t",
            Dialect::Postgres,
            "incomplete statement: expected ALTER TABLE … ADD COLUMN, found only ALTER TABLE t",
        ),
        (
            ";; DROP TABLE t",
            Dialect::Postgres,
            "m.sql:1:4: expected ALTER TABLE … ADD COLUMN, found DROP TABLE",
        ),
        (" ; -- nothing\n", Dialect::Postgres, "no SQL statement"),
    ];
    for (sql, dialect, needle) in cases {
        let msg = refusal(sql, *dialect);
        assert!(msg.contains(needle), "{sql} ({dialect:?}): {msg}");
        assert!(msg.starts_with("m.sql"), "{msg}");
    }
}

#[test]
fn refusals_point_at_the_place() {
    let msg = refusal(
        "ALTER TABLE t\n  ADD COLUMN c int PRIMARY KEY",
        Dialect::Postgres,
    );
    assert!(msg.starts_with("m.sql:2:20: PRIMARY KEY"), "{msg}");
}

#[test]
fn syntax_errors_carry_line_and_column() {
    let err = Migration::from_sql(
        "m",
        "ALTER TABLE t\nADD COLUMN c int DEFAULT (1 +",
        Dialect::Postgres,
        "m.sql",
    )
    .unwrap_err();
    match &err {
        SpecError::Syntax {
            line: Some(2),
            column: Some(30),
            message,
            ..
        } => assert_eq!(
            message,
            "Expected: an expression, found: the end of the text"
        ),
        other => panic!("{other:?}"),
    }
    let err = Migration::from_sql(
        "m",
        "ALTER TABLE t ADD COLUMN c int 'x",
        Dialect::Sqlite,
        "m.sql",
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            SpecError::Syntax {
                line: Some(1),
                column: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
    let err = Migration::from_sql(
        "m",
        "ALTER TABLE t ADD COLUMN c int FOO",
        Dialect::Sqlite,
        "m.sql",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "m.sql:1:32: unexpected `FOO` in the column definition"
    );
}

#[test]
fn split_location_parses_sqlparser_suffix() {
    assert_eq!(
        split_location("Expected: x, found: y at Line: 3, Column: 7"),
        ("Expected: x, found: y".to_string(), Some(3), Some(7))
    );
    assert_eq!(
        split_location("no place"),
        ("no place".to_string(), None, None)
    );
}

#[test]
fn sql_and_toml_give_equal_migrations() {
    let from_sql = Migration::from_sql(
        "0042_users_tier",
        "ALTER TABLE users ADD COLUMN tier text NOT NULL DEFAULT 'standard' \
         CHECK (tier IN ('gold', 'standard')) UNIQUE REFERENCES plans(id);",
        Dialect::Postgres,
        "0042_users_tier.sql",
    )
    .unwrap();
    let from_toml = Migration::from_toml(
        "0042_users_tier",
        r#"[add_column]
table = "users"
column = "tier"
type = "text"
not_null = true
default = "'standard'"
check = "tier IN ('gold', 'standard')"
unique = true
references = "plans(id)"
"#,
        "0042_users_tier.toml",
    )
    .unwrap();
    assert_eq!(from_sql, from_toml);
    assert_eq!(
        Migration::from_toml("0042_users_tier", &from_sql.canonical_toml(), "stored").unwrap(),
        from_sql
    );
}
