//! Progress reporting from the engine to whoever drives it.
//!
//! The engine never prints. Long phases announce themselves through [`Progress`]; the command
//! line turns that into indicatif bars when stderr is a terminal and ignores it otherwise.

/// A long phase of work whose progress can be shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Walking a layer's folders and reading stat data.
    Scan,
    /// Reading and hashing files whose stat data did not match the cache.
    Hash,
    /// Compressing entries and writing the zip.
    Pack,
    /// Running npm or pip.
    Install,
    /// Uploading a zip to a deploy target.
    Upload,
}

/// Receives progress from the engine. Implementations must be cheap: `advance` is called from
/// worker threads, once per file or per batch.
pub trait Progress: Sync {
    /// A phase begins for `subject` (a layer or function name) with `total` units of work
    /// (files or bytes, depending on the phase); `total` is 0 when unknown.
    fn start(&self, phase: Phase, subject: &str, total: u64);
    /// `units` more units of the current phase are done.
    fn advance(&self, units: u64);
    /// The current phase is over.
    fn finish(&self);
}

/// A [`Progress`] that shows nothing, for tests, benchmarks and non-interactive runs.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _phase: Phase, _subject: &str, _total: u64) {}
    fn advance(&self, _units: u64) {}
    fn finish(&self) {}
}
