//! The shared cache on S3, against moto's server: a second machine takes the zip instead of
//! packing and publishes nothing, damage is caught and rebuilt, read-only never writes, racing
//! writers leave whole objects, and a warm build asks nothing.
//!
//! Each test starts its own server and counts the requests it recorded.

use std::path::PathBuf;

use lamina::cache::{Cache, Owner};
use lamina::manifest::CacheMode;
use lamina::remote::s3::S3Store;
use lamina::remote::{record_key, zip_key, RemoteCache};

use crate::support::moto::{Moto, Recorded, REGION};
use crate::support::portable::{stderr, Machine, FILES_OUTSIDE_PACKAGES, PACKAGES};

const BUCKET: &str = "cache-bucket";
const PREFIX: &str = "team/lamina";

/// Points `machine` at `moto` for AWS and at the shared cache in `mode`.
fn connect(machine: &mut Machine, moto: &Moto, mode: &str) {
    let nowhere = machine.root().join(".no-aws-config");
    let settings = [
        ("AWS_ENDPOINT_URL", moto.endpoint()),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("AWS_CONFIG_FILE", nowhere.display().to_string()),
        ("AWS_SHARED_CREDENTIALS_FILE", nowhere.display().to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("LAMINA_REMOTE_CACHE", format!("s3://{BUCKET}/{PREFIX}")),
        ("LAMINA_REMOTE_CACHE_MODE", mode.to_owned()),
    ];
    for (key, value) in settings {
        machine.set_env(key, value);
    }
}

/// A server with the cache bucket, its recording cleared of the bucket's creation.
fn start() -> Moto {
    let moto = Moto::start();
    moto.sdk().create_bucket(BUCKET);
    moto.clear_requests();
    moto
}

/// Requests of `method` to the cache bucket.
fn cache_requests<'a>(requests: &'a [Recorded], method: &str) -> Vec<&'a Recorded> {
    let bucket = format!("/{BUCKET}/");
    requests
        .iter()
        .filter(|r| r.method == method && r.path.starts_with(&bucket))
        .collect()
}

fn object_key(key: &str) -> String {
    format!("{PREFIX}/{key}")
}

#[test]
fn a_second_machine_takes_the_zip_from_the_shared_cache_and_publishes_nothing() {
    let moto = start();
    let mut a = Machine::first();
    connect(&mut a, &moto, "read-write");
    let pushed = a.json(&["push", "--yes", "--target", "aws"]);
    assert_eq!(pushed["layers"][0]["action"], "published");
    let (built, _) = a.build(&[]);

    let b = Machine::copy_of(&a);
    moto.clear_requests();
    let (layer, stats) = b.build(&[]);
    assert_eq!(layer["status"], "cached");
    assert_eq!(stats["entries_compressed"], 0);
    assert_eq!(layer["digest"], built["digest"]);
    assert_eq!(layer["sha256"], built["sha256"]);
    let requests = moto.requests();
    assert_eq!(cache_requests(&requests, "PUT"), Vec::<&Recorded>::new());

    moto.clear_requests();
    let pushed = b.json(&["push", "--yes", "--target", "aws"]);
    assert_eq!(pushed["layers"][0]["action"], "unchanged");
    assert_eq!(pushed["changed"], false);
    assert_eq!(pushed["stats"]["entries_compressed"], 0);
    let requests = moto.requests();
    let publishes: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.contains("/layers/"))
        .collect();
    assert!(publishes.is_empty(), "{publishes:?}");
}

#[test]
fn manifests_mode_on_a_fresh_checkout_takes_package_lists_from_the_shared_cache() {
    let moto = start();
    let mut a = Machine::first();
    connect(&mut a, &moto, "read-write");
    a.build(&[]);

    let b = Machine::copy_of(&a);
    let (layer, stats) = b.build(&["--fingerprint", "manifests"]);
    assert_eq!(layer["status"], "cached");
    assert_eq!(stats["entries_compressed"], 0);
    assert_eq!(stats["files_hashed"], FILES_OUTSIDE_PACKAGES + PACKAGES);
    let counters = b.json(&["cache", "stats"])["last_run"]["counters"].clone();
    assert_eq!(counters["remote_list_hits"], PACKAGES);
    assert_eq!(counters["packages_reused"], PACKAGES);
}

#[test]
fn a_corrupted_remote_zip_is_reported_rebuilt_and_replaced() {
    let moto = start();
    let mut a = Machine::first();
    connect(&mut a, &moto, "read-write");
    let (built, _) = a.build(&[]);
    let digest: lamina::digest::Digest = built["digest"].as_str().unwrap().parse().unwrap();

    let sdk = moto.sdk();
    let mut damaged = std::fs::read(built["zip"].as_str().unwrap()).unwrap();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0xff;
    sdk.block_on(
        sdk.s3
            .put_object()
            .bucket(BUCKET)
            .key(object_key(&zip_key(&digest)))
            .body(damaged.into())
            .send(),
    )
    .unwrap();

    let b = Machine::copy_of(&a);
    let output = b.run(&["build", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let warnings = stderr(&output);
    assert!(warnings.contains("damaged zip"), "{warnings}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["layers"][0]["status"], "built");
    assert!(report["stats"]["entries_compressed"].as_u64().unwrap() > 0);
    assert_eq!(report["layers"][0]["sha256"], built["sha256"]);
    let counters = b.json(&["cache", "stats"])["last_run"]["counters"].clone();
    assert_eq!(counters["remote_damaged"], 1);

    // The read-write machine put the rebuilt zip back: a third machine takes it.
    let mut c = Machine::copy_of(&a);
    connect(&mut c, &moto, "read-only");
    let (layer, stats) = c.build(&[]);
    assert_eq!(layer["status"], "cached");
    assert_eq!(stats["entries_compressed"], 0);
}

#[test]
fn a_read_only_cache_is_never_written() {
    let moto = start();
    let mut reader = Machine::first();
    connect(&mut reader, &moto, "read-only");
    let (layer, _) = reader.build(&[]);
    assert_eq!(layer["status"], "built");
    let requests = moto.requests();
    assert!(!cache_requests(&requests, "GET").is_empty(), "it did look");
    assert_eq!(cache_requests(&requests, "PUT"), Vec::<&Recorded>::new());

    // Filled by a writer, the cache serves a read-only machine, which still writes nothing.
    let mut writer = Machine::copy_of(&reader);
    connect(&mut writer, &moto, "read-write");
    writer.build(&[]);
    assert!(!cache_requests(&moto.requests(), "PUT").is_empty());
    moto.clear_requests();
    let fresh = Machine::copy_of(&reader);
    let (layer, _) = fresh.build(&["--fingerprint", "manifests"]);
    assert_eq!(layer["status"], "cached");
    let requests = moto.requests();
    assert_eq!(cache_requests(&requests, "PUT"), Vec::<&Recorded>::new());
    assert_eq!(cache_requests(&requests, "POST"), Vec::<&Recorded>::new());
}

#[test]
fn a_warm_build_sends_no_request_to_the_shared_cache() {
    let moto = start();
    let mut a = Machine::first();
    connect(&mut a, &moto, "read-write");
    a.build(&[]);
    moto.clear_requests();
    let (layer, _) = a.build(&[]);
    assert_eq!(layer["status"], "cached");
    assert_eq!(moto.requests(), Vec::<Recorded>::new());

    let b = Machine::copy_of(&a);
    b.build(&[]);
    moto.clear_requests();
    b.build(&[]);
    assert_eq!(moto.requests(), Vec::<Recorded>::new());
}

#[test]
fn concurrent_writers_of_the_same_digest_leave_a_whole_object() {
    let moto = start();
    let a = Machine::first();
    a.build(&[]);
    let cache = Cache::open(&a.root().join(".lamina/cache.db")).unwrap();
    let zip = cache
        .latest_build(&Owner::Layer("shared".into()))
        .unwrap()
        .unwrap();
    let path: PathBuf = a.root().join(".lamina/build").join(&zip.file_name);

    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                let store =
                    S3Store::connect(BUCKET, PREFIX, Some(REGION), &moto.options()).unwrap();
                let remote = RemoteCache::new(Box::new(store), CacheMode::ReadWrite);
                for _ in 0..5 {
                    remote.store_zip(&zip, &path).unwrap();
                }
            });
        }
    });

    let sdk = moto.sdk();
    let object = sdk
        .block_on(
            sdk.s3
                .get_object()
                .bucket(BUCKET)
                .key(object_key(&zip_key(&zip.digest)))
                .send(),
        )
        .unwrap();
    let bytes = sdk.block_on(object.body.collect()).unwrap().into_bytes();
    assert_eq!(bytes.as_ref(), std::fs::read(&path).unwrap().as_slice());
    let record_present = sdk.block_on(
        sdk.s3
            .head_object()
            .bucket(BUCKET)
            .key(object_key(&record_key(&zip.digest)))
            .send(),
    );
    assert!(record_present.is_ok());

    let mut b = Machine::copy_of(&a);
    connect(&mut b, &moto, "read-only");
    let (layer, stats) = b.build(&[]);
    assert_eq!(layer["status"], "cached");
    assert_eq!(stats["entries_compressed"], 0);
}

#[test]
fn an_unreachable_shared_cache_is_a_warning_and_the_build_goes_on() {
    let moto = start();
    let mut a = Machine::first();
    connect(&mut a, &moto, "read-write");
    drop(moto);
    let output = a.run(&["build", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let warnings = stderr(&output);
    assert!(warnings.contains("cannot be used"), "{warnings}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["layers"][0]["status"], "built");
}

#[test]
fn an_export_carries_the_aws_versions_seen_so_a_fresh_checkout_reads_none_again() {
    let moto = start();
    let mut a = Machine::first();
    connect(&mut a, &moto, "read-write");
    a.set_env("LAMINA_REMOTE_CACHE", "off");
    a.json(&["push", "--yes", "--target", "aws"]);
    let dir = crate::support::tempdir();
    let file = dir.path().join("cache.tar");
    let exported = a.json(&["cache", "export", file.to_str().unwrap()]);
    assert_eq!(exported["aws_layer_versions"], 1);

    let b = Machine::copy_of(&a);
    let imported = b.json(&["cache", "import", file.to_str().unwrap()]);
    assert_eq!(imported["aws_layer_versions_imported"], 1);
    moto.clear_requests();
    let pushed = b.json(&["push", "--yes", "--target", "aws"]);
    assert_eq!(pushed["layers"][0]["action"], "unchanged");
    assert_eq!(pushed["stats"]["entries_compressed"], 0);
    let requests = moto.requests();
    let version_reads: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path.starts_with("/2018-10-31/layers/shared/versions/"))
        .collect();
    assert!(version_reads.is_empty(), "{version_reads:?}");
}
