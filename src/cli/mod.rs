//! The command line: parses arguments, calls the engine, prints results.

use std::process::ExitCode;

pub fn main() -> ExitCode {
    ExitCode::SUCCESS
}
