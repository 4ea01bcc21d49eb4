//! TLS to PostgreSQL through rustls (ring): `sslmode` and `sslrootcert` mean what they mean to libpq.
//! A dedicated server gets a certificate for 127.0.0.1 signed by a throwaway CA (made with the openssl
//! command; the test skips without it).

mod support;

use std::path::Path;
use std::process::Command;
use support::PgServer;
use zerodown::engine::postgres::Postgres;

fn openssl(dir: &Path, args: &[&str]) -> bool {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Is this connection encrypted?
fn ssl(url: &str) -> zerodown::Result<bool> {
    let mut pg = Postgres::open(url)?;
    Ok(pg
        .client()
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0))
}

#[test]
fn sslmodes_mean_what_libpq_means() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let made = openssl(d, &["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=zerodown test CA"])
        && openssl(d, &["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"])
        && std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .is_ok()
        && openssl(d, &["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf"]);
    if !made {
        eprintln!("SKIP: openssl could not make test certificates");
        return;
    }
    let Some(pg) = PgServer::start_dedicated(15) else {
        return;
    };
    let user = support::process::unprivileged_user();
    for f in ["server.crt", "server.key"] {
        let text = std::fs::read_to_string(d.join(f)).unwrap();
        support::process::write_private(&pg.data_dir().join(f), &text, user);
    }
    let db = pg.fresh_database("tls");
    let mut c = db.connect();
    c.batch_execute("ALTER SYSTEM SET ssl = on").unwrap();
    c.batch_execute("SELECT pg_reload_conf()").unwrap();
    // The postmaster reloads in its own time; a new session sees the setting once it has.
    support::wait_for("ssl = on after the reload", || {
        let s: String = db.connect().query_one("SHOW ssl", &[]).unwrap().get(0);
        s == "on"
    });
    let ca = d.join("ca.pem").display().to_string();
    let base = db.url().to_string();
    assert!(!ssl(&format!("{base}?sslmode=disable")).unwrap());
    assert!(ssl(&format!("{base}?sslmode=prefer")).unwrap());
    assert!(ssl(&format!("{base}?sslmode=require")).unwrap());
    assert!(ssl(&format!("{base}?sslmode=verify-full&sslrootcert={ca}")).unwrap());
    // Not signed by a system root: verify-full without sslrootcert refuses, and names the host.
    let e = ssl(&format!("{base}?sslmode=verify-full"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("127.0.0.1") && !e.contains("zerodown@"), "{e}");
    // The certificate names 127.0.0.1, not localhost: verify-full refuses, verify-ca accepts.
    let local = base.replace("127.0.0.1", "localhost");
    assert!(ssl(&format!("{local}?sslmode=verify-full&sslrootcert={ca}")).is_err());
    assert!(ssl(&format!("{local}?sslmode=verify-ca&sslrootcert={ca}")).unwrap());
    // A missing root file is named.
    let e = ssl(&format!(
        "{base}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("/nonexistent/ca.pem"), "{e}");
}
