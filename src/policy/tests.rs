use super::*;

fn set(hcl: &str, modules: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policies.hcl"), hcl).unwrap();
    for (name, text) in modules {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

const HCL: &str = r#"
policy "no_public" {
  query = "data.terraform.policies.no_public.deny"
  enforcement_level = "mandatory"
}
policy "tagged" {
  query = "data.terraform.policies.tagged.deny"
}
"#;

const NO_PUBLIC: &str = r#"
package terraform.policies.no_public

deny contains msg if {
  some rc in input.plan.resource_changes
  rc.change.after.input == "public"
  msg := sprintf("%s is public", [rc.address])
}
"#;

// Rego v0 syntax, still accepted.
const TAGGED_V0: &str = r#"
package terraform.policies.tagged

deny[msg] {
  rc := input.plan.resource_changes[_]
  not rc.change.after.tags
  msg := sprintf("%s has no tags", [rc.address])
}
"#;

fn input(value: &str) -> serde_json::Value {
    serde_json::json!({"plan": {"resource_changes": [
        {"address": "terraform_data.a", "change": {"actions": ["create"], "after": {"input": value}}}
    ]}, "run": {}})
}

#[test]
fn violations_are_reported_per_policy_with_v0_and_v1_modules() {
    let dir = set(
        HCL,
        &[
            ("no_public.rego", NO_PUBLIC),
            ("nested/tagged.rego", TAGGED_V0),
        ],
    );
    let loaded = vec![load_directory("guards", dir.path())];
    let outcomes = evaluate(&loaded, &input("public"));
    assert_eq!(outcomes.len(), 2);
    assert_eq!(
        outcomes[0].result,
        PolicyResult::Failed(vec!["terraform_data.a is public".into()])
    );
    assert_eq!(outcomes[0].enforcement, Enforcement::Mandatory);
    assert_eq!(
        outcomes[1].result,
        PolicyResult::Failed(vec!["terraform_data.a has no tags".into()])
    );
    let clean = evaluate(&loaded, &input("private"));
    assert_eq!(clean[0].result, PolicyResult::Passed);
}

#[test]
fn what_cannot_be_evaluated_is_errored_never_passed() {
    // A module that parses in neither syntax.
    let dir = set(HCL, &[("broken.rego", "package x\n deny contains {")]);
    let outcomes = evaluate(&[load_directory("guards", dir.path())], &input("x"));
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o.result, PolicyResult::Errored(_))),
        "{outcomes:?}"
    );

    // A query nothing answers, and one that answers with a boolean.
    let hcl = r#"
policy "missing" {
  query = "data.terraform.policies.nothing.deny"
}
policy "boolean" {
  query = "data.terraform.policies.b.allow"
}
"#;
    let dir = set(
        hcl,
        &[("b.rego", "package terraform.policies.b\n\nallow := true\n")],
    );
    let outcomes = evaluate(&[load_directory("guards", dir.path())], &input("x"));
    assert!(
        matches!(&outcomes[0].result, PolicyResult::Errored(why) if why.contains("undefined")),
        "{outcomes:?}"
    );
    assert!(
        matches!(&outcomes[1].result, PolicyResult::Errored(why) if why.contains("boolean")),
        "{outcomes:?}"
    );

    // A builtin the engine lacks.
    let hcl = "policy \"http\" {\n  query = \"data.terraform.policies.h.deny\"\n}\n";
    let rego = "package terraform.policies.h\n\ndeny contains x if {\n  x := http.send({\"method\": \"get\", \"url\": \"http://x\"})\n}\n";
    let dir = set(hcl, &[("h.rego", rego)]);
    let outcomes = evaluate(&[load_directory("guards", dir.path())], &input("x"));
    assert!(
        matches!(outcomes[0].result, PolicyResult::Errored(_)),
        "{outcomes:?}"
    );

    // A set without its policies.hcl.
    let empty = tempfile::tempdir().unwrap();
    let outcomes = evaluate(&[load_directory("gone", empty.path())], &input("x"));
    assert_eq!(outcomes.len(), 1);
    assert!(outcomes[0].blocks());
}
