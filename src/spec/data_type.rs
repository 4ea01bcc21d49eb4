//! A column type as the user wrote it, parsed as exactly one SQL data type in the target dialect and
//! rendered back: what reaches a statement is the parser's rendering, never the user's text, so
//! `type = "int); DROP TABLE x; --"` is an error, not a statement.

use super::sql::{parser_dialect, syntax_error};
use super::{Dialect, SpecError};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

/// `text` parsed as one data type of `dialect` and rendered (`varchar(20)` → `VARCHAR(20)`);
/// anything after the type is refused with its position.
pub fn render_data_type(text: &str, dialect: Dialect) -> Result<String, SpecError> {
    let source = "type";
    if text.trim().is_empty() {
        return Err(SpecError::Invalid(
            "the column's `type` is empty; give an SQL type such as `text` or `bigint`".into(),
        ));
    }
    let d = parser_dialect(dialect);
    let mut parser = Parser::new(&*d)
        .try_with_sql(text)
        .map_err(|e| syntax_error(source, text, e))?;
    let parsed = parser
        .parse_data_type()
        .map_err(|e| syntax_error(source, text, e))?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        let at = next.span.start;
        return Err(SpecError::Syntax {
            source_name: source.into(),
            line: usize::try_from(at.line).ok().filter(|l| *l > 0),
            column: usize::try_from(at.column).ok().filter(|c| *c > 0),
            message: format!(
                "unexpected `{}` after the type `{parsed}`: `type` holds one SQL type only (constraints, defaults and collations have keys or steps of their own)",
                next.token
            ),
        });
    }
    Ok(parsed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_rendered_by_the_parser() {
        let pg = |t| render_data_type(t, Dialect::Postgres).unwrap();
        assert_eq!(pg("varchar(255)"), "VARCHAR(255)");
        assert_eq!(pg("timestamp with time zone"), "TIMESTAMP WITH TIME ZONE");
        assert_eq!(pg("public.citext"), "public.citext");
        assert_eq!(pg("\"Mood\""), "\"Mood\"");
        assert_eq!(pg("int[]"), "INT[]");
        assert_eq!(
            render_data_type("int unsigned", Dialect::Mysql).unwrap(),
            "INT UNSIGNED"
        );
        assert_eq!(render_data_type("text", Dialect::Sqlite).unwrap(), "TEXT");
    }

    #[test]
    fn text_after_the_type_is_refused_with_its_position() {
        let err = render_data_type("int); DROP TABLE x; --", Dialect::Postgres).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("type:1:4: unexpected `)`"), "{msg}");
        for bad in ["int NOT NULL", "text; DROP TABLE t", "", "  "] {
            assert!(render_data_type(bad, Dialect::Postgres).is_err(), "{bad}");
        }
    }
}
