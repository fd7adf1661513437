//! The `lamina` binary against moto's server, as a user runs it: a project folder with
//! `[target.aws]` in lamina.toml, and the endpoint and dummy credentials in the environment of the
//! child process only (test threads share this process's environment).
//!
//! The project has two small layers, `assets` (opt/ only) and `shared` (a package under
//! node_modules, without a top-level package.json, so that no installer runs), and one function
//! `api` that uses both. Layers publish in name order, which the mid-push failure tests rely on.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tempfile::TempDir;

use super::{count, noise, remembered, OTHER_ACCOUNT};
use crate::support::moto::{Moto, Recorded, ACCOUNT, REGION};
use crate::support::{age_tree, tempdir, walk, write};

/// The binary, run in `dir` with a clean environment pointing the AWS SDK at `endpoint`.
///
/// HOME is an empty folder (so there is no `~/.aws`) and instance metadata is off, so nothing on
/// this machine or its network takes part in the configuration chain.
fn lamina_at(endpoint: &str, dir: &Path, home: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_lamina"));
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", REGION)
        .stdin(Stdio::null());
    command
}

/// A project folder and what runs the binary in it against one server.
struct Project {
    dir: TempDir,
    home: TempDir,
    endpoint: String,
}

impl Project {
    fn new(moto: &Moto) -> Project {
        Project::at_endpoint(moto.endpoint())
    }

    fn at_endpoint(endpoint: String) -> Project {
        Project {
            dir: tempdir(),
            home: tempdir(),
            endpoint,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = lamina_at(&self.endpoint, self.path(), self.home.path());
        command.args(args);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs a command that must succeed and returns its stdout as JSON.
    fn json(&self, args: &[&str]) -> Value {
        let output = self.run(&[args, &["--json"]].concat());
        assert!(
            output.status.success(),
            "{args:?} failed:\n{}",
            text(&output)
        );
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|error| panic!("not JSON ({error}):\n{}", text(&output)))
    }

    /// Runs a command that must fail and returns its stderr.
    fn failure(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            !output.status.success(),
            "{args:?} succeeded:\n{}",
            text(&output)
        );
        assert_eq!(output.status.code(), Some(1), "{}", text(&output));
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    /// Writes a file, its mtime half an hour back so that the next scan trusts what it hashes.
    fn write(&self, relative: &str, content: &[u8]) {
        let path = write(self.path(), relative, content);
        let past = SystemTime::now() - Duration::from_secs(1800);
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_times(std::fs::FileTimes::new().set_modified(past))
            .unwrap();
    }

    fn edit_manifest(&self, from: &str, to: &str) {
        let path = self.path().join("lamina.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "lamina.toml has no `{from}`:\n{text}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }

    fn lamina_dir(&self) -> std::path::PathBuf {
        self.path().join(".lamina")
    }
}

fn text(output: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// What varies between the test projects' manifests.
struct Setup<'a> {
    default_target: &'a str,
    bucket: Option<&'a str>,
    role: Option<&'a str>,
    shared_access: &'a str,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Setup {
            default_target: "aws",
            bucket: Some("artifacts"),
            role: None,
            shared_access: "[]",
        }
    }
}

fn manifest(setup: &Setup<'_>) -> String {
    let bucket = match setup.bucket {
        Some(bucket) => format!("bucket = \"{bucket}\"\n"),
        None => String::new(),
    };
    let role = match setup.role {
        Some(role) => format!("role = \"{role}\"\n"),
        None => String::new(),
    };
    format!(
        "[project]\nname = \"shop\"\n\n\
         [target]\ndefault = \"{}\"\n\n\
         [target.aws]\nregion = \"{REGION}\"\n{bucket}prefix = \"lamina/\"\n\
         layer_name_prefix = \"shop-\"\n\n\
         [layers.assets]\nruntimes = [\"nodejs22.x\"]\n\n\
         [layers.shared]\nruntimes = [\"nodejs22.x\"]\naccess = {}\n\n\
         [functions.api]\nruntime = \"nodejs22.x\"\nhandler = \"index.handler\"\n\
         layers = [\"shared@latest\", \"assets@latest\"]\n{role}",
        setup.default_target, setup.shared_access
    )
}

/// Writes the test project into `project`'s folder.
fn create(project: &Project, setup: &Setup<'_>) {
    let root = project.path();
    write(root, "lamina.toml", manifest(setup).as_bytes());
    write(
        root,
        "layers/assets/opt/config/settings.json",
        b"{\"currency\": \"EUR\"}\n",
    );
    write(
        root,
        "layers/shared/lib/nodejs/node_modules/left-pad/package.json",
        b"{\"name\": \"left-pad\", \"version\": \"1.3.0\"}\n",
    );
    write(
        root,
        "layers/shared/lib/nodejs/node_modules/left-pad/index.js",
        b"module.exports = (s, n) => String(s).padStart(n);\n",
    );
    write(
        root,
        "functions/api/src/index.js",
        b"exports.handler = async () => 1;\n",
    );
    age_tree(root);
}

/// A copy of the project without `.lamina/`, every file with another mtime: a fresh clone on
/// another machine.
fn clone(project: &Project) -> Project {
    let copy = Project::at_endpoint(project.endpoint.clone());
    for path in walk(project.path()) {
        let relative = path.strip_prefix(project.path()).unwrap();
        if relative.starts_with(".lamina") || !path.is_file() {
            continue;
        }
        write(
            copy.path(),
            relative.to_str().unwrap(),
            &std::fs::read(&path).unwrap(),
        );
    }
    let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 24 * 3600);
    for path in walk(copy.path()).iter().filter(|path| path.is_file()) {
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_times(std::fs::FileTimes::new().set_modified(two_days_ago))
            .unwrap();
    }
    copy
}

fn layer<'a>(report: &'a Value, name: &str) -> &'a Value {
    let layers = report["layers"].as_array().unwrap();
    layers
        .iter()
        .find(|layer| layer["layer"] == name)
        .unwrap_or_else(|| panic!("no layer `{name}` in {report}"))
}

fn function<'a>(report: &'a Value, name: &str) -> &'a Value {
    let functions = report["functions"].as_array().unwrap();
    functions
        .iter()
        .find(|function| function["function"] == name)
        .unwrap_or_else(|| panic!("no function `{name}` in {report}"))
}

fn strings(value: &Value) -> Vec<String> {
    let list = value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"));
    list.iter()
        .map(|item| item.as_str().unwrap().to_owned())
        .collect()
}

/// Requests that publish a version of `layer` (its AWS name).
fn publishes(requests: &[Recorded], layer: &str) -> usize {
    let path = format!("/2018-10-31/layers/{layer}/versions");
    let publishes = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path == path);
    publishes.count()
}

/// ListLayerVersions requests for `layer`, with or without a query.
fn listings(requests: &[Recorded], layer: &str) -> usize {
    let path = format!("/2018-10-31/layers/{layer}/versions");
    let is_listing = |r: &&Recorded| {
        r.method == "GET" && (r.path == path || r.path.starts_with(&format!("{path}?")))
    };
    requests.iter().filter(is_listing).count()
}

/// The writes among `requests`: anything but GET and HEAD.
fn writes(requests: &[Recorded]) -> Vec<&Recorded> {
    let writes = requests
        .iter()
        .filter(|r| r.method != "GET" && r.method != "HEAD");
    writes.collect()
}

#[test]
fn push_publishes_then_nothing_and_a_fresh_clone_publishes_nothing() {
    let moto = Moto::start();
    let sdk = moto.sdk();
    sdk.create_bucket("artifacts");
    let role = moto.create_role("api-exec");
    let project = Project::new(&moto);
    create(
        &project,
        &Setup {
            role: Some(&role),
            ..Setup::default()
        },
    );

    let first = project.json(&["push", "--yes"]);
    assert_eq!(first["changed"], true);
    for name in ["assets", "shared"] {
        let layer = layer(&first, name);
        assert_eq!(layer["action"], "published", "{layer}");
        let arn = layer["arn"].as_str().unwrap();
        let expected = format!("arn:aws:lambda:{REGION}:{ACCOUNT}:layer:shop-{name}:");
        assert!(arn.starts_with(&expected), "{arn}");
    }
    let api = function(&first, "api");
    assert_eq!(api["action"], "deployed");
    let arns = vec![
        layer(&first, "shared")["arn"].as_str().unwrap().to_owned(),
        layer(&first, "assets")["arn"].as_str().unwrap().to_owned(),
    ];
    assert_eq!(strings(&api["layers"]), arns);
    assert_eq!(
        sdk.function_layers("api"),
        arns,
        "deployed with its layers in order"
    );

    moto.clear_requests();
    let second = project.json(&["push", "--yes"]);
    assert_eq!(second["changed"], false, "{second}");
    for name in ["assets", "shared"] {
        assert_eq!(layer(&second, name)["action"], "unchanged");
    }
    assert_eq!(function(&second, "api")["action"], "unchanged");
    let requests = moto.requests();
    assert_eq!(
        writes(&requests),
        Vec::<&Recorded>::new(),
        "nothing written"
    );
    for name in ["shop-assets", "shop-shared"] {
        assert_eq!(listings(&requests, name), 1, "{requests:?}");
    }
    assert_eq!(
        count(&requests, "GET", "/2018-10-31/layers/shop-shared/versions/"),
        0,
        "versions seen before are not read again: {requests:?}"
    );
    let output = project.run(&["push", "--yes"]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("nothing changed"),
        "{}",
        text(&output)
    );

    let listed = project.json(&["layer", "versions", "assets"]);
    let versions = listed["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1, "the default target is AWS: {listed}");
    assert_eq!(versions[0]["arn"], layer(&first, "assets")["arn"]);

    let fresh = clone(&project);
    moto.clear_requests();
    let from_clone = fresh.json(&["push", "--yes"]);
    assert_eq!(from_clone["changed"], false, "{from_clone}");
    assert_eq!(strings(&function(&from_clone, "api")["layers"]), arns);
    assert_eq!(
        writes(&moto.requests()),
        Vec::<&Recorded>::new(),
        "nothing written"
    );
    let mut seen = remembered(&fresh.lamina_dir());
    seen.sort();
    let mut published = arns.clone();
    published.sort();
    assert_eq!(seen, published, "the clone remembers what it found");
}

#[test]
fn a_zip_over_the_direct_upload_limit_goes_through_s3_once() {
    let moto = Moto::start();
    let sdk = moto.sdk();
    sdk.create_bucket("artifacts");
    let role = moto.create_role("api-exec");
    let project = Project::new(&moto);
    create(
        &project,
        &Setup {
            role: Some(&role),
            ..Setup::default()
        },
    );
    project.write("layers/assets/opt/data.bin", &noise(8192, 11));
    let push = |project: &Project| {
        let mut command = project.command(&["push", "--yes", "--json"]);
        let output = command
            .env(super::DIRECT_UPLOAD_LIMIT_ENV, "4096")
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output));
        serde_json::from_slice::<Value>(&output.stdout).unwrap()
    };

    let first = push(&project);
    let second = push(&project);
    push(&clone(&project));

    assert_eq!(layer(&first, "assets")["action"], "published");
    assert_eq!(layer(&second, "assets")["action"], "unchanged");
    let requests = moto.requests();
    let uploads: Vec<&Recorded> = requests
        .iter()
        .filter(|r| {
            r.method == "PUT" && r.path.starts_with("/artifacts/lamina/layers/shop-assets/")
        })
        .collect();
    assert_eq!(uploads.len(), 1, "uploaded once: {requests:?}");
    let path = uploads[0].path.split('?').next().unwrap();
    let key = path.trim_start_matches("/artifacts/");
    let hex = base64_to_hex(layer(&first, "assets")["code_sha256"].as_str().unwrap());
    assert_eq!(
        key,
        format!("lamina/layers/shop-assets/{hex}.zip"),
        "keyed by content"
    );
    assert_eq!(publishes(&requests, "shop-assets"), 1);
    let other_puts = requests
        .iter()
        .filter(|r| r.method == "PUT" && r.path.starts_with("/artifacts/lamina/"))
        .count();
    assert_eq!(
        other_puts, 1,
        "the small zips went in the requests: {requests:?}"
    );
}

fn base64_to_hex(code_sha256: &str) -> String {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(code_sha256)
        .unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn layer_update_with_target_aws_removes_public_on_aws() {
    let moto = Moto::start();
    let sdk = moto.sdk();
    sdk.create_bucket("artifacts");
    let role = moto.create_role("api-exec");
    let project = Project::new(&moto);
    let setup = Setup {
        default_target: "local",
        role: Some(&role),
        shared_access: "[\"public\"]",
        ..Setup::default()
    };
    create(&project, &setup);
    let pushed = project.json(&["push", "--yes", "--target", "aws"]);
    let version = layer(&pushed, "shared")["version"].as_u64().unwrap();
    assert_eq!(
        sdk.policy_principals("shop-shared", version),
        vec![("lamina-public".to_owned(), "*".to_owned())]
    );

    let account = format!("account:{OTHER_ACCOUNT}");
    let update = [
        "layer",
        "update",
        "shared",
        "--access",
        &account,
        "--apply-to",
        "latest",
    ];
    let updated = project.json(&[&update[..], &["--target", "aws"]].concat());

    assert_eq!(updated["access"], serde_json::json!([account]));
    let change = &updated["applied"][0];
    assert_eq!(change["version"], version);
    assert_eq!(strings(&change["change"]["removed"]), vec!["lamina-public"]);
    let principals = sdk.policy_principals("shop-shared", version);
    assert_eq!(
        principals.len(),
        1,
        "public is revoked on AWS: {principals:?}"
    );
    assert_eq!(principals[0].0, format!("lamina-account-{OTHER_ACCOUNT}"));
    assert!(principals[0].1.contains(OTHER_ACCOUNT), "{principals:?}");
    let manifest = std::fs::read_to_string(project.path().join("lamina.toml")).unwrap();
    assert!(
        manifest.contains(&format!("access = [\"{account}\"]")),
        "{manifest}"
    );

    let listed = project.json(&["layer", "versions", "shared", "--target", "aws"]);
    assert!(listed["target"]
        .as_str()
        .unwrap()
        .starts_with("AWS Lambda in us-east-1"));
    let versions = listed["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1, "{listed}");
    assert_eq!(versions[0]["access"]["public"], false, "{listed}");
    let local = project.json(&["layer", "versions", "shared"]);
    assert_eq!(
        local["versions"],
        serde_json::json!([]),
        "the default target is local"
    );
}

#[test]
fn function_code_and_layer_list_are_updated_through_the_binary() {
    let moto = Moto::start();
    let sdk = moto.sdk();
    sdk.create_bucket("artifacts");
    let role = moto.create_role("api-exec");
    let project = Project::new(&moto);
    create(
        &project,
        &Setup {
            role: Some(&role),
            ..Setup::default()
        },
    );
    let first = project.json(&["push", "--yes"]);
    let code_before = sdk.function_code_sha256("api");
    let shared = layer(&first, "shared")["arn"].as_str().unwrap().to_owned();
    let assets = layer(&first, "assets")["arn"].as_str().unwrap().to_owned();

    project.write(
        "functions/api/src/index.js",
        b"exports.handler = async () => 2;\n",
    );
    moto.clear_requests();
    let code_update = project.json(&["push", "--yes"]);
    assert_eq!(function(&code_update, "api")["action"], "deployed");
    assert_ne!(
        sdk.function_code_sha256("api"),
        code_before,
        "the new code is deployed"
    );
    assert_eq!(publishes(&moto.requests(), "shop-shared"), 0);
    assert_eq!(
        sdk.function_layers("api"),
        vec![shared.clone(), assets.clone()]
    );

    project.edit_manifest(
        "layers = [\"shared@latest\", \"assets@latest\"]",
        "layers = [\"assets@latest\", \"shared@latest\"]",
    );
    let code = sdk.function_code_sha256("api");
    let reordered = project.json(&["push", "--yes"]);
    assert_eq!(function(&reordered, "api")["action"], "deployed");
    assert_eq!(
        sdk.function_layers("api"),
        vec![assets, shared],
        "the order is applied"
    );
    assert_eq!(
        sdk.function_code_sha256("api"),
        code,
        "the code is left alone"
    );
    assert_eq!(reordered["layers"][0]["action"], "unchanged");
}

#[test]
fn layer_remove_with_target_aws_deletes_and_refuses_a_pinned_version() {
    let moto = Moto::start();
    let sdk = moto.sdk();
    sdk.create_bucket("artifacts");
    let role = moto.create_role("api-exec");
    let project = Project::new(&moto);
    create(
        &project,
        &Setup {
            default_target: "local",
            role: Some(&role),
            ..Setup::default()
        },
    );
    project.json(&["push", "--yes", "--target", "aws"]);
    project.write(
        "layers/shared/lib/nodejs/node_modules/left-pad/index.js",
        b"// two\n",
    );
    project.json(&["push", "--yes", "--target", "aws"]);
    assert_eq!(sdk.layer_version_numbers("shop-shared"), vec![1, 2]);
    project.edit_manifest("\"shared@latest\"", "\"shared@1\"");
    project.json(&["push", "--yes", "--target", "aws"]);

    let refused = project.failure(&[
        "layer",
        "remove",
        "shared",
        "--version",
        "1",
        "--yes",
        "--target",
        "aws",
    ]);
    assert!(
        refused.contains("version 1 is pinned by function (`api`)"),
        "{refused}"
    );
    assert_eq!(
        sdk.layer_version_numbers("shop-shared"),
        vec![1, 2],
        "nothing deleted"
    );

    let removed = project.json(&[
        "layer",
        "remove",
        "shared",
        "--version",
        "2",
        "--yes",
        "--target",
        "aws",
    ]);
    assert_eq!(removed["versions"], serde_json::json!([2]));
    assert_eq!(sdk.layer_version_numbers("shop-shared"), vec![1]);
    let arns = remembered(&project.lamina_dir());
    assert!(
        !arns.iter().any(|arn| arn.ends_with(":shop-shared:2")),
        "forgotten: {arns:?}"
    );

    let listed = project.json(&["layer", "versions", "shared", "--target", "aws"]);
    let versions = listed["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1, "{listed}");
    assert_eq!(versions[0]["version"], 1);
    let usage = &versions[0]["used_by"][0];
    assert_eq!(
        (&usage["function"], &usage["pinned"], &usage["deployed"]),
        (&Value::from("api"), &Value::from(true), &Value::from(true))
    );

    project.edit_manifest("\"shared@1\"", "\"shared@latest\"");
    let all = [
        "layer", "remove", "shared", "--all", "--yes", "--target", "aws",
    ];
    assert_eq!(project.json(&all)["versions"], serde_json::json!([1]));
    assert_eq!(sdk.layer_version_numbers("shop-shared"), Vec::<u64>::new());
    let republished = project.json(&["push", "--yes", "--target", "aws"]);
    assert_eq!(
        layer(&republished, "shared")["version"],
        3,
        "numbers are not reused"
    );
}

#[test]
fn a_server_that_is_down_fails_with_the_endpoint_named() {
    let endpoint = format!("http://127.0.0.1:{}", crate::support::moto::free_port());
    let project = Project::at_endpoint(endpoint.clone());
    create(
        &project,
        &Setup {
            role: Some("arn:aws:iam::123456789012:role/x"),
            ..Setup::default()
        },
    );

    for args in [&["push", "--yes"][..], &["layer", "versions", "shared"]] {
        let error = project.failure(args);
        assert!(
            error.contains(&format!("cannot reach the AWS endpoint `{endpoint}`")),
            "{args:?}: {error}"
        );
        assert!(error.contains("lambda:ListLayerVersions"), "{error}");
    }
}

#[test]
fn missing_credentials_and_region_fail_saying_what_to_set() {
    // No server: the configuration is refused before any request.
    let endpoint = format!("http://127.0.0.1:{}", crate::support::moto::free_port());
    let project = Project::at_endpoint(endpoint);
    create(&project, &Setup::default());
    let run = |project: &Project, without: &[&str]| {
        let mut command = project.command(&["layer", "versions", "shared"]);
        for variable in without {
            command.env_remove(variable);
        }
        let output = command.output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{}", text(&output));
        String::from_utf8_lossy(&output.stderr).into_owned()
    };

    let no_keys = run(&project, &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]);
    assert!(
        no_keys.contains("no AWS credentials were found"),
        "{no_keys}"
    );
    assert!(no_keys.contains("set AWS_PROFILE"), "{no_keys}");

    project.edit_manifest(&format!("region = \"{REGION}\"\n"), "");
    let no_region = run(&project, &["AWS_REGION"]);
    assert!(
        no_region.contains("no AWS region is configured"),
        "{no_region}"
    );
    assert!(
        no_region.contains("`region` in [target.aws]"),
        "{no_region}"
    );
}

#[test]
fn a_missing_bucket_fails_naming_the_setting_or_the_bucket() {
    let moto = Moto::start();
    let role = moto.create_role("api-exec");
    let project = Project::new(&moto);
    create(
        &project,
        &Setup {
            bucket: None,
            role: Some(&role),
            ..Setup::default()
        },
    );
    project.write("layers/assets/opt/data.bin", &noise(8192, 12));
    let push = |project: &Project| {
        let mut command = project.command(&["push", "--yes"]);
        let output = command
            .env(super::DIRECT_UPLOAD_LIMIT_ENV, "4096")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{}", text(&output));
        String::from_utf8_lossy(&output.stderr).into_owned()
    };

    let unset = push(&project);
    assert!(unset.contains("set `bucket` in [target.aws]"), "{unset}");
    project.edit_manifest(
        "prefix = \"lamina/\"",
        "bucket = \"no-such-bucket\"\nprefix = \"lamina/\"",
    );
    let missing = push(&project);
    assert!(
        missing.contains("the S3 bucket `no-such-bucket` does not exist"),
        "{missing}"
    );

    assert_eq!(
        publishes(&moto.requests(), "shop-assets"),
        0,
        "nothing published"
    );
    assert_eq!(remembered(&project.lamina_dir()), Vec::<String>::new());
}

#[test]
fn a_push_that_fails_midway_records_only_what_happened_and_finishes_next_time() {
    let moto = Moto::start();
    let sdk = moto.sdk();
    let role = moto.create_role("api-exec");
    let project = Project::new(&moto);
    create(
        &project,
        &Setup {
            role: Some(&role),
            ..Setup::default()
        },
    );
    // `shared` publishes after `assets`, and goes through a bucket that does not exist yet.
    project.write("layers/shared/opt/data.bin", &noise(8192, 13));
    let push = |project: &Project| {
        let mut command = project.command(&["push", "--yes"]);
        command
            .env(super::DIRECT_UPLOAD_LIMIT_ENV, "4096")
            .output()
            .unwrap()
    };

    let failed = push(&project);
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("the push stopped after publishing 1 layer version"),
        "{stderr}"
    );
    assert!(
        stderr.contains("bucket `artifacts` does not exist"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&failed.stdout);
    assert!(
        stdout.contains("layer `assets`: published version 1"),
        "{stdout}"
    );
    assert_eq!(sdk.layer_version_numbers("shop-assets"), vec![1]);
    assert_eq!(sdk.layer_version_numbers("shop-shared"), Vec::<u64>::new());
    let assets_arn = format!("arn:aws:lambda:{REGION}:{ACCOUNT}:layer:shop-assets:1");
    assert_eq!(remembered(&project.lamina_dir()), vec![assets_arn.clone()]);

    sdk.create_bucket("artifacts");
    moto.clear_requests();
    let finished = push(&project);
    assert!(finished.status.success(), "{}", text(&finished));
    let requests = moto.requests();
    assert_eq!(
        publishes(&requests, "shop-assets"),
        0,
        "not published twice: {requests:?}"
    );
    assert_eq!(publishes(&requests, "shop-shared"), 1);
    assert_eq!(sdk.layer_version_numbers("shop-assets"), vec![1]);
    assert_eq!(sdk.function_layers("api")[1], assets_arn);
}

#[test]
fn a_function_without_a_role_stops_the_push_after_the_layers() {
    let moto = Moto::start();
    let sdk = moto.sdk();
    sdk.create_bucket("artifacts");
    let project = Project::new(&moto);
    create(&project, &Setup::default());

    let error = project.failure(&["push", "--yes"]);
    assert!(error.contains("set `role` in [functions.api]"), "{error}");
    assert!(
        error.contains("after publishing 2 layer version(s)"),
        "{error}"
    );
    let mut seen = remembered(&project.lamina_dir());
    seen.sort();
    assert_eq!(
        seen,
        vec![
            format!("arn:aws:lambda:{REGION}:{ACCOUNT}:layer:shop-assets:1"),
            format!("arn:aws:lambda:{REGION}:{ACCOUNT}:layer:shop-shared:1"),
        ]
    );

    let role = moto.create_role("api-exec");
    project.edit_manifest("layers = [", &format!("role = \"{role}\"\nlayers = ["));
    moto.clear_requests();
    let finished = project.json(&["push", "--yes"]);
    assert_eq!(function(&finished, "api")["action"], "deployed");
    for name in ["assets", "shared"] {
        assert_eq!(layer(&finished, name)["action"], "unchanged", "{finished}");
        assert_eq!(publishes(&moto.requests(), &format!("shop-{name}")), 0);
    }
}

#[test]
fn access_denied_by_s3_names_the_missing_iam_action() {
    // moto checks signatures of Lambda's GET and DELETE requests against the wrong payload and
    // refuses them all once IAM is enforced, so Lambda is served by a second server without
    // enforcement (the standard chain's service-specific AWS_ENDPOINT_URL_LAMBDA), and S3 by
    // one that enforces IAM as AWS does.
    let s3 = Moto::start();
    let lambda = Moto::start();
    s3.sdk().create_bucket("artifacts");
    let role = lambda.create_role("api-exec");
    let keys = s3.create_user("ci", &["s3:GetObject", "s3:ListBucket"]);
    s3.enforce_iam();
    let project = Project::new(&s3);
    create(
        &project,
        &Setup {
            role: Some(&role),
            ..Setup::default()
        },
    );
    project.write("layers/assets/opt/data.bin", &noise(8192, 14));

    let output = project
        .command(&["push", "--yes"])
        .env("AWS_ENDPOINT_URL_LAMBDA", lambda.endpoint())
        .env("AWS_ACCESS_KEY_ID", &keys.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &keys.secret_access_key)
        .env(super::DIRECT_UPLOAD_LIMIT_ENV, "4096")
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("lack the IAM action `s3:PutObject`"),
        "{stderr}"
    );
    let lambda_requests = lambda.requests();
    // Listed by the plan, and again just before the publish that S3 then refused.
    assert!(
        listings(&lambda_requests, "shop-assets") == 2,
        "{lambda_requests:?}"
    );
    assert_eq!(
        publishes(&lambda_requests, "shop-assets"),
        0,
        "nothing published"
    );
    assert_eq!(remembered(&project.lamina_dir()), Vec::<String>::new());
}
