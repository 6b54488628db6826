//! GitHub's contract, as the fake GitHub holds Gantry to it: a request must name a real operation
//! of GitHub's published OpenAPI description (the operations Gantry calls, trimmed into
//! `fixtures/github/openapi-operations.json` by `scripts/trim-github-openapi`), with path
//! parameters of the right type, a body that validates against the operation's request schema,
//! a `User-Agent` that names Gantry, the kind of credential GitHub accepts there, and within the
//! limits GitHub enforces but the description does not state. Pure checks: no mocks, no I/O
//! beyond reading the fixture once.

use std::sync::LazyLock;

use gantry::github::AppJwtClaims;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use wiremock::Request;

/// What GitHub answers a request without a `User-Agent`.
pub const NO_USER_AGENT: &str = "Request forbidden by administrative rules. Please make sure your request has a User-Agent header.";

/// GitHub's longest commit status description, in characters.
const MAX_STATUS_DESCRIPTION: usize = 140;
/// GitHub's longest issue comment body, in characters.
const MAX_COMMENT_BODY: usize = 65_536;

/// A request GitHub would refuse, and how it would refuse it.
#[derive(Debug, Clone)]
pub struct Violation {
    /// `METHOD /path` as sent, and the operation it named if it named one.
    pub request: String,
    pub operation: Option<&'static str>,
    /// GitHub's status and message for the first thing wrong.
    pub status: u16,
    pub message: &'static str,
    /// Everything wrong with the request, each a sentence.
    pub errors: Vec<String>,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let operation = self.operation.unwrap_or("no GitHub operation");
        write!(
            f,
            "{} ({operation}) -> {} {:?}: {}",
            self.request,
            self.status,
            self.message,
            self.errors.join("; ")
        )
    }
}

/// One operation of the trimmed description, ready to match and validate against.
pub struct Operation {
    pub id: &'static str,
    method: String,
    template: Vec<Token>,
    parameters: Vec<Parameter>,
    body: Option<RequestBody>,
}

struct Parameter {
    name: String,
    schema: jsonschema::Validator,
    /// The schema takes a number: the segment is read as one (else it is a string, digits or not).
    numeric: bool,
}

struct RequestBody {
    required: bool,
    schema: jsonschema::Validator,
}

/// A path template in pieces: `/repos/` `{owner}` `/` `{repo}` `/compare/` `{base}` `...` `{head}`.
enum Token {
    Literal(String),
    /// A parameter's value: one path segment, or several for GitHub's `x-multi-segment`.
    Parameter {
        multi_segment: bool,
    },
}

#[derive(Deserialize)]
struct Fixture {
    operations: Vec<FixtureOperation>,
}

#[derive(Deserialize)]
struct FixtureOperation {
    operation_id: String,
    method: String,
    path: String,
    path_parameters: std::collections::BTreeMap<String, FixtureParameter>,
    request_body: Option<FixtureBody>,
}

#[derive(Deserialize)]
struct FixtureParameter {
    schema: Value,
    multi_segment: bool,
}

#[derive(Deserialize)]
struct FixtureBody {
    required: bool,
    schema: Value,
}

/// Every operation Gantry may call, read once per test binary.
pub static OPERATIONS: LazyLock<Vec<Operation>> = LazyLock::new(|| {
    let path = super::super::fixture_path("github/openapi-operations.json");
    let text = std::fs::read(&path).expect("fixtures/github/openapi-operations.json");
    let fixture: Fixture = serde_json::from_slice(&text).expect("the operations fixture parses");
    fixture.operations.into_iter().map(Operation::new).collect()
});

impl Operation {
    fn new(op: FixtureOperation) -> Self {
        let (mut template, names) = tokens(&op.path);
        let mut multi = names
            .iter()
            .map(|name| op.path_parameters[name].multi_segment);
        for token in &mut template {
            if let Token::Parameter { multi_segment } = token {
                *multi_segment = multi.next().unwrap_or(false);
            }
        }
        let parameters = names
            .into_iter()
            .map(|name| {
                let schema = &op.path_parameters[&name].schema;
                Parameter {
                    numeric: matches!(schema["type"].as_str(), Some("integer" | "number")),
                    schema: jsonschema::draft4::new(schema).expect("a parameter schema"),
                    name,
                }
            })
            .collect();
        let body = op.request_body.map(|b| RequestBody {
            required: b.required,
            schema: jsonschema::draft4::new(&b.schema).expect("a request body schema"),
        });
        Self {
            // Read once per test binary and kept for its life.
            id: Box::leak(op.operation_id.into_boxed_str()),
            method: op.method,
            template,
            parameters,
            body,
        }
    }

    pub fn method(&self) -> &str {
        &self.method
    }

    /// The path parameters' values by name, for a path [`check_api`] matched to this operation
    /// (`/api/v3` of GitHub Enterprise Server already stripped).
    pub fn parameters_of(&self, path: &str) -> std::collections::HashMap<String, String> {
        let path = path.strip_prefix("/api/v3").unwrap_or(path);
        let values = self.captures(path).unwrap_or_default();
        self.parameters
            .iter()
            .zip(values)
            .map(|(parameter, value)| (parameter.name.clone(), value.to_owned()))
            .collect()
    }

    /// The parameter values if `path` fits this template.
    fn captures<'p>(&self, path: &'p str) -> Option<Vec<&'p str>> {
        let mut values = Vec::new();
        capture(&self.template, path, &mut values).then_some(values)
    }

    /// Why the parameter values do not fit their schemas (empty when they do).
    fn parameter_errors(&self, values: &[&str]) -> Vec<String> {
        let mut errors = Vec::new();
        for (parameter, raw) in self.parameters.iter().zip(values) {
            let value = if parameter.numeric {
                serde_json::from_str::<Value>(raw).unwrap_or(Value::Null)
            } else {
                Value::String((*raw).to_owned())
            };
            if !parameter.schema.is_valid(&value) {
                let name = &parameter.name;
                errors.push(format!(
                    "path parameter `{name}` is `{raw}`, not what GitHub takes"
                ));
            }
        }
        errors
    }
}

/// Splits a template into literals and parameters; also returns the parameters' names in order.
fn tokens(template: &str) -> (Vec<Token>, Vec<String>) {
    let mut tokens = Vec::new();
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').expect("a closed parameter") + open;
        if open > 0 {
            tokens.push(Token::Literal(rest[..open].to_owned()));
        }
        names.push(rest[open + 1..close].to_owned());
        tokens.push(Token::Parameter {
            multi_segment: false,
        });
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        tokens.push(Token::Literal(rest.to_owned()));
    }
    (tokens, names)
}

/// Matches `path` against `template`, pushing each parameter's value; backtracks over how much
/// of the path each parameter takes (a ref with slashes, `{base}...{head}`).
fn capture<'p>(template: &[Token], path: &'p str, values: &mut Vec<&'p str>) -> bool {
    let Some((first, rest)) = template.split_first() else {
        return path.is_empty();
    };
    match first {
        Token::Literal(literal) => path
            .strip_prefix(literal.as_str())
            .is_some_and(|after| capture(rest, after, values)),
        Token::Parameter { multi_segment } => {
            let limit = if *multi_segment {
                path.len()
            } else {
                path.find('/').unwrap_or(path.len())
            };
            for end in (1..=limit).rev().filter(|&end| path.is_char_boundary(end)) {
                values.push(&path[..end]);
                if capture(rest, &path[end..], values) {
                    return true;
                }
                values.pop();
            }
            false
        }
    }
}

/// Checks a request to the API host. Ok names the operation it called.
pub fn check_api(request: &Request) -> Result<&'static Operation, Violation> {
    let method = request.method.as_str();
    // GitHub Enterprise Server serves the same API under `/api/v3`.
    let raw_path = request.url.path();
    let path = raw_path.strip_prefix("/api/v3").unwrap_or(raw_path);
    let mut violation = Violation {
        request: format!("{method} {raw_path}"),
        operation: None,
        status: 0,
        message: "",
        errors: Vec::new(),
    };
    let mut refuse = |status: u16, message: &'static str, error: String| {
        if violation.status == 0 {
            violation.status = status;
            violation.message = message;
        }
        violation.errors.push(error);
    };

    if !names_gantry(request) {
        refuse(403, NO_USER_AGENT, "no `User-Agent: gantry/…`".to_owned());
    }
    let operation = match find_operation(method, path) {
        Ok(operation) => operation,
        Err(errors) => {
            for error in errors {
                refuse(404, "Not Found", error);
            }
            return Err(violation);
        }
    };
    violation.operation = Some(operation.id);
    if let Err((status, message, error)) = check_credential(request, method, path) {
        refuse(status, message, error);
    }
    match body_errors(operation, &request.body) {
        Ok(errors) => {
            for error in errors {
                refuse(422, "Invalid request.", error);
            }
        }
        Err(error) => refuse(400, "Problems parsing JSON", error),
    }
    if violation.errors.is_empty() {
        Ok(operation)
    } else {
        Err(violation)
    }
}

/// Checks a request to the download host a tarball redirects to: it must name Gantry and must
/// not carry the API's credential (GitHub's download URL holds its own short-lived token).
pub fn check_download(request: &Request) -> Result<(), Violation> {
    let mut violation = Violation {
        request: format!("{} {} (download host)", request.method, request.url.path()),
        operation: None,
        status: 0,
        message: "",
        errors: Vec::new(),
    };
    if !names_gantry(request) {
        violation.status = 403;
        violation.message = NO_USER_AGENT;
        violation
            .errors
            .push("no `User-Agent: gantry/…`".to_owned());
    }
    if request.headers.contains_key("authorization") {
        if violation.status == 0 {
            // What a signed download URL answers a second credential.
            violation.status = 400;
            violation.message = "Only one auth mechanism allowed";
        }
        let error = "the API's `Authorization` header followed the redirect";
        violation.errors.push(error.to_owned());
    }
    if violation.errors.is_empty() {
        Ok(())
    } else {
        Err(violation)
    }
}

/// One of the request's `User-Agent` values names Gantry (octocrab sends its own first).
fn names_gantry(request: &Request) -> bool {
    request
        .headers
        .get_all("user-agent")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|agent| agent.starts_with("gantry/"))
}

/// The operation `method` and `path` name, or why they name none.
fn find_operation(method: &str, path: &str) -> Result<&'static Operation, Vec<String>> {
    let mut errors = Vec::new();
    for operation in OPERATIONS.iter().filter(|op| op.method == method) {
        let Some(values) = operation.captures(path) else {
            continue;
        };
        let wrong = operation.parameter_errors(&values);
        if wrong.is_empty() {
            return Ok(operation);
        }
        errors.extend(wrong.into_iter().map(|e| format!("{}: {e}", operation.id)));
    }
    if errors.is_empty() {
        errors.push("no GitHub operation has this method and path".to_owned());
    }
    Err(errors)
}

/// What a request's `Authorization` carries.
enum Credential {
    None,
    AppJwt(Result<AppJwtClaims, String>),
    InstallationToken,
    Other,
}

fn credential(request: &Request) -> Credential {
    let Some(value) = request.headers.get("authorization") else {
        return Credential::None;
    };
    let value = value.to_str().unwrap_or_default();
    let secret = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("token "))
        .unwrap_or(value);
    if secret.starts_with("ghs_") {
        Credential::InstallationToken
    } else if secret.split('.').count() == 3 {
        Credential::AppJwt(verify_app_jwt(secret))
    } else {
        Credential::Other
    }
}

/// An app JWT as GitHub takes it: RS256, signed with the app's key (every test app uses the
/// fixture key), `iss` the app id, at most ten minutes between `iat` and `exp`, not expired.
fn verify_app_jwt(jwt: &str) -> Result<AppJwtClaims, String> {
    static KEY: LazyLock<DecodingKey> = LazyLock::new(|| {
        let pem = super::super::fixture("keys/test-app.pub.pem");
        DecodingKey::from_rsa_pem(&pem).expect("the fixture public key")
    });
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_required_spec_claims(&["iss", "iat", "exp"]);
    let claims = jsonwebtoken::decode::<AppJwtClaims>(jwt, &KEY, &validation)
        .map_err(|e| format!("the app JWT does not verify: {e}"))?
        .claims;
    if claims.iss.parse::<u64>().is_err() {
        return Err(format!(
            "the app JWT's `iss` is `{}`, not an app id",
            claims.iss
        ));
    }
    if claims.exp - claims.iat > 600 {
        return Err("the app JWT lives longer than ten minutes".to_owned());
    }
    Ok(claims)
}

type Refusal = (u16, &'static str, String);

/// The app's own endpoints (`/app…`) take only its JWT; an installation's endpoints take only an
/// installation token, except `GET /repos/{owner}/{repo}/installation`, which takes the JWT.
/// The manifest conversion needs no credential.
fn check_credential(request: &Request, method: &str, path: &str) -> Result<(), Refusal> {
    const NOT_A_JWT: &str = "A JSON web token could not be decoded";
    const NOT_FOR_APPS: &str = "Resource not accessible by integration";
    if path.starts_with("/app-manifests/") {
        return Ok(());
    }
    let app_endpoint = path == "/app" || path.starts_with("/app/");
    let jwt_allowed = app_endpoint
        || (method == "GET"
            && path.ends_with("/installation")
            && path.starts_with("/repos/")
            && path.matches('/').count() == 4);
    match credential(request) {
        Credential::AppJwt(Err(error)) => Err((401, NOT_A_JWT, error)),
        Credential::AppJwt(Ok(_)) if jwt_allowed => Ok(()),
        Credential::AppJwt(Ok(_)) => Err((
            403,
            NOT_FOR_APPS,
            "the app JWT called an installation's endpoint".to_owned(),
        )),
        _ if app_endpoint => Err((
            401,
            NOT_A_JWT,
            "an app endpoint called without the app JWT".to_owned(),
        )),
        Credential::InstallationToken => Ok(()),
        Credential::None => Err((401, "Requires authentication", "no credential".to_owned())),
        Credential::Other => Err((
            401,
            "Bad credentials",
            "a credential that is neither an installation token nor the app JWT".to_owned(),
        )),
    }
}

/// Why the body does not fit the operation (empty when it does), or Err when it is not JSON.
fn body_errors(operation: &Operation, body: &[u8]) -> Result<Vec<String>, String> {
    let Some(expected) = &operation.body else {
        return Ok(Vec::new());
    };
    if body.is_empty() {
        return Ok(if expected.required {
            vec!["the operation needs a JSON body and none was sent".to_owned()]
        } else {
            Vec::new()
        });
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let mut errors: Vec<String> = expected
        .schema
        .iter_errors(&value)
        .map(|e| format!("body at `{}`: {e}", e.instance_path()))
        .collect();
    errors.extend(limit_errors(operation.id, &value));
    Ok(errors)
}

/// GitHub's limits the description does not state. (Check run `output.summary` and
/// `output.text`, at most 65,535 characters, are in the schema as `maxLength`.)
fn limit_errors(operation: &str, body: &Value) -> Vec<String> {
    let chars = |field: &Value| field.as_str().map_or(0, |s| s.chars().count());
    let mut errors = Vec::new();
    match operation {
        "repos/create-commit-status" if chars(&body["description"]) > MAX_STATUS_DESCRIPTION => {
            errors.push(format!(
                "status description is {} characters; GitHub takes at most {MAX_STATUS_DESCRIPTION}",
                chars(&body["description"])
            ));
        }
        "issues/create-comment" | "issues/update-comment" | "issues/create" | "issues/update"
            if chars(&body["body"]) > MAX_COMMENT_BODY =>
        {
            errors.push(format!(
                "comment body is {} characters; GitHub takes at most {MAX_COMMENT_BODY}",
                chars(&body["body"])
            ));
        }
        "checks/create" | "checks/update"
            if body["status"] == "completed" && body["conclusion"].is_null() =>
        {
            errors.push("a completed check run needs a conclusion".to_owned());
        }
        _ => {}
    }
    errors
}
