//! `pairgate connect`: the app side for tools that cannot sign DPoP proofs (coding agents,
//! bearer-only SDKs). It pairs once (the Rust SDK does the protocol), keeps the private key in the
//! OS keychain or a 0600 file, and serves a loopback endpoint that accepts only its own caller
//! token and forwards every request signed with a fresh proof. The caller token never reaches
//! the gateway; the key never leaves this process.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use pairgate_sdk::{Client, PairOptions, SdkError};

use crate::cli::commands::CommandError;

mod env;
mod serve;
mod store;

pub use env::Tool;
use serve::DEFAULT_LISTEN;
use store::{ConnectorStorage, SecretPlace, SecretStoreChoice, StateDir};

/// `pairgate connect ...`.
#[derive(Debug, clap::Args)]
pub struct ConnectArgs {
    /// The connector's state dir (default: the platform config dir's pairgate/connect).
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: ConnectCommand,
}

#[derive(Debug, Subcommand)]
pub enum ConnectCommand {
    /// Redeem a pairing string from the gateway's owner (read from stdin when not given): makes
    /// this connector's key pair and caller token.
    Pair {
        /// The pairing string (`pgpair1.…`).
        pairing: Option<String>,
        /// The name the owner sees for this connector.
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Where the private key and caller token are kept.
        #[arg(long, value_enum, default_value = "auto")]
        secret_store: SecretStoreChoice,
    },
    /// Ask the gateway's owner for a grant (device flow): prints the user code and the key's
    /// fingerprint, then waits for the owner's decision.
    Request {
        /// The gateway's URL.
        #[arg(long, value_name = "URL")]
        gateway: String,
        /// The name the owner sees for this connector.
        #[arg(long, value_name = "NAME")]
        app: String,
        /// The grant policy asked for, as JSON (the owner may narrow it).
        #[arg(long, value_name = "JSON", default_value = "{}")]
        policy: String,
        /// Where the private key and caller token are kept.
        #[arg(long, value_enum, default_value = "auto")]
        secret_store: SecretStoreChoice,
    },
    /// Listen on a loopback address and forward each request with the caller token to the
    /// gateway, signed. Prints the listening address first.
    Serve {
        /// Loopback address (port 0 picks a free port).
        #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
        listen: String,
    },
    /// Print the lines that point a tool at `connect serve` (the caller token included).
    Env {
        #[arg(value_enum)]
        tool: Tool,
        /// The address `connect serve` listens on (default: where the running `connect serve`
        /// said it listens, else 127.0.0.1:8790).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Run a command with the connector on a loopback port (an ephemeral one unless `--listen`
    /// says which) and the tool's variables set for it alone; exits with the command's exit code.
    Run {
        /// Set this tool's variables only (default: the OpenAI, Anthropic and Codex ones).
        #[arg(long, value_enum)]
        tool: Option<Tool>,
        /// Loopback address for the connector. Codex reads its provider's URL from its config
        /// file, not the environment: give it the address `connect env codex --listen` printed.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
        listen: String,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Show the gateway, grant, key fingerprint and remaining budgets.
    Status,
    /// Delete the key, the caller token and the session.
    Forget,
}

/// Runs `pairgate connect`, mapping failures to one line on stderr and a sysexits code.
pub fn main(args: ConnectArgs) -> ExitCode {
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CommandError::Api(format!("cannot start the runtime: {e}")))
        .and_then(|rt| rt.block_on(run(args)));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pairgate connect: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn sdk(e: SdkError) -> CommandError {
    CommandError::Api(e.to_string())
}

async fn run(args: ConnectArgs) -> Result<ExitCode, CommandError> {
    let dir = StateDir::resolve(args.state_dir)?;
    match args.command {
        ConnectCommand::Pair {
            pairing,
            name,
            secret_store,
        } => {
            let pairing = match pairing {
                Some(p) => p,
                None => read_pairing()?,
            };
            let storage = prepare(&dir, secret_store)?;
            let opts = PairOptions {
                app_name: name,
                http: Some(http_client()?),
                ..PairOptions::default()
            };
            let client = Client::pair(pairing.trim(), opts, storage)
                .await
                .map_err(sdk)?;
            paired(&client, &dir);
        }
        ConnectCommand::Request {
            gateway,
            app,
            policy,
            secret_store,
        } => {
            let policy: serde_json::Value = serde_json::from_str(&policy)
                .map_err(|e| CommandError::Usage(format!("--policy is not JSON: {e}")))?;
            let storage = prepare(&dir, secret_store)?;
            let opts = PairOptions {
                http: Some(http_client()?),
                ..PairOptions::default()
            };
            let pending = Client::request_consent(&gateway, &app, &policy, opts, storage)
                .await
                .map_err(sdk)?;
            println!(
                "Ask the gateway's owner to approve code {} (key fingerprint {}) at {}",
                pending.user_code, pending.key_fingerprint, pending.verification_uri_complete
            );
            println!("Waiting for the owner's decision...");
            flush();
            let client = pending.wait().await.map_err(sdk)?;
            paired(&client, &dir);
        }
        ConnectCommand::Serve { listen } => {
            let addr = serve::parse_listen(&listen)?;
            let (client, storage) = open(dir.clone())?;
            let listener = serve::bind(addr).await?;
            let local = listener.local_addr().map_err(|e| {
                CommandError::Api(format!("cannot read the listening address: {e}"))
            })?;
            dir.record_listen(local)?;
            println!("listening on http://{local}");
            flush();
            eprintln!(
                "pairgate connect: forwarding to {} for grant {}; `pairgate connect env <tool>` \
                 prints what to give a tool",
                client.gateway_url(),
                client.grant_id()
            );
            let served =
                serve::serve(listener, client, storage.caller_token(), shutdown_signal()).await;
            dir.clear_listen();
            served?;
        }
        ConnectCommand::Env { tool, listen } => {
            let addr = match listen {
                Some(text) => serve::parse_listen(&text)?,
                None => match dir.recorded_listen() {
                    Some(addr) => addr,
                    None => serve::parse_listen(DEFAULT_LISTEN)?,
                },
            };
            let storage = ConnectorStorage::open(dir)?;
            print!("{}", env::render(tool, addr, storage.caller_token()));
        }
        ConnectCommand::Run {
            tool,
            listen,
            command,
        } => {
            let addr = serve::parse_listen(&listen)?;
            return run_child(dir, tool, addr, command).await;
        }
        ConnectCommand::Status => status(dir).await?,
        ConnectCommand::Forget => {
            let grant = dir.paired_grant().ok().flatten();
            if dir.forget()? {
                println!(
                    "Deleted the connector's key, caller token and session from {}.",
                    dir.path().display()
                );
                if let Some(grant) = grant {
                    println!(
                        "The grant stays until the owner revokes it: `pairgate grant revoke \
                         {grant}`"
                    );
                }
            } else {
                println!("Nothing to forget in {}.", dir.path().display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn flush() {
    let _ = std::io::stdout().flush();
}

/// A pairing string from stdin (one line), so it need not appear in the shell's history.
fn read_pairing() -> Result<String, CommandError> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| CommandError::Usage(format!("cannot read the pairing string: {e}")))?;
    if line.trim().is_empty() {
        return Err(CommandError::Usage(
            "give the pairing string as an argument or on stdin".into(),
        ));
    }
    Ok(line)
}

/// Refuses to pair over an existing pairing, creates the dir, picks the secret store.
fn prepare(dir: &StateDir, choice: SecretStoreChoice) -> Result<ConnectorStorage, CommandError> {
    if let Some(grant) = dir.paired_grant()? {
        return Err(CommandError::Usage(format!(
            "{} is already paired (grant {grant}); `pairgate connect forget` first, or pass \
             another --state-dir",
            dir.path().display()
        )));
    }
    dir.create()?;
    let place = dir.choose_place(choice)?;
    Ok(ConnectorStorage::new_pairing(dir.clone(), place))
}

fn paired(client: &Client, dir: &StateDir) {
    println!(
        "Paired: grant {} at {} (key fingerprint {}); state in {}",
        client.grant_id(),
        client.gateway_url(),
        client.key_fingerprint(),
        dir.path().display()
    );
    println!("Next: `pairgate connect serve`, or `pairgate connect run -- <command>`");
}

/// The paired client and its storage (which holds the caller token).
fn open(dir: StateDir) -> Result<(Client, std::sync::Arc<ConnectorStorage>), CommandError> {
    let storage = std::sync::Arc::new(ConnectorStorage::open(dir)?);
    let opts = PairOptions {
        http: Some(http_client()?),
        ..PairOptions::default()
    };
    let client = Client::from_storage(Shared(storage.clone()), opts)
        .map_err(sdk)?
        .ok_or_else(|| CommandError::Api("the connector's session vanished".into()))?;
    Ok((client, storage))
}

/// The client to the gateway: a bounded connect time (an unreachable gateway is reported
/// soon), no overall timeout (streams last as long as the answer).
fn http_client() -> Result<reqwest::Client, CommandError> {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| CommandError::Api(format!("cannot build the HTTP client: {e}")))
}

/// Lets the SDK and this module share one storage.
#[derive(Debug)]
struct Shared(std::sync::Arc<ConnectorStorage>);

impl pairgate_sdk::Storage for Shared {
    fn load(&self) -> Result<Option<pairgate_sdk::StoredSession>, SdkError> {
        self.0.load()
    }

    fn save(&self, session: &pairgate_sdk::StoredSession) -> Result<(), SdkError> {
        self.0.save(session)
    }

    fn lock_for_refresh(&self) -> Result<Option<pairgate_sdk::RefreshGuard>, SdkError> {
        self.0.lock_for_refresh()
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => ctrl_c.await,
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}

/// `connect run`: the connector on an ephemeral loopback port, the command with the variables.
async fn run_child(
    dir: StateDir,
    tool: Option<Tool>,
    listen: SocketAddr,
    command: Vec<String>,
) -> Result<ExitCode, CommandError> {
    let (client, storage) = open(dir)?;
    let listener = serve::bind(listen).await?;
    let addr = listener
        .local_addr()
        .map_err(|e| CommandError::Api(format!("cannot read the listening address: {e}")))?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let token = storage.caller_token().clone();
    let server = tokio::spawn(async move {
        let stop = async move {
            let _ = stop_rx.await;
        };
        serve::serve(listener, client, &token, stop).await
    });
    let Some((program, args)) = command.split_first() else {
        return Err(CommandError::Usage(
            "give the command to run after `--`".into(),
        ));
    };
    let mut child = tokio::process::Command::new(program);
    child
        .args(args)
        .envs(env::vars(tool, addr, storage.caller_token()));
    let mut child = child
        .spawn()
        .map_err(|e| CommandError::Usage(format!("cannot run {program}: {e}")))?;
    // Ctrl-C reaches the child (same process group); the connector stays up until it exits.
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    .map_err(|e| CommandError::Api(format!("waiting for {program} failed: {e}")))?;
    let _ = stop_tx.send(());
    let _ = server.await;
    Ok(exit_code(status))
}

fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    if let Some(code) = status.code() {
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return ExitCode::from(u8::try_from(128 + sig).unwrap_or(1));
        }
    }
    ExitCode::from(1)
}

async fn status(dir: StateDir) -> Result<(), CommandError> {
    let (client, storage) = open(dir)?;
    let secrets = match storage.place() {
        SecretPlace::Keychain => format!("OS keychain (service {})", store::KEYCHAIN_SERVICE),
        SecretPlace::SecretService => {
            format!("Secret Service (service {})", store::KEYCHAIN_SERVICE)
        }
        SecretPlace::File => format!("{} (mode 0600)", storage.dir().secret_file().display()),
    };
    println!("gateway      {}", client.gateway_url());
    println!("grant        {}", client.grant_id());
    println!("key          {}", client.key_fingerprint());
    println!("secrets      {secrets}");
    let res = client.get("/v1/grant").send().await.map_err(sdk)?;
    let code = res.status();
    let body: serde_json::Value = res.json().await.map_err(|e| sdk(e.into()))?;
    if !code.is_success() {
        let why = body["error"]["message"]
            .as_str()
            .or(body["error_description"].as_str())
            .unwrap_or("no reason given");
        return Err(CommandError::Api(format!(
            "the gateway refused this connector ({code}): {why}"
        )));
    }
    println!("app          {}", body["app_name"].as_str().unwrap_or("-"));
    println!("status       {}", body["status"].as_str().unwrap_or("-"));
    let remaining = serde_json::to_string_pretty(&body["remaining"]).unwrap_or_default();
    println!(
        "remaining    {}",
        remaining.replace('\n', "\n             ")
    );
    Ok(())
}
