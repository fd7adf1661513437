//! Who may use a layer version: the owning account always, plus specific accounts,
//! organizations, or everyone.
//!
//! OWNER NOTE (skeleton): parsing and the public-is-exclusive rule are filled in by the lifecycle
//! work.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// The principals a layer version is shared with, beyond its owning account. Public access is
/// exclusive: a set is either public or lists accounts and organizations, never both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessSet {
    pub accounts: BTreeSet<String>,
    pub orgs: BTreeSet<String>,
    pub public: bool,
}
