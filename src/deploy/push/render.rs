//! The plan as text, for the command line to print before asking for confirmation.

use crate::access::AccessSet;
use crate::deploy::push::{
    FunctionAction, FunctionPlan, LayerAction, LayerPlan, PushPlan, ResolvedLayer,
};

impl PushPlan {
    /// Whether the plan publishes or deploys anything.
    pub fn has_changes(&self) -> bool {
        let publishes = self.layers.iter().any(|layer| layer.is_publish());
        publishes
            || self
                .functions
                .iter()
                .any(|f| f.action != FunctionAction::Unchanged)
    }

    /// The plan as lines of text for the command line to print.
    pub fn render(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.layers.iter().map(LayerPlan::render).collect();
        lines.extend(self.functions.iter().map(FunctionPlan::render));
        if self.layers.iter().any(LayerPlan::is_publish) {
            lines.push(format!(
                "new versions are described as \"{}\"",
                self.description
            ));
        }
        lines.extend(self.notes.iter().map(|note| format!("note: {note}")));
        lines
    }
}

impl LayerPlan {
    fn is_publish(&self) -> bool {
        matches!(self.action, LayerAction::Publish(_))
    }

    fn render(&self) -> String {
        match &self.action {
            LayerAction::Publish(_) => format!(
                "layer `{}`: publish a new version (content {}), shared with {}",
                self.layer,
                self.digest.short(),
                describe_access(&self.access)
            ),
            LayerAction::Unchanged(version) => format!(
                "layer `{}`: unchanged, version {} holds this content",
                self.layer, version.version
            ),
        }
    }
}

impl FunctionPlan {
    fn render(&self) -> String {
        let layers: Vec<String> = self.layers.iter().map(ResolvedLayer::render).collect();
        let layers = if layers.is_empty() {
            "none".to_string()
        } else {
            layers.join(", ")
        };
        let action = match self.action {
            FunctionAction::Create => "create".to_string(),
            FunctionAction::Unchanged => "unchanged".to_string(),
            FunctionAction::Update {
                code_changed,
                layers_changed,
                config_changed,
            } => {
                let what = [
                    (code_changed, "code"),
                    (layers_changed, "layers"),
                    (config_changed, "configuration"),
                ];
                let what: Vec<&str> = what
                    .iter()
                    .filter(|(is, _)| *is)
                    .map(|(_, name)| *name)
                    .collect();
                format!("update {}", what.join(", "))
            }
        };
        format!("function `{}`: {action}; layers: {layers}", self.function)
    }
}

impl ResolvedLayer {
    fn render(&self) -> String {
        match self {
            ResolvedLayer::Existing { layer, version, .. } => format!("{layer}:{version}"),
            ResolvedLayer::New { layer } => format!("{layer}:new"),
            ResolvedLayer::External { arn } => arn.clone(),
        }
    }
}

/// Who besides the owning account may use a version, in words.
pub fn describe_access(access: &AccessSet) -> String {
    if access.public {
        return "everyone (public)".to_string();
    }
    let accounts = access.accounts.iter().map(|id| format!("account {id}"));
    let orgs = access.orgs.iter().map(|id| format!("organization {id}"));
    let principals: Vec<String> = accounts.chain(orgs).collect();
    if principals.is_empty() {
        "the owning account only".to_string()
    } else {
        format!("the owning account and {}", principals.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    use super::*;
    use crate::deploy::DeployFunction;
    use crate::digest::Digest;

    #[test]
    fn access_reads_as_words() {
        assert_eq!(
            describe_access(&AccessSet::default()),
            "the owning account only"
        );
        let public = AccessSet {
            public: true,
            ..AccessSet::default()
        };
        assert_eq!(describe_access(&public), "everyone (public)");
        let shared = AccessSet {
            accounts: BTreeSet::from(["123456789012".to_string()]),
            orgs: BTreeSet::from(["o-abcdefghij".to_string()]),
            public: false,
        };
        assert_eq!(
            describe_access(&shared),
            "the owning account and account 123456789012, organization o-abcdefghij"
        );
    }

    #[test]
    fn an_update_names_what_changed_and_the_layers_in_order() {
        let plan = FunctionPlan {
            function: "api".to_string(),
            action: FunctionAction::Update {
                code_changed: true,
                layers_changed: false,
                config_changed: true,
            },
            layers: vec![
                ResolvedLayer::New {
                    layer: "b".to_string(),
                },
                ResolvedLayer::Existing {
                    layer: "a".to_string(),
                    version: 3,
                    arn: "arn:aws:lambda:local:000000000000:layer:a:3".to_string(),
                },
                ResolvedLayer::External {
                    arn: "arn:x".to_string(),
                },
            ],
            request: DeployFunction {
                name: "api".to_string(),
                runtime: "nodejs22.x".to_string(),
                handler: "index.handler".to_string(),
                role: None,
                zip_path: PathBuf::from("api.zip"),
                zip_size: 1,
                code_sha256: String::new(),
                layers: Vec::new(),
                architectures: Vec::new(),
                digest: Digest([0; 32]),
                unzipped_size: 1,
            },
        };
        assert_eq!(
            plan.render(),
            "function `api`: update code, configuration; layers: b:new, a:3, arn:x"
        );
    }
}
