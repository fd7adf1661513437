//! When a cached file hash may be trusted: the stat comparison and the racy-clean rule.
//!
//! A file row is reused only when every stat field the scan reports (size, mtime and ctime in
//! nanoseconds, inode, `st_mode` with its type bits) equals the row's, *and* the file's mtime is
//! strictly older than the row's scan clock. Anything else is a [`StaleReason`], and the file is
//! read and hashed again.
//!
//! # The scan clock and racy files
//!
//! The kernel stamps files from a coarse clock (one tick is several milliseconds) and a file
//! system may keep even coarser times, so a file can be modified twice within one timestamp
//! tick and keep the same mtime. If lamina hashed such a file between the two writes, the row
//! would match the file's stat data forever while holding the hash of the first content.
//!
//! git has the same problem with its index and solves it by comparing entry mtimes with the
//! mtime of the index file itself. lamina does the same with [`scan_clock`]: before a scan
//! begins, it rewrites a stamp file in `.lamina/` and reads back the mtime the file system gave
//! it. Every modification after that moment gets an mtime at or after the clock, so a row whose
//! mtime is strictly before the clock of the scan that recorded it cannot hide a later edit;
//! a row whose mtime is at or after its clock (the file changed in the same tick as, or after,
//! the scan began) is [`StaleReason::Racy`] and verified again by the next scan, which records
//! it with its own, later clock. Because the clock comes from the file system and not from
//! `clock_gettime`, it has the same granularity and the same source as the mtimes it is
//! compared with.
//!
//! A file whose mtime lies in the future (copied with its times preserved from a machine whose
//! clock was ahead) stays racy, and so is hashed on every scan, until the clock passes it.

use std::fmt;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::FileRecord;
use crate::scan::Stat;

/// The stamp file that [`scan_clock`] rewrites, inside lamina's state folder.
pub const CLOCK_FILE: &str = "scan-clock";

/// Why a file's cached row was not reused. Logged at debug and counted in `--json` stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StaleReason {
    /// No row: no earlier scan recorded this path.
    New,
    /// The size differs.
    Size,
    /// The modification time differs.
    Mtime,
    /// The inode change time differs (a `chmod`, a rename onto it, a content edit that restored
    /// the mtime).
    Ctime,
    /// The inode differs: the file was replaced by another one.
    Inode,
    /// `st_mode` differs: the permissions or the kind of entry changed.
    Mode,
    /// The stat data matches, but the file's mtime is not older than the clock of the scan that
    /// recorded the row, so an edit in the same timestamp tick could be hidden.
    Racy,
    /// Every file is read again on request (`--fingerprint content`), whatever its row says.
    /// [`freshness`] never returns it; the engine counts it under the same name.
    ContentMode,
}

impl StaleReason {
    /// Every reason, in a fixed order, for stats that list all counters.
    pub const ALL: [StaleReason; 8] = [
        StaleReason::New,
        StaleReason::Size,
        StaleReason::Mtime,
        StaleReason::Ctime,
        StaleReason::Inode,
        StaleReason::Mode,
        StaleReason::Racy,
        StaleReason::ContentMode,
    ];

    /// The lower-case (snake case) name used in logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            StaleReason::New => "new",
            StaleReason::Size => "size",
            StaleReason::Mtime => "mtime",
            StaleReason::Ctime => "ctime",
            StaleReason::Inode => "inode",
            StaleReason::Mode => "mode",
            StaleReason::Racy => "racy",
            StaleReason::ContentMode => "content_mode",
        }
    }
}

impl fmt::Display for StaleReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Decides whether `record` may stand for a file whose `lstat` now reports `stat`: `Ok(())` when
/// its hash can be reused, otherwise the first reason it cannot, checked in the order of the
/// [`StaleReason`] variants.
pub fn freshness(record: Option<&FileRecord>, stat: &Stat) -> Result<(), StaleReason> {
    let Some(record) = record else {
        return Err(StaleReason::New);
    };
    let cached = &record.stat;
    let mismatch = [
        (cached.size != stat.size, StaleReason::Size),
        (cached.mtime_ns != stat.mtime_ns, StaleReason::Mtime),
        (cached.ctime_ns != stat.ctime_ns, StaleReason::Ctime),
        (cached.inode != stat.inode, StaleReason::Inode),
        (cached.mode != stat.mode, StaleReason::Mode),
        (cached.mtime_ns >= record.clock_ns, StaleReason::Racy),
    ];
    match mismatch.into_iter().find(|(differs, _)| *differs) {
        Some((_, reason)) => Err(reason),
        None => Ok(()),
    }
}

/// Rewrites the stamp file [`CLOCK_FILE`] in `state_dir` (creating the folder if needed) and
/// returns the mtime the file system gave it, in nanoseconds since the Unix epoch: the clock
/// against which the racy-clean rule judges the rows recorded by the scan that follows.
///
/// Call it once before a scan begins, and store the value as the `clock_ns` of every row that
/// scan records.
pub fn scan_clock(state_dir: &Path) -> io::Result<i64> {
    fs_err::create_dir_all(state_dir)?;
    let path = state_dir.join(CLOCK_FILE);

    // Truncating and writing makes the kernel stamp the file with its own current time; setting
    // the time explicitly would use the finer process clock instead.
    let mut file = fs_err::File::create(&path)?;
    file.write_all(b"lamina scan clock: this file's mtime is when the last scan began\n")?;
    let metadata = file.metadata()?;
    Ok(mtime_ns(&metadata))
}

/// A file's mtime in nanoseconds since the Unix epoch, computed as the scan computes
/// [`Stat::mtime_ns`] (`st_mtime * 10^9 + st_mtime_nsec`).
fn mtime_ns(metadata: &std::fs::Metadata) -> i64 {
    metadata.mtime() * 1_000_000_000 + metadata.mtime_nsec()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLOCK: i64 = 10_000;

    fn stat() -> Stat {
        Stat {
            size: 10,
            mtime_ns: CLOCK - 1,
            ctime_ns: CLOCK - 1,
            inode: 7,
            mode: 0o100644,
        }
    }

    fn record(stat: Stat) -> FileRecord {
        FileRecord {
            stat,
            content_hash: blake3::hash(b"content"),
            link_target: None,
            clock_ns: CLOCK,
        }
    }

    #[test]
    fn matching_row_older_than_its_clock_is_fresh() {
        assert_eq!(freshness(Some(&record(stat())), &stat()), Ok(()));
    }

    #[test]
    fn each_stat_field_has_its_reason() {
        type Change = fn(&mut Stat);
        let cases: [(Change, StaleReason); 5] = [
            (|s| s.size += 1, StaleReason::Size),
            (|s| s.mtime_ns -= 1, StaleReason::Mtime),
            (|s| s.ctime_ns += 1, StaleReason::Ctime),
            (|s| s.inode += 1, StaleReason::Inode),
            (|s| s.mode = 0o100755, StaleReason::Mode),
        ];
        for (change, reason) in cases {
            let mut now = stat();
            change(&mut now);
            assert_eq!(freshness(Some(&record(stat())), &now), Err(reason));
        }
    }

    #[test]
    fn missing_row_is_new() {
        assert_eq!(freshness(None, &stat()), Err(StaleReason::New));
    }

    #[test]
    fn row_modified_in_the_tick_of_its_scan_is_racy() {
        let mut same_tick = stat();
        same_tick.mtime_ns = CLOCK;
        assert_eq!(
            freshness(Some(&record(same_tick)), &same_tick),
            Err(StaleReason::Racy)
        );

        let mut after = stat();
        after.mtime_ns = CLOCK + 5;
        assert_eq!(
            freshness(Some(&record(after)), &after),
            Err(StaleReason::Racy)
        );
    }

    #[test]
    fn reasons_serialize_as_lower_case_names() {
        for reason in StaleReason::ALL {
            let json = serde_json::to_string(&reason).unwrap();
            assert_eq!(json, format!("\"{reason}\""));
            assert_eq!(reason.to_string(), reason.to_string().to_lowercase());
        }
    }

    #[test]
    fn scan_clock_is_at_or_after_the_mtime_of_earlier_writes() {
        let dir = tempfile::tempdir().unwrap();
        let earlier = dir.path().join("earlier");
        std::fs::write(&earlier, b"x").unwrap();
        let clock = scan_clock(&dir.path().join("state")).unwrap();
        assert!(mtime_ns(&std::fs::metadata(&earlier).unwrap()) <= clock);
    }

    #[test]
    fn scan_clock_advances_between_scans() {
        let dir = tempfile::tempdir().unwrap();
        let first = scan_clock(dir.path()).unwrap();
        // Longer than a kernel timestamp tick, so the two stamps cannot share one.
        std::thread::sleep(std::time::Duration::from_millis(50));
        let second = scan_clock(dir.path()).unwrap();
        assert!(
            second > first,
            "second clock {second} is not after the first {first}"
        );
    }
}
