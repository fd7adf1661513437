//! lamina packages AWS Lambda layers and functions as content-addressed, reproducible zips and
//! publishes only what is new.
//!
//! The engine is a one-way pipeline, one module per stage:
//!
//! 1. [`scan`] walks a layer's sources in parallel and lists every entry with its `lstat` data,
//!    and finds the node packages and Python lock file that fingerprint the dependency trees.
//! 2. [`cache`] keeps per-file blake3 hashes, package file lists and built zips in SQLite, so that
//!    a file whose stat data still matches is never read again.
//! 3. [`digest`] turns the sorted entry list into the layer's content digest.
//! 4. [`pack`] writes the reproducible zip: same content, same bytes, same SHA-256.
//! 5. [`deploy`] compares digests with what a target already has and publishes only new ones.
//!
//! [`build`] drives stages 1 to 4 for one layer or function; the command line in [`cli`] only parses
//! arguments, calls the engine and prints. Nothing below [`cli`] writes to stdout or stderr: the
//! engine reports through return values, [`progress::Progress`] and `tracing`.

pub mod access;
pub mod atomic;
pub mod build;
pub mod cache;
pub mod cli;
pub mod deploy;
pub mod digest;
pub mod install;
pub mod manifest;
pub mod pack;
pub mod progress;
pub mod remote;
pub mod scan;
