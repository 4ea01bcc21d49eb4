//! `zerodown migrate DIR` behind the command line: its arguments, the lines it prints while it
//! runs (plain lines off a terminal, progress bars on one), its report (text or JSON), and its exit
//! status.

use super::layout::Layout;
use super::{Action, Options, Point, Progress, Report, Stop, Stopped};
use crate::engine::{Event, Settings};
use crate::url::DatabaseUrl;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub const EXIT_DONE: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_INPUT: i32 = 2;
pub const EXIT_REFUSED: i32 = 3;
pub const EXIT_OLD_WRITERS: i32 = 4;
pub const EXIT_INTERRUPTED: i32 = 130;

const EXIT_HELP: &str = "Exit status:
  0    this point is done for every migration of the folder (also: nothing to do)
  1    the database failed or could not be reached; run again to resume
  2    the folder or a file in it cannot be read; nothing was changed
  3    a migration was refused or held (it touches a column an earlier one adds and has not
       completed); the migrations before it are done, nothing of it was changed
  4    --after-deploy: an old application version still writes a derived column; deploy the new
       version everywhere and run again
  130  interrupted (Ctrl-C); run again to resume";

/// Apply a folder of migrations at a point of the deploy pipeline.
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = EXIT_HELP)]
pub struct MigrateArgs {
    /// The migrations folder: sqlx, Diesel, golang-migrate, goose, Flyway, or plain .sql/.toml files.
    pub dir: PathBuf,
    /// Before the deploy: start every pending migration (expand, dual-write, backfill), in order.
    #[arg(long, conflicts_with = "after_deploy")]
    pub before_deploy: bool,
    /// After the deploy: complete every backfilled migration, in order, each once no old
    /// application version writes without its new column.
    #[arg(long)]
    pub after_deploy: bool,
    /// The folder's layout [default: detected from the file names].
    #[arg(long, value_enum)]
    pub layout: Option<Layout>,
    /// text or json (the report on stdout; progress goes to stderr either way).
    #[arg(long, default_value = "text")]
    pub format: String,
    /// Longest a DDL statement or batch waits for a lock per attempt [default: 200ms; MySQL/MariaDB 1s].
    #[arg(long, value_parser = parse_duration)]
    pub lock_timeout: Option<Duration>,
    /// Total time to keep retrying a lock [default: 10m].
    #[arg(long, value_parser = parse_duration)]
    pub lock_budget: Option<Duration>,
    /// Target time of one backfill batch [default: SQLite 5ms, others 20ms].
    #[arg(long, value_parser = parse_duration)]
    pub batch_time: Option<Duration>,
    /// --after-deploy: how long no INSERT may leave a derived column NULL before completing it [default: 10s].
    #[arg(long, value_parser = parse_duration)]
    pub quiet_period: Option<Duration>,
    /// SQLite: switch the database to WAL first (a lasting change).
    #[arg(long)]
    pub wal: bool,
    /// SQLite: run in rollback-journal mode anyway; readers wait while each batch commits.
    #[arg(long)]
    pub allow_rollback_journal: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. 200ms, 5s, 10m)"))
}

/// Runs the command; returns its exit status.
pub fn run(args: &MigrateArgs, url: &DatabaseUrl) -> i32 {
    let json = match args.format.as_str() {
        "text" | "" => false,
        "json" => true,
        other => {
            eprintln!("error: --format {other}: use text or json");
            return EXIT_INPUT;
        }
    };
    let point = if args.before_deploy {
        Point::BeforeDeploy
    } else if args.after_deploy {
        Point::AfterDeploy
    } else {
        Point::Show
    };
    let options = Options {
        layout: args.layout,
        point,
        settings: Settings {
            lock_timeout: args.lock_timeout,
            lock_budget: args.lock_budget,
            batch_time: args.batch_time,
            quiet_period: args.quiet_period,
            wal: args.wal,
            allow_rollback_journal: args.allow_rollback_journal,
            ..Settings::default()
        },
    };
    let cancel = ctrl_c_flag();
    let mut lines = Lines::new();
    let result = super::run(url, &args.dir, &options, &mut |p| lines.show(p), &cancel);
    lines.clear();
    let (report, stopped) = match result {
        Ok(r) => (r, None),
        Err(stopped) => {
            let Stopped {
                report,
                stop,
                error,
            } = *stopped;
            (report, Some((stop, error)))
        }
    };
    let mut out = std::io::stdout().lock();
    if json {
        let mut value = serde_json::to_value(&report).expect("the report serializes");
        if let Some((stop, error)) = &stopped {
            value["stopped"] = serde_json::json!({ "reason": stop, "message": error.to_string() });
        }
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&value).expect("json")
        );
    } else {
        let _ = out.write_all(text(&report).as_bytes());
        if let Some((_, error)) = &stopped {
            eprintln!("error: {error}");
        }
    }
    match stopped.map(|(s, _)| s) {
        None => EXIT_DONE,
        Some(Stop::Input) => EXIT_INPUT,
        Some(Stop::Refused) => EXIT_REFUSED,
        Some(Stop::OldWriters) => EXIT_OLD_WRITERS,
        Some(Stop::Interrupted) => EXIT_INTERRUPTED,
        Some(Stop::Failed) => EXIT_FAILED,
    }
}

/// The report as lines: one per migration, then the notes.
pub fn text(report: &Report) -> String {
    let mut s = format!(
        "{} ({} layout), {}:\n",
        report.folder,
        report.layout.label(),
        match report.point {
            Point::BeforeDeploy => "before the deploy",
            Point::AfterDeploy => "after the deploy",
            Point::Show => "where each migration stands",
        }
    );
    let table = super::history::Tool::of(report.layout).map(|t| t.table());
    for m in &report.migrations {
        let what = match &m.action {
            Action::Backfilled { rows } => {
                format!("started, {rows} rows backfilled; `--after-deploy` completes it")
            }
            Action::Completed => "completed".into(),
            Action::AlreadyCompleted => "already completed".into(),
            Action::AlreadyBackfilled => "started earlier; `--after-deploy` completes it".into(),
            Action::AppliedByTool => "applied by the tool itself; skipped".into(),
            Action::Pending => "pending; `--before-deploy` starts it".into(),
            Action::Unfinished => {
                "started, backfill unfinished; `--before-deploy` resumes it".into()
            }
            Action::Held { reason } => format!("held: {reason}"),
        };
        let tool = match (m.tool_recorded, table) {
            (Some(true), Some(t)) if m.action != Action::AppliedByTool => {
                format!(" (recorded in {t})")
            }
            _ => String::new(),
        };
        s.push_str(&format!("  {}: {what}{tool}\n", m.name));
    }
    if report.migrations.is_empty() {
        s.push_str("  no migrations in the folder\n");
    }
    for n in &report.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    s
}

/// Progress on stderr: a bar for the backfill on a terminal, a line every few seconds off one.
struct Lines {
    tty: bool,
    bar: Option<ProgressBar>,
    last: Instant,
}

impl Lines {
    fn new() -> Lines {
        Lines {
            tty: std::io::stderr().is_terminal(),
            bar: None,
            last: Instant::now() - Duration::from_secs(60),
        }
    }

    fn say(&self, line: &str) {
        match &self.bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn clear(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }

    fn show(&mut self, p: Progress) {
        match p {
            Progress::Migration {
                index,
                total,
                name,
                doing,
            } => {
                self.clear();
                self.say(&format!("==> [{}/{total}] {doing} {name}", index + 1));
            }
            Progress::Event(Event::StepStarted { index, total, step }) => self.say(&format!(
                "    step {}/{total} {}: {}",
                index + 1,
                step.phase.label(),
                step.summary
            )),
            Progress::Event(Event::StepDone { elapsed, .. }) => {
                self.clear();
                self.say(&format!("      done in {elapsed:.1?}"));
            }
            Progress::Event(Event::LockRetry {
                attempt, blocker, ..
            }) => self.say(&format!(
                "      lock busy (attempt {attempt}): {blocker}; retrying"
            )),
            Progress::Event(Event::Progress {
                done,
                total,
                rows_per_sec,
                ..
            }) => {
                if self.tty {
                    let bar = self.bar.get_or_insert_with(|| {
                        let b = ProgressBar::new(total.max(0) as u64);
                        b.set_style(
                            ProgressStyle::with_template(
                                "      {bar:40} {pos}/{len} rows ({percent}%) {msg}",
                            )
                            .expect("a valid template"),
                        );
                        b
                    });
                    bar.set_length(total.max(0) as u64);
                    bar.set_position(done.max(0) as u64);
                    bar.set_message(format!("{rows_per_sec:.0} rows/s"));
                } else if self.last.elapsed() >= Duration::from_secs(2) || done >= total {
                    self.last = Instant::now();
                    eprintln!("      {done}/{total} rows, {rows_per_sec:.0} rows/s");
                }
            }
            Progress::Event(Event::Note(n)) => self.say(&format!("    note: {n}")),
            Progress::Event(_) => {}
        }
    }
}

fn ctrl_c_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    let _ = ctrlc::set_handler(move || {
        if f.swap(true, Ordering::SeqCst) {
            std::process::exit(EXIT_INTERRUPTED);
        }
        eprintln!("\nstopping after the current batch (Ctrl-C again to quit at once)…");
    });
    flag
}
