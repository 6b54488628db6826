//! Errored runs that do not yet carry Terraform's own reason (they errored before Gantry kept
//! it, or on a path that read no log): their log is read once, at start, and the first error
//! line kept, so that what GitHub, the API and the UI say of them is Terraform's words.

use crate::core::status::first_error_line;
use crate::store::Store;

/// Runs looked at per query.
const PAGE: i64 = 100;

/// Keeps Terraform's reason on every errored run that has none recorded yet (an empty one
/// when its log has no error line, so that it is not read again).
pub async fn explain_errored_runs(store: &Store) -> anyhow::Result<usize> {
    let mut explained = 0;
    loop {
        let runs = store.errored_runs_unexplained(PAGE).await?;
        if runs.is_empty() {
            return Ok(explained);
        }
        for (run_id, reached_apply) in runs {
            let phase = if reached_apply { "apply" } else { "plan" };
            let log = store.phase_log_text(run_id, phase).await?;
            let line = first_error_line(&log).unwrap_or_default();
            store.set_terraform_error(run_id, &line).await?;
            explained += usize::from(!line.is_empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::core::run::RunState;
    use crate::core::workspace::{RepoName, WorkspaceName, WorkspaceSpec};
    use crate::store::{Cause, Move, NewRuns};

    #[tokio::test]
    async fn an_errored_run_from_before_shows_terraforms_reason_once_explained() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("gantry.db").display());
        let store = Store::open(&SecretString::from(url)).await.unwrap();
        let spec = WorkspaceSpec::new(
            WorkspaceName::parse("prod").unwrap(),
            RepoName::parse("o/r").unwrap(),
        );
        let workspace = store.create_workspace(&spec).await.unwrap();
        let new = NewRuns::push(
            "o/r".into(),
            "c".into(),
            vec![workspace],
            String::new(),
            None,
            "octocat".into(),
        );
        let run = store.create_runs(&new).await.unwrap()[0];
        for (from, to) in [
            (RunState::Pending, RunState::Fetching),
            (RunState::Fetching, RunState::Planning),
        ] {
            assert!(
                store
                    .move_run(&Move::new(run, from, to, Cause::Runner))
                    .await
                    .unwrap()
            );
        }
        let log = "\u{1b}[31m╷\n│ Error: Reference to undeclared resource\n".to_string();
        store.append_log(run, "plan", &[log]).await.unwrap();
        // Ended the way a Gantry from before did: Gantry's reason only.
        let end = Move::new(run, RunState::Planning, RunState::Errored, Cause::Runner)
            .because("terraform plan failed (exit code Some(1))");
        assert!(store.move_run(&end).await.unwrap());
        let before = store.run(run).await.unwrap().unwrap();
        assert_eq!(
            before.summary(),
            "Plan failed: terraform plan failed (exit code Some(1))"
        );

        assert_eq!(explain_errored_runs(&store).await.unwrap(), 1);
        let after = store.run(run).await.unwrap().unwrap();
        assert_eq!(
            after.summary(),
            "Plan failed: Reference to undeclared resource"
        );
        assert_eq!(
            after.error.as_deref(),
            Some("terraform plan failed (exit code Some(1))"),
            "Gantry's own reason stays"
        );
        assert_eq!(explain_errored_runs(&store).await.unwrap(), 0, "read once");
    }
}
