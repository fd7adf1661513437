//! The project manifest, `lamina.toml`: finding it, reading it into a validated [`Manifest`], and
//! editing it without losing the user's comments and formatting ([`ManifestDocument`]).
//!
//! The manifest sits at the project root. Commands find it by searching the current folder and
//! then each parent in turn, as cargo does; `--project DIR` names the folder instead.
//!
//! ```toml
//! [project]
//! name = "shop"                     # default: the project folder's name
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
//! runtimes = ["nodejs22.x"]         # Lambda runtime ids; empty or absent: any runtime
//! architectures = ["x86_64"]        # or ["arm64"]; default x86_64
//! access = ["account:123456789012", "org:o-abcdefghij"]   # or ["public"]; default: owner only
//!
//! [functions.api]                   # names: 1-64 chars of [A-Za-z0-9_-]
//! runtime = "nodejs22.x"
//! handler = "index.handler"
//! source = "functions/api/src"      # default functions/<name>/src
//! layers = ["shared@latest", "py@3", "arn:aws:lambda:eu-west-1:123456789012:layer:x:4"]
//! architectures = ["x86_64"]
//! role = "arn:aws:iam::123456789012:role/api-exec"
//! ```
//!
//! Validation is strict so that a typo fails loudly instead of being ignored: an unknown key is an
//! error, and every error names the file, the line, the dotted key and the bad value, and says
//! what is allowed. A function's `NAME@...` reference must name a layer of the project, and a
//! layer used by a function cannot be removed. Paths are relative to the project root; an
//! absolute path would tie the manifest to one machine.
//!
//! Edits go through [`ManifestDocument`], which wraps a `toml_edit` document: only the tables and
//! keys being changed are touched, everything else (comments, blank lines, key order, quoting)
//! stays byte for byte. The edited text is validated before it is written, and written
//! atomically, so a failed edit never leaves a broken or half-written manifest.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::access::{AccessError, AccessSet};
use crate::build::StateDir;

/// Checks of single values.
pub mod check;
mod edit;
mod read;

pub use edit::{write_user_file, ManifestDocument};
use read::Reader;

/// The manifest's file name.
pub const MANIFEST_FILE: &str = "lamina.toml";

/// lamina's own folder at the project root: cache, build outputs, local registry.
pub const STATE_DIR: &str = ".lamina";

/// The Lambda runtime ids lamina accepts. Deprecated runtimes that AWS no longer lets anyone
/// create functions with are left out.
pub const RUNTIMES: &[&str] = &[
    "nodejs18.x",
    "nodejs20.x",
    "nodejs22.x",
    "nodejs24.x",
    "python3.9",
    "python3.10",
    "python3.11",
    "python3.12",
    "python3.13",
    "python3.14",
    "java8.al2",
    "java11",
    "java17",
    "java21",
    "ruby3.2",
    "ruby3.3",
    "ruby3.4",
    "dotnet8",
    "provided.al2",
    "provided.al2023",
];

/// What `--runtime nodejs` stands for.
pub const DEFAULT_NODE_RUNTIME: &str = "nodejs22.x";
/// What `--runtime python` stands for.
pub const DEFAULT_PYTHON_RUNTIME: &str = "python3.12";

/// The instruction set architectures Lambda offers.
pub const ARCHITECTURES: &[&str] = &["x86_64", "arm64"];

/// The most layers Lambda attaches to one function, external ARNs included.
pub const MAX_LAYERS_PER_FUNCTION: usize = 5;

const NAME_MAX: usize = 64;
const ARN_LAYER_NAME_MAX: usize = 140;

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
    /// Compatible runtimes; empty means any (a layer with only `opt/` content fits every runtime).
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

/// The language family of a runtime, which decides the layer folders and handler files that fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeFamily {
    Node,
    Python,
    Java,
    Ruby,
    DotNet,
    /// `provided.*`: a custom runtime, any language.
    Custom,
}

impl RuntimeFamily {
    /// The family of a runtime id; `None` for an id that is not in [`RUNTIMES`].
    pub fn of(runtime: &str) -> Option<RuntimeFamily> {
        if !RUNTIMES.contains(&runtime) {
            return None;
        }
        let families = [
            ("nodejs", RuntimeFamily::Node),
            ("python", RuntimeFamily::Python),
            ("java", RuntimeFamily::Java),
            ("ruby", RuntimeFamily::Ruby),
            ("dotnet", RuntimeFamily::DotNet),
            ("provided", RuntimeFamily::Custom),
        ];
        families
            .iter()
            .find(|(prefix, _)| runtime.starts_with(prefix))
            .map(|(_, family)| *family)
    }
}

/// A single value that is not allowed. Each message names the value and says what is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("`{value}` is not a valid name: use 1 to 64 characters of A-Z, a-z, 0-9, `_` and `-`")]
    BadName { value: String },
    #[error("`{value}` is not a Lambda runtime; use one of: {}", RUNTIMES.join(", "))]
    UnknownRuntime { value: String },
    #[error("`{value}` is not an architecture; use `x86_64` or `arm64`")]
    BadArchitecture { value: String },
    #[error(
        "`{value}` names {count} architectures, but a function runs on one; keep `x86_64` or \
         `arm64`"
    )]
    SeveralArchitectures { value: String, count: usize },
    #[error(
        "`{value}` is not a layer reference; use `NAME@latest`, `NAME@N` (a version number from \
         1) or a layer version ARN{hint}"
    )]
    BadLayerRef { value: String, hint: String },
    #[error(
        "`{value}` is not a layer version ARN: {reason}; the shape is \
         `arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION`"
    )]
    BadArn { value: String, reason: String },
    #[error("`{value}` is not a handler for {runtime}: write FILE.FUNCTION, as in `{example}`")]
    BadHandler {
        value: String,
        runtime: String,
        example: String,
    },
    #[error("`{value}` is not an IAM role ARN; the shape is `arn:aws:iam::ACCOUNT:role/NAME`")]
    BadRole { value: String },
    #[error("`{value}` is not a target; use `local` or `aws`")]
    BadTarget { value: String },
    #[error("`{value}` is not a cache mode; use `read-write` or `read-only`")]
    BadCacheMode { value: String },
    #[error("`{value}` is not a remote cache address; use `s3://BUCKET/PREFIX`")]
    BadRemote { value: String },
    #[error("`{value}` is not an AWS region, such as `eu-west-1`")]
    BadRegion { value: String },
    #[error("`{value}` must be a relative path inside the project, such as `layers/shared`")]
    BadPath { value: String },
    #[error(
        "`{value}` is in `.lamina`, lamina's own folder, which is never packed; name a folder of \
         the project outside it"
    )]
    StateFolderPath { value: String },
    #[error(
        "`{value}` leads to `{}`, outside the project, through a symbolic link; move the folder \
         into the project or name the real folder inside it",
        target.display()
    )]
    PathLeavesProject { value: String, target: PathBuf },
    #[error("`{value}` is listed twice")]
    Duplicate { value: String },
    #[error("`{value}` must not be empty")]
    Empty { value: String },
    #[error(transparent)]
    Access(#[from] AccessError),
}

/// Where in a manifest something is: the file and, when known, the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: PathBuf,
    pub line: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.path.display())?;
        match self.line {
            Some(line) => write!(f, " line {line}"),
            None => Ok(()),
        }
    }
}

/// Errors from finding, reading, validating, editing or writing the manifest.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(
        "no `lamina.toml` in `{start}` or any folder above it; run `lamina init` to create one, \
         or pass --project DIR"
    )]
    NotFound { start: PathBuf },
    #[error("no `lamina.toml` in `{dir}` (given by --project); run `lamina init` there first")]
    NotInProject { dir: PathBuf },
    #[error(
        "`{dir}` (given by --project) is a file, not a project folder; pass the folder that \
         holds lamina.toml"
    )]
    ProjectIsAFile { dir: PathBuf },
    #[error("`{dir}` (given by --project) does not exist; check the path")]
    NoProjectFolder { dir: PathBuf },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{location}: not valid TOML: {message}")]
    Syntax { location: Location, message: String },
    #[error("{location}: unknown key `{key}`; allowed here: {allowed}")]
    UnknownKey {
        location: Location,
        key: String,
        allowed: String,
    },
    #[error("{location}: `{key}` must be {expected}")]
    WrongType {
        location: Location,
        key: String,
        expected: &'static str,
    },
    #[error("{location}: `{key}`: {problem}")]
    Invalid {
        location: Location,
        key: String,
        problem: Box<ValueError>,
    },
    #[error(
        "{location}: `functions.{function}.layers` refers to `{reference}`, but the project has \
         no such layer; layers: {known}"
    )]
    UnknownLayerRef {
        location: Location,
        function: String,
        reference: String,
        known: String,
    },
    #[error(
        "{location}: function `{function}` uses layer `{layer}` twice; Lambda attaches one \
         version of a layer to a function"
    )]
    RepeatedLayer {
        location: Location,
        function: String,
        layer: String,
    },
    #[error("layer `{name}` already exists in `{path}`")]
    DuplicateLayer { name: String, path: PathBuf },
    #[error("function `{name}` already exists in `{path}`")]
    DuplicateFunction { name: String, path: PathBuf },
    #[error("`{path}` has no layer `{name}`; layers: {known}")]
    UnknownLayer {
        name: String,
        path: PathBuf,
        known: String,
    },
    #[error("`{path}` has no function `{name}`; functions: {known}")]
    UnknownFunction {
        name: String,
        path: PathBuf,
        known: String,
    },
    #[error(
        "layer `{layer}` is used by function {functions}; remove it from {them} first \
         (`lamina function update NAME --layer ...`)"
    )]
    LayerInUse {
        layer: String,
        functions: String,
        them: &'static str,
    },
    #[error("`{path}`: `{key}` is not a table, so lamina cannot edit it; edit it by hand")]
    NotEditable { path: PathBuf, key: String },
}

impl Manifest {
    /// Finds and loads the manifest: in `project` when given, otherwise in `cwd` or the nearest
    /// folder above it that holds one.
    pub fn discover(project: Option<&Path>, cwd: &Path) -> Result<Manifest, ManifestError> {
        let path = match project {
            Some(dir) => manifest_in(&cwd.join(dir))?,
            None => find_manifest(cwd)?,
        };
        Manifest::load(&path)
    }

    /// Reads and validates the manifest at `path`.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let path = std::path::absolute(path)?;
        let text = fs_err::read_to_string(&path)?;
        Manifest::parse(&path, &text)
    }

    /// Validates `text` as the manifest at `path` (which decides the project root).
    pub fn parse(path: &Path, text: &str) -> Result<Manifest, ManifestError> {
        let document = toml_edit::Document::parse(text.to_string()).map_err(|error| {
            let line = error.span().map(|span| line_of(text, span.start));
            ManifestError::Syntax {
                location: Location {
                    path: path.to_path_buf(),
                    line,
                },
                message: error.message().to_string(),
            }
        })?;
        let reader = Reader { path, text };
        let root = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        reader.manifest(document.as_table(), root)
    }

    /// The path of `lamina.toml`.
    pub fn manifest_path(&self) -> PathBuf {
        self.root.join(MANIFEST_FILE)
    }

    /// lamina's own folder, `.lamina/` at the project root.
    pub fn state_dir(&self) -> StateDir {
        StateDir {
            path: self.root.join(STATE_DIR),
        }
    }

    /// The absolute folder of a layer.
    pub fn layer_root(&self, layer: &LayerConfig) -> PathBuf {
        self.root.join(&layer.path)
    }

    /// The absolute code folder of a function.
    pub fn function_source(&self, function: &FunctionConfig) -> PathBuf {
        self.root.join(&function.source)
    }

    /// The functions that refer to layer `name` (by `NAME@...`), in name order.
    pub fn functions_using(&self, name: &str) -> Vec<&FunctionConfig> {
        let uses = |function: &&FunctionConfig| {
            function
                .layers
                .iter()
                .any(|reference| reference.layer_name() == Some(name))
        };
        self.functions.values().filter(uses).collect()
    }
}

/// The manifest in `start` or the nearest folder above it.
pub fn find_manifest(start: &Path) -> Result<PathBuf, ManifestError> {
    let start = std::path::absolute(start)?;
    let found = start
        .ancestors()
        .map(|dir| dir.join(MANIFEST_FILE))
        .find(|path| path.is_file());
    found.ok_or(ManifestError::NotFound { start })
}

/// The manifest of the project folder `dir` (or `dir` itself when it names the file).
fn manifest_in(dir: &Path) -> Result<PathBuf, ManifestError> {
    if dir.is_file() && dir.file_name() == Some(MANIFEST_FILE.as_ref()) {
        return Ok(dir.to_path_buf());
    }
    let path = dir.join(MANIFEST_FILE);
    let dir = dir.to_path_buf();
    match (path.is_file(), dir.is_dir(), dir.exists()) {
        (true, _, _) => Ok(path),
        (false, true, _) => Err(ManifestError::NotInProject { dir }),
        (false, false, true) => Err(ManifestError::ProjectIsAFile { dir }),
        (false, false, false) => Err(ManifestError::NoProjectFolder { dir }),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|byte| **byte == b'\n')
        .count()
        + 1
}

impl LayerRef {
    /// Parses `NAME@latest`, `NAME@N` or a layer version ARN.
    pub fn parse(value: &str) -> Result<LayerRef, ValueError> {
        if value.starts_with("arn:") {
            check_layer_arn(value)?;
            return Ok(LayerRef::Arn(value.to_string()));
        }
        let bad = |hint: &str| ValueError::BadLayerRef {
            value: value.to_string(),
            hint: hint.into(),
        };
        let Some((name, version)) = value.split_once('@') else {
            let hint = match check::name(value) {
                Ok(()) => format!(" (did you mean `{value}@latest`?)"),
                Err(_) => String::new(),
            };
            return Err(bad(&hint));
        };
        check::name(name).map_err(|_| bad(""))?;
        if version == "latest" {
            return Ok(LayerRef::Latest(name.to_string()));
        }
        let number: u64 = version.parse().map_err(|_| bad(""))?;
        match number >= 1 && !version.starts_with('+') {
            true => Ok(LayerRef::Pinned(name.to_string(), number)),
            false => Err(bad("")),
        }
    }

    /// What identifies the layer, whatever the version: the project layer's name, or the layer
    /// ARN without its version.
    pub fn layer_key(&self) -> &str {
        match self {
            LayerRef::Latest(name) | LayerRef::Pinned(name, _) => name,
            LayerRef::Arn(arn) => arn
                .rsplit_once(':')
                .map_or(arn.as_str(), |(layer, _)| layer),
        }
    }

    /// The project layer this refers to; `None` for an ARN.
    pub fn layer_name(&self) -> Option<&str> {
        match self {
            LayerRef::Latest(name) | LayerRef::Pinned(name, _) => Some(name),
            LayerRef::Arn(_) => None,
        }
    }
}

impl fmt::Display for LayerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerRef::Latest(name) => write!(f, "{name}@latest"),
            LayerRef::Pinned(name, version) => write!(f, "{name}@{version}"),
            LayerRef::Arn(arn) => f.write_str(arn),
        }
    }
}

impl std::str::FromStr for LayerRef {
    type Err = ValueError;

    fn from_str(value: &str) -> Result<LayerRef, ValueError> {
        LayerRef::parse(value)
    }
}

/// Checks `arn:PARTITION:lambda:REGION:ACCOUNT:layer:NAME:VERSION`. The region may be `local`,
/// the local registry's, so that its ARNs can be referred to like any other.
fn check_layer_arn(value: &str) -> Result<(), ValueError> {
    let bad = |reason: &str| ValueError::BadArn {
        value: value.to_string(),
        reason: reason.into(),
    };
    let parts: Vec<&str> = value.split(':').collect();
    let [_, partition, service, region, account, resource, name, version] = parts[..] else {
        return Err(match parts.len() {
            7 => bad("it names a layer but no version"),
            _ => bad("it does not have eight `:`-separated parts"),
        });
    };
    if !(partition == "aws" || partition.starts_with("aws-")) {
        return Err(bad("the partition is not `aws` or `aws-*`"));
    }
    if service != "lambda" || resource != "layer" {
        return Err(bad("it is not a Lambda layer"));
    }
    check::region(region).map_err(|_| bad("the region is not valid"))?;
    if !check::is_account(account) {
        return Err(bad("the account is not 12 digits"));
    }
    let name_ok = !name.is_empty()
        && name.len() <= ARN_LAYER_NAME_MAX
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-');
    if !name_ok {
        return Err(bad(
            "the layer name is not 1 to 140 characters of A-Z, a-z, 0-9, `_`, `-`",
        ));
    }
    match version.parse::<u64>() {
        Ok(number) if number >= 1 && version.bytes().all(|byte| byte.is_ascii_digit()) => Ok(()),
        _ => Err(bad("the version is not a number from 1")),
    }
}

fn parse_target(value: &str) -> Result<TargetKind, ValueError> {
    match value {
        "local" => Ok(TargetKind::Local),
        "aws" => Ok(TargetKind::Aws),
        _ => Err(ValueError::BadTarget {
            value: value.to_string(),
        }),
    }
}

impl std::str::FromStr for TargetKind {
    type Err = ValueError;

    fn from_str(value: &str) -> Result<TargetKind, ValueError> {
        parse_target(value)
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TargetKind::Local => "local",
            TargetKind::Aws => "aws",
        })
    }
}

/// `layers/<name>`.
pub fn default_layer_path(name: &str) -> PathBuf {
    Path::new("layers").join(name)
}

/// `functions/<name>/src`.
pub fn default_function_source(name: &str) -> PathBuf {
    Path::new("functions").join(name).join("src")
}

/// The project folder's name, made into a valid name (other characters become `-`).
pub fn default_project_name(root: &Path) -> String {
    let folder = root
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cleaned: String = folder
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(NAME_MAX)
        .collect();
    match cleaned.is_empty() {
        true => "project".to_string(),
        false => cleaned,
    }
}

fn list_or_none<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    match names.is_empty() {
        true => "(none)".to_string(),
        false => names.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(Path::new("/p/lamina.toml"), text)
    }

    #[test]
    fn a_full_manifest_loads() {
        let manifest = parse(
            r#"
[project]
name = "shop"
[target]
default = "aws"
[target.aws]
region = "eu-west-1"
bucket = "b"
[cache]
remote = "s3://bucket/prefix"
mode = "read-only"
[layers.shared]
runtimes = ["nodejs22.x"]
access = ["org:o-abcdefghij"]
[layers.py]
[functions.api]
runtime = "nodejs22.x"
handler = "index.handler"
layers = ["shared@latest", "py@2", "arn:aws:lambda:eu-west-1:123456789012:layer:x:4"]
role = "arn:aws:iam::123456789012:role/api-exec"
"#,
        )
        .unwrap();
        assert_eq!(manifest.root, Path::new("/p"));
        assert_eq!(manifest.target.default, TargetKind::Aws);
        assert_eq!(manifest.cache.mode, CacheMode::ReadOnly);
        let layer = &manifest.layers["shared"];
        assert_eq!(layer.path, Path::new("layers/shared"));
        assert_eq!(layer.architectures, vec!["x86_64"]);
        let function = &manifest.functions["api"];
        assert_eq!(function.source, Path::new("functions/api/src"));
        assert_eq!(function.layers[1], LayerRef::Pinned("py".into(), 2));
    }

    #[test]
    fn errors_carry_the_line() {
        let error =
            parse("[project]\nname = \"x\"\n\n[layers.a]\nruntimes = [\"node\"]\n").unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("`/p/lamina.toml` line 5: `layers.a.runtimes`"),
            "{message}"
        );
        assert!(message.contains("`node`"), "{message}");
    }

    #[test]
    fn layer_refs_parse_and_print() {
        for text in [
            "a@latest",
            "a-b_c@12",
            "arn:aws:lambda:us-east-1:123456789012:layer:x:1",
        ] {
            assert_eq!(LayerRef::parse(text).unwrap().to_string(), text);
        }
        let arn_local = "arn:aws:lambda:local:000000000000:layer:shared:3";
        assert!(LayerRef::parse(arn_local).is_ok());
        for bad in [
            "a",
            "a@",
            "a@0",
            "a@-1",
            "a@+1",
            "a@x",
            "@latest",
            "a b@latest",
        ] {
            assert!(
                matches!(LayerRef::parse(bad), Err(ValueError::BadLayerRef { .. })),
                "{bad}"
            );
        }
        let hint = LayerRef::parse("shared").unwrap_err().to_string();
        assert!(hint.contains("did you mean `shared@latest`"), "{hint}");
    }

    #[test]
    fn layer_arns_are_checked_part_by_part() {
        let cases = [
            (
                "arn:aws:lambda:us-east-1:123456789012:layer:x",
                "no version",
            ),
            (
                "arn:aws:s3:us-east-1:123456789012:layer:x:1",
                "not a Lambda layer",
            ),
            ("arn:aws:lambda:us-east-1:1234:layer:x:1", "account"),
            ("arn:aws:lambda:us-east-1:123456789012:layer:x:0", "version"),
            (
                "arn:aws:lambda:us-east-1:123456789012:layer:a.b:1",
                "layer name",
            ),
            (
                "arn:gcp:lambda:us-east-1:123456789012:layer:x:1",
                "partition",
            ),
        ];
        for (arn, reason) in cases {
            let message = LayerRef::parse(arn).unwrap_err().to_string();
            assert!(
                message.contains(reason) && message.contains(arn),
                "{message}"
            );
        }
    }

    #[test]
    fn handlers_fit_their_runtime() {
        assert!(check::handler("index.handler", "nodejs22.x").is_ok());
        assert!(check::handler("src/app.main", "python3.12").is_ok());
        assert!(check::handler("example.Handler::handleRequest", "java21").is_ok());
        assert!(check::handler("bootstrap", "provided.al2023").is_ok());
        for bad in ["index", ".handler", "index.", "a b.c"] {
            assert!(check::handler(bad, "nodejs22.x").is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_limited() {
        assert!(check::name(&"a".repeat(64)).is_ok());
        for bad in ["", "a.b", "a/b", "é", &"a".repeat(65)] {
            assert!(check::name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn roles_are_iam_role_arns() {
        assert!(check::role("arn:aws:iam::123456789012:role/x").is_ok());
        for bad in [
            "role/x",
            "arn:aws:iam::123:role/x",
            "arn:aws:iam::123456789012:user/x",
        ] {
            assert!(check::role(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn project_name_defaults_to_the_folder() {
        assert_eq!(parse("").unwrap().name, "p");
        assert_eq!(default_project_name(Path::new("/x/my shop")), "my-shop");
    }
}
