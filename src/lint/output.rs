//! Findings as text (file:line:column, the statement quoted, the engine fact, the fix), JSON, GitHub
//! workflow annotations and SARIF 2.1.0.

use super::{Explained, Finding, RULES, Severity};
use std::fmt::Write;

/// Counts for the summary line and the exit status: (errors, warnings).
pub fn counts(findings: &[Finding]) -> (usize, usize) {
    let n = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    (n(Severity::Error), n(Severity::Warning))
}

/// Notes: findings an online lint found harmless on the live tables.
pub fn notes(findings: &[Finding]) -> usize {
    findings
        .iter()
        .filter(|f| f.severity == Severity::Note)
        .count()
}

pub fn text(findings: &[Finding], input_errors: &[String], files: usize) -> String {
    let mut out = String::new();
    for e in input_errors {
        let _ = writeln!(out, "{e}");
    }
    for f in findings {
        let _ = writeln!(
            out,
            "{}:{}:{}: {}[{}] {}",
            f.file,
            f.line,
            f.column,
            f.severity.name(),
            f.rule,
            f.message
        );
        let first = f.statement.lines().next().unwrap_or_default();
        let more = if f.statement.lines().nth(1).is_some() || first.chars().count() > 100 {
            " …"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  | {}{more}",
            first.chars().take(100).collect::<String>()
        );
        if let Some(fact) = &f.engine_fact {
            let _ = writeln!(out, "  = engine: {fact}");
        }
        let _ = writeln!(out, "  = fix: {}", f.fix);
        if f.zerodown {
            // Until zerodown reads ORM migration files whole, the change goes through `start` as
            // a TOML operation (or a lone `ALTER TABLE … ADD COLUMN` file).
            let _ = writeln!(
                out,
                "  = or let zerodown run it: write it as an operation of a TOML migration (README, \"Several operations\") and `zerodown start` it"
            );
        }
    }
    let (errors, warnings) = counts(findings);
    let notes = match notes(findings) {
        0 => String::new(),
        n => format!(", {n} note(s)"),
    };
    let _ = writeln!(
        out,
        "{errors} error(s), {warnings} warning(s){notes}, {} unreadable statement(s) in {files} file(s)",
        input_errors.len()
    );
    out
}

/// `--explain`: every statement, one line per action, with the engine fact.
pub fn explained(statements: &[Explained]) -> String {
    let mut out = String::new();
    for s in statements {
        if s.actions.is_empty() {
            let _ = writeln!(out, "{}:{}: {}", s.file, s.line, s.class);
        }
        for a in &s.actions {
            let table = a.table.as_deref().unwrap_or("-");
            let fact = a
                .engine_fact
                .as_deref()
                .unwrap_or("no engine fact (a new table, or no lock danger known)");
            let tag = if s.class == "bookkeeping" {
                " (bookkeeping)"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "{}:{}: {} {table} [{}]{tag}: {fact}",
                s.file, s.line, a.kind, a.shape
            );
        }
    }
    if !statements.is_empty() {
        out.push('\n');
    }
    out
}

/// `server`: the database an online lint read ("PostgreSQL 15.8"), reported as `online`.
pub fn json(
    findings: &[Finding],
    input_errors: &[String],
    statements: &[Explained],
    files: usize,
    server: Option<&str>,
) -> String {
    let (errors, warnings) = counts(findings);
    let mut v = serde_json::json!({
        "findings": findings,
        "input_errors": input_errors,
        "summary": {"files": files, "errors": errors, "warnings": warnings,
                    "notes": notes(findings), "input_errors": input_errors.len()},
    });
    if !statements.is_empty() {
        v["statements"] = serde_json::json!(statements);
    }
    if let Some(server) = server {
        v["online"] = serde_json::json!({"server": server, "read_only": true});
    }
    serde_json::to_string_pretty(&v).expect("findings serialize")
}

/// `::error file=…,line=…,col=…,title=…::message` lines for GitHub Actions.
pub fn github(findings: &[Finding], input_errors: &[String]) -> String {
    fn esc(s: &str) -> String {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    }
    fn prop(s: &str) -> String {
        esc(s).replace(':', "%3A").replace(',', "%2C")
    }
    let mut out = String::new();
    for e in input_errors {
        let _ = writeln!(out, "::error title=zerodown lint::{}", esc(e));
    }
    for f in findings {
        let level = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "notice",
        };
        let _ = writeln!(
            out,
            "::{level} file={},line={},col={},title={}::{}",
            prop(&f.file),
            f.line,
            f.column,
            prop(&format!("zerodown lint {}", f.rule)),
            esc(&format!("{} Fix: {}", f.message, f.fix))
        );
    }
    out
}

pub fn sarif(findings: &[Finding]) -> String {
    let rules: Vec<_> = RULES
        .iter()
        .map(|r| {
            serde_json::json!({
                "id": r.id,
                "shortDescription": {"text": r.id},
                "fullDescription": {"text": r.explanation},
                "help": {"text": r.fix},
                "defaultConfiguration": {"level": r.severity.name()},
            })
        })
        .collect();
    let results: Vec<_> = findings
        .iter()
        .map(|f| {
            serde_json::json!({
                "ruleId": f.rule,
                "level": f.severity.name(),
                "message": {"text": f.message},
                "locations": [{"physicalLocation": {
                    "artifactLocation": {"uri": f.file},
                    "region": {"startLine": f.line, "startColumn": f.column},
                }}],
            })
        })
        .collect();
    let v = serde_json::json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "zerodown lint", "rules": rules}},
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&v).expect("sarif serializes")
}
