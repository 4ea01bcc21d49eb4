//! `status`: where each migration stands, as data the CLI renders as text or JSON.

use crate::engine::{Engine, StateRow, Status};
use crate::error::{Error, Result};
use crate::plan::Phase;
use serde::Serialize;

/// One migration's standing.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub name: String,
    pub table: String,
    pub column: String,
    pub status: Status,
    /// The phase of the step running or next to run.
    pub phase: String,
    pub step: usize,
    pub steps: usize,
    pub rows_done: i64,
    pub rows_total: Option<i64>,
    /// `None` once rolled back: the rows done say nothing then.
    pub percent: Option<f64>,
    /// The backfill's rows per second: over its own time once done, so far while it runs.
    pub rate: Option<f64>,
    pub eta_seconds: Option<f64>,
    /// INSERTs that left the new column NULL: old application versions still writing.
    pub old_writer_inserts: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
    pub completed_at: Option<String>,
    pub heartbeat: Option<String>,
    pub cancel_requested: bool,
    pub timings: std::collections::BTreeMap<String, f64>,
}

fn seconds_between(a: &str, b: &str) -> Option<f64> {
    // Timestamps are ISO-8601 UTC with milliseconds, as the state table writes them.
    let parse = |s: &str| -> Option<f64> {
        let (date, time) = s.trim_end_matches('Z').split_once('T')?;
        let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
        let (y, m, dd) = (d.next()??, d.next()??, d.next()??);
        let mut t = time.split(':');
        let (h, mi, sec) = (
            t.next()?.parse::<f64>().ok()?,
            t.next()?.parse::<f64>().ok()?,
            t.next()?.parse::<f64>().ok()?,
        );
        // Days from civil (Howard Hinnant's algorithm).
        let y2 = if m <= 2 { y - 1 } else { y };
        let era = y2.div_euclid(400);
        let yoe = y2 - era * 400;
        let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + dd - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146097 + doe - 719468;
        Some(days as f64 * 86400.0 + h * 3600.0 + mi * 60.0 + sec)
    };
    Some(parse(b)? - parse(a)?)
}

/// The backfill's own rate. Once its step is done, rows over the time the step took (the quiet
/// period and waiting for a deploy do not count); while it runs, over the time since the migration
/// began.
fn backfill_rate(s: &StateRow) -> Option<f64> {
    let step_done = !matches!(s.status, Status::Started);
    let seconds = match s.timings.get(Phase::Backfill.label()) {
        Some(&t) if step_done => Some(t),
        _ => s
            .heartbeat
            .as_deref()
            .and_then(|h| seconds_between(&s.created_at, h)),
    };
    seconds.filter(|e| *e > 0.0).map(|e| s.rows_done as f64 / e)
}

fn report(engine: &mut dyn Engine, s: StateRow) -> Result<Report> {
    let step = s.next_step.min(s.plan.steps.len());
    let phase = match s.status {
        Status::Completed | Status::RolledBack | Status::RollingBack => {
            s.status.label().to_string()
        }
        Status::Backfilled => "waiting for complete".to_string(),
        _ => s
            .plan
            .steps
            .get(step)
            .map(|st| st.phase.label().to_string())
            .unwrap_or_else(|| "done".into()),
    };
    let undone = matches!(s.status, Status::RolledBack | Status::RollingBack);
    // A rolled-back migration's rows were its progress, not any more: no percentage, no rate.
    let percent = s
        .rows_total
        .filter(|t| *t > 0 && !undone)
        .map(|t| (100.0 * s.rows_done as f64 / t as f64).min(100.0));
    let rate = if undone || s.rows_done <= 0 {
        None
    } else {
        backfill_rate(&s)
    };
    let eta_seconds = match (rate, s.rows_total, s.status) {
        (Some(r), Some(t), Status::Started) if r > 0.0 => {
            Some(((t - s.rows_done).max(0)) as f64 / r)
        }
        _ => None,
    };
    let main = s.plan.backfilled().or(s.plan.ops.first());
    let counter = s
        .plan
        .ops
        .iter()
        .find_map(|o| o.objects.guard_counter.as_ref());
    let old_writer_inserts = match (counter, s.status) {
        (Some(k), Status::Started | Status::Backfilled | Status::Completing) => {
            Some(engine.old_writer_count(k)?)
        }
        _ => None,
    };
    Ok(Report {
        name: s.name,
        table: main.map(|o| o.table.clone()).unwrap_or_default(),
        column: main.map(|o| o.column.clone()).unwrap_or_default(),
        status: s.status,
        phase,
        step,
        steps: s.plan.steps.len(),
        rows_done: s.rows_done,
        rows_total: s.rows_total,
        percent,
        rate,
        eta_seconds,
        old_writer_inserts,
        created_at: s.created_at,
        updated_at: s.updated_at,
        completed_at: s.completed_at,
        heartbeat: s.heartbeat,
        cancel_requested: s.cancel_requested,
        timings: s.timings,
    })
}

/// Reports for every migration recorded (newest state per name), or for one by name.
pub fn reports(engine: &mut dyn Engine, name: Option<&str>) -> Result<Vec<Report>> {
    let states = engine.states()?;
    let mut latest: Vec<StateRow> = Vec::new();
    for s in states {
        // Keep one row per name: the active one, else the newest.
        match latest.iter().position(|l| l.name == s.name) {
            Some(i) if !latest[i].status.is_active() || s.status.is_active() => latest[i] = s,
            Some(_) => {}
            None => latest.push(s),
        }
    }
    if let Some(n) = name {
        latest.retain(|s| s.name == n);
        if latest.is_empty() {
            return Err(Error::UnknownMigration(format!(
                "no migration named `{n}` in this database; `zerodown status` lists them"
            )));
        }
    }
    latest.into_iter().map(|s| report(engine, s)).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn seconds_between_timestamps() {
        let d =
            super::seconds_between("2026-11-25T23:59:59.500Z", "2026-11-26T00:00:01.000Z").unwrap();
        assert!((d - 1.5).abs() < 1e-9);
    }
}
