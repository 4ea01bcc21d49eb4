//! zerodown: add a column to a live database without downtime.
//!
//! The library's API is five verbs — [`plan`], [`start`], [`status`], [`complete`], [`rollback`] — over a
//! database URL. Progress reaches the caller as [`Event`]s; nothing here prints.

pub mod analysis;
#[cfg(feature = "bench")]
pub mod bench;
pub mod demo;
pub mod engine;
pub mod error;
pub mod lint;
pub mod migrate;
pub mod ops;
pub mod plan;
pub mod run;
pub mod spec;
pub mod status;
pub mod url;

pub use engine::{Event, Settings, StateRow, Status};
pub use error::{Error, Result};
pub use plan::Plan;
pub use run::StartOutcome;
pub use spec::{Dialect, Migration};
pub use url::DatabaseUrl;

use std::sync::atomic::AtomicBool;

/// The SQL dialect of the engine a URL names (expressions are written in it).
pub fn dialect_of(url: &DatabaseUrl) -> Dialect {
    match url {
        DatabaseUrl::Sqlite(_) => Dialect::Sqlite,
        DatabaseUrl::Postgres(_) => Dialect::Postgres,
        DatabaseUrl::Mysql(_) => Dialect::Mysql,
    }
}

/// Plans a migration against the live database, changing nothing. For a migration already in
/// progress under that name, the plan it is following (its schema has moved on since).
pub fn plan(url: &DatabaseUrl, migration: &Migration) -> Result<Plan> {
    let migration = &migration.rendered_for(dialect_of(url))?;
    let mut engine = engine::connect(url)?;
    if let Some(state) = run::active_state(engine.as_mut(), &migration.name)? {
        run::check_same_spec(&state, migration)?;
        let mut plan = state.plan;
        plan.notes.insert(
            0,
            format!(
                "in progress: {} at step {} of {} (the plan recorded by `start`)",
                state.status.label(),
                (state.next_step + 1).min(plan.steps.len()),
                plan.steps.len()
            ),
        );
        return Ok(plan);
    }
    ops::plan(engine.as_mut(), migration)
}

/// Expand, dual-write and backfill; blocks until the backfill is done. Re-running resumes.
pub fn start(
    url: &DatabaseUrl,
    migration: &Migration,
    settings: &Settings,
    emit: &mut dyn FnMut(Event),
    cancel: &AtomicBool,
) -> Result<StartOutcome> {
    let migration = &migration.rendered_for(dialect_of(url))?;
    let mut engine = engine::connect(url)?;
    run::start(
        engine.as_mut(),
        migration,
        &mut run::Ctx {
            settings,
            emit,
            cancel,
        },
    )
}

/// Constraints, default and cleanup, once the backfill is done and old writers are gone.
pub fn complete(
    url: &DatabaseUrl,
    name: &str,
    settings: &Settings,
    emit: &mut dyn FnMut(Event),
    cancel: &AtomicBool,
) -> Result<()> {
    let mut engine = engine::connect(url)?;
    run::complete(
        engine.as_mut(),
        name,
        &mut run::Ctx {
            settings,
            emit,
            cancel,
        },
    )
}

/// Undoes everything zerodown added for the migration, any time before it is completed.
pub fn rollback(
    url: &DatabaseUrl,
    name: &str,
    settings: &Settings,
    emit: &mut dyn FnMut(Event),
) -> Result<()> {
    let mut engine = engine::connect(url)?;
    let cancel = AtomicBool::new(false);
    run::rollback(
        engine.as_mut(),
        name,
        &mut run::Ctx {
            settings,
            emit,
            cancel: &cancel,
        },
    )
}

/// Where each migration stands (one, by name, or all).
pub fn status(url: &DatabaseUrl, name: Option<&str>) -> Result<Vec<status::Report>> {
    let mut engine = engine::connect(url)?;
    status::reports(engine.as_mut(), name)
}
