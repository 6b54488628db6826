//! What each event means to Gantry. `handle` parses the payload into its typed event and
//! returns the outcome and the effects to store with it; it performs no I/O itself.

use crate::events::{self, Event};
use crate::store::{DeliveryEffect, DeliveryOutcome};

pub enum Handled {
    Done {
        outcome: DeliveryOutcome,
        effects: Vec<DeliveryEffect>,
    },
    /// A passing failure: leave the delivery pending and try again later.
    #[allow(dead_code)] // produced once handlers call GitHub (runs issue)
    RetryLater(String),
}

impl Handled {
    fn processed(effects: Vec<DeliveryEffect>) -> Self {
        Handled::Done {
            outcome: DeliveryOutcome::Processed,
            effects,
        }
    }

    fn ignored(reason: impl Into<String>) -> Self {
        Handled::Done {
            outcome: DeliveryOutcome::Ignored(reason.into()),
            effects: Vec::new(),
        }
    }
}

pub fn handle(event: &str, payload: &[u8]) -> Handled {
    let event = match events::parse(event, payload) {
        Ok(event) => event,
        Err(error) => {
            return Handled::Done {
                outcome: DeliveryOutcome::Failed(error.to_string()),
                effects: Vec::new(),
            };
        }
    };
    match event {
        Event::Ping(_) => Handled::processed(Vec::new()),
        Event::Installation(e) => handle_installation(&e),
        Event::InstallationRepositories(e) => handle_installation_repositories(&e),
        Event::Push(_)
        | Event::PullRequest(_)
        | Event::IssueComment(_)
        | Event::CheckRun(_)
        | Event::CheckSuite(_) => Handled::ignored("no workspace tracks this repository"),
        Event::Unsupported { event } => {
            Handled::ignored(format!("Gantry does not use {event} events"))
        }
    }
}

fn handle_installation(e: &events::InstallationEvent) -> Handled {
    let id = e.installation.id as i64;
    let upsert = |suspended| DeliveryEffect::UpsertInstallation {
        id,
        account_login: e.installation.account.login.clone(),
        account_type: e.installation.account.r#type.clone(),
        suspended,
    };
    let repositories: Vec<String> = e
        .repositories
        .iter()
        .flatten()
        .map(|r| r.full_name.clone())
        .collect();
    match e.action.as_str() {
        "created" => Handled::processed(vec![
            upsert(false),
            DeliveryEffect::AddRepositories {
                installation_id: id,
                full_names: repositories,
            },
        ]),
        "new_permissions_accepted" | "unsuspend" => Handled::processed(vec![upsert(false)]),
        "suspend" => Handled::processed(vec![upsert(true)]),
        "deleted" => Handled::processed(vec![DeliveryEffect::RemoveInstallation { id }]),
        other => Handled::ignored(format!("installation action {other} needs nothing")),
    }
}

fn handle_installation_repositories(e: &events::InstallationRepositoriesEvent) -> Handled {
    let installation_id = e.installation.id as i64;
    let names = |repos: &[events::InstallationRepository]| {
        repos.iter().map(|r| r.full_name.clone()).collect()
    };
    Handled::processed(vec![
        DeliveryEffect::UpsertInstallation {
            id: installation_id,
            account_login: e.installation.account.login.clone(),
            account_type: e.installation.account.r#type.clone(),
            suspended: false,
        },
        DeliveryEffect::AddRepositories {
            installation_id,
            full_names: names(&e.repositories_added),
        },
        DeliveryEffect::RemoveRepositories {
            installation_id,
            full_names: names(&e.repositories_removed),
        },
    ])
}
