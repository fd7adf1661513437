//! The parallel walker behind [`super::scan`] and [`super::scan_package`].

use std::collections::HashSet;
use std::fs::{DirEntry, FileType, Metadata};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::link::{resolve_inside, LinkResolution};
use super::{PackageDir, PackageKind, ScanError, ScanOutput, ScannedEntry, Stat};
use crate::digest::EntryKind;

/// The source whose top folder may hold a Python install.
pub(super) const PYTHON_SOURCE: &str = "lib/python";
/// The file whose presence makes [`PYTHON_SOURCE`] a Python install, and that fingerprints it.
const PIPFILE_LOCK: &str = "Pipfile.lock";
/// The top-level files of a Python install that are not part of its own (cached) file list.
const PYTHON_LOCK_FILES: [&str; 3] = ["Pipfile", PIPFILE_LOCK, "requirements.txt"];
const PACKAGE_JSON: &str = "package.json";
const NODE_MODULES: &str = "node_modules";

/// Walks folders in parallel and gathers what it finds.
///
/// One rayon task lists one folder: it stats every entry of that folder (one `statx` relative
/// to the open folder per entry, through [`DirEntry::metadata`]) and spawns one task per
/// subfolder. Tasks go onto the spawning thread's deque, and idle threads steal the oldest ones,
/// which are near the top of the tree and so carry the most work: a wide `node_modules` keeps
/// every core busy without any up-front partitioning, and a deep tree never recurses on the
/// stack.
///
/// Each task collects its results locally and appends them to the shared output under one lock
/// when its folder is done, so the lock is taken once per folder, not once per file. The order
/// in which tasks finish is arbitrary; the caller sorts the output afterwards, which makes the
/// result independent of scheduling.
///
/// A problem with one entry (a link that leaves its source, a name that is not UTF-8, a folder
/// that cannot be listed, an entry that vanished between listing and stat) becomes a
/// [`ScanError`] in the output and the walk goes on with the next entry: the caller sees every
/// problem of a layer at once and decides which are fatal.
pub(super) struct Walker<'a> {
    follow_external: bool,
    skip_package_contents: bool,
    excluded: &'a HashSet<FileId>,
    output: Mutex<ScanOutput>,
}

/// A folder's identity on this machine, for exclusion and cycle checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct FileId {
    device: u64,
    inode: u64,
}

impl Walker<'_> {
    pub(super) fn follows_external(&self) -> bool {
        self.follow_external
    }
}

impl FileId {
    pub(super) fn of(metadata: &Metadata) -> FileId {
        FileId {
            device: metadata.dev(),
            inode: metadata.ino(),
        }
    }
}

/// A source folder of the layer, shared by every task below it.
#[derive(Debug)]
pub(super) struct Source {
    /// Relative to the layer root, '/'-separated; "" for the root itself.
    pub(super) path: String,
    /// Absolute path on disk.
    pub(super) disk: PathBuf,
}

/// The folders from a source down to one folder, for cycle checks on followed links.
#[derive(Debug)]
pub(super) struct Ancestors {
    id: FileId,
    parent: Option<Arc<Ancestors>>,
}

impl Ancestors {
    pub(super) fn push(parent: Option<Arc<Ancestors>>, id: FileId) -> Arc<Ancestors> {
        Arc::new(Ancestors { id, parent })
    }

    fn contains(&self, id: FileId) -> bool {
        let mut current = Some(self);
        while let Some(ancestor) = current {
            if ancestor.id == id {
                return true;
            }
            current = ancestor.parent.as_deref();
        }
        false
    }
}

/// Whether a folder is reached through the source's own folders or through a followed link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Region {
    /// Every folder from the source down is a real folder: links here are judged by whether
    /// they stay inside the source.
    Source,
    /// Below a link that was followed (`follow_external`): the on-disk place has nothing to do
    /// with the zip path, so every link here is followed too.
    Followed,
}

/// What a folder means for package detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Plain,
    /// A `node_modules` folder outside any package's own files: its subfolders may be packages.
    NodeModules,
    /// An `@scope` folder directly under such a `node_modules`.
    Scope,
    /// A folder directly under `node_modules` or `node_modules/@scope`: a package if it holds
    /// a `package.json` file.
    PackageCandidate,
    /// The top folder of [`PYTHON_SOURCE`]: a Python install if it holds a `Pipfile.lock`.
    PythonRoot,
    /// A node package's folder: its `node_modules` holds more packages, the rest is its own.
    NodePackage,
    /// Inside a package's own files, which are one unit: no package detection.
    OwnFiles,
    /// The folder of a node package listed by `scan_package`: everything but `node_modules`.
    NodePackageOwn,
    /// The Python install listed by `scan_package`: everything but the top-level lock files.
    PythonPackageOwn,
}

impl Role {
    /// The role of a subfolder called `name` of a folder with this role.
    fn child(self, name: &str) -> Role {
        match self {
            Role::Plain | Role::NodePackage if name == NODE_MODULES => Role::NodeModules,
            Role::NodeModules if name.starts_with('@') => Role::Scope,
            Role::NodeModules | Role::Scope if !name.starts_with('.') => Role::PackageCandidate,
            Role::NodePackage | Role::OwnFiles => Role::OwnFiles,
            Role::NodePackageOwn | Role::PythonPackageOwn => Role::OwnFiles,
            Role::Plain | Role::NodeModules | Role::Scope => Role::Plain,
            // A candidate that is no package, or a Python source without a lock, is plain.
            Role::PackageCandidate | Role::PythonRoot => Role::Plain.child(name),
        }
    }
}

/// A folder waiting to be listed.
#[derive(Debug)]
pub(super) struct Folder {
    pub(super) disk: PathBuf,
    pub(super) source_path: String,
    pub(super) zip_path: String,
    pub(super) source: Arc<Source>,
    pub(super) ancestors: Arc<Ancestors>,
    pub(super) region: Region,
    pub(super) role: Role,
}

/// An entry of a folder listing whose name is valid UTF-8.
struct Listed {
    entry: DirEntry,
    name: String,
}

/// A subfolder (real, or a followed link) about to be entered.
struct Subfolder<'n> {
    disk: PathBuf,
    name: &'n str,
    metadata: Metadata,
    region: Region,
    /// What to name as the target if entering it would close a cycle.
    target: String,
}

impl<'a> Walker<'a> {
    pub(super) fn new(
        excluded: &'a HashSet<FileId>,
        follow_external: bool,
        skip_package_contents: bool,
    ) -> Walker<'a> {
        Walker {
            follow_external,
            skip_package_contents,
            excluded,
            output: Mutex::new(ScanOutput::default()),
        }
    }

    pub(super) fn is_excluded(&self, id: FileId) -> bool {
        self.excluded.contains(&id)
    }

    pub(super) fn into_output(self) -> ScanOutput {
        self.output
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records problems found before any folder task ran.
    pub(super) fn report(&self, problem: ScanError) {
        self.append(ScanOutput {
            problems: vec![problem],
            ..ScanOutput::default()
        });
    }

    /// Emits the folder's own entry (none for the zip root) and lists it in a new task.
    pub(super) fn start<'s>(
        &'s self,
        scope: &rayon::Scope<'s>,
        folder: Folder,
        metadata: &Metadata,
        output: &mut ScanOutput,
    ) {
        if !folder.zip_path.is_empty() {
            output.entries.push(ScannedEntry {
                zip_path: folder.zip_path.clone(),
                source_path: folder.source_path.clone(),
                kind: EntryKind::Dir,
                stat: Stat::from_metadata(metadata),
                link_target: None,
            });
        }
        self.spawn_listing(scope, folder);
    }

    /// Lists `folder` in a new task.
    pub(super) fn spawn_listing<'s>(&'s self, scope: &rayon::Scope<'s>, folder: Folder) {
        scope.spawn(move |scope| self.list(scope, folder));
    }

    /// Lists one folder: the body of a task.
    fn list<'s>(&'s self, scope: &rayon::Scope<'s>, folder: Folder) {
        let mut output = ScanOutput::default();
        let mut listing = self.read_folder(&folder, &mut output);
        match folder.role {
            Role::PackageCandidate => self.list_node_package(scope, &folder, listing, &mut output),
            Role::PythonRoot => self.list_python_root(scope, &folder, listing, &mut output),
            Role::NodePackageOwn => {
                listing.retain(|listed| listed.name != NODE_MODULES);
                self.visit_all(scope, &folder, listing, Role::OwnFiles, &mut output);
            }
            Role::PythonPackageOwn => {
                listing.retain(|listed| !PYTHON_LOCK_FILES.contains(&listed.name.as_str()));
                self.visit_all(scope, &folder, listing, Role::OwnFiles, &mut output);
            }
            role => self.visit_all(scope, &folder, listing, role, &mut output),
        }
        self.append(output);
    }

    /// The entries of a folder with UTF-8 names; the others, and a folder that cannot be read,
    /// become problems.
    fn read_folder(&self, folder: &Folder, output: &mut ScanOutput) -> Vec<Listed> {
        let reader = match std::fs::read_dir(&folder.disk) {
            Ok(reader) => reader,
            Err(error) => {
                output
                    .problems
                    .push(ScanError::from_io(folder.source_path.clone(), error));
                return Vec::new();
            }
        };
        let mut listing = Vec::new();
        for item in reader {
            let entry = match item {
                Ok(entry) => entry,
                Err(error) => {
                    let path = folder.source_path.clone();
                    output.problems.push(ScanError::Unreadable { path, error });
                    break;
                }
            };
            match entry.file_name().into_string() {
                Ok(name) => listing.push(Listed { entry, name }),
                Err(name) => output.problems.push(ScanError::NonUtf8Name {
                    name: name.to_string_lossy().into_owned(),
                    folder: folder.source_path.clone(),
                }),
            }
        }
        listing
    }

    /// A folder under `node_modules`: a package if it holds a `package.json` file. In manifests
    /// mode only the package's nested `node_modules` is walked; its own files are left to
    /// [`super::scan_package`] or the cache.
    fn list_node_package<'s>(
        &'s self,
        scope: &rayon::Scope<'s>,
        folder: &Folder,
        mut listing: Vec<Listed>,
        output: &mut ScanOutput,
    ) {
        let Some(manifest) = self.take_manifest(folder, &mut listing, PACKAGE_JSON, output) else {
            return self.visit_all(scope, folder, listing, Role::Plain, output);
        };
        let package = package_dir(
            folder,
            PackageKind::Node,
            &manifest,
            self.skip_package_contents,
        );
        output.packages.push(package);

        if self.skip_package_contents {
            tracing::trace!(package = %folder.source_path, "package contents skipped");
            listing.retain(|listed| listed.name == NODE_MODULES);
        } else {
            self.push_file(folder, &manifest.name, &manifest.metadata, output);
        }
        self.visit_all(scope, folder, listing, Role::NodePackage, output);
    }

    /// The top folder of [`PYTHON_SOURCE`]: a Python install if it holds a `Pipfile.lock`. In
    /// manifests mode only the top-level lock files are listed.
    fn list_python_root<'s>(
        &'s self,
        scope: &rayon::Scope<'s>,
        folder: &Folder,
        mut listing: Vec<Listed>,
        output: &mut ScanOutput,
    ) {
        let Some(lock) = self.take_manifest(folder, &mut listing, PIPFILE_LOCK, output) else {
            return self.visit_all(scope, folder, listing, Role::Plain, output);
        };
        let package = package_dir(
            folder,
            PackageKind::Python,
            &lock,
            self.skip_package_contents,
        );
        output.packages.push(package);

        self.push_file(folder, &lock.name, &lock.metadata, output);
        if self.skip_package_contents {
            tracing::trace!(install = %folder.source_path, "python install contents skipped");
            listing.retain(|listed| PYTHON_LOCK_FILES.contains(&listed.name.as_str()));
        }
        self.visit_all(scope, folder, listing, Role::OwnFiles, output);
    }

    /// Takes the manifest called `name` out of `listing` if it is a regular file, with its
    /// stat data. A manifest that cannot be stat-ed is reported and taken out too, so it is
    /// not reported twice; one of another type stays in the listing as an ordinary entry.
    fn take_manifest(
        &self,
        folder: &Folder,
        listing: &mut Vec<Listed>,
        name: &str,
        output: &mut ScanOutput,
    ) -> Option<Manifest> {
        let index = listing.iter().position(|listed| listed.name == name)?;
        match listing[index].entry.metadata() {
            Ok(metadata) if metadata.is_file() => {
                let listed = listing.swap_remove(index);
                Some(Manifest {
                    name: listed.name,
                    metadata,
                })
            }
            Ok(_) => None,
            Err(error) => {
                let listed = listing.swap_remove(index);
                let path = join(&folder.source_path, &listed.name);
                output.problems.push(ScanError::from_io(path, error));
                None
            }
        }
    }

    /// Visits every entry of `listing`, which belongs to a folder with the role `role`.
    fn visit_all<'s>(
        &'s self,
        scope: &rayon::Scope<'s>,
        folder: &Folder,
        listing: Vec<Listed>,
        role: Role,
        output: &mut ScanOutput,
    ) {
        for listed in listing {
            self.visit(scope, folder, &listed, role, output);
        }
    }

    fn visit<'s>(
        &'s self,
        scope: &rayon::Scope<'s>,
        folder: &Folder,
        listed: &Listed,
        role: Role,
        output: &mut ScanOutput,
    ) {
        let metadata = match listed.entry.metadata() {
            Ok(metadata) => metadata,
            Err(error) => {
                let path = join(&folder.source_path, &listed.name);
                return output.problems.push(ScanError::from_io(path, error));
            }
        };
        let file_type = metadata.file_type();
        if file_type.is_file() {
            self.push_file(folder, &listed.name, &metadata, output);
        } else if file_type.is_dir() {
            let subfolder = Subfolder {
                disk: listed.entry.path(),
                name: &listed.name,
                target: String::new(),
                metadata,
                region: folder.region,
            };
            self.enter(scope, folder, subfolder, role, output);
        } else if file_type.is_symlink() {
            self.visit_link(scope, folder, listed, &metadata, role, output);
        } else {
            output.problems.push(ScanError::UnsupportedFileType {
                path: join(&folder.source_path, &listed.name),
                file_type: describe(file_type),
            });
        }
    }

    fn push_file(&self, folder: &Folder, name: &str, metadata: &Metadata, output: &mut ScanOutput) {
        output.entries.push(ScannedEntry {
            zip_path: join(&folder.zip_path, name),
            source_path: join(&folder.source_path, name),
            kind: EntryKind::File,
            stat: Stat::from_metadata(metadata),
            link_target: None,
        });
    }

    /// Emits a subfolder's entry and spawns its listing, unless it is excluded or one of its own
    /// ancestors (reached again through a followed link).
    fn enter<'s>(
        &'s self,
        scope: &rayon::Scope<'s>,
        folder: &Folder,
        subfolder: Subfolder<'_>,
        role: Role,
        output: &mut ScanOutput,
    ) {
        let source_path = join(&folder.source_path, subfolder.name);
        let id = FileId::of(&subfolder.metadata);
        if self.is_excluded(id) {
            tracing::debug!(path = %source_path, "excluded folder not entered");
            return;
        }
        if folder.ancestors.contains(id) {
            let target = match subfolder.target.is_empty() {
                true => subfolder.disk.display().to_string(),
                false => subfolder.target,
            };
            return output.problems.push(ScanError::LinkCycle {
                path: source_path,
                target,
            });
        }
        let child = Folder {
            disk: subfolder.disk,
            zip_path: join(&folder.zip_path, subfolder.name),
            source_path,
            source: Arc::clone(&folder.source),
            ancestors: Ancestors::push(Some(Arc::clone(&folder.ancestors)), id),
            region: subfolder.region,
            role: role.child(subfolder.name),
        };
        self.start(scope, child, &subfolder.metadata, output);
    }

    /// A symlink: kept as a link when it stays inside its source folder, otherwise refused or
    /// (with `follow_external`) replaced by what it points to.
    fn visit_link<'s>(
        &'s self,
        scope: &rayon::Scope<'s>,
        folder: &Folder,
        listed: &Listed,
        metadata: &Metadata,
        role: Role,
        output: &mut ScanOutput,
    ) {
        let path = join(&folder.source_path, &listed.name);
        let disk = listed.entry.path();
        let target = match read_link_target(&disk, &path) {
            Ok(target) => target,
            Err(problem) => return output.problems.push(problem),
        };
        let resolution = match folder.region {
            Region::Source => {
                resolve_inside(&folder.source.disk, relative_to_source(folder), &target)
            }
            Region::Followed => Ok(LinkResolution::Leaves),
        };

        match resolution {
            Ok(LinkResolution::Inside) => output.entries.push(ScannedEntry {
                zip_path: join(&folder.zip_path, &listed.name),
                source_path: path,
                kind: EntryKind::Symlink,
                stat: Stat::from_metadata(metadata),
                link_target: Some(target),
            }),
            Ok(LinkResolution::Leaves) => {
                let link = ExternalLink {
                    disk,
                    name: &listed.name,
                    path,
                    target,
                };
                self.visit_external_link(scope, folder, link, role, output);
            }
            Ok(LinkResolution::Dangling) => {
                output
                    .problems
                    .push(ScanError::DanglingLink { path, target });
            }
            Ok(LinkResolution::Cycle) => {
                output.problems.push(ScanError::LinkCycle { path, target });
            }
            Err(error) => output.problems.push(ScanError::Unreadable { path, error }),
        }
    }

    /// A link whose target is outside its source folder: refused, or with `follow_external`
    /// stored as the file or folder it points to. Dangling links and cycles are refused either
    /// way, since there is no content to store.
    fn visit_external_link<'s>(
        &'s self,
        scope: &rayon::Scope<'s>,
        folder: &Folder,
        link: ExternalLink<'_>,
        role: Role,
        output: &mut ScanOutput,
    ) {
        let ExternalLink {
            disk,
            name,
            path,
            target,
        } = link;
        let metadata = match std::fs::metadata(&disk) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return output
                    .problems
                    .push(ScanError::DanglingLink { path, target });
            }
            Err(error) if error.raw_os_error() == Some(libc::ELOOP) => {
                return output.problems.push(ScanError::LinkCycle { path, target });
            }
            Err(error) => return output.problems.push(ScanError::Unreadable { path, error }),
        };
        if !self.follow_external {
            let folder = folder.source.path.clone();
            return output.problems.push(ScanError::LinkLeavesLayer {
                path,
                target,
                folder,
            });
        }

        let file_type = metadata.file_type();
        if file_type.is_file() {
            tracing::debug!(%path, %target, "storing the content of an external link");
            self.push_file(folder, name, &metadata, output);
        } else if file_type.is_dir() {
            tracing::debug!(%path, %target, "walking the folder of an external link");
            let region = Region::Followed;
            let subfolder = Subfolder {
                disk,
                name,
                metadata,
                region,
                target,
            };
            self.enter(scope, folder, subfolder, role, output);
        } else {
            let file_type = describe(file_type);
            output
                .problems
                .push(ScanError::UnsupportedFileType { path, file_type });
        }
    }

    pub(super) fn append(&self, mut found: ScanOutput) {
        let mut output = self
            .output
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        output.entries.append(&mut found.entries);
        output.packages.append(&mut found.packages);
        output.problems.append(&mut found.problems);
    }
}

/// A link that leaves its source folder, as found in a listing.
struct ExternalLink<'n> {
    disk: PathBuf,
    name: &'n str,
    /// Relative to the layer root.
    path: String,
    target: String,
}

/// A manifest found in a package's folder.
struct Manifest {
    name: String,
    metadata: Metadata,
}

fn package_dir(
    folder: &Folder,
    kind: PackageKind,
    manifest: &Manifest,
    contents_skipped: bool,
) -> PackageDir {
    PackageDir {
        kind,
        source_folder: folder.source.path.clone(),
        source_dir: folder.source_path.clone(),
        zip_dir: folder.zip_path.clone(),
        manifest_path: join(&folder.source_path, &manifest.name),
        manifest_stat: Stat::from_metadata(&manifest.metadata),
        contents_skipped,
    }
}

/// A link's target, which must be UTF-8 to be stored or judged.
fn read_link_target(disk: &std::path::Path, path: &str) -> Result<String, ScanError> {
    let target =
        std::fs::read_link(disk).map_err(|error| ScanError::from_io(path.into(), error))?;
    target
        .into_os_string()
        .into_string()
        .map_err(|target| ScanError::NonUtf8LinkTarget {
            path: path.into(),
            target: target.to_string_lossy().into_owned(),
        })
}

/// The folder's path below its source folder, "" for the source folder itself.
fn relative_to_source(folder: &Folder) -> &str {
    let below = &folder.source_path[folder.source.path.len()..];
    below.strip_prefix('/').unwrap_or(below)
}

/// `parent/name`, or `name` when `parent` is the root ("").
pub(super) fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        return name.to_owned();
    }
    let mut joined = String::with_capacity(parent.len() + 1 + name.len());
    joined.push_str(parent);
    joined.push('/');
    joined.push_str(name);
    joined
}

fn describe(file_type: FileType) -> &'static str {
    if file_type.is_fifo() {
        "fifo (named pipe)"
    } else if file_type.is_socket() {
        "socket"
    } else if file_type.is_block_device() {
        "block device"
    } else if file_type.is_char_device() {
        "character device"
    } else {
        "file of an unknown type"
    }
}

impl Stat {
    /// The stat data of `metadata`, which came from `lstat` (or `stat` for a followed link).
    pub fn from_metadata(metadata: &Metadata) -> Stat {
        Stat {
            size: metadata.size(),
            mtime_ns: nanoseconds(metadata.mtime(), metadata.mtime_nsec()),
            ctime_ns: nanoseconds(metadata.ctime(), metadata.ctime_nsec()),
            inode: metadata.ino(),
            mode: metadata.mode(),
        }
    }
}

fn nanoseconds(seconds: i64, nanoseconds: i64) -> i64 {
    seconds
        .saturating_mul(1_000_000_000)
        .saturating_add(nanoseconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_roles_follow_node_modules_layout() {
        let node_modules = Role::Plain.child("node_modules");
        assert_eq!(node_modules, Role::NodeModules);
        assert_eq!(node_modules.child("a"), Role::PackageCandidate);
        assert_eq!(node_modules.child(".bin"), Role::Plain);
        assert_eq!(node_modules.child("@scope"), Role::Scope);
        assert_eq!(Role::Scope.child("name"), Role::PackageCandidate);
        assert_eq!(Role::NodePackage.child("lib"), Role::OwnFiles);
        assert_eq!(Role::NodePackage.child("node_modules"), Role::NodeModules);
        assert_eq!(Role::OwnFiles.child("node_modules"), Role::OwnFiles);
    }

    /// Lists a folder, deletes what was listed, then visits the listing, as a scan does when
    /// files are removed between its `readdir` and its `statx`.
    #[test]
    fn entries_removed_after_listing_are_vanished() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("opt/gone-folder")).unwrap();
        std::fs::write(dir.path().join("opt/gone.txt"), b"").unwrap();
        let excluded = HashSet::new();
        let walker = Walker::new(&excluded, false, false);
        let source = Arc::new(Source {
            path: "opt".into(),
            disk: dir.path().join("opt"),
        });
        let id = FileId::of(&std::fs::metadata(&source.disk).unwrap());
        let folder = Folder {
            disk: source.disk.clone(),
            source_path: "opt".into(),
            zip_path: String::new(),
            source,
            ancestors: Ancestors::push(None, id),
            region: Region::Source,
            role: Role::Plain,
        };

        let mut output = ScanOutput::default();
        let listing = walker.read_folder(&folder, &mut output);
        assert_eq!(listing.len(), 2);
        std::fs::remove_file(dir.path().join("opt/gone.txt")).unwrap();
        std::fs::remove_dir(dir.path().join("opt/gone-folder")).unwrap();
        rayon::scope(|scope| walker.visit_all(scope, &folder, listing, Role::Plain, &mut output));

        let mut paths: Vec<_> = output
            .problems
            .iter()
            .map(|problem| match problem {
                ScanError::Vanished { path } => path.as_str(),
                other => panic!("{other}"),
            })
            .collect();
        paths.sort();
        assert_eq!(paths, ["opt/gone-folder", "opt/gone.txt"]);
        assert!(output.entries.is_empty());
    }

    #[test]
    fn join_skips_the_separator_at_the_root() {
        assert_eq!(join("", "a"), "a");
        assert_eq!(join("nodejs", "a"), "nodejs/a");
    }

    #[test]
    fn nanoseconds_combine_seconds_and_fraction() {
        assert_eq!(nanoseconds(2, 5), 2_000_000_005);
        assert_eq!(nanoseconds(-1, 500), -999_999_500);
    }
}
