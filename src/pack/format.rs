//! The bytes of the zip container: local headers, central directory records and end records,
//! exactly as the module documentation of [`crate::pack`] specifies them.
//!
//! Everything here is a pure function of an entry and the numbers that describe its data, so the
//! same functions both write a zip and check that a previous zip holds what this writer would have
//! written (see `previous`).

use std::borrow::Cow;

use crate::digest::{Entry, EntryKind};

const LOCAL_HEADER_SIGNATURE: u32 = 0x0403_4b50;
const CENTRAL_HEADER_SIGNATURE: u32 = 0x0201_4b50;
const END_SIGNATURE: u32 = 0x0605_4b50;
const ZIP64_END_SIGNATURE: u32 = 0x0606_4b50;
const ZIP64_LOCATOR_SIGNATURE: u32 = 0x0706_4b50;

/// Host system 3 (Unix), so that readers apply the mode in the external attributes; 45 is the
/// APPNOTE version whose zip64 records this writer may use.
const VERSION_MADE_BY: u16 = (3 << 8) | 45;
const VERSION_NEEDED: u16 = 20;
const VERSION_NEEDED_ZIP64: u16 = 45;

/// General purpose bit 11: names are UTF-8. Set on every entry, ASCII names included.
const FLAG_UTF8: u16 = 1 << 11;

/// 1980-01-01 00:00:00 in MS-DOS form: time 0, date (0 << 9) | (1 << 5) | 1.
const DOS_TIME: u16 = 0;
const DOS_DATE: u16 = 0x0021;

const ZIP64_EXTRA_ID: u16 = 0x0001;
const U16_MARKER: u16 = 0xFFFF;
const U32_MARKER: u32 = 0xFFFF_FFFF;

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;

/// Length of the fixed part of a local header.
pub(super) const LOCAL_HEADER_FIXED_LEN: u64 = 30;
/// Length of the fixed part of a central directory record.
pub(super) const CENTRAL_HEADER_FIXED_LEN: usize = 46;
/// Length of the end of central directory record (this writer never writes a comment).
pub(super) const END_LEN: u64 = 22;
/// Length of the zip64 end of central directory record.
pub(super) const ZIP64_END_LEN: u64 = 56;
/// Length of the zip64 end of central directory locator.
pub(super) const ZIP64_LOCATOR_LEN: u64 = 20;

/// How an entry's data is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    Stored,
    Deflated,
}

impl Method {
    fn code(self) -> u16 {
        match self {
            Method::Stored => 0,
            Method::Deflated => 8,
        }
    }

    pub(super) fn from_code(code: u16) -> Option<Method> {
        match code {
            0 => Some(Method::Stored),
            8 => Some(Method::Deflated),
            _ => None,
        }
    }
}

/// What the headers say about one entry's data, besides its name and mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DataInfo {
    pub method: Method,
    pub crc32: u32,
    pub compressed_size: u64,
    pub uncompressed_size: u64,
}

impl DataInfo {
    /// The data of a folder: nothing, stored.
    pub(super) const EMPTY: DataInfo = DataInfo {
        method: Method::Stored,
        crc32: 0,
        compressed_size: 0,
        uncompressed_size: 0,
    };

    /// Content written as is.
    pub(super) fn stored(content: &[u8]) -> DataInfo {
        DataInfo {
            method: Method::Stored,
            crc32: crc32fast::hash(content),
            compressed_size: content.len() as u64,
            uncompressed_size: content.len() as u64,
        }
    }

    /// Whether either size needs the zip64 extra field, in the local header and the central
    /// record alike.
    fn has_zip64_sizes(&self) -> bool {
        self.compressed_size >= u64::from(U32_MARKER)
            || self.uncompressed_size >= u64::from(U32_MARKER)
    }
}

/// The name of `entry` in the zip: its path, with a trailing '/' for a folder.
pub(super) fn zip_name(entry: &Entry) -> Cow<'_, str> {
    match entry.kind {
        EntryKind::Dir => Cow::Owned(format!("{}/", entry.path)),
        EntryKind::File | EntryKind::Symlink => Cow::Borrowed(&entry.path),
    }
}

/// The Unix mode of `entry` with its file type bits, as stored in the external attributes.
pub(super) fn unix_mode(entry: &Entry) -> u32 {
    let file_type = match entry.kind {
        EntryKind::Dir => S_IFDIR,
        EntryKind::File => S_IFREG,
        EntryKind::Symlink => S_IFLNK,
    };
    file_type | (entry.mode & 0o7777)
}

/// The length of the local header that [`local_header`] writes.
pub(super) fn local_header_len(name: &str, data: &DataInfo) -> u64 {
    let zip64 = if data.has_zip64_sizes() { 20 } else { 0 };
    LOCAL_HEADER_FIXED_LEN + name.len() as u64 + zip64
}

/// Appends the local file header of an entry named `name` to `out`. It holds no offset, so the
/// header and data of an entry are the same bytes wherever the entry sits in a zip.
pub(super) fn local_header(out: &mut Vec<u8>, name: &str, data: &DataInfo) {
    let zip64 = data.has_zip64_sizes();
    put_u32(out, LOCAL_HEADER_SIGNATURE);
    put_u16(
        out,
        if zip64 {
            VERSION_NEEDED_ZIP64
        } else {
            VERSION_NEEDED
        },
    );
    put_shared_fields(out, name, data, zip64);
    put_u16(out, if zip64 { 20 } else { 0 });
    out.extend_from_slice(name.as_bytes());
    if zip64 {
        // APPNOTE 4.5.3: in a local header the zip64 field holds both sizes, original first.
        put_u16(out, ZIP64_EXTRA_ID);
        put_u16(out, 16);
        put_u64(out, data.uncompressed_size);
        put_u64(out, data.compressed_size);
    }
}

/// The fields a local header and a central record share, in their common order: flags, method,
/// time, date, CRC-32, the two sizes (or their zip64 markers) and the name length.
fn put_shared_fields(out: &mut Vec<u8>, name: &str, data: &DataInfo, zip64_sizes: bool) {
    put_u16(out, FLAG_UTF8);
    put_u16(out, data.method.code());
    put_u16(out, DOS_TIME);
    put_u16(out, DOS_DATE);
    put_u32(out, data.crc32);
    if zip64_sizes {
        put_u32(out, U32_MARKER);
        put_u32(out, U32_MARKER);
    } else {
        put_u32(out, data.compressed_size as u32);
        put_u32(out, data.uncompressed_size as u32);
    }
    put_u16(out, name_len(name));
}

/// Appends the central directory record of an entry to `out`.
pub(super) fn central_header(
    out: &mut Vec<u8>,
    name: &str,
    mode: u32,
    data: &DataInfo,
    offset: u64,
) {
    let zip64_sizes = data.has_zip64_sizes();
    let zip64_offset = offset >= u64::from(U32_MARKER);
    // APPNOTE 4.5.3: the central zip64 field holds only the values whose 32-bit field is the
    // marker, in the order original size, compressed size, offset.
    let extra_len = if zip64_sizes { 16 } else { 0 } + if zip64_offset { 8 } else { 0 };
    put_u32(out, CENTRAL_HEADER_SIGNATURE);
    put_u16(out, VERSION_MADE_BY);
    put_u16(
        out,
        if extra_len > 0 {
            VERSION_NEEDED_ZIP64
        } else {
            VERSION_NEEDED
        },
    );
    put_shared_fields(out, name, data, zip64_sizes);
    put_u16(out, if extra_len > 0 { 4 + extra_len } else { 0 });
    put_u16(out, 0); // comment length
    put_u16(out, 0); // disk number start
    put_u16(out, 0); // internal attributes
    put_u32(out, mode << 16);
    put_u32(
        out,
        if zip64_offset {
            U32_MARKER
        } else {
            offset as u32
        },
    );
    out.extend_from_slice(name.as_bytes());
    if extra_len > 0 {
        put_u16(out, ZIP64_EXTRA_ID);
        put_u16(out, extra_len);
        if zip64_sizes {
            put_u64(out, data.uncompressed_size);
            put_u64(out, data.compressed_size);
        }
        if zip64_offset {
            put_u64(out, offset);
        }
    }
}

/// Where the central directory is and how many records it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CentralDirectory {
    pub entries: u64,
    pub offset: u64,
    pub size: u64,
}

impl CentralDirectory {
    /// Whether the zip64 end records are needed. A count of 0xFFFF or a size or offset of
    /// 0xFFFFFFFF already counts as too large: those values are markers that send readers to the
    /// zip64 records.
    pub(super) fn needs_zip64(&self) -> bool {
        self.entries >= u64::from(U16_MARKER)
            || self.size >= u64::from(U32_MARKER)
            || self.offset >= u64::from(U32_MARKER)
    }

    /// The length of what [`end_records`] writes.
    pub(super) fn end_records_len(&self) -> u64 {
        if self.needs_zip64() {
            ZIP64_END_LEN + ZIP64_LOCATOR_LEN + END_LEN
        } else {
            END_LEN
        }
    }
}

/// Appends the end records that follow the central directory: the zip64 end record and its
/// locator when [`CentralDirectory::needs_zip64`], then the classic end record, without comment.
pub(super) fn end_records(out: &mut Vec<u8>, directory: &CentralDirectory) {
    let zip64 = directory.needs_zip64();
    if zip64 {
        let zip64_end_offset = directory.offset + directory.size;
        put_u32(out, ZIP64_END_SIGNATURE);
        put_u64(out, ZIP64_END_LEN - 12);
        put_u16(out, VERSION_MADE_BY);
        put_u16(out, VERSION_NEEDED_ZIP64);
        put_u32(out, 0); // this disk
        put_u32(out, 0); // disk of the central directory
        put_u64(out, directory.entries);
        put_u64(out, directory.entries);
        put_u64(out, directory.size);
        put_u64(out, directory.offset);
        put_u32(out, ZIP64_LOCATOR_SIGNATURE);
        put_u32(out, 0); // disk of the zip64 end record
        put_u64(out, zip64_end_offset);
        put_u32(out, 1); // total disks
    }
    let entries = if zip64 {
        directory.entries.min(u64::from(U16_MARKER))
    } else {
        directory.entries
    };
    let clip = |value: u64| {
        if zip64 {
            value.min(u64::from(U32_MARKER))
        } else {
            value
        }
    };
    put_u32(out, END_SIGNATURE);
    put_u16(out, 0); // this disk
    put_u16(out, 0); // disk of the central directory
    put_u16(out, entries as u16);
    put_u16(out, entries as u16);
    put_u32(out, clip(directory.size) as u32);
    put_u32(out, clip(directory.offset) as u32);
    put_u16(out, 0); // comment length
}

/// The fields of a central directory record that describe its data and where it is, read back
/// from `bytes` (which start at the record). Returns them with the record's length, or `None`
/// when the bytes are not a record this writer could have written.
pub(super) fn parse_central_header(bytes: &[u8]) -> Option<(DataInfo, u64, usize)> {
    let fixed = bytes.get(..CENTRAL_HEADER_FIXED_LEN)?;
    if get_u32(fixed, 0) != CENTRAL_HEADER_SIGNATURE {
        return None;
    }
    let method = Method::from_code(get_u16(fixed, 10))?;
    let crc32 = get_u32(fixed, 16);
    let mut compressed_size = u64::from(get_u32(fixed, 20));
    let mut uncompressed_size = u64::from(get_u32(fixed, 24));
    let name_len = usize::from(get_u16(fixed, 28));
    let extra_len = usize::from(get_u16(fixed, 30));
    let mut offset = u64::from(get_u32(fixed, 42));

    let record_len = CENTRAL_HEADER_FIXED_LEN + name_len + extra_len;
    let record = bytes.get(..record_len)?;
    let mut extra = record[CENTRAL_HEADER_FIXED_LEN + name_len..]
        .get(4..)
        .unwrap_or_default();
    for field in [&mut uncompressed_size, &mut compressed_size, &mut offset] {
        if *field == u64::from(U32_MARKER) {
            *field = u64::from_le_bytes(extra.get(..8)?.try_into().ok()?);
            extra = &extra[8..];
        }
    }
    let data = DataInfo {
        method,
        crc32,
        compressed_size,
        uncompressed_size,
    };
    Some((data, offset, record_len))
}

/// Reads the end records at the end of a zip. `tail` holds the last bytes of the file, at least
/// [`END_LEN`] + [`ZIP64_LOCATOR_LEN`] + [`ZIP64_END_LEN`] of them when the file is that long;
/// `file_len` is the file's length. Returns `None` unless they are records this writer could have
/// written; the caller checks them byte for byte by writing them again.
pub(super) fn parse_end_records(tail: &[u8], file_len: u64) -> Option<CentralDirectory> {
    let end = tail.get(tail.len().checked_sub(END_LEN as usize)?..)?;
    if get_u32(end, 0) != END_SIGNATURE {
        return None;
    }
    let entries = get_u16(end, 10);
    let size = get_u32(end, 12);
    let offset = get_u32(end, 16);
    if entries != U16_MARKER && size != U32_MARKER && offset != U32_MARKER {
        return Some(CentralDirectory {
            entries: u64::from(entries),
            offset: u64::from(offset),
            size: u64::from(size),
        });
    }
    let zip64_len = (ZIP64_END_LEN + ZIP64_LOCATOR_LEN + END_LEN) as usize;
    let zip64_end = tail.get(tail.len().checked_sub(zip64_len)?..)?;
    if get_u32(zip64_end, 0) != ZIP64_END_SIGNATURE {
        return None;
    }
    let directory = CentralDirectory {
        entries: get_u64(zip64_end, 32),
        size: get_u64(zip64_end, 40),
        offset: get_u64(zip64_end, 48),
    };
    let expected_end = directory
        .offset
        .checked_add(directory.size)?
        .checked_add(zip64_len as u64);
    (expected_end == Some(file_len)).then_some(directory)
}

fn name_len(name: &str) -> u16 {
    u16::try_from(name.len()).expect("names longer than 65,535 bytes are refused before writing")
}

fn put_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn get_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn get_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn get_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(size: u64) -> DataInfo {
        DataInfo {
            method: Method::Deflated,
            crc32: 0x1234_5678,
            compressed_size: size / 2,
            uncompressed_size: size,
        }
    }

    #[test]
    fn local_header_has_utf8_flag_fixed_date_and_no_extra_field() {
        let mut out = Vec::new();
        local_header(&mut out, "a.js", &data(100));
        assert_eq!(out.len() as u64, local_header_len("a.js", &data(100)));
        assert_eq!(get_u16(&out, 6), FLAG_UTF8);
        assert_eq!((get_u16(&out, 10), get_u16(&out, 12)), (0, 0x21));
        assert_eq!(get_u16(&out, 28), 0, "extra field length");
        assert_eq!(&out[30..], b"a.js");
    }

    #[test]
    fn central_header_round_trips_through_the_parser() {
        let cases = [
            (data(100), 5),
            (data(5 << 32), 7),
            (data(100), 6 << 32),
            (data(6 << 32), 9 << 32),
        ];
        for (info, offset) in cases {
            let mut out = Vec::new();
            central_header(&mut out, "dir/file", 0o100644, &info, offset);
            out.extend_from_slice(b"trailing bytes of the next record");
            let (parsed, parsed_offset, len) = parse_central_header(&out).unwrap();
            assert_eq!((parsed, parsed_offset), (info, offset));
            assert_eq!(&out[len..], b"trailing bytes of the next record");
        }
    }

    #[test]
    fn zip64_sizes_put_both_sizes_in_the_local_header() {
        let info = data(5 << 32);
        let mut out = Vec::new();
        local_header(&mut out, "big", &info);
        assert_eq!(out.len() as u64, local_header_len("big", &info));
        assert_eq!(get_u16(&out, 4), VERSION_NEEDED_ZIP64);
        assert_eq!(
            (get_u32(&out, 18), get_u32(&out, 22)),
            (U32_MARKER, U32_MARKER)
        );
        assert_eq!(get_u64(&out, 37), info.uncompressed_size);
        assert_eq!(get_u64(&out, 45), info.compressed_size);
    }

    #[test]
    fn zip64_end_records_start_at_the_marker_values() {
        let small = CentralDirectory {
            entries: 65_534,
            offset: 10,
            size: 20,
        };
        let many = CentralDirectory {
            entries: 65_535,
            offset: 10,
            size: 20,
        };
        let far = CentralDirectory {
            entries: 1,
            offset: u64::from(U32_MARKER),
            size: 20,
        };
        assert!(!small.needs_zip64());
        assert!(many.needs_zip64());
        assert!(far.needs_zip64());
        for directory in [small, many, far] {
            let mut out = Vec::new();
            end_records(&mut out, &directory);
            assert_eq!(out.len() as u64, directory.end_records_len());
            let file_len = directory.offset + directory.size + directory.end_records_len();
            assert_eq!(parse_end_records(&out, file_len), Some(directory));
        }
    }
}
