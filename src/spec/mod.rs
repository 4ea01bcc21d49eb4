//! Migrations as data: what the user asked for, independent of any database.
//!
//! A migration is a list of [`Operation`]s. It comes from a TOML file (`[add_column]`,
//! `[[create_index]]`, …) or from one `ALTER TABLE … ADD COLUMN` statement. Nothing here talks to a
//! database.

mod data_type;
mod expr;
mod operation;
mod reference;
mod sql;
mod toml_file;

pub use data_type::render_data_type;
pub use expr::{ExprInfo, analyze_expr};
pub use operation::{
    AddCheck, AddForeignKey, CreateIndex, DropDefault, OnDelete, Operation, SetDefault, SetNotNull,
};

use serde::{Deserialize, Serialize};
use std::path::Path;

/// The SQL dialect a migration's expressions are written in (the target engine's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    Sqlite,
    Postgres,
    Mysql,
}

/// A named migration: an ordered list of operations, possibly on several tables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Migration {
    pub name: String,
    pub operations: Vec<Operation>,
}

/// A new column, with everything it should have once the migration completes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddColumn {
    pub table: String,
    pub column: String,
    #[serde(rename = "type")]
    pub data_type: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub not_null: bool,
    /// SQL expression in the target dialect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// SQL expression over the row's existing columns; no subqueries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<String>,
    /// SQL boolean expression (a CHECK constraint body, without `CHECK (…)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub unique: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub index: bool,
    /// `table(column)` or `table`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<Reference>,
}

impl AddColumn {
    /// A plain nullable column with nothing else set: the starting point for migrations built in code.
    pub fn new(table: &str, column: &str, data_type: &str) -> AddColumn {
        AddColumn {
            table: table.into(),
            column: column.into(),
            data_type: data_type.into(),
            not_null: false,
            default: None,
            backfill: None,
            check: None,
            unique: false,
            index: false,
            references: None,
        }
    }
}

impl Migration {
    /// A named migration adding `add`, built in code rather than read from a file. The name is not
    /// checked here (see [`validate_name`]).
    pub fn adding(name: &str, add: AddColumn) -> Migration {
        Migration {
            name: name.into(),
            operations: vec![Operation::AddColumn(add)],
        }
    }
}

impl Migration {
    /// The migration with every user-written type parsed in `dialect` and rendered by the parser, so
    /// no statement, not even a probe during `plan`, ever holds the user's raw type text.
    pub fn rendered_for(&self, dialect: Dialect) -> Result<Migration, SpecError> {
        let mut m = self.clone();
        for op in &mut m.operations {
            if let Operation::AddColumn(a) = op {
                a.data_type = render_data_type(&a.data_type, dialect)?;
            }
        }
        Ok(m)
    }
}

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

/// A foreign-key target, written `table(column)` or just `table` (its primary key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub table: String,
    pub column: Option<String>,
}

/// A migration that could not be read: the message names the thing and says what to do.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    /// A file that could not be read, or whose kind is unknown.
    #[error("{path}: {message}")]
    File { path: String, message: String },
    /// A malformed TOML or SQL text; `line`/`column` are 1-based when known.
    #[error("{}{message}", location(.source_name, *.line, *.column))]
    Syntax {
        source_name: String,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    /// Well-formed, but not something zerodown does (named), or an invalid value.
    #[error("{0}")]
    Invalid(String),
}

fn location(source: &str, line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) if source.is_empty() => format!("line {l}, column {c}: "),
        (Some(l), None) if source.is_empty() => format!("line {l}: "),
        (Some(l), Some(c)) => format!("{source}:{l}:{c}: "),
        (Some(l), None) => format!("{source}:{l}: "),
        _ if source.is_empty() => String::new(),
        _ => format!("{source}: "),
    }
}

/// An [`SpecError::Invalid`] that still says where in the file the offending text is.
fn invalid_at(
    source: &str,
    line: Option<usize>,
    column: Option<usize>,
    message: &str,
) -> SpecError {
    SpecError::Invalid(format!("{}{message}", location(source, line, column)))
}

/// 1-based line and column (in characters, as editors count) of a byte offset in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The byte offset of a 1-based line and character column, as sqlparser reports them.
fn byte_offset(text: &str, line: u64, column: u64) -> Option<usize> {
    if line == 0 || column == 0 {
        return None;
    }
    let mut start = 0;
    for _ in 1..line {
        start += text[start..].find('\n')? + 1;
    }
    let rest = &text[start..];
    let skip = usize::try_from(column - 1).ok()?;
    match rest.char_indices().nth(skip) {
        Some((i, _)) => Some(start + i),
        None if rest.chars().count() == skip => Some(text.len()),
        None => None,
    }
}

impl Migration {
    /// Reads a `.toml` or `.sql` migration file; the migration's name is the file stem.
    pub fn load(path: &Path, dialect: Dialect) -> Result<Migration, SpecError> {
        let shown = path.display().to_string();
        let file_error = |message: String| SpecError::File {
            path: shown.clone(),
            message,
        };
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let is_toml = match extension.as_deref() {
            Some("toml") => true,
            Some("sql") => false,
            _ => {
                return Err(file_error(
                    "expected a .toml or .sql migration file (the file stem is the migration's name)"
                        .into(),
                ));
            }
        };
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        validate_name(name).map_err(|e| file_error(e.to_string()))?;
        let bytes = std::fs::read(path).map_err(|e| {
            file_error(match e.kind() {
                std::io::ErrorKind::NotFound => "no such file: check the path".into(),
                _ => format!("cannot read the file: {e}"),
            })
        })?;
        let text = String::from_utf8(bytes)
            .map_err(|_| file_error("not UTF-8 text: save the migration as UTF-8".into()))?;
        if is_toml {
            Migration::from_toml(name, &text, &shown)
        } else {
            Migration::from_sql(name, &text, dialect, &shown)
        }
    }

    /// Parses the text of a TOML migration (one table per operation, `[add_column]`,
    /// `[[create_index]]`, …, run in file order). `source_name` labels errors.
    pub fn from_toml(name: &str, text: &str, source_name: &str) -> Result<Migration, SpecError> {
        validate_name(name)?;
        Ok(Migration {
            name: name.to_string(),
            operations: toml_file::parse(text, source_name)?,
        })
    }

    /// Parses one `ALTER TABLE t ADD [COLUMN] c type [NOT NULL] [DEFAULT …] [CHECK (…)] [UNIQUE]
    /// [REFERENCES …]` statement.
    pub fn from_sql(
        name: &str,
        sql: &str,
        dialect: Dialect,
        source_name: &str,
    ) -> Result<Migration, SpecError> {
        validate_name(name)?;
        Ok(Migration {
            name: name.to_string(),
            operations: vec![Operation::AddColumn(sql::parse(sql, dialect, source_name)?)],
        })
    }

    /// The operations as canonical TOML text: what is stored, and what a changed spec is diffed against.
    pub fn canonical_toml(&self) -> String {
        toml_file::canonical(&self.operations)
    }
}

/// Checks a migration name: what a file stem or `--name` may be.
///
/// Names become file names, state-row keys and parts of generated object names, so they stay short
/// and plain.
pub fn validate_name(name: &str) -> Result<(), SpecError> {
    const RULE: &str =
        "use 1 to 100 ASCII letters, digits, `_`, `-` or `.`, not starting with `.` or `-`";
    let problem = if name.is_empty() {
        Some("is empty".to_string())
    } else if name.len() > 100 {
        Some(format!("is {} characters long", name.chars().count()))
    } else if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        Some(format!("contains {c:?}"))
    } else if name.starts_with(['.', '-']) {
        Some(format!("starts with `{}`", &name[..1]))
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(p) => Err(SpecError::Invalid(format!(
            "invalid migration name {name:?}: it {p}; {RULE}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names() {
        for ok in ["0042_users_tier", "a", "x.y-z_1", &"n".repeat(100)] {
            validate_name(ok).unwrap();
        }
        for (bad, why) in [
            ("", "is empty"),
            (".hidden", "starts with `.`"),
            ("-x", "starts with `-`"),
            ("a b", "contains ' '"),
            ("a/b", "contains '/'"),
            ("é", "contains 'é'"),
            (&"n".repeat(101), "101 characters"),
        ] {
            let msg = validate_name(bad).unwrap_err().to_string();
            assert!(msg.contains(why), "{bad:?}: {msg}");
            assert!(msg.contains(&format!("{bad:?}")), "{msg}");
        }
    }

    #[test]
    fn from_toml_and_from_sql_check_the_name() {
        let toml = "[add_column]\ntable = \"t\"\ncolumn = \"c\"\ntype = \"int\"\n";
        assert!(Migration::from_toml("bad name", toml, "x").is_err());
        let sql = "ALTER TABLE t ADD COLUMN c int";
        assert!(Migration::from_sql("", sql, Dialect::Sqlite, "x").is_err());
        assert_eq!(
            Migration::from_toml("m", toml, "x").unwrap(),
            Migration::from_sql("m", sql, Dialect::Sqlite, "x").unwrap()
        );
    }

    #[test]
    fn load_by_extension() {
        let dir = tempfile::tempdir().unwrap();
        let toml = dir.path().join("0042_users_tier.toml");
        std::fs::write(
            &toml,
            "[add_column]\ntable = \"users\"\ncolumn = \"tier\"\ntype = \"text\"\n",
        )
        .unwrap();
        let sql = dir.path().join("0042_users_tier.SQL");
        std::fs::write(&sql, "ALTER TABLE users ADD COLUMN tier text;\n").unwrap();
        let a = Migration::load(&toml, Dialect::Postgres).unwrap();
        let b = Migration::load(&sql, Dialect::Postgres).unwrap();
        assert_eq!(a.name, "0042_users_tier");
        assert_eq!(a, b);

        let missing = dir.path().join("nope.toml");
        let err = Migration::load(&missing, Dialect::Sqlite).unwrap_err();
        assert!(matches!(&err, SpecError::File { path, .. } if path.ends_with("nope.toml")));
        assert!(err.to_string().contains("no such file"), "{err}");

        let yaml = dir.path().join("m.yaml");
        std::fs::write(&yaml, "x").unwrap();
        let err = Migration::load(&yaml, Dialect::Sqlite)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expected a .toml or .sql migration file"),
            "{err}"
        );
        assert!(err.contains("m.yaml"), "{err}");

        let bad_name = dir.path().join("my migration.sql");
        std::fs::write(&bad_name, "ALTER TABLE t ADD COLUMN c int").unwrap();
        let err = Migration::load(&bad_name, Dialect::Sqlite)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("invalid migration name \"my migration\""),
            "{err}"
        );

        let binary = dir.path().join("bin.sql");
        std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
        let err = Migration::load(&binary, Dialect::Sqlite)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not UTF-8"), "{err}");

        let broken = dir.path().join("broken.toml");
        std::fs::write(&broken, "[add_column\n").unwrap();
        let err = Migration::load(&broken, Dialect::Sqlite)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("{}:1:", broken.display())),
            "{err}"
        );
    }

    #[test]
    fn locations_render() {
        assert_eq!(location("f", Some(2), Some(3)), "f:2:3: ");
        assert_eq!(location("", Some(2), Some(3)), "line 2, column 3: ");
        assert_eq!(location("", None, None), "");
        assert_eq!(line_col("ab\ncé\nx", 6), (2, 3));
        assert_eq!(line_col("ab", 0), (1, 1));
        assert_eq!(byte_offset("ab\ncé\nx", 2, 3), Some(6));
        assert_eq!(byte_offset("ab\ncé", 2, 3), Some(6));
        assert_eq!(byte_offset("ab", 3, 1), None);
    }

    #[test]
    fn migration_serializes_as_data() {
        let m = Migration::from_sql(
            "m",
            "ALTER TABLE t ADD COLUMN c int REFERENCES p(id)",
            Dialect::Postgres,
            "x",
        )
        .unwrap();
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(
            json,
            r#"{"name":"m","operations":[{"add_column":{"table":"t","column":"c","type":"int","references":"p(id)"}}]}"#
        );
        assert_eq!(serde_json::from_str::<Migration>(&json).unwrap(), m);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        #[test]
        fn never_panics_on_arbitrary_text(text in any::<String>()) {
            for dialect in [Dialect::Sqlite, Dialect::Postgres, Dialect::Mysql] {
                let _ = Migration::from_sql("m", &text, dialect, "fuzz");
                let _ = analyze_expr(&text, dialect, "fuzz");
            }
            let _ = Migration::from_toml("m", &text, "fuzz");
            let _ = Reference::parse(&text);
        }

        #[test]
        fn never_panics_on_sql_like_text(
            text in r#"(ALTER |TABLE |ADD |COLUMN |t |"q""x" |`b` |c |int |NOT |NULL |DEFAULT |CHECK |\(|\)|'s'|-|1 |,|;|SELECT |CONSTRAINT |REFERENCES |\n|/\* |\*/|-- |x'0'|\$1 |CASE |WHEN |END )*"#
        ) {
            for dialect in [Dialect::Sqlite, Dialect::Postgres, Dialect::Mysql] {
                if let Ok(m) = Migration::from_sql("m", &text, dialect, "fuzz") {
                    // Whatever is accepted survives the stored form.
                    let stored = m.canonical_toml();
                    prop_assert_eq!(Migration::from_toml("m", &stored, "stored").unwrap(), m);
                }
                let _ = analyze_expr(&text, dialect, "fuzz");
            }
        }

        #[test]
        fn generated_statements_parse_to_what_they_say(
            table in r#"[A-Za-z_][A-Za-z0-9_ "]{0,8}"#,
            column in r#"[A-Za-z_][A-Za-z0-9_ "]{0,8}"#,
            default in proptest::option::of(r"-?[0-9]{1,4}|'[a-z ']{0,5}'"),
            check in proptest::option::of(0u32..1000),
            not_null in any::<bool>(),
            unique in any::<bool>(),
            references in proptest::option::of((r"[a-z]{1,5}", proptest::option::of(r"[A-Za-z]{1,5}"))),
            order in Just((0..5).collect::<Vec<usize>>()).prop_shuffle(),
            dialect in prop_oneof![Just(Dialect::Sqlite), Just(Dialect::Postgres)],
        ) {
            let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
            let default = default.map(|d| if d.starts_with('\'') {
                format!("'{}'", d[1..d.len() - 1].replace('\'', "''"))
            } else {
                d
            });
            let mut options = Vec::new();
            for i in order {
                match i {
                    0 if not_null => options.push("NOT NULL".to_string()),
                    1 => if let Some(d) = &default { options.push(format!("DEFAULT {d}")) },
                    2 => if let Some(n) = check {
                        options.push(format!("CHECK ({} < {n})", quote(&column)));
                    },
                    3 if unique => options.push("UNIQUE".to_string()),
                    4 => if let Some((t, c)) = &references {
                        let c = c.as_deref().map(|c| format!("({})", quote(c))).unwrap_or_default();
                        options.push(format!("REFERENCES {t}{c}"));
                    },
                    _ => {}
                }
            }
            let sql = format!(
                "ALTER TABLE {} ADD COLUMN {} varchar(10) {};",
                quote(&table),
                quote(&column),
                options.join(" ")
            );
            let m = Migration::from_sql("m", &sql, dialect, "gen").map_err(|e| {
                TestCaseError::fail(format!("{sql}: {e}"))
            })?;
            let expected = AddColumn {
                table,
                column: column.clone(),
                data_type: "varchar(10)".into(),
                not_null,
                default,
                backfill: None,
                check: check.map(|n| format!("{} < {n}", quote(&column))),
                unique,
                index: false,
                references: references.map(|(table, column)| Reference { table, column }),
            };
            prop_assert_eq!(&m.operations, &vec![Operation::AddColumn(expected)]);
            prop_assert_eq!(Migration::from_toml("m", &m.canonical_toml(), "stored").unwrap(), m);
        }

        #[test]
        fn never_panics_on_toml_like_text(
            text in r#"(\[add_column\]\n|\[\[add_column\]\]\n|table = |column = |type = |not_null = |references = |"t"|'x'|true|1|\n|#|=|\{|\}|\[|\])*"#
        ) {
            if let Ok(m) = Migration::from_toml("m", &text, "fuzz") {
                prop_assert_eq!(Migration::from_toml("m", &m.canonical_toml(), "stored").unwrap(), m);
            }
        }
    }
}
