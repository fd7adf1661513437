//! What lamina reads from a layer's Python manifests, and the fingerprints it compares.
//!
//! # Dependency fingerprint (format [`PYTHON_FINGERPRINT_FORMAT`])
//!
//! blake3 of the compact JSON of this object, keys in this order:
//!
//! ```text
//! {"domain":"lamina-python-install","format":1,"installer":"pip",
//!  "python":"3.12","platforms":["manylinux2014_x86_64",...],
//!  "source":{"kind":"pipfile_lock","packages":[{"name":…,"version":…,"hashes":[…],
//!            "markers":…|null},…]}}
//! ```
//!
//! Packages are sorted by name, names normalised as PEP 503 does (lower case, runs of `-_.` as
//! one `-`), versions without the `==`, hashes sorted. For requirements.txt, `source` is
//! `{"kind":"requirements","lines":[…]}`: its lines trimmed, without blank and comment lines.
//! The rest of Pipfile.lock (`_meta`, `develop`) does not count, so relocking the same versions
//! installs nothing.
//!
//! # The installed tree
//!
//! The tree identity is the blake3 of the sorted names of the `*.dist-info` folders in
//! site-packages, each followed by LF: it changes when a package is added, removed or replaced.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::install::{InstallError, Installer};

/// The version of the fingerprint preimage described in the module documentation.
pub const PYTHON_FINGERPRINT_FORMAT: u32 = 1;

/// One entry of Pipfile.lock's `default` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockedPackage {
    /// Normalised as PEP 503 does.
    pub name: String,
    /// Without the leading `==`.
    pub version: String,
    /// Sorted: `sha256:...`.
    pub hashes: Vec<String>,
    pub markers: Option<String>,
}

/// What lamina reads from a Pipfile.lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipfileLock {
    /// `3.12`, from `_meta.requires.python_version` (or the major and minor part of
    /// `python_full_version`).
    pub python_version: Option<String>,
    /// The `default` section, sorted by name.
    pub packages: Vec<LockedPackage>,
}

/// Parses Pipfile.lock text; `path` is only for errors.
pub fn parse_pipfile_lock(path: &Path, text: &str) -> Result<PipfileLock, InstallError> {
    let invalid = |message: String| InstallError::InvalidFile {
        path: path.to_path_buf(),
        what: "Pipfile.lock",
        message,
    };
    let lock: Value = serde_json::from_str(text).map_err(|error| invalid(error.to_string()))?;
    let default = match lock.get("default") {
        None => &serde_json::Map::new(),
        Some(section) => section
            .as_object()
            .ok_or_else(|| invalid("`default` is not an object".into()))?,
    };
    let mut packages = default
        .iter()
        .map(|(name, entry)| locked_package(path, name, entry))
        .collect::<Result<Vec<_>, _>>()?;
    packages.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(PipfileLock {
        python_version: lock_python_version(&lock),
        packages,
    })
}

fn locked_package(path: &Path, name: &str, entry: &Value) -> Result<LockedPackage, InstallError> {
    let unpinned = |detail: &str| InstallError::UnpinnedPackage {
        lock: path.to_path_buf(),
        package: name.to_owned(),
        detail: detail.to_owned(),
    };
    let declared = entry.get("version").and_then(Value::as_str);
    let version = declared
        .and_then(|version| version.strip_prefix("==="))
        .or_else(|| declared?.strip_prefix("=="))
        .ok_or_else(|| {
            unpinned("no `==` version; path, git and editable entries cannot be hashed")
        })?;
    let mut hashes: Vec<String> = entry
        .get("hashes")
        .and_then(Value::as_array)
        .map(|hashes| {
            hashes
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if hashes.is_empty() {
        return Err(unpinned("no hashes"));
    }
    hashes.sort();
    Ok(LockedPackage {
        name: normalize_name(name),
        version: version.to_owned(),
        hashes,
        markers: entry
            .get("markers")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

fn lock_python_version(lock: &Value) -> Option<String> {
    let requires = lock.get("_meta")?.get("requires")?;
    if let Some(version) = requires.get("python_version").and_then(Value::as_str) {
        return Some(version.to_owned());
    }
    let full = requires
        .get("python_full_version")
        .and_then(Value::as_str)?;
    Some(full.split('.').take(2).collect::<Vec<_>>().join("."))
}

/// A distribution name as PEP 503 normalises it.
pub fn normalize_name(name: &str) -> String {
    let mut normalized = String::with_capacity(name.len());
    for part in name.split(['-', '_', '.']).filter(|part| !part.is_empty()) {
        if !normalized.is_empty() {
            normalized.push('-');
        }
        normalized.push_str(&part.to_lowercase());
    }
    normalized
}

/// pip's requirement lines for exact, hashed installs: `name==version --hash=...`, markers
/// already evaluated and left out.
pub fn requirement_lines(packages: &[&LockedPackage]) -> String {
    let mut text = String::new();
    for package in packages {
        text.push_str(&format!("{}=={}", package.name, package.version));
        for hash in &package.hashes {
            text.push_str(&format!(" --hash={hash}"));
        }
        text.push('\n');
    }
    text
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceInput {
    PipfileLock { packages: Vec<LockedPackage> },
    Requirements { lines: Vec<String> },
}

impl SourceInput {
    /// Whether the source names no package at all, so that there is nothing for pip to do.
    pub fn is_empty(&self) -> bool {
        match self {
            SourceInput::PipfileLock { packages } => packages.is_empty(),
            SourceInput::Requirements { lines } => lines.is_empty(),
        }
    }
}

#[derive(Serialize)]
struct FingerprintInput<'a> {
    domain: &'static str,
    format: u32,
    installer: Installer,
    python: &'a str,
    platforms: &'a [String],
    source: &'a SourceInput,
}

pub fn dependency_fingerprint(
    python_version: &str,
    platforms: &[String],
    source: &SourceInput,
) -> String {
    let input = FingerprintInput {
        domain: "lamina-python-install",
        format: PYTHON_FINGERPRINT_FORMAT,
        installer: Installer::Pip,
        python: python_version,
        platforms,
        source,
    };
    blake3::hash(&serde_json::to_vec(&input).expect("plain data serialises"))
        .to_hex()
        .to_string()
}

pub fn requirements_input(text: &str) -> SourceInput {
    let lines = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect();
    SourceInput::Requirements { lines }
}

/// The names of the `*.dist-info` folders in `site_packages`, sorted.
fn dist_info_names(site_packages: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs_err::read_dir(site_packages)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".dist-info") {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Whether `site_packages` holds any installed distribution.
pub fn has_installed_packages(site_packages: &Path) -> io::Result<bool> {
    Ok(!dist_info_names(site_packages)?.is_empty())
}

/// Whether the distributions installed in `site_packages` are exactly those of `packages` (a
/// Pipfile.lock's default section), by normalised name and version, read from the
/// `<name>-<version>.dist-info` folder names. A package with markers may be missing: its markers
/// may not hold on Lambda.
pub fn tree_matches_lock(site_packages: &Path, packages: &[LockedPackage]) -> io::Result<bool> {
    let mut installed: BTreeMap<String, String> = dist_info_names(site_packages)?
        .iter()
        .map(|folder| {
            let stem = folder.trim_end_matches(".dist-info");
            match stem.split_once('-') {
                Some((name, version)) => (normalize_name(name), version.to_owned()),
                None => (stem.to_owned(), String::new()),
            }
        })
        .collect();
    for package in packages {
        match installed.remove(&package.name) {
            Some(version) if version == package.version => {}
            None if package.markers.is_some() => {}
            found => {
                tracing::debug!(package = %package.name, expected = %package.version, ?found,
                    "the installed packages do not match the lock");
                return Ok(false);
            }
        }
    }
    if let Some((name, version)) = installed.first_key_value() {
        tracing::debug!(%name, %version, "a package that the lock does not name is installed");
        return Ok(false);
    }
    Ok(true)
}

/// The identity of the packages in `site_packages`, as the module documentation specifies.
pub fn installed_tree_fingerprint(site_packages: &Path) -> io::Result<blake3::Hash> {
    let names = dist_info_names(site_packages)?;
    let mut hasher = blake3::Hasher::new();
    for name in &names {
        hasher.update(name.as_bytes()).update(b"\n");
    }
    Ok(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::install::pip::pip_platforms;
    use crate::install::Architecture;

    const LOCK: &str = r#"{
        "_meta": {"hash": {"sha256": "x"}, "pipfile-spec": 6,
                  "requires": {"python_version": "3.12"}, "sources": []},
        "default": {
            "Requests": {"hashes": ["sha256:bbb", "sha256:aaa"], "index": "pypi",
                         "markers": "python_version >= '3.8'", "version": "==2.31.0"},
            "zope.interface": {"hashes": ["sha256:ccc"], "version": "==6.0"}
        },
        "develop": {"pytest": {"hashes": ["sha256:ddd"], "version": "==8.0.0"}}
    }"#;

    fn plan_source(text: &str) -> SourceInput {
        let lock = parse_pipfile_lock(Path::new("Pipfile.lock"), text).unwrap();
        SourceInput::PipfileLock {
            packages: lock.packages,
        }
    }

    #[test]
    fn pipfile_lock_default_section_is_read_pinned_and_normalised() {
        let lock = parse_pipfile_lock(Path::new("Pipfile.lock"), LOCK).unwrap();
        assert_eq!(lock.python_version.as_deref(), Some("3.12"));
        let names: Vec<&str> = lock.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["requests", "zope-interface"]);
        assert_eq!(lock.packages[0].version, "2.31.0");
        assert_eq!(lock.packages[0].hashes, ["sha256:aaa", "sha256:bbb"]);

        let selected: Vec<&LockedPackage> = lock.packages.iter().collect();
        assert_eq!(
            requirement_lines(&selected),
            "requests==2.31.0 --hash=sha256:aaa --hash=sha256:bbb\n\
             zope-interface==6.0 --hash=sha256:ccc\n"
        );
    }

    #[test]
    fn unpinned_or_unhashed_entries_are_refused() {
        let git = r#"{"default": {"mylib": {"git": "https://x/y.git", "ref": "abc"}}}"#;
        let error = parse_pipfile_lock(Path::new("Pipfile.lock"), git)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`mylib`") && error.contains("no `==` version"),
            "{error}"
        );

        let unhashed = r#"{"default": {"six": {"version": "==1.16.0"}}}"#;
        let error = parse_pipfile_lock(Path::new("Pipfile.lock"), unhashed).unwrap_err();
        assert!(error.to_string().contains("no hashes"), "{error}");
    }

    #[test]
    fn fingerprint_ignores_develop_meta_and_order_but_not_versions() {
        let platforms = pip_platforms(&[Architecture::X86_64], "3.12");
        let base = dependency_fingerprint("3.12", &platforms, &plan_source(LOCK));

        let relocked = LOCK
            .replace(r#""sha256": "x""#, r#""sha256": "y""#)
            .replace("==8.0.0", "==8.1.0")
            .replace(
                r#"["sha256:bbb", "sha256:aaa"]"#,
                r#"["sha256:aaa", "sha256:bbb"]"#,
            );
        assert_eq!(
            dependency_fingerprint("3.12", &platforms, &plan_source(&relocked)),
            base
        );

        let bumped = LOCK.replace("==2.31.0", "==2.32.0");
        assert_ne!(
            dependency_fingerprint("3.12", &platforms, &plan_source(&bumped)),
            base
        );
        assert_ne!(
            dependency_fingerprint("3.13", &platforms, &plan_source(LOCK)),
            base
        );
        let arm = pip_platforms(&[Architecture::Arm64], "3.12");
        assert_ne!(
            dependency_fingerprint("3.12", &arm, &plan_source(LOCK)),
            base
        );
    }

    #[test]
    fn requirements_fingerprint_ignores_comments_and_blank_lines() {
        let platforms = pip_platforms(&[Architecture::X86_64], "3.12");
        let plain = requirements_input("requests==2.31.0\nboto3==1.34.0\n");
        let commented = requirements_input("# pinned\nrequests==2.31.0  \n\n  boto3==1.34.0\n");
        assert_eq!(
            dependency_fingerprint("3.12", &platforms, &plain),
            dependency_fingerprint("3.12", &platforms, &commented)
        );
    }

    #[test]
    fn names_are_normalised_as_pep_503_says() {
        assert_eq!(normalize_name("Zope.Interface"), "zope-interface");
        assert_eq!(normalize_name("typing__extensions"), "typing-extensions");
    }
}
