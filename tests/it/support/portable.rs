//! Machines for the tests of the portable and shared cache: a project folder with one node
//! layer, driven through the `lamina` binary with its own environment, and copies of it at other
//! paths with other mtimes, as a second checkout of the same commit would be.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tempfile::TempDir;

use super::{tempdir, walk, write};

/// The layer's files outside any package (hashed even in manifests mode).
pub const FILES_OUTSIDE_PACKAGES: u64 = 3;
/// The layer's node packages; manifests mode reads only their package.json.
pub const PACKAGES: u64 = 3;
/// Every file of the layer.
pub const FILES: u64 = 11;

/// One checkout of the test project, with the environment its lamina runs get.
pub struct Machine {
    dir: TempDir,
    env: Vec<(String, String)>,
}

impl Machine {
    /// A new project: `lamina.toml` and layer `shared`, its files an hour old.
    pub fn first() -> Machine {
        let dir = tempdir();
        let root = dir.path();
        write(
            root,
            "lamina.toml",
            b"[project]\nname = \"shop\"\n\n[layers.shared]\nruntimes = [\"nodejs22.x\"]\n",
        );
        let layer = root.join("layers/shared");
        let files: [(&str, &str); 11] = [
            // No lib/nodejs/package.json: a layer that declares dependencies gets them
            // installed by push, which would replace this hand-made node_modules.
            (
                "lib/nodejs/NOTES.md",
                "Hand-made packages for the cache tests.\n",
            ),
            (
                "lib/nodejs/node_modules/left-pad/package.json",
                r#"{"name":"left-pad","version":"1.3.0"}"#,
            ),
            (
                "lib/nodejs/node_modules/left-pad/index.js",
                "module.exports = (s, n) => s.padStart(n);\n",
            ),
            ("lib/nodejs/node_modules/left-pad/README.md", "# left-pad\n"),
            (
                "lib/nodejs/node_modules/@shop/util/package.json",
                r#"{"name":"@shop/util","version":"2.0.0"}"#,
            ),
            (
                "lib/nodejs/node_modules/@shop/util/lib/index.js",
                "exports.strings = require('./strings');\n",
            ),
            (
                "lib/nodejs/node_modules/@shop/util/lib/strings.js",
                &"exports.x = 'pad';\n".repeat(400),
            ),
            (
                "lib/nodejs/node_modules/@shop/util/node_modules/left-pad/package.json",
                r#"{"name":"left-pad","version":"2.0.0"}"#,
            ),
            (
                "lib/nodejs/node_modules/@shop/util/node_modules/left-pad/index.js",
                "module.exports = 2;\n",
            ),
            ("opt/config/settings.json", r#"{"currency":"EUR"}"#),
            ("opt/bin/tool", "#!/bin/sh\necho tool\n"),
        ];
        for (path, content) in files {
            write(&layer, path, content.as_bytes());
        }
        set_mode(&layer.join("opt/bin/tool"), 0o755);
        std::fs::create_dir_all(layer.join("lib/nodejs/node_modules/.bin")).unwrap();
        std::os::unix::fs::symlink(
            "../left-pad/index.js",
            layer.join("lib/nodejs/node_modules/.bin/left-pad"),
        )
        .unwrap();
        set_mtimes(root, Duration::from_secs(3600));
        Machine {
            dir,
            env: Vec::new(),
        }
    }

    /// Another checkout of the same files at another path: copied without `.lamina/`, with
    /// mtimes two hours old (so unlike the first machine's), and the same environment.
    pub fn copy_of(other: &Machine) -> Machine {
        let dir = tempdir();
        copy_tree(other.root(), dir.path());
        let _ = std::fs::remove_dir_all(dir.path().join(".lamina"));
        set_mtimes(dir.path(), Duration::from_secs(7200));
        Machine {
            dir,
            env: other.env.clone(),
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn layer(&self) -> PathBuf {
        self.root().join("layers/shared")
    }

    /// Sets an environment variable for this machine's lamina runs.
    pub fn set_env(&mut self, key: &str, value: impl Into<String>) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.into()));
    }

    /// Runs lamina with `args` and returns what it did.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut command = Command::new(assert_cmd::cargo::cargo_bin("lamina"));
        command
            .args(args)
            .current_dir(self.root())
            .env_remove("RUST_LOG")
            .env_remove("LAMINA_REMOTE_CACHE")
            .env_remove("LAMINA_REMOTE_CACHE_MODE")
            .stdin(Stdio::null());
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command.output().unwrap()
    }

    /// Runs lamina with `args` and `--json`, which must succeed, and returns its document.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let output = self.run(&args);
        assert!(
            output.status.success(),
            "lamina {args:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
            panic!(
                "not JSON ({error}):\n{}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    /// `lamina build --json` (plus `extra` flags) and its one layer.
    pub fn build(&self, extra: &[&str]) -> (Value, Value) {
        let mut args = vec!["build"];
        args.extend_from_slice(extra);
        let output = self.json(&args);
        let layer = output["layers"][0].clone();
        (layer, output["stats"].clone())
    }
}

/// What lamina printed on stderr.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Sets the mtime of every file below `root` to `age` ago.
fn set_mtimes(root: &Path, age: Duration) {
    let time = SystemTime::now() - age;
    for path in walk(root) {
        if std::fs::symlink_metadata(&path).unwrap().is_file() {
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            file.set_times(std::fs::FileTimes::new().set_modified(time))
                .unwrap();
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (source, dest) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&source).unwrap(), &dest).unwrap();
        } else if kind.is_dir() {
            copy_tree(&source, &dest);
        } else {
            std::fs::copy(&source, &dest).unwrap();
        }
    }
}

/// Flips one byte in the middle of the file at `path`, keeping its size.
pub fn flip_a_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}
