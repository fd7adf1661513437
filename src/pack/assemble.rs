//! Parallel compression with ordered assembly, in batches of bounded size.
//!
//! The entries are cut into batches of at most [`Limits::batch_bytes`] bytes of file content
//! held in memory (and at most [`Limits::batch_entries`] entries). The files of a batch are read
//! and compressed on the rayon pool into `PreparedZipFile`s, in any order, and collected in entry
//! order; meanwhile the previous batch is appended to the zip on another worker, entry by entry,
//! in order, with `add_prepared_file`. So at most two batches are in memory at once, whatever the
//! size of the tree.
//!
//! Files larger than [`Limits::in_memory_max`] never sit whole in memory: a worker deflates each
//! of them streaming into a one-entry zip in an anonymous temporary file beside the output, and
//! the writer copies that entry with `raw_copy_file` in its turn, which gives the bytes of the
//! in-memory path. One that does not compress is stored by the writer from the file itself.
//!
//! The first error of a batch ends the build: the files of one zip are all or nothing.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::Path;

use rayon::prelude::*;
use zip::write::ZipFileBuilder;
use zip::{CompressionMethod, PreparedZipFile, ZipArchive, ZipWriter};

use super::previous::{Previous, Unusable};
use super::{entry_options, PackEntry, PackError};
use crate::digest::{Entry, EntryKind};
use crate::progress::Progress;

/// Bounds on memory, and the size above which a file is compressed streaming.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Files larger than this are compressed streaming, through a temporary file.
    pub in_memory_max: u64,
    /// File content read into memory per batch.
    pub batch_bytes: u64,
    /// Entries per batch.
    pub batch_entries: usize,
}

impl Limits {
    pub(super) const DEFAULT: Limits = Limits {
        in_memory_max: 16 << 20,
        batch_bytes: 32 << 20,
        batch_entries: 8192,
    };
}

/// How an entry gets its bytes.
#[derive(Debug, Clone, Copy)]
enum Plan {
    /// Copied from the previous zip: its entry at this index.
    Reuse(usize),
    /// Written from the entry alone: a folder or a symlink.
    Generate,
    InMemory,
    Streaming,
}

/// An entry ready to be appended.
enum Packed {
    Reused {
        previous_index: usize,
    },
    Generated,
    Prepared(PreparedZipFile),
    /// A large file deflated into a one-entry zip.
    Spilled(ZipArchive<File>),
    /// A large file that does not compress: the writer stores it from disk.
    StoredFromDisk,
}

/// What an attempt to write the zip ended with.
pub(super) enum AssembleError {
    Pack(PackError),
    /// The previous zip turned out to be damaged while it was copied from.
    Previous(Unusable),
}

impl From<PackError> for AssembleError {
    fn from(error: PackError) -> AssembleError {
        AssembleError::Pack(error)
    }
}

/// What the zip holds, once written.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Written {
    pub sha256: [u8; 32],
    pub size: u64,
    pub entries_compressed: u64,
    pub entries_reused: u64,
}

/// Writes the zip of `entries` to `file`, reusing entries of `previous` where they match, and
/// returns the counts of [`Written`] (its hash and size are the caller's part).
pub(super) fn assemble(
    file: &File,
    zip_path: &Path,
    entries: &[PackEntry],
    previous: Option<Previous<'_>>,
    limits: &Limits,
    progress: &dyn Progress,
) -> Result<Written, AssembleError> {
    let plans = plan(entries, previous.as_ref(), limits);
    let spill_dir = zip_path.parent().unwrap_or(Path::new("."));
    let mut writer = OrderedWriter::new(file, zip_path, previous);

    let mut pending: Option<(Range<usize>, Vec<Packed>)> = None;
    for batch in batches(entries, &plans, limits) {
        let (packed, written) = rayon::join(
            || pack_batch(entries, &plans, batch.clone(), spill_dir),
            || match pending.take() {
                Some((range, packed)) => writer.write_batch(entries, range, packed, progress),
                None => Ok(()),
            },
        );
        written?;
        pending = Some((batch, packed?));
    }
    if let Some((range, packed)) = pending {
        writer.write_batch(entries, range, packed, progress)?;
    }
    Ok(writer.finish()?)
}

fn plan(entries: &[PackEntry], previous: Option<&Previous<'_>>, limits: &Limits) -> Vec<Plan> {
    let matches = previous.map(|previous| previous.matches(entries));
    let matched = |index: usize| matches.as_ref().and_then(|matches| matches[index]);
    entries
        .iter()
        .enumerate()
        .map(|(index, pack_entry)| {
            let entry = &pack_entry.entry;
            match (entry.kind, matched(index)) {
                (EntryKind::Dir | EntryKind::Symlink, _) => Plan::Generate,
                (EntryKind::File, Some(previous_index)) => Plan::Reuse(previous_index),
                (EntryKind::File, None) if entry.size > limits.in_memory_max => Plan::Streaming,
                (EntryKind::File, None) => Plan::InMemory,
            }
        })
        .collect()
}

/// Cuts the entries into consecutive ranges within the limits. A range always holds at least one
/// entry, so one file larger than the byte limit is a batch of its own.
fn batches(entries: &[PackEntry], plans: &[Plan], limits: &Limits) -> Vec<Range<usize>> {
    let mut batches = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (index, plan) in plans.iter().enumerate() {
        let cost = match plan {
            Plan::InMemory => entries[index].entry.size,
            Plan::Reuse(_) | Plan::Generate | Plan::Streaming => 0,
        };
        let is_full = bytes + cost > limits.batch_bytes || index - start >= limits.batch_entries;
        if is_full && index > start {
            batches.push(start..index);
            (start, bytes) = (index, 0);
        }
        bytes += cost;
    }
    if start < plans.len() {
        batches.push(start..plans.len());
    }
    batches
}

fn pack_batch(
    entries: &[PackEntry],
    plans: &[Plan],
    range: Range<usize>,
    spill_dir: &Path,
) -> Result<Vec<Packed>, PackError> {
    range
        .into_par_iter()
        .map(|index| pack_one(&entries[index], plans[index], spill_dir))
        .collect()
}

fn pack_one(pack_entry: &PackEntry, plan: Plan, spill_dir: &Path) -> Result<Packed, PackError> {
    match plan {
        Plan::Reuse(previous_index) => Ok(Packed::Reused { previous_index }),
        Plan::Generate => Ok(Packed::Generated),
        Plan::InMemory => prepare_in_memory(pack_entry).map(Packed::Prepared),
        Plan::Streaming => spill(pack_entry, spill_dir),
    }
}

fn disk_path(pack_entry: &PackEntry) -> Result<&Path, PackError> {
    pack_entry
        .disk_path
        .as_deref()
        .ok_or_else(|| PackError::NoDiskPath {
            zip_path: pack_entry.entry.path.clone(),
        })
}

/// Reads a file whole, checks it, and deflates it, or stores it when deflate does not shrink it.
fn prepare_in_memory(pack_entry: &PackEntry) -> Result<PreparedZipFile, PackError> {
    let entry = &pack_entry.entry;
    let path = disk_path(pack_entry)?;
    let content = read_checked(entry, path)?;
    if !content.is_empty() {
        let deflated = prepare(entry, path, CompressionMethod::Deflated, &content)?;
        if deflated.compressed_size() < content.len() as u64 {
            return Ok(deflated);
        }
    }
    prepare(entry, path, CompressionMethod::Stored, &content)
}

fn prepare(
    entry: &Entry,
    path: &Path,
    method: CompressionMethod,
    content: &[u8],
) -> Result<PreparedZipFile, PackError> {
    let deflate_error = |source| PackError::Deflate {
        path: path.to_path_buf(),
        source,
    };
    let mut builder =
        ZipFileBuilder::new(&entry.path, entry_options(entry, method)).map_err(deflate_error)?;
    builder
        .write_all(content)
        .map_err(|error| deflate_error(error.into()))?;
    builder.finish().map_err(deflate_error)
}

/// The content of the file at `path`, which must be what `entry` was hashed from.
fn read_checked(entry: &Entry, path: &Path) -> Result<Vec<u8>, PackError> {
    let read_error = |source| PackError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(read_error)?;
    let mut content = Vec::with_capacity(usize::try_from(entry.size).unwrap_or(0));
    file.read_to_end(&mut content).map_err(read_error)?;
    let is_unchanged =
        content.len() as u64 == entry.size && blake3::hash(&content) == entry.content_hash;
    if !is_unchanged {
        return Err(PackError::ContentChanged {
            path: path.to_path_buf(),
        });
    }
    Ok(content)
}

/// Deflates a large file streaming into a one-entry zip in an anonymous temporary file.
fn spill(pack_entry: &PackEntry, spill_dir: &Path) -> Result<Packed, PackError> {
    let entry = &pack_entry.entry;
    let path = disk_path(pack_entry)?;
    let spill_error = |source| PackError::Spill {
        dir: spill_dir.to_path_buf(),
        source,
    };
    let deflate_error = |source| PackError::Deflate {
        path: path.to_path_buf(),
        source,
    };
    let spill = tempfile::tempfile_in(spill_dir).map_err(spill_error)?;
    let mut zip = ZipWriter::new(BufWriter::with_capacity(1 << 20, spill));
    let options = entry_options(entry, CompressionMethod::Deflated);
    zip.start_file(&entry.path, options)
        .map_err(deflate_error)?;
    copy_checked(entry, path, &mut zip, |source| {
        deflate_error(zip::result::ZipError::Io(source))
    })?;
    let spill = zip.finish().map_err(deflate_error)?;
    let spill = spill
        .into_inner()
        .map_err(|error| spill_error(error.into_error()))?;
    let mut archive = ZipArchive::new(spill).map_err(deflate_error)?;
    let compressed_size = archive
        .by_index_raw(0)
        .map_err(deflate_error)?
        .compressed_size();
    if compressed_size < entry.size {
        Ok(Packed::Spilled(archive))
    } else {
        Ok(Packed::StoredFromDisk)
    }
}

/// Copies the file at `path` to `out`, checking it against `entry` on the way.
fn copy_checked(
    entry: &Entry,
    path: &Path,
    out: &mut impl Write,
    write_error: impl Fn(io::Error) -> PackError,
) -> Result<(), PackError> {
    let read_error = |source| PackError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(read_error)?;
    let mut hasher = blake3::Hasher::new();
    let mut buffer = vec![0; 1 << 20];
    let mut size = 0;
    loop {
        let count = read_full(&mut file, &mut buffer).map_err(read_error)?;
        hasher.update(&buffer[..count]);
        out.write_all(&buffer[..count]).map_err(&write_error)?;
        size += count as u64;
        if count < buffer.len() {
            break;
        }
    }
    if size != entry.size || hasher.finalize() != entry.content_hash {
        return Err(PackError::ContentChanged {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Reads until `buffer` is full or the file ends; returns how much was read. The compressor is
/// fed whole buffers whatever sizes the file system's reads return, because zlib-rs's output
/// depends on how its input is sliced.
fn read_full(file: &mut File, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(count) => filled += count,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// Appends entries in order.
struct OrderedWriter<'a> {
    zip: ZipWriter<Output<'a>>,
    zip_path: &'a Path,
    previous: Option<Previous<'a>>,
    counts: Written,
}

impl<'a> OrderedWriter<'a> {
    fn new(file: &'a File, zip_path: &'a Path, previous: Option<Previous<'a>>) -> Self {
        OrderedWriter {
            zip: ZipWriter::new(Output::new(file)),
            zip_path,
            previous,
            counts: Written::default(),
        }
    }

    fn write_batch(
        &mut self,
        entries: &[PackEntry],
        range: Range<usize>,
        packed: Vec<Packed>,
        progress: &dyn Progress,
    ) -> Result<(), AssembleError> {
        for (pack_entry, packed) in entries[range].iter().zip(packed) {
            self.write_entry(pack_entry, packed)?;
            progress.advance(1);
        }
        Ok(())
    }

    fn write_entry(&mut self, pack_entry: &PackEntry, packed: Packed) -> Result<(), AssembleError> {
        let entry = &pack_entry.entry;
        let zip_error = |source| PackError::Zip {
            zip: self.zip_path.to_path_buf(),
            zip_path: entry.path.clone(),
            source,
        };
        match packed {
            Packed::Reused { previous_index } => {
                let previous = self
                    .previous
                    .as_mut()
                    .expect("reuse is planned only with a previous zip");
                previous
                    .copy(previous_index, entry, &mut self.zip)
                    .map_err(AssembleError::Previous)?;
                self.counts.entries_reused += 1;
                return Ok(());
            }
            Packed::Generated => {
                let options = entry_options(entry, CompressionMethod::Stored);
                let result = match &entry.link_target {
                    Some(target) => self.zip.add_symlink(&entry.path, target, options),
                    None => self.zip.add_directory(&entry.path, options),
                };
                result.map_err(zip_error)?;
                return Ok(());
            }
            Packed::Prepared(prepared) => {
                self.zip.add_prepared_file(prepared).map_err(zip_error)?
            }
            Packed::Spilled(mut spill) => {
                let file = spill.by_index_raw(0).map_err(zip_error)?;
                self.zip.raw_copy_file(file).map_err(zip_error)?;
            }
            Packed::StoredFromDisk => self.store_from_disk(pack_entry)?,
        }
        self.counts.entries_compressed += 1;
        Ok(())
    }

    /// Stores a large file that deflate does not shrink, read again and checked again.
    fn store_from_disk(&mut self, pack_entry: &PackEntry) -> Result<(), PackError> {
        let entry = &pack_entry.entry;
        let path = disk_path(pack_entry)?;
        let zip_error = |source| PackError::Zip {
            zip: self.zip_path.to_path_buf(),
            zip_path: entry.path.clone(),
            source,
        };
        let options = entry_options(entry, CompressionMethod::Stored);
        self.zip
            .start_file(&entry.path, options)
            .map_err(zip_error)?;
        let zip_path = self.zip_path;
        copy_checked(entry, path, &mut self.zip, |source| PackError::Write {
            zip: zip_path.to_path_buf(),
            source,
        })
    }

    /// Writes the central directory and end records, and returns the counts.
    fn finish(self) -> Result<Written, PackError> {
        let zip_path = self.zip_path;
        let output = self.zip.finish().map_err(|source| PackError::Zip {
            zip: zip_path.to_path_buf(),
            zip_path: String::new(),
            source,
        })?;
        output.finish().map_err(|source| PackError::Write {
            zip: zip_path.to_path_buf(),
            source,
        })?;
        Ok(self.counts)
    }
}

/// A buffered writer that knows its position, so that the zip writer's frequent position queries
/// cost neither a flush nor a system call. Real seeks (to patch a local header) flush first.
struct Output<'a> {
    inner: BufWriter<&'a File>,
    position: u64,
}

impl<'a> Output<'a> {
    fn new(file: &'a File) -> Output<'a> {
        Output {
            inner: BufWriter::with_capacity(1 << 20, file),
            position: 0,
        }
    }

    fn finish(mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Write for Output<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let count = self.inner.write(bytes)?;
        self.position += count as u64;
        Ok(count)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Seek for Output<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        if to == SeekFrom::Current(0) {
            return Ok(self.position);
        }
        self.position = self.inner.seek(to)?;
        Ok(self.position)
    }

    fn stream_position(&mut self) -> io::Result<u64> {
        Ok(self.position)
    }
}
