//! What a run's commit status says: GitHub's state and a description (at most 140 characters)
//! that tells a person what they need to know. Pure.

use super::github_terms::CommitState;
use super::run::RunState;

/// GitHub refuses longer descriptions.
pub const MAX_DESCRIPTION_CHARS: usize = 140;

/// A status as GitHub shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusView {
    pub state: CommitState,
    pub description: String,
}

/// What the status needs to know of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFacts<'a> {
    pub state: RunState,
    pub speculative: bool,
    /// (add, change, destroy, has_changes), once planned.
    pub plan: Option<(i64, i64, i64, bool)>,
    /// Whether the run got as far as applying (an error then is an apply failure).
    pub reached_apply: bool,
    /// The first error line Terraform printed, or Gantry's reason.
    pub error: Option<&'a str>,
}

/// The status context of a workspace.
pub fn context(workspace: &str) -> String {
    format!("gantry/{workspace}")
}

/// The commit status state GitHub shows for a run in `state`.
pub fn github_state(state: RunState) -> CommitState {
    use RunState::*;
    match state {
        Pending | Fetching | Planning | PolicyChecking | PolicyChecked | PolicyOverride
        | Planned | Confirmed | Applying => CommitState::Pending,
        Applied | PlannedAndFinished => CommitState::Success,
        Errored => CommitState::Failure,
        Canceled | ForceCanceled | Discarded => CommitState::Error,
    }
}

pub fn run_status(run: &RunFacts<'_>) -> StatusView {
    use RunState::*;
    let counts = run.plan.unwrap_or_default();
    let plan_line = format!(
        "Plan: {} to add, {} to change, {} to destroy",
        counts.0, counts.1, counts.2
    );
    let description = match run.state {
        Pending => "Queued".to_string(),
        Fetching | Planning => "Planning".to_string(),
        PolicyChecking | PolicyChecked => "Checking policies".to_string(),
        PolicyOverride => format!("{plan_line}. Policy check failed: needs an override"),
        Planned => format!("{plan_line}. Needs confirmation"),
        Confirmed | Applying => "Applying".to_string(),
        Applied => format!(
            "Applied: {} added, {} changed, {} destroyed",
            counts.0, counts.1, counts.2
        ),
        PlannedAndFinished if run.speculative && counts.3 => plan_line,
        PlannedAndFinished => "No changes".to_string(),
        Errored => {
            let phase = if run.reached_apply { "Apply" } else { "Plan" };
            let reason = run.error.unwrap_or("unknown error");
            format!("{phase} failed: {reason}")
        }
        Canceled | ForceCanceled => "Canceled".to_string(),
        Discarded => "Discarded".to_string(),
    };
    StatusView {
        state: github_state(run.state),
        description: truncate(&description, MAX_DESCRIPTION_CHARS),
    }
}

/// The context that sums up every workspace of a commit.
pub const AGGREGATE_CONTEXT: &str = "gantry";

/// The aggregate status from each workspace's (GitHub state): the worst state wins (failure,
/// then error, then pending), and the description counts them.
pub fn aggregate(states: &[CommitState]) -> StatusView {
    let count = |s: CommitState| states.iter().filter(|x| **x == s).count();
    let (failed, errors, pending, succeeded) = (
        count(CommitState::Failure),
        count(CommitState::Error),
        count(CommitState::Pending),
        count(CommitState::Success),
    );
    let state = if failed > 0 {
        CommitState::Failure
    } else if errors > 0 {
        CommitState::Error
    } else if pending > 0 {
        CommitState::Pending
    } else {
        CommitState::Success
    };
    let mut parts = Vec::new();
    for (n, what) in [
        (failed, "failed"),
        (errors, "canceled"),
        (pending, "pending"),
        (succeeded, "succeeded"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    let noun = if states.len() == 1 {
        "workspace"
    } else {
        "workspaces"
    };
    StatusView {
        state,
        description: truncate(
            &format!("{} {noun}: {}", states.len(), parts.join(", ")),
            MAX_DESCRIPTION_CHARS,
        ),
    }
}

/// The first line Terraform marked as an error (`Error: …`), from a log (colors or not).
pub fn first_error_line(log: &str) -> Option<String> {
    plain_text(log)
        .lines()
        .map(|line| line.trim_start_matches(['│', '╷', '╵', ' ']).trim())
        .find(|line| line.starts_with("Error: "))
        .map(|line| line.trim_start_matches("Error: ").to_string())
}

/// `text` without ANSI color codes, for places that show plain text (statuses, comments).
pub fn plain_text(text: &str) -> String {
    strip_ansi_escapes::strip_str(text)
}

/// `text` cut to `max` characters, with an ellipsis when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Markdown cut to at most `max` characters at a line's end, never inside one (a cut inside a
/// code span would let the rest of its line render as Markdown), with a last line saying so.
pub fn truncate_lines(markdown: &str, max: usize) -> String {
    const MORE: &str = "\n… (cut to fit; the rest is on the run's page)";
    if markdown.chars().count() <= max {
        return markdown.to_string();
    }
    let budget = max.saturating_sub(MORE.chars().count());
    let mut kept = String::new();
    let mut used = 0;
    for line in markdown.lines() {
        let cost = line.chars().count() + 1;
        if used + cost > budget {
            break;
        }
        kept.push_str(line);
        kept.push('\n');
        used += cost;
    }
    kept.push_str(MORE.trim_start_matches('\n'));
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use CommitState::{Error, Failure, Pending, Success};

    #[test]
    fn markdown_is_cut_between_lines_never_inside_one() {
        let text = format!("- `first`\n- `second {}`\n- `third`\n", "x".repeat(100));
        let text = text.as_str();
        let cut = truncate_lines(text, 60);
        assert!(cut.starts_with("- `first`\n… (cut"), "{cut}");
        assert!(!cut.contains("second"), "{cut}");
        assert!(cut.chars().count() <= 60, "{cut}");
        assert_eq!(
            cut.matches('`').count() % 2,
            0,
            "every code span closed: {cut}"
        );
        assert_eq!(truncate_lines(text, 500), text);
    }

    fn facts(state: RunState) -> RunFacts<'static> {
        RunFacts {
            state,
            speculative: false,
            plan: Some((2, 1, 0, true)),
            reached_apply: false,
            error: None,
        }
    }

    #[test]
    fn each_state_says_what_a_person_needs() {
        let cases = [
            (RunState::Pending, Pending, "Queued"),
            (RunState::Planning, Pending, "Planning"),
            (
                RunState::Planned,
                Pending,
                "Plan: 2 to add, 1 to change, 0 to destroy. Needs confirmation",
            ),
            (RunState::Applying, Pending, "Applying"),
            (
                RunState::Applied,
                Success,
                "Applied: 2 added, 1 changed, 0 destroyed",
            ),
            (RunState::Canceled, Error, "Canceled"),
            (RunState::Discarded, Error, "Discarded"),
        ];
        for (state, github_state, description) in cases {
            let view = run_status(&facts(state));
            assert_eq!(
                (view.state, view.description.as_str()),
                (github_state, description)
            );
        }
    }

    #[test]
    fn finished_plans_and_failures() {
        let mut run = facts(RunState::PlannedAndFinished);
        assert_eq!(run_status(&run).description, "No changes");
        run.speculative = true;
        assert_eq!(
            run_status(&run).description,
            "Plan: 2 to add, 1 to change, 0 to destroy"
        );
        let mut failed = facts(RunState::Errored);
        failed.error = Some("Reference to undeclared resource");
        let view = run_status(&failed);
        assert_eq!(view.state, Failure);
        assert_eq!(
            view.description,
            "Plan failed: Reference to undeclared resource"
        );
        failed.reached_apply = true;
        assert!(run_status(&failed).description.starts_with("Apply failed"));
    }

    #[test]
    fn the_aggregate_takes_the_worst_state_and_counts() {
        let view = aggregate(&[Success, Pending, Success]);
        assert_eq!(view.state, Pending);
        assert_eq!(view.description, "3 workspaces: 1 pending, 2 succeeded");
        assert_eq!(aggregate(&[Success, Failure, Error]).state, Failure);
        assert_eq!(
            aggregate(&[Success]).description,
            "1 workspace: 1 succeeded"
        );
    }

    #[test]
    fn descriptions_stay_within_githubs_limit() {
        let long = "x".repeat(500);
        let mut failed = facts(RunState::Errored);
        failed.error = Some(&long);
        let description = run_status(&failed).description;
        assert_eq!(description.chars().count(), MAX_DESCRIPTION_CHARS);
        assert!(description.ends_with('…'));
    }

    #[test]
    fn the_first_terraform_error_line_is_found_in_a_boxed_log() {
        let log = "Initializing...\n╷\n│ \u{1b}[31mError: \u{1b}[0m\u{1b}[1mReference to undeclared resource\u{1b}[0m\n│ \n│   on main.tf line 2\n";
        assert_eq!(
            first_error_line(log).as_deref(),
            Some("Reference to undeclared resource")
        );
        assert_eq!(first_error_line("all good"), None);
    }
}
