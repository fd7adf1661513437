//! Dependency installs: npm (or yarn, pnpm) for a layer's `lib/nodejs`, pip for its
//! `lib/python`, run before the engine scans the layer, so that a fresh checkout without
//! `node_modules` or `site-packages` still publishes a complete layer.
//!
//! This module decides whether an install is needed, runs the installer into a staging folder,
//! swaps the result into place and records what it installed. It never scans, hashes or packs
//! the layer: the engine does that afterwards, from whatever tree is then in place.
//!
//! # When an install runs
//!
//! Each ecosystem of a layer has a *dependency fingerprint*: a blake3 hash of what the layer
//! declares, read from the lock file as a resolved set of packages (never its raw bytes, so lock
//! files of different npm versions that resolve the same packages agree), together with
//! everything else that changes the installed tree: the installer, the target platform and, for
//! Python, the runtime version. [`npm`] and [`pip`] specify their fingerprints exactly.
//!
//! An install runs when one of the [`InstallReason`]s holds: the tree is missing, lamina has no
//! record of installing it, the fingerprint differs from the recorded one, or the tree's package
//! identities (package.json files without their `_` keys, Python `.dist-info` names) differ from
//! those recorded right after the install, because something else (a developer's
//! `npm install` that added dev dependencies, say) changed it since. File times are never looked
//! at: touching a lock file installs nothing.
//!
//! Two cases need no installer at all, so that a fresh checkout with its dependencies committed
//! publishes offline, on a machine without npm or pip:
//!
//! - **Adopted tree.** With no record, a tree that holds exactly the packages the lock resolves
//!   (install path, name and version for npm, as npm's own check of its hidden lock file does;
//!   name and version of each `.dist-info` for Pipfile.lock) is recorded as it is
//!   ([`InstallOutcome::Adopted`]). Only an npm lock or a Pipfile.lock can be compared; yarn,
//!   pnpm and requirements.txt trees without a record are installed, and so is an npm tree whose
//!   lock does not record package.json's declarations (npm ci then refuses it, saying why).
//!   Once a record exists only the record counts.
//! - **Nothing declared.** A package.json without dependencies (and an npm lock that resolves
//!   none), or a Pipfile.lock with an empty `default` section, needs no install
//!   ([`InstallOutcome::NoDependencies`]); packages an earlier install left are removed
//!   ([`InstallOutcome::Removed`]), as the installer would have removed them.
//!
//! # What an install does
//!
//! The installer runs in a staging folder `<layer>/lib/.lamina-install-XXXXXX/`, next to the
//! live tree and on its file system, and its result is swapped in only when it exits
//! successfully: the live tree is renamed into the staging folder, the new tree renamed into its
//! place (the first rename is undone if the second fails), and the staging folder deleted with
//! the old tree in it. Staging folders left by a killed run are deleted before the next install.
//! Installer output streams to the log at debug level under a
//! [`Phase::Install`](crate::progress::Phase::Install) progress line; a failure carries the exit
//! status and the first [`HEAD_LINES`] and last [`TAIL_LINES`] lines of the installer's output. The record in `.lamina/installs/<layer>.json`
//! (format in `cache-format.md`, section "Installs") is written atomically after the swap and
//! only then, so a record never describes a tree that is not in place.
//!
//! A layer whose dependencies need installing and cannot be installed (installer missing,
//! offline without a source, installer failure) is an error, never a layer published half-empty.

pub mod npm;
pub mod pip;
mod run;
mod state;
mod swap;

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use serde::{Deserialize, Serialize};

use crate::manifest::LayerConfig;
use crate::progress::Progress;

pub use run::{HEAD_LINES, TAIL_LINES};
pub use state::STATE_FORMAT;
pub use swap::STAGING_PREFIX;

use state::{Record, StateFile};

/// How [`prepare_layer`] may install.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// Use only what is installed or in the installers' caches: npm `--offline`, pip
    /// `--no-index` with [`find_links`](Self::find_links) as the only source.
    pub offline: bool,
    /// Local folders of wheels passed to pip as `--find-links`.
    pub find_links: Vec<PathBuf>,
    /// The installer programs.
    pub tools: Tools,
}

impl Default for InstallOptions {
    /// Online, no wheel folders, installers looked up on `PATH`.
    fn default() -> Self {
        InstallOptions {
            offline: false,
            find_links: Vec::new(),
            tools: Tools::from_path(),
        }
    }
}

/// The installer programs lamina may run; `None` means not installed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tools {
    pub npm: Option<PathBuf>,
    pub yarn: Option<PathBuf>,
    pub pnpm: Option<PathBuf>,
    /// The Python interpreter that runs pip (`python3`).
    pub python: Option<PathBuf>,
    pub pipenv: Option<PathBuf>,
}

impl Tools {
    /// Looks each tool up on the `PATH` of this process.
    pub fn from_path() -> Tools {
        Tools::search(std::env::var_os("PATH"))
    }

    /// Looks each tool up in the folders of `path` (a `PATH`-style list).
    pub fn search(path: Option<OsString>) -> Tools {
        let folders: Vec<PathBuf> = path
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        let find = |name: &str| {
            folders
                .iter()
                .map(|dir| dir.join(name))
                .find(|c| is_executable(c))
        };
        Tools {
            npm: find("npm"),
            yarn: find("yarn"),
            pnpm: find("pnpm"),
            python: find("python3"),
            pipenv: find("pipenv"),
        }
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A command line for an installer, built by the pure functions in [`npm`] and [`pip`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstallCommand {
    /// The tool's name (`npm`, `python3`, ...) followed by its arguments. The tool's path from
    /// [`Tools`] replaces the name when the command runs.
    pub argv: Vec<String>,
    /// Environment variables set on top of lamina's own.
    pub env: Vec<(String, String)>,
}

impl InstallCommand {
    fn new(argv: Vec<String>) -> InstallCommand {
        InstallCommand {
            argv,
            env: Vec::new(),
        }
    }
}

/// A Lambda instruction set, as named in lamina.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Architecture {
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "arm64")]
    Arm64,
}

impl Architecture {
    pub fn parse(name: &str) -> Option<Architecture> {
        match name {
            "x86_64" => Some(Architecture::X86_64),
            "arm64" => Some(Architecture::Arm64),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ecosystem {
    /// `lib/nodejs`, packed as `nodejs/`.
    Node,
    /// `lib/python`, packed as `python/`.
    Python,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Installer {
    Npm,
    Yarn,
    Pnpm,
    Pip,
}

impl Installer {
    pub fn name(self) -> &'static str {
        match self {
            Installer::Npm => "npm",
            Installer::Yarn => "yarn",
            Installer::Pnpm => "pnpm",
            Installer::Pip => "pip",
        }
    }
}

impl fmt::Display for Installer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an install ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InstallReason {
    /// The tree (`node_modules`, `site-packages`) does not exist.
    NotInstalled,
    /// The tree exists but lamina has no record of installing it.
    NoRecord,
    /// The dependency fingerprint differs from the recorded one.
    DependenciesChanged,
    /// The installed packages differ from those lamina installed.
    TreeChanged,
}

/// What [`prepare_layer`] did for one ecosystem of a layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Install {
    pub ecosystem: Ecosystem,
    pub installer: Installer,
    /// The file the dependencies were read from, relative to the layer root
    /// (`lib/nodejs/package-lock.json`, `lib/python/Pipfile.lock`).
    pub manifest: String,
    /// The installed tree, relative to the layer root (`lib/nodejs/node_modules`).
    pub target: String,
    /// Hex blake3 dependency fingerprint (see [`npm`] and [`pip`]).
    pub fingerprint: String,
    pub outcome: InstallOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum InstallOutcome {
    /// The installed tree matches the fingerprint; nothing ran.
    UpToDate,
    /// The installer ran and its tree was swapped in.
    Installed {
        reason: InstallReason,
        command: Vec<String>,
        /// A lock file the installer wrote (`npm install` without a lock, `pipenv lock`),
        /// relative to the layer root. It belongs to the project: commit it.
        lock_written: Option<String>,
    },
    /// lamina had no record, but the installed tree holds exactly the packages the lock
    /// resolves (a checkout with its dependencies committed, or installed by hand): the tree
    /// was recorded as it is, and nothing ran.
    Adopted,
    /// Nothing is declared and no package is installed; no installer was needed.
    NoDependencies,
    /// Nothing is declared any more, so the installed packages were removed; no installer ran.
    Removed { reason: InstallReason },
}

impl Install {
    /// Whether an installer ran.
    pub fn is_installed(&self) -> bool {
        matches!(self.outcome, InstallOutcome::Installed { .. })
    }

    /// Whether the installed tree was replaced or removed.
    pub fn changed_tree(&self) -> bool {
        matches!(
            self.outcome,
            InstallOutcome::Installed { .. } | InstallOutcome::Removed { .. }
        )
    }
}

/// What [`prepare_layer`] did for a layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstallReport {
    pub layer: String,
    /// Whether only installed or cached packages were used.
    pub offline: bool,
    /// One per ecosystem the layer declares dependencies for; empty when it declares none.
    pub installs: Vec<Install>,
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Io(#[from] io::Error),

    #[error("`{path}` is not a valid {what}: {message}")]
    InvalidFile {
        path: PathBuf,
        what: &'static str,
        message: String,
    },

    #[error("`{manifest}` needs {tool}, which is not installed (not found on PATH); {hint}")]
    ToolNotFound {
        tool: &'static str,
        manifest: PathBuf,
        hint: &'static str,
    },

    #[error(
        "`{folder}` holds several lock files ({found}); keep the one of the package manager \
         the layer uses and delete the others"
    )]
    SeveralLockFiles { folder: PathBuf, found: String },

    #[error(
        "`{pipfile}` has no Pipfile.lock and pipenv is not installed; run `pipenv lock` in \
         `{folder}` and commit the Pipfile.lock it writes (or install pipenv, and lamina will)"
    )]
    MissingPipfileLock { pipfile: PathBuf, folder: PathBuf },

    #[error(
        "layer `{layer}` runs python {runtime} but `{lock}` requires python {locked}; change the \
         layer's runtimes or lock again with `pipenv lock --python {runtime}`"
    )]
    PythonVersionMismatch {
        layer: String,
        runtime: String,
        lock: PathBuf,
        locked: String,
    },

    #[error(
        "layer `{layer}` has Python dependencies but no python runtime and `{manifest}` names \
         no Python version; add a runtime such as `python3.12` to the layer in lamina.toml"
    )]
    UnknownPythonVersion { layer: String, manifest: PathBuf },

    #[error(
        "layer `{layer}` declares python runtimes of different versions ({versions}); its \
         site-packages folder serves one version, so split it into one layer per version"
    )]
    SeveralPythonVersions { layer: String, versions: String },

    #[error(
        "layer `{layer}` has the unknown architecture `{architecture}`; use `x86_64` or `arm64`"
    )]
    UnknownArchitecture { layer: String, architecture: String },

    #[error(
        "`{lock}` entry `{package}` is not pinned with hashes ({detail}); lamina installs \
         only exact, hashed versions from a lock file"
    )]
    UnpinnedPackage {
        lock: PathBuf,
        package: String,
        detail: String,
    },

    #[error(
        "no wheel of {packages} for {platform} (layer `{layer}`); Lambda cannot build from \
         source, so pick a version that publishes such wheels, or build the wheel and pass its \
         folder with --find-links ({installer_status}); its output, first and last lines:\n{}",
        output.join("\n")
    )]
    NoWheel {
        layer: String,
        packages: String,
        platform: String,
        installer_status: ExitStatus,
        output: Vec<String>,
    },

    #[error(
        "{tool} failed for layer `{layer}` ({status}); the layer's installed packages are as \
         they were. Its output, first and last lines:\n{}",
        output.join("\n")
    )]
    InstallerFailed {
        layer: String,
        tool: String,
        status: ExitStatus,
        output: Vec<String>,
    },

    #[error(
        "layer `{layer}` needs a pip install but --offline leaves pip no source; pass a folder \
         of wheels with --find-links, or run without --offline"
    )]
    OfflineWithoutWheels { layer: String },

    #[error("failed to run `{program}`: {source}")]
    Spawn { program: PathBuf, source: io::Error },
}

/// Makes sure the dependencies that `layer` declares are installed, before the engine scans it.
///
/// `project_root` holds lamina.toml; the layer lives at `project_root/layer.path`. `state_dir`
/// is lamina's state folder (`.lamina/`), whose `installs/` keeps what was installed. Node
/// (`lib/nodejs/package.json`) and Python (`lib/python/Pipfile.lock`, `requirements.txt` or
/// `Pipfile`) are handled independently; a layer with neither gets an empty report.
pub fn prepare_layer(
    project_root: &Path,
    state_dir: &Path,
    layer: &LayerConfig,
    options: &InstallOptions,
    progress: &dyn Progress,
) -> Result<InstallReport, InstallError> {
    let context = Context {
        project_root,
        layer,
        layer_dir: project_root.join(&layer.path),
        options,
        progress,
    };
    swap::remove_leftovers(&context.layer_dir)?;
    let mut state = StateFile::load(state_dir, &layer.name)?;

    let mut installs = Vec::new();
    installs.extend(npm::prepare(&context, &mut state)?);
    installs.extend(pip::prepare(&context, &mut state)?);
    if options.offline {
        tracing::info!(layer = %layer.name, "offline: only installed or cached packages were used");
    }
    Ok(InstallReport {
        layer: layer.name.clone(),
        offline: options.offline,
        installs,
    })
}

/// Everything an ecosystem's `prepare` needs about the call.
struct Context<'a> {
    project_root: &'a Path,
    layer: &'a LayerConfig,
    /// `project_root/layer.path`.
    layer_dir: PathBuf,
    options: &'a InstallOptions,
    progress: &'a dyn Progress,
}

impl Context<'_> {
    /// The layer's architectures, sorted and without duplicates; `x86_64` when none is given,
    /// as on Lambda.
    fn architectures(&self) -> Result<Vec<Architecture>, InstallError> {
        let mut parsed = Vec::new();
        for name in &self.layer.architectures {
            let architecture =
                Architecture::parse(name).ok_or_else(|| InstallError::UnknownArchitecture {
                    layer: self.layer.name.clone(),
                    architecture: name.clone(),
                })?;
            parsed.push(architecture);
        }
        if parsed.is_empty() {
            parsed.push(Architecture::X86_64);
        }
        parsed.sort();
        parsed.dedup();
        Ok(parsed)
    }

    /// `path` relative to the layer root, '/'-separated, for reports and records.
    fn relative(&self, path: &Path) -> String {
        let relative = path.strip_prefix(&self.layer_dir).unwrap_or(path);
        relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// What [`decide`] concluded about an ecosystem whose dependencies declare packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// The installed tree is the one recorded for this fingerprint.
    Current,
    /// There is no record, but the tree holds exactly the packages the lock resolves.
    Adopt,
    Install(InstallReason),
}

/// Whether an install must run, and why. `installed_tree` computes the tree identity and is
/// only called when everything else matches; `matches_lock` says whether the tree holds exactly
/// what the lock resolves, and is only called when there is no record.
///
/// Adopting an unrecorded tree that matches the lock is what lets a fresh checkout with its
/// dependencies committed (the bundled example) push offline without an installer. It is
/// limited to the case without a record: once lamina has installed, only the record counts,
/// since names and versions alone cannot tell two builds of one version apart.
fn decide(
    record: Option<&Record>,
    fingerprint: &str,
    target: &Path,
    installed_tree: impl FnOnce() -> io::Result<String>,
    matches_lock: impl FnOnce() -> io::Result<bool>,
) -> io::Result<Decision> {
    if !target.is_dir() {
        return Ok(Decision::Install(InstallReason::NotInstalled));
    }
    let Some(record) = record else {
        return Ok(match matches_lock()? {
            true => Decision::Adopt,
            false => Decision::Install(InstallReason::NoRecord),
        });
    };
    if record.fingerprint != fingerprint {
        return Ok(Decision::Install(InstallReason::DependenciesChanged));
    }
    if installed_tree()? != record.tree {
        return Ok(Decision::Install(InstallReason::TreeChanged));
    }
    Ok(Decision::Current)
}

/// Records the tree at `install.target` as installed for `install.fingerprint`.
fn record_tree(
    state: &mut StateFile,
    ecosystem: Ecosystem,
    install: &Install,
    tree: String,
) -> io::Result<()> {
    let record = Record {
        installer: install.installer,
        manifest: install.manifest.clone(),
        target: install.target.clone(),
        fingerprint: install.fingerprint.clone(),
        tree,
    };
    state.set(ecosystem, record)
}

/// Handles an ecosystem that declares no packages: nothing needs installing, and packages left
/// in `target` from an earlier install are removed (moved into a staging folder that is then
/// deleted), as the installer would have removed them. No installer runs, so none is needed.
fn prepare_empty(
    context: &Context,
    state: &mut StateFile,
    ecosystem: Ecosystem,
    target: &Path,
    has_packages: bool,
    install: &mut Install,
) -> Result<(), InstallError> {
    let record = state.record(ecosystem);
    let reason = match record {
        None => InstallReason::NoRecord,
        Some(record) if record.fingerprint != install.fingerprint => {
            InstallReason::DependenciesChanged
        }
        Some(_) => InstallReason::TreeChanged,
    };
    let had_record = record.is_some();
    if !has_packages {
        if had_record {
            state.clear(ecosystem)?;
        }
        tracing::debug!(layer = %context.layer.name, ?ecosystem, "no dependencies declared");
        install.outcome = InstallOutcome::NoDependencies;
        return Ok(());
    }
    tracing::info!(layer = %context.layer.name, ?ecosystem, ?reason,
        "no dependencies declared; removing the installed packages");
    let staging = swap::Staging::new(&context.layer_dir)?;
    staging.take_away(target)?;
    drop(staging);
    state.clear(ecosystem)?;
    install.outcome = InstallOutcome::Removed { reason };
    Ok(())
}

/// Turns a failed run into [`InstallError::InstallerFailed`].
fn check_success(
    finished: run::Finished,
    layer: &str,
    installer: &str,
) -> Result<(), InstallError> {
    if finished.status.success() {
        return Ok(());
    }
    Err(InstallError::InstallerFailed {
        layer: layer.to_owned(),
        tool: installer.to_owned(),
        status: finished.status,
        output: finished.excerpt,
    })
}

/// The path of a tool, or the error naming the file that needs it.
fn require_tool(
    tool: &Option<PathBuf>,
    name: &'static str,
    manifest: &Path,
    hint: &'static str,
) -> Result<PathBuf, InstallError> {
    tool.clone().ok_or_else(|| InstallError::ToolNotFound {
        tool: name,
        manifest: manifest.to_path_buf(),
        hint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fingerprint: &str, tree: &str) -> Record {
        Record {
            installer: Installer::Npm,
            manifest: String::new(),
            target: String::new(),
            fingerprint: fingerprint.into(),
            tree: tree.into(),
        }
    }

    #[test]
    fn decide_names_the_first_reason_that_holds() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("node_modules");
        let tree = || Ok("tree".to_owned());
        let unmatched = || Ok(false);
        let same = record("fp", "tree");
        let install = |reason| Decision::Install(reason);

        assert_eq!(
            decide(Some(&same), "fp", &missing, tree, unmatched).unwrap(),
            install(InstallReason::NotInstalled)
        );
        assert_eq!(
            decide(None, "fp", dir.path(), tree, unmatched).unwrap(),
            install(InstallReason::NoRecord)
        );
        assert_eq!(
            decide(Some(&same), "other", dir.path(), tree, unmatched).unwrap(),
            install(InstallReason::DependenciesChanged)
        );
        assert_eq!(
            decide(
                Some(&record("fp", "old")),
                "fp",
                dir.path(),
                tree,
                unmatched
            )
            .unwrap(),
            install(InstallReason::TreeChanged)
        );
        assert_eq!(
            decide(Some(&same), "fp", dir.path(), tree, unmatched).unwrap(),
            Decision::Current
        );
    }

    #[test]
    fn only_an_unrecorded_tree_that_matches_the_lock_is_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let tree = || Ok("tree".to_owned());
        let matched = || Ok(true);
        assert_eq!(
            decide(None, "fp", dir.path(), tree, matched).unwrap(),
            Decision::Adopt
        );
        assert_eq!(
            decide(
                Some(&record("old", "tree")),
                "fp",
                dir.path(),
                tree,
                matched
            )
            .unwrap(),
            Decision::Install(InstallReason::DependenciesChanged),
            "a record outranks what the tree looks like"
        );
        let missing = dir.path().join("node_modules");
        assert_eq!(
            decide(None, "fp", &missing, tree, matched).unwrap(),
            Decision::Install(InstallReason::NotInstalled)
        );
    }

    #[test]
    fn tools_are_found_only_when_executable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("npm"), "#!/bin/sh\n").unwrap();
        fs_err::write(dir.path().join("yarn"), "not executable").unwrap();
        fs_err::set_permissions(
            dir.path().join("npm"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();

        let tools = Tools::search(Some(dir.path().as_os_str().to_owned()));
        assert_eq!(tools.npm, Some(dir.path().join("npm")));
        assert_eq!(tools.yarn, None);
        assert_eq!(tools.python, None);
    }
}
