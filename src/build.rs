//! The engine: scan, hash (through the cache), digest and pack one layer or function.
//!
//! [`build`] runs the stages in order for one [`Subject`]:
//!
//! 1. Read the filesystem clock ([`cache::scan_clock`]) *before* scanning, so that files modified
//!    while the scan runs are caught by the racy-clean rule next time.
//! 2. Scan the subject's sources. In manifests mode the walk skips the own files of node packages
//!    (and of the Python install); each skipped package's cached file list is spliced in by its
//!    fingerprint, or, on a miss, the package is walked after all.
//! 3. Decide for every file whether its cached hash may be reused ([`cache::freshness`]); read and
//!    hash the rest in parallel. Every decision not to reuse has a [`StaleReason`], counted in the
//!    stats and logged at debug.
//! 4. Compute the digest. If a zip with that digest exists, reuse it; otherwise pack, copying
//!    unchanged compressed entries from this subject's previous zip.
//! 5. Write everything learned in one cache transaction. A run that dies before this point leaves
//!    the cache as it was (a zip renamed into place without a record is rebuilt, byte for byte
//!    the same, next time).
//!
//! Per-entry problems (bad links, unreadable files, collisions) are gathered across the whole
//! subject and reported together; nothing is written to the cache when there are any.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use serde::Serialize;
use tracing::{debug, info, warn};

mod listing;

use crate::cache::{
    self, BuildUpdate, Cache, CacheError, FileRecord, ListingRecord, Owner, PackageList,
    StaleReason, ZipRecord,
};
use crate::digest::{self, Digest, Entry, EntryKind};
use crate::pack::{self, PackEntry, PackError, PreviousZip};
use crate::progress::{Phase, Progress};
use crate::remote::{self, RemoteCache};
use crate::scan::{
    self, fingerprint, PackageDir, PackageKind, ScanError, ScanOptions, ScanOutput, ScannedEntry,
    SourceMapping, Stat,
};

/// How the engine decides which files to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FingerprintMode {
    /// Every file is stat-ed; a file whose stat data matches its cached row is not read. Sound.
    #[default]
    Stat,
    /// A node package whose package.json is unchanged reuses its cached file list without being
    /// walked, and the Python install is trusted while its Pipfile.lock is unchanged. Fast, but
    /// blind to edits inside a package that leave its package.json alone.
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
    /// A shared cache, asked for zips and package lists the local cache lacks and, in
    /// read-write mode, given what was built (see [`crate::remote`]).
    pub remote: Option<Arc<RemoteCache>>,
}

/// Where lamina keeps its own files: `.lamina/` at the project root.
#[derive(Debug, Clone)]
pub struct StateDir {
    pub path: PathBuf,
}

impl StateDir {
    pub fn new(project_root: &Path) -> StateDir {
        StateDir {
            path: project_root.join(".lamina"),
        }
    }
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BuildStats {
    /// Files and symlinks considered (including those taken from cached package lists).
    pub files_scanned: u64,
    pub files_hashed: u64,
    pub bytes_hashed: u64,
    /// Times a file's content was read, to hash it, to pack it, or both from one read. A cold
    /// build reads every file once.
    pub files_read: u64,
    pub entries_compressed: u64,
    pub entries_reused: u64,
    /// Node packages and Python installs whose cached file list was used without a walk.
    pub packages_reused: u64,
    /// Why files were read again, by reason.
    pub stale: BTreeMap<String, u64>,
    /// Subjects whose scan listing was the one recorded with their last digest, so that the
    /// digest was reused without loading file rows or hashing (see `build/listing.rs`).
    pub listings_reused: u64,
    /// Of those, the subjects whose tree was found unchanged against the listing's snapshot,
    /// without a scan (see `src/scan/snapshot.rs`).
    pub snapshots_matched: u64,
}

impl BuildStats {
    /// Adds `other` into `self`, for totals over several subjects.
    pub fn add(&mut self, other: &BuildStats) {
        self.files_scanned += other.files_scanned;
        self.files_hashed += other.files_hashed;
        self.bytes_hashed += other.bytes_hashed;
        self.files_read += other.files_read;
        self.entries_compressed += other.entries_compressed;
        self.entries_reused += other.entries_reused;
        self.packages_reused += other.packages_reused;
        self.listings_reused += other.listings_reused;
        self.snapshots_matched += other.snapshots_matched;
        for (reason, count) in &other.stale {
            *self.stale.entry(reason.clone()).or_default() += count;
        }
    }
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

/// Zip paths that differ from the last build of the same subject.
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
    /// Unzipped size of all files, known even when status only.
    pub unzipped_bytes: u64,
    pub entries: u64,
    /// The first component of every entry's zip path (`nodejs`, `python`, `config`, ...): what
    /// the zip holds at its root, and so which runtimes can use it.
    pub top_level_dirs: BTreeSet<String>,
    /// Whether the digest differs from the last build's (true when there was none).
    pub changed: bool,
    /// The digest of the last build, if any.
    pub previous: Option<Digest>,
    pub changes: Changes,
    pub stats: BuildStats,
}

/// One problem found while building; all of a subject's problems are reported together.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error(transparent)]
    Scan(#[from] ScanError),
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the lock file `{}`: {reason}", path.display())]
    Lock { path: PathBuf, reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{subject} has {} problem(s):{}", problems.len(), list(problems))]
    Problems {
        subject: String,
        problems: Vec<Problem>,
    },
    #[error("cannot read the filesystem clock in `{}`: {source}", path.display())]
    Clock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("cannot pack {subject}: {source}")]
    Pack { subject: String, source: PackError },
    #[error("{subject}: `{}` does not exist; {hint}", path.display())]
    MissingRoot {
        subject: String,
        path: PathBuf,
        hint: &'static str,
    },
    #[error("{subject}: `{}` is not a folder; {hint}", path.display())]
    RootNotFolder {
        subject: String,
        path: PathBuf,
        hint: &'static str,
    },
    #[error("{subject}: `{}` holds no files; {hint}", path.display())]
    Empty {
        subject: String,
        path: PathBuf,
        hint: &'static str,
    },
}

/// The folders a subject's files come from, as the manifest names them: a layer's folder (any
/// of its sources may be absent), or a function's code folder (it is built from the project
/// root with that folder as its one source).
fn subject_folders(subject: &Subject) -> Vec<PathBuf> {
    match subject.owner {
        Owner::Layer(_) => vec![subject.root.clone()],
        Owner::Function(_) => (subject.sources.iter())
            .map(|mapping| subject.root.join(mapping.source.trim_matches('/')))
            .collect(),
    }
}

/// A layer or code folder that is missing is a mistake in the manifest far more often than an
/// empty layer, and packing it would publish an empty zip (on AWS, replacing working code).
fn check_root(subject: &Subject) -> Result<(), BuildError> {
    let hint = match subject.owner {
        Owner::Layer(_) => "fix the layer's `path` in lamina.toml or create the folder",
        Owner::Function(_) => "fix the function's `source` in lamina.toml or create the folder",
    };
    for path in subject_folders(subject) {
        let subject = describe(&subject.owner);
        match fs_err::metadata(&path) {
            Ok(metadata) if metadata.is_dir() => {}
            Ok(_) => {
                return Err(BuildError::RootNotFolder {
                    subject,
                    path,
                    hint,
                })
            }
            Err(_) => {
                return Err(BuildError::MissingRoot {
                    subject,
                    path,
                    hint,
                })
            }
        }
    }
    Ok(())
}

/// An empty layer or code folder is a checkout gone wrong far more often than an intent, and
/// its zip would replace working code with nothing. Folders alone do not count: a zip of folders
/// holds no code either. Checked before packing, not for `status`.
fn check_not_empty(subject: &Subject, output: &ScanOutput) -> Result<(), BuildError> {
    let has_files = output
        .entries
        .iter()
        .any(|entry| entry.kind != EntryKind::Dir)
        || output
            .packages
            .iter()
            .any(|package| package.contents_skipped);
    if has_files {
        return Ok(());
    }
    let hint = match subject.owner {
        Owner::Layer(_) => {
            "add the layer's files (under lib/nodejs, lib/python or opt) or remove the layer \
             from lamina.toml"
        }
        Owner::Function(_) => "put the function's code there or fix its `source` in lamina.toml",
    };
    let folders = subject_folders(subject);
    Err(BuildError::Empty {
        subject: describe(&subject.owner),
        path: folders.into_iter().next().unwrap_or(subject.root.clone()),
        hint,
    })
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|problem| format!("\n  - {problem}"))
        .collect()
}

/// How a subject is named in messages: "layer `shared`".
pub fn describe(owner: &Owner) -> String {
    match owner {
        Owner::Layer(name) => format!("layer `{name}`"),
        Owner::Function(name) => format!("function `{name}`"),
    }
}

/// Scans, hashes, digests and (unless `status_only`) packs `subject`.
pub fn build(
    state: &StateDir,
    cache: &mut Cache,
    subject: &Subject,
    options: &BuildOptions,
    progress: &dyn Progress,
) -> Result<BuildReport, BuildError> {
    let name = describe(&subject.owner);
    let clock_ns = cache::scan_clock(&state.path).map_err(|source| BuildError::Clock {
        path: state.path.clone(),
        source,
    })?;
    let scan_options = ScanOptions {
        follow_external: options.follow_external,
        exclude: vec![state.path.clone()],
        skip_package_contents: options.mode == FingerprintMode::Manifests,
    };

    check_root(subject)?;
    progress.start(Phase::Scan, &name, 0);
    let unchanged = unchanged_tree(state, cache, subject, options, &scan_options)?;
    if let Some(report) = unchanged {
        progress.finish();
        debug!(subject = %name, "the tree matches its listing snapshot: digest reused");
        if !options.status_only {
            remote::upkeep::record_build(cache, &report, options.remote.as_deref());
        }
        return Ok(report);
    }
    let output = scan::scan(&subject.root, &subject.sources, &scan_options);
    progress.finish();
    // Only a zip must not be empty: `status` still reports on a layer just added.
    if !options.status_only {
        check_not_empty(subject, &output)?;
    }
    let mode_name = listing_mode(options.mode);
    let listing_key = mode_name.and_then(|mode| listing::key(&output, pack::FORMAT_LABEL, mode));
    let recorded = match (mode_name, listing_key) {
        (Some(mode), Some(_)) => cache.listing(&subject.owner, mode)?,
        _ => None,
    };
    if let Some(key) = listing_key {
        let reused = unchanged_listing(state, cache, subject, options, recorded, key)?;
        if let Some(mut report) = reused {
            debug!(subject = %name, "the scan listing is unchanged: digest reused");
            report.top_level_dirs = top_level_dirs(output.entries.iter().map(|e| &e.zip_path));
            let snapshot = snapshot_of(subject, options, &scan_options, &output, key, clock_ns);
            if let Some(snapshot) = snapshot {
                let stored =
                    cache.store_listing_snapshot(&subject.owner, SNAPSHOT_MODE, &key, &snapshot);
                if let Err(error) = stored {
                    // The snapshot only saves time; a cache that cannot take it still works.
                    debug!(subject = %name, %error, "listing snapshot not stored");
                }
            }
            if !options.status_only {
                remote::upkeep::record_build(cache, &report, options.remote.as_deref());
            }
            // Freeing the paths of a large listing takes longer than the key and the lookup
            // together; the pool frees them while the caller reports.
            rayon::spawn(move || drop(output));
            return Ok(report);
        }
    }
    let known = cache.load_files(&subject.owner)?;
    let mut listing = Listing::new(output.entries, output.problems);
    let mut stats = BuildStats::default();

    let skipped: Vec<&PackageDir> = output
        .packages
        .iter()
        .filter(|p| p.contents_skipped)
        .collect();
    let remote = options.remote.as_deref();
    let lists = find_package_lists(
        cache,
        remote,
        subject,
        &skipped,
        &known,
        clock_ns,
        &mut listing,
    )?;
    for (package, list) in skipped.iter().zip(lists) {
        splice_package(
            subject,
            package,
            list,
            &scan_options,
            &mut listing,
            &mut stats,
        );
    }
    listing.sort_and_check();

    let previous = cache.latest_build(&subject.owner)?;
    let stale = stale_files(&listing, &known, options.mode);
    let cold = match packs_while_hashing(cache, options, previous.as_ref(), &listing)? {
        true => pack_while_hashing(state, subject, &listing, &known, &stale, clock_ns, progress),
        false => None,
    };
    let (hashed, cold_zip) = match cold {
        Some(cold) => (cold.hashed, Some(cold.zip)),
        None => (
            hash_stale(subject, &listing, stale, clock_ns, progress),
            None,
        ),
    };
    let is_trusted_next_time = hashed
        .records
        .values()
        .all(|record| record.stat.mtime_ns < clock_ns)
        && skipped
            .iter()
            .all(|package| package.manifest_stat.mtime_ns < clock_ns)
        && stats.packages_reused == skipped.len() as u64;
    stats.files_hashed += hashed.records.len() as u64;
    stats.bytes_hashed += hashed.bytes;
    // Packing while hashing reads each file once; the packing that follows counts its reads.
    if cold_zip.is_none() {
        stats.files_read += hashed.records.len() as u64;
    }
    stats.stale = hashed.reasons.clone();
    listing.problems.extend(hashed.problems);
    if !listing.problems.is_empty() {
        return Err(BuildError::Problems {
            subject: name,
            problems: listing.problems,
        });
    }

    let entries = listing.entries(&known, &hashed.records);
    let sources: Vec<&str> = listing
        .scanned
        .iter()
        .map(|e| e.source_path.as_str())
        .collect();
    stats.files_scanned = entries
        .iter()
        .filter(|entry| entry.kind != EntryKind::Dir)
        .count() as u64;
    let image = digest::preimage(&entries, pack::FORMAT_LABEL);
    let digest = digest::digest_of_preimage(&image);
    let changed = previous.as_ref().map(|zip| zip.digest) != Some(digest);
    // The previous build's entry list (75,000 entries take tens of milliseconds to decode) is
    // read once, for the diff and for the reuse of its zip's compressed entries.
    let previous_zip = match (&previous, changed) {
        (Some(zip), true) => previous_entries(cache, &zip.digest)?.map(|entries| PreviousZip {
            path: state.build_dir().join(&zip.file_name),
            entries,
            format: pack::FORMAT_LABEL.to_string(),
        }),
        _ => None,
    };
    let changes = match (&previous, changed) {
        (Some(_), true) => diff(
            previous_zip.as_ref().map_or(&[], |zip| &zip.entries),
            &entries,
        ),
        (None, _) => Changes {
            added: entries.iter().map(|e| e.path.clone()).collect(),
            ..Default::default()
        },
        _ => Changes::default(),
    };

    let mut update = BuildUpdate {
        upsert_files: hashed.records.into_iter().collect(),
        remove_files: listing.removed_rows(&known, &skipped),
        packages: std::mem::take(&mut listing.fetched_packages),
        ..BuildUpdate::default()
    };
    update.upsert_files.append(&mut listing.hashed_manifests);
    // Only a build keeps the package lists it used alive for garbage collection: a status that
    // found nothing new must not write to the cache at all.
    if !options.status_only {
        update.used_packages = std::mem::take(&mut listing.used_packages);
    }
    if changed || previous.is_none() {
        // Without a previous build every package is compared; with one, those it changed.
        let mut touched: Vec<&str> = Vec::new();
        if previous.is_some() {
            let lists = [&changes.added, &changes.removed, &changes.modified];
            touched.extend(lists.into_iter().flatten().map(String::as_str));
            touched.sort_unstable();
        }
        let touched = previous.is_some().then_some(touched.as_slice());
        let learned = new_package_lists(cache, &output.packages, &entries, touched)?;
        update.packages.extend(learned);
    }
    // A status run that found a change builds nothing, so its listing would vouch for a digest
    // that is not the owner's build; only unchanged statuses and builds record theirs.
    if let (Some(mode), Some(key), true) = (mode_name, listing_key, is_trusted_next_time) {
        let files = stats.files_scanned;
        let record = ListingRecord {
            mode,
            key,
            digest,
            files,
        };
        if (!options.status_only || !changed) && recorded != Some(record) {
            update.listing = Some(record);
        }
    }
    // The file rows (about 200 bytes each, 75,000 in a large layer) are not needed while the
    // zip is packed, which is when memory use peaks.
    drop(known);
    let unzipped_bytes = entries.iter().map(|entry| entry.size).sum();
    let mut report = BuildReport {
        owner: subject.owner.clone(),
        digest,
        status: BuildStatus::Unbuilt,
        zip: None,
        zip_path: None,
        unzipped_bytes,
        entries: entries.len() as u64,
        top_level_dirs: top_level_dirs(entries.iter().map(|entry| &entry.path)),
        changed,
        previous: previous.as_ref().map(|zip| zip.digest),
        changes,
        stats,
    };

    if !options.status_only {
        let packed = match cold_zip {
            Some(zip) => name_cold_zip(state, cache, subject, zip, digest, &mut report.stats),
            None => find_or_pack(
                state,
                cache,
                remote,
                subject,
                &entries,
                &sources,
                digest,
                previous_zip,
                progress,
                &mut report.stats,
            ),
        };
        let (zip, status) = match packed {
            Err(BuildError::Pack {
                source: PackError::ContentChanged { path },
                subject: name,
            }) => {
                return Err(forget_changed_file(cache, subject, update, path, name));
            }
            other => other?,
        };
        report.zip_path = Some(state.build_dir().join(&zip.file_name));
        report.status = status;
        update.zip = Some((zip.clone(), image));
        report.zip = Some(zip);
    }
    cache.commit_build(&subject.owner, update)?;
    if let (Some(remote), Some(zip)) = (remote, &report.zip) {
        let packages = remote::node_fingerprints(&output.packages, &entries);
        remote.offer(cache, &state.build_dir(), zip, &packages);
    }
    // `cache stats` counts builds; a status leaves the cache as it found it when nothing changed.
    if !options.status_only {
        remote::upkeep::record_build(cache, &report, remote);
    }
    info!(subject = %name, digest = %digest.short(), status = ?report.status, "build finished");
    Ok(report)
}

/// Hands the memory the packing freed back to the system before the digest and the cache commit
/// allocate theirs. glibc keeps freed blocks in per-thread arenas, so the compression buffers of the rayon
/// workers would otherwise stay resident and add to the build's peak.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Keeps what this run learned, minus the row of a file whose content no longer matches the hash
/// the digest was built from, so that the next run reads it again whatever its stat data says
/// (the stat data may match while the cached hash is wrong, for example in a restored cache).
fn forget_changed_file(
    cache: &mut Cache,
    subject: &Subject,
    mut update: BuildUpdate,
    path: PathBuf,
    name: String,
) -> BuildError {
    if let Ok(relative) = path.strip_prefix(&subject.root) {
        let source = relative.to_string_lossy().into_owned();
        update.upsert_files.retain(|(known, _)| *known != source);
        update.remove_files.push(source);
    }
    if let Err(error) = cache.commit_build(&subject.owner, update) {
        warn!(%error, "could not record what this build learned before it stopped");
    }
    BuildError::Pack {
        subject: name,
        source: PackError::ContentChanged { path },
    }
}

/// The entries of a subject as they are assembled. Entries taken from cached package lists are
/// listed like scanned ones (with empty stat data: their files were not looked at) and carry
/// their known hash in `reused`, keyed by source path.
struct Listing {
    scanned: Vec<ScannedEntry>,
    reused: HashMap<String, blake3::Hash>,
    /// The cached package lists that were used, so the cache knows they are still needed.
    used_packages: Vec<(PackageKind, blake3::Hash)>,
    /// Package lists that came from the shared cache, to keep locally.
    fetched_packages: Vec<(PackageKind, blake3::Hash, PackageList)>,
    /// Stat rows of package.json files hashed to find their package's list.
    hashed_manifests: Vec<(String, FileRecord)>,
    /// Whether entries were appended after the scan (spliced lists or walked packages), which
    /// leaves the listing out of order until [`Listing::sort_and_check`].
    is_extended: bool,
    problems: Vec<Problem>,
}

impl Listing {
    fn new(mut scanned: Vec<ScannedEntry>, problems: Vec<ScanError>) -> Listing {
        // The walk collects entries in a vector that grew by doubling; the listing lives through
        // the whole build, packing included, when memory use peaks.
        scanned.shrink_to_fit();
        Listing {
            scanned,
            reused: HashMap::new(),
            used_packages: Vec::new(),
            fetched_packages: Vec::new(),
            hashed_manifests: Vec::new(),
            is_extended: false,
            problems: problems.into_iter().map(Problem::from).collect(),
        }
    }

    /// Puts spliced or walked package entries in order and checks the whole listing for zip
    /// path collisions again, since a cached package list may now meet an entry from another
    /// source.
    fn sort_and_check(&mut self) {
        if !self.is_extended {
            return;
        }
        let collisions = scan::check_collisions(&mut self.scanned);
        self.problems
            .extend(collisions.into_iter().map(Problem::from));
    }

    /// The final, sorted entry list with every file's hash filled in.
    fn entries(
        &self,
        known: &HashMap<String, FileRecord>,
        fresh: &HashMap<String, FileRecord>,
    ) -> Vec<Entry> {
        self.scanned
            .iter()
            .map(|scanned| self.to_entry(scanned, known, fresh))
            .collect()
    }

    fn to_entry(
        &self,
        scanned: &ScannedEntry,
        known: &HashMap<String, FileRecord>,
        fresh: &HashMap<String, FileRecord>,
    ) -> Entry {
        match scanned.kind {
            EntryKind::Dir => Entry::dir(&scanned.zip_path),
            EntryKind::Symlink => Entry::symlink(
                &scanned.zip_path,
                scanned.link_target.clone().unwrap_or_default(),
            ),
            EntryKind::File => {
                let hash = self
                    .reused
                    .get(&scanned.source_path)
                    .copied()
                    .or_else(|| fresh.get(&scanned.source_path).map(|r| r.content_hash))
                    .or_else(|| known.get(&scanned.source_path).map(|r| r.content_hash))
                    .expect("every file was reused, fresh in the cache, or hashed");
                Entry::file(
                    &scanned.zip_path,
                    scanned.stat.mode,
                    scanned.stat.size,
                    hash,
                )
            }
        }
    }

    /// Cached rows whose files are gone. Rows below a package whose walk was skipped are kept:
    /// their files were not looked at, so nothing is known about them.
    fn removed_rows(
        &self,
        known: &HashMap<String, FileRecord>,
        skipped: &[&PackageDir],
    ) -> Vec<String> {
        let mut seen = HashSet::with_capacity_and_hasher(
            self.scanned.len(),
            foldhash::fast::RandomState::default(),
        );
        seen.extend(self.scanned.iter().map(|entry| entry.source_path.as_str()));
        known
            .keys()
            .filter(|path| !seen.contains(path.as_str()))
            .filter(|path| {
                !skipped
                    .iter()
                    .any(|package| is_below(path, &package.source_dir))
            })
            .cloned()
            .collect()
    }
}

/// The name a fingerprint mode's listings are recorded under; `None` for content mode, which
/// reads every file whatever the listing says.
fn listing_mode(mode: FingerprintMode) -> Option<&'static str> {
    match mode {
        FingerprintMode::Stat => Some("stat"),
        FingerprintMode::Manifests => Some("manifests"),
        FingerprintMode::Content => None,
    }
}

/// The mode whose listings have snapshots: manifests mode does not list package contents, so its
/// scan is already quick.
const SNAPSHOT_MODE: &str = "stat";

/// The report of a stat-mode run whose tree still matches the snapshot of the listing recorded
/// with the owner's last build: that listing's digest, without scanning (see
/// `src/scan/snapshot.rs`). `None` when there is no such snapshot, the tree differs from it, or
/// the unchanged-listing shortcut would not apply either.
fn unchanged_tree(
    state: &StateDir,
    cache: &Cache,
    subject: &Subject,
    options: &BuildOptions,
    scan_options: &ScanOptions,
) -> Result<Option<BuildReport>, BuildError> {
    if options.mode != FingerprintMode::Stat {
        return Ok(None);
    }
    let Some((record, snapshot)) = cache.listing_snapshot(&subject.owner, SNAPSHOT_MODE)? else {
        return Ok(None);
    };
    let key = record.key;
    let matched = scan::snapshot::matches(
        &subject.root,
        &subject.sources,
        scan_options,
        &snapshot,
        (key.as_bytes(), &snapshot_labels()),
    );
    let Some(top_level) = matched else {
        debug!(subject = %describe(&subject.owner), "the tree differs from its listing snapshot");
        return Ok(None);
    };
    let reused = unchanged_listing(state, cache, subject, options, Some(record), key)?;
    Ok(reused.map(|mut report| {
        report.top_level_dirs = top_level.into_iter().collect();
        report.stats.snapshots_matched = 1;
        report
    }))
}

/// The snapshot to store with a stat-mode listing whose key is `key`, when its scan can have
/// one.
fn snapshot_of(
    subject: &Subject,
    options: &BuildOptions,
    scan_options: &ScanOptions,
    output: &ScanOutput,
    key: blake3::Hash,
    clock_ns: i64,
) -> Option<Vec<u8>> {
    if options.mode != FingerprintMode::Stat {
        return None;
    }
    let top_level = top_level_dirs(output.entries.iter().map(|e| &e.zip_path));
    let top_level: Vec<&str> = top_level.iter().map(String::as_str).collect();
    scan::snapshot::encode(
        &subject.sources,
        scan_options,
        output,
        (key.as_bytes(), &snapshot_labels()),
        clock_ns,
        &top_level,
    )
}

/// What a stat-mode listing key depends on besides the scan: its own layout and the zip format.
/// A lamina that would compute another key from the same scan does not use the snapshot.
fn snapshot_labels() -> String {
    format!(
        "{} {} {SNAPSHOT_MODE}",
        listing::KEY_LABEL,
        pack::FORMAT_LABEL
    )
}

/// The report of a run whose listing `key` is the one `recorded` with the owner's last build:
/// its digest, entries and sizes are the build's. `None` when the shortcut does not apply (no
/// such record, another digest built since, or the zip to reuse is missing).
fn unchanged_listing(
    state: &StateDir,
    cache: &Cache,
    subject: &Subject,
    options: &BuildOptions,
    recorded: Option<ListingRecord>,
    key: blake3::Hash,
) -> Result<Option<BuildReport>, BuildError> {
    let Some(record) = recorded.filter(|record| record.key == key) else {
        return Ok(None);
    };
    let Some(zip) = cache
        .latest_build(&subject.owner)?
        .filter(|zip| zip.digest == record.digest)
    else {
        return Ok(None);
    };
    let mut report = BuildReport {
        owner: subject.owner.clone(),
        digest: zip.digest,
        status: BuildStatus::Unbuilt,
        zip: None,
        zip_path: None,
        unzipped_bytes: zip.unzipped_bytes,
        entries: zip.entries,
        top_level_dirs: BTreeSet::new(),
        changed: false,
        previous: Some(zip.digest),
        changes: Changes::default(),
        stats: BuildStats {
            files_scanned: record.files,
            listings_reused: 1,
            ..BuildStats::default()
        },
    };
    if !options.status_only {
        let path = state.build_dir().join(&zip.file_name);
        if fs_err::metadata(&path).map(|m| m.len()).ok() != Some(zip.size) {
            return Ok(None);
        }
        report.status = BuildStatus::Cached;
        report.zip_path = Some(path);
        report.zip = Some(zip);
    }
    Ok(Some(report))
}

/// The first component of every zip path: what a zip holds at its root.
/// Paths usually come sorted, so most share the first component of the one before: checking that
/// first keeps a 75,000-entry listing from allocating a string per entry.
fn top_level_dirs<'a>(paths: impl Iterator<Item = &'a String>) -> BTreeSet<String> {
    let mut dirs = BTreeSet::new();
    let mut last: &str = "";
    for path in paths {
        let is_below_last = !last.is_empty()
            && path.starts_with(last)
            && path
                .as_bytes()
                .get(last.len())
                .is_none_or(|byte| *byte == b'/');
        if is_below_last {
            continue;
        }
        let first = path.split('/').next().unwrap_or_default();
        if !first.is_empty() && !dirs.contains(first) {
            dirs.insert(first.to_owned());
        }
        last = first;
    }
    dirs
}

fn is_below(path: &str, folder: &str) -> bool {
    path.len() > folder.len() && path.starts_with(folder) && path.as_bytes()[folder.len()] == b'/'
}

/// Where a skipped package's file list comes from.
enum ListSource {
    /// A list known under the package's fingerprint; `manifest` is the stat row of its
    /// package.json when that had to be hashed to find the fingerprint.
    Found {
        fingerprint: blake3::Hash,
        entries: Vec<Entry>,
        manifest: Option<FileRecord>,
    },
    /// No list is known: the package is walked after all.
    Walk,
    /// Its manifest could not be read; the problem is listed already.
    Failed,
}

/// The file list of each skipped package, by fingerprint: from the local cache, else from the
/// shared cache (all of a subject's misses asked for at once).
#[allow(clippy::too_many_arguments)] // One call site; a struct would only rename the arguments.
fn find_package_lists(
    cache: &Cache,
    remote: Option<&RemoteCache>,
    subject: &Subject,
    skipped: &[&PackageDir],
    known: &HashMap<String, FileRecord>,
    clock_ns: i64,
    listing: &mut Listing,
) -> Result<Vec<ListSource>, BuildError> {
    let mut lists = Vec::with_capacity(skipped.len());
    let mut wanted = Vec::new();
    for package in skipped {
        let (fingerprint, manifest) = match package_fingerprint(subject, package, known, clock_ns) {
            Ok(found) => found,
            Err(problem) => {
                listing.problems.push(problem);
                lists.push(ListSource::Failed);
                continue;
            }
        };
        match cache.package_files(package.kind, &fingerprint)? {
            // The conflict mark: copies under this fingerprint differ, so the package is walked.
            Some(entries) if entries.is_empty() => {
                debug!(package = %package.source_dir, "its copies differ: walking the package");
                lists.push(ListSource::Walk)
            }
            Some(entries) => lists.push(ListSource::Found {
                fingerprint,
                entries,
                manifest,
            }),
            None => {
                wanted.push((lists.len(), package.kind, fingerprint, manifest));
                lists.push(ListSource::Walk);
            }
        }
    }

    let Some(remote) = remote.filter(|_| !wanted.is_empty()) else {
        return Ok(lists);
    };
    let keys: Vec<_> = wanted.iter().map(|(_, kind, fp, _)| (*kind, *fp)).collect();
    let fetched = remote.fetch_package_lists(&keys);
    for ((index, kind, fingerprint, manifest), entries) in wanted.into_iter().zip(fetched) {
        if let Some(entries) = entries.filter(|entries| !entries.is_empty()) {
            listing.fetched_packages.push((
                kind,
                fingerprint,
                PackageList::from(entries.as_slice()),
            ));
            lists[index] = ListSource::Found {
                fingerprint,
                entries,
                manifest,
            };
        }
    }
    Ok(lists)
}

/// Replaces a skipped package with its file list, or walks it when no list is known.
fn splice_package(
    subject: &Subject,
    package: &PackageDir,
    list: ListSource,
    scan_options: &ScanOptions,
    listing: &mut Listing,
    stats: &mut BuildStats,
) {
    let (fingerprint, list, manifest) = match list {
        ListSource::Found {
            fingerprint,
            entries,
            manifest,
        } => (fingerprint, entries, manifest),
        ListSource::Failed => return,
        ListSource::Walk => {
            listing.is_extended = true;
            debug!(package = %package.source_dir, "no cached file list: walking the package");
            let output = scan::scan_package(&subject.root, package, scan_options);
            listing.scanned.extend(output.entries);
            listing
                .problems
                .extend(output.problems.into_iter().map(Problem::from));
            return;
        }
    };
    debug!(package = %package.source_dir, "reusing the cached file list");
    listing.is_extended = true;
    stats.packages_reused += 1;
    if let Some(record) = manifest {
        stats.files_hashed += 1;
        stats.files_read += 1;
        stats.bytes_hashed += record.stat.size;
        listing
            .hashed_manifests
            .push((package.manifest_path.clone(), record));
    }
    listing.used_packages.push((package.kind, fingerprint));
    for entry in list {
        let source_path = format!("{}/{}", package.source_dir, entry.path);
        if entry.kind == EntryKind::File {
            listing
                .reused
                .insert(source_path.clone(), entry.content_hash);
        }
        listing.scanned.push(ScannedEntry {
            zip_path: format!("{}/{}", package.zip_dir, entry.path),
            source_path,
            kind: entry.kind,
            stat: Stat {
                size: entry.size,
                mode: entry.mode,
                ..Stat::default()
            },
            link_target: entry.link_target,
        });
    }
}

/// The fingerprint of a skipped package. A node package's is its package.json's content hash:
/// taken from the cache while the file's stat data still matches, else read and hashed (a fresh
/// checkout, an imported cache or a shared one can then still find the list; the stat row comes
/// back with it). The Python install's fingerprint is derived from its Pipfile.lock, which is
/// small and read every time.
fn package_fingerprint(
    subject: &Subject,
    package: &PackageDir,
    known: &HashMap<String, FileRecord>,
    clock_ns: i64,
) -> Result<(blake3::Hash, Option<FileRecord>), Problem> {
    match package.kind {
        PackageKind::Node => {
            let record = known.get(&package.manifest_path);
            if let (Ok(()), Some(record)) =
                (cache::freshness(record, &package.manifest_stat), record)
            {
                return Ok((record.content_hash, None));
            }
            let path = subject.root.join(&package.manifest_path);
            let hash = hash_file(&path, package.manifest_stat.size)
                .map_err(|source| Problem::Read { path, source })?;
            let record = FileRecord {
                stat: package.manifest_stat,
                content_hash: hash,
                link_target: None,
                clock_ns,
            };
            Ok((hash, Some(record)))
        }
        PackageKind::Python => {
            let path = subject.root.join(&package.manifest_path);
            let bytes = fs_err::read(&path).map_err(|source| Problem::Read {
                path: path.clone(),
                source,
            })?;
            fingerprint::python_lock_fingerprint(&bytes)
                .map(|fingerprint| (fingerprint, None))
                .map_err(|error| Problem::Lock {
                    path,
                    reason: error.to_string(),
                })
        }
    }
}

/// Package file lists this build can teach the cache: for every package found, its own entries,
/// unless the cache already has that very list under the same fingerprint.
///
/// A fingerprint (package.json's content) stands for the package's files only while every copy
/// seen under it has the same files. A file edited inside `node_modules` (by hand, by
/// patch-package) keeps the fingerprint, and splicing the older list in would give the digest of
/// a tree without the edit, and so push an older version. So when a build sees a package differ
/// from the list stored under its fingerprint, or sees two copies under one fingerprint that
/// differ, it stores the conflict mark ([`PackageList::conflict`]) instead: manifests mode then
/// walks such packages, and nothing replaces the mark. Only packages that hold one of the
/// `touched` paths (sorted), or that have a copy elsewhere in the tree, are compared; every
/// package is when `touched` is `None`.
fn new_package_lists(
    cache: &Cache,
    packages: &[PackageDir],
    entries: &[Entry],
    touched: Option<&[&str]>,
) -> Result<Vec<(PackageKind, blake3::Hash, PackageList)>, BuildError> {
    // The node packages by fingerprint. The Python install's list is keyed by its lock file,
    // which build reads only in manifests mode; in stat mode, lists are learned for node
    // packages alone.
    let mut copies: BTreeMap<[u8; 32], Vec<&PackageDir>> = BTreeMap::new();
    for package in packages.iter().filter(|p| p.kind == PackageKind::Node) {
        let manifest = format!("{}/package.json", package.zip_dir);
        // `entries` is sorted by the bytes of its paths.
        let found = entries.binary_search_by(|entry| entry.path.as_str().cmp(&manifest));
        if let Ok(index) = found {
            let fingerprint = *entries[index].content_hash.as_bytes();
            copies.entry(fingerprint).or_default().push(package);
        }
    }
    let kind = PackageKind::Node;
    let stored = cache.package_list_hashes(kind)?;
    let conflict_hash = PackageList::conflict().hash();
    let mut lists = Vec::new();
    for (fingerprint, copies) in copies {
        let cached = stored.get(&fingerprint).copied();
        let fingerprint = blake3::Hash::from_bytes(fingerprint);
        let may_differ = copies.len() > 1
            || touched.is_none_or(|paths| copies.iter().any(|copy| holds_any(copy, paths)));
        if cached == Some(conflict_hash) || (cached.is_some() && !may_differ) {
            continue;
        }
        let mut seen: Vec<PackageList> = Vec::new();
        for copy in copies {
            let list = PackageList::from(own_entries(copy, entries));
            if !seen.contains(&list) {
                seen.push(list);
            }
        }
        let list = match (seen.len(), cached) {
            (1, None) => seen.pop().expect("one list"),
            (1, Some(cached)) if cached == seen[0].hash() => continue,
            _ => {
                debug!(fingerprint = %fingerprint.to_hex(), "package copies differ: list marked");
                PackageList::conflict()
            }
        };
        lists.push((kind, fingerprint, list));
    }
    Ok(lists)
}

/// Whether one of `paths` (sorted) is among a node package's own entries.
fn holds_any(package: &PackageDir, paths: &[&str]) -> bool {
    own_items(package, paths, |path| path).next().is_some()
}

/// A node package's own entries, relative to its folder: everything below it except its nested
/// `node_modules/`.
fn own_entries(package: &PackageDir, entries: &[Entry]) -> Vec<Entry> {
    let prefix_len = package.zip_dir.len() + 1;
    own_items(package, entries, |entry| &entry.path)
        .map(|entry| Entry {
            path: entry.path[prefix_len..].to_string(),
            ..entry.clone()
        })
        .collect()
}

/// The items of `sorted` (by the bytes of `path`) that are a node package's own: below its
/// folder, and not in its nested `node_modules/`.
fn own_items<'a, T>(
    package: &PackageDir,
    sorted: &'a [T],
    path: impl Fn(&T) -> &str + Copy + 'a,
) -> impl Iterator<Item = &'a T> + 'a {
    let prefix = format!("{}/", package.zip_dir);
    let nested = format!("{prefix}node_modules");
    let start = sorted.partition_point(|item| path(item).as_bytes() < prefix.as_bytes());
    sorted[start..]
        .iter()
        .take_while(move |item| path(item).starts_with(&prefix))
        .filter(move |item| path(item) != nested && !is_below(path(item), &nested))
}

/// The result of hashing the files whose cached rows could not be trusted.
struct Hashed {
    records: HashMap<String, FileRecord>,
    bytes: u64,
    reasons: BTreeMap<String, u64>,
    problems: Vec<Problem>,
}

/// Files above this size are read in chunks of this size and each chunk is hashed with blake3's
/// own threads; below it, a plain read is cheaper and parallelism comes from hashing many files
/// at once. Files are read, never memory-mapped: a mapped file that another process truncates
/// kills the reader with SIGBUS, and a build must report such a file, not crash on it.
const LARGE_FILE: usize = 4 << 20;

/// The files whose cached rows cannot be trusted, by index in the listing, and why.
struct Stale {
    indices: Vec<usize>,
    reasons: BTreeMap<String, u64>,
}

fn stale_files(
    listing: &Listing,
    known: &HashMap<String, FileRecord>,
    mode: FingerprintMode,
) -> Stale {
    let mut stale = Stale {
        indices: Vec::new(),
        reasons: BTreeMap::new(),
    };
    for (index, entry) in listing.scanned.iter().enumerate() {
        if entry.kind != EntryKind::File || listing.reused.contains_key(&entry.source_path) {
            continue;
        }
        let verdict = match mode {
            FingerprintMode::Content => Err(None),
            _ => cache::freshness(known.get(&entry.source_path), &entry.stat).map_err(Some),
        };
        if let Err(reason) = verdict {
            let label = reason.map_or_else(
                || "content_mode".to_string(),
                |r: StaleReason| r.to_string(),
            );
            debug!(path = %entry.source_path, reason = %label, "hashing");
            *stale.reasons.entry(label).or_default() += 1;
            stale.indices.push(index);
        }
    }
    stale
}

fn hash_stale(
    subject: &Subject,
    listing: &Listing,
    stale: Stale,
    clock_ns: i64,
    progress: &dyn Progress,
) -> Hashed {
    let reasons = stale.reasons;
    let stale: Vec<&ScannedEntry> = stale.indices.iter().map(|&i| &listing.scanned[i]).collect();
    progress.start(Phase::Hash, &describe(&subject.owner), stale.len() as u64);
    let results: Vec<Result<(String, FileRecord), Problem>> = stale
        .par_iter()
        .map(|entry| {
            let path = subject.root.join(&entry.source_path);
            let hash = hash_file(&path, entry.stat.size).map_err(|source| Problem::Read {
                path: path.clone(),
                source,
            })?;
            progress.advance(1);
            let record = FileRecord {
                stat: entry.stat,
                content_hash: hash,
                link_target: None,
                clock_ns,
            };
            Ok((entry.source_path.clone(), record))
        })
        .collect();
    progress.finish();

    let mut hashed = Hashed {
        records: HashMap::new(),
        bytes: 0,
        reasons,
        problems: Vec::new(),
    };
    for result in results {
        match result {
            Ok((path, record)) => {
                hashed.bytes += record.stat.size;
                hashed.records.insert(path, record);
            }
            Err(problem) => hashed.problems.push(problem),
        }
    }
    hashed
}

/// Whether this build packs its stale files while hashing them, reading each once, instead of
/// hashing them all first. It must know the digest only after packing, so it is chosen only when
/// that digest cannot name a zip that is already available: a build with no earlier build of the
/// subject to copy entries from, no shared cache to fetch a zip from, and no zip in the cache
/// that this checkout did not build itself (an imported cache may hold this very zip). A
/// checkout whose own earlier zip matches by chance (two subjects with the same content) packs
/// it again, then keeps the zip it had.
fn packs_while_hashing(
    cache: &Cache,
    options: &BuildOptions,
    previous: Option<&ZipRecord>,
    listing: &Listing,
) -> Result<bool, BuildError> {
    if options.status_only || options.remote.is_some() || previous.is_some() {
        return Ok(false);
    }
    let has_files = listing.scanned.iter().any(|e| e.kind == EntryKind::File);
    if !has_files || !listing.problems.is_empty() {
        return Ok(false);
    }
    Ok(!cache.holds_zips_built_elsewhere()?)
}

/// A zip written while its stale files were hashed, waiting for its digest.
struct ColdPack {
    zip: pack::UnnamedZip,
    hashed: Hashed,
}

/// Packs every file of the listing, learning the hash of each stale file from the read that
/// compresses it. `None` when packing fails: the caller then hashes first, which reports every
/// problem of the subject at once where packing stops at the first.
fn pack_while_hashing(
    state: &StateDir,
    subject: &Subject,
    listing: &Listing,
    known: &HashMap<String, FileRecord>,
    stale: &Stale,
    clock_ns: i64,
    progress: &dyn Progress,
) -> Option<ColdPack> {
    let mut unknown = vec![false; listing.scanned.len()];
    for &index in &stale.indices {
        unknown[index] = true;
    }
    let no_fresh = HashMap::new();
    let entries: Vec<PackEntry> = listing
        .scanned
        .iter()
        .zip(&unknown)
        .map(|(scanned, &unknown)| PackEntry {
            // The zip's bytes do not depend on a file's hash, so an unknown one is left as zeros
            // until it is learned.
            entry: match unknown {
                true => Entry::file(
                    &scanned.zip_path,
                    scanned.stat.mode,
                    scanned.stat.size,
                    blake3::Hash::from_bytes([0; 32]),
                ),
                false => listing.to_entry(scanned, known, &no_fresh),
            },
            disk_path: (scanned.kind == EntryKind::File)
                .then(|| subject.root.join(&scanned.source_path)),
        })
        .collect();

    progress.start(Phase::Pack, &describe(&subject.owner), entries.len() as u64);
    let packed = pack::write_zip_learning(&state.build_dir(), &entries, &unknown, progress);
    progress.finish();
    drop(entries);
    release_free_memory();
    let zip = match packed {
        Ok(zip) => zip,
        Err(error) => {
            debug!(%error, "packing while hashing failed: hashing first");
            return None;
        }
    };
    let mut hashed = Hashed {
        records: HashMap::with_capacity(zip.learned().len()),
        bytes: 0,
        reasons: stale.reasons.clone(),
        problems: Vec::new(),
    };
    for &(index, hash) in zip.learned() {
        let scanned = &listing.scanned[index];
        let record = FileRecord {
            stat: scanned.stat,
            content_hash: hash,
            link_target: None,
            clock_ns,
        };
        hashed.bytes += scanned.stat.size;
        hashed.records.insert(scanned.source_path.clone(), record);
    }
    Some(ColdPack { zip, hashed })
}

/// Names a zip packed while hashing by its digest, or drops it when a recorded zip of that
/// digest is already in the build folder.
fn name_cold_zip(
    state: &StateDir,
    cache: &Cache,
    subject: &Subject,
    zip: pack::UnnamedZip,
    digest: Digest,
    stats: &mut BuildStats,
) -> Result<(ZipRecord, BuildStatus), BuildError> {
    stats.entries_compressed = zip.entries_compressed();
    stats.files_read += zip.entries_compressed();
    if let Some(recorded) = cache.zip(&digest)? {
        let on_disk = fs_err::metadata(state.build_dir().join(&recorded.file_name));
        if on_disk.map(|m| m.len()).ok() == Some(recorded.size) {
            return Ok((recorded, BuildStatus::Cached));
        }
    }
    let outcome = zip.name(&digest).map_err(|source| BuildError::Pack {
        subject: describe(&subject.owner),
        source,
    })?;
    Ok((zip_record(digest, outcome), BuildStatus::Built))
}

fn zip_record(digest: Digest, outcome: pack::PackOutcome) -> ZipRecord {
    let file_name = outcome
        .path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("{digest}.zip"));
    ZipRecord {
        digest,
        sha256: outcome.sha256,
        size: outcome.size,
        entries: outcome.entries,
        unzipped_bytes: outcome.unzipped_bytes,
        file_name,
    }
}

/// blake3 of a file's content. The stat size decides only how to read, never what is hashed.
fn hash_file(path: &Path, size_hint: u64) -> std::io::Result<blake3::Hash> {
    let mut file = fs_err::File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    if size_hint < LARGE_FILE as u64 {
        let mut buffer = Vec::with_capacity(size_hint as usize + 1);
        file.read_to_end(&mut buffer)?;
        hasher.update(&buffer);
        return Ok(hasher.finalize());
    }
    let mut chunk = vec![0; LARGE_FILE];
    loop {
        let filled = read_full(&mut file, &mut chunk)?;
        hasher.update_rayon(&chunk[..filled]);
        if filled < chunk.len() {
            return Ok(hasher.finalize());
        }
    }
}

/// Reads until `buffer` is full or the file ends; returns how much was read.
fn read_full(file: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..])? {
            0 => break,
            read => filled += read,
        }
    }
    Ok(filled)
}

/// Reuses the zip of `digest` when it is recorded and still on disk; packs it otherwise, copying
/// what it can from `previous_zip`.
#[allow(clippy::too_many_arguments)] // One call site; a struct would only rename the arguments.
fn find_or_pack(
    state: &StateDir,
    cache: &Cache,
    remote: Option<&RemoteCache>,
    subject: &Subject,
    entries: &[Entry],
    sources: &[&str],
    digest: Digest,
    previous_zip: Option<PreviousZip>,
    progress: &dyn Progress,
    stats: &mut BuildStats,
) -> Result<(ZipRecord, BuildStatus), BuildError> {
    let build_dir = state.build_dir();
    if let Some(zip) = cache.zip(&digest)? {
        let on_disk = fs_err::metadata(build_dir.join(&zip.file_name)).map(|m| m.len());
        if on_disk.ok() == Some(zip.size) {
            return Ok((zip, BuildStatus::Cached));
        }
        debug!(digest = %digest.short(), "recorded zip is missing from the build folder: packing");
    }
    if let Some(zip) = remote.and_then(|remote| remote.fetch_zip(&build_dir, &digest, entries)) {
        return Ok((zip, BuildStatus::Cached));
    }

    progress.start(Phase::Pack, &describe(&subject.owner), entries.len() as u64);
    // TODO: this clones every entry and joins every file's disk path (about 25 ms, and as much
    // again to free them, for 75,000 entries) though an entry copied from the previous zip needs
    // neither; PackEntry would have to borrow its entry and build its path on demand.
    let pack_entries: Vec<PackEntry> = entries
        .iter()
        .zip(sources)
        .map(|(entry, source)| PackEntry {
            entry: entry.clone(),
            disk_path: (entry.kind == EntryKind::File).then(|| subject.root.join(source)),
        })
        .collect();
    let outcome = pack::write_zip(
        &build_dir,
        &digest,
        &pack_entries,
        previous_zip.as_ref(),
        progress,
    );
    progress.finish();
    drop(pack_entries);
    release_free_memory();
    let outcome = outcome.map_err(|source| BuildError::Pack {
        subject: describe(&subject.owner),
        source,
    })?;
    stats.entries_compressed = outcome.entries_compressed;
    stats.files_read += outcome.entries_compressed;
    stats.entries_reused = outcome.entries_reused;
    Ok((zip_record(digest, outcome), BuildStatus::Built))
}

/// The entry list of an earlier zip. A damaged list only costs the diff and the reuse of
/// compressed entries, so it is a miss with a warning rather than an error.
fn previous_entries(cache: &Cache, digest: &Digest) -> Result<Option<Vec<Entry>>, BuildError> {
    match cache.zip_entries(digest) {
        Err(CacheError::DamagedEntryList { .. }) => {
            warn!(digest = %digest.short(), "the cached entry list of the previous zip is damaged");
            Ok(None)
        }
        other => Ok(other?),
    }
}

/// What differs between two entry lists, found in one walk of both in path order.
fn diff(old: &[Entry], new: &[Entry]) -> Changes {
    let (old, new) = (by_path(old), by_path(new));
    let (mut old, mut new) = (old.iter().peekable(), new.iter().peekable());
    let mut changes = Changes::default();
    loop {
        let order = match (old.peek(), new.peek()) {
            (None, None) => return changes,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(before), Some(after)) => before.path.as_bytes().cmp(after.path.as_bytes()),
        };
        match order {
            Ordering::Less => changes.removed.extend(old.next().map(|e| e.path.clone())),
            Ordering::Greater => changes.added.extend(new.next().map(|e| e.path.clone())),
            Ordering::Equal => {
                if let (Some(before), Some(after)) = (old.next(), new.next()) {
                    if before != after {
                        changes.modified.push(after.path.clone());
                    }
                }
            }
        }
    }
}

/// `entries` sorted by path bytes, without two entries of one path. The lists lamina builds and
/// records are sorted already, which this only checks; an entry list from elsewhere (a cache
/// written by another version) is sorted here, its first entry of a path kept.
fn by_path(entries: &[Entry]) -> Vec<&Entry> {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    let is_sorted = sorted
        .windows(2)
        .all(|pair| pair[0].path.as_bytes() < pair[1].path.as_bytes());
    if !is_sorted {
        sorted.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        sorted.dedup_by(|later, earlier| later.path == earlier.path);
    }
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, content: &[u8]) -> Entry {
        Entry::file(path, 0o644, content.len() as u64, blake3::hash(content))
    }

    #[test]
    fn diff_finds_added_removed_and_modified_entries_in_sorted_or_unsorted_lists() {
        let old = vec![
            Entry::dir("nodejs"),
            file("nodejs/a.js", b"a"),
            file("nodejs/b.js", b"b"),
            file("nodejs/c.js", b"c"),
            Entry::symlink("nodejs/link", "a.js"),
        ];
        let new = vec![
            Entry::dir("nodejs"),
            file("nodejs/a.js", b"a"),
            file("nodejs/b.js", b"changed"),
            file("nodejs/bb.js", b"added"),
            Entry::symlink("nodejs/link", "c.js"),
            file("nodejs/z.js", b"added last"),
        ];
        let expected = Changes {
            added: vec!["nodejs/bb.js".into(), "nodejs/z.js".into()],
            removed: vec!["nodejs/c.js".into()],
            modified: vec!["nodejs/b.js".into(), "nodejs/link".into()],
        };
        assert_eq!(diff(&old, &new), expected);

        let mut shuffled = old.clone();
        shuffled.reverse();
        assert_eq!(diff(&shuffled, &new), expected);
        assert_eq!(diff(&[], &[]), Changes::default());
        assert_eq!(diff(&new, &new), Changes::default());
    }
}
