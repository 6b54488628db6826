//! The web UI in a real browser: Debian's chromium driven by playwright-core (both installed by
//! scripts/test; nothing is downloaded by the test). It signs in, opens the workspaces page,
//! opens a run waiting for confirmation, clicks "Confirm & apply" and watches the log follow
//! until the run is applied. Screenshots land in target/screenshots/.

mod common;

use std::path::PathBuf;

use common::runs::{Harness, sha, tool_cache_with};

const ROOT: &str = common::runs::ROOT_WORKSPACE;

#[tokio::test]
async fn a_person_confirms_a_plan_in_the_browser_and_watches_it_apply() {
    let browser_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir()
            && PathBuf::from("/usr/bin/chromium").exists(),
        "playwright-core or chromium missing: run scripts/install-browser (scripts/test does)"
    );
    // Plain http here: a browser keeps no Secure cookie for an http page.
    let tools = tempfile::tempdir().unwrap().keep();
    let cache = tool_cache_with(&tools, None);
    let h = Harness::start_with(ROOT, move |env| {
        env.insert(
            "GANTRY_TERRAFORM_TOOL_CACHE".into(),
            cache.display().to_string(),
        );
        env.insert("GANTRY_PUBLIC_URL".into(), "http://127.0.0.1/".into());
    })
    .await;
    h.serve_tarball(&sha(1), "outputs").await;
    let run = h.push(&sha(1)).await;
    h.wait_for(run, "planned").await;

    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    let output = tokio::process::Command::new("node")
        .arg(browser_dir.join("confirm.mjs"))
        .arg(&h.gantry.url)
        .arg(&h.token)
        .arg(run.to_string())
        .arg(&shots)
        .output()
        .await
        .expect("node runs");
    assert!(
        output.status.success(),
        "browser test failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    h.wait_for(run, "applied").await;
    for page in [
        "sign-in",
        "workspaces",
        "workspace",
        "run-planned",
        "run-applied",
    ] {
        assert!(shots.join(format!("{page}.png")).is_file(), "{page}.png");
    }
}
