//! A pass-through SQLite VFS that measures, without changing anything SQLite does:
//! - bytes written to WAL files and to main database files (checkpoints), per process and per thread;
//! - how long each connection held SQLite's write lock (the WAL write lock, shared-memory slot 0), from
//!   the moment it was granted to the moment it was released, per thread.
//!
//! It wraps the default VFS ("unix") and becomes the default itself, so every connection the process
//! opens afterwards — zerodown's own included — goes through it. SQLite has no lock view to sample; this
//! is the same information from inside: exact, and cheap (an atomic add per write, a clock read per lock).

use super::sys::mono_ns;
use rusqlite::ffi;
use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::sync::Once;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

/// Write-lock holds of one thread since the last [`take_thread_holds`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HoldStats {
    pub count: u64,
    pub total_ns: u64,
    pub max_ns: u64,
    /// Holds longer than 50 ms (the benchmark's target for any single lock).
    pub over_50ms: u64,
}

impl HoldStats {
    pub fn merge(&mut self, o: HoldStats) {
        self.count += o.count;
        self.total_ns += o.total_ns;
        self.max_ns = self.max_ns.max(o.max_ns);
        self.over_50ms += o.over_50ms;
    }
}

thread_local! {
    static THREAD_WAL: Cell<u64> = const { Cell::new(0) };
    static THREAD_DB: Cell<u64> = const { Cell::new(0) };
    static THREAD_HOLDS: Cell<HoldStats> = const { Cell::new(HoldStats { count: 0, total_ns: 0, max_ns: 0, over_50ms: 0 }) };
}

static WAL_BYTES: AtomicU64 = AtomicU64::new(0);
static DB_BYTES: AtomicU64 = AtomicU64::new(0);
static REAL_VFS: AtomicPtr<ffi::sqlite3_vfs> = AtomicPtr::new(std::ptr::null_mut());
static INSTALL: Once = Once::new();

/// Bytes this process has written to WAL files and to database files since it started.
pub fn process_bytes() -> (u64, u64) {
    (
        WAL_BYTES.load(Ordering::Relaxed),
        DB_BYTES.load(Ordering::Relaxed),
    )
}

/// Bytes the calling thread has written to WAL files and to database files (cumulative).
pub fn thread_bytes() -> (u64, u64) {
    (
        THREAD_WAL.try_with(Cell::get).unwrap_or(0),
        THREAD_DB.try_with(Cell::get).unwrap_or(0),
    )
}

/// The calling thread's write-lock holds since the last call, and a fresh start.
pub fn take_thread_holds() -> HoldStats {
    THREAD_HOLDS
        .try_with(|h| h.replace(HoldStats::default()))
        .unwrap_or_default()
}

/// Makes the measuring VFS the process's default, once. Call before opening any connection.
/// Returns false (and measures nothing) if SQLite has no default VFS to wrap.
pub fn install() -> bool {
    INSTALL.call_once(|| {
        // SAFETY: sqlite3_vfs_find/register are thread-safe SQLite calls; the struct we register is
        // leaked, so it lives as long as the process, as SQLite requires.
        unsafe {
            let real = ffi::sqlite3_vfs_find(std::ptr::null());
            if real.is_null() {
                return;
            }
            REAL_VFS.store(real, Ordering::Release);
            let mut vfs: ffi::sqlite3_vfs = *real;
            vfs.szOsFile = (REAL_OFFSET + (*real).szOsFile as usize) as c_int;
            vfs.zName = c"zerodown-bench".as_ptr();
            vfs.pNext = std::ptr::null_mut();
            vfs.xOpen = Some(shim_open);
            let vfs = Box::leak(Box::new(vfs));
            if ffi::sqlite3_vfs_register(vfs, 1) != ffi::SQLITE_OK {
                REAL_VFS.store(std::ptr::null_mut(), Ordering::Release);
            }
        }
    });
    !REAL_VFS.load(Ordering::Acquire).is_null()
}

const KIND_OTHER: c_int = 0;
const KIND_DB: c_int = 1;
const KIND_WAL: c_int = 2;
const WRITE_LOCK_SLOT: c_int = 0;
const LONG_HOLD_NS: u64 = 50_000_000;

/// Our file: SQLite's header, then the real VFS's file in the same allocation, at `REAL_OFFSET`.
#[repr(C)]
struct ShimFile {
    base: ffi::sqlite3_file,
    real: *mut ffi::sqlite3_file,
    kind: c_int,
    /// When this connection was granted the write lock (0: not held).
    locked_at: u64,
}

const REAL_OFFSET: usize = std::mem::size_of::<ShimFile>().next_multiple_of(16);

static SHIM_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(x_close),
    xRead: Some(x_read),
    xWrite: Some(x_write),
    xTruncate: Some(x_truncate),
    xSync: Some(x_sync),
    xFileSize: Some(x_file_size),
    xLock: Some(x_lock),
    xUnlock: Some(x_unlock),
    xCheckReservedLock: Some(x_check_reserved_lock),
    xFileControl: Some(x_file_control),
    xSectorSize: Some(x_sector_size),
    xDeviceCharacteristics: Some(x_device_characteristics),
    xShmMap: Some(x_shm_map),
    xShmLock: Some(x_shm_lock),
    xShmBarrier: Some(x_shm_barrier),
    xShmUnmap: Some(x_shm_unmap),
    xFetch: Some(x_fetch),
    xUnfetch: Some(x_unfetch),
};

unsafe extern "C" fn shim_open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: SQLite hands us `szOsFile` bytes at `file`; the real file lives at REAL_OFFSET in them.
    unsafe {
        let real_vfs = REAL_VFS.load(Ordering::Acquire);
        let shim = file as *mut ShimFile;
        let real = (file as *mut u8).add(REAL_OFFSET) as *mut ffi::sqlite3_file;
        (*shim).base.pMethods = std::ptr::null();
        (*shim).real = real;
        (*shim).locked_at = 0;
        (*shim).kind = if flags & ffi::SQLITE_OPEN_WAL != 0 {
            KIND_WAL
        } else if flags & ffi::SQLITE_OPEN_MAIN_DB != 0 {
            KIND_DB
        } else {
            KIND_OTHER
        };
        (*real).pMethods = std::ptr::null();
        let Some(open) = (*real_vfs).xOpen else {
            return ffi::SQLITE_ERROR;
        };
        let rc = open(real_vfs, name, real, flags, out_flags);
        if !(*real).pMethods.is_null() {
            (*shim).base.pMethods = &SHIM_METHODS;
        }
        rc
    }
}

/// The real file and its methods behind one of ours.
///
/// SAFETY: `f` must be a file opened by `shim_open` whose real open succeeded (SQLite only calls our
/// methods on such files).
unsafe fn real(
    f: *mut ffi::sqlite3_file,
) -> (*mut ffi::sqlite3_file, &'static ffi::sqlite3_io_methods) {
    unsafe {
        let real = (*(f as *mut ShimFile)).real;
        (real, &*(*real).pMethods)
    }
}

unsafe extern "C" fn x_close(f: *mut ffi::sqlite3_file) -> c_int {
    unsafe {
        let (r, m) = real(f);
        match m.xClose {
            Some(x) => x(r),
            None => ffi::SQLITE_OK,
        }
    }
}

unsafe extern "C" fn x_read(
    f: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amt: c_int,
    ofst: ffi::sqlite3_int64,
) -> c_int {
    unsafe {
        let (r, m) = real(f);
        m.xRead.map_or(ffi::SQLITE_IOERR, |x| x(r, buf, amt, ofst))
    }
}

unsafe extern "C" fn x_write(
    f: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amt: c_int,
    ofst: ffi::sqlite3_int64,
) -> c_int {
    unsafe {
        let (r, m) = real(f);
        let rc = m.xWrite.map_or(ffi::SQLITE_IOERR, |x| x(r, buf, amt, ofst));
        if rc == ffi::SQLITE_OK {
            let n = amt.max(0) as u64;
            match (*(f as *mut ShimFile)).kind {
                KIND_WAL => {
                    WAL_BYTES.fetch_add(n, Ordering::Relaxed);
                    let _ = THREAD_WAL.try_with(|c| c.set(c.get() + n));
                }
                KIND_DB => {
                    DB_BYTES.fetch_add(n, Ordering::Relaxed);
                    let _ = THREAD_DB.try_with(|c| c.set(c.get() + n));
                }
                _ => {}
            }
        }
        rc
    }
}

unsafe extern "C" fn x_truncate(f: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
    unsafe {
        let (r, m) = real(f);
        m.xTruncate.map_or(ffi::SQLITE_IOERR, |x| x(r, size))
    }
}

unsafe extern "C" fn x_sync(f: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    unsafe {
        let (r, m) = real(f);
        m.xSync.map_or(ffi::SQLITE_IOERR, |x| x(r, flags))
    }
}

unsafe extern "C" fn x_file_size(
    f: *mut ffi::sqlite3_file,
    size: *mut ffi::sqlite3_int64,
) -> c_int {
    unsafe {
        let (r, m) = real(f);
        m.xFileSize.map_or(ffi::SQLITE_IOERR, |x| x(r, size))
    }
}

unsafe extern "C" fn x_lock(f: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    unsafe {
        let (r, m) = real(f);
        m.xLock.map_or(ffi::SQLITE_IOERR, |x| x(r, level))
    }
}

unsafe extern "C" fn x_unlock(f: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    unsafe {
        let (r, m) = real(f);
        m.xUnlock.map_or(ffi::SQLITE_IOERR, |x| x(r, level))
    }
}

unsafe extern "C" fn x_check_reserved_lock(f: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    unsafe {
        let (r, m) = real(f);
        m.xCheckReservedLock
            .map_or(ffi::SQLITE_IOERR, |x| x(r, out))
    }
}

unsafe extern "C" fn x_file_control(
    f: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    unsafe {
        let (r, m) = real(f);
        m.xFileControl
            .map_or(ffi::SQLITE_NOTFOUND, |x| x(r, op, arg))
    }
}

unsafe extern "C" fn x_sector_size(f: *mut ffi::sqlite3_file) -> c_int {
    unsafe {
        let (r, m) = real(f);
        m.xSectorSize.map_or(4096, |x| x(r))
    }
}

unsafe extern "C" fn x_device_characteristics(f: *mut ffi::sqlite3_file) -> c_int {
    unsafe {
        let (r, m) = real(f);
        m.xDeviceCharacteristics.map_or(0, |x| x(r))
    }
}

unsafe extern "C" fn x_shm_map(
    f: *mut ffi::sqlite3_file,
    pg: c_int,
    pgsz: c_int,
    extend: c_int,
    pp: *mut *mut c_void,
) -> c_int {
    unsafe {
        let (r, m) = real(f);
        if m.iVersion < 2 {
            return ffi::SQLITE_IOERR;
        }
        m.xShmMap
            .map_or(ffi::SQLITE_IOERR, |x| x(r, pg, pgsz, extend, pp))
    }
}

unsafe extern "C" fn x_shm_lock(
    f: *mut ffi::sqlite3_file,
    ofst: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    unsafe {
        let (r, m) = real(f);
        if m.iVersion < 2 {
            return ffi::SQLITE_IOERR;
        }
        let rc = m
            .xShmLock
            .map_or(ffi::SQLITE_IOERR, |x| x(r, ofst, n, flags));
        let covers_write_lock = ofst <= WRITE_LOCK_SLOT && ofst + n > WRITE_LOCK_SLOT;
        if rc == ffi::SQLITE_OK && covers_write_lock {
            let shim = f as *mut ShimFile;
            if flags == ffi::SQLITE_SHM_LOCK | ffi::SQLITE_SHM_EXCLUSIVE {
                (*shim).locked_at = mono_ns();
            } else if flags & ffi::SQLITE_SHM_UNLOCK != 0 && (*shim).locked_at != 0 {
                let held = mono_ns().saturating_sub((*shim).locked_at);
                (*shim).locked_at = 0;
                let _ = THREAD_HOLDS.try_with(|h| {
                    let mut s = h.get();
                    s.count += 1;
                    s.total_ns += held;
                    s.max_ns = s.max_ns.max(held);
                    if held > LONG_HOLD_NS {
                        s.over_50ms += 1;
                    }
                    h.set(s);
                });
            }
        }
        rc
    }
}

unsafe extern "C" fn x_shm_barrier(f: *mut ffi::sqlite3_file) {
    unsafe {
        let (r, m) = real(f);
        if m.iVersion >= 2
            && let Some(x) = m.xShmBarrier
        {
            x(r)
        }
    }
}

unsafe extern "C" fn x_shm_unmap(f: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    unsafe {
        let (r, m) = real(f);
        if m.iVersion < 2 {
            return ffi::SQLITE_OK;
        }
        m.xShmUnmap.map_or(ffi::SQLITE_OK, |x| x(r, delete))
    }
}

unsafe extern "C" fn x_fetch(
    f: *mut ffi::sqlite3_file,
    ofst: ffi::sqlite3_int64,
    amt: c_int,
    pp: *mut *mut c_void,
) -> c_int {
    unsafe {
        let (r, m) = real(f);
        match (m.iVersion >= 3, m.xFetch) {
            (true, Some(x)) => x(r, ofst, amt, pp),
            _ => {
                // What SQLite itself does for a file without memory mapping: no page, no error.
                *pp = std::ptr::null_mut();
                ffi::SQLITE_OK
            }
        }
    }
}

unsafe extern "C" fn x_unfetch(
    f: *mut ffi::sqlite3_file,
    ofst: ffi::sqlite3_int64,
    p: *mut c_void,
) -> c_int {
    unsafe {
        let (r, m) = real(f);
        match (m.iVersion >= 3, m.xUnfetch) {
            (true, Some(x)) => x(r, ofst, p),
            _ => ffi::SQLITE_OK,
        }
    }
}

// Tested in tests/bench_smoke.rs, in its own process: installing the VFS changes the process-wide default.
