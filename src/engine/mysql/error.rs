//! What the server's errors mean to zerodown: codes, readable messages, and which ones are lock waits.

use super::MySql;
use crate::error::Error;

pub(super) fn code(e: &mysql::Error) -> Option<u16> {
    match e {
        mysql::Error::MySqlError(m) => Some(m.code),
        _ => None,
    }
}

pub(super) fn message(e: &mysql::Error) -> String {
    match e {
        mysql::Error::MySqlError(m) => {
            format!("{} (error {}, SQLSTATE {})", m.message, m.code, m.state)
        }
        other => other.to_string(),
    }
}

/// Lock wait timeout (1205), max_statement_time exceeded (1969), deadlock (1213): try again.
pub(super) fn is_lock_failure(e: &mysql::Error) -> bool {
    matches!(code(e), Some(1205 | 1969 | 1213))
}

impl MySql {
    pub(super) fn db_err(&self, context: &str, e: &mysql::Error) -> Error {
        Error::db(context, self.target.scrub(&message(e)))
    }
}
