//! Atomic file writes: a temporary file in the destination folder, renamed into place.
//!
//! Every file lamina publishes to disk (zips, registry records, exported caches) goes through
//! here, so that no reader ever sees half of one. If the write fails or the process dies before
//! the rename, the temporary file is all that is left, and [`tempfile`] removes it on error.

use std::io::{self, Write};
use std::path::Path;

use tempfile::NamedTempFile;

/// Creates a temporary file next to `dest`, lets `fill` write it, flushes it to disk and renames
/// it over `dest`. Returns whatever `fill` returned.
pub fn write_with<T>(
    dest: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> io::Result<T>,
) -> io::Result<T> {
    let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs_err::create_dir_all(dir)?;
    let mut temp = NamedTempFile::with_prefix_in(".lamina-tmp-", dir)
        .map_err(|e| annotate(e, "create a temporary file in", dir))?;
    let value = fill(temp.as_file_mut()).map_err(|e| annotate(e, "write", dest))?;
    temp.as_file_mut().sync_all().map_err(|e| annotate(e, "sync", dest))?;
    temp.persist(dest).map_err(|e| annotate(e.error, "rename into place", dest))?;
    Ok(value)
}

/// Writes `bytes` to `dest` atomically.
pub fn write(dest: &Path, bytes: &[u8]) -> io::Result<()> {
    write_with(dest, |file| file.write_all(bytes))
}

fn annotate(error: io::Error, action: &str, path: &Path) -> io::Error {
    io::Error::new(error.kind(), format!("failed to {action} `{}`: {error}", path.display()))
}
