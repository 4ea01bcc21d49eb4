//! Plans are data: snapshot-tested without a database, from a schema given by hand.

use zerodown::engine::sqlite::{SqliteEnv, build_plan};
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
            col("id", "INTEGER", 1),
            col("email", "TEXT", 0),
            col("balance", "INTEGER", 0),
        ],
        key: vec!["rowid".into()],
        strict: false,
        triggers: vec![Trigger {
            name: "accounts_audit".into(),
            event: "UPDATE".into(),
        }],
    }
}

fn env(mode: &str) -> SqliteEnv {
    SqliteEnv {
        version: 3_054_001,
        journal_mode: mode.into(),
    }
}

fn plan_toml(body: &str, mode: &str) -> String {
    let m = Migration::from_toml("0042_example", body, "test.toml").unwrap();
    render_text(&build_plan(&m.name, added(&m), &accounts(), &env(mode)).unwrap())
}

#[test]
fn derived_not_null_column_with_check_default_and_index() {
    insta::assert_snapshot!(plan_toml(
        r#"[add_column]
table = "accounts"
column = "tier"
type = "text"
not_null = true
backfill = "CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END"
default = "'standard'"
check = "tier IN ('gold', 'standard')"
index = true
"#,
        "wal"
    ));
}

#[test]
fn literal_default_is_one_catalog_only_step() {
    let m = Migration::from_sql(
        "0001_active",
        "ALTER TABLE accounts ADD COLUMN active integer NOT NULL DEFAULT 1",
        Dialect::Sqlite,
        "--sql",
    )
    .unwrap();
    insta::assert_snapshot!(render_text(
        &build_plan(&m.name, added(&m), &accounts(), &env("wal")).unwrap()
    ));
}

#[test]
fn time_default_takes_the_backfill_path_outside_wal() {
    insta::assert_snapshot!(plan_toml(
        "[add_column]\ntable = \"accounts\"\ncolumn = \"seen_at\"\ntype = \"text\"\nnot_null = true\ndefault = \"CURRENT_TIMESTAMP\"\n",
        "delete"
    ));
}

#[test]
fn volatile_unique_default_and_reference() {
    insta::assert_snapshot!(plan_toml(
        "[add_column]\ntable = \"accounts\"\ncolumn = \"token\"\ntype = \"blob\"\ndefault = \"randomblob(16)\"\nunique = true\n",
        "wal"
    ));
    insta::assert_snapshot!(plan_toml(
        "[add_column]\ntable = \"accounts\"\ncolumn = \"plan_id\"\ntype = \"integer\"\ndefault = \"1\"\nreferences = \"plans(id)\"\n",
        "wal"
    ));
}

#[test]
fn plan_json_has_the_same_content() {
    let m = Migration::from_toml(
        "0042_example",
        "[add_column]\ntable = \"accounts\"\ncolumn = \"tier\"\ntype = \"text\"\nbackfill = \"lower(email)\"\n",
        "test.toml",
    )
    .unwrap();
    let plan = build_plan(&m.name, added(&m), &accounts(), &env("wal")).unwrap();
    insta::assert_json_snapshot!(plan);
}

/// The one column a test migration adds.
fn added(m: &Migration) -> &zerodown::spec::AddColumn {
    match m.operations.as_slice() {
        [zerodown::spec::Operation::AddColumn(a)] => a,
        other => panic!("one add_column expected: {other:?}"),
    }
}
