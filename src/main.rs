//! The `zerodown` command line: parses arguments, renders plans, progress and status. No SQL here.

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use zerodown::{
    DatabaseUrl, Event, Migration, Settings, StartOutcome, dialect_of, plan::render_text,
};

/// Add a column to a live database without downtime.
///
/// zerodown adds the column nullable through the engine's catalog-only path, keeps it filled with
/// triggers while old and new application versions run side by side, backfills existing rows in short
/// batches, and only then adds constraints and the default. Every lock is taken under a short timeout.
///
/// Typical use:
///   zerodown plan     migrations/0042_users_tier.toml
///   zerodown start    migrations/0042_users_tier.toml
///   # deploy the application version that writes the new column
///   zerodown complete 0042_users_tier
#[derive(Parser)]
#[command(name = "zerodown", version, about, long_about, verbatim_doc_comment)]
struct Cli {
    /// Target database: sqlite://path/app.db (relative), sqlite:///abs/app.db,
    /// postgres://user:password@host:port/db, mysql:// or mariadb://user:password@host:port/db.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what `start` and `complete` will do, step by step, and what each step locks. Changes nothing.
    Plan {
        #[command(flatten)]
        source: Source,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Expand, install dual-write triggers and backfill; blocks until the backfill is done.
    /// Safe to interrupt (Ctrl-C stops after the current batch) and to run again: it resumes.
    Start {
        #[command(flatten)]
        source: Source,
        #[command(flatten)]
        tuning: Tuning,
        /// SQLite: switch the database to WAL first (a lasting change, the usual mode for a live
        /// SQLite database: readers then never wait for batches). A database in rollback-journal mode
        /// (SQLite's default) is refused without this flag or --allow-rollback-journal.
        #[arg(long)]
        wal: bool,
        /// SQLite: run in rollback-journal mode anyway; readers wait while each batch commits.
        #[arg(long)]
        allow_rollback_journal: bool,
    },
    /// Where migrations stand: phase, rows done, rate, ETA, old application versions still writing.
    Status {
        /// A migration's name; without it, every migration, one line each.
        name: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Add constraints and the default, then remove the triggers. Refuses while the backfill is
    /// unfinished or while old application versions still insert rows without the column.
    Complete {
        name: String,
        #[command(flatten)]
        tuning: Tuning,
        /// How long no INSERT may leave the column NULL before completing [default: 10s].
        #[arg(long, value_parser = parse_duration)]
        quiet_period: Option<Duration>,
        /// Complete even if old application versions are still seen writing.
        #[arg(long)]
        force: bool,
    },
    /// Undo everything zerodown added for a migration, any time before `complete` has finished.
    /// A running `start` is asked to stop first. The old columns' data is never touched.
    Rollback {
        name: String,
        #[command(flatten)]
        tuning: Tuning,
    },
    /// Check migration files for statements that lock, rewrite or break running code, and say what
    /// to write instead (or that `zerodown start` runs it safely). Offline unless --database-url or
    /// DATABASE_URL names a database: then, read-only, its version, table sizes, columns, indexes
    /// and constraints sharpen the verdicts (--offline ignores the URL).
    /// Folders are searched for .sql files; down.sql / *.down.sql are skipped.
    /// Exit status: 0 clean or warnings only, 1 error findings, 2 unreadable input or bad config.
    Lint(LintArgs),
    /// Apply a folder of migrations (sqlx, Diesel, golang-migrate, goose, Flyway or plain) at a
    /// point of the deploy pipeline: --before-deploy starts what is pending, --after-deploy completes
    /// it; neither shows where each migration stands. Idempotent: run it on every deploy.
    Migrate(zerodown::migrate::cli::MigrateArgs),
    /// The whole story on a temporary SQLite database under live traffic, with a verdict at the end.
    Demo {
        /// Rows in the demo table.
        #[arg(long, default_value_t = 1_000_000)]
        rows: i64,
        /// Keep the demo database at this path (a new file) instead of a temporary directory.
        #[arg(long)]
        keep: Option<PathBuf>,
        /// Application operations per second, half point reads, half writes [default: 400].
        #[arg(long)]
        rate: Option<u32>,
        /// Baseline traffic before the migration [default: 5s].
        #[arg(long, value_parser = parse_duration)]
        baseline: Option<Duration>,
        /// Traffic after complete [default: 5s].
        #[arg(long, value_parser = parse_duration)]
        after: Option<Duration>,
        /// complete's --quiet-period in the demo [default: 2s].
        #[arg(long, value_parser = parse_duration)]
        quiet_period: Option<Duration>,
    },
}

#[derive(Args)]
struct LintArgs {
    /// Migration files or folders.
    #[arg(required_unless_present = "list_rules")]
    paths: Vec<PathBuf>,
    /// Target engine: postgres, mysql, mariadb or sqlite [default: the config's, else postgres].
    #[arg(long)]
    engine: Option<String>,
    /// Target server version, e.g. 15, 10.11, 8.0.35 [default: the newest tested].
    #[arg(long = "version", id = "engine_version")]
    engine_version: Option<String>,
    /// Configuration file [default: ./zerodown-lint.toml when present].
    #[arg(long)]
    config: Option<PathBuf>,
    /// text, json, github (workflow annotations) or sarif.
    #[arg(long, default_value = "text")]
    format: String,
    /// The migration tool runs each file in a transaction (Rails, Ecto, Django on PostgreSQL).
    #[arg(long)]
    assume_in_transaction: bool,
    /// Also list every statement: what it locks, who waits behind it, and its cost on the target.
    #[arg(long)]
    explain: bool,
    /// List the rules (id, severity, engines, matching squawk rule) and exit; with --format json,
    /// each rule's explanation and fix too.
    #[arg(long)]
    list_rules: bool,
    /// Do not read the database even when --database-url or DATABASE_URL is set.
    #[arg(long)]
    offline: bool,
}

#[derive(Args)]
struct Source {
    /// A migration file: NAME.toml ([add_column] table) or NAME.sql (one ALTER TABLE … ADD COLUMN).
    #[arg(required_unless_present = "sql")]
    migration: Option<PathBuf>,
    /// The migration as one SQL statement instead of a file; needs --name.
    #[arg(long, conflicts_with = "migration", requires = "name")]
    sql: Option<String>,
    /// The migration's name with --sql (a file's name is its stem).
    #[arg(long)]
    name: Option<String>,
}

#[derive(Args)]
struct Tuning {
    /// Longest a DDL statement or batch waits for a lock per attempt [default: 200ms; MySQL/MariaDB 1s].
    #[arg(long, value_parser = parse_duration)]
    lock_timeout: Option<Duration>,
    /// Total time to keep retrying a lock, with jittered backoff [default: 10m].
    #[arg(long, value_parser = parse_duration)]
    lock_budget: Option<Duration>,
    /// Target time of one backfill batch; the batch size adapts to it [SQLite default: 5ms,
    /// PostgreSQL and MySQL/MariaDB 20ms]. An application write to a row of the current batch waits
    /// up to this long, and on a server with no spare CPU the application's statements slow down for
    /// as long; longer batches fill a little faster on PostgreSQL's idle server, slower under load
    /// (BENCHMARKS.md).
    #[arg(long, value_parser = parse_duration)]
    batch_time: Option<Duration>,
    /// Fixed rest between batches [PostgreSQL and MySQL/MariaDB default: 0; SQLite default: adaptive —
    /// twice a batch's lock hold while other connections write, a quarter of it otherwise, jittered].
    /// See --nice for a rest in proportion to each batch.
    #[arg(long, value_parser = parse_duration)]
    pause: Option<Duration>,
    /// Rest after each batch this many times the batch's own time, on top of --pause [default: 0].
    /// gh-ost's nice ratio: on a server with little spare CPU, 1 gives it half its time back (measured
    /// on PostgreSQL 15 on 2 cores at half its maximum load: the application's p99 52–166 ms → 14 ms,
    /// the backfill rate roughly halved; BENCHMARKS.md). `auto` (PostgreSQL and MySQL/MariaDB; experimental): start with no rest and
    /// double it (up to 4) while other sessions' statements in flight stay 25% above their level at
    /// rest — at a steady request rate, by Little's law, while the application's statements run
    /// slower — and halve it once they are back; the level at rest is measured as the backfill begins
    /// and every minute. An application with few connections hardly moves that count.
    #[arg(long, value_name = "RATIO|auto")]
    nice: Option<zerodown::engine::Nice>,
    /// PostgreSQL and MySQL/MariaDB: pause the backfill while more than this many other sessions are
    /// running a statement that began under a second ago (a long report does not count): PostgreSQL's
    /// pg_stat_activity, which shows other roles' sessions only with pg_read_all_stats; MySQL/MariaDB's
    /// process list with the PROCESS privilege, else Threads_running. `auto` [the default] counts them
    /// for a fifth of a second as the backfill begins and pauses above half as many again (at least one
    /// more): at a steady request rate more statements in flight means slower statements. A number
    /// sets the limit; `off` never pauses for load.
    #[arg(long, value_name = "N|auto|off")]
    max_load: Option<zerodown::engine::MaxLoad>,
    /// The application's latency as the backfill's target [default: auto]. A canary statement runs
    /// from its own connection twenty times a second (a point read by the table's key; on SQLite,
    /// five times a second, taking the write lock, which is what the application's writers wait for)
    /// and is timed with the server at rest before the first batch. While its p95 over the last 2 s
    /// is above the target, the backfill rests after each batch, from half the batch's time, doubling
    /// the rest (up to 4× the batch: it always keeps a fifth of its pace) each second it stays above,
    /// and shrinking it by an eighth of a batch each second it is back under; a server without load
    /// never rests. `auto` allows the canary's p95 at rest plus
    /// half of it, at least 5 ms (SQLite 10 ms: its writers wait for a batch by design) and at most
    /// 10 ms more, so the application's p99 stays near 1.5× and within 10 ms of its level at rest;
    /// it is measured again when resting at the longest does not bring the
    /// latency back (the application's own load grew). A duration sets the target; `off` never rests
    /// for latency. With --nice and --max-load the longest rest wins.
    #[arg(long, value_name = "DURATION|auto|off")]
    max_latency: Option<zerodown::engine::MaxLatency>,
    /// Rest the backfill while any replica is further behind than this [default: 1s]; `off` never
    /// waits. PostgreSQL: the streaming standbys in the primary's pg_stat_replication (reading their
    /// position needs superuser, pg_monitor or pg_read_all_stats), each one's lag being how long ago
    /// the primary was where its replay is now (zerodown times that itself: replay_lag goes stale),
    /// with the WAL bytes behind; a standby that has replayed everything is caught up. MySQL/MariaDB:
    /// only the replicas named with --replica. SQLite has no replicas: the flag has no effect there.
    #[arg(long, value_name = "DURATION|off")]
    max_replica_lag: Option<zerodown::engine::MaxReplicaLag>,
    /// A replica the backfill waits for (repeat for each): mysql://user:password@host:port/db for
    /// MySQL/MariaDB, whose primary cannot show its replicas' lag (read there: SHOW SLAVE STATUS and
    /// the GTID position against the primary's; a stopped SQL thread with transactions to apply is
    /// behind); postgres://… for a PostgreSQL standby that does not stream from the primary itself
    /// (cascading). A replica that cannot be reached pauses the backfill, and stops it after 5 minutes
    /// (`start` resumes).
    #[arg(long = "replica", value_name = "URL")]
    replicas: Vec<String>,
    /// PostgreSQL: timeout of one online index build (CREATE INDEX CONCURRENTLY), which waits for
    /// every older transaction [default: 1h].
    #[arg(long, value_parser = parse_duration)]
    build_timeout: Option<Duration>,
    /// MySQL/MariaDB: accept a step that copies the whole table while application writes wait
    /// (ADD CHECK on MariaDB); without it such a migration is refused before any change.
    #[arg(long)]
    allow_copy: bool,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Format {
    Text,
    Json,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. 200ms, 5s, 10m)"))
}

fn database_url(cli: &Cli) -> Result<DatabaseUrl> {
    let Some(raw) = cli.database_url.as_deref() else {
        bail!("no database given: pass --database-url sqlite://path/app.db or set DATABASE_URL");
    };
    Ok(DatabaseUrl::parse(raw)?)
}

fn load(source: &Source, url: &DatabaseUrl) -> Result<Migration> {
    let dialect = dialect_of(url);
    match (&source.migration, &source.sql, &source.name) {
        (Some(path), _, _) => Ok(Migration::load(path, dialect)?),
        (None, Some(sql), Some(name)) => {
            zerodown::spec::validate_name(name)?;
            Ok(Migration::from_sql(name, sql, dialect, "--sql")?)
        }
        _ => bail!("give a migration file, or --sql \"ALTER TABLE …\" with --name"),
    }
}

fn settings(t: &Tuning) -> Result<Settings> {
    // Parsed here, not by clap, whose error would quote the URL and its password; text that is no
    // URL at all is not quoted either (where its password is cannot be told).
    let replicas = t
        .replicas
        .iter()
        .map(|u| match DatabaseUrl::parse(u) {
            Ok(url) => Ok(url),
            Err(e) if u.contains("://") => bail!("--replica: {e}"),
            Err(_) => {
                bail!("--replica takes a URL: mysql://user:password@host:port/db or postgres://…")
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Settings {
        lock_timeout: t.lock_timeout,
        lock_budget: t.lock_budget,
        batch_time: t.batch_time,
        pause: t.pause,
        nice: t.nice,
        max_load: t.max_load,
        max_latency: t.max_latency,
        build_timeout: t.build_timeout,
        allow_copy: t.allow_copy,
        max_replica_lag: t.max_replica_lag,
        replicas,
        ..Settings::default()
    })
}

/// Renders library events: an indicatif bar on a terminal, plain lines otherwise.
struct Reporter {
    bar: Option<ProgressBar>,
    tty: bool,
    last_line: std::time::Instant,
    /// Time the backfill has rested for load so far, shown with its progress.
    rested: Duration,
    /// When the current wait for load began.
    waiting_since: Option<std::time::Instant>,
    /// The latency guard's rest ratio now, and the time rested for latency when it last changed.
    latency_ratio: f64,
    latency_rested: Duration,
}

impl Reporter {
    fn new() -> Reporter {
        Reporter {
            bar: None,
            tty: std::io::stderr().is_terminal(),
            last_line: std::time::Instant::now() - Duration::from_secs(60),
            rested: Duration::ZERO,
            waiting_since: None,
            latency_ratio: 0.0,
            latency_rested: Duration::ZERO,
        }
    }

    fn rested_note(&self) -> String {
        let mut note = String::new();
        if !self.rested.is_zero() {
            note.push_str(&format!(", rested for load {:.0?}", self.rested));
        }
        if self.latency_ratio > 0.0 {
            note.push_str(&format!(
                ", resting {:.2}× each batch for latency",
                self.latency_ratio
            ));
        }
        if !self.latency_rested.is_zero() {
            note.push_str(&format!(", rested for latency {:.0?}", self.latency_rested));
        }
        note
    }

    fn say(&self, line: &str) {
        match &self.bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn event(&mut self, e: Event) {
        match e {
            Event::StepStarted { index, total, step } => {
                self.say(&format!(
                    "[{}/{}] {}: {}",
                    index + 1,
                    total,
                    step.phase.label(),
                    step.summary
                ));
            }
            Event::StepDone { elapsed, .. } => {
                if let Some(b) = self.bar.take() {
                    b.finish_and_clear();
                }
                self.say(&format!("      done in {elapsed:.1?}"));
            }
            Event::LockRetry {
                attempt,
                waited,
                blocker,
            } => {
                self.say(&format!(
                    "      lock busy (attempt {attempt}, waited {waited:.0?}): {blocker}; retrying"
                ));
            }
            Event::Progress {
                done,
                total,
                rows_per_sec,
                eta,
                batch_size,
            } => {
                let rested = self.rested_note();
                if self.tty {
                    let bar = self.bar.get_or_insert_with(|| {
                        let b = ProgressBar::new(total as u64);
                        b.set_style(
                            ProgressStyle::with_template(
                                "      {bar:40} {pos}/{len} rows ({percent}%) {msg}",
                            )
                            .expect("a valid template"),
                        );
                        b
                    });
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                    bar.set_message(format!(
                        "{:.0} rows/s, ETA {}, batch {batch_size}{}",
                        rows_per_sec,
                        eta.map(
                            |d| humantime::format_duration(Duration::from_secs(d.as_secs()))
                                .to_string()
                        )
                        .unwrap_or_else(|| "?".into()),
                        rested
                    ));
                } else if self.last_line.elapsed() >= Duration::from_secs(2) || done >= total {
                    self.last_line = std::time::Instant::now();
                    eprintln!(
                        "      {done}/{total} rows ({:.1}%), {:.0} rows/s, ETA {}{}",
                        if total > 0 {
                            100.0 * done as f64 / total as f64
                        } else {
                            100.0
                        },
                        rows_per_sec,
                        eta.map(|d| format!("{}s", d.as_secs()))
                            .unwrap_or_else(|| "?".into()),
                        rested
                    );
                }
            }
            Event::Throttle {
                running,
                limit,
                rested: Some(d),
            } => {
                self.waiting_since = None;
                self.rested += d;
                // Short rests are the throttle at work and show in the progress line; a long one
                // deserves its own line.
                if d >= Duration::from_secs(5) {
                    self.say(&format!(
                        "      rested {d:.0?} while the server was busy; {running:.1} other sessions running now (max-load {limit:.1})"
                    ));
                }
            }
            Event::Throttle {
                running,
                limit,
                rested: None,
            } => {
                // Said once the wait has lasted a while (the library repeats it every 10 s), so
                // a paused backfill never looks stuck; short waits only add to the progress line.
                let now = std::time::Instant::now();
                match self.waiting_since {
                    None => self.waiting_since = Some(now),
                    Some(t) if now.duration_since(t) >= Duration::from_secs(5) => self.say(&format!(
                        "      backfill paused: {running:.1} other sessions running statements, over --max-load {limit:.1}; it goes on when they drop"
                    )),
                    Some(_) => {}
                }
            }
            Event::LatencyRest {
                latency,
                target,
                ratio,
                rested,
            } => {
                // Said when resting begins and ends; the steps between show in the progress line.
                if self.latency_ratio == 0.0 && ratio > 0.0 {
                    self.say(&format!(
                        "      the application's latency rose (canary p95 {latency:.1?}, target {target:.1?}): the backfill rests {ratio:.2}× each batch"
                    ));
                } else if ratio == 0.0 {
                    self.say(&format!(
                        "      latency back under target (canary p95 {latency:.1?}): full speed again"
                    ));
                }
                self.latency_ratio = ratio;
                self.latency_rested = rested;
            }
            Event::Note(n) => self.say(&format!("note: {n}")),
        }
    }
}

/// This very command line with `flag` added after the subcommand, quoted for a POSIX shell.
fn command_with(flag: &str) -> String {
    let quote = |a: &str| {
        let plain = !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c));
        if plain {
            a.to_string()
        } else {
            format!("'{}'", a.replace('\'', r"'\''"))
        }
    };
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let at = args.iter().position(|a| a == "start").map_or(0, |i| i + 1);
    args.insert(at, flag.to_string());
    std::iter::once("zerodown".to_string())
        .chain(args.iter().map(|a| quote(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn ctrl_c_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    let _ = ctrlc::set_handler(move || {
        if f.swap(true, Ordering::SeqCst) {
            // A second Ctrl-C: the user insists. Every step is transactional or resumable.
            std::process::exit(130);
        }
        eprintln!("\nstopping after the current batch (Ctrl-C again to quit at once)…");
    });
    flag
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        let code = match e.downcast_ref::<zerodown::Error>() {
            Some(zerodown::Error::Interrupted(_)) => 130,
            Some(zerodown::Error::Refused(_) | zerodown::Error::WrongPhase(_)) => 3,
            _ => 1,
        };
        std::process::exit(code);
    }
}

fn run() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("ZERODOWN_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match &cli.command {
        Command::Lint(a) => {
            let options = zerodown::lint::cli::Options {
                paths: a.paths.clone(),
                engine: a.engine.clone(),
                version: a.engine_version.clone(),
                config: a.config.clone(),
                format: a.format.clone(),
                assume_in_transaction: a.assume_in_transaction,
                list_rules: a.list_rules,
                explain: a.explain,
                url: cli.database_url.clone().filter(|_| !a.offline),
            };
            let code = zerodown::lint::cli::run(&options, &mut std::io::stdout().lock());
            std::process::exit(code);
        }
        Command::Migrate(a) => {
            let url = database_url(&cli)?;
            std::process::exit(zerodown::migrate::cli::run(a, &url));
        }
        Command::Demo {
            rows,
            keep,
            rate,
            baseline,
            after,
            quiet_period,
        } => {
            use zerodown::demo::{DemoOptions, Progress};
            let d = DemoOptions::default();
            let opts = DemoOptions {
                rows: *rows,
                keep: keep.clone(),
                rate: rate.unwrap_or(d.rate),
                baseline: baseline.unwrap_or(d.baseline),
                after: after.unwrap_or(d.after),
                quiet_period: quiet_period.unwrap_or(d.quiet_period),
                ..d
            };
            let cancel = ctrl_c_flag();
            let mut reporter = Reporter::new();
            let summary = zerodown::demo::run(
                &opts,
                &mut |p| match p {
                    Progress::Line(line) => reporter.say(&line),
                    Progress::Event(e) => reporter.event(e),
                },
                &cancel,
            )
            .context("the demo failed")?;
            println!("{summary}");
            Ok(())
        }
        Command::Plan { source, format } => {
            let url = database_url(&cli)?;
            let migration = load(source, &url)?;
            let plan = zerodown::plan(&url, &migration)?;
            match format {
                Format::Text => print!("{}", render_text(&plan)),
                Format::Json => println!("{}", plan.to_json()),
            }
            Ok(())
        }
        Command::Start {
            source,
            tuning,
            wal,
            allow_rollback_journal,
        } => {
            let url = database_url(&cli)?;
            let migration = load(source, &url)?;
            let mut s = settings(tuning)?;
            s.wal = *wal;
            s.allow_rollback_journal = *allow_rollback_journal;
            let cancel = ctrl_c_flag();
            let mut reporter = Reporter::new();
            let started =
                zerodown::start(&url, &migration, &s, &mut |e| reporter.event(e), &cancel);
            let journal_refusal = |msg: &str| {
                matches!(url, DatabaseUrl::Sqlite(_))
                    && !*wal
                    && !*allow_rollback_journal
                    && msg.contains("--wal")
            };
            let outcome = match started {
                // The journal-mode refusal: say the exact command that goes on.
                Err(zerodown::Error::Refused(msg)) if journal_refusal(&msg) => {
                    let hint = format!(
                        "Nothing was changed. To switch it to WAL and go on, run:\n  {}",
                        command_with("--wal")
                    );
                    return Err(zerodown::Error::Refused(format!("{msg}.\n{hint}")).into());
                }
                r => r?,
            };
            match outcome {
                StartOutcome::Completed => println!("`{}` is completed.", migration.name),
                StartOutcome::Backfilled { rows } => println!(
                    "`{}` is backfilled ({rows} rows). Deploy the application version that writes {}, then run `zerodown complete {}`.",
                    migration.name,
                    added_columns(&migration),
                    migration.name
                ),
            }
            Ok(())
        }
        Command::Status { name, format } => {
            let url = database_url(&cli)?;
            let reports = zerodown::status(&url, name.as_deref())?;
            if *format == Format::Json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
                return Ok(());
            }
            if reports.is_empty() {
                println!("no migrations recorded in {}", url.redacted());
            }
            for r in reports {
                let undone = matches!(
                    r.status,
                    zerodown::Status::RolledBack | zerodown::Status::RollingBack
                );
                let progress = match (r.rows_total, r.percent) {
                    // The rows it had filled are no progress once rolled back.
                    _ if undone => String::new(),
                    (Some(t), Some(p)) => format!(", {}/{} rows ({p:.1}%)", r.rows_done, t),
                    (Some(t), None) => format!(", {}/{} rows", r.rows_done, t),
                    _ => String::new(),
                };
                let rate = r
                    .rate
                    .map(|x| format!(", {x:.0} rows/s"))
                    .unwrap_or_default();
                let eta = r
                    .eta_seconds
                    .map(|x| format!(", ETA {x:.0}s"))
                    .unwrap_or_default();
                let old = r
                    .old_writer_inserts
                    .map(|n| format!(", old-writer inserts: {n}"))
                    .unwrap_or_default();
                println!(
                    "{}: {} (phase {}, step {}/{}) {}.{}{progress}{rate}{eta}{old}",
                    r.name,
                    r.status.label(),
                    r.phase,
                    r.step.min(r.steps),
                    r.steps,
                    r.table,
                    r.column
                );
            }
            Ok(())
        }
        Command::Complete {
            name,
            tuning,
            quiet_period,
            force,
        } => {
            let url = database_url(&cli)?;
            let mut s = settings(tuning)?;
            s.quiet_period = *quiet_period;
            s.force = *force;
            let cancel = ctrl_c_flag();
            let mut reporter = Reporter::new();
            zerodown::complete(&url, name, &s, &mut |e| reporter.event(e), &cancel)?;
            println!("`{name}` is completed.");
            Ok(())
        }
        Command::Rollback { name, tuning } => {
            let url = database_url(&cli)?;
            let s = settings(tuning)?;
            let mut reporter = Reporter::new();
            zerodown::rollback(&url, name, &s, &mut |e| reporter.event(e))?;
            println!("`{name}` is rolled back; the name is free again.");
            Ok(())
        }
    }
}

/// The columns a migration adds, for the line that says what to deploy: "`tier` and `plan`".
fn added_columns(migration: &Migration) -> String {
    let cols: Vec<String> = migration
        .operations
        .iter()
        .filter_map(|op| match op {
            zerodown::spec::Operation::AddColumn(a) => Some(format!("`{}`", a.column)),
            _ => None,
        })
        .collect();
    if cols.is_empty() {
        "the new schema".into()
    } else {
        cols.join(" and ")
    }
}
