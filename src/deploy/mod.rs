//! Stage 5: compare what is built with what a target already has, and publish only what is new.
//!
//! A [`Target`] is where layer versions and functions live: the local registry folder (the
//! default, offline) or AWS Lambda. Push planning is the same for both; only the calls differ.

#[cfg(feature = "aws")]
pub mod aws;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::access::AccessSet;

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
}

/// A request to publish a new layer version from a built zip.
#[derive(Debug, Clone)]
pub struct PublishLayer {
    pub layer: String,
    pub zip_path: PathBuf,
    pub code_sha256: String,
    pub zip_size: u64,
    pub description: String,
    pub runtimes: Vec<String>,
    pub architectures: Vec<String>,
}

/// A function as a target reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionState {
    pub name: String,
    pub arn: String,
    pub runtime: String,
    pub handler: String,
    pub code_sha256: String,
    /// Layer version ARNs in order of application.
    pub layers: Vec<String>,
}

/// A request to create or update a function.
#[derive(Debug, Clone)]
pub struct DeployFunction {
    pub name: String,
    pub runtime: String,
    pub handler: String,
    pub role: Option<String>,
    pub zip_path: PathBuf,
    pub zip_size: u64,
    pub code_sha256: String,
    pub layers: Vec<String>,
    pub architectures: Vec<String>,
}

/// What reconciling a version's access changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AccessChange {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Statements lamina did not create, left alone and reported.
    pub foreign: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("{0}")]
    Other(String),
}

/// Where layer versions and functions are published.
///
/// Every method is blocking; a target that talks to a network drives its own runtime.
pub trait Target {
    /// A short description for messages: `local registry .lamina/registry`.
    fn describe(&self) -> String;
    /// All existing versions of a layer, oldest first.
    fn layer_versions(&mut self, layer: &str) -> Result<Vec<LayerVersion>, DeployError>;
    /// Publishes a new version; the target assigns the number.
    fn publish_layer_version(&mut self, request: &PublishLayer)
        -> Result<LayerVersion, DeployError>;
    /// Makes the version's access exactly `desired` (plus the owning account).
    fn reconcile_access(
        &mut self,
        layer: &str,
        version: u64,
        desired: &AccessSet,
    ) -> Result<AccessChange, DeployError>;
    fn delete_layer_version(&mut self, layer: &str, version: u64) -> Result<(), DeployError>;
    fn function(&mut self, name: &str) -> Result<Option<FunctionState>, DeployError>;
    fn deploy_function(&mut self, request: &DeployFunction)
        -> Result<FunctionState, DeployError>;
    fn delete_function(&mut self, name: &str) -> Result<(), DeployError>;
}
