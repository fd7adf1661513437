//! `lamina function ...`: functions in the manifest and their code folders.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde::Serialize;

use super::layer::{architectures, resolve_runtime};
use super::{display_relative, output, prompt, Context};
use crate::manifest::{
    check, default_function_source, FunctionConfig, LayerRef, Manifest, ManifestError,
    RuntimeFamily, DEFAULT_NODE_RUNTIME,
};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum FunctionCommand {
    /// Add a function: its code folder with a minimal handler, and its entry in lamina.toml.
    Add(AddArgs),
    /// Change the layers a function uses.
    Update(UpdateArgs),
    /// Remove a function from lamina.toml (its code folder is kept).
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
    /// Architectures: x86_64 (the default) or arm64.
    #[arg(long = "arch", value_name = "ARCH", num_args = 1.., value_delimiter = ',')]
    architectures: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct UpdateArgs {
    name: String,
    /// The new layer list, in order of application: `NAME@latest`, `NAME@N` or an ARN.
    #[arg(
        long = "layer",
        value_name = "REF",
        num_args = 1..,
        required_unless_present = "no_layers"
    )]
    layers: Vec<String>,
    /// Use no layers at all.
    #[arg(long, conflicts_with = "layers")]
    no_layers: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct RemoveArgs {
    name: String,
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

    let function = FunctionConfig {
        source: default_function_source(&name),
        layers: parse_refs(&args.layers)?,
        architectures: architectures(&args.architectures)?,
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

fn update(context: &Context, args: UpdateArgs) -> Result<()> {
    let (mut document, _) = context.manifest_document()?;
    let layers = match args.no_layers {
        true => Vec::new(),
        false => parse_refs(&args.layers)?,
    };
    document.set_function_layers(&args.name, &layers)?;
    let manifest = document.save()?;
    warn_about_runtimes(&manifest, &args.name);
    let function = &manifest.functions[&args.name];
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

fn remove(context: &Context, args: RemoveArgs) -> Result<()> {
    let (mut document, manifest) = context.manifest_document()?;
    document.remove_function(&args.name)?;
    document.save()?;
    let function = &manifest.functions[&args.name];
    if context.json {
        return output::json(&FunctionListing::from(function));
    }
    println!(
        "removed function `{}` from lamina.toml; its code folder {} is left in place, and a \
         function already deployed stays on the target",
        args.name,
        function.source.display()
    );
    Ok(())
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
