//! A browser-like client for the web UI over HTTP: no redirects followed, cookies kept by
//! hand, signing in the way the form does.

use reqwest::redirect::Policy;
use reqwest::{Client, StatusCode};

/// A browser-like client: no redirects followed, cookies kept by hand.
pub struct Browser {
    pub http: Client,
    pub base: String,
    pub cookies: Vec<(String, String)>,
}

impl Browser {
    pub fn new(base: &str) -> Self {
        Self {
            http: Client::builder().redirect(Policy::none()).build().unwrap(),
            base: base.to_string(),
            cookies: Vec::new(),
        }
    }

    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn keep_cookies(&mut self, response: &reqwest::Response) -> Vec<String> {
        let mut raw = Vec::new();
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap().to_string();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(k, _)| k != name);
            if !value.is_empty() {
                self.cookies.push((name.to_string(), value.to_string()));
            }
            raw.push(text);
        }
        raw
    }

    pub async fn get(&mut self, path: &str) -> (StatusCode, String, Option<String>) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep_cookies(&response);
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_string());
        (status, response.text().await.unwrap(), location)
    }

    pub async fn post(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, Option<String>) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.keep_cookies(&response);
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_string());
        (response.status(), location)
    }

    /// Signs in with `token` the way the form does.
    pub async fn sign_in(&mut self, token: &str) -> (StatusCode, Option<String>) {
        let (status, page, _) = self.get("/sign-in?next=/workspaces/prod").await;
        assert_eq!(status, 200);
        let csrf = hidden(&page, "csrf");
        self.post(
            "/sign-in",
            &[
                ("token", token),
                ("csrf", &csrf),
                ("next", "/workspaces/prod"),
            ],
        )
        .await
    }
}

/// The value of a hidden form field in a page.
pub fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {page}"))
        + marker.len();
    page[start..].split('"').next().unwrap().to_string()
}
