//! The local registry: the default deploy target, a folder at `.lamina/registry/`.
//!
//! TODO: stub; being written.

use std::path::PathBuf;

use crate::access::AccessSet;
use crate::deploy::{
    AccessChange, DeployError, DeployFunction, FunctionState, LayerVersion, PublishLayer, Target,
};

/// The region in local ARNs.
pub const LOCAL_REGION: &str = "local";
/// The account in local ARNs.
pub const LOCAL_ACCOUNT: &str = "000000000000";

/// Layer versions and functions kept in a folder, with AWS-shaped identifiers.
#[derive(Debug)]
pub struct LocalRegistry {
    root: PathBuf,
}

impl LocalRegistry {
    /// Opens (creating if needed) the registry at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<LocalRegistry, DeployError> {
        Ok(LocalRegistry { root: root.into() })
    }

    pub fn root(&self) -> &std::path::Path {
        &self.root
    }
}

impl Target for LocalRegistry {
    fn describe(&self) -> String {
        format!("local registry {}", self.root.display())
    }

    fn layer_versions(&mut self, _layer: &str) -> Result<Vec<LayerVersion>, DeployError> {
        Ok(Vec::new())
    }

    fn publish_layer_version(
        &mut self,
        request: &PublishLayer,
    ) -> Result<LayerVersion, DeployError> {
        Err(DeployError::UnknownLayer {
            layer: request.layer.clone(),
        })
    }

    fn reconcile_access(
        &mut self,
        _layer: &str,
        _version: u64,
        _desired: &AccessSet,
    ) -> Result<AccessChange, DeployError> {
        Ok(AccessChange::default())
    }

    fn delete_layer_version(&mut self, _layer: &str, _version: u64) -> Result<(), DeployError> {
        Ok(())
    }

    fn function(&mut self, _name: &str) -> Result<Option<FunctionState>, DeployError> {
        Ok(None)
    }

    fn deploy_function(&mut self, request: &DeployFunction) -> Result<FunctionState, DeployError> {
        Err(DeployError::UnknownLayer {
            layer: request.name.clone(),
        })
    }

    fn delete_function(&mut self, _name: &str) -> Result<(), DeployError> {
        Ok(())
    }
}
