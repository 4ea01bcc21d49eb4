//! Statements recognised by their leading keywords before sqlparser sees them: transaction and session
//! scaffolding (whatever the dialect's parser makes of `SET …` or `BEGIN`, its meaning here is fixed)
//! and the few maintenance statements sqlparser does not read (`REINDEX`, `CLUSTER`, `ALTER DOMAIN`).

use super::{Action, Class, Engine, Kind, Name, Scaffold};
use sqlparser::tokenizer::{Token, Word};

/// The class of a statement whose leading keywords decide it; None to let sqlparser read it.
pub(super) fn before_parse(t: &[&Token], engine: Engine) -> Option<Class> {
    let w = |i: usize| t.get(i).and_then(|t| keyword(t));
    let first = w(0)?;
    let scaffold = |s| Some(Class::Scaffolding(s));
    match first.as_str() {
        "BEGIN" if t.len() <= 3 => scaffold(Scaffold::Begin),
        "START" if w(1).as_deref() == Some("TRANSACTION") => scaffold(Scaffold::Begin),
        "COMMIT" | "END" if t.len() <= 2 => scaffold(Scaffold::Commit),
        "ROLLBACK" if t.len() <= 2 => scaffold(Scaffold::Rollback),
        "PRAGMA" => scaffold(Scaffold::Pragma {
            name: t
                .get(1)
                .map(|t| plain(t))
                .unwrap_or_default()
                .to_lowercase(),
        }),
        "SET" => set(t),
        "SELECT" if t[1..].iter().all(|t| is_constant(t)) => scaffold(Scaffold::NoOp),
        "REINDEX" => change(
            name_after(t, &["TABLE"]),
            Kind::Reindex {
                concurrently: has(t, "CONCURRENTLY"),
            },
        ),
        "CLUSTER" => change(
            name_after(t, &["CLUSTER", "VERBOSE"]),
            Kind::RewriteTable {
                how: "CLUSTER".into(),
            },
        ),
        "VACUUM" if has(t, "FULL") => change(
            None,
            Kind::RewriteTable {
                how: "VACUUM FULL".into(),
            },
        ),
        "DO" if engine == Engine::Postgres => change(
            None,
            Kind::Other {
                what: "DO block (procedural code, not analysed)".into(),
            },
        ),
        "ALTER"
            if engine.is_mysql_family()
                && has(t, "RENAME")
                && (w(4).as_deref() == Some("INDEX") || w(4).as_deref() == Some("KEY")) =>
        {
            change(
                name_after(t, &["TABLE"]),
                Kind::Other {
                    what: "RENAME INDEX".into(),
                },
            )
        }
        "REPACK" => change(
            None,
            Kind::Other {
                what: "REPACK".into(),
            },
        ),
        "ALTER" if w(1).as_deref() == Some("DOMAIN") => change(
            None,
            if w(3).as_deref() == Some("ADD") {
                Kind::AlterDomainAddConstraint
            } else {
                Kind::Other {
                    what: "ALTER DOMAIN".into(),
                }
            },
        ),
        "CREATE" if w(1).as_deref() == Some("DOMAIN") => change(
            None,
            if has(t, "CHECK") || has(t, "NOT") || has(t, "CONSTRAINT") {
                Kind::CreateDomainWithConstraint
            } else {
                Kind::Other {
                    what: "CREATE DOMAIN".into(),
                }
            },
        ),
        "DROP" if engine == Engine::Postgres && w(1).as_deref() == Some("INDEX") => change(
            None,
            Kind::DropIndex {
                name: name_after(t, &["INDEX"])
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
                concurrently: has(t, "CONCURRENTLY"),
            },
        ),
        "ALTER" if engine == Engine::Postgres && has(t, "DETACH") => change(
            name_after(t, &["TABLE", "ONLY", "EXISTS"]),
            Kind::DetachPartition {
                concurrently: has(t, "CONCURRENTLY"),
            },
        ),
        _ => None,
    }
}

fn change(table: Option<Name>, kind: Kind) -> Option<Class> {
    Some(Class::Change {
        actions: vec![Action { table, kind }],
        algorithm: None,
        lock: None,
    })
}

/// `SET [SESSION|LOCAL|GLOBAL] name {=|TO} value`, `SET CONSTRAINTS …`, MySQL `SET @@name = v`.
fn set(t: &[&Token]) -> Option<Class> {
    let mut i = 1;
    while let Some(k) = t.get(i).and_then(|t| keyword(t)) {
        if matches!(k.as_str(), "SESSION" | "LOCAL" | "GLOBAL") {
            i += 1;
        } else {
            break;
        }
    }
    if t.get(i).and_then(|t| keyword(t)).as_deref() == Some("CONSTRAINTS") {
        return Some(Class::Scaffolding(Scaffold::SetConstraints));
    }
    // MariaDB `SET STATEMENT x=1 FOR <statement>` wraps a real statement: let sqlparser read it.
    if t.get(i).and_then(|t| keyword(t)).as_deref() == Some("STATEMENT") {
        return None;
    }
    let mut name = String::new();
    while let Some(tok) = t.get(i) {
        match tok {
            Token::Eq => break,
            Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("to") => {
                break;
            }
            other => name.push_str(&plain(other)),
        }
        i += 1;
    }
    let value: Vec<String> = t.iter().skip(i + 1).map(|t| plain(t)).collect();
    let name = name.trim_start_matches('@').to_lowercase();
    let name = name
        .strip_prefix("session.")
        .or_else(|| name.strip_prefix("local."))
        .unwrap_or(&name)
        .to_string();
    Some(Class::Scaffolding(Scaffold::Set {
        name,
        value: value.concat(),
    }))
}

/// An unquoted word, uppercased.
fn keyword(t: &Token) -> Option<String> {
    match t {
        Token::Word(Word {
            value,
            quote_style: None,
            ..
        }) => Some(value.to_ascii_uppercase()),
        _ => None,
    }
}

/// A token's text without quotes (identifiers) or with them (strings kept as written).
fn plain(t: &Token) -> String {
    match t {
        Token::Word(w) => w.value.clone(),
        Token::SingleQuotedString(s) => format!("'{s}'"),
        other => other.to_string(),
    }
}

fn has(t: &[&Token], word: &str) -> bool {
    t.iter().any(|t| keyword(t).as_deref() == Some(word))
}

fn is_constant(t: &Token) -> bool {
    matches!(
        t,
        Token::SingleQuotedString(_) | Token::Number(..) | Token::Comma | Token::Minus
    )
}

/// The (possibly qualified) name after the last of the `after` keywords, skipping `CONCURRENTLY`
/// and parenthesised options.
fn name_after(t: &[&Token], after: &[&str]) -> Option<Name> {
    let mut i = t
        .iter()
        .rposition(|t| keyword(t).is_some_and(|k| after.contains(&k.as_str())))?
        + 1;
    while t
        .get(i)
        .and_then(|t| keyword(t))
        .is_some_and(|k| matches!(k.as_str(), "CONCURRENTLY" | "IF" | "EXISTS" | "ONLY"))
    {
        i += 1;
    }
    let Token::Word(first) = t.get(i)? else {
        return None;
    };
    if let (Some(Token::Period), Some(Token::Word(second))) = (t.get(i + 1), t.get(i + 2)) {
        return Some(Name {
            schema: Some(first.value.clone()),
            name: second.value.clone(),
        });
    }
    Some(Name {
        schema: None,
        name: first.value.clone(),
    })
}
