//! `entente`: the Entente daemon and its command-line client.
//!
//! `entente init` sets up a home directory (configuration, encrypted key, API token);
//! `entente node` runs the daemon; the other commands talk to a running daemon over its API.
//! Run `entente --help` or `entente <command> --help` for the details.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a command-line program

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use entente_daemon::accounts::{self, KeyOrigin, NewAccount};
use entente_daemon::config::{ApiConfig, ChainConfig, DaemonConfig, default_api_listen};
use entente_daemon::keystore::ScryptParams;
use entente_daemon::password::PasswordSource;
use entente_types::Address;

#[derive(Parser)]
#[command(
    name = "entente",
    version,
    about = "Entente: peer-to-peer state channels. Runs the daemon and talks to it."
)]
struct Cli {
    /// The daemon's home directory: its configuration, key files, data and API token.
    #[arg(long, env = "ENTENTE_HOME", global = true)]
    home: Option<PathBuf>,
    /// A file holding the key file's password (otherwise $ENTENTE_PASSWORD, or a prompt).
    #[arg(long, global = true)]
    password_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Set up a home: the configuration file, the API token and a first account with an encrypted key.
    Init(InitArgs),
    /// Add or list accounts.
    #[command(subcommand)]
    Account(AccountCommand),
}

#[derive(Args)]
struct KeyArgs {
    /// Import this key file (Web3 Secret Storage, as geth, `cast wallet` or eth-account write it)
    /// instead of making a new key.
    #[arg(long, conflicts_with = "import_key_stdin")]
    import_keystore: Option<PathBuf>,
    /// Import a raw hex private key read from standard input instead of making a new key.
    #[arg(long)]
    import_key_stdin: bool,
    /// Encrypt with geth's light scrypt cost (fast; for development keys only).
    #[arg(long)]
    light_kdf: bool,
    /// libp2p listen address of this account's node (repeatable).
    #[arg(long = "listen", default_values_t = vec!["/ip4/0.0.0.0/tcp/0".to_string()])]
    listen: Vec<String>,
    /// A node to join the network through, with its `/p2p/<peer id>` (repeatable).
    #[arg(long = "bootstrap")]
    bootstrap: Vec<String>,
}

#[derive(Args)]
struct InitArgs {
    /// The chain's JSON-RPC endpoint.
    #[arg(long, default_value = "http://127.0.0.1:8545")]
    rpc_url: String,
    /// The StateChannelManager's address (`entente deploy` sets it when left out).
    #[arg(long)]
    manager: Option<Address>,
    /// Where the API listens.
    #[arg(long, default_value_t = default_api_listen())]
    api: std::net::SocketAddr,
    /// The first account's name.
    #[arg(long, default_value = "default")]
    name: String,
    #[command(flatten)]
    key: KeyArgs,
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Add an account (a new key, or an imported one).
    New {
        /// Its name.
        name: String,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// List the accounts.
    List,
}

fn home(cli: &Cli) -> Result<PathBuf, String> {
    if let Some(h) = &cli.home {
        return Ok(h.clone());
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".entente"))
        .ok_or_else(|| "no home directory: give --home or set ENTENTE_HOME".to_string())
}

fn new_account(name: String, key: KeyArgs) -> NewAccount {
    NewAccount {
        name,
        origin: match (key.import_keystore, key.import_key_stdin) {
            (Some(path), _) => KeyOrigin::KeyFile(path),
            (None, true) => KeyOrigin::HexOnStdin,
            (None, false) => KeyOrigin::Generate,
        },
        kdf: if key.light_kdf {
            ScryptParams::LIGHT
        } else {
            ScryptParams::STANDARD
        },
        listen: key.listen,
        bootstrap: key.bootstrap,
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let home = home(&cli)?;
    let passwords = PasswordSource {
        file: cli.password_file.clone(),
        account_file: None,
    };
    match cli.command {
        Command::Init(args) => {
            let chain = ChainConfig {
                rpc_url: args.rpc_url,
                manager: args.manager,
                confirmations: 0,
                poll_interval_ms: 250,
            };
            let api = ApiConfig {
                listen: args.api,
                ..ApiConfig::default()
            };
            let config = accounts::init(&home, chain, api, new_account(args.name, args.key), &passwords)
                .map_err(|e| e.to_string())?;
            let a = &config.accounts[0];
            println!("home {}", home.display());
            println!(
                "account name={} address={} keystore={}",
                a.name,
                a.address,
                config.resolve(&a.keystore).display()
            );
            println!("token file={}", config.resolve(&config.api.token_file).display());
            if config.chain.manager.is_none() {
                println!("next: `entente deploy` (no StateChannelManager address yet), then `entente node`");
            } else {
                println!("next: `entente node`");
            }
        }
        Command::Account(AccountCommand::New { name, key }) => {
            let mut config = DaemonConfig::load(&home).map_err(|e| e.to_string())?;
            let address = accounts::add_account(&mut config, new_account(name.clone(), key), &passwords)
                .map_err(|e| e.to_string())?;
            println!("account name={name} address={address}");
        }
        Command::Account(AccountCommand::List) => {
            let config = DaemonConfig::load(&home).map_err(|e| e.to_string())?;
            for a in &config.accounts {
                println!(
                    "account name={} address={} keystore={}",
                    a.name,
                    a.address,
                    config.resolve(&a.keystore).display()
                );
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
