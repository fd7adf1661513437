//! The shared cache's objects in an S3 bucket, below a key prefix.
//!
//! The client is built like the AWS target's (`src/deploy/aws/`): the standard configuration chain
//! (profile, SSO, environment, `AWS_ENDPOINT_URL`), one HTTP client (hyper with rustls on ring)
//! that serves `https://` and plain `http://` endpoints, and path-style addressing whenever an
//! endpoint is set, as local servers need. It owns a current-thread tokio runtime and blocks on one
//! future per call: the engine calls the cache from one thread at a time, and every call is one
//! request, so nothing would run concurrently anyway.
//!
//! Every object is written with one PutObject of the complete bytes, so a reader sees either no
//! object or a whole one. Reads stream the body into the caller's sink; a zip is never held in
//! memory.

use std::io::Write;
use std::path::Path;

use aws_config::Region;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;

use super::store::{ObjectStore, StoreError};
use crate::deploy::aws::ConnectOptions;

/// Objects in `s3://bucket/prefix/...`. See the module documentation.
pub struct S3Store {
    runtime: tokio::runtime::Runtime,
    client: aws_sdk_s3::Client,
    bucket: String,
    /// Without leading or trailing `/`; empty for the bucket's root.
    prefix: String,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Why an S3 store could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum S3SetupError {
    #[error("cannot start the runtime for S3 requests: {source}")]
    Runtime { source: std::io::Error },
    #[error(
        "the remote cache `s3://{bucket}` needs an AWS region: set AWS_REGION (or a region in \
         the AWS profile), or `region` in [target.aws] of lamina.toml"
    )]
    NoRegion { bucket: String },
}

impl S3Store {
    /// Connects to `bucket` with the standard configuration chain where `options` leaves a choice
    /// open; `region` (from `[target.aws]`) is used when the chain has none.
    pub fn connect(
        bucket: &str,
        prefix: &str,
        region: Option<&str>,
        options: &ConnectOptions,
    ) -> Result<S3Store, S3SetupError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| S3SetupError::Runtime { source })?;
        let config = runtime.block_on(load_config(region, options));
        if config.region().is_none() {
            return Err(S3SetupError::NoRegion {
                bucket: bucket.to_owned(),
            });
        }
        let s3_config = aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(config.endpoint_url().is_some())
            .build();
        Ok(S3Store {
            runtime,
            client: aws_sdk_s3::Client::from_conf(s3_config),
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        })
    }

    fn full_key(&self, key: &str) -> String {
        match self.prefix.is_empty() {
            true => key.to_owned(),
            false => format!("{}/{key}", self.prefix),
        }
    }

    fn error<E>(&self, action: &'static str, key: &str, error: SdkError<E>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.failure(action, key, detail(&error))
    }

    fn failure(&self, action: &'static str, key: &str, detail: String) -> StoreError {
        StoreError {
            action,
            key: self.full_key(key),
            store: self.describe(),
            detail,
        }
    }

    async fn get_async(&self, key: &str, sink: &mut dyn Write) -> Result<Option<u64>, StoreError> {
        let response = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await;
        let mut body = match response {
            Ok(output) => output.body,
            Err(error) if is_missing(&error) => return Ok(None),
            Err(error) => return Err(self.error("s3:GetObject", key, error)),
        };
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|error| StoreError {
                action: "s3:GetObject",
                key: self.full_key(key),
                store: self.describe(),
                detail: format!("the body broke off after {size} bytes: {error}"),
            })?;
            sink.write_all(&chunk).map_err(|error| StoreError {
                action: "s3:GetObject",
                key: self.full_key(key),
                store: self.describe(),
                detail: format!("cannot keep what was read: {error}"),
            })?;
            size += chunk.len() as u64;
        }
        Ok(Some(size))
    }

    async fn put_async(&self, key: &str, body: ByteStream, size: u64) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .content_length(size as i64)
            .body(body)
            .send()
            .await
            .map_err(|error| self.error("s3:PutObject", key, error))?;
        Ok(())
    }
}

impl ObjectStore for S3Store {
    fn describe(&self) -> String {
        match self.prefix.is_empty() {
            true => format!("s3://{}", self.bucket),
            false => format!("s3://{}/{}", self.bucket, self.prefix),
        }
    }

    fn get(&self, key: &str, sink: &mut dyn Write) -> Result<Option<u64>, StoreError> {
        tracing::trace!(bucket = %self.bucket, key = %self.full_key(key), "GetObject");
        self.runtime.block_on(self.get_async(key, sink))
    }

    fn exists(&self, key: &str) -> Result<bool, StoreError> {
        tracing::trace!(bucket = %self.bucket, key = %self.full_key(key), "HeadObject");
        let head = self.runtime.block_on(
            self.client
                .head_object()
                .bucket(&self.bucket)
                .key(self.full_key(key))
                .send(),
        );
        match head {
            Ok(_) => Ok(true),
            Err(error) if is_missing(&error) => Ok(false),
            Err(error) => Err(self.error("s3:GetObject (HeadObject)", key, error)),
        }
    }

    fn put_file(&self, key: &str, path: &Path, size: u64) -> Result<(), StoreError> {
        tracing::trace!(bucket = %self.bucket, key = %self.full_key(key), size, "PutObject");
        self.runtime.block_on(async {
            let body = ByteStream::from_path(path)
                .await
                .map_err(|error| StoreError {
                    action: "s3:PutObject",
                    key: self.full_key(key),
                    store: self.describe(),
                    detail: format!("cannot read `{}`: {error}", path.display()),
                })?;
            self.put_async(key, body, size).await
        })
    }

    fn put_bytes(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        tracing::trace!(bucket = %self.bucket, key = %self.full_key(key), "PutObject");
        let body = ByteStream::from(bytes.to_vec());
        self.runtime
            .block_on(self.put_async(key, body, bytes.len() as u64))
    }

    fn get_many(&self, keys: &[String]) -> Vec<Result<Option<Vec<u8>>, StoreError>> {
        let jobs = keys.iter().map(|key| {
            let (client, bucket, key) =
                (self.client.clone(), self.bucket.clone(), self.full_key(key));
            async move {
                tracing::trace!(%bucket, %key, "GetObject");
                let output = match client.get_object().bucket(bucket).key(key).send().await {
                    Ok(output) => output,
                    Err(error) if is_missing(&error) => return Ok(None),
                    Err(error) => return Err(detail(&error)),
                };
                let bytes = output.body.collect().await.map_err(|e| e.to_string())?;
                Ok(Some(bytes.into_bytes().to_vec()))
            }
        });
        let results = self.runtime.block_on(bounded(jobs.collect()));
        let results = results.into_iter().zip(keys);
        results
            .map(|(result, key)| result.map_err(|detail| self.failure("s3:GetObject", key, detail)))
            .collect()
    }

    fn exists_many(&self, keys: &[String]) -> Vec<Result<bool, StoreError>> {
        let jobs = keys.iter().map(|key| {
            let (client, bucket, key) =
                (self.client.clone(), self.bucket.clone(), self.full_key(key));
            async move {
                tracing::trace!(%bucket, %key, "HeadObject");
                match client.head_object().bucket(bucket).key(key).send().await {
                    Ok(_) => Ok(true),
                    Err(error) if is_missing(&error) => Ok(false),
                    Err(error) => Err(detail(&error)),
                }
            }
        });
        let results = self.runtime.block_on(bounded(jobs.collect()));
        let results = results.into_iter().zip(keys);
        results
            .map(|(result, key)| {
                result.map_err(|detail| self.failure("s3:GetObject (HeadObject)", key, detail))
            })
            .collect()
    }
}

/// How many requests [`ObjectStore::get_many`] and [`ObjectStore::exists_many`] keep in flight.
/// Small objects cost a round trip each, so a few dozen packages take the time of a few.
const CONCURRENT_REQUESTS: usize = 16;

/// Runs `jobs` with at most [`CONCURRENT_REQUESTS`] at once and returns their outputs in order.
async fn bounded<F>(jobs: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut outputs: Vec<Option<F::Output>> = (0..jobs.len()).map(|_| None).collect();
    let mut pending = jobs.into_iter().enumerate();
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.len() < CONCURRENT_REQUESTS {
            let Some((index, job)) = pending.next() else {
                break;
            };
            running.spawn(async move { (index, job.await) });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (index, output) = joined.expect("a request task does not panic");
        outputs[index] = Some(output);
    }
    outputs
        .into_iter()
        .map(|output| output.expect("every job ran"))
        .collect()
}

/// What S3 said, or what failed before it could answer.
fn detail<E>(error: &SdkError<E>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match (error.code(), error.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => aws_smithy_types::error::display::DisplayErrorContext(error).to_string(),
    }
}

/// Whether S3 answered that there is no such key. A missing bucket is not this: it is an error
/// the user must fix, not a cache miss.
fn is_missing<E: ProvideErrorMetadata>(error: &SdkError<E>) -> bool {
    if !matches!(error, SdkError::ServiceError(_)) {
        return false;
    }
    // A HEAD answer has no body, so a missing key shows only as a 404 status.
    let status = error.raw_response().map(|r| r.status().as_u16());
    matches!(error.code(), Some("NoSuchKey" | "NotFound"))
        || (status == Some(404) && error.code() != Some("NoSuchBucket"))
}

/// The SDK configuration, with the same single HTTP client as the AWS target; `region` applies
/// only when the standard chain names none.
async fn load_config(region: Option<&str>, options: &ConnectOptions) -> aws_config::SdkConfig {
    let mut config = crate::deploy::aws::sdk_loader(options).load().await;
    if config.region().is_none() {
        if let Some(region) = region {
            config = config
                .into_builder()
                .region(Region::new(region.to_owned()))
                .build();
        }
    }
    config
}
