//! Listing snapshots: what a stat-mode scan saw, kept so that a later run can tell that a scan
//! would see exactly the same again without reading any folder's names.
//!
//! A scan's output follows from its options, the names in every folder it lists, the stat data
//! of every entry, and where each link leads. A snapshot records these for one scan: the state of
//! each source, the excluded folders, and for every listed folder its path, its own stat data and
//! the name, stat data (and for a link, the target) of every file and link in it. Subfolders are
//! recorded as folders of their own. [`matches`] opens every recorded folder and compares its stat
//! data, `lstat`s every recorded name, and resolves every link again, in parallel; it makes no
//! `getdents` call, allocates nothing per entry and builds no listing.
//!
//! # Why a folder whose stat data is unchanged has unchanged names
//!
//! Creating, removing or renaming an entry updates its folder's mtime and ctime. The walk takes a
//! folder's stat data before it reads the names, and a snapshot is made only when every folder's
//! mtime and ctime are older than the run's scan clock (the file-system clock of the cache's
//! racy-clean rule, which file rows follow the same way). A change made during or after that
//! scan therefore gives the folder a later mtime and ctime than the recorded ones, and setting
//! the mtime back afterwards leaves the later ctime. So when every folder's stat data matches,
//! every folder holds the names the scan read; when every entry's stat data matches too and
//! every link still resolves inside its source, a scan now would give the same output, and so
//! the same listing key, as the scan that made the snapshot. The snapshot is stored with that
//! key, and the engine uses it only while the key is the one recorded for the owner's digest.
//!
//! Every listed folder is recorded, including one merged into another source's folder at the
//! same zip path (`opt/nodejs` into `lib/nodejs`), which has no entry of its own
//! ([`ScanOutput::merged_folders`]). No snapshot is made (and the caller scans as before) for a
//! scan with problems, in manifests mode, with `follow_external`, or with an excluded source. Nor
//! is one made while a folder is younger than the clock; a later run makes it.
//!
//! A folder is opened by its path from the root, so a tree with a folder path longer than the
//! system allows (`PATH_MAX`, 4,096 bytes on Linux) gets no snapshot either: it is scanned on
//! every run.
//!
//! # Encoding
//!
//! Integers little-endian; a *string* is a `u32` length and the bytes; a *name* is a string
//! followed by a NUL byte; *stat* is size `u64`, mtime and ctime in nanoseconds `i64`, inode
//! `u64` and `st_mode` `u32`.
//!
//! 1. the string [`LABEL`], the 32-byte listing key and the caller's labels (a string): what
//!    the listing key depends on besides the scan, such as the zip format, so that a lamina
//!    that would compute another key does not take this one's word for it;
//! 2. the excluded folders: a `u32` count, then device and inode (`u64` each), sorted;
//! 3. the sources: a `u32` count, then per source its folder and zip prefix (strings, as in
//!    [`SourceMapping`]), a state byte (`0` absent, `1` walked) and, when walked, its stat;
//! 4. the caller's top-level names: a `u32` count, then strings;
//! 5. the folders: a `u32` count, a `u32` offset from the start of the snapshot per folder, then
//!    per folder its path relative to the root as a name (`.` for the root), the index of its
//!    source (`u32`), its stat, a `u32` count of entries, and per entry a kind byte (`0` file,
//!    `2` link), its name, its stat and, for a link, its target as a string;
//! 6. blake3 of all the bytes before it (32 bytes). A damaged snapshot that still decoded could
//!    otherwise hold fewer folders than its scan listed, and match a tree that changed.

use std::collections::{HashMap, HashSet};
use std::ffi::CStr;
use std::path::Path;

use rayon::iter::{IndexedParallelIterator, IntoParallelIterator, ParallelIterator};

use super::dir::DirFd;
use super::link::{resolve_inside, LinkResolution};
use super::walk::FileId;
use super::{
    excluded_ids, source, source_link_leaving, ScanOptions, ScanOutput, SourceFound, SourceMapping,
    Stat,
};
use crate::digest::EntryKind;

/// Versions the encoding: change it whenever the layout above changes.
pub const LABEL: &str = "lamina-snapshot-1";

const ABSENT: u8 = 0;
const WALKED: u8 = 1;
const FILE: u8 = 0;
const LINK: u8 = 2;

/// Folders checked per rayon task: enough to keep the scheduling cost small against a few
/// system calls per folder, few enough that both cores stay busy on a tree of a few thousand.
const FOLDERS_PER_TASK: usize = 8;

/// The snapshot of `output`, a scan of `sources` with `options` whose listing key is `key`
/// under `labels`, or `None` when the scan cannot have one (see the module documentation).
/// `top_level` is kept as it is and given back by [`matches`].
pub fn encode(
    sources: &[SourceMapping],
    options: &ScanOptions,
    output: &ScanOutput,
    (key, labels): (&[u8; 32], &str),
    clock_ns: i64,
    top_level: &[&str],
) -> Option<Vec<u8>> {
    if options.follow_external
        || options.skip_package_contents
        || !output.problems.is_empty()
        || output.sources.len() != sources.len()
    {
        return None;
    }
    let folders = group(sources, output)?;
    if folders
        .iter()
        .any(|folder| folder.path.len() >= libc::PATH_MAX as usize)
    {
        return None;
    }
    if folders
        .iter()
        .any(|folder| folder.stat.mtime_ns >= clock_ns || folder.stat.ctime_ns >= clock_ns)
    {
        tracing::debug!("a folder changed after the scan clock: no listing snapshot yet");
        return None;
    }

    let mut bytes = Writer(Vec::with_capacity(64 * output.entries.len() + 4096));
    bytes.text(LABEL);
    bytes.0.extend_from_slice(key);
    bytes.text(labels);
    let excluded = sorted(&excluded_ids(&options.exclude));
    bytes.u32(excluded.len());
    for (device, inode) in excluded {
        bytes.u64(device);
        bytes.u64(inode);
    }
    bytes.u32(sources.len());
    for (mapping, found) in sources.iter().zip(&output.sources) {
        bytes.text(&mapping.source);
        bytes.text(&mapping.zip_prefix);
        match found {
            SourceFound::Walked(stat) => {
                bytes.0.push(WALKED);
                bytes.stat(stat);
            }
            SourceFound::Absent => bytes.0.push(ABSENT),
            SourceFound::Skipped => return None,
        }
    }
    bytes.u32(top_level.len());
    for name in top_level {
        bytes.text(name);
    }

    bytes.u32(folders.len());
    let table = bytes.0.len();
    bytes.0.resize(table + 4 * folders.len(), 0);
    for (index, folder) in folders.iter().enumerate() {
        let offset = u32::try_from(bytes.0.len()).ok()?;
        bytes.0[table + 4 * index..table + 4 * index + 4].copy_from_slice(&offset.to_le_bytes());
        bytes.name(if folder.path.is_empty() {
            "."
        } else {
            folder.path
        });
        bytes.u32(folder.source);
        bytes.stat(&folder.stat);
        bytes.u32(folder.entries.len());
        for &entry in &folder.entries {
            let entry = &output.entries[entry];
            let name = match entry.source_path.rsplit_once('/') {
                Some((_, name)) => name,
                None => &entry.source_path,
            };
            match &entry.link_target {
                Some(target) => {
                    bytes.0.push(LINK);
                    bytes.name(name);
                    bytes.stat(&entry.stat);
                    bytes.text(target);
                }
                None => {
                    bytes.0.push(FILE);
                    bytes.name(name);
                    bytes.stat(&entry.stat);
                }
            }
        }
    }
    let checksum = blake3::hash(&bytes.0);
    bytes.0.extend_from_slice(checksum.as_bytes());
    Some(bytes.0)
}

/// Whether a scan of `sources` below `root` with `options` would now give the output that
/// `snapshot` was made from, whose listing key is `key` under `labels`. On a match, gives back
/// the top-level names stored with it. A snapshot that cannot be read (damaged, or of another
/// layout) matches nothing.
pub fn matches(
    root: &Path,
    sources: &[SourceMapping],
    options: &ScanOptions,
    snapshot: &[u8],
    (key, labels): (&[u8; 32], &str),
) -> Option<Vec<String>> {
    if options.follow_external || options.skip_package_contents {
        return None;
    }
    let (snapshot, checksum) = snapshot.split_at_checked(snapshot.len().checked_sub(32)?)?;
    if blake3::hash(snapshot).as_bytes() != checksum {
        return None;
    }
    let mut reader = Reader::new(snapshot);
    if reader.text()? != LABEL || reader.take(32)? != key || reader.text()? != labels {
        return None;
    }
    let excluded = excluded_ids(&options.exclude);
    let count = reader.u32()?;
    if count != excluded.len() {
        return None;
    }
    for (device, inode) in sorted(&excluded) {
        if (reader.u64()?, reader.u64()?) != (device, inode) {
            return None;
        }
    }

    if reader.u32()? != sources.len() {
        return None;
    }
    for mapping in sources {
        let recorded = (reader.text()?, reader.text()?, reader.u8()?);
        if (recorded.0, recorded.1) != (mapping.source.as_str(), mapping.zip_prefix.as_str()) {
            return None;
        }
        let stat = match recorded.2 {
            WALKED => Some(reader.stat()?),
            ABSENT => None,
            _ => return None,
        };
        if !source_matches(root, mapping, stat, &excluded) {
            return None;
        }
    }
    let top_level = (0..reader.u32()?)
        .map(|_| reader.text().map(str::to_owned))
        .collect::<Option<Vec<_>>>()?;

    let folders = reader.u32()?;
    let table = reader.take(4 * folders)?;
    let root_dir = DirFd::open(root).ok()?;
    let all_match = (0..folders)
        .into_par_iter()
        .with_min_len(FOLDERS_PER_TASK)
        .all(|index| {
            let offset = u32::from_le_bytes(table[4 * index..4 * index + 4].try_into().unwrap());
            let mut folder = Reader::at(snapshot, offset as usize);
            folder_matches(root, sources, &root_dir, &mut folder, &excluded).is_some()
        });
    all_match.then_some(top_level)
}

/// A source is still absent, or still the same folder, not excluded and not a link out of the
/// layer.
fn source_matches(
    root: &Path,
    mapping: &SourceMapping,
    recorded: Option<Stat>,
    excluded: &HashSet<FileId>,
) -> bool {
    let source = source(root, &mapping.source);
    match (std::fs::metadata(&source.disk), recorded) {
        (Err(error), None) => error.kind() == std::io::ErrorKind::NotFound,
        (Ok(metadata), Some(stat)) => {
            let id = FileId::of(&metadata);
            metadata.is_dir()
                && Stat::from_metadata(&metadata) == stat
                && !excluded.contains(&id)
                && source_link_leaving(false, root, &source).is_none()
        }
        _ => false,
    }
}

/// Checks one folder record; `None` on the first difference (or an unreadable record).
fn folder_matches(
    root: &Path,
    sources: &[SourceMapping],
    root_dir: &DirFd,
    record: &mut Reader<'_>,
    excluded: &HashSet<FileId>,
) -> Option<()> {
    let path = record.name()?;
    let source_index = record.u32()?;
    let stat = record.stat()?;
    let dir = root_dir.open_below(path).ok()?;
    let own = dir.stat().ok()?;
    let id = own.id();
    if own.stat != stat || excluded.contains(&id) {
        return None;
    }
    for _ in 0..record.u32()? {
        let kind = record.u8()?;
        let name = record.name()?;
        let recorded = record.stat()?;
        if dir.lstat(name).ok()?.stat != recorded {
            return None;
        }
        match kind {
            FILE => {}
            LINK => {
                let target = record.text()?;
                let mapping = sources.get(source_index)?;
                let source = source(root, &mapping.source);
                let path = path.to_str().ok()?;
                let below = match path {
                    "." => "",
                    path => path.strip_prefix(source.path.as_str())?,
                };
                let below = below.strip_prefix('/').unwrap_or(below);
                let resolution = resolve_inside(&source.disk, below, target).ok()?;
                if resolution != LinkResolution::Inside {
                    return None;
                }
            }
            _ => return None,
        }
    }
    Some(())
}

/// A listed folder and the files and links in it, by index into the scan's entries.
struct FolderRecord<'o> {
    /// Relative to the root; "" for the root itself.
    path: &'o str,
    source: usize,
    stat: Stat,
    entries: Vec<usize>,
}

/// Every folder the scan listed, with its files and links; `None` when one of them has no
/// stat data in the output (see the module documentation).
fn group<'o>(
    sources: &'o [SourceMapping],
    output: &'o ScanOutput,
) -> Option<Vec<FolderRecord<'o>>> {
    let mut folders = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    let source_paths: Vec<&str> = sources.iter().map(|m| normalized(&m.source)).collect();
    for (number, found) in output.sources.iter().enumerate() {
        match found {
            SourceFound::Absent => {}
            SourceFound::Skipped => return None,
            SourceFound::Walked(stat) => {
                if index.insert(source_paths[number], folders.len()).is_some() {
                    return None;
                }
                folders.push(FolderRecord {
                    path: source_paths[number],
                    source: number,
                    stat: *stat,
                    entries: Vec::new(),
                });
            }
        }
    }
    let roots = folders.len();
    let listed = output.entries.iter().filter(|e| e.kind == EntryKind::Dir);
    for entry in listed.chain(&output.merged_folders) {
        if let Some(&known) = index.get(entry.source_path.as_str()) {
            if folders[known].stat != entry.stat {
                return None;
            }
            continue;
        }
        let source = source_of(&source_paths, &entry.source_path)?;
        index.insert(&entry.source_path, folders.len());
        folders.push(FolderRecord {
            path: &entry.source_path,
            source,
            stat: entry.stat,
            entries: Vec::new(),
        });
    }
    // Every folder below a source was listed in its parent: a parent without a record would be
    // a folder whose names the snapshot cannot vouch for.
    if !folders[roots..]
        .iter()
        .all(|folder| index.contains_key(parent_of(folder.path)))
    {
        return None;
    }
    for (number, entry) in output.entries.iter().enumerate() {
        if entry.kind == EntryKind::Dir {
            continue;
        }
        let &folder = index.get(parent_of(&entry.source_path))?;
        folders[folder].entries.push(number);
    }
    Some(folders)
}

/// The folder `path` is in; "" for the root.
fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(parent, _)| parent)
}

/// The source a folder below the root belongs to: the walked source whose folder is the
/// longest prefix of `path`, component by component.
fn source_of(source_paths: &[&str], path: &str) -> Option<usize> {
    source_paths
        .iter()
        .enumerate()
        .filter(|(_, source)| {
            source.is_empty()
                || path
                    .strip_prefix(*source)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
        .max_by_key(|(_, source)| source.len())
        .map(|(number, _)| number)
}

/// A source folder as the scan names it: without surrounding '/', and "" for the root.
fn normalized(source: &str) -> &str {
    match source.trim_matches('/') {
        "." => "",
        path => path,
    }
}

/// Folder identities in the order the encoding keeps them.
fn sorted(ids: &HashSet<FileId>) -> Vec<(u64, u64)> {
    let mut ids: Vec<(u64, u64)> = ids.iter().map(|id| (id.device(), id.inode())).collect();
    ids.sort_unstable();
    ids
}

struct Writer(Vec<u8>);

impl Writer {
    fn u32(&mut self, value: usize) {
        self.0.extend_from_slice(&(value as u32).to_le_bytes());
    }

    fn u64(&mut self, value: u64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    fn text(&mut self, text: &str) {
        self.u32(text.len());
        self.0.extend_from_slice(text.as_bytes());
    }

    fn name(&mut self, name: &str) {
        self.text(name);
        self.0.push(0);
    }

    fn stat(&mut self, stat: &Stat) {
        self.u64(stat.size);
        self.0.extend_from_slice(&stat.mtime_ns.to_le_bytes());
        self.0.extend_from_slice(&stat.ctime_ns.to_le_bytes());
        self.u64(stat.inode);
        self.0.extend_from_slice(&stat.mode.to_le_bytes());
    }
}

/// Reads a snapshot; every method gives `None` past the end or on a malformed field.
struct Reader<'s> {
    bytes: &'s [u8],
    at: usize,
}

impl<'s> Reader<'s> {
    fn new(bytes: &'s [u8]) -> Reader<'s> {
        Reader::at(bytes, 0)
    }

    fn at(bytes: &'s [u8], at: usize) -> Reader<'s> {
        Reader { bytes, at }
    }

    fn take(&mut self, length: usize) -> Option<&'s [u8]> {
        let end = self.at.checked_add(length)?;
        let taken = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(taken)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u32(&mut self) -> Option<usize> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn text(&mut self) -> Option<&'s str> {
        let length = self.u32()?;
        std::str::from_utf8(self.take(length)?).ok()
    }

    fn name(&mut self) -> Option<&'s CStr> {
        let length = self.u32()?;
        CStr::from_bytes_with_nul(self.take(length + 1)?).ok()
    }

    fn stat(&mut self) -> Option<Stat> {
        Some(Stat {
            size: self.u64()?,
            mtime_ns: self.i64()?,
            ctime_ns: self.i64()?,
            inode: self.u64()?,
            mode: u32::from_le_bytes(self.take(4)?.try_into().ok()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::fs::FileTimes;
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::time::SystemTime;

    use super::*;
    use crate::scan::scan;

    const KEY: [u8; 32] = [7; 32];
    const LABELS: &str = "listing-1 zip-1 stat";
    const TOP_LEVEL: [&str; 2] = ["config", "nodejs"];

    fn write(root: &Path, relative: &str, content: &str) {
        let path = root.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    /// A layer with a package, a link inside its source, and opt/ assets.
    fn layer() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "lib/nodejs/package.json", "{}");
        write(
            root,
            "lib/nodejs/node_modules/a/package.json",
            r#"{"name":"a"}"#,
        );
        write(
            root,
            "lib/nodejs/node_modules/a/index.js",
            "module.exports = 1;\n",
        );
        std::fs::create_dir_all(root.join("lib/nodejs/node_modules/.bin")).unwrap();
        symlink("../a/index.js", root.join("lib/nodejs/node_modules/.bin/a")).unwrap();
        write(root, "opt/config/settings.json", "{\"debug\": false}\n");
        dir
    }

    fn encode_with(root: &Path, options: &ScanOptions, clock_ns: i64) -> Option<Vec<u8>> {
        let sources = SourceMapping::layer();
        let output = scan(root, &sources, options);
        encode(
            &sources,
            options,
            &output,
            (&KEY, LABELS),
            clock_ns,
            &TOP_LEVEL,
        )
    }

    fn snapshot_of(root: &Path) -> Vec<u8> {
        encode_with(root, &ScanOptions::default(), i64::MAX).expect("a snapshot")
    }

    fn still_matches(root: &Path, snapshot: &[u8]) -> bool {
        let options = ScanOptions::default();
        matches(
            root,
            &SourceMapping::layer(),
            &options,
            snapshot,
            (&KEY, LABELS),
        )
        .is_some()
    }

    fn set_mtime(path: &Path, mtime: SystemTime) {
        let file = std::fs::File::open(path).unwrap();
        file.set_times(FileTimes::new().set_modified(mtime))
            .unwrap();
    }

    #[test]
    fn an_untouched_tree_matches_and_gives_back_the_top_level_names() {
        let dir = layer();
        let snapshot = snapshot_of(dir.path());
        let options = ScanOptions::default();
        let sources = SourceMapping::layer();
        let top_level = matches(dir.path(), &sources, &options, &snapshot, (&KEY, LABELS));
        assert_eq!(
            top_level,
            Some(vec!["config".to_owned(), "nodejs".to_owned()])
        );
    }

    #[test]
    fn every_kind_of_change_is_seen() {
        type Change = fn(&Path);
        let changes: [(&str, Change); 12] = [
            ("append to a file", |root| {
                write(
                    root,
                    "lib/nodejs/node_modules/a/index.js",
                    "module.exports = 12;\n",
                )
            }),
            ("same size, mtime set back", |root| {
                let path = root.join("opt/config/settings.json");
                let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
                std::fs::write(&path, "{\"debug\": true }\n").unwrap();
                set_mtime(&path, mtime);
            }),
            ("add a file", |root| {
                write(root, "lib/nodejs/node_modules/a/new.js", "")
            }),
            ("remove a file", |root| {
                std::fs::remove_file(root.join("opt/config/settings.json")).unwrap()
            }),
            ("rename a folder", |root| {
                let from = root.join("lib/nodejs/node_modules/a");
                std::fs::rename(from, root.join("lib/nodejs/node_modules/b")).unwrap()
            }),
            ("add a file, then set the folder's mtime back", |root| {
                let folder = root.join("opt/config");
                let mtime = std::fs::metadata(&folder).unwrap().modified().unwrap();
                write(root, "opt/config/extra.json", "{}");
                set_mtime(&folder, mtime);
            }),
            ("a source appears", |root| {
                write(root, "lib/python/x.py", "")
            }),
            ("a source goes", |root| {
                std::fs::remove_dir_all(root.join("opt")).unwrap()
            }),
            ("a link is replaced", |root| {
                let link = root.join("lib/nodejs/node_modules/.bin/a");
                std::fs::remove_file(&link).unwrap();
                symlink("../a/package.json", link).unwrap();
            }),
            ("a folder's mode changes", |root| {
                let folder = root.join("lib/nodejs/node_modules/a");
                std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700)).unwrap()
            }),
            ("a file's mode changes", |root| {
                let file = root.join("lib/nodejs/package.json");
                std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).unwrap()
            }),
            ("the root of a source is replaced", |root| {
                std::fs::rename(root.join("opt"), root.join("opt-old")).unwrap();
                write(root, "opt/config/settings.json", "{\"debug\": false}\n");
            }),
        ];
        for (what, change) in changes {
            let dir = layer();
            let snapshot = snapshot_of(dir.path());
            assert!(still_matches(dir.path(), &snapshot), "{what}: before");
            change(dir.path());
            assert!(!still_matches(dir.path(), &snapshot), "{what}: not seen");
        }
    }

    #[test]
    fn a_folder_merged_into_another_sources_folder_is_recorded() {
        // opt/nodejs/node_modules merges into lib/nodejs/node_modules: neither it nor its parent
        // has an entry, and nothing in it has one yet.
        let dir = layer();
        let root = dir.path();
        std::fs::create_dir_all(root.join("opt/nodejs/node_modules")).unwrap();
        let snapshot = snapshot_of(root);
        assert!(still_matches(root, &snapshot));
        write(root, "opt/nodejs/node_modules/added.js", "");
        assert!(!still_matches(root, &snapshot));
    }

    #[test]
    fn a_link_into_an_excluded_folder_is_resolved_again() {
        // Nothing below an excluded folder is recorded, so only resolving the link again sees
        // its target go.
        let dir = layer();
        let root = dir.path();
        write(root, "lib/nodejs/private/target.js", "");
        symlink("private/target.js", root.join("lib/nodejs/link.js")).unwrap();
        let options = ScanOptions {
            exclude: vec![root.join("lib/nodejs/private")],
            ..ScanOptions::default()
        };
        let sources = SourceMapping::layer();
        let snapshot = encode_with(root, &options, i64::MAX).unwrap();
        assert!(matches(root, &sources, &options, &snapshot, (&KEY, LABELS)).is_some());

        std::fs::remove_file(root.join("lib/nodejs/private/target.js")).unwrap();
        assert!(matches(root, &sources, &options, &snapshot, (&KEY, LABELS)).is_none());
        // Without the exclusion the recorded exclusions differ: no match either.
        let plain = ScanOptions::default();
        assert!(matches(root, &sources, &plain, &snapshot, (&KEY, LABELS)).is_none());
    }

    #[test]
    fn no_snapshot_where_one_could_not_be_trusted() {
        let dir = layer();
        let root = dir.path();
        let plain = ScanOptions::default();
        assert!(
            encode_with(root, &plain, 0).is_none(),
            "folders younger than the clock"
        );

        let follow = ScanOptions {
            follow_external: true,
            ..ScanOptions::default()
        };
        assert!(
            encode_with(root, &follow, i64::MAX).is_none(),
            "follow_external"
        );
        let manifests = ScanOptions {
            skip_package_contents: true,
            ..ScanOptions::default()
        };
        assert!(
            encode_with(root, &manifests, i64::MAX).is_none(),
            "manifests mode"
        );

        symlink("missing.js", root.join("lib/nodejs/dangling.js")).unwrap();
        assert!(
            encode_with(root, &plain, i64::MAX).is_none(),
            "a scan with problems"
        );
    }

    #[test]
    fn another_key_other_sources_or_damage_match_nothing() {
        let dir = layer();
        let root = dir.path();
        let snapshot = snapshot_of(root);
        let options = ScanOptions::default();
        let sources = SourceMapping::layer();
        assert!(matches(root, &sources, &options, &snapshot, (&[8; 32], LABELS)).is_none());
        let other_labels = (&KEY, "listing-1 zip-2 stat");
        assert!(matches(root, &sources, &options, &snapshot, other_labels).is_none());
        let function = SourceMapping::function("lib");
        assert!(matches(root, &function, &options, &snapshot, (&KEY, LABELS)).is_none());

        assert!(!still_matches(root, &snapshot[..snapshot.len() - 1]));
        assert!(!still_matches(root, &[]));
        for at in [0, snapshot.len() / 2, snapshot.len() - 1] {
            let mut damaged = snapshot.clone();
            damaged[at] ^= 1;
            assert!(!still_matches(root, &damaged), "byte {at} flipped");
        }
    }

    #[test]
    fn every_scanned_file_and_link_is_recorded() {
        let dir = layer();
        let sources = SourceMapping::layer();
        let output = scan(dir.path(), &sources, &ScanOptions::default());
        let folders = group(&sources, &output).unwrap();
        let recorded: usize = folders.iter().map(|folder| folder.entries.len()).sum();
        let files = output
            .entries
            .iter()
            .filter(|e| e.kind != EntryKind::Dir)
            .count();
        assert_eq!(recorded, files);
        let dirs = output
            .entries
            .iter()
            .filter(|e| e.kind == EntryKind::Dir)
            .count();
        // Every folder entry, and opt/, which maps to the zip root and has no entry.
        assert_eq!(folders.len(), dirs + 1);
    }
}
