//! ANSI SQL quoting, shared by the engines whose identifiers are double-quoted (SQLite, PostgreSQL).

/// Quotes an identifier: `"` doubled inside double quotes.
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Quotes each identifier and joins them with commas: a column list.
pub fn quote_list(idents: &[String]) -> String {
    idents
        .iter()
        .map(|i| quote(i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Quotes a string literal (PostgreSQL: standard_conforming_strings, on since 9.1).
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
