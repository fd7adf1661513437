//! moto's server, a real implementation of the Lambda, S3 and IAM APIs, for the AWS tests.
//!
//! Each test starts its own `moto_server` on a free loopback port, so tests running in parallel
//! threads share no state, and stops it (SIGTERM) when the [`Moto`] is dropped. The server records
//! every request it answers into a file of its own (moto's recorder), which lets tests count the
//! calls lamina made without any mock in between.
//!
//! The server comes from a virtualenv that `.ci/moto.sh` creates on first use; the script runs
//! under a file lock, so parallel tests and parallel test binaries install it once. The endpoint
//! and dummy credentials are handed to each target explicitly, never through the process
//! environment, which all test threads share.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use lamina::deploy::aws::{ConnectOptions, StaticCredentials};
use tempfile::TempDir;

/// The account moto answers as.
pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";

/// How long a fresh server may take to answer before the test gives up.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `moto_server`, stopped on drop.
pub struct Moto {
    child: Child,
    port: u16,
    /// Holds the request recording and the server's log.
    dir: TempDir,
}

/// One request as the server recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    /// The path and query, percent-encoded as sent.
    pub path: String,
}

impl Moto {
    pub fn start() -> Moto {
        let server = moto_server();
        let dir = tempfile::Builder::new()
            .prefix("lamina-moto-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_ENABLE_RECORDING", "true")
            .env("MOTO_RECORDER_FILEPATH", dir.path().join("requests.jsonl"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{}`: {e}", server.display()));
        let mut moto = Moto { child, port, dir };
        moto.wait_until_answering();
        moto
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Connection settings that point a target at this server with dummy credentials.
    pub fn options(&self) -> ConnectOptions {
        ConnectOptions {
            endpoint_url: Some(self.endpoint()),
            credentials: Some(StaticCredentials {
                access_key_id: "test".to_owned(),
                secret_access_key: "test".to_owned(),
            }),
            ..ConnectOptions::default()
        }
    }

    /// Creates an IAM role that Lambda functions can be created with, and returns its ARN.
    pub fn create_role(&self, name: &str) -> String {
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        let body = format!(
            "Action=CreateRole&Version=2010-05-08&RoleName={}&AssumeRolePolicyDocument={}",
            form_encode(name),
            form_encode(trust)
        );
        let response = self.post_form("iam", &body);
        let arn = between(&response, "<Arn>", "</Arn>")
            .unwrap_or_else(|| panic!("CreateRole gave no ARN:\n{response}"));
        arn.to_owned()
    }

    /// Creates an IAM user allowed exactly `actions` (on every resource), with an access key,
    /// and returns the key. The key only matters once [`Moto::enforce_iam`] was called.
    pub fn create_user(&self, name: &str, actions: &[&str]) -> StaticCredentials {
        let user = form_encode(name);
        self.post_form(
            "iam",
            &format!("Action=CreateUser&Version=2010-05-08&UserName={user}"),
        );
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
        });
        self.post_form(
            "iam",
            &format!(
                "Action=PutUserPolicy&Version=2010-05-08&UserName={user}&PolicyName=lamina&\
                 PolicyDocument={}",
                form_encode(&policy.to_string())
            ),
        );
        let response = self.post_form(
            "iam",
            &format!("Action=CreateAccessKey&Version=2010-05-08&UserName={user}"),
        );
        let field = |tag: &str| {
            let value = between(&response, &format!("<{tag}>"), &format!("</{tag}>"));
            value
                .unwrap_or_else(|| panic!("CreateAccessKey gave no {tag}:\n{response}"))
                .to_owned()
        };
        StaticCredentials {
            access_key_id: field("AccessKeyId"),
            secret_access_key: field("SecretAccessKey"),
        }
    }

    /// From now on, the server checks every request's signature against the access keys it
    /// created and the caller's IAM policies, as AWS does. The `test` keys stop working, and so
    /// do this helper's own IAM calls.
    pub fn enforce_iam(&self) {
        let request = format!(
            "POST /moto-api/reset-auth HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\
             Content-Length: 1\r\n\r\n0",
            self.port
        );
        let response = http(self.port, &request).expect("moto answers reset-auth");
        assert!(response.contains(" 200 "), "{response}");
    }

    /// Every AWS API request answered since the server started or since
    /// [`Moto::clear_requests`] (the helper's own calls to `/moto-api/` are left out).
    pub fn requests(&self) -> Vec<Recorded> {
        let text = std::fs::read_to_string(self.recording()).unwrap_or_default();
        let requests = text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(recorded);
        requests
            .filter(|request| !request.path.starts_with("/moto-api/"))
            .collect()
    }

    pub fn clear_requests(&self) {
        std::fs::write(self.recording(), b"").unwrap();
    }

    fn recording(&self) -> PathBuf {
        self.dir.path().join("requests.jsonl")
    }

    fn wait_until_answering(&mut self) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("moto_server exited with {status}:\n{}", self.log());
            }
            if http(self.port, "GET /moto-api/data.json HTTP/1.0\r\n\r\n").is_ok() {
                return;
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "moto_server did not answer within {START_TIMEOUT:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// POSTs a query-protocol form to the server, routed to `service` by the credential scope.
    fn post_form(&self, service: &str, body: &str) -> String {
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential=test/20240101/{REGION}/{service}/aws4_request, \
             SignedHeaders=host, Signature=0"
        );
        let request = format!(
            "POST / HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nAuthorization: {authorization}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            self.port,
            body.len()
        );
        let response = http(self.port, &request).expect("moto answers a form POST");
        assert!(
            response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"),
            "{response}"
        );
        response
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // SIGTERM lets the server shut down cleanly; a server that ignores it is killed.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on at the moment of the call.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `moto_server` program, installing it on first use.
fn moto_server() -> PathBuf {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(install_venv).join("bin/moto_server")
}

/// Runs `.ci/moto.sh` while holding an exclusive lock, so that concurrent test binaries never
/// build the same virtualenv at once; the script prints the virtualenv's path.
fn install_venv() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lock_path = root.join("target").join("moto-venv.lock");
    std::fs::create_dir_all(lock_path.parent().unwrap()).unwrap();
    let lock = std::fs::File::create(&lock_path).unwrap();
    // SAFETY: flock on a descriptor we own; the lock is released when `lock` is closed.
    let locked = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(locked, 0, "cannot lock `{}`", lock_path.display());

    let output = Command::new("bash")
        .arg(root.join(".ci/moto.sh"))
        .stdin(Stdio::null())
        .output()
        .expect("bash runs .ci/moto.sh");
    assert!(
        output.status.success(),
        ".ci/moto.sh failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    PathBuf::from(
        stdout
            .lines()
            .last()
            .expect(".ci/moto.sh prints the virtualenv")
            .trim(),
    )
}

/// Sends one raw request and reads the whole response (the server closes after HTTP/1.0).
fn http(port: u16, request: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    if response.is_empty() {
        return Err(std::io::Error::other("empty response"));
    }
    Ok(response)
}

fn recorded(line: &str) -> Recorded {
    let entry: serde_json::Value = serde_json::from_str(line).unwrap();
    let url = entry["url"].as_str().unwrap_or_default();
    let path = url.find("://").map_or(url, |scheme| {
        let rest = &url[scheme + 3..];
        rest.find('/').map_or("/", |slash| &rest[slash..])
    });
    Recorded {
        method: entry["method"].as_str().unwrap_or_default().to_owned(),
        path: path.to_owned(),
    }
}

fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let to = text[from..].find(end)? + from;
    Some(&text[from..to])
}

/// Plain SDK clients pointed at a server, for reading back what a target did independently of
/// the target's own code.
pub struct Sdk {
    runtime: tokio::runtime::Runtime,
    pub lambda: aws_sdk_lambda::Client,
    pub s3: aws_sdk_s3::Client,
}

impl Moto {
    pub fn sdk(&self) -> Sdk {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let credentials = aws_sdk_lambda::config::Credentials::new("test", "test", None, None, "t");
        let config = runtime.block_on(
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new(REGION))
                .endpoint_url(self.endpoint())
                .credentials_provider(credentials)
                .http_client(
                    aws_smithy_http_client::Builder::new()
                        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                        ))
                        .build_https(),
                )
                .load(),
        );
        let s3_config = aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build();
        Sdk {
            lambda: aws_sdk_lambda::Client::new(&config),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            runtime,
        }
    }
}

impl Sdk {
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    pub fn create_bucket(&self, bucket: &str) {
        self.block_on(self.s3.create_bucket().bucket(bucket).send())
            .unwrap();
    }

    /// The principal of every statement in a layer version's policy, keyed by statement id.
    /// moto shapes the document differently from AWS, so only the principals are compared: a
    /// string, or the strings inside an object such as `{"AWS": "..."}`.
    pub fn policy_principals(&self, layer: &str, version: u64) -> Vec<(String, String)> {
        let read = self.block_on(
            self.lambda
                .get_layer_version_policy()
                .layer_name(layer)
                .version_number(version as i64)
                .send(),
        );
        let policy = match read {
            Ok(output) => output.policy.unwrap_or_default(),
            Err(error) if format!("{error:?}").contains("ResourceNotFound") => return Vec::new(),
            Err(error) => panic!("GetLayerVersionPolicy: {error:?}"),
        };
        let document: serde_json::Value = serde_json::from_str(&policy).unwrap();
        let statements = match &document["Statement"] {
            serde_json::Value::Array(list) => list.clone(),
            other => vec![other.clone()],
        };
        let mut principals: Vec<(String, String)> = statements
            .iter()
            .map(|s| {
                (
                    s["Sid"].as_str().unwrap_or_default().to_owned(),
                    principal_text(&s["Principal"]),
                )
            })
            .collect();
        principals.sort();
        principals
    }

    /// The layer ARNs of a function, in order, as GetFunctionConfiguration reports them.
    pub fn function_layers(&self, function: &str) -> Vec<String> {
        let output = self
            .block_on(
                self.lambda
                    .get_function_configuration()
                    .function_name(function)
                    .send(),
            )
            .unwrap();
        output
            .layers()
            .iter()
            .filter_map(|layer| layer.arn().map(str::to_owned))
            .collect()
    }

    /// The numbers of a layer's versions, as ListLayerVersions reports them, in order.
    pub fn layer_version_numbers(&self, layer: &str) -> Vec<u64> {
        let listing = self.lambda.list_layer_versions().layer_name(layer).send();
        let output = match self.block_on(listing) {
            Ok(output) => output,
            Err(error) if format!("{error:?}").contains("ResourceNotFound") => return Vec::new(),
            Err(error) => panic!("ListLayerVersions: {error:?}"),
        };
        let mut numbers: Vec<u64> = output
            .layer_versions()
            .iter()
            .map(|version| version.version as u64)
            .collect();
        numbers.sort();
        numbers
    }

    pub fn function_code_sha256(&self, function: &str) -> String {
        let output = self
            .block_on(
                self.lambda
                    .get_function_configuration()
                    .function_name(function)
                    .send(),
            )
            .unwrap();
        output.code_sha256().unwrap_or_default().to_owned()
    }
}

fn principal_text(principal: &serde_json::Value) -> String {
    match principal {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Object(map) => map
            .values()
            .map(principal_text)
            .collect::<Vec<_>>()
            .join(","),
        serde_json::Value::Array(list) => list
            .iter()
            .map(principal_text)
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}
