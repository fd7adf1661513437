//! Stage 4: the reproducible zip writer.
//!
//! [`write_zip`] turns a sorted entry list into a zip whose bytes depend on nothing but the
//! entries: the same paths, kinds, modes and contents give the same bytes, and so the same
//! SHA-256, on any machine, in any time zone, under any umask. Nothing is taken from the file
//! system except the content of files, and that content is checked against the hash the entry
//! was built with. This module does not scan, hash trees or decide what to build.
//!
//! The container is written here rather than by the `zip` crate (which is lamina's zip reader:
//! it checks imported and fetched zips entry by entry, and tests read zips with it). zip 9.9 sets the UTF-8 flag only on non-ASCII names and seeks back to patch
//! headers, where this writer sets the flag on every entry and writes front to back, so the
//! SHA-256 is computed as the bytes go out. A port onto the crate's `ZipFileBuilder` and
//! `raw_copy_file` was tried and measured: the same CPU time, but nearly twice the peak memory
//! (132 MiB against 74 MiB packing a 10,000-file tree), where the whole cold build of the
//! 75,600-file benchmark tree must stay under 150 MB (it peaks at about 127 MB); so it was not
//! kept.
//!
//! # Specification (pack format [`FORMAT_LABEL`])
//!
//! The container follows PKWARE's APPNOTE 6.3. Integers are little-endian.
//!
//! * **Order.** One entry per [`Entry`], in the order given, which is the order of the bytes of
//!   their UTF-8 paths. Each entry is a local file header immediately followed by its data; the
//!   first is at offset 0 and each starts where the previous one ends. Then the central directory
//!   (one record per entry, same order), then the end records. No data descriptors, no archive
//!   comment, no entry comments, no padding.
//! * **Names.** A file's or symlink's name is its path; a folder's is its path and a `/`.
//! * **Fields of every local header and central record.** General purpose flags `0x0800` (bit
//!   11: the name is UTF-8; set on every entry, ASCII names included). Last modification time
//!   `0x0000` and date `0x0021`: 1980-01-01 00:00:00, never the clock or the file's mtime, and
//!   no time zone involved. Version needed to extract 20, or 45 when the record carries a zip64
//!   field. In the central record: version made by `0x032D` (host 3, Unix; APPNOTE 4.5),
//!   internal attributes 0, disk number 0, external attributes `mode << 16` where mode is
//!   `0o040755` for a folder, `0o100644` or `0o100755` for a file (from [`Entry::mode`]) and
//!   `0o120777` for a symlink.
//! * **Extra fields.** None: no extended timestamps, no uid or gid. The only exception is the
//!   zip64 extended information field (id `0x0001`), written only when a value does not fit:
//!   in a local header when either size is 0xFFFFFFFF or more (then it holds both sizes,
//!   uncompressed first, and both 32-bit fields are 0xFFFFFFFF); in a central record, holding
//!   in this order the uncompressed size, the compressed size and the local header offset, for
//!   each of them that is 0xFFFFFFFF or more (its 32-bit field then reads 0xFFFFFFFF).
//! * **Data.** A folder has none (stored, CRC 0). A symlink's data is its target, stored. A
//!   file's content is compressed with raw deflate by `flate2` on its `zlib-rs` backend at level
//!   6, fed in 64 KiB slices and drained through a 64 KiB buffer; when that is not smaller than
//!   the content, the content is stored instead (method 0). An empty file is therefore always
//!   stored. The rule looks at the content only, so it cannot make two builds differ.
//! * **End records.** When there are 65,535 entries or more, or the central directory's size or
//!   offset is 0xFFFFFFFF or more: a zip64 end of central directory record (version made by
//!   `0x032D`, needed 45, disks 0, exact counts, size and offset) and its locator (disk 0, total
//!   disks 1), then the classic end record with the values that do not fit replaced by 0xFFFF or
//!   0xFFFFFFFF. Otherwise only the classic end record with exact values. No comment.
//!
//! # How it is written
//!
//! The zip is written to a temporary file in the output folder and renamed to
//! `<digest hex>.zip` once complete and synced; on any error the temporary file is removed (a
//! process killed midway leaves a `.lamina-tmp-*` file that nothing reads, and that `lamina cache
//! gc` removes once it is an hour old). Its SHA-256 is
//! computed from the bytes as they are written. Each file is read once: the bytes go to blake3
//! (which must give [`Entry::content_hash`], or the build fails with
//! [`PackError::ContentChanged`]; or, through [`write_zip_learning`], which gives the hash of a
//! file that had none), to CRC-32 and to the compressor. Files are compressed in
//! parallel and written in order, in batches that bound the memory in use (see `assemble`);
//! large files are compressed streaming. Only a large file that does not compress is read twice,
//! since its content must then be stored; the second read is checked as well.
//!
//! A cold build need not read its files twice, once to learn the digest that names the zip and
//! once to pack them: [`write_zip_learning`] packs files whose hash is not known yet, computing
//! their blake3 from the read that compresses them, and leaves the zip unnamed until the caller
//! has the digest ([`UnnamedZip::name`]).
//!
//! Given a [`PreviousZip`] written under the same label, entries identical to one of its entries
//! are copied from it instead of read and compressed again (see `previous`), which gives the same
//! bytes as a cold build because a local header and its data depend on the entry alone.

mod assemble;
mod deflate;
mod format;
mod previous;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use tracing::{debug, warn};

use crate::digest::{Digest, Entry, EntryKind};
use crate::progress::Progress;
use assemble::{AssembleError, Limits, Written};
use previous::{Previous, Unusable};

/// Names the zip format and compressor; part of every digest and the key of every reuse of
/// compressed bytes.
///
/// It must change whenever the same entries could give different zip bytes: any rule of the
/// specification above, the deflate level, or the deflate implementation or its version when its
/// output changes. The test `pinned_entries_give_the_pinned_zip` fails in that last case (for
/// example when another crate switches flate2 to a C zlib), and is then updated together with
/// this label.
pub const FORMAT_LABEL: &str = "zip-v1 deflate zlib-rs level-6";

/// One entry to write, with where its content is on disk.
#[derive(Debug, Clone)]
pub struct PackEntry {
    pub entry: Entry,
    /// Absolute path of a file's content; `None` for folders and symlinks.
    pub disk_path: Option<PathBuf>,
}

/// A zip built earlier whose compressed entries may be copied instead of compressed again.
#[derive(Debug, Clone)]
pub struct PreviousZip {
    pub path: PathBuf,
    /// Its entries, sorted by path, as it was built from.
    pub entries: Vec<Entry>,
    /// The [`FORMAT_LABEL`] it was written with; nothing is reused from another format.
    pub format: String,
}

/// What [`write_zip`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackOutcome {
    /// `<out_dir>/<digest hex>.zip`.
    pub path: PathBuf,
    /// SHA-256 of the zip file.
    pub sha256: [u8; 32],
    /// Size of the zip file in bytes.
    pub size: u64,
    /// Entries in the zip: files, folders and symlinks.
    pub entries: u64,
    /// Sum of the sizes of the files.
    pub unzipped_bytes: u64,
    /// Files read from disk and packed in this run (deflated, or stored when that was smaller).
    pub entries_compressed: u64,
    /// Files whose compressed bytes were copied from the previous zip. Folders and symlinks are
    /// counted in neither.
    pub entries_reused: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("could not read `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{path}` changed after it was hashed; run the build again")]
    ContentChanged { path: PathBuf },
    #[error("could not compress `{path}`: {source}")]
    Deflate {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("could not create a temporary file in `{dir}`: {source}")]
    Spill {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("could not create the output folder `{dir}`: {source}")]
    CreateDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("could not write `{zip}`: {source}")]
    Write {
        zip: PathBuf,
        source: std::io::Error,
    },
    #[error("could not rename the finished zip to `{zip}`: {source}")]
    Persist {
        zip: PathBuf,
        source: std::io::Error,
    },
    #[error("the file entry `{zip_path}` has no disk path to read its content from")]
    NoDiskPath { zip_path: String },
    #[error("the path `{zip_path}` is longer than the 65,535 bytes a zip name can hold")]
    NameTooLong { zip_path: String },
}

/// A zip written completely to a temporary file in the output folder, waiting for the digest
/// that names it. Dropping it removes the file.
#[derive(Debug)]
pub struct UnnamedZip {
    temp: tempfile::NamedTempFile,
    out_dir: PathBuf,
    written: Written,
    entries: u64,
    unzipped_bytes: u64,
}

impl UnnamedZip {
    /// The blake3 of every file that was packed without a known hash, by index in the entries
    /// given to [`write_zip_learning`].
    pub fn learned(&self) -> &[(usize, blake3::Hash)] {
        &self.written.learned
    }

    /// Files read from disk and packed.
    pub fn entries_compressed(&self) -> u64 {
        self.written.entries_compressed
    }

    /// Renames the zip to `<out_dir>/<digest hex>.zip`.
    pub fn name(self, digest: &Digest) -> Result<PackOutcome, PackError> {
        let zip_path = self.out_dir.join(format!("{}.zip", digest.to_hex()));
        persist(self.temp, &zip_path)?;
        debug!(zip = %zip_path.display(), size = self.written.size, "zip written and named");
        Ok(PackOutcome {
            path: zip_path,
            sha256: self.written.sha256,
            size: self.written.size,
            entries: self.entries,
            unzipped_bytes: self.unzipped_bytes,
            entries_compressed: self.written.entries_compressed,
            entries_reused: self.written.entries_reused,
        })
    }
}

/// Writes the zip of `entries` (sorted by path) to a temporary file in `out_dir`, reading every
/// file once. The files with `unknown[index]` set have no hash yet: their blake3 is computed
/// from the read that compresses them (and their `content_hash` is ignored); the others are
/// checked against their hash as in [`write_zip`].
///
/// # Panics
/// If `unknown` is not as long as `entries`; in debug builds, if the entries are not strictly
/// sorted by path.
pub fn write_zip_learning(
    out_dir: &Path,
    entries: &[PackEntry],
    unknown: &[bool],
    progress: &dyn Progress,
) -> Result<UnnamedZip, PackError> {
    write_unnamed(out_dir, entries, unknown, progress, &Limits::DEFAULT)
}

fn write_unnamed(
    out_dir: &Path,
    entries: &[PackEntry],
    unknown: &[bool],
    progress: &dyn Progress,
    limits: &Limits,
) -> Result<UnnamedZip, PackError> {
    assert_eq!(entries.len(), unknown.len(), "one flag per entry");
    check_sorted(entries);
    check_entries(entries)?;
    create_out_dir(out_dir)?;
    // Errors name the zip by where it is being written.
    let label = out_dir.join(".lamina-tmp-*.zip");
    let attempt = write_temp(
        out_dir,
        &label,
        entries,
        Some(unknown),
        None,
        limits,
        progress,
    );
    let (temp, written) = attempt.map_err(|error| match error {
        AssembleError::Pack(error) => error,
        AssembleError::Previous(_) => unreachable!("an attempt without a previous zip"),
    })?;
    Ok(UnnamedZip {
        temp,
        out_dir: out_dir.to_path_buf(),
        written,
        entries: entries.len() as u64,
        unzipped_bytes: unzipped_bytes(entries),
    })
}

/// Writes the zip of `entries` (sorted by path) to `<out_dir>/<digest>.zip` atomically, reusing
/// the compressed entries of `previous` where they are identical.
///
/// A `previous` zip that is missing, damaged or of another format is logged and ignored.
/// `progress` advances by one for each entry written; starting and finishing the phase is the
/// caller's part.
///
/// # Panics
/// In debug builds, if the entries are not strictly sorted by path: the caller owns that.
pub fn write_zip(
    out_dir: &Path,
    digest: &Digest,
    entries: &[PackEntry],
    previous: Option<&PreviousZip>,
    progress: &dyn Progress,
) -> Result<PackOutcome, PackError> {
    write_zip_with(
        out_dir,
        digest,
        entries,
        previous,
        progress,
        &Limits::DEFAULT,
    )
}

fn write_zip_with(
    out_dir: &Path,
    digest: &Digest,
    entries: &[PackEntry],
    previous: Option<&PreviousZip>,
    progress: &dyn Progress,
    limits: &Limits,
) -> Result<PackOutcome, PackError> {
    check_sorted(entries);
    check_entries(entries)?;
    create_out_dir(out_dir)?;
    let zip_path = out_dir.join(format!("{}.zip", digest.to_hex()));

    let written = write_reusing(out_dir, &zip_path, entries, previous, limits, progress)?;

    debug!(
        zip = %zip_path.display(),
        size = written.size,
        compressed = written.entries_compressed,
        reused = written.entries_reused,
        "zip written"
    );
    Ok(PackOutcome {
        path: zip_path,
        sha256: written.sha256,
        size: written.size,
        entries: entries.len() as u64,
        unzipped_bytes: unzipped_bytes(entries),
        entries_compressed: written.entries_compressed,
        entries_reused: written.entries_reused,
    })
}

/// Writes the zip, reusing what `previous` offers; if the previous zip turns out to be damaged
/// midway, writes it again without.
fn write_reusing(
    out_dir: &Path,
    zip_path: &Path,
    entries: &[PackEntry],
    previous: Option<&PreviousZip>,
    limits: &Limits,
    progress: &dyn Progress,
) -> Result<Written, PackError> {
    let usable = previous.and_then(open_previous);
    let reason = match attempt(out_dir, zip_path, entries, usable, limits, progress) {
        Ok(written) => return Ok(written),
        Err(AssembleError::Pack(error)) => return Err(error),
        Err(AssembleError::Previous(reason)) => reason,
    };
    let previous_path = previous.map(|previous| previous.path.display().to_string());
    warn!(previous = previous_path, %reason, "previous zip dropped midway; building cold");
    // TODO: progress counts the entries of the dropped attempt twice; a rare path, not worth a
    // way to rewind the progress bar.
    attempt(out_dir, zip_path, entries, None, limits, progress).map_err(|error| match error {
        AssembleError::Pack(error) => error,
        AssembleError::Previous(_) => unreachable!("an attempt without a previous zip"),
    })
}

fn check_sorted(entries: &[PackEntry]) {
    debug_assert!(
        entries
            .windows(2)
            .all(|pair| pair[0].entry.path.as_bytes() < pair[1].entry.path.as_bytes()),
        "entries must be sorted by path without duplicates"
    );
}

fn create_out_dir(out_dir: &Path) -> Result<(), PackError> {
    fs_err::create_dir_all(out_dir).map_err(|source| PackError::CreateDir {
        dir: out_dir.to_path_buf(),
        source,
    })
}

fn unzipped_bytes(entries: &[PackEntry]) -> u64 {
    let files = entries.iter().filter(|e| e.entry.kind == EntryKind::File);
    files.map(|e| e.entry.size).sum()
}

/// Refuses, before anything is written, entries that cannot be packed.
fn check_entries(entries: &[PackEntry]) -> Result<(), PackError> {
    for pack_entry in entries {
        let entry = &pack_entry.entry;
        if format::zip_name(entry).len() > usize::from(u16::MAX) {
            return Err(PackError::NameTooLong {
                zip_path: entry.path.clone(),
            });
        }
        if entry.kind == EntryKind::File && pack_entry.disk_path.is_none() {
            return Err(PackError::NoDiskPath {
                zip_path: entry.path.clone(),
            });
        }
    }
    Ok(())
}

fn open_previous(zip: &PreviousZip) -> Option<Previous<'_>> {
    match Previous::open(zip) {
        Ok(previous) => Some(previous),
        Err(reason @ Unusable::Format { .. }) => {
            debug!(previous = %zip.path.display(), %reason, "previous zip not reused");
            None
        }
        Err(reason) => {
            warn!(previous = %zip.path.display(), %reason, "previous zip not reused");
            None
        }
    }
}

/// Writes the zip once, into a temporary file renamed to `zip_path` on success.
fn attempt(
    out_dir: &Path,
    zip_path: &Path,
    entries: &[PackEntry],
    previous: Option<Previous<'_>>,
    limits: &Limits,
    progress: &dyn Progress,
) -> Result<Written, AssembleError> {
    let (temp, written) = write_temp(out_dir, zip_path, entries, None, previous, limits, progress)?;
    persist(temp, zip_path)?;
    Ok(written)
}

/// Writes the zip into a temporary file in `out_dir`, readable by all and synced. `zip_path`
/// names the zip in errors.
fn write_temp(
    out_dir: &Path,
    zip_path: &Path,
    entries: &[PackEntry],
    unknown: Option<&[bool]>,
    previous: Option<Previous<'_>>,
    limits: &Limits,
    progress: &dyn Progress,
) -> Result<(tempfile::NamedTempFile, Written), AssembleError> {
    let temp = tempfile::Builder::new()
        .prefix(".lamina-tmp-")
        .suffix(".zip")
        .tempfile_in(out_dir)
        .map_err(|source| PackError::Spill {
            dir: out_dir.to_path_buf(),
            source,
        })?;
    let written = assemble::assemble(
        temp.as_file(),
        zip_path,
        entries,
        unknown,
        previous,
        limits,
        progress,
    )?;
    let write_error = |source| PackError::Write {
        zip: zip_path.to_path_buf(),
        source,
    };
    // Built zips are shared artefacts (a CI cache step, another user's checkout), not secrets:
    // 0644 whatever the umask, where the temporary file starts at 0600.
    let readable = std::os::unix::fs::PermissionsExt::from_mode(0o644);
    temp.as_file()
        .set_permissions(readable)
        .map_err(write_error)?;
    temp.as_file().sync_all().map_err(write_error)?;
    Ok((temp, written))
}

fn persist(temp: tempfile::NamedTempFile, zip_path: &Path) -> Result<(), PackError> {
    temp.persist(zip_path).map_err(|error| PackError::Persist {
        zip: zip_path.to_path_buf(),
        source: error.error,
    })?;
    Ok(())
}
