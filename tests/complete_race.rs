//! `complete` against a rollback that finishes between complete's first read of the state and its
//! driver lock: the rolled-back row must stay rolled back, and nothing may be re-run.
//!
//! The interleaving is forced, not hoped for: a real SQLite engine is wrapped so that the moment
//! `complete` asks for the driver lock, a whole `rollback` runs first.

mod sqlite_util;

use sqlite_util::*;
use std::cell::RefCell;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use zerodown::engine::{
    BatchOutcome, Defaults, DriverLock, Engine, LockGuardSettings, StateRow, Status,
};
use zerodown::plan::OpPlan;
use zerodown::{Error, Event, Plan, Settings};

/// A real engine whose `lock_driver` first runs `before_lock` (once).
struct RollbackFirst {
    inner: Box<dyn Engine>,
    before_lock: RefCell<Option<Box<dyn FnOnce()>>>,
}

impl Engine for RollbackFirst {
    fn label(&self) -> String {
        self.inner.label()
    }
    fn defaults(&self) -> Defaults {
        self.inner.defaults()
    }
    fn configure(&mut self, guard: LockGuardSettings) {
        self.inner.configure(guard)
    }
    fn live_table(
        &mut self,
        table: &str,
    ) -> zerodown::Result<zerodown::engine::dialect::LiveTable> {
        self.inner.live_table(table)
    }
    fn dialect(&mut self) -> zerodown::Result<Box<dyn zerodown::engine::dialect::Dialect>> {
        self.inner.dialect()
    }
    fn plan_add_column(
        &mut self,
        m: &str,
        add: &zerodown::spec::AddColumn,
    ) -> zerodown::Result<Plan> {
        self.inner.plan_add_column(m, add)
    }
    fn preflight(&mut self, s: &Settings, emit: &mut dyn FnMut(Event)) -> zerodown::Result<()> {
        self.inner.preflight(s, emit)
    }
    fn lock_driver(&mut self, m: &str, wait: Duration) -> zerodown::Result<Box<dyn DriverLock>> {
        if let Some(f) = self.before_lock.borrow_mut().take() {
            f();
        }
        self.inner.lock_driver(m, wait)
    }
    fn ensure_state_table(&mut self, emit: &mut dyn FnMut(Event)) -> zerodown::Result<()> {
        self.inner.ensure_state_table(emit)
    }
    fn states(&mut self) -> zerodown::Result<Vec<StateRow>> {
        self.inner.states()
    }
    fn insert_state(
        &mut self,
        name: &str,
        spec: &str,
        plan: &Plan,
        emit: &mut dyn FnMut(Event),
    ) -> zerodown::Result<i64> {
        self.inner.insert_state(name, spec, plan, emit)
    }
    fn set_status(&mut self, id: i64, status: Status) -> zerodown::Result<()> {
        self.inner.set_status(id, status)
    }
    fn request_cancel(&mut self, id: i64, on: bool) -> zerodown::Result<()> {
        self.inner.request_cancel(id, on)
    }
    fn add_timing(&mut self, id: i64, phase: &str, seconds: f64) -> zerodown::Result<()> {
        self.inner.add_timing(id, phase, seconds)
    }
    fn heartbeat(&mut self, id: i64) -> zerodown::Result<()> {
        self.inner.heartbeat(id)
    }
    fn run_ddl(
        &mut self,
        id: i64,
        index: usize,
        sql: &[zerodown::plan::Statement],
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> zerodown::Result<()> {
        self.inner.run_ddl(id, index, sql, guard, emit)
    }
    fn mark_step_done(&mut self, id: i64, index: usize) -> zerodown::Result<()> {
        self.inner.mark_step_done(id, index)
    }
    fn count_null_fill(&mut self, plan: &OpPlan) -> zerodown::Result<i64> {
        self.inner.count_null_fill(plan)
    }
    fn begin_backfill(&mut self, id: i64, plan: &OpPlan) -> zerodown::Result<StateRow> {
        self.inner.begin_backfill(id, plan)
    }
    fn backfill_batch(
        &mut self,
        state: &StateRow,
        batch_size: i64,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> zerodown::Result<BatchOutcome> {
        self.inner.backfill_batch(state, batch_size, guard, emit)
    }
    fn sweep_nulls(
        &mut self,
        state: &StateRow,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> zerodown::Result<i64> {
        self.inner.sweep_nulls(state, guard, emit)
    }
    fn old_writer_count(&mut self, key: &str) -> zerodown::Result<i64> {
        self.inner.old_writer_count(key)
    }
    fn count_orphans(&mut self, plan: &Plan, index: usize) -> zerodown::Result<i64> {
        self.inner.count_orphans(plan, index)
    }
    fn finish(
        &mut self,
        state: &StateRow,
        index: usize,
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> zerodown::Result<()> {
        self.inner.finish(state, index, guard, emit)
    }
    fn run_undo(
        &mut self,
        id: i64,
        index: usize,
        sql: &[zerodown::plan::Statement],
        guard: &LockGuardSettings,
        emit: &mut dyn FnMut(Event),
    ) -> zerodown::Result<()> {
        self.inner.run_undo(id, index, sql, guard, emit)
    }
    fn mark_rolled_back(&mut self, id: i64) -> zerodown::Result<()> {
        self.inner.mark_rolled_back(id)
    }
}

#[test]
fn a_rollback_that_finishes_before_completes_lock_stays_rolled_back() {
    let db = TestDb::new(500);
    let m = tier_migration();
    db.start(&m).unwrap();
    let url = db.url.clone();
    let mut engine = RollbackFirst {
        inner: zerodown::engine::connect(&db.url).unwrap(),
        before_lock: RefCell::new(Some(Box::new(move || {
            zerodown::rollback(&url, "0042_tier", &Settings::default(), &mut |_| {}).unwrap();
        }))),
    };
    let settings = quiet(Duration::ZERO);
    let cancel = AtomicBool::new(false);
    let err = zerodown::run::complete(
        &mut engine,
        "0042_tier",
        &mut zerodown::run::Ctx {
            settings: &settings,
            emit: &mut |_| {},
            cancel: &cancel,
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::UnknownMigration(ref msg) if msg.contains("rolled back")),
        "{err}"
    );
    let c = db.conn();
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM pragma_table_info('accounts') WHERE name = 'tier'"
        ),
        0,
        "the rolled-back column came back"
    );
    let statuses: Vec<String> = c
        .prepare("SELECT status FROM _zerodown_migrations")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(statuses, vec!["rolled-back".to_string()]);
    assert!(zd_triggers(&c).is_empty());
}
