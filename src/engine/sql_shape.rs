//! The shape of another session's statement: its literals replaced by `?` and its comments dropped,
//! so a blocker report can say what a session runs without printing the application's data (a
//! password in an `UPDATE users SET password_hash = '…'`, a token in a comment).

use sqlparser::dialect::{GenericDialect, MySqlDialect};
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

/// How many characters of a shape a report shows.
pub const SHAPE_CHARS: usize = 120;

/// `sql` with every literal (strings, numbers, dollar-quoted bodies, hex and byte strings) replaced by
/// `?`, comments removed and runs of whitespace folded, cut to [`SHAPE_CHARS`]. `mysql`: double quotes
/// delimit strings, not identifiers. Text the tokenizer cannot read (the server cut the statement
/// short inside a string, say) is kept only up to its first quote, with digits masked.
pub fn statement_shape(sql: &str, mysql: bool) -> String {
    let tokens = if mysql {
        Tokenizer::new(&MySqlDialect {}, sql).tokenize()
    } else {
        Tokenizer::new(&GenericDialect {}, sql).tokenize()
    };
    let shaped = match tokens {
        Ok(tokens) => tokens
            .iter()
            .map(|t| shape_token(t, mysql))
            .collect::<String>(),
        Err(_) => fallback(sql),
    };
    cut(&fold_whitespace(&shaped))
}

fn shape_token(t: &Token, mysql: bool) -> String {
    match t {
        Token::Number(..)
        | Token::SingleQuotedString(_)
        | Token::TripleSingleQuotedString(_)
        | Token::TripleDoubleQuotedString(_)
        | Token::DollarQuotedString(_)
        | Token::SingleQuotedByteStringLiteral(_)
        | Token::DoubleQuotedByteStringLiteral(_)
        | Token::TripleSingleQuotedByteStringLiteral(_)
        | Token::TripleDoubleQuotedByteStringLiteral(_)
        | Token::SingleQuotedRawStringLiteral(_)
        | Token::DoubleQuotedRawStringLiteral(_)
        | Token::TripleSingleQuotedRawStringLiteral(_)
        | Token::TripleDoubleQuotedRawStringLiteral(_)
        | Token::NationalStringLiteral(_)
        | Token::QuoteDelimitedStringLiteral(_)
        | Token::NationalQuoteDelimitedStringLiteral(_)
        | Token::EscapedStringLiteral(_)
        | Token::UnicodeStringLiteral(_)
        | Token::HexStringLiteral(_) => "?".into(),
        Token::DoubleQuotedString(_) if mysql => "?".into(),
        Token::Whitespace(Whitespace::SingleLineComment { .. })
        | Token::Whitespace(Whitespace::MultiLineComment(_)) => " ".into(),
        other => other.to_string(),
    }
}

/// The text before the first quote or dollar sign, digits masked: nothing inside a literal survives.
fn fallback(sql: &str) -> String {
    let stop = sql
        .find(['\'', '"', '$', '-', '/', '#'])
        .unwrap_or(sql.len());
    let head: String = sql[..stop]
        .chars()
        .map(|c| if c.is_ascii_digit() { '?' } else { c })
        .collect();
    if stop < sql.len() {
        format!("{head}…")
    } else {
        head
    }
}

fn fold_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn cut(s: &str) -> String {
    match s.char_indices().nth(SHAPE_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::statement_shape;

    #[test]
    fn literals_and_comments_never_survive() {
        let s = statement_shape(
            "UPDATE users SET password_hash = 'hunter2', n = 42 /* token abc */ WHERE id = $1 -- secret\n",
            false,
        );
        assert_eq!(s, "UPDATE users SET password_hash = ?, n = ? WHERE id = $1");
        let s = statement_shape(
            r#"SELECT "col" FROM t WHERE x = E'a\'b' AND y = $q$zz$q$"#,
            false,
        );
        assert_eq!(s, r#"SELECT "col" FROM t WHERE x = ? AND y = ?"#);
    }

    #[test]
    fn mysql_double_quotes_are_strings() {
        let s = statement_shape(r#"INSERT INTO `t` VALUES ("pw", x'ff', 3.5) # note"#, true);
        assert_eq!(s, "INSERT INTO `t` VALUES (?, ?, ?)");
    }

    #[test]
    fn unreadable_text_keeps_only_what_precedes_a_quote() {
        // A statement the server cut short inside a string literal.
        let s = statement_shape("UPDATE t SET secret = 'abc", false);
        assert_eq!(s, "UPDATE t SET secret = …");
        assert!(!statement_shape("SELECT 'x", true).contains('x'));
    }

    #[test]
    fn long_statements_are_cut_on_a_char_boundary() {
        let s = statement_shape(&format!("SELECT {}", "é, ".repeat(100)), false);
        assert!(s.chars().count() <= super::SHAPE_CHARS + 1, "{s}");
    }
}
