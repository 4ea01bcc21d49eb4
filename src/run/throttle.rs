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

/// Parses `--nice`: a rest ratio of at least zero.
pub fn parse_nice(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(r),
        _ => Err(format!(
            "--nice `{s}` is not a ratio ≥ 0 (write e.g. --nice 1 to rest as long as each batch ran)"
        )),
    }
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
        assert!(parse_nice("-1").is_err() && parse_nice("nan").is_err());
        assert_eq!(parse_nice("0.5").unwrap(), 0.5);
    }
}
