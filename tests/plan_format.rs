//! A stored plan written by a zerodown version before typed statements (no `format`) is refused with
//! a clear message by every command that would run its steps, and nothing changes.

mod sqlite_util;

use sqlite_util::*;
use zerodown::Error;

#[test]
fn a_plan_of_an_older_format_is_refused_and_nothing_changes() {
    let db = TestDb::new(300);
    let m = tier_migration();
    // Expand and dual-write only, as an interrupted start of an older version would leave it.
    db.drive_steps(&m, 3);
    let c = db.conn();
    c.execute_batch("UPDATE _zerodown_migrations SET plan = json_remove(plan, '$.format')")
        .unwrap();
    let before = (db.schema_sql(), db.data_checksum());
    let check = |r: zerodown::Result<()>, what: &str| {
        let err = r.expect_err(what);
        assert!(
            matches!(&err, Error::Refused(msg) if msg.contains("plan format 0") && msg.contains("nothing was changed")),
            "{what}: {err}"
        );
    };
    check(db.start(&m).map(|_| ()), "start");
    check(db.rollback("0042_tier"), "rollback");
    assert_eq!((db.schema_sql(), db.data_checksum()), before);
}
