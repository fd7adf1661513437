//! lamina's integration tests: one binary, one module per area.

mod manifest;
mod support;
