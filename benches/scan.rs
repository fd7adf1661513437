//! Scanning a generated node_modules-like tree: many small files in nested package folders.
//!
//! The tree is written once, before measuring, so every run finds its metadata in the page
//! cache: the figures are the cost of the walk itself (listing, `statx`, link checks, sorting),
//! not of the disk.
//!
//! `snapshot_check_*` is the warm path that replaces the scan when a tree is unchanged: checking
//! the tree against the snapshot of an earlier scan (no folder listing).
//!
//! With `LAMINA_CORPUS` pointing at the corpora built by `../shared/bench/make-corpus.sh`, the
//! same scans also run on the real `node-large` tree (75k files from `npm ci`).

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion};
use lamina::scan::{scan, snapshot, ScanOptions, SourceMapping};

/// Packages in the generated tree, and files per package (package.json included).
const PACKAGES: usize = 400;
const FILES_PER_PACKAGE: usize = 50;

/// Writes `PACKAGES` packages of `FILES_PER_PACKAGE` files each below `lib/nodejs/node_modules`,
/// spread over a few nested folders per package, plus one `.bin` link per package.
fn generate_tree(root: &Path) {
    let node_modules = root.join("lib/nodejs/node_modules");
    let bin = node_modules.join(".bin");
    std::fs::create_dir_all(&bin).unwrap();
    for package in 0..PACKAGES {
        let name = if package % 10 == 0 {
            format!("@scope/package-{package}")
        } else {
            format!("package-{package}")
        };
        let folder = node_modules.join(&name);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(
            folder.join("package.json"),
            format!("{{\"name\":\"{name}\"}}"),
        )
        .unwrap();
        for file in 1..FILES_PER_PACKAGE {
            let subfolder = folder.join(["lib", "lib/util", "dist/esm", "dist/cjs"][file % 4]);
            std::fs::create_dir_all(&subfolder).unwrap();
            std::fs::write(
                subfolder.join(format!("file-{file}.js")),
                b"module.exports = 1;\n",
            )
            .unwrap();
        }
        let link = bin.join(format!("cli-{package}"));
        std::os::unix::fs::symlink(format!("../{name}/lib/file-4.js"), link).unwrap();
    }
}

fn bench_scan(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    generate_tree(dir.path());
    let sources = SourceMapping::layer();
    let files = PACKAGES * FILES_PER_PACKAGE;

    let stat_mode = ScanOptions::default();
    let output = scan(dir.path(), &sources, &stat_mode);
    assert!(output.problems.is_empty());
    assert!(output.entries.len() > files);

    let mut group = c.benchmark_group("scan");
    group.sample_size(20);
    group.bench_function("scan_stat_mode_20k_files", |b| {
        b.iter(|| scan(dir.path(), &sources, &stat_mode))
    });
    let manifests = ScanOptions {
        skip_package_contents: true,
        ..ScanOptions::default()
    };
    group.bench_function("scan_manifests_mode_20k_files", |b| {
        b.iter(|| scan(dir.path(), &sources, &manifests))
    });
    let taken = snapshot_of(&sources, &stat_mode, &output);
    group.bench_function("snapshot_check_20k_files", |b| {
        b.iter(|| check(dir.path(), &sources, &stat_mode, &taken))
    });
    group.finish();
}

const KEY: [u8; 32] = [1; 32];
const LABELS: &str = "bench";

/// The snapshot of `output`, as if its scan had started now (every folder is older).
fn snapshot_of(
    sources: &[SourceMapping],
    options: &ScanOptions,
    output: &lamina::scan::ScanOutput,
) -> Vec<u8> {
    snapshot::encode(sources, options, output, (&KEY, LABELS), i64::MAX, &[])
        .expect("the generated tree can have a snapshot")
}

fn check(root: &Path, sources: &[SourceMapping], options: &ScanOptions, taken: &[u8]) {
    let matched = snapshot::matches(root, sources, options, taken, (&KEY, LABELS));
    assert!(matched.is_some(), "the tree no longer matches its snapshot");
}

/// The `node-large` layer root (holding `nodejs/`), if the corpus has been built.
fn node_large_corpus() -> Option<PathBuf> {
    let root = PathBuf::from(std::env::var_os("LAMINA_CORPUS")?).join("node-large");
    root.join("nodejs/node_modules").is_dir().then_some(root)
}

/// The corpus has `nodejs/` at its root, where a layer has `lib/nodejs/`.
fn bench_scan_corpus(c: &mut Criterion) {
    let Some(root) = node_large_corpus() else {
        eprintln!("LAMINA_CORPUS/node-large not built: skipping the corpus benches");
        return;
    };
    let sources = [SourceMapping {
        source: "nodejs".into(),
        zip_prefix: "nodejs".into(),
    }];
    let stat_mode = ScanOptions::default();
    let output = scan(&root, &sources, &stat_mode);
    eprintln!(
        "node-large: {} entries, {} packages, {} problems",
        output.entries.len(),
        output.packages.len(),
        output.problems.len()
    );

    let mut group = c.benchmark_group("scan");
    group.sample_size(10);
    group.bench_function("scan_stat_mode_node_large_75k_files", |b| {
        b.iter(|| scan(&root, &sources, &stat_mode))
    });
    let manifests = ScanOptions {
        skip_package_contents: true,
        ..ScanOptions::default()
    };
    group.bench_function("scan_manifests_mode_node_large_75k_files", |b| {
        b.iter(|| scan(&root, &sources, &manifests))
    });
    let taken = snapshot_of(&sources, &stat_mode, &output);
    group.bench_function("snapshot_check_node_large_75k_files", |b| {
        b.iter(|| check(&root, &sources, &stat_mode, &taken))
    });
    group.finish();
}

criterion_group!(benches, bench_scan, bench_scan_corpus);
criterion_main!(benches);
