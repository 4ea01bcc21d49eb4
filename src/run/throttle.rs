//! How the backfill yields to the application on a server engine: a rest in proportion to each
//! batch's time (gh-ost's nice ratio), and a pause while more other sessions run statements than
//! `--max-load` allows (gh-ost's and pt-online-schema-change's `Threads_running` check).
//!
//! Why sessions running: by Little's law the number of statements in flight is the application's
//! rate times their latency, so at a steady rate it grows exactly when the server slows down — as
//! when the backfill takes the CPU the application needs. It needs no privilege on MySQL/MariaDB
//! (`Threads_running`) and is one cheap view on PostgreSQL (`pg_stat_activity`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The `--max-load` setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxLoad {
    /// Never pause for load.
    Off,
    /// Pause while more than this many other sessions are running statements.
    Sessions(u32),
    /// Measure the sessions running when the backfill starts; pause above [`auto_limit`] of it.
    Auto,
}

impl FromStr for MaxLoad {
    type Err = String;

    fn from_str(s: &str) -> Result<MaxLoad, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" | "none" => Ok(MaxLoad::Off),
            "auto" => Ok(MaxLoad::Auto),
            n => n.parse::<u32>().map(MaxLoad::Sessions).map_err(|_| {
                format!(
                    "--max-load `{s}` is not a number of sessions, `auto` or `off` (write e.g. --max-load 20)"
                )
            }),
        }
    }
}

impl fmt::Display for MaxLoad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaxLoad::Off => f.write_str("off"),
            MaxLoad::Auto => f.write_str("auto"),
            MaxLoad::Sessions(n) => write!(f, "{n}"),
        }
    }
}

/// The `--nice` setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Nice {
    /// Rest this many times each batch's own time.
    Ratio(f64),
    /// Adapt the ratio so the other sessions' statements in flight stay near their level at rest
    /// (see [`Pacer`]).
    Auto,
}

impl FromStr for Nice {
    type Err = String;

    fn from_str(s: &str) -> Result<Nice, String> {
        if s.trim().eq_ignore_ascii_case("auto") {
            return Ok(Nice::Auto);
        }
        match s.trim().parse::<f64>() {
            Ok(r) if r.is_finite() && r >= 0.0 => Ok(Nice::Ratio(r)),
            _ => Err(format!(
                "--nice `{s}` is neither `auto` nor a ratio ≥ 0 (write e.g. --nice 1 to rest as long as each batch ran)"
            )),
        }
    }
}

impl fmt::Display for Nice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Nice::Auto => f.write_str("auto"),
            Nice::Ratio(r) => write!(f, "{r}"),
        }
    }
}

/// Looks the pacer averages before it decides: half a second at [`SAMPLE_EVERY`]. Few enough that
/// a short backfill (a dozen batches) sees its first decision, whatever the machine's speed.
pub const ADJUST_LOOKS: u32 = 10;
/// How much the statements in flight may grow over their level at rest, and a little slack for a
/// near-idle server, before the pacer rests more. By Little's law, at a steady request rate this is
/// how much slower the application's statements have become.
pub const TOLERANCE: f64 = 1.25;
pub const SLACK: f64 = 0.1;
/// The most the pacer rests: four times each batch, a fifth of the server's time for the backfill.
pub const MAX_NICE: f64 = 4.0;
/// The first rest ratio the pacer tries, and the smallest it keeps before going back to none.
pub const MIN_NICE: f64 = 0.25;
/// How often the level at rest is measured again (the application's own load drifts), after a
/// rest that lets its queue drain.
pub const REBASE_EVERY: Duration = Duration::from_secs(60);
pub const REBASE_SETTLE: Duration = Duration::from_millis(300);

/// `--nice auto`: a rest ratio adapted every [`ADJUST_LOOKS`] looks, doubled while the other
/// sessions' statements in flight stay above [`TOLERANCE`] × their level at rest, halved while they
/// are back near it. The backfill then takes what the server has to spare, and little more.
#[derive(Debug, Clone)]
pub struct Pacer {
    nice: f64,
    sum: u64,
    looks: u32,
    /// A decision was made since the level at rest was last measured: only then may it be measured
    /// again, so a slow backfill never re-measures before it has judged the level it has.
    decided: bool,
}

impl Default for Pacer {
    fn default() -> Pacer {
        Pacer::new()
    }
}

impl Pacer {
    pub fn new() -> Pacer {
        Pacer {
            nice: 0.0,
            sum: 0,
            looks: 0,
            decided: false,
        }
    }

    /// Whether a decision was made since [`Pacer::rebased`].
    pub fn decided(&self) -> bool {
        self.decided
    }

    /// The level at rest was measured again.
    pub fn rebased(&mut self) {
        self.decided = false;
    }

    pub fn nice(&self) -> f64 {
        self.nice
    }

    /// Feeds one look taken while the backfill runs; returns the new ratio when it changed.
    pub fn feed(&mut self, running: u32, baseline: f64) -> Option<f64> {
        self.sum += u64::from(running);
        self.looks += 1;
        if self.looks < ADJUST_LOOKS {
            return None;
        }
        let mean = self.sum as f64 / f64::from(self.looks);
        self.sum = 0;
        self.looks = 0;
        self.decided = true;
        let before = self.nice;
        if mean > baseline * TOLERANCE + SLACK {
            self.nice = (self.nice * 2.0).clamp(MIN_NICE, MAX_NICE);
        } else if mean <= baseline * (1.0 + (TOLERANCE - 1.0) / 2.0) + SLACK / 2.0 {
            self.nice = if self.nice / 2.0 < MIN_NICE {
                0.0
            } else {
                self.nice / 2.0
            };
        }
        (self.nice != before).then_some(self.nice)
    }
}

/// Samples of the running-sessions count taken when the backfill starts, for `auto`.
pub const BASELINE_SAMPLES: u32 = 20;
/// Gap between two baseline samples: 20 × 10 ms, a fifth of a second.
pub const BASELINE_GAP: Duration = Duration::from_millis(10);
/// How many recent samples the gauge averages: one instant is a coin toss at a small count.
pub const WINDOW: usize = 3;
/// The gauge samples at most this often, however short the batches: a look costs a query.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// How long one rest for load lasts before the next look.
pub const LOAD_REST: Duration = Duration::from_millis(50);

/// The running-sessions count, averaged over the last [`WINDOW`] samples taken at least
/// [`SAMPLE_EVERY`] apart.
#[derive(Debug, Default)]
pub struct LoadGauge {
    samples: std::collections::VecDeque<u32>,
    last: Option<std::time::Instant>,
    /// Every sample's sum and count, for the run's report.
    total: u64,
    looks: u64,
}

impl LoadGauge {
    /// Whether a new sample is due.
    pub fn due(&self) -> bool {
        self.last.is_none_or(|t| t.elapsed() >= SAMPLE_EVERY)
    }

    pub fn push(&mut self, running: u32) {
        if self.samples.len() == WINDOW {
            self.samples.pop_front();
        }
        self.samples.push_back(running);
        self.last = Some(std::time::Instant::now());
        self.total += u64::from(running);
        self.looks += 1;
    }

    pub fn looks(&self) -> u64 {
        self.looks
    }

    /// The mean of every sample so far.
    pub fn average(&self) -> f64 {
        self.total as f64 / self.looks.max(1) as f64
    }

    /// The mean of the recent samples; 0 before the first.
    pub fn mean(&self) -> f64 {
        if self.samples.is_empty() {
            return 0.0;
        }
        self.samples.iter().map(|&n| f64::from(n)).sum::<f64>() / self.samples.len() as f64
    }
}

/// The `auto` limit from the baseline's mean: half as many again, and at least one more session.
/// At a steady application rate the count grows only if statements get slower, so a rise of 50%
/// (or one whole session on a quiet server) says the server no longer keeps up.
pub fn auto_limit(baseline: f64) -> f64 {
    (baseline * 1.5).max(baseline + 1.0)
}

/// The rest after a batch: the fixed `--pause` plus `--nice` times the batch's own time.
pub fn rest(pause: Duration, nice: f64, batch: Duration) -> Duration {
    pause + batch.mul_f64(nice.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_load_parses_and_prints() {
        for (s, v) in [
            ("auto", MaxLoad::Auto),
            ("OFF", MaxLoad::Off),
            (" 12 ", MaxLoad::Sessions(12)),
        ] {
            assert_eq!(s.parse::<MaxLoad>().unwrap(), v);
        }
        assert_eq!(MaxLoad::Sessions(7).to_string(), "7");
        let e = "-3".parse::<MaxLoad>().unwrap_err();
        assert!(e.contains("--max-load `-3`"), "{e}");
    }

    #[test]
    fn the_level_at_rest_is_measured_again_only_after_a_decision() {
        let mut p = Pacer::new();
        for _ in 1..ADJUST_LOOKS {
            p.feed(3, 0.0);
            assert!(!p.decided(), "no decision before {ADJUST_LOOKS} looks");
        }
        p.feed(3, 0.0);
        assert!(p.decided());
        p.rebased();
        assert!(!p.decided());
    }

    #[test]
    fn pacer_rests_more_while_others_slow_down_and_less_once_they_recover() {
        let mut p = Pacer::new();
        let feed =
            |p: &mut Pacer, n: u32| (0..ADJUST_LOOKS).map(|_| p.feed(n, 2.0)).last().flatten();
        // 2 at rest: 3 is within 1.25× + 0.1 (2.6)? No: it is above, so rest.
        assert_eq!(feed(&mut p, 3), Some(MIN_NICE));
        assert_eq!(feed(&mut p, 3), Some(MIN_NICE * 2.0));
        for _ in 0..10 {
            feed(&mut p, 5);
        }
        assert_eq!(p.nice(), MAX_NICE);
        // Between the two bands: hold.
        assert_eq!(feed(&mut p, 2), Some(MAX_NICE / 2.0));
        assert_eq!(feed(&mut p, 2), Some(MAX_NICE / 4.0));
        let held = Pacer {
            nice: 1.0,
            ..Pacer::new()
        };
        let mut h = held.clone();
        assert_eq!(feed(&mut h, 2), Some(0.5));
        let mut h = held;
        // 2.4 on average: above 2.3 (the lower band), below 2.6: no change.
        for i in 0..ADJUST_LOOKS {
            assert_eq!(h.feed(if i % 5 < 2 { 3 } else { 2 }, 2.0), None);
        }
        assert_eq!(h.nice(), 1.0);
        // Back to none below the smallest step.
        let mut q = Pacer {
            nice: MIN_NICE,
            ..Pacer::new()
        };
        assert_eq!(feed(&mut q, 0), Some(0.0));
    }

    #[test]
    fn gauge_averages_the_last_samples() {
        let mut g = LoadGauge::default();
        assert!(g.due());
        assert_eq!(g.mean(), 0.0);
        for n in [9, 1, 2, 3] {
            g.push(n);
        }
        assert_eq!(g.mean(), 2.0);
        assert_eq!((g.looks(), g.average()), (4, 3.75));
        assert!(!g.due());
    }

    #[test]
    fn auto_limit_is_half_again_or_one_more() {
        assert_eq!(auto_limit(0.0), 1.0);
        assert_eq!(auto_limit(1.0), 2.0);
        assert_eq!(auto_limit(4.0), 6.0);
    }

    #[test]
    fn rest_adds_the_ratio_of_the_batch() {
        let b = Duration::from_millis(40);
        assert_eq!(rest(Duration::ZERO, 0.0, b), Duration::ZERO);
        assert_eq!(
            rest(Duration::from_millis(5), 1.5, b),
            Duration::from_millis(65)
        );
        assert!("-1".parse::<Nice>().is_err() && "nan".parse::<Nice>().is_err());
        assert_eq!("0.5".parse::<Nice>().unwrap(), Nice::Ratio(0.5));
        assert_eq!("Auto".parse::<Nice>().unwrap(), Nice::Auto);
    }
}
