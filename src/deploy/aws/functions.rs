//! Functions on AWS: create when missing, update the code when its CodeSha256 or its architectures
//! differ (Lambda changes a function's architecture only with its code), and update the
//! configuration when the layer list (order included), runtime, handler or role differ. A request
//! without a role leaves the function's role as it is.
//!
//! Lambda applies an update asynchronously and rejects the next one while the first is in
//! progress, so after every change lamina polls GetFunction until the function is neither
//! `Pending` nor `InProgress`, for at most [`ConnectOptions::ready_timeout`](super::ConnectOptions).

use std::time::{Duration, Instant};

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    Architecture, FunctionCode, FunctionConfiguration, LastUpdateStatus, Runtime, State,
};

use super::error::{classify, is_not_found};
use super::layers::{read_zip, zip_size};
use super::{AwsError, AwsTarget, MAX_FUNCTION_LAYERS};
use crate::deploy::{DeployFunction, FunctionState};

/// The first pause between readiness checks; it doubles up to [`MAX_POLL_INTERVAL`].
const FIRST_POLL_INTERVAL: Duration = Duration::from_millis(250);
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// Where a function's code comes from in a create or update call.
enum CodeSource {
    Zip(Vec<u8>),
    S3 { bucket: String, key: String },
}

impl AwsTarget {
    pub(super) fn get_function(&self, name: &str) -> Result<Option<FunctionState>, AwsError> {
        Ok(self
            .runtime
            .block_on(self.configuration(name))?
            .map(|c| function_state(name, &c)))
    }

    async fn configuration(&self, name: &str) -> Result<Option<FunctionConfiguration>, AwsError> {
        match self.lambda.get_function().function_name(name).send().await {
            Ok(output) => Ok(output.configuration),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(classify(
                "lambda:GetFunction",
                &self.lambda_endpoint(),
                error,
            )),
        }
    }

    /// Creates or updates a function so that it runs `request`'s code with its layers in order.
    pub(super) fn deploy(&mut self, request: &DeployFunction) -> Result<FunctionState, AwsError> {
        if request.layers.len() > MAX_FUNCTION_LAYERS {
            return Err(AwsError::TooManyLayers {
                function: request.name.clone(),
                count: request.layers.len(),
                limit: MAX_FUNCTION_LAYERS,
            });
        }
        let state = match self.get_function(&request.name)? {
            None => self.create(request)?,
            Some(current) => self.update(request, current)?,
        };
        Ok(state)
    }

    fn create(&self, request: &DeployFunction) -> Result<FunctionState, AwsError> {
        let role = request.role.clone().ok_or_else(|| AwsError::NoRole {
            function: request.name.clone(),
        })?;
        let code = match self.code_source(request)? {
            CodeSource::Zip(bytes) => FunctionCode::builder().zip_file(Blob::new(bytes)).build(),
            CodeSource::S3 { bucket, key } => FunctionCode::builder()
                .s3_bucket(bucket)
                .s3_key(key)
                .build(),
        };
        let create = self
            .lambda
            .create_function()
            .function_name(&request.name)
            .runtime(Runtime::from(request.runtime.as_str()))
            .handler(&request.handler)
            .role(role)
            .code(code)
            .set_architectures(architectures(&request.architectures))
            .set_layers((!request.layers.is_empty()).then(|| request.layers.clone()));
        let endpoint = self.lambda_endpoint();
        self.runtime
            .block_on(create.send())
            .map_err(|error| classify("lambda:CreateFunction", &endpoint, error))?;
        tracing::info!(function = %request.name, "function created");
        self.wait_ready(&request.name)
    }

    fn update(
        &self,
        request: &DeployFunction,
        mut current: FunctionState,
    ) -> Result<FunctionState, AwsError> {
        let is_code_stale = current.code_sha256 != request.code_sha256
            || current.architectures != request.architectures;
        if is_code_stale {
            self.update_code(request)?;
            current = self.wait_ready(&request.name)?;
        }
        let is_configuration_stale = current.layers != request.layers
            || current.runtime != request.runtime
            || current.handler != request.handler
            || current.role_differs(request.role.as_ref());
        if is_configuration_stale {
            self.update_configuration(request)?;
            current = self.wait_ready(&request.name)?;
        }
        Ok(current)
    }

    fn update_code(&self, request: &DeployFunction) -> Result<(), AwsError> {
        let update = self
            .lambda
            .update_function_code()
            .function_name(&request.name)
            .set_architectures(architectures(&request.architectures));
        let update = match self.code_source(request)? {
            CodeSource::Zip(bytes) => update.zip_file(Blob::new(bytes)),
            CodeSource::S3 { bucket, key } => update.s3_bucket(bucket).s3_key(key),
        };
        let endpoint = self.lambda_endpoint();
        self.runtime
            .block_on(update.send())
            .map_err(|error| classify("lambda:UpdateFunctionCode", &endpoint, error))?;
        tracing::info!(function = %request.name, "function code updated");
        Ok(())
    }

    fn update_configuration(&self, request: &DeployFunction) -> Result<(), AwsError> {
        let update = self
            .lambda
            .update_function_configuration()
            .function_name(&request.name)
            .runtime(Runtime::from(request.runtime.as_str()))
            .handler(&request.handler)
            .set_role(request.role.clone())
            .set_layers(Some(request.layers.clone()));
        let endpoint = self.lambda_endpoint();
        self.runtime
            .block_on(update.send())
            .map_err(|error| classify("lambda:UpdateFunctionConfiguration", &endpoint, error))?;
        tracing::info!(function = %request.name, layers = ?request.layers,
                       "function configuration updated");
        Ok(())
    }

    fn code_source(&self, request: &DeployFunction) -> Result<CodeSource, AwsError> {
        let size = zip_size(&request.zip_path)?;
        if size <= self.options.direct_upload_limit {
            return Ok(CodeSource::Zip(read_zip(
                &request.name,
                &request.zip_path,
                &request.code_sha256,
            )?));
        }
        let (bucket, key) = self.upload_zip(
            "functions",
            &request.name,
            &request.zip_path,
            size,
            &request.code_sha256,
        )?;
        Ok(CodeSource::S3 { bucket, key })
    }

    /// Polls until the function accepts the next update, and returns its state then.
    fn wait_ready(&self, name: &str) -> Result<FunctionState, AwsError> {
        let started = Instant::now();
        let mut interval = FIRST_POLL_INTERVAL;
        loop {
            let configuration = self
                .runtime
                .block_on(self.configuration(name))?
                .ok_or_else(|| AwsError::NotReady {
                    function: name.to_owned(),
                    detail: "it disappeared while being updated".to_owned(),
                })?;
            if let Some(detail) = failure(&configuration) {
                return Err(AwsError::NotReady {
                    function: name.to_owned(),
                    detail,
                });
            }
            if !is_busy(&configuration) {
                return Ok(function_state(name, &configuration));
            }
            if started.elapsed() + interval > self.options.ready_timeout {
                let detail = format!("still updating after {:?}", started.elapsed());
                return Err(AwsError::NotReady {
                    function: name.to_owned(),
                    detail,
                });
            }
            tracing::debug!(
                function = name,
                "waiting for the function to finish updating"
            );
            std::thread::sleep(interval);
            interval = (interval * 2).min(MAX_POLL_INTERVAL);
        }
    }

    pub(super) fn remove_function(&self, name: &str) -> Result<(), AwsError> {
        let endpoint = self.lambda_endpoint();
        match self
            .runtime
            .block_on(self.lambda.delete_function().function_name(name).send())
        {
            Ok(_) => {
                tracing::info!(function = name, "function deleted");
                Ok(())
            }
            Err(error) if is_not_found(&error) => Ok(()),
            Err(error) => Err(classify("lambda:DeleteFunction", &endpoint, error)),
        }
    }
}

fn is_busy(configuration: &FunctionConfiguration) -> bool {
    configuration.state() == Some(&State::Pending)
        || configuration.last_update_status() == Some(&LastUpdateStatus::InProgress)
}

fn failure(configuration: &FunctionConfiguration) -> Option<String> {
    if configuration.state() == Some(&State::Failed) {
        let reason = configuration.state_reason().unwrap_or("no reason given");
        return Some(format!("its state is Failed: {reason}"));
    }
    if configuration.last_update_status() == Some(&LastUpdateStatus::Failed) {
        let reason = configuration
            .last_update_status_reason()
            .unwrap_or("no reason given");
        return Some(format!("its last update failed: {reason}"));
    }
    None
}

fn architectures(names: &[String]) -> Option<Vec<Architecture>> {
    (!names.is_empty()).then(|| {
        names
            .iter()
            .map(|name| Architecture::from(name.as_str()))
            .collect()
    })
}

fn function_state(name: &str, configuration: &FunctionConfiguration) -> FunctionState {
    FunctionState {
        name: configuration.function_name().unwrap_or(name).to_owned(),
        arn: configuration.function_arn().unwrap_or_default().to_owned(),
        runtime: configuration
            .runtime()
            .map(|r| r.as_str().to_owned())
            .unwrap_or_default(),
        handler: configuration.handler().unwrap_or_default().to_owned(),
        code_sha256: configuration.code_sha256().unwrap_or_default().to_owned(),
        layers: configuration
            .layers()
            .iter()
            .filter_map(|l| l.arn().map(str::to_owned))
            .collect(),
        architectures: match configuration.architectures() {
            [] => vec![Architecture::X8664.as_str().to_owned()],
            named => named.iter().map(|a| a.as_str().to_owned()).collect(),
        },
        role: configuration.role().map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configuration(
        state: Option<State>,
        update: Option<LastUpdateStatus>,
    ) -> FunctionConfiguration {
        FunctionConfiguration::builder()
            .set_state(state)
            .set_last_update_status(update)
            .last_update_status_reason("the code is too large")
            .build()
    }

    #[test]
    fn a_pending_or_updating_function_is_waited_for() {
        assert!(is_busy(&configuration(Some(State::Pending), None)));
        assert!(is_busy(&configuration(
            Some(State::Active),
            Some(LastUpdateStatus::InProgress)
        )));
        assert!(!is_busy(&configuration(
            Some(State::Active),
            Some(LastUpdateStatus::Successful)
        )));
        assert!(
            !is_busy(&configuration(None, None)),
            "servers that report neither are ready"
        );
    }

    #[test]
    fn a_failed_update_is_reported_with_its_reason() {
        let failed = configuration(Some(State::Active), Some(LastUpdateStatus::Failed));
        assert_eq!(
            failure(&failed).unwrap(),
            "its last update failed: the code is too large"
        );
        assert_eq!(failure(&configuration(Some(State::Active), None)), None);
    }
}
