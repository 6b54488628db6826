//! How the scheduler hears that a workspace's queue may have changed: a set of "dirty"
//! workspaces and a wake-up. Whoever changes runs or locks marks the workspace; the scheduler
//! looks only at marked workspaces, so its cost does not grow with the number of idle ones.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::core::WorkspaceId;
use tokio::sync::Notify;

#[derive(Default)]
pub struct RunSignal {
    dirty: Mutex<HashSet<WorkspaceId>>,
    wake: Notify,
    /// Someone asked for an assessment now.
    assess: Notify,
}

impl RunSignal {
    pub fn new() -> Self {
        Self::default()
    }

    /// The queue of `workspace_id` may have changed: runs created, finished, confirmed, a lock.
    pub fn workspace_changed(&self, workspace_id: WorkspaceId) {
        self.workspaces_changed([workspace_id]);
    }

    pub fn workspaces_changed(&self, ids: impl IntoIterator<Item = WorkspaceId>) {
        let mut dirty = self.dirty.lock().unwrap_or_else(|e| e.into_inner());
        let before = dirty.len();
        dirty.extend(ids);
        if dirty.len() > before {
            self.wake.notify_one();
        }
    }

    /// The marked workspaces, unmarking them, lowest id first (a stable order).
    pub fn take(&self) -> Vec<WorkspaceId> {
        let mut dirty = self.dirty.lock().unwrap_or_else(|e| e.into_inner());
        let mut ids: Vec<WorkspaceId> = dirty.drain().collect();
        ids.sort_unstable();
        ids
    }

    /// Someone asked for an assessment: the scheduler looks at once, not at its next tick.
    pub fn assessment_requested(&self) {
        self.assess.notify_one();
    }

    /// Completes when an assessment was asked for.
    pub async fn assessments_wanted(&self) {
        self.assess.notified().await;
    }

    /// Completes when a workspace was marked since the last `take`.
    pub async fn changed(&self) {
        self.wake.notified().await;
    }
}
