//! What a test says to the fake GitHub: set up repositories, pull requests, people and
//! deliveries; ask for faults; read back what Gantry wrote.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::world::World;
use super::{CheckRun, Comment, FakeGitHub, Fault, HookDelivery, PullRequest, Status, lock};

impl FakeGitHub {
    /// The whole model, for what no verb says.
    pub fn world(&self) -> std::sync::MutexGuard<'_, World> {
        lock(&self.world)
    }

    /// The App is `app_id` (4242 unless told).
    pub fn app_id(&self, app_id: u64) {
        self.world().set_app_id(app_id);
    }

    /// GitHub has installation `installation` of the App (99 is there from the start).
    pub fn install(&self, installation: u64) {
        self.world().install(installation);
    }

    /// `repo`'s tarball at `git_ref` is `bytes` (served through GitHub's redirect).
    pub fn serve_tarball(&self, repo: &str, git_ref: &str, bytes: Vec<u8>) {
        self.world().add_tarball(repo, git_ref, bytes);
    }

    /// `repo`'s tarball at any ref not served otherwise is `bytes`.
    /// Branch `branch` of `repo` is at `sha`.
    pub fn set_branch(&self, repo: &str, branch: &str, sha: &str) {
        self.world().set_branch(repo, branch, sha);
    }

    /// An open issue titled `title` in `repo`, as if someone (or an earlier send) opened it.
    pub fn open_issue(&self, repo: &str, title: &str) -> u64 {
        self.world().open_issue(repo, title, "")
    }

    pub fn serve_any_tarball(&self, repo: &str, bytes: Vec<u8>) {
        self.world().add_any_tarball(repo, bytes);
    }

    /// Comparing `base...head` in `repo` lists `files`.
    pub fn compare(&self, repo: &str, base: &str, head: &str, files: &[&str]) {
        self.world().add_comparison(repo, base, head, files);
    }

    /// Opens (or replaces) pull request `number` of `repo`.
    pub fn open_pull_request(&self, repo: &str, number: u64, pull: PullRequest) {
        self.world().put_pull_request(repo, number, pull);
    }

    /// Pull request `number` now has `head` and changes `files`.
    pub fn push_to_pull_request(&self, repo: &str, number: u64, head: &str, files: &[&str]) {
        let mut world = self.world();
        let pull = world.pull_request_mut(repo, number);
        pull.head_sha = head.to_owned();
        pull.files = files.iter().map(|f| (*f).to_owned()).collect();
    }

    /// Closes pull request `number`, merged or not.
    pub fn close_pull_request(&self, repo: &str, number: u64, merged: bool) {
        let mut world = self.world();
        let pull = world.pull_request_mut(repo, number);
        pull.state = "closed";
        pull.merged = merged;
    }

    /// Merges pull request `number` as `merge_sha`.
    pub fn merge_pull_request(&self, repo: &str, number: u64, merge_sha: &str) {
        let mut world = self.world();
        let pull = world.pull_request_mut(repo, number);
        pull.state = "closed";
        pull.merged = true;
        pull.merge_commit_sha = Some(merge_sha.to_owned());
    }

    /// `user` has `permission` (`admin`, `write`, `read`, `none`) on `repo`.
    pub fn grant(&self, repo: &str, user: &str, permission: &str) {
        self.world().set_permission(repo, user, permission);
    }

    /// `author` comments `body` on issue or pull request `issue`; returns the comment's id.
    pub fn comment_by(&self, repo: &str, issue: u64, author: &str, body: &str) -> i64 {
        self.world().add_comment(repo, issue, author, body)
    }

    /// GitHub recorded this delivery of the App's webhook.
    pub fn add_delivery(&self, delivery: HookDelivery) {
        self.world().add_delivery(delivery);
    }

    /// Converting manifest `code` makes `app` (once).
    pub fn add_manifest(&self, code: &str, app: Value) {
        self.world().add_manifest(code, app);
    }

    /// The next requests to `operation` (an operation id of GitHub's description, like
    /// `repos/create-commit-status`) get these faults, one each, in order.
    pub fn fail(&self, operation: &'static str, faults: impl IntoIterator<Item = Fault>) {
        self.world().add_faults(operation, faults);
    }

    /// Every request to `operation` gets `fault` (after any queued by [`Self::fail`]) until
    /// [`Self::end_outage`].
    pub fn outage(&self, operation: &'static str, fault: Fault) {
        self.world().set_outage(operation, Some(fault));
    }

    pub fn end_outage(&self, operation: &'static str) {
        self.world().set_outage(operation, None);
    }

    /// The faults served so far: (operation, [`Fault::label`]).
    pub fn served_faults(&self) -> Vec<(&'static str, String)> {
        self.world().served_faults()
    }

    /// Requests that came while a rate limit this GitHub announced was in force.
    pub fn early_requests(&self) -> Vec<String> {
        self.world().early()
    }

    /// GitHub's secondary rate limit is on: at most `per_minute` content-creating requests an
    /// installation makes in any minute.
    pub fn secondary_rate_limit(&self, per_minute: usize) {
        self.world().set_secondary_limit(per_minute);
    }

    /// How many requests the secondary rate limit refused.
    pub fn secondary_refusals(&self) -> usize {
        self.world().secondary_refusals()
    }

    /// Installation tokens last this long.
    pub fn token_lifetime(&self, lifetime: chrono::Duration) {
        self.world().set_token_lifetime(lifetime);
    }

    /// Commit statuses are answered after `delay`.
    pub fn slow_statuses(&self, delay: Duration) {
        self.world().set_status_delay(delay);
    }

    /// Every status posted to `sha` of `repo`, oldest first.
    pub fn statuses(&self, repo: &str, sha: &str) -> Vec<Status> {
        self.world().statuses(repo, sha)
    }

    /// Every status posted, oldest first.
    pub fn all_statuses(&self) -> Vec<Status> {
        self.world().all_statuses()
    }

    /// What each context of `sha` shows now.
    pub fn latest_statuses(&self, repo: &str, sha: &str) -> BTreeMap<String, Status> {
        self.statuses(repo, sha)
            .into_iter()
            .map(|s| (s.context.clone(), s))
            .collect()
    }

    pub fn check_runs(&self) -> Vec<CheckRun> {
        self.world().check_runs()
    }

    pub fn comments(&self, repo: &str, issue: u64) -> Vec<Comment> {
        self.world().comments(repo, issue)
    }

    /// The issues (not pull requests) of `repo`, in the order opened.
    pub fn issues(&self, repo: &str) -> Vec<super::world::Issue> {
        self.world().issues(repo)
    }

    /// (comment id, reaction) in the order made.
    pub fn reactions(&self) -> Vec<(i64, String)> {
        self.world().reactions()
    }

    /// The delivery ids GitHub was asked to redeliver, in order.
    pub fn redeliveries(&self) -> Vec<i64> {
        self.world().redeliveries()
    }

    /// Every installation token handed out.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.world().issued_tokens()
    }

    /// How many requests to `operation` were answered (faults included).
    pub fn answered(&self, operation: &str) -> usize {
        self.world().answered(operation)
    }
}
