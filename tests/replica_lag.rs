//! Real replicas in the harness, and the replica-lag throttle (`--max-replica-lag`) on them.

mod support;

use support::mariadb_replica::MariaDbPair;
use support::pg_standby::PgPair;

/// The harness's standby follows its primary, and replay pauses and resumes on demand.
fn standby_follows(major: u32) {
    let Some(pair) = PgPair::start(major) else {
        return;
    };
    let db = pair.primary.fresh_database("standby_follows");
    db.connect()
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
        .unwrap();
    pair.sync();
    let mut s = pair.standby.connect(&db.name);
    let n: i64 = s.query_one("SELECT count(*) FROM t", &[]).unwrap().get(0);
    assert_eq!(n, 1);
    assert!(pair.standby_in_recovery());
    pair.pause_replay();
    pair.resume_replay();
}

#[test]
fn pg15_standby_follows() {
    standby_follows(15)
}

#[test]
fn pg18_standby_follows() {
    standby_follows(18)
}

#[test]
fn mariadb_replica_follows() {
    use mysql::prelude::Queryable;
    let Some(pair) = MariaDbPair::start() else {
        return;
    };
    let db = pair.primary.fresh_database("replica_follows");
    db.connect()
        .query_drop("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
        .unwrap();
    pair.sync();
    let n: Option<i64> = pair
        .replica
        .connect(&db.name)
        .query_first("SELECT count(*) FROM t")
        .unwrap();
    assert_eq!(n, Some(1));
    pair.stop_sql_thread();
    pair.start_sql_thread();
}
