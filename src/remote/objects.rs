//! The objects of the shared cache: their keys, the zip record and the package list framing.
//! `cache-format.md` ("Portable cache and remote cache") specifies the same bytes.

use serde::{Deserialize, Serialize};
use tracing::debug;

use super::{check, rows};
use crate::cache::ZipRecord;
use crate::digest::{Digest, Entry};
use crate::scan::PackageKind;

/// The `format` of zip records. A reader ignores records of another format (a miss), so raising
/// it makes every shared zip a miss until rebuilt; the key layout would change with it.
pub const RECORD_FORMAT: u32 = 1;

/// Opens every package list object: the magic, then the format (u32 LE), then the blake3 of the
/// list, then the list.
const LIST_MAGIC: &[u8; 20] = b"lamina-package-list\0";

/// The version of the package list object framing after [`LIST_MAGIC`].
pub const LIST_FORMAT: u32 = 1;

/// A zip's record on the shared cache (`zips/<d0d1>/<digest>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ZipObject {
    pub format: u32,
    pub digest: Digest,
    /// The pack format label the zip was written with; only the current one is used.
    pub pack_format: String,
    /// Lowercase hex.
    pub sha256: String,
    pub size: u64,
    pub entries: u64,
    pub unzipped_bytes: u64,
}

fn shard(hex: &str) -> &str {
    &hex[..2]
}

/// `zips/<d0d1>/<digest>.zip`
pub fn zip_key(digest: &Digest) -> String {
    let hex = digest.to_hex();
    format!("zips/{}/{hex}.zip", shard(&hex))
}

/// `zips/<d0d1>/<digest>.json`
pub fn record_key(digest: &Digest) -> String {
    let hex = digest.to_hex();
    format!("zips/{}/{hex}.json", shard(&hex))
}

/// `packages/<kind>/<f0f1>/<fingerprint>.list`
pub fn list_key(kind: PackageKind, fingerprint: &blake3::Hash) -> String {
    let hex = fingerprint.to_hex();
    format!(
        "packages/{}/{}/{hex}.list",
        rows::kind_name(kind),
        &hex[..2]
    )
}

/// Reads a zip record and checks it against the digest it was fetched for and the entries the
/// digest was computed from. `Ok(None)`: a record of another format (a miss, not damage).
pub(super) fn parse_record(
    bytes: &[u8],
    digest: &Digest,
    entries: &[Entry],
) -> Result<Option<ZipRecord>, String> {
    let record: ZipObject =
        serde_json::from_slice(bytes).map_err(|error| format!("it does not parse: {error}"))?;
    if record.format != RECORD_FORMAT || record.pack_format != crate::pack::FORMAT_LABEL {
        let (format, pack_format) = (record.format, &record.pack_format);
        debug!(format, %pack_format, "record of another format");
        return Ok(None);
    }
    if record.digest != *digest {
        return Err(format!("it describes {} instead", record.digest));
    }
    let sha256 = blake3::Hash::from_hex(&record.sha256)
        .map(|hash| *hash.as_bytes())
        .map_err(|_| format!("its sha256 `{}` is not 64 hex digits", record.sha256))?;
    if record.entries != entries.len() as u64
        || record.unzipped_bytes != check::unzipped_bytes(entries)
    {
        return Err("its entry count or unzipped size differs from the digest's entries".into());
    }
    Ok(Some(ZipRecord {
        digest: *digest,
        sha256,
        size: record.size,
        entries: record.entries,
        unzipped_bytes: record.unzipped_bytes,
        file_name: format!("{}.zip", digest.to_hex()),
    }))
}

/// Frames a stored package list for the shared cache: magic, format, blake3 of the list, list.
pub fn frame_list(list: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(LIST_MAGIC.len() + 4 + 32 + list.len());
    framed.extend_from_slice(LIST_MAGIC);
    framed.extend_from_slice(&LIST_FORMAT.to_le_bytes());
    framed.extend_from_slice(blake3::hash(list).as_bytes());
    framed.extend_from_slice(list);
    framed
}

/// The list inside a framed package list object, after checking the frame and the checksum.
pub fn unframe_list(framed: &[u8]) -> Result<&[u8], String> {
    let header = LIST_MAGIC.len() + 4 + 32;
    if framed.len() < header || &framed[..LIST_MAGIC.len()] != LIST_MAGIC {
        return Err("it is not a lamina package list".into());
    }
    let format = u32::from_le_bytes(framed[20..24].try_into().expect("4 bytes"));
    if format != LIST_FORMAT {
        return Err(format!(
            "it has list format {format}, this lamina reads {LIST_FORMAT}"
        ));
    }
    let list = &framed[header..];
    if blake3::hash(list).as_bytes() != &framed[24..56] {
        return Err("its checksum does not match its content".into());
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sharded_by_the_first_two_hex_digits() {
        let digest = Digest([0xab; 32]);
        assert_eq!(zip_key(&digest), format!("zips/ab/{}.zip", digest.to_hex()));
        assert_eq!(
            record_key(&digest),
            format!("zips/ab/{}.json", digest.to_hex())
        );
        let fingerprint = blake3::Hash::from_bytes([0x01; 32]);
        assert_eq!(
            list_key(PackageKind::Node, &fingerprint),
            format!("packages/node/01/{}.list", fingerprint.to_hex())
        );
    }

    #[test]
    fn a_framed_list_round_trips_and_any_flipped_bit_is_caught() {
        let list = b"some list bytes".to_vec();
        let framed = frame_list(&list);
        assert_eq!(unframe_list(&framed).unwrap(), &list[..]);
        for index in 0..framed.len() {
            let mut damaged = framed.clone();
            damaged[index] ^= 0x01;
            assert!(
                unframe_list(&damaged).is_err(),
                "bit flip at {index} went unnoticed"
            );
        }
        assert!(unframe_list(&framed[..framed.len() - 1]).is_err());
    }
}
