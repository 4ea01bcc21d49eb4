//! The replica-lag throttle (`--max-replica-lag`, 1 s by default): before a batch the backfill looks
//! at the database's replicas through the engine's [`ReplicaWatch`] (at most every
//! [`LOOK_EVERY`]), and while any is further behind than the limit it rests, looking again until
//! every one is back under it. Notes name the replica and its lag when the rest begins, while it
//! lasts, and when it ends; the time rested goes into the backfill's closing note.
//!
//! A replica that cannot be reached rests the backfill too (it may be restarting), and stops the run
//! after a clean batch once it has been gone for [`GONE_FOR`]: `start` resumes it.

use crate::engine::replicas::LOOK_EVERY;
use crate::engine::{
    DEFAULT_MAX_REPLICA_LAG, Engine, Event, MaxReplicaLag, ReplicaLag, ReplicaWatch,
};
use crate::error::{Error, Result};
use crate::run::Ctx;
use crate::run::pacing::Rested;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long one rest lasts before the next look, while a replica is behind.
pub const WAIT_LOOK: Duration = Duration::from_millis(200);
/// How long a replica may stay unreachable before the run stops (after a clean batch).
pub const GONE_FOR: Duration = Duration::from_secs(300);
/// How often a long rest says it is still resting.
const STILL_WAITING: Duration = Duration::from_secs(10);

/// The replica-lag throttle of one backfill run.
pub struct ReplicaGuard {
    watch: Box<dyn ReplicaWatch>,
    limit: Duration,
    setting: MaxReplicaLag,
    last_look: Instant,
    rested: Duration,
    /// The watch failed to read the primary at the last look (said once per failing streak).
    failing: bool,
}

/// "`a` 3.2s behind (…), `b` caught up", or "none" for an empty look.
fn listed<'a>(seen: impl IntoIterator<Item = &'a ReplicaLag>) -> String {
    let all: Vec<String> = seen.into_iter().map(ReplicaLag::describe).collect();
    if all.is_empty() {
        "none".into()
    } else {
        all.join(", ")
    }
}

impl ReplicaGuard {
    /// Opens the engine's watch and says what it watches; `None` with `--max-replica-lag off` or
    /// where the engine has no replicas (said when the user asked for the throttle). A watch that
    /// cannot open fails the run only when the user asked for it (`--replica`, `--max-replica-lag`).
    pub fn begin(engine: &mut dyn Engine, ctx: &mut Ctx) -> Result<Option<ReplicaGuard>> {
        let setting = ctx
            .settings
            .max_replica_lag
            .unwrap_or(DEFAULT_MAX_REPLICA_LAG);
        let asked = ctx.settings.max_replica_lag.is_some() || !ctx.settings.replicas.is_empty();
        let MaxReplicaLag::Limit(limit) = setting else {
            if !ctx.settings.replicas.is_empty() {
                (ctx.emit)(Event::Note(
                    "--replica has no effect with --max-replica-lag off".into(),
                ));
            }
            return Ok(None);
        };
        let cannot = |e: Error, ctx: &mut Ctx| {
            if asked {
                return Err(e);
            }
            (ctx.emit)(Event::Note(format!(
                "cannot watch the replicas ({e}); the backfill goes on without --max-replica-lag"
            )));
            Ok(None)
        };
        let opened = match engine.replica_watch(&ctx.settings.replicas) {
            Ok(w) => w,
            Err(e) => return cannot(e, ctx),
        };
        let Some(mut watch) = opened else {
            if asked {
                (ctx.emit)(Event::Note(format!(
                    "--max-replica-lag and --replica have no effect on {}: it has no replicas to wait for",
                    engine.label()
                )));
            }
            return Ok(None);
        };
        let seen = match watch.look() {
            Ok(seen) => seen,
            Err(e) => return cannot(e, ctx),
        };
        if asked || !seen.is_empty() || watch.warning().is_some() {
            let mut text = format!(
                "replica lag: {}; the backfill rests while any replica is more than {limit:?} behind (--max-replica-lag {setting}); now: {}",
                watch.describe(),
                listed(&seen)
            );
            if let Some(w) = watch.warning() {
                text.push_str("; ");
                text.push_str(&w);
            }
            (ctx.emit)(Event::Note(text));
        }
        Ok(Some(ReplicaGuard {
            watch,
            limit,
            setting,
            last_look: Instant::now(),
            rested: Duration::ZERO,
            failing: false,
        }))
    }

    /// Time rested for replicas so far.
    pub fn rested(&self) -> Duration {
        self.rested
    }

    /// One look; a failure to read the primary is said once and counts as nothing seen (the
    /// backfill's own statements meet a primary that is down, and reconnect or stop).
    fn look(&mut self, ctx: &mut Ctx) -> Vec<ReplicaLag> {
        self.last_look = Instant::now();
        match self.watch.look() {
            Ok(seen) => {
                self.failing = false;
                seen
            }
            Err(e) => {
                if !self.failing {
                    (ctx.emit)(Event::Note(format!(
                        "cannot look at the replicas now ({e}); the backfill goes on meanwhile"
                    )));
                }
                self.failing = true;
                Vec::new()
            }
        }
    }

    /// Before a batch: a look when due, and a rest while any replica is over the limit.
    pub fn before_batch(
        &mut self,
        engine: &mut dyn Engine,
        id: i64,
        ctx: &mut Ctx,
    ) -> Result<Rested> {
        if self.last_look.elapsed() < LOOK_EVERY {
            return Ok(Rested::Ok);
        }
        let seen = self.look(ctx);
        if !seen.iter().any(|r| r.over(self.limit)) {
            return Ok(Rested::Ok);
        }
        self.wait(engine, id, ctx, seen)
    }

    /// Rests until every replica is under the limit, watching for Ctrl-C, a rollback's request and
    /// a replica gone for good.
    fn wait(
        &mut self,
        engine: &mut dyn Engine,
        id: i64,
        ctx: &mut Ctx,
        mut seen: Vec<ReplicaLag>,
    ) -> Result<Rested> {
        let limit = self.limit;
        (ctx.emit)(Event::Note(format!(
            "backfill paused for replica lag: {}, over --max-replica-lag {}; it goes on once every replica is back under it",
            listed(seen.iter().filter(|r| r.over(limit))),
            self.setting
        )));
        let began = Instant::now();
        let mut last_asked = Instant::now();
        let mut last_said = Instant::now();
        let mut gone_since: Option<Instant> = None;
        loop {
            if ctx.cancel.load(Ordering::SeqCst) {
                self.rested += began.elapsed();
                return Ok(Rested::Interrupted);
            }
            // A rollback asks through the state row; look about once a second.
            if last_asked.elapsed() >= Duration::from_secs(1) {
                last_asked = Instant::now();
                if engine
                    .states()?
                    .iter()
                    .any(|s| s.id == id && s.cancel_requested)
                {
                    self.rested += began.elapsed();
                    return Ok(Rested::Cancelled);
                }
            }
            std::thread::sleep(WAIT_LOOK.mul_f64(rand::random_range(0.75..1.25)));
            seen = self.look(ctx);
            let over: Vec<&ReplicaLag> = seen.iter().filter(|r| r.over(limit)).collect();
            if over.is_empty() {
                let d = began.elapsed();
                self.rested += d;
                (ctx.emit)(Event::Note(format!(
                    "replicas caught up after {d:.1?}: the backfill goes on ({})",
                    listed(&seen)
                )));
                return Ok(Rested::Ok);
            }
            if over.iter().any(|r| !r.reachable) {
                let since = *gone_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= GONE_FOR {
                    self.rested += began.elapsed();
                    return Err(Error::Interrupted(format!(
                        "the backfill stopped after a clean batch: {} for {GONE_FOR:?}; run `zerodown start` again to resume once it is back (or without it: leave its --replica out, or --max-replica-lag off)",
                        listed(over.iter().copied().filter(|r| !r.reachable))
                    )));
                }
            } else {
                gone_since = None;
            }
            if last_said.elapsed() >= STILL_WAITING {
                last_said = Instant::now();
                (ctx.emit)(Event::Note(format!(
                    "backfill still paused for replica lag after {:.0?}: {}",
                    began.elapsed(),
                    listed(over.iter().copied())
                )));
            }
        }
    }
}
