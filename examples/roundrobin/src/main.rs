//! An N-party round-robin counter between Entente nodes, one per process: every participant
//! adds 1 on its turn until the target. Participants can join the running channel and leave it.
//!
//! ```text
//! roundrobin --rpc URL --manager ADDR --key HEX --data-dir DIR [--listen MULTIADDR]
//!            [--bootstrap MULTIADDR]...
//!            (--propose ADDR,ADDR,... --machine ADDR [--target N] | --accept |
//!             --join CHANNEL --invited-by ADDR)
//!            [--allow-join ADDR]... [--sponsor-join ADDR --at HEIGHT] [--leave-at HEIGHT]
//! ```
//!
//! `--propose` opens a channel with the listed participants (this node first); `--accept`
//! waits for a proposal; `--join CHANNEL --invited-by ADDR` waits for a ticket from participant
//! `ADDR` to join a running channel with a deposit of 1 ether.
//! `--allow-join` lets a newcomer in when another participant proposes it; `--sponsor-join`
//! proposes one once the counter reached `--at`; `--leave-at` leaves once it reached that value.
//! Stdout lines: `address`, `listening`, `channel`, `live`, `add`, `fork`, `left`, `closed`,
//! `balance`, `done`.

#![allow(clippy::print_stdout)] // a command-line program

use std::io::Write as _;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use entente_contracts::{RoundRobinCounter, artifacts};
use entente_node::{MachineSource, Multiaddr, Node, NodeConfig, NodeError, Phase, ProposalBuilder};
use entente_types::{Address, B256, Bytes, U256};

const WAIT: Duration = Duration::from_secs(300);

fn say(what: &str, details: impl std::fmt::Display) {
    println!("{what} {details}");
    let _ = std::io::stdout().flush();
}

enum Role {
    Propose(Vec<Address>),
    Accept,
    Join(B256, Address),
}

struct Args {
    role: Role,
    machine: Address,
    target: u64,
    allow: Vec<Address>,
    sponsor: Option<(Address, u64)>,
    leave_at: Option<u64>,
}

fn main() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> Result<()> {
    let (args, config) = parse(std::env::args().skip(1).collect())?;
    let node = Node::start(config).await.context("starting the node")?;
    let me = node.address();
    say("address", me);
    say("listening", listen_addr(&node).await?);
    let before = node.balance().await?;
    let deposit = U256::from(10u64).pow(U256::from(18u64));
    let code = MachineSource::ArtifactJson(artifacts::ROUND_ROBIN_COUNTER.to_string());
    let channel = match &args.role {
        Role::Propose(others) => {
            let mut participants = vec![me];
            participants.extend(others);
            let deposits = vec![deposit; participants.len()];
            // A local example: a challenge window of seconds, so that an agreed leave (carried out
            // when its challenge window is over) lands while you watch.
            let timing = entente_types::Timing {
                challenge_time: 4,
                ..entente_types::Timing::default()
            };
            let proposal = ProposalBuilder::new(args.machine, participants.clone(), deposits.clone())
                .timing(timing)
                .build(
                    &node,
                    &code,
                    &RoundRobinCounter::initialStateCall {
                        participants,
                        deposits,
                        target: args.target,
                    },
                )
                .await?;
            node.propose(proposal, code.clone()).await?
        }
        Role::Accept => {
            let (_, proposal) = node.next_proposal(WAIT).await?;
            node.accept(proposal.channel_id, code.clone()).await?
        }
        Role::Join(id, sponsor) => {
            // The channel may not be open on chain yet: wait for it.
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                match node.expect_join(*id, *sponsor, deposit, code.clone()).await {
                    Err(NodeError::UnknownChannel(_)) if tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    result => break result?,
                }
            }
        }
    };
    say("channel", channel.id());
    let info = channel.wait_live(WAIT).await?;
    say(
        "live",
        format!("fork={} participants={}", info.fork, info.participants.len()),
    );
    for a in &args.allow {
        channel.allow_join(*a).await?;
    }
    let mut events = channel.events().await?;
    let mut fork = info.fork;
    let mut sponsored = false;
    let mut left = false;
    loop {
        let info = channel.info().await?;
        if matches!(info.phase, Phase::Closed | Phase::Left | Phase::Cancelled) {
            break;
        }
        if info.fork != fork {
            fork = info.fork;
            say(
                "fork",
                format!("fork={fork} participants={}", info.participants.len()),
            );
        }
        // The channel may settle (or we may leave it) between the two calls: look again.
        let counter = match channel.view(&RoundRobinCounter::getCounterStateCall {}).await {
            Ok(state) => state.counter,
            Err(NodeError::ChannelClosed(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        // A membership change is proposed at our final tip in our own turn: nobody else can write
        // meanwhile, so every other participant's tip is the approved state, which they co-sign
        // (docs/security.md, O4: approvals are bound to the latest state). Until then we hold our
        // move.
        let due_join = args.sponsor.filter(|(_, at)| !sponsored && counter >= *at);
        let due_leave = args.leave_at.is_some_and(|at| !left && counter >= at);
        let ready = info.next_writer == me && info.tip == info.finalized && !info.disputed;
        if let Some((joiner, _)) = due_join
            && ready
            && channel.propose_join(joiner, deposit, Bytes::new()).await.is_ok()
        {
            sponsored = true;
            say("sponsored", joiner);
        }
        if due_leave && ready && channel.leave().await.is_ok() {
            left = true;
            say("leaving", format!("counter={counter}"));
        }
        let waiting = due_join.is_some() || (due_leave && !left);
        let my_turn = info.next_writer == me && !info.game_over && !info.disputed;
        if my_turn && !left && !waiting {
            match channel.call(&RoundRobinCounter::addCall { step: 1 }).await {
                Ok(_) => say("add", format!("counter={}", counter + 1)),
                Err(e) => say("refused", e),
            }
            // A moment between moves, so that membership changes find a final tip.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), events.recv()).await;
    }
    let info = channel.info().await?;
    if left {
        say("left", format!("fork={}", info.fork));
    } else if let Some(exits) = info.exits {
        let mine = exits
            .iter()
            .find(|(a, _)| *a == me)
            .map(|(_, v)| *v)
            .unwrap_or_default();
        say("closed", format!("payout_wei={mine}"));
    }
    // Let the node withdraw what it is owed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut after = node.balance().await?;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = node.balance().await?;
        if now == after && now > before.saturating_sub(deposit) {
            break;
        }
        after = now;
    }
    say("balance", format!("start_wei={before} end_wei={after}"));
    say("done", channel.id());
    Ok(())
}

fn parse(raw: Vec<String>) -> Result<(Args, NodeConfig)> {
    let mut it = raw.into_iter();
    let (mut rpc, mut manager, mut key, mut data_dir) = (None, None, None, None);
    let mut listen: Vec<Multiaddr> = Vec::new();
    let mut bootstrap: Vec<Multiaddr> = Vec::new();
    let mut role = None;
    let mut machine = Address::ZERO;
    let mut target = 20;
    let mut allow = Vec::new();
    let mut sponsor_who = None;
    let mut at = 0;
    let mut leave_at = None;
    let mut invited_by = None;
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| anyhow!("{flag} needs a value"));
        match flag.as_str() {
            "--rpc" => rpc = Some(value()?),
            "--manager" => manager = Some(value()?.parse::<Address>().context("--manager")?),
            "--key" => key = Some(value()?.parse::<B256>().context("--key")?),
            "--data-dir" => data_dir = Some(value()?),
            "--listen" => listen.push(value()?.parse().context("--listen")?),
            "--bootstrap" => bootstrap.push(value()?.parse().context("--bootstrap")?),
            "--propose" => {
                let others = value()?
                    .split(',')
                    .map(|a| a.trim().parse::<Address>())
                    .collect::<Result<Vec<_>, _>>()
                    .context("--propose")?;
                role = Some(Role::Propose(others));
            }
            "--accept" => role = Some(Role::Accept),
            "--join" => role = Some(Role::Join(value()?.parse().context("--join")?, Address::ZERO)),
            "--invited-by" => invited_by = Some(value()?.parse::<Address>().context("--invited-by")?),
            "--machine" => machine = value()?.parse().context("--machine")?,
            "--target" => target = value()?.parse().context("--target")?,
            "--allow-join" => allow.push(value()?.parse().context("--allow-join")?),
            "--sponsor-join" => sponsor_who = Some(value()?.parse::<Address>().context("--sponsor-join")?),
            "--at" => at = value()?.parse().context("--at")?,
            "--leave-at" => leave_at = Some(value()?.parse().context("--leave-at")?),
            other => bail!("unknown option {other}"),
        }
    }
    let key = key.ok_or_else(|| anyhow!("--key is required"))?;
    let mut config = NodeConfig::new(
        key,
        rpc.ok_or_else(|| anyhow!("--rpc is required"))?,
        manager.ok_or_else(|| anyhow!("--manager is required"))?,
        data_dir.ok_or_else(|| anyhow!("--data-dir is required"))?,
    );
    if listen.is_empty() {
        listen.push("/ip4/127.0.0.1/tcp/0".parse().context("listen address")?);
    }
    config.listen = listen;
    config.bootstrap = bootstrap;
    config.public = true;
    config.poll_interval_ms = 100;
    let mut role = role.ok_or_else(|| anyhow!("one of --propose, --accept, --join is required"))?;
    if let Role::Join(_, sponsor) = &mut role {
        *sponsor = invited_by.ok_or_else(|| anyhow!("--join needs --invited-by"))?;
    }
    if matches!(role, Role::Propose(_)) && machine == Address::ZERO {
        bail!("--propose needs --machine");
    }
    let args = Args {
        role,
        machine,
        target,
        allow,
        sponsor: sponsor_who.map(|w| (w, at)),
        leave_at,
    };
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
