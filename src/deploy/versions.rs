//! Managing existing layer versions: listing, removing, re-applying access.
//!
//! TODO: stub; being written.

use serde::Serialize;

use crate::deploy::{AccessChange, DeployError, LayerVersion, Target};
use crate::manifest::Manifest;

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
pub fn list_versions(
    manifest: &Manifest,
    target: &mut dyn Target,
    layer: &str,
) -> Result<Vec<VersionInfo>, DeployError> {
    let _ = (manifest, target, layer);
    Ok(Vec::new())
}

/// Deletes the selected versions of `layer`, refusing (and deleting nothing) if a manifest
/// function pins one of them. Returns the numbers deleted.
pub fn remove_versions(
    manifest: &Manifest,
    target: &mut dyn Target,
    layer: &str,
    selection: &RemoveSelection,
) -> Result<Vec<u64>, DeployError> {
    let _ = (manifest, target, layer, selection);
    Ok(Vec::new())
}

/// Reconciles the chosen existing versions of `layer` to its configured access.
pub fn apply_access(
    manifest: &Manifest,
    target: &mut dyn Target,
    layer: &str,
    apply_to: ApplyTo,
) -> Result<Vec<AppliedAccess>, DeployError> {
    let _ = (manifest, target, layer, apply_to);
    Ok(Vec::new())
}
