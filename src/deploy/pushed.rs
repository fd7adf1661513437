//! What this checkout has pushed: per target, layer or function, and content digest, the version
//! or deployment that push produced. Kept in the cache's `pushes` table (specified in
//! `cache-format.md`, section "Cache"), so that `lamina status` can say whether the current
//! content is published without asking the target.
//!
//! A row is written for every layer and function of a push that completed, and for those done
//! before a push stopped: a layer found unchanged on the target is recorded as well as one just
//! published, so a fresh checkout learns from its first push what the target already holds.
//!
//! This is what lamina remembers, not what the target holds now: a version deleted by hand or by
//! another checkout still reads as published here until the next push. The push itself never
//! reads this table; it compares with the target (see [`super::push`]).

use std::collections::BTreeMap;

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use crate::build::BuildReport;
use crate::cache::{Cache, CacheError, Owner};
use crate::deploy::code_sha256;
use crate::deploy::push::PushReport;
use crate::digest::Digest;
use crate::manifest::{Manifest, TargetKind};

/// One pushed digest of a layer or function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushRecord {
    /// The content digest pushed.
    pub digest: Digest,
    /// The layer version holding it; `None` for a function.
    pub version: Option<u64>,
    /// The layer version's ARN; `None` for a function.
    pub arn: Option<String>,
    /// base64 of the zip's SHA-256.
    pub code_sha256: String,
    /// For a function, its layer version ARNs in order of application.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<String>>,
    /// When it was last pushed, in seconds since the Unix epoch.
    pub pushed_at: i64,
}

/// The key of a target in the table: `local`, or `aws` followed by the region lamina.toml names
/// (`aws:eu-west-1`), if any.
///
/// TODO: without a region in lamina.toml, pushes to two AWS regions (through `AWS_REGION` or a
/// profile) share the key `aws`; reading the region would need the AWS configuration chain,
/// which `status` avoids so that it never touches the network.
pub fn target_key(kind: TargetKind, manifest: &Manifest) -> String {
    match (kind, &manifest.target.aws.region) {
        (TargetKind::Local, _) => "local".to_owned(),
        (TargetKind::Aws, Some(region)) => format!("aws:{region}"),
        (TargetKind::Aws, None) => "aws".to_owned(),
    }
}

/// Records what `report` pushed to `target`, in one transaction. `functions` holds the build of
/// each function, by name, for its code digest.
pub fn record_push(
    cache: &mut Cache,
    target: &str,
    report: &PushReport,
    functions: &BTreeMap<String, BuildReport>,
    pushed_at: i64,
) -> Result<(), CacheError> {
    let path = cache.path().to_path_buf();
    let sql_error = |source| CacheError::from_sqlite(&path, source);
    let transaction = cache.transaction()?;
    {
        let mut insert = transaction
            .prepare_cached(
                "INSERT OR REPLACE INTO pushes
                     (target, owner, digest, version, arn, code_sha256, layers, pushed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .map_err(sql_error)?;
        for layer in &report.layers {
            let owner = Owner::Layer(layer.layer.clone()).key();
            let version = i64::try_from(layer.version).unwrap_or(i64::MAX);
            insert
                .execute(params![
                    target,
                    owner,
                    &layer.digest.0[..],
                    version,
                    Some(&layer.arn),
                    layer.code_sha256,
                    Option::<String>::None,
                    pushed_at
                ])
                .map_err(sql_error)?;
        }
        for function in &report.functions {
            let Some(build) = functions.get(&function.function) else {
                continue;
            };
            let Some(zip) = &build.zip else {
                continue;
            };
            let owner = Owner::Function(function.function.clone()).key();
            let layers = serde_json::to_string(&function.layers).expect("strings serialise");
            insert
                .execute(params![
                    target,
                    owner,
                    &build.digest.0[..],
                    Option::<i64>::None,
                    Option::<String>::None,
                    code_sha256(&zip.sha256),
                    layers,
                    pushed_at
                ])
                .map_err(sql_error)?;
        }
    }
    transaction.commit().map_err(sql_error)
}

const COLUMNS: &str = "digest, version, arn, code_sha256, layers, pushed_at";

/// The push of `digest` for `owner` on `target`, if this checkout pushed it.
pub fn published(
    cache: &Cache,
    target: &str,
    owner: &Owner,
    digest: &Digest,
) -> Result<Option<PushRecord>, CacheError> {
    let sql =
        format!("SELECT {COLUMNS} FROM pushes WHERE target = ?1 AND owner = ?2 AND digest = ?3");
    cache
        .connection()
        .query_row(&sql, params![target, owner.key(), &digest.0[..]], read_row)
        .optional()
        .map_err(|source| cache.sql_error(source))
}

/// The most recent push for `owner` on `target`, whatever its digest.
pub fn last_pushed(
    cache: &Cache,
    target: &str,
    owner: &Owner,
) -> Result<Option<PushRecord>, CacheError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM pushes WHERE target = ?1 AND owner = ?2
         ORDER BY pushed_at DESC, version DESC LIMIT 1"
    );
    cache
        .connection()
        .query_row(&sql, params![target, owner.key()], read_row)
        .optional()
        .map_err(|source| cache.sql_error(source))
}

/// The functions this checkout has deployed to `target`, by name.
pub fn pushed_functions(cache: &Cache, target: &str) -> Result<Vec<String>, CacheError> {
    let sql = "SELECT DISTINCT owner FROM pushes WHERE target = ?1 AND owner LIKE 'function:%'
               ORDER BY owner";
    let sql_error = |source| cache.sql_error(source);
    let mut statement = cache.connection().prepare(sql).map_err(sql_error)?;
    let owners = statement
        .query_map(params![target], |row| row.get::<_, String>(0))
        .map_err(sql_error)?;
    let mut names = Vec::new();
    for owner in owners {
        let owner = owner.map_err(sql_error)?;
        names.extend(owner.strip_prefix("function:").map(str::to_owned));
    }
    Ok(names)
}

fn read_row(row: &Row<'_>) -> rusqlite::Result<PushRecord> {
    let digest: Vec<u8> = row.get(0)?;
    let digest: [u8; 32] = digest.try_into().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Blob,
            "a digest is 32 bytes".into(),
        )
    })?;
    let layers: Option<String> = row.get(4)?;
    Ok(PushRecord {
        digest: Digest(digest),
        version: row.get::<_, Option<i64>>(1)?.map(|v| v as u64),
        arn: row.get(2)?,
        code_sha256: row.get(3)?,
        layers: layers.and_then(|text| serde_json::from_str(&text).ok()),
        pushed_at: row.get(5)?,
    })
}
