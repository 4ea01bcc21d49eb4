//! Setting a column's default on SQLite, which has no `ALTER COLUMN … SET DEFAULT`: SQLite's documented
//! procedure for schema changes that do not affect the stored rows (lang_altertable.html, "making other
//! kinds of table schema changes") — edit the CREATE TABLE text in sqlite_schema under
//! `PRAGMA writable_schema`, then bump `schema_version` so every connection reloads the schema.

use super::quote;
use crate::error::{Error, Result};
use rusqlite::Connection;

/// The text after `DEFAULT`: a literal as written, anything else parenthesised (SQLite's grammar).
pub fn default_clause(expr: &str, is_literal: bool) -> String {
    if is_literal {
        expr.trim().to_string()
    } else {
        format!("({})", expr.trim())
    }
}

/// Inserts ` DEFAULT <clause>` at the end of `column`'s definition in a CREATE TABLE statement.
/// Works on SQLite's tokens (quotes, brackets, comments), so names and strings that look like the column
/// never match.
pub fn with_default(create_sql: &str, column: &str, clause: &str) -> Result<String> {
    let b = create_sql.as_bytes();
    let mut i = 0;
    let mut depth = 0usize;
    let mut seg_start: Option<usize> = None;
    let mut seg_first_token: Option<String> = None;
    let mut last_significant_end = 0usize;
    while i < b.len() {
        let ch = b[i];
        match ch {
            b'\'' | b'"' | b'`' | b'[' => {
                let close = if ch == b'[' { b']' } else { ch };
                let start = i;
                i += 1;
                loop {
                    if i >= b.len() {
                        return Err(unparsable(column));
                    }
                    if b[i] == close {
                        if close != b']' && i + 1 < b.len() && b[i + 1] == close {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
                if depth == 1 && seg_first_token.is_none() && ch != b'\'' {
                    let inner = &create_sql[start + 1..i - 1];
                    let doubled = if close == b']' {
                        inner.to_string()
                    } else {
                        let c = close as char;
                        inner.replace(&format!("{c}{c}"), &c.to_string())
                    };
                    seg_first_token = Some(doubled);
                }
                last_significant_end = i;
                continue;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
                continue;
            }
            b'(' => {
                depth += 1;
                if depth == 1 {
                    seg_start = Some(i + 1);
                    seg_first_token = None;
                    i += 1;
                    continue;
                }
            }
            b')' | b',' if depth == 1 => {
                if seg_start.is_some()
                    && seg_first_token
                        .as_deref()
                        .is_some_and(|t| t.eq_ignore_ascii_case(column))
                {
                    let at = last_significant_end;
                    return Ok(format!(
                        "{} DEFAULT {clause}{}",
                        &create_sql[..at],
                        &create_sql[at..]
                    ));
                }
                if ch == b')' {
                    break;
                }
                seg_start = Some(i + 1);
                seg_first_token = None;
                i += 1;
                continue;
            }
            b')' => depth -= 1,
            c if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            _ => {}
        }
        if depth == 1
            && seg_first_token.is_none()
            && (ch.is_ascii_alphanumeric() || ch == b'_' || ch >= 0x80)
        {
            let start = i;
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80)
            {
                i += 1;
            }
            seg_first_token = Some(create_sql[start..i].to_string());
            last_significant_end = i;
            continue;
        }
        i += 1;
        last_significant_end = i;
    }
    Err(unparsable(column))
}

fn unparsable(column: &str) -> Error {
    Error::Refused(format!(
        "could not find column `{column}` in the table's CREATE TABLE text to set its default; nothing was changed"
    ))
}

/// One column as SQLite reports it: name, declared type, NOT NULL, default, primary-key position, hidden.
type ColumnFacts = (String, String, i64, Option<String>, i64, i64);

fn columns(conn: &Connection, table: &str) -> Result<Vec<ColumnFacts>> {
    let mut stmt = conn
        .prepare(
            "SELECT name, type, \"notnull\", dflt_value, pk, hidden FROM pragma_table_xinfo(?1) ORDER BY cid",
        )
        .map_err(|e| Error::db("reading the table's columns", e))?;
    stmt.query_map([table], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
        ))
    })
    .and_then(|rows| rows.collect())
    .map_err(|e| Error::db("reading the table's columns", e))
}

/// Sets `column`'s default inside the caller's write transaction, after proving on a scratch database
/// that the edited CREATE TABLE is one statement that gives `column` a default and changes nothing else.
pub fn set_column_default(
    conn: &Connection,
    table: &str,
    column: &str,
    expr: &str,
    is_literal: bool,
) -> Result<()> {
    let sql: String = conn
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get(0),
        )
        .map_err(|e| Error::db("reading the table's definition", e))?;
    let clause = default_clause(expr, is_literal);
    let edited = with_default(&sql, column, &clause)?;
    // Prove the edit on a scratch in-memory database before touching the real catalog. `execute`
    // prepares exactly one statement: text that would add a second one is refused, never run.
    let scratch =
        Connection::open_in_memory().map_err(|e| Error::db("opening a scratch database", e))?;
    scratch.execute(&edited, []).map_err(|e| {
        Error::Refused(format!(
            "the edited table definition does not parse as one CREATE TABLE ({e}); nothing was changed"
        ))
    })?;
    let before = columns(conn, table)?;
    let proved = columns(&scratch, table)?;
    let only_the_default = before.len() == proved.len()
        && before.iter().zip(&proved).all(|(b, p)| {
            if b.0 == column {
                (&b.0, &b.1, b.2, b.4, b.5) == (&p.0, &p.1, p.2, p.4, p.5)
                    && b.3.is_none()
                    && p.3.is_some()
            } else {
                b == p
            }
        });
    if !only_the_default {
        return Err(Error::Refused(format!(
            "editing the table definition would change more than the default of {} (or the column already has one); nothing was changed",
            quote(column)
        )));
    }
    let version: i64 = conn
        .query_row("PRAGMA schema_version", [], |r| r.get(0))
        .map_err(|e| Error::db("reading schema_version", e))?;
    conn.execute_batch("PRAGMA writable_schema = ON")
        .map_err(|e| Error::db("PRAGMA writable_schema", e))?;
    let result = (|| -> Result<()> {
        conn.execute(
            "UPDATE sqlite_schema SET sql = ?1 WHERE type = 'table' AND name = ?2",
            [&edited, table],
        )
        .map_err(|e| Error::db("editing the table's definition", e))?;
        conn.execute_batch(&format!("PRAGMA schema_version = {}", version + 1))
            .map_err(|e| Error::db("bumping schema_version", e))
    })();
    conn.execute_batch("PRAGMA writable_schema = OFF")
        .map_err(|e| Error::db("PRAGMA writable_schema", e))?;
    result?;
    let now = columns(conn, table)?;
    if now != proved {
        return Err(Error::db(
            "verifying the default",
            format!(
                "{} reads differently after the edit than the proven definition",
                quote(table)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_default_at_the_end_of_the_right_column() {
        let sql =
            "CREATE TABLE t(id INTEGER PRIMARY KEY, \"c x\" text, c int NOT NULL, CHECK (c > 0))";
        assert_eq!(
            with_default(sql, "c", "(random())").unwrap(),
            "CREATE TABLE t(id INTEGER PRIMARY KEY, \"c x\" text, c int NOT NULL DEFAULT (random()), CHECK (c > 0))"
        );
        assert_eq!(
            with_default(sql, "c x", "'a'").unwrap(),
            "CREATE TABLE t(id INTEGER PRIMARY KEY, \"c x\" text DEFAULT 'a', c int NOT NULL, CHECK (c > 0))"
        );
    }

    #[test]
    fn skips_comments_strings_and_nested_parens() {
        let sql = "CREATE TABLE t(\n  a text DEFAULT 'c, d', -- c int\n  b numeric(10, 2),\n  \"c\" int -- trailing\n)";
        assert_eq!(
            with_default(sql, "c", "5").unwrap(),
            "CREATE TABLE t(\n  a text DEFAULT 'c, d', -- c int\n  b numeric(10, 2),\n  \"c\" int DEFAULT 5 -- trailing\n)"
        );
        assert!(with_default(sql, "zz", "5").is_err());
    }

    #[test]
    fn edits_a_live_table() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, a int); ALTER TABLE t ADD COLUMN c text; BEGIN",
        )
        .unwrap();
        set_column_default(&c, "t", "c", "lower('X')", false).unwrap();
        c.execute_batch("COMMIT; INSERT INTO t(a) VALUES (1)")
            .unwrap();
        let v: String = c.query_row("SELECT c FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(v, "x");
    }

    #[test]
    fn an_edit_that_would_change_more_than_the_default_is_refused() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, c text); BEGIN")
            .unwrap();
        let before: String = c
            .query_row("SELECT sql FROM sqlite_schema WHERE name = 't'", [], |r| {
                r.get(0)
            })
            .unwrap();
        // A default whose text closes its parenthesis and declares another column…
        let err = set_column_default(&c, "t", "c", "1) , x int DEFAULT (2", false).unwrap_err();
        assert!(err.to_string().contains("more than the default"), "{err}");
        // …or adds a second statement is refused before the catalog is touched.
        let err = set_column_default(
            &c,
            "t",
            "c",
            "1)); ATTACH ':memory:' AS y; CREATE TABLE z((1",
            false,
        )
        .unwrap_err();
        assert!(err.to_string().contains("one CREATE TABLE"), "{err}");
        let after: String = c
            .query_row("SELECT sql FROM sqlite_schema WHERE name = 't'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(after, before);
    }
}
