//! Managing existing layer versions: listing them with who uses them, removing them, and
//! re-applying a layer's configured access to them.
//!
//! Everything goes through [`Target`], so the same rules hold on every target: a version a
//! manifest function pins (`LAYER@N`) cannot be removed, and a removed version stays with the
//! functions that already hold it (a target never touches a function when deleting a version).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::deploy::{AccessChange, DeployError, LayerVersion, Target};
use crate::manifest::{FunctionConfig, LayerRef, Manifest};

/// One existing layer version and who uses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionInfo {
    #[serde(flatten)]
    pub version: LayerVersion,
    /// Functions that pin it in lamina.toml or hold it on the target, in name order.
    pub used_by: Vec<VersionUse>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionUse {
    pub function: String,
    /// `true` when lamina.toml pins the function to this version (`LAYER@N`).
    pub pinned: bool,
    /// `true` when the function on the target has this version attached.
    pub deployed: bool,
}

/// Which versions `layer remove` deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveSelection {
    Versions(Vec<u64>),
    All,
}

/// Which versions `layer update --apply-to` reconciles to the layer's configured access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyTo {
    /// Only versions published from now on (nothing is reconciled now).
    Future,
    /// The newest existing version.
    Latest,
    /// Every existing version.
    All,
    Version(u64),
}

/// The access change made to one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppliedAccess {
    pub version: u64,
    pub change: AccessChange,
}

/// A layer's existing versions, oldest first, with the functions that use each.
///
/// A function uses a version when lamina.toml pins it (`LAYER@N`) or when the function on the
/// target has it attached; only the manifest's functions are looked at.
pub fn list_versions(
    manifest: &Manifest,
    target: &mut dyn Target,
    layer: &str,
) -> Result<Vec<VersionInfo>, DeployError> {
    let versions = target.layer_versions(layer)?;
    let mut deployed_layers = BTreeMap::new();
    for name in manifest.functions.keys() {
        if let Some(state) = target.function(name)? {
            deployed_layers.insert(name.as_str(), state.layers);
        }
    }

    let infos = versions.into_iter().map(|version| {
        let used_by = manifest
            .functions
            .values()
            .filter_map(|function| {
                let pinned = pins(function, layer, version.version);
                let deployed = deployed_layers
                    .get(function.name.as_str())
                    .is_some_and(|arns| arns.contains(&version.arn));
                let function = function.name.clone();
                (pinned || deployed).then_some(VersionUse {
                    function,
                    pinned,
                    deployed,
                })
            })
            .collect();
        VersionInfo { version, used_by }
    });
    Ok(infos.collect())
}

/// Deletes the selected versions of `layer`, refusing (and deleting nothing) if one of them does
/// not exist or a manifest function pins it. Returns the numbers deleted, in order.
///
/// Functions that hold a deleted version on the target keep it; only new attachments are gone.
pub fn remove_versions(
    manifest: &Manifest,
    target: &mut dyn Target,
    layer: &str,
    selection: &RemoveSelection,
) -> Result<Vec<u64>, DeployError> {
    let existing: Vec<u64> = target
        .layer_versions(layer)?
        .iter()
        .map(|v| v.version)
        .collect();
    let chosen: BTreeSet<u64> = match selection {
        RemoveSelection::All => existing.iter().copied().collect(),
        RemoveSelection::Versions(numbers) => numbers.iter().copied().collect(),
    };
    for &version in &chosen {
        if !existing.contains(&version) {
            let layer = layer.to_string();
            return Err(DeployError::NoSuchVersion {
                layer,
                version,
                existing,
            });
        }
        let functions = pinning_functions(manifest, layer, version);
        if !functions.is_empty() {
            return Err(DeployError::VersionPinned {
                layer: layer.to_string(),
                version,
                functions,
            });
        }
    }

    for &version in &chosen {
        target.delete_layer_version(layer, version)?;
        tracing::info!(layer, version, "layer version removed");
    }
    Ok(chosen.into_iter().collect())
}

/// The existing versions of `layer` that `apply_to` names; an error when it names a version that
/// does not exist.
pub fn chosen_versions(
    target: &mut dyn Target,
    layer: &str,
    apply_to: ApplyTo,
) -> Result<Vec<u64>, DeployError> {
    let existing: Vec<u64> = (target.layer_versions(layer)?.iter())
        .map(|v| v.version)
        .collect();
    match apply_to {
        ApplyTo::Future => Ok(Vec::new()),
        ApplyTo::Latest => Ok(existing.last().copied().into_iter().collect()),
        ApplyTo::All => Ok(existing),
        ApplyTo::Version(version) if existing.contains(&version) => Ok(vec![version]),
        ApplyTo::Version(version) => Err(DeployError::NoSuchVersion {
            layer: layer.to_string(),
            version,
            existing,
        }),
    }
}

/// Reconciles the chosen existing versions of `layer` to its configured access, without
/// publishing. [`ApplyTo::Future`] changes nothing now: the next published version gets the
/// configured access anyway.
pub fn apply_access(
    manifest: &Manifest,
    target: &mut dyn Target,
    layer: &str,
    apply_to: ApplyTo,
) -> Result<Vec<AppliedAccess>, DeployError> {
    let config = manifest
        .layers
        .get(layer)
        .ok_or_else(|| DeployError::UnknownLayer {
            layer: layer.to_string(),
        })?;
    let chosen = chosen_versions(target, layer, apply_to)?;
    let mut applied = Vec::new();
    for version in chosen {
        let change = target.reconcile_access(layer, version, &config.access)?;
        applied.push(AppliedAccess { version, change });
    }
    Ok(applied)
}

/// The manifest functions that pin `layer` at `version`, in name order.
pub fn pinning_functions(manifest: &Manifest, layer: &str, version: u64) -> Vec<String> {
    let functions = manifest.functions.values();
    functions
        .filter(|function| pins(function, layer, version))
        .map(|f| f.name.clone())
        .collect()
}

fn pins(function: &FunctionConfig, layer: &str, version: u64) -> bool {
    function.layers.iter().any(|reference| match reference {
        LayerRef::Pinned(name, number) => name == layer && *number == version,
        LayerRef::Latest(_) | LayerRef::Arn(_) => false,
    })
}
