//! Setting a column's default on SQLite, which has no `ALTER COLUMN … SET DEFAULT`: SQLite's documented
//! procedure for schema changes that do not affect the stored rows (lang_altertable.html, "making other
//! kinds of table schema changes") — edit the CREATE TABLE text in sqlite_schema under
//! `PRAGMA writable_schema`, then bump `schema_version` so every connection reloads the schema.

use super::{literal, quote};
use crate::error::{Error, Result};
use crate::plan::{Run, Statement};
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
    let (_, at) = find_column(create_sql, column)?;
    Ok(format!(
        "{} DEFAULT {clause}{}",
        &create_sql[..at],
        &create_sql[at..]
    ))
}

/// Removes the `DEFAULT …` clause of `column`'s definition, if it has one.
pub fn without_default(create_sql: &str, column: &str) -> Result<String> {
    let (start, end) = find_column(create_sql, column)?;
    let seg = &create_sql[start..end];
    let b = seg.as_bytes();
    let mut i = 0;
    let mut depth = 0usize;
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' | b'`' | b'[' => {
                i = skip_quoted(b, i).ok_or_else(|| unparsable(column))?
            }
            b'-' if b.get(i + 1) == Some(&b'-') => i = skip_line_comment(b, i),
            b'/' if b.get(i + 1) == Some(&b'*') => i = skip_block_comment(b, i),
            b'(' => {
                depth += 1;
                i += 1;
            }
            b')' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            c if is_word(c) => {
                let w = i;
                while i < b.len() && is_word(b[i]) {
                    i += 1;
                }
                if depth == 0 && seg[w..i].eq_ignore_ascii_case("DEFAULT") {
                    let end = default_term_end(b, i).ok_or_else(|| unparsable(column))?;
                    let from = seg[..w].trim_end().len();
                    return Ok(format!(
                        "{}{}",
                        &create_sql[..start + from],
                        &create_sql[start + end..]
                    ));
                }
            }
            _ => i += 1,
        }
    }
    Ok(create_sql.to_string())
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// The index just past a quoted string or identifier starting at `i` (`'…'`, `"…"`, `` `…` ``,
/// `[…]`), doubled quotes included.
fn skip_quoted(b: &[u8], i: usize) -> Option<usize> {
    let close = if b[i] == b'[' { b']' } else { b[i] };
    let mut j = i + 1;
    loop {
        if j >= b.len() {
            return None;
        }
        if b[j] == close {
            if close != b']' && b.get(j + 1) == Some(&close) {
                j += 2;
                continue;
            }
            return Some(j + 1);
        }
        j += 1;
    }
}

fn skip_line_comment(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i] != b'\n' {
        i += 1;
    }
    i
}

fn skip_block_comment(b: &[u8], mut i: usize) -> usize {
    i += 2;
    while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
        i += 1;
    }
    (i + 2).min(b.len())
}

/// Where the term after `DEFAULT` ends: a parenthesised expression, a string or blob literal, a
/// signed number, or one word (a number, NULL, TRUE, CURRENT_TIMESTAMP, …).
fn default_term_end(b: &[u8], mut i: usize) -> Option<usize> {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    match *b.get(i)? {
        b'(' => {
            let mut depth = 0usize;
            while i < b.len() {
                match b[i] {
                    b'\'' | b'"' | b'`' | b'[' => {
                        i = skip_quoted(b, i)?;
                        continue;
                    }
                    b'(' => depth += 1,
                    b')' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            None
        }
        b'\'' => skip_quoted(b, i),
        b'x' | b'X' if b.get(i + 1) == Some(&b'\'') => skip_quoted(b, i + 1),
        b'+' | b'-' => default_term_end(b, i + 1),
        c if is_word(c) || c == b'.' => {
            while i < b.len() && (is_word(b[i]) || b[i] == b'.') {
                i += 1;
            }
            Some(i)
        }
        _ => None,
    }
}

/// The byte range of `column`'s definition in a CREATE TABLE statement: from its first token to
/// the end of its last significant token.
fn find_column(create_sql: &str, column: &str) -> Result<(usize, usize)> {
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
                    let start = seg_start.unwrap_or(0);
                    return Ok((start, last_significant_end));
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

/// Sets (`Some((expression, is_literal))`) or drops (`None`) `column`'s default inside the caller's
/// write transaction, after proving on a scratch database that the edited CREATE TABLE is one
/// statement that changes `column`'s default and nothing else.
pub fn set_column_default(
    conn: &Connection,
    table: &str,
    column: &str,
    default: Option<(&str, bool)>,
) -> Result<()> {
    let sql: String = conn
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get(0),
        )
        .map_err(|e| Error::db("reading the table's definition", e))?;
    let edited = without_default(&sql, column)?;
    let edited = match default {
        Some((expr, is_literal)) => {
            with_default(&edited, column, &default_clause(expr, is_literal))?
        }
        None => edited,
    };
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
                    && p.3.is_some() == default.is_some()
            } else {
                b == p
            }
        });
    if !only_the_default {
        return Err(Error::Refused(format!(
            "editing the table definition would change more than the default of {}; nothing was changed",
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

/// The one statement that sets `column`'s default through SQLite's schema-edit procedure. Its text
/// shows the edit as `plan` prints it; the executor applies the fields, never the text.
pub fn set_default(table: &str, column: &str, default: &str, literal_default: bool) -> Statement {
    let sql = [
        "PRAGMA writable_schema = ON".to_string(),
        format!(
            "UPDATE sqlite_schema SET sql = <the table's CREATE TABLE with DEFAULT {}> WHERE type = 'table' AND name = {}",
            default_clause(default, literal_default),
            literal(table)
        ),
        "PRAGMA schema_version = <current + 1>".to_string(),
        "PRAGMA writable_schema = OFF".to_string(),
    ]
    .join("\n");
    Statement {
        sql,
        run: Run::SqliteSetDefault {
            table: table.to_string(),
            column: column.to_string(),
            default: default.to_string(),
            literal: literal_default,
        },
    }
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
    fn removes_a_default_of_every_shape() {
        for (sql, want) in [
            (
                "CREATE TABLE t(c text DEFAULT 'a, b' NOT NULL, d int)",
                "CREATE TABLE t(c text NOT NULL, d int)",
            ),
            (
                "CREATE TABLE t(c int default (abs(-1) + (2)), d int)",
                "CREATE TABLE t(c int, d int)",
            ),
            ("CREATE TABLE t(c int DEFAULT -5)", "CREATE TABLE t(c int)"),
            (
                "CREATE TABLE t(c blob DEFAULT x'00ff' /* x */)",
                "CREATE TABLE t(c blob /* x */)",
            ),
            (
                "CREATE TABLE t(c text DEFAULT CURRENT_TIMESTAMP, \"default\" int DEFAULT 1)",
                "CREATE TABLE t(c text, \"default\" int DEFAULT 1)",
            ),
            (
                "CREATE TABLE t(c text, d int DEFAULT 1)",
                "CREATE TABLE t(c text, d int DEFAULT 1)",
            ),
        ] {
            assert_eq!(without_default(sql, "c").unwrap(), want, "{sql}");
        }
    }

    #[test]
    fn replaces_and_drops_a_live_default() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, c text DEFAULT 'old' NOT NULL); BEGIN",
        )
        .unwrap();
        set_column_default(&c, "t", "c", Some(("'new'", true))).unwrap();
        c.execute_batch("COMMIT; INSERT INTO t(id) VALUES (1); BEGIN")
            .unwrap();
        set_column_default(&c, "t", "c", None).unwrap();
        c.execute_batch("COMMIT").unwrap();
        let v: String = c.query_row("SELECT c FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(v, "new");
        let sql: String = c
            .query_row("SELECT sql FROM sqlite_schema WHERE name = 't'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(
            sql,
            "CREATE TABLE t(id INTEGER PRIMARY KEY, c text NOT NULL)"
        );
    }

    #[test]
    fn edits_a_live_table() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, a int); ALTER TABLE t ADD COLUMN c text; BEGIN",
        )
        .unwrap();
        set_column_default(&c, "t", "c", Some(("lower('X')", false))).unwrap();
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
        let err =
            set_column_default(&c, "t", "c", Some(("1) , x int DEFAULT (2", false))).unwrap_err();
        assert!(err.to_string().contains("more than the default"), "{err}");
        // …or adds a second statement is refused before the catalog is touched.
        let err = set_column_default(
            &c,
            "t",
            "c",
            Some(("1)); ATTACH ':memory:' AS y; CREATE TABLE z((1", false)),
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
