//! The local registry: the default deploy target, a folder at `.lamina/registry/`.
//!
//! It does offline what Lambda does for layer versions and functions, with identifiers shaped
//! like AWS ARNs (region `local`, account `000000000000`) so that planning, reports and the
//! command line have one code path for both targets. The layout is specified in
//! `cache-format.md` ("Local registry"):
//!
//! ```text
//! registry/
//!   .lock                          held (flock) by any process changing the registry
//!   blobs/<sha256 hex>.zip         every zip a record names, stored once by its SHA-256
//!   layers/<name>/layer.json       the per-layer counter: {"format", "layer", "last_version"}
//!   layers/<name>/versions/<N>.json  one record per layer version
//!   functions/<name>.json          one record per deployed function
//! ```
//!
//! Every file is written atomically (temporary file, then rename) through [`crate::atomic`].
//! A record that cannot be read is an error naming it, and is never overwritten: the registry
//! stands for published state, and guessing would lose it.
//!
//! Version numbers come from `max(last_version, highest record) + 1`, and the counter is written
//! before the record. A crash between the two leaves a gap in the numbers, never a reused one;
//! deleting a version removes its record but not the counter, so numbers are not reused after
//! deletion either.
//!
//! Access is kept as a policy of statements in each version record, as Lambda keeps a layer
//! version policy. lamina's statements have ids `lamina-account-<id>`, `lamina-org-<id>` and
//! `lamina-public`; any other statement is foreign and left alone.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use base64::prelude::{Engine as _, BASE64_STANDARD};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use crate::access::AccessSet;
use crate::deploy::{
    code_sha256, sha256_hex, utc_timestamp, AccessChange, DeployError, DeployFunction,
    FunctionState, LayerVersion, Publication, PublishLayer, Target,
};
use crate::digest::Digest;

/// The region in local ARNs.
pub const LOCAL_REGION: &str = "local";
/// The account in local ARNs, which owns everything in the registry.
pub const LOCAL_ACCOUNT: &str = "000000000000";
/// The format of every registry record. A change to any record's fields that an older lamina
/// would misread must bump it, and the "Local registry" section of cache-format.md with it.
pub const RECORD_FORMAT: u32 = 1;

/// The ARN of a layer version in the local registry.
pub fn layer_version_arn(layer: &str, version: u64) -> String {
    format!("arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT}:layer:{layer}:{version}")
}

/// The ARN of a function in the local registry.
pub fn function_arn(name: &str) -> String {
    format!("arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT}:function:{name}")
}

/// Layer versions and functions kept in a folder, with AWS-shaped identifiers.
#[derive(Debug)]
pub struct LocalRegistry {
    root: PathBuf,
}

/// `layers/<name>/layer.json`: the highest number ever given to a version of the layer.
#[derive(Debug, Serialize, Deserialize)]
struct LayerCounter {
    format: u32,
    layer: String,
    last_version: u64,
}

/// `layers/<name>/versions/<N>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct VersionRecord {
    format: u32,
    layer: String,
    version: u64,
    arn: String,
    digest: Digest,
    sha256: String,
    code_sha256: String,
    zip_size: u64,
    unzipped_size: u64,
    description: String,
    created: String,
    runtimes: Vec<String>,
    architectures: Vec<String>,
    policy: Vec<Statement>,
}

/// One grant in a version's policy. `principal` is an account id or `*`; a `*` grant limited to
/// an organization names it in `organization`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Statement {
    sid: String,
    principal: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    organization: Option<String>,
}

/// `functions/<name>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FunctionRecord {
    format: u32,
    name: String,
    arn: String,
    runtime: String,
    handler: String,
    role: Option<String>,
    digest: Digest,
    sha256: String,
    code_sha256: String,
    zip_size: u64,
    unzipped_size: u64,
    layers: Vec<String>,
    architectures: Vec<String>,
    created: String,
    updated: String,
}

/// Held while a process changes the registry; the lock is released when the file is closed.
struct RegistryLock {
    _file: fs_err::File,
}

impl LocalRegistry {
    /// Opens the registry at `root`, creating its folder if needed.
    pub fn open(root: impl Into<PathBuf>) -> Result<LocalRegistry, DeployError> {
        let root = root.into();
        fs_err::create_dir_all(&root).map_err(io_error("create", &root))?;
        Ok(LocalRegistry { root })
    }

    /// The registry folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a zip with this SHA-256 is stored.
    pub fn blob_path(&self, sha256: &[u8; 32]) -> PathBuf {
        self.root
            .join("blobs")
            .join(format!("{}.zip", sha256_hex(sha256)))
    }

    /// The record file of a layer version.
    pub fn version_path(&self, layer: &str, version: u64) -> PathBuf {
        self.versions_dir(layer).join(format!("{version}.json"))
    }

    /// The record file of a function.
    pub fn function_path(&self, name: &str) -> PathBuf {
        self.root.join("functions").join(format!("{name}.json"))
    }

    fn counter_path(&self, layer: &str) -> PathBuf {
        self.root.join("layers").join(layer).join("layer.json")
    }

    fn versions_dir(&self, layer: &str) -> PathBuf {
        self.root.join("layers").join(layer).join("versions")
    }

    fn lock(&self) -> Result<RegistryLock, DeployError> {
        let path = self.root.join(".lock");
        let file = fs_err::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error("open the lock file", &path))?;
        file.lock().map_err(io_error("lock", &path))?;
        Ok(RegistryLock { _file: file })
    }

    /// Every version record of `layer`, oldest first.
    fn version_records(&self, layer: &str) -> Result<Vec<(PathBuf, VersionRecord)>, DeployError> {
        let dir = self.versions_dir(layer);
        let entries = match fs_err::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(io_error("list", &dir)(error)),
        };
        let mut records = Vec::new();
        for entry in entries {
            let path = entry.map_err(io_error("list", &dir))?.path();
            let Some(version) = record_number(&path) else {
                tracing::debug!(path = %path.display(), "not a version record; skipped");
                continue;
            };
            let record: VersionRecord = read_record(&path)?.ok_or_else(|| vanished(&path))?;
            check_version_record(&path, &record, layer, version)?;
            records.push((path, record));
        }
        records.sort_by_key(|(_, record)| record.version);
        Ok(records)
    }

    fn version_record(&self, layer: &str, version: u64) -> Result<VersionRecord, DeployError> {
        let path = self.version_path(layer, version);
        match read_record::<VersionRecord>(&path)? {
            Some(record) => {
                check_version_record(&path, &record, layer, version)?;
                Ok(record)
            }
            None => Err(DeployError::NoSuchVersion {
                layer: layer.to_string(),
                version,
                existing: self.version_numbers(layer)?,
            }),
        }
    }

    fn function_record(&self, name: &str) -> Result<Option<FunctionRecord>, DeployError> {
        let path = self.function_path(name);
        let record = read_record::<FunctionRecord>(&path)?;
        if let Some(record) = &record {
            check_function_record(&path, record, name)?;
        }
        Ok(record)
    }

    fn version_numbers(&self, layer: &str) -> Result<Vec<u64>, DeployError> {
        let records = self.version_records(layer)?;
        Ok(records.iter().map(|(_, record)| record.version).collect())
    }

    /// The number the next version of `layer` gets.
    fn next_version(&self, layer: &str) -> Result<u64, DeployError> {
        let counter_path = self.counter_path(layer);
        let counted = match read_record::<LayerCounter>(&counter_path)? {
            Some(counter) => {
                check_format(&counter_path, counter.format)?;
                counter.last_version
            }
            None => 0,
        };
        let highest = self.version_numbers(layer)?.last().copied().unwrap_or(0);
        Ok(counted.max(highest) + 1)
    }

    /// Copies the zip into `blobs/` unless a blob with its SHA-256 is already there, checking
    /// that the file still has the SHA-256 the build reported.
    fn store_blob(&self, zip_path: &Path, expected: &str) -> Result<[u8; 32], DeployError> {
        let sha256 = decode_code_sha256(expected)?;
        let blob = self.blob_path(&sha256);
        if blob.exists() {
            return Ok(sha256);
        }
        let mut source = fs_err::File::open(zip_path).map_err(io_error("read", zip_path))?;
        let mut found = None;
        let written = crate::atomic::write_with(&blob, |file| {
            let actual = copy_hashing(&mut source, file)?;
            if actual != sha256 {
                found = Some(actual);
                return Err(io::Error::other("the zip changed during the copy"));
            }
            Ok(())
        });
        if let Some(actual) = found {
            return Err(DeployError::ZipChanged {
                path: zip_path.to_path_buf(),
                expected: expected.to_string(),
                found: code_sha256(&actual),
            });
        }
        written.map_err(io_error("store", &blob))?;
        Ok(sha256)
    }

    /// Removes the blobs that no record names any more, after a record was deleted or replaced;
    /// the caller holds the lock, under which every blob is stored. Best effort: the change
    /// that called it is done, so a failure here is a warning, and while any record cannot be
    /// read (it might name any blob) nothing is removed.
    fn remove_unnamed_blobs(&self) {
        let named = match self.named_blobs() {
            Ok(named) => named,
            Err(error) => {
                tracing::warn!(%error, "registry blobs kept: not every record could be read");
                return;
            }
        };
        let dir = self.root.join("blobs");
        let entries = match fs_err::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) => {
                tracing::warn!(%error, "registry blobs kept: the folder could not be listed");
                return;
            }
        };
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(hex) = (file_name.to_str()).and_then(|name| name.strip_suffix(".zip")) else {
                continue;
            };
            let is_blob = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit());
            if !is_blob || named.contains(hex) {
                continue;
            }
            match fs_err::remove_file(entry.path()) {
                Ok(()) => tracing::debug!(blob = hex, "registry blob removed: no record names it"),
                Err(error) => tracing::warn!(%error, "registry blob kept"),
            }
        }
    }

    /// The SHA-256 (hex) of every zip that a version or function record names.
    fn named_blobs(&self) -> Result<HashSet<String>, DeployError> {
        let mut named = HashSet::new();
        for layer in self.record_names(&self.root.join("layers"), None)? {
            let records = self.version_records(&layer)?;
            named.extend(records.into_iter().map(|(_, record)| record.sha256));
        }
        for function in self.record_names(&self.root.join("functions"), Some(".json"))? {
            let path = self.function_path(&function);
            let record = self
                .function_record(&function)?
                .ok_or_else(|| vanished(&path))?;
            named.insert(record.sha256);
        }
        Ok(named)
    }

    /// The names in `dir` (without `suffix`, and only those with it, when given); none when the
    /// folder does not exist. A name that is not UTF-8 is an error: its record cannot be read.
    fn record_names(&self, dir: &Path, suffix: Option<&str>) -> Result<Vec<String>, DeployError> {
        let entries = match fs_err::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(io_error("list", dir)(error)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_error("list", dir))?;
            let Ok(name) = entry.file_name().into_string() else {
                let reason = "its name is not UTF-8".to_string();
                return Err(DeployError::DamagedRecord {
                    path: entry.path(),
                    reason,
                });
            };
            match suffix {
                Some(suffix) => names.extend(name.strip_suffix(suffix).map(str::to_owned)),
                None => names.push(name),
            }
        }
        Ok(names)
    }

    /// Stores the blob and writes the counter and the record; the caller holds the lock.
    fn publish_locked(&self, request: &PublishLayer) -> Result<LayerVersion, DeployError> {
        let sha256 = self.store_blob(&request.zip_path, &request.code_sha256)?;
        let version = self.next_version(&request.layer)?;

        let counter = LayerCounter {
            format: RECORD_FORMAT,
            layer: request.layer.clone(),
            last_version: version,
        };
        write_record(&self.counter_path(&request.layer), &counter)?;

        let record = VersionRecord::new(request, version, &sha256);
        write_record(&self.version_path(&request.layer, version), &record)?;
        tracing::debug!(layer = %request.layer, version, "layer version recorded");
        Ok(record.to_layer_version())
    }
}

impl Target for LocalRegistry {
    fn describe(&self) -> String {
        format!("local registry {}", self.root.display())
    }

    fn layer_versions(&mut self, layer: &str) -> Result<Vec<LayerVersion>, DeployError> {
        check_name("layer", layer)?;
        let records = self.version_records(layer)?;
        Ok(records
            .into_iter()
            .map(|(_, record)| record.to_layer_version())
            .collect())
    }

    /// Returns the existing version instead when one [holds](LayerVersion::holds) the request,
    /// so that two pushes racing with the same content publish it once.
    fn publish_layer_version(
        &mut self,
        request: &PublishLayer,
    ) -> Result<LayerVersion, DeployError> {
        match self.publish_layer_version_once(request)? {
            Publication::Published(version) | Publication::Found(version) => Ok(version),
        }
    }

    /// The check for an existing version and the publish happen under the registry lock, so a
    /// concurrent push either sees this process's version or publishes before it takes the lock.
    fn publish_layer_version_once(
        &mut self,
        request: &PublishLayer,
    ) -> Result<Publication, DeployError> {
        check_name("layer", &request.layer)?;
        let _lock = self.lock()?;
        let records = self.version_records(&request.layer)?;
        let versions: Vec<LayerVersion> = (records.iter())
            .map(|(_, record)| record.to_layer_version())
            .collect();
        if let Some(version) = request.newest_holder(&versions).cloned() {
            tracing::debug!(
                layer = %request.layer,
                version = version.version,
                "an existing version holds this content; not published"
            );
            return Ok(Publication::Found(version));
        }
        self.publish_locked(request).map(Publication::Published)
    }

    fn reconcile_access(
        &mut self,
        layer: &str,
        version: u64,
        desired: &AccessSet,
    ) -> Result<AccessChange, DeployError> {
        check_name("layer", layer)?;
        let _lock = self.lock()?;
        let mut record = self.version_record(layer, version)?;
        let (policy, change) = reconcile_policy(&record.policy, &desired_policy(desired));
        if !change.is_empty() {
            record.policy = policy;
            write_record(&self.version_path(layer, version), &record)?;
        }
        tracing::debug!(layer, version, ?change, "access reconciled");
        Ok(change)
    }

    fn delete_layer_version(&mut self, layer: &str, version: u64) -> Result<(), DeployError> {
        check_name("layer", layer)?;
        let _lock = self.lock()?;
        // Reading first refuses a damaged record and reports a missing one with the
        // existing numbers.
        self.version_record(layer, version)?;
        let path = self.version_path(layer, version);
        fs_err::remove_file(&path).map_err(io_error("delete", &path))?;
        tracing::debug!(layer, version, "layer version record deleted");
        self.remove_unnamed_blobs();
        Ok(())
    }

    fn function(&mut self, name: &str) -> Result<Option<FunctionState>, DeployError> {
        check_name("function", name)?;
        let record = self.function_record(name)?;
        Ok(record.map(|record| record.to_state()))
    }

    fn deploy_function(&mut self, request: &DeployFunction) -> Result<FunctionState, DeployError> {
        check_name("function", &request.name)?;
        let _lock = self.lock()?;
        let path = self.function_path(&request.name);
        let existing = self.function_record(&request.name)?;
        let sha256 = self.store_blob(&request.zip_path, &request.code_sha256)?;

        let now = utc_timestamp(OffsetDateTime::now_utc());
        let record = FunctionRecord::new(request, &sha256, existing.as_ref(), now);
        write_record(&path, &record)?;
        tracing::debug!(function = %request.name, "function recorded");
        if existing.is_some_and(|old| old.sha256 != record.sha256) {
            self.remove_unnamed_blobs();
        }
        Ok(record.to_state())
    }

    fn delete_function(&mut self, name: &str) -> Result<(), DeployError> {
        check_name("function", name)?;
        let _lock = self.lock()?;
        let path = self.function_path(name);
        match fs_err::remove_file(&path) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(DeployError::NoSuchFunction {
                    name: name.to_string(),
                })
            }
            result => result.map_err(io_error("delete", &path))?,
        }
        self.remove_unnamed_blobs();
        Ok(())
    }
}

impl VersionRecord {
    fn new(request: &PublishLayer, version: u64, sha256: &[u8; 32]) -> VersionRecord {
        VersionRecord {
            format: RECORD_FORMAT,
            layer: request.layer.clone(),
            version,
            arn: layer_version_arn(&request.layer, version),
            digest: request.digest,
            sha256: sha256_hex(sha256),
            code_sha256: code_sha256(sha256),
            zip_size: request.zip_size,
            unzipped_size: request.unzipped_size,
            description: request.description.clone(),
            created: utc_timestamp(OffsetDateTime::now_utc()),
            runtimes: request.runtimes.clone(),
            architectures: request.architectures.clone(),
            policy: Vec::new(),
        }
    }

    fn to_layer_version(&self) -> LayerVersion {
        LayerVersion {
            layer: self.layer.clone(),
            version: self.version,
            arn: self.arn.clone(),
            code_sha256: self.code_sha256.clone(),
            description: self.description.clone(),
            created: self.created.clone(),
            runtimes: self.runtimes.clone(),
            architectures: self.architectures.clone(),
            access: access_of(&self.policy),
            digest: Some(self.digest),
            unzipped_size: Some(self.unzipped_size),
        }
    }
}

impl FunctionRecord {
    /// The record of `request` deployed at `updated`, over the `existing` one if any: that keeps
    /// its creation time, and its role when the request names none (as Lambda keeps it).
    fn new(
        request: &DeployFunction,
        sha256: &[u8; 32],
        existing: Option<&FunctionRecord>,
        updated: String,
    ) -> FunctionRecord {
        let created = existing.map_or_else(|| updated.clone(), |old| old.created.clone());
        let kept_role = existing.and_then(|old| old.role.clone());
        FunctionRecord {
            format: RECORD_FORMAT,
            name: request.name.clone(),
            arn: function_arn(&request.name),
            runtime: request.runtime.clone(),
            handler: request.handler.clone(),
            role: request.role.clone().or(kept_role),
            digest: request.digest,
            sha256: sha256_hex(sha256),
            code_sha256: code_sha256(sha256),
            zip_size: request.zip_size,
            unzipped_size: request.unzipped_size,
            layers: request.layers.clone(),
            architectures: request.architectures.clone(),
            created,
            updated,
        }
    }

    fn to_state(&self) -> FunctionState {
        FunctionState {
            name: self.name.clone(),
            arn: self.arn.clone(),
            runtime: self.runtime.clone(),
            handler: self.handler.clone(),
            code_sha256: self.code_sha256.clone(),
            layers: self.layers.clone(),
            architectures: self.architectures.clone(),
            role: self.role.clone(),
        }
    }
}

/// The statements lamina wants for `access`. The owning account needs none.
fn desired_policy(access: &AccessSet) -> Vec<Statement> {
    let accounts = access
        .accounts
        .iter()
        .filter(|id| id.as_str() != LOCAL_ACCOUNT);
    let mut policy: Vec<Statement> = accounts
        .map(|id| Statement {
            sid: format!("lamina-account-{id}"),
            principal: id.clone(),
            organization: None,
        })
        .collect();
    policy.extend(access.orgs.iter().map(|id| Statement {
        sid: format!("lamina-org-{id}"),
        principal: "*".to_string(),
        organization: Some(id.clone()),
    }));
    if access.public {
        policy.push(Statement {
            sid: "lamina-public".to_string(),
            principal: "*".to_string(),
            organization: None,
        });
    }
    policy
}

/// The policy that keeps foreign statements and has exactly lamina's `desired` ones, with what
/// changed.
fn reconcile_policy(
    current: &[Statement],
    desired: &[Statement],
) -> (Vec<Statement>, AccessChange) {
    let mut change = AccessChange::default();
    let mut policy = Vec::new();
    for statement in current {
        if !is_lamina_statement(&statement.sid) {
            change.foreign.push(statement.sid.clone());
            policy.push(statement.clone());
        } else if desired.contains(statement) {
            policy.push(statement.clone());
        } else {
            change.removed.push(statement.sid.clone());
        }
    }
    for statement in desired {
        if !current.contains(statement) {
            change.added.push(statement.sid.clone());
            policy.push(statement.clone());
        }
    }
    change.added.sort();
    change.removed.sort();
    change.foreign.sort();
    (policy, change)
}

fn is_lamina_statement(sid: &str) -> bool {
    sid.starts_with("lamina-")
}

/// Who a policy lets use the version, foreign statements included.
fn access_of(policy: &[Statement]) -> AccessSet {
    let mut access = AccessSet::default();
    for statement in policy {
        match (statement.principal.as_str(), &statement.organization) {
            ("*", Some(org)) => _ = access.orgs.insert(org.clone()),
            ("*", None) => access.public = true,
            (account, _) => _ = access.accounts.insert(account.to_string()),
        }
    }
    access
}

/// The version number a record's file name stands for (`<N>.json`), if it is one.
fn record_number(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_suffix(".json")?.parse().ok()
}

/// Reads and parses a record; `None` when the file does not exist.
fn read_record<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, DeployError> {
    let bytes = match fs_err::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error("read", path)(error)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|error| DeployError::DamagedRecord {
            path: path.to_path_buf(),
            reason: error.to_string(),
        })
}

fn write_record<T: Serialize>(path: &Path, record: &T) -> Result<(), DeployError> {
    let mut json = serde_json::to_vec_pretty(record).expect("registry records serialize");
    json.push(b'\n');
    let mode = crate::atomic::Mode::Exact(crate::atomic::FILE_MODE);
    crate::atomic::write_mode(path, &json, mode).map_err(io_error("write", path))
}

fn check_format(path: &Path, format: u32) -> Result<(), DeployError> {
    if format == RECORD_FORMAT {
        return Ok(());
    }
    Err(DeployError::UnsupportedRecord {
        path: path.to_path_buf(),
        format,
        supported: RECORD_FORMAT,
    })
}

fn check_version_record(
    path: &Path,
    record: &VersionRecord,
    layer: &str,
    version: u64,
) -> Result<(), DeployError> {
    check_format(path, record.format)?;
    if record.layer != layer || record.version != version {
        return Err(DeployError::DamagedRecord {
            path: path.to_path_buf(),
            reason: format!(
                "it describes `{}` version {}, not `{layer}` version {version}",
                record.layer, record.version
            ),
        });
    }
    check_hashes_agree(path, &record.sha256, &record.code_sha256)
}

/// A record's hex `sha256` and base64 `code_sha256` are one hash written twice. When they
/// disagree, the record cannot say which content it holds: planning compares `code_sha256` and
/// would publish that content again.
fn check_hashes_agree(path: &Path, sha256: &str, code_sha256: &str) -> Result<(), DeployError> {
    let decoded = decode_code_sha256(code_sha256).ok();
    if decoded.is_some_and(|bytes| sha256_hex(&bytes) == sha256) {
        return Ok(());
    }
    Err(DeployError::DamagedRecord {
        path: path.to_path_buf(),
        reason: format!(
            "its `code_sha256` {code_sha256} is not the base64 of its `sha256` {sha256}"
        ),
    })
}

fn check_function_record(
    path: &Path,
    record: &FunctionRecord,
    name: &str,
) -> Result<(), DeployError> {
    check_format(path, record.format)?;
    if record.name != name {
        return Err(DeployError::DamagedRecord {
            path: path.to_path_buf(),
            reason: format!("it describes function `{}`, not `{name}`", record.name),
        });
    }
    check_hashes_agree(path, &record.sha256, &record.code_sha256)
}

/// Layer and function names become file names, so they are held to the manifest's rule.
fn check_name(kind: &'static str, name: &str) -> Result<(), DeployError> {
    let is_valid = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    if is_valid {
        Ok(())
    } else {
        Err(DeployError::InvalidName {
            kind,
            name: name.to_string(),
        })
    }
}

fn decode_code_sha256(value: &str) -> Result<[u8; 32], DeployError> {
    let bytes = BASE64_STANDARD.decode(value).ok();
    bytes
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| DeployError::BadCodeSha256 {
            value: value.to_string(),
        })
}

/// Copies `source` into `dest` and returns the SHA-256 of what was copied.
fn copy_hashing(source: &mut impl Read, dest: &mut impl Write) -> io::Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 256 * 1024];
    loop {
        let read = source.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        dest.write_all(&buffer[..read])?;
    }
    Ok(hasher.finalize().into())
}

/// A record listed a moment ago and gone now: another process deleted it.
fn vanished(path: &Path) -> DeployError {
    DeployError::Io {
        action: "read",
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::NotFound, "deleted while being read"),
    }
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> DeployError {
    let path = path.to_path_buf();
    move |source| DeployError::Io {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn statement(sid: &str, principal: &str, organization: Option<&str>) -> Statement {
        Statement {
            sid: sid.to_string(),
            principal: principal.to_string(),
            organization: organization.map(str::to_string),
        }
    }

    #[test]
    fn public_to_accounts_removes_public_and_keeps_foreign() {
        let current = vec![
            statement("lamina-public", "*", None),
            statement("ops-grant", "111111111111", None),
        ];
        let desired = AccessSet {
            accounts: BTreeSet::from(["123456789012".to_string()]),
            ..AccessSet::default()
        };
        let (policy, change) = reconcile_policy(&current, &desired_policy(&desired));
        assert_eq!(change.added, ["lamina-account-123456789012"]);
        assert_eq!(change.removed, ["lamina-public"]);
        assert_eq!(change.foreign, ["ops-grant"]);
        assert!(!access_of(&policy).public);
        assert!(policy.contains(&statement("ops-grant", "111111111111", None)));
    }

    #[test]
    fn reconciling_to_the_same_access_changes_nothing() {
        let desired = AccessSet {
            orgs: BTreeSet::from(["o-abcdefghij".to_string()]),
            ..AccessSet::default()
        };
        let policy = desired_policy(&desired);
        let (again, change) = reconcile_policy(&policy, &desired_policy(&desired));
        assert!(change.is_empty());
        assert_eq!(again, policy);
        assert_eq!(access_of(&again), desired);
    }

    #[test]
    fn the_owning_account_needs_no_statement() {
        let desired = AccessSet {
            accounts: BTreeSet::from([LOCAL_ACCOUNT.to_string()]),
            ..AccessSet::default()
        };
        assert!(desired_policy(&desired).is_empty());
    }

    #[test]
    fn names_that_could_escape_the_registry_are_refused() {
        for name in ["", "../x", "a/b", ".", &"x".repeat(65)] {
            assert!(check_name("layer", name).is_err(), "{name:?}");
        }
        assert!(check_name("layer", "shared_libs-2").is_ok());
    }

    #[test]
    fn only_numbered_json_files_are_version_records() {
        assert_eq!(record_number(Path::new("v/12.json")), Some(12));
        assert_eq!(record_number(Path::new("v/.lamina-tmp-abc")), None);
        assert_eq!(record_number(Path::new("v/notes.json")), None);
    }
}
