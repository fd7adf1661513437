//! What lamina has seen of layer versions on AWS, so that a warm push lists each layer once and
//! fetches nothing else.
//!
//! ListLayerVersions does not report CodeSha256, so finding an existing version by content takes
//! one GetLayerVersion per version. A version's number, content, description, creation time and
//! runtimes never change after publication, so once fetched they stay true for as long as the
//! version exists; the listing says which versions still exist, and the others are forgotten.
//!
//! The memory is the `aws_layer_versions` table of the project's cache (`.lamina/cache.db`,
//! migration 2; every column is specified in `cache-format.md`, "AWS target"). A row is keyed by
//! the version's ARN, which names the region, the account and the layer on AWS, and is indexed by
//! that layer and the zip's CodeSha256: it describes published content on a target and nothing of
//! the machine that saw it, so it is portable. One database serves any number of accounts.
//!
//! It is only a cache. A database that cannot be opened, a failed write and a row that does not
//! decode are logged as warnings and cost calls to AWS, never correctness: every decision is made
//! against what AWS lists.

use std::collections::HashMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Row};

use crate::access::AccessSet;
use crate::build::StateDir;
use crate::cache::{Cache, CacheError};
use crate::deploy::LayerVersion;
use crate::digest::Digest;

/// The table's name in the cache.
pub const TABLE: &str = "aws_layer_versions";

/// The parts of a layer version ARN, `arn:PARTITION:lambda:REGION:ACCOUNT:layer:NAME:VERSION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionArn<'a> {
    pub region: &'a str,
    pub account: &'a str,
    /// The layer's name on AWS.
    pub layer: &'a str,
    pub version: u64,
}

impl<'a> VersionArn<'a> {
    pub fn parse(arn: &'a str) -> Option<VersionArn<'a>> {
        let parts: Vec<&str> = arn.split(':').collect();
        match parts.as_slice() {
            ["arn", _partition, "lambda", region, account, "layer", layer, version] => {
                Some(VersionArn {
                    region,
                    account,
                    layer,
                    version: version.parse().ok()?,
                })
            }
            _ => None,
        }
    }
}

/// `arn:aws:lambda:REGION:ACCOUNT:layer:NAME` of `arn:aws:lambda:REGION:ACCOUNT:layer:NAME:N`.
pub fn layer_arn_of(version_arn: &str) -> Option<&str> {
    VersionArn::parse(version_arn)?;
    version_arn.rsplit_once(':').map(|(layer_arn, _)| layer_arn)
}

/// The remembered layer versions. See the module documentation.
#[derive(Debug)]
pub struct Memory {
    /// `None` when the cache could not be opened: nothing is remembered, everything is asked.
    cache: Option<Cache>,
}

const COLUMNS: &str = "arn, layer, version, code_sha256, digest, unzipped_size, description, \
                       created, runtimes, architectures, access";

impl Memory {
    /// Opens the memory in the cache of the project whose `.lamina/` folder is `lamina_dir`.
    pub fn open(lamina_dir: &Path) -> Memory {
        let path = StateDir {
            path: lamina_dir.to_path_buf(),
        }
        .cache_db();
        match Cache::open(&path) {
            Ok(cache) => Memory { cache: Some(cache) },
            Err(error) => {
                tracing::warn!(%error, "cannot use the cache to remember AWS layer versions; \
                               every version will be read from AWS");
                Memory { cache: None }
            }
        }
    }

    /// Every remembered version of the layer that `version_arn` (any version of it) belongs to,
    /// keyed by version ARN, in one query.
    pub fn layer(&self, version_arn: &str) -> HashMap<String, LayerVersion> {
        let (Some(cache), Some(arn)) = (&self.cache, VersionArn::parse(version_arn)) else {
            return HashMap::new();
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM {TABLE} WHERE region = ?1 AND account = ?2 AND layer = ?3"
        );
        let rows = query_versions(cache, &sql, params![arn.region, arn.account, arn.layer]);
        let rows = rows.unwrap_or_else(|error| {
            warn_failed("read", &error);
            Vec::new()
        });
        rows.into_iter().map(|v| (v.arn.clone(), v)).collect()
    }

    /// Remembers versions as AWS reported them, in one transaction.
    pub fn remember(&mut self, versions: &[LayerVersion]) {
        let Some(cache) = &mut self.cache else {
            return;
        };
        if versions.is_empty() {
            return;
        }
        if let Err(error) = insert_versions(cache, versions) {
            warn_failed("write", &error);
        }
    }

    /// Records the access that lamina's statements now grant on a remembered version.
    pub fn set_access(&mut self, version_arn: &str, access: &AccessSet) {
        let sql = format!("UPDATE {TABLE} SET access = ?2 WHERE arn = ?1");
        self.execute(&sql, params![version_arn, access_json(access)]);
    }

    pub fn forget(&mut self, version_arn: &str) {
        let sql = format!("DELETE FROM {TABLE} WHERE arn = ?1");
        self.execute(&sql, params![version_arn]);
    }

    /// Forgets the versions of the layer of `existing` (version ARNs of one layer, as listed)
    /// that are not among them. An empty list says nothing about which layer, so it forgets
    /// nothing.
    pub fn forget_deleted(&mut self, existing: &[String]) {
        let (Some(cache), Some(arn)) = (&mut self.cache, existing.first()) else {
            return;
        };
        let Some(layer) = VersionArn::parse(arn) else {
            return;
        };
        if let Err(error) = delete_others(cache, &layer, existing) {
            warn_failed("write", &error);
        }
    }

    /// The ARN of the one remembered version `number` of the AWS layer `name` in `region`, if
    /// exactly one account has such a version here.
    pub fn find(&self, name: &str, number: u64, region: &str) -> Option<String> {
        let cache = self.cache.as_ref()?;
        let sql = format!(
            "SELECT arn FROM {TABLE} WHERE region = ?1 AND layer = ?2 AND version = ?3 LIMIT 2"
        );
        let found = query_arns(cache, &sql, params![region, name, number as i64]);
        match found {
            Ok(arns) if arns.len() == 1 => arns.into_iter().next(),
            Ok(_) => None,
            Err(error) => {
                warn_failed("read", &error);
                None
            }
        }
    }

    fn execute(&mut self, sql: &str, params: impl rusqlite::Params) {
        let Some(cache) = &self.cache else {
            return;
        };
        let result = cache.connection().execute(sql, params);
        if let Err(error) = result.map_err(|source| cache.sql_error(source)) {
            warn_failed("write", &error);
        }
    }
}

fn warn_failed(operation: &str, error: &CacheError) {
    tracing::warn!(%error, "cannot {operation} the remembered AWS layer versions; AWS will be \
                   asked again instead");
}

fn query_versions(
    cache: &Cache,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<LayerVersion>, CacheError> {
    let sql_error = |source| cache.sql_error(source);
    let mut statement = cache.connection().prepare(sql).map_err(sql_error)?;
    let rows = statement
        .query_map(params, |row| Ok(decode(row)))
        .map_err(sql_error)?;
    let mut versions = Vec::new();
    for row in rows {
        match row.map_err(sql_error)? {
            Ok(version) => versions.push(version),
            // Left in place: the next fetch of that version replaces it.
            Err(reason) => tracing::warn!(%reason, "ignoring a remembered AWS layer version"),
        }
    }
    Ok(versions)
}

fn query_arns(
    cache: &Cache,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<String>, CacheError> {
    let sql_error = |source| cache.sql_error(source);
    let mut statement = cache.connection().prepare(sql).map_err(sql_error)?;
    let rows = statement.query_map(params, |row| row.get::<_, String>(0));
    let arns: Result<Vec<String>, _> = rows.map_err(sql_error)?.collect();
    arns.map_err(sql_error)
}

fn insert_versions(cache: &mut Cache, versions: &[LayerVersion]) -> Result<(), CacheError> {
    let path = cache.path().to_path_buf();
    let sql_error = |source| CacheError::from_sqlite(&path, source);
    let transaction = cache.transaction()?;
    {
        let mut insert = transaction
            .prepare(&format!(
                "INSERT OR REPLACE INTO {TABLE} (arn, region, account, layer, version, \
                 code_sha256, digest, unzipped_size, description, created, runtimes, \
                 architectures, access, seen_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
            ))
            .map_err(sql_error)?;
        for version in versions {
            let Some(arn) = VersionArn::parse(&version.arn) else {
                tracing::debug!(arn = %version.arn, "not remembering a version without a layer \
                                version ARN");
                continue;
            };
            insert
                .execute(params![
                    version.arn,
                    arn.region,
                    arn.account,
                    arn.layer,
                    arn.version as i64,
                    version.code_sha256,
                    version.digest.map(|digest| digest.0.to_vec()),
                    version.unzipped_size.map(|size| size as i64),
                    version.description,
                    version.created,
                    list_json(&version.runtimes),
                    list_json(&version.architectures),
                    access_json(&version.access),
                    unix_seconds(),
                ])
                .map_err(sql_error)?;
        }
    }
    transaction.commit().map_err(sql_error)
}

fn delete_others(
    cache: &mut Cache,
    layer: &VersionArn<'_>,
    existing: &[String],
) -> Result<(), CacheError> {
    let path = cache.path().to_path_buf();
    let sql_error = |source| CacheError::from_sqlite(&path, source);
    let transaction = cache.transaction()?;
    let remembered: Vec<String> = {
        let mut select = transaction
            .prepare(&format!(
                "SELECT arn FROM {TABLE} WHERE region = ?1 AND account = ?2 AND layer = ?3"
            ))
            .map_err(sql_error)?;
        let rows = select
            .query_map(params![layer.region, layer.account, layer.layer], |row| {
                row.get(0)
            })
            .map_err(sql_error)?;
        rows.collect::<Result<_, _>>().map_err(sql_error)?
    };
    for arn in remembered.iter().filter(|arn| !existing.contains(arn)) {
        tracing::debug!(%arn, "forgetting a layer version AWS no longer lists");
        transaction
            .execute(&format!("DELETE FROM {TABLE} WHERE arn = ?1"), [arn])
            .map_err(sql_error)?;
    }
    transaction.commit().map_err(sql_error)
}

/// A row as a [`LayerVersion`], or why it cannot be one.
fn decode(row: &Row<'_>) -> Result<LayerVersion, String> {
    let text = |index: usize| -> Result<String, String> {
        row.get::<_, String>(index)
            .map_err(|error| error.to_string())
    };
    let list = |index: usize| -> Result<Vec<String>, String> {
        serde_json::from_str(&text(index)?).map_err(|error| error.to_string())
    };
    let arn = text(0)?;
    let digest = match row.get::<_, Option<Vec<u8>>>(4) {
        Ok(Some(bytes)) => Some(Digest(bytes.try_into().map_err(|_| "digest length")?)),
        Ok(None) => None,
        Err(error) => return Err(error.to_string()),
    };
    let unzipped_size = row
        .get::<_, Option<i64>>(5)
        .map_err(|error| error.to_string())?;
    let access = AccessSet::parse(&list(10)?).map_err(|error| format!("{arn}: {error}"))?;
    Ok(LayerVersion {
        layer: text(1)?,
        version: row.get::<_, i64>(2).map_err(|error| error.to_string())? as u64,
        code_sha256: text(3)?,
        digest,
        unzipped_size: unzipped_size.map(|size| size as u64),
        description: text(6)?,
        created: text(7)?,
        runtimes: list(8)?,
        architectures: list(9)?,
        access,
        arn,
    })
}

fn list_json(values: &[String]) -> String {
    serde_json::to_string(values).expect("a list of strings serializes")
}

/// Access as a JSON list in the manifest's syntax: `["account:210987654321", "public"]`.
fn access_json(access: &AccessSet) -> String {
    list_json(&access.to_strings())
}

fn unix_seconds() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH);
    now.map_or(0, |elapsed| elapsed.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(layer: &str, number: u64) -> LayerVersion {
        LayerVersion {
            layer: layer.to_owned(),
            version: number,
            arn: format!("arn:aws:lambda:us-east-1:123456789012:layer:{layer}:{number}"),
            code_sha256: "hash".to_owned(),
            description: "d".to_owned(),
            created: "2024-01-01T00:00:00Z".to_owned(),
            runtimes: vec!["nodejs22.x".to_owned()],
            architectures: vec!["x86_64".to_owned()],
            access: AccessSet::parse(&["account:210987654321"]).unwrap(),
            digest: Some(Digest([7; 32])),
            unzipped_size: Some(1234),
        }
    }

    fn remembered(memory: &Memory, layer: &str) -> Vec<(String, u64)> {
        let mut all: Vec<_> = memory
            .layer(&version(layer, 1).arn)
            .into_values()
            .map(|v| (v.layer, v.version))
            .collect();
        all.sort();
        all
    }

    #[test]
    fn remembered_versions_load_back_in_another_session() {
        let dir = tempfile::tempdir().unwrap();
        let mut without_digest = version("a", 2);
        without_digest.digest = None;
        without_digest.unzipped_size = None;
        Memory::open(dir.path()).remember(&[version("a", 1), without_digest.clone()]);

        let loaded = Memory::open(dir.path()).layer(&version("a", 9).arn);
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[&version("a", 1).arn], version("a", 1));
        assert_eq!(loaded[&without_digest.arn], without_digest);
    }

    #[test]
    fn deleted_versions_are_forgotten_and_other_layers_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut memory = Memory::open(dir.path());
        memory.remember(&[version("a", 1), version("a", 2), version("ab", 1)]);

        memory.forget_deleted(&[version("a", 2).arn]);

        assert_eq!(remembered(&memory, "a"), vec![("a".to_owned(), 2)]);
        assert_eq!(remembered(&memory, "ab"), vec![("ab".to_owned(), 1)]);
    }

    #[test]
    fn another_account_is_another_layer() {
        let dir = tempfile::tempdir().unwrap();
        let mut memory = Memory::open(dir.path());
        let mut other_account = version("a", 1);
        other_account.arn = other_account.arn.replace("123456789012", "210987654321");
        memory.remember(&[version("a", 1), other_account.clone()]);

        assert_eq!(memory.layer(&version("a", 1).arn).len(), 1);
        memory.forget_deleted(&[version("a", 3).arn]);
        assert_eq!(memory.layer(&other_account.arn).len(), 1, "kept");
    }

    #[test]
    fn a_version_is_found_by_name_and_number_only_when_unambiguous() {
        let dir = tempfile::tempdir().unwrap();
        let mut memory = Memory::open(dir.path());
        memory.remember(&[version("a", 1)]);
        assert_eq!(memory.find("a", 1, "us-east-1"), Some(version("a", 1).arn));
        assert_eq!(memory.find("a", 1, "eu-west-1"), None);

        let mut other_account = version("a", 1);
        other_account.arn = other_account.arn.replace("123456789012", "210987654321");
        memory.remember(&[other_account]);
        assert_eq!(memory.find("a", 1, "us-east-1"), None);
    }

    #[test]
    fn access_follows_reconciliation_and_forget_removes() {
        let dir = tempfile::tempdir().unwrap();
        let mut memory = Memory::open(dir.path());
        let arn = version("a", 1).arn;
        memory.remember(&[version("a", 1)]);

        memory.set_access(&arn, &AccessSet::parse(&["public"]).unwrap());
        assert!(memory.layer(&arn)[&arn].access.public);
        memory.forget(&arn);
        assert!(memory.layer(&arn).is_empty());
    }

    #[test]
    fn a_row_that_does_not_decode_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let mut memory = Memory::open(dir.path());
        memory.remember(&[version("a", 1), version("a", 2)]);
        memory.execute(
            &format!("UPDATE {TABLE} SET runtimes = 'not json' WHERE version = 1"),
            [],
        );

        assert_eq!(remembered(&memory, "a"), vec![("a".to_owned(), 2)]);
    }

    #[test]
    fn a_cache_that_cannot_be_opened_remembers_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("cache.db"),
            b"not a database at all, not at all",
        )
        .unwrap();
        let mut memory = Memory::open(dir.path());
        memory.remember(&[version("a", 1)]);
        assert!(memory.layer(&version("a", 1).arn).is_empty());
    }

    #[test]
    fn version_arns_are_parsed_strictly() {
        let arn = "arn:aws-cn:lambda:cn-north-1:123456789012:layer:shop-a:3";
        let parsed = VersionArn::parse(arn).unwrap();
        assert_eq!(
            (parsed.region, parsed.account, parsed.layer, parsed.version),
            ("cn-north-1", "123456789012", "shop-a", 3)
        );
        assert_eq!(
            layer_arn_of(arn),
            Some("arn:aws-cn:lambda:cn-north-1:123456789012:layer:shop-a")
        );
        assert_eq!(VersionArn::parse("arn:aws:lambda:r:a:function:f:3"), None);
        assert_eq!(layer_arn_of("arn:aws:lambda:r:a:layer:l:x"), None);
    }
}
