//! Tests of the writer's internal paths: the streaming path and batch boundaries must not change
//! a single byte. Tests that read zips with other tools are in `tests/it/pack.rs`.

use std::path::Path;

use super::*;
use crate::progress::NoProgress;

/// Writes `files` (path, content, mode) below `root` and lists them as sorted entries.
fn entries(root: &Path, files: &[(&str, Vec<u8>, u32)]) -> Vec<PackEntry> {
    let mut entries: Vec<PackEntry> = files
        .iter()
        .map(|(path, content, mode)| {
            let disk_path = root.join(path);
            fs_err::create_dir_all(disk_path.parent().unwrap()).unwrap();
            fs_err::write(&disk_path, content).unwrap();
            let hash = blake3::hash(content);
            let entry = Entry::file(*path, *mode, content.len() as u64, hash);
            PackEntry {
                entry,
                disk_path: Some(disk_path),
            }
        })
        .collect();
    entries.push(PackEntry {
        entry: Entry::dir("lib"),
        disk_path: None,
    });
    entries.push(PackEntry {
        entry: Entry::symlink("lib/link", "a.js"),
        disk_path: None,
    });
    entries.sort_by(|a, b| a.entry.path.as_bytes().cmp(b.entry.path.as_bytes()));
    entries
}

fn text(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| b"lorem ipsum dolor sit amet, \n"[i % 29] ^ ((i / 4093) % 3) as u8)
        .collect()
}

fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect()
}

fn sample(root: &Path) -> Vec<PackEntry> {
    entries(
        root,
        &[
            ("lib/a.js", text(3 << 20), 0o644),
            ("lib/b.bin", noise(1 << 20), 0o644),
            ("lib/c.js", text(70_000), 0o755),
            ("lib/empty", Vec::new(), 0o644),
            ("lib/small.js", text(500), 0o644),
        ],
    )
}

fn zip_with(out_dir: &Path, entries: &[PackEntry], limits: &Limits) -> (PackOutcome, Vec<u8>) {
    let digest = Digest([7; 32]);
    let outcome = write_zip_with(out_dir, &digest, entries, None, &NoProgress, limits).unwrap();
    let bytes = fs_err::read(&outcome.path).unwrap();
    (outcome, bytes)
}

#[test]
fn streaming_path_writes_the_bytes_of_the_memory_path() {
    let dir = tempfile::tempdir().unwrap();
    let entries = sample(&dir.path().join("tree"));
    let (_, in_memory) = zip_with(&dir.path().join("memory"), &entries, &Limits::DEFAULT);
    let streaming = Limits {
        in_memory_max: 1000,
        ..Limits::DEFAULT
    };
    let (outcome, streamed) = zip_with(&dir.path().join("streaming"), &entries, &streaming);
    assert_eq!(streamed, in_memory);
    assert_eq!(outcome.entries_compressed, 5);
}

#[test]
fn batch_boundaries_do_not_change_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let entries = sample(&dir.path().join("tree"));
    let (_, whole) = zip_with(&dir.path().join("whole"), &entries, &Limits::DEFAULT);
    for limits in [
        Limits {
            batch_bytes: 1,
            ..Limits::DEFAULT
        },
        Limits {
            batch_entries: 2,
            ..Limits::DEFAULT
        },
        Limits {
            in_memory_max: 100_000,
            batch_bytes: 80_000,
            batch_entries: 3,
        },
    ] {
        let (_, batched) = zip_with(&dir.path().join("batched"), &entries, &limits);
        assert_eq!(batched, whole, "{limits:?}");
    }
}

#[test]
fn a_streamed_file_that_changed_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let entries = sample(&dir.path().join("tree"));
    let changed = entries
        .iter()
        .find(|e| e.entry.path == "lib/b.bin")
        .unwrap();
    let changed_path = changed.disk_path.clone().unwrap();
    let mut content = fs_err::read(&changed_path).unwrap();
    content[500_000] ^= 1;
    fs_err::write(&changed_path, content).unwrap();

    let out = dir.path().join("out");
    let limits = Limits {
        in_memory_max: 1000,
        ..Limits::DEFAULT
    };
    let result = write_zip_with(&out, &Digest([1; 32]), &entries, None, &NoProgress, &limits);
    assert!(
        matches!(&result, Err(PackError::ContentChanged { path }) if *path == changed_path),
        "{result:?}"
    );
    assert_eq!(
        fs_err::read_dir(&out).unwrap().count(),
        0,
        "a file was left behind"
    );
}

#[test]
fn no_entries_give_an_empty_zip() {
    let dir = tempfile::tempdir().unwrap();
    let (outcome, bytes) = zip_with(dir.path(), &[], &Limits::DEFAULT);
    assert_eq!(bytes, b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
    assert_eq!((outcome.entries, outcome.size), (0, 22));
}

#[test]
fn a_file_entry_without_disk_path_is_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let entry = Entry::file("a", 0o644, 1, blake3::hash(b"a"));
    let entries = [PackEntry {
        entry,
        disk_path: None,
    }];
    let result = write_zip(dir.path(), &Digest([1; 32]), &entries, None, &NoProgress);
    assert!(
        matches!(result, Err(PackError::NoDiskPath { .. })),
        "{result:?}"
    );
}

#[test]
fn a_zip_from_this_writer_is_accepted_as_previous() {
    let dir = tempfile::tempdir().unwrap();
    let entries = sample(&dir.path().join("tree"));
    let (outcome, bytes) = zip_with(&dir.path().join("out"), &entries, &Limits::DEFAULT);
    let previous = previous_of(&outcome, &entries);
    let opened = Previous::open(&previous);
    assert!(opened.is_ok(), "{}", opened.err().unwrap());
    let mut opened = opened.unwrap();
    let matches = opened.matches(&entries);
    assert!(matches
        .iter()
        .enumerate()
        .all(|(index, found)| *found == Some(index)));

    let copied = copy_run(&mut opened, 0..entries.len()).unwrap();
    let end = bytes.len() - 22;
    let directory_offset = u32::from_le_bytes(bytes[end + 16..end + 20].try_into().unwrap());
    assert!(
        copied == bytes[..directory_offset as usize],
        "every local header and its data"
    );
}

/// Forty small files and a folder and a symlink: small pieces cut through their local headers as
/// well as through their data.
fn many_small(root: &Path) -> Vec<PackEntry> {
    let names: Vec<String> = (0..40).map(|index| format!("lib/f{index:02}.js")).collect();
    let files: Vec<(&str, Vec<u8>, u32)> = names
        .iter()
        .enumerate()
        .map(|(index, name)| (name.as_str(), text(index * 37 % 700), 0o644))
        .collect();
    entries(root, &files)
}

fn previous_of(outcome: &PackOutcome, entries: &[PackEntry]) -> PreviousZip {
    PreviousZip {
        path: outcome.path.clone(),
        entries: entries.iter().map(|e| e.entry.clone()).collect(),
        format: FORMAT_LABEL.to_string(),
    }
}

fn copy_run(previous: &mut Previous<'_>, run: std::ops::Range<usize>) -> Result<Vec<u8>, String> {
    let mut copied = Vec::new();
    previous
        .copy_run(run, |bytes| {
            copied.extend_from_slice(bytes);
            Ok::<_, ()>(())
        })
        .map_err(|error| format!("{error:?}"))?;
    Ok(copied)
}

#[test]
fn copied_runs_are_the_bytes_of_the_previous_zip_whatever_the_piece_size() {
    let dir = tempfile::tempdir().unwrap();
    let entries = many_small(&dir.path().join("tree"));
    let (outcome, bytes) = zip_with(&dir.path().join("out"), &entries, &Limits::DEFAULT);
    let zip = previous_of(&outcome, &entries);
    let mut previous = Previous::open(&zip).unwrap();
    let count = entries.len();

    for chunk_len in [1, 13, 64, 100, 1000, 1 << 20] {
        previous.set_chunk_len(chunk_len);
        for run in [0..count, 0..1, 3..17, 17..count, 5..5] {
            let start = previous.run_len(&(0..run.start)) as usize;
            let end = start + previous.run_len(&run) as usize;
            let copied = copy_run(&mut previous, run.clone()).unwrap();
            assert!(
                copied == bytes[start..end],
                "run {run:?} in pieces of {chunk_len} bytes"
            );
        }
    }
}

#[test]
fn a_damaged_local_header_inside_a_run_stops_the_copy() {
    let dir = tempfile::tempdir().unwrap();
    let entries = many_small(&dir.path().join("tree"));
    let (outcome, mut bytes) = zip_with(&dir.path().join("out"), &entries, &Limits::DEFAULT);
    let zip = previous_of(&outcome, &entries);
    let name_of_20 = Previous::open(&zip).unwrap().run_len(&(0..20)) as usize + 30;
    bytes[name_of_20] ^= 1;
    fs_err::write(&zip.path, &bytes).unwrap();

    let mut previous = Previous::open(&zip).unwrap();
    for chunk_len in [100, 1 << 20] {
        previous.set_chunk_len(chunk_len);
        assert!(copy_run(&mut previous, 0..20).is_ok());
        let error = copy_run(&mut previous, 0..entries.len()).unwrap_err();
        assert!(error.contains("local header"), "{error}");
    }
}

#[test]
fn reuse_across_batch_boundaries_writes_the_bytes_of_a_cold_build() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    let before = many_small(&root);
    let (first, _) = zip_with(&dir.path().join("first"), &before, &Limits::DEFAULT);
    let previous = previous_of(&first, &before);
    fs_err::write(root.join("lib/f07.js"), b"changed").unwrap();
    fs_err::write(root.join("lib/f31.js"), b"changed too").unwrap();
    let after = entries(
        &root,
        &[
            ("lib/f07.js", b"changed".to_vec(), 0o644),
            ("lib/f31.js", b"changed too".to_vec(), 0o644),
        ],
    );
    let after: Vec<PackEntry> = before
        .iter()
        .map(|old| {
            let new = after.iter().find(|new| new.entry.path == old.entry.path);
            new.unwrap_or(old).clone()
        })
        .collect();

    let (cold, cold_bytes) = zip_with(&dir.path().join("cold"), &after, &Limits::DEFAULT);
    let limits = Limits {
        batch_entries: 3,
        ..Limits::DEFAULT
    };
    let digest = Digest([7; 32]);
    let out = dir.path().join("incremental");
    let incremental =
        write_zip_with(&out, &digest, &after, Some(&previous), &NoProgress, &limits).unwrap();

    assert!(fs_err::read(&incremental.path).unwrap() == cold_bytes);
    assert_eq!(incremental.sha256, cold.sha256);
    assert_eq!(
        (incremental.entries_compressed, incremental.entries_reused),
        (2, 38)
    );
}

/// The entries with every file's hash replaced by zeros and marked unknown, as a cold build
/// gives them before it has read anything.
fn unknown_hashes(entries: &[PackEntry]) -> (Vec<PackEntry>, Vec<bool>) {
    let blank = blake3::Hash::from_bytes([0; 32]);
    let unknown: Vec<bool> = entries
        .iter()
        .map(|e| e.entry.kind == EntryKind::File)
        .collect();
    let blanked = entries
        .iter()
        .map(|e| {
            let mut e = e.clone();
            if e.entry.kind == EntryKind::File {
                e.entry.content_hash = blank;
            }
            e
        })
        .collect();
    (blanked, unknown)
}

#[test]
fn packing_while_hashing_writes_the_same_bytes_and_learns_every_hash() {
    let dir = tempfile::tempdir().unwrap();
    let entries = sample(&dir.path().join("tree"));
    let (_, checked) = zip_with(&dir.path().join("checked"), &entries, &Limits::DEFAULT);
    let (blanked, unknown) = unknown_hashes(&entries);
    // The streaming limit sends the two large files through the spill and stored paths too.
    for limits in [
        Limits::DEFAULT,
        Limits {
            in_memory_max: 100_000,
            ..Limits::DEFAULT
        },
    ] {
        let out = dir.path().join("learned");
        let zip = write_unnamed(&out, &blanked, &unknown, &NoProgress, &limits).unwrap();
        let learned: Vec<(usize, blake3::Hash)> = zip.learned().to_vec();
        let expected: Vec<(usize, blake3::Hash)> = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.entry.kind == EntryKind::File)
            .map(|(index, e)| (index, e.entry.content_hash))
            .collect();
        assert_eq!(learned, expected, "{limits:?}");
        let outcome = zip.name(&Digest([7; 32])).unwrap();
        assert_eq!(fs_err::read(&outcome.path).unwrap(), checked, "{limits:?}");
        assert_eq!(outcome.entries_compressed, 5);
    }
}

#[test]
fn known_hashes_are_still_checked_while_others_are_learned() {
    let dir = tempfile::tempdir().unwrap();
    let entries = sample(&dir.path().join("tree"));
    let changed = entries.iter().find(|e| e.entry.path == "lib/c.js").unwrap();
    let changed_path = changed.disk_path.clone().unwrap();
    let mut content = fs_err::read(&changed_path).unwrap();
    content[10] ^= 1;
    fs_err::write(&changed_path, content).unwrap();
    // Only the other files are unknown: c.js keeps its (now wrong) hash.
    let unknown: Vec<bool> = entries
        .iter()
        .map(|e| e.entry.kind == EntryKind::File && e.entry.path != "lib/c.js")
        .collect();

    let out = dir.path().join("out");
    let result = write_unnamed(&out, &entries, &unknown, &NoProgress, &Limits::DEFAULT);
    assert!(
        matches!(&result, Err(PackError::ContentChanged { path }) if *path == changed_path),
        "{result:?}"
    );
    assert_eq!(
        fs_err::read_dir(&out).unwrap().count(),
        0,
        "a file was left"
    );
}

#[test]
fn an_unnamed_zip_dropped_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let entries = sample(&dir.path().join("tree"));
    let (blanked, unknown) = unknown_hashes(&entries);
    let out = dir.path().join("out");
    let zip = write_unnamed(&out, &blanked, &unknown, &NoProgress, &Limits::DEFAULT).unwrap();
    assert_eq!(fs_err::read_dir(&out).unwrap().count(), 1);
    drop(zip);
    assert_eq!(fs_err::read_dir(&out).unwrap().count(), 0);
}
