//! Asking the user, only when someone is there to answer.
//!
//! A prompt is shown only when stdin and stderr (where it is drawn) are terminals. Otherwise the
//! command fails with a message that names the flag to pass, because a script waiting on a
//! prompt nobody sees would hang.

use std::io::IsTerminal;

use anyhow::{bail, Result};
use dialoguer::Input;

fn can_ask() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks for a value that a flag did not give. `check` returns why an answer is not accepted.
pub(crate) fn ask(
    question: &str,
    default: Option<&str>,
    flag: &str,
    check: impl Fn(&str) -> Result<(), String>,
) -> Result<String> {
    if !can_ask() {
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
///
/// Only `y`, `yes`, `n` and `no` (any case) answer it, and an empty answer takes the default;
/// anything else asks again. A stray word never counts as a yes.
pub(crate) fn confirm(question: &str, default: bool, refusal: &str) -> Result<bool> {
    if !can_ask() {
        bail!("{refusal}");
    }
    let hint = if default { "(Y/n)" } else { "(y/N)" };
    let answer = Input::<String>::new()
        .with_prompt(format!("{question} {hint}"))
        .allow_empty(true)
        .validate_with(|answer: &String| match yes_or_no(answer, default) {
            Some(_) => Ok(()),
            None => Err("answer y or n"),
        })
        .interact_text()?;
    Ok(yes_or_no(&answer, default).expect("the answer was validated"))
}

/// What an answer to a yes/no question means, if anything.
fn yes_or_no(answer: &str, default: bool) -> Option<bool> {
    match answer.trim().to_ascii_lowercase().as_str() {
        "" => Some(default),
        "y" | "yes" => Some(true),
        "n" | "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::yes_or_no;

    #[test]
    fn only_yes_or_no_answers_and_empty_takes_the_default() {
        for (answer, default, meaning) in [
            ("", true, Some(true)),
            ("  ", false, Some(false)),
            ("y", false, Some(true)),
            ("YES", false, Some(true)),
            (" no ", true, Some(false)),
            ("N", true, Some(false)),
            ("abort", true, None),
            ("x", true, None),
            ("no way, yes", true, None),
            ("yep", false, None),
        ] {
            assert_eq!(yes_or_no(answer, default), meaning, "{answer:?}");
        }
    }
}
