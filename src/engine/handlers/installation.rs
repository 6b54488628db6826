//! The App installed, changed or removed, and the repositories it may see.

use super::{Handled, Stop};
use crate::events;
use crate::store::{DeliveryEffect, InstallationChange};

pub(super) fn handle_installation(e: &events::InstallationEvent) -> Handled {
    let id = e.installation.id;
    let upsert = |suspended| {
        DeliveryEffect::Installation(InstallationChange::Upsert {
            id,
            account_login: e.installation.account.login.clone(),
            account_type: e.installation.account.r#type.clone(),
            suspended,
        })
    };
    let repositories: Vec<String> = e
        .repositories
        .iter()
        .flatten()
        .map(|r| r.full_name.clone())
        .collect();
    match e.action.as_str() {
        "created" => Ok(vec![
            upsert(false),
            DeliveryEffect::Installation(InstallationChange::AddRepositories {
                installation_id: id,
                full_names: repositories,
            }),
        ]),
        "new_permissions_accepted" | "unsuspend" => Ok(vec![upsert(false)]),
        "suspend" => Ok(vec![upsert(true)]),
        "deleted" => Ok(vec![DeliveryEffect::Installation(
            InstallationChange::Remove { id },
        )]),
        other => Err(Stop::ignored(format!(
            "installation action {other} needs nothing"
        ))),
    }
}

pub(super) fn handle_installation_repositories(
    e: &events::InstallationRepositoriesEvent,
) -> Handled {
    let installation_id = e.installation.id;
    let names = |repos: &[events::InstallationRepository]| {
        repos.iter().map(|r| r.full_name.clone()).collect()
    };
    Ok([
        InstallationChange::Upsert {
            id: installation_id,
            account_login: e.installation.account.login.clone(),
            account_type: e.installation.account.r#type.clone(),
            suspended: false,
        },
        InstallationChange::AddRepositories {
            installation_id,
            full_names: names(&e.repositories_added),
        },
        InstallationChange::RemoveRepositories {
            installation_id,
            full_names: names(&e.repositories_removed),
        },
    ]
    .into_iter()
    .map(DeliveryEffect::Installation)
    .collect())
}
