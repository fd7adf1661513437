//! Reusing the compressed entries of an earlier zip.
//!
//! A previous zip is used only when it was written under the same [`FORMAT_LABEL`], the `zip`
//! crate reads it, and its central directory lists exactly the names of its entry list, in order.
//! A file of the new zip identical to one of the previous zip (path, kind, mode, size and content
//! hash) is then copied with `raw_copy_file`: the writer writes the entry's headers afresh from
//! its name, mode, method, CRC and sizes, and copies its compressed data, so the result is the
//! bytes of a cold build. Before each copy, what the central directory says of the entry is
//! checked against the entry (name, mode, size, method and compressed size as this writer would
//! choose them, the fixed time, no extra field) and its local header must have the length this
//! writer gives it, so that the data copied is where it should be. The compressed data itself is
//! trusted, not inflated again (the zip was written by lamina, atomically, and named by its
//! digest).
//!
//! A previous zip that is missing, unreadable or damaged is not used and the build goes on
//! without it; nothing here is an error of the build.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};

use zip::{CompressionMethod, DateTime, ZipArchive, ZipWriter};

use super::{unix_mode, zip_name, PackEntry, PreviousZip, FORMAT_LABEL};
use crate::digest::Entry;

/// Reused entries mostly follow each other in the previous zip: a buffer of this size serves
/// runs of small entries with one read.
const READ_BUFFER_LEN: usize = 256 << 10;

/// Length of the fixed part of a local header, and of the zip64 field of a large entry's.
const LOCAL_HEADER_FIXED_LEN: u64 = 30;
const LOCAL_ZIP64_FIELD_LEN: u64 = 20;

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

fn damaged(what: impl Into<String>) -> Unusable {
    Unusable::Damaged { what: what.into() }
}

/// A previous zip checked for reuse, open for copying.
pub(super) struct Previous<'a> {
    zip: &'a PreviousZip,
    archive: ZipArchive<Reader>,
    file_len: u64,
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
        let archive = ZipArchive::new(Reader::new(file))
            .map_err(|error| damaged(format!("it does not read as a zip: {error}")))?;
        if archive.len() != zip.entries.len() {
            return Err(damaged(format!(
                "it holds {} entries where its list has {}",
                archive.len(),
                zip.entries.len()
            )));
        }
        for (index, entry) in zip.entries.iter().enumerate() {
            let name = archive.name_for_index(index).and_then(Result::ok);
            if name.as_deref() != Some(&*zip_name(entry)) {
                return Err(damaged(format!(
                    "its entry {index} is not `{}`",
                    entry.path
                )));
            }
        }
        Ok(Previous {
            zip,
            archive,
            file_len,
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

    /// Copies file `index` of the previous zip, which is `entry`, into `zip`.
    pub(super) fn copy<W: Write + Seek>(
        &mut self,
        index: usize,
        entry: &Entry,
        zip: &mut ZipWriter<W>,
    ) -> Result<(), Unusable> {
        let file_len = self.file_len;
        let file = self.archive.by_index_raw(index).map_err(|error| {
            damaged(format!("the entry `{}` is unreadable: {error}", entry.path))
        })?;
        let local_extra = if entry.size >= zip::ZIP64_BYTES_THR {
            LOCAL_ZIP64_FIELD_LEN
        } else {
            0
        };
        let data_start = file.header_start()
            + LOCAL_HEADER_FIXED_LEN
            + file.name_raw().len() as u64
            + local_extra;
        let is_sound = describes(entry, &file)
            && file.data_start() == Some(data_start)
            && data_start.checked_add(file.compressed_size()) <= Some(file_len);
        if !is_sound {
            let what = format!("the entry `{}` is not as written", entry.path);
            return Err(damaged(what));
        }
        zip.raw_copy_file(file)
            .map_err(|error| damaged(format!("copying `{}` failed: {error}", entry.path)))
    }
}

/// Whether the previous zip's record of `file` is what this writer writes for `entry`.
fn describes<R: Read>(entry: &Entry, file: &zip::read::ZipFile<'_, R>) -> bool {
    let is_expected_method = match file.compression() {
        CompressionMethod::Stored => file.compressed_size() == entry.size,
        CompressionMethod::Deflated => file.compressed_size() < entry.size,
        _ => false,
    };
    let has_only_zip64_fields = file
        .extra_data_fields()
        .all(|field| matches!(field, zip::ExtraField::Zip64ExtendedInformation(_)));
    is_expected_method
        && file.size() == entry.size
        && file.unix_mode() == Some(unix_mode(entry))
        && file.last_modified() == Some(DateTime::default())
        && file.comment().is_empty()
        && !file.encrypted()
        && has_only_zip64_fields
}

/// A buffered reader whose seeks keep the buffer when the target is inside it, as when a changed
/// entry is skipped between two reused ones (the standard `BufReader` drops it on every seek).
struct Reader {
    inner: BufReader<File>,
    position: u64,
}

impl Reader {
    fn new(file: File) -> Reader {
        Reader {
            inner: BufReader::with_capacity(READ_BUFFER_LEN, file),
            position: 0,
        }
    }
}

impl Read for Reader {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let count = self.inner.read(buffer)?;
        self.position += count as u64;
        Ok(count)
    }
}

impl BufRead for Reader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, count: usize) {
        self.inner.consume(count);
        self.position += count as u64;
    }
}

impl Seek for Reader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(offset) => offset,
            SeekFrom::Current(delta) => {
                self.position.checked_add_signed(delta).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "seek before the start")
                })?
            }
            SeekFrom::End(_) => {
                self.position = self.inner.seek(to)?;
                return Ok(self.position);
            }
        };
        let delta = i64::try_from(i128::from(target) - i128::from(self.position))
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "seek too far"))?;
        self.inner.seek_relative(delta)?;
        self.position = target;
        Ok(target)
    }

    fn stream_position(&mut self) -> io::Result<u64> {
        Ok(self.position)
    }
}
