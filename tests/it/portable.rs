//! The portable cache without S3: `lamina cache export` on one machine and `import` on another,
//! damaged imports, a shared cache in a folder, and `stats`, `verify` and `gc`.

use std::io::Read;
use std::path::Path;

use serde_json::Value;

use crate::support::portable::{
    flip_a_byte, stderr, Machine, FILES, FILES_OUTSIDE_PACKAGES, PACKAGES,
};
use crate::support::{age_file, built_zips, tempdir, write};

fn export(machine: &Machine, file: &Path) -> Value {
    machine.json(&["cache", "export", file.to_str().unwrap()])
}

fn import(machine: &Machine, file: &Path) -> (Value, String) {
    let output = machine.run(&["cache", "import", file.to_str().unwrap(), "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    (
        serde_json::from_slice(&output.stdout).unwrap(),
        stderr(&output),
    )
}

#[test]
fn export_on_one_machine_and_import_on_another_gives_the_same_zip_without_packing() {
    let a = Machine::first();
    let (built, stats) = a.build(&[]);
    assert_eq!(built["status"], "built");
    assert!(stats["entries_compressed"].as_u64().unwrap() > 0);
    let dir = tempdir();
    let file = dir.path().join("ci-cache.tar");
    let exported = export(&a, &file);
    assert_eq!(exported["zips"], 1);
    assert_eq!(exported["packages"], PACKAGES);

    let b = Machine::copy_of(&a);
    let (imported, warnings) = import(&b, &file);
    assert_eq!(imported["zips_imported"], 1, "{warnings}");
    assert_eq!(imported["dropped"], Value::Array(vec![]));
    let (layer, stats) = b.build(&[]);
    assert_eq!(layer["status"], "cached");
    assert_eq!(stats["entries_compressed"], 0);
    assert_eq!(layer["digest"], built["digest"]);
    assert_eq!(layer["sha256"], built["sha256"]);
    // Stat mode on a fresh checkout reads every file once; it just packs nothing.
    assert_eq!(stats["files_hashed"], FILES);
}

#[test]
fn manifests_mode_after_an_import_reads_only_package_manifests() {
    let a = Machine::first();
    a.build(&[]);
    let dir = tempdir();
    let file = dir.path().join("cache.tar");
    export(&a, &file);

    let b = Machine::copy_of(&a);
    import(&b, &file);
    let (layer, stats) = b.build(&["--fingerprint", "manifests"]);
    assert_eq!(layer["status"], "cached");
    assert_eq!(stats["entries_compressed"], 0);
    assert_eq!(stats["files_hashed"], FILES_OUTSIDE_PACKAGES + PACKAGES);

    // The manifests' stat rows came back with the lists: a second run reads nothing.
    let (_, stats) = b.build(&["--fingerprint", "manifests"]);
    assert_eq!(stats["files_hashed"], 0);
}

#[test]
fn a_package_whose_copies_differ_stays_marked_through_verify_export_and_import() {
    let a = Machine::first();
    let (pristine, _) = a.build(&[]);
    let b = Machine::copy_of(&a);
    b.build(&[]);
    let dir = tempdir();
    let from_b = dir.path().join("b.tar");
    export(&b, &from_b);

    // An edit inside node_modules, as patch-package makes: package.json stays as it was.
    write(
        &a.layer(),
        "lib/nodejs/node_modules/left-pad/index.js",
        b"module.exports = 'patched';\n",
    );
    let (patched, _) = a.build(&[]);
    assert_ne!(patched["digest"], pristine["digest"]);

    // The conflict mark is not damage, and the other checkout's list does not replace it.
    let verified = a.run(&["cache", "verify"]);
    assert!(verified.status.success(), "{}", stderr(&verified));
    let (imported, warnings) = import(&a, &from_b);
    assert_eq!(imported["dropped"], Value::Array(vec![]), "{warnings}");
    let (manifests, _) = a.build(&["--fingerprint", "manifests"]);
    assert_eq!(manifests["digest"], patched["digest"]);

    // The mark travels, and where it arrives the package is walked: still the right digest.
    let from_a = dir.path().join("a.tar");
    export(&a, &from_a);
    let (imported, warnings) = import(&b, &from_a);
    assert_eq!(imported["dropped"], Value::Array(vec![]), "{warnings}");
    let (manifests, _) = b.build(&["--fingerprint", "manifests"]);
    assert_eq!(manifests["digest"], pristine["digest"]);
}

/// Rewrites the export at `file` with `damage` applied to the member whose name passes `pick`.
fn damage_member(file: &Path, pick: impl Fn(&str) -> bool, damage: impl Fn(&mut Vec<u8>)) {
    let mut archive = tar::Archive::new(std::fs::File::open(file).unwrap());
    let mut members = Vec::new();
    for member in archive.entries().unwrap() {
        let mut member = member.unwrap();
        let name = member.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        member.read_to_end(&mut bytes).unwrap();
        if pick(&name) {
            damage(&mut bytes);
        }
        members.push((name, bytes));
    }
    let mut builder = tar::Builder::new(std::fs::File::create(file).unwrap());
    for (name, bytes) in members {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, &name, bytes.as_slice())
            .unwrap();
    }
    builder.finish().unwrap();
}

#[test]
fn an_imported_zip_that_does_not_verify_is_dropped_with_a_warning_and_rebuilt() {
    let a = Machine::first();
    let (built, _) = a.build(&[]);
    let dir = tempdir();
    let file = dir.path().join("cache.tar");
    export(&a, &file);
    damage_member(
        &file,
        |name| name.ends_with(".zip"),
        |bytes| {
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0xff;
        },
    );

    let b = Machine::copy_of(&a);
    let (imported, warnings) = import(&b, &file);
    assert_eq!(imported["zips_imported"], 0);
    let dropped = imported["dropped"].as_array().unwrap();
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    let digest = built["digest"].as_str().unwrap();
    assert_eq!(dropped[0]["item"], format!("zip {digest}"));
    assert!(warnings.contains(&format!("zip {digest}")), "{warnings}");
    assert!(warnings.contains("SHA-256"), "{warnings}");

    let (layer, stats) = b.build(&[]);
    assert_eq!(layer["status"], "built");
    assert!(stats["entries_compressed"].as_u64().unwrap() > 0);
    assert_eq!(layer["sha256"], built["sha256"]);
}

#[test]
fn a_zip_whose_header_and_bytes_agree_but_whose_content_does_not_is_dropped() {
    // A consistent forgery: the zip replaced by another zip and the header's SHA-256 and size
    // updated to match. Only the content check against the digest's entries can tell.
    let a = Machine::first();
    let (built, _) = a.build(&[]);
    let dir = tempdir();
    let file = dir.path().join("cache.tar");
    export(&a, &file);
    let other = Machine::first();
    write(
        &other.layer(),
        "opt/config/settings.json",
        br#"{"currency":"USD"}"#,
    );
    let (forged, _) = other.build(&[]);
    let forged_zip = std::fs::read(forged["zip"].as_str().unwrap()).unwrap();
    let forged_sha = forged["sha256"].as_str().unwrap().to_owned();
    let real_sha = built["sha256"].as_str().unwrap().to_owned();
    let real_size = std::fs::metadata(built["zip"].as_str().unwrap())
        .unwrap()
        .len();
    damage_member(
        &file,
        |name| name.ends_with(".zip"),
        |bytes| *bytes = forged_zip.clone(),
    );
    damage_member(
        &file,
        |name| name == "lamina-cache.json",
        |bytes| {
            let text = String::from_utf8(bytes.clone()).unwrap();
            let text = text.replace(&real_sha, &forged_sha).replace(
                &format!("\"size\": {real_size}"),
                &format!("\"size\": {}", forged_zip.len()),
            );
            *bytes = text.into_bytes();
        },
    );

    let b = Machine::copy_of(&a);
    let (imported, warnings) = import(&b, &file);
    assert_eq!(imported["zips_imported"], 0, "{warnings}");
    assert!(warnings.contains("settings.json"), "{warnings}");
    let (layer, _) = b.build(&[]);
    assert_eq!(layer["status"], "built");
    assert_eq!(layer["sha256"], built["sha256"]);
}

#[test]
fn an_imported_package_list_that_does_not_verify_is_dropped() {
    let a = Machine::first();
    a.build(&[]);
    let dir = tempdir();
    let file = dir.path().join("cache.tar");
    export(&a, &file);
    damage_member(
        &file,
        |name| name.starts_with("packages/"),
        |bytes| {
            let last = bytes.len() - 1;
            bytes[last] ^= 0x01;
        },
    );

    let b = Machine::copy_of(&a);
    let (imported, warnings) = import(&b, &file);
    assert_eq!(imported["packages_imported"], 0);
    assert_eq!(
        imported["dropped"].as_array().unwrap().len() as u64,
        PACKAGES
    );
    assert!(warnings.contains("package list node"), "{warnings}");
    // Without lists, manifests mode walks and hashes every package.
    let (_, stats) = b.build(&["--fingerprint", "manifests"]);
    assert_eq!(stats["files_hashed"], FILES);
}

#[test]
fn importing_a_file_that_is_not_an_export_fails_and_names_it() {
    let machine = Machine::first();
    let dir = tempdir();
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, b"not a tar at all").unwrap();
    let output = machine.run(&["cache", "import", file.to_str().unwrap()]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("is not a lamina cache export"),
        "{message}"
    );
    assert!(message.contains("notes.txt"), "{message}");
}

#[test]
fn a_shared_cache_in_a_folder_serves_a_fresh_checkout() {
    let shared = tempdir();
    let mut a = Machine::first();
    a.set_env(
        "LAMINA_REMOTE_CACHE",
        format!("file://{}", shared.path().display()),
    );
    let (built, _) = a.build(&[]);

    let b = Machine::copy_of(&a);
    let (layer, stats) = b.build(&["--fingerprint", "manifests"]);
    assert_eq!(layer["status"], "cached");
    assert_eq!(stats["entries_compressed"], 0);
    assert_eq!(stats["files_hashed"], FILES_OUTSIDE_PACKAGES + PACKAGES);
    assert_eq!(layer["sha256"], built["sha256"]);

    let last = b.json(&["cache", "stats"])["last_run"].clone();
    assert_eq!(last["counters"]["remote_zip_hits"], 1);
    assert_eq!(last["counters"]["remote_list_hits"], PACKAGES);
}

#[test]
fn stats_show_the_entries_and_the_hit_rates_of_the_last_run() {
    let machine = Machine::first();
    let before = machine.json(&["cache", "stats"]);
    assert_eq!(before["last_run"], Value::Null);

    machine.build(&[]);
    machine.build(&[]);
    let stats = machine.json(&["cache", "stats"]);
    assert_eq!(stats["entries"]["zips"], 1);
    assert_eq!(stats["entries"]["packages"], PACKAGES);
    assert_eq!(stats["entries"]["files"], FILES);
    let last = &stats["last_run"];
    assert_eq!(last["counters"]["builds"], 1, "only the last run counts");
    assert_eq!(last["counters"]["files_hashed"], 0);
    assert_eq!(last["hit_rates"]["file_hashes"], 1.0);
    assert_eq!(last["hit_rates"]["zips"], 1.0);
}

#[test]
fn verify_reports_a_damaged_zip_and_exits_non_zero_then_repair_removes_it() {
    let machine = Machine::first();
    let (built, _) = machine.build(&[]);
    let zip = built["zip"].as_str().unwrap().to_owned();
    assert!(machine.run(&["cache", "verify"]).status.success());

    flip_a_byte(Path::new(&zip));
    let output = machine.run(&["cache", "verify", "--json"]);
    assert!(!output.status.success());
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let damage = report["damage"].as_array().unwrap();
    assert_eq!(damage.len(), 1);
    assert_eq!(
        damage[0]["item"],
        format!("zip {}", built["digest"].as_str().unwrap())
    );
    assert!(stderr(&output).contains("--repair"), "{}", stderr(&output));

    machine.json(&["cache", "verify", "--repair"]);
    assert!(!Path::new(&zip).exists());
    let (layer, _) = machine.build(&[]);
    assert_eq!(layer["status"], "built");
    assert_eq!(layer["sha256"], built["sha256"]);
    assert!(machine.run(&["cache", "verify", "--deep"]).status.success());
}

#[test]
fn verify_says_how_many_recorded_zips_are_missing_without_calling_them_damage() {
    let machine = Machine::first();
    let (built, _) = machine.build(&[]);
    std::fs::remove_file(built["zip"].as_str().unwrap()).unwrap();
    let output = machine.run(&["cache", "verify"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("0 damaged; 1 recorded zip(s) missing from the build folder"),
        "{text}"
    );
    let stats = machine.run(&["cache", "stats"]);
    let text = String::from_utf8_lossy(&stats.stdout);
    assert!(
        text.contains("1 missing from .lamina/build or not of their recorded size"),
        "{text}"
    );
}

#[test]
fn verify_reports_a_damaged_package_list() {
    let machine = Machine::first();
    machine.build(&[]);
    let db = rusqlite::Connection::open(machine.root().join(".lamina/cache.db")).unwrap();
    db.execute(
        "UPDATE packages SET entries = entries || x'00'
         WHERE rowid = (SELECT min(rowid) FROM packages)",
        [],
    )
    .unwrap();
    drop(db);
    let output = machine.run(&["cache", "verify", "--json"]);
    assert!(!output.status.success());
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let item = report["damage"][0]["item"].as_str().unwrap();
    assert!(item.starts_with("package list node "), "{item}");
}

fn zip_names(machine: &Machine) -> Vec<String> {
    built_zips(machine.root())
}

#[test]
fn gc_keeps_recent_builds_and_published_versions_and_drops_the_rest() {
    let machine = Machine::first();
    let settings = "opt/config/settings.json";
    let digest_of = |layer: &Value| format!("{}.zip", layer["digest"].as_str().unwrap());

    // Version 1 is published to the local registry; 2 to 4 are only built.
    let (first, _) = machine.build(&[]);
    machine.json(&["push", "--yes"]);
    write(
        &machine.layer(),
        "lib/nodejs/node_modules/extra/package.json",
        br#"{"name":"extra"}"#,
    );
    write(&machine.layer(), settings, b"{\"v\":2}");
    let (second, _) = machine.build(&[]);
    std::fs::remove_dir_all(machine.layer().join("lib/nodejs/node_modules/extra")).unwrap();
    write(&machine.layer(), settings, b"{\"v\":3}");
    let (third, _) = machine.build(&[]);
    write(&machine.layer(), settings, b"{\"v\":4}");
    let (fourth, _) = machine.build(&[]);
    assert_eq!(zip_names(&machine).len(), 4);
    let packages_before = machine.json(&["cache", "stats"])["entries"]["packages"].clone();
    assert_eq!(packages_before, PACKAGES + 1);

    // A killed build's temporary file, and one a running build is writing now.
    let build_dir = machine.root().join(".lamina/build");
    let over_an_hour = std::time::Duration::from_secs(3700);
    let stale = write(&build_dir, ".lamina-tmp-killed.zip", b"half a zip");
    age_file(&stale, over_an_hour);
    let running = write(&build_dir, ".lamina-tmp-running.zip", b"being written");
    // Zips no row names: one a killed build renamed into place an hour ago, and one a running
    // build has just renamed and not yet recorded.
    let orphan = write(&build_dir, &format!("{}.zip", "a".repeat(64)), b"old zip");
    age_file(&orphan, over_an_hour);
    let unrecorded = write(&build_dir, &format!("{}.zip", "b".repeat(64)), b"new zip");

    let dry = machine.json(&["cache", "gc", "--keep-last", "2", "--dry-run"]);
    assert_eq!(dry["zips_removed"], 1);
    assert_eq!(
        dry["files_removed"], 3,
        "the dropped zip, the stale temporary file and the old unrecorded zip"
    );
    assert_eq!(zip_names(&machine).len(), 6, "a dry run removes nothing");

    let report = machine.json(&["cache", "gc", "--keep-last", "2"]);
    assert_eq!(report["zips_removed"], 1);
    assert_eq!(report["zips_kept"], 3);
    assert_eq!(
        report["packages_removed"], 1,
        "the list of `extra`, only in build 2"
    );
    assert!(!stale.exists(), "a stale temporary file is removed");
    assert!(
        running.exists(),
        "a temporary file being written is left alone"
    );
    assert_eq!(report["files_removed"], 3);
    assert!(!orphan.exists(), "an old zip no row names is removed");
    assert!(
        unrecorded.exists(),
        "a young zip no row names may be a running build's: left alone"
    );
    std::fs::remove_file(&running).unwrap();
    std::fs::remove_file(&unrecorded).unwrap();
    let mut expected = vec![digest_of(&first), digest_of(&third), digest_of(&fourth)];
    expected.sort();
    assert_eq!(zip_names(&machine), expected);
    assert!(!zip_names(&machine).contains(&digest_of(&second)));
    assert_eq!(
        machine.json(&["cache", "stats"])["entries"]["zips"],
        3,
        "the dropped zip's row is gone too"
    );

    // What was kept still works: the current build is cached, and verify finds nothing wrong.
    let (again, _) = machine.build(&[]);
    assert_eq!(again["status"], "cached");
    assert!(machine.run(&["cache", "verify"]).status.success());
}

#[test]
fn gc_shrinks_the_cache_file_by_the_rows_it_drops() {
    let machine = Machine::first();
    // Enough entries that each build's preimage spans many pages of the database.
    for index in 0..400 {
        let path = format!("opt/data/file-{index:03}.txt");
        write(&machine.layer(), &path, index.to_string().as_bytes());
    }
    let mut digests = Vec::new();
    for version in 0..6 {
        let content = format!("{{\"v\":{version}}}");
        write(
            &machine.layer(),
            "opt/config/settings.json",
            content.as_bytes(),
        );
        let (layer, _) = machine.build(&[]);
        digests.push(format!("{}.zip", layer["digest"].as_str().unwrap()));
    }
    let db = machine.root().join(".lamina/cache.db");
    let pragma = |name: &str| -> i64 {
        let connection = rusqlite::Connection::open(&db).unwrap();
        connection
            .query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
            .unwrap()
    };
    let before = pragma("page_count");
    let size_before = std::fs::metadata(&db).unwrap().len();

    // The six builds take well under a second each, so most share a `built_at` second: the
    // two kept must still be the last two.
    let report = machine.json(&["cache", "gc", "--keep-last", "2"]);
    assert_eq!(report["zips_removed"], 4, "{report}");
    let mut newest = digests[4..].to_vec();
    newest.sort();
    assert_eq!(zip_names(&machine), newest);
    assert_eq!(
        pragma("freelist_count"),
        0,
        "the dropped rows' pages are given back"
    );
    let after = pragma("page_count");
    assert!(
        after * 3 < before * 2,
        "four of six preimages dropped: {before} pages before, {after} after"
    );
    let size_after = std::fs::metadata(&db).unwrap().len();
    assert!(
        size_after * 3 < size_before * 2,
        "the file shrinks: {size_before} bytes before, {size_after} after"
    );
    let (again, _) = machine.build(&[]);
    assert_eq!(again["status"], "cached");
    assert!(machine.run(&["cache", "verify"]).status.success());
}

#[test]
fn a_cold_manifests_build_puts_walked_packages_in_order() {
    // With no list known, manifests mode walks every package and appends its entries after the
    // scan's; they must be sorted again before the digest (an unsorted preimage panicked in
    // debug builds and gave another digest in release builds).
    let machine = Machine::first();
    let (manifests, stats) = machine.build(&["--fingerprint", "manifests"]);
    assert_eq!(stats["files_hashed"], FILES);
    let stat_mode = Machine::copy_of(&machine);
    let (stat, _) = stat_mode.build(&[]);
    assert_eq!(manifests["digest"], stat["digest"]);
    assert_eq!(manifests["sha256"], stat["sha256"]);
}

#[test]
fn a_bad_remote_cache_address_is_an_error_naming_it() {
    let mut machine = Machine::first();
    machine.set_env("LAMINA_REMOTE_CACHE", "http://cache.example/team");
    let output = machine.run(&["build"]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("`http://cache.example/team`"), "{message}");
    assert!(message.contains("LAMINA_REMOTE_CACHE"), "{message}");
}
