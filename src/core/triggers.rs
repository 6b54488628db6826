//! Which workspaces a set of changed files touches. A workspace's trigger patterns are globs
//! relative to the repository root (`*` stays within a directory, `**` crosses them); without
//! any, everything under its working directory triggers it. Pure: no I/O.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// A trigger pattern that is not a valid glob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid trigger pattern `{pattern}`: {message}")]
pub struct TriggerError {
    pub pattern: String,
    pub message: String,
}

/// A workspace's compiled trigger patterns.
#[derive(Debug, Clone)]
pub struct Triggers {
    set: GlobSet,
}

impl Triggers {
    /// `working_directory` is relative to the repository root ("" or "." for the root).
    pub fn new(working_directory: &str, patterns: &[String]) -> Result<Self, TriggerError> {
        let defaults;
        let patterns: &[String] = if patterns.is_empty() {
            defaults = [default_pattern(working_directory)];
            &defaults
        } else {
            patterns
        };
        let mut builder = GlobSetBuilder::new();
        for pattern in patterns {
            let relative = pattern.trim().trim_start_matches('/');
            let glob = GlobBuilder::new(relative)
                .literal_separator(true)
                .build()
                .map_err(|e| TriggerError {
                    pattern: pattern.clone(),
                    message: e.kind().to_string(),
                })?;
            builder.add(glob);
        }
        let set = builder.build().map_err(|e| TriggerError {
            pattern: patterns.join(", "),
            message: e.to_string(),
        })?;
        Ok(Self { set })
    }

    /// Whether any of these repository-relative paths triggers the workspace.
    pub fn matches_any<'a>(&self, changed_files: impl IntoIterator<Item = &'a str>) -> bool {
        changed_files
            .into_iter()
            .any(|path| self.set.is_match(path.trim_start_matches('/')))
    }
}

fn default_pattern(working_directory: &str) -> String {
    let dir = working_directory.trim().trim_matches('/');
    if dir.is_empty() || dir == "." {
        "**".to_string()
    } else {
        format!("{dir}/**")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn triggers(dir: &str, patterns: &[&str]) -> Triggers {
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        Triggers::new(dir, &patterns).unwrap()
    }

    #[test]
    fn by_default_everything_under_the_working_directory_triggers() {
        let t = triggers("infra/prod", &[]);
        assert!(t.matches_any(["infra/prod/main.tf"]));
        assert!(t.matches_any(["README.md", "infra/prod/modules/net/vpc.tf"]));
        assert!(!t.matches_any(["infra/staging/main.tf", "infra/production.tf"]));
    }

    #[test]
    fn a_workspace_at_the_root_is_triggered_by_any_file() {
        assert!(triggers("", &[]).matches_any(["docs/x.md"]));
        assert!(triggers(".", &[]).matches_any(["main.tf"]));
    }

    #[test]
    fn patterns_replace_the_default() {
        let t = triggers("infra/prod", &["infra/prod/*.tf", "/modules/**/*.tf"]);
        assert!(t.matches_any(["infra/prod/main.tf"]));
        assert!(t.matches_any(["modules/net/sub/vpc.tf"]));
        assert!(!t.matches_any(["infra/prod/README.md"]));
        assert!(
            !t.matches_any(["infra/prod/nested/main.tf"]),
            "* stays within a directory"
        );
    }

    #[test]
    fn no_changed_files_trigger_nothing() {
        assert!(!triggers("", &[]).matches_any(std::iter::empty()));
    }

    #[test]
    fn an_invalid_pattern_is_an_error_naming_it() {
        let err = Triggers::new("", &["infra/[prod".to_string()]).unwrap_err();
        assert_eq!(err.pattern, "infra/[prod");
    }
}
