//! What the TFE API answers: JSON:API resource objects for organizations, workspaces, runs,
//! plans, applies, configuration versions and state versions, with the attributes the
//! Terraform CLI reads (go-tfe fails on a wrong `type` or a timestamp not in UTC `…Z` form,
//! and panics without a workspace's `permissions` or a run's `actions`).

use serde_json::{Value, json};

use super::ids::{Kind, external};
use super::signed::{Signed, Signer};
use crate::core::access::Role;
use crate::core::run::RunState;
use crate::core::workspace::ExecutionMode;
use crate::store::{ConfigurationUpload, RunDetail, StateVersion, Workspace};

/// A time as go-tfe parses it: UTC, ending in `Z`.
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

pub fn organization(name: &str) -> Value {
    json!({
        "id": name,
        "type": "organizations",
        "attributes": { "name": name, "external-id": name },
    })
}

/// A to-one relationship.
fn to_one(kind: Kind, id: Option<i64>) -> Value {
    match id {
        Some(id) => json!({ "data": { "type": kind.resource_type(), "id": external(kind, id) } }),
        None => json!({ "data": null }),
    }
}

/// A workspace as `role` sees it; `current_run` is the run holding it, else its newest
/// (speculative plans aside).
pub fn workspace(org: &str, w: &Workspace, role: Role, current_run: Option<i64>) -> Value {
    let spec = &w.spec;
    let writes = role.allows(Role::Write);
    let manages = role.allows(Role::Admin) && !w.from_config;
    let vcs_repo = spec.repo.as_ref().map(|repo| {
        json!({
            "identifier": repo.as_str(),
            "display-identifier": repo.as_str(),
            "branch": spec.branch.clone().unwrap_or_default(),
        })
    });
    json!({
        "id": external(Kind::Workspace, w.id.0),
        "type": "workspaces",
        "attributes": {
            "name": spec.name.as_str(),
            // Unpinned: Gantry runs the Terraform it has, which the CLI takes as "latest".
            "terraform-version": spec.terraform_version.as_deref().unwrap_or("latest"),
            "execution-mode": spec.execution_mode.as_str(),
            "operations": spec.execution_mode == ExecutionMode::Remote,
            "auto-apply": spec.auto_apply,
            "locked": w.lock.is_some(),
            "locked-reason": w.lock.as_ref().map(|l| l.reason.as_str()),
            "working-directory": spec.working_directory,
            "speculative-enabled": spec.speculative_enabled,
            "assessments-enabled": spec.assessments,
            "structured-run-output-enabled": false,
            "tag-names": spec.tags,
            "vcs-repo": vcs_repo,
            "vcs-repo-identifier": spec.repo.as_ref().map(|r| r.as_str()),
            "source": if w.from_config { "gantry-config" } else { "tfe-api" },
            "permissions": {
                "can-update": manages,
                "can-destroy": manages,
                "can-queue-run": writes,
                "can-queue-apply": writes,
                "can-queue-destroy": false,
                "can-lock": writes,
                "can-unlock": writes,
                "can-force-unlock": role.allows(Role::Admin),
                "can-read-state-versions": true,
                "can-create-state-versions": writes,
                "can-read-variable": true,
                "can-update-variable": manages,
                "can-read-settings": true,
                "can-force-delete": false,
            },
            "actions": { "is-destroyable": false },
        },
        "relationships": {
            "organization": { "data": { "type": "organizations", "id": org } },
            "current-run": to_one(Kind::Run, current_run),
        },
        "links": { "self": format!("/api/v2/organizations/{org}/workspaces/{}", spec.name) },
    })
}

/// Terraform Cloud's name for where a run is: Gantry's, but for two it names otherwise.
pub fn run_status(state: RunState) -> &'static str {
    state.terraform_cloud_status()
}

/// A plan's or an apply's status: `finished`, `errored`, `canceled` and `unreachable` end
/// the CLI's log stream.
pub fn plan_status(run: &RunDetail) -> &'static str {
    // A plan's log goes on through its policy check: the CLI streams the policy lines too.
    if matches!(
        run.state,
        RunState::PolicyChecking | RunState::PolicyChecked
    ) {
        return "running";
    }
    if run.plan.is_some() {
        return "finished";
    }
    match run.state {
        RunState::Pending => "pending",
        RunState::Fetching => "queued",
        RunState::Planning => "running",
        RunState::Errored => "errored",
        RunState::Canceled | RunState::ForceCanceled => "canceled",
        _ => "unreachable",
    }
}

pub fn apply_status(run: &RunDetail) -> &'static str {
    match run.state {
        RunState::Applied => "finished",
        RunState::Applying => "running",
        RunState::Confirmed => "queued",
        RunState::Errored if run.reached_apply => "errored",
        RunState::Canceled | RunState::ForceCanceled if run.reached_apply => "canceled",
        state if state.is_final() => "unreachable",
        _ => "pending",
    }
}

/// Whether a plan or apply status is one the CLI stops streaming at.
pub fn is_over(status: &str) -> bool {
    matches!(status, "finished" | "errored" | "canceled" | "unreachable")
}

pub fn run(run: &RunDetail, role: Role) -> Value {
    let writes = role.allows(Role::Write);
    let executing = run.state.is_executing();
    let (add, change, destroy) = run
        .plan
        .as_ref()
        .map_or((0, 0, 0), |p| (p.add, p.change, p.destroy));
    json!({
        "id": external(Kind::Run, run.id.0),
        "type": "runs",
        "attributes": {
            "status": run_status(run.state),
            "has-changes": run.plan.as_ref().is_some_and(|p| p.has_changes),
            "is-destroy": run.options.destroy,
            "refresh": true,
            "refresh-only": run.options.refresh_only,
            "target-addrs": run.options.targets,
            "replace-addrs": run.options.replaces,
            "plan-only": run.speculative,
            "auto-apply": run.auto_apply,
            "source": run.source,
            "message": if run.message.is_empty() { run.summary() } else { run.message.clone() },
            "created-at": time(run.created_at_ms),
            "position-in-queue": 0,
            "resource-additions": add,
            "resource-changes": change,
            "resource-destructions": destroy,
            "actions": {
                "is-cancelable": run.state == RunState::Pending || executing,
                "is-confirmable": run.state == RunState::Planned,
                "is-discardable": matches!(
                    run.state,
                    RunState::Pending | RunState::Planned | RunState::PolicyOverride
                ),
                "is-force-cancelable": executing,
            },
            "permissions": {
                "can-apply": writes && !run.speculative,
                "can-cancel": writes,
                "can-discard": writes,
                "can-force-cancel": writes,
                "can-force-execute": false,
                "can-override-policy-check": false,
            },
            "status-timestamps": {},
        },
        "relationships": {
            "workspace": to_one(Kind::Workspace, Some(run.workspace_id.0)),
            "configuration-version":
                to_one(Kind::ConfigurationVersion, Some(run.configuration_version_id)),
            "plan": to_one(Kind::Plan, Some(run.id.0)),
            "apply": to_one(Kind::Apply, Some(run.id.0)),
            "policy-checks": { "data": [] },
            "task-stages": { "data": [] },
            "run-events": { "data": [] },
        },
    })
}

pub fn plan(run: &RunDetail, signer: &Signer) -> Value {
    let counts = run.plan.as_ref();
    json!({
        "id": external(Kind::Plan, run.id.0),
        "type": "plans",
        "attributes": {
            "status": plan_status(run),
            "has-changes": counts.is_some_and(|p| p.has_changes),
            "resource-additions": counts.map_or(0, |p| p.add),
            "resource-changes": counts.map_or(0, |p| p.change),
            "resource-destructions": counts.map_or(0, |p| p.destroy),
            "log-read-url": signer.url(Signed::PlanLog, run.id.0),
            "status-timestamps": {},
        },
    })
}

pub fn apply(run: &RunDetail, signer: &Signer) -> Value {
    let applied = (run.state == RunState::Applied)
        .then_some(())
        .and(run.plan.as_ref());
    json!({
        "id": external(Kind::Apply, run.id.0),
        "type": "applies",
        "attributes": {
            "status": apply_status(run),
            "resource-additions": applied.map_or(0, |p| p.add),
            "resource-changes": applied.map_or(0, |p| p.change),
            "resource-destructions": applied.map_or(0, |p| p.destroy),
            "log-read-url": signer.url(Signed::ApplyLog, run.id.0),
            "status-timestamps": {},
        },
    })
}

/// A configuration version; its upload URL only for `role`s that may upload.
pub fn configuration_version(cv: &ConfigurationUpload, signer: &Signer, role: Role) -> Value {
    let uploaded = cv.sha256.is_some();
    let upload_url = (!uploaded && role.allows(Role::Write))
        .then(|| signer.url(Signed::ConfigurationUpload, cv.id));
    json!({
        "id": external(Kind::ConfigurationVersion, cv.id),
        "type": "configuration-versions",
        "attributes": {
            "status": if uploaded { "uploaded" } else { "pending" },
            "source": "tfe-api",
            "speculative": cv.speculative,
            "auto-queue-runs": false,
            "upload-url": upload_url,
        },
    })
}

/// A state version; its download URL only for `role`s that may read state files (write: a
/// state holds sensitive values in plain text, as in `/api/v1`).
pub fn state_version(id: &str, sv: &StateVersion, signer: &Signer, role: Role) -> Value {
    let download = role
        .allows(Role::Write)
        .then(|| signer.url(Signed::StateDownload, sv.id));
    json!({
        "id": id,
        "type": "state-versions",
        "attributes": {
            "serial": sv.meta.serial,
            "lineage": sv.meta.lineage,
            "created-at": time(sv.created_at_ms),
            "status": "finalized",
            "size": sv.state.len(),
            "resources-processed": true,
            "hosted-state-download-url": download,
        },
        "relationships": {
            "run": to_one(Kind::Run, sv.run_id.map(|r| r.0)),
        },
    })
}

/// A state version announced but not uploaded yet: where to upload it (for `role`s that may).
pub fn awaited_state_version(upload_id: i64, serial: i64, signer: &Signer, role: Role) -> Value {
    let url = |what| {
        role.allows(Role::Write)
            .then(|| signer.url(what, upload_id))
    };
    json!({
        "id": external(Kind::StateUpload, upload_id),
        "type": "state-versions",
        "attributes": {
            "serial": serial,
            "status": "pending",
            "hosted-state-upload-url": url(Signed::StateUpload),
            "hosted-json-state-upload-url": url(Signed::JsonStateUpload),
        },
    })
}

/// `meta.pagination` for page `page` (from 1) of `size` out of `total`.
pub fn pagination(page: i64, size: i64, total: i64) -> Value {
    let pages = ((total + size - 1) / size).max(1);
    json!({
        "pagination": {
            "current-page": page,
            "page-size": size,
            "prev-page": (page > 1).then_some(page - 1),
            "next-page": (page < pages).then_some(page + 1),
            "total-pages": pages,
            "total-count": total,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_with_a_z() {
        assert_eq!(time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(time(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn pages_name_their_neighbours_so_the_cli_stops_at_the_last() {
        let first = pagination(1, 20, 45);
        assert_eq!(first["pagination"]["next-page"], 2);
        assert_eq!(first["pagination"]["total-pages"], 3);
        assert!(first["pagination"]["prev-page"].is_null());
        let last = pagination(3, 20, 45);
        assert!(last["pagination"]["next-page"].is_null());
        let empty = pagination(1, 20, 0);
        assert_eq!(empty["pagination"]["total-pages"], 1);
        assert!(empty["pagination"]["next-page"].is_null());
    }
}
