//! Looking after the local cache: what the last run did (`lamina cache stats`), whether what is
//! stored is intact (`lamina cache verify`), and dropping what nothing needs (`lamina cache gc`).
//!
//! The engine calls [`record_build`] after each build, which keeps the two machine-local tables
//! these commands read: the build history (every digest each layer and function was built as,
//! with the last time) and the counters of the current run. A *run* is one lamina process; the
//! first build of a new process replaces the previous run's counters.
//!
//! Garbage collection keeps, and drops everything else:
//! - for every layer and function, the zips of its `keep_last` most recent distinct builds (the
//!   last build always, whatever `keep_last` says, because `builds` points at it);
//! - every zip whose SHA-256 is that of a published layer version (the caller lists them: local
//!   registry records and the versions the AWS target remembers);
//! - the node package lists whose fingerprint is the hash of a `package.json` in a kept zip, and
//!   Python lists used since the oldest kept build (their key, the lock file's fingerprint, is
//!   not in the zip).
//!
//! It removes the dropped zips' files from `.lamina/build/`, and zips there that no row names (a
//! zip renamed into place by a run that died before recording it) and temporary files
//! (`.lamina-tmp-*`) once they have not been written for [`STALE_TEMP`]: a running build may
//! be writing a younger temporary file, or have renamed a zip into place and not yet recorded
//! it. Last, it compacts the database file if it has free pages, since SQLite never shrinks it
//! by itself. The rows go first, in one transaction; a file that cannot be removed, or a
//! compaction that fails, is a warning, and the next gc tries again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use serde::Serialize;
use tracing::{debug, info, warn};

use super::rows::{self, kind_name, Update};
use super::{check, RemoteCache, RemoteCounters};
use crate::build::{BuildReport, BuildStatus};
use crate::cache::{Cache, CacheError};
use crate::digest::{Digest, EntryKind};
use crate::scan::PackageKind;

/// The default of `lamina cache gc --keep-last`.
pub const DEFAULT_KEEP_LAST: usize = 3;

/// This process's run id: the process id and the start time, unique enough to tell two runs
/// apart on one machine.
fn run_id() -> &'static str {
    static RUN: OnceLock<String> = OnceLock::new();
    RUN.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{}-{nanos}", std::process::id())
    })
}

/// Records one build in the history and the run's counters. A failure costs only statistics, so
/// it is logged and not returned.
pub fn record_build(cache: &mut Cache, report: &BuildReport, remote: Option<&RemoteCache>) {
    if let Err(error) = try_record_build(cache, report, remote) {
        warn!(%error, "cannot record the build's statistics in the cache");
    }
}

fn try_record_build(
    cache: &mut Cache,
    report: &BuildReport,
    remote: Option<&RemoteCache>,
) -> Result<(), CacheError> {
    let stats = &report.stats;
    let status = |wanted| i64::from(report.status == wanted);
    let mut counters: Vec<(&str, i64, Update)> = vec![
        ("builds", 1, Update::Add),
        ("zips_built", status(BuildStatus::Built), Update::Add),
        ("zips_cached", status(BuildStatus::Cached), Update::Add),
        ("files_scanned", stats.files_scanned as i64, Update::Add),
        ("files_hashed", stats.files_hashed as i64, Update::Add),
        ("bytes_hashed", stats.bytes_hashed as i64, Update::Add),
        (
            "entries_compressed",
            stats.entries_compressed as i64,
            Update::Add,
        ),
        ("entries_reused", stats.entries_reused as i64, Update::Add),
        ("packages_reused", stats.packages_reused as i64, Update::Add),
    ];
    let remote_counters = remote.map(RemoteCache::counters).unwrap_or_default();
    let remote_values = remote_counter_values(&remote_counters);
    counters.extend(
        remote_values
            .iter()
            .map(|(name, value)| (*name, *value, Update::Set)),
    );

    let now = rows::unix_now();
    let path = cache.path().to_path_buf();
    let transaction = cache.transaction()?;
    let write = || -> rusqlite::Result<()> {
        rows::record_counters(&transaction, run_id(), &counters)?;
        if let Some(zip) = &report.zip {
            rows::record_history(&transaction, &report.owner, &zip.digest, now)?;
        }
        Ok(())
    };
    write()
        .and_then(|()| transaction.commit())
        .map_err(|source| CacheError::from_sqlite(&path, source))
}

fn remote_counter_values(counters: &RemoteCounters) -> Vec<(&'static str, i64)> {
    vec![
        ("remote_zip_hits", counters.zip_hits as i64),
        ("remote_zip_misses", counters.zip_misses as i64),
        ("remote_list_hits", counters.list_hits as i64),
        ("remote_list_misses", counters.list_misses as i64),
        ("remote_damaged", counters.damaged as i64),
        ("remote_errors", counters.errors as i64),
        ("remote_zips_stored", counters.zips_stored as i64),
        ("remote_lists_stored", counters.lists_stored as i64),
        ("remote_bytes_downloaded", counters.bytes_downloaded as i64),
        ("remote_bytes_uploaded", counters.bytes_uploaded as i64),
    ]
}

/// What `lamina cache stats` shows.
#[derive(Debug, Clone, Serialize)]
pub struct CacheStats {
    pub entries: Entries,
    /// `None` before the first recorded run.
    pub last_run: Option<LastRun>,
}

/// What the cache holds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Entries {
    pub zips: u64,
    /// Bytes of the zips recorded (whether or not their files are still there).
    pub zip_bytes: u64,
    /// Recorded zips whose file is gone from `.lamina/build/` or is not of the recorded size
    /// (rebuilt when needed; `lamina cache verify` tells damage from absence).
    pub zips_missing: u64,
    pub packages: u64,
    /// Bytes of the stored package lists.
    pub package_bytes: u64,
    /// Machine-local stat rows.
    pub files: u64,
    /// Size of the database file (without its WAL).
    pub database_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastRun {
    pub counters: BTreeMap<String, i64>,
    /// Fractions from 0 to 1; absent when there was nothing to hit.
    pub hit_rates: BTreeMap<String, f64>,
}

/// Reads the cache's size and the last run's counters.
pub fn stats(cache: &Cache, build_dir: &Path) -> Result<CacheStats, CacheError> {
    let mut entries = Entries::default();
    for row in rows::zip_rows(cache)? {
        entries.zips += 1;
        entries.zip_bytes += row.record.size;
        let file = build_dir.join(&row.record.file_name);
        if fs_err::metadata(file).map(|m| m.len()).ok() != Some(row.record.size) {
            entries.zips_missing += 1;
        }
    }
    let count = |sql: &str| -> Result<i64, CacheError> {
        cache
            .connection()
            .query_row(sql, [], |row| row.get(0))
            .map_err(|e| cache.sql_error(e))
    };
    entries.packages = count("SELECT count(*) FROM packages")? as u64;
    entries.package_bytes = count("SELECT coalesce(sum(length(entries)), 0) FROM packages")? as u64;
    entries.files = count("SELECT count(*) FROM files")? as u64;
    entries.database_bytes = fs_err::metadata(cache.path()).map_or(0, |m| m.len());

    let last_run = rows::counters(cache)?.map(|(_, counters)| LastRun {
        hit_rates: hit_rates(&counters),
        counters,
    });
    Ok(CacheStats { entries, last_run })
}

fn hit_rates(counters: &BTreeMap<String, i64>) -> BTreeMap<String, f64> {
    let get = |name: &str| counters.get(name).copied().unwrap_or(0) as f64;
    let mut rates = BTreeMap::new();
    let mut rate = |name: &str, hits: f64, total: f64| {
        if total > 0.0 {
            rates.insert(name.to_owned(), hits / total);
        }
    };
    // A file whose cached hash was trusted is a hit.
    rate(
        "file_hashes",
        get("files_scanned") - get("files_hashed"),
        get("files_scanned"),
    );
    rate(
        "zips",
        get("zips_cached"),
        get("zips_cached") + get("zips_built"),
    );
    rate(
        "remote_zips",
        get("remote_zip_hits"),
        get("remote_zip_hits") + get("remote_zip_misses"),
    );
    rate(
        "remote_package_lists",
        get("remote_list_hits"),
        get("remote_list_hits") + get("remote_list_misses"),
    );
    rates
}

/// One damaged thing `lamina cache verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Damage {
    /// `zip <digest>` or `package list <kind> <fingerprint>`.
    pub item: String,
    /// The file, for a zip.
    pub path: Option<String>,
    pub problem: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub zips_checked: u64,
    /// Recorded zips whose file is gone: not damage, they are rebuilt when needed.
    pub zips_missing: u64,
    pub packages_checked: u64,
    pub damage: Vec<Damage>,
    /// Damaged items removed (with `repair`): zip files deleted (rebuilt on the next build) and
    /// package lists deleted (learned again).
    pub repaired: u64,
}

/// Re-hashes every zip in `build_dir` against its record and every stored list against its
/// hash; `deep` also decompresses every zip and checks its content against its entry list.
/// With `repair`, damaged zip files and package lists are removed so that they are rebuilt.
pub fn verify(
    cache: &mut Cache,
    build_dir: &Path,
    deep: bool,
    repair: bool,
) -> Result<VerifyReport, CacheError> {
    let mut report = VerifyReport::default();
    let mut damaged_files = Vec::new();
    for row in rows::zip_rows(cache)? {
        let zip = row.record;
        let path = build_dir.join(&zip.file_name);
        if !path.is_file() {
            report.zips_missing += 1;
            continue;
        }
        report.zips_checked += 1;
        if let Some(problem) = zip_problem(cache, &zip, &path, deep)? {
            report.damage.push(Damage {
                item: format!("zip {}", zip.digest),
                path: Some(path.display().to_string()),
                problem,
            });
            damaged_files.push(path);
        }
    }
    let mut damaged_lists = Vec::new();
    for row in rows::package_rows(cache)? {
        report.packages_checked += 1;
        let problem = if blake3::hash(&row.entries).as_bytes() != &row.entries_hash {
            Some("it does not match its stored hash".to_owned())
        } else {
            check::check_package_list(row.kind, &row.fingerprint, &row.entries).err()
        };
        if let Some(problem) = problem {
            report.damage.push(Damage {
                item: format!("package list {} {}", kind_name(row.kind), row.fingerprint),
                path: None,
                problem,
            });
            damaged_lists.push((row.kind, row.fingerprint));
        }
    }
    if repair {
        report.repaired = remove_damaged(cache, &damaged_files, &damaged_lists)?;
    }
    Ok(report)
}

fn zip_problem(
    cache: &Cache,
    zip: &crate::cache::ZipRecord,
    path: &Path,
    deep: bool,
) -> Result<Option<String>, CacheError> {
    let bytes = match check::sha256_of_file(path) {
        Ok(found) => check::check_bytes((zip.sha256, zip.size), found).map_err(|d| d.to_string()),
        Err(error) => Err(format!("cannot read it: {error}")),
    };
    if let Err(problem) = bytes {
        return Ok(Some(problem));
    }
    let preimage = rows::zip_preimage(cache, &zip.digest)?.unwrap_or_default();
    let entries = match check::check_preimage(&zip.digest, &preimage) {
        Ok(entries) => entries,
        Err(problem) => return Ok(Some(problem)),
    };
    if deep {
        if let Err(damage) = check::check_content(path, &entries) {
            return Ok(Some(damage.to_string()));
        }
    }
    Ok(None)
}

fn remove_damaged(
    cache: &mut Cache,
    files: &[std::path::PathBuf],
    lists: &[(PackageKind, blake3::Hash)],
) -> Result<u64, CacheError> {
    let mut removed = 0;
    for file in files {
        match fs_err::remove_file(file) {
            Ok(()) => removed += 1,
            Err(error) => warn!("cannot remove the damaged zip: {error}"),
        }
    }
    let path = cache.path().to_path_buf();
    let transaction = cache.transaction()?;
    for (kind, fingerprint) in lists {
        transaction
            .execute(
                "DELETE FROM packages WHERE kind = ?1 AND fingerprint = ?2",
                rusqlite::params![kind_name(*kind), fingerprint.as_bytes()],
            )
            .map_err(|source| CacheError::from_sqlite(&path, source))?;
        removed += 1;
    }
    transaction
        .commit()
        .map_err(|source| CacheError::from_sqlite(&path, source))?;
    Ok(removed)
}

/// What `lamina cache gc` kept and dropped.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    pub zips_kept: u64,
    pub zips_removed: u64,
    pub packages_kept: u64,
    pub packages_removed: u64,
    /// Files removed from `.lamina/build/`, dropped zips' and unrecorded ones.
    pub files_removed: u64,
    pub bytes_freed: u64,
    /// Nothing was removed: this is what would have been.
    pub dry_run: bool,
}

/// Drops what no recent build and no published version needs. See the module documentation.
pub fn gc(
    cache: &mut Cache,
    build_dir: &Path,
    keep_last: usize,
    published: &HashSet<[u8; 32]>,
    dry_run: bool,
) -> Result<GcReport, CacheError> {
    let zips = rows::zip_rows(cache)?;
    let kept = kept_digests(cache, keep_last)?;
    let (keep, drop): (Vec<_>, Vec<_>) = zips.into_iter().partition(|row| {
        kept.contains(&row.record.digest) || published.contains(&row.record.sha256)
    });
    let (keep_lists, drop_lists) = partition_lists(cache, &keep, keep_last)?;

    let mut report = GcReport {
        zips_kept: keep.len() as u64,
        zips_removed: drop.len() as u64,
        packages_kept: keep_lists as u64,
        packages_removed: drop_lists.len() as u64,
        dry_run,
        ..GcReport::default()
    };
    let names = |rows: &[rows::ZipRow]| -> HashSet<String> {
        rows.iter()
            .map(|row| row.record.file_name.clone())
            .collect()
    };
    let files = unneeded_files(build_dir, &names(&keep), &names(&drop));
    if dry_run {
        report.files_removed = files.len() as u64;
        report.bytes_freed = files.iter().map(|(_, size)| size).sum();
        return Ok(report);
    }

    let revived = delete_rows(cache, &drop, &drop_lists)?;
    report.zips_removed -= revived.len() as u64;
    report.zips_kept += revived.len() as u64;
    let mut failed = Vec::new();
    let files = files.into_iter().filter(|(file, _)| {
        let name = file.file_name().map(|name| name.to_string_lossy());
        !name.is_some_and(|name| revived.contains(name.as_ref()))
    });
    for (file, size) in files {
        match fs_err::remove_file(&file) {
            Ok(()) => {
                report.files_removed += 1;
                report.bytes_freed += size;
            }
            // Another gc got there first.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => failed.push(error),
        }
    }
    if let Some(first) = failed.first() {
        warn!(
            "could not remove {} file(s) no build needs from {} ({first}); the next gc tries again",
            failed.len(),
            build_dir.display()
        );
    }
    // The rows and files are gone whatever happens here: a failure to compact (a long
    // transaction of another process, a full disk) is left for the next gc.
    if let Err(error) = compact(cache) {
        warn!("the cache file was not compacted, the next gc tries again: {error}");
    }
    info!(
        zips = report.zips_removed,
        packages = report.packages_removed,
        bytes = report.bytes_freed,
        "cache collected"
    );
    Ok(report)
}

/// Gives the free pages of the database file back to the file system, if it has any. SQLite
/// reuses free pages but never shrinks the file by itself, and each dropped zip frees its
/// preimage (about 7 MB for a layer of 75,000 files), so without this a cache that builds often
/// only grows. `VACUUM` rewrites the database from its live pages in one transaction (a process
/// killed during it leaves the cache as it was); in WAL mode the rewrite lands in the WAL, and
/// the checkpoint that follows moves it into the file and truncates both.
fn compact(cache: &Cache) -> Result<(), CacheError> {
    let connection = cache.connection();
    let sql_error = |source| cache.sql_error(source);
    let free: i64 = connection
        .query_row("PRAGMA freelist_count", [], |row| row.get(0))
        .map_err(sql_error)?;
    if free == 0 {
        return Ok(());
    }
    let before = fs_err::metadata(cache.path()).map(|m| m.len()).ok();
    connection.execute_batch("VACUUM").map_err(sql_error)?;
    // Busy (another process is reading) only postpones the truncation to a later checkpoint.
    let busy: i64 = connection
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))
        .map_err(sql_error)?;
    let after = fs_err::metadata(cache.path()).map(|m| m.len()).ok();
    debug!(free, ?before, ?after, busy, "cache file compacted");
    Ok(())
}

/// The digests of each owner's `keep_last` most recent builds, and of every owner's last build.
fn kept_digests(cache: &Cache, keep_last: usize) -> Result<HashSet<Digest>, CacheError> {
    let mut kept: HashSet<Digest> = rows::current_builds(cache)?
        .into_iter()
        .map(|(_, digest)| digest)
        .collect();
    let mut per_owner: HashMap<String, usize> = HashMap::new();
    for (owner, digest) in rows::history(cache)? {
        let count = per_owner.entry(owner).or_default();
        if *count < keep_last {
            kept.insert(digest);
            *count += 1;
        }
    }
    Ok(kept)
}

/// How many package lists stay, and the (kind, fingerprint) of those that go.
fn partition_lists(
    cache: &Cache,
    kept_zips: &[rows::ZipRow],
    keep_last: usize,
) -> Result<(usize, Vec<(PackageKind, blake3::Hash)>), CacheError> {
    let mut manifests: HashSet<blake3::Hash> = HashSet::new();
    for row in kept_zips {
        let preimage = rows::zip_preimage(cache, &row.record.digest)?.unwrap_or_default();
        let Ok(entries) = check::check_preimage(&row.record.digest, &preimage) else {
            continue;
        };
        let package_jsons = entries.into_iter().filter(|entry| {
            entry.kind == EntryKind::File
                && (entry.path == "package.json" || entry.path.ends_with("/package.json"))
        });
        manifests.extend(package_jsons.map(|entry| entry.content_hash));
    }
    let oldest_kept = kept_zips
        .iter()
        .map(|row| row.last_used_at)
        .min()
        .unwrap_or(i64::MIN);
    debug!(
        manifests = manifests.len(),
        keep_last, "package lists in kept zips"
    );

    let mut kept = 0;
    let mut dropped = Vec::new();
    for row in rows::package_rows(cache)? {
        let needed = match row.kind {
            PackageKind::Node => manifests.contains(&row.fingerprint),
            PackageKind::Python => row.last_used_at >= oldest_kept,
        };
        match needed {
            true => kept += 1,
            false => dropped.push((row.kind, row.fingerprint)),
        }
    }
    Ok((kept, dropped))
}

/// How long a temporary file, or a zip no row names, in the build folder must have gone
/// unwritten before garbage collection takes it for the leftover of a process that was killed.
pub const STALE_TEMP: Duration = Duration::from_secs(3600);

/// Files in `build_dir` that gc removes, with their sizes: the zips of `dropped` rows, and zips
/// no row names and temporary files once they are stale. A zip no row names may be one a
/// running build has just renamed into place and is about to record, so a young one stays.
fn unneeded_files(
    build_dir: &Path,
    kept: &HashSet<String>,
    dropped: &HashSet<String>,
) -> Vec<(std::path::PathBuf, u64)> {
    let Ok(listing) = fs_err::read_dir(build_dir) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for entry in listing.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_temp = name.starts_with(".lamina-tmp-");
        if !is_temp && (!name.ends_with(".zip") || kept.contains(&name)) {
            continue;
        }
        match entry.metadata() {
            Ok(metadata)
                if metadata.is_file() && (dropped.contains(&name) || is_stale(&metadata)) =>
            {
                files.push((entry.path(), metadata.len()));
            }
            _ => {}
        }
    }
    files
}

fn is_stale(metadata: &std::fs::Metadata) -> bool {
    let age = metadata.modified().ok().and_then(|m| m.elapsed().ok());
    age.is_some_and(|age| age >= STALE_TEMP)
}

/// Deletes the rows of `zips` and `lists` in one transaction, and returns the file names of the
/// zips it kept after all: gc chose them before taking the write lock, and a build running
/// meanwhile may have made one of them an owner's current build again.
fn delete_rows(
    cache: &mut Cache,
    zips: &[rows::ZipRow],
    lists: &[(PackageKind, blake3::Hash)],
) -> Result<HashSet<String>, CacheError> {
    let path = cache.path().to_path_buf();
    let transaction = cache.transaction()?;
    let mut revived = HashSet::new();
    let mut write = || -> rusqlite::Result<()> {
        for row in zips {
            let digest = &row.record.digest.0;
            let deleted = transaction.execute(
                "DELETE FROM zips WHERE digest = ?1 AND digest NOT IN (SELECT digest FROM builds)",
                [digest],
            )?;
            if deleted == 0 {
                revived.insert(row.record.file_name.clone());
                continue;
            }
            transaction.execute("DELETE FROM build_history WHERE digest = ?1", [digest])?;
        }
        for (kind, fingerprint) in lists {
            transaction.execute(
                "DELETE FROM packages WHERE kind = ?1 AND fingerprint = ?2",
                rusqlite::params![kind_name(*kind), fingerprint.as_bytes()],
            )?;
        }
        Ok(())
    };
    write()
        .and_then(|()| transaction.commit())
        .map_err(|source| CacheError::from_sqlite(&path, source))?;
    Ok(revived)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{BuildUpdate, Owner, ZipRecord};
    use crate::digest::{self, Entry};

    fn zip_for(content: &[u8]) -> (ZipRecord, Vec<u8>) {
        let size = content.len() as u64;
        let entries = [Entry::file("a.txt", 0o644, size, blake3::hash(content))];
        let preimage = digest::preimage(&entries, crate::pack::FORMAT_LABEL);
        let digest = digest::digest_of_preimage(&preimage);
        let record = ZipRecord {
            digest,
            sha256: *blake3::hash(content).as_bytes(),
            size: 100,
            entries: 1,
            unzipped_bytes: size,
            file_name: format!("{}.zip", digest.to_hex()),
        };
        (record, preimage)
    }

    #[test]
    fn a_zip_a_build_made_current_after_gc_chose_it_keeps_its_row() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = Cache::open(&dir.path().join("cache.db")).unwrap();
        let owner = Owner::Layer("shared".into());
        let (old, new) = (zip_for(b"old"), zip_for(b"new"));
        for zip in [&old, &new] {
            let update = BuildUpdate {
                zip: Some(zip.clone()),
                ..BuildUpdate::default()
            };
            cache.commit_build(&owner, update).unwrap();
        }

        // As if gc had chosen both before the build that made `new` current committed.
        let planned = rows::zip_rows(&cache).unwrap();
        assert_eq!(planned.len(), 2);
        let kept = delete_rows(&mut cache, &planned, &[]).unwrap();

        assert_eq!(kept, HashSet::from([new.0.file_name.clone()]));
        let left: Vec<Digest> = rows::zip_rows(&cache)
            .unwrap()
            .into_iter()
            .map(|row| row.record.digest)
            .collect();
        assert_eq!(left, [new.0.digest]);
    }
}
