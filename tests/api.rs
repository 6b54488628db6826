//! The JSON API end to end: workspaces made, changed and deleted through it, their variables
//! (sensitive ones never read back), runs of uploaded configurations with the real Terraform,
//! retries, paginated run lists, state downloads, and every endpoint against every role.

mod common;

use common::runs::{Harness, ROOT_WORKSPACE, sha, upload_of};
use gantry::core::RunId;
use serde_json::{Value, json};

const SANDBOX: &str = "/api/v1/workspaces/sandbox";

async fn with_sandbox() -> Harness {
    let h = Harness::start(ROOT_WORKSPACE, None).await;
    let made = h
        .call(
            "POST",
            "/api/v1/workspaces",
            &h.token,
            json!({ "name": "sandbox", "repo": "octo-org/infra", "terraform_version": "1.0.3" }),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    // The `outputs` configuration needs `name`.
    let put = h
        .call(
            "PUT",
            &format!("{SANDBOX}/vars/terraform/name"),
            &h.token,
            json!({ "value": "upload" }),
        )
        .await;
    assert_eq!(put.status, 201, "{}", put.body);
    h
}

#[tokio::test]
async fn workspaces_are_created_read_updated_and_deleted_through_the_api() {
    let h = with_sandbox().await;
    let shown = h.call("GET", SANDBOX, &h.token, Value::Null).await;
    assert_eq!(shown.status, 200);
    assert_eq!(shown.body["source"], "api");
    assert_eq!(shown.body["branch"], Value::Null);
    assert_eq!(shown.body["speculative_enabled"], true);

    let again = h
        .call(
            "POST",
            "/api/v1/workspaces",
            &h.token,
            json!({ "name": "sandbox", "repo": "octo-org/infra" }),
        )
        .await;
    assert_eq!(again.status, 409);
    assert!(again.body["error"].as_str().unwrap().contains("exists"));
    for (body, field) in [
        (json!({ "repo": "octo-org/infra" }), "name"),
        (
            json!({ "name": "bad name", "repo": "octo-org/infra" }),
            "name",
        ),
        (json!({ "name": "x", "repo": "infra" }), "repo"),
        (
            json!({ "name": "x", "repo": "o/r", "working_directory": "../up" }),
            "working_directory",
        ),
        (
            json!({ "name": "x", "repo": "o/r", "branch": "a..b" }),
            "branch",
        ),
        (
            json!({ "name": "x", "repo": "o/r", "terraform_version": "latest" }),
            "terraform_version",
        ),
        (
            json!({ "name": "x", "repo": "o/r", "trigger_patterns": ["[z-a]"] }),
            "trigger_patterns",
        ),
    ] {
        let refused = h.call("POST", "/api/v1/workspaces", &h.token, body).await;
        assert_eq!(refused.status, 400, "{field}: {}", refused.body);
        let error = refused.body["error"].as_str().unwrap();
        assert!(error.starts_with(&format!("{field}:")), "{error}");
    }
    let unknown_field = h
        .call(
            "POST",
            "/api/v1/workspaces",
            &h.token,
            json!({ "name": "x", "repo": "o/r", "autoapply": true }),
        )
        .await;
    assert_eq!(unknown_field.status, 422, "{}", unknown_field.body);
    assert!(
        unknown_field.body["error"]
            .as_str()
            .unwrap()
            .contains("autoapply")
    );

    let patched = h
        .call(
            "PATCH",
            SANDBOX,
            &h.token,
            json!({ "auto_apply": true, "branch": "release", "working_directory": "envs/sandbox/" }),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["auto_apply"], true);
    assert_eq!(patched.body["branch"], "release");
    assert_eq!(patched.body["working_directory"], "envs/sandbox");
    assert_eq!(patched.body["terraform_version"], "1.0.3", "untouched");
    let cleared = h
        .call("PATCH", SANDBOX, &h.token, json!({ "branch": null }))
        .await;
    assert_eq!(cleared.body["branch"], Value::Null);
    let listed = h.api_get("/api/v1/workspaces").await;
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["prod", "sandbox"]);

    // The configuration file owns its workspaces.
    let config_owned = h
        .call(
            "PATCH",
            "/api/v1/workspaces/prod",
            &h.token,
            json!({ "auto_apply": true }),
        )
        .await;
    assert_eq!(config_owned.status, 409);
    assert!(
        config_owned.body["error"]
            .as_str()
            .unwrap()
            .contains("configuration file")
    );
    let config_delete = h
        .call("DELETE", "/api/v1/workspaces/prod", &h.token, Value::Null)
        .await;
    assert_eq!(config_delete.status, 409);

    let deleted = h.call("DELETE", SANDBOX, &h.token, Value::Null).await;
    assert_eq!(deleted.status, 204);
    assert_eq!(
        h.call("GET", SANDBOX, &h.token, Value::Null).await.status,
        404
    );
    let recreated = h
        .call(
            "POST",
            "/api/v1/workspaces",
            &h.token,
            json!({ "name": "sandbox", "repo": "octo-org/other" }),
        )
        .await;
    assert_eq!(recreated.status, 201, "the name is free again");
}

#[tokio::test]
async fn variables_are_written_never_read_back_when_sensitive_and_pinned_by_runs() {
    let h = with_sandbox().await;
    let vars = format!("{SANDBOX}/vars");
    let put = |key: &str, body: Value| {
        let route = format!("{vars}/terraform/{key}");
        let h = &h;
        async move { h.call("PUT", &route, &h.token, body).await }
    };
    // `name` exists already (with_sandbox made it): replaced, 200.
    assert_eq!(
        put("name", json!({ "value": "api-world" })).await.status,
        200
    );
    let secret = put(
        "secret",
        json!({ "value": "s3cr3t-from-the-api", "sensitive": true }),
    )
    .await;
    assert_eq!(secret.status, 201);
    assert_eq!(secret.body["value"], Value::Null);
    let listed = h.call("GET", &vars, &h.token, Value::Null).await.body;
    assert_eq!(
        listed,
        json!([
            { "category": "terraform", "key": "name", "value": "api-world", "sensitive": false },
            { "category": "terraform", "key": "secret", "value": null, "sensitive": true },
        ])
    );
    let unmask = put("secret", json!({ "value": "x", "sensitive": false })).await;
    assert_eq!(unmask.status, 400);
    assert_eq!(put("bad name!", json!({ "value": "x" })).await.status, 400);
    let wrong_category = h
        .call(
            "PUT",
            &format!("{vars}/nope/x"),
            &h.token,
            json!({ "value": "x" }),
        )
        .await;
    assert_eq!(wrong_category.status, 404);
    let config_owned = h
        .call(
            "PUT",
            "/api/v1/workspaces/prod/vars/env/TF_LOG",
            &h.token,
            json!({ "value": "debug" }),
        )
        .await;
    assert_eq!(config_owned.status, 409);

    // A run takes the values as they are when it is made.
    let version = h.upload("sandbox", upload_of("outputs")).await;
    let run = h.run_upload("sandbox", version, true).await;
    assert_eq!(put("name", json!({ "value": "later" })).await.status, 200);
    let done = h.wait_for(run, "planned_and_finished").await;
    assert_eq!(done["configuration"], "upload");
    let log = h.log(run, "plan").await;
    assert!(log.contains("hello api-world"), "{log}");
    assert!(!log.contains("s3cr3t-from-the-api"), "{log}");

    let gone = h
        .call(
            "DELETE",
            &format!("{vars}/terraform/name"),
            &h.token,
            Value::Null,
        )
        .await;
    assert_eq!(gone.status, 204);
    let again = h
        .call(
            "DELETE",
            &format!("{vars}/terraform/name"),
            &h.token,
            Value::Null,
        )
        .await;
    assert_eq!(again.status, 404);
}

#[tokio::test]
async fn an_uploaded_configuration_plans_applies_and_its_state_can_be_downloaded() {
    let h = with_sandbox().await;
    let version = h.upload("sandbox", upload_of("outputs")).await;
    assert_eq!(
        h.upload("sandbox", upload_of("outputs")).await,
        version,
        "the same tarball is the same configuration version"
    );
    let run = h.run_upload("sandbox", version, false).await;
    h.wait_for(run, "planned").await;
    assert_eq!(h.action(run, "confirm").await.0, 200);
    let applied = h.wait_for(run, "applied").await;
    assert_eq!(applied["source"], "api");
    assert_eq!(applied["commit_url"], Value::Null);
    let versions = h.api_get(&format!("{SANDBOX}/state-versions")).await;
    assert_eq!(versions.as_array().unwrap().len(), 1);
    let state_id = versions[0]["id"].as_i64().unwrap();

    let download = |which: String, token: String| {
        let h = &h;
        async move {
            h.gantry
                .http
                .get(format!(
                    "{}{SANDBOX}/state-versions/{which}/download",
                    h.gantry.url
                ))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    let current = download("current".into(), h.token.clone()).await;
    assert_eq!(current.status(), 200);
    assert!(
        current.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("sandbox-1.tfstate")
    );
    let state: Value = current.json().await.unwrap();
    assert_eq!(state["outputs"]["greeting"]["value"], "hello upload");
    let by_id: Value = download(state_id.to_string(), h.token.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_id, state);
    let reader = h.token_for("read").await;
    assert_eq!(download("current".into(), reader).await.status(), 403);
    assert_eq!(download("99".into(), h.token.clone()).await.status(), 404);
    assert_eq!(
        download("latest".into(), h.token.clone()).await.status(),
        400
    );

    // Nothing about an uploaded configuration goes to GitHub: it has no commit there.
    let to_github = h.gantry.github.received_requests().await.unwrap();
    let writes: Vec<String> = to_github
        .iter()
        .filter(|r| r.method.as_str() != "GET" && !r.url.path().contains("access_tokens"))
        .map(|r| r.url.path().to_string())
        .collect();
    assert!(writes.is_empty(), "{writes:?}");

    // An unfinished run holds the workspace, forced or not.
    let changed = h.upload("sandbox", upload_of("outputs-v2")).await;
    let waiting = h.run_upload("sandbox", changed, false).await;
    h.wait_for(waiting, "planned").await;
    let busy = h
        .call(
            "DELETE",
            &format!("{SANDBOX}?force=true"),
            &h.token,
            Value::Null,
        )
        .await;
    assert_eq!(busy.status, 409);
    assert!(busy.body["error"].as_str().unwrap().contains("unfinished"));
    // A discarded run may be retried (and its retry discarded in turn).
    assert_eq!(h.action(waiting, "discard").await.0, 200);
    let (status, retried) = h.action(waiting, "retry").await;
    assert_eq!(status, 201, "{retried}");
    let retry = retried["id"].as_i64().unwrap();
    h.wait_for(retry, "planned").await;
    assert_eq!(h.action(retry, "discard").await.0, 200);

    // A workspace whose state still manages resources is not deleted by accident.
    let workspace = h
        .gantry
        .store
        .workspace_named("sandbox")
        .await
        .unwrap()
        .unwrap();
    let managed = format!(
        r#"{{"version":4,"terraform_version":"1.0.3","serial":2,"lineage":"{}","outputs":{{}},"resources":[{{"mode":"managed","type":"null_resource","name":"x","instances":[]}}]}}"#,
        state["lineage"].as_str().unwrap()
    );
    let meta = gantry::core::state::check_new_state(None, managed.as_bytes()).unwrap();
    h.gantry
        .store
        .record_state_version(
            workspace.id,
            gantry::store::Author::Run(RunId(run)),
            &meta,
            managed.as_bytes(),
        )
        .await
        .unwrap();
    let refused = h.call("DELETE", SANDBOX, &h.token, Value::Null).await;
    assert_eq!(refused.status, 409);
    assert!(
        refused.body["error"]
            .as_str()
            .unwrap()
            .contains("1 resources")
    );
    let forced = h
        .call(
            "DELETE",
            &format!("{SANDBOX}?force=true"),
            &h.token,
            Value::Null,
        )
        .await;
    assert_eq!(forced.status, 204);
    assert_eq!(
        h.call("GET", &format!("/api/v1/runs/{run}"), &h.token, Value::Null)
            .await
            .status,
        404
    );
    // Its upload went with it: no other workspace of the repository can run it now.
    let gone = h
        .call(
            "POST",
            "/api/v1/workspaces/prod/runs",
            &h.token,
            json!({ "configuration_version": version, "speculative": true }),
        )
        .await;
    assert_eq!(gone.status, 404, "{}", gone.body);
}

#[tokio::test]
async fn a_bad_upload_is_refused_and_a_speculative_run_stays_out_of_the_list() {
    let h = with_sandbox().await;
    let send = |body: Vec<u8>| async {
        let response = h
            .gantry
            .http
            .post(format!("{}{SANDBOX}/configuration-versions", h.gantry.url))
            .bearer_auth(&h.token)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    };
    let (status, garbage) = send(b"not a tarball".to_vec()).await;
    assert_eq!(status, 400);
    assert!(
        garbage["error"].as_str().unwrap().contains("rejected"),
        "{garbage}"
    );
    assert_eq!(send(Vec::new()).await.0, 400);
    let (status, oversized) = send(vec![0u8; 64 * 1024 * 1024 + 1]).await;
    assert_eq!(status, 413);
    assert!(oversized["error"].is_string(), "{oversized}");
    let unknown_version = h
        .call(
            "POST",
            &format!("{SANDBOX}/runs"),
            &h.token,
            json!({ "configuration_version": 4242 }),
        )
        .await;
    assert_eq!(unknown_version.status, 404);

    let version = h.upload("sandbox", upload_of("outputs")).await;
    // A configuration-file workspace applies what GitHub has: an upload is only planned there.
    let apply = h
        .call(
            "POST",
            "/api/v1/workspaces/prod/runs",
            &h.token,
            json!({ "configuration_version": version }),
        )
        .await;
    assert_eq!(apply.status, 409, "{}", apply.body);
    assert!(
        apply.body["error"]
            .as_str()
            .unwrap()
            .contains("speculative")
    );
    let plan = h.run_upload("sandbox", version, true).await;
    let done = h.wait_for(plan, "planned_and_finished").await;
    assert_eq!(done["speculative"], true);
    let listed = h.api_get(&format!("{SANDBOX}/runs")).await;
    assert_eq!(
        listed,
        json!([]),
        "speculative plans are reached by link only"
    );

    // An upload no run uses is pruned once it is old; one a run used stays.
    let unused = h.upload("sandbox", upload_of("outputs-v2")).await;
    let now = gantry::store::now_ms();
    assert_eq!(
        h.gantry
            .store
            .prune_unused_uploads(now - 60_000)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        h.gantry.store.prune_unused_uploads(now + 1).await.unwrap(),
        1
    );
    let runs = format!("{SANDBOX}/runs");
    let run_of = |id: i64| {
        h.call(
            "POST",
            &runs,
            &h.token,
            json!({ "configuration_version": id, "speculative": true }),
        )
    };
    assert_eq!(run_of(unused).await.status, 404);
    assert_eq!(run_of(version).await.status, 201);
}

#[tokio::test]
async fn a_failed_run_is_retried_as_a_new_run_and_a_finished_one_is_not() {
    let h = Harness::start(ROOT_WORKSPACE, None).await;
    // GitHub cannot serve the commit at first (a flaky fetch): the run errors.
    let broken = h.push(&sha(1)).await;
    let errored = h.wait_for(broken, "errored").await;
    assert!(
        errored["error"].as_str().unwrap().contains("fetching"),
        "{errored}"
    );
    // Once it can, the retry runs the same commit again.
    h.serve_tarball(&sha(1), "outputs").await;
    // Sent twice at once (a double click, two people): one retry.
    let (first, second) = tokio::join!(h.action(broken, "retry"), h.action(broken, "retry"));
    let mut statuses = [first.0, second.0];
    statuses.sort();
    assert_eq!(statuses, [201, 409], "{first:?} {second:?}");
    let (status, retried) = if first.0 == 201 { first } else { second };
    assert_eq!(status, 201, "{retried}");
    let retry = retried["id"].as_i64().unwrap();
    assert_ne!(retry, broken);
    assert_eq!(retried["retry_of"], broken);
    assert_eq!(retried["source"], "retry");
    assert_eq!(retried["commit_sha"], sha(1));
    h.wait_for(retry, "planned").await;
    let (status, refused) = h.action(retry, "retry").await;
    assert_eq!(status, 409, "a planned run is not retried: {refused}");
    // The errored run is older than its retry: retrying it again would plan old code.
    let (status, refused) = h.action(broken, "retry").await;
    assert_eq!(status, 409);
    assert!(
        refused["error"].as_str().unwrap().contains("newer run"),
        "{refused}"
    );
    assert_eq!(h.action(4242, "retry").await.0, 404);
}

#[tokio::test]
async fn a_workspaces_runs_come_queue_first_then_newest_first_page_by_page() {
    let h = with_sandbox().await;
    h.call(
        "PUT",
        &format!("{SANDBOX}/vars/terraform/name"),
        &h.token,
        json!({ "value": "pages" }),
    )
    .await;
    let version = h.upload("sandbox", upload_of("outputs")).await;
    // The first run holds the workspace (waiting for confirmation); the rest queue behind it.
    let first = h.run_upload("sandbox", version, false).await;
    h.wait_for(first, "planned").await;
    let queued: Vec<i64> = [
        h.run_upload("sandbox", version, false).await,
        h.run_upload("sandbox", version, false).await,
    ]
    .to_vec();
    h.action(first, "discard").await;
    let second = queued[0];
    h.wait_for(second, "planned").await;
    let third = h.run_upload("sandbox", version, false).await;
    let fourth = h.run_upload("sandbox", version, false).await;
    // Now: pending queued[1], third, fourth (queue order); then second (planned), first.
    let expected = [queued[1], third, fourth, second, first];
    let page = |n: u32| {
        let h = &h;
        async move {
            h.call(
                "GET",
                &format!("{SANDBOX}/runs?page={n}&per_page=2"),
                &h.token,
                Value::Null,
            )
            .await
        }
    };
    let mut seen = Vec::new();
    for n in 1..=3 {
        let answer = page(n).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.headers["x-total-count"], "5");
        let link = answer
            .headers
            .get("link")
            .map(|l| l.to_str().unwrap().to_string())
            .unwrap_or_default();
        assert_eq!(link.contains("rel=\"next\""), n < 3, "page {n}: {link}");
        assert_eq!(link.contains("rel=\"prev\""), n > 1, "page {n}: {link}");
        if n < 3 {
            // The next link is absolute (from the public URL) and leads to the next page.
            let next = link
                .split(';')
                .next()
                .unwrap()
                .trim_matches(['<', '>', ' ']);
            let path = next
                .strip_prefix("https://gantry.test")
                .unwrap_or_else(|| panic!("{next}"));
            let followed: Value = h
                .gantry
                .http
                .get(format!("{}{path}", h.gantry.url))
                .bearer_auth(&h.token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(followed, page(n + 1).await.body);
        }
        for run in answer.body.as_array().unwrap() {
            assert!(run.get("events").is_none(), "lists leave events out");
            seen.push(run["id"].as_i64().unwrap());
        }
    }
    assert_eq!(seen, expected);
    assert_eq!(page(4).await.body, json!([]));
    for bad in [
        "page=0",
        "per_page=0",
        "per_page=101",
        "page=x",
        "page=9223372036854775807",
    ] {
        let answer = h
            .call(
                "GET",
                &format!("{SANDBOX}/runs?{bad}"),
                &h.token,
                Value::Null,
            )
            .await;
        assert_eq!(answer.status, 400, "{bad}");
        assert!(answer.body["error"].is_string(), "{bad}: {}", answer.body);
    }
    h.action(second, "discard").await;
}

/// Every route, with the smallest role that may use it. A `{run}` is replaced by a real run.
const ROUTES: &[(&str, &str, &str)] = &[
    ("GET", "/api/v1/workspaces", "read"),
    ("POST", "/api/v1/workspaces", "admin"),
    ("GET", "/api/v1/workspaces/prod", "read"),
    ("PATCH", "/api/v1/workspaces/sandbox", "admin"),
    ("DELETE", "/api/v1/workspaces/sandbox", "admin"),
    ("GET", "/api/v1/workspaces/prod/vars", "read"),
    ("PUT", "/api/v1/workspaces/sandbox/vars/env/A", "admin"),
    ("DELETE", "/api/v1/workspaces/sandbox/vars/env/A", "admin"),
    ("GET", "/api/v1/workspaces/prod/runs", "read"),
    ("POST", "/api/v1/workspaces/prod/runs", "write"),
    (
        "POST",
        "/api/v1/workspaces/prod/configuration-versions",
        "write",
    ),
    ("GET", "/api/v1/workspaces/prod/state-versions", "read"),
    (
        "GET",
        "/api/v1/workspaces/prod/state-versions/current/download",
        "write",
    ),
    ("POST", "/api/v1/workspaces/prod/actions/lock", "admin"),
    ("POST", "/api/v1/workspaces/prod/actions/unlock", "admin"),
    ("GET", "/api/v1/runs/{run}", "read"),
    ("GET", "/api/v1/runs/{run}/logs/plan", "read"),
    ("GET", "/api/v1/runs/{run}/logs/plan/stream", "read"),
    ("POST", "/api/v1/runs/{run}/actions/confirm", "write"),
    ("POST", "/api/v1/runs/{run}/actions/discard", "write"),
    ("POST", "/api/v1/runs/{run}/actions/cancel", "write"),
    ("POST", "/api/v1/runs/{run}/actions/force-cancel", "write"),
    ("POST", "/api/v1/runs/{run}/actions/retry", "write"),
];

#[tokio::test]
async fn every_endpoint_wants_a_token_and_a_role_big_enough() {
    let h = Harness::without_runner(ROOT_WORKSPACE).await;
    let admin = h.token_for("admin").await;
    let h = Harness { token: admin, ..h };
    h.call(
        "POST",
        "/api/v1/workspaces",
        &h.token,
        json!({ "name": "sandbox", "repo": "octo-org/infra" }),
    )
    .await;
    let version = h.upload("sandbox", upload_of("outputs")).await;
    let run = h.run_upload("sandbox", version, false).await;
    let read = h.token_for("read").await;
    let write = h.token_for("write").await;
    let rank = |role: &str| ["read", "write", "admin"].iter().position(|r| *r == role);
    for (method, route, needed) in ROUTES {
        let route = route.replace("{run}", &run.to_string());
        for (token, role) in [("", "none"), ("gantry_forged", "forged")] {
            let answer = h.call(method, &route, token, Value::Null).await;
            assert_eq!(answer.status, 401, "{method} {route} as {role}");
            assert!(answer.body["error"].is_string(), "{method} {route}");
            assert_eq!(answer.headers["www-authenticate"], "Bearer");
        }
        for (token, role) in [(&read, "read"), (&write, "write")] {
            let answer = h.call(method, &route, token, Value::Null).await;
            if rank(role) < rank(needed) {
                assert_eq!(answer.status, 403, "{method} {route} as {role}");
                let error = answer.body["error"].as_str().unwrap();
                assert!(error.contains(needed), "{error}");
            } else {
                assert!(
                    ![401, 403].contains(&answer.status),
                    "{method} {route} as {role}: {}",
                    answer.status
                );
            }
        }
    }
}

#[tokio::test]
async fn errors_are_json_everywhere_even_before_a_handler_runs() {
    let h = Harness::without_runner(ROOT_WORKSPACE).await;
    let h = Harness {
        token: h.token_for("admin").await,
        ..h
    };
    let cases = [
        ("GET", "/api/v1/nothing-here", Value::Null, 404),
        ("GET", "/api/v1/runs/not-a-number", Value::Null, 400),
        ("PUT", "/api/v1/workspaces", Value::Null, 405),
        ("GET", "/api/v1/runs/4242", Value::Null, 404),
        ("GET", "/api/v1/runs/4242/logs/deploy", Value::Null, 404),
        (
            "POST",
            "/api/v1/workspaces/prod/actions/lock",
            json!({ "why": 1 }),
            422,
        ),
        (
            "POST",
            "/api/v1/workspaces/prod/actions/lock",
            Value::Null,
            415,
        ),
        (
            "POST",
            "/api/v1/workspaces/prod/actions/lock",
            json!({ "reason": " " }),
            400,
        ),
        (
            "POST",
            "/api/v1/workspaces/nope/actions/lock",
            json!({ "reason": "x" }),
            404,
        ),
    ];
    for (method, route, body, status) in cases {
        let answer = h.call(method, route, &h.token, body).await;
        assert_eq!(answer.status, status, "{method} {route}: {}", answer.body);
        let error = answer.body["error"].as_str();
        assert!(
            error.is_some_and(|e| !e.is_empty()),
            "{method} {route}: {}",
            answer.body
        );
    }
    let not_allowed = h
        .call("PUT", "/api/v1/workspaces", &h.token, Value::Null)
        .await;
    assert!(
        not_allowed.headers.contains_key("allow"),
        "405 keeps its Allow header"
    );
}
