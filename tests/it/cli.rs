//! The `lamina` binary: each command's happy path and errors, run as a user would run it.
//!
//! Every run has stdin closed (never a terminal), so commands that would prompt must fail with a
//! message naming the flag instead. Tests marked `needs the engine` build zips and can only pass
//! once the engine (scan, cache, pack, build) is merged.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;
use tempfile::TempDir;

use crate::support;

/// The binary, run in `dir` with no terminal on stdin and logs at their default level.
fn lamina(dir: &Path) -> Command {
    let binary = assert_cmd::cargo::cargo_bin("lamina");
    let mut command = std::process::Command::new(binary);
    command
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    Command::from_std(command)
}

/// A fresh project made by `lamina init --name shop`.
fn project() -> TempDir {
    let dir = support::tempdir();
    lamina(dir.path())
        .args(["init", "--name", "shop"])
        .assert()
        .success();
    dir
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path).unwrap()
}

fn json_of(output: &[u8]) -> Value {
    serde_json::from_slice(output)
        .unwrap_or_else(|error| panic!("not JSON ({error}):\n{}", String::from_utf8_lossy(output)))
}

/// A copy of the bundled example project, symlinks kept as links.
fn example_project() -> TempDir {
    let dir = support::tempdir();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shop");
    copy_tree(&source, dir.path());
    let _ = std::fs::remove_dir_all(dir.path().join(".lamina"));
    support::age_tree(dir.path());
    dir
}

pub(crate) fn copy_tree(from: &Path, to: &Path) {
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

#[test]
fn init_writes_the_manifest_and_ignores_the_state_folder() {
    let dir = support::tempdir();
    lamina(dir.path())
        .args(["init", "--name", "shop"])
        .assert()
        .success()
        .stdout(predicate::str::contains("lamina.toml"));
    let manifest = lamina::manifest::Manifest::load(&dir.path().join("lamina.toml")).unwrap();
    assert_eq!(manifest.name, "shop");
    assert_eq!(read(dir.path().join(".gitignore")), ".lamina/\n");

    lamina(dir.path()).arg("init").assert().failure().stderr(
        predicate::str::contains("error: ").and(predicate::str::contains("already exists")),
    );
}

#[test]
fn init_appends_to_an_existing_gitignore_once() {
    let dir = support::tempdir();
    support::write(dir.path(), ".gitignore", b"/target\nnode_modules");
    lamina(dir.path()).arg("init").assert().success();
    assert_eq!(
        read(dir.path().join(".gitignore")),
        "/target\nnode_modules\n.lamina/\n"
    );

    let other = support::tempdir();
    support::write(other.path(), ".gitignore", b"/.lamina\n");
    lamina(other.path()).arg("init").assert().success();
    assert_eq!(read(other.path().join(".gitignore")), "/.lamina\n");
}

#[test]
fn init_names_the_project_after_its_folder() {
    let parent = support::tempdir();
    let dir = parent.path().join("my-shop");
    lamina(parent.path())
        .args(["--project", "my-shop", "init"])
        .assert()
        .success();
    let manifest = lamina::manifest::Manifest::load(&dir.join("lamina.toml")).unwrap();
    assert_eq!(manifest.name, "my-shop");
}

#[test]
fn init_refuses_a_bad_name() {
    let dir = support::tempdir();
    lamina(dir.path())
        .args(["init", "--name", "my shop"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("`my shop`"));
    assert!(!dir.path().join("lamina.toml").exists());
}

#[test]
fn commands_find_the_manifest_above_the_current_folder() {
    let dir = project();
    lamina(dir.path())
        .args(["layer", "add", "shared", "--runtime", "nodejs"])
        .assert()
        .success();
    let deep = dir.path().join("layers/shared/lib/nodejs");
    lamina(&deep)
        .args(["layer", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("shared"));

    let elsewhere = support::tempdir();
    lamina(elsewhere.path())
        .args(["layer", "list"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("error: no `lamina.toml`"));
    lamina(elsewhere.path())
        .arg("--project")
        .arg(dir.path())
        .args(["layer", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("shared"));

    lamina(elsewhere.path())
        .args(["--project", "."])
        .args(["layer", "list"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("run `lamina init` there first"));
    lamina(elsewhere.path())
        .args(["--project", "no-such-folder", "layer", "list"])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "no-such-folder` (given by --project) does not exist",
        ));
}

#[test]
fn an_invalid_manifest_is_reported_with_file_line_key_and_value() {
    let dir = project();
    let path = dir.path().join("lamina.toml");
    let text = read(&path) + "\n[layers.shared]\nruntimes = [\"nodejs99.x\"]\n";
    std::fs::write(&path, text).unwrap();
    lamina(dir.path())
        .args(["layer", "list"])
        .assert()
        .failure()
        .stderr(
            predicate::str::contains(path.display().to_string())
                .and(predicate::str::contains("`layers.shared.runtimes`"))
                .and(predicate::str::contains("`nodejs99.x`"))
                .and(predicate::str::contains("nodejs22.x")),
        );
}

#[test]
fn layer_add_creates_the_folders_and_says_what_is_next() {
    let dir = project();
    let assert = lamina(dir.path())
        .args(["layer", "add", "shared", "--runtime", "nodejs", "python"])
        .assert()
        .success()
        .stderr(predicate::str::contains("`nodejs` means nodejs22.x"))
        .stderr(predicate::str::contains("`python` means python3.12"));
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    for hint in [
        "next steps",
        "lib/nodejs/package.json",
        "layers/shared/opt/",
        "lamina push",
    ] {
        assert!(stdout.contains(hint), "missing {hint:?} in:\n{stdout}");
    }

    let layer = dir.path().join("layers/shared");
    let package: Value =
        serde_json::from_str(&read(layer.join("lib/nodejs/package.json"))).unwrap();
    assert_eq!(package["dependencies"], serde_json::json!({}));
    assert!(read(layer.join("lib/python/Pipfile")).contains("python_version = \"3.12\""));
    assert!(layer.join("opt").is_dir());

    let manifest = lamina::manifest::Manifest::load(&dir.path().join("lamina.toml")).unwrap();
    assert_eq!(
        manifest.layers["shared"].runtimes,
        vec!["nodejs22.x", "python3.12"]
    );
}

#[test]
fn layer_add_keeps_files_that_exist() {
    let dir = project();
    support::write(
        dir.path(),
        "layers/shared/lib/nodejs/package.json",
        b"{\"mine\": true}\n",
    );
    lamina(dir.path())
        .args(["layer", "add", "shared", "--runtime", "nodejs22.x"])
        .assert()
        .success();
    assert_eq!(
        read(dir.path().join("layers/shared/lib/nodejs/package.json")),
        "{\"mine\": true}\n"
    );
}

#[test]
fn layer_add_errors_name_the_bad_value() {
    let dir = project();
    lamina(dir.path())
        .args(["layer", "add", "shared", "--runtime", "nodejs"])
        .assert()
        .success();
    let before = read(dir.path().join("lamina.toml"));
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["shared", "--runtime", "nodejs"],
            &["layer `shared` already exists"],
        ),
        (
            &["other", "--runtime", "nodejs99.x"],
            &["`nodejs99.x`", "python3.12"],
        ),
        (
            &["other", "--runtime", "nodejs", "--arch", "amd64"],
            &["`amd64`", "arm64"],
        ),
        (
            &["bad.name", "--runtime", "nodejs"],
            &["`bad.name`", "1 to 64 characters"],
        ),
        (
            &["other", "--runtime", "nodejs", "--access", "account:123"],
            &["`account:123`", "12 digits"],
        ),
        (
            &["other", "--runtime", "nodejs", "--access", "org:o-x"],
            &["`org:o-x`", "`o-` then 10 to 32"],
        ),
        (
            &["other", "--runtime", "nodejs", "--access", "everyone"],
            &["`everyone`", "`public`"],
        ),
        (
            &[
                "other",
                "--runtime",
                "nodejs",
                "--access",
                "account:123456789012",
                "account:123456789012",
            ],
            &["`account:123456789012` is given twice"],
        ),
        (
            &[
                "other",
                "--runtime",
                "nodejs",
                "--access",
                "public",
                "account:123456789012",
            ],
            &["`public` cannot be combined with `account:123456789012`"],
        ),
        (&["other"], &["missing --runtime"]),
    ];
    for (args, expected) in cases {
        let assert = lamina(dir.path())
            .args(["layer", "add"])
            .args(*args)
            .assert()
            .failure();
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        assert!(stderr.contains("error: "), "{args:?}: {stderr}");
        for part in *expected {
            assert!(
                stderr.contains(part),
                "{args:?}: expected {part:?} in {stderr}"
            );
        }
    }
    assert_eq!(read(dir.path().join("lamina.toml")), before);
    assert!(!dir.path().join("layers/other").exists());
}

#[test]
fn function_add_creates_a_handler_for_its_runtime() {
    let dir = project();
    lamina(dir.path())
        .args(["layer", "add", "shared", "--runtime", "nodejs"])
        .assert()
        .success();
    lamina(dir.path())
        .args(["layer", "add", "py", "--runtime", "python"])
        .assert()
        .success();
    lamina(dir.path())
        .args([
            "function",
            "add",
            "api",
            "--runtime",
            "nodejs22.x",
            "--handler",
            "index.handler",
        ])
        .args(["--layer", "shared@latest", "py@2"])
        .assert()
        .success()
        .stdout(predicate::str::contains("functions/api/src/index.js"));
    lamina(dir.path())
        .args([
            "function",
            "add",
            "report",
            "--runtime",
            "python3.12",
            "--handler",
            "app.main",
        ])
        .args(["--layer", "py@latest", "shared@latest"])
        .assert()
        .success();

    assert!(read(dir.path().join("functions/api/src/index.js")).contains("exports.handler"));
    assert!(
        read(dir.path().join("functions/report/src/app.py")).contains("def main(event, context)")
    );
    let manifest = lamina::manifest::Manifest::load(&dir.path().join("lamina.toml")).unwrap();
    let layers: Vec<String> = manifest.functions["report"]
        .layers
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        layers,
        vec!["py@latest", "shared@latest"],
        "the order given is kept"
    );

    let listing = lamina(dir.path())
        .args(["--json", "function", "list"])
        .assert()
        .success();
    let listing = json_of(&listing.get_output().stdout);
    assert_eq!(listing[0]["name"], "api");
    assert_eq!(
        listing[0]["layers"],
        serde_json::json!(["shared@latest", "py@2"])
    );
}

#[test]
fn function_add_errors_name_the_bad_value() {
    let dir = project();
    lamina(dir.path())
        .args(["layer", "add", "shared", "--runtime", "nodejs"])
        .assert()
        .success();
    lamina(dir.path())
        .args([
            "function",
            "add",
            "api",
            "--runtime",
            "nodejs22.x",
            "--handler",
            "index.handler",
        ])
        .assert()
        .success();
    let before = read(dir.path().join("lamina.toml"));
    let node = ["--runtime", "nodejs22.x", "--handler", "index.handler"];
    let cases: Vec<(Vec<&str>, &[&str])> = vec![
        (
            [&["api"][..], &node].concat(),
            &["function `api` already exists"],
        ),
        (
            vec!["f", "--runtime", "go1.x", "--handler", "main"],
            &["`go1.x`", "nodejs22.x"],
        ),
        (
            vec!["f", "--runtime", "python3.12", "--handler", "handler"],
            &["`handler`", "FILE.FUNCTION"],
        ),
        (
            [&["f"][..], &node, &["--layer", "shared"]].concat(),
            &["`shared`", "`shared@latest`"],
        ),
        (
            [&["f"][..], &node, &["--layer", "shared@0"]].concat(),
            &["`shared@0`", "NAME@N"],
        ),
        (
            [&["f"][..], &node, &["--layer", "ghost@latest"]].concat(),
            &["`ghost@latest`", "no such layer"],
        ),
        (
            [
                &["f"][..],
                &node,
                &["--layer", "arn:aws:lambda:eu-west-1:123:layer:x:1"],
            ]
            .concat(),
            &["`arn:aws:lambda:eu-west-1:123:layer:x:1`", "12 digits"],
        ),
        (
            [&["f"][..], &node, &["--layer", "shared@latest", "shared@1"]].concat(),
            &["`shared@1`", "already in the list"],
        ),
        (vec!["f", "--runtime", "nodejs22.x"], &["missing --handler"]),
        (
            [&["f"][..], &node, &["--arch", "x86_64,arm64"]].concat(),
            &["--arch", "runs on one architecture"],
        ),
    ];
    for (args, expected) in cases {
        let assert = lamina(dir.path())
            .args(["function", "add"])
            .args(&args)
            .assert()
            .failure();
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        for part in expected {
            assert!(
                stderr.contains(part),
                "{args:?}: expected {part:?} in {stderr}"
            );
        }
    }
    assert_eq!(read(dir.path().join("lamina.toml")), before);
    assert!(!dir.path().join("functions/f").exists());
}

#[test]
fn function_update_and_remove_edit_the_manifest() {
    let dir = project();
    for layer in ["a", "b"] {
        lamina(dir.path())
            .args(["layer", "add", layer, "--runtime", "nodejs"])
            .assert()
            .success();
    }
    lamina(dir.path())
        .args([
            "function",
            "add",
            "api",
            "--runtime",
            "nodejs22.x",
            "--handler",
            "index.handler",
        ])
        .args(["--layer", "a@latest"])
        .assert()
        .success();
    lamina(dir.path())
        .args(["function", "update", "api", "--layer", "b@latest", "a@3"])
        .assert()
        .success()
        .stdout(predicate::str::contains("b@latest, a@3"));
    let manifest = lamina::manifest::Manifest::load(&dir.path().join("lamina.toml")).unwrap();
    let layers: Vec<String> = manifest.functions["api"]
        .layers
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(layers, vec!["b@latest", "a@3"]);

    lamina(dir.path())
        .args(["function", "update", "api", "--layer", "nope@latest"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("`nope@latest`"));
    lamina(dir.path())
        .args(["function", "remove", "api"])
        .assert()
        .success();
    assert!(!read(dir.path().join("lamina.toml")).contains("[functions.api]"));
    assert!(
        dir.path().join("functions/api/src/index.js").exists(),
        "the code is kept"
    );
    lamina(dir.path())
        .args(["function", "remove", "api"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("no function `api`"));
}

#[test]
fn a_layer_used_by_a_function_cannot_be_removed() {
    let dir = project();
    lamina(dir.path())
        .args(["layer", "add", "shared", "--runtime", "nodejs"])
        .assert()
        .success();
    lamina(dir.path())
        .args([
            "function",
            "add",
            "api",
            "--runtime",
            "nodejs22.x",
            "--handler",
            "index.handler",
        ])
        .args(["--layer", "shared@latest"])
        .assert()
        .success();
    lamina(dir.path())
        .args(["layer", "remove", "shared"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("used by function `api`"));

    lamina(dir.path())
        .args(["function", "update", "api", "--no-layers"])
        .assert()
        .success();
    lamina(dir.path())
        .args(["layer", "remove", "shared"])
        .assert()
        .success();
    assert!(!read(dir.path().join("lamina.toml")).contains("[layers.shared]"));
    lamina(dir.path())
        .args(["layer", "remove", "shared"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("no layer `shared`"));
}

#[test]
fn granting_an_account_to_a_public_layer_removes_public_and_says_so() {
    let dir = project();
    lamina(dir.path())
        .args([
            "layer",
            "add",
            "shared",
            "--runtime",
            "nodejs",
            "--access",
            "public",
        ])
        .assert()
        .success();
    assert!(read(dir.path().join("lamina.toml")).contains("access = [\"public\"]"));

    lamina(dir.path())
        .args([
            "layer",
            "update",
            "shared",
            "--access",
            "account:123456789012",
        ])
        .assert()
        .success()
        .stderr(predicate::str::contains("public access removed"));
    let text = read(dir.path().join("lamina.toml"));
    assert!(!text.contains("public"), "{text}");
    let manifest = lamina::manifest::Manifest::load(&dir.path().join("lamina.toml")).unwrap();
    let access = &manifest.layers["shared"].access;
    assert!(
        !access.public && access.accounts.contains("123456789012"),
        "{access:?}"
    );
}

#[test]
fn granting_public_replaces_specific_access_and_says_so() {
    let dir = project();
    lamina(dir.path())
        .args(["layer", "add", "shared", "--runtime", "nodejs"])
        .args(["--access", "account:123456789012", "org:o-abcdefghij"])
        .assert()
        .success();
    let assert = lamina(dir.path())
        .args(["--json", "layer", "update", "shared", "--access", "public"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "replaces the specific access of account:123456789012",
        ));
    let report = json_of(&assert.get_output().stdout);
    assert_eq!(report["access"], serde_json::json!(["public"]));
    assert_eq!(report["changed"], true);
}

#[test]
fn revoking_access_edits_the_manifest_and_keeps_comments() {
    let dir = project();
    lamina(dir.path())
        .args(["layer", "add", "shared", "--runtime", "nodejs"])
        .args(["--access", "account:123456789012", "org:o-abcdefghij"])
        .assert()
        .success();
    let path = dir.path().join("lamina.toml");
    let commented =
        read(&path).replace("[layers.shared]", "# Shared code.\n[layers.shared]  # ours");
    std::fs::write(&path, &commented).unwrap();

    lamina(dir.path())
        .args([
            "layer",
            "update",
            "shared",
            "--revoke",
            "org:o-abcdefghij",
            "account:999999999999",
        ])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "`account:999999999999` had no access",
        ));
    let text = read(&path);
    assert!(
        text.contains("# Shared code.\n[layers.shared]  # ours"),
        "{text}"
    );
    assert!(
        text.contains("access = [\"account:123456789012\"]"),
        "{text}"
    );
}

#[test]
fn layer_update_errors_name_the_value() {
    let dir = project();
    lamina(dir.path())
        .args(["layer", "add", "shared", "--runtime", "nodejs"])
        .assert()
        .success();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--access", "account:12345678901x"],
            "`account:12345678901x`",
        ),
        (&["--access", "friends"], "`friends`"),
        (&["--access", "org:o-abc", "org:o-abc"], "`org:o-abc`"),
        (
            &["--access", "public", "org:o-abcdefghij"],
            "`public` cannot be combined",
        ),
        (
            &[
                "--access",
                "org:o-abcdefghij",
                "--revoke",
                "org:o-abcdefghij",
            ],
            "both granted",
        ),
        (&[], "nothing to update"),
    ];
    for (args, expected) in cases {
        lamina(dir.path())
            .args(["layer", "update", "shared"])
            .args(*args)
            .assert()
            .failure()
            .stderr(predicate::str::contains(*expected));
    }
    lamina(dir.path())
        .args(["layer", "update", "ghost", "--access", "public"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("no layer `ghost`"));
}

#[test]
fn cli_edits_keep_the_users_comments() {
    let dir = project();
    let path = dir.path().join("lamina.toml");
    let commented = format!("# Our project.\n{}# end of file\n", read(&path));
    std::fs::write(&path, &commented).unwrap();

    lamina(dir.path())
        .args(["layer", "add", "shared", "--runtime", "nodejs"])
        .assert()
        .success();
    lamina(dir.path())
        .args([
            "function",
            "add",
            "api",
            "--runtime",
            "nodejs22.x",
            "--handler",
            "index.handler",
        ])
        .assert()
        .success();
    let text = read(&path);
    assert!(
        text.starts_with(&commented.replace("# end of file\n", "")),
        "{text}"
    );
    assert!(
        text.contains("# or \"aws\"; `lamina push --target` overrides"),
        "{text}"
    );
    assert!(text.contains("# end of file"), "{text}");
}

#[test]
fn push_without_a_terminal_or_yes_shows_the_plan_then_stops_and_says_to_pass_yes() {
    let dir = example_project();
    let output = lamina(dir.path())
        .arg("push")
        .assert()
        .failure()
        .stderr(predicate::str::contains("error: ").and(predicate::str::contains("pass --yes")))
        .get_output()
        .stdout
        .clone();
    let plan = String::from_utf8(output).unwrap();
    assert!(
        plan.contains("shared") && plan.contains("reporting"),
        "{plan}"
    );
    let versions = dir.path().join(".lamina/registry/layers/shared/versions");
    let published = std::fs::read_dir(&versions)
        .map(|dir| dir.count())
        .unwrap_or(0);
    assert_eq!(published, 0, "nothing was published");
}

#[test]
fn layer_versions_of_a_layer_never_pushed_is_empty() {
    let dir = project();
    lamina(dir.path())
        .args(["layer", "add", "shared", "--runtime", "nodejs"])
        .assert()
        .success();
    lamina(dir.path())
        .args(["layer", "versions", "shared"])
        .assert()
        .success()
        .stdout(predicate::str::contains("no versions"));
    let assert = lamina(dir.path())
        .args(["--json", "layer", "versions", "shared"])
        .assert()
        .success();
    assert_eq!(
        json_of(&assert.get_output().stdout)["versions"],
        serde_json::json!([])
    );
    lamina(dir.path())
        .args(["layer", "remove", "shared", "--version", "1"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("no version 1"));
}

#[test]
fn json_output_is_one_document() {
    let dir = project();
    let assert = lamina(dir.path())
        .args([
            "--json",
            "layer",
            "add",
            "shared",
            "--runtime",
            "nodejs22.x",
        ])
        .assert()
        .success();
    let added = json_of(&assert.get_output().stdout);
    assert_eq!(added["name"], "shared");
    let assert = lamina(dir.path())
        .args(["--json", "layer", "list"])
        .assert()
        .success();
    let listed = json_of(&assert.get_output().stdout);
    assert_eq!(listed[0]["runtimes"], serde_json::json!(["nodejs22.x"]));
}

#[test]
fn the_bundled_example_is_a_valid_project() {
    let manifest_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shop/lamina.toml");
    let manifest = lamina::manifest::Manifest::load(&manifest_path).unwrap();
    assert_eq!(manifest.layers.len(), 2);
    let api: Vec<String> = manifest.functions["api"]
        .layers
        .iter()
        .map(ToString::to_string)
        .collect();
    let report: Vec<String> = manifest.functions["report"]
        .layers
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        api.iter().rev().collect::<Vec<_>>(),
        report.iter().collect::<Vec<_>>()
    );
    let link = manifest
        .root
        .join("layers/shared/lib/nodejs/node_modules/.bin/format-money");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
}

// Engine-backed commands. These build real zips and can only pass once the engine is merged.

/// Runs `lamina --json ARGS` in `dir` and returns the document.
fn json_run(dir: &Path, args: &[&str]) -> Value {
    let assert = lamina(dir).arg("--json").args(args).assert().success();
    json_of(&assert.get_output().stdout)
}

#[test]
fn build_reports_every_layer_and_a_warm_run_hashes_nothing() {
    let dir = example_project();
    let cold = json_run(dir.path(), &["build"]);
    let layers = cold["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    for layer in layers {
        for key in [
            "layer",
            "digest",
            "sha256",
            "code_sha256",
            "zip",
            "entries",
            "unzipped_bytes",
        ] {
            assert!(!layer[key].is_null(), "{key} missing in {layer}");
        }
        assert_eq!(layer["status"], "built");
        assert!(PathBuf::from(layer["zip"].as_str().unwrap()).is_file());
    }
    for key in [
        "files_scanned",
        "files_hashed",
        "bytes_hashed",
        "entries_compressed",
    ] {
        assert!(cold["stats"][key].as_u64().is_some(), "stats.{key} missing");
    }

    let warm = json_run(dir.path(), &["build"]);
    assert_eq!(warm["stats"]["files_hashed"], 0, "{warm}");
    assert_eq!(warm["stats"]["entries_compressed"], 0, "{warm}");
    assert!(warm["layers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|layer| layer["status"] == "cached"));
    assert_eq!(warm["layers"][0]["digest"], cold["layers"][0]["digest"]);
}

#[test]
fn build_of_an_unknown_layer_fails_naming_the_layers() {
    let dir = example_project();
    for command in ["build", "status"] {
        lamina(dir.path())
            .args([command, "ghost"])
            .assert()
            .failure()
            .stderr(predicate::str::contains("no layer `ghost`"))
            .stderr(predicate::str::contains("layers: reporting, shared"));
    }
}

#[test]
fn build_of_named_layers_builds_only_those() {
    let dir = example_project();
    let one = json_run(dir.path(), &["build", "reporting"]);
    assert_eq!(one["layers"].as_array().unwrap().len(), 1);
    assert_eq!(one["layers"][0]["layer"], "reporting");
}

#[test]
fn status_lists_what_changed_since_the_last_build() {
    let dir = example_project();
    lamina(dir.path()).arg("build").assert().success();
    lamina(dir.path())
        .arg("status")
        .assert()
        .success()
        .stdout(predicate::str::contains("reporting: unchanged"));

    support::write(
        dir.path(),
        "layers/reporting/opt/config/extra.json",
        b"{}\n",
    );
    lamina(dir.path())
        .args(["status", "--verbose"])
        .assert()
        .success()
        .stdout(predicate::str::contains("reporting: changed (1 added)"))
        .stdout(predicate::str::contains("+ config/extra.json"))
        .stdout(predicate::str::contains("shared: unchanged"));
    let status = json_run(dir.path(), &["status"]);
    let reporting = &status["layers"][0];
    assert_eq!(reporting["status"], "changed");
    assert_eq!(
        reporting["changes"]["added"],
        serde_json::json!(["config/extra.json"])
    );
}

#[test]
fn a_layer_just_added_without_files_has_a_status_but_no_build() {
    let dir = project();
    lamina(dir.path())
        .args(["layer", "add", "jvm", "--runtime", "java21"])
        .assert()
        .success();
    lamina(dir.path())
        .arg("status")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "jvm: changed; not pushed to local",
        ));
    lamina(dir.path())
        .arg("build")
        .assert()
        .failure()
        .stderr(predicate::str::contains("layers/jvm` holds no files"));
}

#[test]
fn status_shows_a_function_whose_code_changed_since_its_deployment() {
    let dir = example_project();
    lamina(dir.path())
        .args(["push", "--yes"])
        .assert()
        .success();
    lamina(dir.path())
        .arg("status")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "function api: unchanged; deployed on local",
        ));

    support::write(
        dir.path(),
        "functions/api/src/index.js",
        b"exports.handler = async () => 'edited';\n",
    );
    lamina(dir.path())
        .args(["status", "--verbose"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "function api: changed (1 modified); not deployed to local (last deployed: ",
        ))
        .stdout(predicate::str::contains("~ index.js"))
        .stdout(predicate::str::contains(
            "function report: unchanged; deployed on local",
        ));
    let status = json_run(dir.path(), &["status"]);
    let api = &status["functions"][0];
    assert_eq!(api["function"], "api");
    assert_eq!(api["push_status"], "not_pushed");
    assert_eq!(api["changes"]["modified"], serde_json::json!(["index.js"]));

    // Naming layers looks at those layers alone.
    let shared = json_run(dir.path(), &["status", "shared"]);
    assert_eq!(shared["layers"].as_array().unwrap().len(), 1);
    assert_eq!(shared["functions"], serde_json::json!([]));
}

#[test]
fn a_function_whose_code_folder_is_gone_or_empty_is_not_deployed_empty() {
    let dir = example_project();
    lamina(dir.path())
        .args(["push", "--yes"])
        .assert()
        .success();
    let record = dir.path().join(".lamina/registry/functions/api.json");
    let deployed = read(&record);

    let code = dir.path().join("functions/api/src");
    std::fs::rename(&code, dir.path().join("functions/api/src.moved")).unwrap();
    lamina(dir.path())
        .args(["push", "--yes"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("function `api`"))
        .stderr(predicate::str::contains("functions/api/src"))
        .stderr(predicate::str::contains("`source`"));
    assert_eq!(read(&record), deployed);

    // A checkout gone wrong can leave the folder there, empty.
    std::fs::create_dir(&code).unwrap();
    lamina(dir.path())
        .args(["push", "--yes"])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "functions/api/src` holds no files",
        ));
    assert_eq!(read(&record), deployed);
}

/// `lamina ARGS` in `dir` on a terminal (util-linux `script` gives it one), typing `input`.
fn on_a_terminal(dir: &Path, args: &str, input: &str) -> assert_cmd::assert::Assert {
    let binary = assert_cmd::cargo::cargo_bin("lamina");
    let command = format!("{} {args}", binary.display());
    let mut script = std::process::Command::new("script");
    script
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .current_dir(dir)
        .env_remove("RUST_LOG");
    Command::from_std(script).write_stdin(input).assert()
}

#[test]
fn the_push_question_takes_only_yes_or_no() {
    let dir = example_project();
    let registry = dir.path().join(".lamina/registry");

    // A word that is not an answer is asked again; `n` then cancels.
    on_a_terminal(dir.path(), "push", "abort\nn\n")
        .failure()
        .stdout(predicate::str::contains("answer y or n"))
        .stdout(predicate::str::contains("push cancelled"));
    assert!(!registry.join("layers").exists(), "nothing published");

    // With stderr, where the question is drawn, sent to a file, nobody would see it.
    let log = dir.path().join("push.log");
    let redirected = format!("push 2>{}", log.display());
    on_a_terminal(dir.path(), &redirected, "yes\n").failure();
    assert!(read(&log).contains("--yes"), "{}", read(&log));
    assert!(!registry.join("layers").exists(), "nothing published");

    on_a_terminal(dir.path(), "push", "yes\n").success();
    assert!(registry.join("layers/shared/versions/1.json").exists());
}

#[test]
fn a_requirements_txt_that_the_pipfile_lock_overrides_is_named() {
    let dir = example_project();
    let python = dir.path().join("layers/reporting/lib/python");
    // Comments and blank lines name no package: nothing to say.
    std::fs::write(python.join("requirements.txt"), "# none yet\n\n").unwrap();
    lamina(dir.path())
        .args(["build", "--install"])
        .assert()
        .success()
        .stderr(predicate::str::contains("requirements.txt").not());

    std::fs::write(python.join("requirements.txt"), "six==1.16.0\n").unwrap();
    let warning = "`lib/python/requirements.txt` is not installed: `Pipfile.lock` beside it wins";
    lamina(dir.path())
        .args(["build", "--install"])
        .assert()
        .success()
        .stderr(predicate::str::contains(warning));

    // As Windows' `pip freeze >` writes it: UTF-16, not UTF-8. Still only a warning.
    let utf16: Vec<u8> = "\u{feff}six==1.16.0\n"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    std::fs::write(python.join("requirements.txt"), utf16).unwrap();
    lamina(dir.path())
        .args(["build", "--install"])
        .assert()
        .success()
        .stderr(predicate::str::contains(warning));
}

#[test]
fn a_function_deleted_from_lamina_toml_by_hand_is_named_and_can_be_removed() {
    let dir = example_project();
    lamina(dir.path())
        .args(["push", "--yes"])
        .assert()
        .success();
    let manifest = dir.path().join("lamina.toml");
    let text = read(&manifest);
    let kept = &text[..text.find("[functions.report]").unwrap()];
    std::fs::write(&manifest, kept).unwrap();
    let record = dir.path().join(".lamina/registry/functions/report.json");

    lamina(dir.path())
        .args(["push", "--yes"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "function `report` is deployed on local registry",
        ))
        .stderr(predicate::str::contains(
            "`lamina function remove report` deletes it",
        ));
    assert!(record.exists(), "push leaves it deployed");

    lamina(dir.path())
        .args(["function", "remove", "report", "--yes"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "`report` is not in lamina.toml; deleted",
        ));
    assert!(!record.exists());
    lamina(dir.path())
        .args(["push", "--yes"])
        .assert()
        .success()
        .stderr(predicate::str::contains("`report`").not());
    lamina(dir.path())
        .args(["function", "remove", "report", "--yes"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("has no function `report`"));
}

#[test]
fn push_of_the_example_publishes_once_then_nothing() {
    let dir = example_project();
    let first = json_run(dir.path(), &["push", "--yes"]);
    assert_eq!(first["changed"], true);
    for layer in first["layers"].as_array().unwrap() {
        assert_eq!(layer["action"], "published", "{layer}");
        assert_eq!(layer["version"], 1);
        assert!(layer["arn"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:lambda:local:"));
    }
    let functions = first["functions"].as_array().unwrap();
    assert!(functions
        .iter()
        .all(|function| function["action"] == "deployed"));
    let api = functions
        .iter()
        .find(|function| function["function"] == "api")
        .unwrap();
    let report = functions
        .iter()
        .find(|function| function["function"] == "report")
        .unwrap();
    let api_layers: Vec<&Value> = api["layers"].as_array().unwrap().iter().collect();
    let report_layers: Vec<&Value> = report["layers"].as_array().unwrap().iter().rev().collect();
    assert_eq!(
        api_layers, report_layers,
        "the two functions use the layers in opposite orders"
    );

    lamina(dir.path())
        .args(["push", "--yes"])
        .assert()
        .success()
        .stdout(predicate::str::contains("nothing changed"));
    let second = json_run(dir.path(), &["push", "--yes"]);
    assert_eq!(second["changed"], false);
    assert!(second["layers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["action"] == "unchanged"));
    assert_eq!(
        second["stats"]["files_hashed"], 0,
        "a warm push reads no file content"
    );

    // The lists a version was published for, which a manifest edit does not change.
    lamina(dir.path())
        .args(["layer", "versions", "shared"])
        .assert()
        .success()
        .stdout(predicate::str::contains("RUNTIMES"))
        .stdout(predicate::str::contains("nodejs22.x, python3.12  x86_64"));
}

#[test]
fn attaching_a_layer_for_another_runtime_warns_at_once() {
    let dir = project();
    lamina(dir.path())
        .args(["layer", "add", "node", "--runtime", "nodejs"])
        .assert()
        .success();
    lamina(dir.path())
        .args([
            "function",
            "add",
            "report",
            "--runtime",
            "python3.12",
            "--handler",
            "app.main",
        ])
        .args(["--layer", "node@latest"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "warning: layer `node` lists runtimes nodejs22.x, not python3.12",
        ));
}

// Version management, on versions published straight into the local registry.

/// Publishes a version of `layer` into the project's local registry as a push would, so that the
/// version commands can be tested without building anything.
fn publish_version(dir: &Path, layer: &str, content: &[u8]) -> u64 {
    use lamina::deploy::local::LocalRegistry;
    use lamina::deploy::{code_sha256, PublishLayer, Target};
    use sha2::Digest as _;

    let zip_path = dir.join(format!("{layer}-{}.zip", content.len()));
    std::fs::write(&zip_path, content).unwrap();
    let sha256: [u8; 32] = sha2::Sha256::digest(content).into();
    let mut registry = LocalRegistry::open(dir.join(".lamina/registry")).unwrap();
    let request = PublishLayer {
        layer: layer.to_string(),
        zip_path,
        code_sha256: code_sha256(&sha256),
        zip_size: content.len() as u64,
        description: format!("test version of {layer}"),
        runtimes: vec!["nodejs22.x".into()],
        architectures: vec!["x86_64".into()],
        digest: lamina::digest::Digest(sha256),
        unzipped_size: 100,
    };
    registry.publish_layer_version(&request).unwrap().version
}

/// A project with layer `shared` (two published versions) and function `api` pinning version 1.
fn project_with_versions() -> TempDir {
    let dir = project();
    lamina(dir.path())
        .args(["layer", "add", "shared", "--runtime", "nodejs"])
        .assert()
        .success();
    lamina(dir.path())
        .args([
            "function",
            "add",
            "api",
            "--runtime",
            "nodejs22.x",
            "--handler",
            "index.handler",
        ])
        .args(["--layer", "shared@1"])
        .assert()
        .success();
    assert_eq!(publish_version(dir.path(), "shared", b"one"), 1);
    assert_eq!(publish_version(dir.path(), "shared", b"two!"), 2);
    dir
}

#[test]
fn layer_versions_lists_versions_and_who_pins_them() {
    let dir = project_with_versions();
    let listed = json_run(dir.path(), &["layer", "versions", "shared"]);
    let versions = listed["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["version"], 1);
    assert_eq!(versions[0]["description"], "test version of shared");
    assert_eq!(versions[0]["used_by"][0]["function"], "api");
    assert_eq!(versions[0]["used_by"][0]["pinned"], true);
    assert_eq!(versions[1]["used_by"], serde_json::json!([]));

    lamina(dir.path())
        .args(["layer", "versions", "shared"])
        .assert()
        .success()
        .stdout(predicate::str::contains("VERSION").and(predicate::str::contains("api (pinned)")));
}

#[test]
fn removing_a_pinned_version_is_refused_naming_the_function() {
    let dir = project_with_versions();
    lamina(dir.path())
        .args(["layer", "remove", "shared", "--version", "1", "--yes"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("pinned by function (`api`)"));
    let listed = json_run(dir.path(), &["layer", "versions", "shared"]);
    assert_eq!(
        listed["versions"].as_array().unwrap().len(),
        2,
        "nothing was removed"
    );
}

#[test]
fn removing_versions_needs_yes_without_a_terminal() {
    let dir = project_with_versions();
    lamina(dir.path())
        .args(["layer", "remove", "shared", "--version", "2"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("pass --yes"));
    assert_eq!(
        json_run(dir.path(), &["layer", "versions", "shared"])["versions"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let removed = json_run(
        dir.path(),
        &["layer", "remove", "shared", "--version", "2", "--yes"],
    );
    assert_eq!(removed["versions"], serde_json::json!([2]));
    let listed = json_run(dir.path(), &["layer", "versions", "shared"]);
    assert_eq!(listed["versions"].as_array().unwrap().len(), 1);
    assert_eq!(
        publish_version(dir.path(), "shared", b"three"),
        3,
        "numbers are not reused"
    );
}

#[test]
fn access_reaches_existing_versions_only_when_asked() {
    let dir = project_with_versions();
    let future = json_run(
        dir.path(),
        &["layer", "update", "shared", "--access", "public"],
    );
    assert_eq!(future["applied"], serde_json::json!([]));
    let listed = json_run(dir.path(), &["layer", "versions", "shared"]);
    assert_eq!(listed["versions"][1]["access"]["public"], false);

    let all = json_run(
        dir.path(),
        &["layer", "update", "shared", "--apply-to", "all"],
    );
    assert_eq!(all["applied"].as_array().unwrap().len(), 2);
    let listed = json_run(dir.path(), &["layer", "versions", "shared"]);
    assert_eq!(listed["versions"][0]["access"]["public"], true);
}

#[test]
fn switching_a_public_version_to_one_account_revokes_public_on_it() {
    let dir = project_with_versions();
    json_run(
        dir.path(),
        &[
            "layer",
            "update",
            "shared",
            "--access",
            "public",
            "--apply-to",
            "latest",
        ],
    );
    let assert = lamina(dir.path())
        .args([
            "--json",
            "layer",
            "update",
            "shared",
            "--access",
            "account:123456789012",
        ])
        .args(["--apply-to", "latest"])
        .assert()
        .success()
        .stderr(predicate::str::contains("public access removed"));
    let report = json_of(&assert.get_output().stdout);
    let change = &report["applied"][0]["change"];
    assert_eq!(
        change["added"],
        serde_json::json!(["lamina-account-123456789012"])
    );
    assert_eq!(change["removed"], serde_json::json!(["lamina-public"]));

    let listed = json_run(dir.path(), &["layer", "versions", "shared"]);
    let access = &listed["versions"][1]["access"];
    assert_eq!(access["public"], false, "{access}");
    assert_eq!(access["accounts"], serde_json::json!(["123456789012"]));
    assert_eq!(
        listed["versions"][0]["access"]["public"], false,
        "version 1 was never public"
    );
}

#[test]
fn apply_to_a_missing_version_fails_and_leaves_the_manifest_alone() {
    let dir = project_with_versions();
    let manifest = read(dir.path().join("lamina.toml"));
    lamina(dir.path())
        .args(["layer", "update", "shared", "--apply-to", "7"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("no version 7"));
    lamina(dir.path())
        .args([
            "layer",
            "update",
            "shared",
            "--access",
            "public",
            "--apply-to",
            "7",
        ])
        .assert()
        .failure()
        .stderr(predicate::str::contains("no version 7"));
    assert_eq!(read(dir.path().join("lamina.toml")), manifest);
    lamina(dir.path())
        .args(["layer", "update", "shared", "--apply-to", "newest"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("`newest`"));
}

// Installs during push and build, status since the last push, function removal.

/// A project with one node layer `deps` whose package.json and lock depend on `tiny@version`,
/// packed into `lib/nodejs/vendor/` and referenced with `file:`, so npm needs no network.
fn npm_project(version: &str) -> TempDir {
    let dir = project();
    lamina(dir.path())
        .args(["layer", "add", "deps", "--runtime", "nodejs"])
        .assert()
        .success();
    set_tiny_version(dir.path(), version);
    dir
}

fn deps_node_dir(dir: &Path) -> PathBuf {
    dir.join("layers/deps/lib/nodejs")
}

/// Packs `tiny@version` and points the layer's package.json and lock at it.
fn set_tiny_version(dir: &Path, version: &str) {
    let node_dir = deps_node_dir(dir);
    let tarball = crate::install::pack(&node_dir.join("vendor"), "tiny", version, false);
    crate::install::write_node_project(&node_dir, &[&tarball], true);
}

/// The text of `path` in the zip that the local registry stores for `code_sha256`.
fn published_file(dir: &Path, code_sha256: &str, path: &str) -> String {
    use base64::Engine as _;
    use std::io::Read as _;
    let sha256 = base64::engine::general_purpose::STANDARD
        .decode(code_sha256)
        .unwrap();
    let hex: String = sha256.iter().map(|byte| format!("{byte:02x}")).collect();
    let blob = dir.join(format!(".lamina/registry/blobs/{hex}.zip"));
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&blob).unwrap()).unwrap();
    let mut text = String::new();
    archive
        .by_name(path)
        .unwrap_or_else(|error| panic!("{path} in {}: {error}", blob.display()))
        .read_to_string(&mut text)
        .unwrap();
    text
}

/// The one install of the one layer in a push or build document.
fn only_install(document: &Value) -> &Value {
    let installs = document["installs"].as_array().unwrap();
    assert_eq!(installs.len(), 1, "{document}");
    &installs[0]["installs"][0]
}

#[test]
fn push_runs_npm_ci_for_a_changed_lock_and_publishes_the_installed_files() {
    let dir = npm_project("1.0.0");
    let first = json_run(dir.path(), &["push", "--yes", "--offline"]);
    let install = only_install(&first);
    assert_eq!(install["outcome"]["status"], "installed", "{first}");
    assert_eq!(install["outcome"]["reason"], "not_installed");
    assert_eq!(install["outcome"]["command"][1], "ci");
    let layer = &first["layers"][0];
    assert_eq!(
        (layer["action"].as_str(), layer["version"].as_u64()),
        (Some("published"), Some(1))
    );
    let code = layer["code_sha256"].as_str().unwrap();
    let index = "nodejs/node_modules/tiny/index.js";
    assert_eq!(
        published_file(dir.path(), code, index),
        "module.exports = '1.0.0';\n"
    );

    set_tiny_version(dir.path(), "2.0.0");
    let assert = lamina(dir.path())
        .args(["push", "--yes", "--offline"])
        .assert()
        .success()
        .stderr(predicate::str::contains("note: offline"));
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    assert!(
        stdout.contains(
            "layer `deps`: installed node dependencies with `npm ci` (the declared \
                         dependencies changed)"
        ),
        "{stdout}"
    );
    let versions = json_run(dir.path(), &["layer", "versions", "deps"]);
    let newest = &versions["versions"][1];
    assert_eq!(newest["version"], 2, "{versions}");
    let code = newest["code_sha256"].as_str().unwrap();
    assert_eq!(
        published_file(dir.path(), code, index),
        "module.exports = '2.0.0';\n"
    );

    let warm = json_run(dir.path(), &["push", "--yes", "--offline"]);
    assert_eq!(only_install(&warm)["outcome"]["status"], "up_to_date");
    assert_eq!(warm["changed"], false);
}

#[test]
fn a_failing_install_stops_the_push_before_anything_is_published() {
    let dir = npm_project("1.0.0");
    json_run(dir.path(), &["push", "--yes", "--offline"]);

    let node_dir = deps_node_dir(dir.path());
    let tarball =
        crate::install::pack(&support::tempdir().path().join("v"), "tiny", "1.0.0", false);
    let missing = crate::install::unavailable(tarball, "2.0.0", dir.path());
    crate::install::write_node_project(&node_dir, &[&missing], true);
    let assert = lamina(dir.path())
        .args(["push", "--yes", "--offline"])
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    for expected in [
        "error: cannot install the dependencies of layer `deps`",
        "npm ci failed for layer `deps` (exit status: ",
        "Its output, first and last lines:",
        "tiny-2.0.0.tgz",
    ] {
        assert!(
            stderr.contains(expected),
            "{expected:?} missing from:\n{stderr}"
        );
    }

    let versions = json_run(dir.path(), &["layer", "versions", "deps"]);
    assert_eq!(
        versions["versions"].as_array().unwrap().len(),
        1,
        "{versions}"
    );
    let installed = read(node_dir.join("node_modules/tiny/package.json"));
    assert!(
        installed.contains("\"1.0.0\""),
        "the previous tree stays: {installed}"
    );
}

#[test]
fn build_installs_only_when_asked() {
    let dir = npm_project("1.0.0");
    let plain = json_run(dir.path(), &["build"]);
    assert!(plain.get("installs").is_none(), "{plain}");
    assert!(!deps_node_dir(dir.path()).join("node_modules").exists());
    lamina(dir.path())
        .args(["build", "--offline"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("add --install"));

    let built = json_run(dir.path(), &["build", "--install", "--offline"]);
    assert_eq!(
        only_install(&built)["outcome"]["status"],
        "installed",
        "{built}"
    );
    assert!(deps_node_dir(dir.path())
        .join("node_modules/tiny/index.js")
        .is_file());
    assert_eq!(built["layers"][0]["status"], "built");
}

/// A folder of installer stand-ins that record being called and fail, first on `PATH`.
fn failing_installers() -> (TempDir, String) {
    use std::os::unix::fs::PermissionsExt;
    let stubs = support::tempdir();
    let log = stubs.path().join("called");
    for tool in ["npm", "yarn", "pnpm", "python3", "pip", "pip3", "pipenv"] {
        let script = format!(
            "#!/bin/sh\necho \"{tool} $*\" >> '{}'\nexit 1\n",
            log.display()
        );
        let path = support::write(stubs.path(), tool, script.as_bytes());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = std::env::join_paths(std::iter::once(stubs.path().to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    (stubs, path.to_string_lossy().into_owned())
}

#[test]
fn the_example_pushes_on_a_fresh_copy_without_calling_npm_or_pip() {
    let dir = example_project();
    assert!(!dir.path().join(".lamina").exists());
    let (stubs, path) = failing_installers();

    let assert = lamina(dir.path())
        .env("PATH", &path)
        .args(["--json", "push", "--yes"])
        .assert()
        .success();
    let pushed = json_of(&assert.get_output().stdout);
    assert!(
        !stubs.path().join("called").exists(),
        "an installer ran: {}",
        read(stubs.path().join("called"))
    );
    let outcomes: Vec<(&Value, &Value)> = pushed["installs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|report| {
            (
                &report["layer"],
                &report["installs"][0]["outcome"]["status"],
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            (&Value::from("reporting"), &Value::from("no_dependencies")),
            (&Value::from("shared"), &Value::from("adopted")),
        ]
    );
    assert!(pushed["layers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|layer| layer["action"] == "published"));

    lamina(dir.path())
        .env("PATH", &path)
        .args(["push", "--yes"])
        .assert()
        .success()
        .stdout(predicate::str::contains("nothing changed"));
    assert!(!stubs.path().join("called").exists());
}

#[test]
fn a_new_layer_without_dependencies_pushes_without_installers() {
    let dir = project();
    lamina(dir.path())
        .args(["layer", "add", "both", "--runtime", "nodejs", "python"])
        .assert()
        .success();
    support::write(dir.path(), "layers/both/opt/settings.json", b"{}\n");
    let (stubs, path) = failing_installers();

    let assert = lamina(dir.path())
        .env("PATH", &path)
        .args(["--json", "push", "--yes"])
        .assert()
        .success();
    let pushed = json_of(&assert.get_output().stdout);
    assert!(!stubs.path().join("called").exists(), "an installer ran");
    let installs = pushed["installs"][0]["installs"].as_array().unwrap();
    assert_eq!(installs.len(), 2, "{pushed}");
    assert!(installs
        .iter()
        .all(|install| install["outcome"]["status"] == "no_dependencies"));
    assert_eq!(pushed["layers"][0]["action"], "published");
}

#[test]
fn status_says_whether_the_current_content_is_pushed() {
    let dir = example_project();
    lamina(dir.path())
        .arg("status")
        .assert()
        .success()
        .stdout(predicate::str::contains("shared: changed"))
        .stdout(predicate::str::contains("; not pushed to local\n"));
    json_run(dir.path(), &["push", "--yes"]);
    lamina(dir.path())
        .arg("status")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "reporting: unchanged; published as version 1 on local",
        ));

    let extra = support::write(
        dir.path(),
        "layers/reporting/opt/config/extra.json",
        b"{}\n",
    );
    let status = json_run(dir.path(), &["status", "reporting"]);
    assert_eq!(status["target"], "local");
    let reporting = &status["layers"][0];
    assert_eq!(reporting["status"], "changed");
    assert_eq!(reporting["push_status"], "not_pushed");
    assert_eq!(reporting["published"], Value::Null);
    assert_eq!(reporting["last_push"]["version"], 1, "{status}");
    lamina(dir.path())
        .arg("status")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "reporting: changed (1 added); not pushed to local (last pushed: version 1, ",
        ));

    json_run(dir.path(), &["push", "--yes"]);
    let status = json_run(dir.path(), &["status", "reporting"]);
    assert_eq!(status["layers"][0]["published"]["version"], 2, "{status}");

    std::fs::remove_file(extra).unwrap();
    let status = json_run(dir.path(), &["status", "reporting"]);
    let reporting = &status["layers"][0];
    assert_eq!(
        reporting["status"], "changed",
        "changed since the last build"
    );
    assert_eq!(
        reporting["published"]["version"], 1,
        "the content of version 1 again: {status}"
    );
}

#[test]
fn function_remove_deletes_the_deployed_function_only_when_confirmed() {
    let dir = example_project();
    json_run(dir.path(), &["push", "--yes"]);
    let record = dir.path().join(".lamina/registry/functions/api.json");
    assert!(record.is_file());
    let manifest_before = read(dir.path().join("lamina.toml"));

    lamina(dir.path())
        .args(["function", "remove", "api"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("deployed on local registry"))
        .stderr(predicate::str::contains("pass --yes"));
    assert!(record.is_file(), "nothing was deleted");
    assert_eq!(read(dir.path().join("lamina.toml")), manifest_before);

    lamina(dir.path())
        .args(["function", "remove", "api", "--yes"])
        .assert()
        .success()
        .stdout(predicate::str::contains("deleted the deployed function"));
    assert!(!record.exists());
    assert!(!read(dir.path().join("lamina.toml")).contains("[functions.api]"));

    let report = dir.path().join(".lamina/registry/functions/report.json");
    lamina(dir.path())
        .args(["function", "remove", "report", "--keep-deployed"])
        .assert()
        .success();
    assert!(report.is_file(), "--keep-deployed leaves it on the target");

    lamina(dir.path())
        .args([
            "function",
            "add",
            "api",
            "--runtime",
            "nodejs22.x",
            "--handler",
            "index.handler",
        ])
        .assert()
        .success();
    lamina(dir.path())
        .args(["function", "remove", "api"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "note: function `api` was not deployed",
        ));
    lamina(dir.path())
        .args(["function", "remove"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("missing the function's NAME"));
}

#[test]
fn function_update_without_a_layer_list_names_the_flags() {
    let dir = example_project();
    lamina(dir.path())
        .args(["function", "update", "api"])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "missing --layer REF... or --no-layers",
        ));
    lamina(dir.path())
        .args(["function", "update", "--no-layers"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("missing the function's NAME"));
    lamina(dir.path())
        .args(["function", "update", "ghost"])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "no function `ghost`; functions: api, report",
        ));
}

#[test]
fn files_written_atomically_are_readable_by_everyone() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let dir = example_project();
    let manifest = dir.path().join("lamina.toml");
    std::fs::set_permissions(&manifest, std::fs::Permissions::from_mode(0o664)).unwrap();
    json_run(dir.path(), &["push", "--yes"]);

    let registry = dir.path().join(".lamina/registry");
    let written = [
        registry.join("layers/shared/versions/1.json"),
        registry.join("layers/shared/layer.json"),
        registry.join("functions/api.json"),
        dir.path().join(".lamina/installs/shared.json"),
    ];
    for path in &written {
        assert_eq!(mode(path), 0o644, "{}", path.display());
    }
    lamina(dir.path())
        .args(["function", "remove", "api", "--yes"])
        .assert()
        .success();
    assert_eq!(mode(&manifest), 0o664, "an edited manifest keeps its mode");
}

#[test]
fn a_damaged_built_zip_is_removed_and_rebuilt_on_the_next_push() {
    let dir = project();
    lamina(dir.path())
        .args(["layer", "add", "cfg", "--runtime", "nodejs"])
        .assert()
        .success();
    support::write(dir.path(), "layers/cfg/opt/settings.json", b"{\"a\": 1}\n");
    let built = json_run(dir.path(), &["build"]);
    let zip_path = PathBuf::from(built["layers"][0]["zip"].as_str().unwrap());
    // One byte flipped: same size, so the build reuses the zip by name and size.
    let mut bytes = std::fs::read(&zip_path).unwrap();
    bytes[40] ^= 0xff;
    std::fs::write(&zip_path, &bytes).unwrap();

    lamina(dir.path())
        .args(["push", "--yes"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("was damaged and has been removed"));
    assert!(!zip_path.exists());
    lamina(dir.path())
        .args(["push", "--yes"])
        .assert()
        .success()
        .stdout(predicate::str::contains("layer `cfg`: published version 1"));
}

#[test]
fn function_add_with_six_layers_names_the_flag_and_count() {
    let dir = example_project();
    let mut command = lamina(dir.path());
    command.args([
        "function",
        "add",
        "six",
        "--runtime",
        "nodejs22.x",
        "--handler",
        "index.handler",
    ]);
    for n in 1..=6 {
        command.args([
            "--layer",
            &format!("arn:aws:lambda:eu-west-1:123456789012:layer:l{n}:1"),
        ]);
    }
    command
        .assert()
        .failure()
        .stderr(predicate::str::contains("--layer: 6 layers given"));
}

#[test]
fn gc_drops_a_function_code_zip_once_newer_code_is_deployed() {
    let dir = example_project();
    let zips = || -> std::collections::BTreeSet<String> {
        support::built_zips(dir.path()).into_iter().collect()
    };
    lamina(dir.path())
        .args(["push", "--yes"])
        .assert()
        .success();
    let first = zips();
    let handler = dir.path().join("functions/api/src/index.js");
    let code = read(&handler) + "// changed\n";
    std::fs::write(&handler, code).unwrap();
    lamina(dir.path())
        .args(["push", "--yes"])
        .assert()
        .success();
    let second = zips();
    assert_eq!(second.difference(&first).count(), 1, "the new code zip");

    lamina(dir.path())
        .args(["cache", "gc", "--keep-last", "0"])
        .assert()
        .success();
    let third = zips();
    let removed: Vec<&String> = second.difference(&third).collect();
    assert_eq!(
        removed.len(),
        1,
        "only the replaced code zip goes: {removed:?}"
    );
    assert!(first.contains(removed[0]));
}

#[test]
fn a_function_over_the_layer_limit_can_be_repaired_with_lamina() {
    let dir = example_project();
    let manifest = dir.path().join("lamina.toml");
    let refs: Vec<String> = (1..=6)
        .map(|n| format!("\"arn:aws:lambda:eu-west-1:123456789012:layer:l{n}:1\""))
        .collect();
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str(&format!(
        "\n[functions.wide]\nruntime = \"nodejs22.x\"\nhandler = \"index.handler\"\n\
         layers = [{}]\n",
        refs.join(", ")
    ));
    std::fs::write(&manifest, text).unwrap();
    std::fs::create_dir_all(dir.path().join("functions/wide/src")).unwrap();
    std::fs::write(
        dir.path().join("functions/wide/src/index.js"),
        "exports.handler = 1;\n",
    )
    .unwrap();

    lamina(dir.path())
        .args(["push", "--yes"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("wide"));
    lamina(dir.path())
        .args(["function", "update", "wide", "--no-layers"])
        .assert()
        .success();
    lamina(dir.path())
        .args(["push", "--yes"])
        .assert()
        .success();
}
