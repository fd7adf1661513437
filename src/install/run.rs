//! Runs an installer with its output streamed to the log.
//!
//! stdout and stderr are read line by line on two scoped threads and handed to the calling
//! thread through a channel, so lines reach the log in the order they arrive and the caller can
//! look at each one (pip's "no matching distribution" lines) without buffering the whole output.
//! Only the first [`HEAD_LINES`] and the last [`TAIL_LINES`] lines are kept, for the error when
//! the tool fails: npm states the cause first and then prints its usage, pip states it last.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;

use crate::progress::{Phase, Progress};

use super::{InstallCommand, InstallError};

/// How many of the first output lines an installer failure carries.
pub const HEAD_LINES: usize = 10;
/// How many of the last output lines an installer failure carries.
pub const TAIL_LINES: usize = 20;

/// How a finished installer run ended.
#[derive(Debug)]
pub(crate) struct Finished {
    pub status: ExitStatus,
    /// The first [`HEAD_LINES`] and last [`TAIL_LINES`] lines of stdout and stderr, interleaved
    /// as they arrived, with a line that says how many were left out between them.
    pub excerpt: Vec<String>,
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
    let mut excerpt = Excerpt::new(HEAD_LINES, TAIL_LINES);
    std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::channel();
        let stderr_sender = sender.clone();
        scope.spawn(move || forward_lines(stdout, sender));
        scope.spawn(move || forward_lines(stderr, stderr_sender));
        for line in receiver {
            tracing::debug!(target: "lamina::install::output", layer = subject, "{line}");
            progress.advance(1);
            on_line(&line);
            excerpt.push(line);
        }
    });
    progress.finish();

    let status = child.wait().map_err(spawn_error)?;
    Ok(Finished {
        status,
        excerpt: excerpt.into_lines(),
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

/// The first `head` and the last `tail` lines pushed.
#[derive(Debug)]
pub(crate) struct Excerpt {
    head: Vec<String>,
    head_len: usize,
    tail: VecDeque<String>,
    tail_len: usize,
    /// Lines pushed in all.
    count: usize,
}

impl Excerpt {
    pub fn new(head: usize, tail: usize) -> Excerpt {
        Excerpt {
            head: Vec::with_capacity(head),
            head_len: head,
            tail: VecDeque::with_capacity(tail),
            tail_len: tail,
            count: 0,
        }
    }

    pub fn push(&mut self, line: String) {
        self.count += 1;
        if self.head.len() < self.head_len {
            self.head.push(line);
            return;
        }
        if self.tail.len() == self.tail_len {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }

    pub fn into_lines(self) -> Vec<String> {
        let left_out = self.count - self.head.len() - self.tail.len();
        let mut lines = self.head;
        if left_out > 0 {
            lines.push(format!("[{left_out} more lines]"));
        }
        lines.extend(self.tail);
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::NoProgress;

    #[test]
    fn an_excerpt_keeps_the_first_and_last_lines_in_order() {
        let excerpt = |count: usize| {
            let mut excerpt = Excerpt::new(2, 3);
            for number in 1..=count {
                excerpt.push(number.to_string());
            }
            excerpt.into_lines()
        };
        assert_eq!(excerpt(4), ["1", "2", "3", "4"]);
        assert_eq!(excerpt(5), ["1", "2", "3", "4", "5"]);
        assert_eq!(excerpt(6), ["1", "2", "[1 more lines]", "4", "5", "6"]);
        assert_eq!(excerpt(9), ["1", "2", "[4 more lines]", "7", "8", "9"]);
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
        let mut excerpt = finished.excerpt.clone();
        excerpt.sort();
        assert_eq!(excerpt, ["err", "from env", "out"]);
        assert_eq!(seen.len(), 3);
    }
}
