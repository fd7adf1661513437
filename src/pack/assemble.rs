//! Parallel compression with ordered assembly, in batches of bounded size.
//!
//! The entries are cut into batches of at most [`Limits::batch_bytes`] bytes of file content
//! held in memory (and at most [`Limits::batch_entries`] entries). The files of a batch are read
//! and compressed on the rayon pool, in any order, and collected in entry order; meanwhile the
//! previous batch is written to the zip on another worker, entry by entry, in order. So at most
//! two batches are in memory at once, whatever the size of the tree, and the zip is written
//! front to back without a seek, which lets the SHA-256 follow the bytes as they are written.
//!
//! Files larger than [`Limits::in_memory_max`] never sit whole in memory: they are compressed
//! into an anonymous temporary file beside the zip and copied from there in their turn.
//!
//! The first error of a batch ends the build: the files of one zip are all or nothing.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::ops::Range;
use std::path::Path;

use rayon::prelude::*;
use sha2::{Digest as _, Sha256};

use super::deflate::{self, Expected, Packed};
use super::format::{self, CentralDirectory, DataInfo};
use super::previous::{CopyError, Previous, Unusable};
use super::{PackEntry, PackError};
use crate::digest::EntryKind;
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
        batch_bytes: 16 << 20,
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
    /// Read whole, then compressed; `learn` when the file's hash is not known yet (it is then
    /// computed from the same read instead of checked).
    InMemory { learn: bool },
    /// Compressed streaming, through a temporary file.
    Streaming { learn: bool },
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
#[derive(Debug, Clone)]
pub(super) struct Written {
    pub sha256: [u8; 32],
    pub size: u64,
    pub entries_compressed: u64,
    pub entries_reused: u64,
    /// The blake3 of each file that was packed without a known hash, by entry index.
    pub learned: Vec<(usize, blake3::Hash)>,
}

/// Writes the zip of `entries` to `file`, reusing entries of `previous` where they match.
/// The files marked in `unknown` have no hash yet: theirs is learned while they are compressed.
pub(super) fn assemble(
    file: &File,
    zip_path: &Path,
    entries: &[PackEntry],
    unknown: Option<&[bool]>,
    previous: Option<Previous<'_>>,
    limits: &Limits,
    progress: &dyn Progress,
) -> Result<Written, AssembleError> {
    let plans = plan(entries, unknown, previous.as_ref(), limits);
    let spill_dir = zip_path.parent().unwrap_or(Path::new("."));
    let mut writer = OrderedWriter::new(file, zip_path, previous, entries.len());

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
    Ok(writer.finish(entries)?)
}

fn plan(
    entries: &[PackEntry],
    unknown: Option<&[bool]>,
    previous: Option<&Previous<'_>>,
    limits: &Limits,
) -> Vec<Plan> {
    let matches = previous.map(|previous| previous.matches(entries));
    let matched = |index: usize| matches.as_ref().and_then(|matches| matches[index]);
    let learn = |index: usize| unknown.is_some_and(|unknown| unknown[index]);
    entries
        .iter()
        .enumerate()
        .map(
            |(index, pack_entry)| match (matched(index), pack_entry.entry.kind) {
                (Some(previous_index), _) => Plan::Reuse(previous_index),
                (None, EntryKind::Dir | EntryKind::Symlink) => Plan::Generate,
                (None, EntryKind::File) if pack_entry.entry.size > limits.in_memory_max => {
                    Plan::Streaming {
                        learn: learn(index),
                    }
                }
                (None, EntryKind::File) => Plan::InMemory {
                    learn: learn(index),
                },
            },
        )
        .collect()
}

/// Cuts the entries into consecutive ranges within the limits. A range always holds at least one
/// entry, so one file larger than the byte limit is a batch of its own.
fn batches(entries: &[PackEntry], plans: &[Plan], limits: &Limits) -> Vec<Range<usize>> {
    let mut batches = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (index, plan) in plans.iter().enumerate() {
        let cost = match plan {
            Plan::InMemory { .. } => entries[index].entry.size,
            Plan::Reuse(_) | Plan::Generate | Plan::Streaming { .. } => 0,
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
    let entry = &pack_entry.entry;
    let disk_path = || {
        pack_entry
            .disk_path
            .as_deref()
            .ok_or_else(|| PackError::NoDiskPath {
                zip_path: entry.path.clone(),
            })
    };
    let expected = |learn: bool| match learn {
        true => Expected::Learn,
        false => Expected::Hash(entry.content_hash),
    };
    match plan {
        Plan::Reuse(previous_index) => Ok(Packed::Reused { previous_index }),
        Plan::Generate => {
            let content = entry.link_target.clone().unwrap_or_default().into_bytes();
            Ok(Packed::Memory {
                data: DataInfo::stored(&content),
                bytes: content,
                learned: None,
            })
        }
        Plan::InMemory { learn } => deflate::pack_in_memory(entry, disk_path()?, expected(learn)),
        Plan::Streaming { learn } => {
            deflate::pack_streaming(entry, disk_path()?, spill_dir, expected(learn))
        }
    }
}

/// Writes entries in order and keeps what the central directory needs.
struct OrderedWriter<'a> {
    out: HashingWriter<'a>,
    previous: Option<Previous<'a>>,
    /// Entries of the previous zip planned for reuse and not copied yet: consecutive ones, which
    /// are copied in one go (see [`Previous::copy_run`]) when an entry that does not continue
    /// them comes, or at the end of the batch.
    run: Option<Range<usize>>,
    /// For each entry written so far: its data and the offset of its local header.
    records: Vec<(DataInfo, u64)>,
    header: Vec<u8>,
    entries_compressed: u64,
    entries_reused: u64,
    learned: Vec<(usize, blake3::Hash)>,
}

impl<'a> OrderedWriter<'a> {
    fn new(
        file: &'a File,
        zip_path: &'a Path,
        previous: Option<Previous<'a>>,
        count: usize,
    ) -> Self {
        OrderedWriter {
            out: HashingWriter::new(file, zip_path),
            previous,
            run: None,
            records: Vec::with_capacity(count),
            header: Vec::new(),
            entries_compressed: 0,
            entries_reused: 0,
            learned: Vec::new(),
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
        self.copy_run()
    }

    fn write_entry(&mut self, pack_entry: &PackEntry, packed: Packed) -> Result<(), AssembleError> {
        let entry = &pack_entry.entry;
        if !matches!(packed, Packed::Reused { .. }) {
            self.copy_run()?;
        }
        let offset = self.position();
        let is_file = entry.kind == EntryKind::File;
        let index = self.records.len();
        let data = match packed {
            Packed::Reused { previous_index } => {
                self.entries_reused += u64::from(is_file);
                self.reuse(previous_index)?
            }
            Packed::Memory {
                data,
                bytes,
                learned,
            } => {
                self.write_header(entry, &data)?;
                self.out.write(&bytes)?;
                self.entries_compressed += u64::from(is_file);
                self.learned.extend(learned.map(|hash| (index, hash)));
                data
            }
            Packed::Spilled {
                data,
                spill,
                learned,
            } => {
                self.write_header(entry, &data)?;
                self.out
                    .copy_from(spill.take(data.compressed_size), pack_entry)?;
                self.entries_compressed += 1;
                self.learned.extend(learned.map(|hash| (index, hash)));
                data
            }
            Packed::StoredFromDisk { data, learned } => {
                self.write_header(entry, &data)?;
                let path = pack_entry
                    .disk_path
                    .as_deref()
                    .expect("a streamed file has a disk path");
                let hash = learned.unwrap_or(entry.content_hash);
                deflate::copy_stored_from_disk(entry, path, &data, hash, |bytes| {
                    self.out.write(bytes)
                })?;
                self.entries_compressed += 1;
                self.learned.extend(learned.map(|hash| (index, hash)));
                data
            }
        };
        self.records.push((data, offset));
        Ok(())
    }

    /// Where the next entry starts: after the bytes written and the run not copied yet.
    fn position(&self) -> u64 {
        match (&self.previous, &self.run) {
            (Some(previous), Some(run)) => self.out.position + previous.run_len(run),
            _ => self.out.position,
        }
    }

    /// Adds entry `index` of the previous zip to the run to copy, and returns its data.
    fn reuse(&mut self, index: usize) -> Result<DataInfo, AssembleError> {
        match &mut self.run {
            Some(run) if run.end == index => run.end += 1,
            _ => {
                self.copy_run()?;
                self.run = Some(index..index + 1);
            }
        }
        let previous = self.previous.as_ref();
        Ok(previous
            .expect("reuse is planned only with a previous zip")
            .data(index))
    }

    /// Copies the pending run of reused entries, if any.
    fn copy_run(&mut self) -> Result<(), AssembleError> {
        let (Some(run), Some(previous)) = (self.run.take(), self.previous.as_mut()) else {
            return Ok(());
        };
        let out = &mut self.out;
        previous
            .copy_run(run, |bytes| out.write(bytes))
            .map_err(|error| match error {
                CopyError::Previous(reason) => AssembleError::Previous(reason),
                CopyError::Emit(error) => AssembleError::Pack(error),
            })
    }

    fn write_header(
        &mut self,
        entry: &crate::digest::Entry,
        data: &DataInfo,
    ) -> Result<(), PackError> {
        self.header.clear();
        format::local_header(&mut self.header, &format::zip_name(entry), data);
        self.out.write(&self.header)
    }

    /// Writes the central directory and end records, and returns what was written.
    fn finish(mut self, entries: &[PackEntry]) -> Result<Written, PackError> {
        let offset = self.out.position;
        let mut buffer = Vec::with_capacity(1 << 20);
        for (pack_entry, (data, entry_offset)) in entries.iter().zip(&self.records) {
            let entry = &pack_entry.entry;
            let mode = format::unix_mode(entry);
            format::central_header(
                &mut buffer,
                &format::zip_name(entry),
                mode,
                data,
                *entry_offset,
            );
            if buffer.len() >= 1 << 20 {
                self.out.write(&buffer)?;
                buffer.clear();
            }
        }
        self.out.write(&buffer)?;
        let directory = CentralDirectory {
            entries: entries.len() as u64,
            offset,
            size: self.out.position - offset,
        };
        buffer.clear();
        format::end_records(&mut buffer, &directory);
        self.out.write(&buffer)?;
        let (sha256, size) = self.out.finish()?;
        Ok(Written {
            sha256,
            size,
            entries_compressed: self.entries_compressed,
            entries_reused: self.entries_reused,
            learned: self.learned,
        })
    }
}

/// Writes of at least this many bytes are hashed on one rayon worker while another writes them.
/// A smaller write is hashed in place: handing it over would cost more than it saves.
const PARALLEL_HASH_MIN: usize = 1 << 20;

/// The zip's pages are handed to the disk each time this many more bytes have been written, so
/// that the sync before the rename waits for the last few only, not for the whole zip.
const WRITEBACK_STEP: u64 = 16 << 20;

/// Writes the zip front to back through a buffer, hashing every byte on its way. A large write
/// (a piece of a run copied from the previous zip, a spilled entry) is hashed and written at
/// the same time, since on a rebuild the SHA-256 of the whole zip is as long as the writing
/// itself; and the written pages are handed to the disk as they accumulate.
struct HashingWriter<'a> {
    inner: BufWriter<&'a File>,
    path: &'a Path,
    sha256: Sha256,
    position: u64,
    /// Where the bytes not yet handed to the disk start.
    writeback_from: u64,
}

impl<'a> HashingWriter<'a> {
    fn new(file: &'a File, path: &'a Path) -> HashingWriter<'a> {
        HashingWriter {
            inner: BufWriter::with_capacity(1 << 20, file),
            path,
            sha256: Sha256::new(),
            position: 0,
            writeback_from: 0,
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), PackError> {
        self.position += bytes.len() as u64;
        let written = if bytes.len() >= PARALLEL_HASH_MIN {
            let (sha256, inner) = (&mut self.sha256, &mut self.inner);
            rayon::join(|| sha256.update(bytes), || inner.write_all(bytes)).1
        } else {
            self.sha256.update(bytes);
            self.inner.write_all(bytes)
        };
        written.map_err(|source| self.error(source))?;
        self.start_writeback();
        Ok(())
    }

    /// Starts writing back what the file holds beyond `writeback_from`, once that is a step.
    fn start_writeback(&mut self) {
        let in_file = self.position - self.inner.buffer().len() as u64;
        if in_file - self.writeback_from < WRITEBACK_STEP {
            return;
        }
        writeback(self.inner.get_ref(), self.writeback_from, in_file);
        self.writeback_from = in_file;
    }

    /// Copies a spilled entry into the zip.
    fn copy_from(
        &mut self,
        mut source: impl Read,
        pack_entry: &PackEntry,
    ) -> Result<(), PackError> {
        let mut buffer = vec![0; 1 << 20];
        loop {
            let count = match source.read(&mut buffer) {
                Ok(0) => return Ok(()),
                Ok(count) => count,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    let path = pack_entry.disk_path.clone().unwrap_or_default();
                    return Err(PackError::Deflate { path, source });
                }
            };
            self.write(&buffer[..count])?;
        }
    }

    fn finish(mut self) -> Result<([u8; 32], u64), PackError> {
        self.inner.flush().map_err(|source| self.error(source))?;
        Ok((self.sha256.finalize().into(), self.position))
    }

    fn error(&self, source: io::Error) -> PackError {
        PackError::Write {
            zip: self.path.to_path_buf(),
            source,
        }
    }
}

/// Asks the kernel to start writing `start..end` of `file` to the disk, without waiting. Only a
/// hint: an error is ignored here, since the sync that follows reports any failure to write.
#[cfg(target_os = "linux")]
fn writeback(file: &File, start: u64, end: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: sync_file_range reads no memory of this process; the descriptor is open for as
    // long as `file` is borrowed.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            start as libc::off64_t,
            (end - start) as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn writeback(_file: &File, _start: u64, _end: u64) {}
