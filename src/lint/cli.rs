//! `zerodown lint FILE|DIR …` behind the command line: finds the files, reads the configuration,
//! lints, prints, and says the exit status (0 clean or warnings only, 1 error findings, 2 input
//! errors: an unreadable file or statement, or a bad configuration).

use super::{Config, Finding, RULES, lint_texts_online, online, output};
use crate::analysis::{Engine, Version};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The command line's choices.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub paths: Vec<PathBuf>,
    pub engine: Option<String>,
    pub version: Option<String>,
    /// zerodown-lint.toml; without it, `./zerodown-lint.toml` when there is one.
    pub config: Option<PathBuf>,
    /// text | json | github | sarif
    pub format: String,
    pub assume_in_transaction: bool,
    pub list_rules: bool,
    /// Also list every statement with what it locks, who waits and its cost.
    pub explain: bool,
    /// A database to read (read-only) for table sizes, columns, indexes and the server version.
    pub url: Option<String>,
}

pub const EXIT_CLEAN: i32 = 0;
pub const EXIT_FINDINGS: i32 = 1;
pub const EXIT_INPUT: i32 = 2;

/// Runs the lint and writes its report to `out`; returns the exit status.
pub fn run(o: &Options, out: &mut dyn Write) -> i32 {
    match run_inner(o, out) {
        Ok(code) => code,
        Err(message) => {
            let _ = writeln!(out, "error: {message}");
            EXIT_INPUT
        }
    }
}

fn run_inner(o: &Options, out: &mut dyn Write) -> Result<i32, String> {
    if o.list_rules && o.format == "json" {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(RULES).expect("rules serialize")
        );
        return Ok(EXIT_CLEAN);
    }
    if o.list_rules {
        for r in RULES {
            let engines: Vec<&str> = r.engines.iter().map(|e| e.name()).collect();
            let squawk = if r.squawk.is_empty() {
                "-".to_string()
            } else {
                r.squawk.join(", ")
            };
            let _ = writeln!(
                out,
                "{:30} {:8} {:28} squawk: {squawk}",
                r.id,
                r.severity.name(),
                engines.join(",")
            );
        }
        return Ok(EXIT_CLEAN);
    }
    let mut config = load_config(o.config.as_deref())?;
    if let Some(e) = &o.engine {
        config.engine = Some(Engine::parse(e).ok_or(format!(
            "--engine {e}: use postgres, mysql, mariadb or sqlite"
        ))?);
    }
    if let Some(v) = &o.version {
        config.version = Some(
            Version::parse(v).ok_or(format!("--version {v}: write it as 15, 10.11 or 8.0.35"))?,
        );
    }
    config.assume_in_transaction |= o.assume_in_transaction;
    if o.paths.is_empty() {
        return Err("name at least one migration file or folder".into());
    }
    let mut files = Vec::new();
    let mut input_errors = Vec::new();
    for p in &o.paths {
        if p.is_dir() {
            walk(p, &mut files);
        } else if p.exists() {
            files.push(p.clone());
        } else {
            input_errors.push(format!("{}: no such file or folder", p.display()));
        }
    }
    let mut texts = Vec::new();
    for f in &files {
        match std::fs::read(f).map(String::from_utf8) {
            Ok(Ok(t)) => texts.push((f.display().to_string(), t)),
            Ok(Err(e)) => {
                // Located at the first byte that is not UTF-8.
                let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                let line = good.iter().filter(|b| **b == b'\n').count() + 1;
                let start = good.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
                let column = String::from_utf8_lossy(&good[start..]).chars().count() + 1;
                input_errors.push(format!(
                    "{}:{line}:{column}: not UTF-8 text; save the file as UTF-8",
                    f.display()
                ));
            }
            Err(e) => input_errors.push(format!("{}: cannot read it: {e}", f.display())),
        }
    }
    let mut live = match &o.url {
        Some(url) => {
            let live = online::Live::connect(url)
                .map_err(|e| format!("cannot read the database for an online lint: {e}"))?;
            config.engine = Some(live.engine);
            config.version = Some(live.version);
            Some(live)
        }
        None => None,
    };
    let server = live.as_ref().map(|l| l.server.clone());
    let report = lint_texts_online(
        texts.iter().map(|(p, t)| (p.as_str(), t.as_str())),
        &config,
        o.explain,
        live.as_mut(),
    );
    let findings = report.findings;
    input_errors.extend(report.input_errors);
    let statements = &report.statements;
    let report = match o.format.as_str() {
        "" | "text" => {
            let head = server
                .as_ref()
                .map(|s| format!("online: {s}, read-only\n"))
                .unwrap_or_default();
            head + &output::explained(statements)
                + &output::text(&findings, &input_errors, texts.len())
        }
        "json" => output::json(
            &findings,
            &input_errors,
            statements,
            texts.len(),
            server.as_deref(),
        ),
        "github" => output::github(&findings, &input_errors),
        "sarif" => output::sarif(&findings),
        other => return Err(format!("--format {other}: use text, json, github or sarif")),
    };
    let _ = out.write_all(report.as_bytes());
    Ok(exit_status(&findings, &input_errors))
}

pub fn exit_status(findings: &[Finding], input_errors: &[String]) -> i32 {
    if !input_errors.is_empty() {
        EXIT_INPUT
    } else if output::counts(findings).0 > 0 {
        EXIT_FINDINGS
    } else {
        EXIT_CLEAN
    }
}

fn load_config(path: Option<&Path>) -> Result<Config, String> {
    let default = Path::new("zerodown-lint.toml");
    let path = match path {
        Some(p) => p,
        None if default.exists() => default,
        None => return Ok(Config::default()),
    };
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Config::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The `.sql` files under a folder, in path order. Revert files (`down.sql`, `*.down.sql`) are not
/// part of an upgrade and are skipped; name them explicitly to lint them.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        if p.is_dir() {
            walk(&p, out);
        } else if name.ends_with(".sql") && name != "down.sql" && !name.ends_with(".down.sql") {
            out.push(p);
        }
    }
}
