//! `lamina init`: a new project's `lamina.toml`, and `.lamina/` kept out of git.

use std::path::Path;

use anyhow::{bail, Context as _, Result};
use serde::Serialize;

use super::{output, Context};
use crate::manifest::{
    check, default_project_name, write_user_file, ManifestDocument, MANIFEST_FILE, STATE_DIR,
};

#[derive(Debug, clap::Args)]
pub(crate) struct InitArgs {
    /// The project's name; default: the folder's name.
    #[arg(long)]
    name: Option<String>,
}

/// What `.gitignore` needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum GitignoreChange {
    Created,
    Appended,
    Unchanged,
}

#[derive(Debug, Serialize)]
struct InitReport {
    manifest: String,
    name: String,
    gitignore: GitignoreChange,
}

pub(crate) fn run(context: &Context, args: InitArgs) -> Result<()> {
    let dir = context.project_dir();
    fs_err::create_dir_all(&dir)?;
    let dir = fs_err::canonicalize(&dir)?;
    let manifest_path = dir.join(MANIFEST_FILE);
    if manifest_path.exists() {
        bail!(
            "`{}` already exists; edit it, or use `lamina layer add` and `lamina function add`",
            manifest_path.display()
        );
    }
    let name = args.name.unwrap_or_else(|| default_project_name(&dir));
    check::name(&name).context("--name")?;

    let text = ManifestDocument::new_project_text(&name);
    ManifestDocument::parse(&manifest_path, &text)?;
    write_user_file(&manifest_path, text.as_bytes())?;
    let gitignore = ignore_state_dir(&dir)?;

    let report = InitReport {
        manifest: manifest_path.display().to_string(),
        name,
        gitignore,
    };
    if context.json {
        return output::json(&report);
    }
    println!(
        "created `{}` for project `{}`",
        report.manifest, report.name
    );
    match gitignore {
        GitignoreChange::Created => println!("created .gitignore with `{STATE_DIR}/`"),
        GitignoreChange::Appended => println!("added `{STATE_DIR}/` to .gitignore"),
        GitignoreChange::Unchanged => {}
    }
    println!("next: lamina layer add NAME --runtime nodejs   (or python, or a runtime id)");
    Ok(())
}

/// Makes sure `.gitignore` in `dir` ignores lamina's own folder, without repeating a line that
/// already does.
fn ignore_state_dir(dir: &Path) -> Result<GitignoreChange> {
    let path = dir.join(".gitignore");
    let line = format!("{STATE_DIR}/");
    let text = match fs_err::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            write_user_file(&path, format!("{line}\n").as_bytes())?;
            return Ok(GitignoreChange::Created);
        }
        Err(error) => return Err(error.into()),
    };
    let ignored = text.lines().any(|existing| {
        let pattern = existing
            .trim()
            .trim_start_matches('/')
            .trim_end_matches('/');
        pattern == STATE_DIR
    });
    if ignored {
        return Ok(GitignoreChange::Unchanged);
    }
    let separator = if text.is_empty() || text.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    write_user_file(&path, format!("{text}{separator}{line}\n").as_bytes())?;
    Ok(GitignoreChange::Appended)
}
