//! Stage 1: list a layer's (or function's) entries with their stat data, in parallel, and find
//! the packages that fingerprint its dependency trees.
//!
//! The scan reads names and `lstat` data only, never file content: deciding which files to read
//! is the cache's job, reading them the engine's. It never prints; problems come back as values.
//!
//! # What a scan reports
//!
//! Each [`SourceMapping`] names a folder below the root and the zip path prefix its entries get.
//! A source folder that does not exist is simply absent. For every source that exists the output
//! holds:
//!
//! - an entry for the source folder itself, at its prefix (`nodejs`, `python`); a source mapped
//!   to the zip root (`opt`) has none, since the zip root is not an entry;
//! - an entry for every file, folder and symlink below it, with the zip path
//!   `prefix/relative/path` and the source path `source/relative/path`.
//!
//! Entries are sorted by the bytes of their zip path. Folders that two sources bring to the same
//! zip path (`opt/nodejs/` and `lib/nodejs/`) are one entry, the one whose source path sorts
//! first; a file or link that two sources bring to the same zip path, or a file in one and a
//! folder in the other, is a [`ScanError::Collision`] naming both source paths.
//!
//! Folders in [`ScanOptions::exclude`] are never entered, whichever path leads to them: they are
//! compared by device and inode, not by spelling. A source folder that is itself a symlink is
//! followed when it points inside the layer; one that leaves the layer is refused like any other
//! link unless [`ScanOptions::follow_external`] is set.
//!
//! # Symlinks
//!
//! A link is read; its target must be UTF-8. If the target, resolved component by component
//! from the link's folder and following the links it meets, stays inside the link's source folder
//! and exists, the link is an entry of kind [`EntryKind::Symlink`] with the target as read: it
//! still works in the zip. An absolute target, or one that steps above the source folder, leaves
//! the layer and is refused ([`ScanError::LinkLeavesLayer`]). With
//! [`ScanOptions::follow_external`] such a link is stored as what it points to: a file entry
//! with the target's stat data (its source path stays the link's path; reading it follows the
//! link), or a folder that is walked as if it were there. Below a followed folder every link is
//! followed, and entering a folder that is already one of its own ancestors is a
//! [`ScanError::LinkCycle`]. A link whose target does not exist ([`ScanError::DanglingLink`]) or
//! that resolves in a cycle ([`ScanError::LinkCycle`]) is refused in either mode.
//!
//! # Packages
//!
//! A folder directly under a `node_modules` folder, or under `node_modules/@scope/`, that holds a
//! regular file `package.json` is a node package ([`PackageDir`] of kind [`PackageKind::Node`]);
//! names that start with '.' (`node_modules/.bin`) are never packages. Nested packages
//! (`node_modules/a/node_modules/b`) are packages of their own. A package's *own files* are
//! everything below its folder except its `node_modules` entry; they are one unit, so no package
//! is looked for among them.
//!
//! The source `lib/python` is a Python install ([`PackageKind::Python`]) when it holds a regular
//! file `Pipfile.lock`; its own files are everything in it except the top-level `Pipfile`,
//! `Pipfile.lock` and `requirements.txt`.
//!
//! With [`ScanOptions::skip_package_contents`] (manifests mode) a package's own files are not
//! listed: the scan reports the package's folder entry and the stat data of its manifest, then
//! walks only the package's `node_modules` (for Python: lists only the three top-level files).
//! [`scan_package`] lists the own files of one such package when the cache has no list for it.
//! The [`fingerprint`] module turns a manifest's bytes into the package's fingerprint.
//!
//! # Problems
//!
//! A bad entry never stops the walk: it becomes a [`ScanError`] in [`ScanOutput::problems`],
//! sorted by path, and the entry is left out (a folder that cannot be listed still has its own
//! entry). The caller decides what is fatal.

mod dir;
mod error;
pub mod fingerprint;
mod link;
mod order;
pub mod snapshot;
mod walk;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::slice::ParallelSliceMut;

pub use self::error::ScanError;
use self::order::Item;
use self::walk::{
    Ancestors, FileId, Folder, Identity, Opening, Region, Role, Source, Walker, PYTHON_SOURCE,
};
use crate::digest::EntryKind;

/// Stat data of one entry, as `lstat` reported it (`stat` for the target of a followed link).
/// Only used to decide whether a cached hash may be reused; never part of a digest.
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
    /// Folder relative to the layer (or function) root, '/'-separated: `lib/nodejs`. "" or "."
    /// is the root itself.
    pub source: String,
    /// Zip path prefix without a trailing '/': `nodejs`, or "" for the zip root.
    pub zip_prefix: String,
}

impl SourceMapping {
    /// The three sources of a layer: `lib/nodejs` to `nodejs/`, `lib/python` to `python/`, and
    /// `opt` to the zip root.
    pub fn layer() -> Vec<SourceMapping> {
        vec![
            SourceMapping {
                source: "lib/nodejs".into(),
                zip_prefix: "nodejs".into(),
            },
            SourceMapping {
                source: "lib/python".into(),
                zip_prefix: "python".into(),
            },
            SourceMapping {
                source: "opt".into(),
                zip_prefix: String::new(),
            },
        ]
    }

    /// A function's code folder, mapped to the zip root.
    pub fn function(source: &str) -> Vec<SourceMapping> {
        vec![SourceMapping {
            source: source.into(),
            zip_prefix: String::new(),
        }]
    }
}

#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Store the content of symlinks that leave the layer instead of refusing them.
    pub follow_external: bool,
    /// Folders never to enter, wherever they appear (lamina's own `.lamina/`). Compared by
    /// device and inode; a path that does not exist excludes nothing.
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
    /// The source folder it was found in, relative to the layer root: `lib/nodejs`. Links in
    /// the package are judged against it.
    pub source_folder: String,
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

#[derive(Debug, Default)]
pub struct ScanOutput {
    /// Sorted by the bytes of `zip_path`, no two with the same zip path.
    pub entries: Vec<ScannedEntry>,
    /// Sorted by `source_dir`.
    pub packages: Vec<PackageDir>,
    /// Sorted by [`ScanError::path`], then by message.
    pub problems: Vec<ScanError>,
    /// What [`scan`] found at each source folder, in the order of its `sources` argument
    /// (empty for [`scan_package`]).
    pub sources: Vec<SourceFound>,
    /// Folders that were listed but have no entry of their own: each was merged into another
    /// source's folder at the same zip path (`opt/nodejs` into `lib/nodejs`). Sorted by source
    /// path. Listing snapshots need their stat data.
    pub merged_folders: Vec<ScannedEntry>,
}

/// What a scan found where a source folder belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFound {
    /// Nothing: the source is simply absent.
    Absent,
    /// A folder, walked; its stat data (of the target, for a source that is a link).
    Walked(Stat),
    /// Something not walked: an excluded folder, or one refused with a problem.
    Skipped,
}

/// Walks `sources` below `root` in parallel: see the module documentation.
pub fn scan(root: &Path, sources: &[SourceMapping], options: &ScanOptions) -> ScanOutput {
    let started = std::time::Instant::now();
    let excluded = excluded_ids(&options.exclude);
    let walker = Walker::new(
        &excluded,
        options.follow_external,
        options.skip_package_contents,
    );
    let mut roots = Vec::new();
    let mut found = Vec::with_capacity(sources.len());
    rayon::scope(|scope| {
        for mapping in sources {
            found.push(start_source(&walker, scope, root, mapping, &mut roots));
        }
    });

    let mut output = walker.into_output(roots);
    output.sources = found;
    let collisions = merge_sources(&mut output.entries, &mut output.merged_folders);
    output.problems.extend(collisions);
    finish(&mut output);
    tracing::debug!(
        root = %root.display(),
        entries = output.entries.len(),
        packages = output.packages.len(),
        problems = output.problems.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "scanned"
    );
    output
}

/// Lists the own files of one package that [`scan`] skipped: everything below its folder except
/// its nested `node_modules/`, or for Python everything but the top-level `Pipfile`,
/// `Pipfile.lock` and `requirements.txt`. Zip paths are full paths; the package's own folder
/// entry is not included (the scan reported it), and no packages are reported. Links, exclusion
/// and problems follow the same rules as [`scan`]; `skip_package_contents` is ignored.
pub fn scan_package(root: &Path, package: &PackageDir, options: &ScanOptions) -> ScanOutput {
    let excluded = excluded_ids(&options.exclude);
    let walker = Walker::new(&excluded, options.follow_external, false);
    let mut roots = Vec::new();
    match locate_package(root, package) {
        Ok((region, ancestors)) => {
            let role = match package.kind {
                PackageKind::Node => Role::NodePackageOwn,
                PackageKind::Python => Role::PythonPackageOwn,
            };
            let folder = Folder {
                opening: Opening::Path(root.join(&package.source_dir)),
                source_path: package.source_dir.clone(),
                zip_path: package.zip_dir.clone(),
                source: Arc::new(source(root, &package.source_folder)),
                ancestors,
                region,
                role,
                identity: Identity::Checked,
            };
            rayon::scope(|scope| roots.push(walker.spawn_listing(scope, folder)));
        }
        Err(error) => walker.report(ScanError::from_io(package.source_dir.clone(), error)),
    }

    let mut output = walker.into_output(roots);
    finish(&mut output);
    debug_assert!(output
        .entries
        .is_sorted_by(|a, b| a.zip_path.as_bytes() < b.zip_path.as_bytes()));
    output
}

/// Sorts `entries` by the bytes of their zip path, merges folders that two sources bring to the
/// same zip path, and returns a [`ScanError::Collision`] for every other pair that shares one
/// (keeping the entry whose source path sorts first). [`scan`] runs it on its own output; the
/// engine runs it again after splicing cached package lists into an output.
pub fn check_collisions(entries: &mut Vec<ScannedEntry>) -> Vec<ScanError> {
    merge_sources(entries, &mut Vec::new())
}

/// [`check_collisions`], which also adds every folder entry it merges away to `merged`.
fn merge_sources(
    entries: &mut Vec<ScannedEntry>,
    merged: &mut Vec<ScannedEntry>,
) -> Vec<ScanError> {
    // A single source comes out of the walk in order already; strictly increasing zip paths
    // leave nothing to sort and nothing to merge.
    if entries
        .windows(2)
        .all(|pair| pair[0].zip_path.as_bytes() < pair[1].zip_path.as_bytes())
    {
        return Vec::new();
    }
    entries.par_sort_unstable_by(|a, b| {
        let by_zip_path = a.zip_path.as_bytes().cmp(b.zip_path.as_bytes());
        by_zip_path.then_with(|| a.source_path.as_bytes().cmp(b.source_path.as_bytes()))
    });
    let mut problems = Vec::new();
    entries.dedup_by(|later, kept| {
        if later.zip_path != kept.zip_path {
            return false;
        }
        if later.kind != EntryKind::Dir || kept.kind != EntryKind::Dir {
            problems.push(ScanError::Collision {
                zip_path: later.zip_path.clone(),
                first: kept.source_path.clone(),
                second: later.source_path.clone(),
            });
        } else {
            merged.push(later.clone());
        }
        true
    });
    merged.sort_by(|a, b| a.source_path.cmp(&b.source_path));
    problems
}

/// Adds a source folder's entry to `roots` and starts its walk; a missing source is absent.
fn start_source<'s>(
    walker: &'s Walker<'_>,
    scope: &rayon::Scope<'s>,
    root: &Path,
    mapping: &SourceMapping,
    roots: &mut Vec<Item>,
) -> SourceFound {
    let source = Arc::new(source(root, &mapping.source));
    let metadata = match std::fs::metadata(&source.disk) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            tracing::trace!(source = %source.path, "source absent");
            return SourceFound::Absent;
        }
        Err(error) => {
            walker.report(ScanError::from_io(source.path.clone(), error));
            return SourceFound::Skipped;
        }
    };
    if !metadata.is_dir() {
        walker.report(ScanError::SourceNotFolder {
            path: source.path.clone(),
        });
        return SourceFound::Skipped;
    }
    if let Some(problem) = source_link_leaving(walker.follows_external(), root, &source) {
        walker.report(problem);
        return SourceFound::Skipped;
    }
    let id = FileId::of(&metadata);
    if walker.is_excluded(id) {
        tracing::debug!(source = %source.path, "excluded source not entered");
        return SourceFound::Skipped;
    }

    let role = if source.path == PYTHON_SOURCE {
        Role::PythonRoot
    } else {
        Role::Plain
    };
    let folder = Folder {
        opening: Opening::Path(source.disk.clone()),
        source_path: source.path.clone(),
        zip_path: mapping.zip_prefix.trim_matches('/').to_owned(),
        source,
        ancestors: Ancestors::push(None, id),
        region: Region::Source,
        role,
        identity: Identity::Checked,
    };
    let stat = Stat::from_metadata(&metadata);
    walker.start(scope, folder, stat, roots);
    SourceFound::Walked(stat)
}

/// A source folder that is a symlink is judged like any other link: it may point anywhere inside
/// the layer, but a link out of the layer needs `--follow-external`, or a link to a key folder
/// would be published without anyone asking for it.
fn source_link_leaving(follow_external: bool, root: &Path, source: &Source) -> Option<ScanError> {
    let is_link = std::fs::symlink_metadata(&source.disk).is_ok_and(|m| m.file_type().is_symlink());
    if !is_link || follow_external {
        return None;
    }
    let inside = match (
        std::fs::canonicalize(root),
        std::fs::canonicalize(&source.disk),
    ) {
        (Ok(root), Ok(target)) => target.starts_with(root),
        _ => false,
    };
    if inside {
        return None;
    }
    let target = std::fs::read_link(&source.disk).unwrap_or_default();
    Some(ScanError::LinkLeavesLayer {
        path: source.path.clone(),
        target: target.to_string_lossy().into_owned(),
        folder: root.display().to_string(),
    })
}

fn source(root: &Path, path: &str) -> Source {
    let path = match path.trim_matches('/') {
        "." => "",
        path => path,
    };
    Source {
        path: path.to_owned(),
        disk: root.join(path),
    }
}

/// Where a package found by an earlier scan lies now: whether a followed link leads to it (then
/// links inside it are followed too), and the folders above it for cycle checks.
fn locate_package(root: &Path, package: &PackageDir) -> std::io::Result<(Region, Arc<Ancestors>)> {
    let source = source(root, &package.source_folder);
    let below = package
        .source_dir
        .strip_prefix(&source.path)
        .unwrap_or(&package.source_dir);

    let mut disk = source.disk.clone();
    let mut ancestors = Ancestors::push(None, FileId::of(&std::fs::metadata(&disk)?));
    let mut region = Region::Source;
    for component in below.split('/').filter(|component| !component.is_empty()) {
        disk.push(component);
        if std::fs::symlink_metadata(&disk)?.is_symlink() {
            region = Region::Followed;
        }
        ancestors = Ancestors::push(Some(ancestors), FileId::of(&std::fs::metadata(&disk)?));
    }
    Ok((region, ancestors))
}

/// The device and inode of every folder to exclude that exists.
fn excluded_ids(paths: &[PathBuf]) -> HashSet<FileId> {
    paths
        .iter()
        .filter_map(|path| match std::fs::metadata(path) {
            Ok(metadata) => Some(FileId::of(&metadata)),
            Err(error) => {
                tracing::debug!(path = %path.display(), %error, "exclusion ignored");
                None
            }
        })
        .collect()
}

/// Puts packages and problems in their documented order. Entries are in order already: the walk
/// gives each source's in order, and [`check_collisions`] sorts those of several.
fn finish(output: &mut ScanOutput) {
    output
        .packages
        .sort_by(|a, b| a.source_dir.cmp(&b.source_dir));
    output
        .problems
        .sort_by_cached_key(|problem| (problem.path().to_owned(), problem.to_string()));
}
