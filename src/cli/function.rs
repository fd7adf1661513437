//! `lamina function ...`: functions in the manifest and their code folders.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde::Serialize;

use super::layer::{architectures, open_target, resolve_runtime};
use super::{display_relative, output, prompt, Context};
use crate::deploy::Target;
use crate::manifest::{
    check, default_function_source, FunctionConfig, LayerRef, Manifest, ManifestError,
    RuntimeFamily, TargetKind, DEFAULT_NODE_RUNTIME, MAX_LAYERS_PER_FUNCTION,
};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum FunctionCommand {
    /// Add a function: its code folder with a minimal handler, and its entry in lamina.toml.
    Add(AddArgs),
    /// Change the layers a function uses.
    Update(UpdateArgs),
    /// Remove a function from lamina.toml and delete it from the target (its code folder is
    /// kept).
    Remove(RemoveArgs),
    /// List the project's functions.
    List,
}

#[derive(Debug, clap::Args)]
pub(crate) struct AddArgs {
    /// The function's name: 1 to 64 characters of A-Z, a-z, 0-9, `_` and `-`.
    name: Option<String>,
    /// Its Lambda runtime id, such as nodejs22.x or python3.12.
    #[arg(long, value_name = "RUNTIME")]
    runtime: Option<String>,
    /// Its handler, such as index.handler (node) or handler.main (python).
    #[arg(long, value_name = "HANDLER")]
    handler: Option<String>,
    /// Layers in order of application (a later layer's file wins): `NAME@latest`, `NAME@N` or a
    /// layer version ARN.
    #[arg(long = "layer", value_name = "REF", num_args = 1..)]
    layers: Vec<String>,
    /// The IAM role ARN the function runs as (needed on AWS).
    #[arg(long, value_name = "ARN")]
    role: Option<String>,
    /// The architecture: x86_64 (the default) or arm64.
    #[arg(long = "arch", value_name = "ARCH", num_args = 1.., value_delimiter = ',')]
    architectures: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct UpdateArgs {
    /// The function's name; asked for when missing and stdin is a terminal.
    name: Option<String>,
    /// The new layer list, in order of application: `NAME@latest`, `NAME@N` or an ARN. Asked
    /// for when neither this nor --no-layers is given and stdin is a terminal.
    #[arg(long = "layer", value_name = "REF", num_args = 1..)]
    layers: Vec<String>,
    /// Use no layers at all.
    #[arg(long, conflicts_with = "layers")]
    no_layers: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct RemoveArgs {
    /// The function's name; asked for when missing and stdin is a terminal.
    name: Option<String>,
    /// Delete the deployed function without asking.
    #[arg(long, short = 'y')]
    yes: bool,
    /// The deploy target to delete the function from; default: lamina.toml's.
    #[arg(long, value_name = "local|aws")]
    target: Option<TargetKind>,
    /// Only remove it from lamina.toml, and leave a deployed function on the target.
    #[arg(long, conflicts_with_all = ["yes", "target"])]
    keep_deployed: bool,
}

pub(crate) fn run(context: &Context, command: FunctionCommand) -> Result<()> {
    match command {
        FunctionCommand::Add(args) => add(context, args),
        FunctionCommand::Update(args) => update(context, args),
        FunctionCommand::Remove(args) => remove(context, args),
        FunctionCommand::List => list(context),
    }
}

/// A function as `function list` shows it.
#[derive(Debug, Serialize)]
struct FunctionListing {
    name: String,
    runtime: String,
    handler: String,
    source: String,
    layers: Vec<String>,
    architectures: Vec<String>,
    role: Option<String>,
}

impl From<&FunctionConfig> for FunctionListing {
    fn from(function: &FunctionConfig) -> FunctionListing {
        FunctionListing {
            name: function.name.clone(),
            runtime: function.runtime.clone(),
            handler: function.handler.clone(),
            source: function.source.display().to_string(),
            layers: function.layers.iter().map(ToString::to_string).collect(),
            architectures: function.architectures.clone(),
            role: function.role.clone(),
        }
    }
}

fn add(context: &Context, args: AddArgs) -> Result<()> {
    let (mut document, manifest) = context.manifest_document()?;
    let name = match args.name {
        Some(name) => name,
        None => prompt::ask("Function name", None, "the function's NAME", |answer| {
            check::name(answer).map_err(|error| error.to_string())
        })?,
    };
    check::name(&name).context("function name")?;
    if manifest.functions.contains_key(&name) {
        let path = manifest.manifest_path();
        return Err(ManifestError::DuplicateFunction { name, path }.into());
    }
    let runtime = match args.runtime {
        Some(runtime) => runtime,
        None => prompt::ask(
            "Runtime",
            Some(DEFAULT_NODE_RUNTIME),
            "--runtime RUNTIME_ID",
            |answer| check::runtime(answer).map_err(|error| error.to_string()),
        )?,
    };
    let runtime = resolve_runtime(&runtime).context("--runtime")?;
    let handler = match args.handler {
        Some(handler) => handler,
        None => {
            let example = check::example_handler(&runtime);
            prompt::ask("Handler", Some(example), "--handler HANDLER", |answer| {
                check::handler(answer, &runtime).map_err(|error| error.to_string())
            })?
        }
    };
    check::handler(&handler, &runtime).context("--handler")?;
    if let Some(role) = &args.role {
        check::role(role).context("--role")?;
    }

    let architectures = architectures(&args.architectures)?;
    if architectures.len() > 1 {
        bail!("--arch: a function runs on one architecture; give `x86_64` or `arm64`");
    }
    let function = FunctionConfig {
        source: default_function_source(&name),
        layers: parse_refs(&args.layers)?,
        architectures,
        role: args.role,
        name,
        runtime,
        handler,
    };
    document.add_function(&function)?;
    document.manifest()?;
    let created = scaffold_function(&manifest.root, &function)?;
    let manifest = document.save()?;
    warn_about_runtimes(&manifest, &function.name);
    tracing::info!(function = %function.name, "function added");

    if context.json {
        return output::json(&FunctionListing::from(&function));
    }
    print_added(&manifest, &function, created.as_deref());
    Ok(())
}

fn print_added(manifest: &Manifest, function: &FunctionConfig, created: Option<&Path>) {
    let layers: Vec<String> = function.layers.iter().map(ToString::to_string).collect();
    println!(
        "added function `{}` ({}, handler {}; layers: {})",
        function.name,
        function.runtime,
        function.handler,
        output::list_or_none(&layers)
    );
    let source = function.source.display();
    match created {
        Some(file) => println!("created {}", display_relative(file, &manifest.root)),
        None => println!("put the function's code in {source}"),
    }
    println!("next steps:");
    println!("  code:    edit the files in {source}; that folder is the function's zip");
    println!(
        "  layers:  lamina function update {} --layer NAME@latest ...   (later layers win)",
        function.name
    );
    println!("  publish: lamina push");
}

/// Parses `--layer` values, refusing a layer referenced twice (Lambda does not allow two
/// versions of one layer on a function).
fn parse_refs(values: &[String]) -> Result<Vec<LayerRef>> {
    let mut refs: Vec<LayerRef> = Vec::new();
    for value in values {
        let reference = LayerRef::parse(value).context("--layer")?;
        if refs
            .iter()
            .any(|known| known.layer_key() == reference.layer_key())
        {
            bail!("--layer: `{value}` refers to a layer that is already in the list");
        }
        refs.push(reference);
    }
    if refs.len() > MAX_LAYERS_PER_FUNCTION {
        bail!(
            "--layer: {} layers given; Lambda attaches at most {MAX_LAYERS_PER_FUNCTION} to a \
             function, external ARNs included",
            refs.len()
        );
    }
    Ok(refs)
}

/// Creates the code folder with a minimal handler for interpreted runtimes. Returns the file
/// created, if any; an existing file is left alone.
fn scaffold_function(root: &Path, function: &FunctionConfig) -> Result<Option<PathBuf>> {
    let source = root.join(&function.source);
    fs_err::create_dir_all(&source)?;
    let Some((file, entry)) = function.handler.rsplit_once('.') else {
        return Ok(None);
    };
    let (extension, text) = match RuntimeFamily::of(&function.runtime) {
        Some(RuntimeFamily::Node) => ("js", node_handler(&function.name, entry)),
        Some(RuntimeFamily::Python) => ("py", python_handler(&function.name, entry)),
        Some(RuntimeFamily::Ruby) => ("rb", ruby_handler(&function.name, entry)),
        _ => return Ok(None),
    };
    let path = source.join(format!("{file}.{extension}"));
    if path.exists() {
        return Ok(None);
    }
    fs_err::create_dir_all(path.parent().expect("a file below the code folder"))?;
    fs_err::write(&path, text)?;
    Ok(Some(path))
}

fn node_handler(name: &str, entry: &str) -> String {
    format!(
        "// The `{name}` function. Packages in the node layers it uses (lib/nodejs/node_modules)\n\
         // are on the module path: require them like any other.\n\
         exports.{entry} = async (event) => {{\n  \
           return {{ statusCode: 200, body: JSON.stringify({{ function: \"{name}\" }}) }};\n\
         }};\n"
    )
}

fn python_handler(name: &str, entry: &str) -> String {
    format!(
        "# The `{name}` function. Packages in the Python layers it uses (lib/python) are\n\
         # importable like any other; files from a layer's opt/ folder are under /opt.\n\n\n\
         def {entry}(event, context):\n    \
             return {{\"statusCode\": 200, \"body\": \"{name}\"}}\n"
    )
}

fn ruby_handler(name: &str, entry: &str) -> String {
    format!(
        "# The `{name}` function.\n\
         def {entry}(event:, context:)\n  \
           {{ statusCode: 200, body: '{name}' }}\n\
         end\n"
    )
}

/// Says now, rather than at push time, when a layer does not list the function's runtime.
fn warn_about_runtimes(manifest: &Manifest, name: &str) {
    let function = &manifest.functions[name];
    for reference in &function.layers {
        let Some(layer) = reference
            .layer_name()
            .and_then(|layer| manifest.layers.get(layer))
        else {
            continue;
        };
        if !layer.runtimes.is_empty() && !layer.runtimes.contains(&function.runtime) {
            output::warning(format!(
                "layer `{}` lists runtimes {}, not {}: push will refuse it for function `{name}` \
                 until {} is added to the layer's runtimes in lamina.toml",
                layer.name,
                layer.runtimes.join(", "),
                function.runtime,
                function.runtime
            ));
        }
    }
}

/// The function a command names, asked for when the argument is missing; one that lamina.toml
/// does not have is refused before anything else is asked.
fn function_name(manifest: &Manifest, given: Option<String>) -> Result<String> {
    if let Some(name) = given {
        if !manifest.functions.contains_key(&name) {
            return Err(unknown_function(manifest, name).into());
        }
        return Ok(name);
    }
    let known: Vec<String> = manifest.functions.keys().cloned().collect();
    let question = format!("Function ({})", output::list_or_none(&known));
    prompt::ask(
        &question,
        None,
        "the function's NAME",
        |answer| match manifest.functions.contains_key(answer) {
            true => Ok(()),
            false => Err(format!("there is no function `{answer}` in lamina.toml")),
        },
    )
}

/// The layer list of `function update`, asked for when no flag gives it.
fn updated_layers(args: &UpdateArgs, name: &str) -> Result<Vec<LayerRef>> {
    if args.no_layers {
        return Ok(Vec::new());
    }
    if !args.layers.is_empty() {
        return parse_refs(&args.layers);
    }
    let question = format!(
        "Layers of `{name}` in order of application (NAME@latest, NAME@N or ARNs, separated by \
         spaces; empty for none)"
    );
    let answer = prompt::ask(
        &question,
        Some(""),
        "--layer REF... or --no-layers",
        |answer| {
            let words: Vec<String> = answer.split_whitespace().map(str::to_string).collect();
            parse_refs(&words)
                .map(drop)
                .map_err(|error| format!("{error:#}"))
        },
    )?;
    let words: Vec<String> = answer.split_whitespace().map(str::to_string).collect();
    parse_refs(&words)
}

fn update(context: &Context, args: UpdateArgs) -> Result<()> {
    let (mut document, manifest) = context.manifest_document()?;
    let name = function_name(&manifest, args.name.clone())?;
    let layers = updated_layers(&args, &name)?;
    document.set_function_layers(&name, &layers)?;
    let manifest = document.save()?;
    warn_about_runtimes(&manifest, &name);
    let function = &manifest.functions[&name];
    if context.json {
        return output::json(&FunctionListing::from(function));
    }
    let layers: Vec<String> = function.layers.iter().map(ToString::to_string).collect();
    println!(
        "function `{}` now uses layers: {} (in order of application; later layers win)",
        function.name,
        output::list_or_none(&layers)
    );
    Ok(())
}

/// What `function remove` did, for `--json`.
#[derive(Debug, Serialize)]
struct RemoveReport {
    #[serde(flatten)]
    function: FunctionListing,
    /// The target asked, unless `--keep-deployed`.
    target: Option<String>,
    /// Whether a deployed function was deleted from it.
    deleted: bool,
}

fn remove(context: &Context, args: RemoveArgs) -> Result<()> {
    let (mut document, manifest) = context.manifest_document()?;
    if let Some(name) = args.name.as_deref() {
        if !manifest.functions.contains_key(name) && !args.keep_deployed {
            return remove_deployed_only(context, &manifest, name, &args);
        }
    }
    let name = function_name(&manifest, args.name.clone())?;
    document.remove_function(&name)?;
    let function = manifest.functions[&name].clone();

    let (target, deleted) = match args.keep_deployed {
        true => (None, false),
        false => {
            let mut target = open_target(context, &manifest, args.target)?;
            let deleted = delete_deployed(target.as_mut(), &name, args.yes)?;
            (Some(target.describe()), deleted)
        }
    };
    document.save()?;
    tracing::info!(function = %name, deleted, "function removed");
    let report = RemoveReport {
        function: FunctionListing::from(&function),
        target,
        deleted,
    };
    if context.json {
        return output::json(&report);
    }
    print_removed(&report);
    Ok(())
}

fn unknown_function(manifest: &Manifest, name: String) -> ManifestError {
    let known: Vec<String> = manifest.functions.keys().cloned().collect();
    ManifestError::UnknownFunction {
        name,
        path: manifest.manifest_path(),
        known: output::list_or_none(&known),
    }
}

/// What `function remove` did with a function that lamina.toml no longer names.
#[derive(Debug, Serialize)]
struct DeployedOnlyReport {
    function: String,
    target: String,
    deleted: bool,
}

/// Removes a function that is deployed but no longer in lamina.toml (deleted from it by hand):
/// deletes it from the target, or, when it is not deployed either, fails as for any unknown
/// name.
fn remove_deployed_only(
    context: &Context,
    manifest: &Manifest,
    name: &str,
    args: &RemoveArgs,
) -> Result<()> {
    let mut target = open_target(context, manifest, args.target)?;
    if target.function(name)?.is_none() {
        return Err(unknown_function(manifest, name.to_owned()).into());
    }
    let deleted = delete_deployed(target.as_mut(), name, args.yes)?;
    tracing::info!(function = %name, deleted, "deployed function removed");
    let report = DeployedOnlyReport {
        function: name.to_owned(),
        target: target.describe(),
        deleted,
    };
    if context.json {
        return output::json(&report);
    }
    println!(
        "function `{name}` is not in lamina.toml; deleted the deployed function from {}",
        report.target
    );
    Ok(())
}

/// Deletes the deployed function `name` after asking (unless `yes`); `false` when it is not
/// deployed. Runs before lamina.toml is saved, so that a refusal or failure leaves both as
/// they were.
fn delete_deployed(target: &mut dyn Target, name: &str, yes: bool) -> Result<bool> {
    let Some(deployed) = target.function(name)? else {
        return Ok(false);
    };
    if !yes {
        let question = format!(
            "Delete function `{name}` ({}) from {}? This cannot be undone",
            deployed.arn,
            target.describe()
        );
        let refusal = format!(
            "function `{name}` is deployed on {}, and deleting it needs confirmation: pass --yes \
             to delete it without a terminal, or --keep-deployed to only remove it from \
             lamina.toml",
            target.describe()
        );
        if !prompt::confirm(&question, false, &refusal)? {
            bail!("nothing was removed: function `{name}` stays in lamina.toml and on the target");
        }
    }
    target.delete_function(name)?;
    Ok(true)
}

fn print_removed(report: &RemoveReport) {
    let function = &report.function;
    println!(
        "removed function `{}` from lamina.toml; its code folder {} is left in place",
        function.name, function.source
    );
    match (&report.target, report.deleted) {
        (Some(target), true) => println!("deleted the deployed function from {target}"),
        (Some(target), false) => output::note(format!(
            "function `{}` was not deployed on {target}; there was nothing to delete there",
            function.name
        )),
        (None, _) => {
            println!("with --keep-deployed, a function already deployed stays on the target")
        }
    }
}

fn list(context: &Context) -> Result<()> {
    let manifest = context.manifest()?;
    let listings: Vec<FunctionListing> = manifest.functions.values().map(Into::into).collect();
    if context.json {
        return output::json(&listings);
    }
    if listings.is_empty() {
        println!(
            "no functions yet; add one with `lamina function add NAME --runtime nodejs22.x \
             --handler index.handler`"
        );
        return Ok(());
    }
    let rows: Vec<Vec<String>> = listings
        .iter()
        .map(|function| {
            vec![
                function.name.clone(),
                function.runtime.clone(),
                function.handler.clone(),
                function.source.clone(),
                output::list_or_none(&function.layers),
            ]
        })
        .collect();
    output::table(
        &["FUNCTION", "RUNTIME", "HANDLER", "SOURCE", "LAYERS"],
        &rows,
    );
    Ok(())
}
