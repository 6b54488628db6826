//! Comment commands: lines starting with `/gantry` (the prefix is configurable) in a pull
//! request comment. Pure: it parses; the engine checks who asked and acts.

use super::workspace::WorkspaceName;

/// A command from a comment line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// New speculative plans for the pull request's head (only these workspaces, if named).
    Plan {
        workspaces: Vec<WorkspaceName>,
    },
    /// New runs for the head commit's failed or canceled speculative plans.
    Retry {
        workspaces: Vec<WorkspaceName>,
    },
    Help,
}

/// What one command line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    pub line: String,
    pub parsed: Result<Command, String>,
}

/// The usage text, for `help` and for lines that do not parse.
pub fn usage(prefix: &str) -> String {
    format!(
        "Gantry understands these commands, one per line:\n\n\
         - `{prefix} plan [-w WORKSPACE]…`: plan the pull request's head again (every affected workspace, or the ones named)\n\
         - `{prefix} retry [-w WORKSPACE]…`: run the failed or canceled plans of the head commit again\n\
         - `{prefix} help`: this text\n\n\
         Only people with write access to the repository can run them."
    )
}

/// Every command line of a comment body, in order. Lines not starting with the prefix (as a
/// whole word) are not commands.
pub fn parse_comment(body: &str, prefix: &str) -> Vec<CommandLine> {
    body.lines()
        .map(str::trim)
        .filter_map(|line| {
            let rest = line.strip_prefix(prefix)?;
            if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
                return None; // "/gantryx" is not ours
            }
            Some(CommandLine {
                line: line.to_string(),
                parsed: parse_words(rest.split_whitespace().collect()),
            })
        })
        .collect()
}

fn parse_words(words: Vec<&str>) -> Result<Command, String> {
    let Some((&command, options)) = words.split_first() else {
        return Err("no command given".into());
    };
    match command {
        "plan" => Ok(Command::Plan {
            workspaces: workspace_options(options)?,
        }),
        "retry" => Ok(Command::Retry {
            workspaces: workspace_options(options)?,
        }),
        "help" if options.is_empty() => Ok(Command::Help),
        "help" => Err("help takes no options".into()),
        other => Err(format!("unknown command `{other}`")),
    }
}

/// More workspaces than any repository has is not a command a person wrote.
pub const MAX_WORKSPACE_OPTIONS: usize = 50;

fn workspace_options(options: &[&str]) -> Result<Vec<WorkspaceName>, String> {
    if options.len() > 2 * MAX_WORKSPACE_OPTIONS {
        return Err(format!(
            "too many options: name at most {MAX_WORKSPACE_OPTIONS} workspaces"
        ));
    }
    let mut names = Vec::new();
    let mut words = options.iter();
    while let Some(&word) = words.next() {
        let value = match word {
            "-w" | "--workspace" => *words
                .next()
                .ok_or_else(|| format!("`{word}` needs a workspace name"))?,
            other => match other
                .strip_prefix("--workspace=")
                .or_else(|| other.strip_prefix("-w="))
            {
                Some(value) => value,
                None => return Err(format!("unknown option `{other}`")),
            },
        };
        names.push(WorkspaceName::parse(value).map_err(|e| format!("`{value}`: {e}"))?);
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(body: &str) -> Vec<Result<Command, String>> {
        parse_comment(body, "/gantry")
            .into_iter()
            .map(|l| l.parsed)
            .collect()
    }

    fn ws(name: &str) -> WorkspaceName {
        WorkspaceName::parse(name).unwrap()
    }

    #[test]
    fn commands_with_workspace_options_in_order() {
        let body =
            "Looks good.\n/gantry plan -w prod --workspace=staging\n  /gantry retry\n/gantry help";
        assert_eq!(
            parsed(body),
            [
                Ok(Command::Plan {
                    workspaces: vec![ws("prod"), ws("staging")]
                }),
                Ok(Command::Retry { workspaces: vec![] }),
                Ok(Command::Help),
            ]
        );
    }

    #[test]
    fn malformed_lines_say_what_is_wrong() {
        assert_eq!(parsed("/gantry"), [Err("no command given".to_string())]);
        assert_eq!(
            parsed("/gantry apply"),
            [Err("unknown command `apply`".to_string())]
        );
        assert_eq!(
            parsed("/gantry plan -w"),
            [Err("`-w` needs a workspace name".to_string())]
        );
        assert_eq!(
            parsed("/gantry plan --force"),
            [Err("unknown option `--force`".to_string())]
        );
        assert!(parsed("/gantry plan -w ../etc").first().unwrap().is_err());
    }

    #[test]
    fn a_huge_option_list_is_refused() {
        let body = format!("/gantry plan {}", "-w a ".repeat(1000));
        assert!(
            parsed(&body)[0]
                .as_ref()
                .unwrap_err()
                .starts_with("too many options")
        );
    }

    #[test]
    fn other_text_and_other_prefixes_are_not_commands() {
        assert!(parsed("please /gantry plan\n/gantryx plan\nno commands").is_empty());
        let custom = parse_comment("/tf plan", "/tf");
        assert_eq!(custom.len(), 1);
        assert!(usage("/tf").contains("`/tf plan [-w WORKSPACE]…`"));
    }
}
