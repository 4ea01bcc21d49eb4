//! The driver's session on SQLite: the journal-mode check before a run and the lock file that lets
//! one zerodown at a time drive migrations on a database.

use super::{Sqlite, set_wal_synchronous, sqlite_err};
use crate::engine::{DriverLock, Event, Settings};
use crate::error::{Error, Result};
use std::fs::File;
use std::path::PathBuf;
use std::time::{Duration, Instant};

struct FileLock {
    _file: File,
}
impl DriverLock for FileLock {}

impl Sqlite {
    pub(super) fn preflight(
        &mut self,
        settings: &Settings,
        emit: &mut dyn FnMut(Event),
    ) -> Result<()> {
        let mode = self.env()?.journal_mode;
        if mode == "wal" {
            return Ok(());
        }
        if settings.wal {
            self.conn
                .busy_timeout(Duration::from_secs(5))
                .map_err(|e| sqlite_err("setting busy_timeout", e))?;
            let now: String = self
                .conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                .map_err(|e| sqlite_err("switching to WAL", e))?;
            if !now.eq_ignore_ascii_case("wal") {
                return Err(Error::Refused(format!(
                    "could not switch `{}` to WAL (it stayed `{now}`)",
                    self.path.display()
                )));
            }
            set_wal_synchronous(&self.conn)?;
            emit(Event::Note(format!(
                "switched `{}` from journal mode {mode} to WAL (a lasting change)",
                self.path.display()
            )));
            return Ok(());
        }
        if settings.allow_rollback_journal {
            emit(Event::Note(format!(
                "journal mode {mode}: readers will wait while each batch commits (--allow-rollback-journal)"
            )));
            return Ok(());
        }
        Err(Error::Refused(format!(
            "`{}` is in journal mode {mode}, where every batch commit blocks readers; pass --wal to switch it to WAL (a lasting change, the usual setting for a live SQLite database) or --allow-rollback-journal to accept the stalls",
            self.path.display()
        )))
    }

    pub(super) fn lock_driver(&mut self, wait: Duration) -> Result<Box<dyn DriverLock>> {
        let lock_path = PathBuf::from(format!("{}-zerodown.lock", self.path.display()));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(|e| {
                Error::Io(format!(
                    "cannot open lock file `{}`: {e}",
                    lock_path.display()
                ))
            })?;
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => {
                    use std::io::Write;
                    let _ = file.set_len(0);
                    let _ = (&file).write_all(format!("{}\n", std::process::id()).as_bytes());
                    return Ok(Box::new(FileLock { _file: file }));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    if started.elapsed() >= wait {
                        let pid = std::fs::read_to_string(&lock_path).unwrap_or_default();
                        return Err(Error::Busy(format!(
                            "another zerodown (pid {}) is driving a migration on `{}` (lock file `{}`); wait for it, or stop it with Ctrl-C",
                            pid.trim(),
                            self.path.display(),
                            lock_path.display()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(Error::Io(format!(
                        "cannot lock `{}`: {e}",
                        lock_path.display()
                    )));
                }
            }
        }
    }
}
