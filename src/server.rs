//! `gantry serve`: opens the store, starts the background tasks under one supervisor, serves
//! HTTP, and shuts down gracefully on SIGTERM or Ctrl-C: stop accepting, finish the requests in
//! flight, let the dispatcher finish the delivery in hand. Stored deliveries wait for the next start.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum_server::tls_rustls::RustlsConfig;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use secrecy::SecretString;

use crate::config::{Config, ConfigError, store_setup_token};
use crate::engine::{Dispatcher, OutboxWorker, RunControl, RunSignal, Runner};
use crate::github::GitHub;
use crate::notify::Notifier;
use crate::store::Store;
use crate::web::{self, AppState};
use crate::webhook::{Committer, Ingest, WebhookSecrets};

/// How long shutdown waits for background tasks before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Loads the configuration again, for SIGHUP.
pub type Reload = Arc<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>;

/// Runs the server until a shutdown signal; SIGHUP reloads the workspaces from `reload`.
pub async fn serve(config: Config, reload: Reload) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    serve_on(listener, config, shutdown_signal(), Some(reload)).await
}

/// Applies the configuration's workspaces again on each SIGHUP; a configuration that does not
/// load is logged and changes nothing.
async fn reload_on_sighup(
    store: Store,
    notifier: Arc<Notifier>,
    reload: Reload,
    mut hangups: tokio::signal::unix::Signal,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            received = hangups.recv() => if received.is_none() { return },
        }
        match reload() {
            Ok(config) => match store.sync_config_workspaces(&config.workspaces).await {
                Ok(report) => {
                    tracing::info!(
                        workspaces = report.synced,
                        archived = report.archived,
                        "configuration reloaded"
                    );
                    sync_notifications(&store, &config, &notifier).await;
                }
                Err(error) => {
                    tracing::error!(error = format!("{error:#}"), "reloading workspaces failed")
                }
            },
            Err(error) => tracing::error!(%error, "configuration not reloaded"),
        }
    }
}

/// Stores the configuration file's notification configurations and verifies the new or changed
/// ones (in the background: a slow receiver does not hold the start up).
async fn sync_notifications(store: &Store, config: &Config, notifier: &Arc<Notifier>) {
    if let Err(error) = store.sync_notifications(&config.notifications).await {
        tracing::error!(
            error = format!("{error:#}"),
            "storing notification configurations failed"
        );
        return;
    }
    let verifying =
        crate::engine::notifications::verify_configured(store.clone(), notifier.clone());
    tokio::spawn(verifying);
}

/// Runs the server on an already bound listener until `shutdown` completes; with `reload`,
/// SIGHUP applies the configuration's workspaces again.
pub async fn serve_on(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
    reload: Option<Reload>,
) -> anyhow::Result<()> {
    make_private_dir(&config.data_dir)?;
    let tls = load_tls(&config).await?;
    let cipher = crate::store::Cipher::load(&config.data_dir, config.encryption_key.as_ref())
        .context("loading the encryption key for sensitive variables")?;
    let store = Store::open(&config.database_url).await?.with_cipher(cipher);
    let sealed = store
        .seal_clear_secrets()
        .await
        .context("encrypting sensitive variables stored in clear text")?;
    if sealed > 0 {
        tracing::info!(
            sealed,
            "sensitive variables stored in clear text are now encrypted"
        );
    }
    let report = store
        .sync_config_workspaces(&config.workspaces)
        .await
        .context("storing the configured workspaces")?;
    tracing::info!(
        workspaces = report.synced,
        archived = report.archived,
        "workspaces loaded"
    );
    let notifier =
        Arc::new(Notifier::new(&config.organization).context("the notification client")?);
    sync_notifications(&store, &config, &notifier).await;
    // Only a server that executes runs may say its own runs were interrupted: an ingest-only
    // server must not end runs another server is executing.
    let replica = replica_id(&config.data_dir)?;
    let credentials = config
        .github
        .app
        .as_ref()
        .map(|app| app.credentials.clone());
    let metrics = crate::metrics::Metrics::new();
    let github = Arc::new(
        GitHub::new(config.github.api_url.clone(), credentials)
            .context("setting up the GitHub client")?
            .with_limits(
                config.github.content_requests_per_minute,
                config.github.timeout,
            )
            .with_call_counter(metrics.github_calls.clone()),
    );
    let setup_token = match &config.github.app {
        Some(_) => None,
        None => Some(announce_setup(&config)?),
    };

    let cancel = CancellationToken::new();
    let tasks = TaskTracker::new();
    let stored = Arc::new(Notify::new());
    let (committer, committer_task) =
        Committer::start(store.clone(), stored.clone()).context("starting ingest")?;
    let guarded_sets = config.policies.guarded_sets();
    let run_control = Arc::new(RunControl::new(
        store.clone(),
        Arc::new(RunSignal::new()),
        guarded_sets.into_iter().map(String::from).collect(),
    ));
    // Webhooks missed while Gantry was down are asked for again (needs the App's credentials).
    if config.dispatcher.enabled && config.github.app.is_some() {
        let catch_up = crate::engine::catch_up::CatchUp::new(store.clone(), github.clone());
        tasks.spawn(catch_up.run(cancel.child_token()));
    }
    // Everything Gantry tells GitHub goes through the durable outbox. Every replica sends: a
    // claimed row is leased to its sender (60 s), and one whose (kind, key) another replica is
    // sending waits for it.
    // Notifications go out on a lane of their own: a receiver that is slow or down never
    // holds GitHub's feedback up.
    let outbox_worker = |notifications: bool| {
        OutboxWorker::new(
            store.clone(),
            github.clone(),
            config.public_url.clone(),
            config.feedback,
            metrics.clone(),
            notifier.clone(),
        )
        .lane(notifications)
    };
    if config.dispatcher.enabled {
        OutboxWorker::recover_in_flight(&store).await;
        tasks.spawn(outbox_worker(false).run(cancel.child_token()));
        tasks.spawn(outbox_worker(true).run(cancel.child_token()));
    }
    let mut runner_refusal = None;
    if config.runner.enabled {
        let runner = Runner::new(
            &config,
            store.clone(),
            github.clone(),
            run_control.clone(),
            replica.clone(),
        );
        runner_refusal = runner.refusal();
        tasks.spawn(runner.run(cancel.child_token()));
    } else {
        tracing::warn!("runner disabled: runs are queued but not executed here");
    }
    if config.dispatcher.enabled {
        // Deliveries another replica stores wake this dispatcher too (PostgreSQL).
        store
            .wake_on_new_deliveries(stored.clone())
            .await
            .context("listening for new deliveries")?;
        let dispatcher = Dispatcher::new(
            store.clone(),
            github.clone(),
            stored.clone(),
            run_control.clone(),
            &config,
            metrics.clone(),
        );
        tasks.spawn(dispatcher.run(cancel.child_token()));
    } else {
        tracing::warn!("dispatcher disabled: deliveries are stored but not processed");
    }
    if let Some(reload) = reload {
        use tokio::signal::unix::{SignalKind, signal};
        // Watched from here, before "listening" is logged, not from the task's first poll: a
        // SIGHUP that came in between would end the process (its default action).
        match signal(SignalKind::hangup()) {
            Ok(hangups) => {
                tasks.spawn(reload_on_sighup(
                    store.clone(),
                    notifier.clone(),
                    reload,
                    hangups,
                    cancel.child_token(),
                ));
            }
            Err(error) => tracing::warn!(%error, "SIGHUP cannot be watched: reload by restarting"),
        }
    }
    tasks.close();

    // Where Gantry is reached, the address it is bound to included: no notification may go
    // there.
    let bound = listener.local_addr()?;
    let own_urls = crate::config::own_urls(&config.public_url, &[config.listen, bound]);
    let state = Arc::new(AppState {
        own_urls,
        ingest: Arc::new(Ingest {
            secrets: WebhookSecrets::new(&config.github.webhook_secrets),
            committer,
            max_body_bytes: config.ingest.max_body_bytes,
        }),
        config,
        store: store.clone(),
        github,
        setup_token,
        runs: run_control,
        metrics,
        runner_refusal,
        notifier,
    });
    let address = listener.local_addr()?;
    tracing::info!(%address, database = store.backend_name(), "gantry listening");
    let http_cancel = cancel.clone();
    let shutdown = async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections; finishing requests in flight");
        http_cancel.cancel();
    };
    match tls {
        None => axum::serve(listener, web::router(state))
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving HTTP")?,
        Some(tls) => serve_https(listener, web::router(state), tls, shutdown).await?,
    }

    // The router (and with it every committer handle) is gone: the committer drains and ends.
    cancel.cancel();
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        let _ = committer_task.await;
        tasks.wait().await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!("background tasks did not stop in time");
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, store.close())
        .await
        .is_err()
    {
        tracing::warn!("the database did not close in time");
    }
    tracing::info!("gantry stopped");
    Ok(())
}

/// Serves `router` over HTTPS with the configured certificate until `shutdown` completes,
/// then lets the requests in flight finish.
async fn serve_https(
    listener: TcpListener,
    router: axum::Router,
    tls: RustlsConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let handle = axum_server::Handle::new();
    let stopping = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopping.graceful_shutdown(Some(SHUTDOWN_GRACE));
    });
    axum_server::from_tcp_rustls(listener.into_std()?, tls)?
        .handle(handle)
        .serve(router.into_make_service())
        .await
        .context("serving HTTPS")
}

/// The certificate and key of `[tls]`, read at start so that a bad file stops Gantry there.
async fn load_tls(config: &Config) -> anyhow::Result<Option<RustlsConfig>> {
    let Some(tls) = &config.tls else {
        return Ok(None);
    };
    // Several crates of the build enable rustls; its process-wide provider is chosen here
    // rather than left to whichever one asks first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let loaded = RustlsConfig::from_pem_file(&tls.cert_path, &tls.key_path)
        .await
        .with_context(|| {
            format!(
                "tls: reading the certificate {} and key {}",
                tls.cert_path.display(),
                tls.key_path.display()
            )
        })?;
    Ok(Some(loaded))
}

/// Makes the one-time token that opens the GitHub App setup page, saves it (0600) in the data
/// dir and says where to go. The token itself is not logged.
fn announce_setup(config: &Config) -> anyhow::Result<SecretString> {
    use rand::Rng;
    let token = hex::encode(rand::rng().random::<[u8; 16]>());
    let path = store_setup_token(&config.data_dir, &token)
        .context("writing the GitHub App setup token")?;
    tracing::warn!(
        setup = %format!("{}github-app/setup?token=<the token in {}>", config.public_url, path.display()),
        "no GitHub App configured yet: webhooks are refused until the app is set up"
    );
    Ok(SecretString::from(token))
}

/// Completes on SIGTERM or Ctrl-C (SIGINT). The handlers are installed when this is called,
/// not when the future is first polled, so a signal that comes right after start-up is not
/// met by the default action (killing the process).
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = signal(SignalKind::terminate()).ok();
    let interrupt = signal(SignalKind::interrupt()).ok();
    async move {
        let wait = |stream: Option<tokio::signal::unix::Signal>| async move {
            match stream {
                Some(mut stream) => {
                    stream.recv().await;
                }
                // If a handler cannot be installed, wait for the other one.
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = wait(terminate) => {}
            _ = wait(interrupt) => {}
        }
    }
}

/// The data dir holds the database, keys and runs: only Gantry's user may enter it.
fn make_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("making {} private", dir.display()))
}

/// This server's replica id, kept in its data dir so that a restarted server knows the runs
/// it was executing before as its own.
fn replica_id(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("replica-id");
    if let Ok(id) = std::fs::read_to_string(&path)
        && !id.trim().is_empty()
    {
        return Ok(id.trim().to_string());
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let id = format!("replica-{:016x}", rand::random::<u64>());
    std::fs::write(&path, &id).with_context(|| format!("writing {}", path.display()))?;
    Ok(id)
}
