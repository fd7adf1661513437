//! The AWS target: layer versions, their permissions and functions on AWS Lambda, through the
//! Lambda and S3 APIs directly (no CloudFormation).
//!
//! [`AwsTarget`] implements the blocking [`Target`] trait over the async SDK by owning a small
//! current-thread tokio runtime and blocking on one future per call. The configuration comes from
//! the standard AWS chain (profile, SSO, environment, `AWS_ENDPOINT_URL`), with the region of
//! `[target.aws]` taking precedence; tests pass an endpoint and credentials explicitly through
//! [`AwsTarget::connect_with`], because they run in parallel in one process and cannot share
//! environment variables.
//!
//! Names: a layer named `shared` in `lamina.toml` is `layer_name_prefix + "shared"` on AWS. Every
//! method of [`Target`] takes the manifest name; the [`LayerVersion`]s it returns carry the AWS
//! name. Functions keep their manifest names.
//!
//! Finding published content: reproducible zips make CodeSha256 a content identifier, so a layer
//! version whose CodeSha256 equals the new zip's is reused instead of publishing again. What was
//! learned per version is remembered in the project's cache (see [`memory`]) so that a warm
//! listing is one ListLayerVersions call per layer. Nothing is remembered about a publish until
//! AWS answered it.
//!
//! Uploads: zips up to [`DIRECT_UPLOAD_LIMIT`] bytes travel inside the Lambda request; larger ones
//! go to S3 once, under a content-addressed key (see [`upload`]), and are published from there.

mod error;
mod functions;
mod layers;
pub mod memory;
pub mod policy;
pub mod upload;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_lambda::config::{Credentials, ProvideCredentials};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use sha2::Digest as _;

pub use self::error::AwsError;
use self::memory::Memory;
use self::upload::UploadSizes;
use crate::access::AccessSet;
use crate::deploy::{
    AccessChange, DeployError, DeployFunction, FunctionState, LayerVersion, Publication,
    PublishLayer, Target,
};
use crate::manifest::AwsConfig;
use crate::progress::{NoProgress, Progress};

/// The largest zip sent inside a Lambda request (AWS documents 50 MB for direct uploads); larger
/// zips go through S3. Tests lower it with [`ConnectOptions::direct_upload_limit`].
pub const DIRECT_UPLOAD_LIMIT: u64 = 50_000_000;

/// An environment variable, for tests only, that overrides [`DIRECT_UPLOAD_LIMIT`] in
/// [`AwsTarget::connect`], so that a small zip can take the S3 path.
pub const DIRECT_UPLOAD_LIMIT_ENV: &str = "LAMINA_TEST_DIRECT_UPLOAD_LIMIT";

/// S3 objects larger than this are sent as multipart uploads.
pub const MULTIPART_THRESHOLD: u64 = 64 * 1024 * 1024;

/// The size of each part of a multipart upload.
pub const PART_SIZE: u64 = 16 * 1024 * 1024;

/// How long to wait for a function to finish an update before giving up.
pub const READY_TIMEOUT: Duration = Duration::from_secs(300);

/// The most layers AWS lets a function use.
pub const MAX_FUNCTION_LAYERS: usize = 5;

/// Explicit connection settings. [`AwsTarget::connect`] uses the defaults, which leave every
/// choice to the standard AWS configuration chain.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Overrides `AWS_ENDPOINT_URL`; S3 then uses path-style addressing.
    pub endpoint_url: Option<String>,
    /// Overrides the credential chain.
    pub credentials: Option<StaticCredentials>,
    /// Zips up to this many bytes are sent in the request; larger ones through S3.
    pub direct_upload_limit: u64,
    pub multipart_threshold: u64,
    /// At least [`upload::MIN_PART_SIZE`]; smaller values are raised to it.
    pub part_size: u64,
    pub ready_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            endpoint_url: None,
            credentials: None,
            direct_upload_limit: DIRECT_UPLOAD_LIMIT,
            multipart_threshold: MULTIPART_THRESHOLD,
            part_size: PART_SIZE,
            ready_timeout: READY_TIMEOUT,
        }
    }
}

/// An access key pair, for test servers and tools that do not use the credential chain.
#[derive(Clone)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish()
    }
}

/// Layer versions and functions on AWS Lambda. See the module documentation.
pub struct AwsTarget {
    runtime: tokio::runtime::Runtime,
    lambda: aws_sdk_lambda::Client,
    s3: aws_sdk_s3::Client,
    config: AwsConfig,
    region: String,
    /// The endpoint set explicitly or by `AWS_ENDPOINT_URL`, if any.
    endpoint_url: Option<String>,
    options: ConnectOptions,
    memory: Memory,
    /// Layer ARNs (without version) learned in this session, by AWS layer name.
    layer_arns: std::collections::HashMap<String, String>,
    progress: Arc<dyn Progress + Send>,
}

impl AwsTarget {
    /// Connects with the standard AWS configuration chain; `lamina_dir` is the project's
    /// `.lamina/` folder, whose cache remembers what was seen of layer versions.
    ///
    /// [`DIRECT_UPLOAD_LIMIT_ENV`] lowers the direct-upload limit, for tests that drive lamina
    /// through its command line and cannot pass [`ConnectOptions`].
    pub fn connect(config: &AwsConfig, lamina_dir: &Path) -> Result<AwsTarget, AwsError> {
        let mut options = ConnectOptions::default();
        if let Some(limit) = std::env::var(DIRECT_UPLOAD_LIMIT_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
        {
            options.direct_upload_limit = limit;
        }
        AwsTarget::connect_with(config, lamina_dir, options)
    }

    /// Connects with explicit settings where `options` has them, the chain elsewhere.
    pub fn connect_with(
        config: &AwsConfig,
        lamina_dir: &Path,
        options: ConnectOptions,
    ) -> Result<AwsTarget, AwsError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| AwsError::Runtime { source })?;
        let sdk_config = runtime.block_on(load_sdk_config(config, &options));
        let region = sdk_config.region().ok_or(AwsError::NoRegion)?.to_string();
        if options.credentials.is_none() {
            runtime.block_on(check_credentials(&sdk_config))?;
        }
        let endpoint_url = sdk_config.endpoint_url().map(str::to_owned);
        let s3_config = aws_sdk_s3::config::Builder::from(&sdk_config)
            .force_path_style(endpoint_url.is_some())
            .build();
        tracing::debug!(%region, endpoint = ?endpoint_url, "connected to AWS");
        Ok(AwsTarget {
            runtime,
            lambda: aws_sdk_lambda::Client::new(&sdk_config),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            config: config.clone(),
            region,
            endpoint_url,
            options,
            memory: Memory::open(lamina_dir),
            layer_arns: Default::default(),
            progress: Arc::new(NoProgress),
        })
    }

    /// Reports upload progress to `progress` from now on.
    pub fn with_progress(mut self, progress: Arc<dyn Progress + Send>) -> AwsTarget {
        self.progress = progress;
        self
    }

    /// The region calls go to.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The name of a manifest layer on AWS.
    pub fn aws_layer_name(&self, layer: &str) -> String {
        format!("{}{layer}", self.config.layer_name_prefix)
    }

    fn lambda_endpoint(&self) -> String {
        self.endpoint_url
            .clone()
            .unwrap_or_else(|| format!("https://lambda.{}.amazonaws.com", self.region))
    }

    fn s3_endpoint(&self) -> String {
        self.endpoint_url
            .clone()
            .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", self.region))
    }

    fn upload_sizes(&self) -> UploadSizes {
        UploadSizes {
            multipart_threshold: self.options.multipart_threshold,
            part_size: self.options.part_size,
        }
    }
}

/// Builds the SDK configuration with one HTTP client: hyper with rustls on ring, which serves
/// both `https://` endpoints and plain `http://` ones such as a local test server.
async fn load_sdk_config(config: &AwsConfig, options: &ConnectOptions) -> aws_config::SdkConfig {
    let mut loader = sdk_loader(options);
    if let Some(region) = &config.region {
        loader = loader.region(Region::new(region.clone()));
    }
    loader.load().await
}

/// The standard AWS configuration chain with lamina's one HTTP client, and the endpoint and
/// credentials of `options` when they are given. The S3 remote cache shares it.
pub(crate) fn sdk_loader(options: &ConnectOptions) -> aws_config::ConfigLoader {
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http_client);
    if let Some(url) = &options.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(keys) = &options.credentials {
        let credentials = Credentials::new(
            &keys.access_key_id,
            &keys.secret_access_key,
            None,
            None,
            "lamina",
        );
        loader = loader.credentials_provider(credentials);
    }
    loader
}

/// Resolves credentials once, up front, so that a machine without any says so before the first
/// call rather than in the middle of a push.
async fn check_credentials(sdk_config: &aws_config::SdkConfig) -> Result<(), AwsError> {
    let provider = sdk_config
        .credentials_provider()
        .ok_or_else(|| AwsError::NoCredentials {
            detail: "no credential provider is configured".to_owned(),
        })?;
    provider
        .provide_credentials()
        .await
        .map_err(|error| AwsError::NoCredentials {
            detail: error::causes(&error),
        })?;
    Ok(())
}

/// The SHA-256 of a zip as lowercase hex, from its base64 CodeSha256.
fn sha256_hex(subject: &str, code_sha256: &str) -> Result<String, AwsError> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(code_sha256)
        .ok()
        .filter(|bytes| bytes.len() == 32)
        .ok_or_else(|| AwsError::BadCodeSha256 {
            subject: subject.to_owned(),
            value: code_sha256.to_owned(),
        })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// base64 of the SHA-256 of `bytes`, as AWS reports CodeSha256.
fn code_sha256_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(bytes))
}

/// AWS reports times as `2024-05-01T12:00:00.000+0000`; lamina shows RFC 3339 in UTC. A time in
/// neither form is passed through as it came.
fn rfc3339_utc(raw: &str) -> String {
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    let aws_format = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond][offset_hour sign:mandatory]\
         [offset_minute]"
    );
    time::OffsetDateTime::parse(raw, &Rfc3339)
        .or_else(|_| time::OffsetDateTime::parse(raw, aws_format))
        .ok()
        .and_then(|t| t.to_offset(time::UtcOffset::UTC).format(&Rfc3339).ok())
        .unwrap_or_else(|| raw.to_owned())
}

/// How an [`AwsError`] reaches the engine: boxed, so that `DeployError` builds without the SDK.
fn deploy_error(error: AwsError) -> DeployError {
    DeployError::Aws(Box::new(error))
}

impl Target for AwsTarget {
    fn describe(&self) -> String {
        match &self.endpoint_url {
            Some(url) => format!("AWS Lambda in {} at {url}", self.region),
            None => format!("AWS Lambda in {}", self.region),
        }
    }

    fn layer_versions(&mut self, layer: &str) -> Result<Vec<LayerVersion>, DeployError> {
        self.list_layer_versions(layer).map_err(deploy_error)
    }

    fn publish_layer_version(
        &mut self,
        request: &PublishLayer,
    ) -> Result<LayerVersion, DeployError> {
        self.publish(request).map_err(deploy_error)
    }

    /// Lists the layer again just before publishing, since another push may have published the
    /// same content after the plan was made (while the plan waited for its answer, say); one
    /// ListLayerVersions call. Lambda has no lock to hold across the check and the publish, so
    /// two pushes publishing in the same instant can still both publish.
    fn publish_layer_version_once(
        &mut self,
        request: &PublishLayer,
    ) -> Result<Publication, DeployError> {
        let versions = self
            .list_layer_versions(&request.layer)
            .map_err(deploy_error)?;
        match request.newest_holder(&versions).cloned() {
            Some(version) => Ok(Publication::Found(version)),
            None => self
                .publish(request)
                .map(Publication::Published)
                .map_err(deploy_error),
        }
    }

    fn reconcile_access(
        &mut self,
        layer: &str,
        version: u64,
        desired: &AccessSet,
    ) -> Result<AccessChange, DeployError> {
        self.reconcile(layer, version, desired)
            .map_err(deploy_error)
    }

    fn delete_layer_version(&mut self, layer: &str, version: u64) -> Result<(), DeployError> {
        self.delete_version(layer, version).map_err(deploy_error)
    }

    fn function(&mut self, name: &str) -> Result<Option<FunctionState>, DeployError> {
        self.get_function(name).map_err(deploy_error)
    }

    fn deploy_function(&mut self, request: &DeployFunction) -> Result<FunctionState, DeployError> {
        self.deploy(request).map_err(deploy_error)
    }

    fn delete_function(&mut self, name: &str) -> Result<(), DeployError> {
        self.remove_function(name).map_err(deploy_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_can_move_to_another_thread() {
        fn is_send<T: Send>() {}
        is_send::<AwsTarget>();
    }

    #[test]
    fn aws_times_become_rfc3339_utc() {
        assert_eq!(
            rfc3339_utc("2024-05-01T12:00:00.000+0200"),
            "2024-05-01T10:00:00Z"
        );
        assert_eq!(rfc3339_utc("2024-05-01T12:00:00Z"), "2024-05-01T12:00:00Z");
        assert_eq!(rfc3339_utc("yesterday"), "yesterday");
    }

    #[test]
    fn code_sha256_round_trips_to_hex() {
        let code = code_sha256_of(b"");
        assert_eq!(
            sha256_hex("x", &code).unwrap(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(sha256_hex("x", "not base64!").is_err());
    }
}
