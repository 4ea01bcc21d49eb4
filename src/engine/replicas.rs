//! What the replica-lag throttle (`--max-replica-lag`) asks of an engine: a watch that looks at the
//! database's replicas from its own connections, and the lag it reports for each. The engines
//! answer in `postgres/replicas.rs` and `mysql/replicas.rs`; the backfill's side is
//! `run/replica_lag.rs`.
//!
//! Why: a backfill writes as fast as the primary allows, and every row it writes must be applied by
//! every replica too. A replica that falls behind serves stale reads, and a failover to it loses
//! what it had not applied; every MySQL tool of the kind (gh-ost, pt-online-schema-change) rests for
//! it.

use crate::error::Result;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The `--max-replica-lag` setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxReplicaLag {
    /// Never rest for replicas.
    Off,
    /// Rest while any replica is further behind than this.
    Limit(Duration),
}

/// The default: one second, gh-ost's `--max-lag-millis` default of 1500 ms rounded down.
pub const DEFAULT_MAX_REPLICA_LAG: MaxReplicaLag = MaxReplicaLag::Limit(Duration::from_secs(1));

impl FromStr for MaxReplicaLag {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<MaxReplicaLag, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" | "none" => Ok(MaxReplicaLag::Off),
            d => match humantime::parse_duration(d) {
                Ok(d) if !d.is_zero() => Ok(MaxReplicaLag::Limit(d)),
                _ => Err(format!(
                    "--max-replica-lag `{s}` is neither a duration nor `off` (write e.g. --max-replica-lag 2s)"
                )),
            },
        }
    }
}

impl fmt::Display for MaxReplicaLag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaxReplicaLag::Off => f.write_str("off"),
            MaxReplicaLag::Limit(d) => write!(f, "{d:?}"),
        }
    }
}

/// How often the backfill looks at its replicas, before a batch: often enough to pause within a
/// second of a replica crossing the limit, seldom enough to cost the servers nothing.
pub const LOOK_EVERY: Duration = Duration::from_millis(250);

/// One replica as one look saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaLag {
    /// How the user knows it: a standby's `application_name` and address, or a `--replica` URL's
    /// `user@host:port/database` (never its password).
    pub replica: String,
    /// How far behind the primary it is; zero once it has applied all the primary has written
    /// (whatever a stale lag figure says). `None` when it is behind by an unknown time: it applies
    /// nothing now, or cannot be reached.
    pub lag: Option<Duration>,
    /// What the look saw besides, for the user: WAL bytes or transactions behind, replication
    /// stopped, the error that kept it from being reached.
    pub detail: String,
    /// False when the replica could not be reached or read at this look.
    pub reachable: bool,
}

impl ReplicaLag {
    /// Whether it is further behind than `limit` (an unknown lag is).
    pub fn over(&self, limit: Duration) -> bool {
        self.lag.is_none_or(|d| d > limit)
    }

    /// `replica` with its lag, for messages: "`x` 3.2s behind (…)".
    pub fn describe(&self) -> String {
        let lag = match self.lag {
            Some(d) if d.is_zero() => "caught up".to_string(),
            Some(d) => format!("{d:.1?} behind"),
            None if self.reachable => "behind by an unknown time".to_string(),
            None => "unreachable".to_string(),
        };
        if self.detail.is_empty() {
            format!("`{}` {lag}", self.replica)
        } else {
            format!("`{}` {lag} ({})", self.replica, self.detail)
        }
    }
}

/// Looks at the replicas of the database from connections of its own; opened by
/// [`Engine::replica_watch`](super::Engine::replica_watch).
pub trait ReplicaWatch: Send {
    /// What it watches and how, for the user's note.
    fn describe(&self) -> String;
    /// What it cannot watch, when the user should hear of it (replicas it may not or cannot see).
    fn warning(&self) -> Option<String> {
        None
    }
    /// One look at every replica. An error means the primary itself could not be read.
    fn look(&mut self) -> Result<Vec<ReplicaLag>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_replica_lag_parses_and_prints() {
        assert_eq!(
            "1s".parse::<MaxReplicaLag>().unwrap(),
            DEFAULT_MAX_REPLICA_LAG
        );
        assert_eq!(
            " Off ".parse::<MaxReplicaLag>().unwrap(),
            MaxReplicaLag::Off
        );
        assert_eq!(
            "1500ms".parse::<MaxReplicaLag>().unwrap().to_string(),
            "1.5s"
        );
        for bad in ["0s", "soon", "-1s"] {
            let e = bad.parse::<MaxReplicaLag>().unwrap_err();
            assert!(e.contains("--max-replica-lag"), "{e}");
        }
    }

    #[test]
    fn an_unknown_lag_is_over_any_limit() {
        let mut r = ReplicaLag {
            replica: "standby".into(),
            lag: None,
            detail: "replication stopped".into(),
            reachable: true,
        };
        assert!(r.over(Duration::from_secs(3600)));
        assert_eq!(
            r.describe(),
            "`standby` behind by an unknown time (replication stopped)"
        );
        r.lag = Some(Duration::ZERO);
        assert!(!r.over(Duration::from_millis(1)));
        assert_eq!(r.describe(), "`standby` caught up (replication stopped)");
        r.lag = Some(Duration::from_millis(3200));
        assert!(r.over(Duration::from_secs(1)) && !r.over(Duration::from_secs(5)));
    }
}
