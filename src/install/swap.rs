//! Staging folders and the swap that puts a finished install in place.
//!
//! An installer never writes into the live tree. It works in a staging folder
//! `<layer>/lib/.lamina-install-XXXXXX/`, on the same file system as the tree it replaces, and
//! the result is swapped in with two renames: the live tree moves into the staging folder, the
//! new tree moves into its place, and dropping the staging folder deletes the old one. If the
//! second rename fails the first is undone. A failed install therefore leaves the live tree as it
//! was, and a reader of the live path sees either the whole old tree or the whole new one; in
//! between the two renames the path is briefly missing, which the next run treats as "not
//! installed".
//!
//! Staging folders sit inside the layer's `lib/` (which maps to the zip root), so one left behind
//! by a killed process would be packed. [`remove_leftovers`] deletes them before each install.

use std::io;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

/// The name prefix of staging folders; nothing else lamina writes starts with it.
pub const STAGING_PREFIX: &str = ".lamina-install-";

/// A staging folder, deleted with everything in it when dropped.
#[derive(Debug)]
pub(crate) struct Staging {
    dir: TempDir,
}

impl Staging {
    /// Creates a staging folder in `<layer_dir>/lib`.
    pub fn new(layer_dir: &Path) -> io::Result<Staging> {
        let parent = layer_dir.join("lib");
        fs_err::create_dir_all(&parent)?;
        let dir = tempfile::Builder::new()
            .prefix(STAGING_PREFIX)
            .tempdir_in(&parent)
            .map_err(|error| annotate(error, "create a staging folder in", &parent))?;
        Ok(Staging { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Where the live tree is moved during the swap.
    fn aside(&self) -> PathBuf {
        self.path().join("previous")
    }

    /// Moves `new` (inside this staging folder) to `target`, and whatever was at `target` into
    /// this staging folder, to be deleted with it.
    pub fn swap_in(&self, new: &Path, target: &Path) -> io::Result<()> {
        let aside = self.aside();
        let had_previous = fs_err::symlink_metadata(target).is_ok();
        if had_previous {
            fs_err::rename(target, &aside)?;
        }
        if let Some(parent) = target.parent() {
            fs_err::create_dir_all(parent)?;
        }
        if let Err(error) = fs_err::rename(new, target) {
            if had_previous {
                fs_err::rename(&aside, target)?;
            }
            return Err(error);
        }
        Ok(())
    }

    /// Moves `target` into this staging folder, to be deleted with it: the live path goes away
    /// in one rename, so a reader never sees half a tree.
    pub fn take_away(&self, target: &Path) -> io::Result<()> {
        fs_err::rename(target, self.aside())
    }
}

/// Deletes staging folders that a killed run left in `<layer_dir>/lib`.
///
/// TODO: two lamina processes installing the same layer at once would delete each other's
/// staging folder here; a lock file per layer under `.lamina/installs/` would serialise them.
pub(crate) fn remove_leftovers(layer_dir: &Path) -> io::Result<()> {
    let parent = layer_dir.join("lib");
    let entries = match fs_err::read_dir(&parent) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    for entry in entries {
        let entry = entry?;
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(STAGING_PREFIX)
        {
            tracing::warn!(path = %entry.path().display(),
                "removing a staging folder left by an interrupted install");
            fs_err::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}

fn annotate(error: io::Error, action: &str, path: &Path) -> io::Error {
    io::Error::new(
        error.kind(),
        format!("failed to {action} `{}`: {error}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer() -> TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(dir.path().join("lib/nodejs/node_modules/old")).unwrap();
        dir
    }

    #[test]
    fn swap_replaces_the_tree_and_the_old_one_goes_with_the_staging_folder() {
        let layer = layer();
        let target = layer.path().join("lib/nodejs/node_modules");
        let staging = Staging::new(layer.path()).unwrap();
        let new = staging.path().join("node_modules");
        fs_err::create_dir_all(new.join("new")).unwrap();

        staging.swap_in(&new, &target).unwrap();
        drop(staging);

        assert!(target.join("new").is_dir());
        assert!(!target.join("old").exists());
        let leftovers = fs_err::read_dir(layer.path().join("lib")).unwrap().count();
        assert_eq!(leftovers, 1, "only lib/nodejs remains");
    }

    #[test]
    fn failed_swap_puts_the_old_tree_back() {
        let layer = layer();
        let target = layer.path().join("lib/nodejs/node_modules");
        let staging = Staging::new(layer.path()).unwrap();
        let missing = staging.path().join("never-built");

        assert!(staging.swap_in(&missing, &target).is_err());
        assert!(target.join("old").is_dir());
    }

    #[test]
    fn taking_a_tree_away_deletes_it_with_the_staging_folder() {
        let layer = layer();
        let target = layer.path().join("lib/nodejs/node_modules");
        let staging = Staging::new(layer.path()).unwrap();
        staging.take_away(&target).unwrap();
        drop(staging);

        assert!(!target.exists());
        let left = fs_err::read_dir(layer.path().join("lib")).unwrap().count();
        assert_eq!(left, 1, "only lib/nodejs remains");
    }

    #[test]
    fn leftover_staging_folders_are_removed() {
        let layer = layer();
        let leftover = layer
            .path()
            .join("lib")
            .join(format!("{STAGING_PREFIX}abc"));
        fs_err::create_dir_all(leftover.join("node_modules")).unwrap();

        remove_leftovers(layer.path()).unwrap();
        assert!(!leftover.exists());
        assert!(layer.path().join("lib/nodejs/node_modules/old").is_dir());
    }
}
