//! The `gantry` binary's command line: help, configuration errors (one line, exit code 2) and
//! graceful shutdown on SIGTERM.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{SECRET, fixture_path};

fn gantry() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gantry"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    command
}

#[test]
fn help_lists_the_subcommands() {
    let output = gantry().arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(help.contains("serve"), "{help}");
    assert!(help.contains("check-config"), "{help}");
}

#[test]
fn an_invalid_setting_is_one_line_naming_the_key_and_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let output = gantry()
        .args(["serve"])
        .env("GANTRY_DATA_DIR", dir.path())
        .env("GANTRY_APP_ID", "not-a-number")
        .env(
            "GANTRY_APP_PRIVATE_KEY_PATH",
            fixture_path("keys/test-app.pem"),
        )
        .env("GANTRY_WEBHOOK_SECRET", SECRET)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        stderr.trim_end(),
        "gantry: configuration error: `github.app_id` (GANTRY_APP_ID): must be a number"
    );
}

#[test]
fn a_config_file_with_an_unknown_key_is_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gantry.toml");
    std::fs::write(&path, "listen = \"127.0.0.1:0\"\nlisten_port = 3\n").unwrap();
    let output = gantry()
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("`listen_port`"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}

#[test]
fn the_example_configuration_is_valid() {
    let output = gantry()
        .args(["check-config", "--config"])
        .arg(fixture_path("../gantry.example.toml"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn sigterm_stops_the_server_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = gantry()
        .arg("serve")
        .env("GANTRY_DATA_DIR", dir.path())
        .env("GANTRY_LISTEN", "127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read its log as it comes; send SIGTERM once it says it is listening.
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines_tx.send(line);
        }
    });
    let mut log = String::new();
    while !log.contains("gantry listening") {
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("gantry did not start");
        log.push_str(&line);
        log.push('\n');
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exit: {exit:?}");
    log.extend(lines.iter().map(|l| l + "\n"));
    assert!(log.contains("shutting down"), "{log}");
    assert!(log.contains("gantry stopped"), "{log}");
}
