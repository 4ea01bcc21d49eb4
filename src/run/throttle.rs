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
/// Samples averaged before each batch: one instant is a coin toss at a small count.
pub const CHECK_SAMPLES: u32 = 3;
/// How long one rest for load lasts before the next look.
pub const LOAD_REST: Duration = Duration::from_millis(50);

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
