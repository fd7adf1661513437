//! One read of a file feeds its blake3 (checked against the entry's hash, or learned when no
//! hash is known yet), its CRC-32 and the deflate compressor.
//!
//! Deflate output must depend on the content alone. zlib-style compressors are deterministic for
//! a given sequence of calls, so this module also fixes the calls: the content always reaches the
//! compressor in slices of [`FEED_LEN`] bytes, and output is always drained through a buffer of
//! [`OUTPUT_LEN`] bytes. The in-memory path slices a whole file, the streaming path slices reads
//! of [`STREAM_READ_LEN`] bytes (a multiple of [`FEED_LEN`]), so both make the same calls with the
//! same bytes and write the same deflate stream.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::Path;

use flate2::{Compress, Compression, FlushCompress, Status};

use super::format::{DataInfo, Method};
use super::PackError;
use crate::digest::Entry;

/// The deflate level; part of [`super::FORMAT_LABEL`].
pub(super) const LEVEL: u32 = 6;

/// The input slice of one compressor call.
const FEED_LEN: usize = 64 * 1024;
/// The output buffer of one compressor call.
const OUTPUT_LEN: usize = 64 * 1024;
/// One read of the streaming path; a multiple of [`FEED_LEN`] so that slicing reads and slicing
/// the whole content give the same slices.
const STREAM_READ_LEN: usize = 16 * FEED_LEN;

/// An entry's data, ready to follow its local header.
///
/// `learned` is the blake3 of a file read without a known hash (see [`Expected`]); `None` when
/// the hash was known and checked, and for folders and symlinks.
#[derive(Debug)]
pub(super) enum Packed {
    /// The bytes after the local header (deflated or stored), in memory.
    Memory {
        data: DataInfo,
        bytes: Vec<u8>,
        learned: Option<blake3::Hash>,
    },
    /// A large file deflated into an anonymous temporary file, rewound.
    Spilled {
        data: DataInfo,
        spill: File,
        learned: Option<blake3::Hash>,
    },
    /// A large file whose deflated form was not smaller: stored, so it is read again from disk
    /// while it is written (and checked again, since it may have changed in between).
    StoredFromDisk {
        data: DataInfo,
        learned: Option<blake3::Hash>,
    },
    /// Copied from the previous zip: its record at this index.
    Reused { previous_index: usize },
}

/// What a file's content is checked against while it is read.
#[derive(Debug, Clone, Copy)]
pub(super) enum Expected {
    /// The content must have this blake3 (the entry's `content_hash`).
    Hash(blake3::Hash),
    /// Nothing is known yet: the blake3 is computed from this read and returned.
    Learn,
}

impl Expected {
    /// The hash learned from a read that computed `hash`, or the error when a known hash differs.
    fn settle(self, hash: blake3::Hash, path: &Path) -> Result<Option<blake3::Hash>, PackError> {
        match self {
            Expected::Learn => Ok(Some(hash)),
            Expected::Hash(known) if known == hash => Ok(None),
            Expected::Hash(_) => Err(PackError::ContentChanged {
                path: path.to_path_buf(),
            }),
        }
    }
}

/// A raw deflate compressor (no zlib header) and its output buffer, reused by one thread for
/// file after file: creating one allocates and clears several hundred kilobytes.
struct Deflater {
    compress: Compress,
    output: Box<[u8]>,
}

thread_local! {
    static DEFLATER: RefCell<Option<Deflater>> = const { RefCell::new(None) };
}

impl Deflater {
    fn new() -> Deflater {
        Deflater {
            compress: Compress::new(Compression::new(LEVEL), false),
            output: vec![0; OUTPUT_LEN].into_boxed_slice(),
        }
    }

    /// Runs `work` with this thread's compressor, reset to the start of a stream.
    fn with<T>(work: impl FnOnce(&mut Deflater) -> T) -> T {
        DEFLATER.with(|cell| match cell.try_borrow_mut() {
            Ok(mut slot) => {
                let deflater = slot.get_or_insert_with(Deflater::new);
                deflater.compress.reset();
                work(deflater)
            }
            // Only reachable if `work` ever compressed another file on the same thread.
            Err(_) => work(&mut Deflater::new()),
        })
    }

    /// Compresses `content`, which continues whatever was fed before, into `sink`.
    fn feed(&mut self, content: &[u8], sink: &mut impl Write) -> io::Result<()> {
        for slice in content.chunks(FEED_LEN) {
            let mut input = slice;
            loop {
                let (consumed, produced) = self.step(input, FlushCompress::None)?;
                sink.write_all(&self.output[..produced])?;
                input = &input[consumed..];
                if input.is_empty() && produced < self.output.len() {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Ends the stream, writing what the compressor still holds to `sink`.
    fn finish(&mut self, sink: &mut impl Write) -> io::Result<()> {
        loop {
            let before = self.compress.total_out();
            let status = self
                .compress
                .compress(&[], &mut self.output, FlushCompress::Finish)
                .map_err(io::Error::other)?;
            let produced = (self.compress.total_out() - before) as usize;
            sink.write_all(&self.output[..produced])?;
            if status == Status::StreamEnd {
                return Ok(());
            }
        }
    }

    fn step(&mut self, input: &[u8], flush: FlushCompress) -> io::Result<(usize, usize)> {
        let (in_before, out_before) = (self.compress.total_in(), self.compress.total_out());
        self.compress
            .compress(input, &mut self.output, flush)
            .map_err(io::Error::other)?;
        let consumed = (self.compress.total_in() - in_before) as usize;
        let produced = (self.compress.total_out() - out_before) as usize;
        Ok((consumed, produced))
    }
}

/// Reads `entry`'s file whole, checks it against the entry's size and `expected`, and deflates
/// it, or stores it when the deflated form is not smaller (always for an empty file).
pub(super) fn pack_in_memory(
    entry: &Entry,
    path: &Path,
    expected: Expected,
) -> Result<Packed, PackError> {
    let (content, learned) = read_checked(entry, path, expected)?;
    if content.is_empty() {
        return Ok(Packed::Memory {
            data: DataInfo::stored(&content),
            bytes: content,
            learned,
        });
    }
    let crc32 = crc32fast::hash(&content);
    let mut compressed = Vec::with_capacity(content.len() / 2 + 64);
    Deflater::with(|deflater| {
        deflater.feed(&content, &mut compressed)?;
        deflater.finish(&mut compressed)
    })
    .map_err(|source| PackError::Deflate {
        path: path.to_path_buf(),
        source,
    })?;

    let size = content.len() as u64;
    if compressed.len() as u64 >= size {
        let data = DataInfo {
            method: Method::Stored,
            crc32,
            compressed_size: size,
            uncompressed_size: size,
        };
        return Ok(Packed::Memory {
            data,
            bytes: content,
            learned,
        });
    }
    let data = DataInfo {
        method: Method::Deflated,
        crc32,
        compressed_size: compressed.len() as u64,
        uncompressed_size: size,
    };
    Ok(Packed::Memory {
        data,
        bytes: compressed,
        learned,
    })
}

fn read_checked(
    entry: &Entry,
    path: &Path,
    expected: Expected,
) -> Result<(Vec<u8>, Option<blake3::Hash>), PackError> {
    let read_error = |source| PackError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_error)?;
    // One byte more than expected, so that a file that grew is noticed without reading it all.
    let mut content = Vec::with_capacity(entry.size as usize + 1);
    file.take(entry.size + 1)
        .read_to_end(&mut content)
        .map_err(read_error)?;
    if content.len() as u64 != entry.size {
        return Err(PackError::ContentChanged {
            path: path.to_path_buf(),
        });
    }
    let learned = expected.settle(blake3::hash(&content), path)?;
    Ok((content, learned))
}

/// Reads `entry`'s file in [`STREAM_READ_LEN`] pieces, checks it against the entry's size and
/// `expected`, and deflates it into an anonymous temporary file in `spill_dir`, so that it never
/// sits whole in memory. A file whose deflated form is not smaller comes back as
/// [`Packed::StoredFromDisk`].
pub(super) fn pack_streaming(
    entry: &Entry,
    path: &Path,
    spill_dir: &Path,
    expected: Expected,
) -> Result<Packed, PackError> {
    let spill = tempfile::tempfile_in(spill_dir).map_err(|source| PackError::Spill {
        dir: spill_dir.to_path_buf(),
        source,
    })?;
    let mut sink = CountingWriter {
        inner: BufWriter::with_capacity(STREAM_READ_LEN, spill),
        count: 0,
    };
    let mut checker = ContentChecker::new(entry, path, expected);
    let mut file = File::open(path).map_err(|source| checker.read_error(source))?;
    let mut buffer = vec![0; STREAM_READ_LEN];
    let deflate_error = |source| PackError::Deflate {
        path: path.to_path_buf(),
        source,
    };

    Deflater::with(|deflater| -> Result<(), PackError> {
        loop {
            let piece = checker.read_piece(&mut file, &mut buffer)?;
            if piece.is_empty() {
                return deflater.finish(&mut sink).map_err(deflate_error);
            }
            deflater.feed(piece, &mut sink).map_err(deflate_error)?;
        }
    })?;
    let (crc32, learned) = checker.finish()?;

    let size = entry.size;
    if sink.count >= size {
        let data = DataInfo {
            method: Method::Stored,
            crc32,
            compressed_size: size,
            uncompressed_size: size,
        };
        return Ok(Packed::StoredFromDisk { data, learned });
    }
    let data = DataInfo {
        method: Method::Deflated,
        crc32,
        compressed_size: sink.count,
        uncompressed_size: size,
    };
    let mut spill = sink
        .inner
        .into_inner()
        .map_err(|error| deflate_error(error.into_error()))?;
    spill.rewind().map_err(deflate_error)?;
    Ok(Packed::Spilled {
        data,
        spill,
        learned,
    })
}

/// Reads a large stored file again and passes its bytes to `emit`, checking that they are still
/// the content with blake3 `hash` that `data` was computed from.
pub(super) fn copy_stored_from_disk(
    entry: &Entry,
    path: &Path,
    data: &DataInfo,
    hash: blake3::Hash,
    mut emit: impl FnMut(&[u8]) -> Result<(), PackError>,
) -> Result<(), PackError> {
    let mut checker = ContentChecker::new(entry, path, Expected::Hash(hash));
    let mut file = File::open(path).map_err(|source| checker.read_error(source))?;
    let mut buffer = vec![0; STREAM_READ_LEN];
    loop {
        let piece = checker.read_piece(&mut file, &mut buffer)?;
        if piece.is_empty() {
            break;
        }
        emit(piece)?;
    }
    if checker.finish()?.0 != data.crc32 {
        return Err(PackError::ContentChanged {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Follows a file read piece by piece: its length, blake3 and CRC-32.
struct ContentChecker<'a> {
    entry: &'a Entry,
    path: &'a Path,
    expected: Expected,
    read: u64,
    blake3: blake3::Hasher,
    crc32: crc32fast::Hasher,
}

impl<'a> ContentChecker<'a> {
    fn new(entry: &'a Entry, path: &'a Path, expected: Expected) -> ContentChecker<'a> {
        ContentChecker {
            entry,
            path,
            expected,
            read: 0,
            blake3: blake3::Hasher::new(),
            crc32: crc32fast::Hasher::new(),
        }
    }

    fn read_error(&self, source: io::Error) -> PackError {
        PackError::Read {
            path: self.path.to_path_buf(),
            source,
        }
    }

    /// Fills `buffer` from `file` (less only at the end of the file) and accounts for the bytes.
    fn read_piece<'b>(
        &mut self,
        file: &mut File,
        buffer: &'b mut [u8],
    ) -> Result<&'b [u8], PackError> {
        let mut filled = 0;
        while filled < buffer.len() {
            match file.read(&mut buffer[filled..]) {
                Ok(0) => break,
                Ok(count) => filled += count,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(self.read_error(error)),
            }
        }
        let piece = &buffer[..filled];
        self.read += filled as u64;
        if self.read > self.entry.size {
            return Err(PackError::ContentChanged {
                path: self.path.to_path_buf(),
            });
        }
        self.blake3.update(piece);
        self.crc32.update(piece);
        Ok(piece)
    }

    /// Checks the whole read against the entry and returns its CRC-32 and the learned hash.
    fn finish(self) -> Result<(u32, Option<blake3::Hash>), PackError> {
        if self.read != self.entry.size {
            return Err(PackError::ContentChanged {
                path: self.path.to_path_buf(),
            });
        }
        let learned = self.expected.settle(self.blake3.finalize(), self.path)?;
        Ok((self.crc32.finalize(), learned))
    }
}

struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(bytes)?;
        self.count += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compress(content: &[u8], pieces: usize) -> Vec<u8> {
        let mut out = Vec::new();
        Deflater::with(|deflater| {
            for piece in content.chunks(pieces) {
                deflater.feed(piece, &mut out).unwrap();
            }
            deflater.finish(&mut out).unwrap();
        });
        out
    }

    fn sample(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i * 7 % 251) as u8 ^ (i / 1000) as u8)
            .collect()
    }

    #[test]
    fn a_reused_compressor_writes_what_a_fresh_one_writes() {
        let content = sample(300_000);
        let fresh = {
            let mut deflater = Deflater::new();
            let mut out = Vec::new();
            deflater.feed(&content, &mut out).unwrap();
            deflater.finish(&mut out).unwrap();
            out
        };
        let _ = compress(&sample(123_457), usize::MAX);
        assert_eq!(compress(&content, usize::MAX), fresh);
    }

    #[test]
    fn reads_of_the_streaming_size_give_the_same_stream_as_one_slice() {
        let content = sample(3 * STREAM_READ_LEN + 12_345);
        assert_eq!(
            compress(&content, STREAM_READ_LEN),
            compress(&content, usize::MAX)
        );
    }

    #[test]
    fn the_stream_inflates_back_to_the_content() {
        let content = sample(200_000);
        let mut inflated = Vec::new();
        flate2::read::DeflateDecoder::new(&compress(&content, usize::MAX)[..])
            .read_to_end(&mut inflated)
            .unwrap();
        assert_eq!(inflated, content);
    }
}
