//! Checks of single values that have one right answer: names, runtimes, handlers, paths, ARNs.

use std::path::{Component, Path, PathBuf};

use super::*;

/// Layer, function and project names: 1 to 64 characters of `[A-Za-z0-9_-]`.
pub fn name(value: &str) -> Result<(), ValueError> {
    let ok = !value.is_empty()
        && value.len() <= NAME_MAX
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-');
    ok.then_some(()).ok_or_else(|| ValueError::BadName {
        value: value.to_string(),
    })
}

pub fn runtime(value: &str) -> Result<(), ValueError> {
    let ok = RUNTIMES.contains(&value);
    ok.then_some(()).ok_or_else(|| ValueError::UnknownRuntime {
        value: value.to_string(),
    })
}

pub fn architecture(value: &str) -> Result<(), ValueError> {
    let ok = ARCHITECTURES.contains(&value);
    ok.then_some(()).ok_or_else(|| ValueError::BadArchitecture {
        value: value.to_string(),
    })
}

/// A handler fits its runtime: `FILE.FUNCTION` for the interpreted runtimes, where FILE may
/// contain folders; anything without whitespace for the others (`pkg.Class::method` in Java,
/// `bootstrap` in a custom runtime).
pub fn handler(value: &str, runtime: &str) -> Result<(), ValueError> {
    let bad = || ValueError::BadHandler {
        value: value.to_string(),
        runtime: runtime.to_string(),
        example: example_handler(runtime).to_string(),
    };
    if value.is_empty() || value.chars().any(char::is_whitespace) {
        return Err(bad());
    }
    match RuntimeFamily::of(runtime) {
        Some(RuntimeFamily::Node | RuntimeFamily::Python | RuntimeFamily::Ruby) => {
            let (file, function) = value.rsplit_once('.').ok_or_else(bad)?;
            let ok = !file.is_empty() && !function.is_empty() && !function.contains('/');
            ok.then_some(()).ok_or_else(bad)
        }
        _ => Ok(()),
    }
}

/// A relative path without `..` or a leading `/`, and not in `.lamina`. The project root (`.`)
/// is allowed: the engine never scans `.lamina`, wherever a walk starts.
pub fn relative_path(value: &str) -> Result<PathBuf, ValueError> {
    let path = PathBuf::from(value);
    let inside = path
        .components()
        .all(|part| matches!(part, Component::Normal(_) | Component::CurDir));
    if value.is_empty() || !inside {
        return Err(ValueError::BadPath {
            value: value.to_string(),
        });
    }
    let first = path.components().find(|part| *part != Component::CurDir);
    if first == Some(Component::Normal(STATE_DIR.as_ref())) {
        return Err(ValueError::StateFolderPath {
            value: value.to_string(),
        });
    }
    Ok(path)
}

/// Where an existing relative path really leads: a symlink on the way may take it out of the
/// project or into `.lamina`, which [`relative_path`] cannot see. A path that does not exist
/// (yet) passes; the build reports it.
pub fn resolved_path(root: &Path, value: &str) -> Result<(), ValueError> {
    let (Ok(real_root), Ok(real)) = (
        fs_err::canonicalize(root),
        fs_err::canonicalize(root.join(value)),
    ) else {
        return Ok(());
    };
    if !real.starts_with(&real_root) {
        return Err(ValueError::PathLeavesProject {
            value: value.to_string(),
            target: real,
        });
    }
    if real.starts_with(real_root.join(STATE_DIR)) {
        return Err(ValueError::StateFolderPath {
            value: value.to_string(),
        });
    }
    Ok(())
}

pub fn role(value: &str) -> Result<(), ValueError> {
    let bad = || ValueError::BadRole {
        value: value.to_string(),
    };
    let rest = value.strip_prefix("arn:").ok_or_else(bad)?;
    let parts: Vec<&str> = rest.splitn(5, ':').collect();
    let [partition, "iam", "", account, resource] = parts[..] else {
        return Err(bad());
    };
    let ok = partition.starts_with("aws")
        && is_account(account)
        && resource
            .strip_prefix("role/")
            .is_some_and(|name| !name.is_empty());
    ok.then_some(()).ok_or_else(bad)
}

pub fn region(value: &str) -> Result<(), ValueError> {
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
    ok.then_some(()).ok_or_else(|| ValueError::BadRegion {
        value: value.to_string(),
    })
}

pub(super) fn is_account(value: &str) -> bool {
    value.len() == 12 && value.bytes().all(|byte| byte.is_ascii_digit())
}

/// A handler that fits `runtime`, for messages and for the files `function add` creates.
pub fn example_handler(runtime: &str) -> &'static str {
    match RuntimeFamily::of(runtime) {
        Some(RuntimeFamily::Node) => "index.handler",
        Some(RuntimeFamily::Python) => "handler.main",
        Some(RuntimeFamily::Ruby) => "function.handler",
        Some(RuntimeFamily::Java) => "example.Handler::handleRequest",
        Some(RuntimeFamily::DotNet) => "Assembly::Namespace.Class::Method",
        Some(RuntimeFamily::Custom) | None => "bootstrap",
    }
}
