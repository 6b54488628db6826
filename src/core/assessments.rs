//! Health assessments (drift detection), decided without I/O: when a workspace is due for one,
//! what a refresh-only plan says about drift and checks, whether a result is news (a GitHub
//! issue, a notification) or the same as before, and what people are shown of it.
//!
//! As in Terraform Cloud, an assessment is a refresh-only plan of the workspace's latest applied
//! configuration: it reads the real infrastructure and applies nothing. Drift is what the plan
//! JSON lists under `resource_drift`; checks are its `checks` (`check` blocks, Terraform ≥ 1.5).

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::WorkspaceId;
use super::run::RunState;

/// How often a workspace is assessed unless it says otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// The shortest interval: an assessment refreshes every resource, which costs API calls.
pub const MIN_INTERVAL: Duration = Duration::from_secs(3600);

/// `assessment_interval`: a duration such as `"24h"` or `"90m"`, at least an hour.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let interval = humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a duration such as \"24h\" ({e})"))?;
    if interval < MIN_INTERVAL {
        return Err(format!(
            "`{text}` is shorter than the shortest interval, 1h"
        ));
    }
    Ok(interval)
}

/// `24h`, `90m`: how an interval is shown and given back by the API.
pub fn format_interval(interval: Duration) -> String {
    humantime::format_duration(interval).to_string()
}

/// What the scheduler knows of one workspace with assessments on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub workspace: WorkspaceId,
    pub interval: Duration,
    /// The state of its latest non-speculative run, if it has one.
    pub latest_run: Option<RunState>,
    /// When its last apply finished (ms).
    pub last_applied_at_ms: Option<i64>,
    /// When its last assessment that ended (with a result or an error) finished (ms).
    pub last_assessed_at_ms: Option<i64>,
    /// An assessment of it is under way.
    pub assessing: bool,
    /// Someone asked for an assessment now, at this moment (ms).
    pub requested_at_ms: Option<i64>,
}

/// When a workspace is next assessed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// Now (or since this moment, ms): it is due.
    Since(i64),
    /// Not before this moment (ms).
    At(i64),
    /// Not until something changes, and why.
    Paused(&'static str),
}

/// When `schedule`'s workspace is due: an interval after the later of its last apply and its
/// last assessment (or at once when someone asked), and only while its latest run ended
/// applied (or with nothing to apply).
pub fn due(schedule: &Schedule, now_ms: i64) -> Due {
    if schedule.assessing {
        return Due::Paused("an assessment is under way");
    }
    let Some(applied) = schedule.last_applied_at_ms else {
        return Due::Paused("nothing has been applied yet");
    };
    match schedule.latest_run {
        Some(RunState::Applied | RunState::PlannedAndFinished) => {}
        Some(RunState::Errored) => return Due::Paused("the latest run errored"),
        Some(state) if state.is_final() => return Due::Paused("the latest run did not apply"),
        Some(_) => return Due::Paused("a run is under way"),
        None => return Due::Paused("nothing has been applied yet"),
    }
    if let Some(asked) = schedule.requested_at_ms {
        return Due::Since(asked);
    }
    let from = applied.max(schedule.last_assessed_at_ms.unwrap_or(i64::MIN));
    let at = from.saturating_add(schedule.interval.as_millis() as i64);
    if at <= now_ms {
        Due::Since(at)
    } else {
        Due::At(at)
    }
}

/// Which workspaces to assess now: the due ones, longest overdue first, as many as `free`
/// places under the global cap allow.
pub fn pick_due(schedules: &[Schedule], now_ms: i64, free: usize) -> Vec<WorkspaceId> {
    let mut due: Vec<(i64, WorkspaceId)> = schedules
        .iter()
        .filter_map(|s| match due(s, now_ms) {
            Due::Since(at) => Some((at, s.workspace)),
            _ => None,
        })
        .collect();
    due.sort();
    due.into_iter().take(free).map(|(_, ws)| ws).collect()
}

/// The earliest moment any of `schedules` is due, for the scheduler's next look.
pub fn next_due(schedules: &[Schedule], now_ms: i64) -> Option<i64> {
    schedules
        .iter()
        .filter_map(|s| match due(s, now_ms) {
            Due::Since(at) | Due::At(at) => Some(at),
            Due::Paused(_) => None,
        })
        .min()
}

/// One resource changed outside Terraform.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DriftedResource {
    pub address: String,
    /// Terraform's words: `update` (changed), `delete` (gone).
    pub actions: Vec<String>,
    /// The attributes whose values changed (names only: values may be secrets).
    pub attributes: Vec<String>,
}

/// One `check` block that did not pass.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FailedCheck {
    pub address: String,
    /// `fail` or `error`.
    pub status: String,
    /// The checks' error messages (written in the configuration, not values).
    pub messages: Vec<String>,
}

/// What one assessment found.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Findings {
    pub drifted: Vec<DriftedResource>,
    /// Managed resources in the state (drifted ones included).
    pub resources_total: usize,
    pub failed_checks: Vec<FailedCheck>,
    pub checks_passed: usize,
    /// Checks whose outcome is not known yet (unknown values).
    pub checks_unknown: usize,
}

impl Findings {
    pub fn is_drifted(&self) -> bool {
        !self.drifted.is_empty()
    }

    pub fn checks_failed(&self) -> usize {
        self.failed_checks
            .iter()
            .filter(|c| c.status == "fail")
            .count()
    }

    pub fn checks_errored(&self) -> usize {
        self.failed_checks
            .iter()
            .filter(|c| c.status == "error")
            .count()
    }
}

#[derive(Deserialize)]
struct PlanJson {
    #[serde(default)]
    resource_drift: Vec<DriftJson>,
    #[serde(default)]
    prior_state: Option<StateJson>,
    #[serde(default)]
    checks: Vec<CheckJson>,
}

#[derive(Deserialize)]
struct DriftJson {
    address: String,
    #[serde(default)]
    mode: String,
    change: DriftChange,
}

#[derive(Deserialize)]
struct DriftChange {
    actions: Vec<String>,
    #[serde(default)]
    before: Value,
    #[serde(default)]
    after: Value,
}

#[derive(Deserialize)]
struct StateJson {
    values: Option<ModuleJson>,
}

#[derive(Deserialize)]
struct ModuleJson {
    #[serde(default)]
    root_module: Option<ModuleValues>,
}

#[derive(Deserialize)]
struct ModuleValues {
    #[serde(default)]
    resources: Vec<ResourceJson>,
    #[serde(default)]
    child_modules: Vec<ModuleValues>,
}

#[derive(Deserialize)]
struct ResourceJson {
    #[serde(default)]
    mode: String,
}

#[derive(Deserialize)]
struct CheckJson {
    address: CheckAddress,
    status: String,
}

#[derive(Deserialize)]
struct CheckAddress {
    #[serde(default)]
    kind: String,
    to_display: String,
}

fn count_managed(module: &ModuleValues) -> usize {
    module
        .resources
        .iter()
        .filter(|r| r.mode == "managed")
        .count()
        + module
            .child_modules
            .iter()
            .map(count_managed)
            .sum::<usize>()
}

/// The attributes whose values differ between `before` and `after` (top level), by name.
fn changed_attributes(before: &Value, after: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let before = before.as_object().unwrap_or(&empty);
    let after = after.as_object().unwrap_or(&empty);
    let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    names
        .into_iter()
        .filter(|name| before.get(*name) != after.get(*name))
        .cloned()
        .collect()
}

/// What a refresh-only plan (`terraform show -json` of it) says about drift and checks. Only
/// `check` blocks count as checks (not a resource's own conditions, which fail the plan).
pub fn read_plan(json: &str) -> Result<Findings, String> {
    let plan: PlanJson = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let mut drifted: Vec<DriftedResource> = plan
        .resource_drift
        .into_iter()
        .filter(|d| d.mode.is_empty() || d.mode == "managed")
        .filter(|d| d.change.actions.iter().any(|a| a != "no-op" && a != "read"))
        .map(|d| DriftedResource {
            attributes: changed_attributes(&d.change.before, &d.change.after),
            address: d.address,
            actions: d.change.actions,
        })
        .collect();
    drifted.sort();
    let resources_total = plan
        .prior_state
        .and_then(|s| s.values)
        .and_then(|v| v.root_module)
        .map(|m| count_managed(&m))
        .unwrap_or(0);
    let mut findings = Findings {
        drifted,
        resources_total,
        ..Findings::default()
    };
    for check in plan
        .checks
        .into_iter()
        .filter(|c| c.address.kind == "check")
    {
        match check.status.as_str() {
            "pass" => findings.checks_passed += 1,
            "unknown" => findings.checks_unknown += 1,
            status => findings.failed_checks.push(FailedCheck {
                address: check.address.to_display,
                status: status.to_string(),
                messages: Vec::new(),
            }),
        }
    }
    // The messages are in the instances; read them apart so a plan without them still parses.
    let raw: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    for failed in &mut findings.failed_checks {
        failed.messages = check_messages(&raw, &failed.address);
    }
    findings.failed_checks.sort();
    Ok(findings)
}

fn check_messages(plan: &Value, address: &str) -> Vec<String> {
    let checks = plan["checks"].as_array().into_iter().flatten();
    let check = checks
        .filter(|c| c["address"]["to_display"] == address)
        .flat_map(|c| c["instances"].as_array().into_iter().flatten());
    let problems = check.flat_map(|i| i["problems"].as_array().into_iter().flatten());
    problems
        .filter_map(|p| p["message"].as_str().map(str::to_string))
        .collect()
}

/// How an assessment ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Found(Findings),
    Errored(String),
}

/// The notification triggers a new outcome fires. `prior` is the assessment that ended before
/// it (with a result or an error), `prior_found` the last one with a result (None: none yet).
/// Only news fires: drift or failing checks the same as the last result's (an error in between
/// changes nothing), or the same error as last time, send nothing.
pub fn triggers(
    prior: Option<&Outcome>,
    prior_found: Option<&Findings>,
    new: &Outcome,
) -> Vec<&'static str> {
    match new {
        Outcome::Errored(reason) => match prior {
            Some(Outcome::Errored(before)) if before == reason => Vec::new(),
            _ => vec!["assessment:failed"],
        },
        Outcome::Found(findings) => {
            let mut fired = Vec::new();
            if findings.is_drifted() && prior_found.map(|b| &b.drifted) != Some(&findings.drifted) {
                fired.push("assessment:drifted");
            }
            if !findings.failed_checks.is_empty()
                && prior_found.map(|b| &b.failed_checks) != Some(&findings.failed_checks)
            {
                fired.push("assessment:check_failure");
            }
            fired
        }
    }
}

/// What the workspace's drift issue on GitHub should be after `new`, given the last result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueChange {
    /// Open one (first drift) or change its text (the drift changed).
    Show,
    /// Close it: the drift is gone.
    Close,
    /// Leave it as it is (the same drift, still none, or the assessment errored).
    Keep,
}

pub fn issue_change(prior_found: Option<&Findings>, new: &Outcome) -> IssueChange {
    let drift_before = prior_found.filter(|f| f.is_drifted()).map(|f| &f.drifted);
    match new {
        Outcome::Errored(_) => IssueChange::Keep,
        Outcome::Found(f) if f.is_drifted() => {
            if drift_before == Some(&f.drifted) {
                IssueChange::Keep
            } else {
                IssueChange::Show
            }
        }
        Outcome::Found(_) if drift_before.is_some() => IssueChange::Close,
        Outcome::Found(_) => IssueChange::Keep,
    }
}

/// `findings` with every text masked (`mask` hides the workspace's sensitive values): check
/// messages quote what the configuration interpolated, which may be a secret.
pub fn masked(findings: Findings, mask: impl Fn(&str) -> String) -> Findings {
    Findings {
        drifted: (findings.drifted.into_iter())
            .map(|d| DriftedResource {
                address: mask(&d.address),
                actions: d.actions,
                attributes: d.attributes.iter().map(|a| mask(a)).collect(),
            })
            .collect(),
        failed_checks: (findings.failed_checks.into_iter())
            .map(|c| FailedCheck {
                address: mask(&c.address),
                status: c.status,
                messages: c.messages.iter().map(|m| mask(m)).collect(),
            })
            .collect(),
        ..findings
    }
}

/// The drift issue's title.
pub fn issue_title(workspace: &str) -> String {
    format!("Gantry: workspace {workspace} has drifted")
}

/// The drift issue's body: what drifted and where to see the plan.
pub fn issue_body(workspace: &str, findings: &Findings, link: &str) -> String {
    let mut body = format!(
        "A health assessment found **{} of {} resources** in workspace `{workspace}` changed \
         outside Terraform.\n\n| Resource | Change | Attributes |\n|---|---|---|\n",
        findings.drifted.len(),
        findings.resources_total
    );
    for d in &findings.drifted {
        let change = if d.actions.iter().any(|a| a == "delete") {
            "deleted"
        } else {
            "changed"
        };
        let attributes: Vec<String> = d.attributes.iter().map(|a| format!("`{a}`")).collect();
        body.push_str(&format!(
            "| `{}` | {change} | {} |\n",
            d.address,
            attributes.join(", ")
        ));
    }
    body.push_str(&format!(
        "\n[The assessment and its plan]({link}). Gantry closes this issue when an assessment \
         finds no drift (apply the configuration, or change it to match).\n"
    ));
    super::status::truncate_lines(&body, MAX_ISSUE_BODY)
}

/// GitHub takes issue bodies up to 65,536 characters.
const MAX_ISSUE_BODY: usize = 60_000;

/// What a notification about an assessment says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssessmentNotice<'a> {
    pub configuration_id: &'a str,
    pub configuration_url: &'a str,
    /// `asmtres-<id>`
    pub result_id: &'a str,
    pub result_url: &'a str,
    pub workspace_id: &'a str,
    pub workspace_name: &'a str,
    pub organization_name: &'a str,
    pub trigger: &'a str,
    pub outcome: &'a Outcome,
    pub prior: Option<&'a Outcome>,
    /// RFC 3339, UTC.
    pub created_at: &'a str,
}

/// Terraform Cloud's words for an assessment trigger.
pub fn trigger_message(trigger: &str) -> &'static str {
    match trigger {
        "assessment:drifted" => "Drift Detected",
        "assessment:check_failure" => "Checks Failed",
        _ => "Health Assessment Failed",
    }
}

/// An assessment result as Terraform Cloud describes one; an errored one found nothing.
fn result_json(outcome: &Outcome, id: &str, url: &str, created_at: &str) -> Value {
    let (found, error) = match outcome {
        Outcome::Found(f) => (f, None),
        Outcome::Errored(reason) => (&Findings::default(), Some(reason)),
    };
    json!({
        "id": id,
        "url": url,
        "succeeded": error.is_none(),
        "error_msg": error,
        "drifted": found.is_drifted(),
        "all_checks_succeeded": error.is_none() && found.failed_checks.is_empty(),
        "resources_drifted": found.drifted.len(),
        "resources_undrifted": found.resources_total.saturating_sub(found.drifted.len()),
        "checks_passed": found.checks_passed,
        "checks_failed": found.checks_failed(),
        "checks_errored": found.checks_errored(),
        "checks_unknown": found.checks_unknown,
        "created_at": created_at,
    })
}

/// Terraform Cloud's generic payload for assessments, version 2.
pub fn generic_payload(notice: &AssessmentNotice<'_>) -> Value {
    let prior = notice
        .prior
        .map(|p| result_json(p, "", "", ""))
        .unwrap_or(Value::Null);
    json!({
        "payload_version": "2",
        "notification_configuration_url": notice.configuration_url,
        "run_url": null,
        "run_id": null,
        "run_message": null,
        "run_created_at": null,
        "run_created_by": null,
        "workspace_id": notice.workspace_id,
        "workspace_name": notice.workspace_name,
        "organization_name": notice.organization_name,
        "trigger_scope": "assessment",
        "trigger": notice.trigger,
        "message": trigger_message(notice.trigger),
        "details": {
            "new_assessment_result": result_json(
                notice.outcome, notice.result_id, notice.result_url, notice.created_at,
            ),
            "prior_assessment_result": prior,
        },
    })
}

/// A Slack incoming webhook's message about an assessment.
pub fn slack_payload(notice: &AssessmentNotice<'_>) -> Value {
    json!({
        "text": format!(
            "{}: workspace *{}* (<{}|assessment>)",
            trigger_message(notice.trigger), notice.workspace_name, notice.result_url
        ),
    })
}

/// A Microsoft Teams message card about an assessment.
pub fn teams_payload(notice: &AssessmentNotice<'_>) -> Value {
    let message = trigger_message(notice.trigger);
    super::notifications::teams_card(
        message,
        &format!("{message}: {}", notice.workspace_name),
        "A health assessment of the workspace",
        Some(("View assessment", notice.result_url)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    fn schedule(latest: Option<RunState>) -> Schedule {
        Schedule {
            workspace: WorkspaceId(1),
            interval: Duration::from_secs(3600),
            latest_run: latest,
            last_applied_at_ms: Some(10 * HOUR),
            last_assessed_at_ms: None,
            assessing: false,
            requested_at_ms: None,
        }
    }

    #[test]
    fn a_workspace_is_due_an_interval_after_its_last_apply_or_assessment() {
        let mut s = schedule(Some(RunState::Applied));
        assert_eq!(due(&s, 10 * HOUR + 1), Due::At(11 * HOUR));
        assert_eq!(due(&s, 11 * HOUR), Due::Since(11 * HOUR));
        // An assessment after the apply moves the next one on.
        s.last_assessed_at_ms = Some(11 * HOUR + 5);
        assert_eq!(due(&s, 11 * HOUR + 10), Due::At(12 * HOUR + 5));
        // An apply after the assessment does too.
        s.last_applied_at_ms = Some(12 * HOUR);
        assert_eq!(due(&s, 12 * HOUR + 10), Due::At(13 * HOUR));
        // A run with nothing to apply counts as healthy.
        s.latest_run = Some(RunState::PlannedAndFinished);
        assert_eq!(due(&s, 13 * HOUR), Due::Since(13 * HOUR));
        // Asked for, it is due at once, but not past a pause.
        s.requested_at_ms = Some(12 * HOUR + 20);
        assert_eq!(due(&s, 12 * HOUR + 30), Due::Since(12 * HOUR + 20));
        s.latest_run = Some(RunState::Errored);
        assert_eq!(
            due(&s, 12 * HOUR + 30),
            Due::Paused("the latest run errored")
        );
    }

    #[test]
    fn errored_running_or_unapplied_workspaces_are_not_assessed() {
        let now = 100 * HOUR;
        let paused = |s: &Schedule| matches!(due(s, now), Due::Paused(_));
        assert!(paused(&schedule(Some(RunState::Errored))));
        assert!(paused(&schedule(Some(RunState::Discarded))));
        assert!(paused(&schedule(Some(RunState::Planning))));
        assert!(paused(&schedule(None)));
        let mut never_applied = schedule(Some(RunState::PlannedAndFinished));
        never_applied.last_applied_at_ms = None;
        assert!(paused(&never_applied));
        let mut assessing = schedule(Some(RunState::Applied));
        assessing.assessing = true;
        assert!(paused(&assessing));
        assert_eq!(
            due(&schedule(Some(RunState::Errored)), now),
            Due::Paused("the latest run errored")
        );
    }

    #[test]
    fn the_cap_takes_the_longest_overdue_first() {
        let mut a = schedule(Some(RunState::Applied));
        a.workspace = WorkspaceId(1);
        a.last_applied_at_ms = Some(5 * HOUR);
        let mut b = schedule(Some(RunState::Applied));
        b.workspace = WorkspaceId(2);
        b.last_applied_at_ms = Some(3 * HOUR);
        let mut c = schedule(Some(RunState::Errored));
        c.workspace = WorkspaceId(3);
        let all = [a, b, c];
        assert_eq!(
            pick_due(&all, 20 * HOUR, 5),
            vec![WorkspaceId(2), WorkspaceId(1)]
        );
        assert_eq!(pick_due(&all, 20 * HOUR, 1), vec![WorkspaceId(2)]);
        assert!(pick_due(&all, 20 * HOUR, 0).is_empty());
        assert_eq!(next_due(&all, 0), Some(4 * HOUR));
    }

    #[test]
    fn intervals_are_durations_of_an_hour_or_more() {
        assert_eq!(parse_interval("24h"), Ok(DEFAULT_INTERVAL));
        assert_eq!(parse_interval("90m"), Ok(Duration::from_secs(5400)));
        assert!(parse_interval("30m").unwrap_err().contains("1h"));
        assert!(parse_interval("often").is_err());
        assert_eq!(format_interval(DEFAULT_INTERVAL), "1day");
    }

    const PLAN: &str = r#"{
      "resource_drift": [
        {"address": "drift_object.a", "mode": "managed",
         "change": {"actions": ["update"], "before": {"content": "hello", "id": "x"},
                    "after": {"content": "s3cret", "id": "x"}}},
        {"address": "data.x.y", "mode": "data", "change": {"actions": ["read"]}}
      ],
      "prior_state": {"values": {"root_module": {
        "resources": [{"mode": "managed"}, {"mode": "managed"}, {"mode": "data"}],
        "child_modules": [{"resources": [{"mode": "managed"}]}]}}},
      "checks": [
        {"address": {"kind": "check", "to_display": "check.hello"}, "status": "fail",
         "instances": [{"problems": [{"message": "a no longer says hello"}]}]},
        {"address": {"kind": "check", "to_display": "check.ok"}, "status": "pass"},
        {"address": {"kind": "resource", "to_display": "drift_object.a"}, "status": "pass"}
      ]
    }"#;

    #[test]
    fn a_plan_tells_what_drifted_by_attribute_name_and_which_checks_failed() {
        let f = read_plan(PLAN).unwrap();
        assert_eq!(
            f.drifted,
            vec![DriftedResource {
                address: "drift_object.a".into(),
                actions: vec!["update".into()],
                attributes: vec!["content".into()],
            }]
        );
        assert_eq!(f.resources_total, 3);
        assert_eq!(f.checks_passed, 1);
        assert_eq!(f.checks_failed(), 1);
        assert_eq!(f.failed_checks[0].messages, vec!["a no longer says hello"]);
        // Values never leave the plan: only names.
        assert!(!serde_json::to_string(&f).unwrap().contains("s3cret"));
        let clean = read_plan(r#"{"format_version": "1.2"}"#).unwrap();
        assert!(!clean.is_drifted());
    }

    #[test]
    fn only_news_fires_a_notification_or_touches_the_issue() {
        let found = read_plan(PLAN).unwrap();
        let drifted = Outcome::Found(found.clone());
        let clean = Outcome::Found(Findings::default());
        let none = Findings::default();
        let errored = Outcome::Errored("no credentials".into());
        assert_eq!(
            triggers(None, None, &drifted),
            vec!["assessment:drifted", "assessment:check_failure"]
        );
        assert!(triggers(Some(&drifted), Some(&found), &drifted).is_empty());
        assert!(triggers(Some(&drifted), Some(&found), &clean).is_empty());
        assert_eq!(
            triggers(Some(&clean), Some(&none), &errored),
            vec!["assessment:failed"]
        );
        assert!(triggers(Some(&errored), Some(&none), &errored).is_empty());
        // An error in between: the same drift as the last result is no news.
        assert!(triggers(Some(&errored), Some(&found), &drifted).is_empty());
        assert_eq!(issue_change(None, &drifted), IssueChange::Show);
        assert_eq!(issue_change(Some(&found), &drifted), IssueChange::Keep);
        assert_eq!(issue_change(Some(&found), &errored), IssueChange::Keep);
        assert_eq!(issue_change(Some(&found), &clean), IssueChange::Close);
        assert_eq!(issue_change(Some(&none), &clean), IssueChange::Keep);
        assert_eq!(issue_change(None, &clean), IssueChange::Keep);
        let mut other = found.clone();
        other.drifted[0].actions = vec!["delete".into()];
        assert_eq!(
            issue_change(Some(&found), &Outcome::Found(other)),
            IssueChange::Show
        );
    }

    #[test]
    fn every_text_of_the_findings_is_masked() {
        let found = masked(read_plan(PLAN).unwrap(), |t| t.replace("hello", "***"));
        assert_eq!(
            found.failed_checks[0].messages,
            vec!["a no longer says ***"]
        );
        assert_eq!(found.failed_checks[0].address, "check.***");
    }

    #[test]
    fn the_payload_is_terraform_clouds_version_2() {
        let outcome = Outcome::Found(read_plan(PLAN).unwrap());
        let body = generic_payload(&AssessmentNotice {
            configuration_id: "nc-1",
            configuration_url: "https://g/api/v1/notification-configurations/1",
            result_id: "asmtres-7",
            result_url: "https://g/app/ws/assessments/7",
            workspace_id: "ws-1",
            workspace_name: "prod",
            organization_name: "gantry",
            trigger: "assessment:drifted",
            outcome: &outcome,
            prior: None,
            created_at: "2026-12-07T00:00:00Z",
        });
        assert_eq!(body["payload_version"], "2");
        assert_eq!(body["trigger_scope"], "assessment");
        assert_eq!(body["message"], "Drift Detected");
        let result = &body["details"]["new_assessment_result"];
        assert_eq!(result["resources_drifted"], 1);
        assert_eq!(result["resources_undrifted"], 2);
        assert_eq!(result["checks_failed"], 1);
        assert_eq!(result["drifted"], true);
        assert!(body["details"]["prior_assessment_result"].is_null());
    }

    #[test]
    fn the_issue_lists_each_drifted_resource() {
        let f = read_plan(PLAN).unwrap();
        let body = issue_body("prod", &f, "https://g/a/1");
        assert!(body.contains("**1 of 3 resources**"));
        assert!(body.contains("| `drift_object.a` | changed | `content` |"));
        assert!(body.contains("(https://g/a/1)"));
    }
}
