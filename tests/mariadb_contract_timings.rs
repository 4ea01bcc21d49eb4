//! What MariaDB does for each of zerodown's steps, measured: the algorithm and lock the step asked for,
//! how long it took, and the slowest application write while it ran (a writer updates a row every few
//! milliseconds throughout). Three migrations on one table: a derived NOT NULL column with a default and
//! an index (all online), a CHECK (COPY only on MariaDB 10.11, so behind `--allow-copy`), and a FOREIGN
//! KEY (instant with foreign_key_checks=0, plus zerodown's batched orphan count).
//!
//! Quick by default (20,000 rows: it proves each step runs as planned and writes never stall for long);
//! `ZERODOWN_MEASURE_ROWS=1000000 cargo test --release --test mariadb_contract_timings -- --nocapture`
//! prints the table quoted in issue #4's closing note.

mod support;

use mysql::prelude::Queryable;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zerodown::spec::{AddColumn, Migration, Reference};
use zerodown::{DatabaseUrl, Event, Settings};

const TIER_EXPR: &str = "CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END";

fn rows() -> i64 {
    std::env::var("ZERODOWN_MEASURE_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

fn migration(name: &str, f: impl FnOnce(&mut AddColumn)) -> Migration {
    let mut a = AddColumn::new("accounts", name, "varchar(20)");
    f(&mut a);
    Migration::adding(name, a)
}

/// One measured step: what it is, the SQL's algorithm/lock clause, when it ran and for how long.
struct Measured {
    command: &'static str,
    summary: String,
    clause: String,
    began: Instant,
    ended: Instant,
    elapsed: Duration,
}

/// The slowest write that overlapped a step, known only once the writer has stopped: a write blocked
/// by the step is recorded when it finally completes, after the step.
fn worst_write(m: &Measured, writes: &[(Instant, Duration)]) -> Duration {
    writes
        .iter()
        .filter(|(at, lat)| *at + *lat >= m.began && *at <= m.ended)
        .map(|(_, lat)| *lat)
        .max()
        .unwrap_or_default()
}

/// The `ALGORITHM=…, LOCK=…` (or foreign_key_checks) part of a step's SQL, for the table.
fn clause(sql: &[zerodown::plan::Statement]) -> String {
    let all = zerodown::plan::Statement::texts(sql).join(" ");
    let mut parts = Vec::new();
    for key in ["ALGORITHM=", "LOCK=", "foreign_key_checks="] {
        if let Some(i) = all.find(key) {
            let rest = &all[i..];
            let end = rest.find([',', ' ', ';']).unwrap_or(rest.len());
            parts.push(rest[..end].to_string());
        }
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

/// Runs a zerodown command and times each step.
fn measure(
    command: &'static str,
    run: impl FnOnce(&mut dyn FnMut(Event)) -> zerodown::Result<()>,
) -> Vec<Measured> {
    let mut out: Vec<Measured> = Vec::new();
    let mut current: Option<(Instant, String, String)> = None;
    let mut on_event = |e: Event| match e {
        Event::StepStarted { step, .. } => {
            current = Some((Instant::now(), step.summary.clone(), clause(&step.sql)));
        }
        Event::StepDone { elapsed, .. } => {
            if let Some((began, summary, clause)) = current.take() {
                out.push(Measured {
                    command,
                    summary,
                    clause,
                    began,
                    ended: Instant::now(),
                    elapsed,
                });
            }
        }
        _ => {}
    };
    run(&mut on_event).unwrap_or_else(|e| panic!("{command}: {e}"));
    out
}

#[test]
fn each_step_runs_as_planned_and_writes_keep_flowing() {
    let Some(server) = support::mariadb() else {
        return;
    };
    let n = rows();
    let db = server.fresh_database("contract_timings");
    let mut c = db.connect();
    c.query_drop(
        "CREATE TABLE tiers (name varchar(20) NOT NULL PRIMARY KEY) ENGINE=InnoDB;
         INSERT INTO tiers VALUES ('gold'), ('standard');
         CREATE TABLE accounts (id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, email varchar(100) NOT NULL,
           balance bigint NOT NULL, KEY accounts_email (email), KEY accounts_balance (balance)) ENGINE=InnoDB",
    )
    .unwrap();
    let loaded = Instant::now();
    let mut from = 1;
    while from <= n {
        let to = (from + 99_999).min(n);
        c.query_drop(format!(
            "INSERT INTO accounts (email, balance) SELECT concat('u', seq, '@x'), (seq * 7919) % 20000 FROM seq_{from}_to_{to}"
        ))
        .unwrap();
        from = to + 1;
    }
    eprintln!("loaded {n} rows in {:.1?}", loaded.elapsed());

    // The application: one writer updating a random row every 5 ms, latency per write.
    let writes = Arc::new(Mutex::new(Vec::<(Instant, Duration)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (writes, stop, url) = (writes.clone(), stop.clone(), db.url().to_string());
        std::thread::spawn(move || {
            let mut conn = mysql::Conn::new(mysql::Opts::from_url(&url).unwrap()).unwrap();
            let mut i: i64 = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let id = (i * 7_919) % n + 1;
                let began = Instant::now();
                conn.exec_drop(
                    "UPDATE accounts SET balance = balance + 1 WHERE id = ?",
                    (id,),
                )
                .unwrap();
                writes.lock().unwrap().push((began, began.elapsed()));
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };

    let url = DatabaseUrl::parse(db.url()).unwrap();
    let cancel = AtomicBool::new(false);
    let settings = Settings {
        quiet_period: Some(Duration::ZERO),
        allow_copy: true,
        ..Settings::default()
    };
    let migrations = [
        migration("tier", |a| {
            a.not_null = true;
            a.backfill = Some(TIER_EXPR.into());
            a.default = Some("'standard'".into());
            a.index = true;
        }),
        migration("tier_checked", |a| {
            a.backfill = Some(TIER_EXPR.into());
            a.check = Some("tier_checked IN ('gold', 'standard')".into());
        }),
        migration("tier_ref", |a| {
            a.backfill = Some(TIER_EXPR.into());
            a.references = Some(Reference {
                table: "tiers".into(),
                column: Some("name".into()),
            });
        }),
    ];
    let mut table = Vec::new();
    for m in &migrations {
        table.extend(measure("start", |emit| {
            zerodown::start(&url, m, &settings, emit, &cancel).map(|_| ())
        }));
        table.extend(measure("complete", |emit| {
            zerodown::complete(&url, &m.name, &settings, emit, &cancel)
        }));
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let writes = writes.lock().unwrap();

    println!(
        "\nMariaDB {} — {n} rows, one writer every 5 ms\n{:<9} {:<70} {:<36} {:>10} {:>12}",
        server.version(),
        "command",
        "step",
        "algorithm / lock",
        "time",
        "worst write"
    );
    for m in &table {
        println!(
            "{:<9} {:<70} {:<36} {:>10.3?} {:>12.3?}",
            m.command,
            m.summary.chars().take(70).collect::<String>(),
            m.clause,
            m.elapsed,
            worst_write(m, &writes)
        );
    }

    // What the plan promised, the server did: each step that names an online algorithm ran with it, and
    // no write waited behind one of them for longer than the lock guard's timeout and a margin.
    for m in &table {
        let online = m.clause.contains("LOCK=NONE") || m.clause.contains("ALGORITHM=INSTANT");
        let worst = worst_write(m, &writes);
        if online && !m.clause.contains("COPY") {
            assert!(
                worst < Duration::from_secs(2),
                "{} `{}` ({}) stalled a write for {:?}",
                m.command,
                m.summary,
                m.clause,
                worst
            );
        }
    }
    let tier: i64 = c
        .query_first(format!(
            "SELECT count(*) FROM accounts WHERE tier IS NULL OR tier <> {TIER_EXPR} OR tier_ref IS NULL OR tier_checked IS NULL"
        ))
        .unwrap()
        .unwrap();
    assert_eq!(tier, 0, "every row filled");
}
