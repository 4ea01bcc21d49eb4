//! PostgreSQL plans are data: snapshot-tested without a server, from a schema given by hand, for a
//! major before 18 (NOT NULL through a validated CHECK) and for 18 (NOT NULL … NOT VALID). Each rule
//! is proven on a real server in tests/postgres_lifecycle.rs.

use zerodown::engine::postgres::{PgEnv, PgReference, build_plan};
use zerodown::engine::{Column, TableSchema, Trigger};
use zerodown::plan::{DefaultKind, Run, render_text};
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
            col("id", "bigint", 1),
            col("email", "text", 0),
            col("balance", "bigint", 0),
        ],
        key: vec!["id".into()],
        strict: false,
        triggers: vec![Trigger {
            name: "accounts_audit".into(),
            event: "UPDATE".into(),
        }],
    }
}

fn env(version_num: i32, default_kind: Option<DefaultKind>) -> PgEnv {
    PgEnv {
        version_num,
        schema: "public".into(),
        default_kind,
        reference: None,
    }
}

const TIER: &str = r#"[add_column]
table = "accounts"
column = "tier"
type = "text"
not_null = true
backfill = "CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END"
default = "'standard'"
check = "tier IN ('gold', 'standard')"
index = true
"#;

fn plan(body: &str, env: &PgEnv) -> String {
    let m = Migration::from_toml("0042_example", body, "test.toml").unwrap();
    render_text(&build_plan(&m.name, added(&m), &accounts(), env).unwrap())
}

#[test]
fn derived_not_null_column_pg15() {
    insta::assert_snapshot!(plan(TIER, &env(150018, Some(DefaultKind::Literal))));
}

#[test]
fn derived_not_null_column_pg18() {
    insta::assert_snapshot!(plan(TIER, &env(180004, Some(DefaultKind::Literal))));
}

#[test]
fn volatile_default_from_sql_with_unique() {
    let m = Migration::from_sql(
        "0003_token",
        "ALTER TABLE accounts ADD COLUMN token uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE",
        Dialect::Postgres,
        "--sql",
    )
    .unwrap();
    insta::assert_snapshot!(render_text(
        &build_plan(
            &m.name,
            added(&m),
            &accounts(),
            &env(150018, Some(DefaultKind::Volatile))
        )
        .unwrap()
    ));
}

#[test]
fn constant_and_time_defaults_are_one_catalog_only_step() {
    for (sql, kind) in [
        (
            "ALTER TABLE accounts ADD COLUMN active boolean NOT NULL DEFAULT true",
            DefaultKind::Literal,
        ),
        (
            "ALTER TABLE accounts ADD COLUMN seen_at timestamptz NOT NULL DEFAULT now()",
            DefaultKind::Time,
        ),
    ] {
        let m = Migration::from_sql("0001", sql, Dialect::Postgres, "--sql").unwrap();
        let p = build_plan(&m.name, added(&m), &accounts(), &env(180004, Some(kind))).unwrap();
        assert!(p.single_step, "{sql}");
        assert_eq!(p.steps.len(), 1);
        assert_eq!(p.steps[0].lock.mode, "ACCESS EXCLUSIVE");
        assert!(
            p.steps[0].sql[0].sql.ends_with("NOT NULL DEFAULT true")
                || p.steps[0].sql[0].sql.ends_with("NOT NULL DEFAULT now()")
        );
    }
}

#[test]
fn reference_with_backfill() {
    let mut e = env(160004, None);
    e.reference = Some(PgReference {
        schema: "public".into(),
        table: "plans".into(),
        column: "id".into(),
    });
    insta::assert_snapshot!(plan(
        "[add_column]\ntable = \"accounts\"\ncolumn = \"plan_id\"\ntype = \"bigint\"\nbackfill = \"CASE WHEN balance > 10000 THEN 2 ELSE 1 END\"\nreferences = \"plans(id)\"\n",
        &e
    ));
}

#[test]
fn hostile_names_are_quoted() {
    let mut schema = accounts();
    schema.name = "acc\"; DROP TABLE x; --".into();
    let m = Migration::from_toml(
        "m",
        "[add_column]\ntable = \"acc\\\"; DROP TABLE x; --\"\ncolumn = \"c\\\"x\"\ntype = \"text\"\nbackfill = \"email\"\n",
        "t.toml",
    )
    .unwrap();
    let p = build_plan(&m.name, added(&m), &schema, &env(150018, None)).unwrap();
    let all = p
        .steps
        .iter()
        .flat_map(|s| s.sql.iter())
        .map(|s| s.sql.clone())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        all.contains("\"public\".\"acc\"\"; DROP TABLE x; --\""),
        "{all}"
    );
    assert!(all.contains("\"c\"\"x\""), "{all}");
}

#[test]
fn only_index_builds_and_their_undo_run_online() {
    // The user's words are data: a default and CHECK that read like index DDL run in their step.
    let mut schema = accounts();
    schema.name = "a\"cc".into();
    let m = Migration::from_toml(
        "m",
        "[add_column]\ntable = 'a\"cc'\ncolumn = 'note'\ntype = 'text'\nnot_null = true\ndefault = \"'DROP INDEX CONCURRENTLY x'\"\nbackfill = \"'CREATE INDEX CONCURRENTLY ' || email\"\ncheck = \"note <> 'CREATE UNIQUE INDEX CONCURRENTLY'\"\nunique = true\n",
        "t.toml",
    )
    .unwrap();
    let mut e = env(150018, None);
    e.schema = "my \"s\"".into();
    let p = build_plan(&m.name, added(&m), &schema, &e).unwrap();
    let uq = p.ops[0].objects.unique_index.clone().unwrap();
    let mut online = Vec::new();
    for step in &p.steps {
        for s in step.sql.iter().chain(&step.undo) {
            match &s.run {
                Run::InStep => {}
                Run::OnlineBuild {
                    index: Some(index),
                    strict: false,
                } => online.push((index.clone(), s.sql.clone())),
                other => panic!("{other:?}: {s}"),
            }
        }
    }
    let q = |n: &str| format!("\"my \"\"s\"\"\".\"{n}\"");
    assert_eq!(
        online,
        vec![
            (
                q(&uq),
                format!(
                    "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS \"{uq}\" ON \"my \"\"s\"\"\".\"a\"\"cc\" (\"note\")"
                )
            ),
            (
                q(&uq),
                format!("DROP INDEX CONCURRENTLY IF EXISTS {}", q(&uq))
            ),
        ]
    );
}

#[test]
fn old_servers_are_refused_by_name() {
    let m = Migration::from_toml("m", TIER, "t.toml").unwrap();
    let e = build_plan(&m.name, added(&m), &accounts(), &env(120010, None))
        .unwrap_err()
        .to_string();
    assert!(e.contains("PostgreSQL 12") && e.contains("13 to 18"), "{e}");
}

/// The one column a test migration adds.
fn added(m: &Migration) -> &zerodown::spec::AddColumn {
    match m.operations.as_slice() {
        [zerodown::spec::Operation::AddColumn(a)] => a,
        other => panic!("one add_column expected: {other:?}"),
    }
}
