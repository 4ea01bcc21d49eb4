//! The library's one error type: every variant names the thing and says what to do.

use crate::spec::SpecError;

/// Everything that can go wrong in zerodown's library, worded for the person running it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The migration file or text could not be read.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The database URL is malformed or names an engine zerodown cannot drive yet.
    #[error("database URL: {0}")]
    Url(String),
    /// The database could not be opened or reached.
    #[error("{0}")]
    Connect(String),
    /// The migration does not fit the live schema (missing table, bad expression, …); nothing was changed.
    #[error("{0}")]
    Refused(String),
    /// No migration of that name is recorded in the database.
    #[error("{0}")]
    UnknownMigration(String),
    /// The migration exists but is in a phase where this command cannot act.
    #[error("{0}")]
    WrongPhase(String),
    /// Another zerodown run holds the migration.
    #[error("{0}")]
    Busy(String),
    /// A lock could not be had within the lock budget; nothing was left half-done.
    #[error("{0}")]
    LockBudget(String),
    /// The database reported an error while running a step.
    #[error("{context}: {message}")]
    Database { context: String, message: String },
    /// Stopped on request (Ctrl-C or a rollback's cancel request) after a clean batch boundary.
    #[error("{0}")]
    Interrupted(String),
    /// A local file (lock file, …) could not be used.
    #[error("{0}")]
    Io(String),
}

impl Error {
    /// A database error with what zerodown was doing when it happened.
    pub fn db(context: impl Into<String>, err: impl std::fmt::Display) -> Error {
        Error::Database {
            context: context.into(),
            message: err.to_string(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
