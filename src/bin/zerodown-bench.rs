//! zerodown-bench: the load-under-migration benchmark (issue 5). See BENCHMARKS.md.
//!
//! `zerodown-bench [options]` runs the scenarios and prints a table per scenario, a summary, and one
//! JSON line per scenario. `zerodown-bench drive …` (hidden) is zerodown's part, run as a child process.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;
use zerodown::bench::{
    self, Options, Scenario, drive::DriveRequest, mariadb::MariaDbTarget, postgres::PgTarget,
    sqlite::SqliteTarget, target::BenchTarget,
};
use zerodown::engine::{MaxLoad, Nice};

#[derive(Parser)]
#[command(
    name = "zerodown-bench",
    about = "What the application feels while zerodown adds a column, next to the naive way and the physical limit (SQLite, PostgreSQL, MariaDB)",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs zerodown's part of a scenario (the benchmark starts this itself).
    #[command(hide = true)]
    Drive(DriveArgs),
}

#[derive(Args)]
struct RunArgs {
    /// Rows in the table (1000000 is the published size; 10000000 the large case).
    #[arg(long, default_value_t = 1_000_000)]
    rows: i64,
    /// A PostgreSQL or MariaDB server to run on: `postgres://user:pw@host:port/db` or
    /// `mysql://user:pw@host:port/db`. The benchmark creates (and drops) databases named `<db>_…`
    /// beside `db`, so the user needs CREATE DATABASE. Without it: SQLite, in --dir. Prefer the
    /// environment variable: a command line, password included, is visible to `ps`.
    #[arg(long, env = "ZERODOWN_BENCH_URL", hide_env_values = true)]
    url: Option<String>,
    /// MariaDB: also run `zerodown-copy`, the lifecycle with the CHECK, which MariaDB 10.11 adds only
    /// by copying the table (zerodown's --allow-copy).
    #[arg(long)]
    allow_copy: bool,
    /// Scenarios to run, comma-separated: limit-update, limit-zerodown, zerodown, zerodown-noindex,
    /// zerodown-copy, naive, naive-rewrite (default: the engine's usual set).
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Open-loop rate as a fraction of the measured maximum.
    #[arg(long, default_value_t = 0.5)]
    load: f64,
    /// A fixed open-loop rate in ops/s (skips measuring the maximum).
    #[arg(long)]
    rate: Option<f64>,
    /// How long to measure the maximum rate.
    #[arg(long, value_parser = parse_duration, default_value = "3s")]
    calibrate: Duration,
    /// Closed-loop threads when measuring the maximum rate.
    #[arg(long, default_value_t = 2)]
    calibrate_threads: usize,
    /// Reader threads of the open-loop load (70% of the operations).
    #[arg(long, default_value_t = 2)]
    readers: usize,
    /// Writer threads of the open-loop load (30%: updates and inserts, 2:1).
    #[arg(long, default_value_t = 2)]
    writers: usize,
    /// Load before the migration (the baseline).
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    baseline: Duration,
    /// Load after the migration.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    after: Duration,
    /// Between zerodown start and complete (the application switches to the version that writes the column).
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    deploy: Duration,
    /// zerodown complete --quiet-period.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    quiet_period: Duration,
    /// The application connections' busy timeout.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    busy_timeout: Duration,
    /// zerodown --batch-time (default: zerodown's own).
    #[arg(long, value_parser = parse_duration)]
    batch_time: Option<Duration>,
    /// zerodown --pause (default: zerodown's adaptive pause).
    #[arg(long, value_parser = parse_duration)]
    pause: Option<Duration>,
    /// zerodown --nice: a rest ratio or `auto` (default: zerodown's).
    #[arg(long)]
    nice: Option<Nice>,
    /// zerodown --max-load: a number of other running sessions, `auto` or `off` (default: zerodown's).
    #[arg(long)]
    max_load: Option<MaxLoad>,
    /// Experiment: run `PRAGMA <this>` on zerodown's own SQLite connection (e.g. "synchronous = NORMAL"),
    /// to measure a proposed engine change; not zerodown's behaviour.
    #[arg(long)]
    zd_sqlite_pragma: Option<String>,
    /// Keep the databases in this directory (and reuse a loaded table found there); default: a
    /// temporary directory, removed at the end.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Also write the JSON lines to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args)]
/// The database URL is not among them: it comes in the environment (`drive::DRIVE_URL_ENV`), since a
/// command line, password included, is visible to `ps`.
struct DriveArgs {
    #[arg(long)]
    verb: String,
    #[arg(long)]
    name: String,
    #[arg(long)]
    toml: String,
    #[arg(long, value_parser = parse_duration)]
    quiet_period: Option<Duration>,
    #[arg(long, value_parser = parse_duration)]
    batch_time: Option<Duration>,
    #[arg(long, value_parser = parse_duration)]
    pause: Option<Duration>,
    #[arg(long)]
    nice: Option<Nice>,
    #[arg(long)]
    max_load: Option<MaxLoad>,
    #[arg(long)]
    sqlite_pragma: Option<String>,
    #[arg(long)]
    allow_copy: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. 200ms, 5s, 10m)"))
}

fn main() {
    let cli = Cli::parse();
    if let Some(Cmd::Drive(d)) = cli.cmd {
        let Ok(url) = std::env::var(bench::drive::DRIVE_URL_ENV) else {
            eprintln!("drive: {} is not set", bench::drive::DRIVE_URL_ENV);
            std::process::exit(2);
        };
        std::process::exit(bench::drive::child_main(&DriveRequest {
            url,
            verb: d.verb,
            name: d.name,
            toml: d.toml,
            quiet_period: d.quiet_period,
            batch_time: d.batch_time,
            pause: d.pause,
            nice: d.nice,
            max_load: d.max_load,
            sqlite_pragma: d.sqlite_pragma,
            allow_copy: d.allow_copy,
        }));
    }
    std::process::exit(match run(cli.run) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("zerodown-bench: {e}");
            1
        }
    });
}

/// A temporary directory removed on drop, unless the user gave one.
struct Dir {
    path: PathBuf,
    remove: bool,
}

impl Drop for Dir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn run(a: RunArgs) -> Result<(), String> {
    let dir = match &a.dir {
        Some(d) => Dir {
            path: d.clone(),
            remove: false,
        },
        None => Dir {
            path: std::env::temp_dir().join(format!("zerodown-bench-{}", std::process::id())),
            remove: true,
        },
    };
    let target: Box<dyn BenchTarget> = match a.url.as_deref() {
        None => Box::new(SqliteTarget::new(&dir.path)),
        Some(u) => match zerodown::DatabaseUrl::parse(u).map_err(|e| e.to_string())? {
            zerodown::DatabaseUrl::Postgres(u) => Box::new(PgTarget::new(&u)?),
            zerodown::DatabaseUrl::Mysql(u) => Box::new(MariaDbTarget::new(&u)?),
            zerodown::DatabaseUrl::Sqlite(_) => {
                return Err(
                    "for SQLite give --dir (the benchmark makes its own database files), not --url"
                        .into(),
                );
            }
        },
    };
    let scenarios = if a.scenarios.is_empty() {
        let mut v = target.default_scenarios();
        if a.allow_copy && !v.contains(&Scenario::ZerodownCopy) {
            v.push(Scenario::ZerodownCopy);
        }
        Scenario::ALL
            .into_iter()
            .filter(|x| v.contains(x))
            .collect()
    } else {
        let mut v = Vec::new();
        for s in &a.scenarios {
            v.push(Scenario::parse(s).ok_or_else(|| {
                format!(
                    "unknown scenario `{s}`; choose from {}",
                    Scenario::ALL.map(|x| x.name()).join(", ")
                )
            })?);
        }
        // Always in the canonical order: the limits first, since the others are compared with them.
        Scenario::ALL
            .into_iter()
            .filter(|x| v.contains(x))
            .collect()
    };
    let opts = Options {
        rows: a.rows,
        scenarios,
        load_fraction: a.load,
        rate: a.rate,
        calibrate: a.calibrate,
        calibrate_threads: a.calibrate_threads,
        readers: a.readers,
        writers: a.writers,
        baseline: a.baseline,
        after: a.after,
        deploy: a.deploy,
        quiet_period: a.quiet_period,
        busy_timeout: a.busy_timeout,
        batch_time: a.batch_time,
        pause: a.pause,
        nice: a.nice,
        max_load: a.max_load,
        zd_sqlite_pragma: a.zd_sqlite_pragma,
        driver_exe: std::env::current_exe().map_err(|e| format!("finding myself: {e}"))?,
    };
    let target = target.as_ref();
    let command: Vec<String> = std::env::args()
        .map(|a| {
            if a.contains("://") {
                zerodown::url::redact(&a)
            } else {
                a
            }
        })
        .collect();
    let mut log = |s: String| eprintln!("{s}");
    let reports = bench::run(&opts, target, &mut log)?;
    let mut out = String::new();
    out.push_str(&format!(
        "zerodown-bench — {}\nmachine: {}\nengine: {}\ncommand: {}\napplication: {} readers + {} writers, {}\n",
        env!("CARGO_PKG_VERSION"),
        bench::sys::machine(),
        target.label(),
        command.join(" "),
        opts.readers,
        opts.writers,
        target.app_settings(opts.busy_timeout),
    ));
    out.push_str(&bench::render(&reports));
    let json: Vec<String> = reports
        .iter()
        .map(|r| serde_json::to_string(r).unwrap_or_default())
        .collect();
    println!("{out}");
    for j in &json {
        println!("{j}");
    }
    if let Some(path) = &a.json {
        std::fs::write(path, json.join("\n") + "\n")
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}
