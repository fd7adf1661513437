//! Who may use a layer version: the owning account always, plus specific accounts,
//! organizations, or everyone.
//!
//! Access is written as a list of principals, on the command line (`--access account:ID`) and in
//! `lamina.toml` (`access = ["account:123456789012", "org:o-abcdefghij"]`):
//!
//! - `account:ID`: one AWS account, `ID` exactly 12 digits;
//! - `org:ID`: every account of an AWS organization, `ID` being `o-` then 10 to 32 lowercase
//!   letters or digits (the pattern AWS enforces);
//! - `public`: every AWS account.
//!
//! Public access is exclusive. A layer is either public or shared with a list of accounts and
//! organizations, never both: keeping `public` next to a list would make the list meaningless and
//! hide that everyone can read the layer. [`AccessSet::grant`] enforces this and returns an
//! [`AccessNotice`] whenever a grant takes something away, so the command line can say so; other
//! tools leave public access in place when accounts are added, which silently keeps a layer open.
//!
//! Each principal becomes one statement of a layer version's permission policy. Its statement id
//! is derived from the principal alone ([`statement_id`]), so that a target can tell the statements
//! lamina created from those someone else added, and reconcile them without keeping state.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The prefix of every statement id lamina creates.
pub const STATEMENT_PREFIX: &str = "lamina-";

/// A principal that cannot be parsed, or a list of principals that cannot stand together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error(
        "`{value}` is not an access value; use `account:ID` (12 digits), `org:ID` \
         (`o-` then 10 to 32 lowercase letters or digits) or `public`"
    )]
    UnknownWord { value: String },
    #[error(
        "`{value}` is not an account: an account id is exactly 12 digits, as in \
         `account:123456789012`"
    )]
    BadAccount { value: String },
    #[error(
        "`{value}` is not an organization: an organization id is `o-` then 10 to 32 lowercase \
         letters or digits, as in `org:o-a1b2c3d4e5`"
    )]
    BadOrg { value: String },
    #[error("`{value}` is given twice")]
    Duplicate { value: String },
    #[error(
        "`public` cannot be combined with `{value}`: a public layer is open to every account, so \
         choose either `public` or a list of accounts and organizations"
    )]
    PublicWithOthers { value: String },
}

/// One principal, as written on the command line and in `lamina.toml`:
/// `account:ID`, `org:ID` or `public`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Principal {
    Account(String),
    Org(String),
    Public,
}

impl Principal {
    /// Parses `account:ID`, `org:ID` or `public`. Surrounding whitespace is not accepted: a value
    /// that needs trimming was probably pasted wrong.
    pub fn parse(value: &str) -> Result<Principal, AccessError> {
        if value == "public" {
            return Ok(Principal::Public);
        }
        if let Some(id) = value.strip_prefix("account:") {
            return match is_account_id(id) {
                true => Ok(Principal::Account(id.to_string())),
                false => Err(AccessError::BadAccount {
                    value: value.to_string(),
                }),
            };
        }
        if let Some(id) = value.strip_prefix("org:") {
            return match is_org_id(id) {
                true => Ok(Principal::Org(id.to_string())),
                false => Err(AccessError::BadOrg {
                    value: value.to_string(),
                }),
            };
        }
        Err(AccessError::UnknownWord {
            value: value.to_string(),
        })
    }

    /// The id of the policy statement that grants this principal access.
    pub fn statement_id(&self) -> String {
        statement_id(self)
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Account(id) => write!(f, "account:{id}"),
            Principal::Org(id) => write!(f, "org:{id}"),
            Principal::Public => f.write_str("public"),
        }
    }
}

impl FromStr for Principal {
    type Err = AccessError;

    fn from_str(value: &str) -> Result<Principal, AccessError> {
        Principal::parse(value)
    }
}

/// The statement id of `principal`: `lamina-account-<id>`, `lamina-org-<id>` or `lamina-public`.
/// Ids are deterministic so that every machine reconciles the same statements.
pub fn statement_id(principal: &Principal) -> String {
    match principal {
        Principal::Account(id) => format!("{STATEMENT_PREFIX}account-{id}"),
        Principal::Org(id) => format!("{STATEMENT_PREFIX}org-{id}"),
        Principal::Public => format!("{STATEMENT_PREFIX}public"),
    }
}

/// The principal a lamina statement id stands for; `None` for statements lamina did not create.
pub fn principal_of_statement(statement_id: &str) -> Option<Principal> {
    let rest = statement_id.strip_prefix(STATEMENT_PREFIX)?;
    if rest == "public" {
        return Some(Principal::Public);
    }
    if let Some(id) = rest.strip_prefix("account-") {
        return is_account_id(id).then(|| Principal::Account(id.to_string()));
    }
    let id = rest.strip_prefix("org-")?;
    is_org_id(id).then(|| Principal::Org(id.to_string()))
}

/// Parses a list of principals, refusing duplicates and `public` next to anything else.
pub fn parse_principals<S: AsRef<str>>(values: &[S]) -> Result<Vec<Principal>, AccessError> {
    let mut seen = BTreeSet::new();
    let mut principals = Vec::with_capacity(values.len());
    for value in values {
        let principal = Principal::parse(value.as_ref())?;
        if !seen.insert(principal.clone()) {
            return Err(AccessError::Duplicate {
                value: principal.to_string(),
            });
        }
        principals.push(principal);
    }
    check_public_alone(&principals)?;
    Ok(principals)
}

fn check_public_alone(principals: &[Principal]) -> Result<(), AccessError> {
    if !principals.contains(&Principal::Public) {
        return Ok(());
    }
    match principals
        .iter()
        .find(|principal| **principal != Principal::Public)
    {
        Some(other) => Err(AccessError::PublicWithOthers {
            value: other.to_string(),
        }),
        None => Ok(()),
    }
}

fn is_account_id(id: &str) -> bool {
    id.len() == 12 && id.bytes().all(|byte| byte.is_ascii_digit())
}

fn is_org_id(id: &str) -> bool {
    let Some(rest) = id.strip_prefix("o-") else {
        return false;
    };
    (10..=32).contains(&rest.len())
        && rest
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit())
}

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

/// What a grant took away, for the command line to tell the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessNotice {
    /// Accounts or organizations were granted to a public layer: public access was removed.
    PublicRemoved,
    /// Public access was granted to a layer shared with these principals: they were replaced.
    SpecificReplaced { removed: Vec<Principal> },
}

impl fmt::Display for AccessNotice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessNotice::PublicRemoved => f.write_str(
                "public access removed: the layer is no longer open to every account, only to \
                 its owner and the accounts and organizations listed",
            ),
            AccessNotice::SpecificReplaced { removed } => {
                let names: Vec<String> = removed.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "the layer is now public: every account may use it, which replaces the \
                     specific access of {}",
                    names.join(", ")
                )
            }
        }
    }
}

impl AccessSet {
    /// The set of `principals`, which must be free of duplicates and must not mix `public` with
    /// anything else.
    pub fn from_principals(principals: &[Principal]) -> Result<AccessSet, AccessError> {
        let mut seen = BTreeSet::new();
        for principal in principals {
            if !seen.insert(principal) {
                return Err(AccessError::Duplicate {
                    value: principal.to_string(),
                });
            }
        }
        check_public_alone(principals)?;
        let mut set = AccessSet::default();
        for principal in principals {
            set.insert(principal);
        }
        Ok(set)
    }

    /// Parses a list such as `["account:123456789012", "org:o-abcdefghij"]`.
    pub fn parse<S: AsRef<str>>(values: &[S]) -> Result<AccessSet, AccessError> {
        AccessSet::from_principals(&parse_principals(values)?)
    }

    /// The principals in a stable order: accounts, then organizations, then public.
    pub fn principals(&self) -> Vec<Principal> {
        let accounts = self.accounts.iter().cloned().map(Principal::Account);
        let orgs = self.orgs.iter().cloned().map(Principal::Org);
        let public = self.public.then_some(Principal::Public);
        accounts.chain(orgs).chain(public).collect()
    }

    /// The principals as written in `lamina.toml` and on the command line.
    pub fn to_strings(&self) -> Vec<String> {
        self.principals().iter().map(ToString::to_string).collect()
    }

    /// True when only the owning account has access.
    pub fn is_owner_only(&self) -> bool {
        self.accounts.is_empty() && self.orgs.is_empty() && !self.public
    }

    pub fn contains(&self, principal: &Principal) -> bool {
        match principal {
            Principal::Account(id) => self.accounts.contains(id),
            Principal::Org(id) => self.orgs.contains(id),
            Principal::Public => self.public,
        }
    }

    /// Adds `principals`, keeping public access exclusive. Granting accounts or organizations to a
    /// public set removes public; granting public to a set with accounts or organizations replaces
    /// them. Either way the returned notice says what was taken away. Principals already present
    /// are not an error (granting is idempotent), but `public` next to others in one grant is.
    pub fn grant(&mut self, principals: &[Principal]) -> Result<Option<AccessNotice>, AccessError> {
        check_public_alone(principals)?;
        if principals.is_empty() {
            return Ok(None);
        }
        let notice = if principals.contains(&Principal::Public) {
            let removed: Vec<Principal> = self
                .principals()
                .into_iter()
                .filter(|p| *p != Principal::Public)
                .collect();
            *self = AccessSet {
                public: true,
                ..AccessSet::default()
            };
            (!removed.is_empty()).then_some(AccessNotice::SpecificReplaced { removed })
        } else {
            let was_public = std::mem::take(&mut self.public);
            principals
                .iter()
                .for_each(|principal| self.insert(principal));
            was_public.then_some(AccessNotice::PublicRemoved)
        };
        Ok(notice)
    }

    /// Removes `principals`; returns those that had no access to begin with, which the caller may
    /// want to mention (revoking is idempotent, so they are not an error).
    pub fn revoke(&mut self, principals: &[Principal]) -> Vec<Principal> {
        let mut absent = Vec::new();
        for principal in principals {
            let was_present = match principal {
                Principal::Account(id) => self.accounts.remove(id),
                Principal::Org(id) => self.orgs.remove(id),
                Principal::Public => std::mem::take(&mut self.public),
            };
            if !was_present {
                absent.push(principal.clone());
            }
        }
        absent
    }

    fn insert(&mut self, principal: &Principal) {
        match principal {
            Principal::Account(id) => {
                self.accounts.insert(id.clone());
            }
            Principal::Org(id) => {
                self.orgs.insert(id.clone());
            }
            Principal::Public => self.public = true,
        }
    }
}

impl fmt::Display for AccessSet {
    /// `owner only`, `public`, or the principals separated by commas.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.is_owner_only() {
            true => f.write_str("owner only"),
            false => f.write_str(&self.to_strings().join(", ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "account:123456789012";
    const ORG: &str = "org:o-abcdefghij";

    fn set(values: &[&str]) -> AccessSet {
        AccessSet::parse(values).unwrap()
    }

    #[test]
    fn parses_each_kind_of_principal() {
        assert_eq!(
            Principal::parse(ACCOUNT).unwrap(),
            Principal::Account("123456789012".into())
        );
        assert_eq!(
            Principal::parse(ORG).unwrap(),
            Principal::Org("o-abcdefghij".into())
        );
        assert_eq!(Principal::parse("public").unwrap(), Principal::Public);
        let longest_org = format!("org:o-{}", "a1".repeat(16));
        assert!(Principal::parse(&longest_org).is_ok());
    }

    #[test]
    fn account_ids_must_be_twelve_digits() {
        for bad in [
            "account:12345678901",
            "account:1234567890123",
            "account:12345678901a",
        ] {
            let error = Principal::parse(bad).unwrap_err();
            assert_eq!(error, AccessError::BadAccount { value: bad.into() });
            assert!(error.to_string().contains(bad), "{error}");
        }
    }

    #[test]
    fn org_ids_follow_the_aws_pattern() {
        let too_long = format!("org:o-{}", "a".repeat(33));
        for bad in [
            "org:o-abc",
            "org:o-ABCDEFGHIJ",
            "org:abcdefghijkl",
            "org:o-abcdefghi!",
            &too_long,
        ] {
            let error = Principal::parse(bad).unwrap_err();
            assert_eq!(error, AccessError::BadOrg { value: bad.into() });
        }
    }

    #[test]
    fn unknown_words_are_named() {
        for bad in ["everyone", "Public", "user:123456789012", " public", ""] {
            let error = Principal::parse(bad).unwrap_err();
            assert_eq!(error, AccessError::UnknownWord { value: bad.into() });
        }
    }

    #[test]
    fn duplicates_are_refused() {
        let error = parse_principals(&[ACCOUNT, ORG, ACCOUNT]).unwrap_err();
        assert_eq!(
            error,
            AccessError::Duplicate {
                value: ACCOUNT.into()
            }
        );
    }

    #[test]
    fn public_cannot_be_listed_with_accounts() {
        let error = AccessSet::parse(&["public", ACCOUNT]).unwrap_err();
        assert_eq!(
            error,
            AccessError::PublicWithOthers {
                value: ACCOUNT.into()
            }
        );
    }

    #[test]
    fn granting_an_account_to_a_public_layer_removes_public() {
        let mut access = set(&["public"]);
        let notice = access.grant(&[Principal::parse(ACCOUNT).unwrap()]).unwrap();
        assert_eq!(notice, Some(AccessNotice::PublicRemoved));
        assert_eq!(access, set(&[ACCOUNT]));
        assert!(notice
            .unwrap()
            .to_string()
            .contains("public access removed"));
    }

    #[test]
    fn granting_public_replaces_specific_access_with_a_notice() {
        let mut access = set(&[ACCOUNT, ORG]);
        let notice = access.grant(&[Principal::Public]).unwrap().unwrap();
        assert_eq!(access, set(&["public"]));
        let AccessNotice::SpecificReplaced { removed } = &notice else {
            panic!("{notice:?}")
        };
        assert_eq!(removed.len(), 2);
        assert!(notice.to_string().contains(ACCOUNT), "{notice}");
    }

    #[test]
    fn granting_what_is_there_is_quiet() {
        let mut access = set(&[ACCOUNT]);
        assert_eq!(
            access.grant(&[Principal::parse(ACCOUNT).unwrap()]).unwrap(),
            None
        );
        assert_eq!(
            access.grant(&[Principal::parse(ORG).unwrap()]).unwrap(),
            None
        );
        assert_eq!(access, set(&[ACCOUNT, ORG]));
        let mut public = set(&["public"]);
        assert_eq!(public.grant(&[Principal::Public]).unwrap(), None);
    }

    #[test]
    fn revoke_reports_principals_that_had_no_access() {
        let mut access = set(&[ACCOUNT, ORG]);
        let absent = access.revoke(&[Principal::parse(ACCOUNT).unwrap(), Principal::Public]);
        assert_eq!(absent, vec![Principal::Public]);
        assert_eq!(access, set(&[ORG]));
    }

    #[test]
    fn statement_ids_round_trip() {
        for value in [ACCOUNT, ORG, "public"] {
            let principal = Principal::parse(value).unwrap();
            let id = statement_id(&principal);
            assert!(id.starts_with("lamina-"), "{id}");
            assert_eq!(principal_of_statement(&id), Some(principal));
        }
        assert_eq!(
            statement_id(&Principal::Account("123456789012".into())),
            "lamina-account-123456789012"
        );
        assert_eq!(principal_of_statement("someone-elses-statement"), None);
    }

    #[test]
    fn principals_print_as_they_parse() {
        let access = set(&[ORG, ACCOUNT]);
        assert_eq!(
            access.to_strings(),
            vec![ACCOUNT.to_string(), ORG.to_string()]
        );
        assert_eq!(AccessSet::default().to_string(), "owner only");
    }
}
