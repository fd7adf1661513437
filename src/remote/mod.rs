//! The cache beyond this checkout: a shared cache (S3, or a folder) that machines read and feed,
//! the export file that carries the portable cache to another machine, and the upkeep commands
//! (`lamina cache stats`, `verify`, `gc`).
//!
//! # What moves between machines
//!
//! Only content-keyed data, which means the same thing on every machine: built zips by content
//! digest (with their SHA-256, sizes and entry list) and package file lists by fingerprint. Stat
//! data (inodes, ctimes, mtimes), the owner's last build and anything holding an absolute path
//! stay where they are. A machine that receives a zip or a list believes nothing about it until
//! [`check`] has verified it against its key; what fails is dropped with a warning, and the
//! content is built locally as if it had never been offered.
//!
//! # The shared cache
//!
//! [`RemoteCache`] keeps, below its prefix:
//!
//! | key                                     | object                                          |
//! |-----------------------------------------|-------------------------------------------------|
//! | `zips/<d0d1>/<digest>.zip`              | the zip, as built                               |
//! | `zips/<d0d1>/<digest>.json`             | its record: SHA-256, size, entry count, sizes   |
//! | `packages/<kind>/<f0f1>/<fingerprint>.list` | a package's file list, framed with a checksum |
//!
//! `<d0d1>` and `<f0f1>` are the first two hex digits of the key, which spreads objects over 256
//! key prefixes (S3 scales request rates per prefix). The exact bytes are in `cache-format.md`,
//! section "Portable cache and remote cache".
//!
//! **Write order.** A record vouches for its zip, and for the package lists of the build that
//! wrote it: a writer puts the package lists first, then the zip, then the record, each with one
//! request carrying the complete object. So an object that exists is whole, and a record never
//! names a zip or a list that was not written before it. A reader that finds a record may
//! therefore skip uploading the lists of that build.
//!
//! **Reads verify.** A record must parse and name its own digest; the zip must have the recorded
//! size and SHA-256 and hold exactly the entries of the digest (every file's blake3); a list must
//! match its checksum and, for a node package, hold the `package.json` whose hash is its
//! fingerprint. Anything else is a miss, counted as `damaged` and warned about; the engine then
//! builds the content itself, and a read-write cache overwrites the damaged objects with it.
//!
//! **Concurrent writers.** Two machines that build the same digest write the same bytes under the
//! same keys (zips are reproducible); whichever PUT lands last wins, and each PUT replaces a whole
//! object with a whole object, so readers see one complete version or the other. Nothing is
//! read, modified and written back, so there is nothing to lose in a race.
//!
//! **Modes.** `read-only` (laptops) never writes; `read-write` (CI) writes what it built and
//! what the remote lacks. Objects this machine has written or read are remembered in the cache
//! (`remote_objects`), so a warm build sends no request at all.
//!
//! **Failures are misses.** A remote that cannot be reached, refuses, or answers nonsense costs
//! time, never a build: the first error is warned about, the remote is left alone for the rest
//! of the run, and everything is built locally.

pub mod check;
mod objects;
pub mod portable;
mod rows;
#[cfg(feature = "aws")]
pub mod s3;
pub mod store;
pub mod upkeep;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::cache::{Cache, ZipRecord};
use crate::digest::{Digest, Entry};
use crate::manifest::{CacheConfig, CacheMode};
use crate::scan::{PackageDir, PackageKind};
use check::HashingWriter;
pub use objects::{
    frame_list, list_key, record_key, unframe_list, zip_key, LIST_FORMAT, RECORD_FORMAT,
};
use objects::{parse_record, ZipObject};
pub use rows::published_code_sha256s;
use store::{ObjectStore, StoreError};

/// Overrides `[cache] remote` of lamina.toml: `s3://BUCKET/PREFIX`, `file:///PATH`, or `off`.
pub const REMOTE_ENV: &str = "LAMINA_REMOTE_CACHE";

/// Overrides `[cache] mode` of lamina.toml: `read-write` or `read-only`.
pub const MODE_ENV: &str = "LAMINA_REMOTE_CACHE_MODE";

/// Errors in configuring a shared cache. Errors in using one are never returned: they are
/// warned about and turned into misses.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error(
        "`{value}` (from {origin}) is not a remote cache address; use `s3://BUCKET/PREFIX`, \
         `file:///PATH` (a shared folder) or `off`"
    )]
    BadAddress { value: String, origin: &'static str },
    #[error("`{value}` (from {MODE_ENV}) is not a cache mode; use `read-write` or `read-only`")]
    BadMode { value: String },
    #[error(
        "the remote cache `{address}` is on S3, and this lamina was built without AWS support; \
         build it with the `aws` feature, or unset {REMOTE_ENV} and `[cache] remote`"
    )]
    NoAws { address: String },
    #[cfg(feature = "aws")]
    #[error(transparent)]
    S3(#[from] s3::S3SetupError),
}

/// Where a shared cache lives, as written in lamina.toml or [`REMOTE_ENV`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    S3 { bucket: String, prefix: String },
    Folder(PathBuf),
}

impl Address {
    /// Reads `s3://BUCKET[/PREFIX]` or `file:///ABSOLUTE/PATH`; `origin` names where the text
    /// came from, for the message.
    pub fn parse(text: &str, origin: &'static str) -> Result<Address, RemoteError> {
        let bad = || RemoteError::BadAddress {
            value: text.to_owned(),
            origin,
        };
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad());
            }
            let prefix = prefix.trim_matches('/').to_owned();
            return Ok(Address::S3 {
                bucket: bucket.to_owned(),
                prefix,
            });
        }
        match text.strip_prefix("file://") {
            Some(path) if path.starts_with('/') => Ok(Address::Folder(PathBuf::from(path))),
            _ => Err(bad()),
        }
    }
}

/// What a shared cache did in this run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteCounters {
    /// Zips found, verified and used instead of packing.
    pub zip_hits: u64,
    pub zip_misses: u64,
    /// Package lists found, verified and used instead of walking the package.
    pub list_hits: u64,
    pub list_misses: u64,
    /// Objects that did not verify (each warned about, then treated as a miss).
    pub damaged: u64,
    /// Requests that failed; after the first, the remote is not asked again in this run.
    pub errors: u64,
    pub zips_stored: u64,
    pub lists_stored: u64,
    pub bytes_downloaded: u64,
    pub bytes_uploaded: u64,
}

/// A shared cache: see the module documentation.
#[derive(Debug)]
pub struct RemoteCache {
    store: Box<dyn ObjectStore>,
    mode: CacheMode,
    /// The store's name, which also keys what this machine knows of it in `remote_objects`.
    location: String,
    state: Mutex<RunState>,
}

/// What one run learned about the remote.
#[derive(Debug, Default)]
struct RunState {
    counters: RemoteCounters,
    /// Set by the first failed request: the remote is not asked again in this run.
    failed: bool,
    /// Record keys whose objects did not verify: written again, without asking, once rebuilt.
    damaged: HashSet<String>,
    /// Keys read and verified in this run: the remote has them, so offering them needs no
    /// request.
    seen: HashSet<String>,
}

impl RemoteCache {
    /// A shared cache on `store`, used in `mode`.
    pub fn new(store: Box<dyn ObjectStore>, mode: CacheMode) -> RemoteCache {
        let location = store.describe();
        RemoteCache {
            store,
            mode,
            location,
            state: Mutex::new(RunState::default()),
        }
    }

    /// The shared cache the project asks for: [`REMOTE_ENV`] and [`MODE_ENV`] when set, else
    /// `[cache]` of lamina.toml; `None` when neither names one (or the variable says `off`).
    /// `aws_region` (from `[target.aws]`) is used for S3 when the AWS configuration chain has
    /// no region.
    pub fn from_config(
        config: &CacheConfig,
        aws_region: Option<&str>,
    ) -> Result<Option<RemoteCache>, RemoteError> {
        let from_env = std::env::var(REMOTE_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty());
        let (text, origin) = match (from_env, &config.remote) {
            (Some(text), _) if text.trim() == "off" => return Ok(None),
            (Some(text), _) => (text, REMOTE_ENV),
            (None, Some(text)) => (text.clone(), "`[cache] remote` in lamina.toml"),
            (None, None) => return Ok(None),
        };
        let mode = match std::env::var(MODE_ENV) {
            Ok(value) if value == "read-write" => CacheMode::ReadWrite,
            Ok(value) if value == "read-only" => CacheMode::ReadOnly,
            Ok(value) if !value.is_empty() => return Err(RemoteError::BadMode { value }),
            _ => config.mode,
        };
        let store = open_store(Address::parse(text.trim(), origin)?, aws_region)?;
        info!(remote = %store.describe(), ?mode, "using a shared cache");
        Ok(Some(RemoteCache::new(store, mode)))
    }

    /// How messages name the shared cache.
    pub fn location(&self) -> &str {
        &self.location
    }

    pub fn mode(&self) -> CacheMode {
        self.mode
    }

    /// What the shared cache did so far in this run.
    pub fn counters(&self) -> RemoteCounters {
        self.lock().counters.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RunState> {
        // A panic while holding the lock leaves only counters behind; they are still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn is_usable(&self) -> bool {
        !self.lock().failed
    }

    fn count(&self, update: impl FnOnce(&mut RemoteCounters)) {
        update(&mut self.lock().counters);
    }

    /// Turns a failed request into a miss: warns once, and leaves the remote alone from now on.
    fn failed(&self, error: &StoreError) {
        let mut state = self.lock();
        state.counters.errors += 1;
        if !state.failed {
            state.failed = true;
            warn!(
                "the shared cache {} cannot be used ({error}); building without it for the \
                 rest of this run",
                self.location
            );
        }
    }

    /// Notes an object that did not verify, and says so.
    fn damaged(&self, record_key: &str, what: &str, reason: &str) {
        let mut state = self.lock();
        state.counters.damaged += 1;
        state.damaged.insert(record_key.to_owned());
        warn!(
            "the shared cache {} holds a damaged {what}: {reason}; ignoring it and building \
             locally",
            self.location
        );
    }

    /// The zip of `digest` from the shared cache, placed in `build_dir` as `<digest>.zip` after
    /// it verified against `entries` (the entries the digest was computed from); `None` on a
    /// miss, a damaged object or a failed request.
    pub fn fetch_zip(
        &self,
        build_dir: &Path,
        digest: &Digest,
        entries: &[Entry],
    ) -> Option<ZipRecord> {
        if !self.is_usable() {
            return None;
        }
        let found = self.try_fetch_zip(build_dir, digest, entries);
        match &found {
            Some(zip) => {
                self.lock().seen.insert(record_key(digest));
                let bytes = zip.size;
                info!(digest = %digest.short(), bytes, "zip taken from the shared cache");
                self.count(|c| {
                    c.zip_hits += 1;
                    c.bytes_downloaded += zip.size;
                });
            }
            None => self.count(|c| c.zip_misses += 1),
        }
        found
    }

    fn try_fetch_zip(
        &self,
        build_dir: &Path,
        digest: &Digest,
        entries: &[Entry],
    ) -> Option<ZipRecord> {
        let record_key = record_key(digest);
        let mut bytes = Vec::new();
        match self.store.get(&record_key, &mut bytes) {
            Ok(Some(_)) => {}
            Ok(None) => {
                debug!(digest = %digest.short(), "not in the shared cache");
                return None;
            }
            Err(error) => {
                self.failed(&error);
                return None;
            }
        }
        let record = match parse_record(&bytes, digest, entries) {
            Ok(Some(record)) => record,
            Ok(None) => return None,
            Err(reason) => {
                self.damaged(&record_key, &format!("record `{record_key}`"), &reason);
                return None;
            }
        };
        self.download_zip(build_dir, digest, entries, &record)
    }

    /// Downloads the zip to a temporary file in `build_dir`, checks it, and renames it into place.
    fn download_zip(
        &self,
        build_dir: &Path,
        digest: &Digest,
        entries: &[Entry],
        record: &ZipRecord,
    ) -> Option<ZipRecord> {
        let zip_key = zip_key(digest);
        let record_key = record_key(digest);
        let temp = match temp_file(build_dir) {
            Ok(temp) => temp,
            Err(error) => {
                warn!(
                    "cannot download from the shared cache into `{}`: {error}",
                    build_dir.display()
                );
                return None;
            }
        };
        let mut writer = HashingWriter::new(std::io::BufWriter::new(temp.as_file()));
        let read = self.store.get(&zip_key, &mut writer);
        let flushed = std::io::Write::flush(&mut writer);
        let (sha256, size, _) = writer.finish();
        match read {
            Ok(Some(_)) => {}
            Ok(None) => {
                let reason = "its record names a zip that is not there";
                self.damaged(&record_key, &format!("zip `{zip_key}`"), reason);
                return None;
            }
            Err(error) => {
                self.failed(&error);
                return None;
            }
        }
        if let Err(error) = flushed {
            warn!(
                "cannot write a download from the shared cache into `{}`: {error}",
                build_dir.display()
            );
            return None;
        }
        let checked = check::check_bytes((record.sha256, record.size), (sha256, size))
            .and_then(|()| check::check_content(temp.path(), entries));
        if let Err(damage) = checked {
            self.damaged(
                &record_key,
                &format!("zip `{zip_key}`"),
                &damage.to_string(),
            );
            return None;
        }
        let dest = build_dir.join(&record.file_name);
        if let Err(error) = temp.persist(&dest) {
            warn!(
                "cannot rename a download from the shared cache to `{}`: {}",
                dest.display(),
                error.error
            );
            return None;
        }
        Some(record.clone())
    }

    /// The file lists of packages the local cache lacks, from the shared cache, verified; in
    /// the order of `wanted`, `None` for each miss. The requests go out concurrently.
    pub fn fetch_package_lists(
        &self,
        wanted: &[(PackageKind, blake3::Hash)],
    ) -> Vec<Option<Vec<Entry>>> {
        if wanted.is_empty() || !self.is_usable() {
            return vec![None; wanted.len()];
        }
        let keys: Vec<String> = wanted
            .iter()
            .map(|(kind, fp)| list_key(*kind, fp))
            .collect();
        let results = self.store.get_many(&keys);
        let mut lists = Vec::with_capacity(wanted.len());
        for (((kind, fingerprint), key), result) in wanted.iter().zip(&keys).zip(results) {
            let list = match result {
                Ok(Some(bytes)) => {
                    let size = bytes.len() as u64;
                    self.count(|c| c.bytes_downloaded += size);
                    match unframe_list(&bytes)
                        .and_then(|list| check::check_package_list(*kind, fingerprint, list))
                    {
                        Ok(entries) => {
                            self.lock().seen.insert(key.clone());
                            Some(entries)
                        }
                        Err(reason) => {
                            self.damaged(key, &format!("package list `{key}`"), &reason);
                            None
                        }
                    }
                }
                Ok(None) => None,
                Err(error) => {
                    self.failed(&error);
                    None
                }
            };
            self.count(|c| match list.is_some() {
                true => c.list_hits += 1,
                false => c.list_misses += 1,
            });
            lists.push(list);
        }
        lists
    }

    /// Gives the shared cache what one build produced, in read-write mode: the zip, and first the
    /// package lists of its packages (see "Write order" in the module documentation). Does
    /// nothing when the remote is known to have the zip's record already. Failures are warned
    /// about, never returned: the local build is complete either way.
    pub fn offer(
        &self,
        cache: &Cache,
        build_dir: &Path,
        zip: &ZipRecord,
        packages: &[(PackageKind, blake3::Hash)],
    ) {
        if self.mode != CacheMode::ReadWrite || !self.is_usable() {
            return;
        }
        let record_key = record_key(&zip.digest);
        let is_damaged = self.lock().damaged.contains(&record_key);
        if !is_damaged && self.knows(cache, &record_key) {
            return;
        }
        if let Err(error) = self.store_build(cache, build_dir, zip, packages, is_damaged) {
            self.failed(&error);
        }
    }

    /// Whether `key` is known to exist remotely: seen in this run, remembered in the cache, or
    /// found by asking.
    fn knows(&self, cache: &Cache, key: &str) -> bool {
        if self.is_remembered(cache, key) {
            return true;
        }
        match self.store.exists(key) {
            Ok(true) => {
                self.remember(cache, key);
                true
            }
            Ok(false) => false,
            Err(error) => {
                self.failed(&error);
                true
            }
        }
    }

    /// Whether `key` was seen in this run or is remembered in the cache; asks nobody. What was
    /// seen is remembered from now on, so the next run need not ask either.
    fn is_remembered(&self, cache: &Cache, key: &str) -> bool {
        if self.lock().seen.contains(key) {
            self.remember(cache, key);
            return true;
        }
        rows::is_known(cache, &self.location, key).unwrap_or_else(|error| {
            debug!(%error, "cannot read what is known of the shared cache");
            false
        })
    }

    fn remember(&self, cache: &Cache, key: &str) {
        self.lock().seen.insert(key.to_owned());
        if let Err(error) = rows::mark_known(cache, &self.location, key) {
            debug!(%error, "cannot remember what the shared cache holds");
        }
    }

    fn store_build(
        &self,
        cache: &Cache,
        build_dir: &Path,
        zip: &ZipRecord,
        packages: &[(PackageKind, blake3::Hash)],
        overwrite: bool,
    ) -> Result<(), StoreError> {
        self.store_package_lists(cache, packages)?;
        let path = build_dir.join(&zip.file_name);
        match check::sha256_of_file(&path) {
            Ok(found) if check::check_bytes((zip.sha256, zip.size), found).is_ok() => {}
            Ok(_) | Err(_) => {
                warn!(
                    "the built zip `{}` does not match its record; not sharing it",
                    path.display()
                );
                return Ok(());
            }
        }
        self.store_zip(zip, &path)?;
        self.remember(cache, &record_key(&zip.digest));
        if overwrite {
            self.lock().damaged.remove(&record_key(&zip.digest));
            info!(digest = %zip.digest.short(), "replaced a damaged zip in the shared cache");
        }
        Ok(())
    }

    /// Puts a zip and then its record, each with one request. Public so that tests can race
    /// two writers; the engine goes through [`RemoteCache::offer`].
    pub fn store_zip(&self, zip: &ZipRecord, path: &Path) -> Result<(), StoreError> {
        let record = ZipObject {
            format: RECORD_FORMAT,
            digest: zip.digest,
            pack_format: crate::pack::FORMAT_LABEL.to_owned(),
            sha256: crate::deploy::sha256_hex(&zip.sha256),
            size: zip.size,
            entries: zip.entries,
            unzipped_bytes: zip.unzipped_bytes,
        };
        let json = serde_json::to_vec_pretty(&record).expect("a record serialises");
        self.store.put_file(&zip_key(&zip.digest), path, zip.size)?;
        self.store.put_bytes(&record_key(&zip.digest), &json)?;
        info!(digest = %zip.digest.short(), bytes = zip.size, "zip stored in the shared cache");
        self.count(|c| {
            c.zips_stored += 1;
            c.bytes_uploaded += zip.size + json.len() as u64;
        });
        Ok(())
    }

    /// Puts the lists of `packages` that the remote lacks (asking about those this machine does
    /// not know of, all at once).
    fn store_package_lists(
        &self,
        cache: &Cache,
        packages: &[(PackageKind, blake3::Hash)],
    ) -> Result<(), StoreError> {
        let unknown: Vec<(PackageKind, blake3::Hash, String)> = packages
            .iter()
            .map(|(kind, fp)| (*kind, *fp, list_key(*kind, fp)))
            .filter(|(_, _, key)| !self.is_remembered(cache, key))
            .collect();
        let keys: Vec<String> = unknown.iter().map(|(_, _, key)| key.clone()).collect();
        let present = self.store.exists_many(&keys);
        for ((kind, fingerprint, key), present) in unknown.iter().zip(present) {
            if !present? {
                let Ok(Some(list)) = rows::package_list(cache, *kind, fingerprint) else {
                    continue;
                };
                let framed = frame_list(&list);
                self.store.put_bytes(key, &framed)?;
                self.count(|c| {
                    c.lists_stored += 1;
                    c.bytes_uploaded += framed.len() as u64;
                });
            }
            self.remember(cache, key);
        }
        Ok(())
    }
}

fn open_store(
    address: Address,
    aws_region: Option<&str>,
) -> Result<Box<dyn ObjectStore>, RemoteError> {
    match address {
        Address::Folder(path) => Ok(Box::new(store::DirStore::new(path))),
        #[cfg(feature = "aws")]
        Address::S3 { bucket, prefix } => {
            let options = crate::deploy::aws::ConnectOptions::default();
            Ok(Box::new(s3::S3Store::connect(
                &bucket, &prefix, aws_region, &options,
            )?))
        }
        #[cfg(not(feature = "aws"))]
        Address::S3 { bucket, prefix } => {
            let _ = aws_region;
            Err(RemoteError::NoAws {
                address: format!("s3://{bucket}/{prefix}"),
            })
        }
    }
}

/// A temporary file in `dir` (created if missing), removed unless persisted.
fn temp_file(dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    fs_err::create_dir_all(dir)?;
    tempfile::NamedTempFile::with_prefix_in(".lamina-tmp-", dir)
}

/// The (kind, fingerprint) of every node package among `packages`, taken from the hash of its
/// `package.json` in `entries` (sorted zip entries of the build). Python lists are keyed by
/// their lock file and are not learned by stat-mode builds, so they are not offered.
pub fn node_fingerprints(
    packages: &[PackageDir],
    entries: &[Entry],
) -> Vec<(PackageKind, blake3::Hash)> {
    packages
        .iter()
        .filter(|package| package.kind == PackageKind::Node)
        .filter_map(|package| {
            let manifest = format!("{}/package.json", package.zip_dir);
            let index = entries
                .binary_search_by(|entry| entry.path.as_bytes().cmp(manifest.as_bytes()))
                .ok()?;
            Some((PackageKind::Node, entries[index].content_hash))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_bad_ones_are_named() {
        assert_eq!(
            Address::parse("s3://bucket/team/cache/", "test").unwrap(),
            Address::S3 {
                bucket: "bucket".into(),
                prefix: "team/cache".into()
            }
        );
        assert_eq!(
            Address::parse("s3://bucket", "test").unwrap(),
            Address::S3 {
                bucket: "bucket".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            Address::parse("file:///srv/cache", "test").unwrap(),
            Address::Folder(PathBuf::from("/srv/cache"))
        );
        for bad in [
            "s3://",
            "s3:///prefix",
            "file://relative",
            "http://x",
            "bucket",
        ] {
            let error = Address::parse(bad, "test").unwrap_err().to_string();
            assert!(error.contains(&format!("`{bad}`")), "{error}");
        }
    }
}
