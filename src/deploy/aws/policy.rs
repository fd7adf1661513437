//! A layer version's access as Lambda resource-policy statements, and the plan that makes a
//! version's policy match the access the manifest asks for.
//!
//! Each principal of an [`AccessSet`] becomes one statement with a deterministic id, so that
//! lamina can tell its own statements from anyone else's and compute the difference without
//! comparing policy documents (whose layout differs between AWS and test servers):
//!
//! | access            | statement id              | principal | organization id |
//! |-------------------|---------------------------|-----------|-----------------|
//! | `account:ID`      | `lamina-account-ID`       | `ID`      | —               |
//! | `org:ID`          | `lamina-org-ID`           | `*`       | `ID`            |
//! | `public`          | `lamina-public`           | `*`       | —               |
//!
//! Every statement grants `lambda:GetLayerVersion` and nothing else. A statement whose id does not
//! have one of these shapes is foreign: it is left alone and reported.
//!
//! AWS rejects malformed ids and duplicate statement ids, but test servers accept both, so the
//! access is validated here before any call.

use std::collections::BTreeSet;

use serde_json::Value;

use super::AwsError;
use crate::access::AccessSet;

/// The only action lamina grants on a layer version.
pub const GRANTED_ACTION: &str = "lambda:GetLayerVersion";

const ACCOUNT_PREFIX: &str = "lamina-account-";
const ORG_PREFIX: &str = "lamina-org-";
const PUBLIC_ID: &str = "lamina-public";

/// One statement lamina wants on a version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    pub statement_id: String,
    /// An account id, or `*` for organizations and the public.
    pub principal: String,
    pub organization_id: Option<String>,
}

/// What to change on one version's policy.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PolicyPlan {
    pub add: Vec<Grant>,
    /// Ids of lamina statements that must go.
    pub remove: Vec<String>,
    /// Ids of statements lamina did not create.
    pub foreign: Vec<String>,
}

/// The statements that grant exactly `access`, after checking it as AWS would.
pub fn grants(layer: &str, access: &AccessSet) -> Result<Vec<Grant>, AwsError> {
    validate(layer, access)?;
    let accounts = access.accounts.iter().map(|id| Grant {
        statement_id: format!("{ACCOUNT_PREFIX}{id}"),
        principal: id.clone(),
        organization_id: None,
    });
    let orgs = access.orgs.iter().map(|id| Grant {
        statement_id: format!("{ORG_PREFIX}{id}"),
        principal: "*".to_owned(),
        organization_id: Some(id.clone()),
    });
    let public = access.public.then(|| Grant {
        statement_id: PUBLIC_ID.to_owned(),
        principal: "*".to_owned(),
        organization_id: None,
    });
    Ok(accounts.chain(orgs).chain(public).collect())
}

/// Compares the statement ids present on a version with the grants wanted.
pub fn plan(present: &[String], wanted: Vec<Grant>) -> PolicyPlan {
    let present_set: BTreeSet<&str> = present.iter().map(String::as_str).collect();
    let wanted_ids: BTreeSet<String> = wanted.iter().map(|g| g.statement_id.clone()).collect();
    let (ours, foreign): (Vec<&str>, Vec<&str>) = present_set
        .iter()
        .partition(|id| parse_statement_id(id).is_some());
    PolicyPlan {
        add: wanted
            .into_iter()
            .filter(|g| !present_set.contains(g.statement_id.as_str()))
            .collect(),
        remove: ours
            .into_iter()
            .filter(|id| !wanted_ids.contains(*id))
            .map(str::to_owned)
            .collect(),
        foreign: foreign.into_iter().map(str::to_owned).collect(),
    }
}

/// The access that lamina's statements among `statement_ids` grant; foreign ones are ignored.
pub fn access_from_statements(statement_ids: &[String]) -> AccessSet {
    let mut access = AccessSet::default();
    for id in statement_ids {
        match parse_statement_id(id) {
            Some(Parsed::Account(account)) => {
                access.accounts.insert(account.to_owned());
            }
            Some(Parsed::Org(org)) => {
                access.orgs.insert(org.to_owned());
            }
            Some(Parsed::Public) => access.public = true,
            None => {}
        }
    }
    access
}

/// The statement ids of a policy document as GetLayerVersionPolicy returns it. `Statement` may be
/// a list or a single object; statements without an id are reported as foreign under `(no id)`.
pub fn statement_ids(policy: &str) -> Result<Vec<String>, serde_json::Error> {
    let document: Value = serde_json::from_str(policy)?;
    let statements = match document.get("Statement") {
        Some(Value::Array(list)) => list.clone(),
        Some(single @ Value::Object(_)) => vec![single.clone()],
        _ => Vec::new(),
    };
    let id_of = |statement: &Value| {
        statement
            .get("Sid")
            .and_then(Value::as_str)
            .unwrap_or("(no id)")
            .to_owned()
    };
    Ok(statements.iter().map(id_of).collect())
}

enum Parsed<'a> {
    Account(&'a str),
    Org(&'a str),
    Public,
}

fn parse_statement_id(id: &str) -> Option<Parsed<'_>> {
    if id == PUBLIC_ID {
        return Some(Parsed::Public);
    }
    if let Some(account) = id.strip_prefix(ACCOUNT_PREFIX).filter(|a| is_account_id(a)) {
        return Some(Parsed::Account(account));
    }
    id.strip_prefix(ORG_PREFIX)
        .filter(|o| is_org_id(o))
        .map(Parsed::Org)
}

fn validate(layer: &str, access: &AccessSet) -> Result<(), AwsError> {
    let invalid = |value: String, reason| AwsError::InvalidAccess {
        layer: layer.to_owned(),
        value,
        reason,
    };
    if access.public && !(access.accounts.is_empty() && access.orgs.is_empty()) {
        let reason = "public access is exclusive: it cannot be combined with accounts or \
                      organizations";
        return Err(invalid("public".to_owned(), reason));
    }
    if let Some(bad) = access.accounts.iter().find(|a| !is_account_id(a)) {
        return Err(invalid(
            format!("account:{bad}"),
            "an account id is exactly 12 digits",
        ));
    }
    if let Some(bad) = access.orgs.iter().find(|o| !is_org_id(o)) {
        let reason = "an organization id is `o-` then 10 to 32 lowercase letters or digits";
        return Err(invalid(format!("org:{bad}"), reason));
    }
    Ok(())
}

fn is_account_id(id: &str) -> bool {
    id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit())
}

fn is_org_id(id: &str) -> bool {
    id.strip_prefix("o-").is_some_and(|rest| {
        (10..=32).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(accounts: &[&str], orgs: &[&str], public: bool) -> AccessSet {
        AccessSet {
            accounts: accounts.iter().map(|s| s.to_string()).collect(),
            orgs: orgs.iter().map(|s| s.to_string()).collect(),
            public,
        }
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn grants_have_deterministic_ids_and_principals() {
        let wanted = grants("l", &access(&["123456789012"], &["o-abcdefghij"], false)).unwrap();
        assert_eq!(
            wanted,
            vec![
                Grant {
                    statement_id: "lamina-account-123456789012".into(),
                    principal: "123456789012".into(),
                    organization_id: None,
                },
                Grant {
                    statement_id: "lamina-org-o-abcdefghij".into(),
                    principal: "*".into(),
                    organization_id: Some("o-abcdefghij".into()),
                },
            ]
        );
    }

    #[test]
    fn public_with_accounts_is_refused() {
        let error = grants("l", &access(&["123456789012"], &[], true)).unwrap_err();
        assert!(
            error.to_string().contains("public access is exclusive"),
            "{error}"
        );
    }

    #[test]
    fn malformed_ids_are_refused_before_any_call() {
        for bad in [
            access(&["12345"], &[], false),
            access(&[], &["o-SHORT"], false),
        ] {
            assert!(matches!(
                grants("l", &bad),
                Err(AwsError::InvalidAccess { .. })
            ));
        }
    }

    #[test]
    fn switching_public_to_an_account_removes_public() {
        let wanted = grants("l", &access(&["123456789012"], &[], false)).unwrap();
        let plan = plan(&ids(&["lamina-public", "someone-elses"]), wanted);
        assert_eq!(plan.remove, ids(&["lamina-public"]));
        assert_eq!(plan.add.len(), 1);
        assert_eq!(plan.foreign, ids(&["someone-elses"]));
    }

    #[test]
    fn statements_already_present_are_not_added_again() {
        let wanted = grants("l", &access(&[], &[], true)).unwrap();
        assert_eq!(
            plan(&ids(&["lamina-public"]), wanted),
            PolicyPlan::default()
        );
    }

    #[test]
    fn lookalike_ids_are_foreign() {
        let plan = plan(&ids(&["lamina-account-12", "lamina-publicity"]), Vec::new());
        assert!(plan.remove.is_empty());
        assert_eq!(
            plan.foreign,
            ids(&["lamina-account-12", "lamina-publicity"])
        );
    }

    #[test]
    fn statement_ids_accept_a_list_or_a_single_statement() {
        let list = r#"{"Statement":[{"Sid":"a"},{"Sid":"b"}]}"#;
        assert_eq!(statement_ids(list).unwrap(), ids(&["a", "b"]));
        let single = r#"{"Statement":{"Sid":"a"}}"#;
        assert_eq!(statement_ids(single).unwrap(), ids(&["a"]));
    }

    #[test]
    fn access_is_read_back_from_lamina_statements_only() {
        let read = access_from_statements(&ids(&[
            "lamina-account-123456789012",
            "lamina-org-o-abcdefghij",
            "foreign",
        ]));
        assert_eq!(read, access(&["123456789012"], &["o-abcdefghij"], false));
    }
}
