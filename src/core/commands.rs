//! Comment commands: lines starting with `/gantry` (the prefix is configurable) in a pull
//! request comment. Pure: it parses; the engine checks who asked and acts.
//!
//! ```text
//! command   = PREFIX ( "plan" | "retry" ) workspace* | PREFIX "help"
//!           | PREFIX "override" workspace* REASON
//! workspace = ( "-w" | "--workspace" ) NAME | "-w=" NAME | "--workspace=" NAME
//! ```
//!
//! A command is a line of the comment that starts with the prefix, as a whole word. The comment
//! is Markdown: a line inside a code block, inline code, a block quote or an HTML comment is
//! text someone quoted or hid, never a command (a maintainer explaining `/gantry plan` to a
//! fork's author must not approve its plan).

use std::ops::Range;

use pulldown_cmark::{Event, Parser, Tag};

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
    /// Overrides the failed policy check of the runs of the pull request's commits that wait
    /// for one (only these workspaces, if named), for `reason`.
    Override {
        workspaces: Vec<WorkspaceName>,
        reason: String,
    },
    Help,
}

/// Why a command line is not a command; each is one sentence for the reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("no command given")]
    MissingCommand,
    #[error("unknown command `{0}`")]
    UnknownCommand(String),
    #[error("{0} takes no options")]
    TakesNoOptions(String),
    #[error("unknown option `{0}`")]
    UnknownOption(String),
    #[error("`{0}` needs a workspace name")]
    MissingWorkspace(String),
    #[error("`{name}`: {reason}")]
    InvalidWorkspace { name: String, reason: String },
    #[error("too many options: name at most {MAX_WORKSPACE_OPTIONS} workspaces")]
    TooManyOptions,
    #[error("override needs a reason after the workspaces it names")]
    MissingReason,
}

/// What one command line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    pub line: String,
    pub parsed: Result<Command, CommandError>,
}

/// The usage text, for `help` and for lines that do not parse.
pub fn usage(prefix: &str) -> String {
    format!(
        "Gantry understands these commands, one per line:\n\n\
         - `{prefix} plan [-w WORKSPACE]…`: plan the pull request's head again (every affected workspace, or the ones named)\n\
         - `{prefix} retry [-w WORKSPACE]…`: run the failed or canceled plans of the head commit again\n\
         - `{prefix} override [-w WORKSPACE]… REASON`: let the runs of this pull request's commits that wait on a failed policy check go on (admins only)\n\
         - `{prefix} help`: this text\n\n\
         Commands in code blocks, inline code or quotes are not run. \
         Only people with write access to the repository can run them."
    )
}

/// Every command line of a comment body, in order. Lines not starting with the prefix (as a
/// whole word), and lines that start in quoted or hidden Markdown, are not commands.
pub fn parse_comment(body: &str, prefix: &str) -> Vec<CommandLine> {
    let quoted = quoted_ranges(body);
    lines_with_offsets(body)
        .filter_map(|(offset, line)| {
            let trimmed = line.trim();
            let rest = trimmed.strip_prefix(prefix)?;
            if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
                return None; // "/gantryx" is not ours
            }
            let start = offset + (line.len() - line.trim_start().len());
            if quoted.iter().any(|range| range.contains(&start)) {
                return None;
            }
            Some(CommandLine {
                line: trimmed.to_string(),
                parsed: parse_words(rest.split_whitespace().collect()),
            })
        })
        .collect()
}

/// The lines of `body` (as `str::lines` splits them) with the byte offset each starts at.
fn lines_with_offsets(body: &str) -> impl Iterator<Item = (usize, &str)> {
    body.split_inclusive('\n').scan(0, |offset, piece| {
        let start = *offset;
        *offset += piece.len();
        let line = piece.strip_suffix('\n').unwrap_or(piece);
        Some((start, line.strip_suffix('\r').unwrap_or(line)))
    })
}

/// Where in `body` Markdown quotes or hides text: code blocks, inline code, block quotes
/// (with their lazy continuation lines) and HTML comments.
fn quoted_ranges(body: &str) -> Vec<Range<usize>> {
    Parser::new(body)
        .into_offset_iter()
        .filter_map(|(event, range)| match event {
            Event::Start(Tag::CodeBlock(_) | Tag::BlockQuote(_)) | Event::Code(_) => Some(range),
            Event::Start(Tag::HtmlBlock) | Event::InlineHtml(_)
                if body[range.clone()].trim_start().starts_with("<!--") =>
            {
                Some(range)
            }
            _ => None,
        })
        .collect()
}

fn parse_words(words: Vec<&str>) -> Result<Command, CommandError> {
    let Some((&command, options)) = words.split_first() else {
        return Err(CommandError::MissingCommand);
    };
    match command {
        "plan" => Ok(Command::Plan {
            workspaces: workspace_options(options)?,
        }),
        "retry" => Ok(Command::Retry {
            workspaces: workspace_options(options)?,
        }),
        "override" => {
            // Workspace options first; the first other word starts the reason.
            let mut split = 0;
            while split < options.len() && options[split].starts_with('-') {
                let takes_value = matches!(options[split], "-w" | "--workspace");
                split += if takes_value { 2 } else { 1 };
            }
            let split = split.min(options.len());
            let reason = options[split..].join(" ");
            if reason.is_empty() {
                return Err(CommandError::MissingReason);
            }
            Ok(Command::Override {
                workspaces: workspace_options(&options[..split])?,
                reason,
            })
        }
        "help" if options.is_empty() => Ok(Command::Help),
        "help" => Err(CommandError::TakesNoOptions(command.into())),
        other => Err(CommandError::UnknownCommand(other.into())),
    }
}

/// More workspaces than any repository has is not a command a person wrote.
pub const MAX_WORKSPACE_OPTIONS: usize = 50;

fn workspace_options(options: &[&str]) -> Result<Vec<WorkspaceName>, CommandError> {
    if options.len() > 2 * MAX_WORKSPACE_OPTIONS {
        return Err(CommandError::TooManyOptions);
    }
    let mut names = Vec::new();
    let mut words = options.iter();
    while let Some(&word) = words.next() {
        let value = match word {
            "-w" | "--workspace" => *words
                .next()
                .ok_or_else(|| CommandError::MissingWorkspace(word.into()))?,
            other => match other
                .strip_prefix("--workspace=")
                .or_else(|| other.strip_prefix("-w="))
            {
                Some(value) => value,
                None => return Err(CommandError::UnknownOption(other.into())),
            },
        };
        let name =
            WorkspaceName::parse(value).map_err(|reason| CommandError::InvalidWorkspace {
                name: value.into(),
                reason,
            })?;
        names.push(name);
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(body: &str) -> Vec<Result<Command, CommandError>> {
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
        assert_eq!(parsed("/gantry"), [Err(CommandError::MissingCommand)]);
        assert_eq!(
            parsed("/gantry apply"),
            [Err(CommandError::UnknownCommand("apply".into()))]
        );
        assert_eq!(
            parsed("/gantry help me"),
            [Err(CommandError::TakesNoOptions("help".into()))]
        );
        assert_eq!(
            parsed("/gantry plan -w"),
            [Err(CommandError::MissingWorkspace("-w".into()))]
        );
        assert_eq!(
            parsed("/gantry plan --force"),
            [Err(CommandError::UnknownOption("--force".into()))]
        );
        assert!(matches!(
            &parsed("/gantry plan -w ../etc")[..],
            [Err(CommandError::InvalidWorkspace { name, .. })] if name == "../etc"
        ));
    }

    #[test]
    fn each_error_is_one_sentence_for_the_reply() {
        let messages: Vec<String> = [
            "/gantry",
            "/gantry apply",
            "/gantry help me",
            "/gantry plan -w",
            "/gantry plan --force",
        ]
        .iter()
        .flat_map(|body| parsed(body))
        .map(|parsed| parsed.unwrap_err().to_string())
        .collect();
        insta::assert_debug_snapshot!(messages, @r#"
        [
            "no command given",
            "unknown command `apply`",
            "help takes no options",
            "`-w` needs a workspace name",
            "unknown option `--force`",
        ]
        "#);
    }

    #[test]
    fn override_takes_workspaces_then_a_reason() {
        assert_eq!(
            parsed("/gantry override -w prod --workspace=eu accepted risk, see INC-42"),
            [Ok(Command::Override {
                workspaces: vec![ws("prod"), ws("eu")],
                reason: "accepted risk, see INC-42".into(),
            })]
        );
        assert_eq!(
            parsed("/gantry override ok by security"),
            [Ok(Command::Override {
                workspaces: vec![],
                reason: "ok by security".into(),
            })]
        );
        assert_eq!(
            parsed("/gantry override -w prod\n/gantry override"),
            [
                Err(CommandError::MissingReason),
                Err(CommandError::MissingReason)
            ]
        );
        assert_eq!(
            parsed("/gantry override --force yes"),
            [Err(CommandError::UnknownOption("--force".into()))]
        );
    }

    #[test]
    fn a_huge_option_list_is_refused() {
        let body = format!("/gantry plan {}", "-w a ".repeat(1000));
        assert_eq!(parsed(&body), [Err(CommandError::TooManyOptions)]);
        assert_eq!(
            CommandError::TooManyOptions.to_string(),
            "too many options: name at most 50 workspaces"
        );
    }

    #[test]
    fn a_command_in_a_fenced_code_block_is_not_obeyed() {
        assert!(parsed("To plan, comment:\n```\n/gantry plan\n```").is_empty());
        assert!(parsed("~~~text\n/gantry plan -w prod\n~~~").is_empty());
    }

    #[test]
    fn a_command_in_an_indented_code_block_is_not_obeyed() {
        assert!(parsed("Like this:\n\n    /gantry plan\n").is_empty());
    }

    #[test]
    fn a_command_in_inline_code_is_not_obeyed() {
        assert!(parsed("`/gantry plan`\n``/gantry retry``").is_empty());
        assert!(parsed("Run `x\n/gantry plan` later").is_empty());
    }

    #[test]
    fn a_command_in_a_block_quote_is_not_obeyed() {
        assert!(parsed("> /gantry plan").is_empty());
        assert!(
            parsed("> Did you mean\n/gantry plan").is_empty(),
            "a lazy continuation line"
        );
        assert!(parsed("- > nested\n  > /gantry plan").is_empty());
    }

    #[test]
    fn a_command_in_an_html_comment_is_not_obeyed() {
        assert!(parsed("<!--\n/gantry plan\n-->").is_empty());
    }

    #[test]
    fn a_command_after_a_code_block_or_quote_is_obeyed() {
        let body = "> /gantry retry\n\n```\n/gantry help\n```\n/gantry plan -w prod `ignored`";
        let lines = parse_comment(body, "/gantry");
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0].line, "/gantry plan -w prod `ignored`");
    }

    #[test]
    fn other_text_and_other_prefixes_are_not_commands() {
        assert!(parsed("please /gantry plan\n/gantryx plan\nno commands").is_empty());
        let custom = parse_comment("/tf plan", "/tf");
        assert_eq!(custom.len(), 1);
        assert!(usage("/tf").contains("`/tf plan [-w WORKSPACE]…`"));
    }
}
