//! Run triggers between workspaces (Terraform Cloud's): a workspace names up to
//! [`MAX_SOURCES`] source workspaces, and each apply with changes in a source queues one run
//! in it. Pure: which settings are allowed (no self-reference, no cycle), and which workspaces
//! an apply triggers.

use std::collections::BTreeMap;

use super::workspace::WorkspaceName;

/// Terraform Cloud's limit of source workspaces a workspace may name.
pub const MAX_SOURCES: usize = 20;

/// Why `workspace`'s sources `sources` cannot be, given every workspace's sources (`all`, by
/// name; `workspace`'s own entry is replaced by `sources`). None when they can.
pub fn problem(
    workspace: &str,
    sources: &[WorkspaceName],
    all: &BTreeMap<String, Vec<String>>,
) -> Option<String> {
    if sources.len() > MAX_SOURCES {
        return Some(format!("names more than {MAX_SOURCES} source workspaces"));
    }
    let mut seen = Vec::new();
    for source in sources {
        let source = source.as_str();
        if source == workspace {
            return Some(format!("{workspace} cannot trigger itself"));
        }
        if !all.contains_key(source) {
            return Some(format!("names {source}, which is not a workspace"));
        }
        if seen.contains(&source) {
            return Some(format!("names {source} twice"));
        }
        seen.push(source);
    }
    // A cycle through `workspace`: following sources from its sources leads back to it.
    let sources_of = |name: &str| -> Vec<String> {
        if name == workspace {
            seen.iter().map(|s| s.to_string()).collect()
        } else {
            all.get(name).cloned().unwrap_or_default()
        }
    };
    let mut path = vec![workspace.to_string()];
    if let Some(cycle) = find_path_back(workspace, &sources_of, &mut path) {
        return Some(format!("would make a cycle: {}", cycle.join(" ← ")));
    }
    None
}

/// Depth-first from the last of `path` along sources; the path when it reaches `home`.
fn find_path_back(
    home: &str,
    sources_of: &dyn Fn(&str) -> Vec<String>,
    path: &mut Vec<String>,
) -> Option<Vec<String>> {
    let last = path.last().expect("a path starts somewhere").clone();
    for source in sources_of(&last) {
        if source == home {
            let mut cycle = path.clone();
            cycle.push(source);
            return Some(cycle);
        }
        if path.contains(&source) {
            continue; // a cycle elsewhere was refused when it was made
        }
        path.push(source);
        if let Some(cycle) = find_path_back(home, sources_of, path) {
            return Some(cycle);
        }
        path.pop();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<WorkspaceName> {
        list.iter()
            .map(|n| WorkspaceName::parse(n).unwrap())
            .collect()
    }

    fn all(edges: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        edges
            .iter()
            .map(|(name, sources)| {
                (
                    name.to_string(),
                    sources.iter().map(|s| s.to_string()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn sources_must_be_other_existing_workspaces_without_a_cycle() {
        let workspaces = all(&[("network", &[]), ("app", &["network"]), ("dns", &["app"])]);
        assert_eq!(problem("app", &names(&["network"]), &workspaces), None);
        assert_eq!(
            problem("app", &names(&["app"]), &workspaces).unwrap(),
            "app cannot trigger itself"
        );
        assert_eq!(
            problem("app", &names(&["nope"]), &workspaces).unwrap(),
            "names nope, which is not a workspace"
        );
        // network ← dns ← app ← network
        assert_eq!(
            problem("network", &names(&["dns"]), &workspaces).unwrap(),
            "would make a cycle: network ← dns ← app ← network"
        );
        let many: Vec<String> = (0..21).map(|i| format!("ws{i}")).collect();
        let many_refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(
            problem("app", &names(&many_refs), &workspaces)
                .unwrap()
                .contains("more than 20")
        );
    }
}
