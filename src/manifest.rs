//! The project manifest, `lamina.toml`.
//!
//! OWNER NOTE (skeleton): loading, validation and comment-preserving edits are filled in by the
//! lifecycle work.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// A loaded, validated `lamina.toml`.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The folder holding `lamina.toml`.
    pub root: PathBuf,
    pub name: String,
    pub layers: BTreeMap<String, LayerConfig>,
    pub functions: BTreeMap<String, FunctionConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerConfig {
    pub name: String,
    /// Relative to the project root; default `layers/<name>`.
    pub path: PathBuf,
    pub runtimes: Vec<String>,
    pub architectures: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionConfig {
    pub name: String,
    pub runtime: String,
    pub handler: String,
    /// Code folder relative to the project root; default `functions/<name>/src`.
    pub source: PathBuf,
    pub layers: Vec<String>,
    pub role: Option<String>,
}
