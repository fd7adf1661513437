//! lamina's integration tests: one binary, one module per area.

mod deploy;
mod support;
#[cfg(feature = "aws")]
mod aws;
