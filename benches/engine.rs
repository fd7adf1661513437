//! End-to-end engine benchmarks on a generated node_modules-like tree: what `lamina build` and
//! `lamina status` cost cold, warm, and after one file changed.
//!
//! `status_cold_hash_*` is cold hashing (an empty cache: every file read and hashed, no zip).
//! `status_warm_stat_snapshot_*` finds the tree unchanged against its listing snapshot, without
//! a scan. `status_warm_stat_scan_*` forgets the snapshot first: it scans, takes the
//! unchanged-listing shortcut and stores a new snapshot (the first unchanged run after a change).
//! `status_warm_manifests_*` scans and takes the shortcut. `status_warm_stat_rows_*` forgets the
//! recorded listing, so it measures the full warm path: loading the file rows, the stat check
//! against them, the entry list, the digest and the diff.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use lamina::build::{self, BuildOptions, FingerprintMode, StateDir, Subject};
use lamina::cache::{Cache, Owner};
use lamina::progress::NoProgress;
use lamina::scan::SourceMapping;

const PACKAGES: usize = 400;
const FILES_PER_PACKAGE: usize = 25;

/// `PACKAGES` packages of `FILES_PER_PACKAGE` small, compressible files each, aged an hour so
/// that no file is racily clean.
fn generate(root: &Path) {
    let modules = root.join("lib/nodejs/node_modules");
    let past = SystemTime::now() - Duration::from_secs(3600);
    for package in 0..PACKAGES {
        let dir = modules.join(format!("pkg-{package}"));
        std::fs::create_dir_all(dir.join("lib")).unwrap();
        let manifest = format!("{{\"name\":\"pkg-{package}\",\"version\":\"1.0.{package}\"}}");
        std::fs::write(dir.join("package.json"), manifest).unwrap();
        for file in 0..FILES_PER_PACKAGE {
            let body =
                format!("module.exports = {{ id: {file}, package: {package} }};\n").repeat(40);
            std::fs::write(dir.join("lib").join(format!("f{file}.js")), body).unwrap();
        }
    }
    for entry in walk(root) {
        let file = std::fs::File::options().write(true).open(entry).unwrap();
        file.set_times(std::fs::FileTimes::new().set_modified(past))
            .unwrap();
    }
}

fn walk(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    files
}

struct Fixture {
    _dir: tempfile::TempDir,
    project: PathBuf,
    subject: Subject,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().to_path_buf();
        let layer = project.join("layers/bench");
        generate(&layer);
        let subject = Subject {
            owner: Owner::Layer("bench".into()),
            root: layer,
            sources: SourceMapping::layer(),
        };
        Fixture {
            _dir: dir,
            project,
            subject,
        }
    }

    fn run(&self, mode: FingerprintMode, status_only: bool) -> build::BuildReport {
        let state = StateDir::new(&self.project);
        let mut cache = Cache::open(&state.cache_db()).unwrap();
        let options = BuildOptions {
            mode,
            status_only,
            ..BuildOptions::default()
        };
        build::build(&state, &mut cache, &self.subject, &options, &NoProgress).unwrap()
    }

    /// Drops the recorded scan listings, so that the next warm run takes the full path.
    fn forget_listings(&self) {
        let state = StateDir::new(&self.project);
        let cache = Cache::open(&state.cache_db()).unwrap();
        cache
            .connection()
            .execute("DELETE FROM listings", [])
            .unwrap();
    }

    /// Drops the listing snapshots, so that the next warm run scans (and stores a new one).
    fn forget_snapshots(&self) {
        let state = StateDir::new(&self.project);
        let cache = Cache::open(&state.cache_db()).unwrap();
        cache
            .connection()
            .execute("DELETE FROM listing_snapshots", [])
            .unwrap();
    }

    fn forget(&self) {
        let _ = std::fs::remove_dir_all(self.project.join(".lamina"));
    }
}

fn engine(c: &mut Criterion) {
    let fixture = Fixture::new();
    let files = PACKAGES * (FILES_PER_PACKAGE + 1);
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);

    group.bench_function(format!("build_cold_{files}_files"), |b| {
        b.iter_batched(
            || fixture.forget(),
            |()| fixture.run(FingerprintMode::Stat, false),
            BatchSize::PerIteration,
        )
    });

    group.bench_function(format!("status_cold_hash_{files}_files"), |b| {
        b.iter_batched(
            || fixture.forget(),
            |()| fixture.run(FingerprintMode::Stat, true),
            BatchSize::PerIteration,
        )
    });

    fixture.run(FingerprintMode::Stat, false);
    group.bench_function(format!("status_warm_stat_rows_{files}_files"), |b| {
        b.iter_batched(
            || fixture.forget_listings(),
            |()| fixture.run(FingerprintMode::Stat, true),
            BatchSize::PerIteration,
        )
    });
    group.bench_function(format!("status_warm_stat_scan_{files}_files"), |b| {
        b.iter_batched(
            || fixture.forget_snapshots(),
            |()| fixture.run(FingerprintMode::Stat, true),
            BatchSize::PerIteration,
        )
    });
    fixture.run(FingerprintMode::Stat, true);
    group.bench_function(format!("status_warm_stat_snapshot_{files}_files"), |b| {
        b.iter(|| {
            let report = fixture.run(FingerprintMode::Stat, true);
            assert_eq!(
                report.stats.snapshots_matched, 1,
                "the snapshot was not used"
            );
            report
        })
    });
    group.bench_function(format!("status_warm_manifests_{files}_files"), |b| {
        b.iter(|| fixture.run(FingerprintMode::Manifests, true))
    });

    let target = fixture
        .subject
        .root
        .join("lib/nodejs/node_modules/pkg-7/lib/f3.js");
    let mut flip = false;
    group.bench_function(format!("rebuild_one_changed_{files}_files"), |b| {
        b.iter(|| {
            flip = !flip;
            std::fs::write(&target, if flip { "changed();\n" } else { "again();\n" }).unwrap();
            fixture.run(FingerprintMode::Stat, false)
        })
    });
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
