//! PostgreSQL errors in words: the server's message, detail, hint and SQLSTATE, and what a failure
//! inside a guarded transaction was.

use super::Postgres;
use crate::error::Error;
use postgres::Client;

/// A database error in words: message, detail and hint, and the SQLSTATE.
pub(super) fn pg_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => {
            let mut m = format!("{} (SQLSTATE {})", d.message(), d.code().code());
            if let Some(detail) = d.detail() {
                m.push_str(&format!("; {detail}"));
            }
            if let Some(hint) = d.hint() {
                m.push_str(&format!("; hint: {hint}"));
            }
            m
        }
        None => e.to_string(),
    }
}

pub(super) fn sqlstate(e: &postgres::Error) -> Option<&str> {
    e.as_db_error().map(|d| d.code().code())
}

/// A failure inside a guarded transaction: a database error (maybe a lock timeout, retried) or another.
pub(super) enum Fail {
    Pg(String, postgres::Error),
    Other(Error),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        Fail::Other(e)
    }
}

pub(super) fn pg(context: impl Into<String>) -> impl FnOnce(postgres::Error) -> Fail {
    let context = context.into();
    move |e| Fail::Pg(context, e)
}

/// An error that means the connection is gone (ended by an administrator, server restart, network).
pub(super) fn is_disconnect(client: &Client, e: &postgres::Error) -> bool {
    client.is_closed()
        || e.is_closed()
        || matches!(sqlstate(e), Some(s) if s.starts_with("08") || s.starts_with("57P"))
}

impl Postgres {
    /// A database error for the user, with the connection's secrets scrubbed out.
    pub(super) fn db_err(&self, context: &str, e: &postgres::Error) -> Error {
        Error::db(context, self.target.scrub(&pg_message(e)))
    }
}
