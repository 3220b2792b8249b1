//! `entente node` (the daemon) and `entente deploy`.

use std::path::Path;

use alloy::signers::local::PrivateKeySigner;
use entente_chain::ChainClient;
use entente_contracts::artifacts;
use entente_daemon::abi::MachineAbi;
use entente_daemon::accounts;
use entente_daemon::config::DaemonConfig;
use entente_daemon::daemon::{Daemon, Machine, MachineBook, MachineEntry};
use entente_daemon::password::PasswordSource;

fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,libp2p=warn"));
    use std::io::IsTerminal as _;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Waits until the chain at `url` answers, showing how long it has waited (on a terminal, one line
/// updated in place; otherwise a line every ten seconds). Ctrl-C gives up.
pub(crate) async fn wait_for_chain(url: &str) -> Result<u64, String> {
    use std::io::{IsTerminal as _, Write as _};
    let tty = std::io::stderr().is_terminal();
    // A throwaway key: the probe only reads the chain id.
    let probe =
        PrivateKeySigner::from_bytes(&entente_types::B256::repeat_byte(0x11)).map_err(|e| e.to_string())?;
    let mut waited = 0u64;
    loop {
        let attempt = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            ChainClient::connect(url, probe.clone()),
        );
        let error = match attempt.await {
            Ok(Ok(client)) => {
                if waited > 0 && tty {
                    eprintln!();
                }
                eprintln!("chain {url}: chain id {}", client.chain_id());
                return Ok(client.chain_id());
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer in 5 s".to_string(),
        };
        if tty {
            eprint!("\rwaiting for the chain at {url}: {waited} s ({error})\x1b[K");
            let _ = std::io::stderr().flush();
        } else if waited.is_multiple_of(10) {
            eprintln!("waiting for the chain at {url}: {waited} s ({error})");
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Err(format!("gave up waiting for the chain at {url}")),
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
        waited += 1;
    }
}

/// The API token of the daemon at `config`, refused when others may read its file.
fn api_token(config: &DaemonConfig) -> Result<String, String> {
    let token_path = config.resolve(&config.api.token_file);
    let token = std::fs::read_to_string(&token_path)
        .map_err(|e| format!("API token {}: {e}", token_path.display()))?;
    if entente_daemon::files::readable_by_others(&token_path).unwrap_or(false) {
        return Err(format!(
            "{} is readable by others: `chmod 600` it",
            token_path.display()
        ));
    }
    Ok(token.trim().to_string())
}

/// The web front-end's address with the token in its fragment (a fragment is not sent to the
/// server nor in a Referer; the page moves it to the tab's session storage).
pub(crate) fn web_url(home: &Path) -> Result<String, String> {
    let config = DaemonConfig::load(home).map_err(|e| e.to_string())?;
    let token = api_token(&config)?;
    let listen = config.api.listen;
    let host = if listen.ip().is_unspecified() {
        format!("127.0.0.1:{}", listen.port())
    } else {
        listen.to_string()
    };
    Ok(format!("http://{host}/#token={token}"))
}

/// Runs the daemon until SIGINT or SIGTERM.
pub(crate) async fn run(
    home: &Path,
    passwords: &PasswordSource,
    static_dir: Option<std::path::PathBuf>,
) -> Result<(), String> {
    init_logs();
    let config = DaemonConfig::load(home).map_err(|e| e.to_string())?;
    let token = api_token(&config)?;
    let static_dir = static_dir
        .or_else(|| config.api.static_dir.as_ref().map(|d| config.resolve(d)))
        .map(|d| entente_daemon::server::check_static_dir(&d, &config.home))
        .transpose()?;
    let listen = config.api.listen;
    wait_for_chain(&config.chain.rpc_url).await?;
    let daemon = Daemon::start(config, passwords)
        .await
        .map_err(|e| e.to_string())?;
    let web = static_dir.is_some();
    let (addr, handle) = entente_daemon::server::serve(daemon.clone(), listen, &token, static_dir)
        .await
        .map_err(|e| format!("API on {listen}: {e}"))?;
    for s in daemon.sessions.values() {
        let addrs = s.node.listen_addrs().await.map_err(|e| e.to_string())?;
        let addrs: Vec<String> = addrs
            .iter()
            .map(|a| format!("{a}/p2p/{}", s.node.peer_id()))
            .collect();
        println!(
            "session account={} address={} listen={}",
            s.account,
            s.node.address(),
            addrs.join(",")
        );
    }
    println!("api url=ws://{addr}");
    if web {
        println!("web url=http://{addr}/ (`entente web` prints it with the token)");
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = handle.clone().stopped() => {}
    }
    let _ = handle.stop();
    println!("stopped");
    Ok(())
}

/// Deploys the manager (unless the configuration names one with code) and the machines.
pub(crate) async fn deploy(
    home: &Path,
    passwords: &PasswordSource,
    account: Option<&str>,
    machines: &[String],
    new_manager: bool,
) -> Result<(), String> {
    let mut config = DaemonConfig::load(home).map_err(|e| e.to_string())?;
    let acct = config.account(account).map_err(|e| e.to_string())?.clone();
    let key = accounts::unlock(&config, &acct, passwords).map_err(|e| e.to_string())?;
    let signer = PrivateKeySigner::from_bytes(key.expose()).map_err(|e| e.to_string())?;
    wait_for_chain(&config.chain.rpc_url).await?;
    let mut chain = ChainClient::connect(&config.chain.rpc_url, signer)
        .await
        .map_err(|e| e.to_string())?;
    let existing = match config.chain.manager {
        Some(m) if !new_manager => !chain.code(m).await.map_err(|e| e.to_string())?.is_empty(),
        _ => false,
    };
    if !existing {
        eprintln!("deploying the StateChannelManager (three transactions) ...");
        let manager = chain.deploy_manager().await.map_err(|e| e.to_string())?;
        config.chain.manager = Some(manager);
        config.save().map_err(|e| e.to_string())?;
    }
    println!("manager address={}", config.chain.manager.unwrap_or_default());
    let mut book = MachineBook::load(MachineBook::file(&config.home)).map_err(|e| e.to_string())?;
    for m in machines {
        let (name, artifact) = match m.as_str() {
            "tictactoe" => ("tictactoe".to_string(), artifacts::TIC_TAC_TOE.to_string()),
            "payments" => ("payments".to_string(), artifacts::PAYMENTS.to_string()),
            "roundrobin" => (
                "roundrobin".to_string(),
                artifacts::ROUND_ROBIN_COUNTER.to_string(),
            ),
            other => {
                let (name, path) = other.split_once('=').ok_or_else(|| {
                    format!("--machine {other}: tictactoe, payments, roundrobin or NAME=PATH.json")
                })?;
                let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
                (name.to_string(), text)
            }
        };
        let abi = MachineAbi::from_artifact(&artifact).map_err(|e| format!("{name}: {e}"))?;
        let code = entente_contracts::Artifact::parse(&artifact)
            .and_then(|a| a.creation_code().cloned())
            .map_err(|e| format!("{name}: {e}"))?;
        eprintln!("deploying {name} ...");
        let address = chain.deploy(code).await.map_err(|e| format!("{name}: {e}"))?;
        book.put(Machine {
            entry: MachineEntry {
                name: name.clone(),
                address,
                artifact,
            },
            abi,
        })
        .map_err(|e| e.to_string())?;
        println!("machine name={name} address={address}");
    }
    Ok(())
}
