use super::*;

const A: &str = "1111111111111111111111111111111111111111";
const B: &str = "2222222222222222222222222222222222222222";

fn push(git_ref: &str) -> Push<'_> {
    Push {
        git_ref,
        before: A,
        after: B,
        created: false,
        deleted: false,
        forced: false,
        commit_count: 1,
        default_branch: "main",
    }
}

fn triggers(dir: &str) -> Triggers {
    Triggers::new(dir, &[]).unwrap()
}

#[test]
fn a_push_touching_a_workspaces_files_runs_it() {
    let (prod, staging) = (triggers("envs/prod"), triggers("envs/staging"));
    let workspaces = [
        Candidate {
            id: WorkspaceId(1),
            branch: None,
            triggers: &prod,
        },
        Candidate {
            id: WorkspaceId(2),
            branch: None,
            triggers: &staging,
        },
    ];
    let decision = decide(
        &push("refs/heads/main"),
        &workspaces,
        ChangedFiles::Payload(&["envs/prod/main.tf"]),
    );
    assert_eq!(
        decision,
        PushDecision::Run {
            commit: B.into(),
            workspace_ids: vec![WorkspaceId(1)]
        }
    );
}

#[test]
fn one_push_can_run_several_workspaces() {
    let root = triggers("");
    let workspaces = [
        Candidate {
            id: WorkspaceId(1),
            branch: Some("main"),
            triggers: &root,
        },
        Candidate {
            id: WorkspaceId(2),
            branch: None,
            triggers: &root,
        },
    ];
    let decision = decide(
        &push("refs/heads/main"),
        &workspaces,
        ChangedFiles::Payload(&["x.tf"]),
    );
    assert_eq!(
        decision,
        PushDecision::Run {
            commit: B.into(),
            workspace_ids: vec![WorkspaceId(1), WorkspaceId(2)]
        }
    );
}

#[test]
fn pushes_to_other_branches_tags_and_deletions_run_nothing() {
    let root = triggers("");
    let workspaces = [Candidate {
        id: WorkspaceId(1),
        branch: None,
        triggers: &root,
    }];
    let files: &[&str] = &["main.tf"];
    assert_eq!(
        decide(
            &push("refs/heads/feature"),
            &workspaces,
            ChangedFiles::Payload(files)
        ),
        PushDecision::Ignore("no workspace tracks branch feature".into())
    );
    assert_eq!(
        decide(
            &push("refs/tags/v1"),
            &workspaces,
            ChangedFiles::Payload(files)
        ),
        PushDecision::Ignore("refs/tags/v1 is not a branch".into())
    );
    let deleted = Push {
        deleted: true,
        after: ZERO_SHA,
        ..push("refs/heads/main")
    };
    assert_eq!(
        decide(&deleted, &workspaces, ChangedFiles::Payload(files)),
        PushDecision::Ignore("branch main was deleted".into())
    );
}

#[test]
fn files_outside_every_workspace_run_nothing() {
    let prod = triggers("envs/prod");
    let workspaces = [Candidate {
        id: WorkspaceId(1),
        branch: None,
        triggers: &prod,
    }];
    assert_eq!(
        decide(
            &push("refs/heads/main"),
            &workspaces,
            ChangedFiles::Payload(&["README.md"])
        ),
        PushDecision::Ignore(
            "no workspace on branch main is triggered by the changed files".into()
        )
    );
}

#[test]
fn untrusted_file_lists_ask_for_a_comparison() {
    let root = triggers("");
    let workspaces = [Candidate {
        id: WorkspaceId(1),
        branch: None,
        triggers: &root,
    }];
    let forced = Push {
        forced: true,
        ..push("refs/heads/main")
    };
    assert_eq!(
        decide(&forced, &workspaces, ChangedFiles::Payload(&[])),
        PushDecision::NeedCompare(vec![
            Comparison {
                base: A.into(),
                head: B.into()
            },
            Comparison {
                base: B.into(),
                head: A.into()
            },
        ])
    );
    let long = Push {
        commit_count: 21,
        ..push("refs/heads/main")
    };
    assert_eq!(
        decide(&long, &workspaces, ChangedFiles::Payload(&["x.tf"])),
        PushDecision::NeedCompare(vec![Comparison {
            base: A.into(),
            head: B.into()
        }])
    );
    let created = Push {
        created: true,
        before: ZERO_SHA,
        ..push("refs/heads/main")
    };
    assert_eq!(
        decide(&created, &workspaces, ChangedFiles::Payload(&[])),
        PushDecision::NeedCompare(vec![Comparison {
            base: "main".into(),
            head: B.into()
        }])
    );
}

#[test]
fn twenty_commits_are_still_trusted() {
    let at_limit = Push {
        commit_count: 20,
        ..push("refs/heads/main")
    };
    assert!(!untrusted(&at_limit));
}

#[test]
fn a_comparison_is_trusted_even_for_a_forced_push() {
    let root = triggers("");
    let workspaces = [Candidate {
        id: WorkspaceId(1),
        branch: None,
        triggers: &root,
    }];
    let forced = Push {
        forced: true,
        ..push("refs/heads/main")
    };
    assert_eq!(
        decide(&forced, &workspaces, ChangedFiles::Compared(&["main.tf"])),
        PushDecision::Run {
            commit: B.into(),
            workspace_ids: vec![WorkspaceId(1)]
        }
    );
}

#[test]
fn too_many_changed_files_run_every_workspace_on_the_branch() {
    let (prod, other) = (triggers("envs/prod"), triggers(""));
    let workspaces = [
        Candidate {
            id: WorkspaceId(1),
            branch: None,
            triggers: &prod,
        },
        Candidate {
            id: WorkspaceId(2),
            branch: Some("develop"),
            triggers: &other,
        },
    ];
    let forced = Push {
        forced: true,
        ..push("refs/heads/main")
    };
    assert_eq!(
        decide(&forced, &workspaces, ChangedFiles::TooMany),
        PushDecision::Run {
            commit: B.into(),
            workspace_ids: vec![WorkspaceId(1)]
        }
    );
}

#[test]
fn a_push_to_a_merge_queue_branch_runs_nothing_even_where_a_workspace_tracks_it() {
    let root = triggers("");
    let queue_branch = "gh-readonly-queue/main/pr-42-2222222222222222222222222222222222222222";
    let workspaces = [
        Candidate {
            id: WorkspaceId(1),
            branch: None,
            triggers: &root,
        },
        Candidate {
            id: WorkspaceId(2),
            branch: Some(queue_branch),
            triggers: &root,
        },
    ];
    let git_ref = format!("refs/heads/{queue_branch}");
    for changed in [
        ChangedFiles::Payload(&["main.tf"]),
        ChangedFiles::Compared(&["main.tf"]),
        ChangedFiles::TooMany,
    ] {
        assert_eq!(
            decide(&push(&git_ref), &workspaces, changed),
            PushDecision::Ignore(format!(
                "{queue_branch} is a merge queue branch: GitHub tests it before merging, and the \
                 workspaces run when it is merged"
            ))
        );
    }
}

#[test]
fn a_comparison_github_cannot_make_runs_every_workspace_on_the_branch() {
    let (prod, other) = (triggers("envs/prod"), triggers(""));
    let workspaces = [
        Candidate {
            id: WorkspaceId(1),
            branch: None,
            triggers: &prod,
        },
        Candidate {
            id: WorkspaceId(2),
            branch: Some("develop"),
            triggers: &other,
        },
    ];
    let forced = Push {
        forced: true,
        ..push("refs/heads/main")
    };
    assert_eq!(
        decide(&forced, &workspaces, ChangedFiles::Unknown),
        PushDecision::Run {
            commit: B.into(),
            workspace_ids: vec![WorkspaceId(1)]
        }
    );
}
