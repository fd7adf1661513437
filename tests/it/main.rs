//! lamina's integration tests: one binary, one module per area.

mod cli;
mod manifest;
mod support;
