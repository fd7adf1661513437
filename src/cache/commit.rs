//! The write side of the cache: everything one build learned, in one transaction.
//!
//! The statements here run inside the immediate transaction that [`Cache::commit_build`] opens;
//! none of them commits, so an error anywhere leaves the database as it was.
//!
//! [`Cache::commit_build`]: super::Cache::commit_build

use rusqlite::{params, Transaction};

use super::{kind_name, BuildUpdate, FileRecord, PackageList, ZipRecord, PACKAGE_LIST_LABEL};
use crate::digest::{self, Entry};
use crate::scan::PackageKind;

/// Writes `update` for `owner` (its stored key) at time `now`.
pub(super) fn write_update(
    transaction: &Transaction<'_>,
    owner: &str,
    update: &BuildUpdate,
    now: i64,
) -> rusqlite::Result<()> {
    upsert_files(transaction, owner, &update.upsert_files)?;
    remove_files(transaction, owner, &update.remove_files)?;
    insert_packages(transaction, &update.packages, now)?;
    touch_packages(transaction, &update.used_packages, now)?;
    if let Some((zip, preimage)) = &update.zip {
        record_zip(transaction, zip, preimage, now)?;
        transaction.execute(
            "INSERT OR REPLACE INTO builds (owner, digest, built_at) VALUES (?1, ?2, ?3)",
            params![owner, &zip.digest.0, now],
        )?;
    }
    if let Some(listing) = &update.listing {
        transaction
            .prepare_cached(
                "INSERT OR REPLACE INTO listings (owner, mode, listing_key, digest, files)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                owner,
                listing.mode,
                listing.key.as_bytes(),
                &listing.digest.0,
                listing.files as i64,
            ])?;
        // A snapshot of the listing this one replaces is of no use any more; the next unchanged
        // run stores one for the new listing.
        transaction
            .prepare_cached(
                "DELETE FROM listing_snapshots
                 WHERE owner = ?1 AND mode = ?2 AND listing_key <> ?3",
            )?
            .execute(params![owner, listing.mode, listing.key.as_bytes()])?;
    }
    Ok(())
}

fn upsert_files(
    transaction: &Transaction<'_>,
    owner: &str,
    files: &[(String, FileRecord)],
) -> rusqlite::Result<()> {
    let mut statement = transaction.prepare_cached(
        "INSERT OR REPLACE INTO files (owner, path, size, mtime_ns, ctime_ns, inode, mode,
                                       content_hash, link_target, clock_ns)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for (path, record) in files {
        let stat = &record.stat;
        // Sizes and inode numbers are stored as the signed integers with the same 64 bits.
        statement.execute(params![
            owner,
            path,
            stat.size as i64,
            stat.mtime_ns,
            stat.ctime_ns,
            stat.inode as i64,
            stat.mode,
            record.content_hash.as_bytes(),
            record.link_target,
            record.clock_ns,
        ])?;
    }
    Ok(())
}

fn remove_files(
    transaction: &Transaction<'_>,
    owner: &str,
    paths: &[String],
) -> rusqlite::Result<()> {
    let mut statement =
        transaction.prepare_cached("DELETE FROM files WHERE owner = ?1 AND path = ?2")?;
    for path in paths {
        statement.execute(params![owner, path])?;
    }
    Ok(())
}

fn insert_packages(
    transaction: &Transaction<'_>,
    packages: &[(PackageKind, blake3::Hash, PackageList)],
    now: i64,
) -> rusqlite::Result<()> {
    for (kind, fingerprint, PackageList(encoded)) in packages {
        store_package_list(transaction, *kind, fingerprint, encoded, now)?;
    }
    Ok(())
}

/// Stores an encoded package list under its fingerprint, for a build's commit and for
/// `cache import` alike: a list stored before is replaced, unless it is the conflict mark
/// ([`PackageList::conflict`]), which stays.
pub(crate) fn store_package_list(
    transaction: &Transaction<'_>,
    kind: PackageKind,
    fingerprint: &blake3::Hash,
    encoded: &[u8],
    now: i64,
) -> rusqlite::Result<()> {
    let mut statement = transaction.prepare_cached(
        "INSERT INTO packages (kind, fingerprint, entries, entries_hash, created_at, last_used_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)
         ON CONFLICT (kind, fingerprint) DO UPDATE SET
             entries = excluded.entries,
             entries_hash = excluded.entries_hash,
             last_used_at = excluded.last_used_at
         WHERE packages.entries_hash != ?6",
    )?;
    statement.execute(params![
        kind_name(kind),
        fingerprint.as_bytes(),
        encoded,
        blake3::hash(encoded).as_bytes(),
        now,
        PackageList::conflict().hash().as_bytes()
    ])?;
    Ok(())
}

fn touch_packages(
    transaction: &Transaction<'_>,
    packages: &[(PackageKind, blake3::Hash)],
    now: i64,
) -> rusqlite::Result<()> {
    let mut statement = transaction.prepare_cached(
        "UPDATE packages SET last_used_at = ?3 WHERE kind = ?1 AND fingerprint = ?2",
    )?;
    for (kind, fingerprint) in packages {
        statement.execute(params![kind_name(*kind), fingerprint.as_bytes(), now])?;
    }
    Ok(())
}

/// Inserts a zip record, or refreshes every column but `created_at` of the existing one. Writing
/// the preimage again repairs a damaged one and costs almost nothing otherwise: SQLite overwrites
/// a record of unchanged size in place and writes only the pages whose bytes differ (measured:
/// two pages of WAL for a 6.5 MB preimage).
///
/// Every distinct digest keeps its row, preimage included (about 6.5 MB for a layer of 75,000
/// files), until `lamina cache gc` drops the ones no recent build or published version needs and
/// compacts the file; nothing runs gc by itself.
fn record_zip(
    transaction: &Transaction<'_>,
    zip: &ZipRecord,
    preimage: &[u8],
    now: i64,
) -> rusqlite::Result<()> {
    debug_assert_eq!(
        digest::digest_of_preimage(preimage),
        zip.digest,
        "preimage of another zip"
    );
    transaction
        .prepare_cached(
            "INSERT INTO zips (digest, sha256, size, entries, unzipped_bytes, file_name,
                               created_at, last_used_at, preimage)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)
             ON CONFLICT (digest) DO UPDATE SET
                 sha256 = excluded.sha256,
                 size = excluded.size,
                 entries = excluded.entries,
                 unzipped_bytes = excluded.unzipped_bytes,
                 file_name = excluded.file_name,
                 last_used_at = excluded.last_used_at,
                 preimage = excluded.preimage",
        )?
        .execute(params![
            &zip.digest.0,
            &zip.sha256,
            zip.size as i64,
            zip.entries as i64,
            zip.unzipped_bytes as i64,
            zip.file_name,
            now,
            preimage,
        ])?;
    Ok(())
}

/// Frames a package's entry list as a digest preimage under [`PACKAGE_LIST_LABEL`], sorted by
/// path as the preimage requires.
pub(super) fn encode_package_list(entries: &[Entry]) -> Vec<u8> {
    if entries
        .windows(2)
        .all(|pair| pair[0].path.as_bytes() < pair[1].path.as_bytes())
    {
        return digest::preimage(entries, PACKAGE_LIST_LABEL);
    }
    let mut sorted = entries.to_vec();
    sorted.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    digest::preimage(&sorted, PACKAGE_LIST_LABEL)
}
