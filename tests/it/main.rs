//! lamina's integration tests: one binary, one module per area.

#[cfg(feature = "aws")]
mod aws;
mod cache;
mod cli;
mod deploy;
mod engine;
mod install;
mod manifest;
mod pack;
mod portable;
#[cfg(feature = "aws")]
mod remote;
mod scan;
mod support;
