//! Content-addressed uploads of zips to S3, for zips too large to send in a Lambda request.
//!
//! A zip is stored under a key that ends in the hex SHA-256 of its bytes, so an object that exists
//! under that key with the same size already holds the same bytes: HeadObject first, and skip the
//! upload when it answers. Objects up to the multipart threshold are sent with one PutObject;
//! larger ones as a multipart upload whose parts are read straight from the file (never the whole
//! zip in memory), a few parts in flight at once to keep the connection busy, and aborted on the
//! first error so that no orphaned parts are left billed.

use std::path::Path;

use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use tokio::task::JoinSet;

use super::error::classify_bucket;
use super::AwsError;
use crate::progress::{Phase, Progress};

/// How many parts of one multipart upload are sent at once. Each holds at most one part in
/// memory, so this bounds memory at `MAX_PARTS_IN_FLIGHT * part_size`.
const MAX_PARTS_IN_FLIGHT: usize = 4;

/// The smallest part S3 accepts (except the last).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// One zip to put into S3.
pub struct Upload<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub path: &'a Path,
    pub size: u64,
    /// A layer or function name, for progress and messages.
    pub subject: &'a str,
}

/// Sizes that decide how an object is sent.
#[derive(Debug, Clone, Copy)]
pub struct UploadSizes {
    pub multipart_threshold: u64,
    pub part_size: u64,
}

/// Whether an upload sent bytes or found the object in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadOutcome {
    Uploaded,
    AlreadyPresent,
}

/// Puts the zip into S3 unless an object of the same size is already under its key.
pub async fn upload_once(
    s3: &Client,
    endpoint: &str,
    upload: &Upload<'_>,
    sizes: UploadSizes,
    progress: &dyn Progress,
) -> Result<UploadOutcome, AwsError> {
    if is_present(s3, endpoint, upload).await? {
        tracing::debug!(
            bucket = upload.bucket,
            key = upload.key,
            "zip already in S3"
        );
        return Ok(UploadOutcome::AlreadyPresent);
    }
    progress.start(Phase::Upload, upload.subject, upload.size);
    let result = if upload.size <= sizes.multipart_threshold {
        put_whole(s3, endpoint, upload)
            .await
            .inspect(|_| progress.advance(upload.size))
    } else {
        put_multipart(
            s3,
            endpoint,
            upload,
            sizes.part_size.max(MIN_PART_SIZE),
            progress,
        )
        .await
    };
    progress.finish();
    result?;
    tracing::info!(
        bucket = upload.bucket,
        key = upload.key,
        bytes = upload.size,
        "zip uploaded"
    );
    Ok(UploadOutcome::Uploaded)
}

async fn is_present(s3: &Client, endpoint: &str, upload: &Upload<'_>) -> Result<bool, AwsError> {
    let head = s3
        .head_object()
        .bucket(upload.bucket)
        .key(upload.key)
        .send()
        .await;
    match head {
        Ok(object) => Ok(object.content_length() == Some(upload.size as i64)),
        Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(false),
        Err(error) => Err(classify_bucket(upload.bucket, HEAD_ACTION, endpoint, error)),
    }
}

/// HeadObject is authorised by GetObject; without ListBucket, S3 answers a missing key with 403.
const HEAD_ACTION: &str = "s3:GetObject and s3:ListBucket (for HeadObject)";
const PUT_ACTION: &str = "s3:PutObject";

async fn put_whole(s3: &Client, endpoint: &str, upload: &Upload<'_>) -> Result<(), AwsError> {
    let body = ByteStream::from_path(upload.path)
        .await
        .map_err(|e| read_error(upload.path, e))?;
    s3.put_object()
        .bucket(upload.bucket)
        .key(upload.key)
        .content_length(upload.size as i64)
        .body(body)
        .send()
        .await
        .map_err(|error| classify_bucket(upload.bucket, PUT_ACTION, endpoint, error))?;
    Ok(())
}

async fn put_multipart(
    s3: &Client,
    endpoint: &str,
    upload: &Upload<'_>,
    part_size: u64,
    progress: &dyn Progress,
) -> Result<(), AwsError> {
    let created = s3
        .create_multipart_upload()
        .bucket(upload.bucket)
        .key(upload.key)
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .send()
        .await
        .map_err(|error| classify_bucket(upload.bucket, PUT_ACTION, endpoint, error))?;
    let upload_id = created.upload_id().unwrap_or_default().to_owned();

    let parts = send_parts(s3, endpoint, upload, &upload_id, part_size, progress).await;
    let completed = match parts {
        Ok(parts) => complete(s3, endpoint, upload, &upload_id, parts).await,
        Err(error) => Err(error),
    };
    if completed.is_err() {
        abort(s3, upload, &upload_id).await;
    }
    completed
}

async fn send_parts(
    s3: &Client,
    endpoint: &str,
    upload: &Upload<'_>,
    upload_id: &str,
    part_size: u64,
    progress: &dyn Progress,
) -> Result<Vec<CompletedPart>, AwsError> {
    let offsets: Vec<u64> = (0..upload.size.div_ceil(part_size))
        .map(|i| i * part_size)
        .collect();
    let mut pending = offsets.iter().enumerate();
    let mut in_flight = JoinSet::new();
    let mut done = Vec::with_capacity(offsets.len());
    loop {
        while in_flight.len() < MAX_PARTS_IN_FLIGHT {
            let Some((index, &offset)) = pending.next() else {
                break;
            };
            let part = Part {
                number: index as i32 + 1,
                offset,
                length: part_size.min(upload.size - offset),
            };
            in_flight.spawn(send_part(
                s3.clone(),
                endpoint.to_owned(),
                owned(upload),
                upload_id.to_owned(),
                part,
            ));
        }
        let Some(joined) = in_flight.join_next().await else {
            break;
        };
        let (completed, length) = joined.expect("an upload task does not panic")?;
        progress.advance(length);
        done.push(completed);
    }
    done.sort_by_key(|part| part.part_number());
    Ok(done)
}

#[derive(Debug, Clone, Copy)]
struct Part {
    number: i32,
    offset: u64,
    length: u64,
}

/// The parts of an [`Upload`] that a spawned task needs to own.
struct OwnedUpload {
    bucket: String,
    key: String,
    path: std::path::PathBuf,
}

fn owned(upload: &Upload<'_>) -> OwnedUpload {
    OwnedUpload {
        bucket: upload.bucket.to_owned(),
        key: upload.key.to_owned(),
        path: upload.path.to_owned(),
    }
}

async fn send_part(
    s3: Client,
    endpoint: String,
    upload: OwnedUpload,
    upload_id: String,
    part: Part,
) -> Result<(CompletedPart, u64), AwsError> {
    let body = ByteStream::read_from()
        .path(&upload.path)
        .offset(part.offset)
        .length(Length::Exact(part.length))
        .build()
        .await
        .map_err(|e| read_error(&upload.path, e))?;
    let sent = s3
        .upload_part()
        .bucket(&upload.bucket)
        .key(&upload.key)
        .upload_id(upload_id)
        .part_number(part.number)
        .content_length(part.length as i64)
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .body(body)
        .send()
        .await
        .map_err(|error| classify_bucket(&upload.bucket, PUT_ACTION, &endpoint, error))?;
    let completed = CompletedPart::builder()
        .part_number(part.number)
        .set_e_tag(sent.e_tag().map(str::to_owned))
        .set_checksum_crc32(sent.checksum_crc32().map(str::to_owned))
        .build();
    Ok((completed, part.length))
}

async fn complete(
    s3: &Client,
    endpoint: &str,
    upload: &Upload<'_>,
    upload_id: &str,
    parts: Vec<CompletedPart>,
) -> Result<(), AwsError> {
    s3.complete_multipart_upload()
        .bucket(upload.bucket)
        .key(upload.key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .map_err(|error| classify_bucket(upload.bucket, PUT_ACTION, endpoint, error))?;
    Ok(())
}

/// Best effort: a failed abort leaves parts that the bucket's lifecycle rules can clean up, and
/// the error that caused the abort is the one worth reporting.
async fn abort(s3: &Client, upload: &Upload<'_>, upload_id: &str) {
    let aborted = s3
        .abort_multipart_upload()
        .bucket(upload.bucket)
        .key(upload.key)
        .upload_id(upload_id)
        .send()
        .await;
    if let Err(error) = aborted {
        tracing::warn!(key = upload.key, error = %error, "could not abort a multipart upload");
    }
}

fn read_error(path: &Path, error: aws_sdk_s3::primitives::ByteStreamError) -> AwsError {
    AwsError::ReadZip {
        path: path.to_owned(),
        source: std::io::Error::other(error),
    }
}
