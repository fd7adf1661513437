//! `lamina layer ...`: layers in the manifest, and their published versions on a target.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, Context as _, Result};
use serde::Serialize;

use super::{display_relative, output, prompt, Context};
use crate::access::{AccessSet, Principal};
use crate::deploy::versions::{self, AppliedAccess, ApplyTo, RemoveSelection, VersionInfo};
use crate::deploy::{self, DeployError, Target};
use crate::manifest::{
    check, default_layer_path, LayerConfig, Manifest, ManifestError, RuntimeFamily, ValueError,
    ARCHITECTURES, DEFAULT_NODE_RUNTIME, DEFAULT_PYTHON_RUNTIME,
};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum LayerCommand {
    /// Add a layer: its folder (lib/nodejs, lib/python, opt) and its entry in lamina.toml.
    Add(AddArgs),
    /// Change who may use a layer, now or for its existing versions.
    Update(UpdateArgs),
    /// Remove a layer from lamina.toml, or delete published versions of it.
    Remove(RemoveArgs),
    /// List the project's layers.
    List,
    /// List a layer's published versions and the functions that use them.
    Versions(VersionsArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct AddArgs {
    /// The layer's name: 1 to 64 characters of A-Z, a-z, 0-9, `_` and `-`.
    name: Option<String>,
    /// Compatible runtimes: `nodejs` (nodejs22.x), `python` (python3.12) or Lambda runtime ids
    /// such as nodejs20.x.
    #[arg(long = "runtime", value_name = "RUNTIME", num_args = 1.., value_delimiter = ',')]
    runtimes: Vec<String>,
    /// Architectures: x86_64 (the default) and/or arm64.
    #[arg(long = "arch", value_name = "ARCH", num_args = 1.., value_delimiter = ',')]
    architectures: Vec<String>,
    /// Who else may use its versions: `account:ID`, `org:ID` or `public`.
    #[arg(long, value_name = "ACCESS", num_args = 1..)]
    access: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct UpdateArgs {
    name: String,
    /// Grant access: `account:ID`, `org:ID` or `public`. Public access is exclusive: granting
    /// accounts or organizations to a public layer removes public, and the reverse replaces them.
    #[arg(long, value_name = "ACCESS", num_args = 1..)]
    access: Vec<String>,
    /// Take access away: `account:ID`, `org:ID` or `public`.
    #[arg(long, value_name = "ACCESS", num_args = 1..)]
    revoke: Vec<String>,
    /// Which published versions get the new access: `future` (only versions published from now
    /// on, the default), `latest`, `all`, or a version number.
    #[arg(long, value_name = "WHICH", value_parser = parse_apply_to)]
    apply_to: Option<ApplyTo>,
    /// The deploy target whose versions `--apply-to` changes; default: lamina.toml's.
    #[arg(long, value_name = "local|aws")]
    target: Option<crate::manifest::TargetKind>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct RemoveArgs {
    name: String,
    /// Delete these published versions instead of removing the layer from lamina.toml.
    #[arg(long = "version", value_name = "N", num_args = 1.., conflicts_with = "all")]
    versions: Vec<u64>,
    /// Delete every published version of the layer.
    #[arg(long)]
    all: bool,
    /// Delete versions without asking.
    #[arg(long)]
    yes: bool,
    /// The deploy target to delete versions from; default: lamina.toml's.
    #[arg(long, value_name = "local|aws")]
    target: Option<crate::manifest::TargetKind>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct VersionsArgs {
    name: String,
    /// The deploy target to ask; default: lamina.toml's.
    #[arg(long, value_name = "local|aws")]
    target: Option<crate::manifest::TargetKind>,
}

pub(crate) fn run(context: &Context, command: LayerCommand) -> Result<()> {
    match command {
        LayerCommand::Add(args) => add(context, args),
        LayerCommand::Update(args) => update(context, args),
        LayerCommand::Remove(args) => remove(context, args),
        LayerCommand::List => list(context),
        LayerCommand::Versions(args) => list_versions(context, args),
    }
}

fn parse_apply_to(value: &str) -> Result<ApplyTo, String> {
    match value {
        "future" => Ok(ApplyTo::Future),
        "latest" => Ok(ApplyTo::Latest),
        "all" => Ok(ApplyTo::All),
        number => match number.parse::<u64>() {
            Ok(version) if version >= 1 => Ok(ApplyTo::Version(version)),
            _ => Err(format!(
                "`{value}`: use future, latest, all or a version number"
            )),
        },
    }
}

/// A runtime given on the command line: `nodejs` and `python` stand for the current default of
/// their family, and a note says which.
pub(super) fn resolve_runtime(value: &str) -> Result<String, ValueError> {
    let resolved = match value {
        "nodejs" | "node" => DEFAULT_NODE_RUNTIME,
        "python" => DEFAULT_PYTHON_RUNTIME,
        other => {
            check::runtime(other)?;
            return Ok(other.to_string());
        }
    };
    output::note(format!(
        "`{value}` means {resolved}; pass a runtime id (such as {}) for another version",
        if resolved == DEFAULT_NODE_RUNTIME {
            "nodejs20.x"
        } else {
            "python3.13"
        }
    ));
    Ok(resolved.to_string())
}

/// Principals given to one flag, each parsed, without duplicates.
fn parse_principals(values: &[String], flag: &str) -> Result<Vec<Principal>> {
    let mut seen = BTreeSet::new();
    let mut principals = Vec::new();
    for value in values {
        let principal = Principal::parse(value).with_context(|| flag.to_string())?;
        if !seen.insert(principal.clone()) {
            bail!("{flag}: `{value}` is given twice");
        }
        principals.push(principal);
    }
    Ok(principals)
}

fn add(context: &Context, args: AddArgs) -> Result<()> {
    let (mut document, manifest) = context.manifest_document()?;
    let name = match args.name {
        Some(name) => name,
        None => prompt::ask("Layer name", None, "the layer's NAME", |answer| {
            check::name(answer).map_err(|error| error.to_string())
        })?,
    };
    check::name(&name).context("layer name")?;
    if manifest.layers.contains_key(&name) {
        return Err(ManifestError::DuplicateLayer {
            name,
            path: manifest.manifest_path(),
        }
        .into());
    }
    let layer = LayerConfig {
        runtimes: layer_runtimes(&args.runtimes)?,
        architectures: architectures(&args.architectures)?,
        access: AccessSet::from_principals(&parse_principals(&args.access, "--access")?)
            .context("--access")?,
        path: default_layer_path(&name),
        name,
    };
    document.add_layer(&layer)?;
    let root = manifest.root.join(&layer.path);
    let created = scaffold_layer(&root, &layer)?;
    document.save()?;
    tracing::info!(layer = %layer.name, "layer added");

    if context.json {
        return output::json(&LayerListing::new(&manifest, &layer));
    }
    let created: Vec<String> = created
        .iter()
        .map(|path| display_relative(path, &manifest.root))
        .collect();
    println!(
        "added layer `{}` in {} (runtimes: {}; architectures: {}; access: {})",
        layer.name,
        layer.path.display(),
        output::list_or_none(&layer.runtimes),
        layer.architectures.join(", "),
        layer.access
    );
    println!("created: {}", output::list_or_none(&created));
    print_next_steps(&layer);
    Ok(())
}

/// The runtimes of a new layer, asked for when none were given.
fn layer_runtimes(values: &[String]) -> Result<Vec<String>> {
    let values = match values.is_empty() {
        false => values.to_vec(),
        true => {
            let answer = prompt::ask(
                "Runtimes (nodejs, python, or runtime ids; separated by spaces)",
                Some("nodejs"),
                "--runtime nodejs|python|RUNTIME_ID",
                |answer| {
                    let all = answer.split_whitespace().map(check_runtime_word);
                    all.collect::<Result<Vec<()>, String>>().map(drop)
                },
            )?;
            answer.split_whitespace().map(str::to_string).collect()
        }
    };
    let mut runtimes: Vec<String> = Vec::new();
    for value in &values {
        let runtime = resolve_runtime(value).context("--runtime")?;
        if runtimes.contains(&runtime) {
            bail!("--runtime: `{runtime}` is given twice");
        }
        runtimes.push(runtime);
    }
    Ok(runtimes)
}

fn check_runtime_word(word: &str) -> Result<(), String> {
    match word {
        "nodejs" | "node" | "python" => Ok(()),
        other => check::runtime(other).map_err(|error| error.to_string()),
    }
}

pub(super) fn architectures(values: &[String]) -> Result<Vec<String>> {
    if values.is_empty() {
        return Ok(vec![ARCHITECTURES[0].to_string()]);
    }
    let mut out: Vec<String> = Vec::new();
    for value in values {
        check::architecture(value).context("--arch")?;
        if out.contains(value) {
            bail!("--arch: `{value}` is given twice");
        }
        out.push(value.clone());
    }
    Ok(out)
}

/// Creates the layer's folders and starter files; files that exist are left alone. Returns what
/// was created.
fn scaffold_layer(root: &Path, layer: &LayerConfig) -> Result<Vec<std::path::PathBuf>> {
    let mut created = Vec::new();
    let families: Vec<RuntimeFamily> = layer
        .runtimes
        .iter()
        .filter_map(|runtime| RuntimeFamily::of(runtime))
        .collect();
    if families.contains(&RuntimeFamily::Node) {
        let package_json = serde_json::json!({
            "name": format!("{}-layer", layer.name.to_lowercase()),
            "version": "1.0.0",
            "private": true,
            "description": format!("Libraries of the {} layer", layer.name),
            "dependencies": {}
        });
        let text = serde_json::to_string_pretty(&package_json)? + "\n";
        create_file(&root.join("lib/nodejs/package.json"), &text, &mut created)?;
    }
    let python = layer
        .runtimes
        .iter()
        .find(|runtime| runtime.starts_with("python"));
    if let Some(runtime) = python {
        let version = runtime.trim_start_matches("python");
        let pipfile = format!(
            "[[source]]\nurl = \"https://pypi.org/simple\"\nverify_ssl = true\nname = \"pypi\"\n\n\
             [packages]\n\n[requires]\npython_version = \"{version}\"\n"
        );
        create_file(&root.join("lib/python/Pipfile"), &pipfile, &mut created)?;
    }
    let opt = root.join("opt");
    if !opt.exists() {
        fs_err::create_dir_all(&opt)?;
        created.push(opt);
    }
    Ok(created)
}

fn create_file(path: &Path, text: &str, created: &mut Vec<std::path::PathBuf>) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    fs_err::create_dir_all(path.parent().expect("a file below the layer root"))?;
    fs_err::write(path, text)?;
    created.push(path.to_path_buf());
    Ok(())
}

fn print_next_steps(layer: &LayerConfig) {
    let path = layer.path.display();
    let name = &layer.name;
    println!("next steps:");
    if layer
        .runtimes
        .iter()
        .any(|runtime| runtime.starts_with("nodejs"))
    {
        println!("  - node libraries: declare them in {path}/lib/nodejs/package.json (or run");
        println!("    `npm install NAME` there to add and lock them); `lamina push` installs them");
        println!("    with `npm ci` when the lock changes (they ship as /opt/nodejs/node_modules)");
    }
    if layer
        .runtimes
        .iter()
        .any(|runtime| runtime.starts_with("python"))
    {
        println!("  - python libraries: list them in {path}/lib/python/Pipfile and lock them");
        println!("    with `pipenv lock`; `lamina push` installs the lock's wheels for the Lambda");
        println!(
            "    platform into lib/python/lib/python3.X/site-packages (they ship as /opt/python)"
        );
    }
    println!("  - shared files: put them in {path}/opt/ (they ship as /opt: for example");
    println!("    {path}/opt/config/settings.json is /opt/config/settings.json on Lambda)");
    println!("  - attach it: lamina function add NAME --runtime RUNTIME --handler HANDLER \\");
    println!("      --layer {name}@latest");
    println!("  - publish: lamina push");
}

#[derive(Debug, Serialize)]
struct UpdateReport {
    layer: String,
    access: Vec<String>,
    changed: bool,
    notices: Vec<String>,
    applied: Vec<AppliedAccess>,
}

fn update(context: &Context, args: UpdateArgs) -> Result<()> {
    if args.access.is_empty() && args.revoke.is_empty() && args.apply_to.is_none() {
        bail!(
            "nothing to update for layer `{}`: pass --access, --revoke or --apply-to",
            args.name
        );
    }
    let (mut document, mut manifest) = context.manifest_document()?;
    let before = find_layer(&manifest, &args.name)?.access.clone();
    let grants = parse_principals(&args.access, "--access")?;
    let revokes = parse_principals(&args.revoke, "--revoke")?;
    if let Some(both) = grants.iter().find(|principal| revokes.contains(principal)) {
        bail!("`{both}` is both granted (--access) and revoked (--revoke)");
    }

    let mut access = before.clone();
    let absent = access.revoke(&revokes);
    let notice = access.grant(&grants).context("--access")?;
    let mut notices = Vec::new();
    for principal in absent {
        let text = format!(
            "`{principal}` had no access to layer `{}`; nothing to revoke",
            args.name
        );
        output::warning(&text);
        notices.push(text);
    }
    if let Some(notice) = notice {
        let text = format!("layer `{}`: {notice}", args.name);
        output::note(&text);
        notices.push(text);
    }
    // The target is asked before lamina.toml changes, so that a version that does not exist, or
    // a target that cannot be reached, leaves the manifest as it was.
    let target = match args.apply_to {
        None | Some(ApplyTo::Future) => None,
        Some(apply_to) => {
            let mut target = open_target(context, &manifest, args.target)?;
            versions::chosen_versions(target.as_mut(), &args.name, apply_to)?;
            Some((target, apply_to))
        }
    };
    let changed = access != before;
    if changed {
        document.set_layer_access(&args.name, &access)?;
        manifest = document.save()?;
    }

    let applied = match target {
        None => Vec::new(),
        Some((mut target, apply_to)) => {
            versions::apply_access(&manifest, target.as_mut(), &args.name, apply_to)?
        }
    };
    let report = UpdateReport {
        layer: args.name,
        access: access.to_strings(),
        changed,
        notices,
        applied,
    };
    if context.json {
        return output::json(&report);
    }
    print_update(&report, &access, args.apply_to);
    Ok(())
}

fn print_update(report: &UpdateReport, access: &AccessSet, apply_to: Option<ApplyTo>) {
    let verb = if report.changed { "is now" } else { "stays" };
    println!(
        "layer `{}`: access {verb} {access} (the owning account always has access)",
        report.layer
    );
    for applied in &report.applied {
        let change = &applied.change;
        let what = match change.is_empty() {
            true => "already matched".to_string(),
            false => format!(
                "added {}; removed {}",
                output::list_or_none(&change.added),
                output::list_or_none(&change.removed)
            ),
        };
        println!("version {}: {what}", applied.version);
        for foreign in &change.foreign {
            output::warning(format!(
                "version {}: statement `{foreign}` was not created by lamina and was left alone",
                applied.version
            ));
        }
    }
    let applies_now = !matches!(apply_to, None | Some(ApplyTo::Future));
    if applies_now && report.applied.is_empty() {
        println!(
            "layer `{}` has no published versions yet; new versions get this access",
            report.layer
        );
    }
    if report.changed && !applies_now {
        println!(
            "new versions get this access; existing versions keep theirs (pass --apply-to \
             latest, all or a version number to change them)"
        );
    }
}

#[derive(Debug, Serialize)]
struct RemoveReport {
    layer: String,
    /// `manifest` when the layer left lamina.toml; `versions` when versions were deleted.
    removed_from: &'static str,
    versions: Vec<u64>,
}

fn remove(context: &Context, args: RemoveArgs) -> Result<()> {
    if args.versions.is_empty() && !args.all {
        return remove_from_manifest(context, &args.name);
    }
    let manifest = context.manifest()?;
    let mut target = open_target(context, &manifest, args.target)?;
    let existing: Vec<u64> = target
        .layer_versions(&args.name)?
        .iter()
        .map(|version| version.version)
        .collect();
    let selection = match args.all {
        true => RemoveSelection::All,
        false => RemoveSelection::Versions(args.versions.clone()),
    };
    let chosen = match &selection {
        RemoveSelection::All => existing.clone(),
        RemoveSelection::Versions(numbers) => numbers.clone(),
    };
    if chosen.is_empty() {
        println!(
            "layer `{}` has no versions on {}; nothing to remove",
            args.name,
            target.describe()
        );
        return Ok(());
    }
    check_removable(&manifest, &args.name, &chosen, &existing)?;
    if !args.yes {
        confirm_removal(&args.name, &chosen, target.as_ref())?;
    }

    let removed = versions::remove_versions(&manifest, target.as_mut(), &args.name, &selection)?;
    let report = RemoveReport {
        layer: args.name,
        removed_from: "versions",
        versions: removed,
    };
    if context.json {
        return output::json(&report);
    }
    let numbers: Vec<String> = report.versions.iter().map(u64::to_string).collect();
    println!(
        "removed version(s) {} of layer `{}` from {}; functions already deployed with them keep \
         them",
        numbers.join(", "),
        report.layer,
        target.describe()
    );
    Ok(())
}

/// Refuses before asking: a version that does not exist or that a function pins.
fn check_removable(
    manifest: &Manifest,
    layer: &str,
    chosen: &[u64],
    existing: &[u64],
) -> Result<()> {
    for &version in chosen {
        if !existing.contains(&version) {
            let (layer, existing) = (layer.to_string(), existing.to_vec());
            return Err(DeployError::NoSuchVersion {
                layer,
                version,
                existing,
            }
            .into());
        }
        let functions = versions::pinning_functions(manifest, layer, version);
        if !functions.is_empty() {
            return Err(DeployError::VersionPinned {
                layer: layer.to_string(),
                version,
                functions,
            }
            .into());
        }
    }
    Ok(())
}

fn confirm_removal(layer: &str, chosen: &[u64], target: &dyn Target) -> Result<()> {
    let numbers: Vec<String> = chosen.iter().map(u64::to_string).collect();
    let question = format!(
        "Delete version(s) {} of layer `{layer}` from {}? This cannot be undone",
        numbers.join(", "),
        target.describe()
    );
    let refusal = "deleting layer versions needs confirmation: pass --yes to delete them \
                   without a terminal";
    match prompt::confirm(&question, false, refusal)? {
        true => Ok(()),
        false => bail!("nothing was deleted"),
    }
}

fn remove_from_manifest(context: &Context, name: &str) -> Result<()> {
    let (mut document, manifest) = context.manifest_document()?;
    let layer = find_layer(&manifest, name)?.clone();
    document.remove_layer(name)?;
    document.save()?;
    tracing::info!(layer = name, "layer removed from the manifest");
    let report = RemoveReport {
        layer: name.to_string(),
        removed_from: "manifest",
        versions: vec![],
    };
    if context.json {
        return output::json(&report);
    }
    println!(
        "removed layer `{name}` from lamina.toml; its folder {} is left in place, and versions \
         already published stay on the target (delete them with `lamina layer remove {name} \
         --all`)",
        layer.path.display()
    );
    Ok(())
}

/// A layer as `layer list` shows it.
#[derive(Debug, Serialize)]
struct LayerListing {
    name: String,
    path: String,
    runtimes: Vec<String>,
    architectures: Vec<String>,
    access: Vec<String>,
    used_by: Vec<String>,
}

impl LayerListing {
    fn new(manifest: &Manifest, layer: &LayerConfig) -> LayerListing {
        let users = manifest.functions_using(&layer.name);
        LayerListing {
            name: layer.name.clone(),
            path: layer.path.display().to_string(),
            runtimes: layer.runtimes.clone(),
            architectures: layer.architectures.clone(),
            access: layer.access.to_strings(),
            used_by: users.iter().map(|function| function.name.clone()).collect(),
        }
    }
}

fn list(context: &Context) -> Result<()> {
    let manifest = context.manifest()?;
    let listings: Vec<LayerListing> = manifest
        .layers
        .values()
        .map(|layer| LayerListing::new(&manifest, layer))
        .collect();
    if context.json {
        return output::json(&listings);
    }
    if listings.is_empty() {
        println!("no layers yet; add one with `lamina layer add NAME --runtime nodejs`");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = listings
        .iter()
        .map(|layer| {
            let access = manifest.layers[&layer.name].access.to_string();
            vec![
                layer.name.clone(),
                layer.path.clone(),
                output::list_or_none(&layer.runtimes),
                layer.architectures.join(","),
                access,
                output::list_or_none(&layer.used_by),
            ]
        })
        .collect();
    output::table(
        &["LAYER", "PATH", "RUNTIMES", "ARCH", "ACCESS", "USED BY"],
        &rows,
    );
    Ok(())
}

#[derive(Debug, Serialize)]
struct VersionsReport<'a> {
    layer: &'a str,
    target: String,
    versions: Vec<VersionInfo>,
}

fn list_versions(context: &Context, args: VersionsArgs) -> Result<()> {
    let manifest = context.manifest()?;
    let mut target = open_target(context, &manifest, args.target)?;
    let infos = versions::list_versions(&manifest, target.as_mut(), &args.name)?;
    let report = VersionsReport {
        layer: &args.name,
        target: target.describe(),
        versions: infos,
    };
    if context.json {
        return output::json(&report);
    }
    if report.versions.is_empty() {
        let known = manifest.layers.contains_key(&args.name);
        let hint = if known {
            "; publish one with `lamina push`"
        } else {
            " (nor in lamina.toml)"
        };
        println!(
            "layer `{}` has no versions on {}{hint}",
            args.name, report.target
        );
        return Ok(());
    }
    let rows: Vec<Vec<String>> = report.versions.iter().map(version_row).collect();
    output::table(
        &[
            "VERSION",
            "DIGEST",
            "RUNTIMES",
            "ARCH",
            "DESCRIPTION",
            "CREATED",
            "ACCESS",
            "USED BY",
        ],
        &rows,
    );
    Ok(())
}

fn version_row(info: &VersionInfo) -> Vec<String> {
    let version = &info.version;
    let digest = match &version.digest {
        Some(digest) => digest.short(),
        None => format!(
            "sha256:{}",
            &version.code_sha256[..12.min(version.code_sha256.len())]
        ),
    };
    let users: Vec<String> = info
        .used_by
        .iter()
        .map(|usage| {
            let how: Vec<&str> = [(usage.pinned, "pinned"), (usage.deployed, "deployed")]
                .iter()
                .filter(|(is, _)| *is)
                .map(|(_, word)| *word)
                .collect();
            format!("{} ({})", usage.function, how.join(", "))
        })
        .collect();
    vec![
        version.version.to_string(),
        digest,
        output::list_or_none(&version.runtimes),
        output::list_or_none(&version.architectures),
        version.description.clone(),
        version.created.clone(),
        version.access.to_string(),
        output::list_or_none(&users),
    ]
}

fn find_layer<'m>(manifest: &'m Manifest, name: &str) -> Result<&'m LayerConfig> {
    manifest.layers.get(name).ok_or_else(|| {
        let known: Vec<String> = manifest.layers.keys().cloned().collect();
        ManifestError::UnknownLayer {
            name: name.to_string(),
            path: manifest.manifest_path(),
            known: output::list_or_none(&known),
        }
        .into()
    })
}

pub(super) fn open_target(
    context: &Context,
    manifest: &Manifest,
    flag: Option<crate::manifest::TargetKind>,
) -> Result<Box<dyn Target>> {
    let kind = context.target_kind(manifest, flag);
    Ok(deploy::open_target(kind, manifest, &manifest.state_dir())?)
}
