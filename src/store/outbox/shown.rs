//! What GitHub shows now, as Gantry last wrote it: each commit status context, each check run
//! (of a run, or not), the pull request comment. The outbox worker compares with these before
//! writing, so that nothing is posted twice.

use crate::core::CommitSha;
use crate::core::github_terms::CommitState;
use crate::core::{PrNumber, RunId};
use crate::store::{Store, on_pool, on_read_pool};

/// What a commit status context shows now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownStatus {
    pub run_id: Option<RunId>,
    pub state: CommitState,
    pub description: String,
    pub target_url: Option<String>,
}

/// A state read back from the store: written only by Gantry, so an unknown word is a bug.
fn commit_state(word: &str) -> anyhow::Result<CommitState> {
    CommitState::parse(word).ok_or_else(|| anyhow::anyhow!("unknown commit state `{word}`"))
}

impl Store {
    /// What a status context shows now.
    pub async fn shown_status(
        &self,
        repo: &str,
        sha: &CommitSha,
        context: &str,
    ) -> anyhow::Result<Option<ShownStatus>> {
        let row: Option<(Option<RunId>, String, String, Option<String>)> = on_read_pool!(self, pool => {
            sqlx::query_as(
                "SELECT run_id, state, description, target_url FROM commit_statuses \
                 WHERE repo = $1 AND sha = $2 AND context = $3",
            )
            .bind(repo)
            .bind(sha)
            .bind(context)
            .fetch_optional(pool)
            .await?
        });
        row.map(|(run_id, state, description, target_url)| {
            Ok(ShownStatus {
                run_id,
                state: commit_state(&state)?,
                description,
                target_url,
            })
        })
        .transpose()
    }

    /// The GitHub state every context of a commit shows: (context, state).
    pub async fn shown_statuses(
        &self,
        repo: &str,
        sha: &CommitSha,
    ) -> anyhow::Result<Vec<(String, CommitState)>> {
        let rows: Vec<(String, String)> = on_read_pool!(self, pool => {
            sqlx::query_as(
                "SELECT context, state FROM commit_statuses WHERE repo = $1 AND sha = $2 \
                 ORDER BY context",
            )
            .bind(repo)
            .bind(sha)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(context, state)| Ok((context, commit_state(&state)?)))
            .collect()
    }

    /// Remembers what a status context shows after posting it.
    pub async fn record_shown_status(
        &self,
        repo: &str,
        sha: &CommitSha,
        context: &str,
        shown: &ShownStatus,
    ) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO commit_statuses (repo, sha, context, run_id, state, description, \
                 target_url) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (repo, sha, context) DO UPDATE SET run_id = excluded.run_id, \
                 state = excluded.state, description = excluded.description, \
                 target_url = excluded.target_url",
            )
            .bind(repo)
            .bind(sha)
            .bind(context)
            .bind(shown.run_id)
            .bind(shown.state.as_str())
            .bind(&shown.description)
            .bind(&shown.target_url)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The check run of a run, once created, and what it last showed.
    pub async fn run_check(&self, run_id: RunId) -> anyhow::Result<(Option<i64>, Option<String>)> {
        let row: Option<(Option<i64>, Option<String>)> = on_read_pool!(self, pool => {
            sqlx::query_as("SELECT check_run_id, check_run_shown FROM runs WHERE id = $1")
                .bind(run_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.unwrap_or((None, None)))
    }

    pub async fn set_run_check(
        &self,
        run_id: RunId,
        check_run_id: i64,
        shown: &str,
    ) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE runs SET check_run_id = $1, check_run_shown = $2 WHERE id = $3")
                .bind(check_run_id)
                .bind(shown)
                .bind(run_id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The check run made for (repo, sha, name) outside any run.
    pub async fn raw_check_id(
        &self,
        repo: &str,
        sha: &CommitSha,
        name: &str,
    ) -> anyhow::Result<Option<i64>> {
        let id = on_read_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT check_run_id FROM raw_checks WHERE repo = $1 AND sha = $2 AND name = $3",
            )
            .bind(repo)
            .bind(sha)
            .bind(name)
            .fetch_optional(pool)
            .await?
        });
        Ok(id)
    }

    /// What the check run made for (repo, sha, name) last showed, as its writer put it.
    pub async fn raw_check_shown(
        &self,
        repo: &str,
        sha: &CommitSha,
        name: &str,
    ) -> anyhow::Result<Option<String>> {
        let shown: Option<Option<String>> = on_read_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT shown FROM raw_checks WHERE repo = $1 AND sha = $2 AND name = $3",
            )
            .bind(repo)
            .bind(sha)
            .bind(name)
            .fetch_optional(pool)
            .await?
        });
        Ok(shown.flatten())
    }

    pub async fn set_raw_check_shown(
        &self,
        repo: &str,
        sha: &CommitSha,
        name: &str,
        shown: &str,
    ) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE raw_checks SET shown = $4 WHERE repo = $1 AND sha = $2 AND name = $3",
            )
            .bind(repo)
            .bind(sha)
            .bind(name)
            .bind(shown)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn set_raw_check_id(
        &self,
        repo: &str,
        sha: &CommitSha,
        name: &str,
        check_run_id: i64,
    ) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO raw_checks (repo, sha, name, check_run_id) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (repo, sha, name) DO UPDATE SET check_run_id = excluded.check_run_id",
            )
            .bind(repo)
            .bind(sha)
            .bind(name)
            .bind(check_run_id)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The pull request's Gantry comment: its id, and the SHA-256 of the body last written.
    pub async fn pr_comment(
        &self,
        repo: &str,
        pr_number: PrNumber,
    ) -> anyhow::Result<Option<(i64, Option<String>)>> {
        let row = on_read_pool!(self, pool => {
            sqlx::query_as(
                "SELECT comment_id, body_sha256 FROM pr_comments \
                 WHERE repo = $1 AND pr_number = $2",
            )
            .bind(repo)
            .bind(pr_number)
            .fetch_optional(pool)
            .await?
        });
        Ok(row)
    }

    /// Remembers the comment and the body it shows (None: not known).
    pub async fn set_pr_comment(
        &self,
        repo: &str,
        pr_number: PrNumber,
        comment_id: i64,
        body_sha256: Option<&str>,
    ) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO pr_comments (repo, pr_number, comment_id, body_sha256) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (repo, pr_number) DO UPDATE SET \
                 comment_id = excluded.comment_id, body_sha256 = excluded.body_sha256",
            )
            .bind(repo)
            .bind(pr_number)
            .bind(comment_id)
            .bind(body_sha256)
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}
