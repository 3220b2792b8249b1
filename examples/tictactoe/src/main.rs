//! Tic-tac-toe between two Entente nodes, one per process (or per machine).
//!
//! ```text
//! tictactoe --rpc URL --manager ADDR --machine ADDR --key HEX --data-dir DIR
//!           [--listen MULTIADDR] [--bootstrap MULTIADDR]... [--opponent ADDR] [--stake ETH]
//!           [--interactive] [--board] [--silent-after N] [--cheat-at N] [--resume]
//!           [--timing P2P,AGREE,FALLBACK,CHALLENGE] [--mode explicit|virtual]
//! ```
//!
//! The player given `--opponent` proposes the game (and plays X); the other waits for the
//! proposal and accepts it. By default the players are automated (first free cell);
//! `--interactive` asks for each move on the terminal and draws the board after every move
//! (`--board` draws it for an automated player too). `--silent-after N` stops playing after
//! N moves (the other player removes it through the chain by a timeout dispute);
//! `--cheat-at N` sends, as its move number N, a transaction whose claimed state its move does
//! not produce (the other player proves the fraud on chain and takes the stake). `--resume`
//! restarts from the data directory after a crash and finishes the game.
//!
//! Every line on stdout is `<what> <details>`, made to be read by people and by tests:
//! `address`, `listening`, `channel`, `live`, `move`, `applied`, `board`, `final`, `refused`,
//! `chain`, `deposit`, `dispute`, `removed`, `fork`, `gameover`, `settled`, `closed`, `paid`,
//! `balance`, `silent`, `cheating`, `prompt` (interactive: type a cell and Enter), `done`. Details are `key=value` pairs first; some lines
//! end with a short explanation in parentheses for people.

#![allow(clippy::print_stdout)] // a command-line program

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use entente_contracts::{TicTacToe, artifacts};
use entente_node::{
    ChainEvent, Channel, ChannelEvent, MachineSource, Multiaddr, Node, NodeConfig, Phase, ProposalBuilder,
    ProtocolEvent,
};
use entente_types::{
    Address, AgreementMode, B256, Domain, LocalSigner, SignedTransaction, Timing, Transaction, U256,
    keccak256,
};
use tokio::io::AsyncBufReadExt;

const WAIT: Duration = Duration::from_secs(600);

struct Args {
    machine: Address,
    key: B256,
    opponent: Option<Address>,
    stake: U256,
    interactive: bool,
    board: bool,
    silent_after: Option<u32>,
    cheat_at: Option<u32>,
    resume: bool,
    timing: Timing,
    mode: AgreementMode,
}

fn usage() -> &'static str {
    "usage: tictactoe --rpc URL --manager ADDR --machine ADDR --key HEX --data-dir DIR \
     [--listen MULTIADDR] [--bootstrap MULTIADDR]... [--opponent ADDR] [--stake ETH] \
     [--interactive] [--board] [--silent-after N] [--cheat-at N] [--resume] \
     [--timing P2P,AGREE,FALLBACK,CHALLENGE] [--mode explicit|virtual]"
}

fn main() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> Result<()> {
    init_logging();
    let (args, config) = parse(std::env::args().skip(1).collect())?;
    let node = Node::start(config).await.context("starting the node")?;
    let me = node.address();
    say("address", me);
    say("listening", listen_addr(&node).await?);
    let before = node.balance().await?;
    say("balance", format!("start={}", eth(before)));

    let code = MachineSource::ArtifactJson(artifacts::TIC_TAC_TOE.to_string());
    let channel = if args.resume {
        let ids = node.channels().await?;
        let id = *ids
            .first()
            .ok_or_else(|| anyhow!("no channel to resume in the data directory"))?;
        node.channel(id).await?
    } else if let Some(opponent) = args.opponent {
        let salt = keccak256(
            [
                me.as_slice(),
                opponent.as_slice(),
                &node.chain().now().await?.to_be_bytes(),
                // Two games a second apart between the same players still differ.
                &node.chain().block_number().await?.to_be_bytes(),
                &std::process::id().to_be_bytes(),
            ]
            .concat(),
        );
        let proposal = ProposalBuilder::new(args.machine, vec![me, opponent], vec![args.stake, args.stake])
            .timing(args.timing)
            .agreement_mode(args.mode)
            .salt(salt)
            .build(
                &node,
                &code,
                &TicTacToe::initialStateCall {
                    x: me,
                    o: opponent,
                    stake: args.stake,
                },
            )
            .await?;
        say(
            "proposing",
            format!("channel={} to={opponent}", proposal.channel_id),
        );
        node.propose(proposal, code).await?
    } else {
        say("waiting", "for a proposal");
        let (from, proposal) = node.next_proposal(WAIT).await?;
        say(
            "proposal",
            format!(
                "from={from} channel={} stake={}",
                proposal.channel_id,
                eth(proposal.deposits.first().copied().unwrap_or_default())
            ),
        );
        node.accept(proposal.channel_id, code).await?
    };
    say("channel", channel.id());
    let mut events = channel.events().await?;
    let watched = channel.clone();
    // Prints every event of the channel's log until told to finish, then the rest of the log.
    let (finish, mut finished) = tokio::sync::oneshot::channel::<()>();
    let printer = tokio::spawn(async move {
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(event) => print_event(me, &watched, &event).await,
                    Err(_) => return,
                },
                _ = &mut finished => break,
            }
        }
        while let Ok(Some(event)) = events.try_next().await {
            print_event(me, &watched, &event).await;
        }
    });
    let info = channel.wait_live(WAIT).await?;
    if info.phase == Phase::Live {
        let mark = match info.participants.iter().position(|p| *p == me) {
            Some(0) => "X",
            Some(_) => "O",
            None => "?",
        };
        say(
            "live",
            format!(
                "fork={} tip={} you={mark} (every deposit is in: the game starts, X moves first)",
                info.fork, info.tip
            ),
        );
    }

    play(&node, &channel, &args).await?;
    let info = channel.wait_closed(WAIT).await?;
    if let Some(exits) = &info.exits {
        let mine: U256 = exits
            .iter()
            .find(|(a, _)| *a == me)
            .map(|(_, v)| *v)
            .unwrap_or_default();
        say("closed", format!("payout={} exits={}", eth(mine), exits.len()));
    }
    // The node withdraws the payout (and any credit from a removal or slash): wait until it has
    // no chain call left to make for the channel before reading the balance.
    channel
        .wait_until("the withdrawals", Duration::from_secs(60), |i| {
            i.calls_outstanding == 0
        })
        .await?;
    let after = node.balance().await?;
    say("balance", format!("start={} end={}", eth(before), eth(after)));
    // Every event up to the withdrawals is in the log by now: print it all before "done".
    let _ = finish.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), printer).await;
    say("done", channel.id());
    Ok(())
}

/// Plays until the channel settles.
async fn play(node: &Node, channel: &Channel, args: &Args) -> Result<()> {
    let me = node.address();
    let mut moves = 0u32;
    let mut stopped = false;
    let mut events = channel.events().await?;
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let draw = args.interactive || args.board;
    let mut drawn: Option<(u64, u64)> = None;
    let mut told_to_wait = false;
    loop {
        let info = channel.info().await?;
        if matches!(info.phase, Phase::Closed | Phase::Left | Phase::Cancelled) {
            return Ok(());
        }
        if draw && drawn != Some((info.fork, info.tip)) && info.phase == Phase::Live {
            let game = match channel.view(&TicTacToe::getGameCall {}).await {
                Ok(game) => game,
                // Settled between the two calls: the loop sees it next time.
                Err(entente_node::NodeError::ChannelClosed(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            print_board(&game.board, info.tip);
            drawn = Some((info.fork, info.tip));
        }
        let my_turn =
            info.next_writer == me && !info.game_over && !info.disputed && info.phase == Phase::Live;
        if my_turn && !stopped {
            let game = match channel.view(&TicTacToe::getGameCall {}).await {
                Ok(game) => game,
                // Settled between the two calls: the loop sees it next time.
                Err(entente_node::NodeError::ChannelClosed(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            if args.silent_after == Some(moves) {
                say("silent", format!("after {moves} moves"));
                stopped = true;
                continue;
            }
            if args.cheat_at == Some(moves) {
                let cell = free_cells(&game.board).first().copied().unwrap_or(0);
                cheat(node, channel, &info, cell, args.key).await?;
                say(
                    "cheating",
                    format!("cell={cell} with a state it does not produce"),
                );
                stopped = true;
                continue;
            }
            let cell = if args.interactive {
                told_to_wait = false;
                say("prompt", "your move (0-8):");
                match stdin.next_line().await? {
                    Some(line) => match line.trim().parse::<u8>() {
                        Ok(c) => c,
                        Err(_) => {
                            say("refused", "type a cell number from 0 to 8");
                            continue;
                        }
                    },
                    None => bail!("stdin closed"),
                }
            } else {
                *free_cells(&game.board)
                    .first()
                    .ok_or_else(|| anyhow!("no free cell but the game is not over"))?
            };
            match channel.call(&TicTacToe::playCall { cell }).await {
                Ok(_) => {
                    moves += 1;
                    say("move", format!("cell={cell} by={me}"));
                }
                Err(e) => say("refused", e),
            }
            continue;
        }
        if args.interactive && !told_to_wait && !info.game_over && !info.disputed && info.phase == Phase::Live
        {
            say("waiting", "for the opponent's move");
            told_to_wait = true;
        }
        // Wait for something to happen.
        let _ = tokio::time::timeout(Duration::from_millis(500), events.recv()).await;
    }
}

/// Sends, as our move on `cell`, a properly signed transaction that claims a state the move
/// does not produce: provable fraud.
async fn cheat(
    node: &Node,
    channel: &Channel,
    info: &entente_node::ChannelInfo,
    cell: u8,
    key: B256,
) -> Result<()> {
    let chain = node.chain();
    let manager = chain.manager();
    let domain = Domain::new(chain.chain_id(), manager);
    let now = chain.now().await?;
    let transaction = Transaction {
        channelId: channel.id(),
        forkCnt: info.fork,
        height: info.tip + 1,
        participant: node.address(),
        timestamp: now.max(info.tip_timestamp),
        prevStateHash: info.tip_state_hash,
        stateHash: keccak256(b"a board this move does not produce"),
        data: alloy_sol_types_encode(cell),
    };
    let key = LocalSigner::from_bytes(&key).map_err(|e| anyhow!("--key: {e}"))?;
    let signature = key.sign_digest(&domain.digest(&transaction));
    channel
        .inject(SignedTransaction {
            transaction,
            signature,
        })
        .await?;
    Ok(())
}

fn alloy_sol_types_encode(cell: u8) -> entente_types::Bytes {
    use alloy_sol_types::SolCall as _;
    TicTacToe::playCall { cell }.abi_encode().into()
}

fn free_cells(board: &[u8; 9]) -> Vec<u8> {
    (0u8..9).filter(|&c| board[usize::from(c)] == 0).collect()
}

/// Draws the board as three `board` lines (free cells show their number) under a `board`
/// line that says after how many moves.
fn print_board(board: &[u8; 9], moves: u64) {
    let mark = |i: usize| match board[i] {
        1 => "X".to_string(),
        2 => "O".to_string(),
        _ => i.to_string(),
    };
    let plural = if moves == 1 { "" } else { "s" };
    say("board", format!("after {moves} move{plural}:"));
    for row in 0..3 {
        let cells: Vec<String> = (0..3).map(|col| mark(row * 3 + col)).collect();
        say("board", format!("   {} | {} | {}", cells[0], cells[1], cells[2]));
        if row < 2 {
            say("board", "  ---+---+---");
        }
    }
}

fn who(me: Address, address: Address) -> &'static str {
    if address == me { "me" } else { "opponent" }
}

async fn print_event(me: Address, channel: &Channel, event: &ChannelEvent) {
    match event {
        ChannelEvent::Protocol(ProtocolEvent::Applied { height, issuer, .. }) => {
            say("applied", format!("height={height} by={}", who(me, *issuer)));
        }
        ChannelEvent::Protocol(ProtocolEvent::Finalized { height, .. }) => say(
            "final",
            format!("height={height} (both players signed every move up to here)"),
        ),
        ChannelEvent::Protocol(ProtocolEvent::Rejected { from, reason }) => say(
            "rejected",
            format!("from={from} reason={reason} (refused to sign it)"),
        ),
        ChannelEvent::Protocol(ProtocolEvent::Equivocation { signer, height, .. }) => {
            say("equivocation", format!("signer={signer} height={height}"))
        }
        ChannelEvent::Protocol(ProtocolEvent::ForkStarted {
            fork, participants, ..
        }) => say(
            "fork",
            format!(
                "fork={fork} participants={} (the chain enforced a state; play goes on from it)",
                participants.len()
            ),
        ),
        ChannelEvent::Protocol(ProtocolEvent::GameOver { height, .. }) => {
            let outcome = match channel.view(&TicTacToe::getGameCall {}).await {
                Ok(game) if game.winner == Address::ZERO => "draw".to_string(),
                Ok(game) => format!("winner={}", who(me, game.winner)),
                Err(_) => "over".to_string(),
            };
            say("gameover", format!("height={height} {outcome}"))
        }
        ChannelEvent::Chain(ChainEvent::ChannelOpened { opener, .. }) => say(
            "chain",
            format!("opened by={} (waiting for the deposits)", who(me, *opener)),
        ),
        ChannelEvent::Chain(ChainEvent::Deposited { participant, amount }) => say(
            "deposit",
            format!(
                "participant={participant} amount={} by={}",
                eth(*amount),
                who(me, *participant)
            ),
        ),
        ChannelEvent::Chain(ChainEvent::DisputeStarted { record, .. }) => say(
            "dispute",
            format!(
                "kind={:?} target={} slash={} by={} (settles after the challenge period)",
                record.kind,
                record.target,
                record.slash,
                who(me, record.submitter)
            ),
        ),
        ChannelEvent::Chain(ChainEvent::DisputeChallenged {
            challenger, record, ..
        }) => say(
            "dispute",
            format!(
                "challenged kind={:?} by={} target={}",
                record.kind,
                who(me, *challenger),
                record.target
            ),
        ),
        ChannelEvent::Chain(ChainEvent::ParticipantRemoved { participant, slashed }) => say(
            "removed",
            format!(
                "participant={participant} slashed={slashed} ({})",
                match (*participant == me, *slashed) {
                    (true, true) => "I am slashed: my stake goes to the honest player",
                    (true, false) => "I timed out and forfeit the game",
                    (false, true) => "the opponent is slashed: its stake goes to me",
                    (false, false) => "the opponent timed out and forfeits the game",
                }
            ),
        ),
        ChannelEvent::Chain(ChainEvent::CalldataPosted { transaction, .. }) => {
            say("calldata", format!("height={}", transaction.height))
        }
        ChannelEvent::Chain(ChainEvent::ChannelClosed { height, exits, .. }) => {
            let payouts: Vec<String> = exits
                .iter()
                .map(|(a, v)| format!("{}={}", who(me, *a), eth(*v)))
                .collect();
            say(
                "settled",
                format!("height={height} payouts: {}", payouts.join(" ")),
            )
        }
        ChannelEvent::ChainCall { what, outcome } => match outcome {
            Ok(gas) => say("chain", format!("{what} ok gas={gas}")),
            Err(e) if e.contains("WrongStatus") => say(
                "chain",
                format!("{what} failed: {e} (the other player got there first: nothing lost but gas)"),
            ),
            Err(e) => say("chain", format!("{what} failed: {e}")),
        },
        ChannelEvent::Withdrawn { amount } => {
            say("paid", format!("{} (withdrawn to my account)", eth(*amount)))
        }
        _ => {}
    }
}

fn say(what: &str, details: impl std::fmt::Display) {
    println!("{what} {details}");
    let _ = std::io::stdout().flush();
}

/// Wei as ether with 4 decimals.
fn eth(wei: U256) -> String {
    let unit = U256::from(10u64).pow(U256::from(14u64));
    let tenths = wei / unit;
    let whole = tenths / U256::from(10_000u64);
    let frac = tenths % U256::from(10_000u64);
    format!("{whole}.{frac:0>4}")
}

fn init_logging() {
    let level = match std::env::var("ENTENTE_LOG").as_deref() {
        Ok("debug") => tracing_subscriber::filter::LevelFilter::DEBUG,
        Ok("info") => tracing_subscriber::filter::LevelFilter::INFO,
        Ok("error") => tracing_subscriber::filter::LevelFilter::ERROR,
        _ => tracing_subscriber::filter::LevelFilter::WARN,
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .try_init();
}

fn parse(raw: Vec<String>) -> Result<(Args, NodeConfig)> {
    let mut it = raw.into_iter();
    let mut rpc = None;
    let mut manager = None;
    let mut machine = None;
    let mut key = None;
    let mut data_dir = None;
    let mut listen: Vec<Multiaddr> = Vec::new();
    let mut bootstrap: Vec<Multiaddr> = Vec::new();
    let mut opponent = None;
    let mut stake = U256::from(10u64).pow(U256::from(18u64));
    let mut interactive = false;
    let mut board = false;
    let mut silent_after = None;
    let mut cheat_at = None;
    let mut resume = false;
    let mut timing = Timing::default();
    let mut mode = AgreementMode::ExplicitConfirmations;
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| anyhow!("{flag} needs a value\n{}", usage()))
        };
        match flag.as_str() {
            "--rpc" => rpc = Some(value()?),
            "--manager" => manager = Some(value()?.parse().context("--manager")?),
            "--machine" => machine = Some(value()?.parse().context("--machine")?),
            "--key" => key = Some(value()?.parse().context("--key")?),
            "--data-dir" => data_dir = Some(PathBuf::from(value()?)),
            "--listen" => listen.push(value()?.parse().context("--listen")?),
            "--bootstrap" => bootstrap.push(value()?.parse().context("--bootstrap")?),
            "--opponent" => opponent = Some(value()?.parse().context("--opponent")?),
            "--stake" => {
                let eth: f64 = value()?.parse().context("--stake")?;
                stake = U256::from((eth * 1e6) as u128) * U256::from(10u64).pow(U256::from(12u64));
            }
            "--interactive" => interactive = true,
            "--board" => board = true,
            "--silent-after" => silent_after = Some(value()?.parse().context("--silent-after")?),
            "--cheat-at" => cheat_at = Some(value()?.parse().context("--cheat-at")?),
            "--resume" => resume = true,
            "--timing" => {
                let parts: Vec<u64> = value()?
                    .split(',')
                    .map(|p| p.trim().parse())
                    .collect::<Result<_, _>>()
                    .context("--timing P2P,AGREE,FALLBACK,CHALLENGE")?;
                let [p2p_time, agreement_time, chain_fallback_time, challenge_time] = parts[..] else {
                    bail!("--timing takes four numbers");
                };
                timing = Timing {
                    p2p_time,
                    agreement_time,
                    chain_fallback_time,
                    challenge_time,
                };
            }
            "--mode" => {
                mode = match value()?.as_str() {
                    "explicit" => AgreementMode::ExplicitConfirmations,
                    "virtual" => AgreementMode::VirtualVotingOnly,
                    other => bail!("--mode explicit|virtual, not {other}"),
                }
            }
            "--help" | "-h" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            other => bail!("unknown option {other}\n{}", usage()),
        }
    }
    let missing = |name: &str| anyhow!("{name} is required\n{}", usage());
    let key: B256 = key.ok_or_else(|| missing("--key"))?;
    let rpc: String = rpc.ok_or_else(|| missing("--rpc"))?;
    let manager: Address = manager.ok_or_else(|| missing("--manager"))?;
    let data_dir = data_dir.ok_or_else(|| missing("--data-dir"))?;
    let mut config = NodeConfig::new(key, rpc, manager, data_dir);
    if listen.is_empty() {
        listen.push("/ip4/127.0.0.1/tcp/0".parse().context("listen address")?);
    }
    config.listen = listen;
    config.bootstrap = bootstrap;
    config.public = true;
    config.poll_interval_ms = 100;
    config.create_data_dir = !resume;
    let args = Args {
        machine: machine.unwrap_or(Address::ZERO),
        key,
        opponent,
        stake,
        interactive,
        board,
        silent_after,
        cheat_at,
        resume,
        timing,
        mode,
    };
    if args.opponent.is_some() && args.machine == Address::ZERO {
        bail!("--machine is required to propose a game\n{}", usage());
    }
    Ok((args, config))
}

async fn listen_addr(node: &Node) -> Result<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let addrs = node.listen_addrs().await?;
        if let Some(a) = addrs.into_iter().find(|a| !a.to_string().ends_with("/tcp/0")) {
            return Ok(format!("{a}/p2p/{}", node.peer_id()));
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the node does not listen");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
