//! Latency percentiles over a sorted list (a demo's worth of samples fits easily in memory).

use std::time::Duration;

/// Latencies of a set of operations, sorted.
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    sorted: Vec<Duration>,
    pub errors: u64,
}

impl Latencies {
    pub fn new(mut all: Vec<Duration>, errors: u64) -> Latencies {
        all.sort_unstable();
        Latencies {
            sorted: all,
            errors,
        }
    }

    pub fn count(&self) -> usize {
        self.sorted.len()
    }

    /// The `q`-quantile (nearest rank), `None` with no samples.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.sorted.is_empty() {
            return None;
        }
        let rank = (q * self.sorted.len() as f64).ceil() as usize;
        Some(self.sorted[rank.clamp(1, self.sorted.len()) - 1])
    }

    pub fn max(&self) -> Option<Duration> {
        self.sorted.last().copied()
    }
}

/// Milliseconds with a precision that suits the magnitude: `0.12`, `3.4`, `812`.
pub fn ms(d: Option<Duration>) -> String {
    match d {
        None => "-".into(),
        Some(d) => {
            let m = d.as_secs_f64() * 1000.0;
            if m < 10.0 {
                format!("{m:.2}")
            } else if m < 100.0 {
                format!("{m:.1}")
            } else {
                format!("{m:.0}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let l = Latencies::new((1..=100).rev().map(Duration::from_millis).collect(), 0);
        assert_eq!(l.quantile(0.5), Some(Duration::from_millis(50)));
        assert_eq!(l.quantile(0.99), Some(Duration::from_millis(99)));
        assert_eq!(l.max(), Some(Duration::from_millis(100)));
        assert_eq!(l.quantile(0.0), Some(Duration::from_millis(1)));
        assert_eq!(Latencies::default().quantile(0.5), None);
        assert_eq!(ms(Some(Duration::from_micros(120))), "0.12");
        assert_eq!(ms(Some(Duration::from_millis(812))), "812");
    }
}
