//! Checks that cache data which came from elsewhere (an export file, a shared cache, or a disk
//! that may have rotted) holds what its key says, before anything uses it.
//!
//! - A **zip** is checked twice over: its bytes against the SHA-256 and size recorded for it,
//!   and its content against the entry list whose blake3 is its digest. The second check opens
//!   the zip with an independent reader (the `zip` crate, not lamina's writer), compares every
//!   entry's name, kind and mode, and decompresses every file to compare its size and blake3 with
//!   the list (a symlink's stored target with the list's). A zip that passes holds exactly the
//!   content its digest names, whoever wrote it.
//! - An **entry list** (a zip's preimage) must hash to the zip's digest and parse.
//! - A **package list** must parse under its label, and a node package's list must hold a
//!   `package.json` whose hash is the fingerprint it is filed under (a node fingerprint is the
//!   blake3 of that file). A Python list is keyed by the lock file, which is not in the list, so
//!   only its framing and the checksum around it vouch for it.

use std::io::{self, Read, Write};
use std::path::Path;

use rayon::prelude::*;
use sha2::Digest as _;

use crate::cache::PACKAGE_LIST_LABEL;
use crate::digest::{self, Digest, Entry, EntryKind};
use crate::scan::PackageKind;

/// Why a zip does not hold what its key says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZipDamage {
    #[error("it has {found} bytes where {expected} were recorded")]
    Size { expected: u64, found: u64 },
    #[error("its SHA-256 is {found}, not the recorded {expected}")]
    Sha256 { expected: String, found: String },
    #[error("it cannot be read: {detail}")]
    Unreadable { detail: String },
    #[error("it holds {found} entries where its entry list has {expected}")]
    Count { expected: usize, found: usize },
    #[error("entry {index} is `{found}` where its entry list has `{expected}`")]
    Name {
        index: usize,
        expected: String,
        found: String,
    },
    #[error("`{path}` has mode {found:o} where its entry list has {expected:o}")]
    Mode {
        path: String,
        expected: u32,
        found: u32,
    },
    #[error("the content of `{path}` differs from its entry list")]
    Content { path: String },
}

/// A writer that passes bytes on while computing their SHA-256 and counting them.
pub struct HashingWriter<W> {
    inner: W,
    sha256: sha2::Sha256,
    size: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> HashingWriter<W> {
        HashingWriter {
            inner,
            sha256: sha2::Sha256::new(),
            size: 0,
        }
    }

    /// The SHA-256 and size of everything written, and the inner writer.
    pub fn finish(self) -> ([u8; 32], u64, W) {
        (self.sha256.finalize().into(), self.size, self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buffer)?;
        self.sha256.update(&buffer[..written]);
        self.size += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The SHA-256 and size of the file at `path`, read once.
pub fn sha256_of_file(path: &Path) -> io::Result<([u8; 32], u64)> {
    let mut file = fs_err::File::open(path)?;
    let mut writer = HashingWriter::new(io::sink());
    io::copy(&mut file, &mut writer)?;
    let (sha256, size, _) = writer.finish();
    Ok((sha256, size))
}

/// Compares a zip's SHA-256 and size, computed from its bytes, with the recorded ones.
pub fn check_bytes(expected: ([u8; 32], u64), found: ([u8; 32], u64)) -> Result<(), ZipDamage> {
    if expected.1 != found.1 {
        return Err(ZipDamage::Size {
            expected: expected.1,
            found: found.1,
        });
    }
    if expected.0 != found.0 {
        return Err(ZipDamage::Sha256 {
            expected: crate::deploy::sha256_hex(&expected.0),
            found: crate::deploy::sha256_hex(&found.0),
        });
    }
    Ok(())
}

/// Checks that the zip at `path` holds exactly `entries` (sorted by path, as in its preimage):
/// names, kinds, modes, and every file's content by blake3. Files are decompressed in parallel,
/// each worker with its own reader of the zip.
pub fn check_content(path: &Path, entries: &[Entry]) -> Result<(), ZipDamage> {
    let count = open(path)?.len();
    if count != entries.len() {
        return Err(ZipDamage::Count {
            expected: entries.len(),
            found: count,
        });
    }
    let chunk = entries
        .len()
        .div_ceil(rayon::current_num_threads() * 4)
        .max(64);
    entries
        .par_chunks(chunk)
        .enumerate()
        .try_for_each(|(number, slice)| {
            let mut archive = open(path)?;
            slice.iter().enumerate().try_for_each(|(offset, entry)| {
                check_entry(&mut archive, number * chunk + offset, entry)
            })
        })
}

fn open(path: &Path) -> Result<zip::ZipArchive<fs_err::File>, ZipDamage> {
    let file = fs_err::File::open(path).map_err(|error| ZipDamage::Unreadable {
        detail: error.to_string(),
    })?;
    zip::ZipArchive::new(file).map_err(|error| ZipDamage::Unreadable {
        detail: error.to_string(),
    })
}

fn check_entry(
    archive: &mut zip::ZipArchive<fs_err::File>,
    index: usize,
    entry: &Entry,
) -> Result<(), ZipDamage> {
    let unreadable = |error: &dyn std::fmt::Display| ZipDamage::Unreadable {
        detail: format!("entry {index}: {error}"),
    };
    let mut file = archive.by_index(index).map_err(|e| unreadable(&e))?;
    let name = file.name().map_err(|e| unreadable(&e))?.into_owned();
    let expected_name = match entry.kind {
        EntryKind::Dir => format!("{}/", entry.path),
        EntryKind::File | EntryKind::Symlink => entry.path.clone(),
    };
    if name != expected_name {
        return Err(ZipDamage::Name {
            index,
            expected: expected_name,
            found: name,
        });
    }
    let file_type = match entry.kind {
        EntryKind::Dir => 0o040_000,
        EntryKind::File => 0o100_000,
        EntryKind::Symlink => 0o120_000,
    };
    let mode = file.unix_mode().unwrap_or(0);
    if mode != file_type | entry.mode {
        return Err(ZipDamage::Mode {
            path: entry.path.clone(),
            expected: file_type | entry.mode,
            found: mode,
        });
    }

    let content_differs = || ZipDamage::Content {
        path: entry.path.clone(),
    };
    match entry.kind {
        EntryKind::Dir => Ok(()),
        EntryKind::Symlink => {
            let mut target = Vec::new();
            file.read_to_end(&mut target).map_err(|e| unreadable(&e))?;
            let matches = entry.link_target.as_deref().map(str::as_bytes) == Some(&target[..]);
            matches.then_some(()).ok_or_else(content_differs)
        }
        EntryKind::File => {
            let mut hasher = blake3::Hasher::new();
            // The zip reader checks the CRC-32 when the data ends; a mismatch is a read error.
            let size = io::copy(&mut file, &mut hasher).map_err(|e| unreadable(&e))?;
            let matches = size == entry.size && hasher.finalize() == entry.content_hash;
            matches.then_some(()).ok_or_else(content_differs)
        }
    }
}

/// The entries of a zip's preimage, after checking that it hashes to `digest` and parses.
pub fn check_preimage(digest: &Digest, preimage: &[u8]) -> Result<Vec<Entry>, String> {
    if digest::digest_of_preimage(preimage) != *digest {
        return Err("its entry list does not hash to its digest".to_owned());
    }
    digest::parse_preimage(preimage)
        .map(|parsed| parsed.entries)
        .map_err(|error| error.to_string())
}

/// The entries of a package list (in its stored preimage form), after checking its framing and,
/// for a node package, that it belongs to `fingerprint`. The conflict mark (no entries; see
/// [`PackageList::conflict`](crate::cache::PackageList::conflict)) belongs to any fingerprint.
pub fn check_package_list(
    kind: PackageKind,
    fingerprint: &blake3::Hash,
    encoded: &[u8],
) -> Result<Vec<Entry>, String> {
    let parsed = digest::parse_preimage(encoded).map_err(|error| error.to_string())?;
    if parsed.pack_format != PACKAGE_LIST_LABEL {
        return Err(format!("it is framed as `{}`", parsed.pack_format));
    }
    if kind == PackageKind::Node && !parsed.entries.is_empty() {
        let manifest = parsed
            .entries
            .iter()
            .find(|entry| entry.path == "package.json" && entry.kind == EntryKind::File);
        if manifest.map(|entry| entry.content_hash) != Some(*fingerprint) {
            return Err(
                "its package.json does not hash to the fingerprint it is filed under".into(),
            );
        }
    }
    Ok(parsed.entries)
}

/// Sum of the sizes of the files among `entries`.
pub fn unzipped_bytes(entries: &[Entry]) -> u64 {
    entries.iter().map(|entry| entry.size).sum()
}
