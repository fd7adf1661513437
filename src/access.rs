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
    /// 12-digit AWS account ids.
    pub accounts: BTreeSet<String>,
    /// Organization ids, `o-` then 10 to 32 lowercase letters or digits.
    pub orgs: BTreeSet<String>,
    pub public: bool,
}

/// One principal, as written on the command line and in `lamina.toml`:
/// `account:ID`, `org:ID` or `public`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Principal {
    Account(String),
    Org(String),
    Public,
}
