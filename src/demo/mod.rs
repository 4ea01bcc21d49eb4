//! `zerodown demo`: the whole story on a temporary SQLite database under live application traffic.
//!
//! It loads a table, starts a simulated application (old-version writers that do not know the new
//! column, readers), runs `plan` → `start` → a rolling deploy of the new application version (which
//! writes the column itself) → `complete`, keeps the traffic flowing throughout, and then checks the
//! result: every acknowledged write is in the table, every row's new column obeys the window semantics
//! (DESIGN.md §1), and the constraints are in place. Nothing here prints: progress goes out through a
//! callback and the summary is returned.

mod check;
mod database;
mod narrator;
mod stats;
mod traffic;

use crate::engine::Event;
use crate::error::{Error, Result};
use crate::plan::{Phase, render_text};
use crate::spec::{Migration, Operation};
use crate::{DatabaseUrl, Settings, StartOutcome};
use check::check;
use database::{Place, create_database};
use narrator::Narrator;
use stats::{Latencies, ms};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use traffic::{Traffic, Window};

pub use traffic::APP_BUSY_TIMEOUT;

/// The demo's migration, as a user would write it in `demo_accounts_tier.toml`.
pub const MIGRATION_NAME: &str = "demo_accounts_tier";
pub const MIGRATION_TOML: &str = r#"[add_column]
table    = "accounts"
column   = "tier"
type     = "text"
not_null = true
backfill = "CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END"
default  = "'standard'"
check    = "tier IN ('gold', 'standard')"
index    = true
"#;

/// How the demo runs. `Default` is what `zerodown demo` does.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Rows loaded into the demo table before the traffic starts.
    pub rows: i64,
    /// Keep the database at this path (which must not exist yet) instead of a temporary directory.
    pub keep: Option<PathBuf>,
    /// Application operations per second, in total: half point reads, half writes.
    pub rate: u32,
    /// Baseline traffic before the migration.
    pub baseline: Duration,
    /// Traffic after `complete`.
    pub after: Duration,
    /// The rolling deploy replaces one application instance this often.
    pub deploy_step: Duration,
    /// `complete --quiet-period`.
    pub quiet_period: Duration,
    /// Application instances (writer threads); each is deployed from the old to the new version.
    pub instances: usize,
    /// Reader threads.
    pub readers: usize,
}

impl Default for DemoOptions {
    fn default() -> DemoOptions {
        DemoOptions {
            rows: 1_000_000,
            keep: None,
            rate: 400,
            baseline: Duration::from_secs(5),
            after: Duration::from_secs(5),
            deploy_step: Duration::from_secs(1),
            quiet_period: Duration::from_secs(2),
            instances: 2,
            readers: 2,
        }
    }
}

/// What the demo tells its caller while it runs.
#[derive(Debug, Clone)]
pub enum Progress {
    /// A line (or several) of narration.
    Line(String),
    /// An event of `start` or `complete`, as the CLI renders them for those commands.
    Event(Event),
}

/// Runs the demo; returns the summary. Fails if the migration failed, or if the check found lost
/// writes, mismatched rows or missing constraints (then the error holds the summary).
pub fn run(
    opts: &DemoOptions,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<String> {
    if opts.rows < 1 {
        return Err(Error::Refused(
            "the demo needs at least one row (--rows)".into(),
        ));
    }
    if opts.rate < 1 || opts.instances < 1 || opts.readers < 1 {
        return Err(Error::Refused(
            "the demo needs a rate of at least 1 op/s, one application instance and one reader"
                .into(),
        ));
    }
    let place = Place::new(opts.keep.as_deref())?;
    let where_ = if opts.keep.is_some() {
        format!("kept at {}", place.db.display())
    } else {
        format!("{} (removed at the end)", place.db.display())
    };
    let result = run_at(opts, &place.db, &where_, progress, cancel);
    if let Some(kept) = &opts.keep {
        // zerodown's lock file beside the database is of no further use.
        let _ = std::fs::remove_file(format!("{}-zerodown.lock", kept.display()));
    }
    let (summary, ok) = result?;
    if ok {
        Ok(summary.trim_end().to_string())
    } else {
        Err(Error::Database {
            context: "the demo's check failed".into(),
            message: format!("\n{}", summary.trim_end()),
        })
    }
}

/// Wall-clock time of each part of the story.
#[derive(Default)]
struct Timings {
    load: Duration,
    before: Duration,
    start: Duration,
    deploy: Duration,
    complete: Duration,
    after: Duration,
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Runs the story at `db`; returns the summary and whether the check passed.
fn run_at(
    opts: &DemoOptions,
    db: &Path,
    where_: &str,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<(String, bool)> {
    let mut n = Narrator {
        progress,
        shared: None,
        last_traffic_line: Instant::now(),
        running: None,
        steps: Vec::new(),
    };
    let mut t = Timings::default();
    let url = DatabaseUrl::Sqlite(db.to_path_buf());

    n.line(format!(
        "== zerodown demo: a table of {} rows at {}",
        opts.rows,
        db.display()
    ));
    let clock = Instant::now();
    create_database(db, opts.rows)?;
    t.load = clock.elapsed();
    n.line(format!(
        "loaded accounts(id INTEGER PRIMARY KEY, email TEXT NOT NULL, balance INTEGER NOT NULL, pad TEXT) with {} rows and 2 indexes in {} (WAL mode)",
        opts.rows,
        secs(t.load)
    ));

    let migration = Migration::from_toml(
        MIGRATION_NAME,
        MIGRATION_TOML,
        &format!("{MIGRATION_NAME}.toml"),
    )?;
    let Some(Operation::AddColumn(add)) = migration.operations.first() else {
        unreachable!("the demo's migration adds a column")
    };
    let expr = add
        .backfill
        .clone()
        .expect("the demo's migration has a backfill");
    n.line(format!(
        "\n== the migration, {MIGRATION_NAME}.toml:\n{}",
        MIGRATION_TOML.trim_end()
    ));
    let plan = crate::plan(&url, &migration)?;
    n.line(format!(
        "\n== zerodown plan\n{}",
        render_text(&plan).trim_end()
    ));

    n.line(format!(
        "\n== the application starts: {} instances of the old version (balance updates and inserts that know nothing of `tier`) and {} readers, {} ops/s in all, each connection with busy_timeout {}ms (WAL checkpoints in a background thread)",
        opts.instances,
        opts.readers,
        opts.rate,
        APP_BUSY_TIMEOUT.as_millis()
    ));
    let traffic = Traffic::start(
        db,
        opts.rows,
        f64::from(opts.rate),
        opts.instances,
        opts.readers,
    );
    n.shared = Some(traffic.shared.clone());
    let shared = traffic.shared.clone();

    n.line(format!("baseline traffic for {}", secs(opts.baseline)));
    let clock = Instant::now();
    n.wait(opts.baseline, cancel)?;
    t.before = clock.elapsed();

    n.line("\n== zerodown start (library defaults) — the traffic keeps flowing");
    shared.set_window(Window::Start);
    let clock = Instant::now();
    let outcome = crate::start(
        &url,
        &migration,
        &Settings::default(),
        &mut |e| n.event(e),
        cancel,
    )?;
    t.start = clock.elapsed();
    let backfilled = match outcome {
        StartOutcome::Backfilled { rows } => rows,
        StartOutcome::Completed => {
            return Err(Error::db(
                "the demo",
                "start completed the migration in one step, which a derived column never allows",
            ));
        }
    };
    n.line(format!(
        "start finished in {}: {backfilled} rows backfilled",
        secs(t.start)
    ));

    n.line(format!(
        "\n== rolling deploy: each application instance is replaced by the new version, which writes `tier` itself ({} apart)",
        secs(opts.deploy_step)
    ));
    shared.set_window(Window::Deploy);
    let clock = Instant::now();
    for (i, (deploy, deployed)) in traffic.deploy.iter().enumerate() {
        deploy.store(true, Ordering::SeqCst);
        while !deployed.load(Ordering::SeqCst) {
            if cancel.load(Ordering::SeqCst) {
                return Err(Error::Interrupted("the demo was stopped".into()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        n.line(format!("instance {} now runs the new version", i + 1));
        n.wait(opts.deploy_step, cancel)?;
    }
    t.deploy = clock.elapsed();

    n.line(format!(
        "\n== zerodown complete --quiet-period {} — the traffic keeps flowing",
        humantime::format_duration(opts.quiet_period)
    ));
    shared.set_window(Window::Complete);
    let clock = Instant::now();
    let settings = Settings {
        quiet_period: Some(opts.quiet_period),
        ..Settings::default()
    };
    crate::complete(&url, MIGRATION_NAME, &settings, &mut |e| n.event(e), cancel)?;
    t.complete = clock.elapsed();
    n.line(format!("complete finished in {}", secs(t.complete)));

    n.line(format!(
        "\n== traffic after the migration for {}",
        secs(opts.after)
    ));
    shared.set_window(Window::After);
    let clock = Instant::now();
    n.wait(opts.after, cancel)?;
    t.after = clock.elapsed();
    n.shared = None;
    let outcome = traffic
        .stop()
        .map_err(|e| Error::db("the demo's application", e))?;

    n.line("\n== checking the result");
    let check = check(db, &expr, &outcome.ledgers)?;

    let mut s = String::new();
    let _ = writeln!(
        s,
        "zerodown demo: added accounts.tier (text NOT NULL DEFAULT 'standard', CHECK, index) to {} rows under live traffic\n",
        opts.rows
    );
    let _ = writeln!(s, "database      {where_}");
    let _ = writeln!(
        s,
        "application   {} ops/s: half point reads, half writes (70% balance updates, 30% inserts);\n              {} app instances + {} readers, own connections, busy_timeout {}ms, WAL checkpoints\n              in a background thread every {}ms\n",
        opts.rate,
        opts.instances,
        opts.readers,
        APP_BUSY_TIMEOUT.as_millis(),
        traffic::CHECKPOINT_EVERY.as_millis()
    );
    let total = t.before + t.start + t.deploy + t.complete + t.after;
    let _ = writeln!(s, "time per phase");
    let _ = writeln!(
        s,
        "  load       {:>6}  {} rows in one transaction",
        secs(t.load),
        opts.rows
    );
    let _ = writeln!(
        s,
        "  before     {:>6}  baseline traffic, old application version",
        secs(t.before)
    );
    let backfill_time = n
        .steps
        .iter()
        .filter(|st| st.phase == Phase::Backfill)
        .map(|st| st.elapsed)
        .sum::<Duration>();
    let _ = writeln!(
        s,
        "  start      {:>6}  expand, dual-write triggers, backfill of {backfilled} rows in {} ({:.0} rows/s)",
        secs(t.start),
        secs(backfill_time),
        backfilled as f64 / backfill_time.as_secs_f64().max(1e-3)
    );
    let _ = writeln!(
        s,
        "  deploy     {:>6}  rolling deploy of the new application version, which writes `tier`",
        secs(t.deploy)
    );
    let _ = writeln!(
        s,
        "  complete   {:>6}  quiet period, NULL sweep, constraints, index, default, triggers off",
        secs(t.complete)
    );
    let _ = writeln!(
        s,
        "  after      {:>6}  new application version",
        secs(t.after)
    );
    let _ = writeln!(s, "  total      {:>6}  of live traffic\n", secs(total));

    let _ = writeln!(s, "steps");
    for st in &n.steps {
        let _ = writeln!(
            s,
            "  {:>2}. {:<10} {:>7}  {}",
            st.index + 1,
            st.phase.label(),
            format!("{:.2}s", st.elapsed.as_secs_f64()),
            st.summary
        );
    }

    let _ = writeln!(
        s,
        "\napplication latency in ms, from each operation's scheduled start ({} ops/s, open loop)",
        opts.rate
    );
    let _ = writeln!(
        s,
        "  {:<12} {:>7} {:>8} {:>8} {:>8} {:>11} {:>7}",
        "", "ops", "p50", "p99", "max", "write max", "errors"
    );
    let rows: [(&str, &[Window]); 6] = [
        ("before", &[Window::Before]),
        ("during", &[Window::Start, Window::Deploy, Window::Complete]),
        ("  start", &[Window::Start]),
        ("  deploy", &[Window::Deploy]),
        ("  complete", &[Window::Complete]),
        ("after", &[Window::After]),
    ];
    for (label, windows) in rows {
        let pick = |write_only: bool| {
            let chosen: Vec<_> = outcome
                .samples
                .iter()
                .filter(|x| windows.contains(&x.window) && (!write_only || x.write))
                .collect();
            let errors = chosen.iter().filter(|x| !x.ok).count() as u64;
            Latencies::new(chosen.iter().map(|x| x.latency).collect(), errors)
        };
        let all = pick(false);
        let writes = pick(true);
        let _ = writeln!(
            s,
            "  {:<12} {:>7} {:>8} {:>8} {:>8} {:>11} {:>7}",
            label,
            all.count(),
            ms(all.quantile(0.5)),
            ms(all.quantile(0.99)),
            ms(all.max()),
            ms(writes.max()),
            all.errors
        );
    }
    let longest = outcome
        .samples
        .iter()
        .filter(|x| x.write)
        .max_by_key(|x| x.latency);
    if let Some(w) = longest {
        let what = match w.window {
            Window::Before => "before the migration",
            Window::Start => "during start",
            Window::Deploy => "during the deploy",
            Window::Complete => "during complete",
            Window::After => "after the migration",
        };
        let _ = writeln!(
            s,
            "longest the application waited for the write lock: {} ms ({what})",
            ms(Some(w.latency))
        );
    }

    let acknowledged: u64 = outcome.ledgers.iter().map(|l| l.writes).sum();
    let ledger_rows: usize = outcome.ledgers.iter().map(|l| l.rows.len()).sum();
    let _ = writeln!(s, "\nfinal table   {} rows", check.rows);
    let _ = writeln!(s, "schema        {}", check.schema.join("; "));
    let _ = writeln!(
        s,
        "ledger        {acknowledged} acknowledged writes on {ledger_rows} rows"
    );
    let errors: u64 = outcome.errors.iter().map(|(_, n)| n).sum();
    for (message, count) in outcome.errors.iter().take(5) {
        let _ = writeln!(s, "  error ×{count}: {message}");
    }
    let _ = writeln!(s, "\nerrors: {errors}");
    let _ = writeln!(s, "lost writes: {}", check.lost_writes);
    let _ = writeln!(s, "mismatched rows: {}", check.mismatched_rows);
    let ok = check.lost_writes == 0 && check.mismatched_rows == 0 && check.schema_problems == 0;
    if check.schema_problems > 0 {
        let _ = writeln!(s, "schema problems: {}", check.schema_problems);
    }
    let _ = writeln!(s, "verdict: {}", if ok { "OK" } else { "FAILED" });
    Ok((s, ok))
}
