//! The embedded showcase (filled in by the demo module's author).

use std::path::PathBuf;

#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    pub rows: i64,
    pub keep: Option<PathBuf>,
}

pub fn run(opts: &DemoOptions) -> crate::Result<String> {
    let _ = opts;
    Err(crate::Error::Refused("demo not written yet".into()))
}
