//! Terraform Cloud's resource ids (`ws-…`, `run-…`) over Gantry's numbers: the prefix names
//! the kind, so an id of one kind never finds a resource of another.

use super::error::TfeError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Workspace,
    Run,
    Plan,
    Apply,
    ConfigurationVersion,
    StateVersion,
    /// A state version announced, before its upload arrives.
    StateUpload,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Workspace => "ws",
            Kind::Run => "run",
            Kind::Plan => "plan",
            Kind::Apply => "apply",
            Kind::ConfigurationVersion => "cv",
            Kind::StateVersion => "sv",
            Kind::StateUpload => "svu",
        }
    }

    /// The JSON:API `type` of its documents.
    pub fn resource_type(self) -> &'static str {
        match self {
            Kind::Workspace => "workspaces",
            Kind::Run => "runs",
            Kind::Plan => "plans",
            Kind::Apply => "applies",
            Kind::ConfigurationVersion => "configuration-versions",
            Kind::StateVersion | Kind::StateUpload => "state-versions",
        }
    }
}

pub fn external(kind: Kind, id: i64) -> String {
    format!("{}-{id}", kind.prefix())
}

/// The number in `id`, if it is an id of `kind`; otherwise the CLI's 404.
pub fn parse(kind: Kind, id: &str) -> Result<i64, TfeError> {
    id.strip_prefix(kind.prefix())
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| TfeError::not_found(format!("{} {id} not found", kind.resource_type())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_round_trips_and_names_its_kind() {
        assert_eq!(external(Kind::Run, 42), "run-42");
        assert_eq!(parse(Kind::Run, "run-42").unwrap(), 42);
        assert!(parse(Kind::Workspace, "run-42").is_err());
        assert!(parse(Kind::StateVersion, "svu-3").is_err());
        assert_eq!(parse(Kind::StateUpload, "svu-3").unwrap(), 3);
        assert!(parse(Kind::Run, "run-x").is_err());
    }
}
