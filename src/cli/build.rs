//! `lamina build` and `lamina status`, and the engine runs and dependency installs that `push`
//! shares with them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use serde::Serialize;

use super::progress::Bars;
use super::{output, Context};
use crate::build::{
    self, BuildOptions, BuildReport, BuildStats, BuildStatus, Changes, FingerprintMode, StateDir,
    Subject,
};
use crate::cache::{Cache, Owner};
use crate::deploy::pushed::{self, PushRecord};
use crate::deploy::{code_sha256, sha256_hex, utc_timestamp};
use crate::install::{
    self, Ecosystem, Install, InstallOptions, InstallOutcome, InstallReason, InstallReport,
};
use crate::manifest::{FunctionConfig, LayerConfig, Manifest, TargetKind};
use crate::scan::SourceMapping;

/// Engine flags shared by `build`, `status` and `push`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct EngineArgs {
    /// How to decide which files to read: `stat` (sound, the default), `manifests` (trusts
    /// unchanged package.json files and Pipfile.lock) or `content` (reads everything).
    #[arg(long, value_enum, default_value_t, value_name = "MODE")]
    fingerprint: FingerprintMode,
    /// Store the content of symlinks that point outside the layer instead of refusing them.
    #[arg(long)]
    follow_external: bool,
}

impl EngineArgs {
    fn options(&self, status_only: bool) -> BuildOptions {
        BuildOptions {
            mode: self.fingerprint,
            follow_external: self.follow_external,
            status_only,
            ..BuildOptions::default()
        }
    }
}

/// Dependency install flags shared by `push` and `build --install`.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct InstallArgs {
    /// Install from what is already installed or in npm's and pip's caches only: npm
    /// `--offline`, pip `--no-index` with the --find-links folders as its only source.
    #[arg(long)]
    offline: bool,
    /// A folder of wheels for pip (`--find-links`); may be given several times.
    #[arg(long = "find-links", value_name = "DIR")]
    find_links: Vec<PathBuf>,
}

impl InstallArgs {
    fn is_given(&self) -> bool {
        self.offline || !self.find_links.is_empty()
    }

    /// The options for [`install::prepare_layer`]; wheel folders are made absolute, since pip
    /// runs in the layer's `lib/python`.
    fn options(&self, context: &Context) -> Result<InstallOptions> {
        let mut find_links = Vec::new();
        for folder in &self.find_links {
            let absolute = context.cwd.join(folder);
            if !absolute.is_dir() {
                bail!(
                    "--find-links: `{}` is not a folder; pass a folder of wheel files",
                    folder.display()
                );
            }
            find_links.push(absolute);
        }
        Ok(InstallOptions {
            offline: self.offline,
            find_links,
            ..InstallOptions::default()
        })
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct BuildArgs {
    /// Layers to build; default: every layer.
    #[arg(value_name = "LAYER")]
    layers: Vec<String>,
    /// Install each layer's declared dependencies (npm, pip) first, as `push` does.
    #[arg(long)]
    install: bool,
    #[command(flatten)]
    installs: InstallArgs,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    /// Layers to look at; default: every layer.
    #[arg(value_name = "LAYER")]
    layers: Vec<String>,
    /// The deploy target whose pushes to compare with; default: lamina.toml's. Only what this
    /// checkout remembers of its pushes is read: the target is not contacted.
    #[arg(long, value_name = "local|aws")]
    target: Option<TargetKind>,
    #[command(flatten)]
    engine: EngineArgs,
}

/// The engine with the project's cache open.
pub(super) struct Engine<'m> {
    manifest: &'m Manifest,
    state: StateDir,
    cache: Cache,
    /// The shared cache of `[cache] remote` or `LAMINA_REMOTE_CACHE`, if any.
    remote: Option<std::sync::Arc<crate::remote::RemoteCache>>,
}

impl<'m> Engine<'m> {
    pub(super) fn open(manifest: &'m Manifest) -> Result<Engine<'m>> {
        let state = manifest.state_dir();
        fs_err::create_dir_all(&state.path)?;
        let cache = Cache::open(&state.cache_db())
            .with_context(|| format!("cannot open the cache `{}`", state.cache_db().display()))?;
        let remote = super::cache::open_remote(manifest)?.map(std::sync::Arc::new);
        Ok(Engine {
            manifest,
            state,
            cache,
            remote,
        })
    }

    /// `options` with the project's shared cache.
    fn with_remote(&self, options: &BuildOptions) -> BuildOptions {
        BuildOptions {
            remote: self.remote.clone(),
            ..options.clone()
        }
    }

    pub(super) fn build_layer(
        &mut self,
        layer: &LayerConfig,
        options: &BuildOptions,
        bars: &Bars,
    ) -> Result<BuildReport> {
        let subject = Subject {
            owner: Owner::Layer(layer.name.clone()),
            root: self.manifest.layer_root(layer),
            sources: SourceMapping::layer(),
        };
        let options = self.with_remote(options);
        Ok(build::build(
            &self.state,
            &mut self.cache,
            &subject,
            &options,
            bars,
        )?)
    }

    /// A function's code folder, mapped to the zip root. The subject's root is the project root
    /// so that the source path in lamina.toml is used as written.
    pub(super) fn build_function(
        &mut self,
        function: &FunctionConfig,
        options: &BuildOptions,
        bars: &Bars,
    ) -> Result<BuildReport> {
        let parts = function.source.components().filter_map(|part| match part {
            std::path::Component::Normal(name) => Some(name.to_string_lossy()),
            _ => None,
        });
        let source = parts.collect::<Vec<_>>().join("/");
        let subject = Subject {
            owner: Owner::Function(function.name.clone()),
            root: self.manifest.root.clone(),
            sources: SourceMapping::function(&source),
        };
        let options = self.with_remote(options);
        Ok(build::build(
            &self.state,
            &mut self.cache,
            &subject,
            &options,
            bars,
        )?)
    }
}

/// The layers named on the command line, or all of them.
fn selected_layers<'m>(manifest: &'m Manifest, names: &[String]) -> Result<Vec<&'m LayerConfig>> {
    if names.is_empty() {
        return Ok(manifest.layers.values().collect());
    }
    let mut selected = Vec::new();
    for name in names {
        match manifest.layers.get(name) {
            Some(layer) => selected.push(layer),
            None => {
                let known: Vec<String> = manifest.layers.keys().cloned().collect();
                bail!(
                    "there is no layer `{name}` in lamina.toml; layers: {}",
                    output::list_or_none(&known)
                );
            }
        }
    }
    Ok(selected)
}

/// The work counters of several builds added up.
#[derive(Debug, Default, Serialize)]
pub(super) struct Totals {
    files_scanned: u64,
    files_hashed: u64,
    bytes_hashed: u64,
    files_read: u64,
    entries_compressed: u64,
    entries_reused: u64,
}

impl Totals {
    pub(super) fn add(&mut self, stats: &BuildStats) {
        self.files_scanned += stats.files_scanned;
        self.files_hashed += stats.files_hashed;
        self.bytes_hashed += stats.bytes_hashed;
        self.files_read += stats.files_read;
        self.entries_compressed += stats.entries_compressed;
        self.entries_reused += stats.entries_reused;
    }

    pub(super) fn describe(&self) -> String {
        format!(
            "scanned {} files, hashed {} ({}), compressed {} entries, {} file reads",
            self.files_scanned,
            self.files_hashed,
            output::bytes(self.bytes_hashed),
            self.entries_compressed,
            self.files_read
        )
    }
}

/// One built layer, as `build --json` prints it.
#[derive(Debug, Serialize)]
struct BuiltLayer {
    layer: String,
    digest: String,
    sha256: String,
    code_sha256: String,
    zip: String,
    entries: u64,
    unzipped_bytes: u64,
    status: BuildStatus,
}

impl BuiltLayer {
    fn new(name: &str, report: &BuildReport) -> Result<BuiltLayer> {
        let zip = report
            .zip
            .as_ref()
            .context("the engine reported no zip for a build")?;
        let path = report
            .zip_path
            .as_ref()
            .context("the engine reported no zip path")?;
        Ok(BuiltLayer {
            layer: name.to_string(),
            digest: report.digest.to_hex(),
            sha256: sha256_hex(&zip.sha256),
            code_sha256: code_sha256(&zip.sha256),
            zip: path.display().to_string(),
            entries: zip.entries,
            unzipped_bytes: zip.unzipped_bytes,
            status: report.status,
        })
    }
}

#[derive(Debug, Serialize)]
struct BuildOutput {
    /// With `--install`: what was installed, per layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    installs: Option<Vec<InstallReport>>,
    layers: Vec<BuiltLayer>,
    stats: Totals,
}

pub(super) fn run_build(context: &Context, args: BuildArgs, bars: &Bars) -> Result<()> {
    if !args.install && args.installs.is_given() {
        bail!("--offline and --find-links apply to installs: add --install");
    }
    let manifest = context.manifest()?;
    let layers = selected_layers(&manifest, &args.layers)?;
    let installs = match args.install {
        true => Some(install_layers(
            context,
            &manifest,
            &layers,
            &args.installs,
            bars,
        )?),
        false => None,
    };
    let mut engine = Engine::open(&manifest)?;
    let options = args.engine.options(false);
    let mut result = BuildOutput {
        installs,
        layers: Vec::new(),
        stats: Totals::default(),
    };
    for layer in layers {
        let report = engine.build_layer(layer, &options, bars)?;
        result.stats.add(&report.stats);
        result.layers.push(BuiltLayer::new(&layer.name, &report)?);
    }
    bars.clear();
    if context.json {
        return output::json(&result);
    }
    if result.layers.is_empty() {
        println!("no layers to build; add one with `lamina layer add NAME --runtime nodejs`");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = result
        .layers
        .iter()
        .map(|layer| {
            let status = serde_json::to_value(layer.status).unwrap_or_default();
            vec![
                layer.layer.clone(),
                status.as_str().unwrap_or_default().to_string(),
                layer.digest[..12].to_string(),
                layer.entries.to_string(),
                output::bytes(layer.unzipped_bytes),
                super::display_relative(layer.zip.as_ref(), &manifest.root),
            ]
        })
        .collect();
    output::table(
        &["LAYER", "STATUS", "DIGEST", "ENTRIES", "UNZIPPED", "ZIP"],
        &rows,
    );
    println!("{}", result.stats.describe());
    Ok(())
}

/// One layer, as `status --json` prints it.
#[derive(Debug, Serialize)]
struct LayerStatus {
    layer: String,
    #[serde(flatten)]
    state: SubjectStatus,
}

/// One function, as `status --json` prints it; `published` and `last_push` name no version.
#[derive(Debug, Serialize)]
struct FunctionStatus {
    function: String,
    #[serde(flatten)]
    state: SubjectStatus,
}

/// Where a layer or a function stands against its last build and its pushes.
#[derive(Debug, Serialize)]
struct SubjectStatus {
    digest: String,
    /// `changed` or `unchanged`, since the last build.
    status: &'static str,
    changes: Changes,
    /// `published` when this checkout pushed the current content to the target, else
    /// `not_pushed`.
    push_status: &'static str,
    /// The version holding the current content, when published.
    published: Option<PushedVersion>,
    /// The most recent push to the target, whatever its content.
    last_push: Option<PushedVersion>,
}

impl SubjectStatus {
    fn new(engine: &Engine, target: &str, owner: &Owner, report: BuildReport) -> Result<Self> {
        let published = pushed::published(&engine.cache, target, owner, &report.digest)?;
        let last_push = match published {
            Some(_) => None,
            None => pushed::last_pushed(&engine.cache, target, owner)?,
        };
        Ok(SubjectStatus {
            digest: report.digest.to_hex(),
            status: if report.changed {
                "changed"
            } else {
                "unchanged"
            },
            changes: report.changes,
            push_status: if published.is_some() {
                "published"
            } else {
                "not_pushed"
            },
            published: published.map(Into::into),
            last_push: last_push.map(Into::into),
        })
    }
}

/// A pushed layer version, as `status` shows it.
#[derive(Debug, Serialize)]
struct PushedVersion {
    version: Option<u64>,
    arn: Option<String>,
    digest: String,
    /// RFC 3339, UTC.
    pushed_at: String,
}

impl From<PushRecord> for PushedVersion {
    fn from(record: PushRecord) -> PushedVersion {
        let pushed_at = time::OffsetDateTime::from_unix_timestamp(record.pushed_at)
            .map(utc_timestamp)
            .unwrap_or_default();
        PushedVersion {
            version: record.version,
            arn: record.arn,
            digest: record.digest.to_hex(),
            pushed_at,
        }
    }
}

#[derive(Debug, Serialize)]
struct StatusOutput {
    /// The target the push columns refer to: `local`, `aws` or `aws:<region>`.
    target: String,
    layers: Vec<LayerStatus>,
    /// Every function, when no layer was named.
    functions: Vec<FunctionStatus>,
    stats: Totals,
}

pub(super) fn run_status(context: &Context, args: StatusArgs, bars: &Bars) -> Result<()> {
    let manifest = context.manifest()?;
    let layers = selected_layers(&manifest, &args.layers)?;
    let mut engine = Engine::open(&manifest)?;
    let options = args.engine.options(true);
    let target = pushed::target_key(context.target_kind(&manifest, args.target), &manifest);
    let mut result = StatusOutput {
        target,
        layers: Vec::new(),
        functions: Vec::new(),
        stats: Totals::default(),
    };
    for layer in layers {
        let report = engine.build_layer(layer, &options, bars)?;
        result.stats.add(&report.stats);
        let owner = Owner::Layer(layer.name.clone());
        let state = SubjectStatus::new(&engine, &result.target, &owner, report)?;
        let layer = layer.name.clone();
        result.layers.push(LayerStatus { layer, state });
    }
    let functions = match args.layers.is_empty() {
        true => manifest.functions.values().collect(),
        false => Vec::new(),
    };
    for function in functions {
        let report = engine.build_function(function, &options, bars)?;
        result.stats.add(&report.stats);
        let owner = Owner::Function(function.name.clone());
        let state = SubjectStatus::new(&engine, &result.target, &owner, report)?;
        let function = function.name.clone();
        result.functions.push(FunctionStatus { function, state });
    }
    bars.clear();
    if context.json {
        return output::json(&result);
    }
    let verbose = context.verbose > 0;
    for layer in &result.layers {
        let push = describe_push(&layer.state, &result.target);
        print_status(&layer.layer, &layer.state, &push, verbose);
    }
    for function in &result.functions {
        let name = format!("function {}", function.function);
        let push = describe_deploy(&function.state, &result.target);
        print_status(&name, &function.state, &push, verbose);
    }
    if context.verbose > 0 {
        println!("{}", result.stats.describe());
    }
    Ok(())
}

fn print_status(name: &str, state: &SubjectStatus, push: &str, verbose: bool) {
    let changes = &state.changes;
    let counts = [
        (changes.added.len(), "added"),
        (changes.removed.len(), "removed"),
        (changes.modified.len(), "modified"),
    ];
    let counts: Vec<String> = counts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    let built = match counts.is_empty() {
        true => state.status.to_string(),
        false => format!("{} ({})", state.status, counts.join(", ")),
    };
    println!("{name}: {built}; {push}");
    if verbose {
        let lists = [
            (&changes.added, '+'),
            (&changes.removed, '-'),
            (&changes.modified, '~'),
        ];
        for (paths, mark) in lists {
            paths.iter().for_each(|path| println!("  {mark} {path}"));
        }
    }
}

/// `published as version 3 on local`, or `not pushed to local (last pushed: version 2)`.
fn describe_push(layer: &SubjectStatus, target: &str) -> String {
    let version = |pushed: &PushedVersion| match pushed.version {
        Some(version) => format!("version {version}"),
        None => "an unnumbered version".to_string(),
    };
    match (&layer.published, &layer.last_push) {
        (Some(published), _) => format!("published as {} on {target}", version(published)),
        (None, Some(last)) => format!(
            "not pushed to {target} (last pushed: {}, {})",
            version(last),
            last.pushed_at
        ),
        (None, None) => format!("not pushed to {target}"),
    }
}

/// `deployed on local`, or `not deployed to local (last deployed: 2026-12-04T10:00:00Z)`.
fn describe_deploy(function: &SubjectStatus, target: &str) -> String {
    match (&function.published, &function.last_push) {
        (Some(_), _) => format!("deployed on {target}"),
        (None, Some(last)) => format!(
            "not deployed to {target} (last deployed: {})",
            last.pushed_at
        ),
        (None, None) => format!("not deployed to {target}"),
    }
}

/// Runs the dependency installs of `layers` before the engine scans them, and says what they
/// did. The first failure stops everything, before anything is built or published.
pub(super) fn install_layers(
    context: &Context,
    manifest: &Manifest,
    layers: &[&LayerConfig],
    args: &InstallArgs,
    bars: &Bars,
) -> Result<Vec<InstallReport>> {
    let options = args.options(context)?;
    let state = manifest.state_dir();
    let mut reports = Vec::new();
    for layer in layers {
        let report = install::prepare_layer(&manifest.root, &state.path, layer, &options, bars)
            .with_context(|| {
                format!("cannot install the dependencies of layer `{}`", layer.name)
            })?;
        bars.clear();
        if !context.json {
            print_installs(&report, context.verbose > 0);
        }
        reports.push(report);
    }
    if options.offline {
        output::note(
            "offline: only packages already installed or in the installers' caches were used",
        );
    }
    Ok(reports)
}

/// One line per install that did something; with `verbose`, also those that found nothing to do.
fn print_installs(report: &InstallReport, verbose: bool) {
    for install in &report.installs {
        let quiet = matches!(
            install.outcome,
            InstallOutcome::UpToDate | InstallOutcome::NoDependencies
        );
        if verbose || !quiet {
            println!("layer `{}`: {}", report.layer, describe_install(install));
        }
    }
}

fn describe_install(install: &Install) -> String {
    let what = match install.ecosystem {
        Ecosystem::Node => "node dependencies",
        Ecosystem::Python => "python dependencies",
    };
    match &install.outcome {
        InstallOutcome::UpToDate => format!("{what} up to date ({})", install.target),
        InstallOutcome::NoDependencies => format!("no {what} declared in {}", install.manifest),
        InstallOutcome::Adopted => format!(
            "{what} in {} match {}; recorded as installed",
            install.target, install.manifest
        ),
        InstallOutcome::Removed { .. } => format!(
            "{} declares no {what}; removed the packages in {}",
            install.manifest, install.target
        ),
        InstallOutcome::Installed {
            reason,
            command,
            lock_written,
        } => {
            // The tool and its verb; the flags (with staging paths) are in `--json` and the log.
            let verb: Vec<&str> = command
                .iter()
                .map(String::as_str)
                .take_while(|word| !word.starts_with("--"))
                .collect();
            let mut line = format!(
                "installed {what} with `{}` ({})",
                verb.join(" "),
                describe_reason(*reason)
            );
            if let Some(lock) = lock_written {
                line.push_str(&format!("; wrote {lock}: commit it"));
            }
            line
        }
    }
}

fn describe_reason(reason: InstallReason) -> &'static str {
    match reason {
        InstallReason::NotInstalled => "none were installed before",
        InstallReason::NoRecord => "lamina had no record of the installed packages",
        InstallReason::DependenciesChanged => "the declared dependencies changed",
        InstallReason::TreeChanged => "the installed packages were changed by something else",
    }
}

/// Every layer and function of the project, built, for `push`.
pub(super) struct ProjectBuild {
    /// By layer name.
    pub(super) layers: BTreeMap<String, BuildReport>,
    /// By function name.
    pub(super) functions: BTreeMap<String, BuildReport>,
    pub(super) stats: Totals,
}

/// Builds every layer and function of the project.
pub(super) fn build_everything(
    manifest: &Manifest,
    engine_args: &EngineArgs,
    bars: &Bars,
) -> Result<ProjectBuild> {
    let mut engine = Engine::open(manifest)?;
    let options = engine_args.options(false);
    let mut built = ProjectBuild {
        layers: BTreeMap::new(),
        functions: BTreeMap::new(),
        stats: Totals::default(),
    };
    for layer in manifest.layers.values() {
        let report = engine.build_layer(layer, &options, bars)?;
        built.stats.add(&report.stats);
        built.layers.insert(layer.name.clone(), report);
    }
    for function in manifest.functions.values() {
        let report = engine.build_function(function, &options, bars)?;
        built.stats.add(&report.stats);
        built.functions.insert(function.name.clone(), report);
    }
    Ok(built)
}
