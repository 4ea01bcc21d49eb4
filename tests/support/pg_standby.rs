//! A PostgreSQL streaming hot standby of a throwaway primary, for the replica-lag tests.
//!
//! ```ignore
//! let Some(pair) = support::pg_standby::PgPair::start(15) else { return };
//! let db = pair.primary.fresh_database("lag");   // replicated to the standby
//! pair.pause_replay();                            // the standby falls behind from here
//! pair.resume_replay();
//! pair.sync();                                    // the standby has replayed all the primary wrote
//! ```
//!
//! The primary is a dedicated [`PgServer`]; the standby is a base backup of it in a directory of its
//! own, started on its own free port with the same major's binaries, streaming through a physical
//! replication slot (so the primary keeps the WAL it needs) under the `application_name`
//! [`STANDBY_NAME`]. The backup is `pg_basebackup -R -C -S <slot>` where the major's binaries have
//! it (Debian's); npm's packages ship only initdb, pg_ctl and postgres, so there the same backup is
//! taken with the server's low-level API (`pg_backup_start` … `pg_backup_stop` around a copy of the
//! data directory, as the PostgreSQL manual describes) and the standby is configured as `-R` would.
//! Every wait polls the servers' own state (pg_stat_replication, pg_last_wal_replay_lsn()).

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::Path;
use std::process::Command;

use super::pg::{PASSWORD, PgServer, SUPERUSER, clean_env};
use super::process::{self, RunAs, Supervised};

/// The standby's `application_name`, as the primary's pg_stat_replication shows it.
pub const STANDBY_NAME: &str = "zd_standby";
/// The physical replication slot the standby streams through.
const SLOT: &str = "zd_standby_slot";

/// A primary and its streaming hot standby; both stop when dropped.
pub struct PgPair {
    /// First: stopped before its primary.
    pub standby: PgServer,
    pub primary: PgServer,
}

impl PgPair {
    /// Starts a primary of `major` and a standby of it, and waits until the standby streams.
    /// `None` (after one SKIP line) when that major is not installed.
    pub fn start(major: u32) -> Option<PgPair> {
        let primary = PgServer::start_dedicated(major)?;
        let user = process::unprivileged_user();
        let dir = process::server_dir(user);
        let sup = Supervised::new(&dir, "QUIT");
        let data = dir.join("data");
        if primary.bin_dir().join("pg_basebackup").is_file() {
            pg_basebackup(&primary, &dir, user);
        } else {
            low_level_backup(&primary, &data);
        }
        configure(&primary, &dir);
        if let Some(u) = user {
            chown_all(&data, u);
        }
        let standby = PgServer::adopt(major, primary.bin_dir().to_path_buf(), data, sup);
        let pair = PgPair { standby, primary };
        pair.wait_streaming();
        Some(pair)
    }

    /// Waits until the primary's pg_stat_replication shows the standby streaming.
    pub fn wait_streaming(&self) {
        super::wait_for("the standby to stream from the primary", || {
            self.primary
                .admin(|c| {
                    c.query_opt(
                        "SELECT state FROM pg_stat_replication WHERE application_name = $1",
                        &[&STANDBY_NAME],
                    )
                })
                .expect("read pg_stat_replication")
                .is_some_and(|r| r.get::<_, String>(0) == "streaming")
        });
    }

    /// Waits until the standby has replayed everything the primary has flushed so far (polling the
    /// standby's own replay position).
    pub fn sync(&self) {
        let target: String = self
            .primary
            .admin(|c| c.query_one("SELECT pg_current_wal_flush_lsn()::text", &[]))
            .expect("pg_current_wal_flush_lsn()")
            .get(0);
        super::wait_for("the standby to replay the primary's WAL", || {
            self.standby
                .admin(|c| {
                    c.query_one(
                        "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn",
                        &[&target],
                    )
                })
                .expect("pg_last_wal_replay_lsn()")
                .get::<_, bool>(0)
        });
    }

    /// Pauses replay on the standby (`pg_wal_replay_pause()`): it keeps receiving WAL but applies
    /// none of it, so it falls behind as the primary writes.
    pub fn pause_replay(&self) {
        self.standby
            .admin(|c| c.batch_execute("SELECT pg_wal_replay_pause()"))
            .expect("pg_wal_replay_pause()");
        super::wait_for("replay to be paused on the standby", || {
            self.replay_paused()
        });
    }

    /// Resumes replay on the standby (`pg_wal_replay_resume()`).
    pub fn resume_replay(&self) {
        self.standby
            .admin(|c| c.batch_execute("SELECT pg_wal_replay_resume()"))
            .expect("pg_wal_replay_resume()");
        super::wait_for("replay to resume on the standby", || !self.replay_paused());
    }

    /// Whether a pause of replay is requested or in force on the standby.
    pub fn replay_paused(&self) -> bool {
        self.standby
            .admin(|c| c.query_one("SELECT pg_is_wal_replay_paused()", &[]))
            .expect("pg_is_wal_replay_paused()")
            .get(0)
    }

    /// Whether the standby is still in recovery (it never is promoted by the tests).
    pub fn standby_in_recovery(&self) -> bool {
        self.standby
            .admin(|c| c.query_one("SELECT pg_is_in_recovery()", &[]))
            .expect("pg_is_in_recovery()")
            .get(0)
    }
}

/// `pg_basebackup -R` into `<dir>/data`, creating the slot, run as the servers' user.
fn pg_basebackup(primary: &PgServer, dir: &Path, user: Option<RunAs>) {
    let mut cmd = Command::new(primary.bin_dir().join("pg_basebackup"));
    clean_env(&mut cmd);
    process::run_as(&mut cmd, user)
        .env("PGPASSWORD", PASSWORD)
        .args(["-h", "127.0.0.1", "-p"])
        .arg(primary.port().to_string())
        .args(["-U", SUPERUSER, "-D"])
        .arg(dir.join("data"))
        .args([
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "-C",
            "-S",
            SLOT,
            "--no-sync",
        ])
        .current_dir(dir);
    process::run_logged(&mut cmd, &dir.join("basebackup.log"), "pg_basebackup");
}

/// Directories whose contents a base backup leaves out (the manual's list): the standby makes them
/// anew, or streams them (pg_wal).
const SKIP_CONTENTS: &[&str] = &[
    "pg_wal",
    "pg_replslot",
    "pg_stat_tmp",
    "pg_dynshmem",
    "pg_notify",
    "pg_serial",
    "pg_snapshots",
    "pg_subtrans",
];
/// Files a base backup leaves out.
const SKIP_FILES: &[&str] = &[
    "postmaster.pid",
    "postmaster.opts",
    "backup_label",
    "tablespace_map",
    "standby.signal",
    "recovery.signal",
];

/// The low-level API: a slot that keeps the WAL from now on, `pg_backup_start`, a copy of the data
/// directory, `pg_backup_stop`, whose label goes beside the copy as `backup_label`.
fn low_level_backup(primary: &PgServer, data: &Path) {
    let mut c = primary.connect("postgres");
    c.execute(
        "SELECT pg_create_physical_replication_slot($1, true)",
        &[&SLOT],
    )
    .expect("create the standby's slot");
    let (start, stop) = if primary.major() >= 15 {
        (
            "SELECT pg_backup_start('zerodown standby', true)",
            "SELECT labelfile, spcmapfile FROM pg_backup_stop(false)",
        )
    } else {
        (
            "SELECT pg_start_backup('zerodown standby', true, false)",
            "SELECT labelfile, spcmapfile FROM pg_stop_backup(false, false)",
        )
    };
    c.batch_execute(start).expect("start the base backup");
    copy_tree(primary.data_dir(), data, true);
    let row = c.query_one(stop, &[]).expect("stop the base backup");
    fs::write(data.join("backup_label"), row.get::<_, String>(0)).expect("write backup_label");
    let map: String = row.get(1);
    if !map.is_empty() {
        fs::write(data.join("tablespace_map"), map).expect("write tablespace_map");
    }
}

/// Copies a live data directory (files may vanish under it: WAL replay makes the copy consistent).
fn copy_tree(from: &Path, to: &Path, top: bool) {
    fs::create_dir(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    fs::set_permissions(to, fs::Permissions::from_mode(0o700)).expect("chmod");
    let Ok(entries) = fs::read_dir(from) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let Ok(kind) = e.file_type() else { continue };
        let dest = to.join(&*name);
        if kind.is_dir() {
            if top && SKIP_CONTENTS.contains(&&*name) {
                fs::create_dir(&dest).expect("create an empty directory");
                fs::set_permissions(&dest, fs::Permissions::from_mode(0o700)).expect("chmod");
                if name == "pg_wal" {
                    fs::create_dir(dest.join("archive_status")).expect("create archive_status");
                }
            } else {
                copy_tree(&e.path(), &dest, false);
            }
        } else if kind.is_file() && !(top && SKIP_FILES.contains(&&*name)) {
            match fs::copy(e.path(), &dest) {
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => panic!("copy {}: {err}", e.path().display()),
            }
        }
    }
}

/// What `-R` writes, made explicit (and the same for both kinds of backup): recovery as a standby,
/// streaming from the primary through the slot under [`STANDBY_NAME`]; its own socket directory;
/// and a status report every second, so the primary's view of the standby is fresh while idle.
fn configure(primary: &PgServer, dir: &Path) {
    let data = dir.join("data");
    fs::write(data.join("standby.signal"), "").expect("write standby.signal");
    let auto = data.join("postgresql.auto.conf");
    let mut text = fs::read_to_string(&auto).unwrap_or_default();
    text.push_str(&format!(
        "\n# zerodown test harness: a streaming standby\n\
         primary_conninfo = 'host=127.0.0.1 port={port} user={SUPERUSER} password={PASSWORD} application_name={STANDBY_NAME}'\n\
         primary_slot_name = '{SLOT}'\n\
         hot_standby = on\n\
         wal_receiver_status_interval = '1s'\n\
         unix_socket_directories = '{dir}'\n",
        port = primary.port(),
        dir = dir.display()
    ));
    fs::write(&auto, text).expect("write postgresql.auto.conf");
}

/// Gives the servers' user everything under `path` (a copy made by the test process as root).
fn chown_all(path: &Path, u: RunAs) {
    chown(path, Some(u.uid), Some(u.gid)).expect("chown");
    if path.is_dir() {
        for e in fs::read_dir(path).expect("read dir").flatten() {
            chown_all(&e.path(), u);
        }
    }
}
