//! The engine end to end through the library: scan, cache, digest and pack of real trees.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use lamina::build::{
    self, BuildOptions, BuildReport, BuildStatus, FingerprintMode, StateDir, Subject,
};
use lamina::cache::{Cache, Owner};
use lamina::progress::NoProgress;
use lamina::scan::SourceMapping;

use crate::support::{age_tree, tempdir, write};

/// A project folder with one layer at `layers/shared`.
struct Project {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Project {
    fn new() -> Project {
        let dir = tempdir();
        let root = dir.path().to_path_buf();
        Project { _dir: dir, root }
    }

    fn layer(&self) -> PathBuf {
        self.root.join("layers/shared")
    }

    fn write(&self, relative: &str, content: &str) -> PathBuf {
        write(&self.layer(), relative, content.as_bytes())
    }

    fn build(&self, mode: FingerprintMode) -> BuildReport {
        self.run(BuildOptions {
            mode,
            ..BuildOptions::default()
        })
    }

    /// Runs `statement` on the project's cache database, as someone editing it by hand would,
    /// and returns how many rows it changed.
    fn edit_cache(&self, statement: &str) -> usize {
        let db = StateDir::new(&self.root).cache_db();
        let connection = rusqlite::Connection::open(db).unwrap();
        connection.execute(statement, []).unwrap()
    }

    fn count_cache_rows(&self, table: &str) -> i64 {
        let db = StateDir::new(&self.root).cache_db();
        let connection = rusqlite::Connection::open(db).unwrap();
        let count = format!("SELECT count(*) FROM {table}");
        connection.query_row(&count, [], |row| row.get(0)).unwrap()
    }

    fn run(&self, options: BuildOptions) -> BuildReport {
        let state = StateDir::new(&self.root);
        let mut cache = Cache::open(&state.cache_db()).unwrap();
        let subject = Subject {
            owner: Owner::Layer("shared".into()),
            root: self.layer(),
            sources: SourceMapping::layer(),
        };
        build::build(&state, &mut cache, &subject, &options, &NoProgress).unwrap()
    }
}

/// A small node and Python layer with opt/ assets, a nested and a scoped package, a link and an
/// executable.
fn populate(project: &Project) {
    project.write(
        "lib/nodejs/package.json",
        r#"{"dependencies":{"left":"1.0.0"}}"#,
    );
    project.write(
        "lib/nodejs/node_modules/left/package.json",
        r#"{"name":"left","version":"1.0.0"}"#,
    );
    project.write(
        "lib/nodejs/node_modules/left/index.js",
        "module.exports = 'left';\n",
    );
    project.write(
        "lib/nodejs/node_modules/left/bin/cli.js",
        "#!/usr/bin/env node\n",
    );
    project.write(
        "lib/nodejs/node_modules/left/node_modules/inner/package.json",
        r#"{"name":"inner","version":"2.0.0"}"#,
    );
    project.write(
        "lib/nodejs/node_modules/left/node_modules/inner/index.js",
        "exports.x = 1;\n",
    );
    project.write(
        "lib/nodejs/node_modules/@scope/pkg/package.json",
        r#"{"name":"@scope/pkg"}"#,
    );
    project.write(
        "lib/nodejs/node_modules/@scope/pkg/lib/a.js",
        "exports.a = 1;\n",
    );
    project.write("lib/python/Pipfile", "[packages]\n");
    project.write("lib/python/mod/__init__.py", "VALUE = 1\n");
    project.write("opt/config/settings.json", "{\"debug\": false}\n");
    let cli = project
        .layer()
        .join("lib/nodejs/node_modules/left/bin/cli.js");
    std::fs::set_permissions(&cli, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = project.layer().join("lib/nodejs/node_modules/.bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink("../left/bin/cli.js", bin.join("left")).unwrap();
    age_tree(&project.layer());
}

fn zip_bytes(report: &BuildReport) -> Vec<u8> {
    std::fs::read(report.zip_path.as_ref().unwrap()).unwrap()
}

#[test]
fn warm_run_with_nothing_changed_reads_no_file() {
    let project = Project::new();
    populate(&project);
    let cold = project.build(FingerprintMode::Stat);
    assert_eq!(cold.status, BuildStatus::Built);
    assert!(cold.stats.files_hashed > 5);
    assert!(cold.stats.entries_compressed > 5);

    let warm = project.build(FingerprintMode::Stat);
    assert_eq!(warm.stats.files_hashed, 0, "{:?}", warm.stats);
    assert_eq!(warm.stats.bytes_hashed, 0);
    assert_eq!(warm.stats.entries_compressed, 0);
    assert_eq!(warm.status, BuildStatus::Cached);
    assert_eq!(warm.digest, cold.digest);
    assert!(!warm.changed);
}

#[test]
fn files_written_during_a_scan_are_verified_again() {
    let project = Project::new();
    populate(&project);
    // Not aged: written just now, in the same clock tick as the scan may begin.
    project.write("opt/fresh.txt", "new");
    let state = StateDir::new(&project.root);
    std::fs::create_dir_all(&state.path).unwrap();
    project.build(FingerprintMode::Stat);
    // Make the file's mtime equal to the stamp the next scan will take, whatever the clock did.
    let far_future = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    let file = std::fs::File::options()
        .write(true)
        .open(project.layer().join("opt/fresh.txt"));
    file.unwrap()
        .set_times(std::fs::FileTimes::new().set_modified(far_future))
        .unwrap();
    let first = project.build(FingerprintMode::Stat);
    assert_eq!(
        first.stats.files_hashed, 1,
        "stat changed, so the file is read: {:?}",
        first.stats
    );
    let second = project.build(FingerprintMode::Stat);
    assert_eq!(
        second.stats.stale.get("racy"),
        Some(&1),
        "{:?}",
        second.stats
    );
}

/// Applies `edit` to a built tree and returns the digests before and after.
fn digest_change(edit: impl FnOnce(&Project)) -> (BuildReport, BuildReport) {
    let project = Project::new();
    populate(&project);
    let before = project.build(FingerprintMode::Stat);
    edit(&project);
    let after = project.build(FingerprintMode::Stat);
    (before, after)
}

#[test]
fn in_place_edit_inside_node_modules_changes_the_digest() {
    let (before, after) = digest_change(|project| {
        // Same size, package.json untouched.
        project.write(
            "lib/nodejs/node_modules/left/index.js",
            "module.exports = 'LEFT';\n",
        );
    });
    assert_ne!(before.digest, after.digest);
    assert_eq!(
        after.changes.modified,
        vec!["nodejs/node_modules/left/index.js".to_string()]
    );
    assert_eq!(after.stats.files_hashed, 1);
}

#[test]
fn chmod_plus_x_changes_the_digest() {
    let (before, after) = digest_change(|project| {
        let path = project.layer().join("opt/config/settings.json");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    });
    assert_ne!(before.digest, after.digest);
}

#[test]
fn group_write_bit_alone_does_not_change_the_digest() {
    let (before, after) = digest_change(|project| {
        let path = project.layer().join("opt/config/settings.json");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o664)).unwrap();
    });
    assert_eq!(before.digest, after.digest);
}

#[test]
fn touch_alone_does_not_change_the_digest() {
    let (before, after) = digest_change(|project| {
        let path = project
            .layer()
            .join("lib/nodejs/node_modules/left/index.js");
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_times(std::fs::FileTimes::new().set_modified(std::time::SystemTime::now()))
            .unwrap();
    });
    assert_eq!(before.digest, after.digest);
    assert_eq!(after.status, BuildStatus::Cached);
    assert_eq!(
        after.stats.files_hashed, 1,
        "the touched file is read again, nothing else"
    );
}

#[test]
fn rename_changes_the_digest() {
    let (before, after) = digest_change(|project| {
        let dir = project.layer().join("lib/python/mod");
        std::fs::rename(dir.join("__init__.py"), dir.join("init.py")).unwrap();
    });
    assert_ne!(before.digest, after.digest);
    assert_eq!(after.changes.added, vec!["python/mod/init.py".to_string()]);
    assert_eq!(
        after.changes.removed,
        vec!["python/mod/__init__.py".to_string()]
    );
}

#[test]
fn added_and_removed_files_change_the_digest() {
    let (before, added) = digest_change(|project| {
        project.write("opt/extra.txt", "x");
    });
    assert_ne!(before.digest, added.digest);

    let (before, removed) = digest_change(|project| {
        std::fs::remove_file(project.layer().join("opt/config/settings.json")).unwrap();
    });
    assert_ne!(before.digest, removed.digest);
}

#[test]
fn an_added_empty_file_changes_the_digest() {
    let (before, after) = digest_change(|project| {
        project.write("lib/nodejs/node_modules/left/empty.js", "");
    });
    assert_ne!(before.digest, after.digest);
}

#[test]
fn content_mode_reads_every_file() {
    let project = Project::new();
    populate(&project);
    let cold = project.build(FingerprintMode::Stat);
    let content = project.build(FingerprintMode::Content);
    assert_eq!(content.digest, cold.digest);
    assert_eq!(content.stats.files_hashed, cold.stats.files_hashed);
}

#[test]
fn manifests_mode_agrees_with_stat_mode_on_an_untouched_tree() {
    let project = Project::new();
    populate(&project);
    let stat = project.build(FingerprintMode::Stat);
    let manifests = project.build(FingerprintMode::Manifests);
    assert_eq!(manifests.digest, stat.digest);
    assert!(
        manifests.stats.packages_reused >= 3,
        "{:?}",
        manifests.stats
    );
    assert_eq!(manifests.stats.files_hashed, 0);
}

#[test]
fn manifests_mode_sees_a_changed_package_json_but_not_an_edit_beside_it() {
    let project = Project::new();
    populate(&project);
    let first = project.build(FingerprintMode::Stat);

    // The documented blind spot: an edit inside a package whose package.json is unchanged.
    project.write(
        "lib/nodejs/node_modules/left/index.js",
        "module.exports = 'LEFT';\n",
    );
    let blind = project.build(FingerprintMode::Manifests);
    assert_eq!(blind.digest, first.digest);

    project.write(
        "lib/nodejs/node_modules/left/package.json",
        r#"{"name":"left","version":"1.0.1"}"#,
    );
    let seen = project.build(FingerprintMode::Manifests);
    assert_ne!(seen.digest, first.digest);
    let stat = project.build(FingerprintMode::Stat);
    assert_eq!(
        stat.digest, seen.digest,
        "after the walk, both modes agree again"
    );
}

#[test]
fn manifests_mode_follows_the_last_edit_a_stat_build_saw_inside_a_package() {
    let project = Project::new();
    populate(&project);
    let pristine = project.build(FingerprintMode::Stat);

    // An edit that leaves the package's package.json (its fingerprint) as it was.
    let index = "lib/nodejs/node_modules/left/index.js";
    project.write(index, "module.exports = 'LEFT';\n");
    age_tree(&project.layer());
    let edited = project.build(FingerprintMode::Stat);
    assert_ne!(edited.digest, pristine.digest);
    // The package's cached file list is the edited one now, not the pristine one, which would
    // give the digest of a tree without the edit and so push an older version.
    assert_eq!(
        project.build(FingerprintMode::Manifests).digest,
        edited.digest
    );

    // And back: the pristine list again, so both modes agree on the reverted tree.
    project.write(index, "module.exports = 'left';\n");
    age_tree(&project.layer());
    assert_eq!(project.build(FingerprintMode::Stat).digest, pristine.digest);
    assert_eq!(
        project.build(FingerprintMode::Manifests).digest,
        pristine.digest
    );
}

/// Builds the layer at `layers/NAME` of `project` in `mode`.
fn build_layer_named(project: &Project, name: &str, mode: FingerprintMode) -> BuildReport {
    let state = StateDir::new(&project.root);
    let mut cache = Cache::open(&state.cache_db()).unwrap();
    let subject = Subject {
        owner: Owner::Layer(name.into()),
        root: project.root.join("layers").join(name),
        sources: SourceMapping::layer(),
    };
    let options = BuildOptions {
        mode,
        ..BuildOptions::default()
    };
    build::build(&state, &mut cache, &subject, &options, &NoProgress).unwrap()
}

#[test]
fn copies_of_a_package_that_differ_are_walked_in_manifests_mode() {
    let project = Project::new();
    populate(&project);
    // Two copies of one package, under the same package.json.
    for folder in [
        "node_modules/twin",
        "node_modules/@scope/pkg/node_modules/twin",
    ] {
        let folder = format!("lib/nodejs/{folder}");
        project.write(&format!("{folder}/package.json"), r#"{"name":"twin"}"#);
        project.write(&format!("{folder}/index.js"), "exports.twin = 1;\n");
    }
    age_tree(&project.layer());
    let same = project.build(FingerprintMode::Stat);
    assert_eq!(
        project.build(FingerprintMode::Manifests).digest,
        same.digest
    );

    project.write(
        "lib/nodejs/node_modules/twin/index.js",
        "exports.twin = 2;\n",
    );
    age_tree(&project.layer());
    let differ = project.build(FingerprintMode::Stat);
    assert_ne!(differ.digest, same.digest);
    for _ in 0..2 {
        let manifests = project.build(FingerprintMode::Manifests);
        assert_eq!(manifests.digest, differ.digest);
    }
}

#[test]
fn another_layer_with_an_unedited_copy_does_not_bring_the_old_list_back() {
    let project = Project::new();
    populate(&project);
    let pristine = project.build(FingerprintMode::Stat);
    project.write(
        "lib/nodejs/node_modules/left/index.js",
        "module.exports = 'patched';\n",
    );
    age_tree(&project.layer());
    let patched = project.build(FingerprintMode::Stat);
    assert_ne!(patched.digest, pristine.digest);

    // A second layer holding the package as it was, built for the first time.
    let other = project.root.join("layers/other");
    copy_dir(&project.layer(), &other);
    write(
        &other,
        "lib/nodejs/node_modules/left/index.js",
        b"module.exports = 'left';\n",
    );
    age_tree(&other);
    let other_stat = build_layer_named(&project, "other", FingerprintMode::Stat);
    assert_eq!(other_stat.digest, pristine.digest);

    assert_eq!(
        project.build(FingerprintMode::Manifests).digest,
        patched.digest
    );
    let other_manifests = build_layer_named(&project, "other", FingerprintMode::Manifests);
    assert_eq!(other_manifests.digest, pristine.digest);
}

/// Copies a folder with `cp -a`, links and modes kept.
fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn the_zip_opens_with_unzip_and_holds_exactly_the_expected_paths_and_modes() {
    let project = Project::new();
    populate(&project);
    let report = project.build(FingerprintMode::Stat);
    let zip = report.zip_path.unwrap();
    let test = Command::new("unzip").arg("-tq").arg(&zip).output().unwrap();
    assert!(
        test.status.success(),
        "{}",
        String::from_utf8_lossy(&test.stdout)
    );

    let listing = Command::new("unzip").arg("-Z").arg(&zip).output().unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    let mut rows: Vec<(String, String)> = listing
        .lines()
        .filter(|line| line.starts_with(['-', 'd', 'l']))
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields[fields.len() - 1].to_string(), fields[0].to_string())
        })
        .collect();
    rows.sort();
    let expected = [
        ("config/", "drwxr-xr-x"),
        ("config/settings.json", "-rw-r--r--"),
        ("nodejs/", "drwxr-xr-x"),
        ("nodejs/node_modules/", "drwxr-xr-x"),
        ("nodejs/node_modules/.bin/", "drwxr-xr-x"),
        ("nodejs/node_modules/.bin/left", "lrwxrwxrwx"),
        ("nodejs/node_modules/@scope/", "drwxr-xr-x"),
        ("nodejs/node_modules/@scope/pkg/", "drwxr-xr-x"),
        ("nodejs/node_modules/@scope/pkg/lib/", "drwxr-xr-x"),
        ("nodejs/node_modules/@scope/pkg/lib/a.js", "-rw-r--r--"),
        ("nodejs/node_modules/@scope/pkg/package.json", "-rw-r--r--"),
        ("nodejs/node_modules/left/", "drwxr-xr-x"),
        ("nodejs/node_modules/left/bin/", "drwxr-xr-x"),
        ("nodejs/node_modules/left/bin/cli.js", "-rwxr-xr-x"),
        ("nodejs/node_modules/left/index.js", "-rw-r--r--"),
        ("nodejs/node_modules/left/node_modules/", "drwxr-xr-x"),
        ("nodejs/node_modules/left/node_modules/inner/", "drwxr-xr-x"),
        (
            "nodejs/node_modules/left/node_modules/inner/index.js",
            "-rw-r--r--",
        ),
        (
            "nodejs/node_modules/left/node_modules/inner/package.json",
            "-rw-r--r--",
        ),
        ("nodejs/node_modules/left/package.json", "-rw-r--r--"),
        ("nodejs/package.json", "-rw-r--r--"),
        ("python/", "drwxr-xr-x"),
        ("python/Pipfile", "-rw-r--r--"),
        ("python/mod/", "drwxr-xr-x"),
        ("python/mod/__init__.py", "-rw-r--r--"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(path, mode)| (path.to_string(), mode.to_string()))
        .collect();
    assert_eq!(rows, expected);
}

/// Creates the populated tree under `umask`, in reverse order, so that folder order on disk and
/// group bits differ from a normal creation.
fn populate_reversed_with_umask(project: &Project) {
    let scratch = Project::new();
    populate(&scratch);
    let mut files: Vec<PathBuf> = crate::support::walk(&scratch.layer());
    files.sort();
    files.reverse();
    for path in files {
        let relative = path.strip_prefix(scratch.layer()).unwrap();
        let dest = project.layer().join(relative);
        let metadata = std::fs::symlink_metadata(&path).unwrap();
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        if metadata.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&path).unwrap(), &dest).unwrap();
        } else if metadata.is_file() {
            std::fs::copy(&path, &dest).unwrap();
            let owner_exec = metadata.permissions().mode() & 0o100;
            let mode = 0o664 | owner_exec | (owner_exec >> 3);
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode)).unwrap();
        } else {
            std::fs::create_dir_all(&dest).unwrap();
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o775)).unwrap();
        }
    }
}

#[test]
fn same_tree_in_two_folders_gives_byte_identical_zips() {
    let first = Project::new();
    populate(&first);
    let second = Project::new();
    populate_reversed_with_umask(&second);
    // Fresh mtimes on the second tree, an hour apart from the first.
    let a = first.build(FingerprintMode::Stat);
    let b = second.build(FingerprintMode::Stat);
    assert_eq!(a.digest, b.digest);
    assert_eq!(zip_bytes(&a), zip_bytes(&b));
}

#[test]
fn time_zone_and_umask_of_the_process_do_not_change_zip_bytes() {
    let binary = env!("CARGO_BIN_EXE_lamina");
    let mut outputs = Vec::new();
    for (tz, umask) in [("UTC", "0022"), ("Pacific/Kiritimati", "0002")] {
        let project = Project::new();
        populate(&project);
        std::fs::write(
            project.root.join("lamina.toml"),
            "[project]\nname = \"t\"\n\n[layers.shared]\nruntimes = [\"nodejs22.x\"]\n",
        )
        .unwrap();
        let script = format!("umask {umask} && exec \"$0\" build --json");
        let output = Command::new("sh")
            .args(["-c", &script, binary])
            .current_dir(&project.root)
            .env("TZ", tz)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let zip = zip_path_from_json(&project.root, &output.stdout);
        outputs.push(std::fs::read(zip).unwrap());
    }
    assert_eq!(outputs[0], outputs[1]);
}

fn zip_path_from_json(root: &Path, stdout: &[u8]) -> PathBuf {
    let json: serde_json::Value = serde_json::from_slice(stdout).unwrap();
    let zip = json["layers"][0]["zip"].as_str().unwrap();
    root.join(zip)
}

#[test]
fn a_run_killed_midway_leaves_a_cache_the_next_run_can_use() {
    let project = Project::new();
    populate(&project);
    for index in 0..300 {
        project.write(&format!("opt/bulk/{index}.txt"), &"x".repeat(4096 + index));
    }
    std::fs::write(
        project.root.join("lamina.toml"),
        "[project]\nname = \"t\"\n\n[layers.shared]\nruntimes = [\"nodejs22.x\"]\n",
    )
    .unwrap();
    let expected = project.build(FingerprintMode::Content).digest;
    std::fs::remove_dir_all(project.root.join(".lamina")).unwrap();

    // Kill a cold build at several moments; whatever it left behind must not mislead the next.
    for delay_ms in [5, 20, 60, 150] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lamina"))
            .arg("build")
            .current_dir(&project.root)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().ok();
        child.wait().unwrap();
        let report = project.build(FingerprintMode::Stat);
        assert_eq!(report.digest, expected, "after a kill at {delay_ms} ms");
        let zip = report.zip_path.unwrap();
        assert!(Command::new("unzip")
            .arg("-tq")
            .arg(zip)
            .status()
            .unwrap()
            .success());
        std::fs::remove_dir_all(project.root.join(".lamina")).unwrap();
    }
}

/// A real node_modules from `npm ci` of a small, pinned lock file (axios, jsonwebtoken, uuid; the
/// same lock as the node-small benchmark corpus).
#[test]
fn a_real_npm_tree_builds_and_every_mode_agrees() {
    if Command::new("npm").arg("--version").output().is_err() {
        eprintln!("skipped: npm is not installed, so no real node_modules can be made");
        return;
    }
    let project = Project::new();
    let nodejs = project.layer().join("lib/nodejs");
    std::fs::create_dir_all(&nodejs).unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/node-small");
    for name in ["package.json", "package-lock.json"] {
        std::fs::copy(fixtures.join(name), nodejs.join(name)).unwrap();
    }
    let npm_cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("npm-cache");
    let status = Command::new("npm")
        .args([
            "ci",
            "--omit=dev",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
        ])
        .current_dir(&nodejs)
        .env("npm_config_cache", npm_cache)
        .status()
        .unwrap();
    assert!(status.success(), "npm ci failed");
    age_tree(&project.layer());

    let cold = project.build(FingerprintMode::Stat);
    assert!(cold.stats.files_scanned > 600, "{:?}", cold.stats);
    let warm = project.build(FingerprintMode::Stat);
    assert_eq!(warm.stats.files_hashed, 0);
    let manifests = project.build(FingerprintMode::Manifests);
    assert_eq!(manifests.digest, cold.digest);
    assert!(
        manifests.stats.packages_reused > 20,
        "{:?}",
        manifests.stats
    );
    let content = project.build(FingerprintMode::Content);
    assert_eq!(content.digest, cold.digest);

    let target = nodejs.join("node_modules/uuid/package.json");
    assert!(target.exists());
    project.write("lib/nodejs/node_modules/axios/index.js", "// edited\n");
    let edited = project.build(FingerprintMode::Stat);
    assert_ne!(edited.digest, cold.digest);
    assert_eq!(
        edited.changes.modified,
        vec!["nodejs/node_modules/axios/index.js".to_string()]
    );
    assert!(
        edited.stats.entries_reused > 600,
        "unchanged entries are copied: {:?}",
        edited.stats
    );
    let unzip = Command::new("unzip")
        .arg("-tq")
        .arg(edited.zip_path.unwrap())
        .status()
        .unwrap();
    assert!(unzip.success());
}

fn try_build(project: &Project, root: PathBuf, owner: Owner) -> Result<BuildReport, String> {
    let state = StateDir::new(&project.root);
    let mut cache = Cache::open(&state.cache_db()).unwrap();
    let (root, sources) = match owner {
        Owner::Layer(_) => (root, SourceMapping::layer()),
        // As the command line builds a function: from the project root, with the code folder
        // as its one source.
        Owner::Function(_) => {
            let source = root.strip_prefix(&project.root).unwrap().to_str().unwrap();
            let sources = SourceMapping::function(source);
            (project.root.clone(), sources)
        }
    };
    let subject = Subject {
        owner,
        root,
        sources,
    };
    build::build(
        &state,
        &mut cache,
        &subject,
        &BuildOptions::default(),
        &NoProgress,
    )
    .map_err(|error| error.to_string())
}

#[test]
fn a_missing_layer_folder_is_an_error_not_an_empty_layer() {
    let project = Project::new();
    let missing = project.root.join("layers/typo");
    let error = try_build(&project, missing, Owner::Layer("x".into())).unwrap_err();
    assert!(error.contains("layer `x`"), "{error}");
    assert!(error.contains("layers/typo` does not exist"), "{error}");
    assert!(error.contains("`path`"), "{error}");
}

#[test]
fn a_missing_function_code_folder_is_an_error_not_an_empty_zip() {
    let project = Project::new();
    let missing = project.root.join("functions/f/src");
    let error = try_build(&project, missing, Owner::Function("f".into())).unwrap_err();
    assert!(error.contains("function `f`"), "{error}");
    assert!(error.contains("`source`"), "{error}");

    let file = write(&project.root, "functions/g/src", b"not a folder");
    let error = try_build(&project, file, Owner::Function("g".into())).unwrap_err();
    assert!(error.contains("is not a folder"), "{error}");
}

#[test]
fn an_empty_layer_or_code_folder_is_an_error_not_an_empty_zip() {
    let project = Project::new();
    // Folders alone hold no code either.
    let layer = project.root.join("layers/bare");
    std::fs::create_dir_all(layer.join("lib/nodejs/node_modules")).unwrap();
    std::fs::create_dir_all(layer.join("opt")).unwrap();
    let error = try_build(&project, layer, Owner::Layer("bare".into())).unwrap_err();
    assert!(error.contains("layer `bare`"), "{error}");
    assert!(error.contains("layers/bare` holds no files"), "{error}");

    let code = project.root.join("functions/f/src");
    std::fs::create_dir_all(&code).unwrap();
    let error = try_build(&project, code.clone(), Owner::Function("f".into())).unwrap_err();
    assert!(error.contains("function `f`"), "{error}");
    assert!(error.contains("functions/f/src` holds no files"), "{error}");

    write(
        &project.root,
        "functions/f/src/index.js",
        b"exports.handler = 1;",
    );
    try_build(&project, code, Owner::Function("f".into())).unwrap();
}

#[test]
fn a_wrong_hash_in_the_cache_is_forgotten_after_the_build_that_finds_it() {
    let project = Project::new();
    populate(&project);
    project.build(FingerprintMode::Stat);
    project.write("opt/config/settings.json", "{\"debug\": true}\n");
    age_tree(&project.layer());
    project.build(FingerprintMode::Stat);

    // A cache whose row has the right stat data and a wrong hash (bit rot, a restored copy).
    let changed = project.edit_cache(
        "UPDATE files SET content_hash = zeroblob(32) WHERE path = 'opt/config/settings.json'",
    );
    assert_eq!(changed, 1);
    std::fs::remove_dir_all(project.root.join(".lamina/build")).unwrap();

    let error = try_build(&project, project.layer(), Owner::Layer("shared".into())).unwrap_err();
    assert!(error.contains("settings.json"), "{error}");
    let report = project.build(FingerprintMode::Stat);
    assert_eq!(report.stats.files_hashed, 1, "{:?}", report.stats);
    assert_eq!(
        report.digest,
        project.build(FingerprintMode::Content).digest
    );
}

fn status(project: &Project, mode: FingerprintMode) -> BuildReport {
    project.run(BuildOptions {
        mode,
        status_only: true,
        ..BuildOptions::default()
    })
}

#[test]
fn unchanged_listing_reuses_the_digest_the_full_path_computes() {
    let project = Project::new();
    populate(&project);
    let cold = project.build(FingerprintMode::Stat);
    let shortcut = status(&project, FingerprintMode::Stat);
    assert_eq!(shortcut.stats.listings_reused, 1, "{:?}", shortcut.stats);

    // Content mode never takes the shortcut: it is the full path's answer.
    let full = status(&project, FingerprintMode::Content);
    assert_eq!(full.stats.listings_reused, 0);
    assert_eq!(shortcut.digest, cold.digest);
    assert_eq!(shortcut.digest, full.digest);
    assert_eq!(shortcut.entries, full.entries);
    assert_eq!(shortcut.unzipped_bytes, full.unzipped_bytes);
    assert_eq!(shortcut.stats.files_scanned, full.stats.files_scanned);
    assert!(!shortcut.changed);

    let warm_build = project.build(FingerprintMode::Stat);
    assert_eq!(warm_build.stats.listings_reused, 1);
    assert_eq!(warm_build.status, BuildStatus::Cached);
    assert_eq!(warm_build.zip, cold.zip);
}

#[test]
fn an_unchanged_tree_is_known_by_its_snapshot_and_a_hidden_change_is_not() {
    let project = Project::new();
    populate(&project);
    age_tree(&project.layer());
    let cold = project.build(FingerprintMode::Stat);
    // The first unchanged run scans and stores the snapshot; the next ones check against it.
    let first = status(&project, FingerprintMode::Stat);
    assert_eq!(first.stats.listings_reused, 1, "{:?}", first.stats);
    assert_eq!(first.stats.snapshots_matched, 0);
    let second = status(&project, FingerprintMode::Stat);
    assert_eq!(second.stats.snapshots_matched, 1, "{:?}", second.stats);
    assert_eq!(second.digest, cold.digest);
    assert_eq!(second.entries, cold.entries);
    assert_eq!(second.top_level_dirs, cold.top_level_dirs);
    assert_eq!(second.stats.files_scanned, cold.stats.files_scanned);
    let warm = project.build(FingerprintMode::Stat);
    assert_eq!(warm.stats.snapshots_matched, 1);
    assert_eq!(warm.status, BuildStatus::Cached);
    assert_eq!(warm.zip, cold.zip);

    // A file added to a folder whose mtime is then set back: its ctime still tells.
    let folder = project.layer().join("lib/nodejs/node_modules/left");
    let mtime = std::fs::metadata(&folder).unwrap().modified().unwrap();
    project.write("lib/nodejs/node_modules/left/extra.js", "1;\n");
    let times = std::fs::FileTimes::new().set_modified(mtime);
    std::fs::File::open(&folder)
        .unwrap()
        .set_times(times)
        .unwrap();
    let changed = status(&project, FingerprintMode::Stat);
    assert_eq!(changed.stats.snapshots_matched, 0);
    assert_eq!(
        changed.changes.added,
        vec!["nodejs/node_modules/left/extra.js".to_string()]
    );
    assert_eq!(
        changed.digest,
        status(&project, FingerprintMode::Content).digest
    );

    // The build records the new listing and drops the old listing's snapshot with it.
    assert_eq!(project.count_cache_rows("listing_snapshots"), 1);
    project.build(FingerprintMode::Stat);
    assert_eq!(project.count_cache_rows("listing_snapshots"), 0);
}

#[test]
fn a_snapshot_that_is_not_a_blob_only_costs_a_scan() {
    let project = Project::new();
    populate(&project);
    age_tree(&project.layer());
    let cold = project.build(FingerprintMode::Stat);
    status(&project, FingerprintMode::Stat);
    let edited = project.edit_cache("UPDATE listing_snapshots SET snapshot = 'not a snapshot'");
    assert_eq!(edited, 1);

    let scanned = status(&project, FingerprintMode::Stat);
    assert_eq!(scanned.stats.snapshots_matched, 0);
    assert_eq!(scanned.stats.listings_reused, 1);
    assert_eq!(scanned.digest, cold.digest);
    // The scan stored a good snapshot again.
    let matched = status(&project, FingerprintMode::Stat);
    assert_eq!(matched.stats.snapshots_matched, 1);
}

#[test]
fn same_size_edit_is_seen_although_a_listing_was_recorded() {
    let project = Project::new();
    populate(&project);
    let cold = project.build(FingerprintMode::Stat);
    assert_eq!(
        status(&project, FingerprintMode::Stat)
            .stats
            .listings_reused,
        1
    );

    let path = project.write("opt/config/settings.json", "{\"debug\": true }\n");
    let past = std::time::SystemTime::now() - std::time::Duration::from_secs(1800);
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_times(std::fs::FileTimes::new().set_modified(past))
        .unwrap();
    let edited = status(&project, FingerprintMode::Stat);
    assert_eq!(edited.stats.listings_reused, 0);
    assert_ne!(edited.digest, cold.digest);
    assert_eq!(
        edited.changes.modified,
        vec!["config/settings.json".to_string()]
    );
}

#[test]
fn manifests_mode_reuses_its_own_recorded_listing() {
    let project = Project::new();
    populate(&project);
    let cold = project.build(FingerprintMode::Stat);
    let first = status(&project, FingerprintMode::Manifests);
    assert_eq!(first.stats.listings_reused, 0, "no manifests listing yet");
    let second = status(&project, FingerprintMode::Manifests);
    assert_eq!(second.stats.listings_reused, 1, "{:?}", second.stats);
    assert_eq!(second.digest, cold.digest);
    assert_eq!(second.stats.files_scanned, cold.stats.files_scanned);
}

#[test]
fn status_with_nothing_changed_writes_nothing_to_the_cache() {
    let project = Project::new();
    populate(&project);
    project.build(FingerprintMode::Stat);
    // The first status of each mode may record its listing; after that nothing is new.
    status(&project, FingerprintMode::Stat);
    status(&project, FingerprintMode::Manifests);
    let files = |name: &str| std::fs::read(project.root.join(".lamina").join(name)).ok();
    let before = (files("cache.db"), files("cache.db-wal"));
    status(&project, FingerprintMode::Stat);
    status(&project, FingerprintMode::Manifests);
    assert!(before == (files("cache.db"), files("cache.db-wal")));
}

#[test]
fn status_in_manifests_mode_does_not_refresh_package_lists() {
    let project = Project::new();
    populate(&project);
    project.build(FingerprintMode::Stat);
    let state = StateDir::new(&project.root);
    let cache = Cache::open(&state.cache_db()).unwrap();
    let last_used = || -> i64 {
        cache
            .connection()
            .query_row("SELECT max(last_used_at) FROM packages", [], |row| {
                row.get(0)
            })
            .unwrap()
    };
    cache
        .connection()
        .execute("UPDATE packages SET last_used_at = 0", [])
        .unwrap();
    let report = status(&project, FingerprintMode::Manifests);
    assert!(report.stats.packages_reused >= 3, "{:?}", report.stats);
    assert_eq!(last_used(), 0);
    // Without its recorded listing, the build takes the full path, which uses the lists.
    cache
        .connection()
        .execute("DELETE FROM listings", [])
        .unwrap();
    project.build(FingerprintMode::Manifests);
    assert!(last_used() > 0, "a build keeps the lists it used");
}

#[test]
fn a_cold_build_reads_each_file_once_and_writes_what_the_hash_first_path_writes() {
    let cold = Project::new();
    populate(&cold);
    let report = cold.build(FingerprintMode::Stat);
    let files = report.stats.files_scanned - 1; // the symlink is scanned, not read
    assert_eq!(report.stats.files_hashed, files, "{:?}", report.stats);
    assert_eq!(report.stats.entries_compressed, files);
    assert_eq!(report.stats.files_read, files, "{:?}", report.stats);

    // The same content reached through an earlier build: the files are hashed first, then the
    // changed one is packed and the others are copied from the earlier zip.
    let warm = Project::new();
    populate(&warm);
    let index = "lib/nodejs/node_modules/left/index.js";
    let original = std::fs::read_to_string(warm.layer().join(index)).unwrap();
    warm.write(index, "changed\n");
    warm.build(FingerprintMode::Stat);
    warm.write(index, &original);
    age_tree(&warm.layer());
    let again = warm.build(FingerprintMode::Stat);
    let stats = &again.stats;
    assert_eq!(stats.entries_compressed, 1, "{stats:?}");
    assert_eq!(stats.files_read, stats.files_hashed + 1, "{stats:?}");
    assert_eq!(again.digest, report.digest);
    assert_eq!(zip_bytes(&again), zip_bytes(&report));
}

#[test]
fn a_second_subject_with_the_same_content_keeps_the_first_zip() {
    let project = Project::new();
    populate(&project);
    let first = project.build(FingerprintMode::Stat);
    let state = StateDir::new(&project.root);
    let mut cache = Cache::open(&state.cache_db()).unwrap();
    let twin = Subject {
        owner: Owner::Layer("twin".into()),
        root: project.layer(),
        sources: SourceMapping::layer(),
    };
    let options = BuildOptions::default();
    let second = build::build(&state, &mut cache, &twin, &options, &NoProgress).unwrap();
    assert_eq!(second.digest, first.digest);
    assert_eq!(second.status, BuildStatus::Cached);
    assert_eq!(second.zip_path, first.zip_path);
    let build_dir = std::fs::read_dir(state.build_dir()).unwrap();
    let names: Vec<String> = build_dir
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

const UNREADABLE_PROJECT: &str = "LAMINA_TEST_UNREADABLE_PROJECT";
const UNREADABLE_MARKER: &str = "unreadable-files-child: checked";

/// Root reads every file whatever its mode, so the build runs in a child process of this same
/// test binary that has dropped to `nobody` first.
#[test]
fn every_unreadable_file_of_a_cold_build_is_reported() {
    let project = Project::new();
    populate(&project);
    let secrets = ["lib/nodejs/node_modules/left/index.js", "opt/config/b.json"];
    for secret in secrets {
        let path = project.write(secret, "secret");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    for path in crate::support::walk(&project.root) {
        if path.is_dir() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    // The child writes `.lamina/` here.
    std::fs::set_permissions(&project.root, std::fs::Permissions::from_mode(0o777)).unwrap();

    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return check_unreadable_files(&project.root);
    }
    let binary = project.root.join("it-test-binary");
    let current = std::env::current_exe().unwrap();
    std::fs::hard_link(&current, &binary)
        .or_else(|_| std::fs::copy(&current, &binary).map(drop))
        .unwrap();
    let child = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&binary)
        .args([
            "engine::unreadable_files_child",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(UNREADABLE_PROJECT, &project.root)
        .output()
        .expect("setpriv (util-linux) runs the unprivileged part of this test");
    let stdout = String::from_utf8_lossy(&child.stdout);
    let stderr = String::from_utf8_lossy(&child.stderr);
    assert!(child.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains(UNREADABLE_MARKER),
        "the child ran no check:\n{stdout}\n{stderr}"
    );
}

#[test]
#[ignore = "run by every_unreadable_file_of_a_cold_build_is_reported, as an unprivileged child"]
fn unreadable_files_child() {
    let root = std::env::var_os(UNREADABLE_PROJECT).expect("set by the parent test");
    check_unreadable_files(Path::new(&root));
    println!("{UNREADABLE_MARKER}");
}

fn check_unreadable_files(root: &Path) {
    let project = Project {
        _dir: tempdir(),
        root: root.to_path_buf(),
    };
    let error = try_build(&project, project.layer(), Owner::Layer("shared".into())).unwrap_err();
    assert!(error.contains("2 problem(s)"), "{error}");
    assert!(error.contains("left/index.js`"), "{error}");
    assert!(error.contains("config/b.json`"), "{error}");
    assert!(error.contains("Permission denied"), "{error}");
    let state = StateDir::new(root);
    let leftovers = std::fs::read_dir(state.build_dir())
        .map(|dir| dir.count())
        .unwrap_or(0);
    assert_eq!(leftovers, 0, "a zip or a temporary file was left behind");
}
