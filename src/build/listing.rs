//! The unchanged-listing shortcut: a warm run whose scan saw exactly what the last recorded run
//! saw reuses that run's digest without loading file rows, hashing, or building the preimage.
//!
//! # The listing key
//!
//! blake3 over, in this order (integers little-endian, strings as a `u32` length then UTF-8):
//!
//! 1. the string [`KEY_LABEL`], the pack format label and the fingerprint mode's name;
//! 2. every scanned entry in scan order (sorted by zip path): zip path, source path, kind (`0`
//!    file, `1` folder, `2` symlink), size `u64`, mtime and ctime in nanoseconds `i64`, inode
//!    `u64`, `st_mode` `u32`, and the link target (empty string when none);
//! 3. every package found: kind (`0` node, `1` Python), whether its contents were skipped (`u8`),
//!    source folder, folder, zip folder, manifest path, and the manifest's stat data as above.
//!
//! # Why an equal key means an equal digest
//!
//! A key is recorded only by a run in which every file's hash came from a row that the racy-clean
//! rule will still trust while the stat data stays the same: rows reused as fresh (their mtime is
//! older than their clock) and rows hashed in this run whose mtime is older than this run's clock.
//! In manifests mode every skipped package must also have been replaced by a cached list (keyed
//! by its manifest's content, which the same rule vouches for) and the Python lock file must be
//! older than the clock. Then, for a later scan with the same key, every stat comparison the full
//! path would make succeeds and every hash it would take from a row is the one this run used, so
//! the full path would compute the same entry list and the same digest. Any change of stat data,
//! path, link target, mode or format changes the key, and the run takes the full path.

use crate::digest::EntryKind;
use crate::scan::{PackageKind, ScanOutput, ScannedEntry, Stat};

/// Versions the key's layout: change it whenever the byte layout above changes.
pub const KEY_LABEL: &str = "lamina-listing-1";

/// Entries serialized while the previous ones are hashed: about 300 KB of key bytes, enough to
/// make a join worth it and small enough that the two buffers stay in the cache.
const ENTRIES_PER_CHUNK: usize = 2048;

/// Serializes the key's fields into a buffer: for 75,000 entries, writing them one field at a
/// time into the hasher costs more than the hashing itself.
#[derive(Default)]
struct KeyBytes(Vec<u8>);

impl KeyBytes {
    fn text(&mut self, text: &str) {
        self.0.extend_from_slice(&(text.len() as u32).to_le_bytes());
        self.0.extend_from_slice(text.as_bytes());
    }

    fn stat(&mut self, stat: &Stat) {
        self.0.extend_from_slice(&stat.size.to_le_bytes());
        self.0.extend_from_slice(&stat.mtime_ns.to_le_bytes());
        self.0.extend_from_slice(&stat.ctime_ns.to_le_bytes());
        self.0.extend_from_slice(&stat.inode.to_le_bytes());
        self.0.extend_from_slice(&stat.mode.to_le_bytes());
    }

    /// Replaces the buffer's bytes with those of `entries`, keeping its allocation.
    fn entries(mut self, entries: &[ScannedEntry]) -> KeyBytes {
        self.0.clear();
        for entry in entries {
            self.text(&entry.zip_path);
            self.text(&entry.source_path);
            self.0.push(kind_byte(entry.kind));
            self.stat(&entry.stat);
            self.text(entry.link_target.as_deref().unwrap_or(""));
        }
        self
    }
}

/// The key of a scan's listing, or `None` when the scan reported problems (a run with problems
/// records nothing).
///
/// The scan waits for the key before it can answer, and a large layer has some 13 MB of key
/// bytes: the entries are serialized in chunks, and each chunk is hashed while the next one is
/// serialized on the rayon pool. Two buffers take turns, so the key bytes never all sit in
/// memory (writing 13 MB of fresh pages costs as much as hashing them).
pub fn key(output: &ScanOutput, pack_format: &str, mode: &str) -> Option<blake3::Hash> {
    if !output.problems.is_empty() {
        return None;
    }
    let mut head = KeyBytes::default();
    head.text(KEY_LABEL);
    head.text(pack_format);
    head.text(mode);
    let mut hasher = blake3::Hasher::new();
    hasher.update(&head.0);
    rayon::scope(|_| {
        let mut chunks = output.entries.chunks(ENTRIES_PER_CHUNK);
        let mut spare = KeyBytes::default();
        let mut current = chunks
            .next()
            .map(|chunk| KeyBytes::default().entries(chunk));
        while let Some(bytes) = current {
            let next_chunk = chunks.next();
            let ((), next) = rayon::join(
                || {
                    hasher.update(&bytes.0);
                },
                || next_chunk.map(|chunk| spare.entries(chunk)),
            );
            spare = bytes;
            current = next;
        }
    });

    let mut tail = KeyBytes::default();
    for package in &output.packages {
        let kind = match package.kind {
            PackageKind::Node => 0,
            PackageKind::Python => 1,
        };
        tail.0
            .extend_from_slice(&[kind, u8::from(package.contents_skipped)]);
        tail.text(&package.source_folder);
        tail.text(&package.source_dir);
        tail.text(&package.zip_dir);
        tail.text(&package.manifest_path);
        tail.stat(&package.manifest_stat);
    }

    hasher.update(&tail.0);
    Some(hasher.finalize())
}

fn kind_byte(kind: EntryKind) -> u8 {
    match kind {
        EntryKind::File => 0,
        EntryKind::Dir => 1,
        EntryKind::Symlink => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::PackageDir;

    /// The key as the module documentation specifies it, written field by field into one
    /// hasher, to check the chunked, parallel [`key`] against.
    fn reference_key(output: &ScanOutput, pack_format: &str, mode: &str) -> blake3::Hash {
        fn text(hasher: &mut blake3::Hasher, text: &str) {
            hasher.update(&(text.len() as u32).to_le_bytes());
            hasher.update(text.as_bytes());
        }
        fn stat(hasher: &mut blake3::Hasher, stat: &Stat) {
            hasher.update(&stat.size.to_le_bytes());
            hasher.update(&stat.mtime_ns.to_le_bytes());
            hasher.update(&stat.ctime_ns.to_le_bytes());
            hasher.update(&stat.inode.to_le_bytes());
            hasher.update(&stat.mode.to_le_bytes());
        }

        let mut hasher = blake3::Hasher::new();
        text(&mut hasher, KEY_LABEL);
        text(&mut hasher, pack_format);
        text(&mut hasher, mode);
        for entry in &output.entries {
            text(&mut hasher, &entry.zip_path);
            text(&mut hasher, &entry.source_path);
            hasher.update(&[kind_byte(entry.kind)]);
            stat(&mut hasher, &entry.stat);
            text(&mut hasher, entry.link_target.as_deref().unwrap_or(""));
        }
        for package in &output.packages {
            hasher.update(&[0, u8::from(package.contents_skipped)]);
            text(&mut hasher, &package.source_folder);
            text(&mut hasher, &package.source_dir);
            text(&mut hasher, &package.zip_dir);
            text(&mut hasher, &package.manifest_path);
            stat(&mut hasher, &package.manifest_stat);
        }
        hasher.finalize()
    }

    fn output(entries: usize) -> ScanOutput {
        let entries = (0..entries)
            .map(|index| ScannedEntry {
                zip_path: format!("nodejs/node_modules/p{index:06}"),
                source_path: format!("lib/nodejs/node_modules/p{index:06}"),
                kind: [EntryKind::File, EntryKind::Dir, EntryKind::Symlink][index % 3],
                stat: Stat {
                    size: index as u64,
                    mtime_ns: 1_700_000_000_000_000_000 + index as i64,
                    ctime_ns: 1_700_000_000_000_000_001 + index as i64,
                    inode: 1000 + index as u64,
                    mode: 0o100644,
                },
                link_target: (index % 3 == 2).then(|| format!("../p{index}")),
            })
            .collect();
        let packages = vec![PackageDir {
            kind: PackageKind::Node,
            source_folder: "lib/nodejs".into(),
            source_dir: "lib/nodejs/node_modules/a".into(),
            zip_dir: "nodejs/node_modules/a".into(),
            manifest_path: "lib/nodejs/node_modules/a/package.json".into(),
            manifest_stat: Stat::default(),
            contents_skipped: true,
        }];
        ScanOutput {
            entries,
            packages,
            ..ScanOutput::default()
        }
    }

    #[test]
    fn chunked_key_equals_the_specified_byte_stream() {
        for entries in [0, 1, ENTRIES_PER_CHUNK, 2 * ENTRIES_PER_CHUNK + 17] {
            let output = output(entries);
            assert_eq!(
                key(&output, "zip-1", "stat"),
                Some(reference_key(&output, "zip-1", "stat")),
                "{entries} entries"
            );
        }
    }
}
