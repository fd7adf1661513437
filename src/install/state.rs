//! What lamina last installed into a layer: `.lamina/installs/<layer>.json`.
//!
//! One small JSON file per layer (the format is specified in `cache-format.md`, section
//! "Installs"), rewritten atomically after each successful swap and never before it. A file that
//! cannot be read or has another format version counts as "nothing recorded", which costs one
//! install and is never wrong.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Ecosystem, Installer};

/// The version of the state file layout. Raising it makes every layer install once more.
pub const STATE_FORMAT: u32 = 1;

/// One ecosystem's last successful install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    pub installer: Installer,
    /// The file the dependencies were read from, relative to the layer root.
    pub manifest: String,
    /// The installed tree, relative to the layer root.
    pub target: String,
    /// Hex blake3 of the declared dependency set.
    pub fingerprint: String,
    /// Hex blake3 of the installed tree's package identities, to notice a tree that something
    /// else changed after lamina installed it.
    pub tree: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct LayerState {
    format: u32,
    layer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nodejs: Option<Record>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    python: Option<Record>,
}

/// The state file of one layer, loaded.
#[derive(Debug)]
pub(crate) struct StateFile {
    path: PathBuf,
    state: LayerState,
}

impl StateFile {
    /// The state file's path for `layer` below lamina's state folder.
    pub fn path_for(state_dir: &Path, layer: &str) -> PathBuf {
        state_dir.join("installs").join(format!("{layer}.json"))
    }

    /// Loads the state of `layer`; a missing, unreadable or foreign file yields an empty state.
    pub fn load(state_dir: &Path, layer: &str) -> io::Result<StateFile> {
        let path = Self::path_for(state_dir, layer);
        let empty = LayerState {
            format: STATE_FORMAT,
            layer: layer.to_owned(),
            ..Default::default()
        };
        let bytes = match fs_err::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Ok(StateFile { path, state: empty })
            }
            Err(error) => return Err(error),
        };
        let state = match serde_json::from_slice::<LayerState>(&bytes) {
            Ok(state) if state.format == STATE_FORMAT => state,
            Ok(state) => {
                tracing::debug!(path = %path.display(), format = state.format,
                    "install state has another format version; treating it as empty");
                empty
            }
            Err(error) => {
                tracing::warn!(path = %path.display(), %error,
                    "install state is unreadable; the dependencies will be installed again");
                empty
            }
        };
        Ok(StateFile { path, state })
    }

    pub fn record(&self, ecosystem: Ecosystem) -> Option<&Record> {
        match ecosystem {
            Ecosystem::Node => self.state.nodejs.as_ref(),
            Ecosystem::Python => self.state.python.as_ref(),
        }
    }

    /// Replaces `ecosystem`'s record and writes the file atomically.
    pub fn set(&mut self, ecosystem: Ecosystem, record: Record) -> io::Result<()> {
        *self.slot(ecosystem) = Some(record);
        self.save()
    }

    /// Forgets `ecosystem`'s record (its packages were removed) and writes the file atomically.
    pub fn clear(&mut self, ecosystem: Ecosystem) -> io::Result<()> {
        *self.slot(ecosystem) = None;
        self.save()
    }

    fn slot(&mut self, ecosystem: Ecosystem) -> &mut Option<Record> {
        match ecosystem {
            Ecosystem::Node => &mut self.state.nodejs,
            Ecosystem::Python => &mut self.state.python,
        }
    }

    fn save(&self) -> io::Result<()> {
        let mut bytes = serde_json::to_vec_pretty(&self.state).map_err(io::Error::other)?;
        bytes.push(b'\n');
        crate::atomic::write(&self.path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            installer: Installer::Npm,
            manifest: "lib/nodejs/package-lock.json".into(),
            target: "lib/nodejs/node_modules".into(),
            fingerprint: "ab".repeat(32),
            tree: "cd".repeat(32),
        }
    }

    #[test]
    fn records_survive_a_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = StateFile::load(dir.path(), "shared").unwrap();
        assert_eq!(state.record(Ecosystem::Node), None);

        state.set(Ecosystem::Node, record()).unwrap();
        let loaded = StateFile::load(dir.path(), "shared").unwrap();
        assert_eq!(loaded.record(Ecosystem::Node), Some(&record()));
        assert_eq!(loaded.record(Ecosystem::Python), None);

        state.clear(Ecosystem::Node).unwrap();
        let loaded = StateFile::load(dir.path(), "shared").unwrap();
        assert_eq!(loaded.record(Ecosystem::Node), None);
    }

    #[test]
    fn a_corrupt_or_foreign_state_file_counts_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = StateFile::path_for(dir.path(), "shared");
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();

        fs_err::write(&path, b"{not json").unwrap();
        assert_eq!(
            StateFile::load(dir.path(), "shared")
                .unwrap()
                .record(Ecosystem::Node),
            None
        );

        let foreign = format!(
            r#"{{"format": 99, "layer": "shared", "nodejs": {}}}"#,
            serde_json::to_string(&record()).unwrap()
        );
        fs_err::write(&path, foreign).unwrap();
        assert_eq!(
            StateFile::load(dir.path(), "shared")
                .unwrap()
                .record(Ecosystem::Node),
            None
        );
    }
}
