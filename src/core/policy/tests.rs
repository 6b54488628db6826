use super::*;

fn outcome(enforcement: Enforcement, result: PolicyResult) -> PolicyOutcome {
    PolicyOutcome {
        policy_set: "guards".into(),
        policy: "p".into(),
        enforcement,
        result,
    }
}

#[test]
fn policies_hcl_lists_policies_with_advisory_by_default() {
    let text = r#"
policy "public_ingress" {
  query = "data.terraform.policies.public_ingress.deny"
  enforcement_level = "mandatory"
}
policy "tags" {
  query = "data.terraform.policies.tags.deny"
}
"#;
    let policies = parse_policies_hcl(text).unwrap();
    assert_eq!(policies.len(), 2);
    assert_eq!(policies[0].name, "public_ingress");
    assert_eq!(policies[0].enforcement, Enforcement::Mandatory);
    assert_eq!(policies[1].enforcement, Enforcement::Advisory);
    assert_eq!(policies[1].query, "data.terraform.policies.tags.deny");
}

#[test]
fn a_bad_policies_hcl_says_what_is_wrong() {
    for (text, says) in [
        ("policy \"a\" {}", "query is missing"),
        (
            "policy \"a\" {\n query = \"q\"\n enforcement_level = \"hard\"\n}",
            "advisory or mandatory",
        ),
        (
            "policy \"a\" { query = \"q\" }\npolicy \"a\" { query = \"r\" }",
            "twice",
        ),
        ("", "no policy"),
        (
            "policy \"a\" {\n query = \"q\"\n enforcment_level = \"mandatory\"\n}",
            "unknown attribute enforcment_level",
        ),
        ("module \"a\" {\n}", "unknown block module"),
        ("policy {", "policies.hcl"),
    ] {
        let error = parse_policies_hcl(text).unwrap_err();
        assert!(error.contains(says), "{text}: {error}");
    }
}

#[test]
fn a_set_applies_to_the_workspaces_it_names_or_matches() {
    let patterns = vec!["prod".to_string(), "staging-*".to_string()];
    assert!(applies_to(&patterns, "prod"));
    assert!(applies_to(&patterns, "staging-eu"));
    assert!(!applies_to(&patterns, "production"));
    assert!(applies_to(&[], "anything"));
}

#[test]
fn an_answer_must_be_an_array_of_violations() {
    assert_eq!(
        PolicyResult::from_answer(&serde_json::json!([])),
        PolicyResult::Passed
    );
    assert_eq!(
        PolicyResult::from_answer(&serde_json::json!(["no public ingress", {"a": 1}])),
        PolicyResult::Failed(vec!["no public ingress".into(), "{\"a\":1}".into()])
    );
    for not_an_array in [
        serde_json::json!(true),
        serde_json::json!(null),
        serde_json::json!("x"),
    ] {
        assert!(matches!(
            PolicyResult::from_answer(&not_an_array),
            PolicyResult::Errored(_)
        ));
    }
}

#[test]
fn mandatory_failures_and_errors_block_advisory_failures_warn() {
    let failed = || PolicyResult::Failed(vec!["x".into()]);
    assert_eq!(verdict(&[]), Verdict::Passed);
    assert_eq!(
        verdict(&[outcome(Enforcement::Advisory, failed())]),
        Verdict::AdvisoryFailed
    );
    assert_eq!(
        verdict(&[
            outcome(Enforcement::Advisory, failed()),
            outcome(Enforcement::Mandatory, failed())
        ]),
        Verdict::Blocked
    );
    assert_eq!(
        verdict(&[outcome(
            Enforcement::Advisory,
            PolicyResult::Errored("bad".into())
        )]),
        Verdict::Blocked,
        "an errored policy never passes, even an advisory one"
    );
}

#[test]
fn after_the_check_a_run_goes_on_waits_or_as_a_speculative_plan_is_done() {
    let kind = |speculative, auto_apply| RunKind {
        speculative,
        auto_apply,
    };
    assert_eq!(
        after_policy_check(kind(false, false), Verdict::AdvisoryFailed),
        &[RunState::PolicyChecked, RunState::Planned]
    );
    assert_eq!(
        after_policy_check(kind(false, true), Verdict::Passed),
        &[
            RunState::PolicyChecked,
            RunState::Planned,
            RunState::Confirmed
        ]
    );
    assert_eq!(
        after_policy_check(kind(false, true), Verdict::Blocked),
        &[RunState::PolicyOverride]
    );
    assert_eq!(
        after_policy_check(kind(true, false), Verdict::Blocked),
        &[RunState::PlannedAndFinished]
    );
    for verdict in [Verdict::Passed, Verdict::AdvisoryFailed, Verdict::Blocked] {
        for kind in [kind(false, false), kind(false, true), kind(true, false)] {
            let mut state = RunState::PolicyChecking;
            for next in after_policy_check(kind, verdict) {
                assert!(state.can_become(*next), "{state} -> {next}");
                state = *next;
            }
        }
    }
}

#[test]
fn the_input_document_is_terraform_clouds() {
    let tags = vec!["team-a".to_string()];
    let run = RunInput {
        id: "run-7".into(),
        created_at: "2026-12-06T22:00:00Z".into(),
        message: "Queued by a push",
        commit_sha: "c0ffee",
        speculative: false,
        variables: vec![("terraform", "region", false), ("env", "TOKEN", true)],
        organization: "gantry",
        workspace: WorkspaceInput {
            name: "prod",
            working_directory: "envs/prod",
            auto_apply: false,
            execution_mode: "remote",
            tags: &tags,
            vcs_repo: Some(("octo-org/infra", "main")),
        },
    };
    let plan = serde_json::json!({"format_version": "1.2", "resource_changes": []});
    insta::assert_snapshot!(serde_json::to_string_pretty(&input_document(plan, &run)).unwrap());
}

#[test]
fn github_shows_a_blocked_check_as_needing_action_and_an_override_with_who_and_why() {
    let failed = outcome(
        Enforcement::Mandatory,
        PolicyResult::Failed(vec!["web is public".into()]),
    );
    let blocked = policy_view(std::slice::from_ref(&failed), true, None);
    assert_eq!(
        blocked.check.conclusion,
        Some(crate::core::github_terms::CheckConclusion::ActionRequired)
    );
    assert!(
        blocked.title.contains("needs an admin's override"),
        "{}",
        blocked.title
    );
    assert!(
        blocked.summary.contains("- `web is public`"),
        "{}",
        blocked.summary
    );
    let overridden = policy_view(
        std::slice::from_ref(&failed),
        false,
        Some(("alice", "known exception")),
    );
    assert_eq!(
        overridden.status,
        crate::core::github_terms::CommitState::Success
    );
    assert!(
        overridden
            .title
            .contains("overridden by alice: known exception")
    );
    let ended = policy_view(&[failed], false, None);
    assert_eq!(
        ended.status,
        crate::core::github_terms::CommitState::Failure
    );
    assert_eq!(
        ended.check.conclusion,
        Some(crate::core::github_terms::CheckConclusion::Failure),
        "a speculative plan's blocked check, or a discarded run's, waits for nobody"
    );
    let passed = policy_view(
        &[outcome(Enforcement::Advisory, PolicyResult::Passed)],
        false,
        None,
    );
    assert_eq!(passed.title, "All 1 policies passed");
}

#[test]
fn only_an_override_after_the_latest_check_counts() {
    let overridden = "policy check overridden: known exception";
    let events = [
        ("policy_checking", Some("runner"), None),
        ("policy_override", Some("runner"), None),
        ("planned", Some("person:alice"), Some(overridden)),
    ];
    assert_eq!(
        latest_override(events.iter().copied()),
        Some(("alice", "known exception"))
    );
    let planned_again = [
        ("planned", Some("person:alice"), Some(overridden)),
        ("pending", Some("recovery"), None),
        ("policy_checking", Some("runner"), None),
        ("policy_override", Some("runner"), None),
    ];
    assert_eq!(latest_override(planned_again.iter().copied()), None);
}

#[test]
fn the_author_may_not_override_a_guarded_set_that_blocks() {
    let outcome = |set: &str, enforcement, result| PolicyOutcome {
        policy_set: set.into(),
        policy: "p".into(),
        enforcement,
        result,
    };
    let failed = || PolicyResult::Failed(vec!["no".into()]);
    let outcomes = [
        outcome("guards", Enforcement::Mandatory, failed()),
        outcome("style", Enforcement::Advisory, failed()),
    ];
    let refusal = self_override_refusal(&outcomes, &["guards"], &["Alice"], "alice");
    assert!(refusal.unwrap().contains("`guards`"));
    // Someone else, an unguarded set, or a guarded set that only advises: allowed.
    assert_eq!(
        self_override_refusal(&outcomes, &["guards"], &["alice"], "bob"),
        None
    );
    assert_eq!(
        self_override_refusal(&outcomes, &["other"], &["alice"], "alice"),
        None
    );
    assert_eq!(
        self_override_refusal(&outcomes, &["style"], &["alice"], "alice"),
        None
    );
    // An unknown author never matches.
    assert_eq!(
        self_override_refusal(&outcomes, &["guards"], &[""], ""),
        None
    );
}

#[test]
fn violations_quoting_the_plan_cannot_become_markdown_or_mentions() {
    let outcomes = [PolicyOutcome {
        policy_set: "guards".into(),
        policy: "p".into(),
        enforcement: Enforcement::Mandatory,
        result: PolicyResult::Failed(vec![
            "[click](https://evil.example) <img src=x> @security-team `x`\n# heading".into(),
        ]),
    }];
    let view = policy_view(&outcomes, false, None);
    assert!(
        view.summary.contains(
            "- `[click](https://evil.example) <img src=x> @security-team ʼxʼ # heading`\n"
        ),
        "{}",
        view.summary
    );
}

#[test]
fn values_the_plan_marks_sensitive_are_found_for_masking() {
    let plan = serde_json::json!({
        "resource_changes": [{
            "address": "terraform_data.db",
            "change": {
                "before": null,
                "after": { "input": { "password": "hunter2-secret", "user": "admin" },
                           "tags": ["public-tag", "secret-tag"] },
                "before_sensitive": false,
                "after_sensitive": { "input": { "password": true }, "tags": [false, true] }
            }
        }],
        "output_changes": {
            "token": { "before": null, "after": "tok-123456", "after_sensitive": true },
            "name": { "before": null, "after": "visible", "after_sensitive": false }
        },
        "variables": { "api_key": { "value": "key-abcdef" }, "region": { "value": "eu-west" } },
        "resource_drift": [{ "change": { "before": "drift-old", "after": "drift-new",
                                         "before_sensitive": true, "after_sensitive": false } }],
        "prior_state": { "values": {
            "outputs": { "dsn": { "sensitive": true, "value": "prior-dsn" } },
            "root_module": { "child_modules": [{ "resources": [{
                "values": { "password": "from-a-data-source", "name": "db" },
                "sensitive_values": { "password": true }
            }] }] }
        } },
        "configuration": { "root_module": { "variables": {
            "api_key": { "sensitive": true }, "region": {}
        } } }
    });
    assert_eq!(
        sensitive_plan_values(&plan),
        [
            "drift-old",
            "from-a-data-source",
            "hunter2-secret",
            "key-abcdef",
            "prior-dsn",
            "secret-tag",
            "tok-123456"
        ]
    );
}
