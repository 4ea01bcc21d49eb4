//! What the benchmark reads from the operating system: a clock shared by processes, CPU time from
//! /proc/stat, a process's peak memory, the machine's size.

use std::time::Duration;

/// CLOCK_MONOTONIC in nanoseconds: one clock for the benchmark and its child processes.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The machine's CPU counters (all cores), in clock ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTicks {
    /// idle + iowait.
    pub idle: u64,
    pub total: u64,
}

/// Reads the aggregate `cpu` line of /proc/stat; zeros where it cannot be read.
pub fn cpu_ticks() -> CpuTicks {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| parse_cpu_line(s.lines().next()?))
        .unwrap_or_default()
}

fn parse_cpu_line(line: &str) -> Option<CpuTicks> {
    let mut it = line.split_whitespace();
    if it.next()? != "cpu" {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest counts are already inside user/nice).
    let v: Vec<u64> = it.take(8).filter_map(|x| x.parse().ok()).collect();
    if v.len() < 5 {
        return None;
    }
    Some(CpuTicks {
        idle: v[3] + v[4],
        total: v.iter().sum(),
    })
}

/// Clock ticks per second of /proc/stat.
pub fn clk_tck() -> f64 {
    // SAFETY: sysconf reads a constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// Percentage of CPU time idle between two readings; `None` when too few ticks passed to say.
pub fn idle_pct(a: CpuTicks, b: CpuTicks) -> Option<f64> {
    let total = b.total.checked_sub(a.total)?;
    let idle = b.idle.checked_sub(a.idle)?;
    (total >= 10).then(|| 100.0 * idle as f64 / total as f64)
}

/// A field of /proc/self/status in kB (`VmHWM`, `VmRSS`).
pub fn self_status_kb(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// CPU time this process has used (user, system).
pub fn self_cpu() -> (Duration, Duration) {
    // SAFETY: getrusage fills the struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

/// Cores and memory, as `nproc` and `free` would say.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem_kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!(
        "{cores} cores ({model}), {:.1} GiB memory",
        mem_kb as f64 / 1024.0 / 1024.0
    )
}

/// Lets this thread's sleeps end within a few microseconds of their deadline (the default timer slack
/// of 50µs would show up in every open-loop latency).
pub fn tight_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and affects only the calling thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong, 0, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_cpu_line() {
        let t = parse_cpu_line("cpu  10 2 30 400 5 6 7 8 0 0").unwrap();
        assert_eq!(t.idle, 405);
        assert_eq!(t.total, 468);
        assert!(parse_cpu_line("cpu0 1 2 3 4 5").is_none());
        let a = CpuTicks {
            idle: 100,
            total: 200,
        };
        let b = CpuTicks {
            idle: 150,
            total: 300,
        };
        assert_eq!(idle_pct(a, b), Some(50.0));
        assert_eq!(idle_pct(a, a), None);
    }

    #[test]
    fn reads_own_memory_and_clock() {
        assert!(self_status_kb("VmHWM").unwrap_or(0) > 0);
        let a = mono_ns();
        let b = mono_ns();
        assert!(b >= a);
    }
}
