//! Benchmarks of the zip writer on a generated tree shaped like a node_modules layer.
//!
//! The tree has `LAMINA_BENCH_FILES` files (default 10,000) in packages of about a dozen files:
//! manifests, sources, minified bundles, type declarations, source maps, some binaries that do not
//! compress, empty files and `.bin` symlinks, with sizes spread from nothing to a few hundred
//! kilobytes (7.5 KB on average, against 10 KB in a real node_modules of 75,000 files).
//!
//! `LAMINA_BENCH_TREE=DIR` keeps the tree in `DIR` (and reuses it), so that other tools can be
//! timed on the same files. `LAMINA_BENCH_ONCE=1` skips criterion and packs once cold and once
//! after a one-file change, printing times, CPU times and peak memory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::Criterion;
use lamina::digest::{self, Entry};
use lamina::pack::{self, PackEntry, PackOutcome, PreviousZip, FORMAT_LABEL};
use lamina::progress::NoProgress;

fn main() {
    let files = std::env::var("LAMINA_BENCH_FILES").map_or(10_000, |n| n.parse().unwrap());
    let kept = std::env::var_os("LAMINA_BENCH_TREE").map(PathBuf::from);
    let temp = tempfile::tempdir().unwrap();
    let root = kept.unwrap_or_else(|| temp.path().join("layer"));
    if !root.join("complete").exists() {
        generate_tree(&root, files);
        fs_err::write(root.join("complete"), b"").unwrap();
    }
    let out = temp.path().join("out");

    if std::env::var_os("LAMINA_BENCH_ONCE").is_some() {
        run_once(&root, &out);
        return;
    }
    let mut criterion = Criterion::default().sample_size(10).configure_from_args();
    bench_cold(&mut criterion, &root, &out, files);
    bench_incremental(&mut criterion, &root, &out, files);
    criterion.final_summary();
}

fn bench_cold(criterion: &mut Criterion, root: &Path, out: &Path, files: usize) {
    let entries = entries_of(root);
    criterion.bench_function(&format!("pack_cold_level6_{files}_files"), |bencher| {
        bencher.iter(|| pack(out, &entries, None))
    });
}

fn bench_incremental(criterion: &mut Criterion, root: &Path, out: &Path, files: usize) {
    let before = entries_of(root);
    let first = pack(&out.join("first"), &before, None);
    let previous = previous_of(&first, &before);
    let changed = ChangedFile::change(root);
    let after = entries_of(root);
    let name = format!("pack_incremental_one_changed_{files}_files");
    criterion.bench_function(&name, |bencher| {
        bencher.iter(|| pack(out, &after, Some(&previous)))
    });
    drop(changed);
}

/// Packs once cold and once after a one-file change, and prints what it took.
fn run_once(root: &Path, out: &Path) {
    let before = entries_of(root);
    let (started, cpu, rss) = (Instant::now(), cpu_time(), peak_rss_mib());
    let cold = pack(&out.join("cold"), &before, None);
    println!(
        "cold: {:?} ({:?} of CPU), {} entries, {} bytes in, {} bytes out, \
         peak RSS {} MiB before and {} MiB after",
        started.elapsed(),
        cpu_time() - cpu,
        cold.entries,
        cold.unzipped_bytes,
        cold.size,
        rss,
        peak_rss_mib()
    );

    let changed = ChangedFile::change(root);
    let after = entries_of(root);
    let previous = previous_of(&cold, &before);
    let (started, cpu) = (Instant::now(), cpu_time());
    let incremental = pack(&out.join("incremental"), &after, Some(&previous));
    println!(
        "incremental: {:?} ({:?} of CPU), {} compressed, {} reused",
        started.elapsed(),
        cpu_time() - cpu,
        incremental.entries_compressed,
        incremental.entries_reused
    );
    drop(changed);
}

fn pack(out: &Path, entries: &[PackEntry], previous: Option<&PreviousZip>) -> PackOutcome {
    let plain: Vec<Entry> = entries.iter().map(|e| e.entry.clone()).collect();
    let digest = digest::digest(&plain, FORMAT_LABEL);
    pack::write_zip(out, &digest, entries, previous, &NoProgress).unwrap()
}

fn previous_of(outcome: &PackOutcome, entries: &[PackEntry]) -> PreviousZip {
    PreviousZip {
        path: outcome.path.clone(),
        entries: entries.iter().map(|e| e.entry.clone()).collect(),
        format: FORMAT_LABEL.to_string(),
    }
}

/// One source file with a line appended; its old content is put back on drop, so that a kept
/// tree stays the same from run to run.
struct ChangedFile {
    path: PathBuf,
    old: Vec<u8>,
}

impl ChangedFile {
    fn change(root: &Path) -> ChangedFile {
        let path = root.join("nodejs/node_modules/pkg00007/lib/index.js");
        let old = fs_err::read(&path).unwrap();
        let mut new = old.clone();
        new.extend_from_slice(b"\nmodule.exports.changed = true;\n");
        fs_err::write(&path, new).unwrap();
        ChangedFile { path, old }
    }
}

impl Drop for ChangedFile {
    fn drop(&mut self) {
        fs_err::write(&self.path, &self.old).unwrap();
    }
}

fn resource_usage() -> libc::rusage {
    // SAFETY: getrusage only writes the struct it is given.
    unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    }
}

/// The peak resident memory of this process so far.
fn peak_rss_mib() -> i64 {
    resource_usage().ru_maxrss / 1024
}

/// User and system time of this process so far.
fn cpu_time() -> Duration {
    let usage = resource_usage();
    let seconds = |time: libc::timeval| {
        Duration::from_secs(time.tv_sec as u64) + Duration::from_micros(time.tv_usec as u64)
    };
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// The entries below `root`, sorted, with blake3 hashes, as the scan would list them.
fn entries_of(root: &Path) -> Vec<PackEntry> {
    let mut entries = Vec::new();
    let mut stack = vec![root.join("nodejs")];
    while let Some(dir) = stack.pop() {
        entries.push(PackEntry {
            entry: Entry::dir(relative(root, &dir)),
            disk_path: None,
        });
        for child in fs_err::read_dir(&dir).unwrap() {
            let path = child.unwrap().path();
            let metadata = fs_err::symlink_metadata(&path).unwrap();
            if metadata.is_dir() {
                stack.push(path);
            } else if metadata.is_symlink() {
                let target = fs_err::read_link(&path)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string();
                let entry = Entry::symlink(relative(root, &path), target);
                entries.push(PackEntry {
                    entry,
                    disk_path: None,
                });
            } else {
                let content = fs_err::read(&path).unwrap();
                let mode = std::os::unix::fs::PermissionsExt::mode(&metadata.permissions());
                let size = content.len() as u64;
                let entry = Entry::file(relative(root, &path), mode, size, blake3::hash(&content));
                entries.push(PackEntry {
                    entry,
                    disk_path: Some(path),
                });
            }
        }
    }
    entries.sort_by(|a, b| a.entry.path.as_bytes().cmp(b.entry.path.as_bytes()));
    entries
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string()
}

/// Writes about `files` files below `root/nodejs/node_modules`.
fn generate_tree(root: &Path, files: usize) {
    let mut random = Random(0x5EED);
    let modules = root.join("nodejs/node_modules");
    let mut written = 0;
    let mut package = 0;
    while written < files {
        let name = if package % 9 == 4 {
            format!("@scope/pkg{package:05}")
        } else {
            format!("pkg{package:05}")
        };
        let dir = modules.join(&name);
        let manifest =
            format!("{{\n  \"name\": \"{name}\",\n  \"version\": \"1.{package}.0\"\n}}\n");
        write(&dir.join("package.json"), manifest.as_bytes());
        written += 1;
        for (index, file) in package_files(&mut random).into_iter().enumerate() {
            if written >= files {
                break;
            }
            let content = match file.kind {
                Kind::Text => text(&mut random, file.size),
                Kind::Binary => noise(&mut random, file.size),
            };
            write(
                &dir.join(format!("{}{index}{}", file.folder, file.extension)),
                &content,
            );
            written += 1;
        }
        if package % 25 == 0 {
            let bin = modules.join(".bin");
            fs_err::create_dir_all(&bin).unwrap();
            let target = format!("../{name}/lib/index.js");
            std::os::unix::fs::symlink(target, bin.join(format!("cmd{package}"))).unwrap();
        }
        package += 1;
    }
    // The file that the incremental benchmark changes.
    let changed = modules.join("pkg00007/lib/index.js");
    write(&changed, &text(&mut random, 6000));
}

enum Kind {
    Text,
    Binary,
}

struct PlannedFile {
    folder: &'static str,
    extension: &'static str,
    kind: Kind,
    size: usize,
}

/// Up to a dozen files of the shapes found in npm packages.
fn package_files(random: &mut Random) -> Vec<PlannedFile> {
    let shapes: [(&str, &str, Kind, usize); 12] = [
        ("README", ".md", Kind::Text, 2_500),
        ("LICENSE", "", Kind::Text, 1_100),
        ("lib/index", ".js", Kind::Text, 1_500),
        ("lib/util", ".js", Kind::Text, 3_000),
        ("lib/core", ".js", Kind::Text, 6_000),
        ("dist/bundle", ".min.js", Kind::Text, 15_000),
        ("dist/bundle", ".js.map", Kind::Text, 20_000),
        ("types/index", ".d.ts", Kind::Text, 2_000),
        ("types/util", ".d.ts", Kind::Text, 800),
        ("lib/empty", ".js", Kind::Text, 0),
        ("CHANGELOG", ".md", Kind::Text, 4_000),
        ("assets/icon", ".png", Kind::Binary, 3_000),
    ];
    let mut planned = Vec::new();
    for (folder, extension, kind, typical) in shapes {
        if random.below(10) >= 8 {
            continue;
        }
        // Sizes from a quarter to four times the typical one, rarely much larger.
        let scale = [1, 2, 4, 8, 16][random.below(5) as usize];
        let mut size = typical * scale / 4;
        if random.below(200) == 0 {
            size *= 20;
        }
        planned.push(PlannedFile {
            folder,
            extension,
            kind,
            size,
        });
    }
    planned
}

/// Source-like text: identifiers from a file's vocabulary, keywords, punctuation and numbers.
fn text(random: &mut Random, size: usize) -> Vec<u8> {
    const KEYWORDS: [&str; 16] = [
        "const",
        "function",
        "return",
        "if",
        "else",
        "module.exports",
        "require",
        "this",
        "new",
        "async",
        "await",
        "=>",
        "===",
        "null",
        "undefined",
        "typeof",
    ];
    let vocabulary: Vec<String> = (0..64).map(|_| identifier(random)).collect();
    let mut out = Vec::with_capacity(size + 32);
    while out.len() < size {
        match random.below(10) {
            0..=3 => out.extend_from_slice(vocabulary[random.below(64) as usize].as_bytes()),
            4..=6 => out.extend_from_slice(KEYWORDS[random.below(16) as usize].as_bytes()),
            7 => out.extend_from_slice(random.below(100_000).to_string().as_bytes()),
            8 => out.push(b"(){};.,"[random.below(7) as usize]),
            _ => out.extend_from_slice(b"\n  "),
        }
        out.push(b' ');
    }
    out.truncate(size);
    out
}

fn identifier(random: &mut Random) -> String {
    let len = 3 + random.below(10) as usize;
    (0..len)
        .map(|_| (b'a' + random.below(26) as u8) as char)
        .collect()
}

fn noise(random: &mut Random, size: usize) -> Vec<u8> {
    (0..size).map(|_| random.next() as u8).collect()
}

fn write(path: &Path, content: &[u8]) {
    fs_err::create_dir_all(path.parent().unwrap()).unwrap();
    fs_err::write(path, content).unwrap();
}

/// xorshift64*: fast, seeded, the same tree on every run.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: u64) -> u64 {
        (self.next() >> 32) % bound
    }
}
