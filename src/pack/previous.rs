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
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};

use super::format::{self, CentralDirectory, DataInfo, Method};
use super::{PackEntry, PreviousZip, FORMAT_LABEL};
use crate::digest::{Entry, EntryKind};

/// Reads the previous zip in large pieces: reused entries mostly follow each other in it.
const READ_BUFFER_LEN: usize = 1 << 20;

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

/// Why an entry could not be copied from a previous zip.
#[derive(Debug)]
pub(super) enum CopyError<E> {
    /// The previous zip turned out to be unusable while it was read.
    Previous(Unusable),
    /// Passing the bytes on failed.
    Emit(E),
}

impl<E> From<io::Error> for CopyError<E> {
    fn from(source: io::Error) -> CopyError<E> {
        CopyError::Previous(Unusable::Unreadable { source })
    }
}

fn damaged(what: impl Into<String>) -> Unusable {
    Unusable::Damaged { what: what.into() }
}

/// A previous zip checked for reuse, open for copying.
pub(super) struct Previous<'a> {
    zip: &'a PreviousZip,
    /// For each entry of `zip.entries`: its data as recorded, and the offset of its local header.
    records: Vec<(DataInfo, u64)>,
    reader: BufReader<File>,
    position: u64,
    /// Scratch space for the expected and the found local header.
    header: Vec<u8>,
    found: Vec<u8>,
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
        let mut file = File::open(&zip.path).map_err(unreadable)?;
        let file_len = file.metadata().map_err(unreadable)?.len();
        let directory = read_end_records(&mut file, file_len)?;
        if directory.entries != zip.entries.len() as u64 {
            return Err(damaged(format!(
                "it holds {} entries where its list has {}",
                directory.entries,
                zip.entries.len()
            )));
        }
        let records = read_central_directory(&mut file, &directory, &zip.entries)?;
        file.rewind().map_err(unreadable)?;
        Ok(Previous {
            zip,
            records,
            reader: BufReader::with_capacity(READ_BUFFER_LEN, file),
            position: 0,
            header: Vec::new(),
            found: Vec::new(),
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

    /// Copies the local header and data of entry `index` of the previous zip, passing them to
    /// `emit`, and returns the entry's data description.
    pub(super) fn copy<E>(
        &mut self,
        index: usize,
        mut emit: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<DataInfo, CopyError<E>> {
        let (data, offset) = self.records[index];
        let entry = &self.zip.entries[index];
        self.seek(offset)?;
        self.check_local_header(entry, &data)?;
        emit(&self.header).map_err(CopyError::Emit)?;
        self.copy_data(entry, data.compressed_size, emit)?;
        Ok(data)
    }

    /// Reads the local header at the current position; it must be the one this writer writes.
    fn check_local_header<E>(
        &mut self,
        entry: &Entry,
        data: &DataInfo,
    ) -> Result<(), CopyError<E>> {
        self.header.clear();
        format::local_header(&mut self.header, &format::zip_name(entry), data);
        self.found.resize(self.header.len(), 0);
        self.reader.read_exact(&mut self.found)?;
        self.position += self.found.len() as u64;
        if self.found != self.header {
            let what = format!(
                "the local header of `{}` is not the expected one",
                entry.path
            );
            return Err(CopyError::Previous(damaged(what)));
        }
        Ok(())
    }

    fn copy_data<E>(
        &mut self,
        entry: &Entry,
        len: u64,
        mut emit: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), CopyError<E>> {
        let mut remaining = len;
        while remaining > 0 {
            let buffer = self.reader.fill_buf()?;
            if buffer.is_empty() {
                let what = format!("it ends inside the data of `{}`", entry.path);
                return Err(CopyError::Previous(damaged(what)));
            }
            let take = buffer
                .len()
                .min(usize::try_from(remaining).unwrap_or(usize::MAX));
            emit(&buffer[..take]).map_err(CopyError::Emit)?;
            self.reader.consume(take);
            self.position += take as u64;
            remaining -= take as u64;
        }
        Ok(())
    }

    fn seek(&mut self, offset: u64) -> io::Result<()> {
        if offset != self.position {
            // Relative seeks keep the buffer when the target is inside it, as when one changed
            // entry is skipped between two reused ones.
            self.reader
                .seek_relative(offset as i64 - self.position as i64)?;
            self.position = offset;
        }
        Ok(())
    }
}

fn read_end_records(file: &mut File, file_len: u64) -> Result<CentralDirectory, Unusable> {
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
    file: &mut File,
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

fn read_at(file: &mut File, offset: u64, len: u64) -> Result<Vec<u8>, Unusable> {
    let unreadable = |source| Unusable::Unreadable { source };
    file.seek(SeekFrom::Start(offset)).map_err(unreadable)?;
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(len).read_to_end(&mut bytes).map_err(unreadable)?;
    if bytes.len() as u64 != len {
        return Err(damaged("it is shorter than its records say"));
    }
    Ok(bytes)
}
