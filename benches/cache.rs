//! SQLite cache benchmarks on a layer-sized row set: 75,000 file rows, the size of a real
//! `npm ci` tree (node-large in `../shared/bench/`).
//!
//! `cache_load_75k_rows` is the cache's part of a warm no-change `lamina status`: one query that
//! loads every row of a layer. `cache_commit_75k_rows` replaces every row of a layer in one
//! transaction; `cache_commit_75k_new_rows` writes them into an empty cache, handed over in the
//! order of a hash map as a cold build collects them. `cache_freshness_check_75k_files` is the
//! stat check against the loaded rows: one map lookup and one [`freshness`] verdict per scanned
//! file.
//!
//! Each runs twice: in wall time, and as `cpu/...` in the CPU time of the benchmark thread. The
//! second is the one to quote from a machine shared with other work, where wall time mostly
//! measures how long the thread waited for a core.

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use lamina::cache::{freshness, BuildUpdate, Cache, FileRecord, Owner};
use lamina::scan::Stat;

const ROWS: usize = 75_000;

/// Rows shaped like a node_modules tree: paths of realistic length, spread over packages.
fn rows(clock_ns: i64) -> Vec<(String, FileRecord)> {
    (0..ROWS)
        .map(|index| {
            let path = format!(
                "lib/nodejs/node_modules/package-{:04}/lib/helpers/module-{index:06}.js",
                index / 40
            );
            let stat = Stat {
                size: 1_000 + index as u64,
                mtime_ns: 1_700_000_000_000_000_000 + index as i64,
                ctime_ns: 1_700_000_000_000_000_000 + index as i64,
                inode: 1_000_000 + index as u64,
                mode: 0o100644,
            };
            let content_hash = blake3::hash(path.as_bytes());
            (
                path,
                FileRecord {
                    stat,
                    content_hash,
                    link_target: None,
                    clock_ns,
                },
            )
        })
        .collect()
}

fn cache_load_75k_rows<M: Measurement + 'static>(c: &mut Criterion<M>, prefix: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.db");
    let owner = Owner::Layer("shared".into());
    {
        let mut cache = Cache::open(&path).unwrap();
        let update = BuildUpdate {
            upsert_files: rows(1),
            ..BuildUpdate::default()
        };
        cache.commit_build(&owner, update).unwrap();
        // Another layer's rows, so that the query has to pick this owner's range.
        let other = BuildUpdate {
            upsert_files: rows(2),
            ..BuildUpdate::default()
        };
        cache
            .commit_build(&Owner::Layer("other".into()), other)
            .unwrap();
    }

    // A fresh connection per run, as a `lamina status` process has: the operating system's page
    // cache is warm, the connection's own cache is not. Opening the cache and dropping the map
    // (the caller's part) are not timed.
    c.bench_function(&format!("{prefix}cache_load_75k_rows"), |b| {
        b.iter_batched_ref(
            || Cache::open(&path).unwrap(),
            |cache| {
                let files = cache.load_files(&owner).unwrap();
                assert_eq!(files.len(), ROWS);
                black_box(files)
            },
            BatchSize::PerIteration,
        )
    });
}

fn cache_commit_75k_rows<M: Measurement + 'static>(c: &mut Criterion<M>, prefix: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.db");
    let owner = Owner::Layer("shared".into());
    let mut cache = Cache::open(&path).unwrap();
    let mut clock_ns = 0;

    // Each run replaces all rows of the layer with new ones (a new clock), as a cold build does.
    c.bench_function(&format!("{prefix}cache_commit_75k_rows"), |b| {
        b.iter_batched(
            || {
                clock_ns += 1;
                BuildUpdate {
                    upsert_files: rows(clock_ns),
                    ..BuildUpdate::default()
                }
            },
            |update| cache.commit_build(&owner, update).unwrap(),
            BatchSize::PerIteration,
        )
    });
}

fn cache_commit_75k_new_rows<M: Measurement + 'static>(c: &mut Criterion<M>, prefix: &str) {
    let owner = Owner::Layer("shared".into());
    let in_hash_order = || -> Vec<(String, FileRecord)> {
        let map: std::collections::HashMap<String, FileRecord> = rows(1).into_iter().collect();
        map.into_iter().collect()
    };
    c.bench_function(&format!("{prefix}cache_commit_75k_new_rows"), |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap();
                let cache = Cache::open(&dir.path().join("cache.db")).unwrap();
                let update = BuildUpdate {
                    upsert_files: in_hash_order(),
                    ..BuildUpdate::default()
                };
                (dir, cache, update)
            },
            |(dir, mut cache, update)| {
                cache.commit_build(&owner, update).unwrap();
                (dir, cache)
            },
            BatchSize::PerIteration,
        )
    });
}

fn cache_freshness_check_75k_files<M: Measurement + 'static>(c: &mut Criterion<M>, prefix: &str) {
    let known: std::collections::HashMap<String, FileRecord> = rows(i64::MAX).into_iter().collect();
    // The scan's view: the same paths and stat data, as owned strings in another order.
    let mut scanned: Vec<(String, Stat)> = known
        .iter()
        .map(|(path, record)| (path.clone(), record.stat))
        .collect();
    scanned.sort_by(|a, b| a.0.cmp(&b.0));
    c.bench_function(&format!("{prefix}cache_freshness_check_75k_files"), |b| {
        b.iter(|| {
            let fresh = scanned
                .iter()
                .filter(|(path, stat)| freshness(known.get(path), stat).is_ok())
                .count();
            assert_eq!(fresh, ROWS);
        })
    });
}

fn wall_time(c: &mut Criterion) {
    cache_load_75k_rows(c, "");
    cache_commit_75k_rows(c, "");
    cache_commit_75k_new_rows(c, "");
    cache_freshness_check_75k_files(c, "");
}

fn cpu_time(c: &mut Criterion<ThreadCpuTime>) {
    cache_load_75k_rows(c, "cpu/");
    cache_commit_75k_rows(c, "cpu/");
    cache_commit_75k_new_rows(c, "cpu/");
    cache_freshness_check_75k_files(c, "cpu/");
}

/// The CPU time consumed by the calling thread (`CLOCK_THREAD_CPUTIME_ID`). SQLite runs on the
/// caller's thread, so this is all the work a load or commit does.
struct ThreadCpuTime;

impl ThreadCpuTime {
    fn now() -> Duration {
        let mut spec = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `spec` is a valid, writable timespec for the duration of the call.
        let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut spec) };
        assert_eq!(status, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
        Duration::new(spec.tv_sec as u64, spec.tv_nsec as u32)
    }
}

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        ThreadCpuTime::now()
    }
    fn end(&self, start: Duration) -> Duration {
        ThreadCpuTime::now() - start
    }
    fn add(&self, first: &Duration, second: &Duration) -> Duration {
        *first + *second
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &Milliseconds
    }
}

/// Shows nanosecond values in milliseconds, the scale of these benchmarks.
struct Milliseconds;

impl ValueFormatter for Milliseconds {
    fn scale_values(&self, _typical: f64, values: &mut [f64]) -> &'static str {
        values.iter_mut().for_each(|value| *value /= 1e6);
        "ms (cpu)"
    }
    fn scale_throughputs(&self, _typical: f64, _: &Throughput, values: &mut [f64]) -> &'static str {
        self.scale_values(0.0, values)
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

criterion_group! {
    name = wall;
    config = Criterion::default().sample_size(10);
    targets = wall_time
}
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(ThreadCpuTime).sample_size(10);
    targets = cpu_time
}
criterion_main!(wall, cpu);
