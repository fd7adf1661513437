//! Stage 1: list a layer's (or function's) entries with their stat data, in parallel.
//!
//! OWNER NOTE (skeleton): the signatures below are the contract the rest of the engine codes
//! against; the bodies are filled in by the scan work.

use std::path::{Path, PathBuf};

use crate::digest::EntryKind;

/// Stat data of one entry, as `lstat` reported it. Only used to decide whether a cached hash may
/// be reused; never part of a digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stat {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
    /// `st_mode` including the file type bits.
    pub mode: u32,
}

/// One source folder of a layer and where its entries land in the zip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceMapping {
    /// Folder relative to the layer (or function) root, '/'-separated: `lib/nodejs`.
    pub source: String,
    /// Zip path prefix without a trailing '/': `nodejs`, or "" for the zip root.
    pub zip_prefix: String,
}

impl SourceMapping {
    /// The three sources of a layer: `lib/nodejs` to `nodejs/`, `lib/python` to `python/`, and
    /// `opt` to the zip root.
    pub fn layer() -> Vec<SourceMapping> {
        vec![
            SourceMapping { source: "lib/nodejs".into(), zip_prefix: "nodejs".into() },
            SourceMapping { source: "lib/python".into(), zip_prefix: "python".into() },
            SourceMapping { source: "opt".into(), zip_prefix: String::new() },
        ]
    }

    /// A function's code folder, mapped to the zip root.
    pub fn function(source: &str) -> Vec<SourceMapping> {
        vec![SourceMapping { source: source.into(), zip_prefix: String::new() }]
    }
}

#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Store the content of symlinks that leave the layer instead of refusing them.
    pub follow_external: bool,
    /// Folders never to enter, wherever they appear (lamina's own `.lamina/`). Absolute paths.
    pub exclude: Vec<PathBuf>,
    /// Manifests mode: report node packages (and the Python install) without listing their own
    /// files; the engine then splices in a cached list or calls [`scan_package`].
    pub skip_package_contents: bool,
}

/// One entry found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedEntry {
    /// Path inside the zip.
    pub zip_path: String,
    /// Path relative to the layer root ('/'-separated): the key of the cache's stat rows.
    pub source_path: String,
    pub kind: EntryKind,
    pub stat: Stat,
    /// For a symlink stored as a link: its target, as read.
    pub link_target: Option<String>,
}

/// What fingerprints a dependency tree: a node package (a folder holding package.json under
/// node_modules) or the Python install of a layer (fingerprinted by its Pipfile.lock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageDir {
    pub kind: PackageKind,
    /// Folder relative to the layer root: `lib/nodejs/node_modules/@scope/name`.
    pub source_dir: String,
    /// The same folder as a zip path: `nodejs/node_modules/@scope/name`.
    pub zip_dir: String,
    /// The manifest that fingerprints it (package.json or Pipfile.lock), relative to the layer
    /// root, with its stat data.
    pub manifest_path: String,
    pub manifest_stat: Stat,
    /// True when the walk did not list the package's own files (manifests mode).
    pub contents_skipped: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageKind {
    Node,
    Python,
}

/// A problem with one entry. The walk goes on; the caller decides what is fatal.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("placeholder")]
    Placeholder { path: PathBuf },
}

#[derive(Debug, Default)]
pub struct ScanOutput {
    /// Sorted by the bytes of `zip_path`.
    pub entries: Vec<ScannedEntry>,
    pub packages: Vec<PackageDir>,
    pub problems: Vec<ScanError>,
}

/// Walks `sources` below `root` in parallel.
pub fn scan(root: &Path, sources: &[SourceMapping], options: &ScanOptions) -> ScanOutput {
    let _ = (root, sources, options);
    unimplemented!("scan")
}

/// Lists the own files of one package that [`scan`] skipped (everything below its folder except
/// its nested `node_modules/`, or for Python everything but the lock files).
pub fn scan_package(root: &Path, package: &PackageDir, options: &ScanOptions) -> ScanOutput {
    let _ = (root, package, options);
    unimplemented!("scan_package")
}
