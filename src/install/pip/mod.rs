//! Python dependencies: `lib/python/Pipfile.lock` (or `requirements.txt`, or a `Pipfile` that
//! pipenv locks first), installed with pip into `lib/python/lib/python3.X/site-packages`, which
//! the zip holds as `python/lib/python3.X/site-packages`, on the Lambda Python runtime's path.
//!
//! # Source
//!
//! `Pipfile.lock` wins over `requirements.txt`, which wins over a lone `Pipfile`. From
//! Pipfile.lock only the `default` section is installed, exactly: every entry must be pinned
//! (`"version": "==1.2.3"`) with hashes, and pip gets `name==version --hash=...` lines with
//! `--require-hashes --no-deps`, so it neither resolves nor fetches anything the lock does not
//! name. A requirements.txt is passed to pip as it is. A Pipfile without a lock is locked with
//! `pipenv lock` when pipenv is installed, and is an error saying so otherwise, unless its
//! `[packages]` table is empty (as `lamina layer add` writes it): then there is nothing to lock.
//!
//! A source that names no package (that Pipfile, a Pipfile.lock with an empty `default`
//! section, a requirements.txt without requirements) runs neither pipenv nor pip.
//!
//! # Wheels for Lambda
//!
//! pip installs for the layer, not the build machine: `--platform` (see [`pip_platforms`]),
//! `--implementation cp`, `--python-version 3.X` and `--only-binary=:all:`, so a dependency
//! without a wheel for Lambda fails instead of being built for the wrong machine; the failure
//! names it ([`InstallError::NoWheel`]). X comes from the layer's `python3.X` runtime and must
//! agree with the lock's `_meta.requires.python_version`.
//!
//! Environment markers in Pipfile.lock (`sys_platform == 'win32'`, `python_version < '3.11'`)
//! are evaluated for Lambda by pip's own marker code (a short script run with the build
//! machine's Python), then dropped from the lines pip gets: pip would otherwise evaluate them
//! against the build machine. Byte code is compiled only when the build machine's Python has
//! the runtime's version (other versions' `.pyc` files would be dead weight), with
//! `SOURCE_DATE_EPOCH` set so that the `.pyc` files are hash-checked and do not embed file times.
//!
//! The manifests are read, and the fingerprints computed, as [`lock`] specifies.

pub mod lock;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::run;
use super::state::{Record, StateFile};
use super::swap::Staging;
use super::{
    check_success, decide, prepare_empty, record_tree, require_tool, Architecture, Context,
    Decision, Ecosystem, Install, InstallCommand, InstallError, InstallOutcome, InstallReason,
    Installer,
};
use lock::{
    dependency_fingerprint, has_installed_packages, installed_tree_fingerprint, parse_pipfile_lock,
    requirement_lines, requirements_input, tree_matches_lock, LockedPackage, SourceInput,
};

/// `SOURCE_DATE_EPOCH` for pip: any fixed value makes py_compile write hash-checked `.pyc` files.
const SOURCE_DATE_EPOCH: &str = "315532800";

/// Where a layer's Python dependencies are declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PythonSource {
    PipfileLock(PathBuf),
    Requirements(PathBuf),
    /// A Pipfile with no lock next to it.
    PipfileOnly(PathBuf),
}

/// The source in `python_dir`, in the order of precedence of the module documentation.
pub fn detect_source(python_dir: &Path) -> Option<PythonSource> {
    let existing = |name: &str| Some(python_dir.join(name)).filter(|path| path.is_file());
    existing("Pipfile.lock")
        .map(PythonSource::PipfileLock)
        .or_else(|| existing("requirements.txt").map(PythonSource::Requirements))
        .or_else(|| existing("Pipfile").map(PythonSource::PipfileOnly))
}

/// A requirements.txt that names packages (or cannot be read as text) but is not installed,
/// because a Pipfile.lock beside it wins. Only a warning depends on it, so a file that cannot
/// be read at all is not an error here.
fn ignored_requirements(python_dir: &Path, source: Option<&PythonSource>) -> Option<PathBuf> {
    let requirements = python_dir.join("requirements.txt");
    let Some(PythonSource::PipfileLock(_)) = source else {
        return None;
    };
    let bytes = fs_err::read(&requirements).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    (!lock::requirements_input(&text).is_empty()).then_some(requirements)
}

/// The Python versions (`3.12`) of the `python3.X` runtimes among `runtimes`, sorted, unique.
pub fn runtime_python_versions(runtimes: &[String]) -> Vec<String> {
    let mut versions: Vec<String> = runtimes
        .iter()
        .filter_map(|runtime| runtime.strip_prefix("python"))
        .filter(|version| version.split('.').all(|part| part.parse::<u32>().is_ok()))
        .map(str::to_owned)
        .collect();
    versions.sort();
    versions.dedup();
    versions
}

/// The `--platform` values for pip. Python 3.12 and later run on Amazon Linux 2023 (glibc 2.34),
/// which also loads `manylinux_2_28` wheels; earlier runtimes run on Amazon Linux 2 (glibc
/// 2.26), which does not. A layer for both architectures accepts only wheels that run anywhere.
pub fn pip_platforms(architectures: &[Architecture], python_version: &str) -> Vec<String> {
    let machine = match architectures {
        [Architecture::X86_64] => "x86_64",
        [Architecture::Arm64] => "aarch64",
        _ => return vec!["any".to_owned()],
    };
    let mut platforms = vec![format!("manylinux2014_{machine}")];
    if minor_version(python_version) >= Some(12) {
        platforms.push(format!("manylinux_2_28_{machine}"));
    }
    platforms
}

fn minor_version(python_version: &str) -> Option<u32> {
    python_version.split('.').nth(1)?.parse().ok()
}

/// PEP 508 marker variables as they are on the Lambda runtime. The patch version is not known
/// in advance, so `.0` stands for it.
pub fn marker_environment(
    architectures: &[Architecture],
    python_version: &str,
) -> BTreeMap<&'static str, String> {
    let machine = match architectures.first() {
        Some(Architecture::Arm64) => "aarch64",
        _ => "x86_64",
    };
    let full_version = format!("{python_version}.0");
    [
        ("implementation_name", "cpython".to_owned()),
        ("implementation_version", full_version.clone()),
        ("os_name", "posix".to_owned()),
        ("platform_machine", machine.to_owned()),
        ("platform_python_implementation", "CPython".to_owned()),
        ("platform_release", String::new()),
        ("platform_system", "Linux".to_owned()),
        ("platform_version", String::new()),
        ("python_full_version", full_version),
        ("python_version", python_version.to_owned()),
        ("sys_platform", "linux".to_owned()),
    ]
    .into_iter()
    .collect()
}

/// Everything [`pip_command`] needs.
#[derive(Debug, Clone)]
pub struct PipRequest<'a> {
    /// `3.12`.
    pub python_version: &'a str,
    /// From [`pip_platforms`].
    pub platforms: &'a [String],
    pub target: &'a Path,
    pub requirements: &'a Path,
    /// From a lock file: `--require-hashes --no-deps`.
    pub exact: bool,
    /// Compile `.pyc` files (only when the interpreter has the runtime's version).
    pub compile: bool,
    pub offline: bool,
    pub find_links: &'a [PathBuf],
}

/// `python3 -m pip install --target ...` for the Lambda platform.
pub fn pip_command(request: &PipRequest) -> InstallCommand {
    let mut argv: Vec<String> = ["python3", "-m", "pip", "install", "--target"]
        .map(String::from)
        .to_vec();
    argv.push(request.target.display().to_string());
    argv.extend(["--implementation", "cp", "--python-version"].map(String::from));
    argv.push(request.python_version.to_owned());
    for platform in request.platforms {
        argv.extend(["--platform".to_owned(), platform.clone()]);
    }
    argv.push("--only-binary=:all:".into());
    if request.exact {
        argv.extend(["--require-hashes", "--no-deps"].map(String::from));
    }
    if !request.compile {
        argv.push("--no-compile".into());
    }
    if request.offline {
        argv.push("--no-index".into());
    }
    for folder in request.find_links {
        argv.extend(["--find-links".to_owned(), folder.display().to_string()]);
    }
    argv.extend(["--no-input", "--disable-pip-version-check", "-r"].map(String::from));
    argv.push(request.requirements.display().to_string());

    let mut command = InstallCommand::new(argv);
    if request.compile {
        command
            .env
            .push(("SOURCE_DATE_EPOCH".into(), SOURCE_DATE_EPOCH.into()));
    }
    command
}

/// `pipenv lock`, run in the Pipfile's folder.
pub fn pipenv_lock_command() -> InstallCommand {
    InstallCommand::new(["pipenv", "lock"].map(String::from).to_vec())
}

/// The distribution a pip output line says it found nothing for, if it is such a line.
pub fn missing_distribution(line: &str) -> Option<String> {
    let requirement = line
        .trim()
        .strip_prefix("ERROR: No matching distribution found for ")?;
    let end = requirement
        .find(|c: char| "=<>!~;[ (".contains(c))
        .unwrap_or(requirement.len());
    Some(requirement[..end].to_owned())
}

/// What one Python install of a layer is made of, before anything runs.
struct Plan {
    manifest: PathBuf,
    python_version: String,
    architectures: Vec<Architecture>,
    platforms: Vec<String>,
    source: SourceInput,
    fingerprint: String,
    target: PathBuf,
}

impl Plan {
    /// The plan for a Pipfile.lock or a requirements.txt.
    fn new(context: &Context, manifest: &Path) -> Result<Plan, InstallError> {
        let text = fs_err::read_to_string(manifest)?;
        let (lock_version, source) = if manifest.ends_with("Pipfile.lock") {
            let lock = parse_pipfile_lock(manifest, &text)?;
            (
                lock.python_version,
                SourceInput::PipfileLock {
                    packages: lock.packages,
                },
            )
        } else {
            (None, requirements_input(&text))
        };
        Plan::from_source(context, manifest, lock_version, source)
    }

    fn from_source(
        context: &Context,
        manifest: &Path,
        lock_version: Option<String>,
        source: SourceInput,
    ) -> Result<Plan, InstallError> {
        let python_version = python_version(context, manifest, lock_version)?;
        let architectures = context.architectures()?;
        let platforms = pip_platforms(&architectures, &python_version);
        let fingerprint = dependency_fingerprint(&python_version, &platforms, &source);
        let target = context.layer_dir.join(format!(
            "lib/python/lib/python{python_version}/site-packages"
        ));
        Ok(Plan {
            manifest: manifest.to_path_buf(),
            python_version,
            architectures,
            platforms,
            source,
            fingerprint,
            target,
        })
    }
}

/// The runtime's Python version, checked against the lock's; the lock's when the layer names no
/// python runtime.
fn python_version(
    context: &Context,
    manifest: &Path,
    locked: Option<String>,
) -> Result<String, InstallError> {
    let layer = &context.layer.name;
    let runtime = match runtime_python_versions(&context.layer.runtimes).as_slice() {
        [] => None,
        [only] => Some(only.clone()),
        several => {
            return Err(InstallError::SeveralPythonVersions {
                layer: layer.clone(),
                versions: several.join(", "),
            })
        }
    };
    match (runtime, locked) {
        (Some(runtime), Some(locked)) if runtime != locked => {
            Err(InstallError::PythonVersionMismatch {
                layer: layer.clone(),
                runtime,
                lock: manifest.to_path_buf(),
                locked,
            })
        }
        (Some(version), _) | (None, Some(version)) => Ok(version),
        (None, None) => Err(InstallError::UnknownPythonVersion {
            layer: layer.clone(),
            manifest: manifest.to_path_buf(),
        }),
    }
}

/// Installs `lib/python` of the layer when [`decide`] says so.
pub(super) fn prepare(
    context: &Context,
    state: &mut StateFile,
) -> Result<Option<Install>, InstallError> {
    let python_dir = context.layer_dir.join("lib/python");
    let source = detect_source(&python_dir);
    if let Some(ignored) = ignored_requirements(&python_dir, source.as_ref()) {
        tracing::warn!(
            layer = %context.layer.name,
            "`{}` is not installed: `Pipfile.lock` beside it wins; put its packages in the \
             Pipfile and lock it again, or delete one of the two",
            context.relative(&ignored)
        );
    }
    let (plan, lock_written) = match source {
        None => return Ok(None),
        Some(PythonSource::PipfileOnly(pipfile)) => match read_empty_pipfile(&pipfile)? {
            Some(requires) => {
                let nothing = SourceInput::PipfileLock {
                    packages: Vec::new(),
                };
                (
                    Plan::from_source(context, &pipfile, requires, nothing)?,
                    None,
                )
            }
            None => {
                let lock = lock_with_pipenv(context, &pipfile)?;
                (Plan::new(context, &lock)?, Some(lock))
            }
        },
        Some(PythonSource::PipfileLock(path) | PythonSource::Requirements(path)) => {
            (Plan::new(context, &path)?, None)
        }
    };
    let mut install = Install {
        ecosystem: Ecosystem::Python,
        installer: Installer::Pip,
        manifest: context.relative(&plan.manifest),
        target: context.relative(&plan.target),
        fingerprint: plan.fingerprint.clone(),
        outcome: InstallOutcome::UpToDate,
    };
    if plan.source.is_empty() {
        prepare_nothing(context, state, &plan, &mut install)?;
        return Ok(Some(install));
    }

    let tree = || {
        Ok(installed_tree_fingerprint(&plan.target)?
            .to_hex()
            .to_string())
    };
    let matches_lock = || match &plan.source {
        SourceInput::PipfileLock { packages } => tree_matches_lock(&plan.target, packages),
        SourceInput::Requirements { .. } => Ok(false),
    };
    let record = state.record(Ecosystem::Python);
    match decide(record, &plan.fingerprint, &plan.target, tree, matches_lock)? {
        Decision::Current => {
            tracing::debug!(layer = %context.layer.name, "python dependencies are up to date")
        }
        Decision::Adopt => {
            tracing::info!(layer = %context.layer.name,
                "site-packages matches the lock file; recorded as installed");
            record_tree(state, Ecosystem::Python, &install, tree()?)?;
            install.outcome = InstallOutcome::Adopted;
        }
        Decision::Install(reason) => {
            let command = install_python(context, state, &plan, reason, &install)?;
            let lock_written = lock_written.map(|path| context.relative(&path));
            install.outcome = InstallOutcome::Installed {
                reason,
                command,
                lock_written,
            };
        }
    }
    Ok(Some(install))
}

/// A source that names no package needs no pip run, no network and no wheel folder: the install
/// is an empty site-packages. Packages an earlier install left there are removed, with the
/// `python3.X` and `lib` folders around them when that leaves them empty.
fn prepare_nothing(
    context: &Context,
    state: &mut StateFile,
    plan: &Plan,
    install: &mut Install,
) -> Result<(), InstallError> {
    let target = &plan.target;
    remove_previous_target(context, state.record(Ecosystem::Python), &install.target)?;
    let has_packages = target.is_dir() && has_installed_packages(target)?;
    prepare_empty(
        context,
        state,
        Ecosystem::Python,
        target,
        has_packages,
        install,
    )?;
    if matches!(install.outcome, InstallOutcome::Removed { .. }) {
        let python_dir = context.layer_dir.join("lib/python");
        let mut folder = target.parent();
        while let Some(dir) = folder.filter(|dir| *dir != python_dir) {
            // Fails, as intended, when the folder holds anything else.
            if std::fs::remove_dir(dir).is_err() {
                break;
            }
            folder = dir.parent();
        }
    }
    Ok(())
}

/// For a Pipfile whose `[packages]` table is missing or empty (as `lamina layer add` writes it),
/// `Some` with its `[requires] python_version`: there is nothing to lock or install, so neither
/// pipenv nor pip is needed. `None` for a Pipfile that names packages.
fn read_empty_pipfile(pipfile: &Path) -> Result<Option<Option<String>>, InstallError> {
    let text = fs_err::read_to_string(pipfile)?;
    let document: toml_edit::DocumentMut =
        text.parse()
            .map_err(|error: toml_edit::TomlError| InstallError::InvalidFile {
                path: pipfile.to_path_buf(),
                what: "Pipfile",
                message: error.to_string(),
            })?;
    let has_packages = document
        .get("packages")
        .and_then(toml_edit::Item::as_table_like)
        .is_some_and(|packages| !packages.is_empty());
    if has_packages {
        return Ok(None);
    }
    let requires = document
        .get("requires")
        .and_then(|requires| requires.get("python_version"))
        .and_then(toml_edit::Item::as_str)
        .map(str::to_owned);
    Ok(Some(requires))
}

/// Writes Pipfile.lock next to `pipfile` with pipenv, or explains how to.
fn lock_with_pipenv(context: &Context, pipfile: &Path) -> Result<PathBuf, InstallError> {
    let folder = pipfile.parent().unwrap_or(Path::new("."));
    let Some(pipenv) = &context.options.tools.pipenv else {
        return Err(InstallError::MissingPipfileLock {
            pipfile: pipfile.to_path_buf(),
            folder: folder.to_path_buf(),
        });
    };
    let layer = &context.layer.name;
    tracing::info!(layer = %layer, pipfile = %pipfile.display(), "locking with pipenv");
    let command = pipenv_lock_command();
    let finished = run::run(
        pipenv,
        &command,
        folder,
        layer,
        context.progress,
        &mut |_| {},
    )?;
    check_success(finished, layer, "pipenv lock")?;
    Ok(folder.join("Pipfile.lock"))
}

/// Runs pip into a staging folder, swaps the result in and records it. Returns the command run.
fn install_python(
    context: &Context,
    state: &mut StateFile,
    plan: &Plan,
    reason: InstallReason,
    install: &Install,
) -> Result<Vec<String>, InstallError> {
    let layer = &context.layer.name;
    let options = context.options;
    if options.offline && options.find_links.is_empty() {
        return Err(InstallError::OfflineWithoutWheels {
            layer: layer.clone(),
        });
    }
    tracing::info!(layer = %layer, ?reason, "installing python dependencies");
    let hint = "install Python 3 with pip";
    let python = require_tool(&options.tools.python, "python3", &plan.manifest, hint)?;
    let staging = Staging::new(&context.layer_dir)?;
    let staged = staging.path().join("site-packages");
    let command = run_pip(context, plan, &python, staging.path(), &staged)?;

    fs_err::create_dir_all(&staged)?;
    staging.swap_in(&staged, &plan.target)?;
    remove_previous_target(context, state.record(Ecosystem::Python), &install.target)?;
    let tree = installed_tree_fingerprint(&plan.target)?
        .to_hex()
        .to_string();
    record_tree(state, Ecosystem::Python, install, tree)?;
    Ok(command.argv)
}

/// Writes the requirement lines (for a lock), runs pip into `staged` and checks its outcome.
fn run_pip(
    context: &Context,
    plan: &Plan,
    python: &Path,
    staging: &Path,
    staged: &Path,
) -> Result<InstallCommand, InstallError> {
    let markers = match &plan.source {
        SourceInput::PipfileLock { packages } => packages
            .iter()
            .filter_map(|package| package.markers.clone())
            .collect(),
        SourceInput::Requirements { .. } => Vec::new(),
    };
    let probe = probe(context, python, plan, &markers)?;
    let (requirements, exact) = match &plan.source {
        SourceInput::PipfileLock { packages } => {
            let selected = select_by_markers(packages, &markers, &probe.markers);
            let path = staging.join("requirements.txt");
            fs_err::write(&path, requirement_lines(&selected))?;
            (path, true)
        }
        SourceInput::Requirements { .. } => (plan.manifest.clone(), false),
    };
    let request = PipRequest {
        python_version: &plan.python_version,
        platforms: &plan.platforms,
        target: staged,
        requirements: &requirements,
        exact,
        compile: probe.host == plan.python_version,
        offline: context.options.offline,
        find_links: &context.options.find_links,
    };
    let command = pip_command(&request);
    let cwd = context.layer_dir.join("lib/python");
    let layer = &context.layer.name;
    let mut missing = Vec::new();
    let finished = run::run(
        python,
        &command,
        &cwd,
        layer,
        context.progress,
        &mut |line| missing.extend(missing_distribution(line)),
    )?;
    if !finished.status.success() && !missing.is_empty() {
        return Err(InstallError::NoWheel {
            layer: layer.clone(),
            packages: missing.join(", "),
            platform: format!(
                "python {} on {}",
                plan.python_version,
                plan.platforms.join(" or ")
            ),
            installer_status: finished.status,
            output: finished.excerpt,
        });
    }
    check_success(finished, layer, "pip install")?;
    Ok(command)
}

/// The packages whose markers hold on Lambda; `markers` lists the markers of `packages` in
/// order, and `results` their values.
fn select_by_markers<'a>(
    packages: &'a [LockedPackage],
    markers: &[String],
    results: &[bool],
) -> Vec<&'a LockedPackage> {
    let holds: BTreeMap<&str, bool> = markers
        .iter()
        .map(String::as_str)
        .zip(results.iter().copied())
        .collect();
    packages
        .iter()
        .filter(|package| {
            let keep = package
                .markers
                .as_deref()
                .is_none_or(|m| holds.get(m) == Some(&true));
            if !keep {
                tracing::debug!(package = %package.name, markers = ?package.markers,
                    "skipped: its markers do not hold on Lambda");
            }
            keep
        })
        .collect()
}

/// What the build machine's Python says: its own version, and the value of each marker on Lambda.
#[derive(Debug, serde::Deserialize)]
struct Probe {
    host: String,
    markers: Vec<bool>,
}

const PROBE_SCRIPT: &str = r#"
import json, sys
try:
    from pip._vendor.packaging.markers import Marker
except ImportError:
    from packaging.markers import Marker
request = json.loads(sys.argv[1])
print(json.dumps({
    "host": "%d.%d" % sys.version_info[:2],
    "markers": [Marker(m).evaluate(request["environment"]) for m in request["markers"]],
}))
"#;

fn probe(
    context: &Context,
    python: &Path,
    plan: &Plan,
    markers: &[String],
) -> Result<Probe, InstallError> {
    let environment = marker_environment(&plan.architectures, &plan.python_version);
    let request = serde_json::json!({"environment": environment, "markers": markers});
    let output = Command::new(python)
        .args(["-c", PROBE_SCRIPT, &request.to_string()])
        .output()
        .map_err(|source| InstallError::Spawn {
            program: python.to_path_buf(),
            source,
        })?;
    let parsed = serde_json::from_slice::<Probe>(&output.stdout);
    match parsed {
        Ok(probe) if output.status.success() && probe.markers.len() == markers.len() => Ok(probe),
        _ => Err(InstallError::InstallerFailed {
            layer: context.layer.name.clone(),
            tool: "python3 (evaluating environment markers)".into(),
            status: output.status,
            output: String::from_utf8_lossy(&output.stderr)
                .lines()
                .map(str::to_owned)
                .collect(),
        }),
    }
}

/// After the Python version changed, the previous version's site-packages is lamina's own stale
/// install: remove it (and its `python3.Y` folder when that is left empty).
fn remove_previous_target(
    context: &Context,
    previous: Option<&Record>,
    target: &str,
) -> io::Result<()> {
    let Some(previous) = previous.filter(|record| record.target != target) else {
        return Ok(());
    };
    let old = context.layer_dir.join(&previous.target);
    if old.is_dir() {
        tracing::info!(path = %old.display(), "removing the previous python version's install");
        fs_err::remove_dir_all(&old)?;
        if let Some(parent) = old.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_follow_the_architecture_and_the_runtime_generation() {
        assert_eq!(
            pip_platforms(&[Architecture::X86_64], "3.11"),
            ["manylinux2014_x86_64"]
        );
        assert_eq!(
            pip_platforms(&[Architecture::Arm64], "3.12"),
            ["manylinux2014_aarch64", "manylinux_2_28_aarch64"]
        );
        assert_eq!(
            pip_platforms(&[Architecture::X86_64, Architecture::Arm64], "3.12"),
            ["any"]
        );
    }

    #[test]
    fn pip_command_for_arm64_asks_for_lambda_wheels_only() {
        let platforms = pip_platforms(&[Architecture::Arm64], "3.12");
        let request = PipRequest {
            python_version: "3.12",
            platforms: &platforms,
            target: Path::new("/stage/site-packages"),
            requirements: Path::new("/stage/requirements.txt"),
            exact: true,
            compile: false,
            offline: true,
            find_links: &[PathBuf::from("/wheels")],
        };
        let command = pip_command(&request);
        let argv = command.argv.join(" ");
        assert!(
            argv.starts_with("python3 -m pip install --target /stage/site-packages "),
            "{argv}"
        );
        for expected in [
            "--implementation cp",
            "--python-version 3.12",
            "--platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64",
            "--only-binary=:all:",
            "--require-hashes --no-deps",
            "--no-compile",
            "--no-index --find-links /wheels",
            "-r /stage/requirements.txt",
        ] {
            assert!(argv.contains(expected), "`{expected}` missing from {argv}");
        }
        assert!(!argv.contains("x86_64"));
        assert!(
            command.env.is_empty(),
            "nothing compiled, no SOURCE_DATE_EPOCH needed"
        );
    }

    #[test]
    fn pip_command_from_requirements_resolves_and_compiles_reproducibly() {
        let platforms = pip_platforms(&[Architecture::X86_64], "3.11");
        let request = PipRequest {
            python_version: "3.11",
            platforms: &platforms,
            target: Path::new("/t"),
            requirements: Path::new("/layer/lib/python/requirements.txt"),
            exact: false,
            compile: true,
            offline: false,
            find_links: &[],
        };
        let command = pip_command(&request);
        let argv = command.argv.join(" ");
        assert!(
            argv.contains("--platform manylinux2014_x86_64 --only-binary=:all:"),
            "{argv}"
        );
        for absent in [
            "--no-deps",
            "--require-hashes",
            "--no-compile",
            "--no-index",
            "aarch64",
        ] {
            assert!(!argv.contains(absent), "`{absent}` in {argv}");
        }
        assert_eq!(
            command.env,
            [("SOURCE_DATE_EPOCH".to_owned(), SOURCE_DATE_EPOCH.to_owned())]
        );
    }

    #[test]
    fn runtime_versions_come_from_python_runtimes_only() {
        let runtimes = ["nodejs22.x", "python3.12", "python3.12", "provided.al2023"];
        let runtimes: Vec<String> = runtimes.map(String::from).to_vec();
        assert_eq!(runtime_python_versions(&runtimes), ["3.12"]);
    }

    #[test]
    fn no_wheel_lines_name_the_distribution() {
        let line = "ERROR: No matching distribution found for numpy==1.26.4";
        assert_eq!(missing_distribution(line).as_deref(), Some("numpy"));
        let marker = "ERROR: No matching distribution found for pywin32>=300; sys_platform";
        assert_eq!(missing_distribution(marker).as_deref(), Some("pywin32"));
        assert_eq!(
            missing_distribution("ERROR: Could not install packages"),
            None
        );
    }
}
