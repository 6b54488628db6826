//! Every payload in `fixtures/webhooks/` (GitHub's own examples, see its README) parses into the
//! matching `Event` variant, and the fields Gantry relies on hold what GitHub sent.

use std::path::{Path, PathBuf};

use gantry::core::{InstallationId, PrNumber};
use gantry::events::{Event, parse};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/webhooks")
}

fn fixture_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures/webhooks exists")
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

/// `pull_request.opened.2.json` → `pull_request`.
fn event_name(path: &Path) -> &str {
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .expect("UTF-8 file name");
    file_name
        .split('.')
        .next()
        .expect("split yields at least one part")
}

fn parse_fixture(file_name: &str) -> Event {
    let path = fixtures_dir().join(file_name);
    let payload = std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    parse(event_name(&path), &payload).unwrap_or_else(|err| panic!("{file_name}: {err}"))
}

#[test]
fn every_fixture_parses_into_its_event() {
    let files = fixture_files();
    assert_eq!(
        files.len(),
        79,
        "fixtures/webhooks should hold the 79 copied examples"
    );
    let mut failures = Vec::new();
    for path in &files {
        let name = event_name(path);
        let payload = std::fs::read(path).expect("readable fixture");
        match parse(name, &payload) {
            Ok(event) if event.name() == name && !matches!(event, Event::Unsupported { .. }) => {}
            Ok(event) => failures.push(format!("{}: parsed as {}", path.display(), event.name())),
            Err(err) => failures.push(format!("{}: {err}", path.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_event_name_has_fixtures() {
    let files = fixture_files();
    for name in [
        "push",
        "pull_request",
        "issue_comment",
        "check_run",
        "check_suite",
        "installation",
        "installation_repositories",
        "ping",
    ] {
        assert!(
            files.iter().any(|path| event_name(path) == name),
            "no fixture for {name}"
        );
    }
}

#[test]
fn push_to_a_branch() {
    let Event::Push(push) = parse_fixture("push.5.json") else {
        panic!("not a push");
    };
    assert_eq!(push.branch(), Some("master"));
    assert_eq!(push.after, "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
    assert!(push.created);
    assert_eq!(push.changed_files(), ["README.md"]);
    assert_eq!(push.repository.full_name, "Codertocat/Hello-World");
    assert_eq!(push.repository.default_branch, "master");
    assert_eq!(push.installation.map(|i| i.id), Some(InstallationId(1)));
    assert_eq!(
        push.head_commit.map(|c| c.id).as_deref(),
        Some(push.after.as_str())
    );
}

#[test]
fn push_deleting_a_tag() {
    let Event::Push(push) = parse_fixture("push.2.json") else {
        panic!("not a push");
    };
    assert_eq!(push.branch(), None);
    assert_eq!(push.tag(), Some("simple-tag"));
    assert!(push.deleted);
    assert_eq!(push.after, "0000000000000000000000000000000000000000");
    assert_eq!(push.head_commit, None);
    assert!(push.changed_files().is_empty());
}

#[test]
fn pull_request_opened() {
    let Event::PullRequest(event) = parse_fixture("pull_request.opened.json") else {
        panic!("not a pull_request");
    };
    assert_eq!(event.action, "opened");
    assert_eq!(event.number, PrNumber(2));
    let pr = &event.pull_request;
    assert_eq!(pr.number, PrNumber(2));
    assert_eq!(pr.head.git_ref, "changes");
    assert_eq!(pr.head.sha, "ec26c3e57ca3a959ca5aad62de7213c562f8c821");
    assert_eq!(pr.base.git_ref, "master");
    assert_eq!(pr.base.sha, "f95f852bd8fca8fcc58a9a2d6c842781e32a215e");
    assert_eq!(pr.base.repo.full_name, "Codertocat/Hello-World");
    assert_eq!(pr.user.login, "Codertocat");
    assert!(!pr.draft);
    assert!(!pr.is_from_fork());
}

#[test]
fn pull_request_converted_to_draft_is_a_draft() {
    let Event::PullRequest(event) = parse_fixture("pull_request.converted_to_draft.json") else {
        panic!("not a pull_request");
    };
    assert_eq!(event.action, "converted_to_draft");
    assert!(event.pull_request.draft);
}

#[test]
fn closed_pull_request_that_was_not_merged() {
    let Event::PullRequest(event) = parse_fixture("pull_request.closed.json") else {
        panic!("not a pull_request");
    };
    assert_eq!(event.action, "closed");
    assert_eq!(event.pull_request.state, "closed");
    assert_eq!(event.pull_request.merged, Some(false));
}

#[test]
fn issue_comment_created() {
    let Event::IssueComment(event) = parse_fixture("issue_comment.created.json") else {
        panic!("not an issue_comment");
    };
    assert_eq!(event.action, "created");
    assert_eq!(
        event.comment.body,
        "You are totally right! I'll get this fixed right away."
    );
    assert_eq!(event.comment.user.login, "Codertocat");
    assert_eq!(event.comment.user.r#type, "User");
    assert_eq!(event.comment.author_association.as_deref(), Some("OWNER"));
    assert_eq!(event.issue.number, PrNumber(1));
    // GitHub's examples are all comments on a plain issue, none on a pull request.
    assert!(!event.is_on_pull_request());
}

#[test]
fn installation_created() {
    let event = parse_fixture("installation.created.json");
    assert_eq!(event.installation_id(), Some(InstallationId(957387)));
    let Event::Installation(event) = event else {
        panic!("not an installation");
    };
    assert_eq!(event.action, "created");
    assert_eq!(event.installation.id, InstallationId(957387));
    assert_eq!(event.installation.account.login, "Codertocat");
    assert_eq!(event.installation.account.r#type, "User");
    assert_eq!(event.installation.app_id, Some(29310));
    let repositories = event.repositories.expect("created lists its repositories");
    assert_eq!(repositories[0].full_name, "Codertocat/Hello-World");
}

#[test]
fn installation_repositories_added() {
    let Event::InstallationRepositories(event) =
        parse_fixture("installation_repositories.added.json")
    else {
        panic!("not an installation_repositories");
    };
    assert_eq!(event.installation.id, InstallationId(957387));
    assert_eq!(event.repositories_added.len(), 1);
    assert!(event.repositories_removed.is_empty());
}

#[test]
fn check_run_requested_action_carries_the_button_identifier() {
    let Event::CheckRun(event) = parse_fixture("check_run.requested_action.json") else {
        panic!("not a check_run");
    };
    assert_eq!(
        event.requested_action.map(|a| a.identifier).as_deref(),
        Some("lgtm|26764")
    );
    assert_eq!(
        event.installation.map(|i| i.id),
        Some(InstallationId(690857))
    );
}

#[test]
fn check_suite_lists_its_pull_requests() {
    let Event::CheckSuite(event) = parse_fixture("check_suite.completed.json") else {
        panic!("not a check_suite");
    };
    let pr = &event.check_suite.pull_requests[0];
    assert_eq!(pr.number, PrNumber(2));
    assert_eq!(pr.head.git_ref, "changes");
    assert_eq!(pr.head.sha, event.check_suite.head_sha);
}

#[test]
fn merge_group_checks_requested() {
    let Event::MergeGroup(e) = parse_fixture("merge_group.checks_requested.json") else {
        panic!("not a merge_group event");
    };
    assert_eq!(e.action, "checks_requested");
    assert_eq!(e.installation.map(|i| i.id), Some(InstallationId(1)));
    let group = &e.merge_group;
    assert_eq!(
        group.head_sha.as_str(),
        "2ffea6db159f6b6c47a24e778fb9ef40cf6b1c7d"
    );
    assert_eq!(
        group.base_sha.as_str(),
        "380387fbc80638b734a49e1be1c4dfec1c01b33c"
    );
    assert_eq!(group.base_branch(), "main");
    assert!(
        group
            .head_ref
            .starts_with("refs/heads/gh-readonly-queue/main/pr-104-")
    );
}
