//! Turning what was measured into phases: the application's latencies (HDR histograms) and the machine's
//! CPU idle time between the marks of a timeline, and the human table.

use super::load::{READ, Sample};
use super::sys::{CpuTicks, idle_pct};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::fmt::Write as _;

/// A phase boundary: from `at_ns` (CLOCK_MONOTONIC) on, the timeline is in phase `label`.
#[derive(Debug, Clone)]
pub struct Mark {
    pub at_ns: u64,
    pub label: String,
    /// Part of the migration (zerodown's lifecycle or the naive statements), not before/after.
    pub migration: bool,
}

/// The application as it fared in one phase. Latencies in milliseconds.
#[derive(Debug, Clone, Serialize, Default)]
pub struct PhaseReport {
    pub phase: String,
    pub seconds: f64,
    pub ops: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub read_max_ms: f64,
    pub write_p99_ms: f64,
    pub write_max_ms: f64,
    pub errors: u64,
    /// Machine CPU idle (idle + iowait) over the phase, all cores; None for phases too short to tell.
    pub cpu_idle_pct: Option<f64>,
}

fn histogram() -> Histogram<u64> {
    // 1µs .. 1h, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

struct Acc {
    all: Histogram<u64>,
    writes: Histogram<u64>,
    read_max: u64,
    errors: u64,
}

impl Acc {
    fn new() -> Acc {
        Acc {
            all: histogram(),
            writes: histogram(),
            read_max: 0,
            errors: 0,
        }
    }

    fn add(&mut self, s: &Sample) {
        let v = u64::from(s.lat_us).max(1);
        self.all.saturating_record(v);
        if s.op == READ {
            self.read_max = self.read_max.max(v);
        } else {
            self.writes.saturating_record(v);
        }
        if !s.ok {
            self.errors += 1;
        }
    }

    fn report(&self, phase: &str, seconds: f64, cpu: Option<f64>) -> PhaseReport {
        let q = |h: &Histogram<u64>, x: f64| {
            if h.is_empty() {
                0.0
            } else {
                ms(h.value_at_quantile(x))
            }
        };
        PhaseReport {
            phase: phase.to_string(),
            seconds,
            ops: self.all.len(),
            p50_ms: q(&self.all, 0.5),
            p99_ms: q(&self.all, 0.99),
            p999_ms: q(&self.all, 0.999),
            max_ms: if self.all.is_empty() {
                0.0
            } else {
                ms(self.all.max())
            },
            read_max_ms: ms(self.read_max),
            write_p99_ms: q(&self.writes, 0.99),
            write_max_ms: if self.writes.is_empty() {
                0.0
            } else {
                ms(self.writes.max())
            },
            errors: self.errors,
            cpu_idle_pct: cpu,
        }
    }
}

/// CPU idle between two instants, from periodic /proc/stat samples (nearest samples inside the span).
fn cpu_between(cpu: &[(u64, CpuTicks)], a: u64, b: u64) -> Option<f64> {
    let first = cpu.iter().find(|(t, _)| *t >= a)?;
    let last = cpu.iter().rev().find(|(t, _)| *t <= b)?;
    if last.0 <= first.0 || last.0 - first.0 < 150_000_000 {
        return None;
    }
    idle_pct(first.1, last.1)
}

/// Per-phase reports, in timeline order (a label seen twice is one phase), then the whole migration
/// ("during") and the baseline ("before") — the two the targets compare.
pub struct Phases {
    pub phases: Vec<PhaseReport>,
    pub during: PhaseReport,
    pub before: PhaseReport,
}

pub fn phases(
    marks: &[Mark],
    end_ns: u64,
    epoch_ns: u64,
    samples: &[Sample],
    cpu: &[(u64, CpuTicks)],
) -> Phases {
    let mut labels: Vec<String> = Vec::new();
    for m in marks {
        if !labels.contains(&m.label) {
            labels.push(m.label.clone());
        }
    }
    let mut accs: Vec<Acc> = labels.iter().map(|_| Acc::new()).collect();
    let mut secs = vec![0.0f64; labels.len()];
    let mut during = Acc::new();
    let mut during_secs = 0.0;
    // Spans of each mark, in µs since the epoch.
    let spans: Vec<(u64, u64, usize, bool)> = marks
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let end = marks.get(i + 1).map_or(end_ns, |n| n.at_ns);
            let idx = labels.iter().position(|l| *l == m.label).unwrap_or(0);
            (
                m.at_ns.saturating_sub(epoch_ns) / 1000,
                end.saturating_sub(epoch_ns) / 1000,
                idx,
                m.migration,
            )
        })
        .collect();
    for &(a, b, idx, mig) in &spans {
        let s = (b.saturating_sub(a)) as f64 / 1e6;
        secs[idx] += s;
        if mig {
            during_secs += s;
        }
    }
    for s in samples {
        let at = u64::from(s.at_us);
        // Operations scheduled before the first mark count as the first phase.
        let span = spans
            .iter()
            .rev()
            .find(|(a, _, _, _)| *a <= at)
            .or(spans.first());
        if let Some(&(_, _, idx, mig)) = span {
            accs[idx].add(s);
            if mig {
                during.add(s);
            }
        }
    }
    let cpu_of = |label: &str| -> Option<f64> {
        // The longest span of the label.
        marks
            .iter()
            .enumerate()
            .filter(|(_, m)| m.label == label)
            .map(|(i, m)| (m.at_ns, marks.get(i + 1).map_or(end_ns, |n| n.at_ns)))
            .max_by_key(|(a, b)| b - a)
            .and_then(|(a, b)| cpu_between(cpu, a, b))
    };
    let mig_span = (
        marks.iter().find(|m| m.migration).map(|m| m.at_ns),
        marks
            .iter()
            .enumerate()
            .filter(|(_, m)| m.migration)
            .map(|(i, _)| marks.get(i + 1).map_or(end_ns, |n| n.at_ns))
            .max(),
    );
    let phases: Vec<PhaseReport> = labels
        .iter()
        .zip(&accs)
        .zip(&secs)
        .map(|((l, a), s)| a.report(l, *s, cpu_of(l)))
        .collect();
    let before = phases
        .iter()
        .find(|p| p.phase == "before")
        .cloned()
        .unwrap_or_default();
    let during_cpu = match mig_span {
        (Some(a), Some(b)) => cpu_between(cpu, a, b),
        _ => None,
    };
    Phases {
        during: during.report("during the migration", during_secs, during_cpu),
        before,
        phases,
    }
}

/// Milliseconds with a precision that suits the magnitude.
pub fn fmt_ms(m: f64) -> String {
    if m == 0.0 {
        "0".into()
    } else if m < 1.0 {
        format!("{m:.3}")
    } else if m < 10.0 {
        format!("{m:.2}")
    } else if m < 100.0 {
        format!("{m:.1}")
    } else {
        format!("{m:.0}")
    }
}

/// The per-phase table of one scenario.
pub fn phase_table(p: &Phases) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "  {:<28} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7} {:>6}",
        "phase",
        "secs",
        "ops",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "w.max ms",
        "errors",
        "idle"
    );
    let row = |s: &mut String, r: &PhaseReport| {
        let _ = writeln!(
            s,
            "  {:<28} {:>7.2} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>7} {:>6}",
            r.phase,
            r.seconds,
            r.ops,
            fmt_ms(r.p50_ms),
            fmt_ms(r.p99_ms),
            fmt_ms(r.p999_ms),
            fmt_ms(r.max_ms),
            fmt_ms(r.write_p99_ms),
            fmt_ms(r.write_max_ms),
            r.errors,
            r.cpu_idle_pct
                .map(|x| format!("{x:.0}%"))
                .unwrap_or_else(|| "-".into())
        );
    };
    for r in &p.phases {
        row(&mut s, r);
    }
    if p.during.ops > 0 || p.during.seconds > 0.0 {
        row(&mut s, &p.during);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_fall_into_the_phase_of_their_intended_start() {
        let ms_ns = 1_000_000u64;
        let marks = vec![
            Mark {
                at_ns: 0,
                label: "before".into(),
                migration: false,
            },
            Mark {
                at_ns: 100 * ms_ns,
                label: "backfill".into(),
                migration: true,
            },
            Mark {
                at_ns: 200 * ms_ns,
                label: "after".into(),
                migration: false,
            },
        ];
        let s = |at_ms: u32, lat_ms: u32, op: u8, ok: bool| Sample {
            at_us: at_ms * 1000,
            lat_us: lat_ms * 1000,
            op,
            ok,
        };
        // The slow write was scheduled during the backfill, though it ended after it.
        let samples = vec![
            s(10, 1, READ, true),
            s(150, 120, 1, true),
            s(160, 2, READ, false),
            s(250, 1, 2, true),
        ];
        let p = phases(&marks, 300 * ms_ns, 0, &samples, &[]);
        assert_eq!(p.phases.len(), 3);
        assert_eq!(p.before.ops, 1);
        let b = &p.phases[1];
        assert_eq!((b.ops, b.errors), (2, 1));
        assert!((b.write_max_ms - 120.0).abs() < 0.5, "{b:?}");
        assert!((b.read_max_ms - 2.0).abs() < 0.01, "{b:?}");
        assert_eq!(p.during.ops, 2);
        assert!((p.during.seconds - 0.1).abs() < 1e-9);
        assert_eq!(fmt_ms(0.0421), "0.042");
        assert_eq!(fmt_ms(812.4), "812");
    }
}
