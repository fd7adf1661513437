//! Push planning and execution, the same for every target.
//!
//! [`plan`] is pure given its inputs: the manifest, the build results of every layer and
//! function (zips already written), and what the target reports. It never builds and never
//! writes. For each layer it publishes a new version only when no existing version has the
//! zip's SHA-256 (`CodeSha256`); zips are reproducible, so equal SHA-256 means equal content, and
//! a revert to an older version's content reuses that version. For each function it resolves the
//! layer references in order and compares code and layer list with what the target has.
//!
//! Because the comparison is with the target's own versions and not with anything lamina wrote
//! down, a push that crashed after publishing finds the published version on its next run and
//! does not publish it again.
//!
//! Every check runs before anything is published, and all problems are reported together in
//! [`PushError::Invalid`]: at most [`MAX_LAYERS`] layers per function (external ARNs count), each
//! layer's runtimes include the function's runtime (a layer listing no runtimes fits all), code
//! plus layers unzip to at most [`MAX_UNZIPPED_BYTES`] (and so does a new layer version on its
//! own, attached or not: over it, no function could use it), a description of 1 to
//! [`MAX_DESCRIPTION_CHARS`] characters, and pinned versions that exist. What cannot be checked
//! (the size and runtimes of a layer outside the project) becomes a note in the plan.
//!
//! [`execute`] publishes, sets the access of new versions, then deploys functions with the ARNs
//! the new versions got. It stops at the first failure and reports what was done before it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use time::OffsetDateTime;

use crate::access::AccessSet;
use crate::build::BuildReport;
use crate::deploy::{
    code_sha256, list_numbers, utc_timestamp, AccessChange, DeployError, DeployFunction,
    LayerVersion, PublishLayer, Target,
};
use crate::digest::Digest;
use crate::manifest::{FunctionConfig, LayerConfig, LayerRef, Manifest};

mod execute;
mod render;

pub use execute::execute;
pub use render::describe_access;

/// Lambda's limit on the layers of one function.
pub const MAX_LAYERS: usize = 5;
/// Lambda's limit on the unzipped size of a function's code plus all its layers, in bytes.
pub const MAX_UNZIPPED_BYTES: u64 = 262_144_000;
/// Lambda's limit on a layer version's description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 256;

/// Choices the user makes about a push.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// The description of new layer versions; `None` for the default
    /// `Updated layer version <UTC timestamp, RFC 3339>`.
    pub description: Option<String>,
    /// The moment of the push, for the default description.
    pub now: OffsetDateTime,
}

impl PlanOptions {
    /// Options for a push happening now.
    pub fn new(description: Option<String>) -> PlanOptions {
        PlanOptions {
            description,
            now: OffsetDateTime::now_utc(),
        }
    }

    /// The description new layer versions get.
    pub fn resolved_description(&self) -> String {
        match &self.description {
            Some(description) => description.clone(),
            None => format!("Updated layer version {}", utc_timestamp(self.now)),
        }
    }
}

/// Everything a push will do, decided before anything is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushPlan {
    /// The description given to every new layer version.
    pub description: String,
    /// One per manifest layer, in name order.
    pub layers: Vec<LayerPlan>,
    /// One per manifest function, in name order.
    pub functions: Vec<FunctionPlan>,
    /// Things that could not be checked, for the user to know (never errors).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerPlan {
    /// The layer's name in the manifest.
    pub layer: String,
    pub digest: Digest,
    /// base64 of the built zip's SHA-256.
    pub code_sha256: String,
    pub action: LayerAction,
    /// The access a new version gets: the layer's configured access, carried forward.
    pub access: AccessSet,
    /// The layer holds only /opt assets, so it fits functions of every runtime whatever its
    /// configured runtimes say.
    pub fits_all_runtimes: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerAction {
    /// No existing version holds this content: publish one.
    Publish(PublishLayer),
    /// An existing version already holds this content (the newest such, if several do).
    Unchanged(LayerVersion),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionPlan {
    /// The function's name in the manifest.
    pub function: String,
    pub action: FunctionAction,
    /// The function's layers in order of application.
    pub layers: Vec<ResolvedLayer>,
    /// The deployment. Its `layers` is empty here: [`execute`] fills it from
    /// [`FunctionPlan::layers`] once new versions have their ARNs.
    pub request: DeployFunction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionAction {
    /// The target has no such function.
    Create,
    /// The function exists and something differs: its code, its layer list (order included), or
    /// its configuration (runtime, handler, architectures, or a role that the manifest names).
    Update {
        code_changed: bool,
        layers_changed: bool,
        config_changed: bool,
    },
    Unchanged,
}

/// A function's layer reference, resolved against the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvedLayer {
    /// A version that exists on the target.
    Existing {
        layer: String,
        version: u64,
        arn: String,
    },
    /// The version this push publishes for `layer`; its number and ARN are known once published.
    New { layer: String },
    /// A layer version ARN outside the project, taken as given.
    External { arn: String },
}

/// What a push did, for `--json` and the summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PushReport {
    pub layers: Vec<LayerReport>,
    pub functions: Vec<FunctionReport>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerReport {
    pub layer: String,
    pub action: LayerOutcome,
    pub version: u64,
    pub arn: String,
    pub digest: Digest,
    pub code_sha256: String,
    /// How the new version's access was set; absent for unchanged layers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessChange>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerOutcome {
    Published,
    Unchanged,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FunctionReport {
    pub function: String,
    pub action: FunctionOutcome,
    /// Resolved layer version ARNs in order of application.
    pub layers: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FunctionOutcome {
    Deployed,
    Unchanged,
}

/// One thing wrong with a plan. A plan collects all of them before refusing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanProblem {
    #[error("{kind} `{name}` has no built zip to push; build it before planning")]
    MissingBuild { kind: &'static str, name: String },

    #[error(
        "function `{function}` uses {count} layers, but Lambda allows at most {MAX_LAYERS} \
         (layer ARNs count too); shorten its `layers` list"
    )]
    TooManyLayers { function: String, count: usize },

    #[error(
        "function `{function}` runs on `{runtime}`, but layer {layer} is only for {}; add \
         `{runtime}` to the layer's runtimes, or use another layer",
        crate::deploy::quote_all(runtimes)
    )]
    RuntimeMismatch {
        function: String,
        runtime: String,
        layer: String,
        runtimes: Vec<String>,
    },

    #[error(
        "function `{function}` names one layer twice, as {first} and as {second}, but Lambda \
         takes one version of a layer per function; keep one of them in its `layers`"
    )]
    SameLayerTwice {
        function: String,
        first: String,
        second: String,
    },

    #[error(
        "function `{function}` runs on `{architecture}`, but layer {layer} is only for {}; add \
         `{architecture}` to the layer's architectures (and install its dependencies again, for \
         native code), or use another layer",
        crate::deploy::quote_all(architectures)
    )]
    ArchitectureMismatch {
        function: String,
        architecture: String,
        layer: String,
        architectures: Vec<String>,
    },

    #[error(
        "function `{function}` unzips to {total} bytes with its layers, over Lambda's limit of \
         {limit} bytes; make the code or its layers smaller, or use fewer layers"
    )]
    TooLarge {
        function: String,
        total: u64,
        limit: u64,
    },

    #[error(
        "layer `{layer}` unzips to {size} bytes, over Lambda's limit of {limit} bytes for a \
         function and all its layers, so no function could use it; make the layer smaller or \
         split it"
    )]
    LayerTooLarge {
        layer: String,
        size: u64,
        limit: u64,
    },

    #[error(
        "the description has {length} characters, but a layer version's must have 1 to \
         {MAX_DESCRIPTION_CHARS}; pass another with `--description`"
    )]
    BadDescription { length: usize },

    #[error(
        "the description is only whitespace, which shows as nothing in version lists; pass one \
         that says what changed with `--description`"
    )]
    BlankDescription,

    #[error(
        "function `{function}` pins layer `{layer}` version {version}, which does not exist on the \
         target: it was never published or has been removed (existing: {}); pin an existing \
         version or use `{layer}@latest`",
        list_numbers(existing)
    )]
    MissingVersion {
        function: String,
        layer: String,
        version: u64,
        existing: Vec<u64>,
    },

    #[error(
        "function `{function}` uses layer `{layer}`, which is not in lamina.toml; add it with \
         `lamina layer add {layer}` or change the reference"
    )]
    UnknownLayer { function: String, layer: String },
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Target(#[from] DeployError),

    #[error(
        "the push cannot go ahead, and nothing was published:{}",
        render_problems(problems)
    )]
    Invalid { problems: Vec<PlanProblem> },

    #[error(
        "the push stopped after publishing {} layer version(s) and deploying {} function(s); \
         run it again to finish, as what was published is found and not published twice",
        completed.published_count(),
        completed.deployed_count()
    )]
    Interrupted {
        /// What was done before the failure.
        completed: Box<PushReport>,
        #[source]
        source: DeployError,
    },
}

impl PushReport {
    /// Whether the push published or deployed anything.
    pub fn has_changes(&self) -> bool {
        self.published_count() + self.deployed_count() > 0
    }

    fn published_count(&self) -> usize {
        let published = self
            .layers
            .iter()
            .filter(|layer| layer.action == LayerOutcome::Published);
        published.count()
    }

    fn deployed_count(&self) -> usize {
        let functions = self.functions.iter();
        functions
            .filter(|function| function.action == FunctionOutcome::Deployed)
            .count()
    }
}

fn render_problems(problems: &[PlanProblem]) -> String {
    problems
        .iter()
        .map(|problem| format!("\n  - {problem}"))
        .collect()
}

/// A built zip, as planning needs it.
#[derive(Debug, Clone)]
struct BuiltZip {
    digest: Digest,
    code_sha256: String,
    path: PathBuf,
    size: u64,
    unzipped_size: u64,
    /// No `nodejs/` or `python/` folder: only assets for /opt, which every runtime can use.
    fits_all_runtimes: bool,
}

/// The zip root folders that a runtime searches for libraries.
const RUNTIME_FOLDERS: [&str; 2] = ["nodejs", "python"];

impl BuiltZip {
    fn from_report(report: &BuildReport) -> Option<BuiltZip> {
        let (zip, path) = (report.zip.as_ref()?, report.zip_path.as_ref()?);
        Some(BuiltZip {
            digest: report.digest,
            code_sha256: code_sha256(&zip.sha256),
            path: path.clone(),
            size: zip.size,
            unzipped_size: zip.unzipped_bytes,
            fits_all_runtimes: !RUNTIME_FOLDERS
                .iter()
                .any(|folder| report.top_level_dirs.contains(*folder)),
        })
    }
}

/// The state of one planning run: the target, what it has reported so far, and what was found.
struct Planner<'a> {
    manifest: &'a Manifest,
    target: &'a mut dyn Target,
    /// Each layer's versions, asked for once.
    versions: BTreeMap<String, Vec<LayerVersion>>,
    problems: Vec<PlanProblem>,
    notes: Vec<String>,
}

/// A resolved layer with what the checks need to know about it.
struct CheckedLayer {
    resolved: ResolvedLayer,
    /// How messages name it: `` `shared` ``, `` `shared` version 3 `` or the ARN.
    label: String,
    /// `None` when unknown (external layers); empty when it fits every runtime.
    runtimes: Option<Vec<String>>,
    /// `None` when not checked (external layers, pinned versions); empty when it fits every
    /// architecture.
    architectures: Option<Vec<String>>,
    /// `None` when unknown.
    unzipped_size: Option<u64>,
}

/// Decides what a push publishes and deploys, and checks it against Lambda's limits.
///
/// `layer_builds` and `function_builds` are keyed by manifest name and must hold a zip for every
/// layer and function of the manifest.
pub fn plan(
    manifest: &Manifest,
    target: &mut dyn Target,
    layer_builds: &BTreeMap<String, BuildReport>,
    function_builds: &BTreeMap<String, BuildReport>,
    options: &PlanOptions,
) -> Result<PushPlan, PushError> {
    let mut planner = Planner {
        manifest,
        target,
        versions: BTreeMap::new(),
        problems: Vec::new(),
        notes: Vec::new(),
    };
    let description = options.resolved_description();
    planner.check_description(&description);

    let mut layers = Vec::new();
    for config in manifest.layers.values() {
        let Some(zip) = planner.built(layer_builds, "layer", &config.name) else {
            continue;
        };
        layers.push(planner.plan_layer(config, &zip, &description)?);
    }
    let mut functions = Vec::new();
    for config in manifest.functions.values() {
        let Some(zip) = planner.built(function_builds, "function", &config.name) else {
            continue;
        };
        functions.push(planner.plan_function(config, &zip, &layers)?);
    }

    if !planner.problems.is_empty() {
        return Err(PushError::Invalid {
            problems: planner.problems,
        });
    }
    Ok(PushPlan {
        description,
        layers,
        functions,
        notes: planner.notes,
    })
}

impl Planner<'_> {
    fn check_description(&mut self, description: &str) {
        let length = description.chars().count();
        if !(1..=MAX_DESCRIPTION_CHARS).contains(&length) {
            self.problems.push(PlanProblem::BadDescription { length });
        } else if description.trim().is_empty() {
            self.problems.push(PlanProblem::BlankDescription);
        }
    }

    fn built(
        &mut self,
        builds: &BTreeMap<String, BuildReport>,
        kind: &'static str,
        name: &str,
    ) -> Option<BuiltZip> {
        let zip = builds.get(name).and_then(BuiltZip::from_report);
        if zip.is_none() {
            self.problems.push(PlanProblem::MissingBuild {
                kind,
                name: name.to_string(),
            });
        }
        zip
    }

    fn versions(&mut self, layer: &str) -> Result<&[LayerVersion], DeployError> {
        if !self.versions.contains_key(layer) {
            let versions = self.target.layer_versions(layer)?;
            self.versions.insert(layer.to_string(), versions);
        }
        Ok(&self.versions[layer])
    }

    fn plan_layer(
        &mut self,
        config: &LayerConfig,
        zip: &BuiltZip,
        description: &str,
    ) -> Result<LayerPlan, DeployError> {
        let request = publish_request(config, zip, description);
        let existing = self.versions(&config.name)?;
        let action = match request.newest_holder(existing) {
            Some(version) => LayerAction::Unchanged(version.clone()),
            None => {
                self.check_size(config, zip);
                LayerAction::Publish(request)
            }
        };
        tracing::debug!(layer = %config.name, ?action, "layer planned");
        Ok(LayerPlan {
            layer: config.name.clone(),
            digest: zip.digest,
            code_sha256: zip.code_sha256.clone(),
            action,
            access: config.access.clone(),
            fits_all_runtimes: zip.fits_all_runtimes,
        })
    }

    /// A new version would be over Lambda's size limit: a layer over it alone could never be
    /// attached to any function.
    fn check_size(&mut self, config: &LayerConfig, zip: &BuiltZip) {
        if zip.unzipped_size > MAX_UNZIPPED_BYTES {
            self.problems.push(PlanProblem::LayerTooLarge {
                layer: config.name.clone(),
                size: zip.unzipped_size,
                limit: MAX_UNZIPPED_BYTES,
            });
        }
    }

    fn plan_function(
        &mut self,
        config: &FunctionConfig,
        zip: &BuiltZip,
        layer_plans: &[LayerPlan],
    ) -> Result<FunctionPlan, DeployError> {
        let mut checked = Vec::new();
        for reference in &config.layers {
            if let Some(layer) = self.resolve(config, reference, layer_plans)? {
                checked.push(layer);
            }
        }
        self.check_function(config, zip, &checked);
        self.check_distinct_layers(config, &checked)?;

        let layers: Vec<ResolvedLayer> = checked.into_iter().map(|layer| layer.resolved).collect();
        let action = self.function_action(config, zip, &layers)?;
        tracing::debug!(function = %config.name, ?action, "function planned");
        Ok(FunctionPlan {
            function: config.name.clone(),
            action,
            layers,
            request: DeployFunction {
                name: config.name.clone(),
                runtime: config.runtime.clone(),
                handler: config.handler.clone(),
                role: config.role.clone(),
                zip_path: zip.path.clone(),
                zip_size: zip.size,
                code_sha256: zip.code_sha256.clone(),
                layers: Vec::new(),
                architectures: config.architectures.clone(),
                digest: zip.digest,
                unzipped_size: zip.unzipped_size,
            },
        })
    }

    /// Resolves one reference; `None` after recording a problem.
    fn resolve(
        &mut self,
        function: &FunctionConfig,
        reference: &LayerRef,
        layer_plans: &[LayerPlan],
    ) -> Result<Option<CheckedLayer>, DeployError> {
        match reference {
            LayerRef::Latest(layer) => Ok(self.resolve_latest(function, layer, layer_plans)),
            LayerRef::Pinned(layer, version) => self.resolve_pinned(function, layer, *version),
            LayerRef::Arn(arn) => {
                self.notes.push(format!(
                    "function `{}` uses `{arn}`, a layer outside the project: its runtimes, \
                     architectures and unzipped size are not checked",
                    function.name
                ));
                Ok(Some(CheckedLayer {
                    resolved: ResolvedLayer::External { arn: arn.clone() },
                    label: format!("`{arn}`"),
                    runtimes: None,
                    architectures: None,
                    unzipped_size: None,
                }))
            }
        }
    }

    /// `@latest` is the version holding the layer's current content: the one this push
    /// publishes, or the existing one that already holds it.
    fn resolve_latest(
        &mut self,
        function: &FunctionConfig,
        layer: &str,
        layer_plans: &[LayerPlan],
    ) -> Option<CheckedLayer> {
        let Some(plan) = layer_plans.iter().find(|plan| plan.layer == layer) else {
            // A manifest layer without a build is already a problem; anything else is unknown.
            if !self.manifest.layers.contains_key(layer) {
                self.problems.push(PlanProblem::UnknownLayer {
                    function: function.name.clone(),
                    layer: layer.to_string(),
                });
            }
            return None;
        };
        let label = format!("`{layer}`");
        // A layer of assets alone (opt/) holds no code, so it fits every runtime and every
        // architecture whatever it declares.
        let fits = |declared: &Vec<String>| match plan.fits_all_runtimes {
            true => Vec::new(),
            false => declared.clone(),
        };
        Some(match &plan.action {
            LayerAction::Publish(request) => CheckedLayer {
                resolved: ResolvedLayer::New {
                    layer: layer.to_string(),
                },
                label,
                runtimes: Some(fits(&request.runtimes)),
                architectures: Some(fits(&request.architectures)),
                unzipped_size: Some(request.unzipped_size),
            },
            LayerAction::Unchanged(version) => CheckedLayer {
                resolved: ResolvedLayer::Existing {
                    layer: layer.to_string(),
                    version: version.version,
                    arn: version.arn.clone(),
                },
                label,
                runtimes: Some(fits(&version.runtimes)),
                architectures: Some(fits(&version.architectures)),
                // The version holds the built content, so the build's size is its size.
                unzipped_size: version.unzipped_size.or(plan_unzipped_size(plan)),
            },
        })
    }

    fn resolve_pinned(
        &mut self,
        function: &FunctionConfig,
        layer: &str,
        number: u64,
    ) -> Result<Option<CheckedLayer>, DeployError> {
        let versions = self.versions(layer)?;
        let Some(version) = versions.iter().find(|version| version.version == number) else {
            let existing = versions.iter().map(|version| version.version).collect();
            self.problems.push(PlanProblem::MissingVersion {
                function: function.name.clone(),
                layer: layer.to_string(),
                version: number,
                existing,
            });
            return Ok(None);
        };
        let version = version.clone();
        // Whether an older version holds code or assets alone is not known here, and a version
        // cannot take another architecture after it is published: a mismatch is a note.
        let label = format!("`{layer}` version {number}");
        let declared = &version.architectures;
        if let Some(architecture) = first_unfit(declared, &function.architectures) {
            self.notes.push(format!(
                "function `{}` runs on `{architecture}`, but layer {label} was published for {}; \
                 if it holds native code, pin a version published for `{architecture}`",
                function.name,
                crate::deploy::quote_all(declared)
            ));
        }
        Ok(Some(CheckedLayer {
            resolved: ResolvedLayer::Existing {
                layer: layer.to_string(),
                version: number,
                arn: version.arn,
            },
            label,
            runtimes: Some(version.runtimes),
            architectures: None,
            unzipped_size: version.unzipped_size,
        }))
    }

    fn check_function(&mut self, config: &FunctionConfig, zip: &BuiltZip, layers: &[CheckedLayer]) {
        let function = config.name.clone();
        // Count the references, not what resolved: a missing pin still takes a slot.
        if config.layers.len() > MAX_LAYERS {
            let count = config.layers.len();
            self.problems.push(PlanProblem::TooManyLayers {
                function: function.clone(),
                count,
            });
        }

        for layer in layers {
            let runtime = std::slice::from_ref(&config.runtime);
            if let Some(runtimes) = &layer.runtimes {
                if first_unfit(runtimes, runtime).is_some() {
                    self.problems.push(PlanProblem::RuntimeMismatch {
                        function: function.clone(),
                        runtime: config.runtime.clone(),
                        layer: layer.label.clone(),
                        runtimes: runtimes.clone(),
                    });
                }
            }
            if let Some(architectures) = &layer.architectures {
                if let Some(architecture) = first_unfit(architectures, &config.architectures) {
                    self.problems.push(PlanProblem::ArchitectureMismatch {
                        function: function.clone(),
                        architecture: architecture.clone(),
                        layer: layer.label.clone(),
                        architectures: architectures.clone(),
                    });
                }
            }
        }

        let known: u64 = layers.iter().filter_map(|layer| layer.unzipped_size).sum();
        let total = zip.unzipped_size + known;
        if total > MAX_UNZIPPED_BYTES {
            let limit = MAX_UNZIPPED_BYTES;
            self.problems.push(PlanProblem::TooLarge {
                function,
                total,
                limit,
            });
            return;
        }
        let unknown: Vec<&str> = layers
            .iter()
            .filter(|layer| layer.unzipped_size.is_none())
            .map(|layer| layer.label.as_str())
            .collect();
        if !unknown.is_empty() {
            self.notes.push(format!(
                "the unzipped size of {} is unknown, so function `{function}` ({total} bytes \
                 without {}) may be over Lambda's limit of {MAX_UNZIPPED_BYTES} bytes",
                unknown.join(", "),
                if unknown.len() == 1 { "it" } else { "them" },
            ));
        }
    }

    /// Lambda takes one version of a layer per function. References by name are already
    /// distinct (the manifest refuses `shared@latest` beside `shared@3`), but an ARN may name a
    /// version of a project layer too.
    fn check_distinct_layers(
        &mut self,
        config: &FunctionConfig,
        layers: &[CheckedLayer],
    ) -> Result<(), DeployError> {
        let mut seen: Vec<(String, &str, bool)> = Vec::new();
        for layer in layers {
            let arn = match &layer.resolved {
                ResolvedLayer::Existing { arn, .. } | ResolvedLayer::External { arn } => {
                    Some(arn.clone())
                }
                // Not published yet: its ARN will start as its other versions' do.
                ResolvedLayer::New { layer } => {
                    (self.versions(layer)?.first()).map(|version| version.arn.clone())
                }
            };
            let Some(base) = arn.as_deref().and_then(layer_arn_base) else {
                continue;
            };
            match seen.iter_mut().find(|(seen_base, _, _)| *seen_base == base) {
                // One problem per layer, however many times it comes back.
                Some((_, first, reported @ false)) => {
                    *reported = true;
                    self.problems.push(PlanProblem::SameLayerTwice {
                        function: config.name.clone(),
                        first: first.to_string(),
                        second: layer.label.clone(),
                    })
                }
                Some(_) => {}
                None => seen.push((base.to_string(), &layer.label, false)),
            }
        }
        Ok(())
    }

    fn function_action(
        &mut self,
        config: &FunctionConfig,
        zip: &BuiltZip,
        layers: &[ResolvedLayer],
    ) -> Result<FunctionAction, DeployError> {
        let Some(state) = self.target.function(&config.name)? else {
            return Ok(FunctionAction::Create);
        };
        let code_changed = state.code_sha256 != zip.code_sha256;
        let config_changed = state.runtime != config.runtime
            || state.handler != config.handler
            || state.architectures != config.architectures
            || state.role_differs(config.role.as_ref());
        let known_arns: Option<Vec<&str>> = layers.iter().map(ResolvedLayer::arn).collect();
        let layers_changed = match known_arns {
            Some(arns) => state.layers != arns,
            // A version yet to be published is on no function.
            None => true,
        };
        if code_changed || layers_changed || config_changed {
            Ok(FunctionAction::Update {
                code_changed,
                layers_changed,
                config_changed,
            })
        } else {
            Ok(FunctionAction::Unchanged)
        }
    }
}

/// The new version a layer would get.
fn publish_request(config: &LayerConfig, zip: &BuiltZip, description: &str) -> PublishLayer {
    PublishLayer {
        layer: config.name.clone(),
        zip_path: zip.path.clone(),
        code_sha256: zip.code_sha256.clone(),
        zip_size: zip.size,
        description: description.to_string(),
        runtimes: config.runtimes.clone(),
        architectures: config.architectures.clone(),
        digest: zip.digest,
        unzipped_size: zip.unzipped_size,
    }
}

/// The first of `wanted` (a function's runtime or architectures) that a layer declared for
/// `declared` does not fit; a layer that declares nothing fits everything.
fn first_unfit<'w>(declared: &[String], wanted: &'w [String]) -> Option<&'w String> {
    (wanted.iter()).find(|item| !declared.is_empty() && !declared.contains(item))
}

/// A layer version's ARN without its version number: what names the layer itself.
fn layer_arn_base(arn: &str) -> Option<&str> {
    let (base, version) = arn.rsplit_once(':')?;
    let is_version = !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit());
    (is_version && base.contains(":layer:")).then_some(base)
}

fn plan_unzipped_size(plan: &LayerPlan) -> Option<u64> {
    match &plan.action {
        LayerAction::Publish(request) => Some(request.unzipped_size),
        LayerAction::Unchanged(version) => version.unzipped_size,
    }
}

impl ResolvedLayer {
    /// The ARN, unless the version is yet to be published.
    pub fn arn(&self) -> Option<&str> {
        match self {
            ResolvedLayer::Existing { arn, .. } | ResolvedLayer::External { arn } => Some(arn),
            ResolvedLayer::New { .. } => None,
        }
    }
}
