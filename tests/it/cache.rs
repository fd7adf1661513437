//! The SQLite cache: its schema and versions, errors that keep the data, the one-transaction
//! commit, concurrent use, and the racy-clean rule on real files.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use lamina::cache::{
    freshness, scan_clock, BuildUpdate, Cache, CacheError, FileRecord, Owner, StaleReason,
    ZipRecord, SCHEMA_VERSION,
};
use lamina::digest::{self, Entry};
use lamina::scan::{PackageKind, Stat};

use crate::support;

const PACK_FORMAT: &str = "test-pack-format";

fn layer() -> Owner {
    Owner::Layer("shared".into())
}

fn db_path(dir: &Path) -> PathBuf {
    dir.join(".lamina").join("cache.db")
}

/// A file row whose every field depends on `seed`, recorded with scan clock `clock_ns`.
fn record(seed: u64, clock_ns: i64) -> FileRecord {
    FileRecord {
        stat: Stat {
            size: seed,
            mtime_ns: 1_000 + seed as i64,
            ctime_ns: 2_000 + seed as i64,
            inode: 3_000 + seed,
            mode: 0o100644,
        },
        content_hash: blake3::hash(&seed.to_le_bytes()),
        link_target: None,
        clock_ns,
    }
}

/// `count` rows under `lib/nodejs/`, all recorded with `clock_ns`.
fn rows(count: u64, clock_ns: i64) -> Vec<(String, FileRecord)> {
    (0..count)
        .map(|seed| {
            (
                format!("lib/nodejs/file-{seed:05}.js"),
                record(seed, clock_ns),
            )
        })
        .collect()
}

fn entries(tag: &str) -> Vec<Entry> {
    vec![
        Entry::dir("nodejs"),
        Entry::file("nodejs/index.js", 0o644, 5, blake3::hash(tag.as_bytes())),
        Entry::symlink("nodejs/link.js", "index.js"),
    ]
}

/// A zip record for `entries`, with the preimage that commit_build stores.
fn zip_for(entries: &[Entry]) -> (ZipRecord, Vec<u8>) {
    let preimage = digest::preimage(entries, PACK_FORMAT);
    let digest = digest::digest_of_preimage(&preimage);
    let record = ZipRecord {
        digest,
        sha256: *blake3::hash(&preimage).as_bytes(),
        size: 1234,
        entries: entries.len() as u64,
        unzipped_bytes: entries.iter().map(|entry| entry.size).sum(),
        file_name: format!("{}.zip", digest.to_hex()),
    };
    (record, preimage)
}

fn pragma(cache: &Cache, name: &str) -> rusqlite::types::Value {
    cache
        .connection()
        .pragma_query_value(None, name, |row| row.get(0))
        .unwrap()
}

/// The scan's view of a real file, computed as the scan computes it.
fn stat_of(path: &Path) -> Stat {
    let metadata = std::fs::symlink_metadata(path).unwrap();
    Stat {
        size: metadata.len(),
        mtime_ns: metadata.mtime() * 1_000_000_000 + metadata.mtime_nsec(),
        ctime_ns: metadata.ctime() * 1_000_000_000 + metadata.ctime_nsec(),
        inode: metadata.ino(),
        mode: metadata.mode(),
    }
}

#[test]
fn new_cache_is_migrated_and_reopening_changes_nothing() {
    let dir = support::tempdir();
    let path = db_path(dir.path());
    let mut cache = Cache::open(&path).unwrap();
    assert_eq!(pragma(&cache, "user_version"), SCHEMA_VERSION.into());
    assert_eq!(pragma(&cache, "journal_mode"), "wal".to_string().into());
    cache
        .commit_build(
            &layer(),
            BuildUpdate {
                upsert_files: rows(3, 9),
                ..Default::default()
            },
        )
        .unwrap();
    drop(cache);

    // Running the migrations again would fail on the existing tables.
    let cache = Cache::open(&path).unwrap();
    assert_eq!(pragma(&cache, "user_version"), SCHEMA_VERSION.into());
    assert_eq!(cache.load_files(&layer()).unwrap().len(), 3);
}

#[test]
fn cache_from_a_newer_lamina_is_refused_and_kept() {
    let dir = support::tempdir();
    let path = db_path(dir.path());
    let cache = Cache::open(&path).unwrap();
    cache
        .connection()
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(cache);
    let before = std::fs::read(&path).unwrap();

    let error = Cache::open(&path).expect_err("a newer schema must be refused");
    assert!(
        matches!(error, CacheError::NewerSchema { found, known, .. }
            if found == SCHEMA_VERSION + 1 && known == SCHEMA_VERSION),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!("`{}`", path.display())),
        "{message}"
    );
    assert!(message.contains("upgrade lamina"), "{message}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn file_that_is_not_a_database_is_refused_and_kept() {
    let dir = support::tempdir();
    let path = db_path(dir.path());
    let garbage = b"these are the notes of a user, not a database\n".repeat(200);
    support::write(dir.path(), ".lamina/cache.db", &garbage);

    let error = Cache::open(&path).expect_err("garbage must be refused");
    assert!(
        matches!(error, CacheError::NotADatabase { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains(&format!("`{}`", path.display())));
    assert_eq!(std::fs::read(&path).unwrap(), garbage);
}

#[test]
fn damaged_database_is_reported_and_kept() {
    let dir = support::tempdir();
    let path = db_path(dir.path());
    let mut cache = Cache::open(&path).unwrap();
    let update = BuildUpdate {
        upsert_files: rows(2_000, 9),
        ..Default::default()
    };
    cache.commit_build(&layer(), update).unwrap();
    drop(cache); // The last connection checkpoints the WAL into the main file.

    // Overwrite everything after the first pages (the header and the schema) with garbage, so
    // that the file still opens but the rows' pages are nonsense.
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 64 * 1024, "the table should span many pages");
    bytes[16 * 1024..].fill(0xA5);
    std::fs::write(&path, &bytes).unwrap();

    let error = Cache::open(&path).and_then(|cache| cache.load_files(&layer()).map(drop));
    let error = error.expect_err("damage must be reported");
    assert!(matches!(error, CacheError::Damaged { .. }), "{error:?}");
    assert!(error.to_string().contains(&format!("`{}`", path.display())));
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[test]
fn build_round_trips_through_the_cache() {
    let dir = support::tempdir();
    let path = db_path(dir.path());
    let mut files = rows(3, 77);
    files[1].1.link_target = Some("../target.js".into());
    let (zip, preimage) = zip_for(&entries("v1"));
    let package = blake3::hash(b"package.json");
    let update = BuildUpdate {
        upsert_files: files.clone(),
        packages: vec![(PackageKind::Node, package, entries("package").into())],
        zip: Some((zip.clone(), preimage)),
        ..Default::default()
    };
    Cache::open(&path)
        .unwrap()
        .commit_build(&layer(), update)
        .unwrap();

    let cache = Cache::open(&path).unwrap();
    let loaded = cache.load_files(&layer()).unwrap();
    assert_eq!(loaded.len(), files.len());
    for (file, record) in &files {
        assert_eq!(loaded.get(file), Some(record), "{file}");
    }
    assert_eq!(cache.zip(&zip.digest).unwrap(), Some(zip.clone()));
    assert_eq!(cache.latest_build(&layer()).unwrap(), Some(zip.clone()));
    assert_eq!(cache.zip_entries(&zip.digest).unwrap(), Some(entries("v1")));
    assert_eq!(
        cache.package_files(PackageKind::Node, &package).unwrap(),
        Some(entries("package"))
    );
}

#[test]
fn lookups_of_unknown_keys_are_misses() {
    let dir = support::tempdir();
    let cache = Cache::open(&db_path(dir.path())).unwrap();
    let (zip, _) = zip_for(&entries("never built"));
    assert!(cache.load_files(&layer()).unwrap().is_empty());
    assert_eq!(cache.zip(&zip.digest).unwrap(), None);
    assert_eq!(cache.zip_entries(&zip.digest).unwrap(), None);
    assert_eq!(cache.latest_build(&layer()).unwrap(), None);
    assert_eq!(
        cache
            .package_files(PackageKind::Node, &blake3::hash(b"none"))
            .unwrap(),
        None
    );
}

#[test]
fn owners_and_package_kinds_do_not_share_rows() {
    let dir = support::tempdir();
    let mut cache = Cache::open(&db_path(dir.path())).unwrap();
    let function = Owner::Function("shared".into());
    let fingerprint = blake3::hash(b"same fingerprint");
    let update = BuildUpdate {
        upsert_files: rows(2, 1),
        packages: vec![(PackageKind::Node, fingerprint, entries("node").into())],
        ..Default::default()
    };
    cache.commit_build(&layer(), update).unwrap();
    let update = BuildUpdate {
        upsert_files: rows(5, 2),
        ..Default::default()
    };
    cache.commit_build(&function, update).unwrap();

    assert_eq!(cache.load_files(&layer()).unwrap().len(), 2);
    assert_eq!(cache.load_files(&function).unwrap().len(), 5);
    assert_eq!(
        cache
            .package_files(PackageKind::Python, &fingerprint)
            .unwrap(),
        None
    );
}

#[test]
fn failed_commit_leaves_the_previous_state() {
    let dir = support::tempdir();
    let path = db_path(dir.path());
    let mut cache = Cache::open(&path).unwrap();
    let (first_zip, first_preimage) = zip_for(&entries("v1"));
    let first = BuildUpdate {
        upsert_files: rows(3, 1),
        zip: Some((first_zip.clone(), first_preimage)),
        ..Default::default()
    };
    cache.commit_build(&layer(), first).unwrap();

    // The file rows, removals and package lists are written before the zip, whose name the
    // schema refuses: the commit fails after most of its statements ran.
    let (mut bad_zip, bad_preimage) = zip_for(&entries("v2"));
    bad_zip.file_name = "../outside.zip".into();
    let failing = BuildUpdate {
        upsert_files: rows(10, 2),
        remove_files: vec!["lib/nodejs/file-00000.js".into()],
        packages: vec![(
            PackageKind::Node,
            blake3::hash(b"p"),
            entries("package").into(),
        )],
        zip: Some((bad_zip.clone(), bad_preimage)),
        ..Default::default()
    };
    let error = cache.commit_build(&layer(), failing).unwrap_err();
    assert!(matches!(error, CacheError::Sql { .. }), "{error:?}");

    for cache in [cache, Cache::open(&path).unwrap()] {
        let loaded = cache.load_files(&layer()).unwrap();
        assert_eq!(loaded.len(), 3);
        assert!(loaded.values().all(|record| record.clock_ns == 1));
        assert_eq!(
            cache.latest_build(&layer()).unwrap(),
            Some(first_zip.clone())
        );
        assert_eq!(cache.zip(&bad_zip.digest).unwrap(), None);
        assert_eq!(
            cache
                .package_files(PackageKind::Node, &blake3::hash(b"p"))
                .unwrap(),
            None
        );
    }
}

#[test]
fn dropped_transaction_writes_nothing() {
    let dir = support::tempdir();
    let path = db_path(dir.path());
    let mut cache = Cache::open(&path).unwrap();
    let transaction = cache.transaction().unwrap();
    transaction
        .execute(
            "INSERT INTO files VALUES ('layer:x', 'a.js', 1, 1, 1, 1, 33188, zeroblob(32), NULL, 2)",
            [],
        )
        .unwrap();
    drop(transaction);
    drop(cache);

    let cache = Cache::open(&path).unwrap();
    let count: i64 = cache
        .connection()
        .query_row("SELECT count(*) FROM files", [], |row| row.get(0))
        .unwrap();
    assert_eq!(count, 0);
}

#[test]
fn removed_rows_are_gone_and_upserts_replace() {
    let dir = support::tempdir();
    let path = db_path(dir.path());
    let mut cache = Cache::open(&path).unwrap();
    cache
        .commit_build(
            &layer(),
            BuildUpdate {
                upsert_files: rows(4, 1),
                ..Default::default()
            },
        )
        .unwrap();

    let changed = ("lib/nodejs/file-00001.js".to_string(), record(100, 2));
    let update = BuildUpdate {
        upsert_files: vec![changed.clone()],
        remove_files: vec![
            "lib/nodejs/file-00000.js".into(),
            "lib/nodejs/file-00003.js".into(),
        ],
        ..Default::default()
    };
    cache.commit_build(&layer(), update).unwrap();

    let loaded = Cache::open(&path).unwrap().load_files(&layer()).unwrap();
    let mut paths: Vec<_> = loaded.keys().cloned().collect();
    paths.sort();
    assert_eq!(
        paths,
        ["lib/nodejs/file-00001.js", "lib/nodejs/file-00002.js"]
    );
    assert_eq!(loaded[&changed.0], changed.1);
}

#[test]
fn rebuilding_a_known_zip_keeps_one_record_and_moves_the_build() {
    let dir = support::tempdir();
    let mut cache = Cache::open(&db_path(dir.path())).unwrap();
    let (one, one_preimage) = zip_for(&entries("one"));
    let (two, two_preimage) = zip_for(&entries("two"));
    for (zip, preimage) in [
        (&one, &one_preimage),
        (&two, &two_preimage),
        (&one, &one_preimage),
    ] {
        let update = BuildUpdate {
            zip: Some((zip.clone(), preimage.clone())),
            ..Default::default()
        };
        cache.commit_build(&layer(), update).unwrap();
    }
    assert_eq!(cache.latest_build(&layer()).unwrap(), Some(one.clone()));
    let count: i64 = cache
        .connection()
        .query_row("SELECT count(*) FROM zips", [], |row| row.get(0))
        .unwrap();
    assert_eq!(count, 2);
}

#[test]
fn package_lists_come_back_sorted_and_reuse_refreshes_them() {
    let dir = support::tempdir();
    let mut cache = Cache::open(&db_path(dir.path())).unwrap();
    let fingerprint = blake3::hash(b"{\"name\":\"left-pad\"}");
    let mut listed = entries("left-pad");
    listed.reverse();
    let update = BuildUpdate {
        packages: vec![(PackageKind::Python, fingerprint, listed.into())],
        ..Default::default()
    };
    cache.commit_build(&layer(), update).unwrap();
    assert_eq!(
        cache
            .package_files(PackageKind::Python, &fingerprint)
            .unwrap(),
        Some(entries("left-pad"))
    );

    let last_used = "SELECT last_used_at FROM packages";
    cache
        .connection()
        .execute("UPDATE packages SET last_used_at = 0", [])
        .unwrap();
    let update = BuildUpdate {
        used_packages: vec![(PackageKind::Python, fingerprint)],
        ..Default::default()
    };
    cache.commit_build(&layer(), update).unwrap();
    let refreshed: i64 = cache
        .connection()
        .query_row(last_used, [], |row| row.get(0))
        .unwrap();
    assert!(refreshed > 0);
}

#[test]
fn damaged_entry_list_is_an_error_not_wrong_data() {
    let dir = support::tempdir();
    let mut cache = Cache::open(&db_path(dir.path())).unwrap();
    let (zip, preimage) = zip_for(&entries("v1"));
    let update = BuildUpdate {
        zip: Some((zip.clone(), preimage.clone())),
        ..Default::default()
    };
    cache.commit_build(&layer(), update).unwrap();

    // One flipped bit in a content hash still parses, into a wrong entry list.
    let mut flipped = preimage.clone();
    *flipped.last_mut().unwrap() ^= 1;
    let truncated = preimage[..preimage.len() - 3].to_vec();
    for damaged in [flipped, truncated] {
        cache
            .connection()
            .execute("UPDATE zips SET preimage = ?1", [&damaged])
            .unwrap();
        let error = cache.zip_entries(&zip.digest).unwrap_err();
        assert!(
            matches!(error, CacheError::DamagedEntryList { digest, .. } if digest == zip.digest)
        );
    }

    // Recording the zip again, as a build that finds it does, repairs the list.
    let update = BuildUpdate {
        zip: Some((zip.clone(), preimage)),
        ..Default::default()
    };
    cache.commit_build(&layer(), update).unwrap();
    assert_eq!(cache.zip_entries(&zip.digest).unwrap(), Some(entries("v1")));
}

#[test]
fn damaged_package_list_is_an_error_not_wrong_data() {
    let dir = support::tempdir();
    let mut cache = Cache::open(&db_path(dir.path())).unwrap();
    let fingerprint = blake3::hash(b"package.json");
    let update = BuildUpdate {
        packages: vec![(PackageKind::Node, fingerprint, entries("package").into())],
        ..Default::default()
    };
    cache.commit_build(&layer(), update).unwrap();
    assert!(cache
        .has_package_files(PackageKind::Node, &fingerprint)
        .unwrap());
    let other = blake3::hash(b"other/package.json");
    assert!(!cache.has_package_files(PackageKind::Node, &other).unwrap());
    let mut stored: Vec<u8> = cache
        .connection()
        .query_row("SELECT entries FROM packages", [], |row| row.get(0))
        .unwrap();
    *stored.last_mut().unwrap() ^= 1;
    cache
        .connection()
        .execute("UPDATE packages SET entries = ?1", [&stored])
        .unwrap();

    let error = cache
        .package_files(PackageKind::Node, &fingerprint)
        .unwrap_err();
    assert!(
        matches!(error, CacheError::DamagedPackageList { .. }),
        "{error:?}"
    );
    let error = cache
        .has_package_files(PackageKind::Node, &fingerprint)
        .unwrap_err();
    assert!(
        matches!(error, CacheError::DamagedPackageList { .. }),
        "{error:?}"
    );
}

#[test]
fn readers_keep_their_snapshot_while_a_writer_commits() {
    let dir = support::tempdir();
    let path = db_path(dir.path());
    let mut writer = Cache::open(&path).unwrap();
    writer
        .commit_build(
            &layer(),
            BuildUpdate {
                upsert_files: rows(50, 1),
                ..Default::default()
            },
        )
        .unwrap();

    // An open read transaction: without WAL, the writer could not commit until it ends.
    let reader = Cache::open(&path).unwrap();
    reader.connection().execute_batch("BEGIN").unwrap();
    assert_eq!(reader.load_files(&layer()).unwrap().len(), 50);

    writer
        .commit_build(
            &layer(),
            BuildUpdate {
                upsert_files: rows(80, 2),
                ..Default::default()
            },
        )
        .unwrap();
    let snapshot = reader.load_files(&layer()).unwrap();
    assert_eq!(snapshot.len(), 50);
    assert!(snapshot.values().all(|record| record.clock_ns == 1));

    reader.connection().execute_batch("COMMIT").unwrap();
    assert_eq!(reader.load_files(&layer()).unwrap().len(), 80);
}

#[test]
fn writer_waits_for_another_writers_transaction() {
    let dir = support::tempdir();
    let path = db_path(dir.path());
    let mut holder = Cache::open(&path).unwrap();
    let transaction = holder.transaction().unwrap();

    let waiter = {
        let path = path.clone();
        std::thread::spawn(move || {
            let update = BuildUpdate {
                upsert_files: rows(10, 2),
                ..Default::default()
            };
            Cache::open(&path).unwrap().commit_build(&layer(), update)
        })
    };
    // Long enough for the other thread to find the database locked; without a busy timeout it
    // fails at once instead of waiting for this commit.
    std::thread::sleep(Duration::from_millis(300));
    transaction.commit().unwrap();

    waiter
        .join()
        .unwrap()
        .expect("the second writer should have waited for the lock");
    assert_eq!(holder.load_files(&layer()).unwrap().len(), 10);
}

#[test]
fn concurrent_readers_and_writers_see_whole_commits() {
    const ROWS: u64 = 2_000;
    const COMMITS: i64 = 15;
    let dir = support::tempdir();
    let path = db_path(dir.path());
    let mut cache = Cache::open(&path).unwrap();
    cache
        .commit_build(
            &layer(),
            BuildUpdate {
                upsert_files: rows(ROWS, 0),
                ..Default::default()
            },
        )
        .unwrap();
    drop(cache);

    // Two writers contend for the write lock (the busy timeout makes the loser wait) while two
    // readers load the rows; every load must show one generation of rows, whole.
    let start = Arc::new(Barrier::new(4));
    let writers = (0..2).map(|writer| {
        let (path, start) = (path.clone(), start.clone());
        std::thread::spawn(move || {
            let mut cache = Cache::open(&path).unwrap();
            start.wait();
            for commit in 1..=COMMITS {
                let clock = commit * 2 + writer;
                let update = BuildUpdate {
                    upsert_files: rows(ROWS, clock),
                    ..Default::default()
                };
                cache.commit_build(&layer(), update).unwrap();
            }
        })
    });
    let writers: Vec<_> = writers.collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (path, start) = (path.clone(), start.clone());
            std::thread::spawn(move || {
                let cache = Cache::open(&path).unwrap();
                start.wait();
                for _ in 0..COMMITS {
                    let loaded = cache.load_files(&layer()).unwrap();
                    assert_eq!(loaded.len() as u64, ROWS);
                    let clock = loaded.values().next().unwrap().clock_ns;
                    assert!(loaded.values().all(|record| record.clock_ns == clock));
                }
            })
        })
        .collect();
    for thread in writers.into_iter().chain(readers) {
        thread.join().expect("a reader or writer failed");
    }
}

/// The environment variable that turns [`killed_writer_child`] from a no-op into a writer.
const CHILD_DB: &str = "LAMINA_TEST_CACHE_CHILD_DB";
const CHILD_ROWS: u64 = 3_000;

#[test]
fn killed_writer_leaves_a_whole_commit() {
    let dir = support::tempdir();
    let path = db_path(dir.path());
    Cache::open(&path).unwrap();

    // The child is this test binary running the ignored test below, which commits one
    // generation after another until it is killed, most likely in the middle of a commit.
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "cache::killed_writer_child",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_DB, &path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The pipe stays open until the child is dead, so that it dies in its loop and not of a
    // closed stdout.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut commits = 0;
    while commits < 3 {
        let line = lines
            .next()
            .expect("the child stopped before three commits")
            .unwrap();
        commits += usize::from(line.starts_with("committed "));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(lines);

    let cache = Cache::open(&path).unwrap();
    let loaded = cache.load_files(&layer()).unwrap();
    assert_eq!(loaded.len() as u64, CHILD_ROWS);
    let clock = loaded.values().next().unwrap().clock_ns;
    assert!(clock >= 3);
    assert!(loaded.values().all(|record| record.clock_ns == clock));
    let (zip, _) = zip_for(&entries(&format!("generation {clock}")));
    assert_eq!(cache.latest_build(&layer()).unwrap(), Some(zip));
}

#[test]
#[ignore = "run by killed_writer_leaves_a_whole_commit as a child process"]
fn killed_writer_child() {
    let Some(path) = std::env::var_os(CHILD_DB) else {
        return;
    };
    let mut cache = Cache::open(Path::new(&path)).unwrap();
    for generation in 1.. {
        let update = BuildUpdate {
            upsert_files: rows(CHILD_ROWS, generation),
            zip: Some(zip_for(&entries(&format!("generation {generation}")))),
            ..Default::default()
        };
        cache.commit_build(&layer(), update).unwrap();
        println!("committed {generation}");
    }
}

#[test]
fn file_written_after_the_scan_clock_is_racy_until_the_next_scan() {
    let dir = support::tempdir();
    let state = dir.path().join(".lamina");
    let file = support::write(dir.path(), "lib/nodejs/a.js", b"first");

    // Written after the clock was read: the kernel stamps it at or after the clock, so the row
    // recorded by this scan must not be trusted, even though its stat data will match.
    let clock = scan_clock(&state).unwrap();
    std::fs::write(&file, b"other").unwrap();
    let stat = stat_of(&file);
    let recorded = FileRecord {
        stat,
        content_hash: blake3::hash(b"other"),
        link_target: None,
        clock_ns: clock,
    };
    assert_eq!(freshness(Some(&recorded), &stat), Err(StaleReason::Racy));

    // The next scan, a timestamp tick later, records it again and may then trust it.
    std::thread::sleep(Duration::from_millis(50));
    let later = FileRecord {
        clock_ns: scan_clock(&state).unwrap(),
        ..recorded.clone()
    };
    assert_eq!(freshness(Some(&later), &stat_of(&file)), Ok(()));
}

#[test]
fn real_edits_give_their_stale_reasons() {
    let dir = support::tempdir();
    let file = support::write(dir.path(), "a.js", b"12345");
    support::age_tree(dir.path());
    let clock = scan_clock(&dir.path().join(".lamina")).unwrap();
    let recorded = FileRecord {
        stat: stat_of(&file),
        content_hash: blake3::hash(b"12345"),
        link_target: None,
        clock_ns: clock,
    };
    assert_eq!(freshness(Some(&recorded), &stat_of(&file)), Ok(()));
    assert_eq!(freshness(None, &stat_of(&file)), Err(StaleReason::New));

    let mut permissions = std::fs::metadata(&file).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&file, permissions).unwrap();
    assert_eq!(
        freshness(Some(&recorded), &stat_of(&file)),
        Err(StaleReason::Ctime)
    );

    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    let times = std::fs::FileTimes::new().set_modified(an_hour_ago);
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_times(times)
        .unwrap();
    assert_eq!(
        freshness(Some(&recorded), &stat_of(&file)),
        Err(StaleReason::Mtime)
    );

    std::fs::write(&file, b"123456").unwrap();
    assert_eq!(
        freshness(Some(&recorded), &stat_of(&file)),
        Err(StaleReason::Size)
    );
}
