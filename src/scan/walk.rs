//! The parallel walker behind [`super::scan`] and [`super::scan_package`].

use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::dir::{DirFd, EntryStat, FileKind, Names};
use super::link::{resolve_inside, LinkResolution};
use super::order::{compare_items, flatten, Item, Slot};
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
/// One rayon task lists one folder: it opens the folder relative to its parent's descriptor,
/// `lstat`s every entry by its bare name relative to its own (see [`super::dir`]) and spawns one
/// task per subfolder. Tasks go onto the spawning thread's deque, and idle threads steal the
/// oldest ones, which are near the top of the tree and so carry the most work: a wide
/// `node_modules` keeps every core busy without any up-front partitioning, and a deep tree never
/// recurses on the stack. A folder's descriptor stays open while a spawned subfolder still has
/// to open itself from it; with the deques working depth first, that is about one folder per
/// level per thread.
///
/// Each task sorts its folder's entries and leaves them in a [`Slot`] that its parent placed
/// among its own entries, where the subfolder's contents sort (see [`super::order`]). Reading
/// the slots depth first after the walk gives every entry of a source in zip path order, so the
/// result does not depend on scheduling and no sort of the whole listing is needed. Packages and
/// problems are few: each task appends them to the shared output under one lock, and the caller
/// sorts them.
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

/// What one task found.
#[derive(Default)]
struct Found {
    items: Vec<Item>,
    packages: Vec<PackageDir>,
    problems: Vec<ScanError>,
}

impl Walker<'_> {
    pub(super) fn follows_external(&self) -> bool {
        self.follow_external
    }
}

impl FileId {
    pub(super) fn new(device: u64, inode: u64) -> FileId {
        FileId { device, inode }
    }

    pub(super) fn of(metadata: &Metadata) -> FileId {
        FileId::new(metadata.dev(), metadata.ino())
    }

    pub(super) fn device(self) -> u64 {
        self.device
    }

    pub(super) fn inode(self) -> u64 {
        self.inode
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
    pub(super) opening: Opening,
    pub(super) source_path: String,
    pub(super) zip_path: String,
    pub(super) source: Arc<Source>,
    pub(super) ancestors: Arc<Ancestors>,
    pub(super) region: Region,
    pub(super) role: Role,
    pub(super) identity: Identity,
}

/// Who takes a folder's stat data and checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Identity {
    /// The parent did (or the caller, for a source): the folder's own entry is out already, and
    /// `ancestors` ends with the folder itself.
    Checked,
    /// A subfolder that its parent's listing says is a folder: its task takes the stat data
    /// from the open folder, which saves looking its name up twice, then checks exclusion and
    /// cycles and emits the own entry. `ancestors` ends with the parent.
    Unchecked,
}

/// How a folder's task opens it.
#[derive(Debug)]
pub(super) enum Opening {
    /// By its path, following links: a source folder, the package [`super::scan_package`]
    /// lists, or the target of a followed link.
    Path(PathBuf),
    /// By its name in the parent's listing, relative to the parent's descriptor and never
    /// through a link: a real subfolder.
    Child { parent: Arc<DirFd>, name: CString },
}

/// An entry of a folder listing whose name is valid UTF-8.
struct Listed<'n> {
    name: &'n str,
    c_name: &'n CStr,
    /// The listing says it is a folder.
    is_dir: bool,
}

/// A subfolder (real, or a followed link) about to be entered.
struct Subfolder<'n> {
    opening: Opening,
    name: &'n str,
    stat: Stat,
    id: FileId,
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

    /// The packages and problems found, with the entries of `roots` (and of every slot below
    /// them) in order.
    pub(super) fn into_output(self, roots: Vec<Item>) -> ScanOutput {
        let mut output = self
            .output
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        flatten(roots, &mut output.entries);
        output
    }

    /// Records problems found before any folder task ran.
    pub(super) fn report(&self, problem: ScanError) {
        self.append(Found {
            problems: vec![problem],
            ..Found::default()
        });
    }

    /// Adds the folder's own entry (none for the zip root) and the slot for its contents to
    /// `items`, and lists it in a new task.
    pub(super) fn start<'s>(
        &'s self,
        scope: &rayon::Scope<'s>,
        folder: Folder,
        stat: Stat,
        items: &mut Vec<Item>,
    ) {
        if !folder.zip_path.is_empty() {
            items.push(Item::Entry(ScannedEntry {
                zip_path: folder.zip_path.clone(),
                source_path: folder.source_path.clone(),
                kind: EntryKind::Dir,
                stat,
                link_target: None,
            }));
        }
        items.push(self.spawn_listing(scope, folder));
    }

    /// Lists `folder` in a new task, and returns the place its entries will be in.
    pub(super) fn spawn_listing<'s>(&'s self, scope: &rayon::Scope<'s>, folder: Folder) -> Item {
        let slot = Slot::new(folder.zip_path.clone());
        let item = Item::Contents(Arc::clone(&slot));
        scope.spawn(move |scope| self.list(scope, folder, &slot));
        item
    }

    /// Lists one folder: the body of a task.
    fn list<'s>(&'s self, scope: &rayon::Scope<'s>, mut folder: Folder, slot: &Slot) {
        let mut found = Found::default();
        if let Some((dir, names)) = self.read_folder(&mut folder, slot, &mut found) {
            let mut listing = listed(&folder, &names, &mut found);
            let dir = &dir;
            match folder.role {
                Role::PackageCandidate => {
                    self.list_node_package(scope, &folder, dir, listing, &mut found)
                }
                Role::PythonRoot => self.list_python_root(scope, &folder, dir, listing, &mut found),
                Role::NodePackageOwn => {
                    listing.retain(|listed| listed.name != NODE_MODULES);
                    self.visit_all(scope, &folder, dir, listing, Role::OwnFiles, &mut found);
                }
                Role::PythonPackageOwn => {
                    listing.retain(|listed| !PYTHON_LOCK_FILES.contains(&listed.name));
                    self.visit_all(scope, &folder, dir, listing, Role::OwnFiles, &mut found);
                }
                role => self.visit_all(scope, &folder, dir, listing, role, &mut found),
            }
        }

        let mut items = std::mem::take(&mut found.items);
        let prefix = match folder.zip_path.len() {
            0 => 0,
            length => length + 1,
        };
        items.sort_unstable_by(|a, b| compare_items(a, b, prefix));
        slot.lock().items = items;
        self.append(found);
    }

    /// Opens a folder and reads its names; a folder that cannot be opened or read becomes a
    /// problem. A subfolder that is no longer a folder when its task opens it (replaced by a
    /// link or a file since its parent's listing) vanished: following a link put there would
    /// walk whatever it points to.
    ///
    /// An unchecked folder is checked here (see [`Identity`]); one that is excluded or closes a
    /// cycle is not listed.
    fn read_folder(
        &self,
        folder: &mut Folder,
        slot: &Slot,
        found: &mut Found,
    ) -> Option<(Arc<DirFd>, Names)> {
        let opened = match &folder.opening {
            Opening::Path(disk) => DirFd::open(disk),
            Opening::Child { parent, name } => parent.open_child(name),
        };
        let mut dir = match opened {
            Ok(dir) => dir,
            Err(error) => {
                self.open_failed(folder, slot, error, found);
                return None;
            }
        };
        if folder.identity == Identity::Unchecked {
            let checked = match dir.stat() {
                Ok(entry) => self.check(folder, &entry, slot, found),
                Err(error) => {
                    let path = folder.source_path.clone();
                    found.problems.push(ScanError::from_io(path, error));
                    false
                }
            };
            if !checked {
                return None;
            }
        }
        match dir.read_names() {
            Ok(names) => Some((Arc::new(dir), names)),
            Err(error) => {
                let path = folder.source_path.clone();
                found.problems.push(ScanError::Unreadable { path, error });
                None
            }
        }
    }

    /// A folder that cannot be opened still has its entry if it is a folder; one that is no
    /// longer a folder (replaced by a link or a file since its parent's listing) vanished:
    /// following a link put there would walk whatever it points to.
    fn open_failed(&self, folder: &mut Folder, slot: &Slot, error: io::Error, found: &mut Found) {
        let path = folder.source_path.clone();
        let Opening::Child { parent, name } = &folder.opening else {
            return found.problems.push(ScanError::from_io(path, error));
        };
        if matches!(error.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) {
            return found.problems.push(ScanError::Vanished { path });
        }
        if folder.identity == Identity::Unchecked {
            match parent.lstat(name) {
                Ok(entry) if entry.kind() == FileKind::Dir => {
                    if !self.check(folder, &entry, slot, found) {
                        return;
                    }
                }
                Ok(_) => return found.problems.push(ScanError::Vanished { path }),
                Err(error) => return found.problems.push(ScanError::from_io(path, error)),
            }
        }
        found.problems.push(ScanError::from_io(path, error));
    }

    /// Checks an unchecked folder against exclusion and its ancestors and, when it is to be
    /// listed, emits its own entry into its slot.
    fn check(
        &self,
        folder: &mut Folder,
        entry: &EntryStat,
        slot: &Slot,
        found: &mut Found,
    ) -> bool {
        let id = entry.id();
        if self.is_excluded(id) {
            tracing::debug!(path = %folder.source_path, "excluded folder not entered");
            return false;
        }
        if folder.ancestors.contains(id) {
            let target = disk_path(folder).display().to_string();
            let path = folder.source_path.clone();
            found.problems.push(ScanError::LinkCycle { path, target });
            return false;
        }
        folder.ancestors = Ancestors::push(Some(Arc::clone(&folder.ancestors)), id);
        folder.identity = Identity::Checked;
        slot.lock().own = Some(ScannedEntry {
            zip_path: folder.zip_path.clone(),
            source_path: folder.source_path.clone(),
            kind: EntryKind::Dir,
            stat: entry.stat,
            link_target: None,
        });
        true
    }

    /// A folder under `node_modules`: a package if it holds a `package.json` file. In manifests
    /// mode only the package's nested `node_modules` is walked; its own files are left to
    /// [`super::scan_package`] or the cache.
    fn list_node_package<'s>(
        &'s self,
        scope: &rayon::Scope<'s>,
        folder: &Folder,
        dir: &Arc<DirFd>,
        mut listing: Vec<Listed<'_>>,
        found: &mut Found,
    ) {
        let Some(manifest) = take_manifest(folder, dir, &mut listing, PACKAGE_JSON, found) else {
            return self.visit_all(scope, folder, dir, listing, Role::Plain, found);
        };
        let package = package_dir(
            folder,
            PackageKind::Node,
            &manifest,
            self.skip_package_contents,
        );
        found.packages.push(package);

        if self.skip_package_contents {
            tracing::trace!(package = %folder.source_path, "package contents skipped");
            listing.retain(|listed| listed.name == NODE_MODULES);
        } else {
            push_file(folder, manifest.name, manifest.stat, found);
        }
        self.visit_all(scope, folder, dir, listing, Role::NodePackage, found);
    }

    /// The top folder of [`PYTHON_SOURCE`]: a Python install if it holds a `Pipfile.lock`. In
    /// manifests mode only the top-level lock files are listed.
    fn list_python_root<'s>(
        &'s self,
        scope: &rayon::Scope<'s>,
        folder: &Folder,
        dir: &Arc<DirFd>,
        mut listing: Vec<Listed<'_>>,
        found: &mut Found,
    ) {
        let Some(lock) = take_manifest(folder, dir, &mut listing, PIPFILE_LOCK, found) else {
            return self.visit_all(scope, folder, dir, listing, Role::Plain, found);
        };
        let package = package_dir(
            folder,
            PackageKind::Python,
            &lock,
            self.skip_package_contents,
        );
        found.packages.push(package);

        push_file(folder, lock.name, lock.stat, found);
        if self.skip_package_contents {
            tracing::trace!(install = %folder.source_path, "python install contents skipped");
            listing.retain(|listed| PYTHON_LOCK_FILES.contains(&listed.name));
        }
        self.visit_all(scope, folder, dir, listing, Role::OwnFiles, found);
    }

    /// Visits every entry of `listing`, which belongs to a folder with the role `role`.
    fn visit_all<'s>(
        &'s self,
        scope: &rayon::Scope<'s>,
        folder: &Folder,
        dir: &Arc<DirFd>,
        listing: Vec<Listed<'_>>,
        role: Role,
        found: &mut Found,
    ) {
        found.items.reserve(listing.len());
        for listed in listing {
            self.visit(scope, folder, dir, &listed, role, found);
        }
    }

    fn visit<'s>(
        &'s self,
        scope: &rayon::Scope<'s>,
        folder: &Folder,
        dir: &Arc<DirFd>,
        listed: &Listed<'_>,
        role: Role,
        found: &mut Found,
    ) {
        if listed.is_dir {
            return self.enter_listed(scope, folder, dir, listed, role, found);
        }
        let entry = match dir.lstat(listed.c_name) {
            Ok(entry) => entry,
            Err(error) => {
                let path = join(&folder.source_path, listed.name);
                return found.problems.push(ScanError::from_io(path, error));
            }
        };
        match entry.kind() {
            FileKind::File => push_file(folder, listed.name, entry.stat, found),
            FileKind::Dir => {
                let subfolder = Subfolder {
                    opening: Opening::Child {
                        parent: Arc::clone(dir),
                        name: listed.c_name.to_owned(),
                    },
                    name: listed.name,
                    stat: entry.stat,
                    id: entry.id(),
                    region: folder.region,
                    target: String::new(),
                };
                self.enter(scope, folder, subfolder, role, found);
            }
            FileKind::Symlink => self.visit_link(scope, folder, listed.name, &entry, role, found),
            kind => found.problems.push(ScanError::UnsupportedFileType {
                path: join(&folder.source_path, listed.name),
                file_type: describe(kind),
            }),
        }
    }

    /// Spawns the task of a subfolder that the listing says is a folder, with places for its own
    /// entry and its contents: the task takes its stat data and checks it.
    fn enter_listed<'s>(
        &'s self,
        scope: &rayon::Scope<'s>,
        folder: &Folder,
        dir: &Arc<DirFd>,
        listed: &Listed<'_>,
        role: Role,
        found: &mut Found,
    ) {
        let child = Folder {
            opening: Opening::Child {
                parent: Arc::clone(dir),
                name: listed.c_name.to_owned(),
            },
            source_path: join(&folder.source_path, listed.name),
            zip_path: join(&folder.zip_path, listed.name),
            source: Arc::clone(&folder.source),
            ancestors: Arc::clone(&folder.ancestors),
            region: folder.region,
            role: role.child(listed.name),
            identity: Identity::Unchecked,
        };
        let slot = Slot::new(child.zip_path.clone());
        found.items.push(Item::Own(Arc::clone(&slot)));
        found.items.push(Item::Contents(Arc::clone(&slot)));
        scope.spawn(move |scope| self.list(scope, child, &slot));
    }

    /// Adds a subfolder's entry and spawns its listing, unless it is excluded or one of its own
    /// ancestors (reached again through a followed link).
    fn enter<'s>(
        &'s self,
        scope: &rayon::Scope<'s>,
        folder: &Folder,
        subfolder: Subfolder<'_>,
        role: Role,
        found: &mut Found,
    ) {
        let source_path = join(&folder.source_path, subfolder.name);
        let id = subfolder.id;
        if self.is_excluded(id) {
            tracing::debug!(path = %source_path, "excluded folder not entered");
            return;
        }
        if folder.ancestors.contains(id) {
            let target = match subfolder.target.is_empty() {
                true => disk_path(folder).join(subfolder.name).display().to_string(),
                false => subfolder.target,
            };
            return found.problems.push(ScanError::LinkCycle {
                path: source_path,
                target,
            });
        }
        let child = Folder {
            opening: subfolder.opening,
            zip_path: join(&folder.zip_path, subfolder.name),
            source_path,
            source: Arc::clone(&folder.source),
            ancestors: Ancestors::push(Some(Arc::clone(&folder.ancestors)), id),
            region: subfolder.region,
            role: role.child(subfolder.name),
            identity: Identity::Checked,
        };
        self.start(scope, child, subfolder.stat, &mut found.items);
    }

    /// A symlink: kept as a link when it stays inside its source folder, otherwise refused or
    /// (with `follow_external`) replaced by what it points to.
    fn visit_link<'s>(
        &'s self,
        scope: &rayon::Scope<'s>,
        folder: &Folder,
        name: &str,
        entry: &EntryStat,
        role: Role,
        found: &mut Found,
    ) {
        let path = join(&folder.source_path, name);
        let disk = disk_path(folder).join(name);
        let target = match read_link_target(&disk, &path) {
            Ok(target) => target,
            Err(problem) => return found.problems.push(problem),
        };
        let resolution = match folder.region {
            Region::Source => {
                resolve_inside(&folder.source.disk, relative_to_source(folder), &target)
            }
            Region::Followed => Ok(LinkResolution::Leaves),
        };

        match resolution {
            Ok(LinkResolution::Inside) => found.items.push(Item::Entry(ScannedEntry {
                zip_path: join(&folder.zip_path, name),
                source_path: path,
                kind: EntryKind::Symlink,
                stat: entry.stat,
                link_target: Some(target),
            })),
            Ok(LinkResolution::Leaves) => {
                let link = ExternalLink {
                    disk,
                    name,
                    path,
                    target,
                };
                self.visit_external_link(scope, folder, link, role, found);
            }
            Ok(LinkResolution::Dangling) => {
                found
                    .problems
                    .push(ScanError::DanglingLink { path, target });
            }
            Ok(LinkResolution::Cycle) => {
                found.problems.push(ScanError::LinkCycle { path, target });
            }
            Err(error) => found.problems.push(ScanError::Unreadable { path, error }),
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
        found: &mut Found,
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
                return found
                    .problems
                    .push(ScanError::DanglingLink { path, target });
            }
            Err(error) if error.raw_os_error() == Some(libc::ELOOP) => {
                return found.problems.push(ScanError::LinkCycle { path, target });
            }
            Err(error) => return found.problems.push(ScanError::Unreadable { path, error }),
        };
        if !self.follow_external {
            let folder = folder.source.path.clone();
            return found.problems.push(ScanError::LinkLeavesLayer {
                path,
                target,
                folder,
            });
        }

        let file_type = metadata.file_type();
        if file_type.is_file() {
            tracing::debug!(%path, %target, "storing the content of an external link");
            push_file(folder, name, Stat::from_metadata(&metadata), found);
        } else if file_type.is_dir() {
            tracing::debug!(%path, %target, "walking the folder of an external link");
            let subfolder = Subfolder {
                opening: Opening::Path(disk),
                name,
                stat: Stat::from_metadata(&metadata),
                id: FileId::of(&metadata),
                region: Region::Followed,
                target,
            };
            self.enter(scope, folder, subfolder, role, found);
        } else {
            let file_type = describe(FileKind::of(file_type));
            found
                .problems
                .push(ScanError::UnsupportedFileType { path, file_type });
        }
    }

    fn append(&self, mut found: Found) {
        if found.packages.is_empty() && found.problems.is_empty() {
            return;
        }
        let mut output = self
            .output
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        output.packages.append(&mut found.packages);
        output.problems.append(&mut found.problems);
    }
}

/// The entries of `names` whose names are UTF-8; the others become problems.
fn listed<'n>(folder: &Folder, names: &'n Names, found: &mut Found) -> Vec<Listed<'n>> {
    let mut listing = Vec::with_capacity(names.len());
    for index in 0..names.len() {
        match std::str::from_utf8(names.bytes(index)) {
            Ok(name) => listing.push(Listed {
                name,
                c_name: names.c_str(index),
                is_dir: names.is_dir(index),
            }),
            Err(_) => found.problems.push(ScanError::NonUtf8Name {
                name: String::from_utf8_lossy(names.bytes(index)).into_owned(),
                folder: folder.source_path.clone(),
            }),
        }
    }
    listing
}

/// Takes the manifest called `name` out of `listing` if it is a regular file, with its stat
/// data. A manifest that cannot be stat-ed is reported and taken out too, so it is not reported
/// twice; one of another type stays in the listing as an ordinary entry.
fn take_manifest<'n>(
    folder: &Folder,
    dir: &DirFd,
    listing: &mut Vec<Listed<'n>>,
    name: &str,
    found: &mut Found,
) -> Option<Manifest<'n>> {
    let index = listing.iter().position(|listed| listed.name == name)?;
    match dir.lstat(listing[index].c_name) {
        Ok(entry) if entry.kind() == FileKind::File => {
            let listed = listing.swap_remove(index);
            Some(Manifest {
                name: listed.name,
                stat: entry.stat,
            })
        }
        Ok(_) => None,
        Err(error) => {
            let listed = listing.swap_remove(index);
            let path = join(&folder.source_path, listed.name);
            found.problems.push(ScanError::from_io(path, error));
            None
        }
    }
}

fn push_file(folder: &Folder, name: &str, stat: Stat, found: &mut Found) {
    found.items.push(Item::Entry(ScannedEntry {
        zip_path: join(&folder.zip_path, name),
        source_path: join(&folder.source_path, name),
        kind: EntryKind::File,
        stat,
        link_target: None,
    }));
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
struct Manifest<'n> {
    name: &'n str,
    stat: Stat,
}

fn package_dir(
    folder: &Folder,
    kind: PackageKind,
    manifest: &Manifest<'_>,
    contents_skipped: bool,
) -> PackageDir {
    PackageDir {
        kind,
        source_folder: folder.source.path.clone(),
        source_dir: folder.source_path.clone(),
        zip_dir: folder.zip_path.clone(),
        manifest_path: join(&folder.source_path, manifest.name),
        manifest_stat: manifest.stat,
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

/// The folder's path on disk. Below a followed link it passes through the link, which the
/// kernel follows to the same folder the walk entered.
fn disk_path(folder: &Folder) -> PathBuf {
    folder.source.disk.join(relative_to_source(folder))
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

fn describe(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Fifo => "fifo (named pipe)",
        FileKind::Socket => "socket",
        FileKind::BlockDevice => "block device",
        FileKind::CharDevice => "character device",
        _ => "file of an unknown type",
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

pub(super) fn nanoseconds(seconds: i64, nanoseconds: i64) -> i64 {
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

    fn opt_folder(dir: &std::path::Path, opening: Opening, path: &str) -> Folder {
        let source = Arc::new(Source {
            path: "opt".into(),
            disk: dir.join("opt"),
        });
        let id = FileId::of(&std::fs::metadata(&source.disk).unwrap());
        Folder {
            opening,
            source_path: path.into(),
            zip_path: path
                .strip_prefix("opt")
                .unwrap()
                .trim_start_matches('/')
                .into(),
            source,
            ancestors: Ancestors::push(None, id),
            region: Region::Source,
            role: Role::Plain,
            identity: Identity::Checked,
        }
    }

    fn folder_copy(folder: &Folder) -> Folder {
        let Opening::Path(disk) = &folder.opening else {
            panic!("a folder opened by path");
        };
        Folder {
            opening: Opening::Path(disk.clone()),
            source_path: folder.source_path.clone(),
            zip_path: folder.zip_path.clone(),
            source: Arc::clone(&folder.source),
            ancestors: Arc::clone(&folder.ancestors),
            region: folder.region,
            role: folder.role,
            identity: folder.identity,
        }
    }

    fn only_vanished(problems: &[ScanError]) -> Vec<&str> {
        let mut paths: Vec<_> = problems
            .iter()
            .map(|problem| match problem {
                ScanError::Vanished { path } => path.as_str(),
                other => panic!("{other}"),
            })
            .collect();
        paths.sort();
        paths
    }

    /// Lists a folder, deletes what was listed, then visits the listing, as a scan does when
    /// files are removed between its `readdir` and its `lstat`.
    #[test]
    fn entries_removed_after_listing_are_vanished() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("opt/gone-folder")).unwrap();
        std::fs::write(dir.path().join("opt/gone.txt"), b"").unwrap();
        let excluded = HashSet::new();
        let walker = Walker::new(&excluded, false, false);
        let folder = opt_folder(dir.path(), Opening::Path(dir.path().join("opt")), "opt");

        let mut found = Found::default();
        let slot = Slot::new(String::new());
        let (opened, names) = walker
            .read_folder(&mut folder_copy(&folder), &slot, &mut found)
            .unwrap();
        let listing = listed(&folder, &names, &mut found);
        assert_eq!(listing.len(), 2);
        std::fs::remove_file(dir.path().join("opt/gone.txt")).unwrap();
        std::fs::remove_dir(dir.path().join("opt/gone-folder")).unwrap();
        rayon::scope(|scope| {
            walker.visit_all(scope, &folder, &opened, listing, Role::Plain, &mut found)
        });

        let mut output = walker.into_output(found.items);
        output.problems.append(&mut found.problems);
        assert_eq!(
            only_vanished(&output.problems),
            ["opt/gone-folder", "opt/gone.txt"]
        );
        assert!(output.entries.is_empty());
    }

    /// The listing says a subfolder is a folder, but it is a file by the time its task opens
    /// it: it vanished, and nothing is listed in its name.
    #[test]
    fn folder_replaced_by_a_file_after_listing_is_vanished() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("opt/sub")).unwrap();
        let excluded = HashSet::new();
        let walker = Walker::new(&excluded, false, false);
        let folder = opt_folder(dir.path(), Opening::Path(dir.path().join("opt")), "opt");

        let mut found = Found::default();
        let slot = Slot::new(String::new());
        let (opened, names) = walker
            .read_folder(&mut folder_copy(&folder), &slot, &mut found)
            .unwrap();
        let listing = listed(&folder, &names, &mut found);
        assert!(listing[0].is_dir);
        std::fs::remove_dir(dir.path().join("opt/sub")).unwrap();
        std::fs::write(dir.path().join("opt/sub"), b"").unwrap();
        rayon::scope(|scope| {
            walker.visit_all(scope, &folder, &opened, listing, Role::Plain, &mut found)
        });

        let output = walker.into_output(found.items);
        assert!(output.entries.is_empty(), "{:?}", output.entries);
        assert_eq!(only_vanished(&output.problems), ["opt/sub"]);
    }

    /// A subfolder swapped for a link between its parent's listing and its own task must not be
    /// walked through the link: that would list whatever the link points to.
    #[test]
    fn folder_replaced_by_a_link_after_listing_is_vanished() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("opt/sub")).unwrap();
        std::fs::create_dir_all(dir.path().join("elsewhere")).unwrap();
        std::fs::write(dir.path().join("elsewhere/secret"), b"key").unwrap();
        let excluded = HashSet::new();
        let walker = Walker::new(&excluded, false, false);
        let mut parent = DirFd::open(&dir.path().join("opt")).unwrap();
        parent.read_names().unwrap();

        std::fs::remove_dir(dir.path().join("opt/sub")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), dir.path().join("opt/sub"))
            .unwrap();
        let opening = Opening::Child {
            parent: Arc::new(parent),
            name: CString::new("sub").unwrap(),
        };
        let folder = opt_folder(dir.path(), opening, "opt/sub");
        let mut roots = Vec::new();
        rayon::scope(|scope| roots.push(walker.spawn_listing(scope, folder)));

        let output = walker.into_output(roots);
        assert!(output.entries.is_empty(), "{:?}", output.entries);
        assert_eq!(only_vanished(&output.problems), ["opt/sub"]);
    }

    /// Names around '/' in byte order ('-' and '.' sort before it, '0' after) in nested
    /// folders: the walk alone must give them in zip path order.
    #[test]
    fn walk_gives_zip_path_order_without_a_global_sort() {
        let dir = tempfile::tempdir().unwrap();
        let opt = dir.path().join("opt");
        for folder in ["a/c", "a/c-d/e", "a.b", "b/a/b", "b/a-"] {
            std::fs::create_dir_all(opt.join(folder)).unwrap();
        }
        for file in [
            "a-b", "a0", "a/c.txt", "a/c/x", "a/c0", "b/a/b/z", "b/a.js", "B",
        ] {
            std::fs::write(opt.join(file), b"").unwrap();
        }
        let excluded = HashSet::new();
        let walker = Walker::new(&excluded, false, false);
        let folder = opt_folder(dir.path(), Opening::Path(opt.clone()), "opt");
        let mut roots = Vec::new();
        rayon::scope(|scope| roots.push(walker.spawn_listing(scope, folder)));

        let output = walker.into_output(roots);
        let paths: Vec<&str> = output.entries.iter().map(|e| e.zip_path.as_str()).collect();
        let mut sorted = paths.clone();
        sorted.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        assert_eq!(paths, sorted);
        assert_eq!(paths.len(), 17);
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
