//! What a run's policies said: kept when its check ends, read by the API, the UI and GitHub's
//! feedback.

use super::{BeginWrite, Store, now_ms, on_pool, on_read_pool};
use crate::core::RunId;
use crate::core::policy::{Enforcement, PolicyOutcome, PolicyResult};

impl Store {
    /// Keeps a run's policy outcomes, in place of any it had (a plan made again).
    pub async fn record_policy_checks(
        &self,
        run_id: RunId,
        outcomes: &[PolicyOutcome],
    ) -> anyhow::Result<()> {
        let now = now_ms();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM policy_checks WHERE run_id = $1")
                .bind(run_id)
                .execute(&mut *tx)
                .await?;
            for outcome in outcomes {
                let (result, messages) = match &outcome.result {
                    PolicyResult::Passed => ("passed", Vec::new()),
                    PolicyResult::Failed(messages) => ("failed", messages.clone()),
                    PolicyResult::Errored(why) => ("errored", vec![why.clone()]),
                };
                sqlx::query(
                    "INSERT INTO policy_checks (run_id, policy_set, policy, enforcement, result, \
                     messages, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(run_id)
                .bind(&outcome.policy_set)
                .bind(&outcome.policy)
                .bind(outcome.enforcement.as_str())
                .bind(result)
                .bind(serde_json::to_string(&messages)?)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// How many policy evaluations are kept, by enforcement level and result.
    pub async fn policy_check_counts(&self) -> anyhow::Result<Vec<(String, String, i64)>> {
        let counts = on_read_pool!(self, pool => {
            sqlx::query_as(
                "SELECT enforcement, result, COUNT(*) FROM policy_checks \
                 GROUP BY enforcement, result ORDER BY enforcement, result",
            )
            .fetch_all(pool)
            .await?
        });
        Ok(counts)
    }

    /// A run's policy outcomes, in the order they were evaluated.
    pub async fn policy_checks(&self, run_id: RunId) -> anyhow::Result<Vec<PolicyOutcome>> {
        let rows: Vec<(String, String, String, String, String)> = on_read_pool!(self, pool => {
            sqlx::query_as(
                "SELECT policy_set, policy, enforcement, result, messages FROM policy_checks \
                 WHERE run_id = $1 ORDER BY id",
            )
            .bind(run_id)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(policy_set, policy, enforcement, result, messages)| {
                let enforcement = Enforcement::parse(&enforcement)
                    .ok_or_else(|| anyhow::anyhow!("unknown enforcement {enforcement}"))?;
                let mut messages: Vec<String> = serde_json::from_str(&messages)?;
                let result = match result.as_str() {
                    "passed" => PolicyResult::Passed,
                    "failed" => PolicyResult::Failed(messages),
                    "errored" => PolicyResult::Errored(messages.pop().unwrap_or_default()),
                    other => anyhow::bail!("unknown policy result {other}"),
                };
                Ok(PolicyOutcome {
                    policy_set,
                    policy,
                    enforcement,
                    result,
                })
            })
            .collect()
    }
}
