//! Progress bars on stderr, shown only when stderr is a terminal.
//!
//! The engine announces phases through [`Progress`]; one bar at a time is shown, replaced at each
//! `start` and cleared at `finish`. `advance` comes from worker threads once per file, so it only
//! takes a shared lock and bumps the bar's atomic position; indicatif limits the redraw rate.
//!
//! Log lines are written through [`Bars::log_writer`], which hides the bar while a line is
//! printed, so that logs and bars do not tear each other apart.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::progress::{Phase, Progress};

pub(crate) fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// The bar currently shown, if any.
type Current = Arc<RwLock<Option<ProgressBar>>>;

/// A [`Progress`] that draws indicatif bars, or nothing when stderr is not a terminal.
#[derive(Debug, Clone)]
pub(crate) struct Bars {
    enabled: bool,
    current: Current,
}

impl Bars {
    pub(crate) fn for_stderr() -> Bars {
        Bars {
            enabled: stderr_is_terminal(),
            current: Current::default(),
        }
    }

    /// A writer for log lines that hides the current bar while it writes.
    pub(crate) fn log_writer(&self) -> LogWriter {
        LogWriter {
            current: self.current.clone(),
        }
    }

    /// Removes any bar left on screen, before the final message is printed.
    pub(crate) fn clear(&self) {
        self.finish();
    }
}

impl Progress for Bars {
    fn start(&self, phase: Phase, subject: &str, total: u64) {
        if !self.enabled {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(style(phase, total));
        bar.set_message(format!("{} {subject}", verb(phase)));
        if total == 0 {
            bar.enable_steady_tick(Duration::from_millis(120));
        }
        let previous = self
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(bar);
        if let Some(previous) = previous {
            previous.finish_and_clear();
        }
    }

    fn advance(&self, units: u64) {
        if let Some(bar) = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            bar.inc(units);
        }
    }

    fn finish(&self) {
        let bar = self
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
    }
}

fn verb(phase: Phase) -> &'static str {
    match phase {
        Phase::Scan => "scanning",
        Phase::Hash => "hashing",
        Phase::Pack => "packing",
        Phase::Install => "installing",
        Phase::Upload => "uploading",
    }
}

fn style(phase: Phase, total: u64) -> ProgressStyle {
    let template = match (phase, total) {
        (_, 0) => "{spinner} {msg}",
        (Phase::Upload, _) => "{msg} [{bar:30}] {bytes}/{total_bytes}",
        _ => "{msg} [{bar:30}] {human_pos}/{human_len}",
    };
    ProgressStyle::with_template(template)
        .expect("the templates above are valid")
        .progress_chars("=> ")
}

/// Writes log lines to stderr around the current bar.
#[derive(Debug, Clone)]
pub(crate) struct LogWriter {
    current: Current,
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        match current.as_ref() {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
