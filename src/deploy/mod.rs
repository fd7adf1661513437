//! Stage 5: compare what is built with what a target already has, and publish only what is new.
//!
//! A [`Target`] is where layer versions and functions live: the local registry folder
//! ([`local::LocalRegistry`], the default, offline) or AWS Lambda. Everything above the trait is
//! shared by both targets:
//!
//! - [`push`] plans a push from the build results and the target's current state, checks the
//!   plan against Lambda's limits, then executes it.
//! - [`versions`] lists, removes and re-applies access to existing layer versions.
//! - [`pushed`] remembers, in the cache, what this checkout pushed, for `lamina status`.
//!
//! Identity of content is the zip's SHA-256 (`CodeSha256`, base64, as Lambda reports it). Zips
//! are reproducible, so equal content gives equal bytes and an equal SHA-256; a target never has
//! to be told the content digest to recognise a version, which is what lets a fresh clone on
//! another machine (or a re-run after a crash) find what was already published.
//!
//! Nothing in this module prints: results are values, and the command line renders them.

#[cfg(feature = "aws")]
pub mod aws;
pub mod local;
pub mod push;
pub mod pushed;
pub mod versions;

use std::collections::BTreeSet;
use std::path::PathBuf;

use base64::prelude::{Engine as _, BASE64_STANDARD};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use crate::access::AccessSet;
use crate::build::StateDir;
use crate::digest::Digest;
use crate::manifest::{Manifest, TargetKind};

/// A published layer version, as a target reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerVersion {
    /// The layer's name on the target (after any name prefix).
    pub layer: String,
    pub version: u64,
    /// The version's ARN (`arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION`).
    pub arn: String,
    /// base64 of the zip's SHA-256, as AWS reports CodeSha256.
    pub code_sha256: String,
    pub description: String,
    /// RFC 3339, UTC.
    pub created: String,
    pub runtimes: Vec<String>,
    pub architectures: Vec<String>,
    pub access: AccessSet,
    /// The content digest, when the target knows it (the local registry records it; AWS does not
    /// report it, but a target may fill it in from what lamina remembers).
    #[serde(default)]
    pub digest: Option<Digest>,
    /// Total size of the files in the zip, when the target knows it. Lambda's size limit is on
    /// this number, which AWS does not report for existing versions.
    #[serde(default)]
    pub unzipped_size: Option<u64>,
}

impl LayerVersion {
    /// Whether this version is what publishing `request` would make: the same CodeSha256, and the
    /// same compatible runtimes and architectures in any order. Those two lists are fixed when a
    /// version is published, so a manifest that changes them needs a new version, even of the
    /// same content.
    pub fn holds(&self, request: &PublishLayer) -> bool {
        fn same_set(a: &[String], b: &[String]) -> bool {
            let a: BTreeSet<&str> = a.iter().map(String::as_str).collect();
            let b: BTreeSet<&str> = b.iter().map(String::as_str).collect();
            a == b
        }
        self.code_sha256 == request.code_sha256
            && same_set(&self.runtimes, &request.runtimes)
            && same_set(&self.architectures, &request.architectures)
    }
}

impl PublishLayer {
    /// The newest of `versions` that [holds](LayerVersion::holds) this request: publishing it
    /// again would only add a copy.
    pub fn newest_holder<'v>(&self, versions: &'v [LayerVersion]) -> Option<&'v LayerVersion> {
        (versions.iter())
            .filter(|version| version.holds(self))
            .max_by_key(|version| version.version)
    }
}

/// What [`Target::publish_layer_version_once`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publication {
    /// A new version was published.
    Published(LayerVersion),
    /// A version that [holds](LayerVersion::holds) the request existed when the publish was about
    /// to happen (the newest such); nothing was published.
    Found(LayerVersion),
}

/// A request to publish a new layer version from a built zip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishLayer {
    /// The layer's name in the manifest; a target that prefixes names does so itself.
    pub layer: String,
    pub zip_path: PathBuf,
    /// base64 of the zip's SHA-256.
    pub code_sha256: String,
    pub zip_size: u64,
    pub description: String,
    pub runtimes: Vec<String>,
    pub architectures: Vec<String>,
    /// The content digest of the zip, for targets that record it.
    pub digest: Digest,
    /// Total size of the files in the zip.
    pub unzipped_size: u64,
}

/// A function as a target reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionState {
    pub name: String,
    pub arn: String,
    pub runtime: String,
    pub handler: String,
    /// base64 of the code zip's SHA-256.
    pub code_sha256: String,
    /// Layer version ARNs in order of application.
    pub layers: Vec<String>,
    /// Instruction set architectures (Lambda's default, `x86_64`, when it names none).
    pub architectures: Vec<String>,
    /// The execution role's ARN, when the target records one.
    pub role: Option<String>,
}

impl FunctionState {
    /// Whether `wanted` is another role than the function's. No role wanted keeps the function's
    /// own, as Lambda does, so it never differs.
    pub fn role_differs(&self, wanted: Option<&String>) -> bool {
        wanted.is_some_and(|role| self.role.as_ref() != Some(role))
    }
}

/// A request to create or update a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployFunction {
    /// The function's name in the manifest.
    pub name: String,
    pub runtime: String,
    pub handler: String,
    pub role: Option<String>,
    pub zip_path: PathBuf,
    pub zip_size: u64,
    /// base64 of the code zip's SHA-256.
    pub code_sha256: String,
    /// Layer version ARNs in order of application, all resolved.
    pub layers: Vec<String>,
    pub architectures: Vec<String>,
    /// The content digest of the code zip, for targets that record it.
    pub digest: Digest,
    /// Total size of the files in the code zip.
    pub unzipped_size: u64,
}

/// What reconciling a version's access changed, as statement ids (`lamina-account-<id>`,
/// `lamina-org-<id>`, `lamina-public`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AccessChange {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Statements lamina did not create, left alone and reported.
    pub foreign: Vec<String>,
}

impl AccessChange {
    /// Whether nothing was added or removed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// Errors from a deploy target and from version management.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("cannot {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "registry record `{}` is damaged ({reason}); lamina will not overwrite it: repair it, or \
         delete it if the version or function it describes should be forgotten",
        path.display()
    )]
    DamagedRecord { path: PathBuf, reason: String },

    #[error(
        "registry record `{}` has format {format}, but this lamina reads format {supported}; \
         use the lamina that wrote it, or a newer one",
        path.display()
    )]
    UnsupportedRecord {
        path: PathBuf,
        format: u32,
        supported: u32,
    },

    #[error("`{value}` is not a CodeSha256 (the base64 of 32 bytes)")]
    BadCodeSha256 { value: String },

    #[error(
        "the zip `{}` has SHA-256 {found}, but the build reported {expected}: it changed after \
         the build; delete it and run the command again to rebuild it",
        path.display()
    )]
    ZipChanged {
        path: PathBuf,
        expected: String,
        found: String,
    },

    #[error(
        "the built zip `{}` was damaged and has been removed (its SHA-256 is {found}, but the \
         build reported {expected}); run the command again to rebuild it",
        path.display()
    )]
    DamagedZipRemoved {
        path: PathBuf,
        expected: String,
        found: String,
    },

    #[error("`{name}` is not a valid {kind} name: use 1 to 64 letters, digits, `-` or `_`")]
    InvalidName { kind: &'static str, name: String },

    #[error("layer `{layer}` is not in lamina.toml; add it with `lamina layer add {layer}`")]
    UnknownLayer { layer: String },

    #[error("function `{name}` is not deployed on the target; `lamina push` deploys it")]
    NoSuchFunction { name: String },

    #[error(
        "layer `{layer}` has no version {version} on the target (existing: {}); \
         `lamina layer versions {layer}` lists them",
        list_numbers(existing)
    )]
    NoSuchVersion {
        layer: String,
        version: u64,
        existing: Vec<u64>,
    },

    #[error(
        "layer `{layer}` version {version} is pinned by {} ({}); change {} to another version \
         with `lamina function update` first",
        plural(functions.len(), "function", "functions"),
        quote_all(functions),
        if functions.len() == 1 { "that pin" } else { "those pins" }
    )]
    VersionPinned {
        layer: String,
        version: u64,
        functions: Vec<String>,
    },

    #[error(
        "the AWS target is not available: this lamina was built without the `aws` feature; \
         rebuild with default features, or push to the local registry with `--target local`"
    )]
    AwsDisabled,

    /// The AWS target's own errors, boxed so that this enum does not depend on the AWS SDK.
    /// The AWS target wraps its error type here (`DeployError::Aws(Box::new(error))`).
    #[error(transparent)]
    Aws(Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// Where layer versions and functions are published.
///
/// Every method is blocking; a target that talks to a network drives its own runtime. `layer`
/// and `name` arguments are the names in the manifest: a target that adds a name prefix (as the
/// AWS target's `layer_name_prefix`) adds it itself.
pub trait Target {
    /// A short description for messages: `local registry .lamina/registry`.
    fn describe(&self) -> String;
    /// All existing versions of a layer, oldest first; empty when the layer has none.
    fn layer_versions(&mut self, layer: &str) -> Result<Vec<LayerVersion>, DeployError>;
    /// Publishes a new version; the target assigns the number. The new version is shared with
    /// nobody until [`Target::reconcile_access`] is called.
    fn publish_layer_version(
        &mut self,
        request: &PublishLayer,
    ) -> Result<LayerVersion, DeployError>;
    /// Publishes a new version unless one that [holds](LayerVersion::holds) the request already
    /// exists, which another process may have published since the push was planned. A target that can check
    /// and publish as one step (the local registry, under its lock) overrides this; the default
    /// publishes unconditionally.
    fn publish_layer_version_once(
        &mut self,
        request: &PublishLayer,
    ) -> Result<Publication, DeployError> {
        self.publish_layer_version(request)
            .map(Publication::Published)
    }
    /// Makes the version's access exactly `desired` (plus the owning account), touching only the
    /// statements lamina owns.
    fn reconcile_access(
        &mut self,
        layer: &str,
        version: u64,
        desired: &AccessSet,
    ) -> Result<AccessChange, DeployError>;
    /// Deletes a version. Its number is never given out again, and functions that hold it keep
    /// it.
    fn delete_layer_version(&mut self, layer: &str, version: u64) -> Result<(), DeployError>;
    fn function(&mut self, name: &str) -> Result<Option<FunctionState>, DeployError>;
    /// Creates the function, or updates its code and configuration to match `request`.
    fn deploy_function(&mut self, request: &DeployFunction) -> Result<FunctionState, DeployError>;
    fn delete_function(&mut self, name: &str) -> Result<(), DeployError>;
}

/// Opens the target a command deploys to.
pub fn open_target(
    kind: TargetKind,
    manifest: &Manifest,
    state: &StateDir,
) -> Result<Box<dyn Target>, DeployError> {
    match kind {
        TargetKind::Local => Ok(Box::new(local::LocalRegistry::open(state.registry_dir())?)),
        TargetKind::Aws => open_aws(manifest, state),
    }
}

#[cfg(feature = "aws")]
fn open_aws(manifest: &Manifest, state: &StateDir) -> Result<Box<dyn Target>, DeployError> {
    let target = aws::AwsTarget::connect(&manifest.target.aws, &state.path)
        .map_err(|error| DeployError::Aws(Box::new(error)))?;
    Ok(Box::new(target))
}

#[cfg(not(feature = "aws"))]
fn open_aws(_manifest: &Manifest, _state: &StateDir) -> Result<Box<dyn Target>, DeployError> {
    Err(DeployError::AwsDisabled)
}

/// A moment as RFC 3339 in UTC, to the second: `2025-01-31T12:00:00Z`.
pub fn utc_timestamp(moment: OffsetDateTime) -> String {
    let second = moment
        .to_offset(UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(moment);
    second
        .format(&Rfc3339)
        .expect("every UTC moment has an RFC 3339 form")
}

/// The CodeSha256 form of a SHA-256: base64 with padding, as Lambda reports it.
pub fn code_sha256(sha256: &[u8; 32]) -> String {
    BASE64_STANDARD.encode(sha256)
}

/// Lower-case hex of a SHA-256, as blob file names use it.
pub fn sha256_hex(sha256: &[u8; 32]) -> String {
    sha256.iter().map(|byte| format!("{byte:02x}")).collect()
}

pub(crate) fn list_numbers(versions: &[u64]) -> String {
    if versions.is_empty() {
        return "none".to_string();
    }
    let numbers: Vec<String> = versions.iter().map(u64::to_string).collect();
    numbers.join(", ")
}

pub(crate) fn quote_all(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
    quoted.join(", ")
}

pub(crate) fn plural(count: usize, one: &'static str, many: &'static str) -> &'static str {
    if count == 1 {
        one
    } else {
        many
    }
}
