//! The scan on real trees: what it lists, what it refuses, and how it finds packages.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use lamina::digest::EntryKind;
use lamina::scan::{
    scan, scan_package, PackageDir, PackageKind, ScanError, ScanOptions, ScanOutput, ScannedEntry,
    SourceMapping,
};

use crate::support::{tempdir, write};

fn scan_layer(root: &Path, options: &ScanOptions) -> ScanOutput {
    scan(root, &SourceMapping::layer(), options)
}

fn zip_paths(output: &ScanOutput) -> Vec<&str> {
    output
        .entries
        .iter()
        .map(|entry| entry.zip_path.as_str())
        .collect()
}

fn entry<'a>(output: &'a ScanOutput, zip_path: &str) -> &'a ScannedEntry {
    let found = output
        .entries
        .iter()
        .find(|entry| entry.zip_path == zip_path);
    found.unwrap_or_else(|| panic!("no entry `{zip_path}` in {:?}", zip_paths(output)))
}

fn messages(output: &ScanOutput) -> Vec<String> {
    output.problems.iter().map(ToString::to_string).collect()
}

fn follow_external() -> ScanOptions {
    ScanOptions {
        follow_external: true,
        ..ScanOptions::default()
    }
}

fn manifests_mode() -> ScanOptions {
    ScanOptions {
        skip_package_contents: true,
        ..ScanOptions::default()
    }
}

/// A layer with two sources and a package, files created out of order.
fn small_layer(root: &Path) {
    write(root, "opt/bin/tool", b"#!/bin/sh\n");
    write(
        root,
        "lib/nodejs/node_modules/a/package.json",
        b"{\"name\":\"a\"}",
    );
    write(root, "lib/nodejs/index.js", b"require('a')");
    write(
        root,
        "lib/nodejs/node_modules/a/index.js",
        b"module.exports = 1",
    );
    write(root, "lib/python/six.py", b"");
}

#[test]
fn entries_are_sorted_with_their_prefixes() {
    let dir = tempdir();
    small_layer(dir.path());
    let output = scan_layer(dir.path(), &ScanOptions::default());

    assert!(output.problems.is_empty(), "{:?}", messages(&output));
    assert_eq!(
        zip_paths(&output),
        [
            "bin",
            "bin/tool",
            "nodejs",
            "nodejs/index.js",
            "nodejs/node_modules",
            "nodejs/node_modules/a",
            "nodejs/node_modules/a/index.js",
            "nodejs/node_modules/a/package.json",
            "python",
            "python/six.py",
        ]
    );
    let index = entry(&output, "nodejs/index.js");
    assert_eq!(index.source_path, "lib/nodejs/index.js");
    assert_eq!(entry(&output, "bin/tool").source_path, "opt/bin/tool");
    assert_eq!(entry(&output, "nodejs").kind, EntryKind::Dir);
    assert_eq!(entry(&output, "nodejs").source_path, "lib/nodejs");
}

#[test]
fn stat_data_is_the_entry_lstat() {
    let dir = tempdir();
    let path = write(dir.path(), "opt/data.bin", b"12345");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o751)).unwrap();
    let output = scan_layer(dir.path(), &ScanOptions::default());

    let metadata = std::fs::symlink_metadata(&path).unwrap();
    let stat = entry(&output, "data.bin").stat;
    assert_eq!(stat.size, 5);
    assert_eq!(stat.inode, metadata.ino());
    assert_eq!(stat.mode, 0o100751);
    assert_eq!(
        stat.mtime_ns,
        metadata.mtime() * 1_000_000_000 + metadata.mtime_nsec()
    );
    assert_eq!(
        stat.ctime_ns,
        metadata.ctime() * 1_000_000_000 + metadata.ctime_nsec()
    );
}

#[test]
fn missing_sources_are_absent() {
    let dir = tempdir();
    write(dir.path(), "opt/a.txt", b"a");
    let output = scan_layer(dir.path(), &ScanOptions::default());
    assert!(output.problems.is_empty(), "{:?}", messages(&output));
    assert_eq!(zip_paths(&output), ["a.txt"]);
}

#[test]
fn excluded_folder_is_skipped_when_named_through_another_spelling() {
    let dir = tempdir();
    write(dir.path(), "layer/opt/.lamina/cache.db", b"");
    write(dir.path(), "layer/opt/kept.txt", b"");
    symlink(dir.path().join("layer/opt"), dir.path().join("alias")).unwrap();
    let options = ScanOptions {
        exclude: vec![dir.path().join("alias/./.lamina")],
        ..ScanOptions::default()
    };
    let output = scan_layer(&dir.path().join("layer"), &options);
    assert!(output.problems.is_empty(), "{:?}", messages(&output));
    assert_eq!(zip_paths(&output), ["kept.txt"]);
}

#[test]
fn excluded_folder_is_skipped_when_reached_through_a_followed_link() {
    let project = tempdir();
    write(project.path(), ".lamina/cache.db", b"");
    write(project.path(), "shared/asset.txt", b"");
    write(project.path(), "layers/one/opt/own.txt", b"");
    symlink(
        project.path(),
        project.path().join("layers/one/opt/project"),
    )
    .unwrap();
    let options = ScanOptions {
        follow_external: true,
        exclude: vec![project.path().join(".lamina")],
        ..ScanOptions::default()
    };
    let output = scan_layer(&project.path().join("layers/one"), &options);

    assert!(zip_paths(&output).contains(&"project/shared/asset.txt"));
    assert!(!zip_paths(&output)
        .iter()
        .any(|path| path.contains(".lamina")));
    // The walk meets the layer's own `opt` again below the followed link and stops there.
    let [ScanError::LinkCycle { path, .. }] = output.problems.as_slice() else {
        panic!("{:?}", messages(&output));
    };
    assert_eq!(path, "opt/project/layers/one/opt");
}

#[test]
fn symlink_inside_layer_is_kept_as_link() {
    let dir = tempdir();
    write(dir.path(), "lib/nodejs/node_modules/a/bin/cli.js", b"");
    write(dir.path(), "lib/nodejs/node_modules/.bin/.keep", b"");
    let link = dir.path().join("lib/nodejs/node_modules/.bin/cli");
    symlink("../a/bin/cli.js", &link).unwrap();
    symlink("node_modules/a", dir.path().join("lib/nodejs/a")).unwrap();
    let output = scan_layer(dir.path(), &ScanOptions::default());

    assert!(output.problems.is_empty(), "{:?}", messages(&output));
    let cli = entry(&output, "nodejs/node_modules/.bin/cli");
    assert_eq!(cli.kind, EntryKind::Symlink);
    assert_eq!(cli.link_target.as_deref(), Some("../a/bin/cli.js"));
    assert_eq!(
        cli.stat.inode,
        std::fs::symlink_metadata(&link).unwrap().ino()
    );
    let folder_link = entry(&output, "nodejs/a");
    assert_eq!(folder_link.kind, EntryKind::Symlink);
    assert!(
        !zip_paths(&output).contains(&"nodejs/a/bin"),
        "a link to a folder is not walked"
    );
}

#[test]
fn symlink_out_of_layer_is_refused() {
    let dir = tempdir();
    write(dir.path(), "secret.txt", b"s");
    write(dir.path(), "lib/python/other.py", b"");
    std::fs::create_dir_all(dir.path().join("lib/nodejs")).unwrap();
    symlink("../../secret.txt", dir.path().join("lib/nodejs/x")).unwrap();
    // Into another source is out of the link's own source, too: `nodejs/` and `python/` are
    // not side by side on the same terms in the zip.
    symlink("../python/other.py", dir.path().join("lib/nodejs/y")).unwrap();
    let output = scan_layer(dir.path(), &ScanOptions::default());

    assert_eq!(
        messages(&output),
        [
            "symlink `lib/nodejs/x` points to `../../secret.txt`, outside `lib/nodejs`: make the \
             link relative and inside `lib/nodejs`, or pass --follow-external to store its \
             content",
            "symlink `lib/nodejs/y` points to `../python/other.py`, outside `lib/nodejs`: make the \
             link relative and inside `lib/nodejs`, or pass --follow-external to store its \
             content",
        ]
    );
    let ScanError::LinkLeavesLayer { folder, .. } = &output.problems[0] else {
        panic!()
    };
    assert_eq!(folder, "lib/nodejs");
    assert!(!zip_paths(&output).contains(&"nodejs/x"));
}

#[test]
fn absolute_symlink_is_refused_even_into_the_layer() {
    let dir = tempdir();
    let inside = write(dir.path(), "opt/real.txt", b"r");
    symlink(&inside, dir.path().join("opt/absolute")).unwrap();
    let output = scan_layer(dir.path(), &ScanOptions::default());
    let [ScanError::LinkLeavesLayer {
        path,
        target,
        folder,
    }] = output.problems.as_slice()
    else {
        panic!("{:?}", messages(&output));
    };
    assert_eq!((path.as_str(), folder.as_str()), ("opt/absolute", "opt"));
    assert_eq!(Path::new(target), inside);
}

#[test]
fn dangling_symlinks_are_refused_in_both_modes() {
    let dir = tempdir();
    std::fs::create_dir_all(dir.path().join("opt")).unwrap();
    symlink("missing.txt", dir.path().join("opt/inside")).unwrap();
    symlink("../../missing.txt", dir.path().join("opt/outside")).unwrap();
    for options in [ScanOptions::default(), follow_external()] {
        let output = scan_layer(dir.path(), &options);
        assert_eq!(
            messages(&output),
            [
                "symlink `opt/inside` points to `missing.txt`, which does not exist: remove the \
                 link or create its target",
                "symlink `opt/outside` points to `../../missing.txt`, which does not exist: \
                 remove the link or create its target",
            ]
        );
        assert!(output.entries.is_empty());
    }
}

#[test]
fn symlink_cycles_are_refused_in_both_modes() {
    let dir = tempdir();
    std::fs::create_dir_all(dir.path().join("opt")).unwrap();
    symlink("two", dir.path().join("opt/one")).unwrap();
    symlink("one", dir.path().join("opt/two")).unwrap();
    symlink("outer-b", dir.path().join("outer-a")).unwrap();
    symlink("outer-a", dir.path().join("outer-b")).unwrap();
    symlink("../outer-a", dir.path().join("opt/out")).unwrap();
    for options in [ScanOptions::default(), follow_external()] {
        let output = scan_layer(dir.path(), &options);
        let paths: Vec<_> = output
            .problems
            .iter()
            .map(|problem| match problem {
                ScanError::LinkCycle { path, .. } => path.as_str(),
                other => panic!("{other}"),
            })
            .collect();
        assert_eq!(paths, ["opt/one", "opt/out", "opt/two"]);
    }
}

#[test]
fn follow_external_stores_a_file_as_its_content() {
    let dir = tempdir();
    let outside = write(dir.path(), "shared/config.json", b"{\"a\": 1}");
    write(dir.path(), "layer/opt/.keep", b"");
    symlink(&outside, dir.path().join("layer/opt/config.json")).unwrap();
    let output = scan_layer(&dir.path().join("layer"), &follow_external());

    assert!(output.problems.is_empty(), "{:?}", messages(&output));
    let config = entry(&output, "config.json");
    assert_eq!(config.kind, EntryKind::File);
    assert_eq!(config.source_path, "opt/config.json");
    assert_eq!(config.stat.size, 8);
    assert_eq!(
        config.stat.inode,
        std::fs::metadata(&outside).unwrap().ino()
    );
    assert_eq!(config.link_target, None);
}

#[test]
fn follow_external_walks_a_folder_as_if_it_were_there() {
    let dir = tempdir();
    write(dir.path(), "shared/lib/a.js", b"a");
    write(dir.path(), "shared/lib/deep/b.js", b"b");
    write(dir.path(), "shared/c.js", b"c");
    symlink("lib/a.js", dir.path().join("shared/link-to-a")).unwrap();
    std::fs::create_dir_all(dir.path().join("layer/lib/nodejs")).unwrap();
    symlink(
        "../../../shared",
        dir.path().join("layer/lib/nodejs/shared"),
    )
    .unwrap();
    let output = scan_layer(&dir.path().join("layer"), &follow_external());

    assert!(output.problems.is_empty(), "{:?}", messages(&output));
    assert_eq!(
        zip_paths(&output),
        [
            "nodejs",
            "nodejs/shared",
            "nodejs/shared/c.js",
            "nodejs/shared/lib",
            "nodejs/shared/lib/a.js",
            "nodejs/shared/lib/deep",
            "nodejs/shared/lib/deep/b.js",
            "nodejs/shared/link-to-a",
        ]
    );
    assert_eq!(entry(&output, "nodejs/shared").kind, EntryKind::Dir);
    // Below a followed folder, links are stored as content too.
    assert_eq!(
        entry(&output, "nodejs/shared/link-to-a").kind,
        EntryKind::File
    );
    let deep = entry(&output, "nodejs/shared/lib/deep/b.js");
    assert_eq!(deep.source_path, "lib/nodejs/shared/lib/deep/b.js");
}

#[test]
fn follow_external_folder_cycle_ends_with_an_error() {
    let dir = tempdir();
    write(dir.path(), "outside/inner/file.txt", b"f");
    symlink("..", dir.path().join("outside/inner/up")).unwrap();
    std::fs::create_dir_all(dir.path().join("layer/opt")).unwrap();
    symlink(
        dir.path().join("outside/inner"),
        dir.path().join("layer/opt/ext"),
    )
    .unwrap();
    let output = scan_layer(&dir.path().join("layer"), &follow_external());

    let [ScanError::LinkCycle { path, .. }] = output.problems.as_slice() else {
        panic!("{:?}", messages(&output));
    };
    assert_eq!(path, "opt/ext/up/inner");
    assert!(zip_paths(&output).contains(&"ext/up"));
    assert!(zip_paths(&output).contains(&"ext/file.txt"));
}

#[test]
fn non_utf8_name_is_reported_and_the_rest_is_listed() {
    let dir = tempdir();
    write(dir.path(), "lib/nodejs/good.js", b"");
    let bad = dir
        .path()
        .join("lib/nodejs")
        .join(OsStr::from_bytes(b"bad\xff.js"));
    std::fs::write(bad, b"").unwrap();
    let output = scan_layer(dir.path(), &ScanOptions::default());

    assert_eq!(
        messages(&output),
        [
            "folder `lib/nodejs` holds an entry whose name is not UTF-8 (`bad\u{fffd}.js`): zip \
             paths must be UTF-8, so rename it"
        ]
    );
    assert_eq!(zip_paths(&output), ["nodejs", "nodejs/good.js"]);
}

#[test]
fn collision_names_both_sources() {
    let dir = tempdir();
    write(dir.path(), "lib/nodejs/a.js", b"one");
    write(dir.path(), "opt/nodejs/a.js", b"two");
    write(dir.path(), "lib/python/mixed", b"file");
    write(dir.path(), "opt/python/mixed/inside.txt", b"folder");
    let output = scan_layer(dir.path(), &ScanOptions::default());

    assert_eq!(
        messages(&output),
        [
            "`lib/nodejs/a.js` and `opt/nodejs/a.js` both map to `nodejs/a.js` in the zip: \
             remove one of them",
            "`lib/python/mixed` and `opt/python/mixed` both map to `python/mixed` in the zip: \
             remove one of them",
        ]
    );
    let paths = zip_paths(&output);
    let mut unique = paths.clone();
    unique.dedup();
    assert_eq!(paths, unique, "one entry per zip path");
}

#[test]
fn folders_from_two_sources_merge_without_collision() {
    let dir = tempdir();
    write(dir.path(), "lib/nodejs/node_modules/a.js", b"");
    write(dir.path(), "opt/nodejs/node_modules/b.js", b"");
    let output = scan_layer(dir.path(), &ScanOptions::default());

    assert!(output.problems.is_empty(), "{:?}", messages(&output));
    assert_eq!(
        zip_paths(&output),
        [
            "nodejs",
            "nodejs/node_modules",
            "nodejs/node_modules/a.js",
            "nodejs/node_modules/b.js"
        ]
    );
    assert_eq!(entry(&output, "nodejs").source_path, "lib/nodejs");
}

#[test]
fn fifo_is_refused() {
    let dir = tempdir();
    write(dir.path(), "opt/ok.txt", b"");
    let fifo = std::ffi::CString::new(dir.path().join("opt/pipe").as_os_str().as_bytes()).unwrap();
    // SAFETY: `fifo` is a valid NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let output = scan_layer(dir.path(), &ScanOptions::default());

    assert_eq!(
        messages(&output),
        [
            "`opt/pipe` is a fifo (named pipe): a zip holds only files, folders and symlinks, so \
             move it out of the layer"
        ]
    );
    assert_eq!(zip_paths(&output), ["ok.txt"]);
}

/// A node tree with every kind of folder that package detection must tell apart.
fn node_tree(root: &Path) {
    for package in ["a", "a/node_modules/b", "@scope/c", "d"] {
        let folder = format!("lib/nodejs/node_modules/{package}");
        write(root, &format!("{folder}/package.json"), package.as_bytes());
        write(root, &format!("{folder}/index.js"), b"");
    }
    write(root, "lib/nodejs/node_modules/a/lib/util.js", b"");
    write(
        root,
        "lib/nodejs/node_modules/a/lib/node_modules/bundled/package.json",
        b"",
    );
    write(root, "lib/nodejs/node_modules/.bin/package.json", b"");
    write(root, "lib/nodejs/node_modules/no-manifest/index.js", b"");
    write(root, "lib/nodejs/node_modules/.package-lock.json", b"{}");
    write(root, "lib/nodejs/package.json", b"{}");
    write(root, "opt/node_modules/e/package.json", b"e");
}

fn package_dirs(output: &ScanOutput) -> Vec<&str> {
    output
        .packages
        .iter()
        .map(|package| package.source_dir.as_str())
        .collect()
}

#[test]
fn nested_and_scoped_packages_are_found_and_dot_folders_are_not() {
    let dir = tempdir();
    node_tree(dir.path());
    let output = scan_layer(dir.path(), &ScanOptions::default());

    assert!(output.problems.is_empty(), "{:?}", messages(&output));
    assert_eq!(
        package_dirs(&output),
        [
            "lib/nodejs/node_modules/@scope/c",
            "lib/nodejs/node_modules/a",
            "lib/nodejs/node_modules/a/node_modules/b",
            "lib/nodejs/node_modules/d",
            "opt/node_modules/e",
        ]
    );
    let scoped = &output.packages[0];
    assert_eq!(scoped.kind, PackageKind::Node);
    assert_eq!(scoped.source_folder, "lib/nodejs");
    assert_eq!(scoped.zip_dir, "nodejs/node_modules/@scope/c");
    assert_eq!(
        scoped.manifest_path,
        "lib/nodejs/node_modules/@scope/c/package.json"
    );
    assert_eq!(scoped.manifest_stat.size, "@scope/c".len() as u64);
    assert!(!scoped.contents_skipped);
    assert!(zip_paths(&output).contains(&"nodejs/node_modules/a/package.json"));
}

#[test]
fn python_install_is_found_by_its_lock() {
    let dir = tempdir();
    write(dir.path(), "lib/python/Pipfile.lock", b"{\"default\": {}}");
    write(dir.path(), "lib/python/requests/__init__.py", b"");
    write(dir.path(), "opt/python/Pipfile.lock", b"{}");
    let output = scan_layer(dir.path(), &ScanOptions::default());

    let [python] = output.packages.as_slice() else {
        panic!("{:?}", output.packages)
    };
    assert_eq!(python.kind, PackageKind::Python);
    assert_eq!(python.source_dir, "lib/python");
    assert_eq!(python.zip_dir, "python");
    assert_eq!(python.manifest_path, "lib/python/Pipfile.lock");
    assert_eq!(python.manifest_stat.size, 15);
    assert!(zip_paths(&output).contains(&"python/requests/__init__.py"));
}

#[test]
fn manifests_mode_walks_nested_node_modules_but_not_package_files() {
    let dir = tempdir();
    node_tree(dir.path());
    write(dir.path(), "lib/python/Pipfile", b"");
    write(dir.path(), "lib/python/Pipfile.lock", b"{\"default\": {}}");
    write(dir.path(), "lib/python/requests/__init__.py", b"");
    let output = scan_layer(dir.path(), &manifests_mode());

    assert!(output.problems.is_empty(), "{:?}", messages(&output));
    assert_eq!(
        zip_paths(&output),
        [
            "node_modules",
            "node_modules/e",
            "nodejs",
            "nodejs/node_modules",
            "nodejs/node_modules/.bin",
            "nodejs/node_modules/.bin/package.json",
            "nodejs/node_modules/.package-lock.json",
            "nodejs/node_modules/@scope",
            "nodejs/node_modules/@scope/c",
            "nodejs/node_modules/a",
            "nodejs/node_modules/a/node_modules",
            "nodejs/node_modules/a/node_modules/b",
            "nodejs/node_modules/d",
            "nodejs/node_modules/no-manifest",
            "nodejs/node_modules/no-manifest/index.js",
            "nodejs/package.json",
            "python",
            "python/Pipfile",
            "python/Pipfile.lock",
        ]
    );
    assert!(output
        .packages
        .iter()
        .all(|package| package.contents_skipped));
    assert_eq!(output.packages.len(), 6);
    let b = output
        .packages
        .iter()
        .find(|package| package.source_dir.ends_with("/b"))
        .unwrap();
    assert_eq!(b.manifest_stat.size, "a/node_modules/b".len() as u64);
}

#[test]
fn scan_package_lists_exactly_the_skipped_files() {
    let dir = tempdir();
    node_tree(dir.path());
    write(dir.path(), "lib/python/Pipfile.lock", b"{\"default\": {}}");
    write(dir.path(), "lib/python/requirements.txt", b"");
    write(dir.path(), "lib/python/requests/__init__.py", b"");
    write(dir.path(), "lib/python/six.py", b"");
    std::fs::create_dir_all(dir.path().join("lib/nodejs/node_modules/d/bin")).unwrap();
    symlink(
        "../index.js",
        dir.path().join("lib/nodejs/node_modules/d/bin/d"),
    )
    .unwrap();

    let full = scan_layer(dir.path(), &ScanOptions::default());
    let manifests = scan_layer(dir.path(), &manifests_mode());
    assert_eq!(full.packages.len(), manifests.packages.len());

    let mut spliced = manifests.entries.clone();
    for package in &manifests.packages {
        let own = scan_package(dir.path(), package, &manifests_mode());
        assert!(own.problems.is_empty(), "{:?}", messages(&own));
        assert!(own.packages.is_empty());
        assert!(own
            .entries
            .iter()
            .all(|entry| entry.zip_path.starts_with(&package.zip_dir)));
        spliced.extend(own.entries);
    }
    spliced.sort_by(|a, b| a.zip_path.cmp(&b.zip_path));
    assert_eq!(spliced, full.entries);

    let python = manifests
        .packages
        .iter()
        .find(|p| p.kind == PackageKind::Python)
        .unwrap();
    let own = scan_package(dir.path(), python, &ScanOptions::default());
    assert_eq!(
        zip_paths(&own),
        [
            "python/requests",
            "python/requests/__init__.py",
            "python/six.py"
        ]
    );
}

#[test]
fn scan_package_of_a_vanished_package_reports_it() {
    let dir = tempdir();
    let package = PackageDir {
        kind: PackageKind::Node,
        source_folder: "lib/nodejs".into(),
        source_dir: "lib/nodejs/node_modules/gone".into(),
        zip_dir: "nodejs/node_modules/gone".into(),
        manifest_path: "lib/nodejs/node_modules/gone/package.json".into(),
        manifest_stat: Default::default(),
        contents_skipped: true,
    };
    std::fs::create_dir_all(dir.path().join("lib/nodejs/node_modules")).unwrap();
    let output = scan_package(dir.path(), &package, &ScanOptions::default());
    assert_eq!(
        messages(&output),
        [
            "`lib/nodejs/node_modules/gone` vanished while it was being scanned: run again once \
             the tree is quiet"
        ]
    );
}

const UNREADABLE_ROOT: &str = "LAMINA_TEST_UNREADABLE_ROOT";
const CHILD_MARKER: &str = "unreadable-folder-child: checked";

/// Root reads every folder whatever its mode, so the scan runs in a child process of this same
/// test binary that has dropped to `nobody` first.
#[test]
fn unreadable_folder_is_reported() {
    let dir = tempdir();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let layer = dir.path().join("layer");
    write(&layer, "lib/nodejs/open.js", b"");
    write(&layer, "lib/nodejs/secret/hidden.js", b"");
    let secret = layer.join("lib/nodejs/secret");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();

    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return check_unreadable_folder(&layer);
    }
    let binary = dir.path().join("it-test-binary");
    let current = std::env::current_exe().unwrap();
    std::fs::hard_link(&current, &binary)
        .or_else(|_| std::fs::copy(&current, &binary).map(drop))
        .unwrap();
    let child = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&binary)
        .args([
            "scan::unreadable_folder_child",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(UNREADABLE_ROOT, &layer)
        .output()
        .expect("setpriv (util-linux) runs the unprivileged part of this test");
    let stdout = String::from_utf8_lossy(&child.stdout);
    let stderr = String::from_utf8_lossy(&child.stderr);
    assert!(child.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains(CHILD_MARKER),
        "the child ran no check:\n{stdout}\n{stderr}"
    );
}

#[test]
#[ignore = "run by unreadable_folder_is_reported, as an unprivileged child process"]
fn unreadable_folder_child() {
    let root = std::env::var_os(UNREADABLE_ROOT).expect("set by unreadable_folder_is_reported");
    check_unreadable_folder(Path::new(&root));
    println!("{CHILD_MARKER}");
}

fn check_unreadable_folder(layer: &Path) {
    let output = scan_layer(layer, &ScanOptions::default());
    let [ScanError::Unreadable { path, error }] = output.problems.as_slice() else {
        panic!("{:?}", messages(&output));
    };
    assert_eq!(path, "lib/nodejs/secret");
    assert_eq!(error.kind(), std::io::ErrorKind::PermissionDenied);
    assert!(messages(&output)[0].starts_with("cannot read `lib/nodejs/secret`: "));
    // The folder's own entry is listed; the walk went on past it.
    assert_eq!(
        zip_paths(&output),
        ["nodejs", "nodejs/open.js", "nodejs/secret"]
    );
}

#[test]
fn source_folder_linked_out_of_the_layer_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("key.pem"), "secret").unwrap();
    let layer = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(layer.path().join("lib")).unwrap();
    std::os::unix::fs::symlink(outside.path(), layer.path().join("lib/nodejs")).unwrap();

    let output = lamina::scan::scan(
        layer.path(),
        &lamina::scan::SourceMapping::layer(),
        &lamina::scan::ScanOptions::default(),
    );
    assert!(output
        .entries
        .iter()
        .all(|entry| !entry.zip_path.contains("key.pem")));
    let message = output
        .problems
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(message.contains("`lib/nodejs`"), "{message}");
    assert!(message.contains("--follow-external"), "{message}");

    let followed = lamina::scan::scan(
        layer.path(),
        &lamina::scan::SourceMapping::layer(),
        &lamina::scan::ScanOptions {
            follow_external: true,
            ..Default::default()
        },
    );
    assert!(followed.problems.is_empty(), "{:?}", followed.problems);
    assert!(followed
        .entries
        .iter()
        .any(|entry| entry.zip_path == "nodejs/key.pem"));
}

#[test]
fn source_folder_linked_inside_the_layer_is_followed() {
    let layer = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(layer.path().join("shared-opt")).unwrap();
    std::fs::write(layer.path().join("shared-opt/a.txt"), "a").unwrap();
    std::os::unix::fs::symlink("shared-opt", layer.path().join("opt")).unwrap();
    let output = lamina::scan::scan(
        layer.path(),
        &lamina::scan::SourceMapping::layer(),
        &lamina::scan::ScanOptions::default(),
    );
    assert!(output.problems.is_empty(), "{:?}", output.problems);
    assert!(output.entries.iter().any(|entry| entry.zip_path == "a.txt"));
}
