//! Migration folders as each tool lays them out: which layout a folder has, and its migrations in
//! the order the tool applies them, each with a name `spec::validate_name` accepts.

use serde::Serialize;
use std::path::{Path, PathBuf};

/// A tool's folder layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// `NNNN_name.sql`, or `NNNN_name.up.sql` / `.down.sql`.
    Sqlx,
    /// `TIMESTAMP_name/up.sql` (and `down.sql`).
    Diesel,
    /// `N_name.up.sql` / `N_name.down.sql`.
    GolangMigrate,
    /// `N_name.sql` with `-- +goose Up` and `-- +goose Down` sections.
    Goose,
    /// `V2__name.sql` (repeatable `R__name.sql` files are skipped with a note).
    Flyway,
    /// Any `.sql` and `.toml` files, in name order.
    Plain,
}

impl Layout {
    pub fn label(self) -> &'static str {
        match self {
            Layout::Sqlx => "sqlx",
            Layout::Diesel => "diesel",
            Layout::GolangMigrate => "golang-migrate",
            Layout::Goose => "goose",
            Layout::Flyway => "flyway",
            Layout::Plain => "plain",
        }
    }
}

/// Where a migration's text comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The whole file is the migration (`.sql` or `.toml`).
    File,
    /// Part of the file: goose's Up section, its annotation lines taken out.
    Text(String),
}

/// One migration of a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// zerodown's name for it (and its state row's): the file or folder name without extensions.
    pub name: String,
    /// The tool's version: sqlx, golang-migrate and goose number them; Diesel and Flyway spell them.
    pub version: Option<String>,
    /// The tool's description of it (sqlx records it: the name after the version, `_` as spaces).
    pub description: String,
    pub path: PathBuf,
    pub source: Source,
}

impl Entry {
    /// The version as a number, for the tools whose history tables store one.
    pub fn number(&self) -> Option<i64> {
        self.version.as_deref().and_then(|v| v.parse().ok())
    }
}

/// A folder read: its layout, its migrations in order, and what was left out and why.
#[derive(Debug, Clone)]
pub struct Folder {
    pub layout: Layout,
    pub entries: Vec<Entry>,
    pub notes: Vec<String>,
}

/// The folder's top-level names (files and folders), sorted; hidden ones left out.
fn listing(dir: &Path) -> Result<Vec<(String, bool)>, String> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: cannot read the folder: {e}", dir.display()))?;
    let mut names: Vec<(String, bool)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            (!name.starts_with('.')).then(|| (name, e.path().is_dir()))
        })
        .collect();
    names.sort();
    Ok(names)
}

/// `digits_rest` → (digits, rest).
fn numbered(name: &str) -> Option<(&str, &str)> {
    let (v, rest) = name.split_once('_')?;
    (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())).then_some((v, rest))
}

/// Diesel's folder names start with a timestamp of digits and dashes (`2024-01-31-120000_name`).
fn diesel_version(name: &str) -> Option<(String, &str)> {
    let (v, rest) = name.split_once('_')?;
    let ok = !v.is_empty()
        && v.bytes().all(|b| b.is_ascii_digit() || b == b'-')
        && v.as_bytes()[0].is_ascii_digit();
    ok.then(|| (v.replace('-', ""), rest))
}

/// Flyway's `V<version>__<description>.sql`: the version with `_` as `.`, as Flyway reads it.
fn flyway_version(stem: &str) -> Option<(String, &str)> {
    let rest = stem.strip_prefix(['V', 'v'])?;
    let (v, desc) = rest.split_once("__")?;
    let ok = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'_');
    ok.then(|| (v.replace('_', "."), desc))
}

fn has_goose_annotation(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.lines().any(|l| goose_marker(l) == Some("up")))
}

/// `-- +goose Up` → "up" (lower-cased annotation word), for any goose annotation line.
fn goose_marker(line: &str) -> Option<&'static str> {
    let rest = line
        .trim()
        .strip_prefix("--")?
        .trim_start()
        .strip_prefix("+goose")?;
    let word = rest.split_whitespace().next()?.to_ascii_lowercase();
    Some(match word.as_str() {
        "up" => "up",
        "down" => "down",
        "statementbegin" => "begin",
        "statementend" => "end",
        "no" => "no-transaction",
        "envsub" => "envsub",
        _ => "other",
    })
}

/// Which layout the names show. `hint` is what the database says when the names cannot tell
/// (sqlx's reversible files and golang-migrate's look alike: `N_name.up.sql`).
pub fn detect(dir: &Path, hint: Option<Layout>) -> Result<Layout, String> {
    let names = listing(dir)?;
    if names
        .iter()
        .any(|(n, d)| *d && dir.join(n).join("up.sql").is_file())
    {
        return Ok(Layout::Diesel);
    }
    let sql: Vec<&str> = names
        .iter()
        .filter(|(n, d)| !d && n.ends_with(".sql"))
        .map(|(n, _)| n.as_str())
        .collect();
    if sql.iter().any(|n| has_goose_annotation(&dir.join(n))) {
        return Ok(Layout::Goose);
    }
    let stem = |n: &str| n.trim_end_matches(".sql").to_string();
    if sql
        .iter()
        .any(|n| flyway_version(&stem(n)).is_some() || n.starts_with("R__"))
    {
        return Ok(Layout::Flyway);
    }
    let numbered_up = sql
        .iter()
        .any(|n| n.ends_with(".up.sql") && numbered(n).is_some());
    if numbered_up {
        return Ok(match hint {
            Some(Layout::Sqlx) => Layout::Sqlx,
            _ => Layout::GolangMigrate,
        });
    }
    let has_toml = names.iter().any(|(n, d)| !d && n.ends_with(".toml"));
    if !sql.is_empty() && !has_toml && sql.iter().all(|n| numbered(n).is_some()) {
        return Ok(Layout::Sqlx);
    }
    Ok(Layout::Plain)
}

/// A name `spec::validate_name` accepts: other characters become `_`, at most 100 bytes.
pub fn migration_name(raw: &str) -> String {
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    name.truncate(100);
    name.trim_start_matches(['.', '-']).to_string()
}

/// Reads the folder's migrations in the order the layout's tool applies them.
pub fn read(dir: &Path, layout: Layout) -> Result<Folder, String> {
    let names = listing(dir)?;
    let mut entries = Vec::new();
    let mut notes = Vec::new();
    let mut skip = |n: &str, why: &str| notes.push(format!("{n}: skipped ({why})"));
    for (n, is_dir) in &names {
        let path = dir.join(n);
        let entry =
            |name: &str, version: Option<String>, desc: &str, source: Source, path: PathBuf| {
                Entry {
                    name: migration_name(name),
                    version,
                    description: desc.replace('_', " "),
                    path,
                    source,
                }
            };
        match layout {
            Layout::Diesel => {
                if !is_dir {
                    continue;
                }
                let up = path.join("up.sql");
                match diesel_version(n) {
                    Some((v, desc)) if up.is_file() => {
                        entries.push(entry(n, Some(v), desc, Source::File, up))
                    }
                    _ => skip(n, "not a Diesel migration folder: TIMESTAMP_name/up.sql"),
                }
            }
            _ if *is_dir => skip(n, "a folder"),
            Layout::Sqlx => {
                let Some(stem) = n.strip_suffix(".sql") else {
                    continue;
                };
                if stem.ends_with(".down") {
                    continue;
                }
                let stem = stem.strip_suffix(".up").unwrap_or(stem);
                match numbered(stem) {
                    Some((v, desc)) => {
                        entries.push(entry(stem, Some(v.to_string()), desc, Source::File, path))
                    }
                    None => skip(n, "sqlx reads only VERSION_description.sql"),
                }
            }
            Layout::GolangMigrate => {
                if n.ends_with(".down.sql") {
                    continue;
                }
                match n
                    .strip_suffix(".up.sql")
                    .and_then(|s| numbered(s).map(|(v, d)| (s, v, d)))
                {
                    Some((stem, v, desc)) => {
                        entries.push(entry(stem, Some(v.to_string()), desc, Source::File, path))
                    }
                    None => skip(n, "golang-migrate reads only N_name.up.sql"),
                }
            }
            Layout::Goose => {
                let Some(stem) = n.strip_suffix(".sql") else {
                    continue;
                };
                let Some((v, desc)) = numbered(stem) else {
                    skip(n, "goose reads only N_name.sql");
                    continue;
                };
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("{}: cannot read it: {e}", path.display()))?;
                let up = goose_up(&text)
                    .ok_or_else(|| format!("{}: no `-- +goose Up` section", path.display()))?;
                entries.push(entry(
                    stem,
                    Some(v.to_string()),
                    desc,
                    Source::Text(up),
                    path,
                ));
            }
            Layout::Flyway => {
                let Some(stem) = n.strip_suffix(".sql") else {
                    continue;
                };
                if stem.starts_with("R__") {
                    skip(
                        n,
                        "a Flyway repeatable migration: zerodown runs versioned ones; apply it with Flyway",
                    );
                    continue;
                }
                if stem.starts_with(['U', 'u']) {
                    continue;
                }
                match flyway_version(stem) {
                    Some((v, desc)) => entries.push(entry(stem, Some(v), desc, Source::File, path)),
                    None => skip(n, "Flyway reads only V<version>__<description>.sql"),
                }
            }
            Layout::Plain => {
                let stem = n.strip_suffix(".sql").or_else(|| n.strip_suffix(".toml"));
                match stem {
                    Some(s) if s == "down" || s.ends_with(".down") => {}
                    Some(s) => entries.push(entry(s, None, s, Source::File, path)),
                    None => {}
                }
            }
        }
    }
    sort(layout, &mut entries);
    let mut seen = std::collections::BTreeMap::new();
    for e in &entries {
        if let Some(other) = seen.insert(e.name.clone(), e.path.clone()) {
            return Err(format!(
                "{} and {} have the same migration name `{}`: rename one",
                other.display(),
                e.path.display(),
                e.name
            ));
        }
        if layout != Layout::Plain
            && layout != Layout::Flyway
            && layout != Layout::Diesel
            && e.number().is_none()
        {
            return Err(format!(
                "{}: its version {:?} is not a number {} can store",
                e.path.display(),
                e.version,
                layout.label()
            ));
        }
    }
    Ok(Folder {
        layout,
        entries,
        notes,
    })
}

/// The tool's order: numeric versions by value (`2_x` before `10_x`), Flyway's dotted versions part
/// by part, names otherwise.
fn sort(layout: Layout, entries: &mut [Entry]) {
    let key = |e: &Entry| -> Vec<u128> {
        match (layout, e.version.as_deref()) {
            (Layout::Plain, _) | (_, None) => vec![],
            (_, Some(v)) => v
                .split('.')
                .map(|p| p.parse().unwrap_or(u128::MAX))
                .collect(),
        }
    };
    entries.sort_by(|a, b| key(a).cmp(&key(b)).then_with(|| a.name.cmp(&b.name)));
}

/// goose's Up section: the lines after `-- +goose Up` up to `-- +goose Down`, annotation lines out.
pub fn goose_up(text: &str) -> Option<String> {
    let (mut inside, mut saw_up) = (false, false);
    let mut out = String::new();
    for line in text.lines() {
        match goose_marker(line) {
            Some("up") => (inside, saw_up) = (true, true),
            Some("down") => inside = false,
            Some(_) => {}
            None if inside => {
                out.push_str(line);
                out.push('\n');
            }
            None => {}
        }
    }
    saw_up.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder with these files (a `/` in a name makes the folder first).
    fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    fn names(f: &Folder) -> Vec<(&str, Option<&str>)> {
        f.entries
            .iter()
            .map(|e| (e.name.as_str(), e.version.as_deref()))
            .collect()
    }

    const ADD: &str = "ALTER TABLE t ADD COLUMN c integer;\n";

    #[test]
    fn sqlx_simple_and_reversible() {
        let d = folder(&[("0002_b.sql", ADD), ("0001_add_tier.sql", ADD)]);
        assert_eq!(detect(d.path(), None).unwrap(), Layout::Sqlx);
        let f = read(d.path(), Layout::Sqlx).unwrap();
        assert_eq!(
            names(&f),
            [("0001_add_tier", Some("0001")), ("0002_b", Some("0002"))]
        );
        assert_eq!(f.entries[0].description, "add tier");
        // Reversible files look like golang-migrate's; the database's _sqlx_migrations decides.
        let d = folder(&[("20240101_x.up.sql", ADD), ("20240101_x.down.sql", "")]);
        assert_eq!(detect(d.path(), None).unwrap(), Layout::GolangMigrate);
        assert_eq!(detect(d.path(), Some(Layout::Sqlx)).unwrap(), Layout::Sqlx);
        let f = read(d.path(), Layout::Sqlx).unwrap();
        assert_eq!(names(&f), [("20240101_x", Some("20240101"))]);
        assert_eq!(f.entries[0].description, "x");
    }

    #[test]
    fn golang_migrate_orders_versions_as_numbers() {
        let d = folder(&[
            ("10_later.up.sql", ADD),
            ("10_later.down.sql", ""),
            ("2_first.up.sql", ADD),
            ("2_first.down.sql", ""),
        ]);
        assert_eq!(detect(d.path(), None).unwrap(), Layout::GolangMigrate);
        let f = read(d.path(), Layout::GolangMigrate).unwrap();
        assert_eq!(
            names(&f),
            [("2_first", Some("2")), ("10_later", Some("10"))]
        );
        assert_eq!(f.entries[1].number(), Some(10));
    }

    #[test]
    fn diesel_folders() {
        let d = folder(&[
            ("2024-02-01-000000_b/up.sql", ADD),
            ("2024-02-01-000000_b/down.sql", ""),
            ("2024-01-31-120000_add_tier/up.sql", ADD),
            ("diesel.toml", ""),
        ]);
        assert_eq!(detect(d.path(), None).unwrap(), Layout::Diesel);
        let f = read(d.path(), Layout::Diesel).unwrap();
        assert_eq!(
            names(&f),
            [
                ("2024-01-31-120000_add_tier", Some("20240131120000")),
                ("2024-02-01-000000_b", Some("20240201000000"))
            ]
        );
        assert!(f.entries[0].path.ends_with("up.sql"));
    }

    #[test]
    fn goose_up_section_only() {
        let text = "-- +goose Up\n-- +goose StatementBegin\nALTER TABLE t ADD COLUMN c integer;\n-- +goose StatementEnd\n\n-- +goose Down\nALTER TABLE t DROP COLUMN c;\n";
        let d = folder(&[("00001_add_c.sql", text)]);
        assert_eq!(detect(d.path(), None).unwrap(), Layout::Goose);
        let f = read(d.path(), Layout::Goose).unwrap();
        assert_eq!(names(&f), [("00001_add_c", Some("00001"))]);
        assert_eq!(
            f.entries[0].source,
            Source::Text("ALTER TABLE t ADD COLUMN c integer;\n\n".into())
        );
        // A goose file without an Up section is an error, not an empty migration.
        let d = folder(&[("00001_a.sql", "-- +goose Up\n"), ("00002_b.sql", ADD)]);
        assert!(
            read(d.path(), Layout::Goose)
                .unwrap_err()
                .contains("00002_b.sql")
        );
    }

    #[test]
    fn flyway_versions_and_repeatables() {
        let d = folder(&[
            ("V1_1__second.sql", ADD),
            ("V1__first.sql", ADD),
            ("V10__tenth.sql", ADD),
            ("R__views.sql", "CREATE VIEW v AS SELECT 1;"),
            ("U1__undo.sql", ""),
        ]);
        assert_eq!(detect(d.path(), None).unwrap(), Layout::Flyway);
        let f = read(d.path(), Layout::Flyway).unwrap();
        assert_eq!(
            names(&f),
            [
                ("V1__first", Some("1")),
                ("V1_1__second", Some("1.1")),
                ("V10__tenth", Some("10"))
            ]
        );
        assert!(
            f.notes
                .iter()
                .any(|n| n.contains("R__views.sql") && n.contains("repeatable"))
        );
    }

    #[test]
    fn plain_folder_sorted_by_name_without_down_files() {
        let d = folder(&[
            ("b_second.toml", "[add_column]\n"),
            ("a first.sql", ADD),
            ("a first.down.sql", ""),
            ("README.md", ""),
        ]);
        assert_eq!(detect(d.path(), None).unwrap(), Layout::Plain);
        let f = read(d.path(), Layout::Plain).unwrap();
        // A character a migration name may not hold becomes `_`.
        assert_eq!(names(&f), [("a_first", None), ("b_second", None)]);
        for e in &f.entries {
            crate::spec::validate_name(&e.name).unwrap();
        }
    }

    #[test]
    fn two_files_with_one_name_are_refused() {
        let d = folder(&[("x.sql", ADD), ("x.toml", "")]);
        assert!(
            read(d.path(), Layout::Plain)
                .unwrap_err()
                .contains("same migration name")
        );
    }
}
