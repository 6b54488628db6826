//! The GitHub App manifest flow: `/github-app/setup` posts `app-manifest.yml` (with this
//! Gantry's URLs filled in) to GitHub; GitHub sends the user back to `/github-app/callback`
//! with a code that Gantry exchanges for the new app's credentials and saves in the data dir.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use rand::Rng;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::AppState;
use crate::config::{Config, store_app_credentials};

/// The manifest as shipped; placeholders are replaced per request.
const MANIFEST_YAML: &str = include_str!("../../app-manifest.yml");
/// Ties GitHub's redirect back to the browser that started the flow (CSRF protection).
const STATE_COOKIE: &str = "gantry_manifest_state";

#[derive(Template)]
#[template(path = "github_app_setup.html")]
struct SetupPage {
    unreachable_public_url: bool,
    organization: Option<String>,
    public_url: String,
    post_url: String,
    manifest_json: String,
    manifest_pretty: String,
}

#[derive(Template)]
#[template(path = "github_app_done.html")]
struct DonePage {
    slug: String,
    credentials_dir: String,
    install_url: String,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

#[derive(Deserialize)]
pub struct SetupQuery {
    org: Option<String>,
    name: Option<String>,
    token: Option<String>,
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
}

/// `GET /github-app/setup[?org=NAME][&name=APP]`
pub async fn setup(
    State(state): State<Arc<AppState>>,
    Query(query): Query<SetupQuery>,
    jar: CookieJar,
) -> Response {
    let config = &state.config;
    if let Some(refusal) = setup_refusal(&state, query.token.as_deref()) {
        return refusal;
    }
    if let Some(org) = &query.org
        && !is_github_login(org)
    {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Invalid organization",
            "An organization name has letters, digits and hyphens only.",
        );
    }
    let manifest = match manifest(config, query.name.as_deref()) {
        Ok(m) => m,
        Err(error) => {
            tracing::error!(
                error = format!("{error:#}"),
                "building the app manifest failed"
            );
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Setup unavailable",
                "The app manifest could not be prepared; see Gantry's log.",
            );
        }
    };
    let flow_state = hex::encode(rand::rng().random::<[u8; 16]>());
    let page = SetupPage {
        unreachable_public_url: is_loopback(&config.public_url),
        organization: query.org.clone(),
        public_url: config.public_url.to_string(),
        post_url: new_app_url(&config.github.web_url, query.org.as_deref(), &flow_state),
        manifest_json: manifest.to_string(),
        manifest_pretty: serde_json::to_string_pretty(&manifest).unwrap_or_default(),
    };
    let cookie = Cookie::build((STATE_COOKIE, flow_state))
        .path("/github-app")
        .http_only(true)
        .secure(config.public_url.scheme() == "https")
        .same_site(SameSite::Lax);
    (jar.add(cookie), render(&page)).into_response()
}

/// `GET /github-app/callback?code=…&state=…`
pub async fn callback(
    State(state): State<Arc<AppState>>,
    Query(query): Query<CallbackQuery>,
    jar: CookieJar,
) -> Response {
    if state.config.github.app.is_some() {
        return already_set_up();
    }
    let expected = jar.get(STATE_COOKIE).map(|c| c.value().to_string());
    if expected.is_none() || expected != query.state {
        tracing::warn!("manifest callback with a missing or wrong state");
        return error_page(
            StatusCode::BAD_REQUEST,
            "Setup link expired",
            "This link does not belong to a setup started from this browser. Start again at /github-app/setup.",
        );
    }
    let Some(code) = query.code else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Missing code",
            "GitHub did not send a code. Start again at /github-app/setup.",
        );
    };
    let app = match state.github.convert_manifest_code(&code).await {
        Ok(app) => app,
        Err(error) => {
            tracing::warn!(error = %error, "manifest code conversion failed");
            return error_page(
                StatusCode::BAD_GATEWAY,
                "GitHub refused the code",
                "The code may have expired (GitHub allows one hour) or been used already. Start again at /github-app/setup.",
            );
        }
    };
    let dir = match store_app_credentials(
        &state.config.data_dir,
        app.id,
        app.pem.expose_secret(),
        app.webhook_secret.expose_secret(),
    ) {
        Ok(dir) => dir,
        Err(error) => {
            tracing::error!(error = %error, "saving the app credentials failed");
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Could not save the credentials",
                "Gantry could not write to its data directory; see its log.",
            );
        }
    };
    tracing::info!(app_id = app.id, slug = %app.slug, "GitHub App created through the manifest flow");
    let page = DonePage {
        slug: app.slug.clone(),
        credentials_dir: dir.display().to_string(),
        install_url: format!("{}/installations/new", app.html_url.trim_end_matches('/')),
    };
    (
        jar.remove(Cookie::build(STATE_COOKIE).path("/github-app")),
        render(&page),
    )
        .into_response()
}

/// The setup page opens only while no app is configured, and only with the setup token
/// written to the data dir at start: anyone else who can reach Gantry must not be able to
/// register an app of their own and have Gantry trust its webhooks.
fn setup_refusal(state: &AppState, token: Option<&str>) -> Option<Response> {
    if state.config.github.app.is_some() {
        return Some(already_set_up());
    }
    let expected = state
        .setup_token
        .as_ref()
        .map(|t| t.expose_secret().as_bytes());
    let given = token.map(str::as_bytes);
    let matches = match (expected, given) {
        (Some(expected), Some(given)) => bool::from(subtle::ConstantTimeEq::ct_eq(expected, given)),
        _ => false,
    };
    (!matches).then(|| {
        error_page(
            StatusCode::FORBIDDEN,
            "Setup token needed",
            "Open this page with the link Gantry logged at start: it ends in ?token=… (the token is in the data directory's github-app/setup-token file).",
        )
    })
}

fn already_set_up() -> Response {
    error_page(
        StatusCode::CONFLICT,
        "Already set up",
        "This Gantry already has a GitHub App. To register a new one, stop Gantry, remove the data directory's github-app/ folder, and start again.",
    )
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.is_unspecified(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback() || ip.is_unspecified(),
        None => true,
    }
}

/// The manifest from `app-manifest.yml`, with this Gantry's URLs (and an optional name).
pub fn manifest(config: &Config, name: Option<&str>) -> anyhow::Result<Value> {
    let mut manifest: Value = serde_yaml_ng::from_str(MANIFEST_YAML)?;
    let public = config.public_url.as_str().trim_end_matches('/');
    manifest["url"] = public.into();
    manifest["hook_attributes"]["url"] = format!("{public}/webhooks/github").into();
    manifest["redirect_url"] = format!("{public}/github-app/callback").into();
    if let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) {
        manifest["name"] = name.chars().take(34).collect::<String>().into();
    }
    Ok(manifest)
}

fn new_app_url(web_url: &Url, org: Option<&str>, state: &str) -> String {
    let base = web_url.as_str().trim_end_matches('/');
    match org {
        Some(org) => format!("{base}/organizations/{org}/settings/apps/new?state={state}"),
        None => format!("{base}/settings/apps/new?state={state}"),
    }
}

fn is_github_login(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 39
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

pub(super) fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(error = %error, "rendering a page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "page could not be rendered",
            )
                .into_response()
        }
    }
}

pub(super) fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    (status, render(&ErrorPage { title, message })).into_response()
}
