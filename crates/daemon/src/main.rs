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
use entente_daemon::client::Client;
use entente_daemon::config::{ApiConfig, ChainConfig, DaemonConfig, default_api_listen};
use entente_daemon::keystore::ScryptParams;
use entente_daemon::password::PasswordSource;
use entente_types::Address;
use serde_json::json;

mod node;

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
    /// Run the daemon: a node for every account, and the API.
    Node(NodeArgs),
    /// Print the address of the web front-end the daemon serves, with the API token (open it in a
    /// browser; the daemon must run with a static directory: `entente node --static-dir web/dist`).
    Web,
    /// Deploy the StateChannelManager (unless the configuration names one with code) and state
    /// machines to the chain, from an account; records them in the home.
    Deploy(DeployArgs),
    /// The accounts the running daemon serves.
    Sessions(ClientArgs),
    /// The state machines the daemon knows.
    Machines(ClientArgs),
    /// Register a deployed state machine with the daemon (it checks the chain's code).
    Register(RegisterArgs),
    /// Propose a channel.
    Propose(ProposeArgs),
    /// Proposals waiting for an answer.
    Proposals(ClientArgs),
    /// Accept a proposal.
    Accept(ChannelArg),
    /// Decline a proposal.
    Decline(ChannelArg),
    /// The account's channels.
    Channels(ClientArgs),
    /// One channel.
    Show(ChannelArg),
    /// Make a move: `entente call <channel> play 4`.
    Call(CallArgs),
    /// Run a view: `entente view <channel> getGame`.
    View(CallArgs),
    /// Exit a channel through the chain.
    Exit(ChannelArg),
    /// Ask to leave a channel with one's share.
    Leave(ChannelArg),
    /// Print a channel's events as they happen (one JSON line each).
    Watch(WatchArgs),
    /// What the account got back from a channel (the node withdraws on its own once it is over).
    Withdrawal(WithdrawalArgs),
    /// Membership: let someone join, propose that they join, or expect to join a running channel.
    #[command(subcommand)]
    Join(JoinCommand),
    /// The account's address book and connected peers.
    Peers(ClientArgs),
    /// Dial a node and keep it in the account's address book.
    PeerAdd(PeerAddArgs),
}

#[derive(Args)]
struct NodeArgs {
    /// Serve the files of this directory (a web front-end, such as the built `web/dist`) beside
    /// the API; overrides `[api] static_dir` of the configuration.
    #[arg(long)]
    static_dir: Option<PathBuf>,
}

#[derive(Args)]
struct WithdrawalArgs {
    /// The channel id.
    channel: String,
    /// Seconds to wait for a withdrawal.
    #[arg(long, default_value_t = 0)]
    wait: u64,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Subcommand)]
enum JoinCommand {
    /// Let `joiner` join when another participant proposes it.
    Allow {
        /// The channel id.
        channel: String,
        /// Who may join.
        joiner: Address,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Propose that `joiner` join with a deposit of `amount` wei.
    Propose {
        /// The channel id.
        channel: String,
        /// Who joins.
        joiner: Address,
        /// Its deposit in wei.
        amount: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Expect to join a running channel, sponsored by one of its participants.
    Expect {
        /// The channel id.
        channel: String,
        /// The participant that proposes the join.
        sponsor: Address,
        /// This account's deposit in wei.
        amount: String,
        /// The channel's machine (registered name).
        machine: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Args)]
struct PeerAddArgs {
    /// The node's address with its peer id (`/ip4/.../tcp/.../p2p/<id>`).
    address: String,
    /// Dial it now but do not keep it in the address book.
    #[arg(long)]
    forget: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Args)]
struct DeployArgs {
    /// The account that pays (default: the only one).
    #[arg(long)]
    account: Option<String>,
    /// Machines to deploy: tictactoe, payments, roundrobin, or an artifact file `NAME=PATH.json`.
    #[arg(long = "machine", default_values_t = vec!["tictactoe".to_string(), "payments".to_string(), "roundrobin".to_string()])]
    machines: Vec<String>,
    /// Deploy a new manager even if the configuration names one.
    #[arg(long)]
    new_manager: bool,
}

#[derive(Args)]
struct RegisterArgs {
    /// The name to know it by: tictactoe, payments and roundrobin take the artifacts built into
    /// `entente`; any other name needs --artifact.
    name: String,
    /// Where it is deployed.
    address: Address,
    /// The artifact file (`{"abi": [...], "bytecode": "0x..."}`).
    #[arg(long)]
    artifact: Option<PathBuf>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Args)]
struct ClientArgs {
    /// The account (default: the only one).
    #[arg(long)]
    account: Option<String>,
    /// The API's URL (default: from the configuration).
    #[arg(long)]
    api: Option<String>,
}

#[derive(Args)]
struct ChannelArg {
    /// The channel id.
    channel: String,
    /// Why (decline only).
    #[arg(long)]
    reason: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Args)]
struct ProposeArgs {
    /// The machine (its registered name).
    machine: String,
    /// The participants in signing order, the proposer first (repeatable).
    #[arg(long = "participant", required = true)]
    participants: Vec<String>,
    /// Each participant's deposit in wei (repeatable, in participant order).
    #[arg(long = "deposit", required = true)]
    deposits: Vec<String>,
    /// The machine's function that computes the genesis state.
    #[arg(long, default_value = "initialState")]
    genesis: String,
    /// Its arguments (JSON values; a bare word is a string), in order (repeatable).
    #[arg(long = "arg")]
    args: Vec<String>,
    /// Timing in seconds: p2p,agreement,fallback,challenge.
    #[arg(long)]
    timing: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Args)]
struct CallArgs {
    /// The channel id.
    channel: String,
    /// The function's name or signature.
    function: String,
    /// Its arguments (JSON values; a bare word is a string).
    args: Vec<String>,
    /// `call` only: wait up to this many seconds for the move to be final (signed by everyone).
    #[arg(long, value_name = "SECONDS")]
    wait: Option<u64>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Args)]
struct WatchArgs {
    /// The channel id.
    channel: String,
    /// The first event's sequence number (default: every event).
    #[arg(long, default_value_t = 0)]
    from: u64,
    #[command(flatten)]
    client: ClientArgs,
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

/// A command-line argument as a JSON value: JSON if it parses, otherwise a string.
fn json_arg(a: &str) -> serde_json::Value {
    serde_json::from_str(a).unwrap_or_else(|_| serde_json::Value::String(a.to_string()))
}

fn with_account(mut params: serde_json::Value, account: &Option<String>) -> serde_json::Value {
    if let (Some(a), serde_json::Value::Object(o)) = (account, &mut params) {
        o.insert("account".into(), a.clone().into());
    }
    params
}

fn print_json(v: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

/// Sends one request to the daemon of `home` and prints the result.
fn request(
    home: &std::path::Path,
    c: &ClientArgs,
    method: &str,
    params: serde_json::Value,
) -> Result<(), String> {
    runtime()?.block_on(async {
        let client = Client::for_home(home, c.api.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        let out = client
            .call(method, with_account(params, &c.account))
            .await
            .map_err(|e| e.to_string())?;
        print_json(&out);
        Ok(())
    })
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
        Command::Node(args) => runtime()?.block_on(node::run(&home, &passwords, args.static_dir))?,
        Command::Web => println!("{}", node::web_url(&home)?),
        Command::Deploy(args) => runtime()?.block_on(node::deploy(
            &home,
            &passwords,
            args.account.as_deref(),
            &args.machines,
            args.new_manager,
        ))?,
        Command::Sessions(c) => request(&home, &c, "session_list", json!({}))?,
        Command::Machines(c) => request(&home, &c, "machine_list", json!({}))?,
        Command::Register(r) => {
            let artifact = match (&r.artifact, r.name.as_str()) {
                (Some(path), _) => {
                    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?
                }
                (None, "tictactoe") => entente_contracts::artifacts::TIC_TAC_TOE.to_string(),
                (None, "payments") => entente_contracts::artifacts::PAYMENTS.to_string(),
                (None, "roundrobin") => entente_contracts::artifacts::ROUND_ROBIN_COUNTER.to_string(),
                (None, other) => return Err(format!("{other}: give its --artifact")),
            };
            request(
                &home,
                &r.client,
                "machine_register",
                json!({ "name": r.name, "address": r.address, "artifact": artifact }),
            )?
        }
        Command::Proposals(c) => request(&home, &c, "proposal_list", json!({}))?,
        Command::Channels(c) => request(&home, &c, "channel_list", json!({}))?,
        Command::Show(a) => request(
            &home,
            &a.client,
            "channel_info",
            json!({ "channel_id": a.channel }),
        )?,
        Command::Accept(a) => request(
            &home,
            &a.client,
            "proposal_accept",
            json!({ "channel_id": a.channel }),
        )?,
        Command::Decline(a) => request(
            &home,
            &a.client,
            "proposal_decline",
            json!({ "channel_id": a.channel, "reason": a.reason }),
        )?,
        Command::Exit(a) => request(
            &home,
            &a.client,
            "channel_exit",
            json!({ "channel_id": a.channel }),
        )?,
        Command::Leave(a) => request(
            &home,
            &a.client,
            "channel_leave",
            json!({ "channel_id": a.channel }),
        )?,
        Command::Call(a) => runtime()?.block_on(async {
            let client = Client::for_home(&home, a.client.api.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            let args: Vec<_> = a.args.iter().map(|x| json_arg(x)).collect();
            let params = json!({ "channel_id": a.channel, "function": a.function, "args": args });
            let out = client
                .call("channel_call", with_account(params, &a.client.account))
                .await
                .map_err(|e| e.to_string())?;
            print_json(&out);
            let Some(wait) = a.wait else { return Ok(()) };
            // Our move is at or below the tip the node answers with right after it applied it.
            let info_params = with_account(json!({ "channel_id": a.channel }), &a.client.account);
            let info = client
                .call("channel_info", info_params.clone())
                .await
                .map_err(|e| e.to_string())?;
            let target = info["tip"].as_u64().unwrap_or(0);
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(wait);
            loop {
                let info = client
                    .call("channel_info", info_params.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                if info["finalized"].as_u64().unwrap_or(0) >= target {
                    println!("final height={target}");
                    return Ok(());
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(format!(
                        "height {target} is not final after {wait} s (`entente watch` shows why)"
                    ));
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        })?,
        Command::View(a) => request(
            &home,
            &a.client,
            "channel_view",
            json!({ "channel_id": a.channel, "function": a.function, "args": a.args.iter().map(|x| json_arg(x)).collect::<Vec<_>>() }),
        )?,
        Command::Propose(a) => {
            let timing = match &a.timing {
                None => serde_json::Value::Null,
                Some(t) => {
                    let v: Vec<u64> = t
                        .split(',')
                        .map(|x| x.trim().parse::<u64>())
                        .collect::<Result<_, _>>()
                        .map_err(|_| "--timing: four numbers p2p,agreement,fallback,challenge")?;
                    let [p2p, agreement, fallback, challenge] = v[..] else {
                        return Err("--timing: four numbers p2p,agreement,fallback,challenge".into());
                    };
                    json!({ "p2p": p2p, "agreement": agreement, "fallback": fallback, "challenge": challenge })
                }
            };
            let mut params = json!({
                "machine": a.machine,
                "participants": a.participants,
                "deposits": a.deposits,
                "genesis": { "function": a.genesis, "args": a.args.iter().map(|x| json_arg(x)).collect::<Vec<_>>() },
            });
            if !timing.is_null() {
                params["timing"] = timing;
            }
            request(&home, &a.client, "proposal_make", params)?
        }
        Command::Withdrawal(a) => request(
            &home,
            &a.client,
            "channel_withdrawal",
            json!({ "channel_id": a.channel, "wait": a.wait }),
        )?,
        Command::Join(JoinCommand::Allow {
            channel,
            joiner,
            client,
        }) => request(
            &home,
            &client,
            "channel_allow_join",
            json!({ "channel_id": channel, "joiner": joiner }),
        )?,
        Command::Join(JoinCommand::Propose {
            channel,
            joiner,
            amount,
            client,
        }) => request(
            &home,
            &client,
            "channel_propose_join",
            json!({ "channel_id": channel, "joiner": joiner, "amount": amount }),
        )?,
        Command::Join(JoinCommand::Expect {
            channel,
            sponsor,
            amount,
            machine,
            client,
        }) => request(
            &home,
            &client,
            "channel_expect_join",
            json!({ "channel_id": channel, "sponsor": sponsor, "amount": amount, "machine": machine }),
        )?,
        Command::Peers(c) => request(&home, &c, "peer_list", json!({}))?,
        Command::PeerAdd(a) => request(
            &home,
            &a.client,
            "peer_add",
            json!({ "address": a.address, "remember": !a.forget }),
        )?,
        Command::Watch(a) => runtime()?.block_on(async {
            let client = Client::for_home(&home, a.client.api.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            let params = with_account(
                json!({ "channel_id": a.channel, "from": a.from }),
                &a.client.account,
            );
            let mut sub = client
                .subscribe("channel_subscribe", params, "channel_unsubscribe")
                .await
                .map_err(|e| e.to_string())?;
            while let Some(ev) = sub.next().await {
                let ev = ev.map_err(|e| e.to_string())?;
                println!("{ev}");
            }
            Err::<(), String>("the daemon closed the subscription".into())
        })?,
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
