//! GitHub misbehaving while Gantry reports a pull request's plans: every endpoint Gantry writes
//! to (statuses, check runs, the PR comment: list, create, edit) first answers a 500, a 429
//! with `retry-after`, a 403 primary rate limit (`x-ratelimit-remaining: 0`,
//! `x-ratelimit-reset`), and a timeout. Afterwards every status and the comment arrive, once
//! each, the newest last, and there is still exactly one comment: a comment whose creation
//! timed out after GitHub made it is found and edited, not made twice.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::runs::{Harness, REPO, ROOT_WORKSPACE, sha};
use common::wait_until;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, Request, Respond, ResponseTemplate};

const PR: u64 = 7;
const APP_ID: u64 = 4242;
/// Gantry gives up on a request after this (GANTRY_GITHUB_TIMEOUT_SECS).
const CLIENT_TIMEOUT_SECS: u64 = 1;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    ServerError,
    TooManyRequests,
    PrimaryRateLimit,
    /// Answered after the client gave up. GitHub did the work for a comment's creation (the
    /// nasty case: a retry must not make a second comment) and not for the other endpoints.
    Timeout,
}

const FAULTS: [Fault; 4] = [
    Fault::ServerError,
    Fault::TooManyRequests,
    Fault::PrimaryRateLimit,
    Fault::Timeout,
];

#[derive(Default)]
struct State {
    /// Faults served so far, per endpoint.
    faulted: HashMap<&'static str, usize>,
    injected: Vec<(&'static str, Fault)>,
    /// Statuses GitHub accepted: (sha, context, state, description).
    statuses: Vec<(String, String, String, String)>,
    /// Comments on the pull request: (id, body).
    comments: Vec<(i64, String)>,
    comment_edits: usize,
    /// When each rate limit said requests may resume, and the requests that came earlier.
    resume_at: Option<Instant>,
    early: Vec<String>,
}

/// A stateful fake of GitHub's write endpoints that misbehaves on each endpoint's first four
/// requests.
#[derive(Clone, Default)]
struct FaultyGitHub(Arc<Mutex<State>>);

impl FaultyGitHub {
    fn endpoint(request: &Request) -> &'static str {
        let path = request.url.path();
        match request.method.as_str() {
            "POST" if path.contains("/statuses/") => "status",
            "POST" | "PATCH" if path.contains("/check-runs") => "check_run",
            "GET" if path.ends_with("/comments") => "comment_list",
            "POST" if path.ends_with("/comments") => "comment_create",
            "PATCH" => "comment_edit",
            _ => "other",
        }
    }

    fn fault(&self, endpoint: &'static str) -> Option<Fault> {
        let mut state = self.0.lock().unwrap();
        let served = state.faulted.entry(endpoint).or_default();
        let fault = FAULTS.get(*served).copied()?;
        *served += 1;
        state.injected.push((endpoint, fault));
        Some(fault)
    }

    /// Does what GitHub would do for the request and says what it would answer.
    fn perform(&self, endpoint: &str, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let mut state = self.0.lock().unwrap();
        match endpoint {
            "status" => {
                let sha = request.url.path().rsplit('/').next().unwrap().to_string();
                let text = |key: &str| body[key].as_str().unwrap_or_default().to_string();
                state
                    .statuses
                    .push((sha, text("context"), text("state"), text("description")));
                ResponseTemplate::new(201).set_body_json(json!({ "id": 1 }))
            }
            "check_run" => ResponseTemplate::new(201).set_body_json(json!({ "id": 77 })),
            "comment_list" => {
                let listed: Vec<Value> = state
                    .comments
                    .iter()
                    .map(|(id, body)| {
                        json!({ "id": id, "body": body,
                                "performed_via_github_app": { "id": APP_ID } })
                    })
                    .collect();
                ResponseTemplate::new(200).set_body_json(listed)
            }
            "comment_create" => {
                let id = 500 + state.comments.len() as i64;
                state
                    .comments
                    .push((id, body["body"].as_str().unwrap_or_default().into()));
                ResponseTemplate::new(201).set_body_json(json!({ "id": id }))
            }
            "comment_edit" => {
                let id: i64 = request
                    .url
                    .path()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                let Some(comment) = state.comments.iter_mut().find(|(c, _)| *c == id) else {
                    return ResponseTemplate::new(404)
                        .set_body_json(json!({ "message": "Not Found" }));
                };
                comment.1 = body["body"].as_str().unwrap_or_default().into();
                state.comment_edits += 1;
                ResponseTemplate::new(200).set_body_json(json!({ "id": id }))
            }
            _ => ResponseTemplate::new(404),
        }
    }
}

impl Respond for FaultyGitHub {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let endpoint = Self::endpoint(request);
        {
            let mut state = self.0.lock().unwrap();
            if let Some(resume) = state.resume_at
                && Instant::now() < resume
            {
                state
                    .early
                    .push(format!("{} {}", request.method, request.url.path()));
            }
        }
        let Some(fault) = self.fault(endpoint) else {
            return self.perform(endpoint, request);
        };
        match fault {
            Fault::ServerError => {
                ResponseTemplate::new(500).set_body_json(json!({ "message": "Server Error" }))
            }
            Fault::TooManyRequests => {
                self.0.lock().unwrap().resume_at = Some(Instant::now() + Duration::from_secs(1));
                ResponseTemplate::new(429)
                    .insert_header("retry-after", "1")
                    .set_body_json(json!({ "message": "Too Many Requests" }))
            }
            Fault::PrimaryRateLimit => {
                let reset = chrono::Utc::now().timestamp() + 2;
                // The reset is whole seconds: requests may resume from its start.
                let resume = Instant::now() + Duration::from_millis(1000);
                self.0.lock().unwrap().resume_at = Some(resume);
                ResponseTemplate::new(403)
                    .insert_header("x-ratelimit-remaining", "0")
                    .insert_header("x-ratelimit-reset", reset.to_string().as_str())
                    .set_body_json(json!({ "message": "API rate limit exceeded" }))
            }
            Fault::Timeout => {
                let answer = if endpoint == "comment_create" {
                    self.perform(endpoint, request)
                } else {
                    ResponseTemplate::new(201).set_body_json(json!({ "id": 1 }))
                };
                answer.set_delay(Duration::from_secs(CLIENT_TIMEOUT_SECS + 2))
            }
        }
    }
}

fn pr_payload(action: &str, head: &str) -> Vec<u8> {
    common::runs::pull_request_payload(PR, action, head, REPO)
}

#[tokio::test]
async fn after_500s_timeouts_and_rate_limits_every_status_and_the_comment_arrive_once() {
    let tools = tempfile::tempdir().unwrap().keep();
    let cache = common::runs::tool_cache_with(&tools, None);
    let h = Harness::start_with(ROOT_WORKSPACE, |env| {
        env.insert(
            "GANTRY_TERRAFORM_TOOL_CACHE".into(),
            cache.display().to_string(),
        );
        env.insert(
            "GANTRY_GITHUB_TIMEOUT_SECS".into(),
            CLIENT_TIMEOUT_SECS.to_string(),
        );
    })
    .await;
    let github = &h.gantry.github;
    let faulty = FaultyGitHub::default();
    Mock::given(method("GET"))
        .and(path(format!("/repos/{REPO}/pulls/{PR}/files")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{ "filename": "main.tf" }])))
        .mount(github)
        .await;
    for (verb, pattern) in [
        (
            "POST",
            r"^/repos/octo-org/infra/statuses/[0-9a-f]{40}$".to_string(),
        ),
        ("POST", r"^/repos/octo-org/infra/check-runs$".into()),
        ("PATCH", r"^/repos/octo-org/infra/check-runs/\d+$".into()),
        (
            "GET",
            format!(r"^/repos/octo-org/infra/issues/{PR}/comments$"),
        ),
        (
            "POST",
            format!(r"^/repos/octo-org/infra/issues/{PR}/comments$"),
        ),
        (
            "PATCH",
            r"^/repos/octo-org/infra/issues/comments/\d+$".into(),
        ),
    ] {
        Mock::given(method(verb))
            .and(path_regex(pattern))
            .respond_with(faulty.clone())
            .mount(github)
            .await;
    }
    let (first, second) = ("a1".repeat(20), "b2".repeat(20));
    h.serve_tarball(&first, "outputs").await;
    h.serve_tarball(&second, "outputs-v2").await;

    // The pull request is opened, then pushed to while GitHub is still misbehaving.
    assert_eq!(
        h.gantry
            .send("pull_request", "pr-open", &pr_payload("opened", &first))
            .await
            .status(),
        202
    );
    h.gantry.wait_for_outcome("pr-open").await;
    let sync = pr_payload("synchronize", &second);
    assert_eq!(
        h.gantry
            .send("pull_request", "pr-sync", &sync)
            .await
            .status(),
        202
    );
    h.gantry.wait_for_outcome("pr-sync").await;

    let settled = wait_until(Duration::from_secs(120), || async {
        let runs = h
            .gantry
            .store
            .pull_request_runs(REPO, PR as i64)
            .await
            .ok()?;
        let mut finished = true;
        for id in &runs {
            let run = h.gantry.store.run(*id).await.ok()??;
            finished &= run.state.as_str() == "planned_and_finished";
        }
        let pending = h.gantry.store.outbox_pending().await.ok()?;
        (finished && !runs.is_empty() && pending == 0).then_some(runs)
    })
    .await;
    let Some(settled) = settled else {
        let runs = h
            .gantry
            .store
            .pull_request_runs(REPO, PR as i64)
            .await
            .unwrap();
        let mut states = Vec::new();
        for id in runs {
            states.push(
                h.gantry
                    .store
                    .run(id)
                    .await
                    .unwrap()
                    .unwrap()
                    .state
                    .to_string(),
            );
        }
        let outbox = h.gantry.store.outbox_pending().await.unwrap();
        let state = faulty.0.lock().unwrap();
        panic!(
            "not settled: runs {states:?}, outbox pending {outbox}, faults {:?}, comments {:?}",
            state.injected, state.comments
        );
    };
    assert_eq!(
        settled.len(),
        1,
        "one plan per workspace: the newest head's"
    );

    {
        let state = faulty.0.lock().unwrap();
        // Every endpoint met every fault.
        for endpoint in ["status", "check_run", "comment_list", "comment_create"] {
            let met: Vec<Fault> = state
                .injected
                .iter()
                .filter(|(e, _)| *e == endpoint)
                .map(|(_, f)| *f)
                .collect();
            assert_eq!(met, FAULTS, "{endpoint} met every fault once");
        }
        // No request came while a rate limit GitHub announced was in force.
        assert!(
            state.early.is_empty(),
            "sent during a rate limit: {:?}",
            state.early
        );

        // Statuses: for each commit, each status GitHub accepted is a new one (no repeats),
        // and the last says how the plan of that commit ended.
        for commit in [&first, &second] {
            let posted: Vec<_> = state
                .statuses
                .iter()
                .filter(|(s, context, _, _)| s == commit && context == "gantry/prod")
                .collect();
            assert!(!posted.is_empty(), "statuses arrived for {commit}");
            for pair in posted.windows(2) {
                assert_ne!(pair[0], pair[1], "the same status twice for {commit}");
            }
            let last = posted.last().unwrap();
            if commit == &second {
                assert_eq!(
                    last.2, "success",
                    "the newest plan's final status: {last:?}"
                );
            } else {
                // The first head's plan was superseded by the push: its last word is not pending.
                assert_ne!(last.2, "pending", "{last:?}");
            }
        }

        // One comment, never duplicated, showing the newest head.
        assert_eq!(
            state.comments.len(),
            1,
            "exactly one PR comment: {:?}",
            state.comments
        );
        let (_, body) = &state.comments[0];
        assert!(
            body.contains(&second[..7]),
            "the comment shows the newest head:\n{body}"
        );
        assert!(body.contains(gantry::core::comment::MARKER));
    }

    let metrics = h.gantry.get("/metrics").await.text().await.unwrap();
    for line in [
        "gantry_github_api_calls_total{method=\"POST\",status=\"500\"}",
        "gantry_github_api_calls_total{method=\"POST\",status=\"429\"}",
        "gantry_github_api_calls_total{method=\"POST\",status=\"403\"}",
        "gantry_github_api_calls_total{method=\"POST\",status=\"error\"}",
        "gantry_github_api_calls_total{method=\"POST\",status=\"201\"}",
        "gantry_github_outbox_sends_total{kind=\"pr_comment\",result=\"rate_limited\"}",
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
}

#[tokio::test]
async fn content_creating_requests_stay_within_the_allowance_per_installation() {
    // 4 a minute: one at once, then one every 20 s. The runner is off: each push's run
    // stays queued, and its "queued" status (and check run) is all that is sent.
    let h = Harness::start_with(ROOT_WORKSPACE, |env| {
        env.insert("GANTRY_RUNNER_ENABLED".into(), "false".into());
        env.insert(
            "GANTRY_GITHUB_CONTENT_REQUESTS_PER_MINUTE".into(),
            "4".into(),
        );
    })
    .await;
    Mock::given(method("POST"))
        .and(path_regex(
            r"^/repos/octo-org/infra/(statuses/[0-9a-f]{40}|check-runs)$",
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "id": 1 })))
        .mount(&h.gantry.github)
        .await;
    for n in 0..3 {
        let body = common::push_payload(REPO, "main", &sha(40 + n), &["main.tf"], |_| {});
        let delivery = format!("push-{n}");
        assert_eq!(h.gantry.send("push", &delivery, &body).await.status(), 202);
        h.gantry.wait_for_outcome(&delivery).await;
    }
    let posts = || async {
        h.gantry
            .github
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.method.as_str() == "POST" && !r.url.path().contains("access_tokens"))
            .count()
    };
    wait_until(Duration::from_secs(10), || async {
        (posts().await >= 1).then_some(())
    })
    .await
    .expect("the first request went at once");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(posts().await, 1, "the rest wait for the allowance");
    let pending = h.gantry.store.outbox_pending().await.unwrap();
    assert!(pending >= 2, "held back, not dropped: {pending} pending");
    let metrics = h.gantry.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("result=\"rate_limited\""),
        "held-back sends are counted:\n{metrics}"
    );
}
