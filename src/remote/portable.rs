//! `lamina cache export FILE` and `lamina cache import FILE`: the portable part of the cache in
//! one file, for a CI cache step or a copy to another machine.
//!
//! The file is a plain POSIX tar (readable with `tar tvf`), members in this order:
//!
//! ```text
//! lamina-cache.json                    the header: formats and what follows, with checksums
//! zips/<digest>.entries                a zip's entry list (its digest preimage)
//! zips/<digest>.zip                    the zip, right after its entry list
//! ...
//! packages/<kind>/<fingerprint>.list   a package's file list (preimage form)
//! ...
//! aws-layer-versions.json              the layer versions the AWS target has seen
//! ```
//!
//! Every member has mode 0644, owner 0 and time 0, so the same cache exports to the same bytes.
//! The header is specified in `cache-format.md` ("Portable cache and remote cache").
//!
//! Export writes only what verifies locally (a zip whose bytes match its SHA-256 and whose entry
//! list hashes to its digest; a list matching its stored hash) and writes the file atomically.
//! Import trusts nothing in the file: each zip must match the header's size and SHA-256 and hold
//! exactly the entries of its digest (see [`super::check`]), each entry list must hash to its
//! digest, each package list must match the header's blake3 and, for node, its fingerprint.
//! What fails is dropped with a warning and never reaches the cache; what passes is written to
//! `.lamina/build/` and recorded in one transaction. Nothing in the file is a path of the machine
//! that wrote it, so a project at another path imports it alike.

use std::collections::{HashMap, HashSet};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use super::check::{self, HashingWriter};
use super::rows::{self, kind_from_name, kind_name};
use crate::cache::{Cache, CacheError, ZipRecord};
use crate::digest::{Digest, Entry, DIGEST_FORMAT};
use crate::scan::PackageKind;

/// The export file's format; an import refuses files of another.
pub const EXPORT_FORMAT: u32 = 1;

/// The first member of every export file.
pub const HEADER_NAME: &str = "lamina-cache.json";

/// The member holding the rows of `aws_layer_versions`.
const AWS_VERSIONS_NAME: &str = "aws-layer-versions.json";

/// Largest header or entry list read into memory from an export file; a larger one is damage,
/// not something to allocate for.
const MAX_MEMBER_IN_MEMORY: u64 = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum PortableError {
    #[error("cannot write the export `{}`: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot read `{}`: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "`{}` is not a lamina cache export ({reason}); make one with `lamina cache export FILE`",
        path.display()
    )]
    NotAnExport { path: PathBuf, reason: String },
    #[error(
        "`{}` is a lamina cache export of format {found}; this lamina reads format {EXPORT_FORMAT} \
         (export it again with this version)",
        path.display()
    )]
    Format { path: PathBuf, found: u32 },
    #[error("cannot write to `{}`: {source}", path.display())]
    Store { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// The header member.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Header {
    format: u32,
    /// The lamina that wrote the file, for people; not checked.
    lamina: String,
    digest_format: u32,
    /// The pack format label of this lamina; zips of other formats may be in the file too (their
    /// entry lists say which), they are simply never a hit here.
    pack_format: String,
    zips: Vec<HeaderZip>,
    packages: Vec<HeaderPackage>,
    /// The `aws-layer-versions.json` member: its row count and blake3.
    aws_layer_versions: HeaderMember,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct HeaderMember {
    rows: u64,
    /// blake3 of the member, 64 hex digits.
    blake3: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct HeaderZip {
    digest: Digest,
    /// Lowercase hex.
    sha256: String,
    size: u64,
    entries: u64,
    unzipped_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct HeaderPackage {
    kind: String,
    /// 64 hex digits.
    fingerprint: String,
    /// blake3 of the list member, 64 hex digits.
    blake3: String,
    size: u64,
}

/// Something left out of an export or an import, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dropped {
    /// `zip <digest>` or `package list <kind> <fingerprint>`.
    pub item: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ExportReport {
    pub zips: u64,
    pub packages: u64,
    /// Layer versions the AWS target has seen (published versions, by CodeSha256).
    pub aws_layer_versions: u64,
    /// Size of the export file.
    pub bytes: u64,
    /// Local entries that did not verify and were left out.
    pub skipped: Vec<Dropped>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    pub zips_imported: u64,
    /// Zips the cache already had, left as they were.
    pub zips_present: u64,
    pub packages_imported: u64,
    /// Seen AWS layer versions added (those the cache knew already are kept as they are).
    pub aws_layer_versions_imported: u64,
    /// Entries of the file that did not verify, or that the header promised and the file lacked.
    pub dropped: Vec<Dropped>,
}

fn zip_item(digest: &Digest) -> String {
    format!("zip {digest}")
}

fn list_item(kind: &str, fingerprint: &str) -> String {
    format!("package list {kind} {fingerprint}")
}

/// Writes every verified zip and package list of `cache` (zips from `build_dir`) to `file`.
pub fn export(cache: &Cache, build_dir: &Path, file: &Path) -> Result<ExportReport, PortableError> {
    let mut report = ExportReport::default();
    let zips = exportable_zips(cache, build_dir, &mut report)?;
    let packages = exportable_packages(cache, &mut report)?;
    let aws_versions = rows::aws_versions(cache)?;
    let aws_json = serde_json::to_vec_pretty(&aws_versions).expect("rows serialise");
    for dropped in &report.skipped {
        warn!("not exported: {}: {}", dropped.item, dropped.reason);
    }
    let header = Header {
        format: EXPORT_FORMAT,
        lamina: env!("CARGO_PKG_VERSION").to_owned(),
        digest_format: DIGEST_FORMAT,
        pack_format: crate::pack::FORMAT_LABEL.to_owned(),
        zips: zips.iter().map(header_zip).collect(),
        packages: packages
            .iter()
            .map(|row| HeaderPackage {
                kind: kind_name(row.kind).to_owned(),
                fingerprint: row.fingerprint.to_hex().to_string(),
                blake3: blake3::hash(&row.entries).to_hex().to_string(),
                size: row.entries.len() as u64,
            })
            .collect(),
        aws_layer_versions: HeaderMember {
            rows: aws_versions.len() as u64,
            blake3: blake3::hash(&aws_json).to_hex().to_string(),
        },
    };

    let write_error = |source| PortableError::Write {
        path: file.to_path_buf(),
        source,
    };
    crate::atomic::write_with(file, |out| {
        let mut builder = tar::Builder::new(io::BufWriter::new(out));
        let json = serde_json::to_vec_pretty(&header).map_err(io::Error::other)?;
        append_bytes(&mut builder, HEADER_NAME, &json)?;
        for zip in &zips {
            let preimage = rows::zip_preimage(cache, &zip.digest)
                .map_err(io::Error::other)?
                .unwrap_or_default();
            let hex = zip.digest.to_hex();
            append_bytes(&mut builder, &format!("zips/{hex}.entries"), &preimage)?;
            let mut source = fs_err::File::open(build_dir.join(&zip.file_name))?;
            append_reader(
                &mut builder,
                &format!("zips/{hex}.zip"),
                zip.size,
                &mut source,
            )?;
        }
        for row in &packages {
            let name = format!(
                "packages/{}/{}.list",
                kind_name(row.kind),
                row.fingerprint.to_hex()
            );
            append_bytes(&mut builder, &name, &row.entries)?;
        }
        append_bytes(&mut builder, AWS_VERSIONS_NAME, &aws_json)?;
        builder.into_inner()?.flush()
    })
    .map_err(write_error)?;

    report.zips = zips.len() as u64;
    report.packages = packages.len() as u64;
    report.aws_layer_versions = aws_versions.len() as u64;
    report.bytes = fs_err::metadata(file).map_err(write_error)?.len();
    info!(file = %file.display(), zips = report.zips, packages = report.packages, "cache exported");
    Ok(report)
}

fn header_zip(zip: &ZipRecord) -> HeaderZip {
    HeaderZip {
        digest: zip.digest,
        sha256: crate::deploy::sha256_hex(&zip.sha256),
        size: zip.size,
        entries: zip.entries,
        unzipped_bytes: zip.unzipped_bytes,
    }
}

/// Zips whose file is in place and matches its record, and whose entry list hashes to its
/// digest.
fn exportable_zips(
    cache: &Cache,
    build_dir: &Path,
    report: &mut ExportReport,
) -> Result<Vec<ZipRecord>, PortableError> {
    let mut zips = Vec::new();
    for row in rows::zip_rows(cache)? {
        let zip = row.record;
        let path = build_dir.join(&zip.file_name);
        if !path.is_file() {
            debug!(digest = %zip.digest.short(), "zip file gone: not exported");
            continue;
        }
        let bytes = check::sha256_of_file(&path)
            .map_err(|error| error.to_string())
            .and_then(|found| {
                check::check_bytes((zip.sha256, zip.size), found).map_err(|d| d.to_string())
            });
        let preimage = rows::zip_preimage(cache, &zip.digest)?.unwrap_or_default();
        let problem = bytes
            .err()
            .or_else(|| check::check_preimage(&zip.digest, &preimage).err());
        match problem {
            Some(reason) => report.skipped.push(Dropped {
                item: zip_item(&zip.digest),
                reason,
            }),
            None => zips.push(zip),
        }
    }
    Ok(zips)
}

fn exportable_packages(
    cache: &Cache,
    report: &mut ExportReport,
) -> Result<Vec<rows::PackageRow>, PortableError> {
    let mut packages = Vec::new();
    for row in rows::package_rows(cache)? {
        let intact = blake3::hash(&row.entries).as_bytes() == &row.entries_hash;
        match intact {
            true => packages.push(row),
            false => report.skipped.push(Dropped {
                item: list_item(kind_name(row.kind), &row.fingerprint.to_hex()),
                reason: "it does not match its stored hash".into(),
            }),
        }
    }
    Ok(packages)
}

fn member_header(size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    header
}

fn append_bytes<W: Write>(
    builder: &mut tar::Builder<W>,
    name: &str,
    bytes: &[u8],
) -> io::Result<()> {
    let mut header = member_header(bytes.len() as u64);
    builder.append_data(&mut header, name, bytes)
}

fn append_reader<W: Write>(
    builder: &mut tar::Builder<W>,
    name: &str,
    size: u64,
    source: &mut impl Read,
) -> io::Result<()> {
    let mut header = member_header(size);
    // `take` keeps the member at the size in its header even if the file grew meanwhile.
    builder.append_data(&mut header, name, source.take(size))
}

/// What an import has verified so far.
struct Import<'a> {
    cache: &'a Cache,
    build_dir: &'a Path,
    header: Header,
    /// Entry lists that hashed to their digest, waiting for their zip.
    lists: HashMap<Digest, (Vec<u8>, Vec<Entry>)>,
    /// Zips verified and renamed into place, with their entry lists, to record.
    zips: Vec<(ZipRecord, Vec<u8>)>,
    packages: Vec<(PackageKind, blake3::Hash, Vec<u8>)>,
    aws_versions: Vec<rows::AwsVersionRow>,
    /// Header items that arrived (verified or not), to find those the file lacks.
    arrived: HashSet<String>,
    report: ImportReport,
}

/// Reads `file` into `cache`, zips into `build_dir`. See the module documentation.
pub fn import(
    cache: &mut Cache,
    build_dir: &Path,
    file: &Path,
) -> Result<ImportReport, PortableError> {
    let read_error = |source| PortableError::Read {
        path: file.to_path_buf(),
        source,
    };
    let input = fs_err::File::open(file).map_err(read_error)?;
    let mut archive = tar::Archive::new(BufReader::new(input));
    let mut members = archive.entries().map_err(read_error)?;
    let header = read_header(file, members.next())?;

    let mut import = Import {
        cache,
        build_dir,
        header,
        lists: HashMap::new(),
        zips: Vec::new(),
        packages: Vec::new(),
        aws_versions: Vec::new(),
        arrived: HashSet::new(),
        report: ImportReport::default(),
    };
    for member in members {
        let mut member = member.map_err(read_error)?;
        let name = member
            .path()
            .map_err(read_error)?
            .to_string_lossy()
            .into_owned();
        import
            .member(&name, &mut member)
            .map_err(|source| match source {
                ImportFailure::File(source) => read_error(source),
                ImportFailure::Store(source) => PortableError::Store {
                    path: build_dir.to_path_buf(),
                    source,
                },
            })?;
    }
    import.missing();
    for dropped in &import.report.dropped {
        warn!("not imported: {}: {}", dropped.item, dropped.reason);
    }
    let Import {
        zips,
        packages,
        aws_versions,
        mut report,
        ..
    } = import;
    report.aws_layer_versions_imported = record(cache, &zips, &packages, &aws_versions)?;
    report.zips_imported = zips.len() as u64;
    report.packages_imported = packages.len() as u64;
    info!(
        file = %file.display(),
        zips = report.zips_imported,
        packages = report.packages_imported,
        dropped = report.dropped.len(),
        "cache imported"
    );
    Ok(report)
}

fn read_header<R: Read>(
    file: &Path,
    first: Option<io::Result<tar::Entry<'_, R>>>,
) -> Result<Header, PortableError> {
    let not_export = |reason: String| PortableError::NotAnExport {
        path: file.to_path_buf(),
        reason,
    };
    let mut member = match first {
        Some(Ok(member)) => member,
        Some(Err(error)) => return Err(not_export(error.to_string())),
        None => return Err(not_export("it is empty".into())),
    };
    let name = member.path().map(|p| p.to_string_lossy().into_owned());
    if name.as_deref().ok() != Some(HEADER_NAME) {
        return Err(not_export(format!(
            "it does not start with `{HEADER_NAME}`"
        )));
    }
    let size = member_size(&member);
    let bytes = read_limited(&mut member, size).map_err(|e| not_export(e.to_string()))?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| not_export(e.to_string()))?;
    let found = value["format"].as_u64().unwrap_or(0) as u32;
    if found != EXPORT_FORMAT {
        return Err(PortableError::Format {
            path: file.to_path_buf(),
            found,
        });
    }
    serde_json::from_value(value).map_err(|e| not_export(e.to_string()))
}

fn member_size<R: Read>(member: &tar::Entry<'_, R>) -> u64 {
    member.header().size().unwrap_or(u64::MAX)
}

fn read_limited(reader: &mut impl Read, size: u64) -> io::Result<Vec<u8>> {
    if size > MAX_MEMBER_IN_MEMORY {
        return Err(io::Error::other(format!(
            "a member of {size} bytes is too large"
        )));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    reader.take(size).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// An import stops only when the file cannot be read or the cache cannot be written; damage in
/// a member drops that member.
enum ImportFailure {
    File(io::Error),
    Store(io::Error),
}

impl Import<'_> {
    fn member(&mut self, name: &str, member: &mut impl Read) -> Result<(), ImportFailure> {
        let parts: Vec<&str> = name.split('/').collect();
        match parts[..] {
            ["zips", file] => match file.rsplit_once('.') {
                Some((hex, "entries")) => self.entry_list(hex, member),
                Some((hex, "zip")) => self.zip(hex, member),
                _ => self.unknown(name),
            },
            ["packages", kind, file] => match file.strip_suffix(".list") {
                Some(hex) => self.package(kind, hex, member),
                None => self.unknown(name),
            },
            [AWS_VERSIONS_NAME] => self.aws_versions(member),
            _ => self.unknown(name),
        }
    }

    /// Takes the seen AWS layer versions whose rows are consistent. They are only a memory of
    /// what AWS lists (every decision is checked against AWS), so a consistent row is safe.
    fn aws_versions(&mut self, member: &mut impl Read) -> Result<(), ImportFailure> {
        let item = "aws layer versions".to_owned();
        self.arrived.insert(item.clone());
        let bytes = read_limited(member, MAX_MEMBER_IN_MEMORY).map_err(ImportFailure::File)?;
        if blake3::hash(&bytes).to_hex().as_str() != self.header.aws_layer_versions.blake3 {
            self.drop(item, "it does not match the blake3 in the header");
            return Ok(());
        }
        let parsed: Vec<rows::AwsVersionRow> = match serde_json::from_slice(&bytes) {
            Ok(parsed) => parsed,
            Err(error) => {
                self.drop(item, format!("it does not parse: {error}"));
                return Ok(());
            }
        };
        for row in parsed {
            match rows::aws_version_problem(&row) {
                Some(reason) => self.drop(format!("aws layer version {}", row.arn), reason),
                None => self.aws_versions.push(row),
            }
        }
        Ok(())
    }

    fn unknown(&mut self, name: &str) -> Result<(), ImportFailure> {
        warn!("`{name}` in the cache export is not something lamina writes; skipped");
        Ok(())
    }

    fn drop(&mut self, item: String, reason: impl Into<String>) {
        self.report.dropped.push(Dropped {
            item,
            reason: reason.into(),
        });
    }

    fn header_zip(&self, hex: &str) -> Option<(Digest, HeaderZip)> {
        let digest: Digest = hex.parse().ok()?;
        let zip = self.header.zips.iter().find(|zip| zip.digest == digest)?;
        Some((digest, zip.clone()))
    }

    fn entry_list(&mut self, hex: &str, member: &mut impl Read) -> Result<(), ImportFailure> {
        let Some((digest, _)) = self.header_zip(hex) else {
            return self.unknown(&format!("zips/{hex}.entries"));
        };
        let preimage = read_limited(member, MAX_MEMBER_IN_MEMORY).map_err(ImportFailure::File)?;
        match check::check_preimage(&digest, &preimage) {
            Ok(entries) => {
                self.lists.insert(digest, (preimage, entries));
            }
            Err(reason) => self.drop(zip_item(&digest), reason),
        }
        Ok(())
    }

    fn zip(&mut self, hex: &str, member: &mut impl Read) -> Result<(), ImportFailure> {
        let Some((digest, expected)) = self.header_zip(hex) else {
            return self.unknown(&format!("zips/{hex}.zip"));
        };
        self.arrived.insert(zip_item(&digest));
        if self.is_present(&digest)? {
            self.report.zips_present += 1;
            return Ok(());
        }
        let Some((preimage, entries)) = self.lists.remove(&digest) else {
            if !self
                .report
                .dropped
                .iter()
                .any(|d| d.item == zip_item(&digest))
            {
                self.drop(zip_item(&digest), "its entry list is not in the file");
            }
            return Ok(());
        };
        match self.receive_zip(&digest, &expected, &entries, member)? {
            Ok(record) => self.zips.push((record, preimage)),
            Err(reason) => self.drop(zip_item(&digest), reason),
        }
        Ok(())
    }

    /// Whether the cache already records this zip with its file in place.
    fn is_present(&self, digest: &Digest) -> Result<bool, ImportFailure> {
        let recorded = self
            .cache
            .zip(digest)
            .map_err(|e| ImportFailure::Store(io::Error::other(e)))?;
        Ok(recorded.is_some_and(|zip| {
            fs_err::metadata(self.build_dir.join(&zip.file_name)).is_ok_and(|m| m.len() == zip.size)
        }))
    }

    /// Copies a zip member to a temporary file, verifies it, and renames it into the build
    /// folder. The inner result is the verdict on the member; the outer one, whether the
    /// machine could do the work at all.
    fn receive_zip(
        &self,
        digest: &Digest,
        expected: &HeaderZip,
        entries: &[Entry],
        member: &mut impl Read,
    ) -> Result<Result<ZipRecord, String>, ImportFailure> {
        let store = ImportFailure::Store;
        fs_err::create_dir_all(self.build_dir).map_err(store)?;
        let temp = tempfile::NamedTempFile::with_prefix_in(".lamina-tmp-", self.build_dir)
            .map_err(store)?;
        let mut writer = HashingWriter::new(io::BufWriter::new(temp.as_file()));
        io::copy(member, &mut writer).map_err(ImportFailure::File)?;
        writer.flush().map_err(store)?;
        let (sha256, size, _) = writer.finish();

        let Ok(expected_sha256) = blake3::Hash::from_hex(&expected.sha256) else {
            return Ok(Err(format!(
                "the header's sha256 `{}` is not 64 hex digits",
                expected.sha256
            )));
        };
        let expected_sha256 = *expected_sha256.as_bytes();
        if expected.entries != entries.len() as u64
            || expected.unzipped_bytes != check::unzipped_bytes(entries)
        {
            return Ok(Err(
                "the header's entry count or size differs from its entry list".into(),
            ));
        }
        let checked = check::check_bytes((expected_sha256, expected.size), (sha256, size))
            .and_then(|()| check::check_content(temp.path(), entries));
        if let Err(damage) = checked {
            return Ok(Err(damage.to_string()));
        }
        let file_name = format!("{}.zip", digest.to_hex());
        temp.persist(self.build_dir.join(&file_name))
            .map_err(|e| store(e.error))?;
        Ok(Ok(ZipRecord {
            digest: *digest,
            sha256,
            size,
            entries: expected.entries,
            unzipped_bytes: expected.unzipped_bytes,
            file_name,
        }))
    }

    fn package(
        &mut self,
        kind: &str,
        hex: &str,
        member: &mut impl Read,
    ) -> Result<(), ImportFailure> {
        let item = list_item(kind, hex);
        let expected = self
            .header
            .packages
            .iter()
            .find(|p| p.kind == kind && p.fingerprint == hex)
            .cloned();
        let (Some(expected), Some(kind), Ok(fingerprint)) =
            (expected, kind_from_name(kind), blake3::Hash::from_hex(hex))
        else {
            return self.unknown(&format!("packages/{kind}/{hex}.list"));
        };
        self.arrived.insert(item.clone());
        let list = read_limited(member, MAX_MEMBER_IN_MEMORY).map_err(ImportFailure::File)?;
        if blake3::hash(&list).to_hex().as_str() != expected.blake3 {
            self.drop(item, "it does not match the blake3 in the header");
            return Ok(());
        }
        match check::check_package_list(kind, &fingerprint, &list) {
            Ok(_) => self.packages.push((kind, fingerprint, list)),
            Err(reason) => self.drop(item, reason),
        }
        Ok(())
    }

    /// Drops what the header promised and the file does not hold.
    fn missing(&mut self) {
        let zips = self.header.zips.iter().map(|zip| zip_item(&zip.digest));
        let lists = self
            .header
            .packages
            .iter()
            .map(|p| list_item(&p.kind, &p.fingerprint));
        let versions = std::iter::once("aws layer versions".to_owned())
            .filter(|_| self.header.aws_layer_versions.rows > 0);
        let absent: Vec<String> = zips
            .chain(lists)
            .chain(versions)
            .filter(|item| !self.arrived.contains(item))
            .collect();
        for item in absent {
            self.drop(item, "the header lists it, the file does not hold it");
        }
    }
}

/// Records the verified zips, lists and seen AWS versions in one transaction; returns how many
/// AWS versions were new.
fn record(
    cache: &mut Cache,
    zips: &[(ZipRecord, Vec<u8>)],
    packages: &[(PackageKind, blake3::Hash, Vec<u8>)],
    aws_versions: &[rows::AwsVersionRow],
) -> Result<u64, CacheError> {
    let now = rows::unix_now();
    let path = cache.path().to_path_buf();
    let transaction = cache.transaction()?;
    let write = || -> rusqlite::Result<u64> {
        for (zip, preimage) in zips {
            rows::upsert_zip(&transaction, zip, preimage, now)?;
        }
        for (kind, fingerprint, list) in packages {
            crate::cache::store_package_list(&transaction, *kind, fingerprint, list, now)?;
        }
        let mut added = 0;
        for row in aws_versions {
            added += rows::insert_aws_version(&transaction, row)?;
        }
        Ok(added)
    };
    let added = write().map_err(|source| CacheError::from_sqlite(&path, source))?;
    transaction
        .commit()
        .map_err(|source| CacheError::from_sqlite(&path, source))?;
    Ok(added)
}
