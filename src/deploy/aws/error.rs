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
        "the S3 bucket `{bucket}` is in another region{}, and Lambda reads uploaded zips only \
         from a bucket in its own region: set `bucket` in [target.aws] of lamina.toml to a \
         bucket in the region lamina publishes to, or `region` to the bucket's",
        bucket_region.as_ref().map(|region| format!(" (`{region}`)")).unwrap_or_default()
    )]
    BucketInOtherRegion {
        bucket: String,
        bucket_region: Option<String>,
    },

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
    let message = match (error.message(), error.raw_response()) {
        (Some(message), _) => message.to_owned(),
        (None, Some(response)) => unparsed_answer(response),
        (None, None) => "no error message".to_owned(),
    };
    // A HEAD request's 403 has no body, so the status is all there is to go on.
    if ACCESS_DENIED_CODES.contains(&code.as_str()) || status == Some(403) && code == "Unknown" {
        // Lambda reads a zip published from S3 with the caller's own credentials, and reports a
        // refused read as its own AccessDeniedException: the permission missing is S3's.
        if message.contains("denied by S3") {
            return AwsError::AccessDenied {
                action: "s3:GetObject",
                message,
            };
        }
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

/// How much of an answer the SDK could not parse is quoted in a message.
const QUOTED_BODY_CHARS: usize = 300;

/// The status and the start of the body of an answer without a parsable error, such as a proxy's
/// HTML page or a server that answers in another protocol than the API's.
fn unparsed_answer(response: &HttpResponse) -> String {
    let status = response.status().as_u16();
    let body = response.body().bytes().unwrap_or_default();
    let text = String::from_utf8_lossy(body);
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.chars().count() {
        0 => format!("HTTP {status} without an error message"),
        n if n <= QUOTED_BODY_CHARS => format!("HTTP {status}: {text}"),
        _ => {
            let start: String = text.chars().take(QUOTED_BODY_CHARS).collect();
            format!("HTTP {status}: {start}...")
        }
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

/// Error codes with which S3 says the bucket is in another region than the request's.
const OTHER_REGION_CODES: &[&str] = &[
    "PermanentRedirect",
    "AuthorizationHeaderMalformed",
    "IllegalLocationConstraintException",
];

/// Like [`classify`], for a call on `bucket`: a missing bucket and a bucket in another region
/// (which S3 answers to a HEAD request with a bare 301) get messages that name it.
pub(crate) fn classify_bucket<E>(
    bucket: &str,
    action: &'static str,
    endpoint: &str,
    error: SdkError<E, HttpResponse>,
) -> AwsError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    if matches!(error, SdkError::ServiceError(_)) {
        let response = error.raw_response();
        let is_moved = response.is_some_and(|response| response.status().as_u16() == 301);
        if error.code() == Some("NoSuchBucket") {
            return AwsError::NoSuchBucket {
                bucket: bucket.to_owned(),
            };
        }
        if is_moved
            || error
                .code()
                .is_some_and(|code| OTHER_REGION_CODES.contains(&code))
        {
            let header =
                response.and_then(|response| response.headers().get("x-amz-bucket-region"));
            return AwsError::BucketInOtherRegion {
                bucket: bucket.to_owned(),
                bucket_region: header.map(str::to_owned),
            };
        }
    }
    classify(action, endpoint, error)
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
    fn a_refused_read_of_an_uploaded_zip_names_s3_get_object() {
        let meta = ErrorMetadata::builder()
            .code("AccessDeniedException")
            .message(
                "Your access has been denied by S3, please make sure your request credentials \
                 have permission to GetObject for artifacts/lamina/layers/a/00.zip",
            );
        let raw = HttpResponse::new(403.try_into().unwrap(), SdkBody::empty());
        let failure = SdkError::service_error(PublishLayerVersionError::generic(meta.build()), raw);

        let error = classify("lambda:PublishLayerVersion", "e", failure);

        assert!(
            error
                .to_string()
                .contains("lack the IAM action `s3:GetObject`"),
            "{error}"
        );
    }

    #[test]
    fn a_403_without_a_body_says_what_little_it_knows() {
        let raw = HttpResponse::new(403.try_into().unwrap(), SdkBody::empty());
        let meta = ErrorMetadata::builder().build();
        let failure = SdkError::service_error(PublishLayerVersionError::generic(meta), raw);
        let error = classify("s3:PutObject", "e", failure).to_string();
        assert!(error.contains("`s3:PutObject`"), "{error}");
        assert!(
            error.contains("HTTP 403 without an error message"),
            "{error}"
        );
    }

    fn head_failure(status: u16, code: Option<&str>, region: Option<&str>) -> AwsError {
        use aws_sdk_s3::operation::head_object::HeadObjectError;
        let mut raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        if let Some(region) = region {
            raw.headers_mut()
                .insert("x-amz-bucket-region", region.to_owned());
        }
        let mut meta = ErrorMetadata::builder();
        if let Some(code) = code {
            meta = meta.code(code);
        }
        let failure = SdkError::service_error(HeadObjectError::generic(meta.build()), raw);
        classify_bucket("artifacts", "s3:GetObject", "e", failure)
    }

    #[test]
    fn a_bucket_in_another_region_is_named_with_its_region() {
        let moved = head_failure(301, None, Some("eu-west-1")).to_string();
        assert!(
            moved.contains("bucket `artifacts` is in another region (`eu-west-1`)"),
            "{moved}"
        );
        let redirected = head_failure(400, Some("AuthorizationHeaderMalformed"), None);
        assert!(matches!(
            redirected,
            AwsError::BucketInOtherRegion {
                bucket_region: None,
                ..
            }
        ));
        let missing = head_failure(404, Some("NoSuchBucket"), None);
        assert!(
            matches!(missing, AwsError::NoSuchBucket { .. }),
            "{missing}"
        );
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
