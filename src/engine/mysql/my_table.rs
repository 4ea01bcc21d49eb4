//! What a MODIFY COLUMN and a foreign key need of a table beyond its columns: each column restated
//! as the server renders it (a MODIFY that leaves out an attribute drops it), and each index's
//! columns (a foreign key needs an index that starts with its columns).

use super::{MySql, literal};
use crate::engine::dialect::{MyTable, Restated};
use crate::error::Result;
use mysql::prelude::Queryable;

/// information_schema.COLUMNS: name, type, character set, collation, default, extra, comment,
/// generation expression (empty when not generated; MariaDB says NULL, MySQL 8 '').
type ColumnRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
);

/// One column restated: its type with charset and collation, then DEFAULT, ON UPDATE and COMMENT
/// as the server renders them; refused where a MODIFY could change what the column is.
fn restate(row: ColumnRow) -> Restated {
    let (column, ty, charset, collation, default, extra, comment, generated) = row;
    let mut data_type = ty;
    if let Some(cs) = charset {
        data_type.push_str(&format!(" CHARACTER SET {cs}"));
    }
    if let Some(co) = collation {
        data_type.push_str(&format!(" COLLATE {co}"));
    }
    let mut attributes = String::new();
    // The server's own rendering: a quoted literal, a number or an expression; in parentheses,
    // which takes any of them. `NULL` is no default.
    if let Some(d) = default.filter(|d| d != "NULL") {
        attributes.push_str(&format!(" DEFAULT ({d})"));
    }
    let lower = extra.to_ascii_lowercase();
    let mut refused = None;
    let rest = match lower.find("on update ") {
        Some(at) => {
            attributes.push_str(&format!(" ON UPDATE {}", &extra[at + "on update ".len()..]));
            lower[..at].trim().to_string()
        }
        None => lower.trim().to_string(),
    };
    if !generated.is_empty() || !rest.is_empty() {
        refused = Some(format!(
            "it is a generated, invisible or otherwise special column (`{extra}`), which zerodown does not restate in a MODIFY"
        ));
    }
    if !comment.is_empty() {
        attributes.push_str(&format!(" COMMENT {}", literal(&comment)));
    }
    Restated {
        column,
        data_type,
        attributes,
        refused,
    }
}

impl MySql {
    pub(super) fn my_table(&mut self, table: &str) -> Result<MyTable> {
        let rows: Vec<ColumnRow> = self
            .conn
            .exec(
                "SELECT COLUMN_NAME, COLUMN_TYPE, CHARACTER_SET_NAME, COLLATION_NAME, COLUMN_DEFAULT,
                        EXTRA, COLUMN_COMMENT, COALESCE(GENERATION_EXPRESSION, '')
                 FROM information_schema.COLUMNS
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                (table,),
            )
            .map_err(|e| self.db_err("reading column definitions", &e))?;
        let stats: Vec<(String, String)> = self
            .conn
            .exec(
                "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME IS NOT NULL
                 ORDER BY INDEX_NAME, SEQ_IN_INDEX",
                (table,),
            )
            .map_err(|e| self.db_err("reading the table's indexes", &e))?;
        let mut index_columns: Vec<(String, Vec<String>)> = Vec::new();
        for (index, column) in stats {
            match index_columns.last_mut() {
                Some((name, cols)) if *name == index => cols.push(column),
                _ => index_columns.push((index, vec![column])),
            }
        }
        Ok(MyTable {
            restated: rows.into_iter().map(restate).collect(),
            index_columns: index_columns.into_iter().map(|(_, c)| c).collect(),
        })
    }
}
