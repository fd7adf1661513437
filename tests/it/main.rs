//! lamina's integration tests: one binary, one module per area.

mod pack;
mod support;
