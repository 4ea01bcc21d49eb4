//! The shared statement analysis over the migration corpus (tests/corpus): every file is read without
//! error, and its statements become what tests/corpus/manifest.toml says (operations, refusals,
//! scaffolding, bookkeeping). No database: the analysis is engine-independent.

use std::path::{Path, PathBuf};
use zerodown::analysis::{self, Class, Engine, Scaffold, facts, operations};

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
            let (file, func) = t.split_once("::").unwrap();
            let text = std::fs::read_to_string(root.join(file)).unwrap_or_default();
            assert!(text.contains(&format!("fn {func}(")), "{t} not found");
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
