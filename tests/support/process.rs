//! Process plumbing shared by the engine harnesses: short temp directories, the unprivileged user a
//! server runs as when the tests run as root, free ports, log tails, and the supervision that makes
//! sure no server outlives the test process.
//!
//! Supervision: every server directory gets a watchdog, a tiny `/bin/sh` child in its own process
//! group that ignores terminal signals and blocks reading a pipe whose only write end is held by the
//! test process. The pipe closes when the test process closes it (a dedicated server's `Drop`, or the
//! `atexit` hook registered here, which runs when libtest calls `exit`) or when the test process dies
//! in any way (SIGKILL included). The watchdog then signals the server whose pid is in
//! `<dir>/zd-server.pid` (checking that the process still is that server), waits up to 10 s, kills
//! it, and removes the directory (kept, with the logs, under `ZERODOWN_KEEP_SERVER_DIRS=1`).
//!
//! Server directories are `/dev/shm/zd-XXXXXX` where /dev/shm is a big enough tmpfs (see
//! [`base_dir`]), else `/tmp/zd-XXXXXX`.

use std::collections::HashSet;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpListener;
use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once, OnceLock};
use std::time::{Duration, Instant};

/// Name of the file (inside a server directory) that holds the pid of the running server.
const PID_FILE: &str = "zd-server.pid";
/// Name of the file (inside a server directory) that holds the pid of its watchdog.
const WATCHDOG_PID_FILE: &str = "zd-watchdog.pid";

/// How long a server may take to become ready before the start is declared failed.
pub const START_TIMEOUT: Duration = Duration::from_secs(90);

/// Set `ZERODOWN_KEEP_SERVER_DIRS=1` to keep the server directories (data and logs) after the run.
pub fn keep_dirs() -> bool {
    std::env::var("ZERODOWN_KEEP_SERVER_DIRS").is_ok_and(|v| v == "1" || v == "true")
}

/// Set `ZERODOWN_REQUIRE_ENGINES=1` to turn "engine not installed" from a skip into a failure.
pub fn engines_required() -> bool {
    std::env::var("ZERODOWN_REQUIRE_ENGINES").is_ok_and(|v| v == "1" || v == "true")
}

/// Reports an engine whose binaries are missing: panics under `ZERODOWN_REQUIRE_ENGINES=1`, otherwise
/// prints one line (once per engine and test process) straight to the real stderr, past libtest's
/// output capture, so that a skip is visible in every run.
pub fn engine_missing(what: &str, detail: &str) {
    if engines_required() {
        panic!(
            "{what} not found ({detail}) and ZERODOWN_REQUIRE_ENGINES=1: run scripts/install-test-deps.sh"
        );
    }
    static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut seen = lock(&SEEN);
    if seen
        .get_or_insert_with(HashSet::new)
        .insert(what.to_string())
    {
        let line = format!("SKIP: {what} not found (run scripts/install-test-deps.sh)\n");
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

/// Locks a mutex, ignoring poisoning (a panicking test must not take the shared servers down).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Turns a caught panic payload into its message.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_string()
    }
}

/// The user a server runs as: `None` = the current user; `Some` when the tests run as root (PostgreSQL
/// refuses to run as root), then the `nobody` account.
#[derive(Clone, Copy, Debug)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

pub fn unprivileged_user() -> Option<RunAs> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    // SAFETY: getpwnam with a NUL-terminated name; the result is read at once, before any other call.
    let (uid, gid) = unsafe {
        let pw = libc::getpwnam(c"nobody".as_ptr());
        if pw.is_null() {
            (65534, 65534)
        } else {
            ((*pw).pw_uid, (*pw).pw_gid)
        }
    };
    Some(RunAs { uid, gid })
}

/// Makes `cmd` run as `run_as` (no supplementary groups: std drops them when a uid is set).
pub fn run_as(cmd: &mut Command, run_as: Option<RunAs>) -> &mut Command {
    if let Some(u) = run_as {
        cmd.uid(u.uid).gid(u.gid);
    }
    cmd
}

/// Where server directories go: `$ZERODOWN_TEST_TMPDIR` if set, else `/dev/shm` when it is a
/// writable tmpfs with at least 2 GiB free, else `/tmp`. On the machines seen, creating a file took
/// ~0.9 ms on the disk and ~7 µs on /dev/shm: initdb, mariadb-install-db and CREATE DATABASE (some
/// 300 files each) are much faster there.
pub fn base_dir() -> PathBuf {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        if let Some(d) = std::env::var_os("ZERODOWN_TEST_TMPDIR") {
            return PathBuf::from(d);
        }
        // SAFETY: an all-zero statvfs is a valid value to be overwritten.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: a NUL-terminated path and a valid out pointer.
        let ok = unsafe { libc::statvfs(c"/dev/shm".as_ptr(), &mut st) } == 0;
        // SAFETY: a NUL-terminated path.
        let writable = unsafe { libc::access(c"/dev/shm".as_ptr(), libc::W_OK) } == 0;
        let free = st.f_bavail as u64 * st.f_frsize as u64;
        if ok && writable && free >= 2 << 30 {
            return PathBuf::from("/dev/shm");
        }
        let tmp = Path::new("/tmp");
        if tmp.is_dir() {
            tmp.to_path_buf()
        } else {
            std::env::temp_dir()
        }
    })
    .clone()
}

/// A fresh, short directory `<base>/zd-XXXXXX` (unix socket paths must stay under ~107 bytes), owned
/// by the user the server runs as. It is not removed by Rust: the watchdog removes it.
pub fn server_dir(owner: Option<RunAs>) -> PathBuf {
    let base = base_dir();
    static SWEEP: Once = Once::new();
    SWEEP.call_once(|| sweep_stale(&base));
    let dir = tempfile::Builder::new()
        .prefix("zd-")
        .tempdir_in(&base)
        .unwrap_or_else(|e| panic!("cannot create a temp directory in {}: {e}", base.display()))
        .keep();
    if let Some(u) = owner {
        chown(&dir, Some(u.uid), Some(u.gid)).expect("chown server dir");
    }
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("chmod server dir");
    dir
}

/// Removes server directories left behind by test processes whose watchdog is gone too (only
/// possible when the watchdog itself was killed, e.g. by the OOM killer): on /dev/shm they would
/// hold memory until the next boot.
fn sweep_stale(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let is_ours = e.file_name().to_str().is_some_and(|n| n.starts_with("zd-"));
        let Ok(pid) = fs::read_to_string(path.join(WATCHDOG_PID_FILE)) else {
            continue;
        };
        let Ok(pid) = pid.trim().parse::<libc::pid_t>() else {
            continue;
        };
        // SAFETY: signal 0 only checks whether the process exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if is_ours && gone {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

/// Writes a file owned by `owner` with mode 0600.
pub fn write_private(path: &Path, contents: &str, owner: Option<RunAs>) {
    fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).expect("chmod");
    if let Some(u) = owner {
        chown(path, Some(u.uid), Some(u.gid)).expect("chown");
    }
}

thread_local! {
    static FORCED_PORT: std::cell::Cell<Option<u16>> = const { std::cell::Cell::new(None) };
}

/// Makes the next [`free_port`] call on this thread return `port` (to test the retry on a port
/// clash: a server started on this thread will first try that port).
pub fn force_next_port(port: u16) {
    FORCED_PORT.with(|p| p.set(Some(port)));
}

/// A port that was free on 127.0.0.1 a moment ago (the caller retries on a clash).
pub fn free_port() -> u16 {
    if let Some(p) = FORCED_PORT.with(|p| p.take()) {
        return p;
    }
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// The last `lines` lines of a log file (at most the last 64 KiB are read).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut f) = fs::File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Opens (appending) a log file for a child's stdout/stderr.
pub fn log_stdio(path: &Path) -> (Stdio, Stdio) {
    let f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let g = f.try_clone().expect("dup log file");
    (Stdio::from(f), Stdio::from(g))
}

/// Runs a setup command (initdb, mariadb-install-db) to completion with its output in `log`; panics
/// with the log's tail when it fails.
pub fn run_logged(cmd: &mut Command, log: &Path, what: &str) {
    let (out, err) = log_stdio(log);
    let status = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .unwrap_or_else(|e| panic!("{what}: cannot run {:?}: {e}", cmd.get_program()));
    if !status.success() {
        panic!(
            "{what} failed ({status}); last lines of {}:\n{}",
            log.display(),
            log_tail(log, 40)
        );
    }
}

/// Polls `attempt` until it returns `Ok`, the server process exits (`Err(status)`), or
/// [`START_TIMEOUT`] passes (panics with the log tail).
pub fn wait_ready<T>(
    sup: &Supervised,
    log: &Path,
    what: &str,
    mut attempt: impl FnMut() -> Result<T, String>,
) -> Result<T, ExitStatus> {
    let start = Instant::now();
    let mut last_error;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(status) = sup.exited() {
            return Err(status);
        }
        match attempt() {
            Ok(v) => return Ok(v),
            Err(e) => last_error = e,
        }
        if start.elapsed() > START_TIMEOUT {
            panic!(
                "{what} did not accept connections within {START_TIMEOUT:?} (last error: {last_error}); \
                 last lines of {}:\n{}",
                log.display(),
                log_tail(log, 40)
            );
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// True when a server log says it could not bind its port (the caller retries on another port).
pub fn port_clash(log: &Path) -> bool {
    let tail = log_tail(log, 30);
    tail.contains("Address already in use")
        || tail.contains("could not create any TCP/IP sockets")
        || tail.contains("Do you already have another")
}

// ------------------------------------------------------------------------------------------------
// Supervision

const WATCHDOG: &str = r#"
trap '' INT HUP TERM QUIT PIPE
dir=$1; sig=$2; keep=$3
while read -r _; do :; done
alive() {
    [ -r "/proc/$1/stat" ] || return 1
    [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" != Z ] || return 1
    tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | grep -qF "$dir"
}
pid=$(cat "$dir/zd-server.pid" 2>/dev/null || true)
if [ -n "$pid" ] && alive "$pid"; then
    kill -"$sig" "$pid" 2>/dev/null || true
    i=0
    while alive "$pid" && [ "$i" -lt 200 ]; do sleep 0.05; i=$((i+1)); done
    if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
fi
if [ "$keep" = keep ]; then rm -f "$dir/zd-watchdog.pid" "$dir/zd-server.pid"; else rm -rf "$dir"; fi
"#;

struct Shared {
    dir: PathBuf,
    child: Mutex<Option<Child>>,
    watchdog: Mutex<Option<(Child, ChildStdin)>>,
}

impl Shared {
    /// Closes the watchdog's pipe and waits for it: it stops the server and removes the directory.
    fn shutdown(&self) {
        let taken = match self.watchdog.try_lock() {
            Ok(mut g) => g.take(),
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner().take(),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        if let Some((mut wd, stdin)) = taken {
            drop(stdin);
            let _ = wd.wait();
        }
        // Reap the server (it is gone by now), unless another thread holds it.
        if let Ok(mut g) = self.child.try_lock()
            && let Some(mut c) = g.take()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

static REGISTRY: Mutex<Vec<(u64, Arc<Shared>)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

extern "C" fn cleanup_at_exit() {
    // Never unwind into C.
    let _ = std::panic::catch_unwind(|| {
        let entries: Vec<Arc<Shared>> = match REGISTRY.try_lock() {
            Ok(mut g) => g.drain(..).map(|(_, s)| s).collect(),
            Err(std::sync::TryLockError::Poisoned(e)) => {
                e.into_inner().drain(..).map(|(_, s)| s).collect()
            }
            // Someone holds it while the process exits: the watchdogs act when the pipes close.
            Err(std::sync::TryLockError::WouldBlock) => Vec::new(),
        };
        // Close every pipe first so that the servers stop in parallel, then wait.
        let mut waiting = Vec::new();
        for s in &entries {
            if let Ok(mut g) = s.watchdog.try_lock()
                && let Some((wd, stdin)) = g.take()
            {
                drop(stdin);
                waiting.push(wd);
            }
        }
        for mut wd in waiting {
            let _ = wd.wait();
        }
        // Reap the servers (stopped by now), so that none is left as a zombie for an init that does
        // not reap (PID 1 in some containers).
        for s in &entries {
            s.shutdown();
        }
    });
}

/// A server directory under supervision (see the module docs). Dropping it stops the server and
/// removes the directory.
pub struct Supervised {
    id: u64,
    shared: Arc<Shared>,
}

impl Supervised {
    /// Starts the watchdog for `dir`; `final_signal` is what it sends the server at the end.
    pub fn new(dir: &Path, final_signal: &str) -> Supervised {
        static AT_EXIT: Once = Once::new();
        AT_EXIT.call_once(|| {
            // SAFETY: registering a plain extern "C" fn.
            unsafe { libc::atexit(cleanup_at_exit) };
        });
        let mut wd = Command::new("/bin/sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("zerodown-test-watchdog")
            .arg(dir)
            .arg(final_signal)
            .arg(if keep_dirs() { "keep" } else { "remove" })
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn the watchdog (/bin/sh)");
        let stdin = wd.stdin.take().expect("watchdog stdin");
        let _ = fs::write(dir.join(WATCHDOG_PID_FILE), wd.id().to_string());
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            child: Mutex::new(None),
            watchdog: Mutex::new(Some((wd, stdin))),
        });
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        lock(&REGISTRY).push((id, shared.clone()));
        Supervised { id, shared }
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Spawns the server: own process group (a Ctrl-C in the terminal reaches the test process only;
    /// the watchdog then stops the server), no stdin; records its pid for the watchdog.
    pub fn spawn(&self, cmd: &mut Command) {
        let mut slot = lock(&self.shared.child);
        assert!(
            slot.is_none(),
            "a server is already running in {}",
            self.shared.dir.display()
        );
        let child = cmd
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {:?}: {e}", cmd.get_program()));
        fs::write(self.shared.dir.join(PID_FILE), child.id().to_string()).expect("write pid file");
        *slot = Some(child);
    }

    pub fn pid(&self) -> Option<u32> {
        lock(&self.shared.child).as_ref().map(|c| c.id())
    }

    /// `Some(status)` when the server process has exited (it is then reaped and forgotten).
    pub fn exited(&self) -> Option<ExitStatus> {
        let mut slot = lock(&self.shared.child);
        let status = slot.as_mut()?.try_wait().ok().flatten()?;
        *slot = None;
        let _ = fs::remove_file(self.shared.dir.join(PID_FILE));
        Some(status)
    }

    pub fn is_running(&self) -> bool {
        self.exited().is_none() && self.pid().is_some()
    }

    /// Sends `signal` and waits for the server to exit; SIGKILL after `timeout`. No-op when stopped.
    pub fn stop(&self, signal: i32, timeout: Duration) {
        let mut slot = lock(&self.shared.child);
        let Some(mut child) = slot.take() else { return };
        // SAFETY: signalling our own, not yet reaped, child.
        unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        let start = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if start.elapsed() > timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        let _ = fs::remove_file(self.shared.dir.join(PID_FILE));
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        lock(&REGISTRY).retain(|(id, _)| *id != self.id);
        self.shared.shutdown();
    }
}

/// Directory holding a copy of `src` that `user` can read and execute, for binaries under a directory
/// the unprivileged server user cannot enter (a checkout below /root, say). Made once per machine
/// under /tmp and reused (the copy is renamed into place atomically).
pub fn readable_copy(src: &Path, key: &str) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    src.hash(&mut h);
    key.hash(&mut h);
    let dst = PathBuf::from(format!("/tmp/zd-engine-{:016x}", h.finish()));
    if dst.is_dir() {
        return dst;
    }
    let tmp = PathBuf::from(format!("{}.{}.tmp", dst.display(), std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    let ok = Command::new("cp")
        .arg("-a")
        .arg(src)
        .arg(&tmp)
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(&tmp)
            .status()
            .is_ok_and(|s| s.success());
    assert!(ok, "cannot copy {} to {}", src.display(), tmp.display());
    let _ = fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755));
    if fs::rename(&tmp, &dst).is_err() {
        // Another process won the race.
        let _ = fs::remove_dir_all(&tmp);
    }
    dst
}

/// A per-process counter for unique names.
pub fn next_serial() -> u64 {
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

/// `name` made into a lowercase identifier of at most `max` bytes plus a per-process serial number.
pub fn unique_name(name: &str, max: usize) -> String {
    let mut base: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if base.is_empty() || base.starts_with(|c: char| c.is_ascii_digit()) {
        base.insert_str(0, "db_");
    }
    let suffix = format!("_{}", next_serial());
    base.truncate(max.saturating_sub(suffix.len()));
    base + &suffix
}

/// Shared state for lazily started, process-wide servers: one `OnceLock` per key, so that servers of
/// different kinds start in parallel while tests wanting the same one wait for it.
pub struct Lazy<T: 'static> {
    slots: Mutex<Vec<(String, &'static Slot<T>)>>,
}

/// `None`: engine not installed; `Some(Err)`: the start panicked with this message.
type Slot<T> = OnceLock<Option<Result<T, String>>>;

impl<T: Send + Sync + 'static> Lazy<T> {
    pub const fn new() -> Self {
        Lazy {
            slots: Mutex::new(Vec::new()),
        }
    }

    /// The server for `key`, started by `start` on first use. `start` returns `None` when the engine
    /// is not installed; a panic inside it is remembered, and every later caller panics with it too
    /// (instead of each test waiting for its own failed start).
    pub fn get(&'static self, key: &str, start: impl FnOnce() -> Option<T>) -> Option<&'static T> {
        let slot = {
            let mut slots = lock(&self.slots);
            match slots.iter().find(|(k, _)| k == key) {
                Some((_, s)) => *s,
                None => {
                    let s: &'static Slot<T> = Box::leak(Box::new(OnceLock::new()));
                    slots.push((key.to_string(), s));
                    s
                }
            }
        };
        let result = slot.get_or_init(|| {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(start)) {
                Ok(None) => None,
                Ok(Some(server)) => Some(Ok(server)),
                Err(payload) => Some(Err(panic_message(&*payload))),
            }
        });
        match result {
            None => None,
            Some(Ok(server)) => Some(server),
            Some(Err(message)) => {
                panic!("starting the shared {key} server failed earlier: {message}")
            }
        }
    }
}
