//! Asking the user, only when someone is there to answer.
//!
//! A prompt is shown only when stdin is a terminal. Otherwise the command fails with a message
//! that names the flag to pass, because a script waiting on a prompt nobody sees would hang.

use std::io::IsTerminal;

use anyhow::{bail, Result};
use dialoguer::theme::Theme;
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
    let answer = Confirm::with_theme(&ParenthesisedDefault)
        .with_prompt(question)
        .default(default)
        .wait_for_newline(true)
        .interact()?;
    Ok(answer)
}

/// dialoguer's plain theme, but with the default shown as `(Y/n)`, the way lamina's messages
/// and documentation spell the push question.
struct ParenthesisedDefault;

impl Theme for ParenthesisedDefault {
    fn format_confirm_prompt(
        &self,
        f: &mut dyn std::fmt::Write,
        prompt: &str,
        default: Option<bool>,
    ) -> std::fmt::Result {
        let hint = match default {
            Some(true) => "(Y/n)",
            Some(false) => "(y/N)",
            None => "(y/n)",
        };
        write!(f, "{prompt} {hint} ")
    }
}
