//! The SQL form of a migration: one `ALTER TABLE … ADD [COLUMN] …` statement.
//!
//! The statement is walked with sqlparser's own building blocks (object name, data type, column
//! options) rather than `parse_statement`, for two reasons: every position is known, so expressions
//! and the type are kept as the user wrote them (sliced from the source by token spans, which are
//! exact, unlike the partial spans of AST nodes), and whatever zerodown does not do can be refused
//! by name at the place it appears instead of surfacing as a generic parse error.

use super::{AddColumn, Dialect, Reference, SpecError, byte_offset, invalid_at, line_col};
use sqlparser::ast::{ColumnOption, Ident, ObjectName, ObjectNamePart};
use sqlparser::dialect::{MySqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer, Whitespace};

const EXPECTED: &str = "expected ALTER TABLE … ADD COLUMN";

/// The sqlparser dialect for an engine.
pub(super) fn parser_dialect(dialect: Dialect) -> Box<dyn sqlparser::dialect::Dialect> {
    match dialect {
        Dialect::Sqlite => Box::new(SQLiteDialect {}),
        Dialect::Postgres => Box::new(PostgreSqlDialect {}),
        Dialect::Mysql => Box::new(MySqlDialect {}),
    }
}

/// A sqlparser error as [`SpecError::Syntax`]; sqlparser appends ` at Line: l, Column: c` to its
/// messages, which is split off into the structured location. Running out of input comes without a
/// location (the EOF token has none), so it is placed just after the last character of `text`.
pub(super) fn syntax_error(source: &str, text: &str, err: ParserError) -> SpecError {
    let raw = match err {
        ParserError::TokenizerError(s) | ParserError::ParserError(s) => s,
        ParserError::RecursionLimitExceeded => "the text nests too deeply".to_string(),
    };
    let (mut message, mut line, mut column) = split_location(&raw);
    if line.is_none()
        && let Some(head) = message.strip_suffix("found: EOF")
    {
        message = format!("{head}found: the end of the text");
        let (l, c) = line_col(text, text.trim_end().len());
        (line, column) = (Some(l), Some(c));
    }
    SpecError::Syntax {
        source_name: source.to_string(),
        line,
        column,
        message,
    }
}

fn split_location(raw: &str) -> (String, Option<usize>, Option<usize>) {
    const MARK: &str = " at Line: ";
    if let Some(pos) = raw.rfind(MARK)
        && let Some((line, column)) = raw[pos + MARK.len()..].split_once(", Column: ")
        && let (Ok(line), Ok(column)) = (line.parse(), column.trim().parse())
    {
        return (raw[..pos].to_string(), Some(line), Some(column));
    }
    (raw.to_string(), None, None)
}

fn to_usize(n: u64) -> Option<usize> {
    usize::try_from(n).ok().filter(|n| *n > 0)
}

/// A statement's tokens and where they came from, for slicing source text and placing messages.
struct Source<'a> {
    sql: &'a str,
    name: &'a str,
    tokens: Vec<TokenWithSpan>,
}

impl Source<'_> {
    fn refuse(&self, at: Location, message: &str) -> SpecError {
        invalid_at(self.name, to_usize(at.line), to_usize(at.column), message)
    }

    fn syntax(&self, err: ParserError) -> SpecError {
        syntax_error(self.name, self.sql, err)
    }

    fn is_blank(&self, i: usize) -> bool {
        matches!(self.tokens[i].token, Token::Whitespace(_))
    }

    /// The index of the first non-whitespace token at or after `i` (`tokens.len()` at the end).
    fn next_solid(&self, mut i: usize) -> usize {
        while i < self.tokens.len() && self.is_blank(i) {
            i += 1;
        }
        i
    }

    /// The source text of tokens `from..to`, without surrounding whitespace and comments.
    fn text(&self, from: usize, to: usize) -> Option<String> {
        let from = self.next_solid(from);
        let mut last = to.min(self.tokens.len());
        while last > from && self.is_blank(last - 1) {
            last -= 1;
        }
        if last <= from {
            return None;
        }
        let start = self.tokens[from].span.start;
        let end = self.tokens[last - 1].span.end;
        let start = byte_offset(self.sql, start.line, start.column)?;
        let end = byte_offset(self.sql, end.line, end.column)?;
        (start < end).then(|| self.sql[start..end].to_string())
    }

    /// The leading keywords at `i` (at most two, e.g. `DROP TABLE`), to name a statement or
    /// operation that is not the one expected.
    fn phrase(&self, i: usize) -> String {
        let mut words = Vec::new();
        let mut i = self.next_solid(i);
        while words.len() < 2 && i < self.tokens.len() {
            match &self.tokens[i].token {
                Token::Word(w) if w.quote_style.is_none() && w.keyword != Keyword::NoKeyword => {
                    words.push(w.value.to_uppercase());
                }
                _ => break,
            }
            i = self.next_solid(i + 1);
        }
        if !words.is_empty() {
            return words.join(" ");
        }
        match self.tokens.get(i) {
            None
            | Some(TokenWithSpan {
                token: Token::EOF, ..
            }) => "the end of the text".into(),
            Some(t) => format!("`{}`", t.token),
        }
    }

    fn location(&self, i: usize) -> Location {
        let i = self.next_solid(i);
        self.tokens
            .get(i)
            .or(self.tokens.last())
            .map_or(Location { line: 0, column: 0 }, |t| t.span.start)
    }
}

/// The one table name of `ALTER TABLE` or `REFERENCES`, refusing `schema.table`.
fn plain_name(src: &Source<'_>, name: &ObjectName, at: Location) -> Result<String, SpecError> {
    match name.0.as_slice() {
        [ObjectNamePart::Identifier(ident)] => ident_value(src, ident, at),
        [_] => Err(src.refuse(at, &format!("`{name}` is not a plain table name"))),
        _ => Err(src.refuse(
            at,
            &format!("`{name}`: schema-qualified table names are not supported yet"),
        )),
    }
}

fn ident_value(src: &Source<'_>, ident: &Ident, at: Location) -> Result<String, SpecError> {
    if ident.value.is_empty() {
        return Err(src.refuse(at, "an empty quoted name is not a name"));
    }
    Ok(ident.value.clone())
}

/// Parses one `ALTER TABLE … ADD COLUMN` statement into the operation it asks for.
pub(super) fn parse(sql: &str, dialect: Dialect, source: &str) -> Result<AddColumn, SpecError> {
    let d = parser_dialect(dialect);
    let tokens = Tokenizer::new(&*d, sql)
        .with_unescape(true)
        .tokenize_with_location()
        .map_err(|e| SpecError::Syntax {
            source_name: source.to_string(),
            line: to_usize(e.location.line),
            column: to_usize(e.location.column),
            message: e.message,
        })?;
    // A leading blank token makes `pos` exact from the start: `get_current_index` cannot tell
    // "nothing consumed" from "one token consumed", but with a blank first both mean "look at 1".
    let tokens: Vec<TokenWithSpan> =
        std::iter::once(TokenWithSpan::wrap(Token::Whitespace(Whitespace::Space)))
            .chain(tokens)
            .collect();
    let src = Source {
        sql,
        name: source,
        tokens,
    };
    let mut p = Parser::new(&*d).with_tokens_with_locations(src.tokens.clone());
    // The index of the next token the parser will look at (possibly blank).
    let pos = |p: &Parser<'_>| p.get_current_index() + 1;

    while p.consume_token(&Token::SemiColon) {}
    if p.peek_token_ref().token == Token::EOF {
        return Err(src.refuse(src.location(0), &format!("no SQL statement: {EXPECTED}")));
    }
    let start = pos(&p);
    if !p.parse_keywords(&[Keyword::ALTER, Keyword::TABLE]) {
        return Err(src.refuse(
            src.location(start),
            &format!("{EXPECTED}, found {}", src.phrase(start)),
        ));
    }
    let at = src.location(pos(&p));
    if p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]) {
        return Err(src.refuse(
            at,
            "IF EXISTS is not supported: the table must exist, and zerodown checks that it does",
        ));
    }
    if p.parse_keyword(Keyword::ONLY) {
        return Err(src.refuse(at, "ALTER TABLE ONLY is not supported"));
    }
    let at = src.location(pos(&p));
    let name = p.parse_object_name(false).map_err(|e| src.syntax(e))?;
    let table = plain_name(&src, &name, at)?;

    let at = src.location(pos(&p));
    if !p.parse_keyword(Keyword::ADD) {
        if matches!(p.peek_token_ref().token, Token::EOF | Token::SemiColon) {
            return Err(src.refuse(
                at,
                &format!("incomplete statement: {EXPECTED}, found only ALTER TABLE {name}"),
            ));
        }
        return Err(src.refuse(
            at,
            &format!("{EXPECTED}, found ALTER TABLE … {}", src.phrase(pos(&p))),
        ));
    }
    let at = src.location(pos(&p));
    let mut if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let column_keyword = p.parse_keyword(Keyword::COLUMN);
    if !column_keyword
        && !if_not_exists
        && let Some(kw) = table_constraint_keyword(&p, dialect)
    {
        return Err(src.refuse(
            at,
            &format!(
                "{EXPECTED}, found ALTER TABLE … ADD {kw}: constraints on the new column go in its own options"
            ),
        ));
    }
    if_not_exists |= p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    if if_not_exists {
        return Err(src.refuse(
            at,
            "IF NOT EXISTS is not supported: zerodown itself knows whether it added the column",
        ));
    }

    let at = src.location(pos(&p));
    let column_ident = p.parse_identifier().map_err(|e| src.syntax(e))?;
    let column = ident_value(&src, &column_ident, at)?;

    let type_start = pos(&p);
    if lacks_type(&p) {
        return Err(src.refuse(
            src.location(type_start),
            &format!(
                "the new column `{column}` needs a type, as in ALTER TABLE {table} ADD COLUMN {column} text"
            ),
        ));
    }
    let data_type = p.parse_data_type().map_err(|e| src.syntax(e))?;
    let data_type = src
        .text(type_start, pos(&p))
        .unwrap_or_else(|| data_type.to_string());

    let mut out = AddColumn {
        table,
        column,
        data_type,
        not_null: false,
        default: None,
        backfill: None,
        check: None,
        unique: false,
        index: false,
        references: None,
    };
    let mut nullable = false;
    loop {
        let from = pos(&p);
        let at = src.location(from);
        let named = if p.parse_keyword(Keyword::CONSTRAINT) {
            Some(p.parse_identifier().map_err(|e| src.syntax(e))?)
        } else {
            None
        };
        let option = match p.parse_optional_column_option() {
            Ok(Some(option)) => option,
            Ok(None) if named.is_none() => break,
            Ok(None) => {
                return Err(src.syntax(
                    p.expected::<()>("constraint details after CONSTRAINT <name>", p.peek_token())
                        .unwrap_err(),
                ));
            }
            Err(e) => return Err(src.syntax(e)),
        };
        let to = pos(&p);
        let option_text = || src.text(from, to).unwrap_or_else(|| option.to_string());
        if named.is_some() && !matches!(option, ColumnOption::Check(_)) {
            return Err(src.refuse(
                at,
                &format!(
                    "`{}`: a constraint name is only accepted on CHECK; zerodown names the other constraints it creates",
                    option_text()
                ),
            ));
        }
        let refuse = |message: &str| Err(src.refuse(at, message));
        let twice = |what: &str| src.refuse(at, &format!("{what} is given twice"));
        match &option {
            ColumnOption::Null => {
                if out.not_null {
                    return refuse("NULL and NOT NULL contradict each other");
                }
                nullable = true;
            }
            ColumnOption::NotNull => {
                if nullable {
                    return refuse("NULL and NOT NULL contradict each other");
                }
                if out.not_null {
                    return Err(twice("NOT NULL"));
                }
                out.not_null = true;
            }
            ColumnOption::Default(expr) => {
                if out.default.is_some() {
                    return Err(twice("DEFAULT"));
                }
                let text = after_keyword(&src, from, to, Keyword::DEFAULT)
                    .unwrap_or_else(|| expr.to_string());
                out.default = Some(text);
            }
            ColumnOption::Check(check) => {
                if out.check.is_some() {
                    return refuse("several CHECK constraints: combine them with AND in one CHECK");
                }
                if check.no_inherit {
                    return refuse("CHECK … NO INHERIT is not supported");
                }
                if check.enforced.is_some() {
                    return refuse("CHECK … [NOT] ENFORCED is not supported");
                }
                let text = check_body(&src, from, to).unwrap_or_else(|| check.expr.to_string());
                out.check = Some(text);
            }
            ColumnOption::Unique(unique) => {
                if unique.characteristics.is_some() {
                    return refuse("DEFERRABLE / INITIALLY … on UNIQUE is not supported");
                }
                if unique.nulls_distinct != sqlparser::ast::NullsDistinctOption::None {
                    return refuse("UNIQUE NULLS [NOT] DISTINCT is not supported yet");
                }
                if out.unique {
                    return Err(twice("UNIQUE"));
                }
                out.unique = true;
            }
            ColumnOption::PrimaryKey(_) => {
                return refuse("PRIMARY KEY on a new column is not supported");
            }
            ColumnOption::ForeignKey(fk) => {
                if out.references.is_some() {
                    return Err(twice("REFERENCES"));
                }
                if fk.on_delete.is_some() || fk.on_update.is_some() {
                    return refuse(
                        "ON DELETE / ON UPDATE actions on REFERENCES are not supported yet",
                    );
                }
                if fk.match_kind.is_some() {
                    return refuse("REFERENCES … MATCH is not supported yet");
                }
                if fk.characteristics.is_some() {
                    return refuse("DEFERRABLE / INITIALLY … on REFERENCES is not supported yet");
                }
                let table_at = src.location(src.next_solid(from) + 1);
                let table = plain_name(&src, &fk.foreign_table, table_at)?;
                let column = match fk.referred_columns.as_slice() {
                    [] => None,
                    [c] => Some(ident_value(&src, c, at)?),
                    _ => return refuse("REFERENCES to several columns is not supported"),
                };
                out.references = Some(Reference { table, column });
            }
            ColumnOption::Generated { .. }
            | ColumnOption::Materialized(_)
            | ColumnOption::Alias(_)
            | ColumnOption::Ephemeral(_) => {
                return refuse("GENERATED columns are not supported");
            }
            ColumnOption::Identity(_) => return refuse("IDENTITY columns are not supported"),
            ColumnOption::Collation(_) => return refuse("COLLATE is not supported yet"),
            ColumnOption::CharacterSet(_) => return refuse("CHARACTER SET is not supported yet"),
            ColumnOption::Comment(_) => return refuse("COMMENT is not supported yet"),
            ColumnOption::OnUpdate(_) => return refuse("ON UPDATE is not supported"),
            ColumnOption::OnConflict(_) => return refuse("ON CONFLICT is not supported"),
            ColumnOption::Invisible => return refuse("INVISIBLE is not supported"),
            ColumnOption::DialectSpecific(_) => {
                return refuse(&format!(
                    "{} is not supported",
                    option_text().to_uppercase()
                ));
            }
            _ => return refuse(&format!("`{}` is not supported", option_text())),
        }
    }

    let at = src.location(pos(&p));
    match &p.peek_token_ref().token {
        Token::EOF => {}
        Token::SemiColon => {
            while p.consume_token(&Token::SemiColon) {}
            if p.peek_token_ref().token != Token::EOF {
                return Err(src.refuse(
                    src.location(pos(&p)),
                    "several statements: write one ALTER TABLE … ADD COLUMN per migration",
                ));
            }
        }
        Token::Comma => {
            p.next_token();
            if matches!(
                &p.peek_token_ref().token,
                Token::Word(w) if matches!(w.keyword, Keyword::ALGORITHM | Keyword::LOCK)
            ) {
                return Err(src.refuse(
                    at,
                    "ALGORITHM= and LOCK= are not supported: zerodown chooses how each step runs",
                ));
            }
            return Err(src.refuse(
                at,
                "ALTER TABLE with several operations: write one ADD COLUMN per migration",
            ));
        }
        Token::Word(w) if matches!(w.keyword, Keyword::FIRST | Keyword::AFTER) => {
            return Err(src.refuse(at, "FIRST / AFTER column positions are not supported"));
        }
        other => {
            return Err(SpecError::Syntax {
                source_name: source.to_string(),
                line: to_usize(at.line),
                column: to_usize(at.column),
                message: format!("unexpected `{other}` in the column definition"),
            });
        }
    }
    Ok(out)
}

/// `ADD <keyword>` that sqlparser would read as a table constraint (or partition) rather than a
/// column named like that.
fn table_constraint_keyword(p: &Parser<'_>, dialect: Dialect) -> Option<String> {
    let Token::Word(w) = &p.peek_token_ref().token else {
        return None;
    };
    if w.quote_style.is_some() {
        return None;
    }
    let always = matches!(
        w.keyword,
        Keyword::CONSTRAINT
            | Keyword::PRIMARY
            | Keyword::UNIQUE
            | Keyword::FOREIGN
            | Keyword::CHECK
    );
    let mysql = dialect == Dialect::Mysql
        && matches!(
            w.keyword,
            Keyword::INDEX
                | Keyword::KEY
                | Keyword::FULLTEXT
                | Keyword::SPATIAL
                | Keyword::PARTITION
        );
    (always || mysql).then(|| w.value.to_uppercase())
}

/// The column name is followed directly by an option or the end: SQLite allows that, zerodown
/// does not (the type decides the backfill and the engines' fast paths).
fn lacks_type(p: &Parser<'_>) -> bool {
    match &p.peek_token_ref().token {
        Token::EOF | Token::SemiColon | Token::Comma => true,
        Token::Word(w) => {
            w.quote_style.is_none()
                && matches!(
                    w.keyword,
                    Keyword::CONSTRAINT
                        | Keyword::PRIMARY
                        | Keyword::NOT
                        | Keyword::NULL
                        | Keyword::UNIQUE
                        | Keyword::CHECK
                        | Keyword::DEFAULT
                        | Keyword::COLLATE
                        | Keyword::REFERENCES
                        | Keyword::GENERATED
                        | Keyword::AS
                )
        }
        _ => false,
    }
}

fn is_keyword(token: &Token, keyword: Keyword) -> bool {
    matches!(token, Token::Word(w) if w.keyword == keyword && w.quote_style.is_none())
}

/// The text after `keyword` within the option's tokens `from..to` (the DEFAULT expression).
fn after_keyword(src: &Source<'_>, from: usize, to: usize, keyword: Keyword) -> Option<String> {
    let k = (from..to).find(|&i| is_keyword(&src.tokens[i].token, keyword))?;
    src.text(k + 1, to)
}

/// The text between `CHECK (` and its matching `)` within the option's tokens `from..to`.
fn check_body(src: &Source<'_>, from: usize, to: usize) -> Option<String> {
    let k = (from..to).find(|&i| is_keyword(&src.tokens[i].token, Keyword::CHECK))?;
    let open = src.next_solid(k + 1);
    if src.tokens.get(open)?.token != Token::LParen {
        return None;
    }
    let mut depth = 0usize;
    for i in open..to {
        match src.tokens[i].token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    return src.text(open + 1, i);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
#[path = "sql_tests.rs"]
mod tests;
