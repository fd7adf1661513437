//! Node dependencies: `lib/nodejs/package.json`, installed with npm, yarn or pnpm into
//! `lib/nodejs/node_modules`.
//!
//! # Which installer
//!
//! The lock file in `lib/nodejs` decides: `npm-shrinkwrap.json` or `package-lock.json` means
//! `npm ci`, `yarn.lock` means yarn, `pnpm-lock.yaml` means pnpm, and no lock file means
//! `npm install`, whose lock file is kept (copied back into `lib/nodejs`) for the user to commit.
//! When the lock file's tool is not installed the install stops with an error naming both:
//! installing a yarn tree with npm would give another tree, and another digest, on another
//! machine. Several lock files of different tools are an error for the same reason.
//!
//! Every installer runs with `lib/nodejs`'s project config: the staging folder gets copies of
//! package.json and the lock file and relative symlinks to everything else in `lib/nodejs`
//! (`.npmrc`, `.yarnrc.yml`, vendored tarballs), and sits next to `lib/nodejs`, so that
//! `file:` paths in package.json resolve as they do there. A `.npmrc` at the project root is
//! copied in when `lib/nodejs` has none, since npm would not look above the staging folder.
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
//!  "lock":{"kind":"resolved","packages":[{"path":…,"name":…,"version":…,"integrity":…|null},…]}}
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
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

use super::run;
use super::state::{Record, StateFile};
use super::swap::Staging;
use super::{
    check_success, decide, require_tool, Architecture, Context, Ecosystem, Install, InstallCommand,
    InstallError, InstallOutcome, InstallReason, Installer,
};

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

/// The lock file that decides the installer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeLock {
    Shrinkwrap,
    PackageLock,
    Yarn,
    Pnpm,
    /// No lock file: `npm install` writes one.
    Missing,
}

/// Lock file names in npm's order of precedence (a shrinkwrap wins over a package-lock).
const LOCK_FILES: [(&str, NodeLock); 4] = [
    ("npm-shrinkwrap.json", NodeLock::Shrinkwrap),
    ("package-lock.json", NodeLock::PackageLock),
    ("yarn.lock", NodeLock::Yarn),
    ("pnpm-lock.yaml", NodeLock::Pnpm),
];

impl NodeLock {
    pub fn file_name(self) -> Option<&'static str> {
        LOCK_FILES
            .iter()
            .find(|(_, lock)| *lock == self)
            .map(|(name, _)| *name)
    }

    pub fn installer(self) -> Installer {
        match self {
            NodeLock::Yarn => Installer::Yarn,
            NodeLock::Pnpm => Installer::Pnpm,
            _ => Installer::Npm,
        }
    }

    fn is_npm(self) -> bool {
        matches!(self, NodeLock::Shrinkwrap | NodeLock::PackageLock)
    }
}

/// Finds the lock file in `node_dir`; lock files of two different tools are an error.
pub fn detect_lock(node_dir: &Path) -> Result<NodeLock, InstallError> {
    let found: Vec<(&str, NodeLock)> = LOCK_FILES
        .into_iter()
        .filter(|(name, _)| node_dir.join(name).is_file())
        .collect();
    let only_npm = found.iter().all(|(_, lock)| lock.is_npm());
    match found.as_slice() {
        [] => Ok(NodeLock::Missing),
        [(_, first), ..] if only_npm => Ok(*first),
        [(_, only)] => Ok(*only),
        _ => Err(InstallError::SeveralLockFiles {
            folder: node_dir.to_path_buf(),
            found: found
                .iter()
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// One package an npm lock file installs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ResolvedPackage {
    /// Install folder relative to `lib/nodejs`: `node_modules/a/node_modules/@s/b`.
    pub path: String,
    pub name: String,
    pub version: String,
    pub integrity: Option<String>,
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
pub fn fingerprint(
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

/// Reads package.json and the lock file of `node_dir` and computes their fingerprint.
pub fn read_fingerprint(
    node_dir: &Path,
    lock: NodeLock,
    architectures: &[Architecture],
) -> Result<blake3::Hash, InstallError> {
    let package_json = read_json(&node_dir.join("package.json"), "package.json")?;
    let lock_input = match lock.file_name().map(|name| node_dir.join(name)) {
        None => LockInput::None,
        Some(path) if lock.is_npm() => LockInput::Resolved {
            packages: resolved_packages(&read_json(&path, "npm lock file")?),
        },
        Some(path) => {
            let text = fs_err::read_to_string(&path)?.replace("\r\n", "\n");
            LockInput::Bytes {
                blake3: blake3::hash(text.as_bytes()).to_hex().to_string(),
            }
        }
    };
    Ok(fingerprint(
        lock.installer(),
        architectures,
        &package_json,
        &lock_input,
    ))
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
    let mut lines = Vec::new();
    collect_packages(node_modules, "", &mut lines)?;
    lines.sort();
    let mut hasher = blake3::Hasher::new();
    for line in &lines {
        hasher.update(line.as_bytes());
    }
    Ok(hasher.finalize())
}

fn collect_packages(node_modules: &Path, prefix: &str, out: &mut Vec<String>) -> io::Result<()> {
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

fn visit_package(dir: &Path, relative: &str, out: &mut Vec<String>) -> io::Result<()> {
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
    out.push(format!("{relative}\0{identity}\n"));

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

/// npm's `--cpu` value for the layer, or `None` when it serves both architectures.
pub fn node_cpu(architectures: &[Architecture]) -> Option<&'static str> {
    match architectures {
        [Architecture::X86_64] => Some("x64"),
        [Architecture::Arm64] => Some("arm64"),
        _ => None,
    }
}

fn platform_label(architectures: &[Architecture]) -> String {
    match node_cpu(architectures) {
        Some(cpu) => format!("linux-{cpu}"),
        None => "linux".to_owned(),
    }
}

/// `npm ci` (with a lock file) or `npm install` (without), for Lambda's platform: optional
/// dependencies with native binaries are chosen for Linux, glibc and the layer's CPU, not for
/// the build machine.
///
/// TODO: a layer for both architectures gets no `--cpu`, so native optional dependencies are
/// those of the build machine's CPU; npm can select only one CPU per install.
pub fn npm_command(
    has_lock: bool,
    architectures: &[Architecture],
    offline: bool,
) -> InstallCommand {
    let verb = if has_lock { "ci" } else { "install" };
    let mut argv: Vec<String> = [
        "npm",
        verb,
        "--omit=dev",
        "--no-audit",
        "--no-fund",
        "--update-notifier=false",
        "--os=linux",
        "--libc=glibc",
    ]
    .map(String::from)
    .to_vec();
    if let Some(cpu) = node_cpu(architectures) {
        argv.push(format!("--cpu={cpu}"));
    }
    if offline {
        argv.push("--offline".into());
    }
    InstallCommand::new(argv)
}

/// yarn with the lock file frozen and without dev dependencies. Yarn 2 and later ("berry",
/// recognised by the `__metadata:` block of its lock file) need `workspaces focus` for that,
/// and the node-modules linker so that there is a `node_modules` to pack.
///
/// TODO: yarn has no flag to choose the CPU of native optional dependencies.
pub fn yarn_command(berry: bool, offline: bool) -> InstallCommand {
    if berry {
        let argv = ["yarn", "workspaces", "focus", "--all", "--production"];
        let mut env = vec![
            ("YARN_NODE_LINKER".to_owned(), "node-modules".to_owned()),
            (
                "YARN_ENABLE_IMMUTABLE_INSTALLS".to_owned(),
                "true".to_owned(),
            ),
        ];
        if offline {
            env.push(("YARN_ENABLE_NETWORK".to_owned(), "false".to_owned()));
        }
        return InstallCommand {
            argv: argv.map(String::from).to_vec(),
            env,
        };
    }
    let mut argv: Vec<String> = [
        "yarn",
        "install",
        "--frozen-lockfile",
        "--production=true",
        "--non-interactive",
    ]
    .map(String::from)
    .to_vec();
    if offline {
        argv.push("--offline".into());
    }
    InstallCommand::new(argv)
}

/// pnpm with the lock file frozen, without dev dependencies, and with npm's flat layout: a
/// layer zip of pnpm's symlinked store would be bigger and depend on links surviving the zip.
pub fn pnpm_command(offline: bool) -> InstallCommand {
    let mut argv: Vec<String> = [
        "pnpm",
        "install",
        "--frozen-lockfile",
        "--prod",
        "--config.node-linker=hoisted",
    ]
    .map(String::from)
    .to_vec();
    if offline {
        argv.push("--offline".into());
    }
    InstallCommand::new(argv)
}

fn is_yarn_berry(lock_text: &str) -> bool {
    lock_text
        .lines()
        .any(|line| line.starts_with("__metadata:"))
}

/// Installs `lib/nodejs` of the layer when [`decide`] says so.
pub(super) fn prepare(
    context: &Context,
    state: &mut StateFile,
) -> Result<Option<Install>, InstallError> {
    let node_dir = context.layer_dir.join("lib/nodejs");
    if !node_dir.join("package.json").is_file() {
        return Ok(None);
    }
    let lock = detect_lock(&node_dir)?;
    let architectures = context.architectures()?;
    let fingerprint = read_fingerprint(&node_dir, lock, &architectures)?
        .to_hex()
        .to_string();
    let target = node_dir.join("node_modules");
    let manifest = node_dir.join(lock.file_name().unwrap_or("package.json"));
    let tree = || Ok(installed_tree_fingerprint(&target)?.to_hex().to_string());
    let reason = decide(state.record(Ecosystem::Node), &fingerprint, &target, tree)?;

    let mut install = Install {
        ecosystem: Ecosystem::Node,
        installer: lock.installer(),
        manifest: context.relative(&manifest),
        target: context.relative(&target),
        fingerprint,
        outcome: InstallOutcome::UpToDate,
    };
    match reason {
        None => tracing::debug!(layer = %context.layer.name, "node dependencies are up to date"),
        Some(reason) => install_node(context, state, lock, &architectures, reason, &mut install)?,
    }
    Ok(Some(install))
}

/// Runs the installer in a staging folder, swaps its `node_modules` in, keeps a lock file that
/// `npm install` wrote, and records the install.
fn install_node(
    context: &Context,
    state: &mut StateFile,
    lock: NodeLock,
    architectures: &[Architecture],
    reason: InstallReason,
    install: &mut Install,
) -> Result<(), InstallError> {
    let layer = &context.layer.name;
    tracing::info!(layer = %layer, ?reason, installer = %lock.installer(), "installing node dependencies");
    let node_dir = context.layer_dir.join("lib/nodejs");
    let (program, command) = command_for(context, &node_dir, lock, architectures)?;
    let staging = Staging::new(&context.layer_dir)?;
    stage_node_dir(&node_dir, staging.path(), context.project_root)?;

    let finished = run::run(
        &program,
        &command,
        staging.path(),
        layer,
        context.progress,
        &mut |_| {},
    )?;
    check_success(finished, layer, &command.argv[..2].join(" "))?;

    let staged = staging.path().join("node_modules");
    fs_err::create_dir_all(&staged)?;
    let lock_written = keep_written_lock(lock, staging.path(), &node_dir)?;
    let target = node_dir.join("node_modules");
    staging.swap_in(&staged, &target)?;

    if let Some(written) = &lock_written {
        install.manifest = context.relative(written);
        let fingerprint = read_fingerprint(&node_dir, NodeLock::PackageLock, architectures)?;
        install.fingerprint = fingerprint.to_hex().to_string();
    }
    let record = Record {
        installer: install.installer,
        manifest: install.manifest.clone(),
        target: install.target.clone(),
        fingerprint: install.fingerprint.clone(),
        tree: installed_tree_fingerprint(&target)?.to_hex().to_string(),
    };
    state.set(Ecosystem::Node, record)?;
    install.outcome = InstallOutcome::Installed {
        reason,
        command: command.argv,
        lock_written: lock_written.map(|path| context.relative(&path)),
    };
    Ok(())
}

/// The installer for `lock` and its command line, or the error naming the missing tool.
fn command_for(
    context: &Context,
    node_dir: &Path,
    lock: NodeLock,
    architectures: &[Architecture],
) -> Result<(PathBuf, InstallCommand), InstallError> {
    let tools = &context.options.tools;
    let offline = context.options.offline;
    let manifest = node_dir.join(lock.file_name().unwrap_or("package.json"));
    match lock {
        NodeLock::Yarn => {
            let hint = "install yarn (`corepack enable` or `npm install -g yarn`), or delete \
                        yarn.lock to install with npm";
            let program = require_tool(&tools.yarn, "yarn", &manifest, hint)?;
            let berry = is_yarn_berry(&fs_err::read_to_string(&manifest)?);
            Ok((program, yarn_command(berry, offline)))
        }
        NodeLock::Pnpm => {
            let hint = "install pnpm (`corepack enable` or `npm install -g pnpm`), or delete \
                        pnpm-lock.yaml to install with npm";
            let program = require_tool(&tools.pnpm, "pnpm", &manifest, hint)?;
            Ok((program, pnpm_command(offline)))
        }
        _ => {
            let hint = "install Node.js with npm";
            let program = require_tool(&tools.npm, "npm", &manifest, hint)?;
            Ok((
                program,
                npm_command(lock != NodeLock::Missing, architectures, offline),
            ))
        }
    }
}

/// The files an installer may write; everything else in `lib/nodejs` is linked, not copied.
const COPIED_FILES: [&str; 5] = [
    "package.json",
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
];

/// Fills the staging folder (a sibling of `node_dir`) as described in the module documentation.
fn stage_node_dir(node_dir: &Path, staging: &Path, project_root: &Path) -> io::Result<()> {
    for entry in fs_err::read_dir(node_dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let destination = staging.join(&name);
        if name == "node_modules" {
            continue;
        } else if COPIED_FILES.iter().any(|copied| name == *copied) {
            fs_err::copy(entry.path(), &destination)?;
        } else {
            let link = Path::new("..").join("nodejs").join(&name);
            fs_err::os::unix::fs::symlink(link, &destination)?;
        }
    }
    let project_npmrc = project_root.join(".npmrc");
    if !staging.join(".npmrc").exists() && project_npmrc.is_file() {
        fs_err::copy(&project_npmrc, staging.join(".npmrc"))?;
    }
    Ok(())
}

/// Copies the lock file that `npm install` wrote back into `node_dir`, atomically.
fn keep_written_lock(
    lock: NodeLock,
    staging: &Path,
    node_dir: &Path,
) -> Result<Option<PathBuf>, InstallError> {
    let written = staging.join("package-lock.json");
    if lock != NodeLock::Missing || !written.is_file() {
        return Ok(None);
    }
    let destination = node_dir.join("package-lock.json");
    crate::atomic::write(&destination, &fs_err::read(&written)?)?;
    Ok(Some(destination))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        fingerprint(Installer::Npm, X86, package_json, &input)
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
        let x86 = fingerprint(Installer::Npm, X86, &package_json(), &input);
        assert_ne!(
            fingerprint(Installer::Npm, ARM, &package_json(), &input),
            x86
        );
        assert_ne!(
            fingerprint(Installer::Pnpm, X86, &package_json(), &input),
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
    fn npm_command_targets_linux_and_the_layer_cpu() {
        let arm = npm_command(true, ARM, false).argv;
        assert_eq!(&arm[..3], ["npm", "ci", "--omit=dev"]);
        assert!(arm.contains(&"--os=linux".to_owned()));
        assert!(arm.contains(&"--cpu=arm64".to_owned()));
        assert!(!arm.contains(&"--offline".to_owned()));

        let x86 = npm_command(false, X86, true).argv;
        assert_eq!(x86[1], "install");
        assert!(x86.contains(&"--cpu=x64".to_owned()));
        assert!(x86.contains(&"--offline".to_owned()));

        let both = npm_command(true, &[Architecture::X86_64, Architecture::Arm64], false).argv;
        assert!(!both.iter().any(|arg| arg.starts_with("--cpu")));
    }

    #[test]
    fn yarn_and_pnpm_commands_freeze_the_lock_and_skip_dev_dependencies() {
        let classic = yarn_command(false, true);
        assert_eq!(
            classic.argv,
            [
                "yarn",
                "install",
                "--frozen-lockfile",
                "--production=true",
                "--non-interactive",
                "--offline"
            ]
        );
        let berry = yarn_command(true, false);
        assert_eq!(berry.argv[1..3], ["workspaces", "focus"]);
        assert!(berry
            .env
            .contains(&("YARN_NODE_LINKER".into(), "node-modules".into())));
        assert!(is_yarn_berry("# yarn\n\n__metadata:\n  version: 8\n"));
        assert!(!is_yarn_berry(
            "# yarn lockfile v1\n\na@^1:\n  version \"1.0.0\"\n"
        ));

        let pnpm = pnpm_command(false).argv;
        assert!(
            pnpm.contains(&"--frozen-lockfile".to_owned()) && pnpm.contains(&"--prod".to_owned())
        );
    }

    #[test]
    fn lock_detection_prefers_shrinkwrap_and_refuses_mixed_tools() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(detect_lock(dir.path()).unwrap(), NodeLock::Missing);
        fs_err::write(dir.path().join("package-lock.json"), "{}").unwrap();
        fs_err::write(dir.path().join("npm-shrinkwrap.json"), "{}").unwrap();
        assert_eq!(detect_lock(dir.path()).unwrap(), NodeLock::Shrinkwrap);

        fs_err::write(dir.path().join("yarn.lock"), "").unwrap();
        let error = detect_lock(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("yarn.lock") && error.contains("package-lock.json"),
            "{error}"
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
