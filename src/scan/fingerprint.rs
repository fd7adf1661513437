//! Fingerprints of dependency trees: what identifies a node package or a Python install, so that
//! manifests mode can reuse a cached file list without walking the tree.
//!
//! # Specification
//!
//! **Node package.** The fingerprint is the blake3 hash of the bytes of its `package.json`,
//! exactly as they are on disk. npm writes the resolved `version` (and, for installs from a
//! registry, `_resolved` and `_integrity` in older npm versions) into that file, so a different
//! release of the package gives a different fingerprint.
//!
//! **Python install.** The fingerprint is the blake3 hash of a preimage built from the `default`
//! section of `Pipfile.lock`. Integers are little-endian; `str` is a `u32` byte length followed
//! by that many UTF-8 bytes.
//!
//! ```text
//! preimage = "lamina-pipfile-lock" 0x00    (20 bytes, the domain tag)
//!            u32  PYTHON_LOCK_FORMAT        (1)
//!            u64  number of packages
//!            package*                       (sorted by the bytes of the name; names unique)
//!
//! package  = str  name                      (the key in `default`, A-Z lowered to a-z, all
//!                                            other bytes unchanged)
//!            str  version                   (the `version` string as written: "==2.31.0")
//!            u64  number of hashes
//!            str  hash*                     (the `hashes` strings, sorted by bytes, duplicates
//!                                            dropped; no `hashes` key means none)
//! ```
//!
//! Everything else in the lock is ignored: whitespace, key order, `_meta`, `develop`, and the
//! `index` and `markers` of each package. Two names that differ only in case are an error, as is
//! a package without a `version` string (a path, git or url dependency: nothing in the lock pins
//! its content). Changing anything above requires raising [`PYTHON_LOCK_FORMAT`], which turns
//! every cached Python file list into a miss.

use serde_json::Value;

/// The version of the Python lock preimage described in the module documentation.
pub const PYTHON_LOCK_FORMAT: u32 = 1;

const PYTHON_DOMAIN_TAG: &[u8] = b"lamina-pipfile-lock\0";

/// What is wrong with a `Pipfile.lock`. The caller adds the file's path.
#[derive(Debug, thiserror::Error)]
pub enum FingerprintError {
    #[error("Pipfile.lock is not valid JSON ({error}): regenerate it with `pipenv lock`")]
    NotJson {
        #[source]
        error: serde_json::Error,
    },

    #[error("Pipfile.lock has no `default` object: regenerate it with `pipenv lock`")]
    NoDefaultSection,

    #[error("package `{package}` in Pipfile.lock is not an object: regenerate the lock")]
    EntryNotObject { package: String },

    #[error("package `{package}` in Pipfile.lock: `{field}` must be {expected}")]
    BadField {
        package: String,
        field: &'static str,
        expected: &'static str,
    },

    #[error(
        "package `{package}` in Pipfile.lock has no `version`: a path, git or url dependency \
         cannot be fingerprinted, so pin it to a release or use --fingerprint stat"
    )]
    MissingVersion { package: String },

    #[error("Pipfile.lock lists `{package}` twice (names differ only in case)")]
    DuplicatePackage { package: String },
}

/// The fingerprint of a node package: the blake3 hash of its `package.json` bytes.
pub fn node_package_fingerprint(package_json: &[u8]) -> blake3::Hash {
    blake3::hash(package_json)
}

/// The fingerprint of a Python install: see the module documentation.
pub fn python_lock_fingerprint(pipfile_lock: &[u8]) -> Result<blake3::Hash, FingerprintError> {
    let lock: Value = serde_json::from_slice(pipfile_lock)
        .map_err(|error| FingerprintError::NotJson { error })?;
    let default = lock
        .get("default")
        .and_then(Value::as_object)
        .ok_or(FingerprintError::NoDefaultSection)?;

    let mut packages = default
        .iter()
        .map(|(name, entry)| LockedPackage::parse(name, entry))
        .collect::<Result<Vec<_>, _>>()?;
    packages.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    if let Some(pair) = packages
        .windows(2)
        .find(|pair| pair[0].name == pair[1].name)
    {
        return Err(FingerprintError::DuplicatePackage {
            package: pair[0].name.clone(),
        });
    }

    let mut hasher = blake3::Hasher::new();
    hasher.update(PYTHON_DOMAIN_TAG);
    hasher.update(&PYTHON_LOCK_FORMAT.to_le_bytes());
    hasher.update(&(packages.len() as u64).to_le_bytes());
    for package in &packages {
        package.write(&mut hasher);
    }
    Ok(hasher.finalize())
}

/// One entry of the `default` section, reduced to what the fingerprint covers.
struct LockedPackage<'a> {
    name: String,
    version: &'a str,
    hashes: Vec<&'a str>,
}

impl<'a> LockedPackage<'a> {
    fn parse(name: &str, entry: &'a Value) -> Result<LockedPackage<'a>, FingerprintError> {
        let bad_field = |field, expected| FingerprintError::BadField {
            package: name.to_string(),
            field,
            expected,
        };
        let entry = entry
            .as_object()
            .ok_or_else(|| bad_field("(entry)", "an object"))?;
        let version = match entry.get("version") {
            None => {
                return Err(FingerprintError::MissingVersion {
                    package: name.into(),
                })
            }
            Some(version) => version
                .as_str()
                .ok_or_else(|| bad_field("version", "a string"))?,
        };
        let mut hashes = match entry.get("hashes") {
            None => Vec::new(),
            Some(hashes) => hashes
                .as_array()
                .ok_or_else(|| bad_field("hashes", "a list of strings"))?
                .iter()
                .map(|hash| {
                    hash.as_str()
                        .ok_or_else(|| bad_field("hashes", "a list of strings"))
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        hashes.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        hashes.dedup();
        Ok(LockedPackage {
            name: name.to_ascii_lowercase(),
            version,
            hashes,
        })
    }

    fn write(&self, hasher: &mut blake3::Hasher) {
        write_str(hasher, &self.name);
        write_str(hasher, self.version);
        hasher.update(&(self.hashes.len() as u64).to_le_bytes());
        for hash in &self.hashes {
            write_str(hasher, hash);
        }
    }
}

fn write_str(hasher: &mut blake3::Hasher, text: &str) {
    let length = u32::try_from(text.len()).expect("a Pipfile.lock string longer than 4 GiB");
    hasher.update(&length.to_le_bytes());
    hasher.update(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"{
        "_meta": {"hash": {"sha256": "abc"}, "pipfile-spec": 6},
        "default": {
            "Requests": {
                "hashes": ["sha256:bbb", "sha256:aaa"],
                "index": "pypi",
                "version": "==2.31.0"
            },
            "idna": {
                "hashes": ["sha256:ccc"],
                "version": "==3.6",
                "markers": "python_version >= '3.5'"
            }
        },
        "develop": {"pytest": {"hashes": ["sha256:ddd"], "version": "==8.0.0"}}
    }"#;

    /// The same lock, reformatted, reordered, with another develop section and another `_meta`.
    const LOCK_REWRITTEN: &str = r#"{"develop":{},"default":{"idna":{"version":"==3.6",
        "hashes":["sha256:ccc","sha256:ccc"]},"Requests":{"version":"==2.31.0","index":"other",
        "hashes":["sha256:aaa","sha256:bbb"]}},"_meta":{}}"#;

    /// Computed by the reference implementation in cache-format.md (Python's `blake3` package)
    /// from [`LOCK`].
    const LOCK_FINGERPRINT: &str =
        "666953119aa41f464caf1aee518886fc379113ac5d54b56e11767406699ffd4c";

    fn fingerprint(lock: &str) -> blake3::Hash {
        python_lock_fingerprint(lock.as_bytes()).unwrap()
    }

    #[test]
    fn python_fingerprint_matches_the_reference_implementation() {
        assert_eq!(fingerprint(LOCK).to_hex().as_str(), LOCK_FINGERPRINT);
    }

    #[test]
    fn python_fingerprint_ignores_layout_order_develop_and_duplicate_hashes() {
        assert_eq!(fingerprint(LOCK), fingerprint(LOCK_REWRITTEN));
    }

    #[test]
    fn python_fingerprint_changes_with_a_version() {
        let changed = LOCK.replace("==3.6", "==3.7");
        assert_ne!(fingerprint(LOCK), fingerprint(&changed));
    }

    #[test]
    fn python_fingerprint_changes_with_a_hash() {
        let changed = LOCK.replace("sha256:ccc", "sha256:ccd");
        assert_ne!(fingerprint(LOCK), fingerprint(&changed));
    }

    #[test]
    fn python_fingerprint_changes_with_an_added_package() {
        let changed = LOCK.replace(
            r#""default": {"#,
            r#""default": {"six": {"version": "==1"},"#,
        );
        assert_ne!(fingerprint(LOCK), fingerprint(&changed));
    }

    #[test]
    fn package_without_version_is_refused() {
        let lock = r#"{"default": {"mine": {"editable": true, "path": "."}}}"#;
        let error = python_lock_fingerprint(lock.as_bytes()).unwrap_err();
        assert!(
            matches!(error, FingerprintError::MissingVersion { ref package } if package == "mine")
        );
    }

    #[test]
    fn names_that_differ_only_in_case_are_refused() {
        let lock = r#"{"default": {"Six": {"version": "==1"}, "six": {"version": "==1"}}}"#;
        let error = python_lock_fingerprint(lock.as_bytes()).unwrap_err();
        assert!(
            matches!(error, FingerprintError::DuplicatePackage { .. }),
            "{error}"
        );
    }

    #[test]
    fn malformed_locks_say_what_is_wrong() {
        let not_json = python_lock_fingerprint(b"{").unwrap_err();
        assert!(matches!(not_json, FingerprintError::NotJson { .. }));
        let no_default = python_lock_fingerprint(b"{\"develop\": {}}").unwrap_err();
        assert!(matches!(no_default, FingerprintError::NoDefaultSection));
        let bad_hashes = r#"{"default": {"a": {"version": "1", "hashes": "x"}}}"#;
        let error = python_lock_fingerprint(bad_hashes.as_bytes()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "package `a` in Pipfile.lock: `hashes` must be a list of strings"
        );
    }

    #[test]
    fn node_fingerprint_is_blake3_of_the_bytes() {
        let package_json = b"{\"name\": \"a\", \"version\": \"1.0.0\"}\n";
        assert_eq!(
            node_package_fingerprint(package_json),
            blake3::hash(package_json)
        );
    }
}
