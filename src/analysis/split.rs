//! Reading a file into statements: one tokenizer pass over the whole text (so strings, dollar quotes
//! and comments are never split wrongly), statements cut at top-level `;`, tool annotations read from
//! the comments, and each statement parsed by itself so one unreadable statement hides nothing else.

use super::{Annotation, Class, Engine, File, Scaffold, Statement, classify, keywords};
use sqlparser::dialect::{Dialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Whitespace};

/// The sqlparser dialect for an engine.
pub(super) fn dialect(engine: Engine) -> Box<dyn Dialect> {
    match engine {
        Engine::Postgres => Box::new(PostgreSqlDialect {}),
        Engine::Mysql | Engine::Mariadb => Box::new(MySqlDialect {}),
        Engine::Sqlite => Box::new(SQLiteDialect {}),
    }
}

/// Reads a migration file (`path` only names it in messages). Never fails: a statement sqlparser
/// cannot read becomes [`Class::Unreadable`] with its location, and the others are still read.
pub fn read(path: &str, text: &str, engine: Engine) -> File {
    let mut file = File {
        path: path.to_string(),
        engine,
        statements: Vec::new(),
        annotations: Vec::new(),
        ignores: Vec::new(),
        no_transaction: false,
    };
    let d = dialect(engine);
    let liquibase = liquibase_lines(&mut file, text);
    let text = liquibase.as_deref().unwrap_or(text);
    let tokens = match Tokenizer::new(&*d, text).tokenize_with_location() {
        Ok(t) => t,
        Err(e) => {
            file.statements.push(Statement {
                line: e.location.line as usize,
                column: e.location.column as usize,
                text: String::new(),
                class: Class::Unreadable {
                    message: format!(
                        "{} (the file cannot be split into statements; check quotes and comments near here)",
                        e.message
                    ),
                },
                bookkeeping: None,
                in_transaction: false,
                ignores: Vec::new(),
                settings: Vec::new(),
            });
            return file;
        }
    };
    let lines = LineStarts::new(text);
    let mut state = State::default();
    let mut chunk: Vec<TokenWithSpan> = Vec::new();
    let mut pending_ignores: Vec<String> = Vec::new();
    for tok in tokens {
        if let Token::Whitespace(Whitespace::SingleLineComment { comment, prefix }) = &tok.token {
            let line = tok.span.start.line as usize;
            let seen = comment_directive(&mut file, &mut pending_ignores, line, prefix, comment);
            if seen == Directive::Down {
                // goose: everything after `-- +goose Down` is the revert, not the migration.
                chunk.clear();
                break;
            }
            if seen == Directive::Up {
                chunk.clear();
                continue;
            }
        }
        if tok.token == Token::SemiColon && !in_block(&chunk) {
            finish(
                &mut file,
                &mut state,
                &lines,
                text,
                &*d,
                &mut chunk,
                &mut pending_ignores,
            );
        } else {
            chunk.push(tok);
        }
    }
    finish(
        &mut file,
        &mut state,
        &lines,
        text,
        &*d,
        &mut chunk,
        &mut pending_ignores,
    );
    file
}

/// Liquibase "formatted SQL": its `--liquibase`, `--changeset`, `--rollback`, … lines are read by
/// Liquibase, not sent to the database; MySQL would not even read `--x` as a comment (it wants a space
/// after `--`). They become annotations and blank lines (so every other line keeps its number).
fn liquibase_lines(file: &mut File, text: &str) -> Option<String> {
    let first = text.lines().find(|l| !l.trim().is_empty())?;
    if !first
        .trim()
        .to_ascii_lowercase()
        .starts_with("--liquibase formatted sql")
    {
        return None;
    }
    const WORDS: &[&str] = &[
        "liquibase",
        "changeset",
        "rollback",
        "comment",
        "precondition",
        "validchecksum",
        "ignorelines",
        "property",
    ];
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let body = line.trim_start().strip_prefix("--").map(str::trim_start);
        let lower = body.map(str::to_ascii_lowercase).unwrap_or_default();
        if body.is_some() && WORDS.iter().any(|w| lower.starts_with(w)) {
            let text = line.trim_end().to_string();
            if lower.starts_with("changeset ") && lower.contains("runintransaction:false") {
                file.no_transaction = true;
            }
            file.annotations.push(Annotation { line: i + 1, text });
            out.push_str(if line.ends_with('\n') { "\n" } else { "" });
        } else {
            out.push_str(line);
        }
    }
    Some(out)
}

/// Inside the body of a `CREATE TRIGGER … BEGIN … END` (SQLite, MySQL) or a MySQL procedure, where
/// `;` ends the body's statements, not the CREATE: BEGIN/CASE open a block, END closes one.
fn in_block(chunk: &[TokenWithSpan]) -> bool {
    let mut words = chunk.iter().filter_map(|t| match &t.token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
        _ => None,
    });
    if words.next().as_deref() != Some("CREATE") {
        return false;
    }
    let mut depth = 0i32;
    for w in words {
        match w.as_str() {
            "BEGIN" | "CASE" => depth += 1,
            "END" => depth -= 1,
            _ => {}
        }
    }
    depth > 0
}

#[derive(PartialEq)]
enum Directive {
    None,
    Up,
    Down,
}

/// Reads one line comment for tool annotations and ignore directives.
fn comment_directive(
    file: &mut File,
    ignores: &mut Vec<String>,
    line: usize,
    prefix: &str,
    comment: &str,
) -> Directive {
    let body = comment.trim();
    let lower = body.to_ascii_lowercase();
    let whole = format!("{prefix}{}", comment.trim_end());
    if let Some(rest) = lower.strip_prefix("zerodown-ignore-file") {
        file.ignores.extend(rule_list(rest));
        return Directive::None;
    }
    if let Some(rest) = lower.strip_prefix("zerodown-ignore") {
        ignores.extend(rule_list(rest));
        return Directive::None;
    }
    if lower.starts_with("+goose") || lower == "no-transaction" {
        file.annotations.push(Annotation { line, text: whole });
        if lower == "no-transaction" || lower == "+goose no transaction" {
            file.no_transaction = true;
        }
    }
    match lower.as_str() {
        "+goose up" => Directive::Up,
        "+goose down" => Directive::Down,
        _ => Directive::None,
    }
}

fn rule_list(rest: &str) -> Vec<String> {
    let list: Vec<String> = rest
        .split([',', ' ', '\t'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if list.is_empty() {
        vec!["all".to_string()]
    } else {
        list
    }
}

/// What the file has said so far that changes how later statements read.
#[derive(Default)]
struct State {
    in_transaction: bool,
    /// PostgreSQL `SET search_path`: the schema unqualified table names resolve to.
    search_path: Option<String>,
}

fn finish(
    file: &mut File,
    state: &mut State,
    lines: &LineStarts,
    text: &str,
    d: &dyn Dialect,
    chunk: &mut Vec<TokenWithSpan>,
    ignores: &mut Vec<String>,
) {
    let tokens = std::mem::take(chunk);
    let Some(first) = tokens.iter().position(|t| !is_blank(&t.token)) else {
        return;
    };
    let last = tokens
        .iter()
        .rposition(|t| !is_blank(&t.token))
        .unwrap_or(first);
    let start = tokens[first].span.start;
    let end = tokens[last].span.end;
    let from = lines.offset(text, start.line as usize, start.column as usize);
    let to = lines.offset(text, end.line as usize, end.column as usize);
    let sql = text.get(from..to).unwrap_or_default().to_string();
    let solid: Vec<&Token> = tokens[first..=last]
        .iter()
        .map(|t| &t.token)
        .filter(|t| !is_blank(t))
        .collect();
    let mut settings = Vec::new();
    let class = match keywords::before_parse(&solid, file.engine) {
        Some(class) => class,
        None => parse(
            d,
            tokens,
            file.engine,
            state.search_path.as_deref(),
            &mut settings,
        ),
    };
    match &class {
        Class::Scaffolding(Scaffold::Begin) => state.in_transaction = true,
        Class::Scaffolding(Scaffold::Commit | Scaffold::Rollback) => state.in_transaction = false,
        Class::Scaffolding(Scaffold::Set { name, value }) if name == "search_path" => {
            state.search_path = value
                .split(',')
                .map(|s| s.trim().trim_matches(['"', '\'']).to_string())
                .find(|s| !s.is_empty() && s != "$user");
        }
        _ => {}
    }
    let bookkeeping = classify::history_table(&class);
    let in_transaction = state.in_transaction
        && !matches!(
            class,
            Class::Scaffolding(Scaffold::Begin | Scaffold::Commit)
        );
    file.statements.push(Statement {
        line: start.line as usize,
        column: start.column as usize,
        text: sql,
        class,
        bookkeeping,
        in_transaction,
        ignores: std::mem::take(ignores),
        settings,
    });
}

fn parse(
    d: &dyn Dialect,
    tokens: Vec<TokenWithSpan>,
    engine: Engine,
    path: Option<&str>,
    settings: &mut Vec<String>,
) -> Class {
    let (tokens, set) = strip_set_statement(tokens);
    *settings = set;
    let mut p = Parser::new(d).with_tokens_with_locations(tokens);
    let parsed = p
        .parse_statement()
        .and_then(|s| match p.peek_token().token {
            Token::EOF => Ok(s),
            other => Err(ParserError::ParserError(format!(
                "expected the end of the statement, found: {other} at Line: {}, Column: {}",
                p.peek_token().span.start.line,
                p.peek_token().span.start.column
            ))),
        });
    match parsed {
        Ok(stmt) => classify::statement(&stmt, engine, path),
        Err(e) => Class::Unreadable {
            message: format!(
                "{}: the {} SQL reader cannot read this statement; if the engine accepts it, \
                 rewrite it in the engine's documented syntax or put `-- zerodown-ignore all` above it \
                 and review it by hand",
                parser_message(e),
                engine
            ),
        },
    }
}

/// MariaDB's `SET STATEMENT var = value [, …] FOR <statement>`: the statement is what runs.
/// Returns the inner statement's tokens and the variables set for it.
fn strip_set_statement(tokens: Vec<TokenWithSpan>) -> (Vec<TokenWithSpan>, Vec<String>) {
    let word = |t: &TokenWithSpan, w: &str| {
        matches!(&t.token, Token::Word(x)
            if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w))
    };
    let solid: Vec<usize> = (0..tokens.len())
        .filter(|&i| !is_blank(&tokens[i].token))
        .collect();
    if solid.len() > 2
        && word(&tokens[solid[0]], "SET")
        && word(&tokens[solid[1]], "STATEMENT")
        && let Some(&at) = solid.iter().find(|&&i| word(&tokens[i], "FOR"))
    {
        let names = solid
            .windows(2)
            .filter(|w| w[1] < at && tokens[w[1]].token == Token::Eq)
            .filter_map(|w| match &tokens[w[0]].token {
                Token::Word(x) => Some(x.value.to_ascii_lowercase()),
                _ => None,
            })
            .collect();
        return (tokens[at + 1..].to_vec(), names);
    }
    (tokens, Vec::new())
}

fn parser_message(e: ParserError) -> String {
    match e {
        ParserError::TokenizerError(s) | ParserError::ParserError(s) => s,
        ParserError::RecursionLimitExceeded => "the statement nests too deeply".to_string(),
    }
}

fn is_blank(t: &Token) -> bool {
    matches!(t, Token::Whitespace(_))
}

/// Byte offsets of line starts, to turn sqlparser's (line, column) into a slice of the text.
struct LineStarts(Vec<usize>);

impl LineStarts {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineStarts(starts)
    }

    /// sqlparser columns count characters from 1.
    fn offset(&self, text: &str, line: usize, column: usize) -> usize {
        let Some(&start) = self.0.get(line.saturating_sub(1)) else {
            return text.len();
        };
        text[start..]
            .char_indices()
            .nth(column.saturating_sub(1))
            .map_or(text.len(), |(i, _)| start + i)
    }
}
