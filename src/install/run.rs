//! Runs an installer with its output streamed to the log.
//!
//! stdout and stderr are read line by line on two scoped threads and handed to the calling
//! thread through a channel, so lines reach the log in the order they arrive and the caller can
//! look at each one (pip's "no matching distribution" lines) without buffering the whole output.
//! Only the last [`TAIL_LINES`] lines are kept, for the error when the tool fails.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;

use crate::progress::{Phase, Progress};

use super::{InstallCommand, InstallError};

/// How many of the last output lines an installer failure carries.
pub const TAIL_LINES: usize = 20;

/// How a finished installer run ended.
#[derive(Debug)]
pub(crate) struct Finished {
    pub status: ExitStatus,
    /// The last [`TAIL_LINES`] lines of stdout and stderr, interleaved as they arrived.
    pub tail: Vec<String>,
}

/// Runs `command` in `cwd`, with `program` standing in for `command.argv[0]`. Every output line
/// goes to the log at debug level, advances the progress line of `subject` and is shown to
/// `on_line`.
pub(crate) fn run(
    program: &Path,
    command: &InstallCommand,
    cwd: &Path,
    subject: &str,
    progress: &dyn Progress,
    on_line: &mut dyn FnMut(&str),
) -> Result<Finished, InstallError> {
    let spawn_error = |source| InstallError::Spawn {
        program: program.to_path_buf(),
        source,
    };
    tracing::info!(layer = subject, command = %command.argv.join(" "), cwd = %cwd.display(),
        "running installer");
    let mut child = Command::new(program)
        .args(&command.argv[1..])
        .envs(command.env.iter().map(|(key, value)| (key, value)))
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;

    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    progress.start(Phase::Install, subject, 0);
    let mut tail = Tail::new(TAIL_LINES);
    std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::channel();
        let stderr_sender = sender.clone();
        scope.spawn(move || forward_lines(stdout, sender));
        scope.spawn(move || forward_lines(stderr, stderr_sender));
        for line in receiver {
            tracing::debug!(target: "lamina::install::output", layer = subject, "{line}");
            progress.advance(1);
            on_line(&line);
            tail.push(line);
        }
    });
    progress.finish();

    let status = child.wait().map_err(spawn_error)?;
    Ok(Finished {
        status,
        tail: tail.into_lines(),
    })
}

/// Sends each line of `pipe` to `sender` until the pipe closes. Bytes that are not UTF-8 are
/// replaced rather than dropped: a garbled line in an error tail is better than a missing one.
fn forward_lines(pipe: impl Read, sender: mpsc::Sender<String>) {
    let mut reader = BufReader::new(pipe);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        match reader.read_until(b'\n', &mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buffer);
                if sender
                    .send(line.trim_end_matches(['\n', '\r']).to_owned())
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// The last `capacity` lines pushed.
#[derive(Debug)]
pub(crate) struct Tail {
    lines: VecDeque<String>,
    capacity: usize,
}

impl Tail {
    pub fn new(capacity: usize) -> Tail {
        Tail {
            lines: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    pub fn push(&mut self, line: String) {
        if self.lines.len() == self.capacity {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    pub fn into_lines(self) -> Vec<String> {
        self.lines.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::NoProgress;

    #[test]
    fn tail_keeps_the_last_lines_in_order() {
        let mut tail = Tail::new(3);
        for number in 1..=5 {
            tail.push(number.to_string());
        }
        assert_eq!(tail.into_lines(), ["3", "4", "5"]);
    }

    #[test]
    fn run_reports_status_and_both_streams() {
        let command = InstallCommand {
            argv: [
                "sh",
                "-c",
                "echo out; echo err >&2; echo \"$LAMINA_TEST\"; exit 3",
            ]
            .map(String::from)
            .to_vec(),
            env: vec![("LAMINA_TEST".into(), "from env".into())],
        };
        let mut seen = Vec::new();
        let finished = run(
            Path::new("sh"),
            &command,
            Path::new("."),
            "layer",
            &NoProgress,
            &mut |line| seen.push(line.to_owned()),
        )
        .unwrap();

        assert_eq!(finished.status.code(), Some(3));
        let mut tail = finished.tail.clone();
        tail.sort();
        assert_eq!(tail, ["err", "from env", "out"]);
        assert_eq!(seen.len(), 3);
    }
}
