//! Helpers for the zip writer's tests: entry lists read from a folder, generated content, and the
//! system's `unzip` and `python3` as independent readers of the zips.

#![allow(dead_code)] // Not every test uses every helper.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use lamina::digest::Entry;
use lamina::pack::PackEntry;

/// The entries below `root` as the scanner would list them: zip paths relative to `root`,
/// sorted by their bytes, with each file's blake3 and `lstat` mode.
pub fn entries_from_dir(root: &Path) -> Vec<PackEntry> {
    let mut entries: Vec<PackEntry> = crate::support::walk(root)
        .into_iter()
        .map(|path| {
            let relative = path
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            let metadata = std::fs::symlink_metadata(&path).unwrap();
            if metadata.is_dir() {
                PackEntry {
                    entry: Entry::dir(relative),
                    disk_path: None,
                }
            } else if metadata.is_symlink() {
                let target = std::fs::read_link(&path)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string();
                PackEntry {
                    entry: Entry::symlink(relative, target),
                    disk_path: None,
                }
            } else {
                let mut hasher = blake3::Hasher::new();
                std::io::copy(&mut std::fs::File::open(&path).unwrap(), &mut hasher).unwrap();
                let mode = metadata.permissions().mode();
                let entry = Entry::file(relative, mode, metadata.len(), hasher.finalize());
                PackEntry {
                    entry,
                    disk_path: Some(path),
                }
            }
        })
        .collect();
    entries.sort_by(|a, b| a.entry.path.as_bytes().cmp(b.entry.path.as_bytes()));
    entries
}

/// `len` bytes that deflate cannot shrink, the same on every run.
pub fn incompressible(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            // xorshift64: enough for bytes without patterns that deflate could use.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect()
}

/// `len` bytes of source-like text that deflate compresses well, the same on every run.
pub fn compressible(len: usize, seed: u64) -> Vec<u8> {
    let words = [
        "module", "exports", "function", "return", "const", "require", "=>", "{", "}",
    ];
    let noise = incompressible(len / 4 + 1, seed);
    let mut out = Vec::with_capacity(len + 16);
    let mut index = 0;
    while out.len() < len {
        let byte = noise[index % noise.len()];
        out.extend_from_slice(words[usize::from(byte) % words.len()].as_bytes());
        out.push(if byte.is_multiple_of(7) { b'\n' } else { b' ' });
        if byte.is_multiple_of(5) {
            out.extend_from_slice(format!("{}", byte).as_bytes());
        }
        index += 1;
    }
    out.truncate(len);
    out
}

/// Runs `program` with `args`, panicking with its output unless it succeeds; returns stdout.
pub fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// What Python's `zipfile` reads from each entry of `zip`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ZipInfo {
    pub name: String,
    pub mode: u32,
    pub date_time: Vec<u32>,
    pub extra: String,
    pub flag_bits: u32,
    pub compress_type: u32,
    pub create_system: u32,
    pub file_size: u64,
    pub compress_size: u64,
}

const PYTHON_LISTING: &str = r#"
import json, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as archive:
    assert archive.testzip() is None, "a CRC does not match"
    print(json.dumps([{
        "name": info.filename,
        "mode": info.external_attr >> 16,
        "date_time": list(info.date_time),
        "extra": info.extra.hex(),
        "flag_bits": info.flag_bits,
        "compress_type": info.compress_type,
        "create_system": info.create_system,
        "file_size": info.file_size,
        "compress_size": info.compress_size,
    } for info in archive.infolist()]))
"#;

/// Every entry of `zip` as Python's `zipfile` reads it, after it checked every CRC.
pub fn python_listing(zip: &Path) -> Vec<ZipInfo> {
    let json = run("python3", &["-c", PYTHON_LISTING, zip.to_str().unwrap()]);
    serde_json::from_str(&json).unwrap()
}

/// Extracts `zip` with Info-ZIP's `unzip` into a new folder below `parent`.
pub fn unzip_into(zip: &Path, parent: &Path) -> PathBuf {
    let dest = parent.join("extracted");
    run(
        "unzip",
        &["-q", zip.to_str().unwrap(), "-d", dest.to_str().unwrap()],
    );
    dest
}

/// The files (and only the files) in `dir`, which should hold just the zips a test wrote.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
