//! The project manifest: finding it, validating it, and editing it without losing comments.

use std::path::Path;

use lamina::access::AccessSet;
use lamina::manifest::{
    find_manifest, FunctionConfig, LayerConfig, LayerRef, Manifest, ManifestDocument, ManifestError,
};

use crate::support;

const MINIMAL: &str = "[project]\nname = \"shop\"\n";

fn layer(name: &str, runtime: &str) -> LayerConfig {
    LayerConfig {
        name: name.into(),
        path: Path::new("layers").join(name),
        runtimes: vec![runtime.into()],
        architectures: vec!["x86_64".into()],
        access: AccessSet::default(),
    }
}

fn function(name: &str, layers: &[&str]) -> FunctionConfig {
    FunctionConfig {
        name: name.into(),
        runtime: "nodejs22.x".into(),
        handler: "index.handler".into(),
        source: Path::new("functions").join(name).join("src"),
        layers: layers
            .iter()
            .map(|text| LayerRef::parse(text).unwrap())
            .collect(),
        architectures: vec!["x86_64".into()],
        role: None,
    }
}

#[test]
fn manifest_is_found_in_a_parent_folder() {
    let project = support::tempdir();
    let manifest_path = support::write(project.path(), "lamina.toml", MINIMAL.as_bytes());
    let deep = project.path().join("layers/shared/lib");
    std::fs::create_dir_all(&deep).unwrap();

    assert_eq!(find_manifest(&deep).unwrap(), manifest_path);
    let manifest = Manifest::discover(None, &deep).unwrap();
    assert_eq!(manifest.root, project.path());
    assert_eq!(manifest.name, "shop");
}

#[test]
fn missing_manifest_names_the_folder_searched_from() {
    let empty = support::tempdir();
    let error = Manifest::discover(None, empty.path()).unwrap_err();
    assert!(matches!(error, ManifestError::NotFound { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains(&empty.path().display().to_string()),
        "{message}"
    );
    assert!(message.contains("lamina init"), "{message}");
}

#[test]
fn project_flag_overrides_the_search() {
    let outer = support::tempdir();
    support::write(
        outer.path(),
        "lamina.toml",
        b"[project]\nname = \"outer\"\n",
    );
    let inner = outer.path().join("inner");
    support::write(&inner, "lamina.toml", b"[project]\nname = \"inner\"\n");
    let elsewhere = support::tempdir();

    let manifest = Manifest::discover(Some(&inner), elsewhere.path()).unwrap();
    assert_eq!(manifest.name, "inner");
    let relative = Manifest::discover(Some(Path::new("inner")), outer.path()).unwrap();
    assert_eq!(relative.name, "inner");

    let error = Manifest::discover(Some(elsewhere.path()), outer.path()).unwrap_err();
    assert!(
        matches!(error, ManifestError::NotInProject { .. }),
        "{error:?}"
    );
    let file = support::write(elsewhere.path(), "notes.txt", b"");
    let error = Manifest::discover(Some(&file), outer.path()).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("is a file, not a project folder"),
        "{error}"
    );
}

/// Each bad manifest must fail with a message that names the file, the line, the key, the bad
/// value and what is allowed instead.
#[test]
fn each_validation_error_names_file_key_and_value() {
    let cases: &[(&str, &[&str])] = &[
        (
            "[layers.\"a.b\"]\nruntimes = [\"nodejs22.x\"]\n",
            &["line 1", "`layers.a.b`", "`a.b`", "1 to 64 characters"],
        ),
        (
            "[layers.shared]\nruntimes = [\"nodejs22.x\", \"nodejs99.x\"]\n",
            &[
                "line 2",
                "`layers.shared.runtimes`",
                "`nodejs99.x`",
                "python3.12",
            ],
        ),
        (
            "[layers.shared]\narchitectures = [\"amd64\"]\n",
            &[
                "line 2",
                "`layers.shared.architectures`",
                "`amd64`",
                "`arm64`",
            ],
        ),
        (
            "[layers.shared]\nruntime = [\"nodejs22.x\"]\n",
            &["line 2", "unknown key `layers.shared.runtime`", "runtimes"],
        ),
        (
            "[projet]\nname = \"x\"\n",
            &["line 1", "unknown key `projet`", "project"],
        ),
        (
            "[layers.shared]\naccess = [\"account:123\"]\n",
            &[
                "line 2",
                "`layers.shared.access`",
                "`account:123`",
                "12 digits",
            ],
        ),
        (
            "[layers.shared]\naccess = [\"public\", \"account:123456789012\"]\n",
            &["`layers.shared.access`", "`account:123456789012`", "public"],
        ),
        (
            "[layers.shared]\npath = \"/abs/shared\"\n",
            &[
                "line 2",
                "`layers.shared.path`",
                "`/abs/shared`",
                "relative path",
            ],
        ),
        (
            "[layers.shared]\n[functions.api]\nruntime = \"nodejs22.x\"\n\
             handler = \"index.handler\"\n\
             layers = [\"shared@first\"]\n",
            &[
                "line 5",
                "`functions.api.layers`",
                "`shared@first`",
                "NAME@latest",
            ],
        ),
        (
            "[functions.api]\nruntime = \"nodejs22.x\"\nhandler = \"index.handler\"\n\
             layers = [\"arn:aws:lambda:eu-west-1:123456789012:layer:x\"]\n",
            &[
                "line 4",
                "`functions.api.layers`",
                "no version",
                "arn:aws:lambda:REGION",
            ],
        ),
        (
            "[functions.api]\nruntime = \"nodejs22.x\"\nhandler = \"index.handler\"\n\
             layers = [\"missing@latest\"]\n",
            &["line 4", "`missing@latest`", "no such layer"],
        ),
        (
            "[functions.api]\nruntime = \"go1.x\"\nhandler = \"main\"\n",
            &["line 2", "`functions.api.runtime`", "`go1.x`", "nodejs22.x"],
        ),
        (
            "[functions.api]\nruntime = \"python3.12\"\nhandler = \"handler\"\n",
            &[
                "line 3",
                "`functions.api.handler`",
                "`handler`",
                "FILE.FUNCTION",
            ],
        ),
        (
            "[functions.api]\nhandler = \"index.handler\"\n",
            &["`functions.api.runtime`", "missing"],
        ),
        (
            "[functions.api]\nruntime = \"nodejs22.x\"\nhandler = \"index.handler\"\n\
             architectures = [\"x86_64\", \"arm64\"]\n",
            &[
                "line 4",
                "`functions.api.architectures`",
                "2 architectures",
                "runs on one",
            ],
        ),
        (
            "[layers.shared]\n[functions.api]\nruntime = \"nodejs22.x\"\n\
             handler = \"index.handler\"\n\
             layers = [\"shared@latest\", \"shared@2\"]\n",
            &["line 5", "function `api`", "`shared` twice"],
        ),
        (
            "[layers.shared]\nruntimes = \"nodejs22.x\"\n",
            &["line 2", "an array of strings"],
        ),
        (
            "[target]\ndefault = \"gcp\"\n",
            &["line 2", "`target.default`", "`gcp`", "`aws`"],
        ),
        (
            "[target.aws]\nlayer_name_prefix = \"shop/\"\n",
            &[
                "line 2",
                "`target.aws.layer_name_prefix`",
                "`shop/`",
                "1 to 64 characters",
            ],
        ),
        ("[project\n", &["line 1", "not valid TOML"]),
    ];
    for (text, expected) in cases {
        let path = Path::new("/projects/shop/lamina.toml");
        let error = Manifest::parse(path, text).unwrap_err().to_string();
        assert!(error.contains("`/projects/shop/lamina.toml`"), "{error}");
        for part in *expected {
            assert!(error.contains(part), "expected {part:?} in: {error}");
        }
    }
}

#[test]
fn a_function_over_the_layer_limit_still_loads_so_it_can_be_fixed() {
    let refs = (1..=6).map(|n| format!("\"arn:aws:lambda:eu-west-1:123456789012:layer:l{n}:1\""));
    let text = format!(
        "[functions.api]\nruntime = \"nodejs22.x\"\nhandler = \"index.handler\"\nlayers = [{}]\n",
        refs.collect::<Vec<_>>().join(", ")
    );
    // The push plan refuses it (see the deploy tests); loading must not, or `function update`
    // could not repair it.
    let manifest = Manifest::parse(Path::new("/p/lamina.toml"), &text).unwrap();
    assert_eq!(manifest.functions["api"].layers.len(), 6);
}

const COMMENTED: &str = r#"# The shop's lamina project.
[project]
name = "shop"   # used in descriptions

# Shared node code.
[layers.shared]
runtimes = ["nodejs22.x"]   # keep in step with the functions
architectures = ["x86_64"]

# The API.
[functions.api]
runtime = "nodejs22.x"
handler = "index.handler"
# Order matters: later layers win.
layers = ["shared@latest"]   # pinned later

# trailing note
"#;

#[test]
fn edits_keep_comments_and_untouched_text() {
    let project = support::tempdir();
    let path = support::write(project.path(), "lamina.toml", COMMENTED.as_bytes());
    let mut document = ManifestDocument::open(&path).unwrap();

    document.add_layer(&layer("py", "python3.12")).unwrap();
    let access = AccessSet::parse(&["account:123456789012"]).unwrap();
    document.set_layer_access("shared", &access).unwrap();
    document
        .add_function(&function("report", &["py@latest", "shared@2"]))
        .unwrap();
    document
        .set_function_layers("api", &[LayerRef::parse("py@latest").unwrap()])
        .unwrap();
    document.save().unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    for comment in [
        "# The shop's lamina project.",
        "name = \"shop\"   # used in descriptions",
        "# Shared node code.",
        "runtimes = [\"nodejs22.x\"]   # keep in step with the functions",
        "# The API.",
        "# Order matters: later layers win.",
        "# pinned later",
        "# trailing note",
    ] {
        assert!(text.contains(comment), "lost {comment:?} in:\n{text}");
    }
    assert!(
        text.contains("layers = [\"py@latest\"]   # pinned later"),
        "{text}"
    );
    assert!(
        text.contains("access = [\"account:123456789012\"]"),
        "{text}"
    );

    // The new layer sits with the other layers, before the functions.
    let py = text.find("[layers.py]").unwrap();
    assert!(text.find("[layers.shared]").unwrap() < py, "{text}");
    assert!(py < text.find("[functions.api]").unwrap(), "{text}");

    let manifest = Manifest::load(&path).unwrap();
    assert_eq!(manifest.layers["shared"].access, access);
    assert_eq!(manifest.functions["report"].layers.len(), 2);
}

#[test]
fn removing_entries_keeps_the_rest_verbatim() {
    let project = support::tempdir();
    let path = support::write(project.path(), "lamina.toml", COMMENTED.as_bytes());
    let mut document = ManifestDocument::open(&path).unwrap();
    document.remove_function("api").unwrap();
    document.remove_layer("shared").unwrap();
    document.save().unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("# The shop's lamina project.\n[project]\nname = \"shop\"   # used"));
    assert!(
        !text.contains("[layers.shared]") && !text.contains("[functions.api]"),
        "{text}"
    );
    assert!(text.contains("# trailing note"), "{text}");
}

#[test]
fn a_layer_in_use_cannot_be_removed() {
    let project = support::tempdir();
    let path = support::write(project.path(), "lamina.toml", COMMENTED.as_bytes());
    let mut document = ManifestDocument::open(&path).unwrap();
    let error = document.remove_layer("shared").unwrap_err();
    assert!(
        matches!(error, ManifestError::LayerInUse { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("`api`"), "{error}");
}

#[test]
fn duplicate_and_unknown_names_are_refused() {
    let project = support::tempdir();
    let path = support::write(project.path(), "lamina.toml", COMMENTED.as_bytes());
    let mut document = ManifestDocument::open(&path).unwrap();

    let duplicate = document
        .add_layer(&layer("shared", "nodejs22.x"))
        .unwrap_err();
    assert!(
        matches!(duplicate, ManifestError::DuplicateLayer { .. }),
        "{duplicate:?}"
    );
    let duplicate = document.add_function(&function("api", &[])).unwrap_err();
    assert!(
        matches!(duplicate, ManifestError::DuplicateFunction { .. }),
        "{duplicate:?}"
    );
    let unknown = document.remove_function("nope").unwrap_err().to_string();
    assert!(
        unknown.contains("no function `nope`") && unknown.contains("api"),
        "{unknown}"
    );
    let unknown = document
        .set_layer_access("nope", &AccessSet::default())
        .unwrap_err();
    assert!(unknown.to_string().contains("layers: shared"), "{unknown}");
}

#[test]
fn an_edit_that_breaks_the_manifest_is_not_written() {
    let project = support::tempdir();
    let path = support::write(project.path(), "lamina.toml", COMMENTED.as_bytes());
    let mut document = ManifestDocument::open(&path).unwrap();
    document
        .set_function_layers("api", &[LayerRef::Latest("ghost".into())])
        .unwrap();

    let error = document.save().unwrap_err();
    assert!(error.to_string().contains("`ghost@latest`"), "{error}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), COMMENTED);
}

#[test]
fn layers_are_added_to_a_manifest_without_any() {
    let project = support::tempdir();
    let path = support::write(project.path(), "lamina.toml", MINIMAL.as_bytes());
    let mut document = ManifestDocument::open(&path).unwrap();
    document.add_layer(&layer("shared", "nodejs22.x")).unwrap();
    document
        .add_function(&function("api", &["shared@latest"]))
        .unwrap();
    let manifest = document.save().unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with(MINIMAL), "{text}");
    assert!(
        !text.contains("[layers]\n"),
        "a bare [layers] header is noise:\n{text}"
    );
    assert_eq!(manifest.layers["shared"], layer("shared", "nodejs22.x"));
    assert_eq!(
        manifest.functions["api"],
        function("api", &["shared@latest"])
    );
}

#[test]
fn a_layer_path_in_the_state_folder_is_refused_naming_key_and_value() {
    for value in [".lamina", ".lamina/registry", "./.lamina/build"] {
        let text = format!("[layers.x]\npath = \"{value}\"\n");
        let error = Manifest::parse(Path::new("/p/lamina.toml"), &text).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("`layers.x.path`"), "{message}");
        assert!(message.contains(&format!("`{value}`")), "{message}");
        assert!(message.contains("lamina's own folder"), "{message}");
    }
    // The project root is a valid layer: the engine never scans `.lamina` below it.
    let root = Manifest::parse(Path::new("/p/lamina.toml"), "[layers.x]\npath = \".\"\n");
    assert!(root.is_ok(), "{root:?}");
}

#[test]
fn a_layer_path_that_links_out_of_the_project_is_refused() {
    let outside = support::tempdir();
    std::fs::create_dir_all(outside.path().join("opt")).unwrap();
    let project = support::tempdir();
    std::fs::create_dir_all(project.path().join("layers")).unwrap();
    std::os::unix::fs::symlink(outside.path(), project.path().join("layers/ext")).unwrap();
    std::os::unix::fs::symlink("../.lamina", project.path().join("layers/state")).unwrap();
    std::fs::create_dir_all(project.path().join(".lamina")).unwrap();

    let text = "[layers.x]\npath = \"layers/ext\"\n";
    support::write(project.path(), "lamina.toml", text.as_bytes());
    let message = Manifest::load(&project.path().join("lamina.toml"))
        .unwrap_err()
        .to_string();
    assert!(message.contains("`layers.x.path`"), "{message}");
    assert!(message.contains("`layers/ext`"), "{message}");
    assert!(message.contains("outside the project"), "{message}");

    let text = "[functions.f]\nruntime = \"nodejs22.x\"\nhandler = \"index.handler\"\n\
                source = \"layers/state\"\n";
    support::write(project.path(), "lamina.toml", text.as_bytes());
    let message = Manifest::load(&project.path().join("lamina.toml"))
        .unwrap_err()
        .to_string();
    assert!(message.contains("`functions.f.source`"), "{message}");
    assert!(message.contains("lamina's own folder"), "{message}");
}
