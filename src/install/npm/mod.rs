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
//! The lock file is read, and the fingerprints computed, as [`fingerprint`] specifies.

pub mod fingerprint;

use std::io;
use std::path::{Path, PathBuf};

use super::run;
use super::state::StateFile;
use super::swap::Staging;
use super::{
    check_success, decide, prepare_empty, record_tree, require_tool, Architecture, Context,
    Decision, Ecosystem, Install, InstallCommand, InstallError, InstallOutcome, InstallReason,
    Installer,
};

use fingerprint::{
    installed_packages, installed_tree_fingerprint, read_fingerprint, read_inputs,
    tree_matches_lock,
};

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

/// npm's `--cpu` value for the layer, or `None` when it serves both architectures.
pub fn node_cpu(architectures: &[Architecture]) -> Option<&'static str> {
    match architectures {
        [Architecture::X86_64] => Some("x64"),
        [Architecture::Arm64] => Some("arm64"),
        _ => None,
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

/// Installs `lib/nodejs` of the layer when [`decide`] says so; when nothing is declared, only
/// removes what an earlier install left.
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
    let inputs = read_inputs(&node_dir, lock, &architectures)?;
    let target = node_dir.join("node_modules");
    let manifest = node_dir.join(lock.file_name().unwrap_or("package.json"));
    let mut install = Install {
        ecosystem: Ecosystem::Node,
        installer: lock.installer(),
        manifest: context.relative(&manifest),
        target: context.relative(&target),
        fingerprint: inputs.fingerprint.to_hex().to_string(),
        outcome: InstallOutcome::UpToDate,
    };
    if !inputs.declares_packages {
        let has_packages = target.is_dir() && !installed_packages(&target)?.is_empty();
        prepare_empty(
            context,
            state,
            Ecosystem::Node,
            &target,
            has_packages,
            &mut install,
        )?;
        return Ok(Some(install));
    }

    let tree = || Ok(installed_tree_fingerprint(&target)?.to_hex().to_string());
    // A tree is adopted only as `npm ci` would have installed it, and npm refuses a lock that
    // does not record package.json's declarations: then it runs, and says so.
    let matches_lock = || match &inputs.resolved {
        Some(resolved) if inputs.lock_in_sync => tree_matches_lock(&target, resolved),
        _ => Ok(false),
    };
    let record = state.record(Ecosystem::Node);
    match decide(record, &install.fingerprint, &target, tree, matches_lock)? {
        Decision::Current => {
            tracing::debug!(layer = %context.layer.name, "node dependencies are up to date")
        }
        Decision::Adopt => {
            tracing::info!(layer = %context.layer.name,
                "node_modules matches the lock file; recorded as installed");
            record_tree(state, Ecosystem::Node, &install, tree()?)?;
            install.outcome = InstallOutcome::Adopted;
        }
        Decision::Install(reason) => {
            install_node(context, state, lock, &architectures, reason, &mut install)?
        }
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
    let installer = lock.installer();
    tracing::info!(layer = %layer, ?reason, %installer, "installing node dependencies");
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
    let tree = installed_tree_fingerprint(&target)?.to_hex().to_string();
    record_tree(state, Ecosystem::Node, install, tree)?;
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

    const X86: &[Architecture] = &[Architecture::X86_64];
    const ARM: &[Architecture] = &[Architecture::Arm64];

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
}
