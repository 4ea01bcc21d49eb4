//! The demo's verdict: the final table against every acknowledged write and the window semantics, and
//! the schema against what the migration promises.

use super::database::sql_err;
use super::traffic::{self, APP_BUSY_TIMEOUT};
use crate::error::Result;
use rusqlite::{Connection, OptionalExtension};
use std::path::Path;

pub(super) struct Check {
    pub(super) rows: i64,
    pub(super) lost_writes: u64,
    pub(super) mismatched_rows: i64,
    pub(super) schema: Vec<String>,
    pub(super) schema_problems: u64,
}

/// Compares the final table with the ledger and the window semantics, and looks at the schema.
pub(super) fn check(db: &Path, expr: &str, ledgers: &[traffic::Ledger]) -> Result<Check> {
    let conn = Connection::open(db).map_err(sql_err("opening the demo database to check it"))?;
    conn.busy_timeout(APP_BUSY_TIMEOUT).ok();
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM accounts", [], |r| r.get(0))
        .map_err(sql_err("counting rows"))?;
    // Window semantics: the new column is the expression on the row, unless the row's latest write set
    // it; the demo's new-version writers set it to the expression's value, so every row must match.
    let mismatched_rows: i64 = conn
        .query_row(
            &format!("SELECT count(*) FROM accounts WHERE tier IS NOT ({expr})"),
            [],
            |r| r.get(0),
        )
        .map_err(sql_err("counting mismatched rows"))?;

    let mut lost_writes = 0u64;
    {
        let mut stmt = conn
            .prepare("SELECT email, balance, tier FROM accounts WHERE id = ?1")
            .map_err(sql_err("reading the ledger's rows"))?;
        for ledger in ledgers {
            for (id, w) in &ledger.rows {
                let found = stmt
                    .query_row([id], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, Option<String>>(2)?,
                        ))
                    })
                    .optional()
                    .map_err(sql_err("reading the ledger's rows"))?;
                let kept = match found {
                    None => false,
                    Some((email, balance, tier)) => {
                        w.email.as_ref().is_none_or(|e| *e == email)
                            && w.balance == balance
                            && w.tier.as_ref().is_none_or(|t| Some(t) == tier.as_ref())
                    }
                };
                if !kept {
                    lost_writes += 1;
                }
            }
        }
    }

    let mut schema = Vec::new();
    let mut problems = 0u64;
    let column: Option<(String, bool, Option<String>)> = conn
        .query_row(
            "SELECT type, \"notnull\", dflt_value FROM pragma_table_info('accounts') WHERE name = 'tier'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(sql_err("reading the schema"))?;
    match column {
        None => {
            problems += 1;
            schema.push("no column tier".into());
        }
        Some((ty, not_null, default)) => {
            schema.push(format!(
                "tier {ty}{}{}",
                if not_null { " NOT NULL" } else { "" },
                default.map(|d| format!(" DEFAULT {d}")).unwrap_or_default()
            ));
            if !not_null {
                problems += 1;
            }
        }
    }
    // The constraints and the default, tried on a row that is rolled back.
    conn.execute_batch("SAVEPOINT probe")
        .map_err(sql_err("probing the schema"))?;
    let bad = conn.execute(
        "INSERT INTO accounts(email, balance, tier) VALUES ('probe-check@example.com', 0, 'platinum')",
        [],
    );
    let default: rusqlite::Result<Option<String>> = conn.query_row(
        "INSERT INTO accounts(email, balance) VALUES ('probe-default@example.com', 0) RETURNING tier",
        [],
        |r| r.get(0),
    );
    conn.execute_batch("ROLLBACK TO probe; RELEASE probe")
        .map_err(sql_err("probing the schema"))?;
    if bad.is_err() {
        schema.push("CHECK enforced".into());
    } else {
        problems += 1;
        schema.push("CHECK NOT enforced".into());
    }
    match default {
        Ok(Some(v)) if v == "standard" => schema.push("default applies".into()),
        other => {
            problems += 1;
            schema.push(format!("default does not apply ({other:?})"));
        }
    }
    let indexes: Vec<String> = {
        let mut stmt = conn
            .prepare(
                "SELECT DISTINCT l.name FROM pragma_index_list('accounts') l, pragma_index_info(l.name) i WHERE i.name = 'tier'",
            )
            .map_err(sql_err("reading the indexes"))?;
        stmt.query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(sql_err("reading the indexes"))?
    };
    if indexes.is_empty() {
        problems += 1;
        schema.push("no index on tier".into());
    } else {
        schema.push(format!("indexed ({})", indexes.join(", ")));
    }
    let triggers: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = 'accounts'",
            [],
            |r| r.get(0),
        )
        .map_err(sql_err("reading the triggers"))?;
    if triggers == 0 {
        schema.push("dual-write triggers removed".into());
    } else {
        problems += 1;
        schema.push(format!("{triggers} trigger(s) left on accounts"));
    }
    Ok(Check {
        rows,
        lost_writes,
        mismatched_rows,
        schema,
        schema_problems: problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::database::create_database;
    use traffic::{Ledger, Written};

    const EXPR: &str = "CASE WHEN balance > 10000 THEN 'gold' ELSE 'standard' END";

    /// The check is no rubber stamp: a lost update, a missing row and a wrong tier are all counted.
    #[test]
    pub(super) fn check_counts_lost_writes_and_mismatched_rows() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        create_database(&db, 100).unwrap();
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(&format!(
            "ALTER TABLE accounts ADD COLUMN tier text; UPDATE accounts SET tier = {EXPR};"
        ))
        .unwrap();
        let balance = |id: i64| -> i64 {
            conn.query_row("SELECT balance FROM accounts WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap()
        };
        let mut ledger = Ledger::default();
        for id in 1..=10 {
            ledger.rows.insert(
                id,
                Written {
                    email: None,
                    balance: balance(id),
                    tier: None,
                },
            );
        }
        let good = check(&db, EXPR, std::slice::from_ref(&ledger)).unwrap();
        assert_eq!((good.lost_writes, good.mismatched_rows), (0, 0));

        ledger.rows.get_mut(&3).unwrap().balance += 1; // an update the table does not have
        ledger.rows.insert(
            1000,
            Written {
                email: Some("gone@example.com".into()),
                balance: 1,
                tier: None,
            },
        ); // a row that is not there
        conn.execute(
            "UPDATE accounts SET tier = CASE tier WHEN 'gold' THEN 'standard' ELSE 'gold' END WHERE id = 5",
            [],
        )
        .unwrap();
        let bad = check(&db, EXPR, &[ledger]).unwrap();
        assert_eq!((bad.lost_writes, bad.mismatched_rows), (2, 1));
        // The bare column has none of the constraints the migration promises.
        assert!(bad.schema_problems > 0, "{:?}", bad.schema);
    }
}
