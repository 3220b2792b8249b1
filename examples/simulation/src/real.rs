//! The default mode: N real nodes in this process, libp2p over loopback, anvil as the chain.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use entente_chain::{Anvil, ChainClient};
use entente_contracts::{RoundRobinCounter, artifacts};
use entente_node::{
    ChainEvent, Channel, ChannelEvent, MachineSource, Multiaddr, Node, NodeConfig, Phase, ProposalBuilder,
    ProtocolEvent,
};
use entente_sim::Strategy;
use entente_types::{Address, Timing, U256, keccak256};
use tokio::time::Instant;

use crate::Options;
use crate::report::{PeerRow, Progress, Sample, Summary, eth, signed_eth};

/// Short deadlines so a silent peer is removed in seconds (p2p, agreement, chain fallback,
/// challenge period).
const FAST: Timing = Timing {
    p2p_time: 3,
    agreement_time: 2,
    chain_fallback_time: 3,
    challenge_time: 4,
};

/// The settlement: fork, height and payouts.
type Closed = (u64, u64, Vec<(Address, U256)>);

/// What the peers' event watchers gather.
#[derive(Default)]
struct Shared {
    /// When the move at (fork, height) was submitted.
    submitted: Mutex<HashMap<(u64, u64), Instant>>,
    samples: Mutex<Vec<Sample>>,
    /// Disputes seen, by (fork, target), with a description.
    disputes: Mutex<BTreeMap<(u64, Address), String>>,
    removed: Mutex<BTreeMap<Address, bool>>,
    closed: Mutex<Option<Closed>>,
    withdrawn: Mutex<BTreeMap<usize, U256>>,
    moves: Vec<AtomicU64>,
    finalized: Vec<AtomicU64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) async fn run(options: &Options) -> Result<Summary> {
    let started = Instant::now();
    let n = options.n;
    let target = options.target.unwrap_or(5 * n as u64);
    let silent = if options.strategy == Strategy::Silent {
        options.byzantine
    } else {
        0
    };
    println!(
        "libp2p on loopback + anvil: {n} peers, counter target {target} (step {}), {silent} silent",
        options.step
    );
    let anvil = Anvil::builder()
        .accounts(n + 1)
        .spawn()
        .context("starting anvil (run `npm ci` in the repository root first)")?;
    let mut deployer = ChainClient::connect(&anvil.endpoint(), anvil.signer(0)?).await?;
    let manager = deployer.deploy_manager().await.context("deploying the manager")?;
    let machine = deployer
        .deploy(RoundRobinCounter::BYTECODE.clone())
        .await
        .context("deploying RoundRobinCounter")?;
    println!(
        "anvil at {}, manager {manager}, machine {machine}",
        anvil.endpoint()
    );

    let data = std::env::temp_dir().join(format!("entente-simulation-{}", std::process::id()));
    let _cleanup = RemoveOnDrop(data.clone());
    let mut nodes: Vec<Node> = Vec::with_capacity(n);
    let mut bootstrap: Vec<Multiaddr> = Vec::new();
    for i in 0..n {
        let mut config = NodeConfig::new(
            anvil.keys()[i + 1],
            anvil.endpoint(),
            manager,
            data.join(format!("peer-{i}")),
        );
        config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse()?];
        config.bootstrap = bootstrap.clone();
        config.public = true;
        config.poll_interval_ms = 100;
        let node = Node::start(config)
            .await
            .with_context(|| format!("starting node {i}"))?;
        if i == 0 {
            bootstrap.push(dial_addr(&node).await?);
        }
        nodes.push(node);
    }
    println!(
        "{n} nodes started; peer 0 proposes the channel to the {} others",
        n - 1
    );

    let participants: Vec<Address> = nodes.iter().map(Node::address).collect();
    let deposit = U256::from(10u64).pow(U256::from(18u64));
    let mut before = Vec::with_capacity(n);
    for node in &nodes {
        before.push(node.balance().await?);
    }
    let code = MachineSource::ArtifactJson(artifacts::ROUND_ROBIN_COUNTER.to_string());
    let salt = keccak256(format!("entente-simulation-{}", std::process::id()));
    let proposal = ProposalBuilder::new(machine, participants.clone(), vec![deposit; n])
        .timing(if silent > 0 { FAST } else { Timing::default() })
        .agreement_mode(options.mode)
        .salt(salt)
        .build(
            &nodes[0],
            &code,
            &RoundRobinCounter::initialStateCall {
                participants: participants.clone(),
                deposits: vec![deposit; n],
                target,
            },
        )
        .await?;
    let channel_id = proposal.channel_id;
    let mut channels: Vec<Channel> = vec![nodes[0].propose(proposal, code.clone()).await?];
    for (i, node) in nodes.iter().enumerate().skip(1) {
        let (_, proposal) = node
            .next_proposal(Duration::from_secs(60))
            .await
            .with_context(|| format!("peer {i} waiting for the proposal"))?;
        if proposal.channel_id != channel_id {
            bail!("peer {i} got another proposal");
        }
        channels.push(node.accept(channel_id, code.clone()).await?);
    }

    let shared = Arc::new(Shared {
        moves: (0..n).map(|_| AtomicU64::new(0)).collect(),
        finalized: (0..n).map(|_| AtomicU64::new(0)).collect(),
        ..Shared::default()
    });
    let mut tasks = Vec::new();
    for (i, channel) in channels.iter().enumerate() {
        let events = channel.events().await?;
        tasks.push(tokio::spawn(watch(i, events, shared.clone())));
    }
    for channel in &channels {
        channel.wait_live(Duration::from_secs(120)).await?;
    }
    println!("channel {channel_id} is live: every deposit is in");
    let honest: Vec<usize> = (0..n - silent).collect();
    for &i in &honest {
        let channel = channels[i].clone();
        let me = participants[i];
        let shared = shared.clone();
        let step = options.step;
        tasks.push(tokio::spawn(async move {
            if let Err(e) = play(i, me, channel, step, shared).await {
                tracing_error(i, &e);
            }
        }));
    }

    // Progress until every honest peer has seen the settlement.
    let mut progress = Progress::new();
    let deadline = started + Duration::from_secs(options.timeout_secs);
    loop {
        let mut all_closed = true;
        for &i in &honest {
            if channels[i].info().await?.phase != Phase::Closed {
                all_closed = false;
            }
        }
        let counter = channels[0]
            .view(&RoundRobinCounter::getCounterStateCall {})
            .await
            .map(|s| s.counter)
            .unwrap_or(0);
        let final_min = honest
            .iter()
            .map(|&i| shared.finalized[i].load(Ordering::Relaxed))
            .min()
            .unwrap_or(0);
        let disputes = lock(&shared.disputes).len();
        progress.show(
            counter,
            target,
            &format!("counter; final on every honest peer up to height {final_min}, disputes {disputes}"),
            started.elapsed(),
        );
        if all_closed {
            break;
        }
        if Instant::now() > deadline {
            progress.finish();
            bail!("the channel did not settle within {} s", options.timeout_secs);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    progress.finish();
    println!("settled on chain; waiting for the payouts to be withdrawn");

    // Payouts are withdrawn by the nodes: wait until the balances stop moving.
    let mut after = before.clone();
    let mut stable_since = Instant::now();
    let settle_deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut now = Vec::with_capacity(n);
        for node in &nodes {
            now.push(node.balance().await?);
        }
        if now != after {
            after = now;
            stable_since = Instant::now();
        }
        let everyone_paid = honest
            .iter()
            .all(|&i| after[i] > before[i] || lock(&shared.withdrawn).contains_key(&i));
        if (everyone_paid && stable_since.elapsed() > Duration::from_millis(500))
            || stable_since.elapsed() > Duration::from_secs(3)
            || Instant::now() > settle_deadline
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let transitions: u64 = shared.moves.iter().map(|m| m.load(Ordering::Relaxed)).sum();
    for task in &tasks {
        task.abort();
    }

    let closed = lock(&shared.closed).clone();
    let withdrawn = lock(&shared.withdrawn).clone();
    let removed = lock(&shared.removed).clone();
    let peers = (0..n)
        .map(|i| {
            let address = participants[i];
            let exit: U256 = closed
                .as_ref()
                .map(|(_, _, exits)| exits.iter().filter(|(a, _)| *a == address).map(|(_, v)| *v).sum())
                .unwrap_or_default();
            let paid = withdrawn.get(&i).copied().unwrap_or(exit);
            let role = match (i >= n - silent, removed.get(&address)) {
                (true, Some(false)) => "silent, removed",
                (true, Some(true)) => "silent, slashed",
                (true, None) => "silent",
                (false, Some(_)) => "honest, removed (!)",
                (false, None) => "honest",
            };
            PeerRow {
                address: address.to_string(),
                role: role.to_string(),
                moves: shared.moves[i].load(Ordering::Relaxed),
                finalized: shared.finalized[i].load(Ordering::Relaxed),
                payout: eth(paid),
                balance_change: Some(signed_eth(before[i], after[i])),
            }
        })
        .collect();
    let mut outcome = Vec::new();
    for (address, slashed) in &removed {
        outcome.push(format!(
            "{address} {} by the chain",
            if *slashed { "slashed" } else { "removed" }
        ));
    }
    match &closed {
        Some((fork, height, exits)) => outcome.push(format!(
            "closed on chain at fork {fork}, height {height}; {} paid out",
            eth(exits.iter().map(|(_, v)| *v).sum())
        )),
        None => outcome.push("closed".into()),
    }
    outcome.push("net per peer: chain balance after - before (deposit, payout and gas)".into());
    let disputes = lock(&shared.disputes).values().cloned().collect();
    let samples = lock(&shared.samples).clone();
    drop(channels);
    drop(nodes);
    Ok(Summary {
        mode: "libp2p on loopback + anvil".into(),
        n,
        target,
        transitions,
        peers,
        samples,
        x_label: "height",
        per_peer_latency: true,
        unit: "ms",
        disputes,
        outcome,
        wall: started.elapsed(),
        virtual_ms: None,
    })
}

fn tracing_error(i: usize, e: &anyhow::Error) {
    eprintln!("peer {i} stopped playing: {e:#}");
}

/// Peer `i` plays its turns: `add(step)` whenever it is the next writer.
async fn play(i: usize, me: Address, channel: Channel, step: u64, shared: Arc<Shared>) -> Result<()> {
    let mut events = channel.events().await?;
    loop {
        let info = channel.info().await?;
        if matches!(info.phase, Phase::Closed | Phase::Left | Phase::Cancelled) {
            return Ok(());
        }
        if info.phase == Phase::Live && info.next_writer == me && !info.game_over && !info.disputed {
            let key = (info.fork, info.tip + 1);
            lock(&shared.submitted).insert(key, Instant::now());
            match channel.call(&RoundRobinCounter::addCall { step }).await {
                Ok(_) => {
                    shared.moves[i].fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    lock(&shared.submitted).remove(&key);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            continue;
        }
        let _ = tokio::time::timeout(Duration::from_millis(500), events.recv()).await;
    }
}

/// Peer `i`'s events: finality latencies, disputes, removals, the settlement, payouts.
async fn watch(i: usize, mut events: entente_node::EventStream, shared: Arc<Shared>) {
    let mut last_final: HashMap<u64, u64> = HashMap::new();
    loop {
        let Ok(event) = events.recv().await else {
            return;
        };
        match event {
            ChannelEvent::Protocol(ProtocolEvent::Finalized { fork, height, .. }) => {
                let now = Instant::now();
                let from = last_final.get(&fork).copied().unwrap_or(0);
                {
                    let submitted = lock(&shared.submitted);
                    let mut samples = lock(&shared.samples);
                    for h in from + 1..=height {
                        if let Some(at) = submitted.get(&(fork, h)) {
                            samples.push(Sample {
                                x: h,
                                peer: i,
                                ms: now.duration_since(*at).as_secs_f64() * 1000.0,
                            });
                        }
                    }
                }
                last_final.insert(fork, height.max(from));
                shared.finalized[i].fetch_max(height, Ordering::Relaxed);
            }
            ChannelEvent::Protocol(ProtocolEvent::ForkStarted {
                fork, genesis_height, ..
            }) => {
                last_final.insert(fork, genesis_height);
            }
            ChannelEvent::Chain(ChainEvent::DisputeStarted { record, .. }) => {
                lock(&shared.disputes)
                    .entry((record.fork, record.target))
                    .or_insert_with(|| {
                        format!(
                            "{:?} against {} raised by {} at fork {}",
                            record.kind, record.target, record.submitter, record.fork
                        )
                    });
            }
            ChannelEvent::Chain(ChainEvent::ParticipantRemoved { participant, slashed }) => {
                lock(&shared.removed).insert(participant, slashed);
            }
            ChannelEvent::Chain(ChainEvent::ChannelClosed { fork, height, exits }) => {
                *lock(&shared.closed) = Some((fork, height, exits));
            }
            ChannelEvent::Withdrawn { amount } => {
                *lock(&shared.withdrawn).entry(i).or_default() += amount;
            }
            _ => {}
        }
    }
}

/// The node's first listen address with its PeerId, once it listens.
async fn dial_addr(node: &Node) -> Result<Multiaddr> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let addrs = node.listen_addrs().await?;
        if let Some(a) = addrs.into_iter().find(|a| !a.to_string().ends_with("/tcp/0")) {
            return a
                .with_p2p(node.peer_id())
                .map_err(|a| anyhow!("{a} has a different peer id"));
        }
        if Instant::now() > deadline {
            bail!("the node does not listen");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
