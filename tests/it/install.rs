//! Dependency installs with the real npm and pip, and no network: npm installs tarballs that the
//! test packs itself and references with `file:`; pip installs wheels that the test writes
//! itself, from a local `--find-links` folder with `--no-index`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use lamina::access::AccessSet;
use lamina::install::{
    prepare_layer, Ecosystem, Install, InstallError, InstallOptions, InstallOutcome, InstallReason,
    InstallReport, Tools, STAGING_PREFIX,
};
use lamina::manifest::LayerConfig;
use lamina::progress::NoProgress;
use serde_json::json;
use sha2::Digest;
use tempfile::TempDir;

use crate::support;

/// A project with one layer, `deps`, at `layers/deps`.
struct Project {
    dir: TempDir,
    layer: LayerConfig,
}

impl Project {
    fn new(runtimes: &[&str], architectures: &[&str]) -> Project {
        let layer = LayerConfig {
            name: "deps".into(),
            path: PathBuf::from("layers/deps"),
            runtimes: runtimes.iter().map(|r| r.to_string()).collect(),
            architectures: architectures.iter().map(|a| a.to_string()).collect(),
            access: AccessSet::default(),
        };
        Project {
            dir: support::tempdir(),
            layer,
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn layer_dir(&self) -> PathBuf {
        self.root().join(&self.layer.path)
    }

    fn node_dir(&self) -> PathBuf {
        self.layer_dir().join("lib/nodejs")
    }

    fn python_dir(&self) -> PathBuf {
        self.layer_dir().join("lib/python")
    }

    fn state_file(&self) -> PathBuf {
        self.root().join(".lamina/installs/deps.json")
    }

    fn prepare(&self, options: &InstallOptions) -> Result<InstallReport, InstallError> {
        prepare_layer(
            self.root(),
            &self.root().join(".lamina"),
            &self.layer,
            options,
            &NoProgress,
        )
    }

    /// Prepares and returns the one install the layer has.
    fn prepare_one(&self, options: &InstallOptions) -> Install {
        let report = self
            .prepare(options)
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(report.installs.len(), 1, "{report:?}");
        report.installs.into_iter().next().unwrap()
    }

    /// Names in `lib/` that are staging folders.
    fn staging_leftovers(&self) -> Vec<String> {
        std::fs::read_dir(self.layer_dir().join("lib"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(STAGING_PREFIX))
            .collect()
    }
}

fn offline() -> InstallOptions {
    InstallOptions {
        offline: true,
        ..InstallOptions::default()
    }
}

fn reason(install: &Install) -> Option<InstallReason> {
    match &install.outcome {
        InstallOutcome::Installed { reason, .. } => Some(*reason),
        _ => None,
    }
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// npm

/// A node package packed with `npm pack`.
pub(crate) struct Tarball {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) file_name: String,
    pub(crate) integrity: String,
}

/// Packs a one-file package `name@version` into `destination`. With `postinstall`, installing
/// it writes a file `ran` into the package folder.
pub(crate) fn pack(destination: &Path, name: &str, version: &str, postinstall: bool) -> Tarball {
    let source = support::tempdir();
    let mut manifest = json!({"name": name, "version": version, "main": "index.js"});
    if postinstall {
        let script = "node -e \"require('fs').writeFileSync('ran', 'yes')\"";
        manifest["scripts"] = json!({ "postinstall": script });
    }
    support::write(
        source.path(),
        "package.json",
        manifest.to_string().as_bytes(),
    );
    support::write(
        source.path(),
        "index.js",
        format!("module.exports = '{version}';\n").as_bytes(),
    );
    std::fs::create_dir_all(destination).unwrap();
    let status = Command::new("npm")
        .args(["pack", "--silent", "--pack-destination"])
        .arg(destination)
        .current_dir(source.path())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "npm pack failed");

    let file_name = format!("{name}-{version}.tgz");
    let bytes = std::fs::read(destination.join(&file_name)).unwrap();
    let sha512 = sha2::Sha512::digest(&bytes);
    let integrity = format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(sha512)
    );
    Tarball {
        name: name.into(),
        version: version.into(),
        file_name,
        integrity,
    }
}

/// `tarball` at another `version` whose file does not exist. npm's cache is addressed by
/// integrity, so the missing tarball gets one that nothing has, derived from `salt`.
pub(crate) fn unavailable(tarball: Tarball, version: &str, salt: &Path) -> Tarball {
    let unknown = sha2::Sha512::digest(salt.to_string_lossy().as_bytes());
    Tarball {
        file_name: format!("{}-{version}.tgz", tarball.name),
        version: version.into(),
        integrity: format!(
            "sha512-{}",
            base64::engine::general_purpose::STANDARD.encode(unknown)
        ),
        ..tarball
    }
}

/// Writes package.json and, unless `with_lock` is false, a lockfileVersion 3 package-lock.json
/// that depend on `tarballs` in `lib/nodejs/vendor/`.
pub(crate) fn write_node_project(node_dir: &Path, tarballs: &[&Tarball], with_lock: bool) {
    let mut dependencies = serde_json::Map::new();
    let mut packages = serde_json::Map::new();
    for tarball in tarballs {
        let spec = format!("file:vendor/{}", tarball.file_name);
        dependencies.insert(tarball.name.clone(), json!(spec));
        packages.insert(
            format!("node_modules/{}", tarball.name),
            json!({"version": tarball.version, "resolved": spec, "integrity": tarball.integrity,
                   "hasInstallScript": true}),
        );
    }
    let package_json = json!({"name": "layer", "version": "1.0.0", "dependencies": dependencies});
    packages.insert(String::new(), package_json.clone());
    let lock = json!({"name": "layer", "version": "1.0.0", "lockfileVersion": 3,
        "requires": true, "packages": packages});
    support::write(
        node_dir,
        "package.json",
        package_json.to_string().as_bytes(),
    );
    if with_lock {
        support::write(node_dir, "package-lock.json", lock.to_string().as_bytes());
    }
}

/// A node project depending on `tiny@version`, packed into `lib/nodejs/vendor/`.
fn node_project(version: &str) -> (Project, Tarball) {
    let project = Project::new(&["nodejs20.x"], &["x86_64"]);
    let tarball = pack(&project.node_dir().join("vendor"), "tiny", version, true);
    write_node_project(&project.node_dir(), &[&tarball], true);
    (project, tarball)
}

fn installed_version(project: &Project, package: &str) -> String {
    let path = project
        .node_dir()
        .join("node_modules")
        .join(package)
        .join("package.json");
    read_json(&path)["version"].as_str().unwrap().to_owned()
}

#[test]
fn npm_installs_a_missing_tree_and_then_nothing_when_only_mtimes_change() {
    let (project, _) = node_project("1.0.0");

    let first = project.prepare_one(&offline());
    assert_eq!(first.ecosystem, Ecosystem::Node);
    assert_eq!(reason(&first), Some(InstallReason::NotInstalled));
    assert_eq!(first.manifest, "lib/nodejs/package-lock.json");
    assert_eq!(installed_version(&project, "tiny"), "1.0.0");
    assert!(
        project.node_dir().join("node_modules/tiny/ran").exists(),
        "install scripts ran"
    );
    assert!(project.state_file().is_file());
    let InstallOutcome::Installed { command, .. } = &first.outcome else {
        unreachable!()
    };
    assert_eq!(&command[..2], ["npm", "ci"]);

    for file in ["package.json", "package-lock.json"] {
        let path = project.node_dir().join(file);
        let content = std::fs::read(&path).unwrap();
        std::fs::write(&path, content).unwrap();
    }
    support::age_tree(&project.node_dir());
    let second = project.prepare_one(&offline());
    assert_eq!(second.outcome, InstallOutcome::UpToDate);
    assert_eq!(second.fingerprint, first.fingerprint);
    assert!(project.staging_leftovers().is_empty());
}

#[test]
fn npm_installs_again_when_the_lock_changes() {
    let (project, _) = node_project("1.0.0");
    project.prepare_one(&offline());

    let newer = pack(&project.node_dir().join("vendor"), "tiny", "2.0.0", true);
    write_node_project(&project.node_dir(), &[&newer], true);
    let install = project.prepare_one(&offline());

    assert_eq!(reason(&install), Some(InstallReason::DependenciesChanged));
    assert_eq!(installed_version(&project, "tiny"), "2.0.0");
    assert_eq!(
        project.prepare_one(&offline()).outcome,
        InstallOutcome::UpToDate
    );
}

#[test]
fn npm_install_without_a_lock_keeps_the_lock_it_writes() {
    let project = Project::new(&["nodejs20.x"], &[]);
    let tarball = pack(&project.node_dir().join("vendor"), "tiny", "1.0.0", false);
    write_node_project(&project.node_dir(), &[&tarball], false);

    let install = project.prepare_one(&offline());
    let InstallOutcome::Installed {
        command,
        lock_written,
        ..
    } = &install.outcome
    else {
        panic!("expected an install: {install:?}");
    };
    assert_eq!(command[1], "install");
    assert_eq!(
        lock_written.as_deref(),
        Some("lib/nodejs/package-lock.json")
    );
    let lock = read_json(&project.node_dir().join("package-lock.json"));
    assert_eq!(lock["packages"]["node_modules/tiny"]["version"], "1.0.0");

    assert_eq!(
        project.prepare_one(&offline()).outcome,
        InstallOutcome::UpToDate
    );
}

#[test]
fn a_tree_is_not_adopted_when_package_json_declares_what_the_lock_does_not() {
    let (project, tiny) = node_project("1.0.0");
    project.prepare_one(&offline());
    // A fresh checkout: the tree matches the lock, and lamina has no record of it.
    std::fs::remove_file(project.state_file()).unwrap();
    let other = pack(&project.node_dir().join("vendor"), "other", "1.0.0", false);
    write_node_project(&project.node_dir(), &[&tiny, &other], false);

    // npm ci refuses such a lock, and lamina lets it say why instead of adopting the tree.
    let error = project.prepare(&offline()).unwrap_err().to_string();
    assert!(error.contains("npm ci failed"), "{error}");
    assert!(error.contains("in sync"), "{error}");

    write_node_project(&project.node_dir(), &[&tiny], false);
    assert_eq!(
        project.prepare_one(&offline()).outcome,
        InstallOutcome::Adopted
    );
}

#[test]
fn a_tree_npm_installed_with_a_dependency_also_optional_is_adopted() {
    let project = Project::new(&["nodejs20.x"], &["x86_64"]);
    let node_dir = project.node_dir();
    let tiny = pack(&node_dir.join("vendor"), "tiny", "1.0.0", false);
    let spec = format!("file:vendor/{}", tiny.file_name);
    let package_json = json!({"name": "layer", "version": "1.0.0",
        "dependencies": {"tiny": spec}, "optionalDependencies": {"tiny": spec}});
    support::write(
        &node_dir,
        "package.json",
        package_json.to_string().as_bytes(),
    );
    // npm itself writes the lock, filing `tiny` under optionalDependencies alone.
    let status = Command::new("npm")
        .args(["install", "--offline", "--no-audit", "--no-fund"])
        .current_dir(&node_dir)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    assert_eq!(
        project.prepare_one(&offline()).outcome,
        InstallOutcome::Adopted
    );
}

#[test]
fn an_npm_failure_shows_the_cause_npm_states_before_its_usage() {
    let (project, tiny) = node_project("1.0.0");
    // A dependency the lock does not have: `npm ci` names the mismatch, then prints its usage.
    let other = pack(&project.node_dir().join("vendor"), "other", "1.0.0", false);
    write_node_project(&project.node_dir(), &[&tiny, &other], false);

    let error = project.prepare(&offline()).unwrap_err().to_string();
    assert!(error.contains("npm ci failed"), "{error}");
    assert!(error.contains("in sync"), "{error}");
    assert!(error.contains("more lines]"), "{error}");
    assert!(!error.contains("previous install"), "{error}");
}

#[test]
fn failed_npm_install_leaves_the_previous_tree_and_record() {
    let (project, tarball) = node_project("1.0.0");
    project.prepare_one(&offline());
    let record_before = std::fs::read(project.state_file()).unwrap();

    let missing = unavailable(tarball, "2.0.0", project.root());
    write_node_project(&project.node_dir(), &[&missing], true);
    let error = project.prepare(&offline()).unwrap_err();

    let InstallError::InstallerFailed {
        tool,
        status,
        output,
        ..
    } = &error
    else {
        panic!("expected an installer failure, got {error}");
    };
    assert_eq!(tool, "npm ci");
    assert!(!status.success());
    let longest = lamina::install::HEAD_LINES + 1 + lamina::install::TAIL_LINES;
    assert!(!output.is_empty() && output.len() <= longest);
    assert!(
        output.iter().any(|line| line.contains("tiny-2.0.0.tgz")),
        "{output:#?}"
    );
    assert!(error.to_string().contains("tiny-2.0.0.tgz"));

    assert_eq!(installed_version(&project, "tiny"), "1.0.0");
    assert_eq!(std::fs::read(project.state_file()).unwrap(), record_before);
    assert!(project.staging_leftovers().is_empty());
}

#[test]
fn project_npmrc_is_honoured() {
    let (with_npmrc, _) = node_project("1.0.0");
    support::write(with_npmrc.root(), ".npmrc", b"ignore-scripts=true\n");
    let (in_node_dir, _) = node_project("1.0.0");
    support::write(&in_node_dir.node_dir(), ".npmrc", b"ignore-scripts=true\n");
    let (without, _) = node_project("1.0.0");

    for project in [&with_npmrc, &in_node_dir, &without] {
        project.prepare_one(&offline());
    }
    let script_ran = |project: &Project| project.node_dir().join("node_modules/tiny/ran").exists();
    assert!(
        script_ran(&without),
        "the postinstall script runs without an .npmrc"
    );
    assert!(
        !script_ran(&with_npmrc),
        "the project root's .npmrc was not used"
    );
    assert!(!script_ran(&in_node_dir), "lib/nodejs/.npmrc was not used");
}

#[test]
fn underscore_keys_in_installed_package_json_do_not_cause_an_install() {
    let (project, _) = node_project("1.0.0");
    project.prepare_one(&offline());

    let manifest_path = project.node_dir().join("node_modules/tiny/package.json");
    let mut manifest = read_json(&manifest_path);
    manifest["_resolved"] = json!("file:/home/someone/vendor/tiny-1.0.0.tgz");
    manifest["_where"] = json!("/home/someone/layer");
    std::fs::write(
        &manifest_path,
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    assert_eq!(
        project.prepare_one(&offline()).outcome,
        InstallOutcome::UpToDate
    );

    support::write(
        &project.node_dir(),
        "node_modules/jest/package.json",
        br#"{"name": "jest", "version": "29.0.0"}"#,
    );
    let install = project.prepare_one(&offline());
    assert_eq!(reason(&install), Some(InstallReason::TreeChanged));
    assert!(!project.node_dir().join("node_modules/jest").exists());
}

#[test]
fn yarn_lock_without_yarn_is_a_clear_error() {
    let project = Project::new(&["nodejs20.x"], &[]);
    support::write(
        &project.node_dir(),
        "package.json",
        br#"{"dependencies": {"a": "1.0.0"}}"#,
    );
    support::write(&project.node_dir(), "yarn.lock", b"# yarn lockfile v1\n");
    let options = InstallOptions {
        tools: Tools {
            yarn: None,
            ..Tools::from_path()
        },
        ..InstallOptions::default()
    };

    let error = project.prepare(&options).unwrap_err();
    assert!(
        matches!(error, InstallError::ToolNotFound { tool: "yarn", .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("yarn.lock") && message.contains("needs yarn"),
        "{message}"
    );
    assert!(
        !project.node_dir().join("node_modules").exists(),
        "npm must not stand in for yarn"
    );
    assert!(!project.state_file().exists());
}

/// Options with no installer at all: any attempt to install is a `ToolNotFound` error.
fn without_tools() -> InstallOptions {
    InstallOptions {
        offline: true,
        find_links: Vec::new(),
        tools: Tools::default(),
    }
}

/// A hand-written tree as a checkout might commit it: `a@1.0.0` with a nested `b@2.0.0`, and
/// its lockfileVersion 3 lock, which also names an optional package for another platform.
fn committed_node_tree(project: &Project) {
    let node_dir = project.node_dir();
    let package_json = json!({"name": "layer", "dependencies": {"a": "^1.0.0"}});
    let lock = json!({"name": "layer", "lockfileVersion": 3, "requires": true, "packages": {
        "": package_json.clone(),
        "node_modules/a": {"version": "1.0.0", "dependencies": {"b": "^2.0.0"}},
        "node_modules/a/node_modules/b": {"version": "2.0.0"},
        "node_modules/@native/darwin-arm64": {"version": "1.0.0", "optional": true,
            "os": ["darwin"], "cpu": ["arm64"]}
    }});
    support::write(
        &node_dir,
        "package.json",
        package_json.to_string().as_bytes(),
    );
    support::write(&node_dir, "package-lock.json", lock.to_string().as_bytes());
    support::write(
        &node_dir,
        "node_modules/a/package.json",
        br#"{"name": "a", "version": "1.0.0", "_where": "/home/someone"}"#,
    );
    support::write(
        &node_dir,
        "node_modules/a/node_modules/b/package.json",
        br#"{"name": "b", "version": "2.0.0"}"#,
    );
    support::write(&node_dir, "node_modules/.package-lock.json", b"{}");
}

#[test]
fn an_unrecorded_node_tree_that_matches_the_lock_is_adopted_without_npm() {
    let project = Project::new(&["nodejs22.x"], &["x86_64"]);
    committed_node_tree(&project);

    let adopted = project.prepare_one(&without_tools());
    assert_eq!(adopted.outcome, InstallOutcome::Adopted);
    assert!(
        project.state_file().is_file(),
        "the adopted tree is recorded"
    );
    assert!(project
        .node_dir()
        .join("node_modules/a/package.json")
        .is_file());
    assert_eq!(
        project.prepare_one(&without_tools()).outcome,
        InstallOutcome::UpToDate
    );
}

#[test]
fn an_unrecorded_node_tree_that_differs_from_the_lock_is_installed_not_adopted() {
    let cases: [(&str, &[u8]); 2] = [
        (
            "node_modules/a/node_modules/b/package.json",
            br#"{"name": "b", "version": "2.0.1"}"#,
        ),
        (
            "node_modules/jest/package.json",
            br#"{"name": "jest", "version": "29.0.0"}"#,
        ),
    ];
    for (path, content) in cases {
        let project = Project::new(&["nodejs22.x"], &["x86_64"]);
        committed_node_tree(&project);
        support::write(&project.node_dir(), path, content);

        let error = project.prepare(&without_tools()).unwrap_err();
        assert!(
            matches!(error, InstallError::ToolNotFound { tool: "npm", .. }),
            "{path}: expected an install attempt, got {error:?}"
        );
        assert!(!project.state_file().exists());
    }
}

#[test]
fn a_package_json_without_dependencies_needs_no_npm_and_writes_no_lock() {
    let project = Project::new(&["nodejs22.x"], &["x86_64"]);
    support::write(
        &project.node_dir(),
        "package.json",
        br#"{"name": "layer", "dependencies": {}, "devDependencies": {"jest": "29"}}"#,
    );

    let install = project.prepare_one(&without_tools());
    assert_eq!(install.outcome, InstallOutcome::NoDependencies);
    assert!(!project.node_dir().join("package-lock.json").exists());
    assert!(!project.node_dir().join("node_modules").exists());
}

#[test]
fn dropping_every_node_dependency_removes_the_installed_packages_without_npm() {
    let (project, _) = node_project("1.0.0");
    project.prepare_one(&offline());
    assert!(project.node_dir().join("node_modules/tiny").is_dir());

    write_node_project(&project.node_dir(), &[], true);
    let install = project.prepare_one(&without_tools());
    assert_eq!(
        install.outcome,
        InstallOutcome::Removed {
            reason: InstallReason::DependenciesChanged
        }
    );
    assert!(!project.node_dir().join("node_modules").exists());
    assert!(project.staging_leftovers().is_empty());
    assert_eq!(
        project.prepare_one(&without_tools()).outcome,
        InstallOutcome::NoDependencies
    );
}

#[test]
fn the_bundled_example_needs_no_installer() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shop");
    let manifest = lamina::manifest::Manifest::load(&example.join("lamina.toml")).unwrap();
    let copy = support::tempdir();
    for layer in manifest.layers.values() {
        crate::cli::copy_tree(&example.join(&layer.path), &copy.path().join(&layer.path));
    }

    let mut outcomes = Vec::new();
    for layer in manifest.layers.values() {
        let report = prepare_layer(
            copy.path(),
            &copy.path().join(".lamina"),
            layer,
            &without_tools(),
            &NoProgress,
        )
        .unwrap_or_else(|error| panic!("layer `{}`: {error}", layer.name));
        for install in report.installs {
            outcomes.push((layer.name.clone(), install.ecosystem, install.outcome));
        }
    }
    assert_eq!(
        outcomes,
        [
            (
                "reporting".to_owned(),
                Ecosystem::Python,
                InstallOutcome::NoDependencies
            ),
            (
                "shared".to_owned(),
                Ecosystem::Node,
                InstallOutcome::Adopted
            ),
        ]
    );
    assert!(
        !copy.path().join("layers/reporting/lib/python/lib").exists(),
        "an empty lock creates no site-packages folder"
    );
}

#[test]
#[ignore = "installs node-small from the public npm registry"]
fn npm_installs_the_node_small_corpus_from_the_registry() {
    // `../shared` beside the checkout, as the README's benchmark section describes.
    let locks = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/bench/locks/node-small");
    assert!(
        locks.is_dir(),
        "{} is missing: this test needs ../shared/bench beside the checkout",
        locks.display()
    );
    let project = Project::new(&["nodejs22.x"], &["x86_64"]);
    for file in ["package.json", "package-lock.json"] {
        let content = std::fs::read(locks.join(file)).unwrap();
        support::write(&project.node_dir(), file, &content);
    }

    let started = std::time::Instant::now();
    let install = project.prepare_one(&InstallOptions::default());
    eprintln!("node-small installed in {:?}", started.elapsed());
    assert_eq!(reason(&install), Some(InstallReason::NotInstalled));
    assert!(project
        .node_dir()
        .join("node_modules/axios/package.json")
        .is_file());

    let started = std::time::Instant::now();
    assert_eq!(
        project.prepare_one(&InstallOptions::default()).outcome,
        InstallOutcome::UpToDate
    );
    eprintln!("node-small up-to-date check in {:?}", started.elapsed());

    let digest = Command::new(locks.join("../../make-corpus.sh"))
        .arg("--digest")
        .arg(project.node_dir())
        .output()
        .unwrap();
    let expected = std::fs::read_to_string(locks.join("content.sha256")).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&digest.stdout).trim(),
        expected.trim()
    );
}

// ---------------------------------------------------------------------------------------------
// pip

/// A wheel written by the test, and the sha256 pip checks it against.
struct Wheel {
    name: String,
    version: String,
    sha256: String,
}

/// Writes a minimal wheel of a one-module package into `folder`. `tag` is the wheel's
/// compatibility tag, `py3-none-any` for a pure-Python wheel.
fn build_wheel(folder: &Path, name: &str, version: &str, tag: &str) -> Wheel {
    let dist_info = format!("{name}-{version}.dist-info");
    let files = [
        (
            format!("{name}/__init__.py"),
            format!("VERSION = {version:?}\n"),
        ),
        (
            format!("{dist_info}/METADATA"),
            format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"),
        ),
        (
            format!("{dist_info}/WHEEL"),
            format!(
                "Wheel-Version: 1.0\nGenerator: lamina-tests\nRoot-Is-Purelib: true\nTag: {tag}\n"
            ),
        ),
    ];
    let mut record = String::new();
    for (path, content) in &files {
        let digest = sha2::Sha256::digest(content.as_bytes());
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
        record.push_str(&format!("{path},sha256={encoded},{}\n", content.len()));
    }
    record.push_str(&format!("{dist_info}/RECORD,,\n"));

    std::fs::create_dir_all(folder).unwrap();
    let path = folder.join(format!("{name}-{version}-{tag}.whl"));
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let options = zip::write::SimpleFileOptions::default();
    for (entry, content) in files
        .iter()
        .chain([&(format!("{dist_info}/RECORD"), record)])
    {
        zip.start_file(entry.as_str(), options).unwrap();
        zip.write_all(content.as_bytes()).unwrap();
    }
    zip.finish().unwrap();
    let digest = sha2::Sha256::digest(std::fs::read(&path).unwrap());
    let sha256 = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    Wheel {
        name: name.into(),
        version: version.into(),
        sha256,
    }
}

/// Writes `lib/python/Pipfile.lock` with `entries` (wheel, markers) as its default section.
fn write_pipfile_lock(python_dir: &Path, python_version: &str, entries: &[(&Wheel, Option<&str>)]) {
    let mut default = serde_json::Map::new();
    for (wheel, markers) in entries {
        let mut entry = json!({"hashes": [format!("sha256:{}", wheel.sha256)],
            "index": "pypi", "version": format!("=={}", wheel.version)});
        if let Some(markers) = markers {
            entry["markers"] = json!(markers);
        }
        default.insert(wheel.name.clone(), entry);
    }
    let lock = json!({
        "_meta": {"hash": {"sha256": "0"}, "pipfile-spec": 6,
                  "requires": {"python_version": python_version}, "sources": []},
        "default": default,
        "develop": {}
    });
    support::write(
        python_dir,
        "Pipfile.lock",
        serde_json::to_vec_pretty(&lock).unwrap().as_slice(),
    );
}

/// Offline pip with `wheels` as the only source.
fn pip_options(wheels: &Path) -> InstallOptions {
    InstallOptions {
        offline: true,
        find_links: vec![wheels.to_path_buf()],
        ..InstallOptions::default()
    }
}

/// The build machine's `python3` version, `3.11`.
fn host_python_version() -> String {
    let output = Command::new("python3")
        .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn site_packages(project: &Project, python_version: &str) -> PathBuf {
    project
        .python_dir()
        .join(format!("lib/python{python_version}/site-packages"))
}

#[test]
fn pip_installs_the_lock_into_site_packages_and_then_nothing_when_only_mtimes_change() {
    let project = Project::new(&["python3.12"], &["x86_64"]);
    let wheels = project.root().join("wheels");
    let tiny = build_wheel(&wheels, "tiny", "1.0.0", "py3-none-any");
    write_pipfile_lock(&project.python_dir(), "3.12", &[(&tiny, None)]);

    let install = project.prepare_one(&pip_options(&wheels));
    assert_eq!(install.ecosystem, Ecosystem::Python);
    assert_eq!(reason(&install), Some(InstallReason::NotInstalled));
    assert_eq!(install.target, "lib/python/lib/python3.12/site-packages");
    let site = site_packages(&project, "3.12");
    assert!(site.join("tiny/__init__.py").is_file());
    assert!(site.join("tiny-1.0.0.dist-info").is_dir());
    let InstallOutcome::Installed { command, .. } = &install.outcome else {
        unreachable!()
    };
    let command = command.join(" ");
    assert!(
        command.contains("--platform manylinux2014_x86_64"),
        "{command}"
    );
    assert!(command.contains("--require-hashes --no-deps"), "{command}");

    support::age_tree(&project.python_dir());
    assert_eq!(
        project.prepare_one(&pip_options(&wheels)).outcome,
        InstallOutcome::UpToDate
    );

    let newer = build_wheel(&wheels, "tiny", "2.0.0", "py3-none-any");
    write_pipfile_lock(&project.python_dir(), "3.12", &[(&newer, None)]);
    let install = project.prepare_one(&pip_options(&wheels));
    assert_eq!(reason(&install), Some(InstallReason::DependenciesChanged));
    assert!(site.join("tiny-2.0.0.dist-info").is_dir());
    assert!(!site.join("tiny-1.0.0.dist-info").exists());
    assert!(project.staging_leftovers().is_empty());
}

#[test]
fn failed_pip_install_leaves_the_previous_tree_and_record() {
    let project = Project::new(&["python3.12"], &["x86_64"]);
    let wheels = project.root().join("wheels");
    let tiny = build_wheel(&wheels, "tiny", "1.0.0", "py3-none-any");
    write_pipfile_lock(&project.python_dir(), "3.12", &[(&tiny, None)]);
    project.prepare_one(&pip_options(&wheels));
    let record_before = std::fs::read(project.state_file()).unwrap();

    let newer = build_wheel(&wheels, "tiny", "2.0.0", "py3-none-any");
    let tampered = Wheel {
        sha256: "0".repeat(64),
        ..newer
    };
    write_pipfile_lock(&project.python_dir(), "3.12", &[(&tampered, None)]);
    let error = project.prepare(&pip_options(&wheels)).unwrap_err();

    let InstallError::InstallerFailed {
        tool,
        status,
        output,
        ..
    } = &error
    else {
        panic!("expected an installer failure, got {error}");
    };
    assert_eq!(tool, "pip install");
    assert_eq!(status.code(), Some(1));
    assert!(
        output
            .iter()
            .any(|line| line.contains("DO NOT MATCH THE HASHES")),
        "{output:#?}"
    );
    let site = site_packages(&project, "3.12");
    assert!(
        site.join("tiny-1.0.0.dist-info").is_dir(),
        "the previous install is in place"
    );
    assert_eq!(std::fs::read(project.state_file()).unwrap(), record_before);
    assert!(project.staging_leftovers().is_empty());
}

#[test]
fn a_wheel_for_another_platform_is_a_clear_error_naming_the_package() {
    let wheels_dir = support::tempdir();
    let wheels = wheels_dir.path();
    let tiny = build_wheel(wheels, "tiny", "1.0.0", "py3-none-any");
    let native = build_wheel(
        wheels,
        "armonly",
        "1.0.0",
        "cp312-cp312-manylinux2014_aarch64",
    );
    let entries = [(&tiny, None), (&native, None)];

    let x86 = Project::new(&["python3.12"], &["x86_64"]);
    write_pipfile_lock(&x86.python_dir(), "3.12", &entries);
    let error = x86.prepare(&pip_options(wheels)).unwrap_err();
    let InstallError::NoWheel {
        packages, platform, ..
    } = &error
    else {
        panic!("expected a missing wheel, got {error}");
    };
    assert_eq!(packages, "armonly");
    assert!(platform.contains("manylinux2014_x86_64"), "{platform}");
    assert!(
        !x86.python_dir().join("lib").exists(),
        "nothing is swapped in"
    );

    let arm = Project::new(&["python3.12"], &["arm64"]);
    write_pipfile_lock(&arm.python_dir(), "3.12", &entries);
    arm.prepare_one(&pip_options(wheels));
    assert!(site_packages(&arm, "3.12")
        .join("armonly/__init__.py")
        .is_file());
}

#[test]
fn markers_are_evaluated_for_lambda_not_the_build_machine() {
    let project = Project::new(&["python3.13"], &["x86_64"]);
    let wheels = project.root().join("wheels");
    let tiny = build_wheel(&wheels, "tiny", "1.0.0", "py3-none-any");
    let absent = |name: &str| Wheel {
        name: name.into(),
        version: "1.0.0".into(),
        sha256: "0".repeat(64),
    };
    let windows = absent("windowsonly");
    let old_python = absent("oldpython");
    write_pipfile_lock(
        &project.python_dir(),
        "3.13",
        &[
            (&tiny, Some("python_version >= '3.8'")),
            (&windows, Some("sys_platform == 'win32'")),
            (&old_python, Some("python_version < '3.13'")),
        ],
    );

    project.prepare_one(&pip_options(&wheels));
    let site = site_packages(&project, "3.13");
    let installed: Vec<String> = std::fs::read_dir(&site)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".dist-info"))
        .collect();
    assert_eq!(installed, ["tiny-1.0.0.dist-info"]);
    assert!(
        !support::walk(&site)
            .iter()
            .any(|path| path.extension().is_some_and(|e| e == "pyc")),
        "byte code of the build machine's Python does not belong in a python3.13 layer"
    );
}

#[test]
fn byte_code_compiled_for_the_runtime_is_hash_based() {
    let version = host_python_version();
    let project = Project::new(&[&format!("python{version}")], &["x86_64"]);
    let wheels = project.root().join("wheels");
    let tiny = build_wheel(&wheels, "tiny", "1.0.0", "py3-none-any");
    write_pipfile_lock(&project.python_dir(), &version, &[(&tiny, None)]);

    project.prepare_one(&pip_options(&wheels));
    let cache = site_packages(&project, &version).join("tiny/__pycache__");
    let pyc = std::fs::read_dir(&cache)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let header = std::fs::read(pyc).unwrap();
    let flags = u32::from_le_bytes(header[4..8].try_into().unwrap());
    assert_eq!(
        flags & 1,
        1,
        "a timestamp-based .pyc embeds the install time"
    );
}

#[test]
fn requirements_txt_is_accepted_and_a_new_runtime_version_replaces_the_old_install() {
    let mut project = Project::new(&["python3.12"], &["arm64"]);
    let wheels = project.root().join("wheels");
    build_wheel(&wheels, "tiny", "1.0.0", "py3-none-any");
    support::write(
        &project.python_dir(),
        "requirements.txt",
        b"# pinned\ntiny==1.0.0\n",
    );

    let install = project.prepare_one(&pip_options(&wheels));
    assert_eq!(install.manifest, "lib/python/requirements.txt");
    assert!(site_packages(&project, "3.12").join("tiny").is_dir());

    project.layer.runtimes = vec!["python3.13".into()];
    let install = project.prepare_one(&pip_options(&wheels));
    assert_eq!(reason(&install), Some(InstallReason::NotInstalled));
    assert!(site_packages(&project, "3.13").join("tiny").is_dir());
    assert!(!project.python_dir().join("lib/python3.12").exists());
}

#[test]
fn pipfile_without_lock_and_without_pipenv_says_how_to_lock() {
    let project = Project::new(&["python3.12"], &[]);
    support::write(
        &project.python_dir(),
        "Pipfile",
        b"[packages]\nrequests = \"*\"\n",
    );
    let options = InstallOptions {
        tools: Tools {
            pipenv: None,
            ..Tools::from_path()
        },
        ..InstallOptions::default()
    };

    let error = project.prepare(&options).unwrap_err();
    assert!(
        matches!(error, InstallError::MissingPipfileLock { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("run `pipenv lock`") && message.contains("Pipfile"),
        "{message}"
    );
}

#[test]
fn python_version_mismatch_names_both_versions() {
    let project = Project::new(&["python3.12"], &[]);
    let wheels = project.root().join("wheels");
    let tiny = build_wheel(&wheels, "tiny", "1.0.0", "py3-none-any");
    write_pipfile_lock(&project.python_dir(), "3.11", &[(&tiny, None)]);

    let error = project.prepare(&pip_options(&wheels)).unwrap_err();
    let InstallError::PythonVersionMismatch {
        runtime, locked, ..
    } = &error
    else {
        panic!("expected a version mismatch, got {error}");
    };
    assert_eq!((runtime.as_str(), locked.as_str()), ("3.12", "3.11"));
    assert!(
        error.to_string().contains("runs python 3.12 but"),
        "{error}"
    );
    assert!(!project.python_dir().join("lib").exists());
}

#[test]
fn offline_pip_without_a_wheel_folder_refuses_instead_of_publishing_an_empty_layer() {
    let project = Project::new(&["python3.12"], &[]);
    let wheels = project.root().join("wheels");
    let tiny = build_wheel(&wheels, "tiny", "1.0.0", "py3-none-any");
    write_pipfile_lock(&project.python_dir(), "3.12", &[(&tiny, None)]);

    let error = project.prepare(&offline()).unwrap_err();
    assert!(
        matches!(error, InstallError::OfflineWithoutWheels { .. }),
        "{error:?}"
    );

    project.prepare_one(&pip_options(&wheels));
    let report = project.prepare(&offline()).unwrap();
    assert!(report.offline);
    assert_eq!(
        report.installs[0].outcome,
        InstallOutcome::UpToDate,
        "installed is enough"
    );
}

#[test]
fn an_empty_pipfile_lock_needs_no_pip_and_removes_what_an_install_left() {
    let project = Project::new(&["python3.12"], &["x86_64"]);
    let wheels = project.root().join("wheels");
    let tiny = build_wheel(&wheels, "tiny", "1.0.0", "py3-none-any");
    write_pipfile_lock(&project.python_dir(), "3.12", &[(&tiny, None)]);
    project.prepare_one(&pip_options(&wheels));
    support::write(&project.python_dir(), "own_module.py", b"X = 1\n");

    write_pipfile_lock(&project.python_dir(), "3.12", &[]);
    let install = project.prepare_one(&without_tools());
    assert_eq!(
        install.outcome,
        InstallOutcome::Removed {
            reason: InstallReason::DependenciesChanged
        }
    );
    assert!(
        !project.python_dir().join("lib").exists(),
        "site-packages and the folders around it are gone"
    );
    assert!(project.python_dir().join("own_module.py").is_file());
    assert_eq!(
        project.prepare_one(&without_tools()).outcome,
        InstallOutcome::NoDependencies
    );
}

#[test]
fn a_pipfile_without_packages_needs_neither_pipenv_nor_pip() {
    let project = Project::new(&["nodejs22.x", "python3.12"], &["x86_64"]);
    support::write(
        &project.python_dir(),
        "Pipfile",
        b"[[source]]\nurl = \"https://pypi.org/simple\"\n\n[packages]\n\n[dev-packages]\n\
          pytest = \"*\"\n\n[requires]\npython_version = \"3.12\"\n",
    );

    let install = project.prepare_one(&without_tools());
    assert_eq!(install.outcome, InstallOutcome::NoDependencies);
    assert_eq!(install.manifest, "lib/python/Pipfile");
    assert!(!project.python_dir().join("Pipfile.lock").exists());

    support::write(
        &project.python_dir(),
        "Pipfile",
        b"[packages]\nrequests = \"*\"\n\n[requires]\npython_version = \"3.11\"\n",
    );
    let error = project.prepare(&without_tools()).unwrap_err();
    assert!(
        matches!(error, InstallError::MissingPipfileLock { .. }),
        "a Pipfile with packages still needs a lock: {error:?}"
    );
}

#[test]
fn unrecorded_site_packages_that_match_the_lock_are_adopted_without_pip() {
    let project = Project::new(&["python3.12"], &["x86_64"]);
    let wheels = project.root().join("wheels");
    let tiny = build_wheel(&wheels, "Tiny_Pkg", "1.0.0", "py3-none-any");
    write_pipfile_lock(&project.python_dir(), "3.12", &[(&tiny, None)]);
    project.prepare_one(&pip_options(&wheels));
    std::fs::remove_file(project.state_file()).unwrap();

    let install = project.prepare_one(&without_tools());
    assert_eq!(install.outcome, InstallOutcome::Adopted);
    assert_eq!(
        project.prepare_one(&without_tools()).outcome,
        InstallOutcome::UpToDate
    );

    let newer = build_wheel(&wheels, "Tiny_Pkg", "2.0.0", "py3-none-any");
    write_pipfile_lock(&project.python_dir(), "3.12", &[(&newer, None)]);
    std::fs::remove_file(project.state_file()).unwrap();
    let error = project.prepare(&without_tools()).unwrap_err();
    assert!(
        matches!(error, InstallError::OfflineWithoutWheels { .. }),
        "a tree of another version is installed, not adopted: {error:?}"
    );
}
