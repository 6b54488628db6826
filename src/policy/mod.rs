//! Policy checks of a plan: a policy set loaded from its folder (`policies.hcl` and the
//! `.rego` files beside it) and its policies evaluated in-process with regorus, Microsoft's
//! Rego interpreter. What a result means, and what happens to the run, is `core::policy`.
//!
//! Nothing fails open: a set that cannot be loaded, a module that does not parse (as Rego v1,
//! nor as v0), a query that is undefined, errors or answers with anything but an array of
//! violations is an errored policy, which blocks the run as a mandatory failure does.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regorus::utils::limits::ExecutionTimerConfig;

use crate::core::policy::{Enforcement, Policy, PolicyOutcome, PolicyResult, parse_policies_hcl};

mod archive;
pub use archive::load_archive;

/// How long all of one set's policies may take over one plan.
const EVALUATION_LIMIT: Duration = Duration::from_secs(10);
/// The most a set's `.rego` files may hold, together.
const MAX_SET_BYTES: u64 = 8 * 1024 * 1024;

/// A policy set ready to evaluate: its policies and the Rego modules they query.
#[derive(Debug, Clone)]
pub struct PolicySet {
    pub name: String,
    pub policies: Vec<Policy>,
    /// (path within the set, text).
    pub modules: Vec<(String, String)>,
}

/// A set, or why it could not be loaded (which errors the check).
pub type Loaded = Result<PolicySet, (String, String)>;

/// Loads policy set `name` from the folder `dir`: its `policies.hcl`, and every `.rego` file
/// under it (hidden folders aside), in path order.
pub fn load_directory(name: &str, dir: &Path) -> Loaded {
    let failed = |why: String| (name.to_string(), why);
    let hcl = std::fs::read_to_string(dir.join("policies.hcl"))
        .map_err(|e| failed(format!("reading {}/policies.hcl: {e}", dir.display())))?;
    let mut files = Vec::new();
    collect_rego(dir, dir, &mut files).map_err(|e| failed(format!("reading the set: {e}")))?;
    let mut modules = Vec::new();
    let mut total = 0;
    for (relative, path) in files {
        total += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if total > MAX_SET_BYTES {
            return Err(failed(too_large()));
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| failed(format!("reading {relative}: {e}")))?;
        modules.push((relative, text));
    }
    assemble(name, &hcl, modules)
}

/// A set from its files wherever they were read: `policies.hcl` and the `.rego` modules
/// (path within the set, text), evaluated in path order.
fn assemble(name: &str, hcl: &str, mut modules: Vec<(String, String)>) -> Loaded {
    let failed = |why: String| (name.to_string(), why);
    let policies = parse_policies_hcl(hcl).map_err(failed)?;
    if modules.is_empty() {
        return Err(failed("it has no .rego file".into()));
    }
    modules.sort();
    Ok(PolicySet {
        name: name.to_string(),
        policies,
        modules,
    })
}

fn too_large() -> String {
    format!("its .rego files hold more than {MAX_SET_BYTES} bytes")
}

fn collect_rego(
    root: &Path,
    dir: &Path,
    found: &mut Vec<(String, PathBuf)>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let file_name = entry.file_name();
        if file_name.to_string_lossy().starts_with('.') {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect_rego(root, &path, found)?;
        } else if kind.is_file() && path.extension().is_some_and(|e| e == "rego") {
            let relative = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .display()
                .to_string();
            found.push((relative, path));
        }
    }
    Ok(())
}

/// Evaluates every policy of every set over `input` (the run's input document). A set that
/// did not load answers with one errored entry; the others with one entry per policy.
pub fn evaluate(sets: &[Loaded], input: &serde_json::Value) -> Vec<PolicyOutcome> {
    let input = regorus::Value::from(input.clone());
    let mut outcomes = Vec::new();
    for set in sets {
        match set {
            Ok(set) => outcomes.extend(evaluate_set(set, &input)),
            Err((name, why)) => outcomes.push(PolicyOutcome {
                policy_set: name.clone(),
                policy: "policies.hcl".into(),
                enforcement: Enforcement::Mandatory,
                result: PolicyResult::Errored(format!("the policy set did not load: {why}")),
            }),
        }
    }
    outcomes
}

fn evaluate_set(set: &PolicySet, input: &regorus::Value) -> Vec<PolicyOutcome> {
    let outcome = |policy: &Policy, result| PolicyOutcome {
        policy_set: set.name.clone(),
        policy: policy.name.clone(),
        enforcement: policy.enforcement,
        result,
    };
    let mut engine = regorus::Engine::new();
    engine.set_execution_timer_config(ExecutionTimerConfig {
        limit: EVALUATION_LIMIT,
        check_interval: NonZeroU32::new(1_000).expect("not zero"),
    });
    engine.set_strict_builtin_errors(true);
    for (path, text) in &set.modules {
        if let Err(why) = add_module(&mut engine, path, text) {
            return set
                .policies
                .iter()
                .map(|p| outcome(p, PolicyResult::Errored(why.clone())))
                .collect();
        }
    }
    engine.set_input(input.clone());
    set.policies
        .iter()
        .map(|policy| outcome(policy, evaluate_query(&mut engine, &policy.query)))
        .collect()
}

/// Adds a module as Rego v1, or else as v0 (older policies); the v1 error if neither parses.
fn add_module(engine: &mut regorus::Engine, path: &str, text: &str) -> Result<(), String> {
    engine.set_rego_v0(false);
    let Err(v1) = engine.add_policy(path.to_string(), text.to_string()) else {
        return Ok(());
    };
    engine.set_rego_v0(true);
    match engine.add_policy(path.to_string(), text.to_string()) {
        Ok(_) => Ok(()),
        Err(_) => Err(format!("{path} does not parse: {v1}")),
    }
}

fn evaluate_query(engine: &mut regorus::Engine, query: &str) -> PolicyResult {
    let results = match engine.eval_query(query.to_string(), false) {
        Ok(results) => results,
        Err(error) => return PolicyResult::Errored(format!("{query}: {error}")),
    };
    let Some(expression) = results.result.first().and_then(|r| r.expressions.first()) else {
        return PolicyResult::Errored(format!("{query} is undefined: no rule answers it"));
    };
    match serde_json::to_value(&expression.value) {
        Ok(answer) => PolicyResult::from_answer(&answer),
        Err(error) => PolicyResult::Errored(format!("{query}: its answer is not JSON: {error}")),
    }
}

#[cfg(test)]
mod tests;
