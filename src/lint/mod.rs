//! `zerodown lint`: the dangerous statements of a migration file, found before review ends.
//!
//! Files are read by [`crate::analysis`] (the same reader and classification as the ORM input of
//! issue #14); each statement is checked against the rule table ([`rules`], data), with what the
//! file has set so far ([`Ctx`]: timeouts, the open transaction, constraints validated, columns
//! added). A finding carries the engine fact behind it from [`crate::analysis::facts`]. With a
//! database URL, [`online`] reads the live catalog read-only and sharpens the findings.

mod checks;
pub mod cli;
pub mod config;
pub mod online;
pub mod output;
pub mod rules;

use crate::analysis::{
    self, Action, Class, Engine, File, Kind, Scaffold, Statement, Version, facts,
};
pub use config::Config;
pub use rules::{RULES, Rule};
use std::collections::{HashMap, HashSet};

/// How much a finding matters; `error` findings make `zerodown lint` exit 1. `note` is what an
/// online lint makes of a finding the live table makes harmless (empty or small).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Note,
    Warning,
    Error,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One finding: a rule that a statement breaks, where, and what to do.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// The statement as written (its first 200 characters).
    pub statement: String,
    pub message: String,
    /// What the engine does for this statement (lock; who waits; cost; proof), if the table knows.
    pub engine_fact: Option<String>,
    pub fix: &'static str,
    /// `zerodown start` runs this change safely.
    pub zerodown: bool,
}

/// What the file has said before the statement being checked.
#[derive(Default)]
pub struct Ctx {
    pub engine: Option<Engine>,
    pub version: Option<Version>,
    pub lock_timeout: bool,
    pub statement_timeout: bool,
    /// Statements run in a transaction although the file has no BEGIN (config
    /// `assume_in_transaction`, as tools like Rails and Ecto wrap each migration).
    pub assume_in_transaction: bool,
    pub in_transaction: bool,
    /// Inside the open transaction, a statement has taken a lock that blocks reads and writes.
    pub holds_blocking_lock: bool,
    /// MySQL/MariaDB `SET foreign_key_checks = 0` is in effect.
    pub fk_checks_off: bool,
    /// Tables created by this file (no running code uses them yet), by unqualified name.
    pub created: HashSet<String>,
    /// (table, column) added by this file, and of those the ones added with a default.
    pub added: HashSet<(String, String)>,
    pub added_with_default: HashSet<(String, String)>,
    /// (table, column) with a validated `CHECK (col IS NOT NULL)` in this file.
    pub not_null_checked: HashSet<(String, String)>,
    /// Constraints added NOT VALID in the open transaction.
    pub not_valid_in_transaction: HashSet<String>,
    /// `CHECK (col IS NOT NULL) NOT VALID` by constraint name → (table, column), until validated.
    pending_not_null: HashMap<String, (String, String)>,
    /// A timeout finding was already reported for this file (squawk reports them once per file).
    pub(crate) timeouts_reported: (bool, bool),
}

impl Ctx {
    pub fn engine(&self) -> Engine {
        self.engine.unwrap_or(Engine::Postgres)
    }

    pub fn version(&self) -> Version {
        self.version
            .unwrap_or_else(|| self.engine().default_version())
    }

    /// The statement runs inside a transaction (explicit, or assumed by configuration).
    pub fn transactional(&self, s: &Statement) -> bool {
        s.in_transaction || self.assume_in_transaction
    }

    /// The action's table was created by this file, so no running code waits on it.
    pub fn is_new(&self, a: &Action) -> bool {
        a.table
            .as_ref()
            .is_some_and(|t| self.created.contains(&t.name))
    }

    pub fn fact(&self, a: &Action) -> Option<&'static facts::Fact> {
        facts::lookup(a, self.engine(), self.version())
    }
}

/// Lints one file that [`analysis::read`] has read.
pub fn lint_file(file: &File, config: &Config) -> Vec<Finding> {
    lint_file_online(file, config, None)
}

/// Lints one file; with a live database, its catalog sharpens the findings ([`online`]).
pub fn lint_file_online(
    file: &File,
    config: &Config,
    mut live: Option<&mut online::Live>,
) -> Vec<Finding> {
    let mut ctx = Ctx {
        engine: Some(file.engine),
        version: live.as_ref().map(|l| l.version).or(config.version),
        assume_in_transaction: config.assume_in_transaction,
        ..Ctx::default()
    };
    let unknown = rules::by_id("unknown-object").expect("rule exists");
    let mut out = Vec::new();
    for s in &file.statements {
        if let Some(live) = live.as_deref_mut()
            && let Some(sev) = config.severity(unknown)
            && !ignored(file, s, unknown.id)
        {
            for msg in online::unknown_objects(&ctx, s, live) {
                out.push(finding(file, s, unknown, sev, msg, None, &ctx));
            }
        }
        for rule in RULES.iter() {
            let Some(severity) = config.severity(rule) else {
                continue;
            };
            if !rule.engines.contains(&file.engine) || ignored(file, s, rule.id) {
                continue;
            }
            let hits: Vec<(String, Option<&Action>)> = match rule.check {
                rules::Check::Action(f) => s
                    .actions()
                    .iter()
                    .filter_map(|a| f(&ctx, s, a).map(|m| (m, Some(a))))
                    .collect(),
                rules::Check::Statement(f) => f(&ctx, s).map(|m| (m, None)).into_iter().collect(),
            };
            for (message, action) in hits {
                let mut f = finding(file, s, rule, severity, message, action, &ctx);
                if let Some(live) = live.as_deref_mut() {
                    online::sharpen(&mut f, &ctx, action, live);
                }
                out.push(f);
            }
        }
        checks::note_timeouts_reported(&mut ctx, &out, file);
        if let Some(live) = live.as_deref_mut() {
            live.introduced.advance(s);
        }
        advance(&mut ctx, s);
    }
    if ctx.in_transaction
        && let Some(begin) = file
            .statements
            .iter()
            .rev()
            .find(|s| matches!(s.class, Class::Scaffolding(Scaffold::Begin)))
    {
        let rule = rules::by_id("uncommitted-transaction").expect("rule exists");
        if let Some(sev) = config.severity(rule)
            && !ignored(file, begin, rule.id)
        {
            let msg = "the file opens a transaction it never commits".to_string();
            out.push(finding(file, begin, rule, sev, msg, None, &ctx));
        }
    }
    out
}

fn ignored(file: &File, s: &Statement, id: &str) -> bool {
    let hit = |list: &[String]| list.iter().any(|r| r == id || r == "all");
    hit(&file.ignores) || hit(&s.ignores)
}

fn finding(
    file: &File,
    s: &Statement,
    rule: &'static Rule,
    severity: Severity,
    message: String,
    action: Option<&Action>,
    ctx: &Ctx,
) -> Finding {
    let engine_fact = action.and_then(|a| ctx.fact(a)).map(|f| {
        format!(
            "{} {}: {} ({})",
            file.engine,
            ctx.version(),
            f.summary(),
            f.proof.describe()
        )
    });
    Finding {
        rule: rule.id,
        severity,
        file: file.path.clone(),
        line: s.line,
        column: s.column,
        statement: s.text.chars().take(200).collect(),
        message,
        engine_fact,
        fix: rule.fix,
        zerodown: rule.zerodown,
    }
}

/// Updates the context with what a statement does, after its own checks.
fn advance(ctx: &mut Ctx, s: &Statement) {
    let after = match &s.class {
        Class::Scaffolding(Scaffold::Begin) => true,
        Class::Scaffolding(Scaffold::Commit | Scaffold::Rollback) => false,
        _ => s.in_transaction,
    };
    if !after || matches!(s.class, Class::Scaffolding(Scaffold::Begin)) {
        ctx.holds_blocking_lock = false;
        ctx.not_valid_in_transaction.clear();
    }
    ctx.in_transaction = after;
    if let Class::Scaffolding(Scaffold::Set { name, value }) = &s.class {
        let v = value.trim_matches(['\'', '"']).to_ascii_lowercase();
        let off = v == "0" || v == "off" || v == "false";
        match name.as_str() {
            "lock_timeout" | "lock_wait_timeout" | "innodb_lock_wait_timeout" => {
                ctx.lock_timeout = !off;
            }
            "statement_timeout" | "max_statement_time" | "max_execution_time" => {
                ctx.statement_timeout = !off;
            }
            "foreign_key_checks" => ctx.fk_checks_off = off,
            _ => {}
        }
    }
    for a in s.actions() {
        let table = a.table.as_ref().map(|t| t.name.clone()).unwrap_or_default();
        if ctx.in_transaction
            && !ctx.is_new(a)
            && ctx
                .fact(a)
                .is_some_and(|f| f.blocks_reads && f.blocks_writes)
        {
            ctx.holds_blocking_lock = true;
        }
        match &a.kind {
            Kind::CreateTable { .. } => {
                ctx.created.insert(table);
            }
            Kind::AddColumn {
                column, default, ..
            } => {
                ctx.added.insert((table.clone(), column.clone()));
                if default.is_some() {
                    ctx.added_with_default.insert((table, column.clone()));
                }
            }
            Kind::AddCheck {
                name,
                expr,
                not_valid,
                ..
            } => {
                if *not_valid && let Some(n) = name {
                    ctx.not_valid_in_transaction.insert(n.clone());
                }
                if let Some(col) = checks::is_not_null_check(expr) {
                    match (not_valid, name) {
                        (true, Some(n)) => {
                            ctx.pending_not_null.insert(n.clone(), (table, col));
                        }
                        (true, None) => {}
                        (false, _) => {
                            ctx.not_null_checked.insert((table, col));
                        }
                    }
                }
            }
            Kind::AddForeignKey {
                name: Some(n),
                not_valid: true,
                ..
            } => {
                ctx.not_valid_in_transaction.insert(n.clone());
            }
            Kind::ValidateConstraint { name } => {
                if let Some(done) = ctx.pending_not_null.remove(name) {
                    ctx.not_null_checked.insert(done);
                }
            }
            _ => {}
        }
    }
}

/// One statement as the target engine runs it, for `--explain`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Explained {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub statement: String,
    /// `scaffolding`, `bookkeeping`, `change` or `unreadable`.
    pub class: &'static str,
    pub actions: Vec<ExplainedAction>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct ExplainedAction {
    pub kind: &'static str,
    pub shape: &'static str,
    pub table: Option<String>,
    /// Lock; who waits; cost; proof — None where the facts table has no row (e.g. a new table's
    /// statements, or statements without locking danger).
    pub engine_fact: Option<String>,
}

/// Every statement of a file with what it locks, who waits and what it costs on the target.
pub fn explain(file: &File, config: &Config) -> Vec<Explained> {
    let ctx = Ctx {
        engine: Some(file.engine),
        version: config.version,
        ..Ctx::default()
    };
    file.statements
        .iter()
        .map(|s| Explained {
            file: file.path.clone(),
            line: s.line,
            column: s.column,
            statement: s.text.chars().take(200).collect(),
            class: match (&s.class, &s.bookkeeping) {
                (Class::Scaffolding(_), _) => "scaffolding",
                (Class::Unreadable { .. }, _) => "unreadable",
                (_, Some(_)) => "bookkeeping",
                _ => "change",
            },
            actions: s
                .actions()
                .iter()
                .map(|a| ExplainedAction {
                    kind: a.kind.tag(),
                    shape: facts::shape(&a.kind),
                    table: a.table.as_ref().map(|t| t.to_string()),
                    engine_fact: ctx
                        .fact(a)
                        .map(|f| format!("{}; {}", f.summary(), f.proof.describe())),
                })
                .collect(),
        })
        .collect()
}

/// What linting a set of files found.
#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
    /// Unreadable statements (`path:line:column: message`) and files.
    pub input_errors: Vec<String>,
    /// Every statement, when asked for (`--explain`).
    pub statements: Vec<Explained>,
}

/// Reads and lints files; returns the findings and the input errors (unreadable statements), so one
/// bad file or statement hides nothing else.
pub fn lint_texts<'a>(
    inputs: impl IntoIterator<Item = (&'a str, &'a str)>,
    config: &Config,
    with_statements: bool,
) -> Report {
    lint_texts_online(inputs, config, with_statements, None)
}

/// [`lint_texts`] against a live database: its engine and version replace the configured ones.
pub fn lint_texts_online<'a>(
    inputs: impl IntoIterator<Item = (&'a str, &'a str)>,
    config: &Config,
    with_statements: bool,
    mut live: Option<&mut online::Live>,
) -> Report {
    let engine = live
        .as_ref()
        .map(|l| l.engine)
        .or(config.engine)
        .unwrap_or(Engine::Postgres);
    let mut report = Report::default();
    for (path, text) in inputs {
        if config.ignores_file(path) {
            continue;
        }
        let file = analysis::read(path, text, engine);
        report.input_errors.extend(file.errors());
        report
            .findings
            .extend(lint_file_online(&file, config, live.as_deref_mut()));
        if with_statements {
            report.statements.extend(explain(&file, config));
        }
    }
    if let Some(live) = live {
        report.input_errors.append(&mut live.errors);
    }
    report
}
