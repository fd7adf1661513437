//! The folder system calls the walker makes for every entry, made relative to an open folder.
//!
//! `std::fs` takes a path for every call: stat-ing an entry of a folder ten levels deep would
//! resolve all ten components again, and every name read by `read_dir` becomes an allocation of
//! its own. Here a folder is opened once, relative to its parent's descriptor, its names are
//! read into one buffer per folder, and each entry is stat-ed by its bare name relative to the
//! folder's descriptor, so the kernel looks up one component per call. The calls are the POSIX
//! ones (`openat`, `fdopendir`, `readdir`, `fstatat`); `fstatat` without following links is
//! exactly `lstat`, so the stat data is what the cache's rules expect.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::walk::{nanoseconds, FileId};
use super::Stat;

/// An open folder.
#[derive(Debug)]
pub(super) struct DirFd(OwnedFd);

/// The `lstat` data of one entry, with what the walker needs beyond [`Stat`].
#[derive(Debug, Clone, Copy)]
pub(super) struct EntryStat {
    pub(super) stat: Stat,
    pub(super) device: u64,
}

/// The names of one folder, NUL-terminated one after the other in a single buffer.
#[derive(Debug, Default)]
pub(super) struct Names {
    bytes: Vec<u8>,
    /// Start and length (without the NUL) of each name in `bytes`, and whether the listing
    /// said the entry is a folder.
    spans: Vec<(u32, u32, bool)>,
}

/// The type of an entry, from the mode bits of its stat data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FileKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    BlockDevice,
    CharDevice,
    Unknown,
}

impl DirFd {
    /// Opens the folder at `path`, following links in every component.
    pub(super) fn open(path: &Path) -> io::Result<DirFd> {
        let path = CString::new(path.as_os_str().as_bytes())?;
        open_at(libc::AT_FDCWD, &path, 0)
    }

    /// Opens the folder at `path` relative to this one, following links in every component.
    pub(super) fn open_below(&self, path: &CStr) -> io::Result<DirFd> {
        open_at(self.0.as_raw_fd(), path, 0)
    }

    /// Opens the subfolder `name`, which must be a folder, not a link to one: a link put in
    /// place since the parent was listed fails with `ELOOP` or `ENOTDIR` instead of being
    /// followed.
    pub(super) fn open_child(&self, name: &CStr) -> io::Result<DirFd> {
        open_at(self.0.as_raw_fd(), name, libc::O_NOFOLLOW)
    }

    /// The stat data of this folder itself, which was opened without following a link, so it
    /// is what `lstat` of its name gave when it was opened.
    pub(super) fn stat(&self) -> io::Result<EntryStat> {
        let mut raw = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: `raw` is large enough for a `stat` and the descriptor is open.
        if unsafe { libc::fstat(self.0.as_raw_fd(), raw.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fstat` returned 0, so it filled the whole structure.
        Ok(EntryStat::from_raw(unsafe { &raw.assume_init() }))
    }

    /// `lstat` of the entry `name` of this folder.
    pub(super) fn lstat(&self, name: &CStr) -> io::Result<EntryStat> {
        let mut raw = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: `name` is NUL-terminated, `raw` is large enough for a `stat`, and the
        // descriptor stays open for the duration of the call.
        let result = unsafe {
            libc::fstatat(
                self.0.as_raw_fd(),
                name.as_ptr(),
                raw.as_mut_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fstatat` returned 0, so it filled the whole structure.
        Ok(EntryStat::from_raw(unsafe { &raw.assume_init() }))
    }

    /// The names in this folder except `.` and `..`, in the order the file system gives them.
    /// Reads the folder once: a second call finds nothing.
    ///
    /// On Linux the names come straight from `getdents64`: `readdir` would add an `fstat` and two
    /// `fcntl` calls and a 32 KiB buffer per folder, which for the 7,000 folders of a large
    /// `node_modules` costs more than the reading itself.
    #[cfg(target_os = "linux")]
    pub(super) fn read_names(&mut self) -> io::Result<Names> {
        /// Room for a few hundred names per call, aligned as the kernel's records are.
        #[repr(C, align(8))]
        struct Buffer([u8; 16 << 10]);

        /// Where the fields of a `linux_dirent64` record are.
        const RECORD_LENGTH_AT: usize = 16;
        const TYPE_AT: usize = 18;
        const NAME_AT: usize = 19;

        let mut buffer = Buffer([0; 16 << 10]);
        let mut names = Names::default();
        loop {
            // SAFETY: the buffer is writable for its whole length and the descriptor is open.
            let filled = unsafe {
                libc::syscall(
                    libc::SYS_getdents64,
                    self.0.as_raw_fd(),
                    buffer.0.as_mut_ptr(),
                    buffer.0.len(),
                )
            };
            if filled < 0 {
                return Err(io::Error::last_os_error());
            }
            if filled == 0 {
                return Ok(names);
            }
            let records = &buffer.0[..filled as usize];
            let mut at = 0;
            while at + NAME_AT < records.len() {
                let length_bytes = [
                    records[at + RECORD_LENGTH_AT],
                    records[at + RECORD_LENGTH_AT + 1],
                ];
                let length = usize::from(u16::from_ne_bytes(length_bytes));
                let record = &records[at..(at + length).min(records.len())];
                let name = CStr::from_bytes_until_nul(&record[NAME_AT..]).map_err(|_| {
                    io::Error::other("a folder record without a NUL-terminated name")
                })?;
                let bytes = name.to_bytes();
                if bytes != b"." && bytes != b".." {
                    names.push(bytes, record[TYPE_AT] == libc::DT_DIR);
                }
                at += length.max(1);
            }
        }
    }

    /// The names in this folder except `.` and `..`, in the order the file system gives them.
    /// Reads the folder once: a second call finds nothing.
    #[cfg(not(target_os = "linux"))]
    pub(super) fn read_names(&mut self) -> io::Result<Names> {
        // SAFETY: `dup` of an open descriptor gives a new one that the stream then owns.
        let fd = unsafe { libc::dup(self.0.as_raw_fd()) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is an open folder descriptor that nothing else owns.
        let stream = unsafe { libc::fdopendir(fd) };
        if stream.is_null() {
            let error = io::Error::last_os_error();
            // SAFETY: `fdopendir` failed, so `fd` is still ours to close.
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
            return Err(error);
        }
        let mut names = Names::default();
        let result = loop {
            set_errno(0);
            // SAFETY: the stream is open and used by this thread only.
            let entry = unsafe { libc::readdir(stream) };
            if entry.is_null() {
                break match io::Error::last_os_error() {
                    error if error.raw_os_error() == Some(0) => Ok(()),
                    error => Err(error),
                };
            }
            // SAFETY: `readdir` returned an entry whose `d_name` is NUL-terminated and valid
            // until the next call on the stream; it is copied before that.
            let (name, is_dir) = unsafe {
                let entry = &*entry;
                (
                    CStr::from_ptr(entry.d_name.as_ptr()),
                    entry.d_type == libc::DT_DIR,
                )
            };
            let bytes = name.to_bytes();
            if bytes != b"." && bytes != b".." {
                names.push(bytes, is_dir);
            }
        };
        // SAFETY: the stream is open and owned here; closing it closes `fd` only.
        unsafe { libc::closedir(stream) };
        result.map(|()| names)
    }
}

fn open_at(parent: libc::c_int, path: &CStr, flags: libc::c_int) -> io::Result<DirFd> {
    let flags = flags | libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    // SAFETY: `path` is NUL-terminated; `parent` is `AT_FDCWD` or an open descriptor.
    let fd = unsafe { libc::openat(parent, path.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `openat` returned a new descriptor that nothing else owns.
    Ok(DirFd(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// `readdir` tells the end of a folder from an error only through `errno`, which must be cleared
/// before each call.
#[cfg(not(target_os = "linux"))]
fn set_errno(value: libc::c_int) {
    // SAFETY: the errno location is valid for the calling thread for its whole life.
    unsafe { *libc::__error() = value };
}

impl Names {
    fn push(&mut self, name: &[u8], is_dir: bool) {
        let start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(name);
        self.bytes.push(0);
        self.spans.push((start, name.len() as u32, is_dir));
    }

    pub(super) fn len(&self) -> usize {
        self.spans.len()
    }

    /// The `index`th name, without its NUL.
    pub(super) fn bytes(&self, index: usize) -> &[u8] {
        let (start, length, _) = self.spans[index];
        &self.bytes[start as usize..(start + length) as usize]
    }

    /// Whether the listing said the `index`th entry is a folder. File systems that do not say
    /// give false: the entry is then `lstat`-ed like any other.
    pub(super) fn is_dir(&self, index: usize) -> bool {
        self.spans[index].2
    }

    /// The `index`th name as a C string, for the system calls.
    pub(super) fn c_str(&self, index: usize) -> &CStr {
        let (start, length, _) = self.spans[index];
        let with_nul = &self.bytes[start as usize..=(start + length) as usize];
        CStr::from_bytes_with_nul(with_nul).expect("a folder entry name holds no NUL")
    }
}

impl FileKind {
    pub(super) fn of(file_type: std::fs::FileType) -> FileKind {
        use std::os::unix::fs::FileTypeExt;

        if file_type.is_file() {
            FileKind::File
        } else if file_type.is_dir() {
            FileKind::Dir
        } else if file_type.is_symlink() {
            FileKind::Symlink
        } else if file_type.is_fifo() {
            FileKind::Fifo
        } else if file_type.is_socket() {
            FileKind::Socket
        } else if file_type.is_block_device() {
            FileKind::BlockDevice
        } else if file_type.is_char_device() {
            FileKind::CharDevice
        } else {
            FileKind::Unknown
        }
    }
}

impl EntryStat {
    // The field types differ between platforms (`st_mode` is a `u16` on macOS), so a cast that
    // changes nothing on Linux is needed elsewhere.
    #[allow(clippy::unnecessary_cast)]
    fn from_raw(raw: &libc::stat) -> EntryStat {
        EntryStat {
            stat: Stat {
                size: raw.st_size as u64,
                mtime_ns: nanoseconds(raw.st_mtime as i64, raw.st_mtime_nsec as i64),
                ctime_ns: nanoseconds(raw.st_ctime as i64, raw.st_ctime_nsec as i64),
                inode: raw.st_ino as u64,
                mode: raw.st_mode as u32,
            },
            device: raw.st_dev as u64,
        }
    }

    pub(super) fn id(&self) -> FileId {
        FileId::new(self.device, self.stat.inode)
    }

    #[allow(clippy::unnecessary_cast)] // `mode_t` is a `u16` on macOS.
    pub(super) fn kind(&self) -> FileKind {
        match self.stat.mode & libc::S_IFMT as u32 {
            format if format == libc::S_IFREG as u32 => FileKind::File,
            format if format == libc::S_IFDIR as u32 => FileKind::Dir,
            format if format == libc::S_IFLNK as u32 => FileKind::Symlink,
            format if format == libc::S_IFIFO as u32 => FileKind::Fifo,
            format if format == libc::S_IFSOCK as u32 => FileKind::Socket,
            format if format == libc::S_IFBLK as u32 => FileKind::BlockDevice,
            format if format == libc::S_IFCHR as u32 => FileKind::CharDevice,
            _ => FileKind::Unknown,
        }
    }
}
