//! What lamina has seen of layer versions on AWS, so that a warm push lists each layer once and
//! fetches nothing else.
//!
//! ListLayerVersions does not report CodeSha256, so finding an existing version by content takes
//! one GetLayerVersion per version. A version's number, content, description, creation time and
//! runtimes never change after publication, so once fetched they stay true for as long as the
//! version exists; the listing says which versions still exist, and the others are forgotten.
//!
//! The memory is a JSON file, `.lamina/aws-layer-versions.json`, rewritten atomically after each
//! operation that changed it (see `cache-format.md`, "AWS target"). It is keyed by layer version
//! ARN, which holds the region and the account, so one file serves any number of accounts. It is a
//! cache: a missing, unreadable or foreign-format file is treated as empty (and logged), which
//! costs calls, never correctness. Two lamina processes writing at once can lose each other's
//! entries, with the same cost.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::AwsError;
use crate::access::AccessSet;
use crate::deploy::LayerVersion;

/// The file's format; a file with another value is ignored and rewritten.
pub const MEMORY_FORMAT: u32 = 1;

/// The memory file's name inside `.lamina/`.
pub const MEMORY_FILE: &str = "aws-layer-versions.json";

#[derive(Debug, Default, Serialize, Deserialize)]
struct MemoryFile {
    format: u32,
    /// Keyed by layer version ARN.
    versions: BTreeMap<String, LayerVersion>,
}

/// The remembered layer versions, with the path they are saved to.
#[derive(Debug)]
pub struct Memory {
    path: PathBuf,
    versions: BTreeMap<String, LayerVersion>,
    is_dirty: bool,
}

impl Memory {
    /// Loads the memory kept in `lamina_dir`, or starts empty.
    pub fn load(lamina_dir: &Path) -> Memory {
        let path = lamina_dir.join(MEMORY_FILE);
        let versions = match fs_err::read(&path) {
            Ok(bytes) => parse(&path, &bytes),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(error) => {
                tracing::warn!(%error, "ignoring unreadable memory of AWS layer versions");
                BTreeMap::new()
            }
        };
        Memory {
            path,
            versions,
            is_dirty: false,
        }
    }

    pub fn get(&self, version_arn: &str) -> Option<&LayerVersion> {
        self.versions.get(version_arn)
    }

    /// Every remembered version, in ARN order.
    pub fn all(&self) -> impl Iterator<Item = &LayerVersion> {
        self.versions.values()
    }

    pub fn remember(&mut self, version: LayerVersion) {
        if self.versions.get(&version.arn) != Some(&version) {
            self.versions.insert(version.arn.clone(), version);
            self.is_dirty = true;
        }
    }

    /// The ARN of the one remembered version `number` of the layer `name` in `region`, if
    /// exactly one account has such a version here.
    pub fn find(&self, name: &str, number: u64, region: &str) -> Option<String> {
        let in_region = format!("arn:aws:lambda:{region}:");
        let mut matches = self
            .versions
            .values()
            .filter(|v| v.layer == name && v.version == number && v.arn.starts_with(&in_region));
        let found = matches.next()?;
        matches.next().is_none().then(|| found.arn.clone())
    }

    pub fn set_access(&mut self, version_arn: &str, access: &AccessSet) {
        if let Some(version) = self.versions.get_mut(version_arn) {
            if version.access != *access {
                version.access = access.clone();
                self.is_dirty = true;
            }
        }
    }

    pub fn forget(&mut self, version_arn: &str) {
        self.is_dirty |= self.versions.remove(version_arn).is_some();
    }

    /// Forgets the versions of `layer_arn` (an ARN without version) that are not in `existing`.
    pub fn forget_deleted(&mut self, layer_arn: &str, existing: &[String]) {
        let before = self.versions.len();
        self.versions.retain(|arn, _| {
            layer_arn_of(arn) != Some(layer_arn) || existing.iter().any(|e| e == arn)
        });
        self.is_dirty |= self.versions.len() != before;
    }

    /// Writes the memory if it changed since it was loaded or last saved.
    pub fn save(&mut self) -> Result<(), AwsError> {
        if !self.is_dirty {
            return Ok(());
        }
        let file = MemoryFile {
            format: MEMORY_FORMAT,
            versions: self.versions.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&file).expect("layer versions serialize to JSON");
        crate::atomic::write(&self.path, &bytes).map_err(|source| AwsError::Memory {
            path: self.path.clone(),
            source,
        })?;
        self.is_dirty = false;
        Ok(())
    }
}

fn parse(path: &Path, bytes: &[u8]) -> BTreeMap<String, LayerVersion> {
    match serde_json::from_slice::<MemoryFile>(bytes) {
        Ok(file) if file.format == MEMORY_FORMAT => file.versions,
        Ok(file) => {
            tracing::info!(path = %path.display(), format = file.format, "ignoring memory of AWS \
                           layer versions in another format");
            BTreeMap::new()
        }
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "ignoring damaged memory of AWS layer \
                           versions");
            BTreeMap::new()
        }
    }
}

/// `arn:aws:lambda:REGION:ACCOUNT:layer:NAME` of `arn:aws:lambda:REGION:ACCOUNT:layer:NAME:N`.
pub fn layer_arn_of(version_arn: &str) -> Option<&str> {
    let (layer_arn, number) = version_arn.rsplit_once(':')?;
    number.parse::<u64>().ok().map(|_| layer_arn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(layer: &str, number: u64) -> LayerVersion {
        LayerVersion {
            layer: layer.to_owned(),
            version: number,
            arn: format!("arn:aws:lambda:us-east-1:123456789012:layer:{layer}:{number}"),
            code_sha256: "hash".to_owned(),
            description: "d".to_owned(),
            created: "2024-01-01T00:00:00Z".to_owned(),
            runtimes: vec!["nodejs22.x".to_owned()],
            architectures: vec!["x86_64".to_owned()],
            access: AccessSet::default(),
            digest: None,
            unzipped_size: None,
        }
    }

    #[test]
    fn saved_memory_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut memory = Memory::load(dir.path());
        memory.remember(version("a", 1));
        memory.save().unwrap();
        let loaded = Memory::load(dir.path());
        assert_eq!(
            loaded.all().cloned().collect::<Vec<_>>(),
            vec![version("a", 1)]
        );
    }

    #[test]
    fn deleted_versions_are_forgotten_and_other_layers_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut memory = Memory::load(dir.path());
        for v in [version("a", 1), version("a", 2), version("ab", 1)] {
            memory.remember(v);
        }
        let layer_arn = layer_arn_of(&version("a", 1).arn).unwrap().to_owned();
        memory.forget_deleted(&layer_arn, &[version("a", 2).arn]);
        let left: Vec<_> = memory.all().map(|v| (v.layer.clone(), v.version)).collect();
        assert_eq!(left, vec![("a".to_owned(), 2), ("ab".to_owned(), 1)]);
    }

    #[test]
    fn a_version_is_found_by_name_and_number_only_when_unambiguous() {
        let dir = tempfile::tempdir().unwrap();
        let mut memory = Memory::load(dir.path());
        memory.remember(version("a", 1));
        assert_eq!(memory.find("a", 1, "us-east-1"), Some(version("a", 1).arn));
        assert_eq!(memory.find("a", 1, "eu-west-1"), None);

        let mut other_account = version("a", 1);
        other_account.arn = other_account.arn.replace("123456789012", "210987654321");
        memory.remember(other_account);
        assert_eq!(memory.find("a", 1, "us-east-1"), None);
    }

    #[test]
    fn a_damaged_file_is_treated_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MEMORY_FILE), b"{not json").unwrap();
        assert_eq!(Memory::load(dir.path()).all().count(), 0);
    }
}
