//! Asking the user, only when someone is there to answer.
//!
//! A prompt is shown only when stdin is a terminal. Otherwise the command fails with a message
//! that names the flag to pass, because a script waiting on a prompt nobody sees would hang.

use std::io::IsTerminal;

use anyhow::{bail, Result};
use dialoguer::{Confirm, Input};

pub(crate) fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// Asks for a value that a flag did not give. `check` returns why an answer is not accepted.
pub(crate) fn ask(
    question: &str,
    default: Option<&str>,
    flag: &str,
    check: impl Fn(&str) -> Result<(), String>,
) -> Result<String> {
    if !stdin_is_terminal() {
        bail!("missing {flag}: pass it on the command line (there is no terminal to ask on)");
    }
    let mut input = Input::<String>::new().with_prompt(question);
    if let Some(default) = default {
        input = input.default(default.to_string());
    }
    let answer = input
        .validate_with(|answer: &String| check(answer.trim()))
        .interact_text()?;
    Ok(answer.trim().to_string())
}

/// Asks a yes/no question; `refusal` is the error when there is no terminal to ask on.
pub(crate) fn confirm(question: &str, default: bool, refusal: &str) -> Result<bool> {
    if !stdin_is_terminal() {
        bail!("{refusal}");
    }
    let hint = if default { "(Y/n)" } else { "(y/N)" };
    let answer = Confirm::new()
        .with_prompt(format!("{question} {hint}"))
        .default(default)
        .show_default(false)
        .wait_for_newline(true)
        .interact()?;
    Ok(answer)
}
