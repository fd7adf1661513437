//! Atomic file writes: a temporary file in the destination folder, renamed into place.
//!
//! Every file lamina publishes to disk (zips, registry records, exported caches) goes through
//! here, so that no reader ever sees half of one. If the write fails or the process dies before
//! the rename, the temporary file is all that is left, and [`tempfile`] removes it on error.
//!
//! # Permissions
//!
//! The temporary file is created private (`0600`), which would be wrong for the file it becomes:
//! a manifest or a registry record is as readable as any file the user writes. Before the caller
//! fills it, its mode is set as the [`Mode`] says; [`write`] and [`write_with`] keep the mode of
//! the file they replace and give a new file [`FILE_MODE`]. The mode is set with `chmod`, so the
//! process umask does not change it: the same call gives the same permissions everywhere.

use std::io::{self, Write};
use std::path::Path;

use tempfile::NamedTempFile;

/// The permission bits of a new file: read and write for the owner, read for everyone else.
pub const FILE_MODE: u32 = 0o644;

/// The permission bits a written file gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Exactly these bits, whatever the file had before.
    Exact(u32),
    /// The bits of the file being replaced; these bits when there is none.
    KeepOr(u32),
}

impl Mode {
    /// What [`write`] and [`write_with`] use: keep the old file's bits, or [`FILE_MODE`].
    pub const DEFAULT: Mode = Mode::KeepOr(FILE_MODE);

    /// The bits for a file written over `dest`.
    fn resolve(self, dest: &Path) -> io::Result<u32> {
        use std::os::unix::fs::PermissionsExt;
        match self {
            Mode::Exact(bits) => Ok(bits),
            Mode::KeepOr(bits) => match fs_err::metadata(dest) {
                Ok(metadata) => Ok(metadata.permissions().mode() & 0o7777),
                Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(bits),
                Err(error) => Err(error),
            },
        }
    }
}

/// Creates a temporary file next to `dest` with `mode`'s permissions, lets `fill` write it,
/// flushes it to disk and renames it over `dest`. Returns whatever `fill` returned.
pub fn write_with_mode<T>(
    dest: &Path,
    mode: Mode,
    fill: impl FnOnce(&mut std::fs::File) -> io::Result<T>,
) -> io::Result<T> {
    use std::os::unix::fs::PermissionsExt;
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs_err::create_dir_all(dir)?;
    let bits = mode.resolve(dest)?;
    let mut temp = NamedTempFile::with_prefix_in(".lamina-tmp-", dir)
        .map_err(|e| annotate(e, "create a temporary file in", dir))?;
    temp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(bits))
        .map_err(|e| annotate(e, "set the permissions of", dest))?;
    let value = fill(temp.as_file_mut()).map_err(|e| annotate(e, "write", dest))?;
    temp.as_file_mut()
        .sync_all()
        .map_err(|e| annotate(e, "sync", dest))?;
    temp.persist(dest)
        .map_err(|e| annotate(e.error, "rename into place", dest))?;
    Ok(value)
}

/// [`write_with_mode`] with [`Mode::DEFAULT`].
pub fn write_with<T>(
    dest: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> io::Result<T>,
) -> io::Result<T> {
    write_with_mode(dest, Mode::DEFAULT, fill)
}

/// Writes `bytes` to `dest` atomically, with `mode`'s permissions.
pub fn write_mode(dest: &Path, bytes: &[u8], mode: Mode) -> io::Result<()> {
    write_with_mode(dest, mode, |file| file.write_all(bytes))
}

/// Writes `bytes` to `dest` atomically, keeping the permissions of the file it replaces
/// ([`Mode::DEFAULT`]).
pub fn write(dest: &Path, bytes: &[u8]) -> io::Result<()> {
    write_mode(dest, bytes, Mode::DEFAULT)
}

fn annotate(error: io::Error, action: &str, path: &Path) -> io::Error {
    io::Error::new(
        error.kind(),
        format!("failed to {action} `{}`: {error}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs_err::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_new_file_is_readable_by_everyone_not_private_like_its_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("record.json");
        write(&path, b"{}").unwrap();
        assert_eq!(mode_of(&path), 0o644);
        assert_eq!(fs_err::read(&path).unwrap(), b"{}");
    }

    #[test]
    fn the_default_keeps_the_mode_of_the_replaced_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lamina.toml");
        fs_err::write(&path, b"old").unwrap();
        fs_err::set_permissions(&path, std::fs::Permissions::from_mode(0o664)).unwrap();

        write(&path, b"new").unwrap();
        assert_eq!(mode_of(&path), 0o664);
    }

    #[test]
    fn an_exact_mode_replaces_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("record.json");
        fs_err::write(&path, b"old").unwrap();
        fs_err::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();

        write_mode(&path, b"new", Mode::Exact(FILE_MODE)).unwrap();
        assert_eq!(mode_of(&path), 0o644);
    }
}
