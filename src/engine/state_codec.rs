//! The state row's codec, one for every engine: which columns a state row is read from, and how
//! their text becomes a [`StateRow`]. Each engine only fetches the columns in this order; what a
//! missing plan, an unknown status or unreadable JSON means is decided here once.

use super::{StateRow, Status};
use crate::error::{Error, Result};
use serde::de::DeserializeOwned;

/// The state row's columns, in the order [`Columns`] holds them.
pub const COLUMNS: [&str; 18] = [
    "id",
    "name",
    "spec",
    "plan",
    "status",
    "next_step",
    "cursor",
    "hi",
    "captured",
    "rows_done",
    "rows_total",
    "cancel_requested",
    "created_at",
    "updated_at",
    "completed_at",
    "heartbeat",
    "run_id",
    "timings",
];

/// The SELECT list of a state row: each column through the engine's `select` (which formats the
/// times alike on every engine, quotes a name that is a keyword there, casts what its driver
/// cannot read as text).
pub fn select_list(select: impl Fn(&str) -> String) -> String {
    COLUMNS.map(select).join(", ")
}

/// One state row as the driver read it, before decoding: JSON columns still text.
pub struct Columns {
    pub id: i64,
    pub name: String,
    pub spec: String,
    pub plan: Option<String>,
    pub status: String,
    pub next_step: i64,
    pub cursor: Option<String>,
    pub hi: Option<String>,
    pub captured: Option<String>,
    pub rows_done: i64,
    pub rows_total: Option<i64>,
    pub cancel_requested: bool,
    pub created_at: String,
    pub updated_at: String,
    pub completed_at: Option<String>,
    pub heartbeat: Option<String>,
    pub run_id: Option<String>,
    pub timings: Option<String>,
}

impl Columns {
    /// The row, its JSON read; a row zerodown cannot read is an error naming the column.
    pub fn decode(self) -> Result<StateRow> {
        let plan = self
            .plan
            .ok_or_else(|| Error::db("reading state", "the state row has no plan"))?;
        Ok(StateRow {
            id: self.id,
            name: self.name,
            spec: self.spec,
            plan: json(&plan, "plan")?,
            status: Status::parse(&self.status).ok_or_else(|| {
                Error::db("reading state", format!("unknown status `{}`", self.status))
            })?,
            next_step: usize::try_from(self.next_step).unwrap_or(0),
            cursor: optional(self.cursor, "cursor")?,
            hi: optional(self.hi, "upper bound")?,
            captured: optional(self.captured, "captured value")?,
            rows_done: self.rows_done,
            rows_total: self.rows_total,
            cancel_requested: self.cancel_requested,
            created_at: self.created_at,
            updated_at: self.updated_at,
            completed_at: self.completed_at,
            heartbeat: self.heartbeat,
            run_id: self.run_id,
            timings: optional(self.timings, "timings")?.unwrap_or_default(),
        })
    }
}

fn optional<T: DeserializeOwned>(text: Option<String>, what: &str) -> Result<Option<T>> {
    text.map(|t| json(&t, what)).transpose()
}

fn json<T: DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| {
        Error::db(
            "reading state",
            format!("the state row's {what} is unreadable: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(plan: Option<&str>, status: &str, cursor: Option<&str>) -> Columns {
        Columns {
            id: 1,
            name: "m".into(),
            spec: String::new(),
            plan: plan.map(str::to_string),
            status: status.into(),
            next_step: 2,
            cursor: cursor.map(str::to_string),
            hi: None,
            captured: None,
            rows_done: 0,
            rows_total: None,
            cancel_requested: false,
            created_at: String::new(),
            updated_at: String::new(),
            completed_at: None,
            heartbeat: None,
            run_id: None,
            timings: None,
        }
    }

    #[test]
    fn an_unreadable_row_names_what_is_wrong() {
        let no_plan = columns(None, "started", None).decode().unwrap_err();
        assert!(no_plan.to_string().contains("has no plan"), "{no_plan}");
        let bad_plan = columns(Some("{"), "started", None).decode().unwrap_err();
        assert!(
            bad_plan.to_string().contains("plan is unreadable"),
            "{bad_plan}"
        );
    }

    #[test]
    fn the_select_list_takes_every_column_through_the_engine() {
        let list = select_list(|c| format!("f({c})"));
        assert_eq!(list.split(", ").count(), 18);
        assert!(list.starts_with("f(id), f(name)") && list.ends_with("f(timings)"));
    }
}
