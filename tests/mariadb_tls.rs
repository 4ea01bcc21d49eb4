//! TLS to MySQL/MariaDB through the mysql crate's rustls (ring): `ssl-mode` and `ssl-ca` mean what they
//! mean to the MySQL client. A dedicated MariaDB 10.11 gets a certificate for 127.0.0.1 signed by a
//! throwaway CA (made with the openssl command; the test skips without it); the shared server, which
//! has no certificate, stands for a server without TLS.

#[path = "support/mariadb_tls.rs"]
mod mariadb_tls;
mod support;

use mysql::prelude::Queryable;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use zerodown::engine::mysql::MySql;
use zerodown::spec::{AddColumn, Migration};
use zerodown::{DatabaseUrl, Settings, StartOutcome};

/// The session's cipher: empty in plain text.
fn cipher(url: &str) -> zerodown::Result<String> {
    let mut my = MySql::open(url)?;
    let row: Option<(String, String)> = my
        .conn()
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .unwrap();
    Ok(row.map(|r| r.1).unwrap_or_default())
}

fn with(base: &str, query: &str) -> String {
    format!("{base}?{query}")
}

fn ca(path: &Path) -> String {
    path.display().to_string()
}

/// An error message, checked to keep the password out (the harness user's password is its name, so
/// only distinctive passwords are checked; tests/mariadb_secrets.rs covers the rest).
fn fails(url: &str, password: Option<&str>) -> String {
    let e = cipher(url)
        .err()
        .unwrap_or_else(|| panic!("{url} connected"))
        .to_string();
    if let Some(p) = password {
        assert!(!e.contains(p), "{e}");
    }
    eprintln!("refused as expected: {e}");
    e
}

#[test]
fn ssl_modes_on_a_server_with_tls_and_the_lifecycle_over_it() {
    let Some(tls) = mariadb_tls::start() else {
        return;
    };
    let db = tls.server.fresh_database("tls");
    let base = db.url().to_string();
    let pw = None;
    let good = ca(&tls.ca);
    let wrong = ca(&tls.wrong_ca);

    assert_eq!(cipher(&with(&base, "ssl-mode=DISABLED")).unwrap(), "");
    assert_ne!(
        cipher(&base).unwrap(),
        "",
        "PREFERRED (the default) encrypts"
    );
    assert_ne!(cipher(&with(&base, "ssl-mode=PREFERRED")).unwrap(), "");
    assert_ne!(cipher(&with(&base, "ssl-mode=REQUIRED")).unwrap(), "");
    assert_ne!(
        cipher(&with(&base, &format!("ssl-mode=VERIFY_CA&ssl-ca={good}"))).unwrap(),
        ""
    );
    assert_ne!(
        cipher(&with(
            &base,
            &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={good}")
        ))
        .unwrap(),
        ""
    );
    // ssl-ca alone means VERIFY_CA.
    assert_ne!(cipher(&with(&base, &format!("ssl-ca={good}"))).unwrap(), "");

    // The wrong CA: refused, naming the CA file.
    for mode in ["VERIFY_CA", "VERIFY_IDENTITY"] {
        let e = fails(&with(&base, &format!("ssl-mode={mode}&ssl-ca={wrong}")), pw);
        assert!(
            e.contains("signed neither by the CA in ssl-ca") && e.contains(&wrong),
            "{mode}: {e}"
        );
    }
    // No ssl-ca: a private CA is no Mozilla root.
    let e = fails(&with(&base, "ssl-mode=VERIFY_IDENTITY"), pw);
    assert!(e.contains("name the server's CA with ssl-ca"), "{e}");
    // The certificate names 127.0.0.1, not localhost: VERIFY_IDENTITY refuses and names the host;
    // VERIFY_CA (no host check) accepts.
    let local = base.replace("127.0.0.1", "localhost");
    let e = fails(
        &with(&local, &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={good}")),
        pw,
    );
    assert!(e.contains("not valid for the host name `localhost`"), "{e}");
    assert_ne!(
        cipher(&with(&local, &format!("ssl-mode=VERIFY_CA&ssl-ca={good}"))).unwrap(),
        ""
    );
    // A missing ssl-ca file is named.
    let e = fails(
        &with(&base, "ssl-mode=VERIFY_IDENTITY&ssl-ca=/nonexistent/ca.pem"),
        pw,
    );
    assert!(e.contains("/nonexistent/ca.pem"), "{e}");

    // A user created REQUIRE SSL: refused in plain text, admitted over TLS.
    let user = format!("{}_ssl", db.name);
    let secret = "Tls-Only-9%xy";
    let mut c = db.connect();
    for host in ["127.0.0.1", "localhost"] {
        c.query_drop(format!(
            "CREATE USER '{user}'@'{host}' IDENTIFIED BY '{secret}' REQUIRE SSL;
             GRANT ALL PRIVILEGES ON `{db}`.* TO '{user}'@'{host}';",
            db = db.name
        ))
        .unwrap();
    }
    let ssl_user = db.url_as(&user, "Tls-Only-9%25xy");
    let e = fails(&with(&ssl_user, "ssl-mode=DISABLED"), Some(secret));
    assert!(
        e.contains("access denied") && e.contains("REQUIRE SSL"),
        "{e}"
    );
    let verified = with(
        &ssl_user,
        &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={good}"),
    );
    assert_ne!(cipher(&verified).unwrap(), "");

    // The whole lifecycle, start + complete, as that user: every session zerodown opens must be TLS.
    c.query_drop(
        "CREATE TABLE accounts (id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, balance bigint NOT NULL) ENGINE=InnoDB;
         INSERT INTO accounts (balance) SELECT seq * 37 FROM seq_1_to_3000",
    )
    .unwrap();
    let m = Migration::adding(
        "0042_tier",
        AddColumn {
            not_null: true,
            default: Some("'standard'".into()),
            backfill: Some("CASE WHEN balance > 50000 THEN 'gold' ELSE 'standard' END".into()),
            index: true,
            ..AddColumn::new("accounts", "tier", "varchar(20)")
        },
    );
    let settings = Settings {
        quiet_period: Some(Duration::ZERO),
        batch_time: Some(Duration::from_millis(10)),
        ..Settings::default()
    };
    let url = DatabaseUrl::parse(&verified).unwrap();
    let stop = AtomicBool::new(false);
    let out = zerodown::start(&url, &m, &settings, &mut |_| {}, &stop).unwrap();
    assert!(
        matches!(out, StartOutcome::Backfilled { rows: 3000 }),
        "{out:?}"
    );
    zerodown::complete(&url, "0042_tier", &settings, &mut |_| {}, &stop).unwrap();
    let wrong_tier: Option<i64> = c
        .query_first(
            "SELECT count(*) FROM accounts WHERE tier IS NULL OR tier <> CASE WHEN balance > 50000 THEN 'gold' ELSE 'standard' END",
        )
        .unwrap();
    assert_eq!(wrong_tier, Some(0));
    let nullable: Option<String> = c
        .query_first("SELECT IS_NULLABLE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'accounts' AND COLUMN_NAME = 'tier'")
        .unwrap();
    assert_eq!(nullable.as_deref(), Some("NO"));
}

#[test]
fn ssl_modes_on_a_server_without_tls() {
    let Some(server) = support::mariadb() else {
        return;
    };
    let db = server.fresh_database("no_tls");
    let base = db.url().to_string();
    let pw = None;
    let have: Option<(String, String)> = db
        .connect()
        .query_first("SHOW GLOBAL VARIABLES LIKE 'have_ssl'")
        .unwrap();
    assert_ne!(
        have.map(|h| h.1).as_deref(),
        Some("YES"),
        "the shared server has no certificate"
    );
    // PREFERRED falls back to plain text, and the plan says so.
    assert_eq!(cipher(&with(&base, "ssl-mode=PREFERRED")).unwrap(), "");
    assert_eq!(cipher(&with(&base, "ssl-mode=DISABLED")).unwrap(), "");
    db.connect()
        .query_drop("CREATE TABLE t (id int PRIMARY KEY)")
        .unwrap();
    let m = Migration::from_sql(
        "m",
        "ALTER TABLE t ADD COLUMN c int",
        zerodown::spec::Dialect::Mysql,
        "--sql",
    )
    .unwrap();
    let plan = zerodown::plan(&DatabaseUrl::parse(&base).unwrap(), &m).unwrap();
    assert!(
        plan.notes
            .iter()
            .any(|n| n.contains("offers no TLS, so zerodown connects in plain text")),
        "{:?}",
        plan.notes
    );
    // Every mode that needs TLS refuses, saying the server offers none.
    for mode in ["REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY"] {
        let e = fails(&with(&base, &format!("ssl-mode={mode}")), pw);
        assert!(
            e.contains(&format!(
                "ssl-mode={mode} needs TLS, but the server offers none"
            )),
            "{e}"
        );
    }
}
