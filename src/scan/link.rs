//! Where a symlink leads, judged the way the zip will see it.
//!
//! A link is stored as a link only if it still works once its source folder is unpacked
//! somewhere else: its target, resolved one component at a time, must never step above the source
//! folder, and must not be absolute. The resolution follows every link it meets on the way (as
//! the kernel does), so `a -> b/../../x` is judged by where `b` really is, not by the spelling.

use std::io;
use std::path::{Path, PathBuf};

/// Linux's limit on links followed while resolving one path (`MAXSYMLINKS`); more is `ELOOP`.
const MAX_LINK_HOPS: usize = 40;

/// Where a link's target leads, relative to the source folder it was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LinkResolution {
    /// The target exists and is inside the source folder.
    Inside,
    /// The target is absolute, or resolving it steps above the source folder.
    Leaves,
    /// A component of the target does not exist (or a file is used as a folder).
    Dangling,
    /// More than [`MAX_LINK_HOPS`] links on the way: a cycle.
    Cycle,
}

/// Resolves `target`, read from a link in `link_folder` ('/'-separated, relative to
/// `source_root`, "" for the source folder itself). Every folder of `link_folder` must be a real
/// folder, not a link, which holds for the walker's own path outside followed links. An I/O
/// error other than a missing component (say, a folder that cannot be searched) is returned.
pub(super) fn resolve_inside(
    source_root: &Path,
    link_folder: &str,
    target: &str,
) -> io::Result<LinkResolution> {
    let mut resolved = source_root.join(link_folder);
    let mut depth = components(link_folder).count();
    let mut pending = Vec::new();
    let mut hops = 0;
    if !push_target(&mut pending, target) {
        return Ok(LinkResolution::Leaves);
    }

    while let Some(component) = pending.pop() {
        if component == ".." {
            if depth == 0 {
                return Ok(LinkResolution::Leaves);
            }
            resolved.pop();
            depth -= 1;
            continue;
        }
        resolved.push(&component);
        let metadata = match std::fs::symlink_metadata(&resolved) {
            Ok(metadata) => metadata,
            Err(error) if is_missing(&error) => return Ok(LinkResolution::Dangling),
            Err(error) => return Err(error),
        };
        if metadata.is_symlink() {
            hops += 1;
            if hops > MAX_LINK_HOPS {
                return Ok(LinkResolution::Cycle);
            }
            let next = read_link_lossy(&resolved)?;
            resolved.pop();
            if !push_target(&mut pending, &next) {
                return Ok(LinkResolution::Leaves);
            }
        } else if metadata.is_dir() {
            depth += 1;
        } else if !pending.is_empty() {
            return Ok(LinkResolution::Dangling);
        }
    }
    Ok(LinkResolution::Inside)
}

/// Queues the components of a relative `target` so that the first is popped first; returns
/// false for an absolute target, which always leaves the layer.
fn push_target(pending: &mut Vec<String>, target: &str) -> bool {
    if target.starts_with('/') {
        return false;
    }
    pending.extend(components(target).rev().map(str::to_owned));
    true
}

/// The components of a '/'-separated relative path, without empty and "." components.
fn components(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.split('/')
        .filter(|component| !component.is_empty() && *component != ".")
}

fn is_missing(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::NotFound || error.raw_os_error() == Some(libc::ENOTDIR)
}

/// A link's target met on the way. A target that is not UTF-8 cannot name anything inside the
/// layer that the walk accepts, so its lossy spelling (which names nothing) is good enough: the
/// link itself is reported when the walk reaches it.
fn read_link_lossy(path: &Path) -> io::Result<String> {
    let target: PathBuf = std::fs::read_link(path)?;
    Ok(target.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src/a/b")).unwrap();
        std::fs::write(dir.path().join("src/a/b/file"), b"x").unwrap();
        std::fs::create_dir_all(dir.path().join("outside")).unwrap();
        dir
    }

    fn resolve(dir: &tempfile::TempDir, link_folder: &str, target: &str) -> LinkResolution {
        resolve_inside(&dir.path().join("src"), link_folder, target).unwrap()
    }

    #[test]
    fn relative_targets_inside_resolve() {
        let dir = tree();
        assert_eq!(resolve(&dir, "a", "b/file"), LinkResolution::Inside);
        assert_eq!(resolve(&dir, "a/b", "../b/./file"), LinkResolution::Inside);
        assert_eq!(resolve(&dir, "a/b", "../.."), LinkResolution::Inside);
    }

    #[test]
    fn stepping_above_the_source_leaves_even_if_it_comes_back() {
        let dir = tree();
        assert_eq!(
            resolve(&dir, "a", "../../src/a/b/file"),
            LinkResolution::Leaves
        );
        assert_eq!(resolve(&dir, "", "/etc"), LinkResolution::Leaves);
    }

    #[test]
    fn links_on_the_way_are_followed_by_where_they_lead() {
        let dir = tree();
        // `a/up` leads to the source folder itself, so `up/..` is above it even though the
        // spelling `a/up/..` reads as `a`.
        symlink("..", dir.path().join("src/a/up")).unwrap();
        assert_eq!(resolve(&dir, "a", "up/a/b/file"), LinkResolution::Inside);
        assert_eq!(resolve(&dir, "a", "up/.."), LinkResolution::Leaves);
    }

    #[test]
    fn missing_components_and_files_used_as_folders_dangle() {
        let dir = tree();
        assert_eq!(resolve(&dir, "a", "nothing"), LinkResolution::Dangling);
        assert_eq!(resolve(&dir, "a", "b/file/more"), LinkResolution::Dangling);
    }

    #[test]
    fn links_that_lead_to_each_other_are_a_cycle() {
        let dir = tree();
        symlink("two", dir.path().join("src/a/one")).unwrap();
        symlink("one", dir.path().join("src/a/two")).unwrap();
        assert_eq!(resolve(&dir, "a", "one"), LinkResolution::Cycle);
    }
}
