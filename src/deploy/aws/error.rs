//! What can go wrong when talking to AWS, phrased so that the user knows what to set or grant.
//!
//! Every SDK call goes through [`classify`], which turns the SDK's layered error into one of a few
//! cases a person can act on: the endpoint cannot be reached, the credentials are missing or
//! rejected, the caller lacks a named IAM action, or the service refused for another stated reason.

use std::error::Error as StdError;
use std::path::PathBuf;

use aws_sdk_lambda::config::http::HttpResponse;
use aws_sdk_lambda::error::ProvideErrorMetadata;
use aws_sdk_lambda::error::SdkError;

/// Errors of the AWS target.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error(
        "no AWS region is configured: set `region` in [target.aws] of lamina.toml, or AWS_REGION \
         (or a region in the AWS profile)"
    )]
    NoRegion,

    #[error(
        "no AWS credentials were found: set AWS_PROFILE (and run `aws sso login` for an SSO \
         profile), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY ({detail})"
    )]
    NoCredentials { detail: String },

    #[error(
        "AWS rejected the credentials for `{action}`: {message}; refresh them (`aws sso login`) \
         or check AWS_PROFILE and AWS_ACCESS_KEY_ID"
    )]
    BadCredentials {
        action: &'static str,
        message: String,
    },

    #[error(
        "cannot reach the AWS endpoint `{endpoint}` for `{action}`: {detail}; check the network, \
         or AWS_ENDPOINT_URL if it points at a local server"
    )]
    Unreachable {
        endpoint: String,
        action: &'static str,
        detail: String,
    },

    #[error(
        "access denied: the credentials in use lack the IAM action `{action}`; grant it to them \
         ({message})"
    )]
    AccessDenied {
        action: &'static str,
        message: String,
    },

    #[error(
        "`{subject}` is {size} bytes, over the {limit}-byte limit for a direct upload, so it must \
         go through S3: set `bucket` in [target.aws] of lamina.toml"
    )]
    NoBucket {
        subject: String,
        size: u64,
        limit: u64,
    },

    #[error(
        "the S3 bucket `{bucket}` does not exist (or is not reachable in this region): create it, \
         or change `bucket` in [target.aws] of lamina.toml"
    )]
    NoSuchBucket { bucket: String },

    #[error(
        "function `{function}` does not exist on AWS yet, and creating it needs an execution \
         role: set `role` in [functions.{function}] of lamina.toml"
    )]
    NoRole { function: String },

    #[error("function `{function}` has {count} layers; AWS allows at most {limit}")]
    TooManyLayers {
        function: String,
        count: usize,
        limit: usize,
    },

    #[error("invalid access `{value}` for layer `{layer}`: {reason}")]
    InvalidAccess {
        layer: String,
        value: String,
        reason: &'static str,
    },

    #[error(
        "AWS reports CodeSha256 `{found}` for version {version} of layer `{layer}`, but the zip \
         that was published has `{expected}`"
    )]
    HashMismatch {
        layer: String,
        version: u64,
        expected: String,
        found: String,
    },

    #[error("the CodeSha256 `{value}` of `{subject}` is not base64 of a SHA-256")]
    BadCodeSha256 { subject: String, value: String },

    #[error("function `{function}` did not become ready: {detail}")]
    NotReady { function: String, detail: String },

    #[error("`{action}` failed: {code}: {message}")]
    Service {
        action: &'static str,
        code: String,
        message: String,
    },

    #[error("`{action}` failed: {detail}")]
    Call {
        action: &'static str,
        detail: String,
    },

    #[error("failed to read `{}`", path.display())]
    ReadZip {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("failed to start the async runtime for AWS calls")]
    Runtime {
        #[source]
        source: std::io::Error,
    },
}

/// Error codes with which AWS says the caller lacks a permission.
const ACCESS_DENIED_CODES: &[&str] = &["AccessDeniedException", "AccessDenied", "Forbidden"];

/// Error codes with which AWS says the credentials themselves are wrong or expired.
const BAD_CREDENTIAL_CODES: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidSignatureException",
];

/// Turns an SDK error from the call `action` (an IAM action name such as
/// `lambda:PublishLayerVersion`) into an [`AwsError`]. `endpoint` names the server in messages.
pub(crate) fn classify<E>(
    action: &'static str,
    endpoint: &str,
    error: SdkError<E, HttpResponse>,
) -> AwsError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    match &error {
        SdkError::DispatchFailure(failure) if failure.is_io() || failure.is_timeout() => {
            AwsError::Unreachable {
                endpoint: endpoint.to_owned(),
                action,
                detail: innermost(&error),
            }
        }
        SdkError::TimeoutError(_) => AwsError::Unreachable {
            endpoint: endpoint.to_owned(),
            action,
            detail: "the request timed out".to_owned(),
        },
        SdkError::ServiceError(_) => service_error(action, &error),
        _ if is_missing_credentials(&error) => AwsError::NoCredentials {
            detail: innermost(&error),
        },
        _ => AwsError::Call {
            action,
            detail: causes(&error),
        },
    }
}

fn service_error<E: ProvideErrorMetadata>(
    action: &'static str,
    error: &SdkError<E, HttpResponse>,
) -> AwsError {
    let status = error
        .raw_response()
        .map(|response| response.status().as_u16());
    let code = error.code().unwrap_or("Unknown").to_owned();
    let message = error.message().unwrap_or("no message").to_owned();
    // A HEAD request's 403 has no body, so the status is all there is to go on.
    if ACCESS_DENIED_CODES.contains(&code.as_str()) || status == Some(403) && code == "Unknown" {
        return AwsError::AccessDenied { action, message };
    }
    if BAD_CREDENTIAL_CODES.contains(&code.as_str()) {
        return AwsError::BadCredentials { action, message };
    }
    AwsError::Service {
        action,
        code,
        message,
    }
}

/// Whether the SDK gave up before sending because no credentials could be resolved.
fn is_missing_credentials(error: &dyn StdError) -> bool {
    let text = causes(error);
    text.contains("no providers in chain provided credentials")
        || text.contains("failed to load credentials")
        || text.contains("credentials provider was not enabled")
}

/// The messages of an error and its causes, joined by `: `, without the debug dumps of the SDK's
/// own context formatting.
pub(crate) fn causes(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut current = error;
    while let Some(source) = current.source() {
        let message = source.to_string();
        if !text.contains(&message) {
            text = format!("{text}: {message}");
        }
        current = source;
    }
    text
}

/// The message of the deepest cause, which is where the SDK says what actually happened
/// (`Connection refused`, a DNS failure, ...).
fn innermost(error: &dyn StdError) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// Whether the service answered that the named thing does not exist.
pub(crate) fn is_not_found<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> bool {
    matches!(error, SdkError::ServiceError(_))
        && matches!(
            error.code(),
            Some("ResourceNotFoundException" | "NotFound" | "NoSuchKey" | "404")
        )
}

/// Whether S3 answered that the bucket does not exist.
pub(crate) fn is_no_such_bucket<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> bool {
    matches!(error, SdkError::ServiceError(_)) && error.code() == Some("NoSuchBucket")
}

#[cfg(test)]
mod tests {
    use aws_sdk_lambda::error::ErrorMetadata;
    use aws_sdk_lambda::operation::publish_layer_version::PublishLayerVersionError;
    use aws_sdk_lambda::primitives::SdkBody;

    use super::*;

    fn service_failure(
        status: u16,
        code: Option<&str>,
    ) -> SdkError<PublishLayerVersionError, HttpResponse> {
        let mut meta =
            ErrorMetadata::builder().message("User: arn:aws:iam::1:user/ci is not authorized");
        if let Some(code) = code {
            meta = meta.code(code);
        }
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        SdkError::service_error(PublishLayerVersionError::generic(meta.build()), raw)
    }

    #[test]
    fn access_denied_names_the_missing_iam_action() {
        let error = classify(
            "lambda:PublishLayerVersion",
            "https://lambda.eu-west-1.amazonaws.com",
            service_failure(403, Some("AccessDeniedException")),
        );
        assert!(matches!(
            error,
            AwsError::AccessDenied {
                action: "lambda:PublishLayerVersion",
                ..
            }
        ));
        assert!(error
            .to_string()
            .contains("lack the IAM action `lambda:PublishLayerVersion`"));
    }

    #[test]
    fn a_bodiless_403_is_access_denied() {
        let error = classify("s3:GetObject", "https://s3", service_failure(403, None));
        assert!(matches!(error, AwsError::AccessDenied { .. }), "{error}");
    }

    #[test]
    fn expired_credentials_say_how_to_refresh() {
        let error = classify(
            "lambda:GetFunction",
            "e",
            service_failure(403, Some("ExpiredTokenException")),
        );
        assert!(error.to_string().contains("aws sso login"), "{error}");
    }

    #[test]
    fn other_service_errors_keep_code_and_message() {
        let error = classify(
            "lambda:GetFunction",
            "e",
            service_failure(400, Some("InvalidParameterValueException")),
        );
        assert!(
            error.to_string().contains("InvalidParameterValueException"),
            "{error}"
        );
    }
}
