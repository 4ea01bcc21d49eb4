//! The load-under-migration benchmark, kept from rotting: a tiny run of `zerodown-bench` (debug build,
//! a few thousand rows, a few seconds) must go through every scenario and produce a sound report. The
//! figures themselves are not asserted (BENCHMARKS.md holds them); correctness is: zerodown's lifecycle
//! under load ends with every row right and no application error.

//!
//! PostgreSQL and MariaDB run the same way against the suite's throwaway servers (`tests/support`); a
//! missing engine is a skip, or a failure under `ZERODOWN_REQUIRE_ENGINES=1`. The ignored test
//! `bench_on_throwaway_server` is how `scripts/bench.sh` runs the published figures on a server of its
//! own without a hand-started one.

mod support;

use rusqlite::Connection;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The tiny-run flags every engine's smoke run shares.
const TINY: &[&str] = &[
    "--rows",
    "3000",
    "--calibrate",
    "300ms",
    "--load",
    "0.1",
    "--baseline",
    "400ms",
    "--after",
    "300ms",
    "--deploy",
    "100ms",
    "--quiet-period",
    "200ms",
];

/// Runs zerodown-bench with `args` (and a server's URL in the environment, never on a command line,
/// where `ps` shows it) and returns (stdout, its JSON lines). With a URL, the command lines of the
/// benchmark's children (zerodown's part, `zerodown-bench drive`) are watched while it runs: none may
/// hold the URL's credentials.
fn run_bench(args: &[String], url: Option<&str>, json: &std::path::Path) -> (String, Vec<Value>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zerodown-bench"));
    if let Some(u) = url {
        cmd.env("ZERODOWN_BENCH_URL", u);
    }
    let child = cmd
        .args(args)
        .arg("--json")
        .arg(json)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (pid, done) = (child.id(), done.clone());
        std::thread::spawn(move || children_command_lines(pid, &done))
    };
    let out = child.wait_with_output().unwrap();
    done.store(true, Ordering::Relaxed);
    let seen = watcher.join().unwrap();
    if let Some(u) = url {
        let credentials = &u[u.find("://").unwrap() + 3..u.rfind('@').unwrap()];
        assert!(
            seen.iter().any(|c| c.contains(" drive ")),
            "no child seen: {seen:?}"
        );
        for c in &seen {
            assert!(
                !c.contains(credentials),
                "a child's command line holds the password: {c}"
            );
        }
    }
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "zerodown-bench failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let lines: Vec<Value> = std::fs::read_to_string(json)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (stdout, lines)
}

/// What every engine's tiny run must show: the limits measured, zerodown's lifecycle under load with
/// every row right and no application error, the naive statements run, the lock views sampled.
fn assert_server_run(engine: &str, lines: &[Value], expect: &[&str]) {
    let names: Vec<&str> = lines
        .iter()
        .map(|l| l["scenario"].as_str().unwrap())
        .collect();
    assert_eq!(names, expect, "{engine}");
    let by = |n: &str| lines.iter().find(|l| l["scenario"] == n).unwrap();
    let limit = by("limit-update");
    assert!(
        limit["backfill_rows_per_s"].as_f64().unwrap() > 0.0,
        "{engine}: {limit}"
    );
    assert!(
        limit["wal_bytes"].as_u64().unwrap() > 0,
        "{engine}: {limit}"
    );
    let lz = by("limit-zerodown");
    assert!(lz["failure"].is_null(), "{engine}: {lz}");
    assert!(
        lz["backfill_ratio"].as_f64().unwrap() > 0.0,
        "{engine}: {lz}"
    );
    assert!(lz["wal_bytes"].as_u64().unwrap() > 0, "{engine}: {lz}");
    assert!(lz["peak_rss_kb"].as_u64().unwrap() > 0, "{engine}: {lz}");
    for name in expect.iter().filter(|n| n.starts_with("zerodown")) {
        let z = by(name);
        assert!(z["failure"].is_null(), "{engine} {name}: {z}");
        assert_eq!(z["mismatched_rows"], 0, "{engine} {name}: {z}");
        assert_eq!(z["errors"], serde_json::json!({}), "{engine} {name}: {z}");
        assert!(
            z["before"]["ops"].as_u64().unwrap() > 0,
            "{engine} {name}: {z}"
        );
        assert!(
            z["during"]["ops"].as_u64().unwrap() > 0,
            "{engine} {name}: {z}"
        );
        assert!(
            z["longest_lock_ms"].as_f64().is_some(),
            "{engine} {name}: {z}"
        );
        assert!(
            z["sampled_lock_ms"].as_f64().is_some(),
            "{engine} {name}: {z}"
        );
        assert!(z["wal_bytes"].as_u64().is_some(), "{engine} {name}: {z}");
        assert!(
            !z["targets"].as_array().unwrap().is_empty(),
            "{engine} {name}: {z}"
        );
    }
    let naive = by("naive");
    assert!(naive["failure"].is_null(), "{engine}: {naive}");
    assert_eq!(
        naive["steps"].as_array().unwrap().len(),
        5,
        "{engine}: {naive}"
    );
    assert_eq!(naive["mismatched_rows"], 0, "{engine}: {naive}");
    // One ALTER that rewrites the table, then the index; the generated column computes every value, and
    // no application error shows the application never wrote the column (the column would refuse it).
    let rewrite = by("naive-rewrite");
    assert!(rewrite["failure"].is_null(), "{engine}: {rewrite}");
    assert_eq!(
        rewrite["steps"].as_array().unwrap().len(),
        2,
        "{engine}: {rewrite}"
    );
    assert_eq!(rewrite["mismatched_rows"], 0, "{engine}: {rewrite}");
    assert_eq!(
        rewrite["errors"],
        serde_json::json!({}),
        "{engine}: {rewrite}"
    );
    // On a tiny table the naive rewrite can end before the load issues an operation, so only the
    // report's shape is checked here; what the rewrite does to the load is the benchmark's business.
    assert!(
        rewrite["during"]["ops"].as_u64().is_some(),
        "{engine}: {rewrite}"
    );
}

/// The command lines of `pid`'s children, read from /proc until `done`: what `ps` shows any user.
/// Each of its threads lists the children it started in `task/<tid>/children`, so a poll reads a few
/// small files, not all of /proc, and leaves the machine to the benchmark.
fn children_command_lines(pid: u32, done: &AtomicBool) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    while !done.load(Ordering::Relaxed) {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten();
        for task in tasks.flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for child in children.split_whitespace() {
                if let Ok(raw) = std::fs::read(format!("/proc/{child}/cmdline")) {
                    let line = String::from_utf8_lossy(&raw).replace('\0', " ");
                    if !line.is_empty() && !seen.contains(&line) {
                        seen.push(line);
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    seen
}

fn server_args(extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = TINY.iter().map(|s| s.to_string()).collect();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

#[test]
fn postgres_15_runs_and_reports() {
    let Some(pg) = support::pg(15) else { return };
    let db = pg.fresh_database("zb");
    let dir = tempfile::tempdir().unwrap();
    let (stdout, lines) = run_bench(
        &server_args(&[]),
        Some(db.url()),
        &dir.path().join("r.jsonl"),
    );
    assert!(stdout.contains("engine: PostgreSQL 15"), "{stdout}");
    assert!(
        !stdout.contains(":zerodown@"),
        "the password is printed:\n{stdout}"
    );
    assert_server_run(
        "PostgreSQL 15",
        &lines,
        &[
            "limit-update",
            "limit-zerodown",
            "zerodown",
            "naive",
            "naive-rewrite",
        ],
    );
}

#[test]
fn mariadb_runs_and_reports_with_the_copy_variant() {
    let Some(m) = support::mariadb() else { return };
    let db = m.fresh_database("zb");
    let dir = tempfile::tempdir().unwrap();
    let (stdout, lines) = run_bench(
        &server_args(&["--allow-copy"]),
        Some(db.url()),
        &dir.path().join("r.jsonl"),
    );
    assert!(stdout.contains("engine: MariaDB"), "{stdout}");
    assert_server_run(
        "MariaDB",
        &lines,
        &[
            "limit-update",
            "limit-zerodown",
            "zerodown",
            "zerodown-copy",
            "naive",
            "naive-rewrite",
        ],
    );
    // Without the CHECK zerodown never copies; with it, the copy is the one long lock.
    let z = lines.iter().find(|l| l["scenario"] == "zerodown").unwrap();
    assert!(
        !z["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["label"].as_str().unwrap().contains("CHECK")),
        "{z}"
    );
}

/// Not a test: `scripts/bench.sh` runs the published figures through this, on a server of its own
/// started by the suite's launcher, tuned for a 1M-row table (PostgreSQL: shared_buffers 256MB,
/// max_wal_size 1GB; MariaDB: a 512MB buffer pool and 256MB redo log), with its output in files.
/// `ZERODOWN_BENCH_ENGINE` = pg15 | pg18 | mariadb; `ZERODOWN_BENCH_ARGS`: the benchmark's flags.
#[test]
#[ignore]
fn bench_on_throwaway_server() {
    let engine = std::env::var("ZERODOWN_BENCH_ENGINE").expect("ZERODOWN_BENCH_ENGINE");
    let args: Vec<String> = std::env::var("ZERODOWN_BENCH_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    let (_keep_pg, _keep_m, url);
    if let Some(major) = engine.strip_prefix("pg") {
        let major: u32 = major.parse().expect("pg<major>");
        let pg = support::PgServer::start_dedicated(major).expect("PostgreSQL installed");
        for setting in ["shared_buffers = '256MB'", "max_wal_size = '1GB'"] {
            pg.admin(|c| c.batch_execute(&format!("ALTER SYSTEM SET {setting}")))
                .unwrap();
        }
        pg.stop();
        pg.start();
        // The cached admin connection died with the old server: the first use finds out.
        let _ = pg.admin(|c| c.simple_query("SELECT 1").map(|_| ()));
        url = pg.fresh_database("zb").url().to_string();
        eprintln!(
            "PostgreSQL {major} in {} (log: {})",
            pg.dir().display(),
            pg.log_path().display()
        );
        _keep_pg = Some(pg);
        _keep_m = None;
    } else {
        let m = support::MariaDbServer::start_dedicated(support::MariaDbOptions {
            binlog: false,
            extra_args: vec![
                "--innodb-buffer-pool-size=512M".into(),
                "--innodb-log-file-size=256M".into(),
            ],
        })
        .expect("MariaDB installed");
        url = m.fresh_database("zb").url().to_string();
        eprintln!(
            "MariaDB in {} (log: {})",
            m.dir().display(),
            m.log_path().display()
        );
        _keep_m = Some(m);
        _keep_pg = None;
    }
    let status = Command::new(env!("CARGO_BIN_EXE_zerodown-bench"))
        .args(&args)
        .env("ZERODOWN_BENCH_URL", &url)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn every_scenario_runs_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_zerodown-bench"))
        .args(TINY)
        .arg("--dir")
        .arg(dir.path().join("db"))
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "zerodown-bench failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for heading in [
        "machine:",
        "command:",
        "== limit-update",
        "== zerodown —",
        "== naive",
        "== summary",
    ] {
        assert!(stdout.contains(heading), "`{heading}` missing:\n{stdout}");
    }
    let lines: Vec<Value> = std::fs::read_to_string(&json)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = lines
        .iter()
        .map(|l| l["scenario"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "limit-update",
            "limit-zerodown",
            "zerodown",
            "zerodown-noindex",
            "naive"
        ]
    );
    // The JSON lines on stdout are the same as the file's.
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with('{')).count(),
        lines.len()
    );
    let by = |n: &str| lines.iter().find(|l| l["scenario"] == n).unwrap();

    let limit = by("limit-update");
    assert!(limit["backfill_rows_per_s"].as_f64().unwrap() > 0.0);
    assert!(limit["wal_bytes"].as_u64().unwrap() > 0);

    let lz = by("limit-zerodown");
    assert!(lz["failure"].is_null(), "{lz}");
    assert!(lz["backfill_ratio"].as_f64().unwrap() > 0.0);
    assert!(lz["peak_rss_kb"].as_u64().unwrap() > 0);

    for name in ["zerodown", "zerodown-noindex"] {
        let z = by(name);
        assert!(z["failure"].is_null(), "{name}: {z}");
        assert_eq!(z["mismatched_rows"], 0, "{name}: {z}");
        assert_eq!(z["errors"], serde_json::json!({}), "{name}: {z}");
        let phases: Vec<&str> = z["phases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["phase"].as_str().unwrap())
            .collect();
        for p in [
            "before",
            "expand",
            "dual-write",
            "backfill",
            "contract: set NOT NULL",
            "after",
        ] {
            assert!(phases.contains(&p), "{name}: phase {p} missing: {phases:?}");
        }
        assert_eq!(
            phases.contains(&"contract: create index"),
            name == "zerodown",
            "{name}: {phases:?}"
        );
        assert!(z["before"]["ops"].as_u64().unwrap() > 0, "{name}: {z}");
        assert!(z["during"]["ops"].as_u64().unwrap() > 0, "{name}: {z}");
        assert!(z["longest_lock_ms"].as_f64().unwrap() > 0.0, "{name}: {z}");
        assert!(z["wal_bytes"].as_u64().unwrap() > 0, "{name}: {z}");
        assert!(!z["targets"].as_array().unwrap().is_empty(), "{name}: {z}");
    }

    let naive = by("naive");
    assert!(naive["failure"].is_null(), "{naive}");
    assert_eq!(naive["steps"].as_array().unwrap().len(), 5, "{naive}");
    assert_eq!(naive["mismatched_rows"], 0, "{naive}");
}

/// SQLite cannot add a STORED generated column by ALTER TABLE: asking for `naive-rewrite` there is a
/// clear error before anything is loaded.
#[test]
fn sqlite_refuses_naive_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_zerodown-bench"))
        .args(TINY)
        .args(["--scenarios", "naive,naive-rewrite", "--dir"])
        .arg(dir.path().join("db"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("scenario naive-rewrite runs on PostgreSQL and MariaDB only")
            && stderr.contains("cannot add a STORED generated column on SQLite"),
        "{stderr}"
    );
    assert!(!stderr.contains("loading"), "{stderr}");
}

/// The measuring VFS counts WAL bytes and write-lock holds per thread (it becomes the process's
/// default VFS, so this lives here, in its own test process, not among the library's unit tests).
#[test]
fn the_vfs_counts_wal_bytes_and_write_lock_holds() {
    use zerodown::bench::vfs::{install, process_bytes, take_thread_holds, thread_bytes};
    assert!(install());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let conn = Connection::open(&path).unwrap();
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
        .unwrap();
    conn.execute_batch("CREATE TABLE t(x)").unwrap();
    let (wal0, _) = thread_bytes();
    take_thread_holds();
    conn.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (randomblob(10000));")
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    conn.execute_batch("COMMIT").unwrap();
    let (wal1, _) = thread_bytes();
    assert!(wal1 - wal0 >= 10_000, "{wal0} → {wal1}");
    let holds = take_thread_holds();
    assert_eq!(holds.count, 1, "{holds:?}");
    assert!(holds.max_ns >= 20_000_000, "{holds:?}");
    // A reader takes no write lock.
    let n: i64 = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(take_thread_holds().count, 0);
    // Another thread's writes are not this thread's, but they are the process's.
    let p = path.clone();
    std::thread::spawn(move || {
        let c = Connection::open(p).unwrap();
        c.execute_batch("INSERT INTO t VALUES (1)").unwrap();
    })
    .join()
    .unwrap();
    assert_eq!(thread_bytes().0, wal1);
    assert!(process_bytes().0 > wal1 - wal0);
    assert_eq!(take_thread_holds().count, 0);
}
