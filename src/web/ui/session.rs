//! Signing in to the web UI with an API token: the token is checked once and a session opened;
//! the cookie (HttpOnly, SameSite=Lax, Secure on https) carries only a random session id, whose
//! hash the store keeps with the session's CSRF token. Every form carries that CSRF token.

use std::sync::Arc;

use axum::Form;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::core::access::Role;
use crate::store::Session;
use crate::web::AppState;
use crate::web::api::auth::token_hash;
use crate::web::github_app::{error_page, render};

const SESSION_COOKIE: &str = "gantry_session";
const SIGN_IN_COOKIE: &str = "gantry_sign_in";
/// A session lasts a working day.
const SESSION_MS: i64 = 12 * 60 * 60 * 1000;

fn random_hex() -> String {
    use rand::Rng;
    hex::encode(rand::rng().random::<[u8; 24]>())
}

/// Whether two secrets are equal, in constant time.
fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// The signed-in person.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub name: String,
    pub role: Role,
    pub csrf: String,
}

impl Viewer {
    /// Checks a form's CSRF token and the role an action needs.
    pub fn authorize(&self, csrf: &str, needed: Role) -> Result<(), Box<Response>> {
        if !same(csrf, &self.csrf) {
            return Err(Box::new(error_page(
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form is no longer valid. Go back, reload the page and try again.",
            )));
        }
        if !self.role.allows(needed) {
            return Err(Box::new(error_page(
                StatusCode::FORBIDDEN,
                "Not allowed",
                &format!(
                    "This needs the {needed} role; you are signed in with {}.",
                    self.role
                ),
            )));
        }
        Ok(())
    }
}

impl FromRequestParts<Arc<AppState>> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let jar = CookieJar::from_headers(&parts.headers);
        let sign_in = || {
            let back = parts.uri.path();
            Redirect::to(&format!("/sign-in?next={}", urlencode(back))).into_response()
        };
        let Some(id) = jar.get(SESSION_COOKIE).map(|c| c.value().to_string()) else {
            return Err(sign_in());
        };
        let session = state
            .store
            .session(&token_hash(&id))
            .await
            .map_err(|error| {
                tracing::error!(error = format!("{error:#}"), "reading a session failed");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            })?;
        let Some(session) = session else {
            return Err(sign_in());
        };
        let role = Role::parse(&session.role).unwrap_or(Role::Read);
        Ok(Viewer {
            name: session.token_name,
            role,
            csrf: session.csrf,
        })
    }
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Only local paths: a sign-in link cannot send anyone elsewhere.
fn safe_next(next: Option<&str>) -> String {
    match next {
        // A local path only: no host, and no whitespace, control characters or backslashes
        // that a browser would strip or turn into `//host`.
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path
                    .chars()
                    .any(|c| c == '\\' || c.is_whitespace() || c.is_control()) =>
        {
            path.to_string()
        }
        _ => "/".to_string(),
    }
}

#[derive(askama::Template)]
#[template(path = "sign_in.html")]
struct SignInPage<'a> {
    csrf: &'a str,
    next: &'a str,
    error: Option<&'a str>,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

fn secure(state: &AppState) -> bool {
    state.config.public_url.scheme() == "https"
}

/// `GET /sign-in`
pub async fn sign_in_page(
    State(state): State<Arc<AppState>>,
    jar: CookieJar,
    axum::extract::Query(query): axum::extract::Query<NextQuery>,
) -> Response {
    let csrf = random_hex();
    let cookie = Cookie::build((SIGN_IN_COOKIE, csrf.clone()))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure(&state))
        .path("/sign-in");
    let next = safe_next(query.next.as_deref());
    let page = SignInPage {
        csrf: &csrf,
        next: &next,
        error: None,
    };
    (jar.add(cookie), render(&page)).into_response()
}

#[derive(Deserialize)]
pub struct SignInForm {
    token: String,
    csrf: String,
    next: Option<String>,
}

/// `POST /sign-in`
pub async fn sign_in(
    State(state): State<Arc<AppState>>,
    jar: CookieJar,
    Form(form): Form<SignInForm>,
) -> Response {
    let expected = jar.get(SIGN_IN_COOKIE).map(|c| c.value().to_string());
    if !expected.is_some_and(|e| same(&e, &form.csrf)) {
        return error_page(
            StatusCode::FORBIDDEN,
            "Sign-in expired",
            "The sign-in form expired. Open the sign-in page again.",
        );
    }
    let next = safe_next(form.next.as_deref());
    let token = form.token.trim();
    let found = match state.store.api_token(&token_hash(token)).await {
        Ok(found) => found,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "sign-in lookup failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let Some((name, role)) = found else {
        tracing::info!("sign-in refused: unknown token");
        let page = SignInPage {
            csrf: &form.csrf,
            next: &next,
            error: Some("That token is not valid."),
        };
        return (StatusCode::UNAUTHORIZED, render(&page)).into_response();
    };
    let id = random_hex();
    let session = Session {
        token_name: name.clone(),
        role,
        csrf: random_hex(),
    };
    let expires = crate::store::now_ms() + SESSION_MS;
    if let Err(error) = state
        .store
        .create_session(&token_hash(&id), &session, expires)
        .await
    {
        tracing::error!(error = format!("{error:#}"), "opening a session failed");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    tracing::info!(name, "signed in");
    let cookie = Cookie::build((SESSION_COOKIE, id))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure(&state))
        .path("/");
    let jar = jar
        .remove(Cookie::build(SIGN_IN_COOKIE).path("/sign-in"))
        .add(cookie);
    (jar, Redirect::to(&next)).into_response()
}

#[derive(Deserialize)]
pub struct CsrfForm {
    pub csrf: String,
}

/// `POST /sign-out`
pub async fn sign_out(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    jar: CookieJar,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(refused) = viewer.authorize(&form.csrf, Role::Read) {
        return *refused;
    }
    if let Some(id) = jar.get(SESSION_COOKIE).map(|c| c.value().to_string()) {
        let _ = state.store.delete_session(&token_hash(&id)).await;
    }
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
    (jar, Redirect::to("/sign-in")).into_response()
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn sign_in_only_returns_to_local_paths() {
        assert_eq!(safe_next(Some("/runs/7")), "/runs/7");
        for hostile in [
            "https://evil.example/",
            "//evil.example",
            "/\t/evil.example",
            "/\\evil.example",
            "/ /evil.example",
            "evil",
        ] {
            assert_eq!(safe_next(Some(hostile)), "/", "{hostile:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
