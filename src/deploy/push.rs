//! Push planning and execution, the same for every target.
//!
//! TODO: stub; the plan and its checks are being written.

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;

use crate::access::AccessSet;
use crate::build::BuildReport;
use crate::deploy::{
    AccessChange, DeployError, DeployFunction, LayerVersion, PublishLayer, Target,
};
use crate::digest::Digest;
use crate::manifest::{LayerRef, Manifest};
use crate::progress::Progress;

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
    pub layer: String,
    pub digest: Digest,
    pub code_sha256: String,
    pub action: LayerAction,
    /// The access new versions get: the layer's configured access.
    pub access: AccessSet,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerAction {
    /// No existing version holds this content: publish one.
    Publish(PublishLayer),
    /// An existing version already holds this content.
    Unchanged(LayerVersion),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionPlan {
    pub function: String,
    pub action: FunctionAction,
    /// The function's layers in order of application.
    pub layers: Vec<ResolvedLayer>,
    /// The deployment, with `layers` filled in at execution (new versions have no ARN yet).
    pub request: DeployFunction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionAction {
    /// The target has no such function.
    Create,
    /// The function exists and its code, its layer list (order included), or both differ.
    Update {
        code_changed: bool,
        layers_changed: bool,
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
    #[error("placeholder")]
    Placeholder,
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Target(#[from] DeployError),

    #[error(
        "the push cannot go ahead; nothing was published:{}",
        render_problems(problems)
    )]
    Invalid { problems: Vec<PlanProblem> },

    #[error("the push stopped after {} of its steps: {source}", completed.step_count())]
    Interrupted {
        /// What was done before the failure.
        completed: Box<PushReport>,
        #[source]
        source: DeployError,
    },
}

impl PushReport {
    fn step_count(&self) -> usize {
        self.layers.len() + self.functions.len()
    }
}

fn render_problems(problems: &[PlanProblem]) -> String {
    problems
        .iter()
        .map(|problem| format!("\n  - {problem}"))
        .collect()
}

/// Decides what a push publishes and deploys, and checks it against Lambda's limits.
pub fn plan(
    manifest: &Manifest,
    target: &mut dyn Target,
    layer_builds: &BTreeMap<String, BuildReport>,
    function_builds: &BTreeMap<String, BuildReport>,
    options: &PlanOptions,
) -> Result<PushPlan, PushError> {
    let _ = (
        manifest,
        target,
        layer_builds,
        function_builds,
        options,
        LayerRef::Arn(String::new()),
    );
    Err(PushError::Invalid {
        problems: vec![PlanProblem::Placeholder],
    })
}

/// Publishes, sets access on new versions and deploys functions, as planned.
pub fn execute(
    plan: &PushPlan,
    target: &mut dyn Target,
    progress: &dyn Progress,
) -> Result<PushReport, PushError> {
    let _ = (plan, target, progress);
    Ok(PushReport::default())
}

impl PushPlan {
    /// Whether the plan publishes or deploys anything.
    pub fn has_changes(&self) -> bool {
        false
    }

    /// The plan as lines of text for the command line to print.
    pub fn render(&self) -> Vec<String> {
        Vec::new()
    }
}
