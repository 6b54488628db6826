//! Policy checks, after Terraform Cloud's OPA policy sets: what a policy set declares
//! (`policies.hcl`), which workspaces a set applies to, what a policy's answer means, and where
//! a run goes after its check. Pure: no I/O (the evaluation itself is `crate::policy`).

use globset::{Glob, GlobSetBuilder};

use super::run::{RunKind, RunState};

/// How much a failing policy matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Enforcement {
    /// Shown, never blocking (the default).
    Advisory,
    /// Holds the run until someone allowed overrides it.
    Mandatory,
}

impl Enforcement {
    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::Advisory => "advisory",
            Enforcement::Mandatory => "mandatory",
        }
    }

    pub fn parse(level: &str) -> Option<Self> {
        match level {
            "advisory" => Some(Enforcement::Advisory),
            "mandatory" => Some(Enforcement::Mandatory),
            _ => None,
        }
    }
}

/// One `policy "name" { query = "…", enforcement_level = "…" }` of a `policies.hcl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    /// A Rego query that must answer with an array: empty passes, each element is a violation.
    pub query: String,
    pub enforcement: Enforcement,
}

/// Reads a policy set's `policies.hcl`: its policies, in order. An error names the policy.
pub fn parse_policies_hcl(text: &str) -> Result<Vec<Policy>, String> {
    let body: hcl::Body = hcl::from_str(text).map_err(|e| format!("policies.hcl: {e}"))?;
    let mut policies = Vec::new();
    for block in body.blocks() {
        if block.identifier() != "policy" {
            return Err(format!(
                "policies.hcl: unknown block {} (only policy blocks)",
                block.identifier()
            ));
        }
        let [label] = block.labels() else {
            return Err(
                "policies.hcl: a policy block takes one name: policy \"name\" { … }".into(),
            );
        };
        let name = label.as_str().to_string();
        // A misspelt key must not quietly make a mandatory policy advisory.
        if let Some(unknown) = block
            .body()
            .attributes()
            .map(|a| a.key())
            .find(|k| !["query", "enforcement_level", "description"].contains(k))
        {
            return Err(format!(
                "policy {name}: unknown attribute {unknown} (query, enforcement_level, description)"
            ));
        }
        let attribute = |key: &str| -> Result<Option<String>, String> {
            match block.body().attributes().find(|a| a.key() == key) {
                None => Ok(None),
                Some(a) => match a.expr() {
                    hcl::Expression::String(s) => Ok(Some(s.clone())),
                    _ => Err(format!("policy {name}: {key} must be a string")),
                },
            }
        };
        let query =
            attribute("query")?.ok_or_else(|| format!("policy {name}: query is missing"))?;
        let enforcement = match attribute("enforcement_level")? {
            None => Enforcement::Advisory,
            Some(level) => Enforcement::parse(&level).ok_or_else(|| {
                format!(
                    "policy {name}: enforcement_level must be advisory or mandatory, not {level}"
                )
            })?,
        };
        if policies.iter().any(|p: &Policy| p.name == name) {
            return Err(format!("policies.hcl: policy {name} is declared twice"));
        }
        policies.push(Policy {
            name,
            query,
            enforcement,
        });
    }
    if policies.is_empty() {
        return Err("policies.hcl declares no policy".into());
    }
    Ok(policies)
}

/// Whether a policy set whose `workspaces` are `patterns` (names or globs; empty: all)
/// applies to workspace `name`.
pub fn applies_to(patterns: &[String], name: &str) -> bool {
    if patterns.is_empty() {
        return true;
    }
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        if let Ok(glob) = Glob::new(pattern) {
            set.add(glob);
        }
    }
    set.build().is_ok_and(|set| set.is_match(name))
}

/// What one policy said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyResult {
    Passed,
    /// Its violations, as people read them.
    Failed(Vec<String>),
    /// It could not be evaluated (a parse error, a builtin the engine lacks, an answer that is
    /// not an array): it blocks as a mandatory failure would.
    Errored(String),
}

impl PolicyResult {
    /// The answer of a policy's query: an array of violations (strings, or any JSON, shown as
    /// JSON); anything else is an error, never a pass.
    pub fn from_answer(answer: &serde_json::Value) -> Self {
        match answer {
            serde_json::Value::Array(items) if items.is_empty() => PolicyResult::Passed,
            serde_json::Value::Array(items) => PolicyResult::Failed(
                items
                    .iter()
                    .map(|item| match item {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect(),
            ),
            other => PolicyResult::Errored(format!(
                "the query must answer with an array of violations, not {}",
                kind_of(other)
            )),
        }
    }

    pub fn label(&self, enforcement: Enforcement) -> &'static str {
        match (self, enforcement) {
            (PolicyResult::Passed, _) => "passed",
            (PolicyResult::Failed(_), Enforcement::Advisory) => "advisory failed",
            (PolicyResult::Failed(_), Enforcement::Mandatory) => "mandatory failed",
            (PolicyResult::Errored(_), _) => "errored",
        }
    }
}

fn kind_of(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null (undefined)",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// One policy's outcome in a run's check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyOutcome {
    pub policy_set: String,
    pub policy: String,
    pub enforcement: Enforcement,
    pub result: PolicyResult,
}

impl PolicyOutcome {
    /// Whether it holds the run: a mandatory failure, or any error.
    pub fn blocks(&self) -> bool {
        match self.result {
            PolicyResult::Passed => false,
            PolicyResult::Failed(_) => self.enforcement == Enforcement::Mandatory,
            PolicyResult::Errored(_) => true,
        }
    }
}

/// A whole check, summed up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    /// Only advisory policies failed: the run goes on, with a warning.
    AdvisoryFailed,
    /// A mandatory policy failed or a policy errored: the run waits for an override.
    Blocked,
}

pub fn verdict(outcomes: &[PolicyOutcome]) -> Verdict {
    if outcomes.iter().any(PolicyOutcome::blocks) {
        Verdict::Blocked
    } else if outcomes
        .iter()
        .any(|o| matches!(o.result, PolicyResult::Failed(_)))
    {
        Verdict::AdvisoryFailed
    } else {
        Verdict::Passed
    }
}

/// The states a run moves through after its policy check: a speculative plan reports and is
/// done; a blocked run waits for an override; otherwise it goes on as after a plan.
pub fn after_policy_check(kind: RunKind, verdict: Verdict) -> &'static [RunState] {
    match (kind.speculative, verdict, kind.auto_apply) {
        (true, _, _) => &[RunState::PlannedAndFinished],
        (false, Verdict::Blocked, _) => &[RunState::PolicyOverride],
        (false, _, false) => &[RunState::PolicyChecked, RunState::Planned],
        (false, _, true) => &[
            RunState::PolicyChecked,
            RunState::Planned,
            RunState::Confirmed,
        ],
    }
}

/// Why `by` may not override a run's check: a set that blocks it has `prevent_self_override`
/// (`guarded`) and `by` is one of the change's `authors` (who pushed it or opened its pull
/// request). GitHub logins are compared without regard to case, as GitHub does.
pub fn self_override_refusal(
    outcomes: &[PolicyOutcome],
    guarded: &[&str],
    authors: &[&str],
    by: &str,
) -> Option<String> {
    if !authors
        .iter()
        .any(|a| !a.is_empty() && a.eq_ignore_ascii_case(by))
    {
        return None;
    }
    let set = outcomes
        .iter()
        .find(|o| o.blocks() && guarded.contains(&o.policy_set.as_str()))?;
    Some(format!(
        "policy set `{}` does not let the author of a change override its check: ask another \
         admin",
        set.policy_set
    ))
}

/// How an override's event detail starts (the reason follows).
pub const OVERRIDE_DETAIL: &str = "policy check overridden: ";

/// Who overrode a run's latest policy check, and why, from its events (state, cause, detail),
/// oldest first: an override counts only after the latest check began.
pub fn latest_override<'a>(
    events: impl DoubleEndedIterator<Item = (&'a str, Option<&'a str>, Option<&'a str>)>,
) -> Option<(&'a str, &'a str)> {
    for (state, cause, detail) in events.rev() {
        if state == RunState::PolicyChecking.as_str() {
            return None;
        }
        let by = cause.and_then(|c| c.strip_prefix("person:"));
        let reason = detail.and_then(|d| d.strip_prefix(OVERRIDE_DETAIL));
        if let (Some(by), Some(reason)) = (by, reason) {
            return Some((by, reason));
        }
    }
    None
}

/// What GitHub shows of a run's policy check: its check run (`gantry/<workspace>/policy`),
/// or its commit status when check runs are off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyView {
    pub check: crate::core::github_terms::CheckState,
    pub status: crate::core::github_terms::CommitState,
    /// One line: the status's description, the check's title.
    pub title: String,
    /// Markdown: one line a policy, with its violations.
    pub summary: String,
}

/// The context (status) or name (check run) of a workspace's policy check.
pub fn policy_context(workspace: &str) -> String {
    format!("gantry/{workspace}/policy")
}

/// How a check looks: `waiting` while its run waits for an override; `overridden` names who
/// overrode a blocked check, and why.
pub fn policy_view(
    outcomes: &[PolicyOutcome],
    waiting: bool,
    overridden: Option<(&str, &str)>,
) -> PolicyView {
    use crate::core::github_terms::{CheckConclusion, CheckState, CommitState};
    let count = |f: &dyn Fn(&PolicyOutcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
    let blocking = count(&|o| o.blocks());
    let advisory = count(&|o| !o.blocks() && matches!(o.result, PolicyResult::Failed(_)));
    let (conclusion, status, title) = match (verdict(outcomes), overridden) {
        (Verdict::Passed, _) => (
            CheckConclusion::Success,
            CommitState::Success,
            format!("All {} policies passed", outcomes.len()),
        ),
        (Verdict::AdvisoryFailed, _) => (
            CheckConclusion::Neutral,
            CommitState::Success,
            format!("Passed with {advisory} advisory failure(s)"),
        ),
        (Verdict::Blocked, Some((by, reason))) => (
            CheckConclusion::Success,
            CommitState::Success,
            format!("{blocking} failure(s) overridden by {by}: {reason}"),
        ),
        (Verdict::Blocked, None) if !waiting => (
            CheckConclusion::Failure,
            CommitState::Failure,
            format!("{blocking} mandatory failure(s) or error(s)"),
        ),
        (Verdict::Blocked, None) => (
            CheckConclusion::ActionRequired,
            CommitState::Failure,
            format!("{blocking} mandatory failure(s) or error(s): needs an admin's override"),
        ),
    };
    let mut summary = format!("**{title}**\n\n| Policy | Result |\n| --- | --- |\n");
    for outcome in outcomes {
        summary.push_str(&format!(
            "| `{}/{}` | {} |\n",
            outcome.policy_set,
            outcome.policy,
            outcome.result.label(outcome.enforcement)
        ));
    }
    for outcome in outcomes {
        let lines = match &outcome.result {
            PolicyResult::Passed => continue,
            PolicyResult::Failed(messages) => messages.clone(),
            PolicyResult::Errored(why) => vec![why.clone()],
        };
        summary.push_str(&format!(
            "\n**{}/{}**\n",
            outcome.policy_set, outcome.policy
        ));
        for line in lines {
            summary.push_str(&format!("- {}\n", as_code(&line)));
        }
    }
    PolicyView {
        check: CheckState::completed(conclusion),
        status,
        title: crate::core::status::truncate(&title, 140),
        summary: crate::core::status::truncate_lines(&summary, 65_535),
    }
}

/// The values a plan (`terraform show -json`) marks sensitive: of resources (by their
/// `before_sensitive`/`after_sensitive` marks), of outputs, and of variables declared
/// sensitive. A policy may quote them in a violation; they are masked there as in the log.
/// Strings only, and not the shortest: masking "1" or "on" would garble every message.
pub fn sensitive_plan_values(plan: &serde_json::Value) -> Vec<String> {
    use serde_json::Value;
    fn marked(value: &Value, marks: &Value, found: &mut Vec<String>) {
        match (marks, value) {
            (Value::Bool(true), _) => leaves(value, found),
            (Value::Object(marks), Value::Object(values)) => {
                for (key, mark) in marks {
                    if let Some(inner) = values.get(key) {
                        marked(inner, mark, found);
                    }
                }
            }
            (Value::Array(marks), Value::Array(values)) => {
                for (mark, inner) in marks.iter().zip(values) {
                    marked(inner, mark, found);
                }
            }
            _ => {}
        }
    }
    fn leaves(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::String(s) if s.chars().count() >= 3 => found.push(s.clone()),
            Value::Array(items) => items.iter().for_each(|v| leaves(v, found)),
            Value::Object(map) => map.values().for_each(|v| leaves(v, found)),
            _ => {}
        }
    }
    // A module of a state (`prior_state`): its resources' values by their sensitive marks.
    fn module(of: &Value, found: &mut Vec<String>) {
        for resource in of["resources"].as_array().into_iter().flatten() {
            marked(&resource["values"], &resource["sensitive_values"], found);
        }
        for child in of["child_modules"].as_array().into_iter().flatten() {
            module(child, found);
        }
    }
    let mut found = Vec::new();
    let changes = ["resource_changes", "resource_drift"]
        .into_iter()
        .flat_map(|key| plan[key].as_array().into_iter().flatten());
    let outputs = plan["output_changes"].as_object().into_iter().flatten();
    for change in changes.map(|c| &c["change"]).chain(outputs.map(|(_, c)| c)) {
        marked(&change["before"], &change["before_sensitive"], &mut found);
        marked(&change["after"], &change["after_sensitive"], &mut found);
    }
    module(&plan["prior_state"]["values"]["root_module"], &mut found);
    let prior_outputs = plan["prior_state"]["values"]["outputs"].as_object();
    for output in prior_outputs.into_iter().flatten().map(|(_, o)| o) {
        if output["sensitive"] == Value::Bool(true) {
            leaves(&output["value"], &mut found);
        }
    }
    let declared = plan["configuration"]["root_module"]["variables"].as_object();
    for (name, variable) in declared.into_iter().flatten() {
        if variable["sensitive"] == Value::Bool(true) {
            leaves(&plan["variables"][name]["value"], &mut found);
        }
    }
    found.sort();
    found.dedup();
    found
}

/// `text` as inline code, on one line: a violation quotes the plan, which the change's author
/// wrote, so nothing in it may become Markdown, HTML, a link or an @mention.
fn as_code(text: &str) -> String {
    let text = text.replace('`', "ʼ").replace(['\r', '\n'], " ");
    format!("`{}`", if text.trim().is_empty() { "-" } else { &text })
}

/// A run as its policies see it (Terraform Cloud's `input.run`): never a variable's value.
#[derive(Debug, Clone)]
pub struct RunInput<'a> {
    pub id: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub message: &'a str,
    pub commit_sha: &'a str,
    pub speculative: bool,
    /// (category, name, sensitive).
    pub variables: Vec<(&'a str, &'a str, bool)>,
    pub organization: &'a str,
    pub workspace: WorkspaceInput<'a>,
}

#[derive(Debug, Clone)]
pub struct WorkspaceInput<'a> {
    pub name: &'a str,
    pub working_directory: &'a str,
    pub auto_apply: bool,
    pub execution_mode: &'a str,
    pub tags: &'a [String],
    /// The repository and branch it follows, if any.
    pub vcs_repo: Option<(&'a str, &'a str)>,
}

/// The input document of a run's policies: `{"plan": <terraform show -json>, "run": {…}}`,
/// with the run fields Terraform Cloud documents (Gantry runs no destroy, refresh-only or
/// targeted plans, so those fields are constant).
pub fn input_document(plan: serde_json::Value, run: &RunInput<'_>) -> serde_json::Value {
    let variables: serde_json::Map<String, serde_json::Value> = run
        .variables
        .iter()
        .map(|(category, name, sensitive)| {
            (
                name.to_string(),
                serde_json::json!({ "category": category, "sensitive": sensitive }),
            )
        })
        .collect();
    let workspace = &run.workspace;
    serde_json::json!({
        "plan": plan,
        "run": {
            "id": run.id,
            "created_at": run.created_at,
            "message": run.message,
            "commit_sha": run.commit_sha,
            "is_destroy": false,
            "refresh": true,
            "refresh_only": false,
            "replace_addrs": [],
            "target_addrs": [],
            "speculative": run.speculative,
            "variables": variables,
            "organization": { "name": run.organization },
            "workspace": {
                "name": workspace.name,
                "working_directory": workspace.working_directory,
                "auto_apply": workspace.auto_apply,
                "execution_mode": workspace.execution_mode,
                "tags": workspace.tags,
                "vcs_repo": workspace.vcs_repo.map(|(repo, branch)| serde_json::json!({
                    "identifier": repo,
                    "branch": branch,
                })),
            },
        },
    })
}

#[cfg(test)]
mod tests;
