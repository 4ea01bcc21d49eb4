//! What an SQL expression reads and calls, found by parsing it (sqlparser), never by running it.

use super::sql::{parser_dialect, syntax_error};
use super::{Dialect, SpecError};
use sqlparser::ast::{
    Expr, FunctionArguments, ObjectNamePart, Query, UnaryOperator, Value, ValueWithSpan, Visit,
    Visitor,
};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;
use std::ops::ControlFlow;

/// The facts about one expression that planning needs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExprInfo {
    /// Column names read (the last part of a possibly qualified name), in first-seen order, no repeats.
    pub columns: Vec<String>,
    /// Functions called, lower-cased; niladic keywords such as CURRENT_TIMESTAMP count as calls.
    pub functions: Vec<String>,
    /// The expression is one literal (number, string, blob, NULL, TRUE/FALSE), possibly signed.
    pub is_literal: bool,
    /// The expression as the parser renders it: what a statement holds, never the user's raw text.
    pub rendered: String,
}

/// Parses an expression in `dialect`; rejects subqueries, several statements and trailing text.
pub fn analyze_expr(expr: &str, dialect: Dialect, what: &str) -> Result<ExprInfo, SpecError> {
    let source = format!("{what} expression");
    if expr.trim().is_empty() {
        return Err(SpecError::Invalid(format!(
            "the {what} expression is empty"
        )));
    }
    let d = parser_dialect(dialect);
    let mut parser = Parser::new(&*d)
        .try_with_sql(expr)
        .map_err(|e| syntax_error(&source, expr, e))?;
    let parsed = parser
        .parse_expr()
        .map_err(|e| syntax_error(&source, expr, e))?;
    let next = parser.peek_token();
    let message = match &next.token {
        Token::EOF => None,
        Token::SemiColon => Some(format!(
            "`;` after the {what} expression: give one expression, not a statement"
        )),
        other => Some(format!("unexpected `{other}` after the {what} expression")),
    };
    if let Some(message) = message {
        let at = next.span.start;
        return Err(SpecError::Syntax {
            source_name: source,
            line: usize::try_from(at.line).ok().filter(|l| *l > 0),
            column: usize::try_from(at.column).ok().filter(|c| *c > 0),
            message,
        });
    }

    let mut collector = Collector {
        what,
        info: ExprInfo {
            is_literal: is_literal(&parsed),
            rendered: parsed.to_string(),
            ..ExprInfo::default()
        },
    };
    if let ControlFlow::Break(message) = parsed.visit(&mut collector) {
        return Err(SpecError::Invalid(message));
    }
    Ok(collector.info)
}

/// One value, or a number with a sign: what SQLite accepts as an ADD COLUMN default (a parenthesised
/// value is an expression to SQLite, so `(1)` is deliberately not a literal).
fn is_literal(expr: &Expr) -> bool {
    match expr {
        Expr::Value(v) => !matches!(v.value, Value::Placeholder(_)),
        Expr::UnaryOp {
            op: UnaryOperator::Plus | UnaryOperator::Minus,
            expr,
        } => matches!(
            **expr,
            Expr::Value(ValueWithSpan {
                value: Value::Number(..),
                ..
            })
        ),
        _ => false,
    }
}

/// Walks the expression collecting columns and calls; breaks with a message on what a per-row
/// expression may not contain.
struct Collector<'a> {
    what: &'a str,
    info: ExprInfo,
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

impl Visitor for Collector<'_> {
    type Break = String;

    fn pre_visit_query(&mut self, _query: &Query) -> ControlFlow<String> {
        ControlFlow::Break(self.subquery())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<String> {
        let what = self.what;
        let function = |name: &str| Some(name.to_string());
        let called = match expr {
            Expr::Identifier(ident) => {
                push_unique(&mut self.info.columns, ident.value.clone());
                None
            }
            Expr::CompoundIdentifier(parts) => {
                if let Some(last) = parts.last() {
                    push_unique(&mut self.info.columns, last.value.clone());
                }
                None
            }
            Expr::Function(f) => {
                if f.over.is_some() {
                    return ControlFlow::Break(format!(
                        "window functions are not allowed in the {what} expression: it is computed from one row"
                    ));
                }
                if matches!(f.args, FunctionArguments::Subquery(_)) {
                    return ControlFlow::Break(self.subquery());
                }
                match f.name.0.last() {
                    Some(ObjectNamePart::Identifier(ident)) => Some(ident.value.to_lowercase()),
                    Some(other) => Some(other.to_string().to_lowercase()),
                    None => None,
                }
            }
            Expr::Exists { .. } | Expr::Subquery(_) => {
                return ControlFlow::Break(self.subquery());
            }
            Expr::Value(v) if matches!(v.value, Value::Placeholder(_)) => {
                return ControlFlow::Break(format!(
                    "parameters such as `{}` are not allowed in the {what} expression",
                    v.value
                ));
            }
            Expr::Wildcard(_) | Expr::QualifiedWildcard(..) => {
                return ControlFlow::Break(format!(
                    "`*` is not allowed in the {what} expression: name the columns"
                ));
            }
            // Keyword forms that are function calls in every engine.
            Expr::Extract { .. } => function("extract"),
            Expr::Substring { .. } => function("substring"),
            Expr::Trim { .. } => function("trim"),
            Expr::Position { .. } => function("position"),
            Expr::Overlay { .. } => function("overlay"),
            Expr::Ceil { .. } => function("ceil"),
            Expr::Floor { .. } => function("floor"),
            Expr::Convert { .. } => function("convert"),
            _ => None,
        };
        if let Some(name) = called {
            push_unique(&mut self.info.functions, name);
        }
        ControlFlow::Continue(())
    }
}

impl Collector<'_> {
    fn subquery(&self) -> String {
        format!(
            "subqueries are not allowed in the {} expression: it must be computed from the row alone",
            self.what
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(expr: &str, dialect: Dialect) -> ExprInfo {
        analyze_expr(expr, dialect, "backfill").unwrap_or_else(|e| panic!("{expr}: {e}"))
    }

    fn err(expr: &str, dialect: Dialect) -> String {
        match analyze_expr(expr, dialect, "backfill") {
            Ok(info) => panic!("{expr}: accepted as {info:?}"),
            Err(e) => e.to_string(),
        }
    }

    const ALL: [Dialect; 3] = [Dialect::Sqlite, Dialect::Postgres, Dialect::Mysql];

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn case_reads_its_column() {
        for d in ALL {
            let info = ok(
                "CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END",
                d,
            );
            assert_eq!(info.columns, strings(&["balance"]));
            assert!(info.functions.is_empty());
            assert!(!info.is_literal);
        }
    }

    #[test]
    fn functions_and_columns() {
        for d in ALL {
            let info = ok("lower(email) || '@x'", d);
            assert_eq!(info.columns, strings(&["email"]), "{d:?}");
            assert_eq!(info.functions, strings(&["lower"]));
            let info = ok("random()", d);
            assert_eq!(info.functions, strings(&["random"]));
            assert!(info.columns.is_empty() && !info.is_literal);
            let info = ok("coalesce(u.a, b, a) + Pg_Catalog.Upper(b)", d);
            assert_eq!(info.columns, strings(&["a", "b"]));
            assert_eq!(info.functions, strings(&["coalesce", "upper"]));
        }
        let info = ok("substring(name from 1 for 3)", Dialect::Postgres);
        assert_eq!(info.functions, strings(&["substring"]));
        assert_eq!(info.columns, strings(&["name"]));
    }

    #[test]
    fn niladic_keywords_are_calls() {
        for d in ALL {
            for (expr, name) in [
                ("CURRENT_TIMESTAMP", "current_timestamp"),
                ("current_date", "current_date"),
                ("CURRENT_TIME", "current_time"),
                ("LOCALTIMESTAMP", "localtimestamp"),
                ("now()", "now"),
            ] {
                let info = ok(expr, d);
                assert_eq!(info.functions, strings(&[name]), "{expr} in {d:?}");
                assert!(info.columns.is_empty(), "{expr} in {d:?}: {info:?}");
                assert!(!info.is_literal);
            }
        }
    }

    #[test]
    fn subqueries_are_rejected() {
        for d in ALL {
            for expr in [
                "(SELECT 1)",
                "EXISTS (SELECT 1 FROM t)",
                "a IN (SELECT id FROM t)",
                "1 + (SELECT max(x) FROM t)",
                "coalesce((SELECT 1), 2)",
            ] {
                let msg = err(expr, d);
                assert!(
                    msg.contains("subqueries are not allowed in the backfill expression"),
                    "{expr} in {d:?}: {msg}"
                );
            }
        }
    }

    #[test]
    fn sqlite_double_quotes_are_identifiers() {
        let info = ok(r#"a + "weird ""col""""#, Dialect::Sqlite);
        assert_eq!(info.columns, strings(&["a", r#"weird "col""#]));
        let info = ok("x'00'", Dialect::Sqlite);
        assert!(info.is_literal && info.columns.is_empty());
    }

    #[test]
    fn literals() {
        for d in ALL {
            for expr in ["-5", "+2.5", "'x'", "NULL", "TRUE", "false", "0", "''"] {
                let info = ok(expr, d);
                assert!(info.is_literal, "{expr} in {d:?}");
                assert!(
                    info.columns.is_empty() && info.functions.is_empty(),
                    "{expr}"
                );
            }
            for expr in ["1+1", "(1)", "-(1)", "- 'x'", "CAST(1 AS int)", "-a"] {
                assert!(!ok(expr, d).is_literal, "{expr} in {d:?}");
            }
        }
    }

    #[test]
    fn trailing_text_and_statements_are_errors() {
        for d in ALL {
            let msg = err("1;", d);
            assert!(msg.contains("`;` after the backfill expression"), "{msg}");
            let msg = err("a b c", d);
            assert!(msg.contains("after the backfill expression"), "{msg}");
            assert!(msg.starts_with("backfill expression:1:"), "{msg}");
            let msg = err("lower(", d);
            assert!(msg.starts_with("backfill expression:"), "{msg}");
            assert_eq!(err("  ", d), "the backfill expression is empty");
        }
        let e = analyze_expr("a +\n  )", Dialect::Postgres, "check").unwrap_err();
        assert!(
            matches!(e, SpecError::Syntax { line: Some(2), .. }),
            "{e:?}"
        );
        assert!(e.to_string().starts_with("check expression:2:"), "{e}");
    }

    #[test]
    fn other_refusals() {
        assert!(err("$1 + a", Dialect::Postgres).contains("parameters"));
        assert!(err("? + a", Dialect::Mysql).contains("parameters"));
        assert!(
            err("row_number() OVER (ORDER BY a)", Dialect::Postgres).contains("window functions")
        );
    }
}
