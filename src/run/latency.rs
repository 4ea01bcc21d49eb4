//! The latency guard's arithmetic, as pure code: the `--max-latency` target, the canary's recent
//! high percentile, and the feedback controller that turns it into a rest ratio.
//!
//! Why latency: the application feels the time its statements take, not the number of statements in
//! flight (`--max-load`), which barely moves for an application with few connections. The canary's
//! point read waits in the same CPU, lock and I/O queues as the application's statements, so what the
//! backfill adds to the canary's latency it adds to theirs.

use hdrhistogram::Histogram;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The `--max-latency` setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxLatency {
    /// Never rest for latency.
    Off,
    /// Measure the canary before the backfill starts; the target is [`auto_target`] of it.
    Auto,
    /// Rest while the canary's recent high percentile is above this.
    Fixed(Duration),
}

impl FromStr for MaxLatency {
    type Err = String;

    fn from_str(s: &str) -> Result<MaxLatency, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" | "none" => Ok(MaxLatency::Off),
            "auto" => Ok(MaxLatency::Auto),
            d => match humantime::parse_duration(d) {
                Ok(d) if !d.is_zero() => Ok(MaxLatency::Fixed(d)),
                _ => Err(format!(
                    "--max-latency `{s}` is not a duration, `auto` or `off` (write e.g. --max-latency 20ms)"
                )),
            },
        }
    }
}

impl fmt::Display for MaxLatency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaxLatency::Off => f.write_str("off"),
            MaxLatency::Auto => f.write_str("auto"),
            MaxLatency::Fixed(d) => write!(f, "{d:?}"),
        }
    }
}

/// How much the canary's high percentile may grow over its level at rest under `auto`: half as much
/// again, but never less than [`MIN_HEADROOM`] and never more than [`MAX_HEADROOM`].
pub const MIN_HEADROOM: Duration = Duration::from_millis(5);
pub const MAX_HEADROOM: Duration = Duration::from_millis(10);

/// The `auto` target from the canary's [`HIGH_PERCENTILE`] at rest. The application's p99 should stay
/// within 1.5× its level at rest and within 10 ms of it; the backfill may add half the canary's level
/// at rest, between 5 and 10 ms. A tighter floor (2 ms, tried for issue 13) made a backfill with no
/// application rest for the canary's own noise (2.4 s on PostgreSQL 15 at load average 4, about a
/// minute on a busy machine) and bought nothing under load: there the canary's latency did not rise
/// while the application's p99 went from 21 to 250 ms (BENCHMARKS.md). A canary that waits for each
/// batch by design (SQLite's writers wait for its lock) gets the full 10 ms: `waits_for_batches`.
pub fn auto_target(at_rest: Duration, waits_for_batches: bool) -> Duration {
    let floor = if waits_for_batches {
        MAX_HEADROOM
    } else {
        MIN_HEADROOM
    };
    at_rest + (at_rest / 2).clamp(floor, MAX_HEADROOM)
}

/// The percentile the controller steers by, of the recent window and of the level at rest alike:
/// at twenty probes a second the window holds about forty, so one outlier is noise and two are a
/// trend.
pub const HIGH_PERCENTILE: f64 = 95.0;
/// How far back the recent window reaches.
pub const WINDOW: Duration = Duration::from_secs(2);
/// The controller decides at most this often: a rest must have had time to show its effect.
pub const DECIDE_EVERY: Duration = Duration::from_secs(1);
/// The first rest ratio tried, and the smallest kept before going back to none: half of each batch,
/// since a rest too small to show in the canary's latency only delays the next step up.
pub const MIN_RATIO: f64 = 0.5;
/// The longest rest: four times each batch, so the backfill keeps at least a fifth of its full pace
/// (its documented minimum) and is never starved, whatever the latency.
pub const MAX_RATIO: f64 = 4.0;
/// How much the rest shrinks per decision once the latency is back under [`RECOVER`] × the target:
/// slowly, because the application's queue drains after the canary's latency is back.
pub const STEP_DOWN: f64 = 0.125;
/// Hysteresis: the rest shrinks only once the latency is this far under the target.
pub const RECOVER: f64 = 0.8;

/// Microseconds, the unit the histograms record.
fn micros(d: Duration) -> u64 {
    d.as_micros().clamp(1, u128::from(u64::MAX)) as u64
}

/// A latency distribution (microsecond resolution, 3 significant digits, up to an hour).
#[derive(Debug, Clone)]
pub struct Latencies {
    h: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Latencies {
        Latencies::new()
    }
}

impl Latencies {
    pub fn new() -> Latencies {
        Latencies {
            h: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds"),
        }
    }

    /// Records one probe. A probe that took longer than the canary's `period` stood for the probes it
    /// kept from running: they are recorded too, each a period shorter (coordinated omission), so a
    /// canary blocked for a second weighs as much as the five probes it would have made.
    pub fn record(&mut self, latency: Duration, period: Duration) {
        let _ = self.h.record_correct(micros(latency), micros(period));
    }

    pub fn len(&self) -> u64 {
        self.h.len()
    }

    pub fn is_empty(&self) -> bool {
        self.h.is_empty()
    }

    /// The latency at percentile `p` (0–100); zero when empty.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.h.is_empty() {
            return Duration::ZERO;
        }
        Duration::from_micros(self.h.value_at_quantile(p / 100.0))
    }
}

/// What the controller did at one decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    /// The rest ratio moved to this.
    Ratio(f64),
    /// Over the target at the longest rest already: the backfill holds its minimum pace.
    Saturated,
}

/// The feedback controller: the rest ratio doubles (from [`MIN_RATIO`], up to [`MAX_RATIO`]) at each
/// decision that finds the canary's recent high percentile over the target, and shrinks by
/// [`STEP_DOWN`] at each one that finds it back under [`RECOVER`] × the target: quick to yield, slow
/// to take the server back. With the canary under its target the ratio stays 0: full speed.
#[derive(Debug, Clone)]
pub struct Controller {
    target: Duration,
    ratio: f64,
    /// Decisions in a row that found the latency over the target at [`MAX_RATIO`].
    saturated: u32,
}

impl Controller {
    pub fn new(target: Duration) -> Controller {
        Controller {
            target,
            ratio: 0.0,
            saturated: 0,
        }
    }

    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    pub fn target(&self) -> Duration {
        self.target
    }

    pub fn set_target(&mut self, target: Duration) {
        self.target = target;
        self.saturated = 0;
    }

    /// Decisions in a row spent over the target at the longest rest.
    pub fn saturated(&self) -> u32 {
        self.saturated
    }

    /// One decision from the recent high percentile; `None` when nothing changed.
    pub fn decide(&mut self, recent: Duration) -> Option<Change> {
        let before = self.ratio;
        if recent > self.target {
            if self.ratio >= MAX_RATIO {
                self.saturated += 1;
                return Some(Change::Saturated);
            }
            self.ratio = (self.ratio * 2.0).clamp(MIN_RATIO, MAX_RATIO);
        } else {
            self.saturated = 0;
            if recent.as_secs_f64() <= self.target.as_secs_f64() * RECOVER && self.ratio > 0.0 {
                self.ratio -= STEP_DOWN;
                if self.ratio < MIN_RATIO - 1e-9 {
                    self.ratio = 0.0;
                }
            }
        }
        (self.ratio != before).then_some(Change::Ratio(self.ratio))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn max_latency_parses_and_prints() {
        assert_eq!("auto".parse::<MaxLatency>().unwrap(), MaxLatency::Auto);
        assert_eq!(" OFF ".parse::<MaxLatency>().unwrap(), MaxLatency::Off);
        assert_eq!(
            "25ms".parse::<MaxLatency>().unwrap(),
            MaxLatency::Fixed(25 * MS)
        );
        assert_eq!(MaxLatency::Fixed(25 * MS).to_string(), "25ms");
        for bad in ["0ms", "fast", "-3ms"] {
            let e = bad.parse::<MaxLatency>().unwrap_err();
            assert!(e.contains("--max-latency"), "{e}");
        }
    }

    #[test]
    fn auto_target_allows_half_again_between_5_and_10_ms() {
        assert_eq!(auto_target(Duration::ZERO, false), 5 * MS);
        assert_eq!(auto_target(2 * MS, false), 7 * MS);
        assert_eq!(auto_target(14 * MS, false), 21 * MS);
        assert_eq!(auto_target(40 * MS, false), 50 * MS);
        // SQLite's writers wait for a batch by design: the whole 10 ms.
        assert_eq!(auto_target(2 * MS, true), 12 * MS);
    }

    #[test]
    fn a_blocked_probe_weighs_as_the_probes_it_kept_from_running() {
        let mut l = Latencies::new();
        for _ in 0..9 {
            l.record(MS, 200 * MS);
        }
        assert!(l.percentile(HIGH_PERCENTILE) < 2 * MS);
        // One probe blocked for a second: five probes' worth, so the high percentile sees it.
        l.record(1000 * MS, 200 * MS);
        assert_eq!(l.len(), 14);
        assert!(l.percentile(HIGH_PERCENTILE) >= 600 * MS);
        assert_eq!(Latencies::new().percentile(99.0), Duration::ZERO);
    }

    #[test]
    fn a_quiet_server_never_rests() {
        let mut c = Controller::new(7 * MS);
        for _ in 0..100 {
            assert_eq!(c.decide(2 * MS), None);
            // Just under the target holds too: no rest without cause.
            assert_eq!(c.decide(7 * MS), None);
        }
        assert_eq!(c.ratio(), 0.0);
    }

    #[test]
    fn rests_quickly_while_over_and_recovers_slowly_once_back() {
        let mut c = Controller::new(10 * MS);
        let over = 30 * MS;
        let mut ratios = Vec::new();
        for _ in 0..5 {
            if let Some(Change::Ratio(r)) = c.decide(over) {
                ratios.push(r);
            }
        }
        assert_eq!(ratios, [0.5, 1.0, 2.0, 4.0]);
        // Held at the longest rest: said, and counted.
        assert_eq!(c.decide(over), Some(Change::Saturated));
        assert_eq!(c.saturated(), 2);
        // Between 0.8× the target and the target: hold.
        assert_eq!(c.decide(9 * MS), None);
        assert_eq!(c.saturated(), 0);
        // Back under: a step at a time, 29 decisions from 4 to none (28 down to half a batch, then
        // none).
        let mut steps = 0;
        while c.ratio() > 0.0 {
            assert!(matches!(c.decide(MS), Some(Change::Ratio(_))));
            steps += 1;
        }
        assert_eq!(steps, 29);
        assert_eq!(c.decide(MS), None);
        // A short spike costs one small rest, undone at the next quiet decision.
        assert_eq!(c.decide(over), Some(Change::Ratio(MIN_RATIO)));
        assert_eq!(c.decide(MS), Some(Change::Ratio(0.0)));
    }

    #[test]
    fn a_new_target_resets_the_saturation_count() {
        let mut c = Controller::new(MS);
        for _ in 0..8 {
            c.decide(5 * MS);
        }
        // Four decisions to reach the longest rest, four more at it.
        assert_eq!((c.ratio(), c.saturated()), (MAX_RATIO, 4));
        c.set_target(20 * MS);
        assert_eq!(c.saturated(), 0);
        assert_eq!(c.decide(5 * MS), Some(Change::Ratio(MAX_RATIO - STEP_DOWN)));
    }
}
