//! The one Gantry comment on a pull request: each workspace's latest speculative plan with its
//! state, counts, link and plan output, kept under GitHub's comment size limit. Pure.

use super::status::truncate;
use crate::core::CommitSha;

/// Finds the comment again among the pull request's comments.
pub const MARKER: &str = "<!-- gantry:plan-comment -->";
/// GitHub refuses comments longer than this many characters.
pub const MAX_COMMENT_CHARS: usize = 65_536;

/// One workspace's latest plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspacePlan {
    pub workspace: String,
    pub state: String,
    /// The commit status description: counts, or what is happening.
    pub summary: String,
    pub run_url: String,
    pub commit_sha: CommitSha,
    /// The plan's log (already masked).
    pub output: String,
    /// Its policy check, when one ran: (one line, Markdown with a line a policy).
    pub policy: Option<(String, String)>,
}

/// The most one workspace's policy section may take of the comment.
const MAX_POLICY_CHARS: usize = 4_000;

/// The comment's Markdown, at most `limit` characters (GitHub's limit in production).
pub fn render(plans: &[WorkspacePlan], limit: usize) -> String {
    let mut head = format!(
        "{MARKER}\n### Gantry plans\n\n| Workspace | State | Plan |\n| --- | --- | --- |\n"
    );
    for plan in plans {
        head.push_str(&format!(
            "| [{}]({}) | {} | {} |\n",
            plan.workspace,
            plan.run_url,
            plan.state,
            plan.summary.replace('|', "\\|")
        ));
    }
    for plan in plans {
        if let Some((title, summary)) = &plan.policy {
            head.push_str(&format!(
                "\n<details><summary><b>{}</b> policy check: {}</summary>\n\n{}\n</details>\n",
                plan.workspace,
                title,
                super::status::truncate_lines(summary.trim_end(), MAX_POLICY_CHARS)
            ));
        }
    }
    let sections: Vec<(String, &WorkspacePlan)> = plans
        .iter()
        .map(|plan| {
            (
                format!(
                    "\n<details><summary><b>{}</b> at {}: {}</summary>\n\n```\n",
                    plan.workspace,
                    &plan.commit_sha[..plan.commit_sha.len().min(7)],
                    plan.summary
                ),
                plan,
            )
        })
        .collect();
    const CLOSE: &str = "\n```\n</details>\n";
    let fixed: usize = head.chars().count()
        + sections
            .iter()
            .map(|(open, _)| open.chars().count() + CLOSE.len())
            .sum::<usize>();
    // What is left is shared by the outputs: each gets an equal share, and a share an output
    // does not need goes to the others.
    let mut budget = limit.saturating_sub(fixed);
    let mut outputs: Vec<String> = vec![String::new(); sections.len()];
    let mut order: Vec<usize> = (0..sections.len()).collect();
    order.sort_by_key(|&i| sections[i].1.output.chars().count());
    for (n, &i) in order.iter().enumerate() {
        let share = budget / (order.len() - n);
        let plan = sections[i].1;
        let text = plan.output.trim_end();
        let text = text.replace("```", "ʼʼʼ");
        let rendered = if text.chars().count() <= share {
            text
        } else {
            let note = format!(
                "\n… trimmed to fit in a GitHub comment; the whole plan: {}",
                plan.run_url
            );
            let keep = share.saturating_sub(note.chars().count());
            // The end of a plan holds its summary: keep the tail.
            let skip = text.chars().count().saturating_sub(keep);
            let tail: String = text.chars().skip(skip).collect();
            format!("{}{note}", truncate(&tail, keep.max(1)))
        };
        budget = budget.saturating_sub(rendered.chars().count());
        outputs[i] = rendered;
    }
    let mut body = head;
    for ((open, _), output) in sections.iter().zip(outputs) {
        body.push_str(open);
        body.push_str(&output);
        body.push_str(CLOSE);
    }
    truncate(&body, limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(name: &str, output: &str) -> WorkspacePlan {
        WorkspacePlan {
            workspace: name.into(),
            state: "planned_and_finished".into(),
            summary: "Plan: 1 to add, 0 to change, 0 to destroy".into(),
            run_url: format!("https://gantry.example/runs/{name}"),
            commit_sha: "0123456789abcdef".into(),
            output: output.into(),
            policy: None,
        }
    }

    #[test]
    fn a_workspace_with_a_policy_check_gets_its_section() {
        let mut checked = plan("prod", "Plan: 1 to add");
        checked.policy = Some((
            "1 mandatory failure(s) or error(s)".into(),
            "| `guards/p` | mandatory failed |\n".into(),
        ));
        let body = render(&[checked, plan("staging", "")], MAX_COMMENT_CHARS);
        assert!(body.contains(
            "<b>prod</b> policy check: 1 mandatory failure(s) or error(s)</summary>\n\n\
             | `guards/p` | mandatory failed |\n</details>"
        ));
        assert!(!body.contains("<b>staging</b> policy check"));
    }

    #[test]
    fn a_small_comment_has_every_workspace_and_its_whole_output() {
        let body = render(
            &[
                plan("prod", "Plan: 1 to add"),
                plan("staging", "No changes."),
            ],
            MAX_COMMENT_CHARS,
        );
        assert!(body.starts_with(MARKER));
        assert!(
            body.contains("| [prod](https://gantry.example/runs/prod) | planned_and_finished |")
        );
        assert!(body.contains("```\nNo changes.\n```"));
        assert!(body.contains("<b>staging</b> at 0123456"));
        assert!(!body.contains("trimmed"));
    }

    #[test]
    fn a_huge_output_is_trimmed_to_fit_with_a_note_and_the_link() {
        let huge = format!("{}\nPlan: 9999 to add", "+ resource\n".repeat(20_000));
        let body = render(
            &[plan("prod", &huge), plan("staging", "No changes.")],
            MAX_COMMENT_CHARS,
        );
        assert!(
            body.chars().count() <= MAX_COMMENT_CHARS,
            "{}",
            body.chars().count()
        );
        assert!(body.contains(
            "trimmed to fit in a GitHub comment; the whole plan: https://gantry.example/runs/prod"
        ));
        assert!(
            body.contains("Plan: 9999 to add"),
            "the tail (the summary) is kept"
        );
        assert!(
            body.contains("```\nNo changes.\n```"),
            "the small output is whole"
        );
    }

    #[test]
    fn code_fences_in_an_output_cannot_break_out_of_its_block() {
        let body = render(&[plan("prod", "```\n# injected")], MAX_COMMENT_CHARS);
        assert_eq!(body.matches("```").count(), 2);
    }
}
