use super::RunState::*;
use super::*;

#[test]
fn the_happy_path_is_legal_step_by_step() {
    let path = [
        Pending, Fetching, Planning, Planned, Confirmed, Applying, Applied,
    ];
    for pair in path.windows(2) {
        assert_eq!(
            pair[0].transition(pair[1]),
            Ok(pair[1]),
            "{} → {}",
            pair[0],
            pair[1]
        );
    }
}

#[test]
fn a_plan_without_changes_finishes_at_planned_and_finished() {
    assert!(Planning.can_become(PlannedAndFinished));
    assert!(PlannedAndFinished.is_final());
}

#[test]
fn steps_cannot_be_skipped() {
    for (from, to) in [
        (Pending, Planning),
        (Pending, Applying),
        (Planning, Applying),
        (Planned, Applying),
        (Fetching, Planned),
        (Pending, Applied),
    ] {
        assert_eq!(from.transition(to), Err(IllegalTransition { from, to }));
    }
}

#[test]
fn final_states_never_move_again() {
    for from in RunState::ALL.into_iter().filter(|s| s.is_final()) {
        for to in RunState::ALL {
            assert!(!from.can_become(to), "{from} → {to}");
        }
    }
}

#[test]
fn only_waiting_runs_can_be_discarded() {
    let discardable: Vec<_> = RunState::ALL
        .into_iter()
        .filter(|s| s.can_become(Discarded))
        .collect();
    assert_eq!(discardable, [Pending, PolicyOverride, Planned]);
}

#[test]
fn executing_runs_can_error_or_be_canceled_or_force_canceled() {
    for state in [Fetching, Planning, Confirmed, Applying] {
        for end in [Errored, Canceled, ForceCanceled] {
            assert!(state.can_become(end), "{state} → {end}");
        }
    }
}

#[test]
fn a_pending_run_can_be_canceled_but_not_force_canceled_or_errored() {
    assert!(Pending.can_become(Canceled));
    assert!(!Pending.can_become(ForceCanceled));
    assert!(!Pending.can_become(Errored));
}

#[test]
fn a_run_waiting_for_confirmation_cannot_be_canceled_only_discarded() {
    assert!(!Planned.can_become(Canceled));
    assert!(Planned.can_become(Discarded));
}

#[test]
fn a_run_waiting_for_confirmation_errors_when_its_saved_plan_is_lost_but_is_never_force_canceled() {
    assert!(Planned.can_become(Errored));
    assert!(!Planned.can_become(ForceCanceled));
}

#[test]
fn runs_from_fetching_to_applying_hold_the_workspace_including_planned() {
    let holding: Vec<_> = RunState::ALL
        .into_iter()
        .filter(|s| s.holds_workspace())
        .collect();
    assert_eq!(
        holding,
        [
            Fetching,
            Planning,
            PolicyChecking,
            PolicyChecked,
            PolicyOverride,
            Planned,
            Confirmed,
            Applying
        ]
    );
}

#[test]
fn a_run_waiting_for_an_override_goes_on_when_overridden_or_ends_when_discarded() {
    assert!(Planning.can_become(PolicyChecking));
    assert!(PolicyChecking.can_become(PolicyOverride));
    assert!(PolicyOverride.can_become(Planned));
    assert!(PolicyOverride.can_become(Discarded));
    assert!(
        !PolicyOverride.can_become(Confirmed),
        "no confirmation skips the override"
    );
    assert!(!PolicyOverride.can_become(Canceled));
    assert!(PolicyOverride.waits_for_a_person());
    // A check lost with its server plans again.
    assert!(PolicyChecking.can_become(Pending));
    assert!(PolicyChecked.can_become(Pending));
}

#[test]
fn state_names_round_trip() {
    for state in RunState::ALL {
        assert_eq!(RunState::parse(state.as_str()), Some(state));
    }
    assert_eq!(RunState::parse("bogus"), None);
    assert_eq!(PlannedAndFinished.to_string(), "planned_and_finished");
}

#[test]
fn after_plan_waits_for_confirmation_unless_auto_apply() {
    let manual = RunKind {
        speculative: false,
        auto_apply: false,
    };
    let auto = RunKind {
        speculative: false,
        auto_apply: true,
    };
    let changes = PlanResult { has_changes: true };
    assert_eq!(after_plan(manual, changes), [Planned]);
    assert_eq!(after_plan(auto, changes), [Planned, Confirmed]);
}

#[test]
fn after_plan_finishes_speculative_plans_and_plans_without_changes() {
    let speculative = RunKind {
        speculative: true,
        auto_apply: true,
    };
    let auto = RunKind {
        speculative: false,
        auto_apply: true,
    };
    assert_eq!(
        after_plan(speculative, PlanResult { has_changes: true }),
        [PlannedAndFinished]
    );
    assert_eq!(
        after_plan(auto, PlanResult { has_changes: false }),
        [PlannedAndFinished]
    );
}

#[test]
fn every_state_sequence_after_plan_is_legal() {
    for speculative in [false, true] {
        for auto_apply in [false, true] {
            for has_changes in [false, true] {
                let mut state = Planning;
                for next in after_plan(
                    RunKind {
                        speculative,
                        auto_apply,
                    },
                    PlanResult { has_changes },
                ) {
                    state = state.transition(*next).unwrap();
                }
            }
        }
    }
}

#[test]
fn only_runs_that_ended_without_success_are_retried() {
    let retried: Vec<RunState> = RunState::ALL
        .into_iter()
        .filter(|s| s.can_be_retried())
        .collect();
    assert_eq!(retried, [Errored, Discarded, Canceled, ForceCanceled]);
    assert!(retried.iter().all(|s| s.is_final()));
}

#[test]
fn a_lost_plan_goes_back_to_pending_but_an_apply_never_does() {
    assert!(Fetching.can_become(Pending));
    assert!(Planning.can_become(Pending));
    for from in [Planned, Confirmed, Applying] {
        assert!(!from.can_become(Pending), "{from} → pending");
    }
}

#[test]
fn only_moves_that_give_a_scheduler_work_wake_the_schedulers() {
    let waking: Vec<RunState> = RunState::ALL
        .into_iter()
        .filter(|s| s.wakes_schedulers())
        .collect();
    assert_eq!(
        waking,
        [
            Pending,
            Confirmed,
            Applied,
            PlannedAndFinished,
            Errored,
            Discarded,
            Canceled,
            ForceCanceled
        ]
    );
}
