//! A migration is a list of operations, possibly on several tables, run as one lifecycle: every
//! expand at `start`, the backfill, every contract at `complete`, and `rollback` undoing every
//! operation in reverse. Proven on SQLite, PostgreSQL 15 and 18, and MariaDB.

mod support;

use std::sync::atomic::AtomicBool;
use std::time::Duration;
use support::two_tables::{self, Db, Lite};
use zerodown::spec::Migration;
use zerodown::{DatabaseUrl, Error, Settings, StartOutcome};

/// Two tables, two new columns: `accounts.tier` filled from `balance`, `orders.note` left NULL.
const TWO_TABLES: &str = r#"
[[add_column]]
table    = "accounts"
column   = "tier"
type     = "varchar(20)"
not_null = true
backfill = "CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END"
default  = "'standard'"

[[add_column]]
table  = "orders"
column = "note"
type   = "varchar(200)"
"#;

fn migration(name: &str, text: &str) -> Migration {
    Migration::from_toml(name, text, &format!("{name}.toml")).unwrap()
}

fn quick() -> Settings {
    Settings {
        quiet_period: Some(Duration::ZERO),
        batch_time: Some(Duration::from_millis(20)),
        ..Settings::default()
    }
}

fn start(url: &DatabaseUrl, m: &Migration) -> zerodown::Result<StartOutcome> {
    zerodown::start(url, m, &quick(), &mut |_| {}, &AtomicBool::new(false))
}

fn complete(url: &DatabaseUrl, name: &str) -> zerodown::Result<()> {
    zerodown::complete(url, name, &quick(), &mut |_| {}, &AtomicBool::new(false))
}

fn rollback(url: &DatabaseUrl, name: &str) -> zerodown::Result<()> {
    zerodown::rollback(url, name, &Settings::default(), &mut |_| {})
}

/// A default set or dropped changes only the catalog, under the lock guard: it waits for a session
/// holding the table (retrying, naming it), then goes on. In a migration that waits for `complete`,
/// a set default goes on at `start` and a dropped one comes off at `complete`; rollback puts back
/// the defaults the catalog had.
fn defaults(db: &dyn Db) {
    let url = db.url();
    db.exec("ALTER TABLE orders ADD COLUMN status varchar(10) DEFAULT 'new'");
    let set = migration(
        "0110_amount_default",
        "[set_default]\ntable = \"orders\"\ncolumn = \"amount\"\ndefault = \"7\"\n",
    );
    let plan = zerodown::plan(&url, &set).unwrap();
    assert!(plan.single_step, "{plan:?}");
    assert_eq!(plan.steps.len(), 1);
    assert_eq!(plan.steps[0].cost, zerodown::plan::Cost::CatalogOnly);
    let mut release = Some(db.hold_lock("orders"));
    let mut retries = 0;
    let outcome = zerodown::start(
        &url,
        &set,
        &quick(),
        &mut |e| {
            if let zerodown::Event::LockRetry { .. } = e {
                retries += 1;
                if let Some(r) = release.take() {
                    r();
                }
            }
        },
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(outcome, StartOutcome::Completed);
    assert!(retries > 0, "the held lock never made the statement wait");
    db.exec("INSERT INTO orders (status) VALUES ('seven')");
    assert_eq!(
        db.count("SELECT amount FROM orders WHERE status = 'seven'"),
        7
    );

    let before_amount = db.default_of("orders", "amount");
    let before_status = db.default_of("orders", "status");
    assert!(before_status.is_some());
    let lifecycle = |name: &str, column: &str| {
        migration(
            name,
            &format!(
                "[[add_column]]\ntable = \"accounts\"\ncolumn = \"{column}\"\ntype = \"int\"\nbackfill = \"balance % 7\"\n\n[[set_default]]\ntable = \"orders\"\ncolumn = \"amount\"\ndefault = \"8\"\n\n[[drop_default]]\ntable = \"orders\"\ncolumn = \"status\"\n"
            ),
        )
    };
    let back = lifecycle("0111_defaults_back", "mod7");
    let plan = zerodown::plan(&url, &back).unwrap();
    let drop_step = plan.steps.iter().find(|s| s.op == 2).unwrap();
    assert_eq!(drop_step.phase, zerodown::plan::Phase::Contract);
    start(&url, &back).unwrap();
    db.exec("INSERT INTO orders (status) VALUES ('eight')");
    assert_eq!(
        db.count("SELECT amount FROM orders WHERE status = 'eight'"),
        8
    );
    assert_eq!(
        db.default_of("orders", "status"),
        before_status,
        "dropped before complete"
    );
    rollback(&url, &back.name).unwrap();
    assert_eq!(db.default_of("orders", "amount"), before_amount);
    assert_eq!(db.default_of("orders", "status"), before_status);
    assert!(!db.has_column("accounts", "mod7"));

    let forward = lifecycle("0112_defaults", "mod7b");
    start(&url, &forward).unwrap();
    complete(&url, &forward.name).unwrap();
    assert_eq!(db.default_of("orders", "status"), None);
    db.exec("INSERT INTO orders (amount) VALUES (1)");
    assert_eq!(
        db.count("SELECT count(*) FROM orders WHERE amount = 1 AND status IS NULL"),
        1
    );
    assert_eq!(db.leftovers(), 0);

    let err = start(
        &url,
        &migration(
            "0113_bad_default",
            "[set_default]\ntable = \"orders\"\ncolumn = \"amount\"\ndefault = \"id + 1\"\n",
        ),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("a default cannot read the row"),
        "{err}"
    );
    let err = start(
        &url,
        &migration(
            "0114_no_column",
            "[drop_default]\ntable = \"orders\"\ncolumn = \"nope\"\n",
        ),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("column `nope` not found in `orders`"),
        "{err}"
    );
}

/// The plan holds both operations, in order; start fills `tier`, complete finishes both, and
/// rollback of a second run leaves neither column nor any of zerodown's objects.
fn runs_and_rolls_back_as_one(db: &dyn Db) {
    let url = db.url();
    let m = migration("0100_two_tables", TWO_TABLES);
    let plan = zerodown::plan(&url, &m).unwrap();
    let ops: Vec<(&str, &str)> = plan
        .ops
        .iter()
        .map(|o| (o.table.as_str(), o.column.as_str()))
        .collect();
    assert_eq!(ops, [("accounts", "tier"), ("orders", "note")]);
    let phases: Vec<_> = plan.steps.iter().map(|s| s.phase).collect();
    assert!(phases.is_sorted(), "{phases:?}");
    assert!(plan.steps.iter().any(|s| s.op == 1), "{plan:?}");
    let text = zerodown::plan::render_text(&plan);
    assert!(
        text.contains("1. add column `tier` on `accounts`"),
        "{text}"
    );
    assert!(text.contains("2. add column `note` on `orders`"), "{text}");

    assert!(matches!(
        start(&url, &m).unwrap(),
        StartOutcome::Backfilled { .. }
    ));
    assert!(db.has_column("accounts", "tier") && db.has_column("orders", "note"));
    complete(&url, &m.name).unwrap();
    assert_eq!(
        db.count("SELECT count(*) FROM accounts WHERE tier IS NULL OR tier <> CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END"),
        0
    );
    assert_eq!(db.leftovers(), 0);

    let back = migration(
        "0101_two_tables",
        &TWO_TABLES.replace("tier", "tier2").replace("note", "note2"),
    );
    start(&url, &back).unwrap();
    assert!(db.has_column("accounts", "tier2") && db.has_column("orders", "note2"));
    rollback(&url, &back.name).unwrap();
    assert!(!db.has_column("accounts", "tier2"), "tier2 left behind");
    assert!(!db.has_column("orders", "note2"), "note2 left behind");
    assert_eq!(db.leftovers(), 0);
}

/// A migration filling two columns is refused before anything changes, naming why and what to do;
/// so is an index on a column the table does not have.
fn refusals_change_nothing(db: &dyn Db) {
    let url = db.url();
    let two_fills = TWO_TABLES
        .replace("tier", "tier3")
        .replace("note", "note3")
        .replace(
            "type   = \"varchar(200)\"",
            "type   = \"varchar(200)\"\nbackfill = \"'x'\"",
        );
    let err = start(&url, &migration("0102_two_fills", &two_fills)).unwrap_err();
    assert!(
        matches!(&err, Error::Refused(m) if m.contains("2 operations that fill existing rows") && m.contains("nothing was changed")),
        "{err}"
    );
    let index =
        "[create_index]\ntable = \"orders\"\nname = \"orders_amount\"\ncolumns = [\"nope\"]\n";
    let err = start(&url, &migration("0103_index", index)).unwrap_err();
    assert!(
        matches!(&err, Error::Refused(m) if m.contains("column `nope` not found in `orders`")),
        "{err}"
    );
    assert!(!db.has_column("accounts", "tier3") && !db.has_column("orders", "note3"));
    assert_eq!(db.leftovers(), 0);
}

mod sqlite {
    use super::*;

    #[test]
    fn sqlite_runs_and_rolls_back_as_one() {
        runs_and_rolls_back_as_one(&Lite::new(500));
    }

    /// Rows written before `ADD COLUMN … DEFAULT` store no value for the column and read the
    /// table's default: a schema edit of the default would change them. So SQLite refuses
    /// set_default and drop_default, changing nothing.
    #[test]
    fn sqlite_defaults() {
        let db = Lite::new(500);
        db.exec("ALTER TABLE orders ADD COLUMN status varchar(10) DEFAULT 'new'");
        db.exec(
            "PRAGMA writable_schema = ON;
             UPDATE sqlite_schema SET sql = replace(sql, 'DEFAULT ''new''', 'DEFAULT ''old''') WHERE name = 'orders';
             PRAGMA writable_schema = RESET;",
        );
        assert_eq!(
            db.count("SELECT count(*) FROM orders WHERE status = 'old'"),
            500,
            "old rows read the edited default"
        );
        let definition = || -> String {
            db.conn()
                .query_row(
                    "SELECT sql FROM sqlite_schema WHERE name = 'orders'",
                    [],
                    |r| r.get(0),
                )
                .unwrap()
        };
        let before = definition();
        for text in [
            "[set_default]\ntable = \"orders\"\ncolumn = \"status\"\ndefault = \"'x'\"\n",
            "[drop_default]\ntable = \"orders\"\ncolumn = \"status\"\n",
        ] {
            let err = start(&db.url(), &migration("0120_sqlite_default", text)).unwrap_err();
            assert!(
                matches!(&err, Error::Refused(m) if m.contains("SQLite cannot change the default of `orders`.`status` safely")),
                "{err}"
            );
        }
        assert_eq!(definition(), before);
        assert_eq!(db.leftovers(), 0);
    }

    #[test]
    fn sqlite_refusals_change_nothing() {
        refusals_change_nothing(&Lite::new(500));
    }
}

mod postgres {
    use super::*;

    fn setup(major: u32, name: &str) -> Option<two_tables::Pg> {
        two_tables::pg(major, name, 500)
    }

    #[test]
    fn postgres_15_defaults() {
        let Some(db) = setup(15, "defaults15") else {
            return;
        };
        defaults(&db);
    }

    #[test]
    fn postgres_18_defaults() {
        let Some(db) = setup(18, "defaults18") else {
            return;
        };
        defaults(&db);
    }

    #[test]
    fn postgres_15_runs_and_rolls_back_as_one() {
        let Some(db) = setup(15, "ops15") else { return };
        runs_and_rolls_back_as_one(&db);
        refusals_change_nothing(&db);
    }

    #[test]
    fn postgres_18_runs_and_rolls_back_as_one() {
        let Some(db) = setup(18, "ops18") else { return };
        runs_and_rolls_back_as_one(&db);
        refusals_change_nothing(&db);
    }
}

mod mariadb {
    use super::*;

    fn setup(name: &str) -> Option<two_tables::My> {
        two_tables::mariadb(name, 500)
    }

    #[test]
    fn mariadb_defaults() {
        let Some(my) = setup("defaults") else { return };
        defaults(&my);
    }

    #[test]
    fn mariadb_runs_and_rolls_back_as_one() {
        let Some(my) = setup("ops") else { return };
        runs_and_rolls_back_as_one(&my);
        refusals_change_nothing(&my);
    }
}
