//! Push planning, execution and version management against a real local registry in a
//! temporary folder. Build results are made by hand from small real zips: planning takes them as
//! input and never builds.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use lamina::access::AccessSet;
use lamina::build::{BuildReport, BuildStats, BuildStatus, Changes, StateDir};
use lamina::cache::{Owner, ZipRecord};
use lamina::deploy::local::LocalRegistry;
use lamina::deploy::push::{
    self, FunctionAction, FunctionOutcome, LayerAction, LayerOutcome, PlanOptions, PlanProblem,
    PushError, PushPlan, PushReport, ResolvedLayer, MAX_UNZIPPED_BYTES,
};
use lamina::deploy::versions::{self, ApplyTo, RemoveSelection};
use lamina::deploy::{open_target, DeployError, PublishLayer, Target};
use lamina::digest::Digest;
use lamina::manifest::{
    CacheConfig, FunctionConfig, LayerConfig, LayerRef, Manifest, TargetConfig, TargetKind,
};
use lamina::progress::NoProgress;
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

use crate::support::tempdir;

const NODE: &str = "nodejs22.x";
const PYTHON: &str = "python3.13";
const EXTERNAL_ARN: &str = "arn:aws:lambda:eu-west-1:123456789012:layer:external:4";

/// A project folder with a registry, a manifest and the current build of each layer and function.
struct Project {
    dir: TempDir,
    registry: LocalRegistry,
    manifest: Manifest,
    layer_builds: BTreeMap<String, BuildReport>,
    function_builds: BTreeMap<String, BuildReport>,
}

impl Project {
    fn new() -> Project {
        let dir = tempdir();
        let registry = LocalRegistry::open(dir.path().join(".lamina/registry")).unwrap();
        let manifest = Manifest {
            root: dir.path().to_path_buf(),
            name: "shop".to_string(),
            target: TargetConfig::default(),
            cache: CacheConfig::default(),
            layers: BTreeMap::new(),
            functions: BTreeMap::new(),
        };
        Project {
            dir,
            registry,
            manifest,
            layer_builds: BTreeMap::new(),
            function_builds: BTreeMap::new(),
        }
    }

    /// Adds (or replaces) a layer and builds it with `content` as its one file.
    fn layer(&mut self, name: &str, runtimes: &[&str], content: &str) -> &mut LayerConfig {
        self.build_layer(name, content);
        let config = LayerConfig {
            name: name.to_string(),
            path: PathBuf::from(format!("layers/{name}")),
            runtimes: runtimes.iter().map(|runtime| runtime.to_string()).collect(),
            architectures: vec!["x86_64".to_string()],
            access: AccessSet::default(),
        };
        self.manifest.layers.insert(name.to_string(), config);
        self.manifest.layers.get_mut(name).unwrap()
    }

    /// A new build of an existing layer, as after editing its files.
    fn build_layer(&mut self, name: &str, content: &str) -> &mut BuildReport {
        let report = self.build(Owner::Layer(name.to_string()), content);
        self.layer_builds.insert(name.to_string(), report);
        self.layer_builds.get_mut(name).unwrap()
    }

    fn function(&mut self, name: &str, runtime: &str, layers: Vec<LayerRef>) {
        self.build_function(name, &format!("exports.handler = () => '{name}';"));
        let config = FunctionConfig {
            name: name.to_string(),
            runtime: runtime.to_string(),
            handler: "index.handler".to_string(),
            source: PathBuf::from(format!("functions/{name}/src")),
            layers,
            architectures: vec!["x86_64".to_string()],
            role: None,
        };
        self.manifest.functions.insert(name.to_string(), config);
    }

    fn build_function(&mut self, name: &str, content: &str) -> &mut BuildReport {
        let report = self.build(Owner::Function(name.to_string()), content);
        self.function_builds.insert(name.to_string(), report);
        self.function_builds.get_mut(name).unwrap()
    }

    fn set_layers(&mut self, function: &str, layers: Vec<LayerRef>) {
        self.manifest.functions.get_mut(function).unwrap().layers = layers;
    }

    /// Writes a real zip holding `content` and describes it as the engine would.
    fn build(&self, owner: Owner, content: &str) -> BuildReport {
        let bytes = zip_bytes(content);
        let sha256: [u8; 32] = Sha256::digest(&bytes).into();
        // The content digest of a real build covers the entry list; here any value that
        // follows the content will do.
        let digest = Digest(*blake3::hash(content.as_bytes()).as_bytes());
        let file_name = format!("{}.zip", digest.to_hex());
        let zip_path = self.dir.path().join(".lamina/build").join(&file_name);
        std::fs::create_dir_all(zip_path.parent().unwrap()).unwrap();
        std::fs::write(&zip_path, &bytes).unwrap();
        BuildReport {
            owner,
            digest,
            status: BuildStatus::Built,
            zip: Some(ZipRecord {
                digest,
                sha256,
                size: bytes.len() as u64,
                entries: 1,
                unzipped_bytes: content.len() as u64,
                file_name,
            }),
            zip_path: Some(zip_path),
            unzipped_bytes: content.len() as u64,
            entries: 1,
            // Hand-made builds stand for code layers unless a test says otherwise.
            top_level_dirs: ["nodejs".to_string()].into(),
            changed: true,
            previous: None,
            changes: Changes::default(),
            stats: BuildStats::default(),
        }
    }

    fn plan(&mut self) -> Result<PushPlan, PushError> {
        self.plan_with(PlanOptions::new(None))
    }

    fn plan_with(&mut self, options: PlanOptions) -> Result<PushPlan, PushError> {
        push::plan(
            &self.manifest,
            &mut self.registry,
            &self.layer_builds,
            &self.function_builds,
            &options,
        )
    }

    fn push(&mut self) -> PushReport {
        let plan = self.plan().unwrap();
        push::execute(&plan, &mut self.registry, &NoProgress).unwrap()
    }

    fn problems(&mut self) -> Vec<PlanProblem> {
        match self.plan() {
            Err(PushError::Invalid { problems }) => problems,
            other => panic!("expected an invalid plan, got {other:?}"),
        }
    }

    fn version_numbers(&mut self, layer: &str) -> Vec<u64> {
        let versions = self.registry.layer_versions(layer).unwrap();
        versions.iter().map(|version| version.version).collect()
    }

    fn deployed_layers(&mut self, function: &str) -> Vec<String> {
        self.registry.function(function).unwrap().unwrap().layers
    }
}

/// A zip with one file, `lib/content.txt`. zip's defaults without its `time` feature stamp a fixed
/// date, so equal content gives equal bytes, as lamina's own packer guarantees.
fn zip_bytes(content: &str) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    writer
        .start_file("lib/content.txt", zip::write::SimpleFileOptions::default())
        .unwrap();
    writer.write_all(content.as_bytes()).unwrap();
    writer.finish().unwrap().into_inner()
}

fn latest(layer: &str) -> LayerRef {
    LayerRef::Latest(layer.to_string())
}

fn pinned(layer: &str, version: u64) -> LayerRef {
    LayerRef::Pinned(layer.to_string(), version)
}

fn arn(layer: &str, version: u64) -> String {
    lamina::deploy::local::layer_version_arn(layer, version)
}

fn accounts(ids: &[&str]) -> AccessSet {
    AccessSet {
        accounts: ids.iter().map(|id| id.to_string()).collect(),
        ..AccessSet::default()
    }
}

fn layer_actions(report: &PushReport) -> Vec<(String, LayerOutcome, u64)> {
    let layers = report.layers.iter();
    layers
        .map(|layer| (layer.layer.clone(), layer.action, layer.version))
        .collect()
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn first_push_publishes_and_a_second_publishes_nothing() {
    let mut project = Project::new();
    project.layer("shared", &[NODE], "v1");
    project.function("api", NODE, vec![latest("shared")]);

    let first = project.push();
    assert_eq!(
        layer_actions(&first),
        [("shared".to_string(), LayerOutcome::Published, 1)]
    );
    assert_eq!(first.functions[0].action, FunctionOutcome::Deployed);
    assert_eq!(first.functions[0].layers, [arn("shared", 1)]);

    let plan = project.plan().unwrap();
    assert!(!plan.has_changes(), "{:?}", plan.render());
    let second = push::execute(&plan, &mut project.registry, &NoProgress).unwrap();
    assert_eq!(
        layer_actions(&second),
        [("shared".to_string(), LayerOutcome::Unchanged, 1)]
    );
    assert_eq!(second.functions[0].action, FunctionOutcome::Unchanged);
    assert!(!second.has_changes());
    assert_eq!(project.version_numbers("shared"), [1]);
}

#[test]
fn a_content_change_publishes_the_next_version_and_redeploys() {
    let mut project = Project::new();
    project.layer("shared", &[NODE], "v1");
    project.function("api", NODE, vec![latest("shared")]);
    project.push();

    project.build_layer("shared", "v2");
    let plan = project.plan().unwrap();
    let expected = FunctionAction::Update {
        code_changed: false,
        layers_changed: true,
        config_changed: false,
    };
    assert_eq!(plan.functions[0].action, expected);
    let report = push::execute(&plan, &mut project.registry, &NoProgress).unwrap();
    assert_eq!(
        layer_actions(&report),
        [("shared".to_string(), LayerOutcome::Published, 2)]
    );
    assert_eq!(project.deployed_layers("api"), [arn("shared", 2)]);
}

#[test]
fn function_code_change_redeploys_without_publishing() {
    let mut project = Project::new();
    project.layer("shared", &[NODE], "v1");
    project.function("api", NODE, vec![latest("shared")]);
    project.push();

    project.build_function("api", "exports.handler = () => 'changed';");
    let plan = project.plan().unwrap();
    assert!(matches!(plan.layers[0].action, LayerAction::Unchanged(_)));
    let expected = FunctionAction::Update {
        code_changed: true,
        layers_changed: false,
        config_changed: false,
    };
    assert_eq!(plan.functions[0].action, expected);
}

#[test]
fn a_configuration_change_alone_redeploys_the_function() {
    let mut project = Project::new();
    project.layer("shared", &[NODE], "v1").architectures = vec!["x86_64".into(), "arm64".into()];
    project.function("api", NODE, vec![latest("shared")]);
    project.push();
    let config_only = FunctionAction::Update {
        code_changed: false,
        layers_changed: false,
        config_changed: true,
    };
    fn role(name: &str) -> String {
        format!("arn:aws:iam::123456789012:role/{name}")
    }
    type Edit = fn(&mut FunctionConfig);
    let edits: [(&str, Edit); 4] = [
        ("handler", |config| config.handler = "main.handler".into()),
        ("architectures", |config| {
            config.architectures = vec!["arm64".into()]
        }),
        ("a role where there was none", |config| {
            config.role = Some(role("first"))
        }),
        ("another role", |config| config.role = Some(role("second"))),
    ];
    for (what, edit) in edits {
        edit(project.manifest.functions.get_mut("api").unwrap());
        let plan = project.plan().unwrap();
        assert_eq!(plan.functions[0].action, config_only, "{what}");
        push::execute(&plan, &mut project.registry, &NoProgress).unwrap();
        let plan = project.plan().unwrap();
        assert_eq!(
            plan.functions[0].action,
            FunctionAction::Unchanged,
            "{what}"
        );
    }
    let state = project.registry.function("api").unwrap().unwrap();
    assert_eq!(state.architectures, ["arm64"]);
    assert_eq!(state.role, Some(role("second")));

    // Without a role the manifest has no say over it: the function keeps the one it has, also
    // when its code changes.
    project.manifest.functions.get_mut("api").unwrap().role = None;
    let plan = project.plan().unwrap();
    assert_eq!(plan.functions[0].action, FunctionAction::Unchanged);
    project.build_function("api", "exports.handler = () => 'new code';");
    project.push();
    let state = project.registry.function("api").unwrap().unwrap();
    assert_eq!(state.role, Some(role("second")));
}

#[test]
fn reverting_to_older_content_publishes_nothing_and_latest_is_that_version() {
    let mut project = Project::new();
    project.layer("shared", &[NODE], "v1");
    project.function("api", NODE, vec![latest("shared")]);
    project.push();
    project.build_layer("shared", "v2");
    project.push();

    project.build_layer("shared", "v1");
    let report = project.push();
    assert_eq!(
        layer_actions(&report),
        [("shared".to_string(), LayerOutcome::Unchanged, 1)]
    );
    assert_eq!(report.functions[0].layers, [arn("shared", 1)]);
    assert_eq!(project.deployed_layers("api"), [arn("shared", 1)]);
    assert_eq!(project.version_numbers("shared"), [1, 2]);
}

#[test]
fn new_runtimes_or_architectures_publish_the_same_content_again() {
    let mut project = Project::new();
    project.layer("shared", &[NODE], "v1");
    project.function("api", NODE, vec![latest("shared")]);
    project.push();

    let set = |project: &mut Project, runtimes: &[&str], architectures: &[&str]| {
        let config = project.manifest.layers.get_mut("shared").unwrap();
        config.runtimes = runtimes.iter().map(|r| r.to_string()).collect();
        config.architectures = architectures.iter().map(|a| a.to_string()).collect();
    };
    // Each change gets a version of its own; a list in another order is the same list, and
    // going back finds the version that has the old lists.
    let steps: [(&[&str], &[&str], LayerOutcome, u64); 5] = [
        (&[NODE, PYTHON], &["x86_64"], LayerOutcome::Published, 2),
        (&[PYTHON, NODE], &["x86_64"], LayerOutcome::Unchanged, 2),
        (
            &[NODE, PYTHON],
            &["x86_64", "arm64"],
            LayerOutcome::Published,
            3,
        ),
        (
            &[NODE, PYTHON],
            &["arm64", "x86_64"],
            LayerOutcome::Unchanged,
            3,
        ),
        (&[NODE], &["x86_64"], LayerOutcome::Unchanged, 1),
    ];
    for (runtimes, architectures, outcome, version) in steps {
        set(&mut project, runtimes, architectures);
        let report = project.push();
        let expected = [("shared".to_string(), outcome, version)];
        assert_eq!(
            layer_actions(&report),
            expected,
            "{runtimes:?} {architectures:?}"
        );
        assert_eq!(project.deployed_layers("api"), [arn("shared", version)]);
    }
    let versions = project.registry.layer_versions("shared").unwrap();
    assert_eq!(versions[2].runtimes, [NODE, PYTHON]);
    assert_eq!(versions[2].architectures, ["x86_64", "arm64"]);
}

#[test]
fn a_version_published_meanwhile_with_other_runtimes_does_not_stand_for_the_push() {
    let mut project = Project::new();
    project.layer("shared", &[NODE], "v1");
    project.function("api", NODE, vec![latest("shared")]);
    let plan = project.plan().unwrap();

    // Another push publishes the same content for other runtimes after this plan was made.
    let LayerAction::Publish(request) = &plan.layers[0].action else {
        panic!("expected a publish: {:?}", plan.layers[0].action);
    };
    let other = PublishLayer {
        runtimes: vec![PYTHON.to_string()],
        ..request.clone()
    };
    project.registry.publish_layer_version(&other).unwrap();

    let report = push::execute(&plan, &mut project.registry, &NoProgress).unwrap();
    assert_eq!(
        layer_actions(&report),
        [("shared".to_string(), LayerOutcome::Published, 2)]
    );
}

#[test]
fn publish_then_crash_then_plan_publishes_nothing() {
    let mut project = Project::new();
    project.layer("shared", &[NODE], "v1");
    project.function("api", NODE, vec![latest("shared")]);
    let plan = project.plan().unwrap();
    let LayerAction::Publish(request) = &plan.layers[0].action else {
        panic!("{plan:?}")
    };

    // The publish went through, then the process died before anything else happened.
    project.registry.publish_layer_version(request).unwrap();

    let again = project.plan().unwrap();
    let LayerAction::Unchanged(version) = &again.layers[0].action else {
        panic!("{again:?}")
    };
    assert_eq!(version.version, 1);
    let report = push::execute(&again, &mut project.registry, &NoProgress).unwrap();
    assert_eq!(report.functions[0].layers, [arn("shared", 1)]);
    assert_eq!(project.version_numbers("shared"), [1]);
}

#[test]
fn version_numbers_are_not_reused_after_removal() {
    let mut project = Project::new();
    project.layer("shared", &[NODE], "v1");
    project.push();
    project.build_layer("shared", "v2");
    project.push();

    let removed = versions::remove_versions(
        &project.manifest,
        &mut project.registry,
        "shared",
        &RemoveSelection::All,
    )
    .unwrap();
    assert_eq!(removed, [1, 2]);
    assert!(project.version_numbers("shared").is_empty());

    project.build_layer("shared", "v3");
    let report = project.push();
    assert_eq!(
        layer_actions(&report),
        [("shared".to_string(), LayerOutcome::Published, 3)]
    );
    assert_eq!(report.layers[0].arn, arn("shared", 3));
}

#[test]
fn removed_content_is_published_again_under_a_new_number() {
    let mut project = Project::new();
    project.layer("shared", &[NODE], "v1");
    project.push();
    let selection = RemoveSelection::Versions(vec![1]);
    versions::remove_versions(
        &project.manifest,
        &mut project.registry,
        "shared",
        &selection,
    )
    .unwrap();

    let report = project.push();
    assert_eq!(
        layer_actions(&report),
        [("shared".to_string(), LayerOutcome::Published, 2)]
    );
}

#[test]
fn pinned_and_latest_resolve_to_their_versions() {
    let mut project = Project::new();
    project.layer("shared", &[NODE], "v1");
    project.push();
    project.build_layer("shared", "v2");
    project.function("old", NODE, vec![pinned("shared", 1)]);
    project.function("new", NODE, vec![latest("shared")]);

    let plan = project.plan().unwrap();
    let old = &plan
        .functions
        .iter()
        .find(|f| f.function == "old")
        .unwrap()
        .layers;
    let new = &plan
        .functions
        .iter()
        .find(|f| f.function == "new")
        .unwrap()
        .layers;
    let expected_old = ResolvedLayer::Existing {
        layer: "shared".to_string(),
        version: 1,
        arn: arn("shared", 1),
    };
    assert_eq!(old, &[expected_old]);
    assert_eq!(
        new,
        &[ResolvedLayer::New {
            layer: "shared".to_string()
        }]
    );

    push::execute(&plan, &mut project.registry, &NoProgress).unwrap();
    assert_eq!(project.deployed_layers("old"), [arn("shared", 1)]);
    assert_eq!(project.deployed_layers("new"), [arn("shared", 2)]);
}

#[test]
fn layer_order_is_preserved_and_a_reorder_redeploys() {
    let mut project = Project::new();
    project.layer("a", &[NODE], "a1");
    project.layer("b", &[NODE], "b1");
    project.function(
        "api",
        NODE,
        vec![latest("b"), latest("a"), LayerRef::Arn(EXTERNAL_ARN.into())],
    );
    project.push();
    assert_eq!(
        project.deployed_layers("api"),
        [arn("b", 1), arn("a", 1), EXTERNAL_ARN.into()]
    );

    project.set_layers(
        "api",
        vec![latest("a"), latest("b"), LayerRef::Arn(EXTERNAL_ARN.into())],
    );
    let plan = project.plan().unwrap();
    let expected = FunctionAction::Update {
        code_changed: false,
        layers_changed: true,
        config_changed: false,
    };
    assert_eq!(plan.functions[0].action, expected);
    push::execute(&plan, &mut project.registry, &NoProgress).unwrap();
    assert_eq!(
        project.deployed_layers("api"),
        [arn("a", 1), arn("b", 1), EXTERNAL_ARN.into()]
    );
}

#[test]
fn an_arn_of_a_project_layer_beside_its_name_is_refused() {
    let mut project = Project::new();
    project.layer("shared", &[NODE], "v1");
    project.function("api", NODE, vec![latest("shared")]);
    project.push();

    let twice = vec![latest("shared"), LayerRef::Arn(arn("shared", 1))];
    project.set_layers("api", twice);
    let expected = PlanProblem::SameLayerTwice {
        function: "api".to_string(),
        first: "`shared`".to_string(),
        second: format!("`{}`", arn("shared", 1)),
    };
    assert_eq!(project.problems(), std::slice::from_ref(&expected));
    // The same while `@latest` is a version yet to be published.
    project.build_layer("shared", "v2");
    assert_eq!(project.problems(), [expected]);

    let other = vec![latest("shared"), LayerRef::Arn(EXTERNAL_ARN.into())];
    project.set_layers("api", other);
    assert!(project.plan().is_ok(), "{:?}", project.plan());
}

#[test]
fn more_than_five_layers_is_refused_counting_arns() {
    let mut project = Project::new();
    let mut refs = Vec::new();
    for name in ["a", "b", "c", "d"] {
        project.layer(name, &[NODE], name);
        refs.push(latest(name));
    }
    refs.push(LayerRef::Arn(EXTERNAL_ARN.into()));
    project.function("api", NODE, refs.clone());
    assert!(project.plan().is_ok(), "five layers are allowed");

    refs.push(LayerRef::Arn(EXTERNAL_ARN.replace("external", "another")));
    project.set_layers("api", refs);
    let problems = project.problems();
    assert_eq!(
        problems,
        [PlanProblem::TooManyLayers {
            function: "api".to_string(),
            count: 6
        }]
    );
    assert!(
        project.version_numbers("a").is_empty(),
        "nothing may be published"
    );
}

#[test]
fn unzipped_size_over_the_limit_is_refused() {
    let mut project = Project::new();
    project.layer("big", &[NODE], "big");
    project.function("api", NODE, vec![latest("big")]);
    let code_size = project.function_builds["api"]
        .zip
        .as_ref()
        .unwrap()
        .unzipped_bytes;

    let layer_zip = project
        .layer_builds
        .get_mut("big")
        .unwrap()
        .zip
        .as_mut()
        .unwrap();
    layer_zip.unzipped_bytes = MAX_UNZIPPED_BYTES - code_size;
    assert!(project.plan().is_ok(), "exactly the limit is allowed");

    let layer_zip = project
        .layer_builds
        .get_mut("big")
        .unwrap()
        .zip
        .as_mut()
        .unwrap();
    layer_zip.unzipped_bytes += 1;
    let problems = project.problems();
    let expected = PlanProblem::TooLarge {
        function: "api".to_string(),
        total: MAX_UNZIPPED_BYTES + 1,
        limit: MAX_UNZIPPED_BYTES,
    };
    assert_eq!(problems, [expected]);
}

#[test]
fn the_size_of_a_pinned_version_counts_not_the_current_build() {
    let mut project = Project::new();
    project.layer("big", &[NODE], "v1");
    project
        .layer_builds
        .get_mut("big")
        .unwrap()
        .zip
        .as_mut()
        .unwrap()
        .unzipped_bytes = MAX_UNZIPPED_BYTES;
    project.push();

    project.build_layer("big", "v2");
    project.function("api", NODE, vec![pinned("big", 1)]);
    let problems = project.problems();
    assert!(
        matches!(&problems[..], [PlanProblem::TooLarge { .. }]),
        "{problems:?}"
    );
}

#[test]
fn external_layers_are_noted_as_unchecked() {
    let mut project = Project::new();
    project.function("api", NODE, vec![LayerRef::Arn(EXTERNAL_ARN.into())]);
    let plan = project.plan().unwrap();
    assert!(
        plan.notes.iter().any(|note| note.contains(EXTERNAL_ARN)),
        "{:?}",
        plan.notes
    );
    assert!(
        plan.notes.iter().any(|note| note.contains("unzipped size")),
        "{:?}",
        plan.notes
    );
}

#[test]
fn a_layer_for_other_runtimes_is_refused_and_a_runtime_free_layer_fits_all() {
    let mut project = Project::new();
    project.layer("py", &[PYTHON], "py");
    project.layer("assets", &[], "opt only");
    project.function("api", NODE, vec![latest("assets"), latest("py")]);

    let problems = project.problems();
    let expected = PlanProblem::RuntimeMismatch {
        function: "api".to_string(),
        runtime: NODE.to_string(),
        layer: "`py`".to_string(),
        runtimes: vec![PYTHON.to_string()],
    };
    assert_eq!(problems, [expected]);

    project.set_layers("api", vec![latest("assets")]);
    assert!(project.plan().is_ok());
}

#[test]
fn a_layer_for_another_architecture_is_refused_unless_it_holds_assets_alone() {
    let mut project = Project::new();
    project.layer("shared", &[NODE], "code");
    project.function("api", NODE, vec![latest("shared")]);
    project.push();

    project
        .manifest
        .functions
        .get_mut("api")
        .unwrap()
        .architectures = vec!["arm64".into()];
    let expected = PlanProblem::ArchitectureMismatch {
        function: "api".to_string(),
        architecture: "arm64".to_string(),
        layer: "`shared`".to_string(),
        architectures: vec!["x86_64".to_string()],
    };
    assert_eq!(project.problems(), std::slice::from_ref(&expected));
    assert!(expected
        .to_string()
        .contains("add `arm64` to the layer's architectures"));
    // A pinned version cannot change; whether it holds native code is not known: a note.
    project.set_layers("api", vec![pinned("shared", 1)]);
    let plan = project.plan().unwrap();
    let note = "runs on `arm64`, but layer `shared` version 1 was published for `x86_64`";
    assert!(
        plan.notes.iter().any(|n| n.contains(note)),
        "{:?}",
        plan.notes
    );

    project.set_layers("api", vec![latest("shared")]);
    let layer = project.manifest.layers.get_mut("shared").unwrap();
    layer.architectures = vec!["x86_64".into(), "arm64".into()];
    assert!(project.plan().is_ok(), "{:?}", project.plan());

    // Assets alone (no nodejs/ or python/) hold no native code.
    let layer = project.manifest.layers.get_mut("shared").unwrap();
    layer.architectures = vec!["x86_64".into()];
    let build = project.layer_builds.get_mut("shared").unwrap();
    build.top_level_dirs = ["config".to_string()].into();
    assert!(project.plan().is_ok(), "{:?}", project.plan());
}

#[test]
fn a_layer_with_only_opt_assets_fits_every_runtime_whatever_it_declares() {
    let mut project = Project::new();
    project.layer("config", &[PYTHON], "settings");
    project
        .layer_builds
        .get_mut("config")
        .unwrap()
        .top_level_dirs = ["config".to_string()].into();
    project.function("api", NODE, vec![latest("config")]);
    assert!(project.plan().is_ok(), "{:?}", project.plan());

    // The same layer holding python/ is for Python only, as it says.
    project
        .layer_builds
        .get_mut("config")
        .unwrap()
        .top_level_dirs = ["config".to_string(), "python".to_string()].into();
    assert!(matches!(
        project.problems().as_slice(),
        [PlanProblem::RuntimeMismatch { .. }]
    ));
}

#[test]
fn description_must_have_1_to_256_characters() {
    let mut project = Project::new();
    project.layer("shared", &[NODE], "v1");
    let with = |description: String| PlanOptions {
        description: Some(description),
        now: time::OffsetDateTime::now_utc(),
    };

    for length in [0, 257] {
        let Err(PushError::Invalid { problems }) = project.plan_with(with("é".repeat(length)))
        else {
            panic!("a description of {length} characters was accepted");
        };
        assert_eq!(problems, [PlanProblem::BadDescription { length }]);
    }
    // Characters, not bytes: 256 two-byte characters are allowed.
    let plan = project.plan_with(with("é".repeat(256))).unwrap();
    let LayerAction::Publish(request) = &plan.layers[0].action else {
        panic!()
    };
    assert_eq!(request.description.chars().count(), 256);
}

#[test]
fn the_default_description_names_the_utc_time() {
    let mut project = Project::new();
    project.layer("shared", &[NODE], "v1");
    let now = time::macros::datetime!(2025-03-04 05:06:07.890 +02:00);
    let plan = project
        .plan_with(PlanOptions {
            description: None,
            now,
        })
        .unwrap();
    assert_eq!(
        plan.description,
        "Updated layer version 2025-03-04T03:06:07Z"
    );
}

#[test]
fn a_missing_pinned_version_is_refused() {
    let mut project = Project::new();
    project.layer("shared", &[NODE], "v1");
    project.push();
    project.function("api", NODE, vec![pinned("shared", 7)]);

    let problems = project.problems();
    let expected = PlanProblem::MissingVersion {
        function: "api".to_string(),
        layer: "shared".to_string(),
        version: 7,
        existing: vec![1],
    };
    assert_eq!(problems, [expected]);
}

#[test]
fn every_problem_is_reported_together() {
    let mut project = Project::new();
    project.layer("py", &[PYTHON], "py");
    project.function(
        "api",
        NODE,
        vec![latest("py"), pinned("py", 3), latest("nowhere")],
    );
    project.function(
        "web",
        NODE,
        (0..6)
            .map(|i| LayerRef::Arn(EXTERNAL_ARN.replace("external", &format!("external{i}"))))
            .collect(),
    );

    let error = project.plan().unwrap_err();
    let PushError::Invalid { problems } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(problems.len(), 4, "{problems:#?}");
    let message = error.to_string();
    for needle in ["runs on", "version 3", "`nowhere`", "6 layers"] {
        assert!(message.contains(needle), "{needle} missing from: {message}");
    }
    assert!(project.version_numbers("py").is_empty());
}

#[test]
fn removing_a_pinned_version_is_refused_naming_the_function() {
    let mut project = Project::new();
    project.layer("shared", &[NODE], "v1");
    project.push();
    project.build_layer("shared", "v2");
    project.push();
    project.function("api", NODE, vec![pinned("shared", 1)]);

    let error = versions::remove_versions(
        &project.manifest,
        &mut project.registry,
        "shared",
        &RemoveSelection::All,
    )
    .unwrap_err();
    assert!(
        matches!(&error, DeployError::VersionPinned { version: 1, functions, .. }
            if functions == &["api".to_string()]),
        "{error:?}"
    );
    assert!(error.to_string().contains("`api`"), "{error}");
    assert_eq!(
        project.version_numbers("shared"),
        [1, 2],
        "nothing may be removed"
    );
}

#[test]
fn a_removed_version_stays_with_the_function_that_holds_it_but_cannot_be_pinned() {
    let mut project = Project::new();
    project.layer("shared", &[NODE], "v1");
    project.function("api", NODE, vec![latest("shared")]);
    project.push();
    project.build_layer("shared", "v2");
    project.function("web", NODE, vec![latest("shared")]);
    project.set_layers("api", vec![pinned("shared", 1)]);
    project.push();

    // Unpin so that version 1 may go; `api` still holds it on the target.
    project.manifest.functions.remove("api");
    let record = project.registry.function_path("api");
    let before = std::fs::read(&record).unwrap();
    let selection = RemoveSelection::Versions(vec![1]);
    versions::remove_versions(
        &project.manifest,
        &mut project.registry,
        "shared",
        &selection,
    )
    .unwrap();

    assert_eq!(
        std::fs::read(&record).unwrap(),
        before,
        "the function record is untouched"
    );
    assert_eq!(project.deployed_layers("api"), [arn("shared", 1)]);

    project.function("api", NODE, vec![pinned("shared", 1)]);
    let problems = project.problems();
    assert!(matches!(
        &problems[..],
        [PlanProblem::MissingVersion { version: 1, .. }]
    ));
}

#[test]
fn versions_list_digest_access_and_users() {
    let mut project = Project::new();
    project.layer("shared", &[NODE], "v1").access = accounts(&["123456789012"]);
    project.function("api", NODE, vec![latest("shared")]);
    project.push();
    project.build_layer("shared", "v2");
    project.push();
    project.function("old", NODE, vec![pinned("shared", 1)]);
    // `api` stays deployed with version 2; `old` is pinned to 1 but not deployed yet.

    let infos =
        versions::list_versions(&project.manifest, &mut project.registry, "shared").unwrap();
    assert_eq!(infos.len(), 2);
    let (first, second) = (&infos[0], &infos[1]);
    assert_eq!(
        first.version.digest,
        Some(project.build(Owner::Layer("x".into()), "v1").digest)
    );
    assert_eq!(first.version.access, accounts(&["123456789012"]));
    assert_eq!(first.used_by.len(), 1);
    assert_eq!(
        (first.used_by[0].function.as_str(), first.used_by[0].pinned),
        ("old", true)
    );
    assert!(!first.used_by[0].deployed);
    assert_eq!(second.used_by[0].function, "api");
    assert!(second.used_by[0].deployed && !second.used_by[0].pinned);
    assert!(second
        .version
        .description
        .starts_with("Updated layer version "));
}

#[test]
fn new_versions_get_the_configured_access() {
    let mut project = Project::new();
    project.layer("shared", &[NODE], "v1").access = accounts(&["123456789012"]);
    let report = project.push();
    let change = report.layers[0].access.as_ref().unwrap();
    assert_eq!(change.added, ["lamina-account-123456789012"]);
    let version = &project.registry.layer_versions("shared").unwrap()[0];
    assert_eq!(version.access, accounts(&["123456789012"]));
}

#[test]
fn public_to_specific_accounts_removes_public_access() {
    let mut project = Project::new();
    let public = AccessSet {
        public: true,
        ..AccessSet::default()
    };
    project.layer("shared", &[NODE], "v1").access = public;
    project.push();
    project.build_layer("shared", "v2");
    project.push();

    project.manifest.layers.get_mut("shared").unwrap().access = accounts(&["123456789012"]);
    let applied = versions::apply_access(
        &project.manifest,
        &mut project.registry,
        "shared",
        ApplyTo::All,
    )
    .unwrap();
    assert_eq!(applied.len(), 2);
    for entry in &applied {
        assert_eq!(entry.change.added, ["lamina-account-123456789012"]);
        assert_eq!(entry.change.removed, ["lamina-public"]);
    }
    for version in project.registry.layer_versions("shared").unwrap() {
        assert!(
            !version.access.public,
            "version {} is still public",
            version.version
        );
        assert_eq!(version.access, accounts(&["123456789012"]));
    }

    // The policy on disk says the same, and a second reconcile has nothing to do.
    let record = read_json(&project.registry.version_path("shared", 1));
    assert_eq!(record["policy"].as_array().unwrap().len(), 1);
    let again = versions::apply_access(
        &project.manifest,
        &mut project.registry,
        "shared",
        ApplyTo::All,
    )
    .unwrap();
    assert!(again.iter().all(|entry| entry.change.is_empty()));
}

#[test]
fn apply_to_chooses_the_versions_it_reconciles() {
    let mut project = Project::new();
    project.layer("shared", &[NODE], "v1");
    project.push();
    project.build_layer("shared", "v2");
    project.push();
    project.manifest.layers.get_mut("shared").unwrap().access = accounts(&["123456789012"]);
    let mut apply = |apply_to| {
        versions::apply_access(&project.manifest, &mut project.registry, "shared", apply_to)
    };

    assert!(apply(ApplyTo::Future).unwrap().is_empty());
    let latest: Vec<u64> = apply(ApplyTo::Latest)
        .unwrap()
        .iter()
        .map(|a| a.version)
        .collect();
    assert_eq!(latest, [2]);
    let first: Vec<u64> = apply(ApplyTo::Version(1))
        .unwrap()
        .iter()
        .map(|a| a.version)
        .collect();
    assert_eq!(first, [1]);
    let missing = apply(ApplyTo::Version(9)).unwrap_err();
    assert!(
        matches!(missing, DeployError::NoSuchVersion { version: 9, .. }),
        "{missing:?}"
    );
}

#[test]
fn foreign_statements_are_left_alone_and_reported() {
    let mut project = Project::new();
    project.layer("shared", &[NODE], "v1");
    project.push();
    let path = project.registry.version_path("shared", 1);
    let mut record = read_json(&path);
    record["policy"] = serde_json::json!([{"sid": "ops", "principal": "111111111111"}]);
    std::fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();

    let change = project
        .registry
        .reconcile_access("shared", 1, &AccessSet::default())
        .unwrap();
    assert_eq!(change.foreign, ["ops"]);
    assert!(change.is_empty());
    assert_eq!(read_json(&path)["policy"][0]["sid"], "ops");
}

#[test]
fn a_damaged_record_is_an_error_naming_it_and_is_not_overwritten() {
    let mut project = Project::new();
    project.layer("shared", &[NODE], "v1");
    project.push();
    let path = project.registry.version_path("shared", 1);
    std::fs::write(&path, b"{ not json").unwrap();

    let error = project.registry.layer_versions("shared").unwrap_err();
    assert!(matches!(&error, DeployError::DamagedRecord { path: p, .. } if p == &path));
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );

    project.build_layer("shared", "v2");
    assert!(matches!(
        project.plan(),
        Err(PushError::Target(DeployError::DamagedRecord { .. }))
    ));
    assert!(project
        .registry
        .reconcile_access("shared", 1, &AccessSet::default())
        .is_err());
    assert_eq!(std::fs::read(&path).unwrap(), b"{ not json");
}

#[test]
fn a_damaged_function_record_is_not_overwritten_by_a_deploy() {
    let mut project = Project::new();
    project.function("api", NODE, vec![]);
    project.push();
    let path = project.registry.function_path("api");
    std::fs::write(&path, b"[]").unwrap();

    project.build_function("api", "exports.handler = 2;");
    let error = project.plan().unwrap_err();
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"[]");
}

#[test]
fn a_record_of_a_newer_format_is_refused_and_kept() {
    let mut project = Project::new();
    project.function("api", NODE, vec![]);
    project.push();
    project.build_function("api", "exports.handler = 3;");
    let plan = project.plan().unwrap();

    // A newer lamina rewrites the record between this one's plan and its deploy.
    let path = project.registry.function_path("api");
    let mut record = read_json(&path);
    record["format"] = 2.into();
    let newer = serde_json::to_vec(&record).unwrap();
    std::fs::write(&path, &newer).unwrap();

    let error = push::execute(&plan, &mut project.registry, &NoProgress).unwrap_err();
    assert!(
        matches!(
            &error,
            PushError::Interrupted {
                source: DeployError::UnsupportedRecord { format: 2, .. },
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), newer);
    assert!(matches!(
        project.plan(),
        Err(PushError::Target(DeployError::UnsupportedRecord { .. }))
    ));
}

#[test]
fn zips_are_stored_once_by_sha256() {
    let mut project = Project::new();
    project.layer("a", &[NODE], "same");
    project.layer("b", &[NODE], "same");
    project.push();
    let blobs: Vec<_> = std::fs::read_dir(project.registry.root().join("blobs"))
        .unwrap()
        .collect();
    // One blob for both layers; the functions of this project have none.
    assert_eq!(blobs.len(), 1);
    let sha256 = project.layer_builds["a"].zip.as_ref().unwrap().sha256;
    let stored = std::fs::read(project.registry.blob_path(&sha256)).unwrap();
    assert_eq!(Sha256::digest(&stored).as_slice(), sha256);
}

#[test]
fn a_blob_goes_with_the_last_record_that_names_it() {
    let mut project = Project::new();
    project.layer("shared", &[NODE], "v1");
    project.function("api", NODE, vec![latest("shared")]);
    project.push();
    let blob_of = |build: &BuildReport| build.zip.as_ref().unwrap().sha256;
    let layer_blob = blob_of(&project.layer_builds["shared"]);
    let first_code = blob_of(&project.function_builds["api"]);
    // Left behind by an older lamina, which never removed blobs.
    let orphan = project.registry.blob_path(&[7; 32]);
    std::fs::write(&orphan, b"orphan").unwrap();

    // Version 2 holds the same content for more runtimes: one blob for both versions.
    project.manifest.layers.get_mut("shared").unwrap().runtimes = vec![NODE.into(), PYTHON.into()];
    project.push();
    project.build_function("api", "exports.handler = () => 'changed';");
    project.push();
    let code = blob_of(&project.function_builds["api"]);
    assert_eq!(
        blobs(&project),
        [layer_blob, code].into(),
        "the old code's blob and the orphan go"
    );

    project.registry.delete_layer_version("shared", 1).unwrap();
    assert_eq!(
        blobs(&project),
        [layer_blob, code].into(),
        "version 2 still names it"
    );
    project.registry.delete_layer_version("shared", 2).unwrap();
    assert_eq!(blobs(&project), [code].into());

    // A record that cannot be read might name any blob: none is removed while it is there.
    let damaged = project.registry.version_path("other", 1);
    std::fs::create_dir_all(damaged.parent().unwrap()).unwrap();
    std::fs::write(&damaged, "{").unwrap();
    project.registry.delete_function("api").unwrap();
    assert_eq!(blobs(&project), [code].into());
    std::fs::remove_file(&damaged).unwrap();
    // The push publishes the layer again (version 3) and creates the function anew.
    project.build_function("api", "exports.handler = () => 'again';");
    project.push();
    project.registry.delete_function("api").unwrap();
    assert_eq!(blobs(&project), [layer_blob].into());
    assert!(!project.registry.blob_path(&first_code).exists());
}

/// The SHA-256 of each blob in the registry.
fn blobs(project: &Project) -> BTreeSet<[u8; 32]> {
    let dir = project.registry.root().join("blobs");
    let names = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name());
    let hex = names.map(|name| {
        name.to_str()
            .unwrap()
            .strip_suffix(".zip")
            .unwrap()
            .to_owned()
    });
    hex.map(|hex| {
        let bytes: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        bytes.try_into().unwrap()
    })
    .collect()
}

#[test]
fn a_push_interrupted_midway_reports_what_it_did_and_a_rerun_finishes_it() {
    let mut project = Project::new();
    project.layer("a", &[NODE], "a1");
    project.layer("b", &[NODE], "b1");
    project.function("api", NODE, vec![latest("a"), latest("b")]);
    let plan = project.plan().unwrap();
    // `b`'s zip changes between planning and publishing: the registry refuses it.
    let zip_path = project.layer_builds["b"].zip_path.clone().unwrap();
    std::fs::write(&zip_path, zip_bytes("tampered")).unwrap();

    let error = push::execute(&plan, &mut project.registry, &NoProgress).unwrap_err();
    let PushError::Interrupted { completed, source } = &error else {
        panic!("{error:?}")
    };
    assert!(
        matches!(source, DeployError::DamagedZipRemoved { .. }),
        "{source:?}"
    );
    assert!(
        !zip_path.exists(),
        "the damaged zip is removed so that it is rebuilt"
    );
    assert_eq!(
        layer_actions(completed),
        [("a".to_string(), LayerOutcome::Published, 1)]
    );
    assert!(project.version_numbers("b").is_empty());
    assert!(project.registry.function("api").unwrap().is_none());

    project.build_layer("b", "b1");
    let report = project.push();
    assert_eq!(
        layer_actions(&report),
        [
            ("a".to_string(), LayerOutcome::Unchanged, 1),
            ("b".to_string(), LayerOutcome::Published, 1)
        ]
    );
    assert_eq!(project.deployed_layers("api"), [arn("a", 1), arn("b", 1)]);
}

#[test]
fn open_target_opens_the_local_registry_and_refuses_aws_without_the_feature() {
    let project = Project::new();
    let state = StateDir {
        path: project.dir.path().join(".lamina"),
    };
    let target = open_target(TargetKind::Local, &project.manifest, &state).unwrap();
    assert!(
        target.describe().contains(".lamina/registry"),
        "{}",
        target.describe()
    );
    if !cfg!(feature = "aws") {
        let error = open_target(TargetKind::Aws, &project.manifest, &state)
            .err()
            .unwrap();
        assert!(matches!(error, DeployError::AwsDisabled), "{error:?}");
    }
}

#[test]
fn the_json_report_has_the_documented_fields() {
    let mut project = Project::new();
    project.layer("shared", &[NODE], "v1");
    project.function("api", NODE, vec![latest("shared")]);
    let report = serde_json::to_value(project.push()).unwrap();

    let layer = &report["layers"][0];
    assert_eq!(layer["layer"], "shared");
    assert_eq!(layer["action"], "published");
    assert_eq!(layer["version"], 1);
    assert_eq!(
        layer["arn"],
        "arn:aws:lambda:local:000000000000:layer:shared:1"
    );
    assert_eq!(layer["digest"].as_str().unwrap().len(), 64);
    assert_eq!(layer["code_sha256"].as_str().unwrap().len(), 44);
    let function = &report["functions"][0];
    assert_eq!(function["function"], "api");
    assert_eq!(function["action"], "deployed");
    assert_eq!(function["layers"], serde_json::json!([arn("shared", 1)]));

    let again = serde_json::to_value(project.push()).unwrap();
    assert_eq!(again["layers"][0]["action"], "unchanged");
    assert_eq!(again["functions"][0]["action"], "unchanged");
}

#[test]
fn records_carry_what_a_version_is() {
    let mut project = Project::new();
    project.layer("shared", &[NODE], "v1");
    project.push();
    let record = read_json(&project.registry.version_path("shared", 1));
    let zip = project.layer_builds["shared"].zip.clone().unwrap();

    assert_eq!(record["format"], 1);
    assert_eq!(record["version"], 1);
    assert_eq!(record["digest"], zip.digest.to_hex());
    assert_eq!(record["sha256"], lamina::deploy::sha256_hex(&zip.sha256));
    assert_eq!(
        record["code_sha256"],
        lamina::deploy::code_sha256(&zip.sha256)
    );
    assert_eq!(record["unzipped_size"], zip.unzipped_bytes);
    assert_eq!(record["runtimes"], serde_json::json!([NODE]));
    assert_eq!(record["architectures"], serde_json::json!(["x86_64"]));
    let created = record["created"].as_str().unwrap();
    let parsed =
        time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339);
    assert!(created.ends_with('Z') && parsed.is_ok(), "{created}");
    let counter = read_json(&project.registry.root().join("layers/shared/layer.json"));
    assert_eq!(counter["last_version"], 1);
}

#[test]
fn the_plan_renders_what_it_will_do() {
    let mut project = Project::new();
    project.layer("shared", &[NODE], "v1");
    project.function("api", NODE, vec![latest("shared")]);
    let lines = project.plan().unwrap().render();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("layer `shared`: publish")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l == "function `api`: create; layers: shared:new"),
        "{lines:?}"
    );
}

#[test]
fn two_pushes_planned_together_publish_the_same_content_once() {
    let mut project = Project::new();
    project.layer("shared", &[NODE], "v1");
    project.function("api", NODE, vec![latest("shared")]);
    let root = project.registry.root().to_path_buf();
    let plans = [project.plan().unwrap(), project.plan().unwrap()];

    // Both plans say "publish", as two processes that planned before either published; they
    // execute at once, each with its own handle on the registry.
    let barrier = std::sync::Barrier::new(2);
    let reports: Vec<PushReport> = std::thread::scope(|scope| {
        let handles: Vec<_> = plans
            .iter()
            .map(|plan| {
                let (root, barrier) = (root.clone(), &barrier);
                scope.spawn(move || {
                    let mut registry = LocalRegistry::open(root).unwrap();
                    barrier.wait();
                    push::execute(plan, &mut registry, &NoProgress).unwrap()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect()
    });

    assert_eq!(project.version_numbers("shared"), [1]);
    let mut outcomes: Vec<LayerOutcome> = reports.iter().map(|r| r.layers[0].action).collect();
    outcomes.sort_by_key(|outcome| *outcome == LayerOutcome::Unchanged);
    assert_eq!(outcomes, [LayerOutcome::Published, LayerOutcome::Unchanged]);
    for report in &reports {
        assert_eq!(report.layers[0].version, 1);
        assert_eq!(report.functions[0].layers, [arn("shared", 1)]);
    }
}

#[test]
fn a_whitespace_only_description_is_refused() {
    let mut project = Project::new();
    project.layer("shared", &[NODE], "v1");
    let options = PlanOptions {
        description: Some(" \t ".to_string()),
        now: time::OffsetDateTime::now_utc(),
    };
    let Err(PushError::Invalid { problems }) = project.plan_with(options) else {
        panic!("a blank description was accepted");
    };
    assert_eq!(problems, [PlanProblem::BlankDescription]);
}

#[test]
fn a_layer_over_the_size_limit_is_refused_even_without_functions() {
    let mut project = Project::new();
    project.layer("huge", &[NODE], "huge");
    let zip = project.layer_builds.get_mut("huge").unwrap().zip.as_mut();
    zip.unwrap().unzipped_bytes = MAX_UNZIPPED_BYTES + 1;

    let expected = PlanProblem::LayerTooLarge {
        layer: "huge".to_string(),
        size: MAX_UNZIPPED_BYTES + 1,
        limit: MAX_UNZIPPED_BYTES,
    };
    assert_eq!(project.problems(), [expected]);
    assert!(project.version_numbers("huge").is_empty());
}

#[test]
fn a_record_whose_two_hashes_disagree_is_damaged_and_nothing_is_published_again() {
    let mut project = Project::new();
    project.layer("shared", &[NODE], "v1");
    project.push();
    let path = project.registry.version_path("shared", 1);
    let mut record = read_json(&path);
    let code_sha256 = record["code_sha256"].as_str().unwrap().to_string();
    let first = if code_sha256.starts_with('A') {
        "B"
    } else {
        "A"
    };
    record["code_sha256"] = format!("{first}{}", &code_sha256[1..]).into();
    std::fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();

    let error = project.plan().unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(&error, PushError::Target(DeployError::DamagedRecord { path: p, .. }) if p == &path),
        "{error:?}"
    );
    assert!(message.contains("`code_sha256`"), "{message}");
    assert_eq!(
        project
            .registry
            .root()
            .join("layers/shared/versions")
            .read_dir()
            .unwrap()
            .count(),
        1
    );
}
