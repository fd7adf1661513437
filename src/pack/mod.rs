//! Stage 4: the reproducible zip writer.
//!
//! OWNER NOTE (skeleton): the signatures below are the contract the engine codes against; the
//! bodies are filled in by the pack work.

use std::path::{Path, PathBuf};

use crate::digest::{Digest, Entry};
use crate::progress::Progress;

/// Names the zip format and compressor; part of every digest.
pub const FORMAT_LABEL: &str = "zip-v1 deflate zlib-rs level-6";

/// One entry to write, with where its content is on disk.
#[derive(Debug, Clone)]
pub struct PackEntry {
    pub entry: Entry,
    /// Absolute path of a file's content; `None` for folders and symlinks.
    pub disk_path: Option<PathBuf>,
}

/// A zip built earlier whose compressed entries may be copied instead of compressed again.
#[derive(Debug, Clone)]
pub struct PreviousZip {
    pub path: PathBuf,
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackOutcome {
    pub path: PathBuf,
    pub sha256: [u8; 32],
    pub size: u64,
    pub entries: u64,
    pub unzipped_bytes: u64,
    pub entries_compressed: u64,
    pub entries_reused: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("placeholder")]
    Placeholder,
}

/// Writes the zip of `entries` (sorted by path) to `<out_dir>/<digest>.zip` atomically.
pub fn write_zip(
    out_dir: &Path,
    digest: &Digest,
    entries: &[PackEntry],
    previous: Option<&PreviousZip>,
    progress: &dyn Progress,
) -> Result<PackOutcome, PackError> {
    let _ = (out_dir, digest, entries, previous, progress);
    unimplemented!()
}
