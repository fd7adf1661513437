//! How a layer's node dependencies are fingerprinted: the resolved set of the lock file, the
//! declarations of package.json, and the identity of the installed tree.
//!
//! # The resolved set
//!
//! An npm lock file is read as the set of packages it installs, one per install path:
//! `(path, name, version, integrity)`, sorted by path, where `path` is the folder relative to
//! `lib/nodejs` (`node_modules/a/node_modules/@s/b`). lockfileVersion 2 and 3 are read from their
//! `packages` map (the root entry `""` skipped; `name` from the entry, else the part of the key
//! after its last `node_modules/`); lockfileVersion 1 from its nested `dependencies` tree, where
//! an alias version `npm:real-name@1.2.3` becomes name `real-name`, version `1.2.3`, as version 2
//! writes it. Entries marked `dev` are left out (`--omit=dev` does not install them); everything
//! else of an entry (`resolved`, `license`, `engines`, ...) is ignored. For packages from a
//! registry the three versions give identical sets. Packages from `file:`, `git` or `link`
//! sources are written differently by version 1 (the source as the version) and version 2 (the
//! package's own version); their sets differ, which costs one install when a lock is upgraded.
//!
//! # Dependency fingerprint (format [`NODE_FINGERPRINT_FORMAT`])
//!
//! blake3 of the compact JSON of this object, keys in this order:
//!
//! ```text
//! {"domain":"lamina-node-install","format":1,
//!  "installer":"npm",                      npm, yarn or pnpm
//!  "platform":"linux-x64",                 linux-x64, linux-arm64, or linux for both
//!  "declarations":{"dependencies":"…",…},  see below
//!  "lock":{"kind":"resolved",
//!          "packages":[{"path":…,"name":…,"version":…,"integrity":…|null},…]}}
//! ```
//!
//! `declarations` maps each of package.json's `dependencies`, `optionalDependencies`,
//! `peerDependencies`, `bundleDependencies`, `bundledDependencies`, `overrides`, `resolutions`
//! and `pnpm` that is present to its canonical JSON text (object keys sorted by their bytes, no
//! whitespace, serde_json's string escaping); `devDependencies`, scripts and the rest do not
//! change what `--omit=dev` installs. `lock` is `{"kind":"resolved",…}` for an npm lock,
//! `{"kind":"bytes","blake3":"<hex>"}` for yarn.lock and pnpm-lock.yaml (their text, with CR LF
//! read as LF), and `{"kind":"none"}` without a lock file.
//!
//! # The installed tree
//!
//! The tree identity is the blake3 of one line `path NUL identity LF` per package folder below
//! `node_modules` (recursively through nested `node_modules`, into `@scope/` folders, skipping
//! names that start with `.`), sorted. `identity` is `link:<target>` for a symlink, `file` for a
//! plain file, `missing` for a folder without package.json, `unreadable:<blake3 hex>` for a
//! package.json that is not a JSON object, and otherwise `name@version` from package.json. It
//! notices packages added, removed or replaced, not edits to their files (the scan's business),
//! and never the keys starting with `_` that old npm versions filled with machine-specific values
//! (`_where`, `_resolved`, ...). [`package_json_fingerprint`] is the identity of a whole
//! package.json under the same rule, for callers that need more than name and version.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

use super::{node_cpu, NodeLock};
use crate::install::{Architecture, InstallError, Installer};

/// The version of the fingerprint preimage described in the module documentation.
pub const NODE_FINGERPRINT_FORMAT: u32 = 1;

/// The package.json fields that change what an install without dev dependencies produces.
const DECLARATION_FIELDS: [&str; 8] = [
    "dependencies",
    "optionalDependencies",
    "peerDependencies",
    "bundleDependencies",
    "bundledDependencies",
    "overrides",
    "resolutions",
    "pnpm",
];

/// One package an npm lock file installs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ResolvedPackage {
    /// Install folder relative to `lib/nodejs`: `node_modules/a/node_modules/@s/b`.
    pub path: String,
    pub name: String,
    pub version: String,
    pub integrity: Option<String>,
    /// Marked `optional` in the lock: npm leaves it out where it does not fit the platform. Not
    /// part of the fingerprint.
    #[serde(skip)]
    pub optional: bool,
}

/// The resolved set of an npm lock file of any lockfileVersion, sorted by path, without dev
/// dependencies.
pub fn resolved_packages(lock: &Value) -> Vec<ResolvedPackage> {
    let mut packages = Vec::new();
    let version = lock
        .get("lockfileVersion")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    let packages_map = lock
        .get("packages")
        .and_then(Value::as_object)
        .filter(|_| version >= 2);
    if let Some(map) = packages_map {
        from_packages_map(map, &mut packages);
    } else if let Some(tree) = lock.get("dependencies").and_then(Value::as_object) {
        from_dependencies_tree(tree, "", &mut packages);
    }
    packages.sort();
    packages
}

/// lockfileVersion 2 and 3: `"node_modules/a": {"version": ..., "integrity": ...}`.
fn from_packages_map(map: &Map<String, Value>, out: &mut Vec<ResolvedPackage>) {
    for (key, entry) in map {
        if key.is_empty() || is_true(entry, "dev") {
            continue;
        }
        let install_name = key
            .rsplit_once("node_modules/")
            .map_or(key.as_str(), |(_, name)| name);
        let version = match (text(entry, "version"), is_true(entry, "link")) {
            (Some(version), _) => version.to_owned(),
            (None, true) => format!("link:{}", text(entry, "resolved").unwrap_or_default()),
            (None, false) => String::new(),
        };
        out.push(ResolvedPackage {
            path: key.clone(),
            name: text(entry, "name").unwrap_or(install_name).to_owned(),
            version,
            integrity: text(entry, "integrity").map(str::to_owned),
            optional: is_true(entry, "optional"),
        });
    }
}

/// lockfileVersion 1: `"dependencies": {"a": {"version": ..., "dependencies": {...}}}`.
fn from_dependencies_tree(tree: &Map<String, Value>, parent: &str, out: &mut Vec<ResolvedPackage>) {
    for (install_name, entry) in tree {
        if is_true(entry, "dev") {
            continue;
        }
        let path = format!("{parent}node_modules/{install_name}");
        let (name, version) = split_alias(install_name, text(entry, "version").unwrap_or_default());
        out.push(ResolvedPackage {
            path: path.clone(),
            name: name.to_owned(),
            version: version.to_owned(),
            integrity: text(entry, "integrity").map(str::to_owned),
            optional: is_true(entry, "optional"),
        });
        if let Some(nested) = entry.get("dependencies").and_then(Value::as_object) {
            from_dependencies_tree(nested, &format!("{path}/"), out);
        }
    }
}

/// `npm:real-name@1.2.3` (lockfileVersion 1's alias) as `(real-name, 1.2.3)`. The real name may
/// be scoped, so the split is at the last `@`.
fn split_alias<'a>(install_name: &'a str, version: &'a str) -> (&'a str, &'a str) {
    match version
        .strip_prefix("npm:")
        .and_then(|spec| spec.rsplit_once('@'))
    {
        Some((name, version)) if !name.is_empty() => (name, version),
        _ => (install_name, version),
    }
}

fn text<'a>(entry: &'a Value, key: &str) -> Option<&'a str> {
    entry.get(key).and_then(Value::as_str)
}

fn is_true(entry: &Value, key: &str) -> bool {
    entry.get(key).and_then(Value::as_bool) == Some(true)
}

/// package.json's dependency declarations, each as canonical JSON text.
pub fn declarations(package_json: &Value) -> BTreeMap<String, String> {
    DECLARATION_FIELDS
        .iter()
        .filter_map(|field| Some((field.to_string(), canonical_json(package_json.get(field)?))))
        .collect()
}

/// `value` as JSON with object keys sorted by their bytes and no whitespace.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (index, key) in keys.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The identity of an installed package.json: its canonical JSON without the top-level keys
/// that start with `_`. Text that is not a JSON object is hashed as it is.
pub fn package_json_fingerprint(bytes: &[u8]) -> blake3::Hash {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(mut map)) => {
            map.retain(|key, _| !key.starts_with('_'));
            blake3::hash(canonical_json(&Value::Object(map)).as_bytes())
        }
        _ => blake3::hash(bytes),
    }
}

/// What the fingerprint takes from the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum LockInput {
    Resolved { packages: Vec<ResolvedPackage> },
    Bytes { blake3: String },
    None,
}

#[derive(Serialize)]
struct FingerprintInput<'a> {
    domain: &'static str,
    format: u32,
    installer: Installer,
    platform: &'a str,
    declarations: BTreeMap<String, String>,
    lock: &'a LockInput,
}

/// The dependency fingerprint specified in the module documentation.
pub fn dependency_fingerprint(
    installer: Installer,
    architectures: &[Architecture],
    package_json: &Value,
    lock: &LockInput,
) -> blake3::Hash {
    let input = FingerprintInput {
        domain: "lamina-node-install",
        format: NODE_FINGERPRINT_FORMAT,
        installer,
        platform: &platform_label(architectures),
        declarations: declarations(package_json),
        lock,
    };
    blake3::hash(&serde_json::to_vec(&input).expect("plain data serialises"))
}

/// The package.json fields whose entries are packages an install without dev dependencies adds.
const PACKAGE_FIELDS: [&str; 3] = ["dependencies", "optionalDependencies", "peerDependencies"];

/// Whether package.json declares any package that an install without dev dependencies adds.
pub fn declares_packages(package_json: &Value) -> bool {
    PACKAGE_FIELDS.iter().any(|field| {
        package_json
            .get(field)
            .and_then(Value::as_object)
            .is_some_and(|packages| !packages.is_empty())
    })
}

/// What lamina reads from `lib/nodejs` before deciding about an install.
#[derive(Debug, Clone)]
pub struct NodeInputs {
    /// The dependency fingerprint of the module documentation.
    pub fingerprint: blake3::Hash,
    /// Whether package.json declares a package or the lock resolves one. Without either, an
    /// install has nothing to add and no installer is needed.
    pub declares_packages: bool,
    /// The resolved set of an npm lock; `None` for yarn, pnpm and no lock file.
    pub resolved: Option<Vec<ResolvedPackage>>,
    /// Whether package.json declares what the npm lock's root package says it declares, as
    /// `npm ci` requires; `true` when the lock does not say (no root entry, not an npm lock).
    pub lock_in_sync: bool,
}

/// Reads package.json and the lock file of `node_dir`.
pub fn read_inputs(
    node_dir: &Path,
    lock: NodeLock,
    architectures: &[Architecture],
) -> Result<NodeInputs, InstallError> {
    let package_json = read_json(&node_dir.join("package.json"), "package.json")?;
    let mut lock_in_sync = true;
    let lock_input = match lock.file_name().map(|name| node_dir.join(name)) {
        None => LockInput::None,
        Some(path) if lock.is_npm() => {
            let lock = read_json(&path, "npm lock file")?;
            lock_in_sync = declares_as_lock_root(&package_json, &lock);
            LockInput::Resolved {
                packages: resolved_packages(&lock),
            }
        }
        Some(path) => {
            let text = fs_err::read_to_string(&path)?.replace("\r\n", "\n");
            LockInput::Bytes {
                blake3: blake3::hash(text.as_bytes()).to_hex().to_string(),
            }
        }
    };
    let fingerprint =
        dependency_fingerprint(lock.installer(), architectures, &package_json, &lock_input);
    let resolved = match lock_input {
        LockInput::Resolved { packages } => Some(packages),
        _ => None,
    };
    let lock_resolves_packages = resolved.as_ref().is_some_and(|set| !set.is_empty());
    Ok(NodeInputs {
        fingerprint,
        declares_packages: declares_packages(&package_json) || lock_resolves_packages,
        resolved,
        lock_in_sync,
    })
}

/// The dependency fields that an npm lock's root package (`packages[""]`) copies from
/// package.json.
const ROOT_DECLARATIONS: [&str; 4] = [
    "dependencies",
    "optionalDependencies",
    "devDependencies",
    "peerDependencies",
];

/// Whether package.json declares, field by field, what the lock's root package records; `true`
/// for a lock without a root package (lockfileVersion 1), which cannot be compared. npm records
/// a name that package.json has in both `dependencies` and `optionalDependencies` under the
/// latter alone, and so is it compared.
fn declares_as_lock_root(package_json: &Value, lock: &Value) -> bool {
    let Some(root) = lock.get("packages").and_then(|packages| packages.get("")) else {
        return true;
    };
    let field = |value: &Value, name: &str| {
        (value.get(name).and_then(Value::as_object).cloned()).unwrap_or_default()
    };
    let optional = field(package_json, "optionalDependencies");
    ROOT_DECLARATIONS.iter().all(|&name| {
        let mut declared = field(package_json, name);
        if name == "dependencies" {
            declared.retain(|dependency, _| !optional.contains_key(dependency));
        }
        declared == field(root, name)
    })
}

/// Reads package.json and the lock file of `node_dir` and computes their fingerprint.
pub fn read_fingerprint(
    node_dir: &Path,
    lock: NodeLock,
    architectures: &[Architecture],
) -> Result<blake3::Hash, InstallError> {
    Ok(read_inputs(node_dir, lock, architectures)?.fingerprint)
}

fn read_json(path: &Path, what: &'static str) -> Result<Value, InstallError> {
    let bytes = fs_err::read(path)?;
    serde_json::from_slice(&bytes).map_err(|error| InstallError::InvalidFile {
        path: path.to_path_buf(),
        what,
        message: error.to_string(),
    })
}

/// The identity of the tree below `node_modules`, as the module documentation specifies.
pub fn installed_tree_fingerprint(node_modules: &Path) -> io::Result<blake3::Hash> {
    let mut lines: Vec<String> = installed_packages(node_modules)?
        .into_iter()
        .map(|(path, identity)| format!("{path}\0{identity}\n"))
        .collect();
    lines.sort();
    let mut hasher = blake3::Hasher::new();
    for line in &lines {
        hasher.update(line.as_bytes());
    }
    Ok(hasher.finalize())
}

/// Every package folder below `node_modules` (path relative to it, as in the tree identity)
/// with its identity (`name@version`, `link:<target>`, ...).
pub fn installed_packages(node_modules: &Path) -> io::Result<BTreeMap<String, String>> {
    let mut packages = Vec::new();
    collect_packages(node_modules, "", &mut packages)?;
    Ok(packages.into_iter().collect())
}

/// Whether the packages below `node_modules` are exactly those of `resolved` (an npm lock's
/// resolved set), by install path, name and version, as npm checks its hidden lock file
/// against the tree. A package marked optional in the lock may be missing (npm skips those
/// that do not fit the platform); any package the lock does not name is a mismatch.
pub fn tree_matches_lock(node_modules: &Path, resolved: &[ResolvedPackage]) -> io::Result<bool> {
    let mut installed = installed_packages(node_modules)?;
    for package in resolved {
        let relative = package
            .path
            .strip_prefix("node_modules/")
            .unwrap_or(&package.path);
        let expected = format!("{}@{}", package.name, package.version);
        match installed.remove(relative) {
            Some(identity) if identity == expected => {}
            None if package.optional => {}
            found => {
                tracing::debug!(path = %package.path, %expected, ?found,
                    "the installed tree does not match the lock");
                return Ok(false);
            }
        }
    }
    if let Some((path, identity)) = installed.first_key_value() {
        tracing::debug!(%path, %identity, "a package that the lock does not name is installed");
        return Ok(false);
    }
    Ok(true)
}

fn collect_packages(
    node_modules: &Path,
    prefix: &str,
    out: &mut Vec<(String, String)>,
) -> io::Result<()> {
    for entry in fs_err::read_dir(node_modules)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if name.starts_with('@') && entry.file_type()?.is_dir() {
            for scoped in fs_err::read_dir(entry.path())? {
                let scoped = scoped?;
                let relative = format!("{prefix}{name}/{}", scoped.file_name().to_string_lossy());
                visit_package(&scoped.path(), &relative, out)?;
            }
        } else {
            visit_package(&entry.path(), &format!("{prefix}{name}"), out)?;
        }
    }
    Ok(())
}

fn visit_package(dir: &Path, relative: &str, out: &mut Vec<(String, String)>) -> io::Result<()> {
    let file_type = fs_err::symlink_metadata(dir)?.file_type();
    let identity = if file_type.is_symlink() {
        format!("link:{}", fs_err::read_link(dir)?.to_string_lossy())
    } else if !file_type.is_dir() {
        "file".to_owned()
    } else {
        match fs_err::read(dir.join("package.json")) {
            Ok(bytes) => package_identity(&bytes),
            Err(error) if error.kind() == io::ErrorKind::NotFound => "missing".to_owned(),
            Err(error) => return Err(error),
        }
    };
    out.push((relative.to_owned(), identity));

    let nested = dir.join("node_modules");
    if file_type.is_dir() && nested.is_dir() {
        collect_packages(&nested, &format!("{relative}/node_modules/"), out)?;
    }
    Ok(())
}

/// The two fields of an installed package.json that say which package it is.
#[derive(serde::Deserialize)]
struct PackageIdentity {
    name: Option<String>,
    version: Option<String>,
}

/// `name@version` of an installed package.json. Only these two fields are decoded (serde skips
/// the rest without building values, which matters across a thousand packages), so the `_`
/// keys of old npm versions cannot count. Text that is not a JSON object is hashed instead.
fn package_identity(bytes: &[u8]) -> String {
    match serde_json::from_slice::<PackageIdentity>(bytes) {
        Ok(identity) => format!(
            "{}@{}",
            identity.name.unwrap_or_default(),
            identity.version.unwrap_or_default()
        ),
        Err(_) => format!("unreadable:{}", blake3::hash(bytes).to_hex()),
    }
}

fn platform_label(architectures: &[Architecture]) -> String {
    match node_cpu(architectures) {
        Some(cpu) => format!("linux-{cpu}"),
        None => "linux".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn package_json_agrees_with_the_lock_root_as_npm_writes_it() {
        let package_json = json!({"dependencies": {"a": "1.0.0", "b": "^2"},
                                  "optionalDependencies": {"b": "^2", "c": "3.0.0"}});
        // npm files `b` under optionalDependencies alone.
        let lock = |root: Value| json!({"lockfileVersion": 3, "packages": {"": root}});
        let written = lock(json!({"name": "x", "dependencies": {"a": "1.0.0"},
                                  "optionalDependencies": {"b": "^2", "c": "3.0.0"}}));
        assert!(declares_as_lock_root(&package_json, &written));

        let missing = lock(json!({"dependencies": {"a": "1.0.0"},
                                  "optionalDependencies": {"b": "^2"}}));
        assert!(!declares_as_lock_root(&package_json, &missing));
        let other_spec = lock(json!({"dependencies": {"a": "1.0.1"},
                                     "optionalDependencies": {"b": "^2", "c": "3.0.0"}}));
        assert!(!declares_as_lock_root(&package_json, &other_spec));
        // lockfileVersion 1 has no root package to compare with.
        assert!(declares_as_lock_root(
            &package_json,
            &json!({"lockfileVersion": 1})
        ));
    }

    const X86: &[Architecture] = &[Architecture::X86_64];
    const ARM: &[Architecture] = &[Architecture::Arm64];

    /// One tree in the three shapes: `a` with a nested `b`, a scoped package, an alias, and a
    /// dev dependency that must not count.
    fn lock_v1() -> Value {
        json!({
            "name": "layer", "version": "1.0.0", "lockfileVersion": 1, "requires": true,
            "dependencies": {
                "a": {
                    "version": "1.0.0", "resolved": "https://registry.npmjs.org/a/-/a-1.0.0.tgz",
                    "integrity": "sha512-aaa", "requires": {"b": "^2.0.0"},
                    "dependencies": {
                        "b": {"version": "2.0.0", "integrity": "sha512-b2"}
                    }
                },
                "b": {"version": "1.0.0", "integrity": "sha512-b1"},
                "@scope/c": {"version": "3.1.0", "integrity": "sha512-ccc"},
                "string-width-cjs": {"version": "npm:string-width@4.2.3", "integrity": "sha512-sw"},
                "jest": {"version": "29.0.0", "integrity": "sha512-jest", "dev": true,
                    "dependencies": {"jest-dep": {"version": "1.0.0", "dev": true}}}
            }
        })
    }

    fn packages_map() -> Value {
        json!({
            "": {"name": "layer", "version": "1.0.0", "dependencies": {"a": "^1.0.0"}},
            "node_modules/a": {"version": "1.0.0", "integrity": "sha512-aaa", "license": "MIT",
                "resolved": "https://registry.npmjs.org/a/-/a-1.0.0.tgz"},
            "node_modules/a/node_modules/b": {"version": "2.0.0", "integrity": "sha512-b2"},
            "node_modules/b": {"version": "1.0.0", "integrity": "sha512-b1", "engines": {}},
            "node_modules/@scope/c": {"version": "3.1.0", "integrity": "sha512-ccc"},
            "node_modules/string-width-cjs": {"name": "string-width", "version": "4.2.3",
                "integrity": "sha512-sw"},
            "node_modules/jest": {"version": "29.0.0", "integrity": "sha512-jest", "dev": true}
        })
    }

    fn lock_v3() -> Value {
        json!({"name": "layer", "version": "1.0.0", "lockfileVersion": 3, "requires": true,
            "packages": packages_map()})
    }

    fn lock_v2() -> Value {
        let mut lock = lock_v1();
        lock["lockfileVersion"] = json!(2);
        lock["packages"] = packages_map();
        lock
    }

    fn package_json() -> Value {
        json!({"name": "layer", "dependencies": {"a": "^1.0.0", "b": "1.0.0"},
            "devDependencies": {"jest": "29"}})
    }

    fn npm_fingerprint(lock: &Value, package_json: &Value) -> blake3::Hash {
        let input = LockInput::Resolved {
            packages: resolved_packages(lock),
        };
        dependency_fingerprint(Installer::Npm, X86, package_json, &input)
    }

    #[test]
    fn lockfile_versions_1_2_and_3_of_one_tree_resolve_alike() {
        let v1 = resolved_packages(&lock_v1());
        assert_eq!(v1, resolved_packages(&lock_v2()));
        assert_eq!(v1, resolved_packages(&lock_v3()));

        let paths: Vec<&str> = v1.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "node_modules/@scope/c",
                "node_modules/a",
                "node_modules/a/node_modules/b",
                "node_modules/b",
                "node_modules/string-width-cjs",
            ]
        );
        let alias = v1.last().unwrap();
        assert_eq!(
            (alias.name.as_str(), alias.version.as_str()),
            ("string-width", "4.2.3")
        );
    }

    #[test]
    fn lockfile_v1_and_v3_of_one_tree_give_one_fingerprint() {
        let package_json = package_json();
        assert_eq!(
            npm_fingerprint(&lock_v1(), &package_json),
            npm_fingerprint(&lock_v3(), &package_json)
        );
    }

    #[test]
    fn a_new_version_or_integrity_changes_the_fingerprint() {
        let package_json = package_json();
        let base = npm_fingerprint(&lock_v3(), &package_json);

        let mut bumped = lock_v3();
        bumped["packages"]["node_modules/b"]["version"] = json!("1.0.1");
        assert_ne!(npm_fingerprint(&bumped, &package_json), base);

        let mut repacked = lock_v3();
        repacked["packages"]["node_modules/b"]["integrity"] = json!("sha512-other");
        assert_ne!(npm_fingerprint(&repacked, &package_json), base);
    }

    #[test]
    fn dev_dependencies_and_unrelated_fields_do_not_change_the_fingerprint() {
        let base = npm_fingerprint(&lock_v3(), &package_json());

        let mut lock = lock_v3();
        lock["packages"]["node_modules/jest"]["version"] = json!("30.0.0");
        lock["packages"]["node_modules/a"]["license"] = json!("ISC");
        let mut package_json = package_json();
        package_json["devDependencies"]["eslint"] = json!("9");
        package_json["scripts"] = json!({"test": "jest"});
        assert_eq!(npm_fingerprint(&lock, &package_json), base);

        package_json["dependencies"]["d"] = json!("1");
        assert_ne!(npm_fingerprint(&lock, &package_json), base);
    }

    #[test]
    fn the_platform_and_installer_are_part_of_the_fingerprint() {
        let input = LockInput::Resolved {
            packages: resolved_packages(&lock_v3()),
        };
        let x86 = dependency_fingerprint(Installer::Npm, X86, &package_json(), &input);
        assert_ne!(
            dependency_fingerprint(Installer::Npm, ARM, &package_json(), &input),
            x86
        );
        assert_ne!(
            dependency_fingerprint(Installer::Pnpm, X86, &package_json(), &input),
            x86
        );
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let value = json!({"b": {"z": 1, "a": [true, {"y": null, "x": "é\""}]}, "a": 2});
        assert_eq!(
            canonical_json(&value),
            r#"{"a":2,"b":{"a":[true,{"x":"é\"","y":null}],"z":1}}"#
        );
    }

    #[test]
    fn underscore_keys_of_installed_package_json_are_ignored() {
        let clean = br#"{"name": "a", "version": "1.0.0", "main": "index.js"}"#;
        let old_npm = br#"{"_from": "a@^1", "_resolved": "https://r/a.tgz", "_where": "/home/x",
            "main": "index.js", "version": "1.0.0", "name": "a"}"#;
        assert_eq!(
            package_json_fingerprint(clean),
            package_json_fingerprint(old_npm)
        );

        let other = br#"{"name": "a", "version": "1.0.1", "main": "index.js"}"#;
        assert_ne!(
            package_json_fingerprint(clean),
            package_json_fingerprint(other)
        );
    }

    #[test]
    fn tree_fingerprint_sees_packages_not_file_times() {
        let dir = tempfile::tempdir().unwrap();
        let modules = dir.path().join("node_modules");
        let write = |relative: &str, text: &str| {
            let path = modules.join(relative);
            fs_err::create_dir_all(path.parent().unwrap()).unwrap();
            fs_err::write(path, text).unwrap();
        };
        write("a/package.json", r#"{"name":"a","version":"1.0.0"}"#);
        write(
            "a/node_modules/b/package.json",
            r#"{"name":"b","version":"2.0.0"}"#,
        );
        write("@s/c/package.json", r#"{"name":"@s/c","version":"1.0.0"}"#);
        write(".package-lock.json", "{}");
        let before = installed_tree_fingerprint(&modules).unwrap();

        write("a/index.js", "changed code is the scan's business");
        write(".package-lock.json", r#"{"changed": true}"#);
        write(
            "a/package.json",
            r#"{"version":"1.0.0","name":"a","_where":"/x"}"#,
        );
        assert_eq!(installed_tree_fingerprint(&modules).unwrap(), before);

        write("@s/d/package.json", r#"{"name":"@s/d","version":"1.0.0"}"#);
        assert_ne!(installed_tree_fingerprint(&modules).unwrap(), before);
    }
}
