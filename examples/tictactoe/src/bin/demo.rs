//! The tic-tac-toe demo, end to end on one machine: starts anvil (from `node_modules`), deploys
//! the StateChannelManager and the TicTacToe machine, runs two `tictactoe` player processes
//! against each other and shows what they print, each line prefixed by its player, then the
//! players' balances on chain before and after.
//!
//! ```text
//! tictactoe-demo [--interactive] [--silent | --cheat] [--stake ETH]
//! tictactoe-demo --chain-only [--port PORT]
//! ```
//!
//! - default: two automated players; X wins and takes both stakes.
//! - `--interactive`: you play X on this terminal against an automated O.
//! - `--silent`: O goes silent after its first move; X removes it through the chain by a
//!   timeout dispute and takes both stakes.
//! - `--cheat`: O sends a move whose claimed state is false; X refuses it, proves the fraud on
//!   chain, O is slashed and X takes both stakes.
//! - `--chain-only`: starts anvil and deploys, then prints the exact commands to play by hand
//!   in two terminals (or on two machines) and keeps the chain up until Ctrl-C.
//!
//! The `tictactoe` binary is looked up next to this one (`cargo build -p
//! entente-example-tictactoe --bins` builds both).

#![allow(clippy::print_stdout, clippy::print_stderr)] // a command-line program
#![allow(clippy::disallowed_methods)] // Instant::now: the demo's wall time, for display only

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use entente_chain::{Anvil, ChainClient};
use entente_contracts::TicTacToe;
use entente_types::{Address, B256, U256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// Short deadlines so a silent or cheating player is dealt with in seconds (p2p, agreement,
/// chain fallback, challenge period).
const FAST_TIMING: &str = "3,2,3,4";

#[derive(Debug, Default)]
struct Options {
    interactive: bool,
    silent: bool,
    cheat: bool,
    chain_only: bool,
    port: Option<u16>,
    stake: Option<String>,
}

fn usage() -> &'static str {
    "usage: tictactoe-demo [--interactive] [--silent | --cheat] [--stake ETH]\n       tictactoe-demo --chain-only [--port PORT]"
}

fn parse() -> Result<Options> {
    let mut options = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--interactive" | "-i" => options.interactive = true,
            "--silent" => options.silent = true,
            "--cheat" => options.cheat = true,
            "--chain-only" => options.chain_only = true,
            "--port" => {
                let port = args.next().ok_or_else(|| anyhow!("--port needs a value"))?;
                options.port = Some(port.parse().context("--port")?);
            }
            "--stake" => options.stake = Some(args.next().ok_or_else(|| anyhow!("--stake needs a value"))?),
            "--help" | "-h" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            other => bail!("unknown option {other}\n{}", usage()),
        }
    }
    if options.silent && options.cheat {
        bail!("--silent and --cheat are alternatives\n{}", usage());
    }
    Ok(options)
}

fn main() -> Result<()> {
    let options = parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(options))
}

/// The chain and the two contracts the players use.
struct Deployed {
    anvil: Anvil,
    client: ChainClient,
    manager: Address,
    machine: Address,
}

async fn deploy(port: Option<u16>) -> Result<Deployed> {
    let mut builder = Anvil::builder();
    if let Some(port) = port {
        builder = builder.port(port);
    }
    let anvil = builder
        .spawn()
        .context("starting anvil (run `npm ci` in the repository root first)")?;
    let mut client = ChainClient::connect(&anvil.endpoint(), anvil.signer(0)?)
        .await
        .context("connecting to anvil")?;
    let manager = client.deploy_manager().await.context("deploying the manager")?;
    let machine = client
        .deploy(TicTacToe::BYTECODE.clone())
        .await
        .context("deploying TicTacToe")?;
    Ok(Deployed {
        anvil,
        client,
        manager,
        machine,
    })
}

async fn run(options: Options) -> Result<()> {
    let started = Instant::now();
    let player_binary = sibling("tictactoe")?;
    step("starting anvil from node_modules and deploying the contracts");
    let chain = deploy(options.port).await?;
    note("rpc", chain.anvil.endpoint());
    note("manager", chain.manager);
    note("machine", format!("{} (TicTacToe)", chain.machine));
    if options.chain_only {
        return chain_only(&chain, &player_binary).await;
    }

    let keys = chain.anvil.keys();
    let (x_key, o_key) = (keys[1], keys[2]);
    let (x, o) = (chain.anvil.address(1)?, chain.anvil.address(2)?);
    let before = (chain.client.balance(x).await?, chain.client.balance(o).await?);
    note("X", format!("{x}  balance {} ETH", eth(before.0)));
    note("O", format!("{o}  balance {} ETH", eth(before.1)));
    match (options.interactive, options.silent, options.cheat) {
        (true, ..) => step("you play X on this terminal: type a cell number (0-8) and Enter"),
        (_, true, _) => step("O goes silent after its first move: watch X remove it through the chain"),
        (_, _, true) => step("O cheats at its second move: watch X prove the fraud on chain"),
        _ => step("two automated players: X takes the first free cell, so does O"),
    }

    let data = std::env::temp_dir().join(format!("entente-demo-{}", std::process::id()));
    let _cleanup = RemoveOnDrop(data.clone());
    let common = |key: B256, dir: &str| -> Vec<String> {
        let mut args = vec![
            "--rpc".into(),
            chain.anvil.endpoint(),
            "--manager".into(),
            chain.manager.to_string(),
            "--machine".into(),
            chain.machine.to_string(),
            "--key".into(),
            key.to_string(),
            "--data-dir".into(),
            data.join(dir).display().to_string(),
        ];
        if let Some(stake) = &options.stake {
            args.extend(["--stake".into(), stake.clone()]);
        }
        if options.silent || options.cheat {
            args.extend(["--timing".into(), FAST_TIMING.into()]);
        }
        args
    };

    // O first: X finds it through O's listening address.
    let mut o_args = common(o_key, "o");
    if options.silent {
        o_args.extend(["--silent-after".into(), "1".into()]);
    }
    if options.cheat {
        o_args.extend(["--cheat-at".into(), "1".into()]);
    }
    let (o_listen_tx, o_listen_rx) = oneshot::channel();
    let mut o_child = spawn_player(&player_binary, &o_args, false)?;
    let o_relay = relay(&mut o_child, "O", "\x1b[35m", Some(o_listen_tx))?;
    let o_listen = tokio::time::timeout(Duration::from_secs(60), o_listen_rx)
        .await
        .map_err(|_| anyhow!("O did not start listening within 60 s"))?
        .map_err(|_| anyhow!("O exited before it listened"))?;

    let mut x_args = common(x_key, "x");
    x_args.extend([
        "--opponent".into(),
        o.to_string(),
        "--bootstrap".into(),
        o_listen,
        "--board".into(),
    ]);
    if options.interactive {
        x_args.push("--interactive".into());
    }
    let mut x_child = spawn_player(&player_binary, &x_args, options.interactive)?;
    let x_relay = relay(&mut x_child, "X", "\x1b[36m", None)?;

    let (x_status, o_status) = tokio::join!(x_child.wait(), o_child.wait());
    let _ = tokio::join!(x_relay, o_relay);
    let (x_status, o_status) = (x_status?, o_status?);

    let after = (chain.client.balance(x).await?, chain.client.balance(o).await?);
    step("balances on chain (deposits went in at the opening, payouts came out at the end)");
    println!(
        "  player  address                                     before (ETH)     after (ETH)      change"
    );
    for (name, address, b, a) in [("X", x, before.0, after.0), ("O", o, before.1, after.1)] {
        println!(
            "  {name}       {address}  {:>14}  {:>14}  {:>10}",
            eth(b),
            eth(a),
            signed_eth(b, a)
        );
    }
    println!("  (changes include the gas each player paid for its chain calls)");
    if !x_status.success() || !o_status.success() {
        bail!("a player failed: X {x_status}, O {o_status}");
    }
    step(&format!(
        "demo finished in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Prints how to play by hand in two terminals on the chain just deployed, then waits.
async fn chain_only(chain: &Deployed, binary: &Path) -> Result<()> {
    let keys = chain.anvil.keys();
    let o_peer = entente_p2p::peer_id_of_secret(&keys[2])?;
    let o = chain.anvil.address(2)?;
    let common = format!(
        "--rpc {} --manager {} --machine {}",
        chain.anvil.endpoint(),
        chain.manager,
        chain.machine
    );
    let bin = binary.display();
    step("the chain is up; play by hand in two terminals:");
    println!();
    println!("  # terminal 1: O waits for the proposal");
    println!(
        "  {bin} {common} --key {} --data-dir /tmp/entente-o-$$ --listen /ip4/127.0.0.1/tcp/4002 --interactive",
        keys[2]
    );
    println!();
    println!("  # terminal 2: X proposes to O and moves first");
    println!(
        "  {bin} {common} --key {} --data-dir /tmp/entente-x-$$ --opponent {o} --bootstrap /ip4/127.0.0.1/tcp/4002/p2p/{o_peer} --interactive",
        keys[1]
    );
    println!();
    println!("  Across two machines: listen on /ip4/0.0.0.0/tcp/4002 and bootstrap to O's machine address,");
    println!("  with an RPC endpoint both machines reach. More dev accounts (each with 10000 ETH):");
    for (i, key) in keys.iter().enumerate().skip(3).take(3) {
        println!("    account {i}: {} key {key}", chain.anvil.address(i)?);
    }
    println!();
    step("Ctrl-C stops the chain");
    tokio::signal::ctrl_c().await?;
    Ok(())
}

/// The binary `name` next to the running one.
fn sibling(name: &str) -> Result<PathBuf> {
    let me = std::env::current_exe().context("locating this binary")?;
    let path = me.with_file_name(name);
    if !path.is_file() {
        bail!(
            "{} not found next to {}: build it with `cargo build -p entente-example-tictactoe --bins`",
            name,
            me.display()
        );
    }
    Ok(path)
}

fn spawn_player(binary: &Path, args: &[String], terminal_input: bool) -> Result<Child> {
    let log = std::env::var("ENTENTE_LOG").unwrap_or_else(|_| "error".into());
    Command::new(binary)
        .args(args)
        .env("ENTENTE_LOG", log)
        .stdin(if terminal_input {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))
}

/// Relays a player's stdout and stderr to ours, each line prefixed with the player's name.
/// The first `listening` line's address goes to `listening`.
fn relay(
    child: &mut Child,
    name: &'static str,
    color: &'static str,
    listening: Option<oneshot::Sender<String>>,
) -> Result<tokio::task::JoinHandle<()>> {
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let prefix = if tty {
        format!("{color}{name} │\x1b[0m ")
    } else {
        format!("{name} | ")
    };
    let err_prefix = format!("{name} ! ");
    Ok(tokio::spawn(async move {
        let out = pump(stdout, prefix, listening);
        let err = pump(stderr, err_prefix, None);
        let _ = tokio::join!(out, err);
    }))
}

async fn pump(
    mut from: impl AsyncRead + Unpin,
    prefix: String,
    mut listening: Option<oneshot::Sender<String>>,
) {
    let mut buf = vec![0u8; 4096];
    let mut pending: Vec<u8> = Vec::new();
    let mut stdout = tokio::io::stdout();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        let mut out = Vec::new();
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..end]);
            out.extend_from_slice(prefix.as_bytes());
            out.extend_from_slice(text.as_bytes());
            out.push(b'\n');
            if let Some(addr) = text.strip_prefix("listening ")
                && let Some(tx) = listening.take()
            {
                let _ = tx.send(addr.trim().to_string());
            }
        }
        let _ = stdout.write_all(&out).await;
        let _ = stdout.flush().await;
    }
    if !pending.is_empty() {
        let mut out = prefix.into_bytes();
        out.extend_from_slice(&pending);
        out.push(b'\n');
        let _ = stdout.write_all(&out).await;
        let _ = stdout.flush().await;
    }
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn step(what: &str) {
    println!("\n==> {what}");
}

fn note(what: &str, value: impl std::fmt::Display) {
    println!("    {what:<8} {value}");
}

/// Wei as ether with 4 decimals.
fn eth(wei: U256) -> String {
    let unit = U256::from(10u64).pow(U256::from(14u64));
    let tenths = wei / unit;
    let whole = tenths / U256::from(10_000u64);
    let frac = tenths % U256::from(10_000u64);
    format!("{whole}.{frac:0>4}")
}

/// `after - before` in ether with a sign.
fn signed_eth(before: U256, after: U256) -> String {
    if after >= before {
        format!("+{}", eth(after - before))
    } else {
        format!("-{}", eth(before - after))
    }
}
