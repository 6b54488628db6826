//! A run sees only what is its own. Terraform configurations are code written by whoever can
//! push a branch; here they try, with the real Terraform, to read Gantry's database, the App's
//! private key, Gantry's configuration, environment and processes, and another run's saved
//! plan and sensitive variables, by relative and absolute paths and through `/proc`; a hostile
//! program in Terraform's place tries the same, in plan and in apply, and to write outside its
//! run (the tool cache,
//! its own binary, the run's parent directories). Every attempt fails, nothing of Gantry's
//! reaches the run's log, the API or GitHub, and with `runner.isolation = "none"`, set on
//! purpose, the same configuration does read Gantry's files (so these tests can fail).

mod common;

use std::path::Path;

use common::runs::{Harness, REPO, real_terraform, sha, tool_cache_with};
use common::{fixture_path, push_payload};

const WORKSPACES: &str = r#"
[[workspaces]]
name = "prod"
repo = "octo-org/infra"
working_directory = "prod"
terraform_version = "1.0.3"
[workspaces.vars]
name = "prod"
secret = { value = "prod-secret-do-not-leak", sensitive = true }

[[workspaces]]
name = "staging"
repo = "octo-org/infra"
working_directory = "staging"
terraform_version = "1.0.3"
[workspaces.vars]
name = "staging"
"#;

/// What must never show up anywhere a run's author can read.
fn forbidden() -> Vec<String> {
    let key = std::fs::read_to_string(fixture_path("keys/test-app.pem")).unwrap();
    let key_line = key.lines().nth(1).unwrap().to_string();
    vec![
        common::SECRET.to_string(),
        "prod-secret-do-not-leak".to_string(),
        key_line,
        // "SQLite format 3", the start of an SQLite file, as filebase64 shows it.
        "U1FMaXRlIGZvcm1hdCAz".to_string(),
        // Gantry's configuration file, as filebase64 shows "[[workspaces]]".
        "W1t3b3Jrc3BhY2VzXV0".to_string(),
    ]
}

/// A repository whose `prod` directory is benign and whose `staging` directory is `attack`.
fn repository(commit: &str, attack: &str) -> Vec<u8> {
    let benign = std::fs::read(fixture_path("terraform/outputs/main.tf")).unwrap();
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let root = format!("octo-org-infra-{}", &commit[..7]);
    for (path, body) in [
        (format!("{root}/prod/main.tf"), benign.as_slice()),
        (format!("{root}/staging/main.tf"), attack.as_bytes()),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, path, body).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// Pushes `commit` touching `dir`; returns the run it made in that workspace.
async fn push(h: &Harness, commit: &str, workspace: &str) -> i64 {
    let delivery = format!("push-{commit}");
    let body = push_payload(
        REPO,
        "main",
        commit,
        &[&format!("{workspace}/main.tf")],
        |_| {},
    );
    assert_eq!(h.gantry.send("push", &delivery, &body).await.status(), 202);
    h.gantry.wait_for_outcome(&delivery).await;
    let runs = h
        .api_get(&format!("/api/v1/workspaces/{workspace}/runs"))
        .await;
    runs.as_array()
        .unwrap()
        .iter()
        .find(|r| r["commit_sha"] == commit)
        .expect("the push made a run")["id"]
        .as_i64()
        .unwrap()
}

/// The attacks, as outputs: each reads a path and shows "blocked" where it cannot.
fn attack_outputs(targets: &[(&str, String)]) -> String {
    let mut tf = String::from("variable \"name\" { type = string }\n");
    for (name, path) in targets {
        tf.push_str(&format!(
            "output \"{name}\" {{ value = try(filebase64(\"{path}\"), \"blocked\") }}\n"
        ));
    }
    tf
}

/// Every way this test knows to reach Gantry's files and another run's, from the `staging`
/// working directory of a run.
fn targets(h: &Harness, victim: i64) -> Vec<(&'static str, String)> {
    let data = h.gantry.data_dir.path().display().to_string();
    let pid = std::process::id();
    let victim_dir = format!("{data}/runs/{victim}/work");
    let mut targets = vec![
        ("database", format!("{data}/gantry.db")),
        ("config_file", format!("{data}/gantry.toml")),
        (
            "app_key",
            fixture_path("keys/test-app.pem").display().to_string(),
        ),
        ("gantry_environ", format!("/proc/{pid}/environ")),
        ("gantry_cmdline", format!("/proc/{pid}/cmdline")),
        (
            "database_via_proc_root",
            format!("/proc/{pid}/root{data}/gantry.db"),
        ),
        (
            "database_via_proc_cwd",
            format!("/proc/{pid}/cwd/Cargo.toml"),
        ),
        ("victim_plan", format!("{victim_dir}/plan.tfplan")),
        (
            "victim_variables",
            format!("{victim_dir}/config/prod/zz_gantry.auto.tfvars.json"),
        ),
        (
            "victim_plan_relative",
            format!("${{path.cwd}}/../../../../{victim}/work/plan.tfplan"),
        ),
    ];
    // ../gantry.db from every depth: the working directory is five levels below the data dir.
    const DEPTHS: [&str; 7] = ["up1", "up2", "up3", "up4", "up5", "up6", "up7"];
    for (depth, name) in DEPTHS.iter().enumerate() {
        targets.push((
            name,
            format!("${{path.cwd}}/{}gantry.db", "../".repeat(depth + 1)),
        ));
    }
    targets
}

/// Whether the plan's log shows output `name` with `value` (Terraform aligns the `=`).
fn shows(log: &str, name: &str, value: &str) -> bool {
    log.lines().any(|line| {
        let line = line.trim();
        line.strip_prefix("+ ")
            .and_then(|rest| rest.strip_prefix(name))
            .and_then(|rest| rest.trim_start().strip_prefix('='))
            .is_some_and(|rest| rest.trim() == value)
    })
}

/// Everything a run's author can read about `run`: its logs, its API record, and every
/// request Gantry sent GitHub.
async fn readable(h: &Harness, run: i64) -> String {
    let mut text = h.log(run, "plan").await;
    text.push_str(&h.log(run, "apply").await);
    text.push_str(&h.run(run).await.to_string());
    for request in h
        .gantry
        .github
        .received_requests()
        .await
        .unwrap_or_default()
    {
        text.push_str(&String::from_utf8_lossy(&request.body));
    }
    text
}

/// A prod run waits for confirmation (its plan and variables on disk), then a push to staging
/// runs the attack; returns (victim, attacker) once the attack's plan ended.
async fn victim_and_attack(h: &Harness) -> (i64, i64) {
    h.serve_tarball_bytes(&sha(1), repository(&sha(1), "variable \"name\" {}"))
        .await;
    let victim = push(h, &sha(1), "prod").await;
    h.wait_for(victim, "planned").await;
    let attack = attack_outputs(&targets(h, victim));
    h.serve_tarball_bytes(&sha(2), repository(&sha(2), &attack))
        .await;
    let attacker = push(h, &sha(2), "staging").await;
    (victim, attacker)
}

#[tokio::test]
async fn a_configuration_reads_nothing_of_gantrys_or_of_another_run() {
    let h = Harness::start(WORKSPACES, None).await;
    let (victim, attacker) = victim_and_attack(&h).await;
    let planned = h.wait_for(attacker, "planned").await;
    assert!(planned["error"].is_null(), "{planned}");
    let log = gantry::core::status::plain_text(&h.log(attacker, "plan").await);
    for (name, path) in targets(&h, victim) {
        assert!(
            shows(&log, name, "\"blocked\""),
            "{name} ({path}) was readable from the run:\n{log}"
        );
    }
    let seen = readable(&h, attacker).await;
    for secret in forbidden() {
        assert!(!seen.contains(&secret), "{secret:?} leaked");
    }
    // The victim's run is untouched: it still applies.
    h.action(victim, "confirm").await;
    h.wait_for(victim, "applied").await;
}

#[tokio::test]
async fn without_the_sandbox_the_same_configuration_reads_gantrys_files() {
    let tools = tempfile::tempdir().unwrap().keep();
    let cache = tool_cache_with(&tools, None);
    let h = Harness::start_with(WORKSPACES, move |env| {
        env.insert(
            "GANTRY_TERRAFORM_TOOL_CACHE".into(),
            cache.display().to_string(),
        );
        env.insert("GANTRY_RUNNER_ISOLATION".into(), "none".into());
    })
    .await;
    let (_victim, attacker) = victim_and_attack(&h).await;
    h.wait_for(attacker, "planned").await;
    let log = gantry::core::status::plain_text(&h.log(attacker, "plan").await);
    // The configuration file is always on disk (the database may be PostgreSQL's).
    assert!(
        !shows(&log, "config_file", "\"blocked\""),
        "isolation = \"none\" runs Terraform as Gantry's user: {log}"
    );
    assert!(!shows(&log, "victim_plan", "\"blocked\""), "{log}");
    assert!(log.contains("WARNING: this run is not sandboxed"), "{log}");
}

/// A program in Terraform's place (as a provider plugin or an `external` data source would
/// be) that tries to read, see and write what is not its run's, says what it could, and then
/// runs the real Terraform.
fn hostile_terraform(data_dir: &Path, cache: &Path) -> String {
    let script = r#"#!/bin/sh
if [ "$1" = init ] || [ "$1" = apply ]; then
  own=$(basename "$(dirname "$(dirname "$(dirname "$PWD")")")")
  attempt() { name=$1; shift; if "$@" >/dev/null 2>&1; then echo "ATTEMPT $name: worked"; else echo "ATTEMPT $name: blocked"; fi; }
  other_runs() { ls 'DATA/runs/' | grep -v -x "$own" | grep -q .; }
  inherited_env() { env | grep -q -e CARGO_ -e GANTRY_; }
  capabilities() { grep -q 'CapEff:.*[1-9a-f]' /proc/self/status; }
  attempt read-database cat 'DATA/gantry.db'
  attempt config-file test -e 'DATA/gantry.toml'
  attempt other-runs other_runs
  attempt read-app-key cat 'KEY'
  attempt signal-gantry kill -0 PID
  attempt gantry-in-proc test -d /proc/PID
  attempt gantry-environ cat /proc/PID/environ
  attempt inherited-environment inherited_env
  attempt write-own-binary touch "$0"
  attempt capabilities capabilities
  touch 'CACHE/pwned' ../../../../pwned ../../../../../pwned 2>/dev/null
fi
exec 'REAL' "$@"
"#;
    script
        .replace("DATA", &data_dir.display().to_string())
        .replace(
            "KEY",
            &fixture_path("keys/test-app.pem").display().to_string(),
        )
        .replace("PID", &std::process::id().to_string())
        .replace("CACHE", &cache.join("1.0.3").display().to_string())
        .replace("REAL", &real_terraform().display().to_string())
}

#[tokio::test]
async fn a_program_in_terraforms_place_sees_and_writes_only_its_run() {
    let tools = tempfile::tempdir().unwrap().keep();
    let data_dir = tempfile::tempdir().unwrap();
    let cache_dir = tools.join("tool-cache");
    let cache = tool_cache_with(
        &tools,
        Some(&hostile_terraform(data_dir.path(), &cache_dir)),
    );
    let data = data_dir.path().to_path_buf();
    let h = Harness::start_with(WORKSPACES, move |env| {
        env.insert(
            "GANTRY_TERRAFORM_TOOL_CACHE".into(),
            cache.display().to_string(),
        );
        env.insert("GANTRY_DATA_DIR".into(), data.display().to_string());
    })
    .await;
    let (_victim, attacker) = victim_and_attack(&h).await;
    h.wait_for(attacker, "planned").await;
    // It tries from the plan (in `init`) and again from the apply.
    h.action(attacker, "confirm").await;
    h.wait_for(attacker, "applied").await;
    for phase in ["plan", "apply"] {
        let log = h.log(attacker, phase).await;
        let attempts: Vec<&str> = log.lines().filter(|l| l.starts_with("ATTEMPT")).collect();
        assert_eq!(attempts.len(), 10, "{phase}: {log}");
        for attempt in attempts {
            assert!(attempt.ends_with("blocked"), "{phase}: {attempt}\n{log}");
        }
    }
    // Writes outside the work dir land in the sandbox's own scratch space, never on disk.
    let runs = data_dir.path().join("runs");
    for written in [
        cache_dir.join("1.0.3/pwned"),
        runs.join("pwned"),
        data_dir.path().join("pwned"),
        runs.join(attacker.to_string()).join("pwned"),
    ] {
        assert!(!written.exists(), "{} was written", written.display());
    }
    let seen = readable(&h, attacker).await;
    for secret in forbidden() {
        assert!(!seen.contains(&secret), "{secret:?} leaked");
    }
    drop(data_dir);
}

/// A symlink in the repository that points outside it is refused before Terraform runs.
#[tokio::test]
async fn a_symlink_out_of_the_repository_is_refused() {
    let h = Harness::start(WORKSPACES, None).await;
    let commit = sha(3);
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_size(0);
    header.set_mode(0o777);
    let target = h.gantry.data_dir.path().join("gantry.db");
    builder
        .append_link(
            &mut header,
            format!("octo-org-infra-{}/staging/db.tf", &commit[..7]),
            &target,
        )
        .unwrap();
    let bytes = builder.into_inner().unwrap().finish().unwrap();
    h.serve_tarball_bytes(&commit, bytes).await;
    let run = push(&h, &commit, "staging").await;
    let errored = h.wait_for(run, "errored").await;
    assert!(
        errored["error"]
            .as_str()
            .unwrap_or_default()
            .contains("rejected"),
        "{errored}"
    );
}

/// A program in Terraform's place that says whether it reached a TCP port on this machine.
fn network_probe(port: u16) -> String {
    format!(
        "#!/bin/sh\n\
         if [ \"$1\" = init ]; then\n\
           if bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}' 2>/dev/null; then \
             echo 'NETWORK: reached'; else echo 'NETWORK: unreachable'; fi\n\
         fi\n\
         exec '{real}' \"$@\"\n",
        real = real_terraform().display()
    )
}

#[tokio::test]
async fn a_workspace_without_network_reaches_nothing() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let tools = tempfile::tempdir().unwrap().keep();
    let cache = tool_cache_with(&tools, Some(&network_probe(port)));
    let config = WORKSPACES.replace(
        "working_directory = \"staging\"\n",
        "working_directory = \"staging\"\nnetwork = false\n",
    );
    let h = Harness::start_with(&config, move |env| {
        env.insert(
            "GANTRY_TERRAFORM_TOOL_CACHE".into(),
            cache.display().to_string(),
        );
    })
    .await;
    let benign = "variable \"name\" {}";
    h.serve_tarball_bytes(&sha(1), repository(&sha(1), benign))
        .await;
    h.serve_tarball_bytes(&sha(2), repository(&sha(2), benign))
        .await;
    // The network is on by default (providers talk to clouds) ...
    let prod = push(&h, &sha(1), "prod").await;
    h.wait_for(prod, "planned").await;
    assert!(h.log(prod, "plan").await.contains("NETWORK: reached"));
    // ... and off where the workspace says so.
    let staging = push(&h, &sha(2), "staging").await;
    // (Its configuration has nothing to change.)
    h.wait_for(staging, "planned_and_finished").await;
    let log = h.log(staging, "plan").await;
    assert!(log.contains("NETWORK: unreachable"), "{log}");
    let workspace = h.api_get("/api/v1/workspaces/staging").await;
    assert_eq!(workspace["network"], false, "{workspace}");
    drop(listener);
}
