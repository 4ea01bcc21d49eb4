//! The backfill's side of [`throttle`](super::throttle): measures the server's load through the
//! engine and the application's latency through the [`latency guard`](super::latency_guard), rests
//! for them between batches (the longest rest wins), and says what it did, per reason.

use super::Ctx;
use super::latency_guard::LatencyGuard;
use super::replica_lag::ReplicaGuard;
use super::throttle::{self, LoadGauge, MaxLoad, Nice, Pacer};
use crate::engine::{Defaults, Engine, Event};
use crate::error::Result;
use crate::plan::Plan;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How often a long wait for load says it is still waiting.
const STILL_WAITING: Duration = Duration::from_secs(10);

/// How a wait for load ended.
pub enum Rested {
    Ok,
    /// Ctrl-C.
    Interrupted,
    /// A rollback's cancel request.
    Cancelled,
}

/// Load-aware pacing for one backfill run.
pub struct Throttle {
    /// `None`: the engine has no view of other sessions (SQLite), so only a fixed ratio applies.
    baseline: Option<f64>,
    max_load: MaxLoad,
    limit: Option<f64>,
    pacer: Option<Pacer>,
    fixed_nice: f64,
    gauge: LoadGauge,
    rebased: Instant,
    /// Rest ratio weighted by batch time, for the closing note.
    nice_weighted: f64,
    batch_secs: f64,
    nice_max: f64,
    /// `--max-latency`: `None` when off or where the engine has no canary.
    latency: Option<LatencyGuard>,
    /// Time rested per reason besides latency (the guard counts its own): `--max-load`'s waits, and
    /// `--nice`'s share of the rests it won.
    rested_load: Duration,
    rested_nice: Duration,
    /// `--max-replica-lag`: `None` when off or where the engine has no replicas.
    replicas: Option<ReplicaGuard>,
}

impl Throttle {
    /// Reads the settings and, when `auto` needs it, the load at rest; then starts the latency
    /// canary and measures the server at rest.
    pub fn begin(
        engine: &mut dyn Engine,
        defaults: &Defaults,
        plan: &Plan,
        ctx: &mut Ctx,
    ) -> Result<Throttle> {
        let max_load = ctx.settings.max_load.unwrap_or(defaults.max_load);
        let nice = ctx.settings.nice.unwrap_or(defaults.nice);
        let seen = engine.running_sessions()?.is_some();
        let mut t = Throttle {
            baseline: None,
            max_load,
            limit: None,
            pacer: None,
            fixed_nice: match nice {
                Nice::Ratio(r) => r,
                Nice::Auto => 0.0,
            },
            gauge: LoadGauge::default(),
            rebased: Instant::now(),
            nice_weighted: 0.0,
            batch_secs: 0.0,
            nice_max: 0.0,
            latency: None,
            rested_load: Duration::ZERO,
            rested_nice: Duration::ZERO,
            replicas: ReplicaGuard::begin(engine, ctx)?,
        };
        if !seen {
            if max_load != MaxLoad::Off && ctx.settings.max_load.is_some()
                || ctx.settings.nice == Some(Nice::Auto)
            {
                (ctx.emit)(Event::Note(format!(
                    "--max-load and --nice auto have no effect on {}: it has no view of other sessions' statements",
                    engine.label()
                )));
            }
            t.latency = LatencyGuard::begin(engine, plan, ctx)?;
            return Ok(t);
        }
        if nice == Nice::Auto {
            t.pacer = Some(Pacer::new());
        }
        if let MaxLoad::Sessions(n) = max_load {
            t.limit = Some(f64::from(n));
        }
        if max_load == MaxLoad::Auto || t.pacer.is_some() {
            t.rebase(engine)?;
            let base = t.baseline.unwrap_or(0.0);
            let mut what = Vec::new();
            if t.pacer.is_some() {
                what.push(format!(
                    "rests more while that rises above {:.1} (--nice auto)",
                    base * throttle::TOLERANCE + throttle::SLACK
                ));
            }
            if let Some(limit) = t.limit {
                what.push(format!("pauses above {limit:.1} (--max-load)"));
            }
            (ctx.emit)(Event::Note(format!(
                "other sessions running statements as the backfill began: {base:.1} on average; the backfill {}",
                what.join(" and ")
            )));
        }
        // After the load at rest: the canary's own measurement at rest takes half a second.
        t.latency = LatencyGuard::begin(engine, plan, ctx)?;
        Ok(t)
    }

    /// Measures the load at rest again, and the `auto` limit with it.
    fn rebase(&mut self, engine: &mut dyn Engine) -> Result<()> {
        let mut sum = 0u64;
        for i in 0..throttle::BASELINE_SAMPLES {
            if i > 0 {
                std::thread::sleep(throttle::BASELINE_GAP);
            }
            sum += u64::from(engine.running_sessions()?.unwrap_or(0));
        }
        let base = sum as f64 / f64::from(throttle::BASELINE_SAMPLES);
        self.baseline = Some(base);
        if self.max_load == MaxLoad::Auto {
            self.limit = Some(throttle::auto_limit(base));
        }
        self.rebased = Instant::now();
        Ok(())
    }

    /// Before a batch: a look at the server when due (fed to the pacer), the level at rest measured
    /// again now and then, and a wait while the load is over `--max-load`.
    pub fn before_batch(
        &mut self,
        engine: &mut dyn Engine,
        id: i64,
        ctx: &mut Ctx,
    ) -> Result<Rested> {
        if let Some(g) = &mut self.latency {
            g.before_batch(ctx);
        }
        if let Some(r) = &mut self.replicas
            && let stop @ (Rested::Interrupted | Rested::Cancelled) =
                r.before_batch(engine, id, ctx)?
        {
            return Ok(stop);
        }
        let Some(baseline) = self.baseline.or(self.limit.map(|_| 0.0)) else {
            return Ok(Rested::Ok);
        };
        if self.pacer.as_ref().is_some_and(Pacer::decided)
            && self.rebased.elapsed() >= throttle::REBASE_EVERY
        {
            std::thread::sleep(throttle::REBASE_SETTLE);
            self.rebase(engine)?;
            if let Some(p) = &mut self.pacer {
                p.rebased();
            }
        }
        if self.gauge.due() {
            let n = engine.running_sessions()?.unwrap_or(0);
            self.gauge.push(n);
            if let Some(p) = &mut self.pacer
                && let Some(nice) = p.feed(n, baseline)
            {
                tracing::debug!("backfill rest ratio now {nice}");
            }
        }
        match self.limit {
            Some(limit) if self.gauge.mean() > limit => self.wait(engine, limit, id, ctx),
            _ => Ok(Rested::Ok),
        }
    }

    /// Rests while the server is busier than `limit`, watching for Ctrl-C and a rollback's request.
    fn wait(
        &mut self,
        engine: &mut dyn Engine,
        limit: f64,
        id: i64,
        ctx: &mut Ctx,
    ) -> Result<Rested> {
        (ctx.emit)(Event::Throttle {
            running: self.gauge.mean(),
            limit,
            rested: None,
        });
        let began = Instant::now();
        let mut last_look = Instant::now();
        let mut last_said = Instant::now();
        loop {
            if ctx.cancel.load(Ordering::SeqCst) {
                return Ok(Rested::Interrupted);
            }
            // A rollback asks through the state row; look about once a second.
            if last_look.elapsed() >= Duration::from_secs(1) {
                last_look = Instant::now();
                let asked = engine
                    .states()?
                    .iter()
                    .any(|s| s.id == id && s.cancel_requested);
                if asked {
                    return Ok(Rested::Cancelled);
                }
            }
            std::thread::sleep(throttle::LOAD_REST.mul_f64(rand::random_range(0.5..1.5)));
            // Not fed to the pacer: these looks see the server without the backfill.
            self.gauge.push(engine.running_sessions()?.unwrap_or(0));
            if last_said.elapsed() >= STILL_WAITING {
                last_said = Instant::now();
                (ctx.emit)(Event::Throttle {
                    running: self.gauge.mean(),
                    limit,
                    rested: None,
                });
            }
            if self.gauge.mean() <= limit {
                self.rested_load += began.elapsed();
                (ctx.emit)(Event::Throttle {
                    running: self.gauge.mean(),
                    limit,
                    rested: Some(began.elapsed()),
                });
                return Ok(Rested::Ok);
            }
        }
    }

    /// The rest after a batch that took `batch`: `pause` plus the share of the larger rest ratio,
    /// `--nice`'s or the latency guard's, counted to the reason that won.
    pub fn rest(&mut self, pause: Duration, batch: Duration) -> Duration {
        let nice = self.pacer.as_ref().map_or(self.fixed_nice, Pacer::nice);
        self.nice_weighted += nice * batch.as_secs_f64();
        self.batch_secs += batch.as_secs_f64();
        self.nice_max = self.nice_max.max(nice);
        let for_latency = self.latency.as_ref().map_or(0.0, LatencyGuard::ratio);
        let ratio = nice.max(for_latency);
        let share = batch.mul_f64(ratio);
        match &mut self.latency {
            Some(g) if for_latency > nice => g.rested(share),
            _ => self.rested_nice += share,
        }
        throttle::rest(pause, ratio, batch)
    }

    /// Whether the latency canary waits for the write lock now: it stands for an application writer,
    /// so the next gap is a writer's (see `backfill::next_pause`), as a waiting writer's commits
    /// would make it; otherwise it would time the chance of hitting a gap meant for no one.
    pub fn canary_waiting(&self) -> bool {
        self.latency
            .as_ref()
            .is_some_and(LatencyGuard::canary_waiting)
    }

    /// Time rested for the application's latency so far.
    pub fn rested_for_latency(&self) -> Duration {
        self.latency
            .as_ref()
            .map_or(Duration::ZERO, LatencyGuard::rested_total)
    }

    /// Says how the run was paced: time rested per reason, the latency canary's figures, and the
    /// load seen when it watched other sessions.
    pub fn finish(&self, ctx: &mut Ctx) {
        let reasons: Vec<String> = [
            (
                self.rested_for_latency(),
                "the application's latency (--max-latency)",
            ),
            (self.rested_load, "load (--max-load)"),
            (
                self.replicas
                    .as_ref()
                    .map_or(Duration::ZERO, ReplicaGuard::rested),
                "replica lag (--max-replica-lag)",
            ),
            (self.rested_nice, "--nice"),
        ]
        .iter()
        .filter(|(d, _)| *d >= Duration::from_millis(1))
        .map(|(d, why)| format!("{d:.1?} for {why}"))
        .collect();
        if !reasons.is_empty() || self.latency.is_some() {
            let mut text = if reasons.is_empty() {
                "the backfill never rested for latency or load".to_string()
            } else {
                format!("the backfill rested {}", reasons.join(", "))
            };
            if let Some(g) = &self.latency {
                text.push_str("; ");
                text.push_str(&g.summary());
            }
            (ctx.emit)(Event::Note(text));
        }
        if self.baseline.is_none() || self.gauge.looks() == 0 {
            return;
        }
        let mut text = format!(
            "other sessions running statements during the backfill: {:.2} on average over {} looks, {:.2} at rest",
            self.gauge.average(),
            self.gauge.looks(),
            self.baseline.unwrap_or(0.0)
        );
        if self.pacer.is_some() {
            text.push_str(&format!(
                "; rest ratio {:.2} on average (at most {:.2})",
                self.nice_weighted / self.batch_secs.max(1e-9),
                self.nice_max
            ));
        }
        (ctx.emit)(Event::Note(text));
    }
}
