//! Dependency installs (npm, pip) before a layer is scanned.
//!
//! OWNER NOTE (skeleton): filled in by the install work.
