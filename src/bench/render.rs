//! The report: each scenario's targets checked, and the tables and summary the binary prints.

use super::report::{Phases, fmt_ms};
use super::{ScenarioReport, TargetCheck, report};
use std::fmt::Write as _;
pub(super) fn targets(r: &ScenarioReport) -> Vec<TargetCheck> {
    let mut t = Vec::new();
    let mut check = |target: &str, measured: String, met: bool| {
        t.push(TargetCheck {
            target: target.into(),
            measured,
            met,
        })
    };
    let ratio_text = |v: f64, limit: f64| {
        if v <= limit {
            format!("within by {}", fmt_ms(limit - v))
        } else {
            format!(
                "missed by {} ms ({:.1}× the limit)",
                fmt_ms(v - limit),
                v / limit.max(1e-9)
            )
        }
    };
    match r.scenario.as_str() {
        "zerodown" | "zerodown-noindex" | "zerodown-copy" => {
            if let (Some(b), Some(d)) = (&r.before, &r.during) {
                let l1 = 1.5 * b.p99_ms;
                check(
                    "app p99 during ≤ 1.5× baseline p99",
                    format!(
                        "{} ms vs 1.5×{} = {} ms: {}",
                        fmt_ms(d.p99_ms),
                        fmt_ms(b.p99_ms),
                        fmt_ms(l1),
                        ratio_text(d.p99_ms, l1)
                    ),
                    d.p99_ms <= l1,
                );
                let l2 = b.p99_ms + 10.0;
                check(
                    "app p99 during ≤ baseline p99 + 10 ms",
                    format!(
                        "{} ms vs {} ms: {}",
                        fmt_ms(d.p99_ms),
                        fmt_ms(l2),
                        ratio_text(d.p99_ms, l2)
                    ),
                    d.p99_ms <= l2,
                );
                check(
                    "app max during ≤ 1 s",
                    format!("{} ms: {}", fmt_ms(d.max_ms), ratio_text(d.max_ms, 1000.0)),
                    d.max_ms <= 1000.0,
                );
                let errors: u64 = r.phases.iter().map(|p| p.errors).sum();
                check(
                    "zero application errors",
                    format!("{errors} errors, {} ops never issued", r.unissued_ops),
                    errors == 0,
                );
            }
            if let Some(l) = r.sampled_lock_ms {
                check(
                    "cross-check: no write-blocking table lock seen held > 50 ms in the lock views",
                    format!(
                        "longest seen {} ms ({}), sampled every {} ms",
                        fmt_ms(l),
                        r.sampled_lock_what.as_deref().unwrap_or("none"),
                        opt(r.sample_every_ms, fmt_ms)
                    ),
                    l <= 50.0,
                );
            }
            if let Some(l) = r.longest_lock_ms {
                check(
                    "each write-lock hold ≤ 50 ms",
                    format!(
                        "longest {} ms ({}); {} holds over 50 ms",
                        fmt_ms(l),
                        r.longest_lock_step.as_deref().unwrap_or("?"),
                        r.locks_over_50ms.unwrap_or(0)
                    ),
                    l <= 50.0,
                );
            }
            rss_check(r, &mut check);
        }
        "limit-zerodown" => {
            if let Some(x) = r.backfill_ratio {
                // Issue 13's targets.
                let (limit, text) = if r.engine.starts_with("SQLite") {
                    (
                        0.8,
                        "backfill with no load ≥ 0.8× the single UPDATE (SQLite)",
                    )
                } else {
                    (0.85, "backfill with no load ≥ 0.85× the single UPDATE")
                };
                check(text, format!("{x:.2}×"), x >= limit);
            }
            rss_check(r, &mut check);
        }
        _ => {}
    }
    t
}

fn rss_check(r: &ScenarioReport, check: &mut dyn FnMut(&str, String, bool)) {
    if let Some(kb) = r.peak_rss_kb {
        check(
            "zerodown peak RSS ≤ 50 MB (flat in table size: compare runs)",
            format!("{:.1} MB at {} rows", kb as f64 / 1024.0, r.rows),
            kb <= 50 * 1024,
        );
    }
}

fn mb(b: u64) -> String {
    format!("{:.1}", b as f64 / 1e6)
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "-".into())
}

/// The human report: per scenario its phases, steps and targets, then one summary table.
pub fn render(reports: &[ScenarioReport]) -> String {
    let mut s = String::new();
    for r in reports {
        let _ = writeln!(s, "\n== {} — {}", r.scenario, r.description);
        if let Some(rate) = r.rate_ops_s {
            let _ = writeln!(
                s,
                "   open-loop load {rate:.0} ops/s (70% reads, 20% updates, 10% inserts){}",
                opt(r.max_rate_ops_s, |m| format!(
                    "; measured maximum {m:.0} ops/s"
                ))
            );
        }
        if let Some(f) = &r.failure {
            let _ = writeln!(s, "   FAILED: {f}");
        }
        if !r.phases.is_empty() {
            let _ = writeln!(
                s,
                "   application latency from each operation's intended start:"
            );
            s.push_str(&report::phase_table(&Phases {
                phases: r.phases.clone(),
                during: r.during.clone().unwrap_or_default(),
                before: r.before.clone().unwrap_or_default(),
            }));
        }
        if !r.steps.is_empty() {
            let _ = writeln!(
                s,
                "   {:<30} {:>10} {:>14} {:>8} {:>9}",
                "migration step", "elapsed ms", "lock held ms", "locks", "WAL MB"
            );
            for st in &r.steps {
                let _ = writeln!(
                    s,
                    "   {:<30} {:>10} {:>14} {:>8} {:>9}",
                    st.label,
                    fmt_ms(st.elapsed_ms),
                    opt(st.lock_max_ms, fmt_ms),
                    opt(st.lock_count, |c| c.to_string()),
                    opt(st.wal_bytes, mb)
                );
            }
        }
        let mut facts = Vec::new();
        if let Some(l) = r.longest_lock_ms {
            facts.push(format!(
                "longest write-lock hold {} ms ({})",
                fmt_ms(l),
                r.longest_lock_step.as_deref().unwrap_or("?")
            ));
        }
        if let Some(l) = r.sampled_lock_ms {
            facts.push(format!(
                "lock views (sampled every {} ms): longest write-blocking table lock {} ms ({}); longest lock wait {} ms ({})",
                opt(r.sample_every_ms, fmt_ms),
                fmt_ms(l),
                r.sampled_lock_what.as_deref().unwrap_or("none"),
                opt(r.sampled_wait_ms, fmt_ms),
                r.sampled_wait_what.as_deref().unwrap_or("none")
            ));
        } else if let Some(w) = &r.sampled_lock_what {
            facts.push(format!("lock views: {w}"));
        }
        if let Some(w) = r.app_longest_wait_ms {
            facts.push(format!(
                "longest application wait {} ms ({})",
                fmt_ms(w),
                r.app_longest_wait_phase.as_deref().unwrap_or("?")
            ));
        }
        if let Some(rps) = r.backfill_rows_per_s {
            facts.push(format!(
                "backfill {} rows in {:.2}s = {rps:.0} rows/s{}",
                r.backfill_rows.unwrap_or(0),
                r.backfill_s.unwrap_or(0.0),
                opt(r.backfill_ratio, |x| format!(
                    " ({x:.2}× the single UPDATE)"
                ))
            ));
        }
        if let (Some(p99), Some(max)) = (r.backfill_p99_ms, r.backfill_max_ms) {
            facts.push(format!(
                "application while the backfill ran: p99 {} ms, max {} ms",
                fmt_ms(p99),
                fmt_ms(max)
            ));
        }
        if let (Some(n), Some(peak)) = (r.latency_changes, r.latency_peak_ratio) {
            facts.push(format!(
                "latency guard: changed the rest ratio {n} times, at most {peak:.2}× a batch"
            ));
        }
        for n in &r.pacing_notes {
            facts.push(format!("zerodown: {n}"));
        }
        for u in &r.unpaced {
            let app = if u.ops == 0 {
                "no application operation scheduled meanwhile was issued before the load stopped"
                    .to_string()
            } else {
                format!(
                    "application p99 {} ms, max {} ms meanwhile",
                    fmt_ms(u.p99_ms),
                    fmt_ms(u.max_ms)
                )
            };
            facts.push(format!(
                "complete's one statement ({}, not paced): {} took {:.2}s; {app}{}",
                u.cost,
                u.label,
                u.seconds,
                opt(u.cpu_idle_pct, |i| format!(", machine idle {i:.0}%"))
            ));
        }
        if let Some(w) = r.wal_bytes {
            facts.push(format!(
                "WAL written by the migration {} MB{}{}",
                mb(w),
                if r.wal_estimated {
                    " (estimated: the window's log bytes less the application's baseline rate)"
                } else {
                    ""
                },
                opt(r.wal_ratio, |x| format!(" ({x:.2}× the single UPDATE)"))
            ));
        }
        if let Some(w) = r.app_wal_bytes {
            facts.push(format!("WAL written by the application {} MB", mb(w)));
        }
        if let Some(kb) = r.peak_rss_kb {
            facts.push(format!(
                "zerodown peak RSS {:.1} MB, CPU {:.1}s, lock retries {}, rested for load {:.1}s ({} times)",
                kb as f64 / 1024.0,
                r.zerodown_cpu_s.unwrap_or(0.0),
                r.lock_retries.unwrap_or(0),
                r.rested_s.unwrap_or(0.0),
                r.rests.unwrap_or(0)
            ));
        }
        if let (Some(app), Some(other)) = (r.app_cpu_s, r.other_cpu_s) {
            facts.push(format!(
                "CPU over the scenario: benchmark process (application{}) {app:.1}s, zerodown {}, other processes {other:.1}s, machine idle {}",
                if r.scenario.starts_with("naive") { " + naive statements" } else { "" },
                opt(r.zerodown_cpu_s, |z| format!("{z:.1}s")),
                opt(r.cpu_idle_pct, |i| format!("{i:.0}%"))
            ));
        }
        if let Some(m) = r.mismatched_rows {
            facts.push(format!("rows whose new column is wrong afterwards: {m}"));
        }
        if r.unissued_ops > 0 {
            facts.push(format!(
                "{} operations were still queued when the load stopped",
                r.unissued_ops
            ));
        }
        for (e, n) in &r.errors {
            facts.push(format!("error ×{n}: {e}"));
        }
        facts.push(format!(
            "total {:.1}s (migration {:.1}s)",
            r.total_s, r.migration_s
        ));
        for f in facts {
            let _ = writeln!(s, "   {f}");
        }
        for t in &r.targets {
            let _ = writeln!(
                s,
                "   [{}] {} — {}",
                if t.met { "met" } else { "MISSED" },
                t.target,
                t.measured
            );
        }
    }
    let _ = writeln!(s, "\n== summary");
    let _ = writeln!(
        s,
        "  {:<17} {:>8} {:>9} {:>9} {:>9} {:>7} {:>10} {:>9} {:>11} {:>9} {:>8}",
        "scenario",
        "total s",
        "p99 bef.",
        "p99 dur.",
        "max dur.",
        "errors",
        "max lock",
        "rows/s",
        "×UPDATE",
        "WAL ×",
        "RSS MB"
    );
    for r in reports {
        let errors: u64 = r.phases.iter().map(|p| p.errors).sum();
        let _ = writeln!(
            s,
            "  {:<17} {:>8.1} {:>9} {:>9} {:>9} {:>7} {:>10} {:>9} {:>11} {:>9} {:>8}",
            r.scenario,
            r.total_s,
            opt(r.before.as_ref(), |b| fmt_ms(b.p99_ms)),
            opt(r.during.as_ref(), |b| fmt_ms(b.p99_ms)),
            opt(r.during.as_ref(), |b| fmt_ms(b.max_ms)),
            if r.phases.is_empty() {
                "-".to_string()
            } else {
                errors.to_string()
            },
            opt(r.longest_lock_ms, fmt_ms),
            opt(r.backfill_rows_per_s, |x| format!("{x:.0}")),
            opt(r.backfill_ratio, |x| format!("{x:.2}")),
            opt(r.wal_ratio, |x| format!("{x:.2}")),
            opt(r.peak_rss_kb, |k| format!("{:.1}", k as f64 / 1024.0)),
        );
    }
    let _ = writeln!(
        s,
        "  (latencies and lock holds in ms; p99/max of all application operations before and during the migration)"
    );
    s
}
