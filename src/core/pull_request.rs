//! What a pull request event means: which workspaces get a speculative plan, which are
//! untouched (a success status so that a required check never hangs), which wait for approval
//! (a fork's code is not run by itself), or why nothing happens. Pure.

use super::WorkspaceId;
use super::triggers::Triggers;

/// The actions that plan the pull request's head.
const PLANNING_ACTIONS: [&str; 4] = ["opened", "synchronize", "reopened", "ready_for_review"];

/// The facts of a pull request event.
#[derive(Debug, Clone)]
pub struct PullRequestFacts<'a> {
    pub action: &'a str,
    pub base_ref: &'a str,
    pub default_branch: &'a str,
    pub draft: bool,
    pub from_fork: bool,
    /// A person with write access asked for the plan (`/gantry plan`): forks are approved.
    pub approved: bool,
    pub state: PrState,
}

/// Where a pull request stands on GitHub (its `state` and `merged`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrState {
    Open,
    Closed,
    Merged,
}

impl PrState {
    pub fn of(state: &str, merged: bool) -> Self {
        match (state, merged) {
            (_, true) => PrState::Merged,
            ("open", false) => PrState::Open,
            _ => PrState::Closed,
        }
    }

    /// Why the head of a pull request in this state is not run (a plan of it would show
    /// nobody anything, and would run code nobody is reviewing), or None when it is open.
    pub fn why_not_run(self) -> Option<&'static str> {
        match self {
            PrState::Open => None,
            PrState::Closed => Some("the pull request is closed; reopen it to plan it again"),
            PrState::Merged => Some(
                "the pull request is merged; its changes run in the workspaces of the branch it \
                 was merged into",
            ),
        }
    }
}

/// A workspace of the repository, as the decision sees it.
#[derive(Debug, Clone)]
pub struct PrCandidate<'a> {
    pub id: WorkspaceId,
    /// None: the repository's default branch.
    pub branch: Option<&'a str>,
    pub speculative_enabled: bool,
    pub plan_forks: bool,
    pub triggers: &'a Triggers,
}

/// Settings that apply to every pull request.
#[derive(Debug, Clone, Copy)]
pub struct PrPolicy {
    pub plan_drafts: bool,
}

/// The changed files, once known.
#[derive(Debug, Clone, Copy)]
pub enum PrFiles<'a> {
    Listed(&'a [&'a str]),
    /// Past GitHub's 3,000-file limit: every workspace may be touched.
    TooMany,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrDecision {
    Ignore(String),
    /// The pull request closed: cancel its pending plans.
    Closed,
    /// Which workspaces are affected depends on the changed files: list them, decide again.
    NeedFiles,
    Plan {
        /// A speculative plan each.
        plan: Vec<WorkspaceId>,
        /// On the base branch but untouched: "No changes in this workspace".
        untouched: Vec<WorkspaceId>,
        /// Touched, but the pull request is from a fork: waiting for approval to plan.
        awaiting_approval: Vec<WorkspaceId>,
    },
}

pub fn decide(
    pr: &PullRequestFacts<'_>,
    policy: PrPolicy,
    workspaces: &[PrCandidate<'_>],
    files: Option<PrFiles<'_>>,
) -> PrDecision {
    if pr.action == "closed" {
        return PrDecision::Closed;
    }
    if let Some(why) = pr.state.why_not_run() {
        return PrDecision::Ignore(why.into());
    }
    if !PLANNING_ACTIONS.contains(&pr.action) && !pr.approved {
        return PrDecision::Ignore(format!("pull request action {} plans nothing", pr.action));
    }
    if pr.draft && !policy.plan_drafts && !pr.approved {
        return PrDecision::Ignore("draft pull requests are not planned".into());
    }
    let on_base: Vec<&PrCandidate<'_>> = workspaces
        .iter()
        .filter(|w| w.speculative_enabled && w.branch.unwrap_or(pr.default_branch) == pr.base_ref)
        .collect();
    if on_base.is_empty() {
        return PrDecision::Ignore(format!(
            "no workspace with speculative plans tracks branch {}",
            pr.base_ref
        ));
    }
    let Some(files) = files else {
        return PrDecision::NeedFiles;
    };
    let (mut plan, mut untouched, mut awaiting_approval) = (Vec::new(), Vec::new(), Vec::new());
    for workspace in on_base {
        let touched = match files {
            PrFiles::TooMany => true,
            PrFiles::Listed(files) => workspace.triggers.matches_any(files.iter().copied()),
        };
        if !touched {
            untouched.push(workspace.id);
        } else if pr.from_fork && !workspace.plan_forks && !pr.approved {
            awaiting_approval.push(workspace.id);
        } else {
            plan.push(workspace.id);
        }
    }
    PrDecision::Plan {
        plan,
        untouched,
        awaiting_approval,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(action: &str) -> PullRequestFacts<'_> {
        PullRequestFacts {
            action,
            base_ref: "main",
            default_branch: "main",
            draft: false,
            from_fork: false,
            approved: false,
            state: PrState::Open,
        }
    }

    fn triggers(dir: &str) -> Triggers {
        Triggers::new(dir, &[]).unwrap()
    }

    const POLICY: PrPolicy = PrPolicy { plan_drafts: true };

    #[test]
    fn touched_workspaces_plan_untouched_ones_get_a_status() {
        let (prod, staging, dev) = (
            triggers("envs/prod"),
            triggers("envs/staging"),
            triggers("dev"),
        );
        let workspaces = [
            PrCandidate {
                id: WorkspaceId(1),
                branch: None,
                speculative_enabled: true,
                plan_forks: false,
                triggers: &prod,
            },
            PrCandidate {
                id: WorkspaceId(2),
                branch: None,
                speculative_enabled: true,
                plan_forks: false,
                triggers: &staging,
            },
            PrCandidate {
                id: WorkspaceId(3),
                branch: Some("develop"),
                speculative_enabled: true,
                plan_forks: false,
                triggers: &dev,
            },
        ];
        assert_eq!(
            decide(&facts("opened"), POLICY, &workspaces, None),
            PrDecision::NeedFiles
        );
        let files = ["envs/prod/main.tf"];
        assert_eq!(
            decide(
                &facts("synchronize"),
                POLICY,
                &workspaces,
                Some(PrFiles::Listed(&files))
            ),
            PrDecision::Plan {
                plan: vec![WorkspaceId(1)],
                untouched: vec![WorkspaceId(2)],
                awaiting_approval: vec![]
            }
        );
        assert_eq!(
            decide(
                &facts("reopened"),
                POLICY,
                &workspaces,
                Some(PrFiles::TooMany)
            ),
            PrDecision::Plan {
                plan: vec![WorkspaceId(1), WorkspaceId(2)],
                untouched: vec![],
                awaiting_approval: vec![]
            }
        );
    }

    #[test]
    fn forks_wait_for_approval_unless_the_workspace_plans_them() {
        let (a, b) = (triggers(""), triggers(""));
        let workspaces = [
            PrCandidate {
                id: WorkspaceId(1),
                branch: None,
                speculative_enabled: true,
                plan_forks: false,
                triggers: &a,
            },
            PrCandidate {
                id: WorkspaceId(2),
                branch: None,
                speculative_enabled: true,
                plan_forks: true,
                triggers: &b,
            },
        ];
        let mut fork = facts("opened");
        fork.from_fork = true;
        let files = ["main.tf"];
        assert_eq!(
            decide(&fork, POLICY, &workspaces, Some(PrFiles::Listed(&files))),
            PrDecision::Plan {
                plan: vec![WorkspaceId(2)],
                untouched: vec![],
                awaiting_approval: vec![WorkspaceId(1)]
            }
        );
        fork.approved = true;
        fork.action = "commented";
        assert_eq!(
            decide(&fork, POLICY, &workspaces, Some(PrFiles::Listed(&files))),
            PrDecision::Plan {
                plan: vec![WorkspaceId(1), WorkspaceId(2)],
                untouched: vec![],
                awaiting_approval: vec![]
            }
        );
    }

    #[test]
    fn what_plans_nothing_says_why() {
        let t = triggers("");
        let workspaces = [PrCandidate {
            id: WorkspaceId(1),
            branch: None,
            speculative_enabled: true,
            plan_forks: false,
            triggers: &t,
        }];
        assert!(matches!(
            decide(&facts("labeled"), POLICY, &workspaces, None),
            PrDecision::Ignore(_)
        ));
        assert_eq!(
            decide(&facts("closed"), POLICY, &workspaces, None),
            PrDecision::Closed
        );
        let mut draft = facts("opened");
        draft.draft = true;
        assert_eq!(
            decide(&draft, PrPolicy { plan_drafts: false }, &workspaces, None),
            PrDecision::Ignore("draft pull requests are not planned".into())
        );
        let mut other_base = facts("opened");
        other_base.base_ref = "release";
        assert!(matches!(
            decide(&other_base, POLICY, &workspaces, None),
            PrDecision::Ignore(_)
        ));
        let off = [PrCandidate {
            id: WorkspaceId(1),
            branch: None,
            speculative_enabled: false,
            plan_forks: false,
            triggers: &t,
        }];
        assert!(matches!(
            decide(&facts("opened"), POLICY, &off, None),
            PrDecision::Ignore(_)
        ));
    }

    #[test]
    fn a_merged_or_closed_pull_request_is_not_planned_even_when_asked() {
        let t = triggers("");
        let workspaces = [PrCandidate {
            id: WorkspaceId(1),
            branch: None,
            speculative_enabled: true,
            plan_forks: false,
            triggers: &t,
        }];
        let mut asked = facts("command");
        asked.approved = true;
        for (state, merged, why) in [
            ("closed", true, PrState::Merged.why_not_run()),
            ("closed", false, PrState::Closed.why_not_run()),
        ] {
            asked.state = PrState::of(state, merged);
            let files = ["main.tf"];
            let decision = decide(&asked, POLICY, &workspaces, Some(PrFiles::Listed(&files)));
            assert_eq!(decision, PrDecision::Ignore(why.unwrap().into()));
        }
        assert_eq!(PrState::of("open", false), PrState::Open);
        assert_eq!(PrState::Open.why_not_run(), None);
    }
}
