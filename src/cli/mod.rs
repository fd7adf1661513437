//! The command line: parses arguments, calls the library, prints results.
//!
//! This is the only part of lamina that writes to the terminal. stdout carries the result of a
//! command (a table, a few lines of text, or with `--json` exactly one JSON document); stderr
//! carries everything else: notes and warnings meant for the user, prompts, progress bars (only
//! when stderr is a terminal), logs (tracing, filtered by `RUST_LOG`, default `warn`; `-v` raises
//! it to info, `-vv` to debug) and, on failure, one `error: ...` message. The exit code is 0 on
//! success and 1 on any error (2 for arguments clap rejects).
//!
//! Commands that lack a value they need ask for it when stdin is a terminal, and fail with a
//! message naming the flag otherwise, so that scripts never hang on a prompt.

mod build;
mod cache;
mod function;
mod init;
mod layer;
mod output;
mod progress;
mod prompt;
mod push;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};

use crate::manifest::{Manifest, ManifestDocument, TargetKind};

/// Packages AWS Lambda layers and functions as reproducible zips and publishes only what is new.
#[derive(Debug, Parser)]
#[command(name = "lamina", version, max_term_width = 100)]
struct Cli {
    /// The project folder (holding lamina.toml); default: the current folder or the nearest one
    /// above it that has a lamina.toml.
    #[arg(long, global = true, value_name = "DIR")]
    project: Option<PathBuf>,
    /// Print the result as one JSON document on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// More detail: lists changed paths in `status`, and logs at info (-v) or debug (-vv) level
    /// unless RUST_LOG says otherwise.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create lamina.toml here (or in --project DIR) and ignore `.lamina/` in git.
    Init(init::InitArgs),
    /// Add, change, remove and list layers and their published versions.
    #[command(subcommand)]
    Layer(layer::LayerCommand),
    /// Add, change, remove and list functions.
    #[command(subcommand)]
    Function(function::FunctionCommand),
    /// Build the zips of the project's layers (all, or those named).
    Build(build::BuildArgs),
    /// Show which layers changed since their last build, and whether they are pushed.
    Status(build::StatusArgs),
    /// Build everything, then publish new layer versions and deploy changed functions.
    Push(push::PushArgs),
    /// Move the cache between machines (export, import) and look after it (stats, verify, gc).
    #[command(subcommand)]
    Cache(cache::CacheCommand),
}

/// What every command gets besides its own arguments.
#[derive(Debug)]
pub(crate) struct Context {
    project: Option<PathBuf>,
    json: bool,
    verbose: u8,
    cwd: PathBuf,
}

impl Context {
    /// The project's manifest, found from `--project` or the current folder.
    fn manifest(&self) -> Result<Manifest> {
        Ok(Manifest::discover(self.project.as_deref(), &self.cwd)?)
    }

    /// The manifest for editing, with the validated manifest it holds now.
    fn manifest_document(&self) -> Result<(ManifestDocument, Manifest)> {
        let manifest = self.manifest()?;
        let document = ManifestDocument::open(&manifest.manifest_path())?;
        Ok((document, manifest))
    }

    /// The folder `--project` names, or the current folder.
    fn project_dir(&self) -> PathBuf {
        match &self.project {
            Some(dir) => self.cwd.join(dir),
            None => self.cwd.clone(),
        }
    }

    /// The deploy target chosen by `--target`, or the manifest's default.
    fn target_kind(&self, manifest: &Manifest, flag: Option<TargetKind>) -> TargetKind {
        flag.unwrap_or(manifest.target.default)
    }
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    restore_sigpipe();
    let cli = Cli::parse();
    let bars = progress::Bars::for_stderr();
    init_logging(cli.verbose, &bars);
    let result = std::env::current_dir()
        .context("cannot read the current folder")
        .and_then(|cwd| {
            let context = Context {
                project: cli.project,
                json: cli.json,
                verbose: cli.verbose,
                cwd,
            };
            run(&context, cli.command, &bars)
        });
    bars.clear();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            output::error(&error);
            ExitCode::FAILURE
        }
    }
}

fn run(context: &Context, command: Command, bars: &progress::Bars) -> Result<()> {
    match command {
        Command::Init(args) => init::run(context, args),
        Command::Layer(command) => layer::run(context, command),
        Command::Function(command) => function::run(context, command),
        Command::Build(args) => build::run_build(context, args, bars),
        Command::Status(args) => build::run_status(context, args, bars),
        Command::Push(args) => push::run(context, args, bars),
        Command::Cache(command) => cache::run(context, command),
    }
}

/// Lets `lamina layer list | head` end quietly when the reader goes away, as other command-line
/// tools do, instead of panicking on a failed print: Rust ignores SIGPIPE by default.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in `main`, before any thread exists; resetting a signal to its
    // default disposition has no other effect on the program.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Logs go to stderr through the progress bars, so a log line never tears a bar apart.
fn init_logging(verbose: u8, bars: &progress::Bars) {
    use tracing_subscriber::EnvFilter;

    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    // The AWS SDK warns at length about what lamina then reports in one clear error (no region,
    // no credentials): its own lines are shown only when asked for with -vv or RUST_LOG.
    let quiet_sdk = if verbose >= 2 {
        ""
    } else {
        ",aws_config=error,aws_smithy_runtime=error"
    };
    let default = format!("{level}{quiet_sdk}");
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let writer = bars.log_writer();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || writer.clone())
        .with_ansi(progress::stderr_is_terminal())
        .with_target(false);
    // A second initialisation can only happen in tests that call `main` twice; the first
    // subscriber is as good as the second.
    let _ = subscriber.try_init();
}

/// The path of `path` relative to `root` when it lies inside, for shorter messages.
pub(crate) fn display_relative(path: &Path, root: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Clap checks flag clashes (such as a `--version` flag next to its own) only when a command
    /// is parsed; this checks every subcommand at once.
    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
