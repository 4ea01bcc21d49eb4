//! `Reference` as text: `table(column)` or `table`, the same in a TOML file, in stored state and in
//! messages, so one small parser here instead of a full SQL parse.

use super::{Reference, SpecError};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

const FORM: &str =
    "write `table(column)` or `table`; quote a name as \"…\" or `…` when it needs it";

impl Reference {
    /// Parses `table(column)` or `table`; either name may be double-quoted or backtick-quoted.
    pub fn parse(text: &str) -> Result<Reference, SpecError> {
        let fail =
            |what: &str| SpecError::Invalid(format!("invalid reference {text:?}: {what}; {FORM}"));
        let mut s = Scanner { rest: text };
        s.skip_ws();
        let table = s.ident().map_err(|e| fail(&e))?;
        s.skip_ws();
        if s.rest.starts_with('.') {
            return Err(SpecError::Invalid(format!(
                "invalid reference {text:?}: schema-qualified table names are not supported yet"
            )));
        }
        let column = if s.eat('(') {
            s.skip_ws();
            let column = s.ident().map_err(|e| fail(&e))?;
            s.skip_ws();
            if s.rest.starts_with(',') {
                return Err(SpecError::Invalid(format!(
                    "invalid reference {text:?}: a reference to several columns is not supported"
                )));
            }
            if !s.eat(')') {
                return Err(fail("expected `)` after the column name"));
            }
            s.skip_ws();
            Some(column)
        } else {
            None
        };
        if let Some(c) = s.rest.chars().next() {
            return Err(fail(&format!("unexpected {c:?}")));
        }
        Ok(Reference { table, column })
    }
}

/// Names written bare in the text form; everything else is double-quoted, so the text always parses
/// back to the same `Reference` and a mixed-case name visibly keeps its case.
fn is_plain(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$')
}

fn write_ident(f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
    if is_plain(name) {
        f.write_str(name)
    } else {
        write!(f, "\"{}\"", name.replace('"', "\"\""))
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_ident(f, &self.table)?;
        if let Some(column) = &self.column {
            f.write_str("(")?;
            write_ident(f, column)?;
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl Serialize for Reference {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Reference {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Reference::parse(&text).map_err(serde::de::Error::custom)
    }
}

struct Scanner<'a> {
    rest: &'a str,
}

impl Scanner<'_> {
    fn skip_ws(&mut self) {
        self.rest = self.rest.trim_start();
    }

    fn eat(&mut self, c: char) -> bool {
        match self.rest.strip_prefix(c) {
            Some(r) => {
                self.rest = r;
                true
            }
            None => false,
        }
    }

    /// A bare name (letters, digits, `_`, `$`, not starting with a digit or `$`) or a quoted one,
    /// where the quote character is escaped by doubling it.
    fn ident(&mut self) -> Result<String, String> {
        let Some(first) = self.rest.chars().next() else {
            return Err("expected a name, found the end".into());
        };
        if first == '"' || first == '`' {
            let mut name = String::new();
            let mut chars = self.rest[1..].char_indices();
            while let Some((i, c)) = chars.next() {
                if c != first {
                    name.push(c);
                    continue;
                }
                if self.rest[1 + i + 1..].starts_with(first) {
                    name.push(first);
                    chars.next();
                    continue;
                }
                self.rest = &self.rest[1 + i + 1..];
                if name.is_empty() {
                    return Err("a quoted name is empty".into());
                }
                return Ok(name);
            }
            return Err(format!("a {first}-quoted name is not closed"));
        }
        if !(first.is_alphabetic() || first == '_') {
            return Err(format!("expected a name, found {first:?}"));
        }
        let end = self
            .rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
            .unwrap_or(self.rest.len());
        let name = self.rest[..end].to_string();
        self.rest = &self.rest[end..];
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(table: &str, column: Option<&str>) -> Reference {
        Reference {
            table: table.into(),
            column: column.map(Into::into),
        }
    }

    #[test]
    fn parses_the_two_forms_and_quotes() {
        assert_eq!(
            Reference::parse("plans(id)").unwrap(),
            r("plans", Some("id"))
        );
        assert_eq!(
            Reference::parse(" plans ( id ) ").unwrap(),
            r("plans", Some("id"))
        );
        assert_eq!(Reference::parse("plans").unwrap(), r("plans", None));
        assert_eq!(
            Reference::parse(r#""My ""Plans"""(`Id``x`)"#).unwrap(),
            r(r#"My "Plans""#, Some("Id`x"))
        );
        assert_eq!(Reference::parse("Plans").unwrap(), r("Plans", None));
    }

    #[test]
    fn refuses_anything_else() {
        for (text, needle) in [
            ("", "expected a name"),
            ("plans(", "expected a name"),
            ("plans(id", "expected `)`"),
            ("plans(id) x", "unexpected 'x'"),
            ("plans(a, b)", "several columns"),
            ("public.plans(id)", "schema-qualified"),
            ("[plans]", "expected a name, found '['"),
            ("\"plans", "not closed"),
            ("\"\"(id)", "empty"),
            ("plans()", "expected a name, found ')'"),
            ("1plans", "expected a name"),
        ] {
            let err = Reference::parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
            assert!(
                err.contains("table(column)") || err.contains("not supported"),
                "{err}"
            );
        }
    }

    #[test]
    fn display_round_trips() {
        for reference in [
            r("plans", Some("id")),
            r("plans", None),
            r("Plans", Some("ID")),
            r("my plans", Some(r#"a "b""#)),
            r("t`x", None),
            r("_a$1", Some("x")),
        ] {
            let text = reference.to_string();
            assert_eq!(Reference::parse(&text).unwrap(), reference, "{text}");
        }
        assert_eq!(r("plans", Some("id")).to_string(), "plans(id)");
        assert_eq!(r("Plans", None).to_string(), "\"Plans\"");
    }

    #[test]
    fn serde_uses_the_text_form() {
        let json = serde_json::to_string(&r("plans", Some("id"))).unwrap();
        assert_eq!(json, "\"plans(id)\"");
        let back: Reference = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r("plans", Some("id")));
        let err = serde_json::from_str::<Reference>("\"a.b\"").unwrap_err();
        assert!(err.to_string().contains("schema-qualified"), "{err}");
    }
}
