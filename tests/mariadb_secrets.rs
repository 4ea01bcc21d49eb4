//! The password of a mysql URL never shows: not in the output of any command (plan, start, status,
//! complete, rollback, refusals, a wrong password, a missing table, an unreachable port, TLS required
//! of a server without it), not with every log at trace level, and not in the state table. The
//! password has characters that must be percent-encoded in a URL; neither spelling may show.

mod support;

use mysql::prelude::Queryable;
use std::process::Command;

/// `Zq7@My:Secret/Pw%0!` as written in a URL.
const PASSWORD: &str = "Zq7@My:Secret/Pw%0!";
const PASSWORD_IN_URL: &str = "Zq7%40My%3ASecret%2FPw%250!";
const WRONG: &str = "Wr0ng@Secret#Xy9";
const WRONG_IN_URL: &str = "Wr0ng%40Secret%23Xy9";

#[test]
fn secrets_never_show() {
    let Some(server) = support::mariadb() else {
        return;
    };
    let db = server.fresh_database("secrets");
    let user = format!("{}_owner", db.name);
    let mut c = db.connect();
    for host in ["127.0.0.1", "localhost"] {
        c.query_drop(format!(
            "CREATE USER '{user}'@'{host}' IDENTIFIED BY '{PASSWORD}';
             GRANT ALL PRIVILEGES ON `{db}`.* TO '{user}'@'{host}';",
            db = db.name
        ))
        .unwrap();
    }
    c.query_drop(
        "CREATE TABLE accounts (id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, email varchar(100) NOT NULL, balance bigint NOT NULL) ENGINE=InnoDB;
         INSERT INTO accounts (email, balance) SELECT concat('u', seq, '@x'), seq FROM seq_1_to_500",
    )
    .unwrap();
    let url = db.url_as(&user, PASSWORD_IN_URL);
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, body: &str| {
        let f = dir.path().join(name);
        std::fs::write(&f, body).unwrap();
        f.display().to_string()
    };
    let tier = write(
        "0042_tier.toml",
        "[add_column]\ntable = \"accounts\"\ncolumn = \"tier\"\ntype = \"varchar(20)\"\nnot_null = true\nbackfill = \"CASE WHEN balance > 100 THEN 'gold' ELSE 'standard' END\"\nindex = true\n",
    );
    let score = write(
        "0043_score.toml",
        "[add_column]\ntable = \"accounts\"\ncolumn = \"score\"\ntype = \"int\"\nbackfill = \"balance * 2\"\n",
    );
    let mut seen = String::new();
    let mut run = |url: &str, args: &[&str], ok: bool| {
        let o = Command::new(env!("CARGO_BIN_EXE_zerodown"))
            .args(args)
            .env("DATABASE_URL", url)
            .env("RUST_LOG", "trace")
            .env("ZERODOWN_LOG", "trace")
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
    run(&url, &["plan", &tier], true);
    run(&url, &["plan", &tier, "--format", "json"], true);
    run(&url, &["start", &tier], true);
    run(&url, &["status", "0042_tier"], true);
    run(&url, &["status", "0042_tier", "--format", "json"], true);
    run(
        &url,
        &["complete", "0042_tier", "--quiet-period", "0s"],
        true,
    );
    run(&url, &["start", &score], true);
    run(&url, &["rollback", "0043_score"], true);
    run(&url, &["status"], true);
    // Refusals and failures: a missing table, a missing migration, a wrong password, no server, TLS
    // required of a server without it, a bad parameter.
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
    run(&url, &["rollback", "nope"], false);
    run(&db.url_as(&user, WRONG_IN_URL), &["plan", &tier], false);
    run(&db.url_as(&user, WRONG_IN_URL), &["start", &tier], false);
    let port = support::process::free_port();
    let unreachable = format!(
        "mysql://{user}:{PASSWORD_IN_URL}@127.0.0.1:{port}/{}",
        db.name
    );
    run(&unreachable, &["status"], false);
    run(&unreachable, &["plan", &tier], false);
    run(&format!("{url}?ssl-mode=REQUIRED"), &["status"], false);
    run(&format!("{url}?ssl-mode=BOGUS"), &["status"], false);
    run(
        &format!("{url}?ssl-mode=VERIFY_IDENTITY&ssl-ca=/nonexistent/ca.pem"),
        &["plan", &tier],
        false,
    );
    run(
        &format!("{url}?ssl-mode=REQUIRED&ssl-ca=/ca.pem"),
        &["status"],
        false,
    );
    run(&format!("{url}?bogus=1"), &["plan", &tier], false);
    assert!(
        seen.contains("TRACE") || seen.contains("DEBUG"),
        "logs were on:\n{seen}"
    );
    for secret in [PASSWORD, PASSWORD_IN_URL, WRONG, WRONG_IN_URL] {
        assert!(
            !seen.contains(secret),
            "the password {secret} shows in:\n{seen}"
        );
    }
    let rows: Vec<mysql::Row> = c.query("SELECT * FROM zerodown_migrations").unwrap();
    assert!(rows.len() >= 2);
    // Every value in full (Value's Debug shortens long byte strings).
    let state: String = rows
        .iter()
        .flat_map(|r| r.clone().unwrap())
        .map(|v| match v {
            mysql::Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
            other => other.as_sql(false),
        })
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        state.contains("0042_tier") && state.contains("balance"),
        "{state}"
    );
    for secret in [PASSWORD, PASSWORD_IN_URL] {
        assert!(!state.contains(secret), "{state}");
    }
}
