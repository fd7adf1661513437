//! The AWS target against moto's server: publishing by content, uploads through S3, access
//! policies, functions, removal and the errors a user must be able to act on.
//!
//! Each test starts its own server; requests the server recorded are used to count calls. The
//! tests here drive [`AwsTarget`] directly; those in [`cli`] run the `lamina` binary on a project.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use lamina::access::AccessSet;
use lamina::build::{BuildReport, BuildStats, BuildStatus, Changes};
use lamina::cache::{Owner, ZipRecord};
use lamina::deploy::aws::{
    memory, AwsTarget, ConnectOptions, StaticCredentials, DIRECT_UPLOAD_LIMIT_ENV,
};
use lamina::deploy::push::{self, FunctionOutcome, LayerOutcome, PlanOptions, PushReport};
use lamina::deploy::{DeployFunction, LayerVersion, PublishLayer, Target};
use lamina::digest::Digest;
use lamina::manifest::{
    AwsConfig, CacheConfig, FunctionConfig, LayerConfig, LayerRef, Manifest, TargetConfig,
    TargetKind,
};
use lamina::progress::NoProgress;
use sha2::Digest as _;

use crate::support::moto::{Moto, Recorded, REGION};
use crate::support::tempdir;

mod cli;

const OTHER_ACCOUNT: &str = "210987654321";

/// A zip written for a test, with what AWS will report for it.
struct Zip {
    path: PathBuf,
    size: u64,
    code_sha256: String,
    hex: String,
    /// Stands in for the content digest, which the AWS target only passes through.
    digest: Digest,
    unzipped_size: u64,
}

fn write_zip(dir: &Path, name: &str, files: &[(&str, &[u8])]) -> Zip {
    let path = dir.join(format!("{name}.zip"));
    let mut writer = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (file, content) in files {
        writer.start_file(*file, options).unwrap();
        writer.write_all(content).unwrap();
    }
    writer.finish().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let digest = sha2::Sha256::digest(&bytes);
    use base64::Engine as _;
    Zip {
        path,
        size: bytes.len() as u64,
        code_sha256: base64::engine::general_purpose::STANDARD.encode(digest),
        hex: digest.iter().map(|b| format!("{b:02x}")).collect(),
        digest: Digest(*blake3::hash(&bytes).as_bytes()),
        unzipped_size: files.iter().map(|(_, content)| content.len() as u64).sum(),
    }
}

/// Bytes that do not compress, so that a zip of them is as large as asked.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u8
        })
        .collect()
}

fn config() -> AwsConfig {
    AwsConfig {
        region: Some(REGION.to_owned()),
        bucket: None,
        prefix: "lamina/".to_owned(),
        layer_name_prefix: "shop-".to_owned(),
    }
}

fn connect(moto: &Moto, lamina_dir: &Path, config: &AwsConfig) -> AwsTarget {
    AwsTarget::connect_with(config, lamina_dir, moto.options()).unwrap()
}

fn publish_request(layer: &str, zip: &Zip) -> PublishLayer {
    PublishLayer {
        layer: layer.to_owned(),
        zip_path: zip.path.clone(),
        code_sha256: zip.code_sha256.clone(),
        zip_size: zip.size,
        description: "Updated layer version 2024-05-01T12:00:00Z".to_owned(),
        runtimes: vec!["nodejs22.x".to_owned()],
        architectures: vec!["x86_64".to_owned()],
        digest: zip.digest,
        unzipped_size: zip.unzipped_size,
    }
}

fn access(accounts: &[&str], public: bool) -> AccessSet {
    AccessSet {
        accounts: accounts.iter().map(|a| a.to_string()).collect(),
        orgs: Default::default(),
        public,
    }
}

/// The ARNs of the layer versions remembered in the cache of `lamina_dir`, read straight from
/// the table rather than through the target.
fn remembered(lamina_dir: &Path) -> Vec<String> {
    let path = lamina_dir.join("cache.db");
    if !path.exists() {
        return Vec::new();
    }
    let connection = rusqlite::Connection::open(path).unwrap();
    let sql = format!("SELECT arn FROM {} ORDER BY arn", memory::TABLE);
    let mut statement = connection.prepare(&sql).unwrap();
    let arns = statement.query_map([], |row| row.get(0)).unwrap();
    arns.map(Result::unwrap).collect()
}

fn count(requests: &[Recorded], method: &str, path_start: &str) -> usize {
    requests
        .iter()
        .filter(|r| r.method == method && r.path.starts_with(path_start))
        .count()
}

#[test]
fn published_version_is_found_by_code_sha256_and_a_warm_listing_is_one_call() {
    let moto = Moto::start();
    let dir = tempdir();
    let zip = write_zip(dir.path(), "shared", &[("nodejs/a.js", b"a")]);
    let mut target = connect(&moto, dir.path(), &config());

    let published = target
        .publish_layer_version(&publish_request("shared", &zip))
        .unwrap();
    assert_eq!(published.layer, "shop-shared");
    assert_eq!(published.code_sha256, zip.code_sha256);
    assert!(published
        .arn
        .ends_with(&format!(":layer:shop-shared:{}", published.version)));

    let listed = target.layer_versions("shared").unwrap();
    assert_eq!(listed, vec![published.clone()]);

    moto.clear_requests();
    let again = target.layer_versions("shared").unwrap();
    assert_eq!(again, vec![published.clone()]);
    let requests = moto.requests();
    assert_eq!(
        requests.len(),
        1,
        "a warm listing makes one call: {requests:?}"
    );
    assert_eq!(
        count(&requests, "GET", "/2018-10-31/layers/shop-shared/versions"),
        1
    );

    // The memory lives in the project's cache, so a later process lists just as cheaply.
    drop(target);
    let mut next_run = connect(&moto, dir.path(), &config());
    moto.clear_requests();
    assert_eq!(next_run.layer_versions("shared").unwrap(), vec![published]);
    let requests = moto.requests();
    assert_eq!(requests.len(), 1, "one call in a new session: {requests:?}");
}

#[test]
fn a_fresh_target_with_empty_memory_finds_versions_by_content() {
    let moto = Moto::start();
    let first_machine = tempdir();
    let zip = write_zip(first_machine.path(), "shared", &[("nodejs/a.js", b"a")]);
    let mut target = connect(&moto, first_machine.path(), &config());
    let published = target
        .publish_layer_version(&publish_request("shared", &zip))
        .unwrap();
    target
        .reconcile_access(
            "shared",
            published.version,
            &access(&[OTHER_ACCOUNT], false),
        )
        .unwrap();

    let second_machine = tempdir();
    let mut fresh = connect(&moto, second_machine.path(), &config());
    let listed = fresh.layer_versions("shared").unwrap();

    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].code_sha256, zip.code_sha256);
    assert_eq!(listed[0].version, published.version);
    assert_eq!(listed[0].description, published.description);
    assert_eq!(listed[0].runtimes, vec!["nodejs22.x".to_owned()]);
    assert_eq!(listed[0].architectures, vec!["x86_64".to_owned()]);
    assert_eq!(listed[0].access, access(&[OTHER_ACCOUNT], false));
    assert_eq!(remembered(second_machine.path()), vec![published.arn]);
}

#[test]
fn a_zip_over_the_direct_upload_limit_goes_through_s3_exactly_once() {
    let moto = Moto::start();
    moto.sdk().create_bucket("artifacts");
    let dir = tempdir();
    let zip = write_zip(dir.path(), "big", &[("opt/data.bin", &noise(4096, 1))]);
    let config = AwsConfig {
        bucket: Some("artifacts".to_owned()),
        ..config()
    };
    let options = ConnectOptions {
        direct_upload_limit: 1024,
        ..moto.options()
    };
    let mut target = AwsTarget::connect_with(&config, dir.path(), options).unwrap();

    let first = target
        .publish_layer_version(&publish_request("big", &zip))
        .unwrap();
    let second = target
        .publish_layer_version(&publish_request("big", &zip))
        .unwrap();

    assert_eq!(
        first.code_sha256, zip.code_sha256,
        "published from the uploaded object"
    );
    assert_eq!(second.code_sha256, zip.code_sha256);
    let key = format!("/artifacts/lamina/layers/shop-big/{}.zip", zip.hex);
    let requests = moto.requests();
    assert_eq!(
        count(&requests, "PUT", &key),
        1,
        "uploaded once: {requests:?}"
    );
    assert_eq!(
        count(&requests, "HEAD", &key),
        2,
        "looked up before each publish"
    );
}

#[test]
fn a_zip_over_the_multipart_threshold_is_uploaded_in_parts() {
    let moto = Moto::start();
    moto.sdk().create_bucket("artifacts");
    let dir = tempdir();
    let zip = write_zip(dir.path(), "huge", &[("opt/data.bin", &noise(11 << 20, 2))]);
    let config = AwsConfig {
        bucket: Some("artifacts".to_owned()),
        ..config()
    };
    let options = ConnectOptions {
        direct_upload_limit: 1024,
        multipart_threshold: 5 << 20,
        part_size: 5 << 20,
        ..moto.options()
    };
    let mut target = AwsTarget::connect_with(&config, dir.path(), options).unwrap();

    let published = target
        .publish_layer_version(&publish_request("huge", &zip))
        .unwrap();

    assert_eq!(published.code_sha256, zip.code_sha256);
    // moto's request recording interleaves concurrent large bodies, so the parts are counted
    // from the object itself: a multipart object's ETag ends in `-<number of parts>`.
    let key = format!("lamina/layers/shop-huge/{}.zip", zip.hex);
    let sdk = moto.sdk();
    let object = sdk
        .block_on(sdk.s3.head_object().bucket("artifacts").key(&key).send())
        .unwrap();
    assert_eq!(object.content_length(), Some(zip.size as i64));
    let etag = object.e_tag().unwrap_or_default();
    assert!(
        etag.trim_matches('"').ends_with("-3"),
        "three parts: {etag}"
    );
}

#[test]
fn access_reconciliation_switches_public_to_an_account() {
    let moto = Moto::start();
    let sdk = moto.sdk();
    let dir = tempdir();
    let zip = write_zip(dir.path(), "shared", &[("nodejs/a.js", b"a")]);
    let mut target = connect(&moto, dir.path(), &config());
    let version = target
        .publish_layer_version(&publish_request("shared", &zip))
        .unwrap()
        .version;

    let change = target
        .reconcile_access("shared", version, &access(&[], true))
        .unwrap();
    assert_eq!(change.added, vec!["lamina-public".to_owned()]);
    assert_eq!(
        sdk.policy_principals("shop-shared", version),
        vec![("lamina-public".to_owned(), "*".to_owned())]
    );

    let change = target
        .reconcile_access("shared", version, &access(&[OTHER_ACCOUNT], false))
        .unwrap();
    assert_eq!(
        change.added,
        vec![format!("lamina-account-{OTHER_ACCOUNT}")]
    );
    assert_eq!(change.removed, vec!["lamina-public".to_owned()]);
    let principals = sdk.policy_principals("shop-shared", version);
    assert_eq!(principals.len(), 1, "public is revoked: {principals:?}");
    assert!(principals[0].1.contains(OTHER_ACCOUNT), "{principals:?}");

    let unchanged = target.reconcile_access("shared", version, &access(&[OTHER_ACCOUNT], false));
    assert_eq!(unchanged.unwrap(), Default::default());
    let listed = target.layer_versions("shared").unwrap();
    assert_eq!(
        listed[0].access,
        access(&[OTHER_ACCOUNT], false),
        "memory follows the policy"
    );
}

#[test]
fn a_foreign_statement_is_left_alone_and_reported() {
    let moto = Moto::start();
    let sdk = moto.sdk();
    let dir = tempdir();
    let zip = write_zip(dir.path(), "shared", &[("nodejs/a.js", b"a")]);
    let mut target = connect(&moto, dir.path(), &config());
    let version = target
        .publish_layer_version(&publish_request("shared", &zip))
        .unwrap()
        .version;
    let foreign = sdk
        .lambda
        .add_layer_version_permission()
        .layer_name("shop-shared")
        .version_number(version as i64)
        .statement_id("team-ci")
        .action("lambda:GetLayerVersion")
        .principal(OTHER_ACCOUNT);
    sdk.block_on(foreign.send()).unwrap();

    let change = target
        .reconcile_access("shared", version, &access(&[], true))
        .unwrap();
    assert_eq!(change.foreign, vec!["team-ci".to_owned()]);
    let change = target
        .reconcile_access("shared", version, &AccessSet::default())
        .unwrap();
    assert_eq!(change.removed, vec!["lamina-public".to_owned()]);
    assert_eq!(change.foreign, vec!["team-ci".to_owned()]);

    let principals = sdk.policy_principals("shop-shared", version);
    assert_eq!(principals.len(), 1, "{principals:?}");
    assert_eq!(principals[0].0, "team-ci");
}

#[test]
fn invalid_access_is_refused_before_any_call() {
    let moto = Moto::start();
    let dir = tempdir();
    let mut target = connect(&moto, dir.path(), &config());
    moto.clear_requests();

    let both = target
        .reconcile_access("shared", 1, &access(&[OTHER_ACCOUNT], true))
        .unwrap_err();
    assert!(
        both.to_string().contains("public access is exclusive"),
        "{both}"
    );
    let short = target
        .reconcile_access("shared", 1, &access(&["1234"], false))
        .unwrap_err();
    assert!(short.to_string().contains("account:1234"), "{short}");
    assert_eq!(moto.requests(), Vec::new());
}

fn function_request(code: &Zip, layers: &[&LayerVersion], role: Option<String>) -> DeployFunction {
    DeployFunction {
        name: "api".to_owned(),
        runtime: "nodejs22.x".to_owned(),
        handler: "index.handler".to_owned(),
        role,
        zip_path: code.path.clone(),
        zip_size: code.size,
        code_sha256: code.code_sha256.clone(),
        layers: layers.iter().map(|layer| layer.arn.clone()).collect(),
        architectures: vec!["x86_64".to_owned()],
        digest: code.digest,
        unzipped_size: code.unzipped_size,
    }
}

#[test]
fn a_function_is_created_then_its_code_and_layer_list_are_updated() {
    let moto = Moto::start();
    let sdk = moto.sdk();
    let role = moto.create_role("api-exec");
    let dir = tempdir();
    let mut target = connect(&moto, dir.path(), &config());
    let node = write_zip(dir.path(), "node", &[("nodejs/a.js", b"a")]);
    let python = write_zip(dir.path(), "python", &[("python/b.py", b"b")]);
    let node = target
        .publish_layer_version(&publish_request("node", &node))
        .unwrap();
    let python = target
        .publish_layer_version(&publish_request("python", &python))
        .unwrap();
    let code = write_zip(
        dir.path(),
        "code-1",
        &[("index.js", b"exports.handler = 1")],
    );
    assert_eq!(target.function("api").unwrap(), None);

    let created = target.deploy_function(&function_request(&code, &[&node], Some(role.clone())));
    assert_eq!(created.unwrap().layers, vec![node.arn.clone()]);
    assert_eq!(sdk.function_code_sha256("api"), code.code_sha256);
    assert_eq!(sdk.function_layers("api"), vec![node.arn.clone()]);

    let new_code = write_zip(
        dir.path(),
        "code-2",
        &[("index.js", b"exports.handler = 2")],
    );
    target
        .deploy_function(&function_request(&new_code, &[&node], None))
        .unwrap();
    assert_eq!(sdk.function_code_sha256("api"), new_code.code_sha256);

    let reordered = function_request(&new_code, &[&python, &node], None);
    let state = target.deploy_function(&reordered).unwrap();
    assert_eq!(state.layers, vec![python.arn.clone(), node.arn.clone()]);
    assert_eq!(
        sdk.function_layers("api"),
        vec![python.arn.clone(), node.arn.clone()]
    );

    moto.clear_requests();
    target.deploy_function(&reordered).unwrap();
    let requests = moto.requests();
    assert!(
        requests.iter().all(|r| r.method == "GET"),
        "nothing to update: {requests:?}"
    );
}

#[test]
fn a_role_or_architecture_change_alone_updates_the_function() {
    let moto = Moto::start();
    let first = moto.create_role("api-exec");
    let second = moto.create_role("api-exec-2");
    let dir = tempdir();
    let mut target = connect(&moto, dir.path(), &config());
    let code = write_zip(dir.path(), "code", &[("index.js", b"exports.handler = 1")]);
    let request = function_request(&code, &[], Some(first.clone()));
    target.deploy_function(&request).unwrap();
    let state = target.function("api").unwrap().unwrap();
    assert_eq!(state.role, Some(first));
    assert_eq!(state.architectures, ["x86_64"]);

    let new_role = DeployFunction {
        role: Some(second.clone()),
        ..request.clone()
    };
    moto.clear_requests();
    target.deploy_function(&new_role).unwrap();
    assert_eq!(target.function("api").unwrap().unwrap().role, Some(second));
    let requests = moto.requests();
    assert_eq!(
        count(&requests, "PUT", "/2015-03-31/functions/api/configuration"),
        1
    );
    assert_eq!(count(&requests, "PUT", "/2015-03-31/functions/api/code"), 0);

    // Lambda changes an architecture only together with the code. moto 5.2.5 accepts the
    // call but keeps the old architecture, so only the call is checked here.
    let arm = DeployFunction {
        architectures: vec!["arm64".to_owned()],
        ..new_role
    };
    moto.clear_requests();
    target.deploy_function(&arm).unwrap();
    let requests = moto.requests();
    assert_eq!(count(&requests, "PUT", "/2015-03-31/functions/api/code"), 1);
    assert_eq!(
        count(&requests, "PUT", "/2015-03-31/functions/api/configuration"),
        0
    );
}

#[test]
fn creating_a_function_without_a_role_names_the_setting() {
    let moto = Moto::start();
    let dir = tempdir();
    let mut target = connect(&moto, dir.path(), &config());
    let code = write_zip(dir.path(), "code", &[("index.js", b"x")]);

    let error = target
        .deploy_function(&function_request(&code, &[], None))
        .unwrap_err();
    assert!(
        error.to_string().contains("`role` in [functions.api]"),
        "{error}"
    );
}

#[test]
fn a_deleted_version_is_gone_and_its_number_is_not_reused() {
    let moto = Moto::start();
    let dir = tempdir();
    let mut target = connect(&moto, dir.path(), &config());
    let one = write_zip(dir.path(), "one", &[("opt/x", b"1")]);
    let two = write_zip(dir.path(), "two", &[("opt/x", b"2")]);
    let first = target
        .publish_layer_version(&publish_request("shared", &one))
        .unwrap();
    let second = target
        .publish_layer_version(&publish_request("shared", &two))
        .unwrap();

    target
        .delete_layer_version("shared", first.version)
        .unwrap();

    assert_eq!(
        target.layer_versions("shared").unwrap(),
        vec![second.clone()]
    );
    assert_eq!(remembered(dir.path()), vec![second.arn.clone()]);
    let third = target
        .publish_layer_version(&publish_request("shared", &one))
        .unwrap();
    assert!(
        third.version > second.version,
        "{} after {}",
        third.version,
        second.version
    );
}

#[test]
fn a_server_that_is_down_gives_an_error_naming_the_endpoint() {
    let port = crate::support::moto::free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let options = ConnectOptions {
        endpoint_url: Some(endpoint.clone()),
        credentials: Some(StaticCredentials {
            access_key_id: "test".to_owned(),
            secret_access_key: "test".to_owned(),
        }),
        ..ConnectOptions::default()
    };
    let dir = tempdir();
    let mut target = AwsTarget::connect_with(&config(), dir.path(), options).unwrap();

    let error = target.layer_versions("shared").unwrap_err().to_string();
    assert!(
        error.contains(&format!("cannot reach the AWS endpoint `{endpoint}`")),
        "{error}"
    );
    assert!(error.contains("lambda:ListLayerVersions"), "{error}");
}

#[test]
fn a_large_zip_without_a_bucket_names_the_setting() {
    let moto = Moto::start();
    let dir = tempdir();
    let zip = write_zip(dir.path(), "big", &[("opt/data.bin", &noise(4096, 3))]);
    let options = ConnectOptions {
        direct_upload_limit: 1024,
        ..moto.options()
    };
    let mut target = AwsTarget::connect_with(&config(), dir.path(), options).unwrap();

    let error = target
        .publish_layer_version(&publish_request("big", &zip))
        .unwrap_err();
    assert!(
        error.to_string().contains("set `bucket` in [target.aws]"),
        "{error}"
    );
    assert_eq!(remembered(dir.path()), Vec::<String>::new());
}

#[test]
fn a_bucket_that_does_not_exist_is_named() {
    let moto = Moto::start();
    let dir = tempdir();
    let zip = write_zip(dir.path(), "big", &[("opt/data.bin", &noise(4096, 4))]);
    let config = AwsConfig {
        bucket: Some("no-such-bucket".to_owned()),
        ..config()
    };
    let options = ConnectOptions {
        direct_upload_limit: 1024,
        ..moto.options()
    };
    let mut target = AwsTarget::connect_with(&config, dir.path(), options).unwrap();

    let error = target
        .publish_layer_version(&publish_request("big", &zip))
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("bucket `no-such-bucket` does not exist"),
        "{error}"
    );
    assert_eq!(remembered(dir.path()), Vec::<String>::new());
    let requests = moto.requests();
    assert_eq!(
        count(&requests, "POST", "/2018-10-31/layers"),
        0,
        "nothing published"
    );
}

#[test]
fn an_error_mid_publish_records_nothing() {
    let moto = Moto::start();
    let dir = tempdir();
    let one = write_zip(dir.path(), "one", &[("opt/x", b"1")]);
    let two = write_zip(dir.path(), "two", &[("opt/x", b"2")]);
    let mut target = connect(&moto, dir.path(), &config());
    let first = target
        .publish_layer_version(&publish_request("shared", &one))
        .unwrap();

    drop(moto);
    let error = target
        .publish_layer_version(&publish_request("shared", &two))
        .unwrap_err();

    assert!(
        error.to_string().contains("lambda:PublishLayerVersion"),
        "{error}"
    );
    assert_eq!(remembered(dir.path()), vec![first.arn]);
}

/// A build result made by hand from a real zip, as the push planner takes it.
fn build_report(owner: Owner, zip: &Zip) -> BuildReport {
    let sha256: [u8; 32] = sha2::Sha256::digest(std::fs::read(&zip.path).unwrap()).into();
    BuildReport {
        owner,
        digest: zip.digest,
        status: BuildStatus::Built,
        zip: Some(ZipRecord {
            digest: zip.digest,
            sha256,
            size: zip.size,
            entries: 1,
            unzipped_bytes: zip.unzipped_size,
            file_name: zip.path.file_name().unwrap().to_string_lossy().into_owned(),
        }),
        zip_path: Some(zip.path.clone()),
        unzipped_bytes: zip.unzipped_size,
        entries: 1,
        top_level_dirs: Default::default(),
        changed: true,
        previous: None,
        changes: Changes::default(),
        stats: BuildStats::default(),
    }
}

/// A project with one shared layer and one function using it, built.
struct Project {
    manifest: Manifest,
    layer_builds: BTreeMap<String, BuildReport>,
    function_builds: BTreeMap<String, BuildReport>,
}

fn project(dir: &Path, role: String) -> Project {
    let layer_zip = write_zip(dir, "shared", &[("nodejs/node_modules/a/index.js", b"a")]);
    let code_zip = write_zip(dir, "api", &[("index.js", b"exports.handler = 1")]);
    let layer = LayerConfig {
        name: "shared".to_owned(),
        path: PathBuf::from("layers/shared"),
        runtimes: vec!["nodejs22.x".to_owned()],
        architectures: vec!["x86_64".to_owned()],
        access: access(&[OTHER_ACCOUNT], false),
    };
    let function = FunctionConfig {
        name: "api".to_owned(),
        runtime: "nodejs22.x".to_owned(),
        handler: "index.handler".to_owned(),
        source: PathBuf::from("functions/api/src"),
        layers: vec![LayerRef::Latest("shared".to_owned())],
        architectures: vec!["x86_64".to_owned()],
        role: Some(role),
    };
    let manifest = Manifest {
        root: dir.to_path_buf(),
        name: "shop".to_owned(),
        target: TargetConfig {
            default: TargetKind::Aws,
            aws: config(),
        },
        cache: CacheConfig::default(),
        layers: BTreeMap::from([("shared".to_owned(), layer)]),
        functions: BTreeMap::from([("api".to_owned(), function)]),
    };
    Project {
        manifest,
        layer_builds: BTreeMap::from([(
            "shared".to_owned(),
            build_report(Owner::Layer("shared".to_owned()), &layer_zip),
        )]),
        function_builds: BTreeMap::from([(
            "api".to_owned(),
            build_report(Owner::Function("api".to_owned()), &code_zip),
        )]),
    }
}

fn push_with(project: &Project, target: &mut AwsTarget) -> PushReport {
    let options = PlanOptions::new(None);
    let plan = push::plan(
        &project.manifest,
        target,
        &project.layer_builds,
        &project.function_builds,
        &options,
    )
    .unwrap();
    push::execute(&plan, target, &NoProgress).unwrap()
}

#[test]
fn push_publishes_once_and_a_fresh_clone_publishes_nothing() {
    let moto = Moto::start();
    let sdk = moto.sdk();
    let first_machine = tempdir();
    let project = project(first_machine.path(), moto.create_role("api-exec"));
    let mut target = connect(&moto, first_machine.path(), &config());

    let first = push_with(&project, &mut target);
    assert_eq!(first.layers[0].action, LayerOutcome::Published);
    assert_eq!(first.functions[0].action, FunctionOutcome::Deployed);
    let arn = first.layers[0].arn.clone();
    assert_eq!(first.functions[0].layers, vec![arn.clone()]);
    assert_eq!(sdk.function_layers("api"), vec![arn.clone()]);
    let principals = sdk.policy_principals("shop-shared", first.layers[0].version);
    assert_eq!(principals.len(), 1);
    assert!(principals[0].1.contains(OTHER_ACCOUNT), "{principals:?}");

    let second = push_with(&project, &mut target);
    assert!(!second.has_changes(), "{second:?}");

    let second_machine = tempdir();
    let mut fresh = connect(&moto, second_machine.path(), &config());
    moto.clear_requests();
    let from_clone = push_with(&project, &mut fresh);
    assert!(!from_clone.has_changes(), "{from_clone:?}");
    assert_eq!(from_clone.layers[0].arn, arn);
    let requests = moto.requests();
    assert!(
        requests.iter().all(|r| r.method == "GET"),
        "nothing written: {requests:?}"
    );
}

#[test]
fn new_runtimes_publish_a_new_version_that_every_machine_then_finds() {
    let moto = Moto::start();
    let dir = tempdir();
    let mut project = project(dir.path(), moto.create_role("api-exec"));
    let mut target = connect(&moto, dir.path(), &config());
    assert_eq!(push_with(&project, &mut target).layers[0].version, 1);

    let layer = project.manifest.layers.get_mut("shared").unwrap();
    layer.runtimes = vec!["python3.12".to_owned(), "nodejs22.x".to_owned()];
    layer.architectures = vec!["x86_64".to_owned(), "arm64".to_owned()];
    let second = push_with(&project, &mut target);
    let published = &second.layers[0];
    assert_eq!(
        (published.action, published.version),
        (LayerOutcome::Published, 2)
    );
    assert_eq!(
        second.functions[0].layers,
        std::slice::from_ref(&published.arn)
    );

    // The lists come back from what this machine remembers, and from AWS on another machine.
    let again = push_with(&project, &mut target);
    assert!(!again.has_changes(), "{again:?}");
    let other_machine = tempdir();
    let mut fresh = connect(&moto, other_machine.path(), &config());
    let from_clone = push_with(&project, &mut fresh);
    assert!(!from_clone.has_changes(), "{from_clone:?}");
    assert_eq!(from_clone.layers[0].version, 2);
}

#[test]
fn a_version_another_push_published_after_the_plan_is_used_not_published_again() {
    let moto = Moto::start();
    let dir = tempdir();
    let project = project(dir.path(), moto.create_role("api-exec"));
    let mut target = connect(&moto, dir.path(), &config());
    let options = PlanOptions::new(None);
    let builds = (&project.layer_builds, &project.function_builds);
    let plan = push::plan(&project.manifest, &mut target, builds.0, builds.1, &options).unwrap();

    // Another machine pushes the same content while this plan waits.
    let other_machine = tempdir();
    let mut other = connect(&moto, other_machine.path(), &config());
    let theirs = push_with(&project, &mut other);
    assert_eq!(theirs.layers[0].action, LayerOutcome::Published);

    let ours = push::execute(&plan, &mut target, &NoProgress).unwrap();
    let layer = &ours.layers[0];
    assert_eq!((layer.action, layer.version), (LayerOutcome::Unchanged, 1));
    assert_eq!(ours.functions[0].layers, [theirs.layers[0].arn.clone()]);
    assert_eq!(target.layer_versions("shared").unwrap().len(), 1);
}

/// Selects what [`chain_probe`] does in a child process; unset, it does nothing.
const PROBE_MODE: &str = "LAMINA_AWS_CHAIN_PROBE";
const PROBE_DIR: &str = "LAMINA_AWS_CHAIN_PROBE_DIR";
const PROBE_BUCKET: &str = "LAMINA_AWS_CHAIN_PROBE_BUCKET";

/// Runs [`chain_probe`] in a child process of this test binary, with only the environment given
/// (plus an empty home and instance metadata pointed at a dead loopback port, so that no lookup
/// leaves the machine), and returns what the probe printed.
///
/// The standard configuration chain reads the process environment, which test threads share, so
/// it is exercised in a process of its own.
fn run_probe(env: &[(&str, String)]) -> String {
    let home = tempdir();
    let dead_port = crate::support::moto::free_port();
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["aws::chain_probe", "--exact", "--ignored", "--nocapture"])
        .env_clear()
        .env("HOME", home.path())
        .env("AWS_CONFIG_FILE", home.path().join("config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            home.path().join("credentials"),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            format!("http://127.0.0.1:{dead_port}"),
        )
        .env(PROBE_MODE, "publish")
        .env(PROBE_DIR, home.path())
        .envs(env.iter().map(|(key, value)| (key, value)))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().find_map(|line| line.strip_prefix("PROBE "));
    line.unwrap_or_else(|| panic!("the probe printed no result:\n{stdout}"))
        .to_owned()
}

#[test]
#[ignore = "run by the configuration chain tests in a child process with its own environment"]
fn chain_probe() {
    let (Ok(_), Ok(dir)) = (std::env::var(PROBE_MODE), std::env::var(PROBE_DIR)) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let config = AwsConfig {
        region: None,
        bucket: std::env::var(PROBE_BUCKET).ok(),
        ..config()
    };
    let zip = write_zip(&dir, "probe", &[("opt/data.bin", &noise(4096, 5))]);
    let published = AwsTarget::connect(&config, &dir)
        .map_err(|error| error.to_string())
        .and_then(|mut target| {
            let published = target.publish_layer_version(&publish_request("probe", &zip));
            published.map_err(|error| error.to_string())
        });
    match published {
        Ok(version) if version.code_sha256 == zip.code_sha256 => println!("PROBE published"),
        Ok(version) => println!("PROBE wrong CodeSha256 {}", version.code_sha256),
        Err(error) => println!("PROBE error: {error}"),
    }
}

fn chain_env(moto: &Moto) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", moto.endpoint()),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
    ]
}

#[test]
fn the_standard_chain_takes_endpoint_region_and_credentials_from_the_environment() {
    let moto = Moto::start();
    moto.sdk().create_bucket("artifacts");
    let mut env = chain_env(&moto);
    env.push((PROBE_BUCKET, "artifacts".to_owned()));
    env.push((DIRECT_UPLOAD_LIMIT_ENV, "1024".to_owned()));

    assert_eq!(run_probe(&env), "published");
    let requests = moto.requests();
    assert_eq!(
        count(&requests, "PUT", "/artifacts/lamina/layers/shop-probe/"),
        1,
        "{requests:?}"
    );
    assert_eq!(
        count(&requests, "POST", "/2018-10-31/layers/shop-probe/versions"),
        1
    );
}

#[test]
fn missing_credentials_say_what_to_set() {
    let moto = Moto::start();
    let env: Vec<_> = chain_env(&moto)
        .into_iter()
        .filter(|(key, _)| !key.contains("KEY"))
        .collect();

    let result = run_probe(&env);
    assert!(
        result.starts_with("error: no AWS credentials were found"),
        "{result}"
    );
    assert!(
        result.contains("AWS_PROFILE") && result.contains("AWS_ACCESS_KEY_ID"),
        "{result}"
    );
    assert_eq!(moto.requests().len(), 0, "nothing was sent");
}

#[test]
fn a_missing_region_says_what_to_set() {
    let moto = Moto::start();
    let env: Vec<_> = chain_env(&moto)
        .into_iter()
        .filter(|(key, _)| *key != "AWS_REGION")
        .collect();

    let result = run_probe(&env);
    assert!(result.contains("no AWS region is configured"), "{result}");
    assert!(result.contains("`region` in [target.aws]"), "{result}");
}

/// A target that signs with `keys` of a user of the server, once the server enforces IAM.
fn connect_as(moto: &Moto, dir: &Path, config: &AwsConfig, keys: StaticCredentials) -> AwsTarget {
    let options = ConnectOptions {
        credentials: Some(keys),
        direct_upload_limit: 1024,
        ..moto.options()
    };
    AwsTarget::connect_with(config, dir, options).unwrap()
}

#[test]
fn access_denied_by_the_server_names_the_lambda_action() {
    let moto = Moto::start();
    let keys = moto.create_user("ci", &["lambda:GetLayerVersion"]);
    moto.enforce_iam();
    let dir = tempdir();
    let zip = write_zip(dir.path(), "small", &[("opt/x", b"x")]);
    let mut target = connect_as(&moto, dir.path(), &config(), keys);

    let error = target
        .publish_layer_version(&publish_request("shared", &zip))
        .unwrap_err()
        .to_string();

    assert!(
        error.contains("lack the IAM action `lambda:PublishLayerVersion`"),
        "{error}"
    );
    assert!(
        error.contains("user/ci"),
        "the server's reason is kept: {error}"
    );
    assert_eq!(remembered(dir.path()), Vec::<String>::new());
}

#[test]
fn access_denied_on_head_object_names_s3_get_object() {
    let moto = Moto::start();
    moto.sdk().create_bucket("artifacts");
    let keys = moto.create_user("ci", &["s3:PutObject"]);
    moto.enforce_iam();
    let dir = tempdir();
    let zip = write_zip(dir.path(), "big", &[("opt/data.bin", &noise(4096, 6))]);
    let config = AwsConfig {
        bucket: Some("artifacts".to_owned()),
        ..config()
    };
    let mut target = connect_as(&moto, dir.path(), &config, keys);

    let error = target
        .publish_layer_version(&publish_request("big", &zip))
        .unwrap_err()
        .to_string();

    assert!(
        error.contains("lack the IAM action `s3:GetObject and s3:ListBucket (for HeadObject)`"),
        "{error}"
    );
}
