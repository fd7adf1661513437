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
use crate::scan::{PackageKind, ScanOutput, Stat};

/// Versions the key's layout: change it whenever the byte layout above changes.
pub const KEY_LABEL: &str = "lamina-listing-1";

/// Feeds the hasher through a buffer: hashing 75,000 short fields one `update` at a time costs
/// more than the hashing itself.
struct KeyWriter {
    hasher: blake3::Hasher,
    buffer: Vec<u8>,
}

impl KeyWriter {
    const FLUSH_AT: usize = 64 << 10;

    fn bytes(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= Self::FLUSH_AT {
            self.hasher.update(&self.buffer);
            self.buffer.clear();
        }
    }

    fn text(&mut self, text: &str) {
        self.bytes(&(text.len() as u32).to_le_bytes());
        self.bytes(text.as_bytes());
    }

    fn stat(&mut self, stat: &Stat) {
        self.bytes(&stat.size.to_le_bytes());
        self.bytes(&stat.mtime_ns.to_le_bytes());
        self.bytes(&stat.ctime_ns.to_le_bytes());
        self.bytes(&stat.inode.to_le_bytes());
        self.bytes(&stat.mode.to_le_bytes());
    }

    fn finish(mut self) -> blake3::Hash {
        self.hasher.update(&self.buffer);
        self.hasher.finalize()
    }
}

/// The key of a scan's listing, or `None` when the scan reported problems (a run with problems
/// records nothing).
pub fn key(output: &ScanOutput, pack_format: &str, mode: &str) -> Option<blake3::Hash> {
    if !output.problems.is_empty() {
        return None;
    }
    let mut writer = KeyWriter {
        hasher: blake3::Hasher::new(),
        buffer: Vec::with_capacity(KeyWriter::FLUSH_AT + 4096),
    };
    writer.text(KEY_LABEL);
    writer.text(pack_format);
    writer.text(mode);
    for entry in &output.entries {
        writer.text(&entry.zip_path);
        writer.text(&entry.source_path);
        writer.bytes(&[kind_byte(entry.kind)]);
        writer.stat(&entry.stat);
        writer.text(entry.link_target.as_deref().unwrap_or(""));
    }
    for package in &output.packages {
        let kind = match package.kind {
            PackageKind::Node => 0,
            PackageKind::Python => 1,
        };
        writer.bytes(&[kind, u8::from(package.contents_skipped)]);
        writer.text(&package.source_folder);
        writer.text(&package.source_dir);
        writer.text(&package.zip_dir);
        writer.text(&package.manifest_path);
        writer.stat(&package.manifest_stat);
    }
    Some(writer.finish())
}

fn kind_byte(kind: EntryKind) -> u8 {
    match kind {
        EntryKind::File => 0,
        EntryKind::Dir => 1,
        EntryKind::Symlink => 2,
    }
}
