//! lamina's integration tests: one binary, one module per area.

mod deploy;
mod engine;
mod install;
mod support;
