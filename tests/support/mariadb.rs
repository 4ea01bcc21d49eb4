//! Throwaway MariaDB servers.
//!
//! `mariadb-install-db --no-defaults --auth-root-authentication-method=normal` makes the data
//! directory (root without a password, reachable only through the server's private unix socket), then
//! `mariadbd --no-defaults` runs on a free port on 127.0.0.1 (as root with `--user=root` when the
//! tests run as root). On start the harness connects as root through the socket and creates the
//! password user `zerodown`@`127.0.0.1` and @`localhost` with all privileges; tests use that user.
//!
//! Layout: `/tmp/zd-XXXXXX/{data/, mysqld.sock, mariadbd.pid, install.log, server.log}`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use mysql::{Conn, Opts, OptsBuilder};

use super::process::{self, Lazy, Supervised, lock};

/// The application user the harness creates, with all privileges.
pub const USER: &str = "zerodown";
pub const PASSWORD: &str = "zerodown";

/// Settings for fast, disposable servers (given to mariadb-install-db and mariadbd alike).
const FAST: &[&str] = &[
    "--innodb-buffer-pool-size=64M",
    "--innodb-log-file-size=16M",
    "--innodb-flush-log-at-trx-commit=2",
    "--innodb-doublewrite=0",
    "--skip-name-resolve",
];

/// Options of a dedicated server.
#[derive(Clone, Debug, Default)]
pub struct MariaDbOptions {
    /// Binary log on (`--log-bin=mysql-bin --server-id=1`); off (`--skip-log-bin`) otherwise.
    pub binlog: bool,
    /// More `mariadbd` options, e.g. `--binlog-format=ROW`.
    pub extra_args: Vec<String>,
}

struct Binaries {
    mariadbd: PathBuf,
    install_db: PathBuf,
}

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"].map(PathBuf::from));
    names
        .iter()
        .flat_map(|n| dirs.iter().map(move |d| d.join(n)))
        .find(|p| p.is_file())
}

fn binaries() -> Option<Binaries> {
    Some(Binaries {
        mariadbd: find_program(&["mariadbd"])?,
        install_db: find_program(&["mariadb-install-db"])?,
    })
}

/// A throwaway MariaDB server. The shared one comes from [`super::mariadb`];
/// [`MariaDbServer::start_dedicated`] gives one of your own that stops when dropped.
pub struct MariaDbServer {
    mariadbd: PathBuf,
    data_dir: PathBuf,
    port: Mutex<u16>,
    options: MariaDbOptions,
    as_root: bool,
    dedicated: bool,
    version: String,
    admin: Mutex<Option<Conn>>,
    /// Last: dropping it stops the server and removes the directory.
    sup: Supervised,
}

impl std::fmt::Debug for MariaDbServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MariaDbServer")
            .field("version", &self.version)
            .field("port", &self.port())
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

static SHARED: Lazy<MariaDbServer> = Lazy::new();

/// The shared server of this test process (binary log off), started on first use; `None` (after one
/// SKIP line on stderr) when MariaDB is not installed.
pub fn shared() -> Option<&'static MariaDbServer> {
    SHARED.get("MariaDB", || {
        MariaDbServer::launch(MariaDbOptions::default(), false)
    })
}

impl MariaDbServer {
    /// A server of your own (binary log, restarts, settings): stopped and removed when dropped.
    pub fn start_dedicated(options: MariaDbOptions) -> Option<MariaDbServer> {
        MariaDbServer::launch(options, true)
    }

    fn launch(options: MariaDbOptions, dedicated: bool) -> Option<MariaDbServer> {
        let Some(bins) = binaries() else {
            process::engine_missing("MariaDB", "no mariadbd / mariadb-install-db");
            return None;
        };
        let t0 = Instant::now();
        let as_root = process::unprivileged_user().is_some();
        let dir = process::server_dir(None);
        let sup = Supervised::new(&dir, "KILL");
        let data_dir = dir.join("data");

        let mut install = Command::new(&bins.install_db);
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data_dir.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            // Its own tmpdir: bootstraps running side by side in /tmp failed now and then with
            // "Could not remove temporary table '/tmp/#sql-temptable-…'" / "Unknown table
            // 'mysql.tmp_user_sys'".
            .arg(format!("--tmpdir={}", dir.display()))
            .args(FAST)
            .arg("--skip-log-bin")
            .current_dir(&dir);
        if as_root {
            install.arg("--user=root");
        }
        process::run_logged(&mut install, &dir.join("install.log"), "mariadb-install-db");

        let mut server = MariaDbServer {
            mariadbd: bins.mariadbd,
            data_dir,
            port: Mutex::new(0),
            options,
            as_root,
            dedicated,
            version: String::new(),
            admin: Mutex::new(None),
            sup,
        };
        for attempt in 1..=5 {
            *lock(&server.port) = process::free_port();
            match server.spawn_and_wait() {
                Ok(()) => break,
                Err(status) if attempt < 5 && process::port_clash(&server.log_path()) => {
                    server.log_event(&format!("port clash ({status}), retrying"));
                }
                Err(status) => server.died(status),
            }
        }
        server.version = server
            .admin(|c| c.query_first::<String, _>("SELECT VERSION()"))
            .expect("SELECT VERSION()")
            .expect("a version");
        server.log_event(&format!("ready in {:.2?}", t0.elapsed()));
        Some(server)
    }

    fn socket(&self) -> PathBuf {
        self.dir().join("mysqld.sock")
    }

    fn spawn_and_wait(&self) -> Result<(), std::process::ExitStatus> {
        let (out, err) = process::log_stdio(&self.log_path());
        let mut cmd = Command::new(&self.mariadbd);
        cmd.arg("--no-defaults");
        if self.as_root {
            cmd.arg("--user=root");
        }
        cmd.arg(format!("--datadir={}", self.data_dir.display()))
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!("--port={}", self.port()))
            .args(["--bind-address=127.0.0.1", "--skip-networking=0"])
            .arg(format!(
                "--pid-file={}",
                self.dir().join("mariadbd.pid").display()
            ))
            .arg(format!("--tmpdir={}", self.dir().display()))
            // What Debian's packaged configuration sets (--no-defaults skips it; the compiled-in
            // default is latin1).
            .args([
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_general_ci",
            ])
            .args(FAST);
        if self.options.binlog {
            cmd.args(["--log-bin=mysql-bin", "--server-id=1"]);
        } else {
            cmd.arg("--skip-log-bin");
        }
        cmd.args(&self.options.extra_args)
            .current_dir(self.dir())
            .stdout(out)
            .stderr(err);
        self.sup.spawn(&mut cmd);

        // Ready when root gets in through the socket; then the password user is made (idempotent,
        // so that a restart goes the same way).
        let root = OptsBuilder::new()
            .socket(Some(self.socket().to_string_lossy().into_owned()))
            .user(Some("root"))
            .tcp_connect_timeout(Some(Duration::from_secs(10)));
        let mut conn = process::wait_ready(&self.sup, &self.log_path(), &self.describe(), || {
            if !self.socket().exists() {
                return Err("no socket yet".to_string());
            }
            Conn::new(root.clone()).map_err(|e| e.to_string())
        })?;
        for host in ["127.0.0.1", "localhost"] {
            conn.query_drop(format!(
                "CREATE USER IF NOT EXISTS '{USER}'@'{host}' IDENTIFIED BY '{PASSWORD}';
                 GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'{host}' WITH GRANT OPTION;"
            ))
            .unwrap_or_else(|e| panic!("create user {USER}@{host}: {e}"));
        }
        drop(conn);
        let mut admin = self.connect_url(&self.url(""));
        self.assert_own_server(&mut admin);
        *lock(&self.admin) = Some(admin);
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
        format!("MariaDB in {}", self.dir().display())
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

    fn connect_url(&self, url: &str) -> Conn {
        let opts = Opts::from_url(url).unwrap_or_else(|e| panic!("bad url {url}: {e}"));
        Conn::new(opts).unwrap_or_else(|e| panic!("connect to {}: {e}", self.describe()))
    }

    /// `SELECT VERSION()`, e.g. `10.11.19-MariaDB-0+deb12u1`.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn port(&self) -> u16 {
        *lock(&self.port)
    }

    /// The server's directory (`/tmp/zd-XXXXXX`).
    pub fn dir(&self) -> &Path {
        self.sup.dir()
    }

    pub fn socket_path(&self) -> PathBuf {
        self.socket()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn options(&self) -> &MariaDbOptions {
        &self.options
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir().join("server.log")
    }

    pub fn log_tail(&self, lines: usize) -> String {
        process::log_tail(&self.log_path(), lines)
    }

    /// `mysql://zerodown:zerodown@127.0.0.1:<port>/<db>` (`db` may be empty).
    pub fn url(&self, db: &str) -> String {
        format!("mysql://{USER}:{PASSWORD}@127.0.0.1:{}/{db}", self.port())
    }

    /// A new connection as `zerodown` to database `db` (empty: none).
    pub fn connect(&self, db: &str) -> Conn {
        self.connect_url(&self.url(db))
    }

    /// Runs `f` on the cached `zerodown` connection (reconnecting when it failed).
    pub fn admin<T>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<T, mysql::Error>,
    ) -> Result<T, mysql::Error> {
        let mut slot = lock(&self.admin);
        if slot.is_none() {
            *slot = Some(self.connect(""));
        }
        let result = f(slot.as_mut().expect("admin connection"));
        if result.is_err() {
            *slot = None;
        }
        result
    }

    /// Panics unless `conn` is connected to this server (same data directory).
    pub fn assert_own_server(&self, conn: &mut Conn) {
        let got: String = conn
            .query_first("SELECT @@datadir")
            .expect("SELECT @@datadir")
            .expect("a datadir");
        assert_eq!(
            Path::new(got.trim_end_matches('/')),
            self.data_dir,
            "connected to a MariaDB server that is not ours (port {})",
            self.port()
        );
    }

    /// A new, empty database with a name unique in this test process.
    pub fn fresh_database(&self, name: &str) -> MariaDbTestDb {
        let db = process::unique_name(name, 64);
        self.admin(|c| c.query_drop(format!("CREATE DATABASE `{db}`")))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {db} on {}: {e}", self.describe()));
        MariaDbTestDb {
            name: db.clone(),
            url: self.url(&db),
            port: self.port(),
            data_dir: self.data_dir.clone(),
        }
    }

    fn assert_dedicated(&self, what: &str) {
        assert!(
            self.dedicated,
            "{what}() on the shared MariaDB server: use MariaDbServer::start_dedicated"
        );
    }

    pub fn is_running(&self) -> bool {
        self.sup.is_running()
    }

    pub fn pid(&self) -> Option<u32> {
        self.sup.pid()
    }

    /// Clean shutdown (SIGTERM), then a new start on the same port.
    pub fn restart(&self) {
        self.assert_dedicated("restart");
        self.stop();
        self.start();
    }

    /// Clean shutdown (SIGTERM; SIGKILL after 60 s).
    pub fn stop(&self) {
        self.assert_dedicated("stop");
        *lock(&self.admin) = None;
        self.sup.stop(libc::SIGTERM, Duration::from_secs(60));
    }

    /// SIGKILL (crash recovery at the next start).
    pub fn kill(&self) {
        self.assert_dedicated("kill");
        *lock(&self.admin) = None;
        self.sup.stop(libc::SIGKILL, Duration::from_secs(10));
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
        if let Err(status) = self.spawn_and_wait() {
            self.died(status);
        }
        self.log_event(&format!("restarted in {:.2?}", t0.elapsed()));
    }
}

/// A database of its own for one test.
#[derive(Clone, Debug)]
pub struct MariaDbTestDb {
    /// The database name (unique within the test process).
    pub name: String,
    /// `mysql://zerodown:zerodown@127.0.0.1:<port>/<name>`.
    pub url: String,
    pub port: u16,
    pub data_dir: PathBuf,
}

impl MariaDbTestDb {
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A new connection as `zerodown` to this database.
    pub fn connect(&self) -> Conn {
        let opts = Opts::from_url(&self.url).expect("url");
        Conn::new(opts).unwrap_or_else(|e| panic!("connect to {}: {e}", self.url))
    }

    /// `mysql://<user>:<password>@127.0.0.1:<port>/<this db>`.
    pub fn url_as(&self, user: &str, password: &str) -> String {
        format!(
            "mysql://{user}:{password}@127.0.0.1:{}/{}",
            self.port, self.name
        )
    }

    /// Creates a user (`<db>_app`@`127.0.0.1` and @`localhost`, password `app`) with all privileges on
    /// this database only; returns its URL.
    pub fn create_app_user(&self) -> String {
        let user = format!("{}_app", self.name);
        let mut c = self.connect();
        for host in ["127.0.0.1", "localhost"] {
            c.query_drop(format!(
                "CREATE USER '{user}'@'{host}' IDENTIFIED BY 'app';
                 GRANT ALL PRIVILEGES ON `{db}`.* TO '{user}'@'{host}';",
                db = self.name
            ))
            .unwrap_or_else(|e| panic!("create user {user}@{host}: {e}"));
        }
        self.url_as(&user, "app")
    }
}
