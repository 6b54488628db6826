//! What a person may ask of a run's plan, as Terraform Cloud offers it: a destroy plan,
//! a refresh-only plan, `-target` and `-replace` addresses. Pure: checked once when the run is
//! asked for, stored with the run, and turned into `terraform plan` arguments.

use serde::{Deserialize, Serialize};

/// The most addresses of each kind a run may name.
pub const MAX_ADDRESSES: usize = 100;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanOptions {
    /// `-destroy`: plan to destroy everything the state manages.
    #[serde(default, skip_serializing_if = "is_false")]
    pub destroy: bool,
    /// `-refresh-only`: plan only to bring the state in line with the real infrastructure.
    #[serde(default, skip_serializing_if = "is_false")]
    pub refresh_only: bool,
    /// `-target=ADDRESS` each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// `-replace=ADDRESS` each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaces: Vec<String>,
}

fn is_false(b: &bool) -> bool {
    !b
}

impl PlanOptions {
    /// Why these options cannot be run, as one sentence naming the option.
    pub fn problem(&self) -> Option<String> {
        if self.destroy && self.refresh_only {
            return Some("a plan is either a destroy plan or refresh-only, not both".into());
        }
        if self.refresh_only && !self.replaces.is_empty() {
            return Some("a refresh-only plan replaces nothing".into());
        }
        for (flag, addresses) in [("target", &self.targets), ("replace", &self.replaces)] {
            if addresses.len() > MAX_ADDRESSES {
                return Some(format!("at most {MAX_ADDRESSES} {flag} addresses"));
            }
            if let Some(bad) = addresses.iter().find(|a| !is_address(a)) {
                return Some(format!("{flag} `{bad}` is not a resource address"));
            }
        }
        None
    }

    /// The arguments `terraform plan` gets for them.
    pub fn plan_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if self.destroy {
            args.push("-destroy".to_string());
        }
        if self.refresh_only {
            args.push("-refresh-only".to_string());
        }
        args.extend(self.targets.iter().map(|a| format!("-target={a}")));
        args.extend(self.replaces.iter().map(|a| format!("-replace={a}")));
        args
    }

    /// The options in a few words for people ("destroy, -target=a.b"); empty for none.
    pub fn describe(&self) -> String {
        self.plan_args().join(" ")
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A resource address as Terraform writes one (`module.net["eu"].aws_vpc.main[0]`): no
/// whitespace or control characters, not an option, not absurdly long.
fn is_address(address: &str) -> bool {
    !address.is_empty()
        && address.len() <= 512
        && !address.starts_with('-')
        && address
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.[]\"*:/".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_become_plan_arguments() {
        let options = PlanOptions {
            destroy: true,
            targets: vec!["module.net[\"eu\"].terraform_data.a".into()],
            replaces: vec!["terraform_data.b[0]".into()],
            ..PlanOptions::default()
        };
        assert_eq!(options.problem(), None);
        assert_eq!(
            options.plan_args(),
            [
                "-destroy",
                "-target=module.net[\"eu\"].terraform_data.a",
                "-replace=terraform_data.b[0]"
            ]
        );
        assert!(PlanOptions::default().plan_args().is_empty());
    }

    #[test]
    fn nonsense_is_refused_with_the_option_named() {
        let both = PlanOptions {
            destroy: true,
            refresh_only: true,
            ..PlanOptions::default()
        };
        assert!(both.problem().unwrap().contains("not both"));
        for bad in ["-lock=false", "a b", "", "a\nb"] {
            let options = PlanOptions {
                targets: vec![bad.into()],
                ..PlanOptions::default()
            };
            assert!(
                options.problem().unwrap().starts_with("target `"),
                "{bad:?}"
            );
        }
    }
}
