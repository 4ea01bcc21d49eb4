//! The password of a postgres URL never shows: not in the output of any command (plan, start, status,
//! complete, refusals, a wrong password, an unreachable server), not in `ZERODOWN_LOG=debug` logs, and
//! not in the state row.

mod support;

use std::process::Command;

const PASSWORD: &str = "Zq7-secret-Pw0rd";
const WRONG: &str = "Wr0ng-secret-Xy9";

fn secrets_never_show(major: u32) {
    let Some(pg) = support::pg(major) else {
        return;
    };
    let db = pg.fresh_database("secrets");
    let role = format!("{}_owner", db.name);
    let mut c = db.connect();
    c.batch_execute(&format!(
        "CREATE ROLE \"{role}\" LOGIN SUPERUSER PASSWORD '{PASSWORD}';
         CREATE TABLE accounts (id bigserial PRIMARY KEY, email text NOT NULL, balance bigint NOT NULL);
         INSERT INTO accounts (email, balance) SELECT 'u' || g || '@x', g FROM generate_series(1, 500) g;"
    ))
    .unwrap();
    let url = db.url_as(&role, PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("0042_tier.toml");
    std::fs::write(
        &file,
        "[add_column]\ntable = \"accounts\"\ncolumn = \"tier\"\ntype = \"text\"\nnot_null = true\nbackfill = \"CASE WHEN balance > 100 THEN 'gold' ELSE 'standard' END\"\nindex = true\n",
    )
    .unwrap();
    let file = file.display().to_string();
    let mut seen = String::new();
    let mut run = |url: &str, args: &[&str], ok: bool| {
        let o = Command::new(env!("CARGO_BIN_EXE_zerodown"))
            .args(args)
            .env("DATABASE_URL", url)
            .env("ZERODOWN_LOG", "debug")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(o.status.success(), ok, "zerodown {args:?}: {text}");
        seen.push_str(&text);
    };
    run(&url, &["plan", &file], true);
    run(&url, &["start", &file], true);
    run(&url, &["status", "0042_tier"], true);
    run(&url, &["status", "0042_tier", "--format", "json"], true);
    run(
        &url,
        &["complete", "0042_tier", "--quiet-period", "0s"],
        true,
    );
    // Refusals and failures: a missing table, a missing migration, a wrong password, no server.
    run(
        &url,
        &[
            "start",
            "--name",
            "x",
            "--sql",
            "ALTER TABLE nope ADD COLUMN c int",
        ],
        false,
    );
    run(&url, &["complete", "nope"], false);
    run(&db.url_as(&role, WRONG), &["plan", &file], false);
    let port = support::process::free_port();
    run(
        &format!("postgres://{role}:{PASSWORD}@127.0.0.1:{port}/x?connect_timeout=2"),
        &["status"],
        false,
    );
    assert!(
        seen.contains("DEBUG") || seen.contains("debug"),
        "debug logs were on"
    );
    for secret in [PASSWORD, WRONG] {
        assert!(!seen.contains(secret), "the password shows in:\n{seen}");
    }
    let state: String = c
        .query_one(
            "SELECT string_agg(row_to_json(m)::text, ' ') FROM zerodown.migrations m",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(!state.contains(PASSWORD), "{state}");
}

mod secrets_never_show {
    #[test]
    fn pg15() {
        super::secrets_never_show(15)
    }
    #[test]
    fn pg18() {
        super::secrets_never_show(18)
    }
}
