//! The project manifest, `lamina.toml`.
//!
//! OWNER NOTE (skeleton): loading, validation and comment-preserving edits are filled in by the
//! lifecycle work. The types below are the contract the rest of lamina reads.
//!
//! ```toml
//! [project]
//! name = "shop"
//!
//! [target]
//! default = "local"                 # or "aws"; `push --target` overrides
//!
//! [target.aws]
//! region = "eu-west-1"              # optional
//! bucket = "team-artifacts"         # for zips over the direct-upload limit
//! prefix = "lamina/"                # S3 key prefix
//! layer_name_prefix = "shop-"       # AWS layer name = prefix + layer name
//!
//! [cache]
//! remote = "s3://bucket/prefix"     # optional shared cache
//! mode = "read-write"               # or "read-only"
//!
//! [layers.shared]                   # names: 1-64 chars of [A-Za-z0-9_-]
//! path = "layers/shared"            # default layers/<name>
//! runtimes = ["nodejs22.x"]
//! architectures = ["x86_64"]        # or ["arm64"]; default x86_64
//! access = ["account:123456789012", "org:o-abcdefghij"]   # or ["public"]; default: owner only
//!
//! [functions.api]
//! runtime = "nodejs22.x"
//! handler = "index.handler"
//! source = "functions/api/src"      # default functions/<name>/src
//! layers = ["shared@latest", "py@3", "arn:aws:lambda:eu-west-1:123456789012:layer:x:4"]
//! architectures = ["x86_64"]
//! role = "arn:aws:iam::123456789012:role/api-exec"
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::access::AccessSet;

/// A loaded, validated `lamina.toml`.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The folder holding `lamina.toml` (absolute).
    pub root: PathBuf,
    pub name: String,
    pub target: TargetConfig,
    pub cache: CacheConfig,
    pub layers: BTreeMap<String, LayerConfig>,
    pub functions: BTreeMap<String, FunctionConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerConfig {
    pub name: String,
    /// Relative to the project root; default `layers/<name>`.
    pub path: PathBuf,
    pub runtimes: Vec<String>,
    /// `x86_64` or `arm64`; default `["x86_64"]`.
    pub architectures: Vec<String>,
    /// Who besides the owning account may use new versions.
    pub access: AccessSet,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionConfig {
    pub name: String,
    pub runtime: String,
    pub handler: String,
    /// Code folder relative to the project root; default `functions/<name>/src`.
    pub source: PathBuf,
    /// In order of application: a later layer's file overwrites an earlier one's.
    pub layers: Vec<LayerRef>,
    pub architectures: Vec<String>,
    /// IAM role ARN, needed to create the function on AWS.
    pub role: Option<String>,
}

/// A function's reference to a layer version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LayerRef {
    /// `NAME@latest`: the newest version after the push.
    Latest(String),
    /// `NAME@N`: a pinned version.
    Pinned(String, u64),
    /// A layer version ARN outside this project.
    Arn(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TargetKind {
    #[default]
    Local,
    Aws,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetConfig {
    pub default: TargetKind,
    pub aws: AwsConfig,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsConfig {
    pub region: Option<String>,
    pub bucket: Option<String>,
    /// S3 key prefix, e.g. `lamina/`; empty when unset.
    pub prefix: String,
    /// Prepended to layer names on AWS.
    pub layer_name_prefix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheMode {
    #[default]
    ReadWrite,
    ReadOnly,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheConfig {
    /// `s3://bucket/prefix`; `LAMINA_REMOTE_CACHE` overrides.
    pub remote: Option<String>,
    pub mode: CacheMode,
}
