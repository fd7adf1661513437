//! Helpers shared by the integration tests.

#![allow(dead_code)] // Each area uses a different subset of these helpers.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tempfile::TempDir;

/// Writes `content` to `root/relative`, creating parent folders.
pub fn write(root: &Path, relative: &str, content: &[u8]) -> PathBuf {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, content).unwrap();
    path
}

/// Moves the mtime of every file and folder below `root`, and of `root`, an hour into the past, as
/// if the tree had been there for a while. Files written moments before a scan are racily clean
/// and re-verified on the next run, and folders that young get no listing snapshot, which is
/// right but not what most tests want to look at.
pub fn age_tree(root: &Path) {
    for entry in walk(root) {
        let metadata = std::fs::symlink_metadata(&entry).unwrap();
        if metadata.is_file() {
            age_file(&entry, Duration::from_secs(3600));
        }
    }
    for entry in walk(root).into_iter().chain([root.to_path_buf()]) {
        if std::fs::symlink_metadata(&entry).unwrap().is_dir() {
            let folder = std::fs::File::open(&entry).unwrap();
            let past = SystemTime::now() - Duration::from_secs(3600);
            folder
                .set_times(std::fs::FileTimes::new().set_modified(past))
                .unwrap();
        }
    }
}

/// Sets the mtime of the file at `path` to `age` ago.
pub fn age_file(path: &Path, age: Duration) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_times(std::fs::FileTimes::new().set_modified(SystemTime::now() - age))
        .unwrap();
}

/// The zips in the `.lamina/build` folder of the project at `root`, temporary files left out,
/// sorted by name.
pub fn built_zips(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join(".lamina/build"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".zip") && !name.starts_with(".lamina-tmp-"))
        .collect();
    names.sort();
    names
}

/// Every path below `root`, not following symlinks.
pub fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path.clone());
            }
            out.push(path);
        }
    }
    out
}

/// A fresh temporary folder.
pub fn tempdir() -> TempDir {
    tempfile::Builder::new()
        .prefix("lamina-test-")
        .tempdir()
        .unwrap()
}

#[cfg(feature = "aws")]
pub mod moto;
pub mod portable;
