//! Stage 2: what lamina has learned, kept in SQLite at `.lamina/cache.db`.
//!
//! The cache lets a run skip work an earlier run did: it remembers the blake3 hash of every file
//! with the stat data it had when hashed, the file list of every node package and Python install
//! by fingerprint, and every zip built, with its entry list. It never decides what changed on
//! disk (that is [`freshness`], judged by the engine) and never touches the zips themselves.
//!
//! # Tables
//!
//! Every table and column is specified in `cache-format.md` (section "Cache"); in short:
//!
//! | table      | key                  | holds                                            | scope    |
//! |------------|----------------------|--------------------------------------------------|----------|
//! | `files`    | owner, relative path | stat data, content hash, link target, scan clock | local    |
//! | `packages` | kind, fingerprint    | the package's entry list (digest preimage form)  | portable |
//! | `zips`     | content digest       | zip SHA-256, sizes, file name, entry list        | portable |
//! | `builds`   | owner                | the digest last built or reused                  | local    |
//! | `pushes`   | target, owner, digest| the version it was pushed as (`deploy::pushed`)  | local    |
//!
//! Machine-local tables hold stat data (inode, ctime, mtime) that means nothing on another
//! machine; portable tables are keyed by content alone, hold paths relative to a package or zip
//! root, and are what `lamina cache export` moves between machines.
//!
//! # When a cached hash is trusted
//!
//! Only when [`freshness`] says so: every stat field equal, and the file older than the scan
//! clock recorded with the row (the racy-clean rule, explained in `src/cache/freshness.rs` and in
//! `cache-format.md`).
//!
//! # Transactions and concurrency
//!
//! One [`Cache`] is one SQLite connection. The database runs in WAL mode: readers see the last
//! committed state and never block a writer, and a writer never blocks readers. Each build's
//! learning is written by [`Cache::commit_build`] in one immediate transaction, so a crash or an
//! error leaves the previous state whole, and a second lamina process waits (up to
//! [`BUSY_TIMEOUT`]) for the first one's commit instead of failing. `synchronous = NORMAL` can
//! lose the last commits on power loss but never corrupts the file; losing a cache commit only
//! costs the work of recomputing it.
//!
//! # Errors keep the data
//!
//! A file that is not a SQLite database, is damaged, or comes from a newer lamina is reported
//! with its path and left exactly as it is: the cache never deletes or recreates a database on
//! its own. Stored entry lists are checked against their digest (or their stored hash) when read,
//! so damage is an error, never wrong data.
//!
//! # Extending the cache
//!
//! Other modules keep their own tables here: they append a migration to
//! [`schema::MIGRATIONS`](self::schema) and use [`Cache::connection`] or [`Cache::transaction`],
//! turning SQLite errors into [`CacheError`]s that name the file with [`Cache::sql_error`].

mod commit;
pub(crate) use commit::store_package_list;
mod freshness;
pub(crate) mod schema;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction, TransactionBehavior};

use crate::digest::{self, Digest, Entry, PreimageError};
use crate::scan::{PackageKind, Stat};

pub use freshness::{freshness, scan_clock, StaleReason, CLOCK_FILE};

/// The schema version of a database that has received every migration of
/// [`schema::MIGRATIONS`](self::schema); kept in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = schema::MIGRATIONS.len() as i64;

/// How long a connection waits for another lamina process's write transaction before it gives
/// up. Commits take well under a second; the margin covers slow disks and many parallel jobs.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The label framing package entry lists, in the place of the pack format in a digest preimage.
/// It is not a pack format: the hash of a package list is never a zip digest.
pub const PACKAGE_LIST_LABEL: &str = "lamina-package-files";

/// Errors from the cache database.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot create the folder of the cache `{}`: {source}", .path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot open the cache `{}`: {source}", .path.display())]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },

    #[error(
        "`{}` is not a SQLite database; move it aside (lamina then starts an empty cache) or \
         restore it from a backup",
        .path.display()
    )]
    NotADatabase { path: PathBuf },

    #[error(
        "the cache `{}` is damaged ({source}); move it aside to start an empty cache (the \
         built zips are not affected), or try `sqlite3 <file> .recover` to rescue it",
        .path.display()
    )]
    Damaged {
        path: PathBuf,
        source: rusqlite::Error,
    },

    #[error(
        "the cache `{}` cannot be written; lamina needs write access to the file and \
         to its folder, where SQLite keeps `-wal` and `-shm` files beside it: check their \
         owner and permissions",
        .path.display()
    )]
    ReadOnly {
        path: PathBuf,
        source: rusqlite::Error,
    },

    #[error(
        "the disk holding the cache `{}` is full; nothing was written: free some \
         space (`lamina cache gc` removes old built zips) and run again",
        .path.display()
    )]
    DiskFull {
        path: PathBuf,
        source: rusqlite::Error,
    },

    #[error(
        "`{}` is a SQLite database of another program (application id {application_id:#x}), \
         not a lamina cache; check the path, or move the file aside",
        .path.display()
    )]
    ForeignDatabase { path: PathBuf, application_id: i64 },

    #[error(
        "the cache `{}` was written by a newer lamina (schema version {found}; this lamina knows \
         versions up to {known}); upgrade lamina, or move the file aside to start an empty cache",
        .path.display()
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },

    #[error(
        "the cache `{}` has schema version {found}, which no lamina writes; move it aside to \
         start an empty cache",
        .path.display()
    )]
    UnknownSchema { path: PathBuf, found: i64 },

    #[error(
        "the cache `{}` is locked by another process and stayed locked for {}s; wait for the \
         other lamina to finish, or stop it",
        .path.display(),
        BUSY_TIMEOUT.as_secs()
    )]
    Busy {
        path: PathBuf,
        source: rusqlite::Error,
    },

    #[error(
        "the cache `{}` holds a damaged `{table}` row for `{key}`: {reason}; move the cache \
         aside to start an empty one",
        .path.display()
    )]
    BadRow {
        path: PathBuf,
        table: &'static str,
        key: String,
        reason: String,
    },

    #[error(
        "the cache `{}` holds a damaged entry list for zip {digest}: {reason}; recording the \
         zip again replaces it, and moving the cache aside starts an empty one",
        .path.display()
    )]
    DamagedEntryList {
        path: PathBuf,
        digest: Digest,
        reason: String,
    },

    #[error(
        "the cache `{}` holds a damaged file list for {kind} package {fingerprint}: {reason}; \
         storing the list again replaces it, and moving the cache aside starts an empty one",
        .path.display()
    )]
    DamagedPackageList {
        path: PathBuf,
        kind: &'static str,
        fingerprint: String,
        reason: String,
    },

    #[error("cache operation on `{}` failed: {source}", .path.display())]
    Sql {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

impl CacheError {
    /// Classifies a SQLite error on the database at `path`, so that the common failures get
    /// their own message and hint.
    pub fn from_sqlite(path: &Path, source: rusqlite::Error) -> CacheError {
        use rusqlite::ErrorCode;

        let path = path.to_path_buf();
        match source.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => CacheError::NotADatabase { path },
            Some(ErrorCode::DatabaseCorrupt) => CacheError::Damaged { path, source },
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                CacheError::Busy { path, source }
            }
            Some(ErrorCode::ReadOnly) => CacheError::ReadOnly { path, source },
            Some(ErrorCode::DiskFull) => CacheError::DiskFull { path, source },
            _ => CacheError::Sql { path, source },
        }
    }
}

/// The owner of a set of file rows and builds: a layer or a function of the project.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    Layer(String),
    Function(String),
}

impl Owner {
    /// The form stored in the cache: `layer:NAME` or `function:NAME`.
    pub fn key(&self) -> String {
        match self {
            Owner::Layer(name) => format!("layer:{name}"),
            Owner::Function(name) => format!("function:{name}"),
        }
    }

    /// Reads the form written by [`Owner::key`].
    pub fn from_key(key: &str) -> Option<Owner> {
        match key.split_once(':')? {
            ("layer", name) => Some(Owner::Layer(name.to_string())),
            ("function", name) => Some(Owner::Function(name.to_string())),
            _ => None,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Owner::Layer(name) | Owner::Function(name) => name,
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Layer(name) => write!(f, "layer `{name}`"),
            Owner::Function(name) => write!(f, "function `{name}`"),
        }
    }
}

/// What the cache knows of one file (machine-local: stat data is only meaningful here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    pub stat: Stat,
    /// blake3 of the content (files) or zeros (folders, links).
    pub content_hash: blake3::Hash,
    pub link_target: Option<String>,
    /// The scan clock of the run that recorded this row: the row is trusted only when
    /// `stat.mtime_ns < clock_ns` (the racy-clean rule).
    pub clock_ns: i64,
}

/// A built zip (portable: keyed by digest, file named by digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipRecord {
    pub digest: Digest,
    pub sha256: [u8; 32],
    pub size: u64,
    pub entries: u64,
    pub unzipped_bytes: u64,
    /// File name inside `.lamina/build/`: a plain name, never a path.
    pub file_name: String,
}

/// Everything one build learned, written in one transaction.
#[derive(Debug, Default)]
pub struct BuildUpdate {
    /// Rows to insert or replace, keyed by path relative to the owner's root.
    pub upsert_files: Vec<(String, FileRecord)>,
    /// Rows whose files are gone.
    pub remove_files: Vec<String>,
    /// Package file lists learned in this build, by kind and fingerprint.
    pub packages: Vec<(PackageKind, blake3::Hash, PackageList)>,
    /// Packages whose cached lists this build reused: their `last_used_at` is refreshed so that
    /// garbage collection keeps them.
    pub used_packages: Vec<(PackageKind, blake3::Hash)>,
    /// A zip built (or found) for this owner, with its preimage (the entry list). The owner's
    /// build then points at it.
    pub zip: Option<(ZipRecord, Vec<u8>)>,
    /// The scan listing that produced this run's digest, to be remembered for the owner.
    pub listing: Option<ListingRecord>,
}

/// A scan listing's key and the digest it produced, remembered per owner and fingerprint mode
/// (table `listings`). The engine computes the key and decides when it may be recorded; the
/// cache only stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListingRecord {
    /// The fingerprint mode's name, `stat` or `manifests`.
    pub mode: &'static str,
    pub key: blake3::Hash,
    pub digest: Digest,
    /// Files and symlinks in the digest's entry list, for the run's stats.
    pub files: u64,
}

/// A package's file list (entries relative to the package folder), encoded as the cache stores
/// it. Lists are encoded as soon as they are made: in the `packages` column's form they take
/// about half the memory of the entries, and a cold build learns hundreds of them at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageList(pub(crate) Vec<u8>);

impl From<&[Entry]> for PackageList {
    /// Encodes `entries`, in any order.
    fn from(entries: &[Entry]) -> PackageList {
        PackageList(commit::encode_package_list(entries))
    }
}

impl From<Vec<Entry>> for PackageList {
    fn from(entries: Vec<Entry>) -> PackageList {
        PackageList::from(entries.as_slice())
    }
}

impl PackageList {
    /// The list with no entries, which no package has (its package.json is always one of its
    /// own files): stored under a fingerprint whose copies were seen with different files, so
    /// that manifests mode walks them instead of trusting either list. No other list replaces
    /// it in the cache, whether from a build, a shared cache or `cache import`.
    pub fn conflict() -> PackageList {
        PackageList::from(&[][..])
    }

    /// The blake3 of the encoded list, as the cache stores it beside the list.
    pub fn hash(&self) -> blake3::Hash {
        blake3::hash(&self.0)
    }
}

impl BuildUpdate {
    /// Whether the update holds nothing to write, so that [`Cache::commit_build`] can leave the
    /// database (and its write lock) alone.
    pub fn is_empty(&self) -> bool {
        self.upsert_files.is_empty()
            && self.remove_files.is_empty()
            && self.packages.is_empty()
            && self.used_packages.is_empty()
            && self.zip.is_none()
            && self.listing.is_none()
    }
}

/// An open cache database. See the module documentation for what it holds and guarantees.
pub struct Cache {
    connection: Connection,
    path: PathBuf,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// Opens the cache at `path`, creating it (and its folder) if missing and migrating it to
    /// the current schema.
    pub fn open(path: &Path) -> Result<Cache, CacheError> {
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            fs_err::create_dir_all(parent).map_err(|source| CacheError::CreateDir {
                path: path.to_path_buf(),
                source,
            })?;
        }
        let connection = Connection::open(path).map_err(|source| CacheError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let mut cache = Cache {
            connection,
            path: path.to_path_buf(),
        };
        cache.configure()?;
        schema::migrate(&mut cache.connection, path)?;
        tracing::debug!(path = %path.display(), "cache opened");
        Ok(cache)
    }

    fn configure(&self) -> Result<(), CacheError> {
        let connection = &self.connection;
        connection
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| self.sql_error(e))?;

        // The first statement that reads the file: a file that is not a database fails here.
        let mode: String = connection
            .pragma_update_and_check(None, "journal_mode", "wal", |row| row.get(0))
            .map_err(|e| self.sql_error(e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            // Some file systems (network mounts) cannot hold the WAL's shared memory.
            tracing::warn!(
                path = %self.path.display(),
                mode,
                "the cache cannot use WAL mode here; concurrent lamina runs will wait for each other"
            );
        }
        connection
            .execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(|e| self.sql_error(e))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, for modules that keep their own tables in the cache.
    pub fn connection(&self) -> &rusqlite::Connection {
        &self.connection
    }

    /// Starts an immediate (write-locked from the start) transaction. Immediate, because a
    /// deferred transaction that reads first cannot upgrade to a write while another process
    /// commits, and fails instead of waiting.
    pub fn transaction(&mut self) -> Result<Transaction<'_>, CacheError> {
        let path = &self.path;
        Transaction::new(&mut self.connection, TransactionBehavior::Immediate)
            .map_err(|source| CacheError::from_sqlite(path, source))
    }

    /// Wraps a SQLite error from this cache's connection in a [`CacheError`] naming the file.
    pub fn sql_error(&self, source: rusqlite::Error) -> CacheError {
        CacheError::from_sqlite(&self.path, source)
    }

    /// Every file row of `owner`, keyed by path relative to the owner's root, in one query.
    pub fn load_files(&self, owner: &Owner) -> Result<HashMap<String, FileRecord>, CacheError> {
        let key = owner.key();
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT path, size, mtime_ns, ctime_ns, inode, mode, content_hash, link_target,
                        clock_ns
                 FROM files WHERE owner = ?1",
            )
            .map_err(|e| self.sql_error(e))?;
        let mut rows = statement.query([&key]).map_err(|e| self.sql_error(e))?;

        // Collected first so that the map is allocated once at its final size: growing it row by
        // row rehashes every key several times, which measured as much as the query itself.
        let mut rows_read = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.sql_error(e))? {
            rows_read.push(self.file_row(&key, row)?);
        }
        let mut files = HashMap::with_capacity(rows_read.len());
        files.extend(rows_read);
        tracing::debug!(owner = %key, rows = files.len(), "file rows loaded");
        Ok(files)
    }

    fn file_row(&self, owner: &str, row: &Row<'_>) -> Result<(String, FileRecord), CacheError> {
        let bad = |reason: String| CacheError::BadRow {
            path: self.path.clone(),
            table: "files",
            key: owner.to_string(),
            reason,
        };
        let text = |index| match row.get_ref(index) {
            Ok(ValueRef::Text(bytes)) => std::str::from_utf8(bytes).map_err(|e| e.to_string()),
            Ok(other) => Err(format!(
                "column {index} holds {:?}, not text",
                other.data_type()
            )),
            Err(error) => Err(error.to_string()),
        };
        let int = |index| row.get::<_, i64>(index).map_err(|e| e.to_string());

        let path = text(0).map_err(&bad)?.to_string();
        let bad = |reason: String| bad(format!("`{path}`: {reason}"));
        let stat = Stat {
            size: int(1).map_err(bad)? as u64,
            mtime_ns: int(2).map_err(bad)?,
            ctime_ns: int(3).map_err(bad)?,
            inode: int(4).map_err(bad)? as u64,
            mode: int(5).map_err(bad)? as u32,
        };
        let content_hash = hash_column(row, 6).map_err(bad)?;
        let link_target = match row.get_ref(7) {
            Ok(ValueRef::Null) => None,
            _ => Some(text(7).map_err(bad)?.to_string()),
        };
        let clock_ns = int(8).map_err(bad)?;
        Ok((
            path,
            FileRecord {
                stat,
                content_hash,
                link_target,
                clock_ns,
            },
        ))
    }

    /// The cached entry list of a package, relative to its folder and sorted by path.
    pub fn package_files(
        &self,
        kind: PackageKind,
        fingerprint: &blake3::Hash,
    ) -> Result<Option<Vec<Entry>>, CacheError> {
        let stored = self
            .connection
            .prepare_cached(
                "SELECT entries, entries_hash FROM packages WHERE kind = ?1 AND fingerprint = ?2",
            )
            .and_then(|mut statement| {
                statement
                    .query_row(params![kind_name(kind), fingerprint.as_bytes()], |row| {
                        Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, Vec<u8>>(1)?))
                    })
                    .optional()
            })
            .map_err(|e| self.sql_error(e))?;
        let Some((entries, entries_hash)) = stored else {
            return Ok(None);
        };

        let damaged = |reason: String| CacheError::DamagedPackageList {
            path: self.path.clone(),
            kind: kind_name(kind),
            fingerprint: fingerprint.to_hex().to_string(),
            reason,
        };
        if blake3::hash(&entries).as_bytes().as_slice() != entries_hash {
            return Err(damaged("its hash does not match the stored one".into()));
        }
        let parsed = digest::parse_preimage(&entries).map_err(|e| damaged(e.to_string()))?;
        if parsed.pack_format != PACKAGE_LIST_LABEL {
            return Err(damaged(format!("it is framed as `{}`", parsed.pack_format)));
        }
        Ok(Some(parsed.entries))
    }

    /// Whether an entry list of the package is cached, as [`Cache::package_files`] would find
    /// it, for the cost of checking the list's hash without decoding its entries: a build asks
    /// this for every package it found (875 holding 75,000 entries in a large node layer).
    pub fn has_package_files(
        &self,
        kind: PackageKind,
        fingerprint: &blake3::Hash,
    ) -> Result<bool, CacheError> {
        let stored = self
            .connection
            .prepare_cached(
                "SELECT entries, entries_hash FROM packages WHERE kind = ?1 AND fingerprint = ?2",
            )
            .and_then(|mut statement| {
                statement
                    .query_row(params![kind_name(kind), fingerprint.as_bytes()], |row| {
                        let entries = blake3::hash(row.get_ref(0)?.as_blob()?);
                        Ok(entries.as_bytes().as_slice() == row.get_ref(1)?.as_blob()?)
                    })
                    .optional()
            })
            .map_err(|e| self.sql_error(e))?;
        match stored {
            None => Ok(false),
            Some(true) => Ok(true),
            Some(false) => Err(CacheError::DamagedPackageList {
                path: self.path.clone(),
                kind: kind_name(kind),
                fingerprint: fingerprint.to_hex().to_string(),
                reason: "its hash does not match the stored one".into(),
            }),
        }
    }

    /// The stored hash of every cached entry list of `kind`, by fingerprint, in one query that
    /// reads no list: what a build compares the lists it sees with. A list whose bytes no longer
    /// match its stored hash is found when it is read ([`Cache::package_files`]).
    pub fn package_list_hashes(
        &self,
        kind: PackageKind,
    ) -> Result<HashMap<[u8; 32], blake3::Hash>, CacheError> {
        let sql_error = |e| self.sql_error(e);
        let mut statement = (self.connection)
            .prepare_cached("SELECT fingerprint, entries_hash FROM packages WHERE kind = ?1")
            .map_err(sql_error)?;
        let rows = statement
            .query_map([kind_name(kind)], |row| {
                Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, Vec<u8>>(1)?))
            })
            .map_err(sql_error)?;
        let mut hashes = HashMap::new();
        for row in rows {
            let (fingerprint, hash) = row.map_err(sql_error)?;
            // A row of another length is not a list this version of lamina wrote: as if absent.
            if let (Ok(fingerprint), Ok(hash)) = (
                <[u8; 32]>::try_from(fingerprint),
                <[u8; 32]>::try_from(hash),
            ) {
                hashes.insert(fingerprint, blake3::Hash::from_bytes(hash));
            }
        }
        Ok(hashes)
    }

    /// The zip record of `digest`, if one was built.
    pub fn zip(&self, digest: &Digest) -> Result<Option<ZipRecord>, CacheError> {
        self.connection
            .prepare_cached(&format!("SELECT {ZIP_COLUMNS} FROM zips WHERE digest = ?1"))
            .and_then(|mut statement| statement.query_row([&digest.0], zip_record).optional())
            .map_err(|e| self.sql_error(e))
    }

    /// Whether the cache records a zip that no build of this checkout produced or reused: one
    /// imported from another machine (see `cache import`), which a build may find by its digest.
    pub fn holds_zips_built_elsewhere(&self) -> Result<bool, CacheError> {
        self.connection
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM zips
                 WHERE digest NOT IN (SELECT digest FROM build_history)
                   AND digest NOT IN (SELECT digest FROM builds))",
            )
            .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
            .map_err(|e| self.sql_error(e))
    }

    /// The zip most recently built or reused for `owner`.
    pub fn latest_build(&self, owner: &Owner) -> Result<Option<ZipRecord>, CacheError> {
        self.connection
            .prepare_cached(&format!(
                "SELECT {ZIP_COLUMNS} FROM builds JOIN zips ON zips.digest = builds.digest
                 WHERE builds.owner = ?1"
            ))
            .and_then(|mut statement| statement.query_row([owner.key()], zip_record).optional())
            .map_err(|e| self.sql_error(e))
    }

    /// The listing key and digest last recorded for `owner` in fingerprint mode `mode`.
    pub fn listing(
        &self,
        owner: &Owner,
        mode: &'static str,
    ) -> Result<Option<ListingRecord>, CacheError> {
        let stored: Option<([u8; 32], [u8; 32], i64)> = self
            .connection
            .prepare_cached(
                "SELECT listing_key, digest, files FROM listings WHERE owner = ?1 AND mode = ?2",
            )
            .and_then(|mut statement| {
                statement
                    .query_row(params![owner.key(), mode], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                    })
                    .optional()
            })
            .map_err(|e| self.sql_error(e))?;
        Ok(stored.map(|(key, digest, files)| ListingRecord {
            mode,
            key: blake3::Hash::from_bytes(key),
            digest: Digest(digest),
            files: files as u64,
        }))
    }

    /// The listing last recorded for `owner` in mode `mode`, with the snapshot stored for that
    /// same listing key: `None` when either is missing or the snapshot is of an older listing.
    /// The engine decides what a snapshot means (`src/scan/snapshot.rs`); the cache only keeps
    /// the bytes.
    pub fn listing_snapshot(
        &self,
        owner: &Owner,
        mode: &'static str,
    ) -> Result<Option<(ListingRecord, Vec<u8>)>, CacheError> {
        // A snapshot that is not a blob (an edited database) is as good as none.
        type Stored = ([u8; 32], [u8; 32], i64, Option<Vec<u8>>);
        let stored: Option<Stored> = self
            .connection
            .prepare_cached(
                "SELECT l.listing_key, l.digest, l.files, s.snapshot
                 FROM listings l JOIN listing_snapshots s
                   ON s.owner = l.owner AND s.mode = l.mode AND s.listing_key = l.listing_key
                 WHERE l.owner = ?1 AND l.mode = ?2",
            )
            .and_then(|mut statement| {
                statement
                    .query_row(params![owner.key(), mode], |row| {
                        let snapshot = row.get_ref(3)?.as_blob().ok().map(<[u8]>::to_vec);
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?, snapshot))
                    })
                    .optional()
            })
            .map_err(|e| self.sql_error(e))?;
        Ok(stored.and_then(|(key, digest, files, snapshot)| {
            let record = ListingRecord {
                mode,
                key: blake3::Hash::from_bytes(key),
                digest: Digest(digest),
                files: files as u64,
            };
            Some((record, snapshot?))
        }))
    }

    /// Stores `snapshot` as the one of the listing `key` recorded for `owner` in mode `mode`,
    /// replacing any older one.
    pub fn store_listing_snapshot(
        &mut self,
        owner: &Owner,
        mode: &'static str,
        key: &blake3::Hash,
        snapshot: &[u8],
    ) -> Result<(), CacheError> {
        self.connection
            .prepare_cached(
                "INSERT OR REPLACE INTO listing_snapshots (owner, mode, listing_key, snapshot)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut statement| {
                statement.execute(params![owner.key(), mode, key.as_bytes(), snapshot])
            })
            .map(|_| ())
            .map_err(|e| self.sql_error(e))
    }

    /// The entry list of a built zip, from its stored preimage, verified against the digest.
    pub fn zip_entries(&self, digest: &Digest) -> Result<Option<Vec<Entry>>, CacheError> {
        let preimage: Option<Vec<u8>> = self
            .connection
            .prepare_cached("SELECT preimage FROM zips WHERE digest = ?1")
            .and_then(|mut statement| {
                statement
                    .query_row([&digest.0], |row| row.get(0))
                    .optional()
            })
            .map_err(|e| self.sql_error(e))?;
        let Some(preimage) = preimage else {
            return Ok(None);
        };

        let damaged = |reason: String| CacheError::DamagedEntryList {
            path: self.path.clone(),
            digest: *digest,
            reason,
        };
        if digest::digest_of_preimage(&preimage) != *digest {
            return Err(damaged("it does not hash to the zip's digest".into()));
        }
        let parsed = digest::parse_preimage(&preimage)
            .map_err(|error: PreimageError| damaged(error.to_string()))?;
        Ok(Some(parsed.entries))
    }

    /// Writes everything `update` holds for `owner` in one transaction: file rows upserted and
    /// removed, package lists stored, the zip recorded and the owner's build pointed at it. On
    /// any error nothing of it is written. An empty update opens no transaction at all: a run
    /// that learned nothing leaves the database file untouched.
    pub fn commit_build(
        &mut self,
        owner: &Owner,
        mut update: BuildUpdate,
    ) -> Result<(), CacheError> {
        let key = owner.key();
        if update.is_empty() {
            tracing::debug!(owner = %key, "nothing learned: no cache transaction");
            return Ok(());
        }
        // In key order the rows go in at the right edge of the files table's B-tree. Callers
        // collect them in hash-map order, where every insert lands on a random page: a cold
        // build of a 75,000-file layer spent a fifth of its CPU time in SQLite missing its page
        // cache and splitting pages. Sorted before the write lock is taken.
        update.upsert_files.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        update.remove_files.sort_unstable();
        let now = unix_now();
        let path = self.path.clone();
        let transaction = self.transaction()?;
        commit::write_update(&transaction, &key, &update, now)
            .and_then(|()| transaction.commit())
            .map_err(|source| CacheError::from_sqlite(&path, source))?;
        tracing::debug!(
            owner = %key,
            upserted = update.upsert_files.len(),
            removed = update.remove_files.len(),
            packages = update.packages.len(),
            zip = ?update.zip.as_ref().map(|(zip, _)| zip.digest),
            "build committed to the cache"
        );
        Ok(())
    }
}

/// The columns [`zip_record`] reads, in its order.
const ZIP_COLUMNS: &str =
    "zips.digest, zips.sha256, zips.size, zips.entries, zips.unzipped_bytes, zips.file_name";

fn zip_record(row: &Row<'_>) -> rusqlite::Result<ZipRecord> {
    Ok(ZipRecord {
        digest: Digest(row.get(0)?),
        sha256: row.get(1)?,
        size: row.get::<_, i64>(2)? as u64,
        entries: row.get::<_, i64>(3)? as u64,
        unzipped_bytes: row.get::<_, i64>(4)? as u64,
        file_name: row.get(5)?,
    })
}

fn hash_column(row: &Row<'_>, index: usize) -> Result<blake3::Hash, String> {
    match row.get_ref(index) {
        Ok(ValueRef::Blob(bytes)) => <[u8; 32]>::try_from(bytes)
            .map(blake3::Hash::from_bytes)
            .map_err(|_| format!("column {index} holds {} bytes, not 32", bytes.len())),
        Ok(other) => Err(format!(
            "column {index} holds {:?}, not a blob",
            other.data_type()
        )),
        Err(error) => Err(error.to_string()),
    }
}

/// The stored name of a package kind.
fn kind_name(kind: PackageKind) -> &'static str {
    match kind {
        PackageKind::Node => "node",
        PackageKind::Python => "python",
    }
}

/// Seconds since the Unix epoch, for the bookkeeping columns that garbage collection reads.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_keys_round_trip() {
        for owner in [
            Owner::Layer("shared-libs_2".into()),
            Owner::Function("api".into()),
        ] {
            assert_eq!(Owner::from_key(&owner.key()), Some(owner));
        }
        assert_eq!(Owner::Layer("x".into()).key(), "layer:x");
        assert_eq!(Owner::Function("x".into()).key(), "function:x");
        assert_eq!(Owner::from_key("package:x"), None);
        assert_eq!(Owner::from_key("layer"), None);
    }

    #[test]
    fn package_lists_are_stored_sorted_by_path_bytes() {
        let hash = blake3::hash(b"x");
        let unsorted = vec![
            Entry::file("b.js", 0o644, 1, hash),
            Entry::dir("B"),
            Entry::dir("a"),
        ];
        let parsed = digest::parse_preimage(&commit::encode_package_list(&unsorted)).unwrap();
        let paths: Vec<_> = parsed
            .entries
            .iter()
            .map(|entry| entry.path.as_str())
            .collect();
        assert_eq!(paths, ["B", "a", "b.js"]);
        assert_eq!(parsed.pack_format, PACKAGE_LIST_LABEL);
    }

    #[test]
    fn sqlite_errors_are_classified() {
        let path = Path::new("cache.db");
        let error = |code| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
        let classify = |code| CacheError::from_sqlite(path, error(code));
        assert!(matches!(
            classify(rusqlite::ffi::SQLITE_NOTADB),
            CacheError::NotADatabase { .. }
        ));
        assert!(matches!(
            classify(rusqlite::ffi::SQLITE_CORRUPT),
            CacheError::Damaged { .. }
        ));
        assert!(matches!(
            classify(rusqlite::ffi::SQLITE_BUSY),
            CacheError::Busy { .. }
        ));
        assert!(matches!(
            classify(rusqlite::ffi::SQLITE_READONLY),
            CacheError::ReadOnly { .. }
        ));
        assert!(matches!(
            classify(rusqlite::ffi::SQLITE_FULL),
            CacheError::DiskFull { .. }
        ));
        assert!(matches!(
            classify(rusqlite::ffi::SQLITE_CONSTRAINT),
            CacheError::Sql { .. }
        ));
    }
}
