//! `zerodown lint` against squawk's documented examples and squawk 2.70.0's verdicts on the corpus
//! (tests/corpus/squawk-rules, squawk-output.json), every rule on each engine it applies to, the
//! configuration and ignore comments, and the command line's outputs and exit status. Offline: no
//! database.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use zerodown::analysis::{self, Engine, Version};
use zerodown::lint::{self, Config, Finding, RULES};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn lint_sql(sql: &str, engine: Engine, config: &Config) -> Vec<Finding> {
    let file = analysis::read("t.sql", sql, engine);
    assert!(file.errors().is_empty(), "{:?}", file.errors());
    lint::lint_file(&file, config)
}

fn ids(findings: &[Finding]) -> BTreeSet<&'static str> {
    findings.iter().map(|f| f.rule).collect()
}

/// Our rules that answer to a squawk rule.
fn counterparts(squawk: &str) -> BTreeSet<&'static str> {
    RULES
        .iter()
        .filter(|r| r.squawk.contains(&squawk))
        .map(|r| r.id)
        .collect()
}

/// squawk's rules we do not answer, and why (docs/lint.md says the same).
const NOT_OURS: &[(&str, &str)] = &[
    (
        "prefer-robust-stmts",
        "re-running half-applied files, not locking",
    ),
    ("prefer-text-field", "type advice"),
    ("prefer-bigint-over-int", "type advice"),
    ("prefer-identity", "type advice"),
    ("prefer-timestamp-tz", "type advice"),
];

/// `.ok.sql` files where our counterpart still fires, and why.
const OK_FILES_WE_FLAG: &[(&str, &str)] = &[(
    "adding-not-nullable-field.ok.sql",
    "its SET NOT NULL is on table_name.column_name, not on the recipe.view_count its CHECK proves \
     (squawk flags it too)",
)];

#[test]
fn squawk_rule_examples_trigger_our_counterpart_and_their_fixes_do_not() {
    let dir = corpus().join("squawk-rules");
    let mut checked = 0;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    entries.sort();
    let mut failures = Vec::new();
    for p in entries {
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        let (rule, ok) = match name.strip_suffix(".ok.sql") {
            Some(r) => (r.to_string(), true),
            None => (name.strip_suffix(".sql").unwrap().to_string(), false),
        };
        if NOT_OURS.iter().any(|(r, _)| *r == rule) {
            continue;
        }
        let ours = counterparts(&rule);
        assert!(!ours.is_empty(), "no counterpart for squawk rule {rule}");
        let sql = std::fs::read_to_string(&p).unwrap();
        let found = ids(&lint_sql(&sql, Engine::Postgres, &Config::default()));
        let hit: Vec<_> = found.intersection(&ours).collect();
        let expected_hit = !ok || OK_FILES_WE_FLAG.iter().any(|(f, _)| *f == name);
        if hit.is_empty() == expected_hit {
            failures.push(format!("{name}: counterparts {ours:?}, found {found:?}"));
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 45, "{checked}");
}

#[derive(serde::Deserialize)]
struct SquawkFinding {
    file: String,
    line: usize,
    rule_name: String,
}

/// Lints every PostgreSQL corpus file as squawk did (default settings, each file alone).
fn ours_on_corpus() -> BTreeMap<String, Vec<Finding>> {
    let mut out = BTreeMap::new();
    let mut files = Vec::new();
    walk(&corpus(), &mut files);
    for f in files {
        let rel = f
            .strip_prefix(corpus())
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        if !rel.contains("/postgresql/") || !rel.ends_with(".sql") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let file = analysis::read(&rel, &text, Engine::Postgres);
        assert!(file.errors().is_empty(), "{:?}", file.errors());
        out.insert(rel, lint::lint_file(&file, &Config::default()));
    }
    out
}

fn walk(d: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out)
        } else {
            out.push(p)
        }
    }
}

/// The engine facts (with their proofs) of the statement at `line` of a corpus file, PostgreSQL.
fn facts_at(file: &str, line: usize) -> Vec<String> {
    let text = std::fs::read_to_string(corpus().join(file)).unwrap();
    let read = analysis::read(file, &text, Engine::Postgres);
    lint::explain(&read, &Config::default())
        .into_iter()
        .filter(|s| s.line == line)
        .flat_map(|s| s.actions)
        .filter_map(|a| a.engine_fact)
        .collect()
}

/// Where squawk flags a statement for a lock, rewrite or deploy-safety reason and we do not, and why.
/// Each is a row of the table in docs/lint.md.
const SQUAWK_ONLY: &[(&str, usize, &str, &str)] = &[
    (
        "alembic/postgresql/upgrade_base_to_2b3c4d5e6f70.sql",
        27,
        "require-lock-timeout",
        NEW_TABLE,
    ),
    (
        "alembic/postgresql/upgrade_base_to_2b3c4d5e6f70.sql",
        27,
        "require-statement-timeout",
        NEW_TABLE,
    ),
    (
        "django/postgresql/0003_invoice_status.sql",
        6,
        "ban-drop-default",
        DJANGO_IDIOM,
    ),
    (
        "django/postgresql/0004_invoice_currency_due_on_notes.sql",
        6,
        "ban-drop-default",
        DJANGO_IDIOM,
    ),
    (
        "django/postgresql/0004_invoice_currency_due_on_notes.sql",
        15,
        "ban-drop-default",
        DJANGO_IDIOM,
    ),
    (
        "django/postgresql/0006_invoice_quantity_amount_check.sql",
        6,
        "ban-drop-default",
        DJANGO_IDIOM,
    ),
    (
        "goose/postgresql/migrations/20261203150000_add_invoice_status.sql",
        17,
        "ban-drop-column",
        GOOSE_DOWN,
    ),
    (
        "goose/postgresql/migrations/20261203150000_add_invoice_status.sql",
        18,
        "ban-drop-column",
        GOOSE_DOWN,
    ),
    (
        "goose/postgresql/migrations/20261203150100_add_invoice_customer_id.sql",
        7,
        "ban-drop-column",
        GOOSE_DOWN,
    ),
];
const NEW_TABLE: &str =
    "the table was created earlier in the same file: no running code waits on it";
const DJANGO_IDIOM: &str =
    "ADD COLUMN … DEFAULT x then DROP DEFAULT is one add with a fill, no lasting default";
const GOOSE_DOWN: &str = "the `-- +goose Down` section is the revert, not the migration";

#[test]
fn we_flag_what_squawk_flags_on_the_corpus_except_where_docs_lint_md_says_why() {
    let squawk: Vec<SquawkFinding> = serde_json::from_str(
        &std::fs::read_to_string(corpus().join("squawk-output.json")).unwrap(),
    )
    .unwrap();
    let ours = ours_on_corpus();
    let mut agree = 0;
    let mut missed = Vec::new();
    for s in &squawk {
        if NOT_OURS.iter().any(|(r, _)| *r == s.rule_name) {
            continue;
        }
        let want = counterparts(&s.rule_name);
        assert!(!want.is_empty(), "no counterpart for {}", s.rule_name);
        let line = s.line + 1;
        let hit = ours
            .get(&s.file)
            .is_some_and(|fs| fs.iter().any(|f| f.line == line && want.contains(f.rule)));
        if hit {
            agree += 1;
        } else {
            missed.push((s.file.clone(), line, s.rule_name.clone()));
        }
    }
    let documented: BTreeSet<(String, usize, String)> = SQUAWK_ONLY
        .iter()
        .map(|(f, l, r, _)| (f.to_string(), *l, r.to_string()))
        .collect();
    let missed_set: BTreeSet<_> = missed.iter().cloned().collect();
    let extra: Vec<_> = missed_set.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&missed_set).collect();
    assert!(
        extra.is_empty() && stale.is_empty(),
        "squawk flags, we do not (undocumented): {extra:#?}\ndocumented but now agreed: {stale:#?}"
    );
    // Where we stay quiet, the engine facts behind the statement are proven on the real engine;
    // a goose Down line is no statement of the migration at all (the reader's
    // tests/analysis.rs::goose_down_sections_and_liquibase_lines_are_not_the_migration).
    for (file, line, _, why) in SQUAWK_ONLY {
        let facts = facts_at(file, *line);
        if *why == GOOSE_DOWN {
            let text = std::fs::read_to_string(corpus().join(file)).unwrap();
            let read = analysis::read(file, &text, Engine::Postgres);
            assert!(
                !read.statements.iter().any(|s| s.line == *line),
                "{file}:{line} was read"
            );
            continue;
        }
        assert!(
            !facts.is_empty() && facts.iter().all(|f| f.contains("proven by tests/")),
            "{file}:{line}: {facts:?}"
        );
    }
    // What we flag that squawk does not, by rule (docs/lint.md lists them).
    let mut ours_only: BTreeMap<&str, usize> = BTreeMap::new();
    for (file, fs) in &ours {
        for f in fs {
            let squawk_has = squawk.iter().any(|s| {
                &s.file == file
                    && s.line + 1 == f.line
                    && RULES
                        .iter()
                        .any(|r| r.id == f.rule && r.squawk.contains(&s.rule_name.as_str()))
            });
            if !squawk_has {
                *ours_only.entry(f.rule).or_default() += 1;
                // The engine facts behind a finding squawk does not make are proven on the engine.
                let facts = facts_at(file, f.line);
                assert!(
                    !facts.is_empty() && facts.iter().all(|f| f.contains("proven by tests/")),
                    "{file}:{}: {facts:?}",
                    f.line
                );
            }
        }
    }
    eprintln!(
        "agree {agree}, squawk only {}, ours only {ours_only:?}",
        missed.len()
    );
}

/// Engines by group, for the rule cases below.
const PG: &[Engine] = &[Engine::Postgres];
const MY: &[Engine] = &[Engine::Mysql, Engine::Mariadb];
const SQ: &[Engine] = &[Engine::Sqlite];
const PG_MY: &[Engine] = &[Engine::Postgres, Engine::Mysql, Engine::Mariadb];
const PG_SQ: &[Engine] = &[Engine::Postgres, Engine::Sqlite];
const ALL: &[Engine] = &Engine::ALL;

/// Rules that need a live database (tests/lint_online.rs triggers them on every engine).
const ONLINE_ONLY: &[&str] = &["unknown-object"];

/// (rule, engines, version or "", a file that triggers it, one that does not).
#[rustfmt::skip]
const CASES: &[(&str, &[Engine], &str, &str, &str)] = &[
    ("add-column-volatile-default", PG, "", "ALTER TABLE t ADD COLUMN u uuid DEFAULT gen_random_uuid();", "ALTER TABLE t ADD COLUMN u int DEFAULT 0;"),
    ("add-column-volatile-default", MY, "", "ALTER TABLE t ADD COLUMN u char(36) DEFAULT (uuid());", "ALTER TABLE t ADD COLUMN u char(36) DEFAULT 'x';"),
    ("add-column-volatile-default", &[Engine::Mariadb], "", "ALTER TABLE t ADD COLUMN u bigint DEFAULT (uuid_short());", "ALTER TABLE t ADD COLUMN r double DEFAULT (rand());"),
    ("add-column-volatile-default", SQ, "", "ALTER TABLE t ADD COLUMN c timestamp DEFAULT CURRENT_TIMESTAMP;", "ALTER TABLE t ADD COLUMN c text DEFAULT 'x';"),
    ("add-column-required", PG_SQ, "", "ALTER TABLE t ADD COLUMN c int NOT NULL;", "ALTER TABLE t ADD COLUMN c int NOT NULL DEFAULT 0;"),
    ("set-not-null", PG, "", "ALTER TABLE t ALTER COLUMN c SET NOT NULL;", "ALTER TABLE t ADD CONSTRAINT c_nn CHECK (c IS NOT NULL) NOT VALID;\nALTER TABLE t VALIDATE CONSTRAINT c_nn;\nALTER TABLE t ALTER COLUMN c SET NOT NULL;"),
    ("add-foreign-key", PG, "", "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (c) REFERENCES p (id);", "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (c) REFERENCES p (id) NOT VALID;"),
    ("add-foreign-key", MY, "", "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (c) REFERENCES p (id);", "SET foreign_key_checks = 0;\nALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (c) REFERENCES p (id);"),
    ("add-check", PG, "", "ALTER TABLE t ADD CONSTRAINT ck CHECK (c > 0);", "ALTER TABLE t ADD CONSTRAINT ck CHECK (c > 0) NOT VALID;"),
    ("add-check", MY, "", "ALTER TABLE t ADD CONSTRAINT ck CHECK (c > 0);", "CREATE TABLE t (c int);\nALTER TABLE t ADD CONSTRAINT ck CHECK (c > 0);"),
    ("add-unique-constraint", PG, "", "ALTER TABLE t ADD CONSTRAINT u UNIQUE (c);", "ALTER TABLE t ADD CONSTRAINT u UNIQUE USING INDEX ix;"),
    ("add-primary-key", PG, "", "ALTER TABLE t ADD PRIMARY KEY (id);", "ALTER TABLE t ADD CONSTRAINT pk PRIMARY KEY USING INDEX ix;"),
    ("create-index-blocking", PG, "", "CREATE INDEX ix ON t (c);", "CREATE INDEX CONCURRENTLY ix ON t (c);"),
    ("create-index-blocking", SQ, "", "CREATE INDEX ix ON t (c);", "CREATE TABLE t (c int);\nCREATE INDEX ix ON t (c);"),
    ("concurrently-in-transaction", PG, "", "BEGIN;\nCREATE INDEX CONCURRENTLY ix ON t (c);\nCOMMIT;", "CREATE INDEX CONCURRENTLY ix ON t (c);"),
    ("drop-index-blocking", PG, "", "DROP INDEX ix;", "DROP INDEX CONCURRENTLY ix;"),
    ("change-column-type", PG, "", "ALTER TABLE t ALTER COLUMN c TYPE bigint;", "ALTER TABLE t ADD COLUMN c2 bigint;"),
    ("change-column-type", MY, "", "ALTER TABLE t MODIFY c bigint NOT NULL;", "ALTER TABLE t ADD COLUMN c2 bigint;"),
    ("rename-column", ALL, "", "ALTER TABLE t RENAME COLUMN a TO b;", "ALTER TABLE t ADD COLUMN b int;"),
    ("rename-table", ALL, "", "ALTER TABLE t RENAME TO u;", "CREATE TABLE u (id int);"),
    ("drop-column", ALL, "", "ALTER TABLE t DROP COLUMN c;", "CREATE TABLE t (c int);\nALTER TABLE t DROP COLUMN c;"),
    ("drop-table", ALL, "", "DROP TABLE t;", "CREATE TABLE t (id int);\nDROP TABLE t;"),
    ("drop-database", PG_MY, "", "DROP DATABASE d;", "CREATE DATABASE d;"),
    ("drop-not-null", PG, "", "ALTER TABLE t ALTER COLUMN c DROP NOT NULL;", "ALTER TABLE t ALTER COLUMN c SET DEFAULT 0;"),
    ("drop-default", PG_MY, "", "ALTER TABLE t ALTER COLUMN c DROP DEFAULT;", "ALTER TABLE t ADD COLUMN c int DEFAULT 0 NOT NULL;\nALTER TABLE t ALTER COLUMN c DROP DEFAULT;"),
    ("truncate-cascade", PG, "", "TRUNCATE a CASCADE;", "TRUNCATE a, b;"),
    ("transaction-nesting", ALL, "", "BEGIN;\nBEGIN;\nSELECT 1;\nCOMMIT;", "BEGIN;\nSELECT 1;\nCOMMIT;"),
    ("uncommitted-transaction", ALL, "", "BEGIN;\nCREATE TABLE u (id int);", "BEGIN;\nCREATE TABLE u (id int);\nCOMMIT;"),
    ("missing-lock-timeout", PG, "", "ALTER TABLE t ADD COLUMN c int;", "SET lock_timeout = '1s';\nALTER TABLE t ADD COLUMN c int;"),
    ("missing-lock-timeout", MY, "", "ALTER TABLE t ADD COLUMN c int;", "SET SESSION lock_wait_timeout = 2;\nALTER TABLE t ADD COLUMN c int;"),
    ("missing-statement-timeout", PG, "", "ALTER TABLE t ADD COLUMN c int;", "SET statement_timeout = '5s';\nALTER TABLE t ADD COLUMN c int;"),
    ("reindex-blocking", PG, "", "REINDEX TABLE foo;", "REINDEX TABLE CONCURRENTLY foo;"),
    ("detach-partition-blocking", PG, "", "ALTER TABLE t DETACH PARTITION p;", "ALTER TABLE t DETACH PARTITION p CONCURRENTLY;"),
    ("rewrite-table", PG, "", "VACUUM FULL t;", "VACUUM t;"),
    ("alter-domain-add-constraint", PG, "", "ALTER DOMAIN d ADD CONSTRAINT c CHECK (value > 0);", "ALTER DOMAIN d VALIDATE CONSTRAINT c;"),
    ("create-domain-with-constraint", PG, "", "CREATE DOMAIN d AS int CHECK (value > 0);", "CREATE DOMAIN d AS int;"),
    ("long-statement-after-lock", PG, "", "BEGIN;\nALTER TABLE t ADD COLUMN c int;\nCREATE INDEX ix ON t (c);\nCOMMIT;", "BEGIN;\nALTER TABLE t ADD COLUMN c int;\nCOMMIT;\nCREATE INDEX CONCURRENTLY ix ON t (c);"),
    ("algorithm-copy", MY, "", "ALTER TABLE t ADD COLUMN c int, ALGORITHM=COPY;", "ALTER TABLE t ADD COLUMN c int, ALGORITHM=INSTANT;"),
    ("add-column-position", &[Engine::Mariadb], "10.3", "ALTER TABLE t ADD COLUMN c int AFTER a;", "ALTER TABLE t ADD COLUMN c int;"),
    ("add-column-position", &[Engine::Mysql], "8.0.28", "ALTER TABLE t ADD COLUMN c int AFTER a;", "ALTER TABLE t ADD COLUMN c int;"),
    ("sqlite-table-copy", SQ, "", "CREATE TABLE new__t (id int, c int);\nINSERT INTO new__t (id, c) SELECT id, 1 FROM t;\nDROP TABLE t;\nALTER TABLE new__t RENAME TO t;", "ALTER TABLE t ADD COLUMN c int DEFAULT 1;"),
    ("whole-table-write", ALL, "", "UPDATE t SET c = 0;", "UPDATE t SET c = 0 WHERE id < 100;"),
];

#[test]
fn every_rule_triggers_and_stays_quiet_on_each_engine_it_applies_to() {
    let mut failures = Vec::new();
    // Rules only an online lint can trigger are proven in tests/lint_online.rs, on each engine.
    let online =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lint_online.rs"))
            .unwrap();
    for rule in RULES {
        if ONLINE_ONLY.contains(&rule.id) {
            assert!(online.contains(&format!("\"{}\"", rule.id)), "{}", rule.id);
            continue;
        }
        for engine in rule.engines {
            let cases: Vec<_> = CASES
                .iter()
                .filter(|(id, engines, ..)| *id == rule.id && engines.contains(engine))
                .collect();
            if cases.is_empty() {
                failures.push(format!("{} on {engine}: no case", rule.id));
            }
            for (id, _, version, bad, ok) in cases {
                let config = Config {
                    version: Version::parse(version),
                    ..Config::default()
                };
                if !ids(&lint_sql(bad, *engine, &config)).contains(id) {
                    failures.push(format!("{id} on {engine}: not triggered by {bad:?}"));
                }
                if ids(&lint_sql(ok, *engine, &config)).contains(id) {
                    failures.push(format!("{id} on {engine}: triggered by {ok:?}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn configuration_turns_rules_off_changes_severity_and_ignores_by_comment() {
    let config = Config::from_toml(
        "engine = \"postgres\"\nversion = \"15\"\nexclude = [\"**/down.sql\"]\n[rules]\ndrop-column = \"off\"\nrename-column = \"warning\"\n",
    )
    .unwrap();
    assert_eq!(config.engine, Some(Engine::Postgres));
    assert_eq!(config.version, Some(Version(15, 0, 0)));
    assert!(config.ignores_file("db/migrations/0002/down.sql"));
    let f = lint_sql(
        "ALTER TABLE t DROP COLUMN c;\nALTER TABLE t RENAME COLUMN a TO b;",
        Engine::Postgres,
        &config,
    );
    assert!(!ids(&f).contains("drop-column"));
    let rename = f.iter().find(|f| f.rule == "rename-column").unwrap();
    assert_eq!(rename.severity, lint::Severity::Warning);
    // A `[lint]` table in a bigger TOML file works too; unknown rules are refused by name.
    assert!(
        Config::from_toml("[lint]\nengine = \"sqlite\"")
            .unwrap()
            .engine
            == Some(Engine::Sqlite)
    );
    let err = Config::from_toml("[rules]\nno-such-rule = \"off\"").unwrap_err();
    assert!(err.contains("no-such-rule"), "{err}");

    let sql = "-- zerodown-ignore drop-column\nALTER TABLE t DROP COLUMN c;\nALTER TABLE t DROP COLUMN d;\n";
    let f = lint_sql(sql, Engine::Postgres, &Config::default());
    let drops: Vec<usize> = f
        .iter()
        .filter(|f| f.rule == "drop-column")
        .map(|f| f.line)
        .collect();
    assert_eq!(drops, [3]);
    let sql =
        "ALTER TABLE t DROP COLUMN c;\n-- zerodown-ignore-file drop-column, missing-lock-timeout\n";
    let f = lint_sql(sql, Engine::Postgres, &Config::default());
    assert!(!ids(&f).contains("drop-column") && !ids(&f).contains("missing-lock-timeout"));
}

#[test]
fn findings_name_the_engine_fact_and_the_zerodown_path() {
    let f = lint_sql(
        "CREATE INDEX ix ON t (c);",
        Engine::Postgres,
        &Config {
            version: Some(Version(16, 0, 0)),
            ..Config::default()
        },
    );
    let ix = f
        .iter()
        .find(|f| f.rule == "create-index-blocking")
        .unwrap();
    assert_eq!((ix.line, ix.column), (1, 1));
    assert_eq!(ix.statement, "CREATE INDEX ix ON t (c)");
    assert!(ix.zerodown);
    let fact = ix.engine_fact.as_deref().unwrap();
    assert!(
        fact.starts_with("postgres 16: SHARE; blocks writes"),
        "{fact}"
    );
    let f = lint_sql(
        "ALTER TABLE t DROP COLUMN c;",
        Engine::Mariadb,
        &Config::default(),
    );
    let drop = f.iter().find(|f| f.rule == "drop-column").unwrap();
    assert!(!drop.zerodown);
    assert!(
        drop.engine_fact
            .as_deref()
            .unwrap()
            .contains("tests/mariadb_rules.rs::expand_runs_instant")
    );
}

fn zerodown(args: &[&str], dir: &Path) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_zerodown"))
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
    )
}

#[test]
fn the_cli_exits_0_1_or_2_and_writes_text_json_github_and_sarif() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("migrations/0002")).unwrap();
    std::fs::write(d.join("clean.sql"), "CREATE TABLE t (id bigint);\n").unwrap();
    std::fs::write(
        d.join("migrations/0001.sql"),
        "SET lock_timeout = '1s';\nSET statement_timeout = '5s';\nALTER TABLE t DROP COLUMN c;\n",
    )
    .unwrap();
    std::fs::write(
        d.join("migrations/0002/up.sql"),
        "ALTER TABLE t FROBNICATE;\nTRUNCATE a CASCADE;\n",
    )
    .unwrap();
    std::fs::write(d.join("migrations/0002/down.sql"), "DROP TABLE t;\n").unwrap();

    let (code, out) = zerodown(&["lint", "clean.sql"], d);
    assert_eq!(code, 0, "{out}");
    let (code, out) = zerodown(
        &[
            "lint",
            "--engine",
            "postgres",
            "--version",
            "15",
            "migrations/0001.sql",
        ],
        d,
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("migrations/0001.sql:3:1: error[drop-column]"),
        "{out}"
    );
    assert!(out.contains("  | ALTER TABLE t DROP COLUMN c"), "{out}");

    // A folder: down.sql skipped; the unreadable statement is an input error (2) and the other
    // statement's finding is still reported.
    let (code, out) = zerodown(&["lint", "--format", "json", "migrations"], d);
    assert_eq!(code, 2, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["summary"]["files"], 2, "{out}");
    let errors = v["input_errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].as_str().unwrap().contains("0002/up.sql:1:"),
        "{out}"
    );
    let rules: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert!(
        rules.contains(&"truncate-cascade") && rules.contains(&"drop-column"),
        "{rules:?}"
    );
    assert!(
        !rules.contains(&"drop-table"),
        "down.sql was linted: {rules:?}"
    );

    let (_, out) = zerodown(&["lint", "--format", "github", "migrations/0001.sql"], d);
    assert!(
        out.lines().any(|l| l.starts_with(
            "::error file=migrations/0001.sql,line=3,col=1,title=zerodown lint drop-column::"
        )),
        "{out}"
    );
    let (_, out) = zerodown(&["lint", "--format", "sarif", "migrations/0001.sql"], d);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["version"], "2.1.0");
    assert_eq!(v["runs"][0]["results"][0]["ruleId"], "drop-column");

    // --explain: every statement with its engine fact, also in JSON.
    let (_, out) = zerodown(
        &[
            "lint",
            "--explain",
            "--version",
            "16",
            "migrations/0001.sql",
        ],
        d,
    );
    assert!(out.contains("migrations/0001.sql:1: scaffolding"), "{out}");
    assert!(out.contains("migrations/0001.sql:3: drop_column t [*]: ACCESS EXCLUSIVE; blocks reads and writes; catalog only"), "{out}");
    let (_, out) = zerodown(
        &[
            "lint",
            "--explain",
            "--format",
            "json",
            "migrations/0001.sql",
        ],
        d,
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["statements"].as_array().unwrap().len(), 3, "{out}");
    assert_eq!(v["statements"][2]["actions"][0]["kind"], "drop_column");

    // The repository's zerodown-lint.toml is read from the working directory.
    std::fs::write(
        d.join("zerodown-lint.toml"),
        "[rules]\ndrop-column = \"warning\"\n",
    )
    .unwrap();
    let (code, out) = zerodown(&["lint", "migrations/0001.sql"], d);
    assert_eq!(code, 0, "{out}");
    std::fs::write(
        d.join("zerodown-lint.toml"),
        "[rules]\ndrop-colum = \"off\"\n",
    )
    .unwrap();
    let (code, out) = zerodown(&["lint", "migrations/0001.sql"], d);
    assert_eq!(code, 2, "{out}");
    let (code, out) = zerodown(&["lint", "--list-rules"], d);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), RULES.len());
}

/// docs/lint.md's rule table names every rule.
#[test]
fn docs_lint_md_lists_every_rule() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/lint.md"))
        .unwrap();
    for r in RULES {
        assert!(
            doc.contains(&format!("| `{}` |", r.id)),
            "docs/lint.md lacks {}",
            r.id
        );
    }
}

/// A 1,000-statement migration folder as an ORM would grow it: 100 files of 10 statements each.
fn thousand_statement_folder(dir: &Path) {
    for f in 0..100 {
        let mut sql = String::from("SET lock_timeout = '1s';\nSET statement_timeout = '5s';\n");
        for i in 0..4 {
            let t = format!("t{}", (f * 4 + i) % 37);
            sql.push_str(&format!(
                "ALTER TABLE {t} ADD COLUMN c{f}_{i} bigint;\nCREATE INDEX ix_{f}_{i} ON {t} (c{f}_{i});\n"
            ));
        }
        std::fs::write(dir.join(format!("{f:04}_step.sql")), sql).unwrap();
    }
}

/// Offline lint of a 1,000-statement folder reads every statement and reports the 400 plain index
/// builds, through the command line. It measures work, not time: the time it took is printed
/// (`cargo test --release --test lint -- thousand --nocapture`; docs/lint.md records the figure).
#[test]
fn a_thousand_statement_folder_is_linted_whole() {
    let dir = tempfile::tempdir().unwrap();
    thousand_statement_folder(dir.path());
    let started = std::time::Instant::now();
    let (code, out) = zerodown(
        &["lint", "--engine", "postgres", "--format", "json", "."],
        dir.path(),
    );
    let took = started.elapsed();
    assert_eq!(code, 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["summary"]["files"], 100);
    let findings = v["findings"].as_array().unwrap();
    let builds = findings
        .iter()
        .filter(|f| f["rule"] == "create-index-blocking")
        .count();
    assert_eq!(builds, 400);
    assert_eq!(findings.len(), 400, "only the index builds: {out}");
    eprintln!(
        "1,000 statements in 100 files: {} ms (the whole process)",
        took.as_millis()
    );
}

/// A malformed file — bytes that are not UTF-8, or a quote never closed — is an input error at its
/// line and column (exit 2), and the files beside it are still linted.
#[test]
fn a_malformed_file_is_located_and_the_others_are_still_linted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("1_binary.sql"),
        b"ALTER TABLE t ADD COLUMN a int;\nSELECT '\xff\xfe';\n",
    )
    .unwrap();
    std::fs::write(
        d.join("2_unclosed.sql"),
        "ALTER TABLE t ADD COLUMN a int;\nSELECT 'never closed;\n",
    )
    .unwrap();
    std::fs::write(d.join("3_good.sql"), "ALTER TABLE t DROP COLUMN c;\n").unwrap();
    let (code, out) = zerodown(
        &["lint", "--engine", "postgres", "--format", "json", "."],
        d,
    );
    assert_eq!(code, 2, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let errors: Vec<&str> = v["input_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("./1_binary.sql:2:9: not UTF-8")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.starts_with("./2_unclosed.sql:2:")),
        "{errors:?}"
    );
    let found: Vec<(&str, &str)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["file"].as_str().unwrap(), f["rule"].as_str().unwrap()))
        .collect();
    assert!(
        found.contains(&("./3_good.sql", "drop-column")),
        "{found:?}"
    );
}
