//! Stage 2: what lamina has learned, kept in SQLite at `.lamina/cache.db`.
//!
//! OWNER NOTE (skeleton): the signatures below are the contract the engine codes against; the
//! bodies are filled in by the cache work.

use std::collections::HashMap;
use std::path::Path;

use crate::digest::{Digest, Entry};
use crate::scan::{PackageKind, Stat};

/// Errors from the cache database.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("placeholder")]
    Placeholder,
}

/// The owner of a set of file rows and builds: a layer or a function of the project.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    Layer(String),
    Function(String),
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
    /// File name inside `.lamina/build/`.
    pub file_name: String,
}

/// Everything one build learned, written in one transaction.
#[derive(Debug, Default)]
pub struct BuildUpdate {
    /// Rows to insert or replace, keyed by path relative to the owner's root.
    pub upsert_files: Vec<(String, FileRecord)>,
    /// Rows whose files are gone.
    pub remove_files: Vec<String>,
    /// Package file lists learned in this build: (kind, fingerprint, entries relative to the
    /// package folder).
    pub packages: Vec<(PackageKind, blake3::Hash, Vec<Entry>)>,
    /// A zip built (or found) for this owner, with its preimage (the entry list).
    pub zip: Option<(ZipRecord, Vec<u8>)>,
}

pub struct Cache {
    _private: (),
}

impl Cache {
    pub fn open(path: &Path) -> Result<Cache, CacheError> {
        let _ = path;
        unimplemented!()
    }

    pub fn load_files(&self, owner: &Owner) -> Result<HashMap<String, FileRecord>, CacheError> {
        let _ = owner;
        unimplemented!()
    }

    pub fn package_files(
        &self,
        kind: PackageKind,
        fingerprint: &blake3::Hash,
    ) -> Result<Option<Vec<Entry>>, CacheError> {
        let _ = (kind, fingerprint);
        unimplemented!()
    }

    pub fn zip(&self, digest: &Digest) -> Result<Option<ZipRecord>, CacheError> {
        let _ = digest;
        unimplemented!()
    }

    /// The zip most recently built or reused for `owner`.
    pub fn latest_build(&self, owner: &Owner) -> Result<Option<ZipRecord>, CacheError> {
        let _ = owner;
        unimplemented!()
    }

    /// The entry list of a built zip, from its stored preimage.
    pub fn zip_entries(&self, digest: &Digest) -> Result<Option<Vec<Entry>>, CacheError> {
        let _ = digest;
        unimplemented!()
    }

    pub fn commit_build(&mut self, owner: &Owner, update: BuildUpdate) -> Result<(), CacheError> {
        let _ = (owner, update);
        unimplemented!()
    }
}
