//! A run's notification to a notification configuration: built when sent from what the
//! trigger recorded (the run's state then, and when), in the order the triggers fired for that
//! configuration, and its answer kept. A receiver that is down is retried with the outbox's
//! backoff; one that refuses (4xx) is not.

use std::time::Duration;

use super::{OutboxWorker, SendError};
use crate::core::assessments::AssessmentNotice;
use crate::core::notifications::RunNotice;
use crate::core::run::RunState;
use crate::store::{DeliveryResponse, Notice, NotificationConfiguration, OutboxRow};

/// How long a notification waits for an earlier one to the same receiver.
const BEHIND_AN_EARLIER_ONE: Duration = Duration::from_millis(300);

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

impl OutboxWorker {
    pub(super) async fn send_notification(
        &self,
        row: &OutboxRow,
        notice: &Notice,
    ) -> Result<(), SendError> {
        let Some(configuration) = (self.store)
            .notification_configuration(notice.configuration_id)
            .await?
        else {
            return Ok(()); // deleted meanwhile
        };
        if !configuration.spec.enabled {
            return Ok(()); // disabled meanwhile: nothing is owed
        }
        let earlier = self
            .store
            .earlier_notification_due(row.id, notice.configuration_id);
        if let Some(due) = earlier.await? {
            // Tried again when the earlier one is: not every moment before.
            let until_due = u64::try_from(due - crate::store::now_ms()).unwrap_or(0);
            let wait = BEHIND_AN_EARLIER_ONE.max(Duration::from_millis(until_due));
            return Err(SendError::Later(
                "an earlier notification to the same receiver goes first".into(),
                wait,
            ));
        }
        if let Some(assessment_id) = notice.assessment_id {
            return self
                .send_assessment_notification(&configuration, notice, assessment_id)
                .await;
        }
        let Some(run) = self.store.run(notice.run_id).await? else {
            return Ok(());
        };
        let status = RunState::parse(&notice.state)
            .map(RunState::terraform_cloud_status)
            .unwrap_or("unknown");
        let ids = (
            format!("nc-{}", configuration.id),
            format!("run-{}", run.id),
            format!("ws-{}", run.workspace_id),
        );
        let run_url = crate::engine::run_view::run_url(&self.public_url, run.id);
        let message = if run.message.is_empty() {
            run.summary()
        } else {
            run.message.clone()
        };
        let (created_at, updated_at) = (rfc3339(run.created_at_ms), rfc3339(notice.at_ms));
        let run_notice = RunNotice {
            configuration_id: &ids.0,
            run_url: &run_url,
            run_id: &ids.1,
            run_message: &message,
            run_created_at: &created_at,
            run_created_by: &run.author,
            workspace_id: &ids.2,
            workspace_name: &run.workspace_name,
            organization_name: self.notifier.organization(),
            message: &notice.message,
            trigger: &notice.trigger,
            run_status: status,
            run_updated_at: &updated_at,
            run_updated_by: "",
        };
        let answer = self.notifier.send(&configuration.spec, &run_notice).await;
        self.answered(&configuration, notice, answer).await
    }

    /// An assessment's notification: Terraform Cloud's payload version 2, with the result
    /// before it.
    async fn send_assessment_notification(
        &self,
        configuration: &NotificationConfiguration,
        notice: &Notice,
        assessment_id: i64,
    ) -> Result<(), SendError> {
        let Some(assessment) = self.store.assessment(assessment_id).await? else {
            return Ok(());
        };
        let Some(outcome) = assessment.outcome() else {
            return Ok(());
        };
        let Some(workspace) = self.store.workspace(assessment.workspace_id).await? else {
            return Ok(());
        };
        let prior = (self.store)
            .ended_assessment_before(assessment.workspace_id, assessment_id)
            .await?
            .and_then(|a| a.outcome());
        let name = workspace.spec.name.as_str();
        let ids = (
            format!("nc-{}", configuration.id),
            format!("asmtres-{assessment_id}"),
            format!("ws-{}", workspace.id),
        );
        let configuration_url = format!(
            "{}api/v1/notification-configurations/{}",
            self.public_url.as_str(),
            configuration.id
        );
        let result_url = self.assessment_url(name, assessment_id);
        let created_at = rfc3339(assessment.finished_at_ms.unwrap_or(notice.at_ms));
        let assessment_notice = AssessmentNotice {
            configuration_id: &ids.0,
            configuration_url: &configuration_url,
            result_id: &ids.1,
            result_url: &result_url,
            workspace_id: &ids.2,
            workspace_name: name,
            organization_name: self.notifier.organization(),
            trigger: &notice.trigger,
            outcome: &outcome,
            prior: prior.as_ref(),
            created_at: &created_at,
        };
        let answer = self
            .notifier
            .send_assessment(&configuration.spec, &assessment_notice)
            .await;
        self.answered(configuration, notice, answer).await
    }

    /// Keeps a delivery's answer and says whether it is done.
    async fn answered(
        &self,
        configuration: &NotificationConfiguration,
        notice: &Notice,
        answer: crate::notify::Answer,
    ) -> Result<(), SendError> {
        let response = DeliveryResponse {
            trigger: notice.trigger.clone(),
            run_id: Some(notice.run_id),
            status: answer.status.map(i32::from),
            success: answer.success(),
            detail: answer.detail.clone(),
            at_ms: crate::store::now_ms(),
        };
        self.store
            .record_notification_delivery(configuration.id, &response)
            .await?;
        if answer.success() {
            Ok(())
        } else if answer.is_final() {
            Err(SendError::Final(answer.describe()))
        } else {
            Err(SendError::Passing(answer.describe()))
        }
    }
}
