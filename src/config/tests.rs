//! Configuration loading: defaults, environment overrides, and one clear error per bad key.

use super::*;
use secrecy::ExposeSecret;

use crate::core::workspace::VariableCategory;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load_str(toml: &str, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gantry.toml");
    std::fs::write(&path, toml).unwrap();
    Config::load(Some(&path), &env(pairs))
}

const KEY: &str = include_str!("../../fixtures/keys/test-app.pem");

#[test]
fn defaults_listen_on_loopback_8080_with_sqlite_in_the_data_dir() {
    let config = Config::load(None, &env(&[])).unwrap();
    assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.public_url.as_str(), "http://127.0.0.1:8080/");
    assert_eq!(
        config.database_url.expose_secret(),
        "sqlite://data/gantry.db"
    );
    assert!(config.github.app.is_none());
    assert!(config.dispatcher.enabled);
    assert_eq!(config.ingest.max_body_bytes, 25 * 1024 * 1024);
}

#[test]
fn environment_overrides_the_file() {
    let config = load_str(
        "listen = \"127.0.0.1:9000\"\n[github]\napi_url = \"http://a.example\"\n",
        &[
            ("GANTRY_LISTEN", "127.0.0.1:9999"),
            ("GANTRY_GITHUB_API_URL", "http://127.0.0.1:1234/api/v3"),
            ("GANTRY_DATA_DIR", "/tmp/gantry-x"),
            ("GANTRY_PUBLIC_URL", "https://gantry.example.com"),
        ],
    )
    .unwrap();
    assert_eq!(config.listen.port(), 9999);
    assert_eq!(
        config.github.api_url.as_str(),
        "http://127.0.0.1:1234/api/v3"
    );
    assert_eq!(config.data_dir, PathBuf::from("/tmp/gantry-x"));
    assert_eq!(config.public_url.as_str(), "https://gantry.example.com/");
}

#[test]
fn webhook_secrets_accept_a_comma_separated_list_for_rotation() {
    let config = Config::load(
        None,
        &env(&[
            ("GANTRY_APP_ID", "42"),
            ("GANTRY_APP_PRIVATE_KEY", KEY),
            ("GANTRY_WEBHOOK_SECRET", "new-secret, old-secret"),
        ]),
    )
    .unwrap();
    let secrets: Vec<_> = config
        .github
        .webhook_secrets
        .iter()
        .map(|s| s.expose_secret().to_string())
        .collect();
    assert_eq!(secrets, ["new-secret", "old-secret"]);
    assert_eq!(config.github.app.unwrap().app_id, 42);
}

#[test]
fn webhook_secrets_accept_an_array_in_the_file() {
    let config = load_str("[github]\nwebhook_secret = [\"a\", \"b\"]\n", &[]).unwrap();
    assert_eq!(config.github.webhook_secrets.len(), 2);
}

#[test]
fn a_bad_app_id_names_the_key_and_its_variable() {
    let err = Config::load(
        None,
        &env(&[
            ("GANTRY_APP_ID", "forty-two"),
            ("GANTRY_APP_PRIVATE_KEY", KEY),
            ("GANTRY_WEBHOOK_SECRET", "s"),
        ]),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "configuration error: `github.app_id` (GANTRY_APP_ID): must be a number"
    );
}

#[test]
fn an_app_id_without_a_key_is_an_error() {
    let err = Config::load(None, &env(&[("GANTRY_APP_ID", "1")])).unwrap_err();
    assert_eq!(err.key, "github.private_key");
}

#[test]
fn an_app_without_a_webhook_secret_is_an_error() {
    let err = Config::load(
        None,
        &env(&[("GANTRY_APP_ID", "1"), ("GANTRY_APP_PRIVATE_KEY", KEY)]),
    )
    .unwrap_err();
    assert_eq!(err.key, "github.webhook_secret");
}

#[test]
fn a_private_key_that_is_not_pem_is_refused_without_echoing_it() {
    let err = Config::load(
        None,
        &env(&[
            ("GANTRY_APP_ID", "1"),
            ("GANTRY_APP_PRIVATE_KEY", "hunter2"),
            ("GANTRY_WEBHOOK_SECRET", "s"),
        ]),
    )
    .unwrap_err();
    assert_eq!(err.key, "github.private_key");
    assert!(!err.to_string().contains("hunter2"));
}

#[test]
fn a_pem_that_holds_no_usable_key_is_refused() {
    let err = Config::load(
        None,
        &env(&[
            ("GANTRY_APP_ID", "1"),
            (
                "GANTRY_APP_PRIVATE_KEY",
                "-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----\n",
            ),
            ("GANTRY_WEBHOOK_SECRET", "s"),
        ]),
    )
    .unwrap_err();
    assert_eq!(err.key, "github.private_key");
    assert!(err.message.contains("not a usable RSA private key"));
}

#[test]
fn a_bad_listen_address_names_the_key() {
    let err = Config::load(None, &env(&[("GANTRY_LISTEN", "localhost")])).unwrap_err();
    assert_eq!(err.key, "listen");
    assert!(err.to_string().contains("GANTRY_LISTEN"));
}

#[test]
fn an_unknown_key_in_the_file_is_named() {
    let err = load_str("[github]\napp_idd = 3\n", &[]).unwrap_err();
    assert_eq!(err.key, "app_idd");
    assert!(err.message.contains("unknown field"), "{}", err.message);
}

#[test]
fn a_database_url_of_another_kind_is_refused() {
    let err = Config::load(None, &env(&[("GANTRY_DATABASE_URL", "mysql://x")])).unwrap_err();
    assert_eq!(err.key, "database_url");
}

#[test]
fn credentials_written_by_the_manifest_flow_are_picked_up_from_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let written = store_app_credentials(dir.path(), 7, KEY, "whsec").unwrap();
    let mode = std::fs::metadata(written.join("private-key.pem"))
        .unwrap()
        .permissions();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.mode() & 0o777, 0o600);
    let config = Config::load(
        None,
        &env(&[("GANTRY_DATA_DIR", dir.path().to_str().unwrap())]),
    )
    .unwrap();
    assert_eq!(config.github.app.unwrap().app_id, 7);
    assert_eq!(config.github.webhook_secrets[0].expose_secret(), "whsec");
}

#[test]
fn debug_output_never_shows_secrets() {
    let config = Config::load(
        None,
        &env(&[
            ("GANTRY_APP_ID", "1"),
            ("GANTRY_APP_PRIVATE_KEY", KEY),
            ("GANTRY_WEBHOOK_SECRET", "very-secret-value"),
            ("GANTRY_DATABASE_URL", "postgres://u:pw-secret@localhost/db"),
        ]),
    )
    .unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains("very-secret-value"));
    assert!(!debug.contains("pw-secret"));
    assert!(!debug.contains("BEGIN RSA"));
}

#[test]
fn the_dispatcher_can_be_turned_off_from_the_environment() {
    let off = Config::load(None, &env(&[("GANTRY_DISPATCHER_ENABLED", "false")])).unwrap();
    assert!(!off.dispatcher.enabled);
    let err = Config::load(None, &env(&[("GANTRY_DISPATCHER_ENABLED", "maybe")])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "configuration error: `dispatcher.enabled` (GANTRY_DISPATCHER_ENABLED): must be true or false"
    );
}

#[test]
fn the_app_id_may_be_a_number_or_a_string_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("app.pem");
    std::fs::write(&key, KEY).unwrap();
    for id in ["123456", "\"123456\""] {
        let text = format!(
            "[github]\napp_id = {id}\nprivate_key_path = \"{}\"\nwebhook_secret = \"s\"\n",
            key.display()
        );
        assert_eq!(
            load_str(&text, &[]).unwrap().github.app.unwrap().app_id,
            123456
        );
    }
}

#[test]
fn urls_with_a_query_or_another_scheme_name_their_key() {
    let err = Config::load(
        None,
        &env(&[("GANTRY_GITHUB_API_URL", "https://x.example/api?a=1")]),
    )
    .unwrap_err();
    assert_eq!(err.key, "github.api_url");
    let err = Config::load(None, &env(&[("GANTRY_PUBLIC_URL", "ftp://x.example")])).unwrap_err();
    assert_eq!(err.key, "public_url");
}

#[test]
fn an_unparseable_database_url_is_named_without_echoing_it() {
    let err = Config::load(
        None,
        &env(&[(
            "GANTRY_DATABASE_URL",
            "postgres://user:pw-secret@host:notaport/db",
        )]),
    )
    .unwrap_err();
    assert_eq!(err.key, "database_url");
    assert!(!err.to_string().contains("pw-secret"));
}

#[test]
fn existing_credentials_are_never_replaced_by_the_manifest_flow() {
    let dir = tempfile::tempdir().unwrap();
    store_app_credentials(dir.path(), 7, KEY, "whsec").unwrap();
    let again = store_app_credentials(dir.path(), 8, KEY, "other");
    assert_eq!(again.unwrap_err().kind(), std::io::ErrorKind::AlreadyExists);
    let id = std::fs::read_to_string(dir.path().join("github-app/app-id")).unwrap();
    assert_eq!(id, "7");
}

#[test]
fn an_unreadable_stored_key_is_an_error_not_a_missing_app() {
    let dir = tempfile::tempdir().unwrap();
    let stored = dir.path().join("github-app");
    std::fs::create_dir_all(stored.join("private-key.pem")).unwrap(); // a directory: unreadable as text
    std::fs::write(stored.join("app-id"), "7").unwrap();
    let err = Config::load(
        None,
        &env(&[("GANTRY_DATA_DIR", dir.path().to_str().unwrap())]),
    )
    .unwrap_err();
    assert_eq!(err.key, "github.private_key");
}

const WORKSPACES: &str = r#"
[[workspaces]]
name = "prod"
repo = "octo-org/infra"
branch = "main"
working_directory = "envs/prod/"
trigger_patterns = ["envs/prod/**", "modules/**/*.tf"]
auto_apply = true
terraform_version = "1.0.3"
[workspaces.vars]
region = "eu-west-1"
db_password = { value = "s3cret", sensitive = true }
[workspaces.env]
TF_LOG = "info"

[[workspaces]]
name = "staging"
repo = "octo-org/infra"
"#;

#[test]
fn workspaces_are_read_with_their_defaults() {
    let config = load_str(WORKSPACES, &[]).unwrap();
    let [prod, staging] = &config.workspaces[..] else {
        panic!("two workspaces")
    };
    assert_eq!(prod.name.as_str(), "prod");
    assert_eq!(prod.working_directory, "envs/prod");
    assert!(prod.auto_apply);
    assert_eq!(prod.terraform_version.as_deref(), Some("1.0.3"));
    let password = &prod.variables[&(VariableCategory::Terraform, "db_password".to_string())];
    assert!(password.sensitive);
    assert_eq!(password.value, "s3cret");
    assert!(!prod.variables[&(VariableCategory::Env, "TF_LOG".to_string())].sensitive);

    assert_eq!(staging.branch, None, "the repository's default branch");
    assert_eq!(staging.working_directory, "");
    assert!(staging.trigger_patterns.is_empty());
    assert!(!staging.auto_apply);
    assert!(staging.speculative_enabled);
    assert_eq!(staging.terraform_version, None);
}

#[test]
fn a_bad_workspace_setting_names_the_workspace_and_key() {
    for (toml, key) in [
        (
            "[[workspaces]]\nname = \"prod eu\"\nrepo = \"o/r\"\n",
            "workspaces[0].name",
        ),
        (
            "[[workspaces]]\nname = \"a\"\nrepo = \"o/r\"\n[[workspaces]]\nname = \"a\"\nrepo = \"o/r\"\n",
            "workspaces[1].name",
        ),
        (
            "[[workspaces]]\nname = \"a\"\nrepo = \"infra\"\n",
            "workspaces[0].repo",
        ),
        (
            "[[workspaces]]\nname = \"a\"\nrepo = \"o/r\"\nbranch = \"a..b\"\n",
            "workspaces[0].branch",
        ),
        (
            "[[workspaces]]\nname = \"a\"\nrepo = \"o/r\"\nworking_directory = \"../x\"\n",
            "workspaces[0].working_directory",
        ),
        (
            "[[workspaces]]\nname = \"a\"\nrepo = \"o/r\"\ntrigger_patterns = [\"[x\"]\n",
            "workspaces[0].trigger_patterns",
        ),
        (
            "[[workspaces]]\nname = \"a\"\nrepo = \"o/r\"\nterraform_version = \"latest\"\n",
            "workspaces[0].terraform_version",
        ),
        (
            "[[workspaces]]\nname = \"a\"\nrepo = \"o/r\"\n[workspaces.env]\n\"BAD-NAME\" = \"x\"\n",
            "workspaces[0].env.BAD-NAME",
        ),
    ] {
        let err = load_str(toml, &[]).unwrap_err();
        assert_eq!(err.key, key, "{toml}: {err}");
    }
}

#[test]
fn sensitive_workspace_variables_do_not_show_in_debug_output() {
    let config = load_str(WORKSPACES, &[]).unwrap();
    assert!(!format!("{config:?}").contains("s3cret"));
}

#[test]
fn the_runner_defaults_to_twice_the_cores_and_the_official_releases() {
    let config = Config::load(None, &env(&[])).unwrap();
    let cores = std::thread::available_parallelism().unwrap().get();
    assert!(config.runner.enabled);
    assert_eq!(config.runner.max_processes, 2 * cores);
    assert_eq!(config.runner.phase_timeout.as_secs(), 3600);
    assert_eq!(
        config.terraform.releases_url.as_str(),
        "https://releases.hashicorp.com/terraform/"
    );
    assert_eq!(
        config.terraform.tool_cache,
        std::path::Path::new("data/tools/terraform")
    );
}

#[test]
fn runner_and_terraform_settings_come_from_the_file_or_the_environment() {
    let config = load_str(
        "[runner]\nmax_processes = 3\nphase_timeout_secs = 60\n\
         [terraform]\nreleases_url = \"http://mirror.local/tf/\"\n",
        &[
            ("GANTRY_RUNNER_ENABLED", "off"),
            ("GANTRY_TERRAFORM_TOOL_CACHE", "/tmp/tools"),
        ],
    )
    .unwrap();
    assert!(!config.runner.enabled);
    assert_eq!(config.runner.max_processes, 3);
    assert_eq!(config.runner.phase_timeout.as_secs(), 60);
    assert_eq!(
        config.terraform.releases_url.as_str(),
        "http://mirror.local/tf/"
    );
    assert_eq!(
        config.terraform.tool_cache,
        std::path::Path::new("/tmp/tools")
    );

    let zero = Config::load(None, &env(&[("GANTRY_RUNNER_MAX_PROCESSES", "0")])).unwrap_err();
    assert_eq!(
        zero.to_string(),
        "configuration error: `runner.max_processes` (GANTRY_RUNNER_MAX_PROCESSES): must be greater than 0"
    );
    let bad = load_str("[terraform]\nreleases_url = \"ftp://x/\"\n", &[]).unwrap_err();
    assert!(bad.to_string().contains("terraform.releases_url"), "{bad}");
}

#[test]
fn github_request_limits_come_from_the_file_or_the_environment() {
    let defaults = Config::load(None, &env(&[])).unwrap();
    assert_eq!(defaults.github.content_requests_per_minute.get(), 80);
    assert_eq!(defaults.github.timeout.as_secs(), 30);
    let config = load_str(
        "[github]\ncontent_requests_per_minute = 40\ntimeout_secs = 5\n",
        &[("GANTRY_GITHUB_TIMEOUT_SECS", "7")],
    )
    .unwrap();
    assert_eq!(config.github.content_requests_per_minute.get(), 40);
    assert_eq!(config.github.timeout.as_secs(), 7, "the environment wins");
    for (pairs, line) in [
        (
            [("GANTRY_GITHUB_CONTENT_REQUESTS_PER_MINUTE", "0")],
            "`github.content_requests_per_minute` (GANTRY_GITHUB_CONTENT_REQUESTS_PER_MINUTE): must be at least 1",
        ),
        (
            [("GANTRY_GITHUB_TIMEOUT_SECS", "soon")],
            "`github.timeout_secs` (GANTRY_GITHUB_TIMEOUT_SECS): must be a whole number",
        ),
        (
            [("GANTRY_GITHUB_TIMEOUT_SECS", "0")],
            "`github.timeout_secs` (GANTRY_GITHUB_TIMEOUT_SECS): must be between 1 and 600",
        ),
    ] {
        let error = Config::load(None, &env(&pairs)).unwrap_err().to_string();
        assert!(error.ends_with(line), "{error}");
    }
}

#[test]
fn tls_takes_a_certificate_and_its_key_and_makes_the_public_url_https() {
    let config = load_str(
        "[tls]\ncert_path = \"/etc/gantry/cert.pem\"\nkey_path = \"/etc/gantry/key.pem\"\n",
        &[],
    )
    .unwrap();
    let tls = config.tls.unwrap();
    assert_eq!(tls.cert_path, PathBuf::from("/etc/gantry/cert.pem"));
    assert_eq!(config.public_url.as_str(), "https://127.0.0.1:8080/");
    let half = load_str("", &[("GANTRY_TLS_CERT_PATH", "/etc/gantry/cert.pem")]).unwrap_err();
    assert_eq!(half.key, "tls.key_path");
    assert!(Config::load(None, &env(&[])).unwrap().tls.is_none());
}

#[test]
fn the_organization_defaults_to_gantry_and_must_be_a_name() {
    assert_eq!(
        Config::load(None, &env(&[])).unwrap().organization,
        "gantry"
    );
    let named = load_str("organization = \"acme\"\n", &[]).unwrap();
    assert_eq!(named.organization, "acme");
    let bad = load_str("", &[("GANTRY_ORGANIZATION", "acme corp")]).unwrap_err();
    assert_eq!(bad.key, "organization");
}

#[test]
fn workspace_tags_are_checked_and_kept_lowercase() {
    let toml =
        "[[workspaces]]\nname = \"prod\"\nrepo = \"octo/infra\"\ntags = [\"Team-A\", \"eu\"]\n";
    let config = load_str(toml, &[]).unwrap();
    assert_eq!(config.workspaces[0].tags, vec!["eu", "team-a"]);
    let bad = load_str(&toml.replace("\"eu\"", "\"e u\""), &[]).unwrap_err();
    assert_eq!(bad.key, "workspaces[0].tags");
}

#[test]
fn policy_sets_are_folders_with_workspace_patterns() {
    let toml = "[[policy_sets]]\nname = \"guards\"\npath = \"/etc/gantry/policies/guards\"\n\
                workspaces = [\"prod\", \"staging-*\"]\n";
    let config = load_str(toml, &[]).unwrap();
    let set = &config.policies.sets[0];
    assert_eq!(
        set.source,
        PolicySource::Directory(PathBuf::from("/etc/gantry/policies/guards"))
    );
    let from_repo = "[[policy_sets]]\nname = \"g\"\nrepo = \"acme/policies\"\nbranch = \"main\"\n\
                     path = \"guards\"\nprevent_self_override = true\n";
    let in_repo = load_str(from_repo, &[]).unwrap();
    assert_eq!(
        in_repo.policies.sets[0].source,
        PolicySource::Repository {
            repo: "acme/policies".into(),
            branch: "main".into(),
            folder: "guards".into()
        }
    );
    assert_eq!(in_repo.policies.guarded_sets(), ["g"]);
    assert!(config.policies.guarded_sets().is_empty());
    assert_eq!(config.policies.sets_for("staging-eu").len(), 1);
    assert!(config.policies.sets_for("dev").is_empty());
    for (bad, key) in [
        (
            "[[policy_sets]]\nname = \"g\"\npath = \"relative\"\n",
            "policy_sets[0].path",
        ),
        ("[[policy_sets]]\nname = \"g\"\n", "policy_sets[0].path"),
        (
            "[[policy_sets]]\nname = \"g\"\nrepo = \"acme/policies\"\n",
            "policy_sets[0].branch",
        ),
        (
            "[[policy_sets]]\nname = \"g\"\nrepo = \"not a repo\"\nbranch = \"main\"\n",
            "policy_sets[0].repo",
        ),
        (
            "[[policy_sets]]\nname = \"g\"\nrepo = \"a/b\"\nbranch = \"main\"\npath = \"../x\"\n",
            "policy_sets[0].path",
        ),
        (
            "[[policy_sets]]\nname = \"g\"\nrepo = \"a/b\"\nbranch = \"ma in\"\n",
            "policy_sets[0].branch",
        ),
        (
            "[[policy_sets]]\nname = \"g\"\npath = \"/p\"\n[[policy_sets]]\nname = \"g\"\npath = \"/q\"\n",
            "policy_sets[1].name",
        ),
    ] {
        assert_eq!(load_str(bad, &[]).unwrap_err().key, key, "{bad}");
    }
}

#[test]
fn run_triggers_name_other_workspaces_of_the_file_without_a_cycle() {
    let ws = |name: &str, extra: &str| {
        format!("[[workspaces]]\nname = \"{name}\"\nrepo = \"o/r\"\n{extra}\n")
    };
    let good = ws("network", "")
        + &ws(
            "app",
            "run_triggers = [\"network\"]\nauto_apply_run_trigger = true",
        );
    let config = load_str(&good, &[]).unwrap();
    let app = &config.workspaces[1];
    assert_eq!(app.run_triggers[0].as_str(), "network");
    assert!(app.auto_apply_run_trigger);
    let cycle =
        ws("network", "run_triggers = [\"app\"]") + &ws("app", "run_triggers = [\"network\"]");
    let error = load_str(&cycle, &[]).unwrap_err();
    assert_eq!(error.key, "workspaces[0].run_triggers");
    assert!(error.to_string().contains("cycle"), "{error}");
    let missing = ws("app", "run_triggers = [\"nowhere\"]");
    assert_eq!(
        load_str(&missing, &[]).unwrap_err().key,
        "workspaces[0].run_triggers"
    );
}

#[test]
fn assessments_are_off_by_default_and_their_interval_is_an_hour_or_more() {
    let ws = |extra: &str| format!("[[workspaces]]\nname = \"app\"\nrepo = \"o/r\"\n{extra}\n");
    let config = load_str(&ws(""), &[]).unwrap();
    assert!(!config.workspaces[0].assessments);
    assert_eq!(
        config.workspaces[0].assessment_interval,
        std::time::Duration::from_secs(24 * 3600)
    );
    assert_eq!(config.runner.max_assessments, 2);
    let on = load_str(&ws("assessments = true\nassessment_interval = \"6h\""), &[]).unwrap();
    assert!(on.workspaces[0].assessments);
    assert_eq!(
        on.workspaces[0].assessment_interval,
        std::time::Duration::from_secs(6 * 3600)
    );
    for bad in ["\"30m\"", "\"often\""] {
        let error = load_str(&ws(&format!("assessment_interval = {bad}")), &[]).unwrap_err();
        assert_eq!(error.key, "workspaces[0].assessment_interval", "{bad}");
    }
}
