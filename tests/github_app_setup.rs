//! The manifest flow against a fake GitHub: the setup page posts this Gantry's manifest to
//! GitHub, and the callback trades GitHub's code for the app's credentials, saved 0600.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{TestGantry, fixture};

fn no_app(env: &mut std::collections::HashMap<String, String>) {
    for key in [
        "GANTRY_WEBHOOK_SECRET",
        "GANTRY_APP_ID",
        "GANTRY_APP_PRIVATE_KEY_PATH",
    ] {
        env.remove(key);
    }
    env.insert(
        "GANTRY_PUBLIC_URL".into(),
        "https://gantry.example.com".into(),
    );
}

/// The manifest the setup page would post, read back out of its hidden form field.
fn manifest_in(page: &str) -> serde_json::Value {
    let start = page
        .find("name=\"manifest\" value=\"")
        .expect("manifest field")
        + 23;
    let end = start + page[start..].find('"').unwrap();
    let escaped = &page[start..end];
    let json = escaped
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&json).expect("manifest is JSON")
}

/// The setup page's address with the one-time token Gantry wrote to its data dir.
fn setup_path(gantry: &TestGantry, query: &str) -> String {
    let token = std::fs::read_to_string(gantry.data_dir.path().join("github-app/setup-token"))
        .expect("setup token written at start");
    format!("/github-app/setup?token={token}{query}")
}

/// Opens the setup page as a browser would, then follows GitHub's redirect back to the callback
/// with `code`, carrying the page's state cookie.
async fn set_up_and_come_back(gantry: &TestGantry, code: &str) -> reqwest::Response {
    let setup = gantry.get(&setup_path(gantry, "")).await;
    let cookie = setup.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let state = cookie.split('=').nth(1).unwrap().to_string();
    gantry
        .http
        .get(format!(
            "{}/github-app/callback?code={code}&state={state}",
            gantry.url
        ))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap()
}

fn form_action(page: &str) -> String {
    let start = page.find("<form action=\"").unwrap() + 14;
    let end = start + page[start..].find('"').unwrap();
    page[start..end].replace("&amp;", "&").replace("&#61;", "=")
}

#[tokio::test]
async fn the_setup_page_posts_a_manifest_with_this_gantrys_urls() {
    let gantry = TestGantry::start_with(no_app).await;
    let response = gantry.get(&setup_path(&gantry, "")).await;
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("gantry_manifest_state="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Secure")
    );
    let page = response.text().await.unwrap();

    let manifest = manifest_in(&page);
    assert_eq!(manifest["url"], "https://gantry.example.com");
    assert_eq!(
        manifest["hook_attributes"]["url"],
        "https://gantry.example.com/webhooks/github"
    );
    assert_eq!(
        manifest["redirect_url"],
        "https://gantry.example.com/github-app/callback"
    );
    assert_eq!(manifest["public"], false);
    let permissions = &manifest["default_permissions"];
    for (name, level) in [
        ("contents", "read"),
        ("metadata", "read"),
        ("statuses", "write"),
        ("pull_requests", "write"),
        ("issues", "write"),
        ("checks", "write"),
        ("merge_queues", "read"),
    ] {
        assert_eq!(permissions[name], level, "{name}");
    }
    assert_eq!(
        permissions.as_object().unwrap().len(),
        7,
        "no extra permissions"
    );
    let events: Vec<&str> = manifest["default_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "push",
            "pull_request",
            "issue_comment",
            "check_run",
            "check_suite",
            "merge_group"
        ]
    );

    let state = cookie.split(';').next().unwrap().split('=').nth(1).unwrap();
    let action = form_action(&page);
    assert_eq!(
        action,
        format!("{}/settings/apps/new?state={state}", gantry.github.uri())
    );
}

#[tokio::test]
async fn the_setup_page_can_create_the_app_for_an_organization() {
    let gantry = TestGantry::start_with(no_app).await;
    let page = gantry
        .get(&setup_path(&gantry, "&org=acme-infra&name=Acme%20Gantry"))
        .await
        .text()
        .await
        .unwrap();
    assert!(form_action(&page).starts_with(&format!(
        "{}/organizations/acme-infra/settings/apps/new?state=",
        gantry.github.uri()
    )));
    assert_eq!(manifest_in(&page)["name"], "Acme Gantry");
    let bad = gantry.get(&setup_path(&gantry, "&org=../evil")).await;
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn the_callback_saves_the_new_apps_credentials_and_says_what_to_do_next() {
    let gantry = TestGantry::start_with(no_app).await;
    let pem = String::from_utf8(fixture("keys/test-app.pem")).unwrap();
    gantry.github.add_manifest(
        "abc123",
        serde_json::json!({
            "id": 777,
            "slug": "gantry-acme",
            "node_id": "A_1",
            "owner": { "login": "acme", "id": 1 },
            "name": "Gantry Acme",
            "html_url": "https://github.com/apps/gantry-acme",
            "client_id": "Iv1.abc",
            "client_secret": "client-secret-value",
            "webhook_secret": "fresh-webhook-secret",
            "pem": pem,
        }),
    );

    let callback = set_up_and_come_back(&gantry, "abc123").await;
    assert_eq!(callback.status(), 200);
    let page = callback.text().await.unwrap();
    assert!(page.contains("gantry-acme"));
    assert!(page.contains("https://github.com/apps/gantry-acme/installations/new"));
    assert!(page.contains("Restart Gantry"));
    assert!(!page.contains("fresh-webhook-secret") && !page.contains("PRIVATE KEY"));

    let dir = gantry.data_dir.path().join("github-app");
    assert_eq!(std::fs::read_to_string(dir.join("app-id")).unwrap(), "777");
    assert_eq!(
        std::fs::read_to_string(dir.join("webhook-secret")).unwrap(),
        "fresh-webhook-secret"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("private-key.pem")).unwrap(),
        pem
    );
    for file in ["app-id", "webhook-secret", "private-key.pem"] {
        let mode = std::fs::metadata(dir.join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }

    // The next start picks the credentials up from the data dir.
    let env = {
        let mut env = common::base_env(gantry.data_dir.path(), &gantry.github.uri());
        no_app(&mut env);
        env
    };
    let config = gantry::config::Config::load(None, &env).unwrap();
    assert_eq!(config.github.app.unwrap().app_id, 777);
    assert_eq!(gantry.github.answered("apps/create-from-manifest"), 1);
}

#[tokio::test]
async fn a_callback_without_the_browsers_state_is_refused_before_calling_github() {
    let gantry = TestGantry::start_with(no_app).await;
    let response = gantry
        .get("/github-app/callback?code=abc123&state=forged")
        .await;
    assert_eq!(response.status(), 400);
    assert!(!gantry.data_dir.path().join("github-app/app-id").exists());
    assert_no_post(&gantry).await;
}

#[tokio::test]
async fn the_setup_page_needs_the_token_gantry_wrote_at_start() {
    let gantry = TestGantry::start_with(no_app).await;
    for path in ["/github-app/setup", "/github-app/setup?token=guess"] {
        let response = gantry.get(path).await;
        assert_eq!(response.status(), 403, "{path}");
        assert!(response.headers().get("set-cookie").is_none(), "{path}");
    }
    let mode = std::fs::metadata(gantry.data_dir.path().join("github-app/setup-token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn once_an_app_is_configured_setup_and_callback_are_closed() {
    // The harness's default environment configures an app.
    let gantry = TestGantry::start().await;
    assert_eq!(gantry.get("/github-app/setup").await.status(), 409);
    let callback = gantry
        .http
        .get(format!(
            "{}/github-app/callback?code=abc&state=s",
            gantry.url
        ))
        .header("Cookie", "gantry_manifest_state=s")
        .send()
        .await
        .unwrap();
    assert_eq!(callback.status(), 409);
    assert!(
        !gantry
            .data_dir
            .path()
            .join("github-app/setup-token")
            .exists()
    );
    assert_no_post(&gantry).await;
}

/// Nothing was sent to GitHub but reads.
async fn assert_no_post(gantry: &TestGantry) {
    let requests = gantry.github.received_requests().await.unwrap_or_default();
    let posts: Vec<String> = requests
        .iter()
        .filter(|r| r.method.as_str() != "GET")
        .map(|r| r.url.path().to_owned())
        .collect();
    assert!(posts.is_empty(), "{posts:?}");
}

#[tokio::test]
async fn a_public_url_github_cannot_reach_is_pointed_out() {
    let gantry = TestGantry::start_with(|env| {
        no_app(env);
        env.remove("GANTRY_PUBLIC_URL");
    })
    .await;
    let page = gantry
        .get(&setup_path(&gantry, ""))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("which GitHub cannot reach"), "{page}");
}

#[tokio::test]
async fn a_code_github_refuses_gives_a_clear_page_and_saves_nothing() {
    let gantry = TestGantry::start_with(no_app).await;
    // GitHub knows no manifest code "expired" (codes last an hour and are used once).
    let response = set_up_and_come_back(&gantry, "expired").await;
    assert_eq!(response.status(), 502);
    assert!(response.text().await.unwrap().contains("Start again"));
    assert!(!gantry.data_dir.path().join("github-app/app-id").exists());
}
