//! The cost of a policy check: 20 policies (Rego v1, each walking every resource change) over
//! a plan of 1,000 resource changes, evaluated as a run's check evaluates them (a fresh engine,
//! the modules parsed, the input converted, each policy's query). The target is under 50 ms.
//!
//! Run: `cargo bench --bench policy_checks` (under `cargo test` it runs once).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gantry::core::policy::PolicyResult;

const POLICIES: usize = 20;
const RESOURCE_CHANGES: usize = 1_000;

/// A policy set on disk: `policies.hcl` and one module a policy, each a different rule over
/// the plan's resource changes.
fn policy_set() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut hcl = String::new();
    for n in 0..POLICIES {
        hcl.push_str(&format!(
            "policy \"rule_{n}\" {{\n  query = \"data.terraform.policies.rule_{n}.deny\"\n  \
             enforcement_level = \"{}\"\n}}\n",
            if n % 2 == 0 { "mandatory" } else { "advisory" }
        ));
        let rego = format!(
            "package terraform.policies.rule_{n}\n\n\
             deny contains msg if {{\n\
             \tsome rc in input.plan.resource_changes\n\
             \trc.type == \"terraform_data\"\n\
             \t\"create\" in rc.change.actions\n\
             \tendswith(rc.change.after.input, \"-{n}-forbidden\")\n\
             \tmsg := sprintf(\"%s breaks rule {n}\", [rc.address])\n\
             }}\n"
        );
        std::fs::write(dir.path().join(format!("rule_{n}.rego")), rego).unwrap();
    }
    std::fs::write(dir.path().join("policies.hcl"), hcl).unwrap();
    dir
}

/// A plan's input document with `RESOURCE_CHANGES` creations, one of them breaking rule 3.
fn input() -> serde_json::Value {
    let changes: Vec<serde_json::Value> = (0..RESOURCE_CHANGES)
        .map(|i| {
            let value = if i == 500 {
                "web-3-forbidden".to_string()
            } else {
                format!("web-{i}")
            };
            serde_json::json!({
                "address": format!("terraform_data.r{i}"),
                "type": "terraform_data",
                "name": format!("r{i}"),
                "change": {"actions": ["create"], "before": null, "after": {"input": value}},
            })
        })
        .collect();
    serde_json::json!({"plan": {"format_version": "1.2", "resource_changes": changes}, "run": {}})
}

fn policy_check(c: &mut Criterion) {
    let dir = policy_set();
    let loaded = vec![gantry::policy::load_directory("bench", dir.path())];
    let input = input();
    let outcomes = gantry::policy::evaluate(&loaded, &input);
    assert_eq!(outcomes.len(), POLICIES);
    assert!(matches!(&outcomes[3].result, PolicyResult::Failed(m) if m.len() == 1));
    assert!(
        outcomes
            .iter()
            .filter(|o| o.result == PolicyResult::Passed)
            .count()
            == POLICIES - 1
    );
    c.bench_function("20 policies over 1,000 resource changes", |b| {
        b.iter(|| black_box(gantry::policy::evaluate(&loaded, black_box(&input))))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = policy_check
}
criterion_main!(benches);
