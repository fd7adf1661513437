//! The engine: scan, hash (through the cache), digest and pack one layer or function.
//!
//! OWNER NOTE (skeleton): the signatures below are the contract; the body is being written.

use std::path::PathBuf;

use serde::Serialize;

use crate::cache::{Cache, Owner, ZipRecord};
use crate::digest::Digest;
use crate::progress::Progress;
use crate::scan::SourceMapping;

/// How the engine decides which files to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FingerprintMode {
    /// Every file is stat-ed; a file whose stat data matches its cached row is not read.
    #[default]
    Stat,
    /// A node package whose package.json is unchanged reuses its cached file list unwalked.
    Manifests,
    /// Every file is read and hashed.
    Content,
}

/// One thing the engine builds: a layer or a function's code.
#[derive(Debug, Clone)]
pub struct Subject {
    pub owner: Owner,
    /// Absolute path of the layer or function root.
    pub root: PathBuf,
    pub sources: Vec<SourceMapping>,
}

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub mode: FingerprintMode,
    pub follow_external: bool,
    /// Only compute the digest and the changes; write no zip.
    pub status_only: bool,
}

/// Where lamina keeps its own files: `.lamina/` at the project root.
#[derive(Debug, Clone)]
pub struct StateDir {
    pub path: PathBuf,
}

impl StateDir {
    pub fn build_dir(&self) -> PathBuf {
        self.path.join("build")
    }
    pub fn cache_db(&self) -> PathBuf {
        self.path.join("cache.db")
    }
    pub fn registry_dir(&self) -> PathBuf {
        self.path.join("registry")
    }
}

/// Counters that show how much work a build did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BuildStats {
    pub files_scanned: u64,
    pub files_hashed: u64,
    pub bytes_hashed: u64,
    pub entries_compressed: u64,
    pub entries_reused: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildStatus {
    /// A new zip was written.
    Built,
    /// A zip with this digest already existed.
    Cached,
    /// Status only: no zip was looked for or written.
    Unbuilt,
}

/// Paths (zip paths) that differ from the last build of the same subject.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub modified: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct BuildReport {
    pub owner: Owner,
    pub digest: Digest,
    pub status: BuildStatus,
    /// The zip, unless status only.
    pub zip: Option<ZipRecord>,
    pub zip_path: Option<PathBuf>,
    /// Whether the digest differs from the last build's (true when there was none).
    pub changed: bool,
    pub changes: Changes,
    pub stats: BuildStats,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("placeholder")]
    Placeholder,
}

/// Scans, hashes, digests and (unless `status_only`) packs `subject`.
pub fn build(
    state: &StateDir,
    cache: &mut Cache,
    subject: &Subject,
    options: &BuildOptions,
    progress: &dyn Progress,
) -> Result<BuildReport, BuildError> {
    let _ = (state, cache, subject, options, progress);
    unimplemented!()
}
