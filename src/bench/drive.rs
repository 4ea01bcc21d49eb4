//! zerodown's part runs in a child process (`zerodown-bench drive …`), as it does in real use: its
//! peak memory (VmHWM) and CPU time are its own, and on SQLite its busy handler and write-lock holds
//! are measured apart from the application's. The child calls the library (`zerodown::start` /
//! `zerodown::complete`) and writes one JSON line per event to stdout, stamped with CLOCK_MONOTONIC so
//! the parent can place each step on the same clock as the application's operations.

use super::sys::{mono_ns, self_cpu, self_status_kb};
use super::vfs::{self, HoldStats};
use crate::engine::{Event, MaxLoad, Nice, Settings};
use crate::plan::{Action, Phase, Step};
use crate::spec::Migration;
use crate::url::DatabaseUrl;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Write-lock holds, as reported (SQLite: measured by the VFS in the child).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Holds {
    pub count: u64,
    pub total_ms: f64,
    pub max_ms: f64,
    pub over_50ms: u64,
}

impl From<HoldStats> for Holds {
    fn from(h: HoldStats) -> Holds {
        Holds {
            count: h.count,
            total_ms: h.total_ns as f64 / 1e6,
            max_ms: h.max_ns as f64 / 1e6,
            over_50ms: h.over_50ms,
        }
    }
}

/// One line of the child's output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum Line {
    Step {
        t: u64,
        index: usize,
        label: String,
        blocks_writes: bool,
        /// The plan's cost of the step (`scan`, `rewrite`, `batched`, …): a scan or rewrite in
        /// `complete` is one statement the backfill's pacing cannot reach.
        #[serde(default)]
        cost: String,
    },
    Done {
        t: u64,
        index: usize,
        label: String,
        elapsed_ms: f64,
        holds: Holds,
        wal_bytes: u64,
    },
    Progress {
        t: u64,
        done: i64,
        total: i64,
    },
    Retry {
        t: u64,
        attempt: u32,
        waited_ms: f64,
        /// Who held the lock, as zerodown named it.
        #[serde(default)]
        blocker: String,
    },
    Note {
        t: u64,
        text: String,
    },
    End {
        t: u64,
        ok: bool,
        error: Option<String>,
        vmhwm_kb: u64,
        cpu_s: f64,
        wal_bytes: u64,
        checkpoint_bytes: u64,
        /// Holds outside any step (opening, state writes before the first step).
        holds_outside: Holds,
        backfill_rows: i64,
        batches: u64,
        lock_retries: u64,
        /// Time the backfill rested because the server was busier than --max-load, and how often.
        #[serde(default)]
        rested_s: f64,
        #[serde(default)]
        rests: u64,
        /// The latency guard's changes of the rest ratio, and the largest ratio it set.
        #[serde(default)]
        latency_changes: u64,
        #[serde(default)]
        latency_peak_ratio: f64,
    },
}

/// A short, stable name for a step: its phase, and for contract steps what it does.
pub fn step_label(step: &Step) -> String {
    match step.phase {
        Phase::Check => "check".into(),
        Phase::Expand => "expand".into(),
        Phase::DualWrite => "dual-write".into(),
        Phase::Backfill => "backfill".into(),
        Phase::Contract => {
            let what = match step.action {
                Action::QuietPeriod => "quiet period".to_string(),
                Action::NullSweep => "null sweep".to_string(),
                Action::ForeignKeyCheck => "foreign key check".to_string(),
                Action::Finish => "finish".to_string(),
                _ => step
                    .summary
                    .split(" zd_")
                    .next()
                    .unwrap_or(&step.summary)
                    .to_string(),
            };
            format!("contract: {what}")
        }
    }
}

/// What the child is asked to do.
#[derive(Debug, Clone)]
pub struct DriveRequest {
    pub url: String,
    /// "start" or "complete".
    pub verb: String,
    pub name: String,
    pub toml: String,
    pub quiet_period: Option<Duration>,
    pub batch_time: Option<Duration>,
    pub pause: Option<Duration>,
    /// zerodown's --nice and --max-load, when not its defaults.
    pub nice: Option<Nice>,
    pub max_load: Option<MaxLoad>,
    /// An experiment, not zerodown's behaviour: a PRAGMA (e.g. `synchronous = NORMAL`) run on every
    /// SQLite connection the child opens — zerodown's own — to measure a proposed engine change
    /// without editing the engine.
    pub sqlite_pragma: Option<String>,
    /// MySQL/MariaDB: `--allow-copy` (a step that copies the table while writes wait).
    pub allow_copy: bool,
}

/// The environment variable that carries the database URL to the child: never its command line, which
/// `ps` shows to every user of the machine, password included.
pub const DRIVE_URL_ENV: &str = "DATABASE_URL";

impl DriveRequest {
    /// The child's command: the request as arguments, the URL in the environment.
    pub fn command(&self, exe: &Path) -> Command {
        let mut c = Command::new(exe);
        c.args(self.args()).env(DRIVE_URL_ENV, &self.url);
        c
    }

    /// The request's arguments, everything but the URL.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![
            "drive".to_string(),
            "--verb".into(),
            self.verb.clone(),
            "--name".into(),
            self.name.clone(),
            "--toml".into(),
            self.toml.clone(),
        ];
        for (flag, d) in [
            ("--quiet-period", self.quiet_period),
            ("--batch-time", self.batch_time),
            ("--pause", self.pause),
        ] {
            if let Some(d) = d {
                a.push(flag.into());
                a.push(format!("{}us", d.as_micros()));
            }
        }
        if let Some(n) = self.nice {
            a.push("--nice".into());
            a.push(n.to_string());
        }
        if let Some(m) = self.max_load {
            a.push("--max-load".into());
            a.push(m.to_string());
        }
        if let Some(p) = &self.sqlite_pragma {
            a.push("--sqlite-pragma".into());
            a.push(p.clone());
        }
        if self.allow_copy {
            a.push("--allow-copy".into());
        }
        a
    }
}

/// The child's side: runs the verb, reporting on stdout. Returns the process exit code.
pub fn child_main(req: &DriveRequest) -> i32 {
    let url = match DatabaseUrl::parse(&req.url) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("drive: {e}");
            return 2;
        }
    };
    let sqlite = matches!(url, DatabaseUrl::Sqlite(_));
    if sqlite {
        vfs::install();
        if let Some(p) = &req.sqlite_pragma
            && let Err(e) = pragma_on_open(p)
        {
            eprintln!("drive: {e}");
            return 2;
        }
    }
    let out = std::io::stdout();
    let say = |line: &Line| {
        let mut o = out.lock();
        let _ = writeln!(o, "{}", serde_json::to_string(line).unwrap_or_default());
        let _ = o.flush();
    };
    let settings = Settings {
        quiet_period: req.quiet_period,
        batch_time: req.batch_time,
        pause: req.pause,
        nice: req.nice,
        max_load: req.max_load,
        allow_copy: req.allow_copy,
        ..Settings::default()
    };
    let cancel = AtomicBool::new(false);
    // (index, label, WAL bytes at its start, whether it blocks writes)
    let mut running: Option<(usize, String, u64, bool)> = None;
    let mut outside = HoldStats::default();
    let mut rows = 0i64;
    let mut batches = 0u64;
    let mut retries = 0u64;
    let mut last_progress = 0u64;
    let mut rested = Duration::ZERO;
    let mut rests = 0u64;
    let mut latency_changes = 0u64;
    let mut latency_peak_ratio = 0f64;
    vfs::take_thread_holds();
    let mut emit = |e: Event| match e {
        Event::StepStarted { index, step, .. } => {
            outside.merge(vfs::take_thread_holds());
            let label = step_label(&step);
            say(&Line::Step {
                t: mono_ns(),
                index,
                label: label.clone(),
                blocks_writes: step.lock.blocks_writes,
                cost: step.cost.label().to_string(),
            });
            running = Some((index, label, vfs::thread_bytes().0, step.lock.blocks_writes));
        }
        Event::StepDone { index, elapsed } => {
            let mut holds = vfs::take_thread_holds();
            let (label, wal0, blocks) = match running.take() {
                Some((i, l, w, b)) if i == index => (l, w, b),
                _ => (format!("step {}", index + 1), vfs::thread_bytes().0, false),
            };
            if !sqlite && blocks {
                // PostgreSQL / MariaDB: zerodown's own timing of a step that takes a write-blocking
                // lock is the statement's elapsed time (an upper bound: it includes waiting for the
                // lock); the lock views cross-check it.
                let ns = elapsed.as_nanos() as u64;
                holds = HoldStats {
                    count: 1,
                    total_ns: ns,
                    max_ns: ns,
                    over_50ms: u64::from(ns > 50_000_000),
                };
            }
            say(&Line::Done {
                t: mono_ns(),
                index,
                label,
                elapsed_ms: elapsed.as_secs_f64() * 1e3,
                holds: holds.into(),
                wal_bytes: vfs::thread_bytes().0 - wal0,
            });
        }
        Event::Progress { done, total, .. } => {
            rows = done;
            batches += 1;
            let now = mono_ns();
            if now - last_progress > 1_000_000_000 {
                last_progress = now;
                say(&Line::Progress {
                    t: now,
                    done,
                    total,
                });
            }
        }
        Event::LockRetry {
            attempt,
            waited,
            blocker,
        } => {
            retries += 1;
            say(&Line::Retry {
                t: mono_ns(),
                attempt,
                waited_ms: waited.as_secs_f64() * 1e3,
                blocker,
            });
        }
        Event::Throttle {
            rested: Some(d), ..
        } => {
            rested += d;
            rests += 1;
        }
        Event::LatencyRest { ratio, .. } => {
            latency_changes += 1;
            latency_peak_ratio = latency_peak_ratio.max(ratio);
        }
        Event::Throttle { .. } => {}
        Event::Note(text) => say(&Line::Note { t: mono_ns(), text }),
    };
    let result = match req.verb.as_str() {
        "start" => Migration::from_toml(&req.name, &req.toml, "bench migration")
            .map_err(crate::Error::from)
            .and_then(|m| crate::start(&url, &m, &settings, &mut emit, &cancel).map(|_| ())),
        "complete" => crate::complete(&url, &req.name, &settings, &mut emit, &cancel),
        other => Err(crate::Error::Refused(format!("unknown verb `{other}`"))),
    };
    outside.merge(vfs::take_thread_holds());
    let (user, sys) = self_cpu();
    let (wal, db) = vfs::process_bytes();
    say(&Line::End {
        t: mono_ns(),
        ok: result.is_ok(),
        error: result.as_ref().err().map(|e| e.to_string()),
        vmhwm_kb: self_status_kb("VmHWM").unwrap_or(0),
        cpu_s: (user + sys).as_secs_f64(),
        wal_bytes: wal,
        checkpoint_bytes: db,
        holds_outside: outside.into(),
        backfill_rows: rows,
        batches,
        lock_retries: retries,
        rested_s: rested.as_secs_f64(),
        rests,
        latency_changes,
        latency_peak_ratio,
    });
    if result.is_ok() { 0 } else { 1 }
}

static PRAGMA_ON_OPEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn run_pragma(conn: rusqlite::Connection) -> rusqlite::Result<()> {
    if let Some(p) = PRAGMA_ON_OPEN.get() {
        conn.execute_batch(&format!("PRAGMA {p}"))?;
    }
    Ok(())
}

unsafe extern "C" fn pragma_extension(
    db: *mut rusqlite::ffi::sqlite3,
    err: *mut *mut std::ffi::c_char,
    _: *const rusqlite::ffi::sqlite3_api_routines,
) -> std::ffi::c_int {
    // SAFETY: SQLite calls this with a connection it has just opened; the bridge borrows it without
    // closing it, and the PRAGMA opens no other database.
    unsafe { rusqlite::auto_extension::init_auto_extension(db, err, run_pragma) }
}

/// Runs `PRAGMA <pragma>` on every SQLite connection this process opens from now on.
fn pragma_on_open(pragma: &str) -> Result<(), String> {
    PRAGMA_ON_OPEN
        .set(pragma.to_string())
        .map_err(|_| "a pragma is already set".to_string())?;
    // SAFETY: the extension opens no database and leaves the list of extensions alone.
    unsafe { rusqlite::auto_extension::register_auto_extension(pragma_extension) }
        .map_err(|e| format!("registering the pragma: {e}"))
}

/// A finished child run, as the parent saw it.
#[derive(Debug, Clone, Default)]
pub struct DriveRun {
    pub lines: Vec<Line>,
    pub stderr: String,
}

impl DriveRun {
    pub fn end(&self) -> Option<&Line> {
        self.lines
            .iter()
            .rev()
            .find(|l| matches!(l, Line::End { .. }))
    }

    pub fn ok(&self) -> bool {
        matches!(self.end(), Some(Line::End { ok: true, .. }))
    }

    pub fn error(&self) -> String {
        match self.end() {
            Some(Line::End { error: Some(e), .. }) => e.clone(),
            Some(_) => String::new(),
            None => format!(
                "the driver process ended without a report: {}",
                self.stderr.trim()
            ),
        }
    }

    /// Steps that finished, in order: (label, elapsed ms, holds, WAL bytes).
    pub fn steps(&self) -> Vec<(String, f64, Holds, u64)> {
        self.lines
            .iter()
            .filter_map(|l| match l {
                Line::Done {
                    label,
                    elapsed_ms,
                    holds,
                    wal_bytes,
                    ..
                } => Some((label.clone(), *elapsed_ms, *holds, *wal_bytes)),
                _ => None,
            })
            .collect()
    }
}

/// The parent's side: runs the child to completion, handing each line to `on_line` as it arrives.
pub fn run_child(
    exe: &Path,
    req: &DriveRequest,
    on_line: &mut dyn FnMut(&Line),
) -> Result<DriveRun, String> {
    let mut child = req
        .command(exe)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", exe.display()))?;
    let stderr = child.stderr.take();
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            let _ = std::io::Read::read_to_string(&mut e, &mut s);
        }
        s
    });
    let mut run = DriveRun::default();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if let Ok(l) = serde_json::from_str::<Line>(&line) {
                on_line(&l);
                run.lines.push(l);
            }
        }
    }
    let _ = child.wait();
    run.stderr = err_thread.join().unwrap_or_default();
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let l = Line::Done {
            t: 1,
            index: 3,
            label: "backfill".into(),
            elapsed_ms: 2.5,
            holds: Holds {
                count: 2,
                total_ms: 3.0,
                max_ms: 2.0,
                over_50ms: 0,
            },
            wal_bytes: 4096,
        };
        let s = serde_json::to_string(&l).unwrap();
        assert!(s.starts_with("{\"ev\":\"done\""), "{s}");
        let back: Line = serde_json::from_str(&s).unwrap();
        assert!(matches!(back, Line::Done { index: 3, .. }));
    }

    fn request(url: &str) -> DriveRequest {
        DriveRequest {
            url: url.into(),
            verb: "start".into(),
            name: "n".into(),
            toml: "t".into(),
            quiet_period: Some(Duration::from_secs(2)),
            batch_time: None,
            pause: Some(Duration::ZERO),
            nice: Some(Nice::Ratio(0.5)),
            max_load: Some(MaxLoad::Sessions(8)),
            sqlite_pragma: None,
            allow_copy: true,
        }
    }

    #[test]
    fn request_args_carry_durations() {
        let a = request("sqlite:///x.db").args().join(" ");
        assert!(a.contains("--nice 0.5 --max-load 8"), "{a}");
        assert!(a.contains("--quiet-period 2000000us"), "{a}");
        assert!(a.contains("--pause 0us"), "{a}");
        assert!(!a.contains("--batch-time"), "{a}");
        assert!(a.ends_with("--allow-copy"), "{a}");
    }

    /// `ps` shows every process's arguments to every user: the URL, password included, must reach the
    /// child some other way.
    #[test]
    fn the_child_command_line_never_holds_the_url() {
        let r = request("postgres://zd:s3cret-pw@localhost:5432/app");
        let cmd = r.command(Path::new("/bin/true"));
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(
            !args.iter().any(|a| a.contains("s3cret-pw")),
            "the password is on the command line: {args:?}"
        );
        let env: Vec<_> = cmd.get_envs().collect();
        assert!(
            env.iter().any(
                |(k, v)| *k == DRIVE_URL_ENV && v.is_some_and(|v| v.to_string_lossy() == r.url)
            ),
            "the URL is not in the child's environment"
        );
    }
}
