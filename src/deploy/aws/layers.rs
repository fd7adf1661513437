//! Layer versions on AWS: listing them by content, publishing, access and deletion.

use aws_sdk_lambda::operation::get_layer_version::GetLayerVersionOutput;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    Architecture, LayerVersionContentInput, LayerVersionsListItem, Runtime,
};

use super::error::{classify, is_not_found};
use super::memory::layer_arn_of;
use super::policy::{self, GRANTED_ACTION};
use super::upload::{upload_once, Upload};
use super::{code_sha256_of, rfc3339_utc, sha256_hex, AwsError, AwsTarget};
use crate::access::AccessSet;
use crate::deploy::{AccessChange, LayerVersion, PublishLayer};

impl AwsTarget {
    /// All versions of a layer, oldest first. Versions seen before cost nothing beyond the
    /// listing; new ones cost one GetLayerVersion and one GetLayerVersionPolicy each.
    pub(super) fn list_layer_versions(
        &mut self,
        layer: &str,
    ) -> Result<Vec<LayerVersion>, AwsError> {
        let name = self.aws_layer_name(layer);
        let listed: Vec<(u64, String)> = self
            .runtime
            .block_on(self.list_all(&name))?
            .into_iter()
            .filter_map(|item| Some((item.version as u64, item.layer_version_arn?)))
            .collect();
        let existing: Vec<String> = listed.iter().map(|(_, arn)| arn.clone()).collect();
        if let Some(layer_arn) = existing.first().and_then(|arn| layer_arn_of(arn)) {
            self.layer_arns.insert(name.clone(), layer_arn.to_owned());
        }
        self.memory.forget_deleted(&existing);

        let mut remembered = match existing.first() {
            Some(arn) => self.memory.layer(arn),
            None => Default::default(),
        };
        let mut versions = Vec::with_capacity(listed.len());
        for (number, arn) in &listed {
            let version = match remembered.remove(arn) {
                Some(seen) => seen,
                None => self.fetch_version(&name, *number)?,
            };
            versions.push(version);
        }
        versions.sort_by_key(|version| version.version);
        tracing::debug!(layer = %name, versions = versions.len(), "listed layer versions");
        Ok(versions)
    }

    async fn list_all(&self, name: &str) -> Result<Vec<LayerVersionsListItem>, AwsError> {
        let mut items = Vec::new();
        let mut marker = None;
        loop {
            let page = self
                .lambda
                .list_layer_versions()
                .layer_name(name)
                .set_marker(marker)
                .send()
                .await;
            let page = match page {
                Ok(page) => page,
                Err(error) if is_not_found(&error) => return Ok(items),
                Err(error) => {
                    return Err(classify(
                        "lambda:ListLayerVersions",
                        &self.lambda_endpoint(),
                        error,
                    ))
                }
            };
            items.extend(page.layer_versions.unwrap_or_default());
            marker = page.next_marker;
            if marker.is_none() {
                return Ok(items);
            }
        }
    }

    /// Reads one version and its access, and remembers them at once, so that what was fetched
    /// before a later failure need not be asked for again.
    fn fetch_version(&mut self, name: &str, number: u64) -> Result<LayerVersion, AwsError> {
        let endpoint = self.lambda_endpoint();
        let request = self
            .lambda
            .get_layer_version()
            .layer_name(name)
            .version_number(number as i64);
        let output = self
            .runtime
            .block_on(request.send())
            .map_err(|error| classify("lambda:GetLayerVersion", &endpoint, error))?;
        let statement_ids = self.runtime.block_on(self.statement_ids(name, number))?;
        let version = layer_version(name, output, policy::access_from_statements(&statement_ids));
        self.memory.remember(std::slice::from_ref(&version));
        Ok(version)
    }

    /// The ids of the statements in a version's policy; none when it has no policy.
    async fn statement_ids(&self, name: &str, number: u64) -> Result<Vec<String>, AwsError> {
        let read = self
            .lambda
            .get_layer_version_policy()
            .layer_name(name)
            .version_number(number as i64)
            .send()
            .await;
        let policy = match read {
            Ok(output) => output.policy.unwrap_or_default(),
            Err(error) if is_not_found(&error) => return Ok(Vec::new()),
            Err(error) => {
                return Err(classify(
                    "lambda:GetLayerVersionPolicy",
                    &self.lambda_endpoint(),
                    error,
                ))
            }
        };
        if policy.trim().is_empty() {
            return Ok(Vec::new());
        }
        policy::statement_ids(&policy).map_err(|error| AwsError::Service {
            action: "lambda:GetLayerVersionPolicy",
            code: "UnreadablePolicy".to_owned(),
            message: format!("the policy of `{name}` version {number} is not JSON: {error}"),
        })
    }

    /// Publishes a version from the zip, directly or through S3 by size, and remembers it once
    /// AWS has answered.
    pub(super) fn publish(&mut self, request: &PublishLayer) -> Result<LayerVersion, AwsError> {
        let name = self.aws_layer_name(&request.layer);
        let content = self.layer_content(&name, request)?;
        let publish = self
            .lambda
            .publish_layer_version()
            .layer_name(&name)
            .description(&request.description)
            .content(content)
            .set_compatible_runtimes(non_empty(&request.runtimes, |r| Runtime::from(r.as_str())))
            .set_compatible_architectures(non_empty(&request.architectures, |a| {
                Architecture::from(a.as_str())
            }));
        let endpoint = self.lambda_endpoint();
        let output = self
            .runtime
            .block_on(publish.send())
            .map_err(|error| classify("lambda:PublishLayerVersion", &endpoint, error))?;

        let version = published_version(&name, request, output);
        if let Some(layer_arn) = layer_arn_of(&version.arn) {
            self.layer_arns.insert(name.clone(), layer_arn.to_owned());
        }
        self.memory.remember(std::slice::from_ref(&version));
        tracing::info!(layer = %name, version = version.version, "layer version published");
        if version.code_sha256 != request.code_sha256 {
            return Err(AwsError::HashMismatch {
                layer: name,
                version: version.version,
                expected: request.code_sha256.clone(),
                found: version.code_sha256,
            });
        }
        Ok(version)
    }

    fn layer_content(
        &self,
        name: &str,
        request: &PublishLayer,
    ) -> Result<LayerVersionContentInput, AwsError> {
        let size = zip_size(&request.zip_path)?;
        if size <= self.options.direct_upload_limit {
            let bytes = read_zip(name, &request.zip_path, &request.code_sha256)?;
            return Ok(LayerVersionContentInput::builder()
                .zip_file(Blob::new(bytes))
                .build());
        }
        let (bucket, key) = self.upload_zip(
            "layers",
            name,
            request.zip_path.as_path(),
            size,
            &request.code_sha256,
        )?;
        Ok(LayerVersionContentInput::builder()
            .s3_bucket(bucket)
            .s3_key(key)
            .build())
    }

    /// Uploads a zip over the direct-upload limit to `<prefix><kind>/<name>/<sha256 hex>.zip`
    /// unless it is there already, and returns the bucket and key.
    pub(super) fn upload_zip(
        &self,
        kind: &str,
        name: &str,
        path: &std::path::Path,
        size: u64,
        code_sha256: &str,
    ) -> Result<(String, String), AwsError> {
        let bucket = self
            .config
            .bucket
            .clone()
            .ok_or_else(|| AwsError::NoBucket {
                subject: name.to_owned(),
                size,
                limit: self.options.direct_upload_limit,
            })?;
        let hex = sha256_hex(name, code_sha256)?;
        let key = format!("{}{kind}/{name}/{hex}.zip", self.config.prefix);
        let upload = Upload {
            bucket: &bucket,
            key: &key,
            path,
            size,
            subject: name,
        };
        let endpoint = self.s3_endpoint();
        let future = upload_once(
            &self.s3,
            &endpoint,
            &upload,
            self.upload_sizes(),
            &*self.progress,
        );
        self.runtime.block_on(future)?;
        Ok((bucket, key))
    }

    /// Makes a version's lamina statements grant exactly `desired`, leaving others alone.
    pub(super) fn reconcile(
        &mut self,
        layer: &str,
        number: u64,
        desired: &AccessSet,
    ) -> Result<AccessChange, AwsError> {
        let name = self.aws_layer_name(layer);
        let wanted = policy::grants(&name, desired)?;
        let present = self.runtime.block_on(self.statement_ids(&name, number))?;
        let plan = policy::plan(&present, wanted);
        self.runtime
            .block_on(self.apply_plan(&name, number, &plan))?;

        if !plan.foreign.is_empty() {
            tracing::info!(layer = %name, version = number, foreign = ?plan.foreign,
                           "left statements lamina did not create");
        }
        if let Some(layer_arn) = self.layer_arns.get(&name) {
            self.memory
                .set_access(&format!("{layer_arn}:{number}"), desired);
        }
        Ok(AccessChange {
            added: plan
                .add
                .into_iter()
                .map(|grant| grant.statement_id)
                .collect(),
            removed: plan.remove,
            foreign: plan.foreign,
        })
    }

    async fn apply_plan(
        &self,
        name: &str,
        number: u64,
        plan: &policy::PolicyPlan,
    ) -> Result<(), AwsError> {
        let endpoint = self.lambda_endpoint();
        for id in &plan.remove {
            self.lambda
                .remove_layer_version_permission()
                .layer_name(name)
                .version_number(number as i64)
                .statement_id(id)
                .send()
                .await
                .map_err(|e| classify("lambda:RemoveLayerVersionPermission", &endpoint, e))?;
            tracing::info!(layer = name, version = number, statement = %id, "access revoked");
        }
        for grant in &plan.add {
            self.lambda
                .add_layer_version_permission()
                .layer_name(name)
                .version_number(number as i64)
                .statement_id(&grant.statement_id)
                .action(GRANTED_ACTION)
                .principal(&grant.principal)
                .set_organization_id(grant.organization_id.clone())
                .send()
                .await
                .map_err(|e| classify("lambda:AddLayerVersionPermission", &endpoint, e))?;
            tracing::info!(layer = name, version = number, statement = %grant.statement_id,
                           "access granted");
        }
        Ok(())
    }

    /// The ARN of a version, when this session or the memory knows its layer's ARN. A version
    /// this machine has never seen needs no memory update.
    fn version_arn(&self, name: &str, number: u64) -> Option<String> {
        if let Some(layer_arn) = self.layer_arns.get(name) {
            return Some(format!("{layer_arn}:{number}"));
        }
        self.memory.find(name, number, &self.region)
    }

    pub(super) fn delete_version(&mut self, layer: &str, number: u64) -> Result<(), AwsError> {
        let name = self.aws_layer_name(layer);
        let endpoint = self.lambda_endpoint();
        let request = self
            .lambda
            .delete_layer_version()
            .layer_name(&name)
            .version_number(number as i64);
        self.runtime
            .block_on(request.send())
            .map_err(|error| classify("lambda:DeleteLayerVersion", &endpoint, error))?;
        if let Some(arn) = self.version_arn(&name, number) {
            self.memory.forget(&arn);
        }
        tracing::info!(layer = %name, version = number, "layer version deleted");
        Ok(())
    }
}

/// `Some(list)` of converted values, or `None` for an empty list so that the field is omitted.
fn non_empty<T>(values: &[String], convert: impl Fn(&String) -> T) -> Option<Vec<T>> {
    (!values.is_empty()).then(|| values.iter().map(convert).collect())
}

pub(super) fn zip_size(path: &std::path::Path) -> Result<u64, AwsError> {
    fs_err::metadata(path)
        .map(|metadata| metadata.len())
        .map_err(|source| AwsError::ReadZip {
            path: path.to_owned(),
            source,
        })
}

/// Reads a zip for a direct upload and checks that it is still the zip that was built.
pub(super) fn read_zip(
    subject: &str,
    path: &std::path::Path,
    code_sha256: &str,
) -> Result<Vec<u8>, AwsError> {
    let bytes = fs_err::read(path).map_err(|source| AwsError::ReadZip {
        path: path.to_owned(),
        source,
    })?;
    let found = code_sha256_of(&bytes);
    if found != code_sha256 {
        let message = format!(
            "`{}` has CodeSha256 `{found}`, not `{code_sha256}` of `{subject}` as built: it \
             changed after the build; build again",
            path.display()
        );
        return Err(AwsError::ReadZip {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, message),
        });
    }
    Ok(bytes)
}

/// A [`LayerVersion`] from the fields that GetLayerVersion and PublishLayerVersion answer alike
/// (their output types differ but share these names), plus what only lamina knows.
macro_rules! version_from_output {
    ($name:expr, $output:expr, $access:expr, $digest:expr, $unzipped_size:expr) => {{
        let output = $output;
        LayerVersion {
            layer: $name.to_owned(),
            version: output.version as u64,
            arn: output.layer_version_arn.unwrap_or_default(),
            code_sha256: output
                .content
                .and_then(|c| c.code_sha256)
                .unwrap_or_default(),
            description: output.description.unwrap_or_default(),
            created: rfc3339_utc(output.created_date.as_deref().unwrap_or_default()),
            runtimes: strings(output.compatible_runtimes.unwrap_or_default(), |r| {
                r.as_str()
            }),
            architectures: strings(output.compatible_architectures.unwrap_or_default(), |a| {
                a.as_str()
            }),
            access: $access,
            digest: $digest,
            unzipped_size: $unzipped_size,
        }
    }};
}

fn layer_version(name: &str, output: GetLayerVersionOutput, access: AccessSet) -> LayerVersion {
    // AWS reports neither digest nor unzipped size; only versions this machine published have them.
    version_from_output!(name, output, access, None, None)
}

fn published_version(
    name: &str,
    request: &PublishLayer,
    output: aws_sdk_lambda::operation::publish_layer_version::PublishLayerVersionOutput,
) -> LayerVersion {
    // A new version has no policy until access is reconciled.
    let access = AccessSet::default();
    version_from_output!(
        name,
        output,
        access,
        Some(request.digest),
        Some(request.unzipped_size)
    )
}

fn strings<T>(values: Vec<T>, as_str: impl Fn(&T) -> &str) -> Vec<String> {
    values
        .iter()
        .map(|value| as_str(value).to_owned())
        .collect()
}
