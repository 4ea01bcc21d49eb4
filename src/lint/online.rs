//! Online lint: with a database URL, the live catalog sharpens the verdicts. The connection is made
//! read-only before anything is read ([`crate::engine::lint_catalog`]); lint only reads the catalog
//! (and on SQLite counts rows).
//!
//! - The server's engine and version replace `--engine`/`--version`.
//! - A finding whose cost grows with the table (a scan, a rewrite, or a statement that fails on a
//!   table with rows) becomes a note on an empty or small table, and on a large one says how many
//!   rows and bytes the lock is held over, with a rough duration.
//! - `SET NOT NULL` on a column already NOT NULL, or one a validated `CHECK (c IS NOT NULL)` already
//!   proves, is a note.
//! - A table or column the file names that is not on the server (nor created by the file earlier)
//!   is an `unknown-object` finding at the statement.

use super::{Ctx, Finding, Severity, checks};
use crate::analysis::{Action, Engine, Kind, Name, Statement, Version, facts};
use crate::engine::lint_catalog::{self, LintCatalog, LintTable};
use std::collections::{HashMap, HashSet};

/// Up to this many rows and bytes, a scan or rewrite holds its lock for moments.
pub const SMALL_ROWS: f64 = 10_000.0;
pub const SMALL_BYTES: i64 = 16 << 20;
/// The rate the duration estimate assumes for reading or writing a table: a rough figure for a
/// server with its data in memory or on SSD; a busy server is slower.
pub const BYTES_PER_SECOND: f64 = 100.0 * 1024.0 * 1024.0;

/// A live database, read-only, with what has been read of it.
pub struct Live {
    catalog: Box<dyn LintCatalog>,
    pub engine: Engine,
    pub version: Version,
    /// "PostgreSQL 15.8", as the server reports it.
    pub server: String,
    tables: HashMap<(Option<String>, String), Option<LintTable>>,
    /// What the files linted so far (in path order, as migration tools run them) created.
    pub introduced: Introduced,
    /// Catalog reads that failed (reported as input errors).
    pub errors: Vec<String>,
}

impl Live {
    /// Connects read-only to the database `url` names.
    pub fn connect(url: &str) -> Result<Live, String> {
        let parsed = crate::url::DatabaseUrl::parse(url).map_err(|e| e.to_string())?;
        let catalog = lint_catalog::open(&parsed).map_err(|e| e.to_string())?;
        let server = catalog.server();
        let mut words = server.split_whitespace();
        let engine = match words.next() {
            Some("PostgreSQL") => Engine::Postgres,
            Some("MariaDB") => Engine::Mariadb,
            Some("MySQL") => Engine::Mysql,
            _ => Engine::Sqlite,
        };
        let version = words
            .next()
            .and_then(|v| Version::parse(v.split(['-', '+']).next().unwrap_or(v)))
            .ok_or_else(|| format!("{server}: cannot read the version"))?;
        Ok(Live {
            catalog,
            engine,
            version,
            server,
            tables: HashMap::new(),
            introduced: Introduced::default(),
            errors: Vec::new(),
        })
    }

    /// The table on the server, None when it is not there (or could not be read).
    pub fn table(&mut self, name: &Name) -> Option<&LintTable> {
        let key = (name.schema.clone(), name.name.clone());
        if !self.tables.contains_key(&key) {
            let got = match self.catalog.table(name.schema.as_deref(), &name.name) {
                Ok(t) => t,
                Err(e) => {
                    self.errors.push(format!("reading `{name}`: {e}"));
                    None
                }
            };
            self.tables.insert(key.clone(), got);
        }
        self.tables[&key].as_ref()
    }

    /// Whether the catalog read of the table failed (then nothing is claimed about it).
    fn unreadable(&self, name: &Name) -> bool {
        let n = name.to_string();
        self.errors
            .iter()
            .any(|e| e.starts_with(&format!("reading `{n}`")))
    }
}

/// What the files of this run have brought into being before the statement: tables created or
/// renamed to, columns added or renamed to — not yet on the server when the files are the pending
/// migrations. Kept beside [`Ctx`] (which is per file) for the online checks only.
#[derive(Default)]
pub struct Introduced {
    tables: HashSet<String>,
    columns: HashSet<(String, String)>,
}

impl Introduced {
    fn has_table(&self, ctx: &Ctx, t: &Name) -> bool {
        ctx.created.contains(&t.name) || self.tables.contains(&t.name.to_lowercase())
    }

    fn has_column(&self, ctx: &Ctx, t: &Name, c: &str) -> bool {
        ctx.added.contains(&(t.name.clone(), c.to_string()))
            || self
                .columns
                .contains(&(t.name.to_lowercase(), c.to_lowercase()))
    }

    /// Records what the statement introduces, after its checks.
    pub fn advance(&mut self, s: &Statement) {
        for a in s.actions() {
            let Some(t) = &a.table else { continue };
            let table = t.name.to_lowercase();
            match &a.kind {
                Kind::CreateTable { .. } => {
                    self.tables.insert(table);
                }
                Kind::RenameTable { to } => {
                    self.tables.insert(to.to_lowercase());
                }
                Kind::AddColumn { column, .. } => {
                    self.columns.insert((table, column.to_lowercase()));
                }
                Kind::RenameColumn { to, .. } => {
                    self.columns.insert((table, to.to_lowercase()));
                }
                Kind::ChangeColumnType {
                    renamed_to: Some(to),
                    ..
                } => {
                    self.columns.insert((table, to.to_lowercase()));
                }
                _ => {}
            }
        }
    }
}

/// A finding made sharper by the table's size and constraints on the server.
pub fn sharpen(f: &mut Finding, ctx: &Ctx, action: Option<&Action>, live: &mut Live) {
    let Some(a) = action else { return };
    let Some(name) = &a.table else { return };
    if ctx.is_new(a) {
        return;
    }
    let server = live.server.clone();
    let Some(t) = live.table(name) else { return };
    if let Kind::SetNotNull { column } = &a.kind {
        if t.column(column).is_some_and(|(_, nn)| *nn) {
            note(
                f,
                format!("{server}: `{name}.{column}` is already NOT NULL (a no-op)"),
            );
            return;
        }
        if ctx.engine() == Engine::Postgres
            && t.validated_checks.iter().any(|c| {
                checks::is_not_null_check(c).is_some_and(|c2| c2.eq_ignore_ascii_case(column))
            })
        {
            note(
                f,
                format!(
                    "{server}: a validated CHECK ({column} IS NOT NULL) is already there, so the \
                     server skips the scan"
                ),
            );
            return;
        }
    }
    if let Kind::CreateIndex { name: Some(ix), .. } = &a.kind
        && t.indexes.iter().any(|i| i.eq_ignore_ascii_case(ix))
    {
        note(
            f,
            format!("{server}: index `{ix}` is already there (a no-op with IF NOT EXISTS)"),
        );
        return;
    }
    let Some(fact) = ctx.fact(a) else { return };
    if !matches!(
        fact.cost,
        facts::Cost::Scan | facts::Cost::Rewrite | facts::Cost::Fails
    ) {
        return;
    }
    let size = describe_size(t);
    match (t.rows, t.bytes) {
        (Some(r), b) if r < 0.5 && b.unwrap_or(0) <= 64 * 1024 => {
            note(
                f,
                format!("{server}: `{name}` is empty, so this is harmless there"),
            );
        }
        (r, b)
            if r.is_none_or(|r| r < SMALL_ROWS)
                && b.is_none_or(|b| b < SMALL_BYTES)
                && (r.is_some() || b.is_some()) =>
        {
            note(
                f,
                format!("{server}: `{name}` is small ({size}): the lock is held for moments"),
            );
        }
        (_, b) => {
            let how = match fact.cost {
                facts::Cost::Fails => "the statement fails on it".to_string(),
                _ => match b {
                    Some(b) => format!(
                        "{} for {} ({} at a rough {} MB/s)",
                        fact.lock,
                        duration(b as f64 / BYTES_PER_SECOND),
                        fact.cost.describe(),
                        (BYTES_PER_SECOND / 1048576.0) as i64
                    ),
                    None => format!("{} while it {}", fact.lock, fact.cost.describe()),
                },
            };
            f.message = format!("{} — {server}: `{name}` holds {size}: {how}", f.message);
        }
    }
}

fn note(f: &mut Finding, why: String) {
    f.severity = Severity::Note;
    f.message = format!("{} — {why}", f.message);
}

/// "~1.2M rows, 180 MB".
fn describe_size(t: &LintTable) -> String {
    let rows = match t.rows {
        Some(r) if r >= 1e6 => format!("~{:.1}M rows", r / 1e6),
        Some(r) if r >= 1e4 => format!("~{:.0}k rows", r / 1e3),
        Some(r) => format!("~{r:.0} rows"),
        None => "rows not estimated yet".to_string(),
    };
    match t.bytes {
        Some(b) if b >= 1 << 30 => format!("{rows}, {:.1} GB", b as f64 / (1u64 << 30) as f64),
        Some(b) if b >= 1 << 20 => format!("{rows}, {} MB", b >> 20),
        Some(b) => format!("{rows}, {} kB", b >> 10),
        None => rows,
    }
}

fn duration(secs: f64) -> String {
    if secs < 1.0 {
        "under a second".to_string()
    } else if secs < 120.0 {
        format!("about {secs:.0} s")
    } else if secs < 7200.0 {
        format!("about {:.0} min", secs / 60.0)
    } else {
        format!("about {:.1} h", secs / 3600.0)
    }
}

/// The tables and columns a statement names that the server does not have (nor the file made):
/// each as a message of the `unknown-object` rule.
pub fn unknown_objects(ctx: &Ctx, s: &Statement, live: &mut Live) -> Vec<String> {
    if s.bookkeeping.is_some() {
        return Vec::new();
    }
    let intro = std::mem::take(&mut live.introduced);
    let out = unknown_in(ctx, s, &intro, live);
    live.introduced = intro;
    out
}

fn unknown_in(ctx: &Ctx, s: &Statement, intro: &Introduced, live: &mut Live) -> Vec<String> {
    let lower = s.text.to_ascii_lowercase();
    let if_exists = lower.contains("if exists");
    let if_not_exists = lower.contains("if not exists");
    let server = live.server.clone();
    let mut out = Vec::new();
    for a in s.actions() {
        let Some(t) = &a.table else { continue };
        if matches!(
            a.kind,
            Kind::CreateTable { .. }
                | Kind::DropTable { .. }
                | Kind::DropIndex { .. }
                | Kind::Other { .. }
        ) || intro.has_table(ctx, t)
            || live.unreadable(t)
        {
            continue;
        }
        let Some(table) = live.table(t).cloned() else {
            if !live.unreadable(t) && !if_exists {
                out.push(format!("table `{t}` is not on {server}"));
            }
            continue;
        };
        let mut need = |c: &str| {
            if table.column(c).is_none() && !intro.has_column(ctx, t, c) && !if_exists {
                out.push(format!("column `{t}.{c}` is not on {server}"));
            }
        };
        match &a.kind {
            Kind::SetNotNull { column }
            | Kind::DropNotNull { column }
            | Kind::SetDefault { column, .. }
            | Kind::DropDefault { column }
            | Kind::ChangeColumnType { column, .. }
            | Kind::RenameColumn { from: column, .. }
            | Kind::DropColumn { column, .. } => need(column),
            Kind::AddForeignKey { columns, .. } | Kind::AddUnique { columns, .. } => {
                columns.iter().for_each(|c| need(c))
            }
            Kind::CreateIndex { name, columns, .. } => {
                // Plain column names only: an expression's columns are not read out of it.
                columns
                    .iter()
                    .filter(|c| c.chars().all(|ch| ch.is_alphanumeric() || ch == '_'))
                    .for_each(|c| need(c));
                if let Some(ix) = name
                    && !if_not_exists
                    && table.indexes.iter().any(|i| i.eq_ignore_ascii_case(ix))
                {
                    out.push(format!(
                        "index `{ix}` is already on `{t}` on {server}: the statement fails"
                    ));
                }
            }
            Kind::AddColumn {
                column,
                if_not_exists: false,
                ..
            } if table.column(column).is_some() && !intro.has_column(ctx, t, column) => {
                out.push(format!(
                    "column `{t}.{column}` is already on {server}: the statement fails"
                ));
            }
            _ => {}
        }
        if let Kind::AddForeignKey { references, .. } = &a.kind
            && !intro.has_table(ctx, references)
            && !live.unreadable(references)
            && live.table(references).is_none()
        {
            out.push(format!(
                "referenced table `{references}` is not on {server}"
            ));
        }
    }
    out
}
