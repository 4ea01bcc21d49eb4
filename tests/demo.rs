//! `zerodown demo` as a check: the whole lifecycle under live traffic, on a small table, must lose no
//! acknowledged write and leave every row's new column obeying the window semantics.

use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use zerodown::Event;
use zerodown::demo::{DemoOptions, Progress};

fn quick(rows: i64) -> DemoOptions {
    DemoOptions {
        rows,
        rate: 200,
        baseline: Duration::from_millis(500),
        after: Duration::from_millis(500),
        deploy_step: Duration::from_millis(200),
        quiet_period: Duration::from_millis(300),
        ..DemoOptions::default()
    }
}

fn assert_verdict(summary: &str) {
    for line in [
        "lost writes: 0",
        "mismatched rows: 0",
        "errors: 0",
        "verdict: OK",
    ] {
        assert!(
            summary.lines().any(|l| l.trim() == line),
            "`{line}` missing from the summary:\n{summary}"
        );
    }
}

#[test]
fn demo_through_the_library_loses_nothing() {
    let mut lines = Vec::new();
    let mut steps_done = 0;
    let cancel = AtomicBool::new(false);
    let summary = zerodown::demo::run(
        &quick(20_000),
        &mut |p| match p {
            Progress::Line(l) => lines.push(l),
            Progress::Event(Event::StepDone { .. }) => steps_done += 1,
            Progress::Event(_) => {}
        },
        &cancel,
    )
    .unwrap_or_else(|e| panic!("the demo failed: {e}"));
    assert_verdict(&summary);
    assert!(summary.contains("to 20000 rows"), "{summary}");
    assert!(
        summary.contains("indexed (zd_ix_"),
        "the index should be there:\n{summary}"
    );
    // The plan was shown, and every one of its steps ran.
    let progress = lines.join("\n");
    assert!(
        progress.contains("Plan for `demo_accounts_tier`"),
        "{progress}"
    );
    assert_eq!(steps_done, 10, "{progress}");
}

#[test]
fn demo_binary_exits_zero_and_keeps_the_database_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let kept = dir.path().join("kept.db");
    let out = Command::new(env!("CARGO_BIN_EXE_zerodown"))
        .args([
            "demo",
            "--rows",
            "5000",
            "--rate",
            "200",
            "--baseline",
            "500ms",
            "--after",
            "500ms",
            "--quiet-period",
            "300ms",
            "--keep",
        ])
        .arg(&kept)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "status {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert_verdict(&stdout);
    assert!(stderr.contains("zerodown plan"), "{stderr}");

    // The kept database holds the completed migration; zerodown's lock file is gone.
    let conn = rusqlite::Connection::open(&kept).unwrap();
    let (rows, gold): (i64, i64) = conn
        .query_row(
            "SELECT count(*), count(*) FILTER (WHERE tier = 'gold') FROM accounts",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(rows >= 5000 && gold > 0, "{rows} rows, {gold} gold");
    assert!(!dir.path().join("kept.db-zerodown.lock").exists());

    // A second run refuses to overwrite it.
    let again = Command::new(env!("CARGO_BIN_EXE_zerodown"))
        .args(["demo", "--rows", "10", "--keep"])
        .arg(&kept)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already exists"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}
