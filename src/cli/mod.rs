//! The command line: `gantry serve` and friends. Parses arguments, loads the configuration,
//! and calls into the library; no logic of its own.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

mod client;
mod pack;

#[derive(Debug, Parser)]
#[command(
    name = "gantry",
    version,
    about = "Runs Terraform for your GitHub repositories, the way Terraform Cloud's VCS workflow does"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Gantry server: webhooks, runs, web UI and API.
    Serve {
        /// The TOML configuration file (see gantry.example.toml); GANTRY_* variables override it.
        #[arg(long, short, env = "GANTRY_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Try Gantry: a local stand-in for GitHub, a sample repository with two workspaces, a push
    /// and a pull request, on SQLite in a temporary directory. Needs Terraform on PATH.
    Demo {
        /// Where the UI listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
    },
    /// Check a configuration file and the environment, print what Gantry would use, and exit.
    CheckConfig {
        #[arg(long, short, env = "GANTRY_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Runs, through a running Gantry's API.
    Runs {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// Workspaces, through a running Gantry's API.
    Workspaces {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: WorkspacesCommand,
    },
    /// Lock a workspace: its queued runs wait until it is unlocked.
    Lock {
        #[command(flatten)]
        api: ApiArgs,
        workspace: String,
        #[arg(long)]
        reason: String,
    },
    /// Unlock a workspace.
    Unlock {
        #[command(flatten)]
        api: ApiArgs,
        workspace: String,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Internal: supervises one Terraform phase for a running Gantry (see
    /// `executor::supervisor`). Started by Gantry, never by hand.
    #[command(hide = true)]
    Supervise {
        #[arg(long)]
        phase_dir: PathBuf,
        #[arg(long)]
        phase: String,
        #[arg(long)]
        timeout_ms: u64,
        #[arg(long)]
        sandboxed: bool,
        #[arg(last = true, required = true)]
        command: Vec<std::ffi::OsString>,
    },
}

/// Where the API is and who asks.
#[derive(Debug, clap::Args)]
struct ApiArgs {
    /// Gantry's URL.
    #[arg(
        long,
        env = "GANTRY_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// An API token (`gantry token create`).
    #[arg(long, env = "GANTRY_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
}

#[derive(Debug, Subcommand)]
enum RunsCommand {
    /// Stream a run's logs and state changes until it ends; exit 1 if it errored, 3 if it was
    /// canceled or discarded, 4 if the API could not be used.
    Watch { run_id: i64 },
    /// Start a run and stream it like `watch`: of the head of the workspace's branch on GitHub
    /// (through the queue, like a push), or with `--dir` of a configuration directory uploaded
    /// now (the API-driven workflow; files ignored by .gitignore or .terraformignore stay
    /// behind).
    Create {
        /// The workspace to run in.
        #[arg(long)]
        workspace: String,
        /// Upload this configuration directory and run it; with a workspace working directory
        /// of N levels, the directory N levels up is uploaded.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Plan only: no apply, outside the workspace's queue.
        #[arg(long, alias = "plan-only")]
        speculative: bool,
        #[command(flatten)]
        options: RunOptionArgs,
    },
}

/// What a person may ask of a run's plan, as `terraform plan` spells it.
#[derive(Debug, clap::Args)]
pub struct RunOptionArgs {
    /// Plan to destroy everything the workspace manages.
    #[arg(long)]
    pub destroy: bool,
    /// Plan only to update the state to match the real infrastructure.
    #[arg(long)]
    pub refresh_only: bool,
    /// Plan only this resource (and what it depends on); repeatable.
    #[arg(long = "target", value_name = "ADDRESS")]
    pub targets: Vec<String>,
    /// Plan to replace this resource; repeatable.
    #[arg(long = "replace", value_name = "ADDRESS")]
    pub replaces: Vec<String>,
    /// Why the run was started, shown with it.
    #[arg(long, default_value = "")]
    pub message: String,
}

#[derive(Debug, Subcommand)]
enum WorkspacesCommand {
    /// List the workspaces.
    List,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Make an API token; it is printed once and only its hash is stored.
    Create {
        /// Who or what the token is for (unique).
        #[arg(long)]
        name: String,
        /// read: sees; write: also plans, confirms, discards, cancels; admin: also locks and manages.
        #[arg(long, value_parser = ["read", "write", "admin"])]
        role: String,
        #[arg(long, short, env = "GANTRY_CONFIG")]
        config: Option<PathBuf>,
    },
}

/// Exit code for a configuration or usage error.
const EXIT_CONFIG: u8 = 2;

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Supervise {
        phase_dir,
        phase,
        timeout_ms,
        sandboxed,
        command,
    } = cli.command
    {
        // No logging set up: the supervisor's stderr is the phase's log.
        return crate::executor::supervisor::process::supervise(
            crate::executor::supervisor::process::SuperviseArgs {
                phase_dir,
                phase,
                timeout: std::time::Duration::from_millis(timeout_ms),
                sandboxed,
                command,
            },
        );
    }
    init_tracing();
    match cli.command {
        Command::Serve { config: path } => {
            let Some(config) = load_config(path.clone()) else {
                return ExitCode::from(EXIT_CONFIG);
            };
            let reload: crate::server::Reload =
                std::sync::Arc::new(move || Config::load(path.as_deref(), &Config::process_env()));
            run_async(crate::server::serve(config, reload))
        }
        Command::CheckConfig { config } => match load_config(config) {
            Some(config) => {
                println!("configuration OK");
                println!("  listen:     {}", config.listen);
                println!("  public_url: {}", config.public_url);
                println!("  data_dir:   {}", config.data_dir.display());
                println!("  github api: {}", config.github.api_url);
                match &config.github.app {
                    Some(app) => println!(
                        "  github app: {} ({} webhook secret(s))",
                        app.app_id,
                        config.github.webhook_secrets.len()
                    ),
                    None => println!("  github app: not set up (open /github-app/setup)"),
                }
                ExitCode::SUCCESS
            }
            None => ExitCode::from(EXIT_CONFIG),
        },
        Command::Demo { listen } => run_async(crate::demo::run(listen)),
        Command::Runs {
            api,
            command: RunsCommand::Watch { run_id },
        } => with_client(api, |client| async move { client.watch(run_id).await }),
        Command::Runs {
            api,
            command:
                RunsCommand::Create {
                    workspace,
                    dir,
                    speculative,
                    options,
                },
        } => with_client(api, |client| async move {
            (client.create_run(&workspace, dir.as_deref(), speculative, &options)).await
        }),
        Command::Workspaces {
            api,
            command: WorkspacesCommand::List,
        } => with_client(api, |client| async move {
            client.workspaces().await.map(|()| ExitCode::SUCCESS)
        }),
        Command::Lock {
            api,
            workspace,
            reason,
        } => with_client(api, |client| async move {
            client
                .lock(&workspace, &reason)
                .await
                .map(|()| ExitCode::SUCCESS)
        }),
        Command::Unlock { api, workspace } => with_client(api, |client| async move {
            client.unlock(&workspace).await.map(|()| ExitCode::SUCCESS)
        }),
        Command::Token {
            command: TokenCommand::Create { name, role, config },
        } => {
            let Some(config) = load_config(config) else {
                return ExitCode::from(EXIT_CONFIG);
            };
            run_async(create_token(config, name, role))
        }
        // Handled before logging was set up.
        Command::Supervise { .. } => ExitCode::FAILURE,
    }
}

async fn create_token(config: Config, name: String, role: String) -> anyhow::Result<()> {
    use crate::web::api::auth::{new_token, token_hash};
    let name = name.trim().to_string();
    anyhow::ensure!(!name.is_empty(), "a token needs a name");
    let store = crate::store::Store::open(&config.database_url).await?;
    let token = new_token();
    let created = store
        .create_api_token(&name, &role, &token_hash(&token))
        .await;
    store.close().await;
    created.map_err(|e| {
        anyhow::anyhow!("creating the token {name} failed (is the name taken?): {e:#}")
    })?;
    println!("{token}");
    eprintln!("token {name} ({role}) created; it is shown only this once");
    Ok(())
}

/// Runs an API command; a missing token or a bad local argument is a usage error (2), an API
/// failure exit code 4.
fn with_client<F, Fut>(api: ApiArgs, command: F) -> ExitCode
where
    F: FnOnce(client::Client) -> Fut,
    Fut: Future<Output = Result<ExitCode, client::ClientError>>,
{
    let Some(token) = api.token.filter(|t| !t.trim().is_empty()) else {
        eprintln!("gantry: an API token is needed: --token or GANTRY_TOKEN (gantry token create)");
        return ExitCode::from(EXIT_CONFIG);
    };
    let client = client::Client::new(&api.url, token.trim());
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("gantry: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command(client)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("gantry: {error}");
            match error {
                client::ClientError::Local(_) => ExitCode::from(EXIT_CONFIG),
                _ => ExitCode::from(client::EXIT_API),
            }
        }
    }
}

fn load_config(path: Option<PathBuf>) -> Option<Config> {
    match Config::load(path.as_deref(), &Config::process_env()) {
        Ok(config) => Some(config),
        Err(error) => {
            eprintln!("gantry: {error}");
            None
        }
    }
}

fn run_async(work: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(workers) = worker_threads() {
        builder.worker_threads(workers);
    }
    let runtime = match builder.build() {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("gantry: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "gantry failed");
            eprintln!("gantry: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Tokio worker threads: one fewer than the CPUs, at least one. Under load ingest's commit
/// thread (`webhook/committer.rs`) keeps a CPU busy by itself, and a worker for every CPU beside
/// it oversubscribes them: measured with `examples/loadgen` on 2 CPUs, one worker took ~7% more
/// deliveries/s than two, with less CPU per delivery. `TOKIO_WORKER_THREADS` still decides
/// when set (`None` here leaves it to tokio).
fn worker_threads() -> Option<usize> {
    if std::env::var_os("TOKIO_WORKER_THREADS").is_some() {
        return None;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    Some(cpus.saturating_sub(1).max(1))
}

/// Logs to stderr; `RUST_LOG` (or `GANTRY_LOG`) sets the filter, `info` by default.
fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("GANTRY_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info,tower_http=warn,sqlx=warn"));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
