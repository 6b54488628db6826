//! The web UI over HTTP: sign-in with a token into a session cookie, CSRF on every form, the
//! workspaces, workspace and run pages, actions by role, and the live log stream.

mod common;

use common::browser::{Browser, hidden};
use common::runs::{Harness, sha};
use gantry::web::api::auth::{new_token, token_hash};
use reqwest::StatusCode;

const ROOT: &str = common::runs::ROOT_WORKSPACE;

async fn token(h: &Harness, name: &str, role: &str) -> String {
    let token = new_token();
    h.gantry
        .store
        .create_api_token(name, role, &token_hash(&token))
        .await
        .unwrap();
    token
}

#[tokio::test]
async fn signing_in_opens_a_session_and_pages_need_one() {
    let h = Harness::start(ROOT, None).await;
    let mut browser = Browser::new(&h.gantry.url);
    let (status, _, location) = browser.get("/runs/1").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/sign-in?next=%2Fruns%2F1"));

    let (status, _) = browser.sign_in("gantry_not-a-token").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let writer = token(&h, "alice", "write").await;
    let (status, page, _) = browser.get("/sign-in").await;
    assert_eq!(status, 200);
    let csrf = hidden(&page, "csrf");
    let response = browser
        .http
        .post(format!("{}/sign-in", h.gantry.url))
        .header("cookie", browser.cookie_header())
        .form(&[
            ("token", writer.as_str()),
            ("csrf", &csrf),
            ("next", "https://evil.example/"),
        ])
        .send()
        .await
        .unwrap();
    let cookies = browser.keep_cookies(&response);
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()["location"],
        "/",
        "a sign-in never sends anyone off-site"
    );
    let session = cookies
        .iter()
        .find(|c| c.starts_with("gantry_session="))
        .unwrap();
    assert!(session.contains("HttpOnly"), "{session}");
    assert!(session.contains("SameSite=Lax"), "{session}");
    assert!(
        session.contains("Secure"),
        "the public URL is https: {session}"
    );

    let (status, page, _) = browser.get("/").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("<a href=\"/workspaces/prod\"><strong>prod</strong></a>"),
        "{page}"
    );
    assert!(page.contains("alice (write)"));

    // A forged sign-in form (no sign-in cookie) is refused.
    let mut stranger = Browser::new(&h.gantry.url);
    let (status, _) = stranger
        .post(
            "/sign-in",
            &[("token", writer.as_str()), ("csrf", "guess"), ("next", "/")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_run_page_shows_the_plan_and_confirms_with_the_forms_csrf_token() {
    let h = Harness::start(ROOT, None).await;
    h.serve_tarball(&sha(1), "outputs").await;
    let run = h.push(&sha(1)).await;
    h.wait_for(run, "planned").await;

    // A reader sees the run but no buttons.
    let reader = token(&h, "rita", "read").await;
    let mut browser = Browser::new(&h.gantry.url);
    browser.sign_in(&reader).await;
    let (status, page, _) = browser.get(&format!("/runs/{run}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"run-state\">planned</span>"), "{page}");
    assert!(page.contains("+0 to add"));
    assert!(
        page.contains("Changes to Outputs"),
        "the plan log is on the page"
    );
    assert!(!page.contains("Confirm &amp; apply"));
    assert!(page.contains("with a read-only token"));

    // A writer confirms; without the form's CSRF token nothing happens.
    let writer = token(&h, "alice", "write").await;
    let mut browser = Browser::new(&h.gantry.url);
    browser.sign_in(&writer).await;
    let (_, page, _) = browser.get(&format!("/runs/{run}")).await;
    assert!(page.contains("Confirm &amp; apply"));
    let csrf = hidden(&page, "csrf");
    let (status, _) = browser
        .post(&format!("/runs/{run}/confirm"), &[("csrf", "forged")])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(h.run(run).await["state"], "planned");
    let (status, location) = browser
        .post(&format!("/runs/{run}/confirm"), &[("csrf", &csrf)])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, Some(format!("/runs/{run}")));
    h.wait_for(run, "applied").await;
    let (_, page, _) = browser.get(&format!("/runs/{run}")).await;
    assert!(page.contains("Apply log"));
    let confirmed = page
        .split("<li>")
        .find(|event| event.starts_with("confirmed — "))
        .expect("the timeline lists the confirmation");
    assert!(
        confirmed.contains(" by alice") && !confirmed.contains("</ul>"),
        "the timeline says who confirmed: {confirmed}"
    );
    let applied = page
        .split("<li>")
        .find(|e| e.starts_with("applied — "))
        .unwrap();
    assert!(
        !applied.contains(" by "),
        "Gantry's own moves name nobody: {applied}"
    );
    assert!(
        page.contains("class=\"bar-planning\""),
        "the timeline draws each phase"
    );

    let (_, page, _) = browser.get("/workspaces/prod").await;
    assert!(page.contains("History"));
    assert!(
        page.contains(&format!("<a href=\"/runs/{run}\">{run}</a>")),
        "{page}"
    );
    assert!(!page.contains("name=\"reason\""), "locking is for admins");
    // The apply's state version, with who wrote it and, for a writer, its file.
    let states = page
        .split("State versions")
        .nth(1)
        .expect("a state versions section");
    assert!(
        states.contains(&format!("<a href=\"/runs/{run}\">run {run}</a>")),
        "{states}"
    );
    let download = states
        .split("href=\"")
        .find(|link| link.contains("/download"))
        .and_then(|link| link.split('"').next())
        .expect("a download link")
        .to_string();
    let (status, file, _) = browser.get(&download).await;
    assert_eq!(status, 200);
    assert!(file.contains("\"lineage\""), "{file}");
    let mut rita = Browser::new(&h.gantry.url);
    rita.sign_in(&reader).await;
    let (_, page, _) = rita.get("/workspaces/prod").await;
    assert!(
        !page.contains("/download"),
        "readers see no state file links"
    );
    let (status, _, _) = rita.get(&download).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "nor get the file");

    // A pushed run links to its commit; an uploaded configuration has none on GitHub.
    let (_, page, _) = browser.get(&format!("/runs/{run}")).await;
    assert!(page.contains("from a push"), "{page}");
    assert!(
        page.contains(&format!("/octo-org/infra/commit/{}", sha(1))),
        "{page}"
    );
    let version = h.upload("prod", common::runs::upload_of("outputs")).await;
    let uploaded = h.run_upload("prod", version, true).await;
    let (_, page, _) = browser.get(&format!("/runs/{uploaded}")).await;
    assert!(page.contains("of an uploaded configuration"), "{page}");
    assert!(page.contains("from an upload through the API"), "{page}");
    assert!(!page.contains("/commit/"), "{page}");
}

#[tokio::test]
async fn the_log_stream_starts_at_an_offset_and_ends_with_the_phase() {
    let h = Harness::start(ROOT, None).await;
    h.serve_tarball(&sha(1), "outputs").await;
    let run = h.push(&sha(1)).await;
    h.wait_for(run, "planned").await;
    let stream = |after: i64| {
        let h = &h;
        async move {
            h.gantry
                .http
                .get(format!(
                    "{}/api/v1/runs/{run}/logs/plan/stream?after={after}",
                    h.gantry.url
                ))
                .bearer_auth(&h.token)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let whole = stream(0).await;
    assert!(whole.contains("event: end"), "{whole}");
    assert!(whole.contains("Changes to Outputs"));
    let first_id: i64 = whole
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap()
        .parse()
        .unwrap();
    let rest = stream(first_id).await;
    assert!(
        !rest.contains(&format!("id: {first_id}\n")),
        "starts after the offset"
    );
    assert!(rest.ends_with("\n\n") && rest.contains("event: end"));
}

#[tokio::test]
async fn a_failed_apply_is_summed_up_as_an_apply_failure_in_the_ui_and_the_api() {
    let failing_apply = format!(
        "#!/bin/sh\nif [ \"$1\" = apply ]; then echo 'Error: provider crashed'; exit 1; fi\nexec '{real}' \"$@\"\n",
        real = common::runs::real_terraform().display()
    );
    let h = Harness::start(ROOT, Some(&failing_apply)).await;
    h.serve_tarball(&sha(1), "outputs").await;
    let run = h.push(&sha(1)).await;
    h.wait_for(run, "planned").await;
    h.action(run, "confirm").await;
    let errored = h.wait_for(run, "errored").await;

    let summary = errored["summary"].as_str().unwrap_or_default();
    assert!(summary.starts_with("Apply failed: "), "{errored:#}");
    let listed = h.api_get("/api/v1/workspaces/prod/runs").await;
    assert_eq!(listed[0]["id"], run);
    assert_eq!(listed[0]["summary"], summary, "the list says the same");

    let reader = token(&h, "rita", "read").await;
    let mut browser = Browser::new(&h.gantry.url);
    browser.sign_in(&reader).await;
    let (_, page, _) = browser.get("/workspaces/prod").await;
    assert!(page.contains("Apply failed: "), "{page}");
    assert!(!page.contains("Plan failed"), "{page}");
}
