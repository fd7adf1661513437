//! SQL on the cache database for export, import, the shared cache and upkeep.
//!
//! The engine's portable tables (`zips`, `packages`) are read and written here directly, with
//! the columns `cache-format.md` specifies, because exporting and importing them *is* moving
//! those rows. This module's own tables (migration 2 in `src/cache/schema.rs`) are all
//! machine-local:
//!
//! - `build_history (owner, digest, built_at, sequence)`: every digest an owner was built as,
//!   with the last time and a number that grows with every record, so that `gc --keep-last N`
//!   knows the N most recent builds of each layer and function;
//! - `run_counters (name, run, value)`: the work counters of the last run (one process), read by
//!   `lamina cache stats`; rows of an earlier run are replaced when a new run records;
//! - `remote_objects (remote, key)`: objects this machine wrote to or read from a shared cache,
//!   so that a warm build sends no request to find out whether the remote has them.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};

use crate::cache::{Cache, CacheError, Owner, ZipRecord};
use crate::digest::Digest;
use crate::scan::PackageKind;

/// A row of `zips` without its preimage.
#[derive(Debug, Clone)]
pub struct ZipRow {
    pub record: ZipRecord,
    pub last_used_at: i64,
}

/// A row of `packages`, its list as stored.
#[derive(Debug, Clone)]
pub struct PackageRow {
    pub kind: PackageKind,
    pub fingerprint: blake3::Hash,
    pub entries: Vec<u8>,
    pub entries_hash: [u8; 32],
    pub last_used_at: i64,
}

/// The stored name of a package kind, as `src/cache/` writes it.
pub fn kind_name(kind: PackageKind) -> &'static str {
    match kind {
        PackageKind::Node => "node",
        PackageKind::Python => "python",
    }
}

pub fn kind_from_name(name: &str) -> Option<PackageKind> {
    match name {
        "node" => Some(PackageKind::Node),
        "python" => Some(PackageKind::Python),
        _ => None,
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

fn hash_of(bytes: &[u8]) -> Option<[u8; 32]> {
    bytes.try_into().ok()
}

/// Every zip row, without preimages, by digest.
pub fn zip_rows(cache: &Cache) -> Result<Vec<ZipRow>, CacheError> {
    let query = || -> rusqlite::Result<Vec<ZipRow>> {
        let mut statement = cache.connection().prepare(
            "SELECT digest, sha256, size, entries, unzipped_bytes, file_name, last_used_at
             FROM zips ORDER BY digest",
        )?;
        let rows = statement.query_map([], |row| {
            let digest = bytes(row, 0)?;
            let sha256 = bytes(row, 1)?;
            Ok((digest, sha256, row_rest(row)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (digest, sha256, (size, entries, unzipped, file_name, used)) = row?;
            // The schema's CHECKs hold both at 32 bytes; a row that is not is skipped, and
            // `lamina cache verify` reads rows through the engine, which reports it.
            let (Some(digest), Some(sha256)) = (hash_of(&digest), hash_of(&sha256)) else {
                continue;
            };
            out.push(ZipRow {
                record: ZipRecord {
                    digest: Digest(digest),
                    sha256,
                    size: size as u64,
                    entries: entries as u64,
                    unzipped_bytes: unzipped as u64,
                    file_name,
                },
                last_used_at: used,
            });
        }
        Ok(out)
    };
    query().map_err(|e| cache.sql_error(e))
}

type Rest = (i64, i64, i64, String, i64);

fn row_rest(row: &rusqlite::Row<'_>) -> rusqlite::Result<Rest> {
    Ok((
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
    ))
}

/// A column's bytes, whether stored as a blob or (by damage or a hand edit) as text, so that a
/// row of the wrong type is reported as damaged by the checks rather than failing the query.
fn bytes(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Vec<u8>> {
    Ok(row.get_ref(index)?.as_bytes().unwrap_or_default().to_vec())
}

/// A zip's stored preimage, unchecked.
pub fn zip_preimage(cache: &Cache, digest: &Digest) -> Result<Option<Vec<u8>>, CacheError> {
    cache
        .connection()
        .query_row(
            "SELECT preimage FROM zips WHERE digest = ?1",
            [&digest.0],
            |row| bytes(row, 0),
        )
        .optional()
        .map_err(|e| cache.sql_error(e))
}

/// Inserts a zip row, or refreshes an existing one, as the engine's commit does.
pub fn upsert_zip(
    transaction: &Transaction<'_>,
    zip: &ZipRecord,
    preimage: &[u8],
    now: i64,
) -> rusqlite::Result<()> {
    transaction.execute(
        "INSERT INTO zips (digest, sha256, size, entries, unzipped_bytes, file_name,
                           created_at, last_used_at, preimage)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)
         ON CONFLICT (digest) DO UPDATE SET
             sha256 = excluded.sha256, size = excluded.size, entries = excluded.entries,
             unzipped_bytes = excluded.unzipped_bytes, file_name = excluded.file_name,
             last_used_at = excluded.last_used_at, preimage = excluded.preimage",
        params![
            &zip.digest.0,
            &zip.sha256,
            zip.size as i64,
            zip.entries as i64,
            zip.unzipped_bytes as i64,
            zip.file_name,
            now,
            preimage
        ],
    )?;
    Ok(())
}

/// Every package row, lists included.
pub fn package_rows(cache: &Cache) -> Result<Vec<PackageRow>, CacheError> {
    let query = || -> rusqlite::Result<Vec<PackageRow>> {
        let mut statement = cache.connection().prepare(
            "SELECT kind, fingerprint, entries, entries_hash, last_used_at FROM packages
             ORDER BY kind, fingerprint",
        )?;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                bytes(row, 1)?,
                bytes(row, 2)?,
                bytes(row, 3)?,
                row.get::<_, i64>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (kind, fingerprint, entries, entries_hash, last_used_at) = row?;
            let parts = (
                kind_from_name(&kind),
                hash_of(&fingerprint),
                hash_of(&entries_hash),
            );
            let (Some(kind), Some(fingerprint), Some(entries_hash)) = parts else {
                continue;
            };
            out.push(PackageRow {
                kind,
                fingerprint: blake3::Hash::from_bytes(fingerprint),
                entries,
                entries_hash,
                last_used_at,
            });
        }
        Ok(out)
    };
    query().map_err(|e| cache.sql_error(e))
}

/// One package's stored list, if its stored hash still matches it.
pub fn package_list(
    cache: &Cache,
    kind: PackageKind,
    fingerprint: &blake3::Hash,
) -> Result<Option<Vec<u8>>, CacheError> {
    let row: Option<(Vec<u8>, Vec<u8>)> = cache
        .connection()
        .query_row(
            "SELECT entries, entries_hash FROM packages WHERE kind = ?1 AND fingerprint = ?2",
            params![kind_name(kind), fingerprint.as_bytes()],
            |row| Ok((bytes(row, 0)?, bytes(row, 1)?)),
        )
        .optional()
        .map_err(|e| cache.sql_error(e))?;
    Ok(row
        .filter(|(entries, hash)| blake3::hash(entries).as_bytes().as_slice() == hash)
        .map(|(entries, _)| entries))
}

/// The digest each owner was last built as (the engine's `builds` table).
pub fn current_builds(cache: &Cache) -> Result<Vec<(String, Digest)>, CacheError> {
    digests_by_owner(cache, "SELECT owner, digest FROM builds")
}

/// Every (owner, digest) of the build history, most recent first within each owner: the
/// owner's current build, then by `sequence`, which orders builds made within the same second
/// (`built_at` counts seconds). Rows recorded before `sequence` existed hold 0 and fall back to
/// `built_at`.
pub fn history(cache: &Cache) -> Result<Vec<(String, Digest)>, CacheError> {
    digests_by_owner(
        cache,
        "SELECT h.owner, h.digest FROM build_history h LEFT JOIN builds b ON b.owner = h.owner
         ORDER BY h.owner, coalesce(h.digest = b.digest, 0) DESC, h.sequence DESC,
                  h.built_at DESC, h.digest",
    )
}

fn digests_by_owner(cache: &Cache, sql: &str) -> Result<Vec<(String, Digest)>, CacheError> {
    let query = || -> rusqlite::Result<Vec<(String, Digest)>> {
        let mut statement = cache.connection().prepare(sql)?;
        let rows = statement.query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (owner, digest) = row?;
            if let Some(digest) = hash_of(&digest) {
                out.push((owner, Digest(digest)));
            }
        }
        Ok(out)
    };
    query().map_err(|e| cache.sql_error(e))
}

/// Notes that `owner` was built as `digest` now.
pub fn record_history(
    transaction: &Transaction<'_>,
    owner: &Owner,
    digest: &Digest,
    now: i64,
) -> rusqlite::Result<()> {
    transaction.execute(
        "INSERT INTO build_history (owner, digest, built_at, sequence)
         VALUES (?1, ?2, ?3, (SELECT coalesce(max(sequence), 0) + 1 FROM build_history))
         ON CONFLICT (owner, digest) DO UPDATE
             SET built_at = excluded.built_at, sequence = excluded.sequence",
        params![owner.key(), &digest.0, now],
    )?;
    Ok(())
}

/// How a counter of the run is updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// Added to what this run recorded before (per-build counters).
    Add,
    /// Replaces it (counters that are already totals for the run).
    Set,
}

/// Records counters of run `run`, dropping every counter of another run first.
pub fn record_counters(
    transaction: &Transaction<'_>,
    run: &str,
    counters: &[(&str, i64, Update)],
) -> rusqlite::Result<()> {
    transaction.execute("DELETE FROM run_counters WHERE run <> ?1", [run])?;
    let mut add = transaction.prepare_cached(
        "INSERT INTO run_counters (name, run, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
    )?;
    let mut set = transaction.prepare_cached(
        "INSERT INTO run_counters (name, run, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )?;
    for (name, value, update) in counters {
        match update {
            Update::Add => add.execute(params![name, run, value])?,
            Update::Set => set.execute(params![name, run, value])?,
        };
    }
    Ok(())
}

/// The counters of one run, by name.
pub type Counters = BTreeMap<String, i64>;

/// The counters of the last run that recorded any: its id and the counters by name.
pub fn counters(cache: &Cache) -> Result<Option<(String, Counters)>, CacheError> {
    let query = || -> rusqlite::Result<Vec<(String, String, i64)>> {
        let mut statement = cache
            .connection()
            .prepare("SELECT name, run, value FROM run_counters ORDER BY name")?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
        rows.collect()
    };
    let rows = query().map_err(|e| cache.sql_error(e))?;
    let Some(run) = rows.first().map(|(_, run, _)| run.clone()) else {
        return Ok(None);
    };
    let values = rows.into_iter().map(|(name, _, value)| (name, value));
    Ok(Some((run, values.collect())))
}

/// Whether this machine has seen `key` on the shared cache `remote`.
pub fn is_known(cache: &Cache, remote: &str, key: &str) -> Result<bool, CacheError> {
    cache
        .connection()
        .prepare_cached("SELECT 1 FROM remote_objects WHERE remote = ?1 AND key = ?2")
        .and_then(|mut statement| statement.exists(params![remote, key]))
        .map_err(|e| cache.sql_error(e))
}

/// Notes that `key` exists on the shared cache `remote`.
pub fn mark_known(cache: &Cache, remote: &str, key: &str) -> Result<(), CacheError> {
    cache
        .connection()
        .prepare_cached("INSERT OR IGNORE INTO remote_objects (remote, key) VALUES (?1, ?2)")
        .and_then(|mut statement| statement.execute(params![remote, key]))
        .map(drop)
        .map_err(|e| cache.sql_error(e))
}

/// The CodeSha256 (base64) of every layer version this checkout published (`pushes`) and every
/// layer version the AWS target has seen (`aws_layer_versions`). Functions' code is left out: a
/// function holds only its current code, and which push was the last cannot be told from
/// `pushed_at` (seconds); the local registry's records name a function's current code.
pub fn published_code_sha256s(cache: &Cache) -> Result<Vec<String>, CacheError> {
    let query = || -> rusqlite::Result<Vec<String>> {
        let mut statement = cache.connection().prepare(
            "SELECT code_sha256 FROM pushes WHERE owner LIKE 'layer:%'
             UNION
             SELECT code_sha256 FROM aws_layer_versions",
        )?;
        let rows = statement.query_map([], |row| row.get(0))?;
        rows.collect()
    };
    query().map_err(|e| cache.sql_error(e))
}

/// A row of `aws_layer_versions` (schema version 3, written by the AWS target), column for
/// column, for export and import. The columns are specified in `cache-format.md` ("AWS target").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsVersionRow {
    pub arn: String,
    pub region: String,
    pub account: String,
    pub layer: String,
    pub version: i64,
    pub code_sha256: String,
    pub digest: Option<Digest>,
    pub unzipped_size: Option<i64>,
    pub description: String,
    pub created: String,
    pub runtimes: String,
    pub architectures: String,
    pub access: String,
    pub seen_at: i64,
}

const AWS_VERSION_COLUMNS: &str = "arn, region, account, layer, version, code_sha256, digest, \
                                   unzipped_size, description, created, runtimes, architectures, \
                                   access, seen_at";

/// Every layer version the AWS target has seen.
pub fn aws_versions(cache: &Cache) -> Result<Vec<AwsVersionRow>, CacheError> {
    let query = || -> rusqlite::Result<Vec<AwsVersionRow>> {
        let sql = format!("SELECT {AWS_VERSION_COLUMNS} FROM aws_layer_versions ORDER BY arn");
        let mut statement = cache.connection().prepare(&sql)?;
        let rows = statement.query_map([], |row| {
            let digest: Option<Vec<u8>> = row.get(6)?;
            Ok(AwsVersionRow {
                arn: row.get(0)?,
                region: row.get(1)?,
                account: row.get(2)?,
                layer: row.get(3)?,
                version: row.get(4)?,
                code_sha256: row.get(5)?,
                digest: digest.as_deref().and_then(hash_of).map(Digest),
                unzipped_size: row.get(7)?,
                description: row.get(8)?,
                created: row.get(9)?,
                runtimes: row.get(10)?,
                architectures: row.get(11)?,
                access: row.get(12)?,
                seen_at: row.get(13)?,
            })
        })?;
        rows.collect()
    };
    query().map_err(|e| cache.sql_error(e))
}

/// Adds a seen layer version unless the cache already has one under its ARN: a row this machine
/// wrote is at least as recent as an imported one.
pub fn insert_aws_version(
    transaction: &Transaction<'_>,
    row: &AwsVersionRow,
) -> rusqlite::Result<u64> {
    let sql = format!(
        "INSERT OR IGNORE INTO aws_layer_versions ({AWS_VERSION_COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
    );
    let inserted = transaction.execute(
        &sql,
        params![
            row.arn,
            row.region,
            row.account,
            row.layer,
            row.version,
            row.code_sha256,
            row.digest.map(|digest| digest.0.to_vec()),
            row.unzipped_size,
            row.description,
            row.created,
            row.runtimes,
            row.architectures,
            row.access,
            row.seen_at
        ],
    )?;
    Ok(inserted as u64)
}

/// Why an imported row of `aws_layer_versions` cannot be right: its ARN must name its own region,
/// account, layer and version, and its CodeSha256 must be base64 of 32 bytes.
pub fn aws_version_problem(row: &AwsVersionRow) -> Option<String> {
    use base64::prelude::{Engine as _, BASE64_STANDARD};
    let tail = format!(
        ":lambda:{}:{}:layer:{}:{}",
        row.region, row.account, row.layer, row.version
    );
    if !row.arn.starts_with("arn:") || !row.arn.ends_with(&tail) {
        return Some(format!(
            "its ARN `{}` does not name the version it describes",
            row.arn
        ));
    }
    let decoded = BASE64_STANDARD.decode(&row.code_sha256).ok();
    if decoded.is_none_or(|bytes| bytes.len() != 32) {
        return Some(format!(
            "its CodeSha256 `{}` is not base64 of 32 bytes",
            row.code_sha256
        ));
    }
    None
}
