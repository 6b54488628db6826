//! What a run's GitHub check run shows: its status, conclusion and output (the plan summary and
//! the resource changes in Markdown). Pure.

use super::github_terms::{CheckConclusion, CheckState};
use super::run::RunState;
use super::status::{RunFacts, run_status};

/// A check run as GitHub takes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CheckView {
    #[serde(flatten)]
    pub state: CheckState,
    pub title: String,
    pub summary: String,
}

/// One resource change, as the check's output lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change<'a> {
    pub address: &'a str,
    pub actions: Vec<&'a str>,
}

pub fn check_view(run: &RunFacts<'_>, changes: &[Change<'_>], run_url: &str) -> CheckView {
    use RunState::*;
    let has_changes = run.plan.is_some_and(|p| p.3);
    let completed = CheckState::completed;
    let state = match run.state {
        Pending => CheckState::QUEUED,
        Fetching | Planning | PolicyChecking | PolicyChecked | Confirmed | Applying => {
            CheckState::IN_PROGRESS
        }
        Planned | PolicyOverride => completed(CheckConclusion::ActionRequired),
        Applied => completed(CheckConclusion::Success),
        PlannedAndFinished if run.speculative && has_changes => completed(CheckConclusion::Success),
        PlannedAndFinished => completed(CheckConclusion::Neutral),
        Errored => completed(CheckConclusion::Failure),
        Canceled | ForceCanceled | Discarded => completed(CheckConclusion::Cancelled),
    };
    let title = run_status(run).description;
    let mut summary = format!("**{title}**\n\n[The run in Gantry]({run_url})\n");
    if !changes.is_empty() {
        summary.push_str("\n| Action | Resource |\n| --- | --- |\n");
        for change in changes {
            summary.push_str(&format!(
                "| {} | `{}` |\n",
                action_label(&change.actions),
                change.address.replace('`', "'")
            ));
        }
    }
    CheckView {
        state,
        title,
        summary: super::status::truncate(&summary, 65_535),
    }
}

/// The resource changes of a stored plan summary (`[{"address", "actions"}]`).
pub fn changes_from_json(resource_changes: &serde_json::Value) -> Vec<Change<'_>> {
    resource_changes
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|c| Change {
            address: c["address"].as_str().unwrap_or_default(),
            actions: c["actions"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
                .unwrap_or_default(),
        })
        .collect()
}

/// Whether a change adds, changes or destroys (a replacement destroys), for coloring.
pub fn action_class(actions: &[&str]) -> &'static str {
    match actions {
        ["create"] => "add",
        ["update"] | ["read"] => "change",
        _ => "destroy",
    }
}

/// Terraform's symbols for what happens to a resource.
pub fn action_label(actions: &[&str]) -> &'static str {
    match actions {
        ["create"] => "+ create",
        ["update"] => "~ update",
        ["delete"] => "- destroy",
        ["delete", "create"] | ["create", "delete"] => "-/+ replace",
        ["read"] => "<= read",
        _ => "~ change",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(state: RunState, speculative: bool, has_changes: bool) -> RunFacts<'static> {
        RunFacts {
            state,
            speculative,
            plan: Some((1, 0, 1, has_changes)),
            reached_apply: false,
            error: None,
        }
    }

    #[test]
    fn conclusions_follow_the_run() {
        let cases = [
            (facts(RunState::Pending, true, false), "queued", None),
            (facts(RunState::Planning, true, false), "in_progress", None),
            (
                facts(RunState::Planned, false, true),
                "completed",
                Some("action_required"),
            ),
            (
                facts(RunState::PlannedAndFinished, true, true),
                "completed",
                Some("success"),
            ),
            (
                facts(RunState::PlannedAndFinished, true, false),
                "completed",
                Some("neutral"),
            ),
            (
                facts(RunState::Errored, true, false),
                "completed",
                Some("failure"),
            ),
            (
                facts(RunState::Canceled, true, false),
                "completed",
                Some("cancelled"),
            ),
            (
                facts(RunState::Applied, false, true),
                "completed",
                Some("success"),
            ),
        ];
        for (run, status, conclusion) in cases {
            let view = check_view(&run, &[], "https://g/runs/1");
            // GitHub's words, as they are sent.
            let json = serde_json::to_value(view.state).unwrap();
            assert_eq!(
                (
                    json["status"].as_str().unwrap(),
                    json["conclusion"].as_str()
                ),
                (status, conclusion),
                "{:?}",
                run.state
            );
        }
    }

    #[test]
    fn the_output_lists_resource_changes_in_markdown() {
        let changes = [
            Change {
                address: "aws_s3_bucket.logs",
                actions: vec!["create"],
            },
            Change {
                address: "aws_instance.web",
                actions: vec!["delete", "create"],
            },
        ];
        let view = check_view(
            &facts(RunState::PlannedAndFinished, true, true),
            &changes,
            "https://g/runs/9",
        );
        assert_eq!(view.title, "Plan: 1 to add, 0 to change, 1 to destroy");
        assert!(
            view.summary
                .contains("[The run in Gantry](https://g/runs/9)")
        );
        assert!(view.summary.contains("| + create | `aws_s3_bucket.logs` |"));
        assert!(
            view.summary
                .contains("| -/+ replace | `aws_instance.web` |")
        );
    }
}
