//! The TOML form of a migration: one `[add_column]` table.
//!
//! Read through `toml`'s spanned document (not serde derive) so that every refusal can point at the
//! line and column of the key or value it is about, in words of our own.

use super::{AddColumn, Reference, SpecError, invalid_at, line_col};
use serde::Serialize;
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Every key `[add_column]` accepts, in the order they are documented and written out.
const KEYS: [&str; 10] = [
    "table",
    "column",
    "type",
    "not_null",
    "default",
    "backfill",
    "check",
    "unique",
    "index",
    "references",
];

const EXAMPLE: &str = r#"[add_column]
table    = "users"
column   = "tier"
type     = "text"
backfill = "CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END"   # optional"#;

/// Locates messages in one TOML text.
struct Doc<'a> {
    text: &'a str,
    source: &'a str,
}

impl Doc<'_> {
    fn invalid(&self, span: Range<usize>, message: &str) -> SpecError {
        let (line, column) = line_col(self.text, span.start);
        invalid_at(self.source, Some(line), Some(column), message)
    }

    fn string(&self, key: &str, value: &Spanned<DeValue<'_>>) -> Result<String, SpecError> {
        match value.get_ref() {
            DeValue::String(s) if s.trim().is_empty() => Err(self.invalid(
                value.span(),
                &format!("`{key}` is empty: {}", what_to_write(key)),
            )),
            DeValue::String(s) => Ok(s.to_string()),
            other => Err(self.invalid(
                value.span(),
                &format!(
                    "`{key}` must be a string, not {}: {}",
                    article(other.type_str()),
                    what_to_write(key)
                ),
            )),
        }
    }

    fn boolean(&self, key: &str, value: &Spanned<DeValue<'_>>) -> Result<bool, SpecError> {
        match value.get_ref() {
            DeValue::Boolean(b) => Ok(*b),
            other => Err(self.invalid(
                value.span(),
                &format!(
                    "`{key}` must be true or false, not {}",
                    article(other.type_str())
                ),
            )),
        }
    }
}

fn article(type_name: &str) -> String {
    match type_name {
        "integer" | "array" => format!("an {type_name}"),
        _ => format!("a {type_name}"),
    }
}

fn what_to_write(key: &str) -> &'static str {
    match key {
        "table" => "name the existing table, e.g. \"users\"",
        "column" => "name the new column, e.g. \"tier\"",
        "type" => "give the column's SQL type, e.g. \"text\"",
        "references" => "write \"table(column)\" or \"table\", or leave the key out",
        _ => "give an SQL expression, or leave the key out",
    }
}

/// Parses a TOML migration into its operation.
pub(super) fn parse(text: &str, source: &str) -> Result<AddColumn, SpecError> {
    let doc = Doc { text, source };
    let root = DeTable::parse(text).map_err(|e| {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unzip();
        SpecError::Syntax {
            source_name: source.to_string(),
            line,
            column,
            message: e.message().trim_end().to_string(),
        }
    })?;

    let mut add = None;
    for (key, value) in in_file_order(root.get_ref()) {
        if key.get_ref().as_ref() != "add_column" {
            return Err(doc.invalid(
                key.span(),
                &format!(
                    "unknown key `{}`: a migration file holds one [add_column] table and nothing else",
                    key.get_ref()
                ),
            ));
        }
        match value.get_ref() {
            DeValue::Table(table) => add = Some((table, key.span())),
            DeValue::Array(_) => {
                return Err(doc.invalid(
                    key.span(),
                    "[[add_column]] is a list: write exactly one [add_column] table; one migration adds one column",
                ));
            }
            other => {
                return Err(doc.invalid(
                    value.span(),
                    &format!(
                        "`add_column` must be a table, not {}; write:\n\n{EXAMPLE}",
                        article(other.type_str())
                    ),
                ));
            }
        }
    }
    let Some((table, header)) = add else {
        return Err(SpecError::Invalid(format!(
            "{}no [add_column] table: a TOML migration must contain one, like this:\n\n{EXAMPLE}",
            super::location(source, None, None)
        )));
    };

    let mut out = AddColumn {
        table: String::new(),
        column: String::new(),
        data_type: String::new(),
        not_null: false,
        default: None,
        backfill: None,
        check: None,
        unique: false,
        index: false,
        references: None,
    };
    let mut seen = [false; 3];
    for (key, value) in in_file_order(table) {
        let name = key.get_ref().as_ref();
        match name {
            "table" => (out.table, seen[0]) = (doc.string(name, value)?, true),
            "column" => (out.column, seen[1]) = (doc.string(name, value)?, true),
            "type" => (out.data_type, seen[2]) = (doc.string(name, value)?, true),
            "not_null" => out.not_null = doc.boolean(name, value)?,
            "unique" => out.unique = doc.boolean(name, value)?,
            "index" => out.index = doc.boolean(name, value)?,
            "default" => out.default = Some(doc.string(name, value)?),
            "backfill" => out.backfill = Some(doc.string(name, value)?),
            "check" => out.check = Some(doc.string(name, value)?),
            "references" => {
                let text = doc.string(name, value)?;
                let reference = Reference::parse(&text)
                    .map_err(|e| doc.invalid(value.span(), &e.to_string()))?;
                out.references = Some(reference);
            }
            _ => {
                return Err(doc.invalid(
                    key.span(),
                    &format!(
                        "unknown key `{name}` in [add_column]; allowed keys: {}",
                        KEYS.join(", ")
                    ),
                ));
            }
        }
    }
    let missing: Vec<String> = KEYS[..3]
        .iter()
        .zip(seen)
        .filter(|(_, seen)| !seen)
        .map(|(k, _)| format!("`{k}`"))
        .collect();
    if !missing.is_empty() {
        return Err(doc.invalid(
            header,
            &format!(
                "[add_column] is missing {}: `table`, `column` and `type` are required, like this:\n\n{EXAMPLE}",
                missing.join(", ")
            ),
        ));
    }
    Ok(out)
}

/// Entries as they appear in the file, so the first problem reported is the first one written.
fn in_file_order<'t, 'i>(
    table: &'t DeTable<'i>,
) -> Vec<(
    &'t Spanned<std::borrow::Cow<'i, str>>,
    &'t Spanned<DeValue<'i>>,
)> {
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    entries
}

/// The operation as TOML; serde writes the fields in declaration order and leaves unset ones out.
pub(super) fn canonical(add: &AddColumn) -> String {
    #[derive(Serialize)]
    struct File<'a> {
        add_column: &'a AddColumn,
    }
    toml::to_string(&File { add_column: add })
        .expect("an AddColumn holds only strings and booleans, which TOML always represents")
}

#[cfg(test)]
mod tests {
    use super::super::Migration;
    use super::*;

    fn parse_ok(text: &str) -> AddColumn {
        parse(text, "m.toml").unwrap_or_else(|e| panic!("{e}"))
    }

    fn parse_err(text: &str) -> SpecError {
        parse(text, "m.toml").unwrap_err()
    }

    const FULL: &str = r#"
[add_column]
table    = "users"
column   = "tier"
type     = "text"
not_null = true
backfill = "CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END"
default  = "'standard'"
check    = "tier IN ('gold', 'standard')"
unique   = false
index    = true
references = "plans(id)"
"#;

    #[test]
    fn reads_every_key() {
        let a = parse_ok(FULL);
        assert_eq!(a.table, "users");
        assert_eq!(a.column, "tier");
        assert_eq!(a.data_type, "text");
        assert!(a.not_null && a.index && !a.unique);
        assert_eq!(
            a.backfill.as_deref(),
            Some("CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END")
        );
        assert_eq!(a.default.as_deref(), Some("'standard'"));
        assert_eq!(a.check.as_deref(), Some("tier IN ('gold', 'standard')"));
        assert_eq!(
            a.references,
            Some(Reference {
                table: "plans".into(),
                column: Some("id".into())
            })
        );
    }

    #[test]
    fn minimal_has_defaults() {
        let a = parse_ok("[add_column]\ntable = \"t\"\ncolumn = \"c\"\ntype = \"int\"\n");
        assert!(!a.not_null && !a.unique && !a.index);
        assert!(a.default.is_none() && a.backfill.is_none() && a.check.is_none());
        assert!(a.references.is_none());
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let err = parse_err("[add_column]\ntable = \"t\"\ncolumn = = \"c\"\n");
        match &err {
            SpecError::Syntax {
                source_name,
                line,
                column,
                message,
            } => {
                assert_eq!(source_name, "m.toml");
                assert_eq!(*line, Some(3));
                assert_eq!(*column, Some(10));
                assert!(!message.is_empty());
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().starts_with("m.toml:3:10: "), "{err}");

        let err = parse_err("[add_column]\ntable = \"t\n");
        assert!(
            matches!(err, SpecError::Syntax { line: Some(2), .. }),
            "{err:?}"
        );
    }

    #[test]
    fn unknown_keys_are_named_with_the_allowed_ones() {
        let err = parse_err("[add_column]\ntable = \"t\"\ncolum = \"c\"\ntype = \"int\"\n");
        let msg = err.to_string();
        assert!(
            msg.starts_with("m.toml:3:1: unknown key `colum` in [add_column]"),
            "{msg}"
        );
        assert!(msg.contains("allowed keys: table, column, type, not_null, default, backfill, check, unique, index, references"), "{msg}");

        let err = parse_err("name = \"x\"\n[add_column]\ntable = \"t\"\n");
        let msg = err.to_string();
        assert!(msg.contains("unknown key `name`"), "{msg}");
        assert!(msg.contains("one [add_column] table"), "{msg}");
    }

    #[test]
    fn missing_add_column_shows_an_example() {
        for text in ["", "# nothing\n"] {
            let msg = parse_err(text).to_string();
            assert!(msg.contains("no [add_column] table"), "{msg}");
            assert!(msg.contains("table    = \"users\""), "{msg}");
        }
        let msg = parse_err("[[add_column]]\ntable = \"t\"\n").to_string();
        assert!(msg.contains("exactly one [add_column]"), "{msg}");
        let msg = parse_err("add_column = 3\n").to_string();
        assert!(msg.contains("must be a table, not an integer"), "{msg}");
    }

    #[test]
    fn required_keys_and_empty_values_are_named() {
        let msg = parse_err("[add_column]\ntable = \"t\"\n").to_string();
        assert!(msg.contains("missing `column`, `type`"), "{msg}");
        for key in ["table", "column", "type"] {
            let mut text = String::from("[add_column]\n");
            for k in ["table", "column", "type"] {
                let v = if k == key { "  " } else { "x" };
                text.push_str(&format!("{k} = \"{v}\"\n"));
            }
            let msg = parse_err(&text).to_string();
            assert!(msg.contains(&format!("`{key}` is empty")), "{msg}");
        }
        let base = "[add_column]\ntable = \"t\"\ncolumn = \"c\"\ntype = \"int\"\n";
        let msg = parse_err(&format!("{base}backfill = \"\"\n")).to_string();
        assert!(msg.contains("`backfill` is empty"), "{msg}");
        let msg = parse_err(&format!("{base}not_null = \"yes\"\n")).to_string();
        assert!(
            msg.contains("m.toml:5:12: `not_null` must be true or false, not a string"),
            "{msg}"
        );
        let msg = parse_err(&format!("{base}default = 5\n")).to_string();
        assert!(
            msg.contains("`default` must be a string, not an integer"),
            "{msg}"
        );
        let msg = parse_err(&format!("{base}references = \"a.b\"\n")).to_string();
        assert!(msg.contains("m.toml:5:14: invalid reference"), "{msg}");
    }

    #[test]
    fn expressions_are_not_validated_here() {
        let a = parse_ok(
            "[add_column]\ntable = \"t\"\ncolumn = \"c\"\ntype = \"int\"\ndefault = \"(((\"\n",
        );
        assert_eq!(a.default.as_deref(), Some("((("));
    }

    #[test]
    fn canonical_is_ordered_and_round_trips() {
        let m = Migration::from_toml("0042_users_tier", FULL, "m.toml").unwrap();
        let text = m.canonical_toml();
        assert_eq!(
            text,
            r#"[add_column]
table = "users"
column = "tier"
type = "text"
not_null = true
default = "'standard'"
backfill = "CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END"
check = "tier IN ('gold', 'standard')"
index = true
references = "plans(id)"
"#
        );
        assert_eq!(Migration::from_toml(&m.name, &text, "stored").unwrap(), m);

        let tricky = Migration {
            name: "x".into(),
            operation: super::super::Operation::AddColumn(AddColumn {
                table: "My \"Users\"".into(),
                column: "c'ol\\\n".into(),
                data_type: "varchar(20)".into(),
                not_null: false,
                default: Some("'a''b\"c'".into()),
                backfill: Some("\"x\" || '''\nline2".into()),
                check: None,
                unique: true,
                index: false,
                references: Some(Reference {
                    table: "Plans".into(),
                    column: None,
                }),
            }),
        };
        let text = tricky.canonical_toml();
        assert_eq!(
            Migration::from_toml("x", &text, "stored").unwrap(),
            tricky,
            "{text}"
        );
        assert_eq!(text, tricky.canonical_toml());
    }
}
