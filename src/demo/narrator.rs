//! The demo's narration: what happens, turned into progress for the caller, with each step's timing.

use super::Progress;
use super::stats::{Latencies, ms};
use super::traffic::Shared;
use crate::engine::Event;
use crate::error::{Error, Result};
use crate::plan::Phase;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One step of the plan as it ran.
pub(super) struct StepTime {
    pub(super) index: usize,
    pub(super) phase: Phase,
    pub(super) summary: String,
    pub(super) elapsed: Duration,
}

/// Turns what happens into progress for the caller, and remembers step timings.
pub(super) struct Narrator<'a> {
    pub(super) progress: &'a mut dyn FnMut(Progress),
    pub(super) shared: Option<Arc<Shared>>,
    pub(super) last_traffic_line: Instant,
    pub(super) running: Option<(usize, Phase, String)>,
    pub(super) steps: Vec<StepTime>,
}

const TRAFFIC_LINE_EVERY: Duration = Duration::from_secs(2);

impl Narrator<'_> {
    pub(super) fn line(&mut self, s: impl Into<String>) {
        (self.progress)(Progress::Line(s.into()));
    }

    pub(super) fn event(&mut self, e: Event) {
        match &e {
            Event::StepStarted { index, step, .. } => {
                self.running = Some((*index, step.phase, step.summary.clone()));
            }
            Event::StepDone { index, elapsed } => {
                if let Some((i, phase, summary)) = self.running.take()
                    && i == *index
                {
                    self.steps.push(StepTime {
                        index: i,
                        phase,
                        summary,
                        elapsed: *elapsed,
                    });
                }
            }
            _ => {}
        }
        // After a step that held on for a while, show at once what the application saw meanwhile.
        let long_step =
            matches!(e, Event::StepDone { elapsed, .. } if elapsed >= Duration::from_millis(250));
        (self.progress)(Progress::Event(e));
        self.traffic_line(long_step);
    }

    /// A line on the application's recent traffic, at most every few seconds unless `now`.
    pub(super) fn traffic_line(&mut self, now: bool) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        if !now && self.last_traffic_line.elapsed() < TRAFFIC_LINE_EVERY {
            return;
        }
        self.last_traffic_line = Instant::now();
        let window = TRAFFIC_LINE_EVERY
            .min(shared.epoch.elapsed())
            .max(Duration::from_millis(100));
        let cutoff = shared.epoch.elapsed().saturating_sub(window);
        let (lat, errors) = {
            let samples = shared.samples.lock().unwrap();
            let recent: Vec<_> = samples
                .iter()
                .rev()
                .take_while(|s| s.done_at >= cutoff)
                .collect();
            (
                recent.iter().map(|s| s.latency).collect::<Vec<_>>(),
                recent.iter().filter(|s| !s.ok).count(),
            )
        };
        let l = Latencies::new(lat, errors as u64);
        self.line(format!(
            "      app: {:.0} ops/s, latency p50 {} / p99 {} / max {} ms, errors {} (last {:.1}s)",
            l.count() as f64 / window.as_secs_f64(),
            ms(l.quantile(0.5)),
            ms(l.quantile(0.99)),
            ms(l.max()),
            l.errors,
            window.as_secs_f64()
        ));
    }

    /// Lets the traffic run for `d`, reporting on it; stops early on Ctrl-C.
    pub(super) fn wait(&mut self, d: Duration, cancel: &AtomicBool) -> Result<()> {
        let until = Instant::now() + d;
        loop {
            if cancel.load(Ordering::SeqCst) {
                return Err(Error::Interrupted("the demo was stopped".into()));
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
            self.traffic_line(false);
        }
    }
}
