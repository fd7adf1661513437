//! Where a shared cache keeps its objects: a flat namespace of keys, each holding bytes that are
//! written whole or not at all.
//!
//! [`ObjectStore`] is the little the shared cache needs from S3 (or from a folder): read an
//! object, ask whether one exists, and write one with a single request. It promises nothing about
//! the content; every check of what is read lives in the layer above ([`super::RemoteCache`]),
//! so that a store cannot make a damaged object look whole.
//!
//! [`DirStore`] keeps the objects as files below a folder (a shared drive, or tests that run
//! without the AWS SDK); each is written to a temporary file and renamed into place, which gives
//! the same all-or-nothing visibility as one S3 PutObject.

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A failed request to a store. Missing objects are not errors: the calls answer `None` or
/// `false` for them.
#[derive(Debug, thiserror::Error)]
#[error("{action} `{key}` on {store} failed: {detail}")]
pub struct StoreError {
    /// What was attempted, as the user would name the permission: `s3:GetObject`, `read`.
    pub action: &'static str,
    pub key: String,
    /// The store, as [`ObjectStore::describe`] names it.
    pub store: String,
    pub detail: String,
}

/// A flat key-value store of immutable-by-convention objects. See the module documentation.
///
/// Keys are `/`-separated relative paths built by the shared cache (never from user input);
/// implementations may prefix them.
pub trait ObjectStore: Send + Sync + fmt::Debug {
    /// How messages name the store: `s3://bucket/prefix`, `file:///srv/cache`.
    fn describe(&self) -> String;

    /// Copies the whole object into `sink` and returns its size, or `None` when there is no object
    /// under `key`. On an error, `sink` may hold part of the object.
    fn get(&self, key: &str, sink: &mut dyn Write) -> Result<Option<u64>, StoreError>;

    /// Whether an object exists under `key`.
    fn exists(&self, key: &str) -> Result<bool, StoreError>;

    /// Writes the file at `path` (of `size` bytes) under `key` with one request, replacing any
    /// object there. Readers see the old object or the new one, never a part.
    fn put_file(&self, key: &str, path: &Path, size: u64) -> Result<(), StoreError>;

    /// Writes `bytes` under `key` with one request, as [`ObjectStore::put_file`] does.
    fn put_bytes(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError>;

    /// Reads several small objects, in the order of `keys`. Stores with a network in between
    /// send the requests concurrently; the default reads one after the other.
    fn get_many(&self, keys: &[String]) -> Vec<Result<Option<Vec<u8>>, StoreError>> {
        keys.iter()
            .map(|key| {
                let mut bytes = Vec::new();
                self.get(key, &mut bytes).map(|found| found.map(|_| bytes))
            })
            .collect()
    }

    /// Asks whether each of `keys` exists, in their order; concurrently where that helps, as
    /// [`ObjectStore::get_many`] does.
    fn exists_many(&self, keys: &[String]) -> Vec<Result<bool, StoreError>> {
        keys.iter().map(|key| self.exists(key)).collect()
    }
}

/// Objects as files below a folder. See the module documentation.
#[derive(Debug, Clone)]
pub struct DirStore {
    root: PathBuf,
}

impl DirStore {
    /// A store in `root`, which is created on the first write.
    pub fn new(root: impl Into<PathBuf>) -> DirStore {
        DirStore { root: root.into() }
    }

    fn path(&self, key: &str) -> PathBuf {
        debug_assert!(
            key.split('/')
                .all(|part| !part.is_empty() && part != "." && part != ".."),
            "keys are relative paths without `.` or `..`: {key}"
        );
        self.root.join(key)
    }

    fn error(&self, action: &'static str, key: &str, error: io::Error) -> StoreError {
        StoreError {
            action,
            key: key.to_owned(),
            store: self.describe(),
            detail: error.to_string(),
        }
    }
}

impl ObjectStore for DirStore {
    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }

    fn get(&self, key: &str, sink: &mut dyn Write) -> Result<Option<u64>, StoreError> {
        let mut file = match fs_err::File::open(self.path(key)) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(self.error("read", key, error)),
        };
        io::copy(&mut file, sink)
            .map(Some)
            .map_err(|error| self.error("read", key, error))
    }

    fn exists(&self, key: &str) -> Result<bool, StoreError> {
        match fs_err::metadata(self.path(key)) {
            Ok(metadata) => Ok(metadata.is_file()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(self.error("stat", key, error)),
        }
    }

    fn put_file(&self, key: &str, path: &Path, _size: u64) -> Result<(), StoreError> {
        crate::atomic::write_with(&self.path(key), |dest| {
            io::copy(&mut fs_err::File::open(path)?, dest).map(drop)
        })
        .map_err(|error| self.error("write", key, error))
    }

    fn put_bytes(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        crate::atomic::write(&self.path(key), bytes)
            .map_err(|error| self.error("write", key, error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_store_round_trips_and_reports_missing_objects() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore::new(dir.path().join("shared"));
        assert!(!store.exists("zips/ab/x.zip").unwrap());
        assert_eq!(store.get("zips/ab/x.zip", &mut Vec::new()).unwrap(), None);

        store.put_bytes("zips/ab/x.zip", b"hello").unwrap();
        let mut read = Vec::new();
        assert_eq!(store.get("zips/ab/x.zip", &mut read).unwrap(), Some(5));
        assert_eq!(read, b"hello");
        assert!(store.exists("zips/ab/x.zip").unwrap());

        let source = dir.path().join("source");
        std::fs::write(&source, b"replaced").unwrap();
        store.put_file("zips/ab/x.zip", &source, 8).unwrap();
        let mut read = Vec::new();
        store.get("zips/ab/x.zip", &mut read).unwrap();
        assert_eq!(read, b"replaced");
    }
}
