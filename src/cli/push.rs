//! `lamina push`: build everything, show the plan, and publish only what is new once accepted.

use anyhow::{bail, Context as _, Result};
use serde::Serialize;

use super::build::{
    build_everything, install_layers, EngineArgs, InstallArgs, ProjectBuild, Totals,
};
use super::layer::open_target;
use super::progress::Bars;
use super::{output, prompt, Context};
use crate::cache::Cache;
use crate::deploy::push::{
    self, FunctionOutcome, FunctionReport, LayerOutcome, LayerReport, PlanOptions, PushError,
    PushReport,
};
use crate::deploy::{pushed, Target};
use crate::install::InstallReport;
use crate::manifest::{Manifest, TargetKind};

/// What a push without a terminal and without `--yes` says.
const NEEDS_YES: &str = "push asks before publishing, and there is no terminal to ask on: pass \
                         --yes to accept the suggested layer version configurations";

#[derive(Debug, clap::Args)]
pub(crate) struct PushArgs {
    /// Accept the suggested layer version configurations without asking.
    #[arg(long, short = 'y')]
    yes: bool,
    /// The description of new layer versions; default: `Updated layer version <UTC time>`.
    #[arg(long, value_name = "TEXT")]
    description: Option<String>,
    /// Where to publish: `local` (the registry in .lamina/registry) or `aws`; default:
    /// lamina.toml's `[target] default`.
    #[arg(long, value_name = "local|aws")]
    target: Option<TargetKind>,
    #[command(flatten)]
    installs: InstallArgs,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Debug, Serialize)]
struct PushOutput {
    target: String,
    /// What the dependency installs before the build did, per layer.
    installs: Vec<InstallReport>,
    layers: Vec<LayerReport>,
    functions: Vec<FunctionReport>,
    /// Whether anything was published or deployed.
    changed: bool,
    stats: Totals,
}

pub(crate) fn run(context: &Context, args: PushArgs, bars: &Bars) -> Result<()> {
    // Without a terminal and without --yes the push still builds and plans, so that a script
    // sees what would be published (and any problem of the plan) before it is refused.
    let manifest = context.manifest()?;
    let layers: Vec<_> = manifest.layers.values().collect();
    let installs = install_layers(context, &manifest, &layers, &args.installs, bars)?;
    let built = build_everything(&manifest, &args.engine, bars)?;
    bars.clear();
    let kind = context.target_kind(&manifest, args.target);
    let mut target = open_target(context, &manifest, args.target)?;
    let options = PlanOptions::new(args.description);
    let plan = push::plan(
        &manifest,
        target.as_mut(),
        &built.layers,
        &built.functions,
        &options,
    )?;

    note_forgotten_functions(&manifest, kind, target.as_mut());
    if plan.has_changes() {
        show_plan(context, &plan.render());
        if !args.yes {
            let question = "Accept the suggested layer version configurations?";
            if !prompt::confirm(question, true, NEEDS_YES)? {
                bail!("push cancelled; nothing was published");
            }
        }
    }
    let report = match push::execute(&plan, target.as_mut(), bars) {
        Ok(report) => report,
        Err(PushError::Interrupted { completed, source }) => {
            if let Err(error) = remember_push(&manifest, kind, &completed, &built) {
                output::warning(format!("{error:#}"));
            }
            if !context.json {
                print_report(&completed);
            }
            return Err(PushError::Interrupted { completed, source }.into());
        }
        Err(error) => return Err(error.into()),
    };
    bars.clear();
    if let Err(error) = remember_push(&manifest, kind, &report, &built) {
        output::warning(format!("{error:#}"));
    }

    let result = PushOutput {
        target: target.describe(),
        installs,
        changed: report.has_changes(),
        layers: report.layers,
        functions: report.functions,
        stats: built.stats,
    };
    if context.json {
        return output::json(&result);
    }
    print_summary(&result);
    Ok(())
}

/// Notes each function that this checkout deployed to the target, that is still there, and that
/// lamina.toml no longer names: push leaves it alone, and nothing else would say so.
fn note_forgotten_functions(manifest: &Manifest, kind: TargetKind, target: &mut dyn Target) {
    let key = pushed::target_key(kind, manifest);
    let pushed = Cache::open(&manifest.state_dir().cache_db())
        .map_err(anyhow::Error::from)
        .and_then(|cache| Ok(pushed::pushed_functions(&cache, &key)?));
    let names = match pushed {
        Ok(names) => names,
        Err(error) => {
            tracing::debug!(%error, "deployed functions not checked against lamina.toml");
            return;
        }
    };
    let forgotten = names
        .into_iter()
        .filter(|name| !manifest.functions.contains_key(name));
    for name in forgotten {
        if let Ok(Some(_)) = target.function(&name) {
            output::note(format!(
                "function `{name}` is deployed on {} but no longer in lamina.toml; push leaves \
                 it there, and `lamina function remove {name}` deletes it",
                target.describe()
            ));
        }
    }
}

/// Records in the cache what `report` pushed, for `lamina status`. A failure here loses nothing
/// the target holds, so the caller only warns about it.
fn remember_push(
    manifest: &Manifest,
    kind: TargetKind,
    report: &PushReport,
    built: &ProjectBuild,
) -> Result<()> {
    let path = manifest.state_dir().cache_db();
    let mut cache = Cache::open(&path)
        .with_context(|| format!("cannot record the push in `{}`", path.display()))?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let key = pushed::target_key(kind, manifest);
    pushed::record_push(&mut cache, &key, report, &built.functions, now)
        .context("cannot record the push; `lamina status` will not know of it")
}

/// The plan goes to stdout, except with `--json`, where stdout is kept for the one document.
fn show_plan(context: &Context, lines: &[String]) {
    for line in lines {
        match context.json {
            true => eprintln!("{line}"),
            false => println!("{line}"),
        }
    }
}

fn print_report(report: &PushReport) {
    for layer in &report.layers {
        match layer.action {
            LayerOutcome::Published => {
                println!(
                    "layer `{}`: published version {} ({})",
                    layer.layer, layer.version, layer.arn
                );
            }
            LayerOutcome::Unchanged => {
                println!(
                    "layer `{}`: unchanged (version {})",
                    layer.layer, layer.version
                );
            }
        }
        let foreign = layer.access.iter().flat_map(|change| &change.foreign);
        for statement in foreign {
            output::warning(format!(
                "layer `{}` version {}: statement `{statement}` was not created by lamina and \
                 was left alone",
                layer.layer, layer.version
            ));
        }
    }
    for function in &report.functions {
        let verb = match function.action {
            FunctionOutcome::Deployed => "deployed",
            FunctionOutcome::Unchanged => "unchanged",
        };
        println!(
            "function `{}`: {verb}; layers: {}",
            function.function,
            output::list_or_none(&function.layers)
        );
    }
}

fn print_summary(result: &PushOutput) {
    let report = PushReport {
        layers: result.layers.clone(),
        functions: result.functions.clone(),
    };
    print_report(&report);
    if !result.changed {
        println!(
            "nothing changed: nothing was published or deployed on {}",
            result.target
        );
        return;
    }
    let published = result
        .layers
        .iter()
        .filter(|layer| layer.action == LayerOutcome::Published)
        .count();
    let deployed = result
        .functions
        .iter()
        .filter(|function| function.action == FunctionOutcome::Deployed)
        .count();
    println!(
        "published {published} layer version(s) and deployed {deployed} function(s) on {}",
        result.target
    );
}
