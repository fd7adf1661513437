//! The cache's schema: an append-only list of migrations, applied in one transaction at open.
//!
//! `PRAGMA user_version` holds the number of migrations a database has received. Migration `N`
//! (the `N`-th batch of [`MIGRATIONS`], counting from 1) brings the schema from version `N - 1`
//! to version `N`, so the version of a fully migrated database is `MIGRATIONS.len()`.
//!
//! Rules for anyone adding tables (other modules do):
//! - Append a new batch at the end; never edit or reorder a batch that has shipped, because
//!   databases in the field have already run it and will not run it again.
//! - A batch is plain SQL run by `execute_batch` inside the migration transaction: no `BEGIN`,
//!   `COMMIT` or `VACUUM` in it, and no `PRAGMA journal_mode`.
//! - Document every new table and column in `cache-format.md`, marking the table machine-local
//!   (stat data, inode numbers, absolute paths) or portable (keyed by content only), because
//!   `lamina cache export` moves the portable tables to other machines.
//! - Prefer `WITHOUT ROWID` for small rows looked up or scanned by their key, and an ordinary
//!   table for rows that carry large blobs (SQLite's own advice: `WITHOUT ROWID` suits rows under
//!   about a twentieth of a page).

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::CacheError;

/// Identifies a SQLite file as lamina's cache (`PRAGMA application_id`, the ASCII bytes `LAMI`),
/// so that a database written by another program is refused instead of receiving our tables.
pub(crate) const APPLICATION_ID: i32 = 0x4C41_4D49;

/// The migrations, in order. See the module documentation before changing anything here.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: the engine's tables.
    "
    CREATE TABLE files (
        owner        TEXT    NOT NULL,
        path         TEXT    NOT NULL,
        size         INTEGER NOT NULL,
        mtime_ns     INTEGER NOT NULL,
        ctime_ns     INTEGER NOT NULL,
        inode        INTEGER NOT NULL,
        mode         INTEGER NOT NULL,
        content_hash BLOB    NOT NULL CHECK (length(content_hash) = 32),
        link_target  TEXT,
        clock_ns     INTEGER NOT NULL,
        PRIMARY KEY (owner, path)
    ) WITHOUT ROWID;

    CREATE TABLE packages (
        kind         TEXT    NOT NULL,
        fingerprint  BLOB    NOT NULL CHECK (length(fingerprint) = 32),
        entries      BLOB    NOT NULL,
        entries_hash BLOB    NOT NULL CHECK (length(entries_hash) = 32),
        created_at   INTEGER NOT NULL,
        last_used_at INTEGER NOT NULL,
        PRIMARY KEY (kind, fingerprint)
    );

    CREATE TABLE zips (
        digest         BLOB    NOT NULL PRIMARY KEY CHECK (length(digest) = 32),
        sha256         BLOB    NOT NULL CHECK (length(sha256) = 32),
        size           INTEGER NOT NULL,
        entries        INTEGER NOT NULL,
        unzipped_bytes INTEGER NOT NULL,
        file_name      TEXT    NOT NULL CHECK (
            file_name NOT IN ('', '.', '..') AND instr(file_name, '/') = 0
        ),
        created_at     INTEGER NOT NULL,
        last_used_at   INTEGER NOT NULL,
        preimage       BLOB    NOT NULL
    );

    CREATE TABLE builds (
        owner    TEXT    NOT NULL PRIMARY KEY,
        digest   BLOB    NOT NULL REFERENCES zips (digest),
        built_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    ",
    // 2: what this checkout pushed, for `status` (src/deploy/pushed.rs).
    "
    CREATE TABLE pushes (
        target      TEXT    NOT NULL,
        owner       TEXT    NOT NULL,
        digest      BLOB    NOT NULL CHECK (length(digest) = 32),
        version     INTEGER,
        arn         TEXT,
        code_sha256 TEXT    NOT NULL,
        layers      TEXT,
        pushed_at   INTEGER NOT NULL,
        PRIMARY KEY (target, owner, digest)
    ) WITHOUT ROWID;
    ",
    // 3: layer versions the AWS target has seen (src/deploy/aws/memory.rs). The table exists in
    // builds without the `aws` feature too, so that the schema never depends on features. Rows
    // carry a description of up to 256 characters, too large for `WITHOUT ROWID`.
    "
    CREATE TABLE aws_layer_versions (
        arn           TEXT    NOT NULL PRIMARY KEY,
        region        TEXT    NOT NULL,
        account       TEXT    NOT NULL,
        layer         TEXT    NOT NULL,
        version       INTEGER NOT NULL,
        code_sha256   TEXT    NOT NULL,
        digest        BLOB    CHECK (digest IS NULL OR length(digest) = 32),
        unzipped_size INTEGER,
        description   TEXT    NOT NULL,
        created       TEXT    NOT NULL,
        runtimes      TEXT    NOT NULL,
        architectures TEXT    NOT NULL,
        access        TEXT    NOT NULL,
        seen_at       INTEGER NOT NULL
    );

    CREATE INDEX aws_layer_versions_by_content
        ON aws_layer_versions (region, account, layer, code_sha256);
    ",
    // 4: what `lamina cache stats` and `gc` read, and what this machine knows of a remote cache
    // (`src/remote/`). All three tables are machine-local.
    "
    CREATE TABLE build_history (
        owner    TEXT    NOT NULL,
        digest   BLOB    NOT NULL CHECK (length(digest) = 32),
        built_at INTEGER NOT NULL,
        PRIMARY KEY (owner, digest)
    ) WITHOUT ROWID;

    CREATE TABLE run_counters (
        name  TEXT    NOT NULL PRIMARY KEY,
        run   TEXT    NOT NULL,
        value INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE remote_objects (
        remote TEXT NOT NULL,
        key    TEXT NOT NULL,
        PRIMARY KEY (remote, key)
    ) WITHOUT ROWID;
    ",
    // 5: the scan listing that last produced an owner's digest, per fingerprint mode, so that a
    // run whose listing is unchanged skips the file rows, the hashing and the digest
    // (src/build.rs, "the unchanged-listing shortcut").
    "
    CREATE TABLE listings (
        owner       TEXT NOT NULL,
        mode        TEXT NOT NULL,
        listing_key BLOB NOT NULL CHECK (length(listing_key) = 32),
        digest      BLOB NOT NULL CHECK (length(digest) = 32),
        files       INTEGER NOT NULL,
        PRIMARY KEY (owner, mode)
    ) WITHOUT ROWID;
    ",
    // 6: an order of the build history that does not depend on the clock's resolution
    // (`built_at` counts seconds, and `gc --keep-last N` needs the N most recent builds).
    "
    ALTER TABLE build_history ADD COLUMN sequence INTEGER NOT NULL DEFAULT 0;
    ",
    // 7: the snapshot of the scan behind a stat-mode listing, so that a run can tell that the
    // tree is unchanged without listing it (src/scan/snapshot.rs).
    "
    CREATE TABLE listing_snapshots (
        owner       TEXT NOT NULL,
        mode        TEXT NOT NULL,
        listing_key BLOB NOT NULL CHECK (length(listing_key) = 32),
        snapshot    BLOB NOT NULL,
        PRIMARY KEY (owner, mode)
    );
    ",
];

/// Brings the database at `path` up to [`SCHEMA_VERSION`](super::SCHEMA_VERSION), or explains why it cannot.
pub(crate) fn migrate(connection: &mut Connection, path: &Path) -> Result<(), CacheError> {
    migrate_with(connection, path, MIGRATIONS)
}

/// Applies the batches of `migrations` the database has not received yet, all in one immediate
/// (write-locked) transaction: on any error the database keeps its old schema and version. The
/// version is read again inside the transaction, so two lamina processes opening a new cache at
/// the same moment do not both run the same batches.
fn migrate_with(
    connection: &mut Connection,
    path: &Path,
    migrations: &[&str],
) -> Result<(), CacheError> {
    let known = migrations.len() as i64;
    let sql_error = |source| CacheError::from_sqlite(path, source);
    if check_version(connection, path, known)? == known {
        return Ok(());
    }

    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_error)?;
    let found = check_version(&transaction, path, known)?;
    for (index, batch) in migrations.iter().enumerate().skip(found as usize) {
        tracing::debug!(path = %path.display(), version = index + 1, "migrating the cache");
        transaction.execute_batch(batch).map_err(sql_error)?;
    }
    transaction
        .pragma_update(None, "application_id", APPLICATION_ID)
        .map_err(sql_error)?;
    transaction
        .pragma_update(None, "user_version", known)
        .map_err(sql_error)?;
    transaction.commit().map_err(sql_error)
}

/// Reads the schema version and refuses databases this lamina cannot use: another program's
/// database, a newer lamina's cache, or a version no lamina writes.
fn check_version(connection: &Connection, path: &Path, known: i64) -> Result<i64, CacheError> {
    let read = |pragma: &str| -> Result<i64, CacheError> {
        connection
            .pragma_query_value(None, pragma, |row| row.get(0))
            .map_err(|source| CacheError::from_sqlite(path, source))
    };
    let application_id = read("application_id")?;
    if application_id != 0 && application_id != i64::from(APPLICATION_ID) {
        return Err(CacheError::ForeignDatabase {
            path: path.to_path_buf(),
            application_id,
        });
    }
    let found = read("user_version")?;
    if found > known {
        return Err(CacheError::NewerSchema {
            path: path.to_path_buf(),
            found,
            known,
        });
    }
    if found < 0 {
        return Err(CacheError::UnknownSchema {
            path: path.to_path_buf(),
            found,
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(connection: &Connection) -> i64 {
        connection
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap()
    }

    fn has_table(connection: &Connection, name: &str) -> bool {
        connection
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = ?1",
                [name],
                |row| row.get::<_, i64>(0),
            )
            .unwrap()
            == 1
    }

    #[test]
    fn schema_version_counts_the_migrations() {
        assert_eq!(super::super::SCHEMA_VERSION, MIGRATIONS.len() as i64);
    }

    #[test]
    fn only_the_missing_migrations_run() {
        let mut connection = Connection::open_in_memory().unwrap();
        let path = Path::new("memory");
        migrate_with(&mut connection, path, &["CREATE TABLE first (x)"]).unwrap();
        assert_eq!(version(&connection), 1);

        // Running the first batch again would fail: the table exists.
        migrate_with(
            &mut connection,
            path,
            &["CREATE TABLE first (x)", "CREATE TABLE second (y)"],
        )
        .unwrap();
        assert_eq!(version(&connection), 2);
        assert!(has_table(&connection, "second"));
    }

    #[test]
    fn a_failing_migration_leaves_the_old_schema() {
        let mut connection = Connection::open_in_memory().unwrap();
        let path = Path::new("memory");
        let error = migrate_with(
            &mut connection,
            path,
            &["CREATE TABLE first (x)", "CREATE ("],
        )
        .unwrap_err();
        assert!(matches!(error, CacheError::Sql { .. }), "{error:?}");
        assert_eq!(version(&connection), 0);
        assert!(!has_table(&connection, "first"));
    }

    #[test]
    fn another_programs_database_is_refused() {
        let mut connection = Connection::open_in_memory().unwrap();
        connection
            .pragma_update(None, "application_id", 42)
            .unwrap();
        let error = migrate(&mut connection, Path::new("other.db")).unwrap_err();
        assert!(matches!(
            error,
            CacheError::ForeignDatabase {
                application_id: 42,
                ..
            }
        ));
    }
}
