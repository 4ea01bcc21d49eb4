//! The TOML form of a migration: one table per operation, `[kind]` or `[[kind]]`, in file order.
//!
//! Read through `toml`'s spanned document (not serde derive) so that every refusal can point at the
//! line and column of the key or value it is about, in words of our own.

use super::{
    AddCheck, AddColumn, AddForeignKey, CreateIndex, DropDefault, OnDelete, Operation, Reference,
    SetDefault, SetNotNull, SpecError, invalid_at, line_col,
};
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
        "name" => "give the constraint or index a name",
        "references_table" => "name the referenced table, e.g. \"accounts\"",
        "on_delete" => {
            "write \"cascade\", \"set null\", \"restrict\" or \"no action\", or leave the key out"
        }
        _ => "give an SQL expression, or leave the key out",
    }
}

/// The operation kinds a TOML migration may hold, each as `[kind]` or, for several, `[[kind]]`.
const KINDS: [&str; 7] = [
    "add_column",
    "create_index",
    "set_default",
    "drop_default",
    "add_check",
    "add_foreign_key",
    "set_not_null",
];

/// Parses a TOML migration into its operations, in the order the file writes them.
pub(super) fn parse(text: &str, source: &str) -> Result<Vec<Operation>, SpecError> {
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

    let mut found: Vec<(usize, Operation)> = Vec::new();
    for (key, value) in in_file_order(root.get_ref()) {
        let kind = key.get_ref().as_ref();
        if !KINDS.contains(&kind) {
            return Err(doc.invalid(
                key.span(),
                &format!(
                    "unknown key `{kind}`: a migration file holds operation tables and nothing else: {}",
                    kinds_list()
                ),
            ));
        }
        match value.get_ref() {
            DeValue::Table(table) => {
                found.push((key.span().start, doc.operation(kind, table, key.span())?))
            }
            DeValue::Array(items) => {
                for item in items {
                    let DeValue::Table(table) = item.get_ref() else {
                        return Err(doc.invalid(
                            item.span(),
                            &format!("each `{kind}` must be a table: write [[{kind}]]"),
                        ));
                    };
                    found.push((item.span().start, doc.operation(kind, table, item.span())?));
                }
            }
            other => {
                return Err(doc.invalid(
                    value.span(),
                    &format!(
                        "`{kind}` must be a table, not {}; write:\n\n{EXAMPLE}",
                        article(other.type_str())
                    ),
                ));
            }
        }
    }
    if found.is_empty() {
        return Err(SpecError::Invalid(format!(
            "{}no operation: a TOML migration holds at least one operation table ({}), like this:\n\n{EXAMPLE}",
            super::location(source, None, None),
            kinds_list()
        )));
    }
    found.sort_by_key(|(at, _)| *at);
    Ok(found.into_iter().map(|(_, op)| op).collect())
}

fn kinds_list() -> String {
    KINDS
        .iter()
        .map(|k| format!("[{k}]"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The keys each kind accepts, required ones first, in the order they are documented.
fn keys_of(kind: &str) -> (&'static [&'static str], usize) {
    match kind {
        "add_column" => (&KEYS, 3),
        "create_index" => (&["table", "name", "columns", "unique"], 3),
        "set_default" => (&["table", "column", "default"], 3),
        "add_check" => (&["table", "name", "check"], 3),
        "add_foreign_key" => (
            &[
                "table",
                "name",
                "columns",
                "references_table",
                "references_columns",
                "on_delete",
            ],
            5,
        ),
        _ => (&["table", "column"], 2),
    }
}

impl Doc<'_> {
    /// One operation table: unknown keys and missing required ones are named, with the allowed ones.
    fn operation(
        &self,
        kind: &str,
        table: &DeTable<'_>,
        header: Range<usize>,
    ) -> Result<Operation, SpecError> {
        let (keys, required) = keys_of(kind);
        let mut values: Vec<Option<&Spanned<DeValue<'_>>>> = vec![None; keys.len()];
        for (key, value) in in_file_order(table) {
            let name = key.get_ref().as_ref();
            let Some(i) = keys.iter().position(|k| *k == name) else {
                return Err(self.invalid(
                    key.span(),
                    &format!(
                        "unknown key `{name}` in [{kind}]; allowed keys: {}",
                        keys.join(", ")
                    ),
                ));
            };
            values[i] = Some(value);
        }
        let missing: Vec<String> = keys[..required]
            .iter()
            .zip(&values)
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| format!("`{k}`"))
            .collect();
        if !missing.is_empty() {
            let all: Vec<String> = keys[..required].iter().map(|k| format!("`{k}`")).collect();
            return Err(self.invalid(
                header,
                &format!(
                    "[{kind}] is missing {}: {} are required{}",
                    missing.join(", "),
                    all.join(", "),
                    if kind == "add_column" {
                        format!(", like this:\n\n{EXAMPLE}")
                    } else {
                        String::new()
                    }
                ),
            ));
        }
        let get = |key: &str| keys.iter().position(|k| *k == key).and_then(|i| values[i]);
        let text = |key: &str| -> Result<String, SpecError> {
            match get(key) {
                Some(v) => self.string(key, v),
                None => Ok(String::new()),
            }
        };
        let flag = |key: &str| -> Result<bool, SpecError> {
            get(key).map_or(Ok(false), |v| self.boolean(key, v))
        };
        let optional = |key: &str| -> Result<Option<String>, SpecError> {
            get(key).map(|v| self.string(key, v)).transpose()
        };
        Ok(match kind {
            "add_column" => Operation::AddColumn(AddColumn {
                table: text("table")?,
                column: text("column")?,
                data_type: text("type")?,
                not_null: flag("not_null")?,
                default: optional("default")?,
                backfill: optional("backfill")?,
                check: optional("check")?,
                unique: flag("unique")?,
                index: flag("index")?,
                references: match get("references") {
                    Some(v) => Some(
                        Reference::parse(&self.string("references", v)?)
                            .map_err(|e| self.invalid(v.span(), &e.to_string()))?,
                    ),
                    None => None,
                },
            }),
            "create_index" => Operation::CreateIndex(CreateIndex {
                table: text("table")?,
                name: text("name")?,
                columns: self.strings("columns", get("columns").expect("required"))?,
                unique: flag("unique")?,
            }),
            "add_check" => Operation::AddCheck(AddCheck {
                table: text("table")?,
                name: text("name")?,
                check: text("check")?,
            }),
            "add_foreign_key" => Operation::AddForeignKey(AddForeignKey {
                table: text("table")?,
                name: text("name")?,
                columns: self.strings("columns", get("columns").expect("required"))?,
                references_table: text("references_table")?,
                references_columns: self.strings(
                    "references_columns",
                    get("references_columns").expect("required"),
                )?,
                on_delete: match get("on_delete") {
                    Some(v) => Some(OnDelete::parse(&self.string("on_delete", v)?).ok_or_else(
                        || {
                            self.invalid(
                                v.span(),
                                "`on_delete` must be \"cascade\", \"set null\", \"restrict\" or \"no action\", or leave the key out",
                            )
                        },
                    )?),
                    None => None,
                },
            }),
            "set_not_null" => Operation::SetNotNull(SetNotNull {
                table: text("table")?,
                column: text("column")?,
            }),
            "set_default" => Operation::SetDefault(SetDefault {
                table: text("table")?,
                column: text("column")?,
                default: text("default")?,
            }),
            _ => Operation::DropDefault(DropDefault {
                table: text("table")?,
                column: text("column")?,
            }),
        })
    }

    /// A non-empty list of non-empty strings.
    fn strings(&self, key: &str, value: &Spanned<DeValue<'_>>) -> Result<Vec<String>, SpecError> {
        let DeValue::Array(items) = value.get_ref() else {
            return Err(self.invalid(
                value.span(),
                &format!(
                    "`{key}` must be a list of column names, e.g. [\"email\"], not {}",
                    article(value.get_ref().type_str())
                ),
            ));
        };
        if items.is_empty() {
            return Err(self.invalid(
                value.span(),
                &format!("`{key}` is empty: name at least one column, e.g. [\"email\"]"),
            ));
        }
        items.iter().map(|item| self.string(key, item)).collect()
    }
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

/// The operations as TOML, in order; serde writes the fields in declaration order and leaves unset
/// ones out. One operation is written `[kind]`, several `[[kind]]` each (valid TOML, read back in
/// the same order).
pub(super) fn canonical(operations: &[Operation]) -> String {
    let texts: Vec<String> = operations
        .iter()
        .map(|op| {
            let text = toml::to_string(op).expect(
                "an operation holds only strings, lists and booleans, which TOML represents",
            );
            if operations.len() == 1 {
                text
            } else {
                text.replacen(
                    &format!("[{}]", op.kind()),
                    &format!("[[{}]]", op.kind()),
                    1,
                )
            }
        })
        .collect();
    texts.join("\n")
}

#[cfg(test)]
mod tests {
    use super::super::Migration;
    use super::*;

    fn parse_ok(text: &str) -> AddColumn {
        match parse(text, "m.toml")
            .unwrap_or_else(|e| panic!("{e}"))
            .as_slice()
        {
            [Operation::AddColumn(a)] => a.clone(),
            other => panic!("one add_column expected: {other:?}"),
        }
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
        assert!(
            msg.contains("holds operation tables and nothing else: [add_column], [create_index]"),
            "{msg}"
        );
    }

    #[test]
    fn several_operations_keep_the_file_order() {
        let text = "[[add_column]]\ntable = \"a\"\ncolumn = \"x\"\ntype = \"int\"\n\n[[create_index]]\ntable = \"a\"\nname = \"a_x\"\ncolumns = [\"x\"]\n\n[[add_column]]\ntable = \"b\"\ncolumn = \"y\"\ntype = \"text\"\n\n[drop_default]\ntable = \"b\"\ncolumn = \"z\"\n";
        let ops = parse(text, "m.toml").unwrap();
        let kinds: Vec<String> = ops
            .iter()
            .map(|o| format!("{} {}", o.kind(), o.table()))
            .collect();
        assert_eq!(
            kinds,
            [
                "add_column a",
                "create_index a",
                "add_column b",
                "drop_default b"
            ]
        );
        let m = Migration {
            name: "m".into(),
            operations: ops,
        };
        let canonical = m.canonical_toml();
        assert_eq!(
            Migration::from_toml("m", &canonical, "stored").unwrap(),
            m,
            "{canonical}"
        );
        let msg =
            parse_err("[create_index]\ntable = \"a\"\nname = \"i\"\ncolumns = []\n").to_string();
        assert!(msg.contains("`columns` is empty"), "{msg}");
        let msg =
            parse_err("[create_index]\ntable = \"a\"\nname = \"i\"\ncolumns = \"x\"\n").to_string();
        assert!(msg.contains("must be a list of column names"), "{msg}");
        let msg = parse_err("[set_default]\ntable = \"a\"\ncolumn = \"c\"\n").to_string();
        assert!(
            msg.starts_with("m.toml:1:2: [set_default] is missing `default`"),
            "{msg}"
        );
    }

    #[test]
    fn missing_add_column_shows_an_example() {
        for text in ["", "# nothing\n"] {
            let msg = parse_err(text).to_string();
            assert!(
                msg.contains("no operation: a TOML migration holds at least one"),
                "{msg}"
            );
            assert!(msg.contains("table    = \"users\""), "{msg}");
        }
        let msg = parse_err("[[add_column]]\ntable = \"t\"\n").to_string();
        assert!(
            msg.contains("[add_column] is missing `column`, `type`"),
            "{msg}"
        );
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
            operations: vec![super::super::Operation::AddColumn(AddColumn {
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
            })],
        };
        let text = tricky.canonical_toml();
        assert_eq!(
            Migration::from_toml("x", &text, "stored").unwrap(),
            tricky,
            "{text}"
        );
        assert_eq!(text, tricky.canonical_toml());
    }

    #[test]
    fn foreign_key_and_not_null_round_trip() {
        let text = "[[add_foreign_key]]\ntable = \"orders\"\nname = \"orders_account_fk\"\ncolumns = [\"account_id\"]\nreferences_table = \"accounts\"\nreferences_columns = [\"id\"]\non_delete = \"SET_NULL\"\n\n[[set_not_null]]\ntable = \"orders\"\ncolumn = \"account_id\"\n";
        let m = Migration::from_toml("m", text, "m.toml").unwrap();
        match &m.operations[..] {
            [Operation::AddForeignKey(f), Operation::SetNotNull(n)] => {
                assert_eq!(f.on_delete, Some(OnDelete::SetNull));
                assert_eq!(f.references_columns, ["id"]);
                assert_eq!(n.column, "account_id");
            }
            other => panic!("{other:?}"),
        }
        let stored = m.canonical_toml();
        assert!(stored.contains("on_delete = \"set null\""), "{stored}");
        assert_eq!(Migration::from_toml("m", &stored, "stored").unwrap(), m);
        let err = parse_err(&text.replace("SET_NULL", "SET DEFAULT; DROP TABLE x"));
        assert!(err.to_string().contains("`on_delete` must be"), "{err}");
    }
}
