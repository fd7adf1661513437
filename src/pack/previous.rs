//! Reusing the compressed entries of an earlier zip.
//!
//! A previous zip is used only when it was written under the same [`FORMAT_LABEL`] and its
//! central directory and end records are, byte for byte, what this writer would write for its
//! entry list (as recorded with it), with every entry's local header and data laid end to end
//! from offset 0. An entry of the new zip that is identical to one of the previous zip (path,
//! kind, mode, size and content hash, or link target) then has the same local header and data
//! bytes, which are copied: its header is compared with the expected one while it is copied, and
//! its data is trusted (the zip was written by lamina, atomically, and named by its digest).
//!
//! A previous zip that is missing, unreadable or damaged is not used and the build goes on
//! without it; nothing here is an error of the build.

use std::fmt;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;

use super::format::{self, CentralDirectory, DataInfo, Method};
use super::{PackEntry, PreviousZip, FORMAT_LABEL};
use crate::digest::{Entry, EntryKind};

/// Runs of reused entries are copied in pieces of this size: large enough that the cost of a
/// read, a write and a hash update per piece is lost in their bytes, small enough that the two
/// pieces in use (one read while the other is written) stay in the processor's caches. On the
/// 75,600-file benchmark tree, pieces of 1 to 2 MiB packed a little faster than 4 or 8 MiB.
const CHUNK_LEN: usize = 2 << 20;

/// Why a previous zip is not used at all.
#[derive(Debug)]
pub(super) enum Unusable {
    /// Written by another pack format: its bytes are not what this writer would write.
    Format { found: String },
    /// It could not be opened or read.
    Unreadable { source: io::Error },
    /// Its bytes are not those of a zip this writer wrote for its entry list.
    Damaged { what: String },
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unusable::Format { found } => {
                write!(f, "it was written as `{found}`, not `{FORMAT_LABEL}`")
            }
            Unusable::Unreadable { source } => write!(f, "it cannot be read: {source}"),
            Unusable::Damaged { what } => write!(f, "it is damaged: {what}"),
        }
    }
}

/// Why entries could not be copied from a previous zip.
#[derive(Debug)]
pub(super) enum CopyError<E> {
    /// The previous zip turned out to be unusable while it was read.
    Previous(Unusable),
    /// Passing the bytes on failed.
    Emit(E),
}

impl<E> From<Unusable> for CopyError<E> {
    fn from(reason: Unusable) -> CopyError<E> {
        CopyError::Previous(reason)
    }
}

fn damaged(what: impl Into<String>) -> Unusable {
    Unusable::Damaged { what: what.into() }
}

/// A previous zip checked for reuse, open for copying.
///
/// Entries are copied by runs: consecutive entries of the previous zip are consecutive bytes of
/// it, so a run of them reused one after the other is one span of the file, read in large
/// pieces. While one piece is passed on (hashed and written by the caller), the next is read on
/// another rayon worker; the two pieces alternate between two buffers kept for the next run.
pub(super) struct Previous<'a> {
    zip: &'a PreviousZip,
    /// For each entry of `zip.entries`: its data as recorded, and the offset of its local header.
    records: Vec<(DataInfo, u64)>,
    /// Where the last entry's data ends and the central directory begins.
    entries_end: u64,
    file: File,
    chunk_len: usize,
    /// The piece being passed on and the piece being read.
    buffers: [Vec<u8>; 2],
}

impl<'a> Previous<'a> {
    /// Opens `zip` and checks that it can be reused, as the module documentation says.
    pub(super) fn open(zip: &'a PreviousZip) -> Result<Previous<'a>, Unusable> {
        if zip.format != FORMAT_LABEL {
            return Err(Unusable::Format {
                found: zip.format.clone(),
            });
        }
        let is_sorted = zip
            .entries
            .windows(2)
            .all(|pair| pair[0].path.as_bytes() < pair[1].path.as_bytes());
        if !is_sorted {
            return Err(damaged("its entry list is not sorted by path"));
        }
        let unreadable = |source| Unusable::Unreadable { source };
        let file = File::open(&zip.path).map_err(unreadable)?;
        let file_len = file.metadata().map_err(unreadable)?.len();
        let directory = read_end_records(&file, file_len)?;
        if directory.entries != zip.entries.len() as u64 {
            return Err(damaged(format!(
                "it holds {} entries where its list has {}",
                directory.entries,
                zip.entries.len()
            )));
        }
        let records = read_central_directory(&file, &directory, &zip.entries)?;
        Ok(Previous {
            zip,
            records,
            entries_end: directory.offset,
            file,
            chunk_len: CHUNK_LEN,
            buffers: [Vec::new(), Vec::new()],
        })
    }

    /// For each of `entries` (sorted by path), the index of an identical entry of the previous
    /// zip, if there is one.
    pub(super) fn matches(&self, entries: &[PackEntry]) -> Vec<Option<usize>> {
        let previous = &self.zip.entries;
        let mut cursor = 0;
        let mut matches = Vec::with_capacity(entries.len());
        for wanted in entries {
            let path = wanted.entry.path.as_bytes();
            while cursor < previous.len() && previous[cursor].path.as_bytes() < path {
                cursor += 1;
            }
            let found = previous
                .get(cursor)
                .filter(|candidate| **candidate == wanted.entry);
            matches.push(found.map(|_| cursor));
        }
        matches
    }

    /// The data description of entry `index`, as its central record gives it.
    pub(super) fn data(&self, index: usize) -> DataInfo {
        self.records[index].0
    }

    /// How many bytes the local headers and data of the entries `run` take.
    pub(super) fn run_len(&self, run: &Range<usize>) -> u64 {
        self.offset(run.end) - self.offset(run.start)
    }

    /// Where entry `index` starts; for one past the last entry, where the entries end.
    fn offset(&self, index: usize) -> u64 {
        self.records
            .get(index)
            .map_or(self.entries_end, |(_, offset)| *offset)
    }

    /// Copies the local headers and data of the consecutive entries `run`, passing them to
    /// `emit` in order, in pieces of any size. Each local header is compared with the one this
    /// writer would write for its entry before it is passed on; the data is trusted, as the
    /// module documentation says.
    pub(super) fn copy_run<E: Send>(
        &mut self,
        run: Range<usize>,
        mut emit: impl FnMut(&[u8]) -> Result<(), E> + Send,
    ) -> Result<(), CopyError<E>> {
        let [mut front, mut back] = std::mem::take(&mut self.buffers);
        let result = self.copy_pieces(run, &mut front, &mut back, &mut emit);
        self.buffers = [front, back];
        result
    }

    fn copy_pieces<E: Send>(
        &self,
        run: Range<usize>,
        front: &mut Vec<u8>,
        back: &mut Vec<u8>,
        emit: &mut (impl FnMut(&[u8]) -> Result<(), E> + Send),
    ) -> Result<(), CopyError<E>> {
        let end = self.offset(run.end);
        let mut start = self.offset(run.start);
        let mut next_header = run.start;
        self.read_piece(front, start, end, next_header, run.end)?;
        while start < end {
            let len = self.check_headers(front, start, &mut next_header, run.end)?;
            let piece_end = start + len as u64;
            let piece = &front[..len];
            let (emitted, read) = rayon::join(
                || emit(piece).map_err(CopyError::Emit),
                || self.read_piece(back, piece_end, end, next_header, run.end),
            );
            emitted?;
            read?;
            std::mem::swap(front, back);
            start = piece_end;
        }
        Ok(())
    }

    /// Fills `buffer` with the bytes from `start` on: a piece of `chunk_len` bytes, or more if
    /// that would not hold the whole local header starting there, and no further than `end`.
    fn read_piece<E>(
        &self,
        buffer: &mut Vec<u8>,
        start: u64,
        end: u64,
        next_header: usize,
        run_end: usize,
    ) -> Result<(), CopyError<E>> {
        let mut len = self.chunk_len as u64;
        if next_header < run_end && self.offset(next_header) == start {
            len = len.max(self.local_header_len(next_header));
        }
        let len = len.min(end - start) as usize;
        buffer.resize(len, 0);
        match self.file.read_exact_at(buffer, start) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
                Err(damaged("it is shorter than its central directory says").into())
            }
            Err(source) => Err(Unusable::Unreadable { source }.into()),
        }
    }

    /// Compares the local headers that start in `piece` (which starts at `start`) with the
    /// expected ones, from entry `*next_header` on, and returns how much of the piece to pass
    /// on: all of it, or the bytes before a header that does not end in it, which is then
    /// checked at the start of the next piece.
    fn check_headers(
        &self,
        piece: &[u8],
        start: u64,
        next_header: &mut usize,
        run_end: usize,
    ) -> Result<usize, Unusable> {
        let mut expected = Vec::new();
        while *next_header < run_end {
            let (data, offset) = &self.records[*next_header];
            // A piece ends at the latest before the first header not yet checked.
            let at = (offset - start) as usize;
            if at >= piece.len() {
                break;
            }
            let entry = &self.zip.entries[*next_header];
            expected.clear();
            format::local_header(&mut expected, &format::zip_name(entry), data);
            let Some(found) = piece.get(at..at + expected.len()) else {
                return Ok(at);
            };
            if found != expected {
                let what = format!(
                    "the local header of `{}` is not the expected one",
                    entry.path
                );
                return Err(damaged(what));
            }
            *next_header += 1;
        }
        Ok(piece.len())
    }

    /// Copies in pieces of `chunk_len` bytes instead, so that tests can cut small zips into many.
    #[cfg(test)]
    pub(super) fn set_chunk_len(&mut self, chunk_len: usize) {
        self.chunk_len = chunk_len;
    }

    fn local_header_len(&self, index: usize) -> u64 {
        let name = format::zip_name(&self.zip.entries[index]);
        format::local_header_len(&name, &self.records[index].0)
    }
}

fn read_end_records(file: &File, file_len: u64) -> Result<CentralDirectory, Unusable> {
    let longest = format::ZIP64_END_LEN + format::ZIP64_LOCATOR_LEN + format::END_LEN;
    let tail_len = file_len.min(longest);
    let tail = read_at(file, file_len - tail_len, tail_len)?;
    let directory = format::parse_end_records(&tail, file_len)
        .ok_or_else(|| damaged("it does not end with the end records this writer writes"))?;

    let end_len = directory.end_records_len();
    let directory_end = directory.offset.checked_add(directory.size);
    if directory_end.and_then(|end| end.checked_add(end_len)) != Some(file_len) {
        return Err(damaged(
            "its central directory is not where its end records say",
        ));
    }
    let mut expected = Vec::new();
    format::end_records(&mut expected, &directory);
    if tail[tail.len() - end_len as usize..] != expected[..] {
        return Err(damaged(
            "its end records are not the ones this writer writes",
        ));
    }
    Ok(directory)
}

/// Reads the central directory and checks each record against the entry it belongs to.
fn read_central_directory(
    file: &File,
    directory: &CentralDirectory,
    entries: &[Entry],
) -> Result<Vec<(DataInfo, u64)>, Unusable> {
    let bytes = read_at(file, directory.offset, directory.size)?;
    let mut records = Vec::with_capacity(entries.len());
    let mut position = 0;
    let mut next_offset = 0;
    let mut expected = Vec::new();
    for entry in entries {
        let (data, offset, len) =
            format::parse_central_header(&bytes[position..]).ok_or_else(|| {
                damaged(format!(
                    "the central record of `{}` is unreadable",
                    entry.path
                ))
            })?;
        let name = format::zip_name(entry);
        expected.clear();
        format::central_header(
            &mut expected,
            &name,
            format::unix_mode(entry),
            &data,
            offset,
        );
        let is_consistent = bytes[position..position + len] == expected[..]
            && offset == next_offset
            && describes(entry, &data);
        if !is_consistent {
            return Err(damaged(format!(
                "the central record of `{}` is not as written",
                entry.path
            )));
        }
        next_offset = offset + format::local_header_len(&name, &data) + data.compressed_size;
        records.push((data, offset));
        position += len;
    }
    if position as u64 != directory.size || next_offset != directory.offset {
        return Err(damaged(
            "its entries do not fill it up to the central directory",
        ));
    }
    Ok(records)
}

/// Whether `data` is what this writer records for `entry`.
fn describes(entry: &Entry, data: &DataInfo) -> bool {
    match entry.kind {
        EntryKind::Dir => *data == DataInfo::EMPTY,
        EntryKind::Symlink => {
            let target = entry.link_target.as_deref().unwrap_or_default().as_bytes();
            *data == DataInfo::stored(target)
        }
        EntryKind::File => {
            data.uncompressed_size == entry.size
                && match data.method {
                    Method::Stored => data.compressed_size == entry.size,
                    Method::Deflated => data.compressed_size < entry.size,
                }
        }
    }
}

fn read_at(file: &File, offset: u64, len: u64) -> Result<Vec<u8>, Unusable> {
    let mut bytes = vec![0; usize::try_from(len).unwrap_or(usize::MAX)];
    match file.read_exact_at(&mut bytes, offset) {
        Ok(()) => Ok(bytes),
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
            Err(damaged("it is shorter than its records say"))
        }
        Err(source) => Err(Unusable::Unreadable { source }),
    }
}
