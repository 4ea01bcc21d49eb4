//! Smoke tests of the throwaway-server harness in tests/support.

mod support;

use std::time::Instant;

use mysql::prelude::Queryable;
use support::{MariaDbOptions, MariaDbServer, PgServer};

fn pg_smoke(major: u32) {
    let t0 = Instant::now();
    let Some(pg) = support::pg(major) else { return };
    eprintln!(
        "PostgreSQL {major}: shared server ready after {:?}",
        t0.elapsed()
    );
    assert_eq!(pg.major(), major);

    let db = pg.fresh_database("harness smoke");
    assert!(db.url.starts_with("postgres://postgres:"), "{}", db.url);
    assert!(
        db.url.contains(&format!("@127.0.0.1:{}/", pg.port())),
        "{}",
        db.url
    );
    let mut c = db.connect();
    let version: String = c.query_one("SELECT version()", &[]).unwrap().get(0);
    assert!(
        version.starts_with(&format!("PostgreSQL {major}.")),
        "{version}"
    );
    pg.assert_own_server(&mut c);
    let current: String = c
        .query_one("SELECT current_database()", &[])
        .unwrap()
        .get(0);
    assert_eq!(current, db.name);

    // Two fresh databases are distinct and empty.
    let other = pg.fresh_database("harness smoke");
    assert_ne!(db.name, other.name);
    c.batch_execute("CREATE TABLE t (id bigint PRIMARY KEY); INSERT INTO t VALUES (1)")
        .unwrap();
    let mut c2 = other.connect();
    let n: i64 = c2
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 0);

    // The settings for fast tests are in force, and the socket lives in the server's directory.
    let fsync: String = c.query_one("SHOW fsync", &[]).unwrap().get(0);
    assert_eq!(fsync, "off");
    assert!(
        pg.socket_dir()
            .join(format!(".s.PGSQL.{}", pg.port()))
            .exists()
    );

    // A non-superuser application role works.
    let app_url = db.create_app_role();
    let mut app = postgres::Client::connect(&app_url, postgres::NoTls).unwrap();
    let is_super: String = app.query_one("SHOW is_superuser", &[]).unwrap().get(0);
    assert_eq!(is_super, "off");
    app.batch_execute("CREATE TABLE app_t (id int)").unwrap();
}

#[test]
fn pg15_starts_and_gives_fresh_databases() {
    pg_smoke(15);
}

#[test]
fn pg18_starts_and_gives_fresh_databases() {
    pg_smoke(18);
}

/// A listener on 127.0.0.1 holding a port, and that port forced as the next start's first choice.
fn occupy_next_port() -> std::net::TcpListener {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    support::process::force_next_port(l.local_addr().unwrap().port());
    l
}

#[test]
fn pg_dedicated_restart() {
    // The first port tried is taken: the start retries on another one.
    let taken = occupy_next_port();
    let Some(pg) = PgServer::start_dedicated(15) else {
        return;
    };
    assert_ne!(pg.port(), taken.local_addr().unwrap().port());
    assert!(
        pg.log_tail(100).contains("port clash"),
        "{}",
        pg.log_tail(100)
    );
    let db = pg.fresh_database("restart");
    let mut c = db.connect();
    c.batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)")
        .unwrap();
    let pid = pg.pid();
    let port = pg.port();
    let t0 = Instant::now();
    pg.restart();
    eprintln!("PG restart took {:?}", t0.elapsed());
    assert_ne!(pg.pid(), pid);
    assert_eq!(pg.port(), port);
    // The old connection is gone; a new one works and sees the committed rows.
    assert!(c.query_one("SELECT 1", &[]).is_err());
    let mut c = db.connect();
    pg.assert_own_server(&mut c);
    let n: i64 = c.query_one("SELECT count(*) FROM t", &[]).unwrap().get(0);
    assert_eq!(n, 2);

    // stop / start.
    pg.stop();
    assert!(!pg.is_running());
    assert!(postgres::Client::connect(&db.url, postgres::NoTls).is_err());
    pg.start();
    let mut c = db.connect();
    let n: i64 = c.query_one("SELECT count(*) FROM t", &[]).unwrap().get(0);
    assert_eq!(n, 2);

    let dir = pg.dir().to_path_buf();
    drop(pg);
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn mariadb_starts_and_gives_fresh_databases() {
    let t0 = Instant::now();
    let Some(my) = support::mariadb() else { return };
    eprintln!("MariaDB: shared server ready after {:?}", t0.elapsed());
    assert!(my.version().contains("MariaDB"), "{}", my.version());
    let db = my.fresh_database("harness smoke");
    assert!(db.url.starts_with("mysql://zerodown:"), "{}", db.url);
    let mut c = db.connect();
    let version: String = c.query_first("SELECT VERSION()").unwrap().unwrap();
    assert!(version.contains("MariaDB"), "{version}");
    my.assert_own_server(&mut c);
    let current: String = c.query_first("SELECT DATABASE()").unwrap().unwrap();
    assert_eq!(current, db.name);
    let log_bin: i64 = c.query_first("SELECT @@log_bin").unwrap().unwrap();
    assert_eq!(log_bin, 0);
    let charset: String = c
        .query_first("SELECT @@character_set_server")
        .unwrap()
        .unwrap();
    assert_eq!(charset, "utf8mb4");

    let other = my.fresh_database("harness smoke");
    assert_ne!(db.name, other.name);
    c.query_drop("CREATE TABLE t (id bigint PRIMARY KEY)")
        .unwrap();
    let mut c2 = other.connect();
    let n: i64 = c2
        .query_first(format!(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{}'",
            other.name
        ))
        .unwrap()
        .unwrap();
    assert_eq!(n, 0);

    // A user restricted to its database works.
    let app_url = db.create_app_user();
    let mut app = mysql::Conn::new(mysql::Opts::from_url(&app_url).unwrap()).unwrap();
    app.query_drop("CREATE TABLE app_t (id int)").unwrap();
    assert!(
        app.query_drop(format!("CREATE TABLE `{}`.x (id int)", other.name))
            .is_err()
    );
}

#[test]
fn mariadb_dedicated_with_binlog_and_restart() {
    let taken = occupy_next_port();
    let Some(my) = MariaDbServer::start_dedicated(MariaDbOptions {
        binlog: true,
        ..Default::default()
    }) else {
        return;
    };
    assert_ne!(my.port(), taken.local_addr().unwrap().port());
    assert!(
        my.log_tail(100).contains("port clash"),
        "{}",
        my.log_tail(100)
    );
    let db = my.fresh_database("binlog");
    let mut c = db.connect();
    my.assert_own_server(&mut c);
    let log_bin: i64 = c.query_first("SELECT @@log_bin").unwrap().unwrap();
    assert_eq!(log_bin, 1);
    c.query_drop("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
        .unwrap();
    let t0 = Instant::now();
    my.restart();
    eprintln!("MariaDB restart took {:?}", t0.elapsed());
    let mut c = db.connect();
    let n: i64 = c.query_first("SELECT COUNT(*) FROM t").unwrap().unwrap();
    assert_eq!(n, 1);
    let dir = my.dir().to_path_buf();
    drop(my);
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn shared_servers_are_shared() {
    let (Some(a), Some(b)) = (support::pg(15), support::pg(15)) else {
        return;
    };
    assert!(std::ptr::eq(a, b));
    let Some(m) = support::mariadb() else { return };
    assert!(std::ptr::eq(m, support::mariadb().unwrap()));
}
