//! Carrying out a [`PushPlan`]: publish, set access, deploy.
//!
//! Layers go first, so that functions can be deployed with the ARNs the new versions got. The
//! first failure stops the push; what was done before it is returned in
//! [`PushError::Interrupted`], and a re-run finds it on the target (by CodeSha256) instead of
//! doing it again. A version that another push published after this plan was made (the same
//! content, planned at the same time) is found by the target when it checks before publishing,
//! and reported as unchanged.

use std::collections::BTreeMap;

use crate::deploy::push::{
    FunctionAction, FunctionOutcome, FunctionPlan, FunctionReport, LayerAction, LayerOutcome,
    LayerPlan, LayerReport, PushError, PushPlan, PushReport, ResolvedLayer,
};
use crate::deploy::{DeployError, DeployFunction, LayerVersion, Publication, Target};
use crate::progress::{Phase, Progress};

/// Publishes, sets access on new versions and deploys functions, as planned.
///
/// On the first failure it stops and returns [`PushError::Interrupted`] with what was done.
pub fn execute(
    plan: &PushPlan,
    target: &mut dyn Target,
    progress: &dyn Progress,
) -> Result<PushReport, PushError> {
    let mut report = PushReport::default();
    let mut arns: BTreeMap<&str, String> = BTreeMap::new();
    for layer in &plan.layers {
        if let Err(source) = execute_layer(layer, target, progress, &mut report) {
            return Err(interrupted(report, remove_damaged_zip(source)));
        }
        if let Some(done) = report.layers.last() {
            arns.insert(&layer.layer, done.arn.clone());
        }
    }
    for function in &plan.functions {
        if let Err(source) = execute_function(function, &arns, target, progress, &mut report) {
            return Err(interrupted(report, remove_damaged_zip(source)));
        }
    }
    Ok(report)
}

fn interrupted(report: PushReport, source: DeployError) -> PushError {
    PushError::Interrupted {
        completed: Box::new(report),
        source,
    }
}

/// A built zip that no longer has the SHA-256 its build reported is a damaged cache artefact: the
/// build would find it by name and size and reuse it, so it is removed, and the next run rebuilds
/// it. Only zips of the plan are concerned, and those are always in the build folder, never the
/// user's files.
fn remove_damaged_zip(error: DeployError) -> DeployError {
    let DeployError::ZipChanged {
        path,
        expected,
        found,
    } = error
    else {
        return error;
    };
    match fs_err::remove_file(&path) {
        Ok(()) => {
            tracing::debug!(path = %path.display(), "damaged built zip removed");
            DeployError::DamagedZipRemoved {
                path,
                expected,
                found,
            }
        }
        Err(removal) => {
            tracing::debug!(%removal, "the damaged zip could not be removed");
            DeployError::ZipChanged {
                path,
                expected,
                found,
            }
        }
    }
}

fn execute_layer(
    layer: &LayerPlan,
    target: &mut dyn Target,
    progress: &dyn Progress,
    report: &mut PushReport,
) -> Result<(), DeployError> {
    let request = match &layer.action {
        LayerAction::Unchanged(version) => {
            report
                .layers
                .push(layer_report(layer, version, LayerOutcome::Unchanged));
            return Ok(());
        }
        LayerAction::Publish(request) => request,
    };

    progress.start(Phase::Upload, &layer.layer, request.zip_size);
    let publication = target.publish_layer_version_once(request);
    if publication.is_ok() {
        progress.advance(request.zip_size);
    }
    progress.finish();
    let version = match publication? {
        Publication::Published(version) => version,
        // Another push published this content after the plan was made: its version is used as
        // is, with the access that push gave it.
        Publication::Found(version) => {
            tracing::info!(
                layer = %layer.layer,
                version = version.version,
                "layer content was published meanwhile by another push"
            );
            report
                .layers
                .push(layer_report(layer, &version, LayerOutcome::Unchanged));
            return Ok(());
        }
    };
    tracing::info!(layer = %layer.layer, version = version.version, "layer version published");
    // Reported before access is set, so that an interrupted push still says it published.
    report
        .layers
        .push(layer_report(layer, &version, LayerOutcome::Published));

    let change = target.reconcile_access(&layer.layer, version.version, &layer.access)?;
    if let Some(done) = report.layers.last_mut() {
        done.access = Some(change);
    }
    Ok(())
}

fn layer_report(layer: &LayerPlan, version: &LayerVersion, action: LayerOutcome) -> LayerReport {
    LayerReport {
        layer: layer.layer.clone(),
        action,
        version: version.version,
        arn: version.arn.clone(),
        digest: layer.digest,
        code_sha256: layer.code_sha256.clone(),
        access: None,
    }
}

fn execute_function(
    function: &FunctionPlan,
    layer_arns: &BTreeMap<&str, String>,
    target: &mut dyn Target,
    progress: &dyn Progress,
    report: &mut PushReport,
) -> Result<(), DeployError> {
    let layers: Vec<String> = function
        .layers
        .iter()
        .map(|layer| match layer {
            // A plan resolves to `New` only a layer it publishes, and layers run first.
            ResolvedLayer::New { layer } => layer_arns[layer.as_str()].clone(),
            resolved => resolved.arn().unwrap_or_default().to_string(),
        })
        .collect();
    let action = match function.action {
        FunctionAction::Unchanged => FunctionOutcome::Unchanged,
        FunctionAction::Create | FunctionAction::Update { .. } => {
            let request = DeployFunction {
                layers: layers.clone(),
                ..function.request.clone()
            };
            progress.start(Phase::Upload, &function.function, request.zip_size);
            let deployed = target.deploy_function(&request);
            if deployed.is_ok() {
                progress.advance(request.zip_size);
            }
            progress.finish();
            deployed?;
            tracing::info!(function = %function.function, "function deployed");
            FunctionOutcome::Deployed
        }
    };
    report.functions.push(FunctionReport {
        function: function.function.clone(),
        action,
        layers,
    });
    Ok(())
}
