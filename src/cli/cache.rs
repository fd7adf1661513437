//! `lamina cache export|import|stats|verify|gc`, and opening the project's shared cache for the
//! commands that build.

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use base64::prelude::{Engine as _, BASE64_STANDARD};
use serde::Serialize;

use super::{output, Context};
use crate::cache::Cache;
use crate::deploy::local::LocalRegistry;
use crate::deploy::Target;
use crate::manifest::Manifest;
use crate::remote::portable::{self, Dropped};
use crate::remote::upkeep::{self, CacheStats, DEFAULT_KEEP_LAST};
use crate::remote::RemoteCache;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum CacheCommand {
    /// Write the portable cache (built zips and package file lists, no stat data) to FILE, for
    /// another machine or a CI cache step.
    Export {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Read a file written by `lamina cache export` into this project's cache. Entries that do
    /// not verify are dropped with a warning and never used.
    Import {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Show what the cache holds and the hit rates of the last run.
    Stats,
    /// Re-hash the built zips and package lists and report damage; exits with 1 if there is any.
    Verify {
        /// Also decompress every zip and check each file against its entry list (slower).
        #[arg(long)]
        deep: bool,
        /// Remove what is damaged (zips are rebuilt by the next build, lists learned again).
        #[arg(long)]
        repair: bool,
    },
    /// Drop zips and package lists that no recent build and no published version needs.
    Gc {
        /// How many of each layer's and function's most recent builds to keep. The current
        /// build is always kept, with 0 too.
        #[arg(long, value_name = "N", default_value_t = DEFAULT_KEEP_LAST)]
        keep_last: usize,
        /// Say what would be removed, and remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub(crate) fn run(context: &Context, command: CacheCommand) -> Result<()> {
    let manifest = context.manifest()?;
    let state = manifest.state_dir();
    let mut cache = Cache::open(&state.cache_db())
        .with_context(|| format!("cannot open the cache `{}`", state.cache_db().display()))?;
    let build_dir = state.build_dir();
    match command {
        CacheCommand::Export { file } => {
            let file = context.cwd.join(file);
            let report = portable::export(&cache, &build_dir, &file)?;
            print_export(context, &file, &report)
        }
        CacheCommand::Import { file } => {
            let file = context.cwd.join(file);
            let report = portable::import(&mut cache, &build_dir, &file)?;
            print_import(context, &report)
        }
        CacheCommand::Stats => print_stats(context, &upkeep::stats(&cache, &build_dir)?),
        CacheCommand::Verify { deep, repair } => {
            let report = upkeep::verify(&mut cache, &build_dir, deep, repair)?;
            print_verify(context, &report)
        }
        CacheCommand::Gc { keep_last, dry_run } => {
            let published = published_sha256s(&manifest, &cache)?;
            let report = upkeep::gc(&mut cache, &build_dir, keep_last, &published, dry_run)?;
            print_gc(context, &report)
        }
    }
}

/// The project's shared cache, from `LAMINA_REMOTE_CACHE` or `[cache] remote`.
pub(super) fn open_remote(manifest: &Manifest) -> Result<Option<RemoteCache>> {
    let region = manifest.target.aws.region.as_deref();
    Ok(RemoteCache::from_config(&manifest.cache, region)?)
}

fn warn_dropped(dropped: &[Dropped], verb: &str) {
    for item in dropped {
        output::warning(format!("{verb} {}: {}", item.item, item.reason));
    }
}

fn print_export(
    context: &Context,
    file: &std::path::Path,
    report: &portable::ExportReport,
) -> Result<()> {
    warn_dropped(&report.skipped, "not exported:");
    if context.json {
        #[derive(Serialize)]
        struct Output<'a> {
            file: String,
            #[serde(flatten)]
            report: &'a portable::ExportReport,
        }
        let file = file.display().to_string();
        return output::json(&Output { file, report });
    }
    println!(
        "exported {} zip(s), {} package list(s) and {} seen AWS layer version(s) to {} ({})",
        report.zips,
        report.packages,
        report.aws_layer_versions,
        file.display(),
        output::bytes(report.bytes)
    );
    Ok(())
}

fn print_import(context: &Context, report: &portable::ImportReport) -> Result<()> {
    warn_dropped(&report.dropped, "dropped");
    if context.json {
        return output::json(report);
    }
    println!(
        "imported {} zip(s), {} package list(s) and {} seen AWS layer version(s); {} zip(s) were \
         already here; {} entr{} dropped",
        report.zips_imported,
        report.packages_imported,
        report.aws_layer_versions_imported,
        report.zips_present,
        report.dropped.len(),
        if report.dropped.len() == 1 {
            "y"
        } else {
            "ies"
        }
    );
    Ok(())
}

fn print_stats(context: &Context, stats: &CacheStats) -> Result<()> {
    if context.json {
        return output::json(stats);
    }
    let entries = &stats.entries;
    println!(
        "zips: {} ({}; {} missing from .lamina/build or not of their recorded size)",
        entries.zips,
        output::bytes(entries.zip_bytes),
        entries.zips_missing
    );
    println!(
        "package lists: {} ({})",
        entries.packages,
        output::bytes(entries.package_bytes)
    );
    println!("file rows: {}", entries.files);
    println!("database: {}", output::bytes(entries.database_bytes));
    let Some(last) = &stats.last_run else {
        println!("last run: none recorded");
        return Ok(());
    };
    println!("last run:");
    for (name, value) in &last.counters {
        println!("  {name}: {value}");
    }
    for (name, rate) in &last.hit_rates {
        println!(
            "  hit rate, {}: {:.1}%",
            name.replace('_', " "),
            rate * 100.0
        );
    }
    Ok(())
}

fn print_verify(context: &Context, report: &upkeep::VerifyReport) -> Result<()> {
    if context.json {
        output::json(report)?;
    } else {
        for damage in &report.damage {
            let place = damage
                .path
                .as_deref()
                .map(|p| format!(" (`{p}`)"))
                .unwrap_or_default();
            println!("damaged: {}{place}: {}", damage.item, damage.problem);
        }
        println!(
            "checked {} zip(s) and {} package list(s): {} damaged{}{}",
            report.zips_checked,
            report.packages_checked,
            report.damage.len(),
            match report.repaired {
                0 => String::new(),
                n => format!(", {n} removed"),
            },
            match report.zips_missing {
                0 => String::new(),
                n => format!(
                    "; {n} recorded zip(s) missing from the build folder (packed again when \
                     needed)"
                ),
            }
        );
    }
    if !report.damage.is_empty() && report.repaired == 0 {
        bail!(
            "the cache holds {} damaged entr{}; `lamina cache verify --repair` removes them",
            report.damage.len(),
            if report.damage.len() == 1 { "y" } else { "ies" }
        );
    }
    Ok(())
}

fn print_gc(context: &Context, report: &upkeep::GcReport) -> Result<()> {
    if context.json {
        return output::json(report);
    }
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    println!(
        "{verb} {} zip(s), {} package list(s) and {} file(s) ({}); kept {} zip(s) and {} \
         package list(s)",
        report.zips_removed,
        report.packages_removed,
        report.files_removed,
        output::bytes(report.bytes_freed),
        report.zips_kept,
        report.packages_kept
    );
    Ok(())
}

/// The SHA-256 of every zip a published layer version or deployed function holds, as far as
/// this machine knows without asking a server: the local registry, what this checkout pushed,
/// and the layer versions the AWS target has seen.
fn published_sha256s(manifest: &Manifest, cache: &Cache) -> Result<HashSet<[u8; 32]>> {
    let state = manifest.state_dir();
    let mut codes: Vec<String> = Vec::new();
    let registry_dir = state.registry_dir();
    if registry_dir.is_dir() {
        let mut registry = LocalRegistry::open(&registry_dir)?;
        for layer in names_in(&registry_dir.join("layers"), "") {
            let versions = registry.layer_versions(&layer)?;
            codes.extend(versions.into_iter().map(|version| version.code_sha256));
        }
        for function in names_in(&registry_dir.join("functions"), ".json") {
            if let Some(state) = registry.function(&function)? {
                codes.push(state.code_sha256);
            }
        }
    }
    codes.extend(crate::remote::published_code_sha256s(cache)?);
    let decoded = codes
        .iter()
        .filter_map(|code| BASE64_STANDARD.decode(code).ok());
    Ok(decoded.filter_map(|bytes| bytes.try_into().ok()).collect())
}

/// The names of the entries of `dir` that end in `suffix`, without it.
fn names_in(dir: &std::path::Path, suffix: &str) -> Vec<String> {
    let Ok(listing) = fs_err::read_dir(dir) else {
        return Vec::new();
    };
    let names = listing.flatten().filter_map(|entry| {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stem = name.strip_suffix(suffix)?.to_owned();
        (!stem.is_empty() && !stem.starts_with('.')).then_some(stem)
    });
    names.collect()
}
