//! The content digest of a layer or function zip.
//!
//! A digest names exactly what a zip will contain: every path, its kind, its normalised mode and
//! its content, together with the version of the zip format and the compressor that turn those
//! entries into bytes. Anything that can change the zip's bytes is in the digest; nothing else
//! is (mtimes, owners, inode numbers, the order in which files were found).
//!
//! # Specification (format version 1)
//!
//! The digest is the blake3 hash of a byte string, the *preimage*, built as follows. Integers are
//! little-endian; `str` means a `u32` byte length followed by that many UTF-8 bytes.
//!
//! ```text
//! preimage = "lamina-digest" 0x00          (14 bytes, the domain tag)
//!            u32  DIGEST_FORMAT             (1)
//!            str  pack format label         (for example "zip-v1 deflate zlib-rs level-6")
//!            u64  number of entries
//!            entry*                         (sorted by the bytes of their path, no duplicates)
//!
//! entry    = u8   kind                      (1 folder, 2 file, 3 symlink)
//!            str  path                      (zip path: '/'-separated, no leading '/', no
//!                                            trailing '/', never "." or ".." components)
//!            u32  mode                      (0o755 folder, 0o644 or 0o755 file, 0o777 symlink)
//!            then, for a file:    u64 size, then the 32-byte blake3 hash of the content
//!                  for a symlink: str target (the link's target exactly as stored in the zip)
//!                  for a folder:  nothing
//! ```
//!
//! The preimage is also the form in which the cache stores a zip's entry list, so a stored list
//! can be checked against its digest by hashing it again.
//!
//! `tests/vectors/digest.json` holds preimages and digests computed by an independent Python
//! implementation (`tests/vectors/make_digest_vectors.py`); a test checks this module against it.
//!
//! Changing anything above, or the meaning of a field, requires raising [`DIGEST_FORMAT`]. A change
//! to the bytes the packer writes for the same entries requires a new pack format label instead
//! (see [`crate::pack::FORMAT_LABEL`]); either change makes every earlier digest a miss.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The version of the preimage layout described in the module documentation.
pub const DIGEST_FORMAT: u32 = 1;

const DOMAIN_TAG: &[u8] = b"lamina-digest\0";

/// What an entry is, as recorded in the digest and in the zip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    Dir,
    File,
    Symlink,
}

impl EntryKind {
    /// The byte that stands for this kind in the preimage.
    pub fn code(self) -> u8 {
        match self {
            EntryKind::Dir => 1,
            EntryKind::File => 2,
            EntryKind::Symlink => 3,
        }
    }

    /// The kind a preimage byte stands for.
    pub fn from_code(code: u8) -> Option<EntryKind> {
        match code {
            1 => Some(EntryKind::Dir),
            2 => Some(EntryKind::File),
            3 => Some(EntryKind::Symlink),
            _ => None,
        }
    }
}

/// One entry of a zip as the digest sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The path inside the zip.
    pub path: String,
    pub kind: EntryKind,
    /// The normalised mode: see [`normalized_mode`].
    pub mode: u32,
    /// A file's length in bytes; 0 for folders and symlinks.
    pub size: u64,
    /// The blake3 hash of a file's content; for folders and symlinks, unused and all zeros.
    pub content_hash: blake3::Hash,
    /// A symlink's target; `None` for files and folders.
    pub link_target: Option<String>,
}

impl Entry {
    pub fn dir(path: impl Into<String>) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::Dir,
            mode: 0o755,
            size: 0,
            content_hash: ZERO_HASH,
            link_target: None,
        }
    }

    /// A file entry; `raw_mode` is the file's mode on disk, normalised here.
    pub fn file(path: impl Into<String>, raw_mode: u32, size: u64, hash: blake3::Hash) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File,
            mode: normalized_mode(EntryKind::File, raw_mode),
            size,
            content_hash: hash,
            link_target: None,
        }
    }

    pub fn symlink(path: impl Into<String>, target: impl Into<String>) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::Symlink,
            mode: 0o777,
            size: 0,
            content_hash: ZERO_HASH,
            link_target: Some(target.into()),
        }
    }
}

/// The placeholder hash of entries that have no content.
pub const ZERO_HASH: blake3::Hash = blake3::Hash::from_bytes([0; 32]);

/// Maps a mode from disk to the one recorded in the digest and written into the zip: folders are
/// 0o755, symlinks 0o777, and a file is 0o755 when its owner may execute it, 0o644 otherwise.
/// Group and other bits, and so the umask, never matter.
pub fn normalized_mode(kind: EntryKind, raw_mode: u32) -> u32 {
    match kind {
        EntryKind::Dir => 0o755,
        EntryKind::Symlink => 0o777,
        EntryKind::File if raw_mode & 0o100 != 0 => 0o755,
        EntryKind::File => 0o644,
    }
}

/// The content digest of a layer or function zip.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    /// The first 12 hex digits, for messages and file names that people read.
    pub fn short(&self) -> String {
        self.to_hex()[..12].to_string()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.short())
    }
}

impl FromStr for Digest {
    type Err = String;

    fn from_str(text: &str) -> Result<Digest, String> {
        blake3::Hash::from_hex(text)
            .map(|hash| Digest(*hash.as_bytes()))
            .map_err(|_| format!("`{text}` is not a digest (64 hex digits)"))
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Digest, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Builds the preimage of `entries`, which must already be sorted by path without duplicates.
///
/// # Panics
/// In debug builds, if the entries are not strictly sorted: the caller owns that invariant.
pub fn preimage(entries: &[Entry], pack_format: &str) -> Vec<u8> {
    debug_assert!(
        entries
            .windows(2)
            .all(|pair| pair[0].path.as_bytes() < pair[1].path.as_bytes()),
        "entries must be sorted by path without duplicates"
    );
    // The exact length, so that a large layer's preimage is allocated once and not doubled.
    let entry_bytes: usize = entries
        .iter()
        .map(|entry| {
            let data = match entry.kind {
                EntryKind::File => 8 + 32,
                EntryKind::Symlink => 4 + entry.link_target.as_deref().map_or(0, str::len),
                EntryKind::Dir => 0,
            };
            1 + 4 + entry.path.len() + 4 + data
        })
        .sum();
    let header = DOMAIN_TAG.len() + 4 + 4 + pack_format.len() + 8;
    let mut out = Vec::with_capacity(header + entry_bytes);
    out.extend_from_slice(DOMAIN_TAG);
    out.extend_from_slice(&DIGEST_FORMAT.to_le_bytes());
    put_str(&mut out, pack_format);
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for entry in entries {
        out.push(entry.kind.code());
        put_str(&mut out, &entry.path);
        out.extend_from_slice(&entry.mode.to_le_bytes());
        match entry.kind {
            EntryKind::File => {
                out.extend_from_slice(&entry.size.to_le_bytes());
                out.extend_from_slice(entry.content_hash.as_bytes());
            }
            EntryKind::Symlink => put_str(&mut out, entry.link_target.as_deref().unwrap_or("")),
            EntryKind::Dir => {}
        }
    }
    debug_assert_eq!(
        out.len(),
        header + entry_bytes,
        "the preimage length is exact"
    );
    out
}

/// The digest of a preimage built by [`preimage`].
pub fn digest_of_preimage(preimage: &[u8]) -> Digest {
    Digest(*blake3::hash(preimage).as_bytes())
}

/// The digest of `entries` (sorted by path, no duplicates) packed in `pack_format`.
pub fn digest(entries: &[Entry], pack_format: &str) -> Digest {
    digest_of_preimage(&preimage(entries, pack_format))
}

/// Why a stored preimage could not be read back.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PreimageError {
    #[error("entry list is truncated at byte {offset}")]
    Truncated { offset: usize },
    #[error("entry list does not start with the lamina digest tag")]
    BadTag,
    #[error("entry list has digest format {found}, this lamina reads format {DIGEST_FORMAT}")]
    Version { found: u32 },
    #[error("entry list has an unknown entry kind {code} at byte {offset}")]
    BadKind { code: u8, offset: usize },
    #[error("entry list has a path or link target that is not UTF-8 at byte {offset}")]
    NotUtf8 { offset: usize },
    #[error("entry list has {extra} bytes after its last entry")]
    Trailing { extra: usize },
}

/// A preimage read back into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedPreimage {
    pub pack_format: String,
    pub entries: Vec<Entry>,
}

/// Reads a preimage built by [`preimage`] back into its pack format label and entries.
pub fn parse_preimage(bytes: &[u8]) -> Result<ParsedPreimage, PreimageError> {
    let mut reader = Reader { bytes, offset: 0 };
    if reader.take(DOMAIN_TAG.len())? != DOMAIN_TAG {
        return Err(PreimageError::BadTag);
    }
    let version = reader.u32()?;
    if version != DIGEST_FORMAT {
        return Err(PreimageError::Version { found: version });
    }
    let pack_format = reader.string()?;
    let count = reader.u64()?;
    // The count comes from the data: cap the reservation so a damaged count cannot exhaust memory.
    let mut entries = Vec::with_capacity(count.min(1 << 20) as usize);
    for _ in 0..count {
        let offset = reader.offset;
        let code = reader.take(1)?[0];
        let kind = EntryKind::from_code(code).ok_or(PreimageError::BadKind { code, offset })?;
        let path = reader.string()?;
        let mode = reader.u32()?;
        let mut entry = match kind {
            EntryKind::Dir => Entry::dir(path),
            EntryKind::File => {
                let size = reader.u64()?;
                let hash: [u8; 32] = reader.take(32)?.try_into().expect("32 bytes taken");
                Entry::file(path, mode, size, blake3::Hash::from_bytes(hash))
            }
            EntryKind::Symlink => Entry::symlink(path, reader.string()?),
        };
        entry.mode = mode;
        entries.push(entry);
    }
    if reader.offset != bytes.len() {
        return Err(PreimageError::Trailing {
            extra: bytes.len() - reader.offset,
        });
    }
    Ok(ParsedPreimage {
        pack_format,
        entries,
    })
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], PreimageError> {
        let end = self
            .offset
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len());
        let end = end.ok_or(PreimageError::Truncated {
            offset: self.offset,
        })?;
        let slice = &self.bytes[self.offset..end];
        self.offset = end;
        Ok(slice)
    }

    fn u32(&mut self) -> Result<u32, PreimageError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes taken"),
        ))
    }

    fn u64(&mut self) -> Result<u64, PreimageError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes taken"),
        ))
    }

    fn string(&mut self) -> Result<String, PreimageError> {
        let offset = self.offset;
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| PreimageError::NotUtf8 { offset })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Entry> {
        vec![
            Entry::dir("nodejs"),
            Entry::file("nodejs/a.js", 0o664, 3, blake3::hash(b"abc")),
            Entry::symlink("nodejs/link", "a.js"),
            Entry::file("run.sh", 0o700, 0, blake3::hash(b"")),
        ]
    }

    #[test]
    fn preimage_round_trips() {
        let entries = sample();
        let bytes = preimage(&entries, "test-format");
        let parsed = parse_preimage(&bytes).unwrap();
        assert_eq!(parsed.pack_format, "test-format");
        assert_eq!(parsed.entries, entries);
    }

    #[test]
    fn mode_normalisation_ignores_group_and_other_bits() {
        assert_eq!(normalized_mode(EntryKind::File, 0o100664), 0o644);
        assert_eq!(normalized_mode(EntryKind::File, 0o100600), 0o644);
        assert_eq!(normalized_mode(EntryKind::File, 0o100744), 0o755);
        assert_eq!(normalized_mode(EntryKind::File, 0o100711), 0o755);
        assert_eq!(normalized_mode(EntryKind::Dir, 0o40700), 0o755);
    }

    #[test]
    fn pack_format_changes_the_digest() {
        let entries = sample();
        assert_ne!(digest(&entries, "a"), digest(&entries, "b"));
    }

    #[test]
    fn truncated_preimage_is_an_error_not_a_panic() {
        let bytes = preimage(&sample(), "f");
        for cut in 0..bytes.len() {
            assert!(
                parse_preimage(&bytes[..cut]).is_err(),
                "cut at {cut} parsed"
            );
        }
    }

    /// Checks this module against vectors written by an independent Python implementation of the
    /// specification in the module documentation.
    #[test]
    fn matches_independent_vectors() {
        let text = include_str!("../tests/vectors/digest.json");
        let cases: Vec<serde_json::Value> = serde_json::from_str(text).unwrap();
        assert!(cases.len() >= 4);
        for case in cases {
            let mut entries: Vec<Entry> = case["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|entry| {
                    let path = entry["path"].as_str().unwrap();
                    let mode = entry["mode"].as_u64().unwrap() as u32;
                    match entry["kind"].as_str().unwrap() {
                        "dir" => Entry::dir(path),
                        "symlink" => Entry::symlink(path, entry["target"].as_str().unwrap()),
                        _ => {
                            let content = entry["content"].as_str().unwrap().as_bytes();
                            let hash = blake3::hash(content);
                            Entry::file(path, mode, content.len() as u64, hash)
                        }
                    }
                })
                .collect();
            entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
            let format = case["pack_format"].as_str().unwrap();
            let image = preimage(&entries, format);
            let name = case["name"].as_str().unwrap();
            assert_eq!(
                hex(&image),
                case["preimage_hex"].as_str().unwrap(),
                "preimage of {name}"
            );
            assert_eq!(
                digest(&entries, format).to_hex(),
                case["digest"].as_str().unwrap()
            );
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    #[test]
    fn digest_parses_from_hex() {
        let digest = digest(&sample(), "f");
        assert_eq!(digest.to_hex().parse::<Digest>().unwrap(), digest);
        assert!("xyz".parse::<Digest>().is_err());
    }
}
