//! Real nodes (`entente-node`: libp2p, one redb store per node with durable group commits, the
//! chain listener) in one process, RoundRobinCounter channels opened on anvil:
//!
//! - [`latency`]: one channel of N nodes, one transaction at a time from submit until every node
//!   reports it final;
//! - [`concurrent`]: two nodes with many channels between them (each node a party to all), every
//!   writer moving as soon as its node tells it its turn: finalized transitions per second over
//!   all channels.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use entente_chain::{Anvil, ChainClient};
use entente_contracts::{RoundRobinCounter, artifacts};
use entente_node::{Channel, MachineSource, Node, NodeConfig, ProposalBuilder};
use entente_types::{Address, AgreementMode, U256};

/// anvil with the manager and the machine deployed, and `n` nodes that know each other.
pub(crate) struct Cluster {
    pub(crate) nodes: Vec<Node>,
    pub(crate) machine: Address,
    pub(crate) manager: Address,
    // Dropped last: the nodes talk to it until they stop.
    pub(crate) _anvil: Anvil,
}

pub(crate) async fn cluster(n: usize, data: &std::path::Path) -> Result<Cluster> {
    // Without old states on disk: anvil writes the states it evicts from memory to
    // ~/.foundry/anvil/tmp, and a 10,000-channel idle run left tens of gigabytes there. A few
    // recent states stay in memory: with the latest alone, a call that anvil resolved to the
    // latest block failed when a block came in between ("block height is 6 but requested was 5").
    let anvil = Anvil::builder()
        .accounts(n + 2)
        .arg("--prune-history=256")
        .spawn()?;
    let mut deployer = ChainClient::connect(&anvil.endpoint(), anvil.signer(0)?).await?;
    let manager = deployer.deploy_manager().await?;
    let machine = deployer.deploy(RoundRobinCounter::BYTECODE.clone()).await?;
    let mut nodes: Vec<Node> = Vec::with_capacity(n);
    let mut bootstrap = Vec::new();
    for i in 0..n {
        let mut config = NodeConfig::new(
            anvil.keys()[i + 1],
            anvil.endpoint(),
            manager,
            data.join(format!("node{i}")),
        );
        config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse()?];
        config.bootstrap = bootstrap.clone();
        config.public = true;
        config.poll_interval_ms = 100;
        let node = Node::start(config).await.with_context(|| format!("node {i}"))?;
        if i == 0 {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                let addrs = node.listen_addrs().await?;
                if let Some(a) = addrs.into_iter().find(|a| !a.to_string().ends_with("/tcp/0")) {
                    bootstrap.push(
                        a.with_p2p(node.peer_id())
                            .map_err(|_| anyhow!("listen address"))?,
                    );
                    break;
                }
                if tokio::time::Instant::now() > deadline {
                    return Err(anyhow!("node 0 does not listen"));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        nodes.push(node);
    }
    Ok(Cluster {
        nodes,
        machine,
        manager,
        _anvil: anvil,
    })
}

/// Opens a RoundRobinCounter channel of every node in `nodes` (explicit confirmations): the first
/// proposes, the others accept; returns each node's handle, in the order of `nodes`.
async fn open_channel(nodes: &[Node], machine: Address, salt: &str) -> Result<Vec<Channel>> {
    let participants: Vec<Address> = nodes.iter().map(|n| n.address()).collect();
    let deposits = vec![U256::from(1_000u64); nodes.len()];
    let code = MachineSource::ArtifactJson(artifacts::ROUND_ROBIN_COUNTER.to_string());
    let proposal = ProposalBuilder::new(machine, participants.clone(), deposits.clone())
        .agreement_mode(AgreementMode::ExplicitConfirmations)
        .salt(entente_types::keccak256(salt))
        .build(
            &nodes[0],
            &code,
            &RoundRobinCounter::initialStateCall {
                participants,
                deposits,
                target: u64::MAX,
            },
        )
        .await?;
    let mut channels = vec![nodes[0].propose(proposal, code.clone()).await?];
    for node in &nodes[1..] {
        let (_, p) = node.next_proposal(Duration::from_secs(120)).await?;
        channels.push(node.accept(p.channel_id, code.clone()).await?);
    }
    Ok(channels)
}

/// Submit-to-final-everywhere latencies of `samples` transactions in a channel of `n` nodes.
#[allow(clippy::disallowed_methods)] // a benchmark reads the wall clock
pub async fn latency(n: usize, samples: usize, data: &std::path::Path) -> Result<Vec<Duration>> {
    let Cluster {
        nodes,
        machine,
        _anvil: anvil,
        ..
    } = cluster(n, data).await?;
    let participants: Vec<Address> = nodes.iter().map(|n| n.address()).collect();
    let channels = open_channel(&nodes, machine, "latency").await?;
    let id = channels[0].id();
    for ch in &channels {
        ch.wait_live(Duration::from_secs(300)).await?;
    }
    let mut latencies = Vec::with_capacity(samples);
    let wait = Duration::from_secs(60);
    // Each node's info as of its last durable turn, watched from here on (no command to the
    // nodes while a sample runs, besides the move itself).
    let mut watches = Vec::with_capacity(channels.len());
    for ch in &channels {
        watches.push(ch.watch_info().await?);
    }
    for _ in 0..samples + 2 {
        let info = channels[0].info().await?;
        let w = participants
            .iter()
            .position(|a| *a == info.next_writer)
            .ok_or(anyhow!("no writer in channel {id}"))?;
        channels[w]
            .wait_until("the writer's tip", wait, |i| i.tip == info.tip)
            .await?;
        let t0 = std::time::Instant::now();
        channels[w].call(&RoundRobinCounter::addCall { step: 1 }).await?;
        for watch in &mut watches {
            tokio::time::timeout(wait, watch.wait_for(|i| i.finalized > info.tip))
                .await
                .map_err(|_| anyhow!("no finality in {wait:?} in channel {id}"))?
                .map_err(|_| anyhow!("a node stopped"))?;
        }
        latencies.push(t0.elapsed());
    }
    // The first two warm the connections up.
    latencies.drain(..2);
    drop(channels);
    drop(nodes);
    drop(anvil);
    Ok(latencies)
}

/// Finalized transitions per second over `channels` two-party channels between two nodes,
/// `per_channel` transitions each, every writer moving as soon as its node tells it its turn
/// (explicit confirmations). Also returns the transitions finalized and the time taken.
#[allow(clippy::disallowed_methods)] // a benchmark reads the wall clock
pub async fn concurrent(
    channels: usize,
    per_channel: u64,
    data: &std::path::Path,
) -> Result<(f64, u64, Duration)> {
    use entente_node::{ChannelEvent, NodeEvent};
    use std::collections::HashMap;
    let Cluster {
        nodes,
        machine,
        _anvil: anvil,
        ..
    } = cluster(2, data).await?;
    let participants: Vec<Address> = nodes.iter().map(|n| n.address()).collect();
    // Listen before the first channel exists: no turn is missed.
    let feeds: Vec<_> = nodes.iter().map(|n| n.events()).collect();
    let mut handles: Vec<HashMap<entente_types::B256, Channel>> = vec![HashMap::new(), HashMap::new()];
    for c in 0..channels {
        for (side, ch) in handles
            .iter_mut()
            .zip(open_channel(&nodes, machine, &format!("concurrent {c}")).await?)
        {
            side.insert(ch.id(), ch);
        }
    }
    for side in &handles {
        for ch in side.values() {
            ch.wait_live(Duration::from_secs(600)).await?;
        }
    }
    // Each node: move on every turn it is told (up to `per_channel`), count what is final.
    let t0 = std::time::Instant::now();
    let mut drivers = Vec::new();
    for ((mut feed, side), me) in feeds.into_iter().zip(handles).zip(participants.clone()) {
        drivers.push(tokio::spawn(async move {
            let mut finalized: HashMap<entente_types::B256, u64> = side.keys().map(|id| (*id, 0)).collect();
            let mut asked: HashMap<entente_types::B256, u64> = HashMap::new();
            let mut done = 0usize;
            let mut calls = tokio::task::JoinSet::new();
            // One move per height told (a turn may be seen both in the sweep and as an event).
            let mut move_on = |calls: &mut tokio::task::JoinSet<Result<(), entente_node::NodeError>>,
                               ch: &Channel,
                               height: u64| {
                let last = asked.entry(ch.id()).or_default();
                if height > *last && height <= per_channel {
                    *last = height;
                    let ch = ch.clone();
                    calls.spawn(
                        async move { ch.call(&RoundRobinCounter::addCall { step: 1 }).await.map(|_| ()) },
                    );
                }
            };
            // Turns told before this task listened, or lost when the feed lagged: ask every
            // channel.
            let mut sweep = true;
            while done < side.len() {
                if std::mem::take(&mut sweep) {
                    for ch in side.values() {
                        let info = ch.info().await?;
                        if info.next_writer == me {
                            move_on(&mut calls, ch, info.tip + 1);
                        }
                        let f = finalized.entry(ch.id()).or_default();
                        if *f < per_channel && info.finalized >= per_channel {
                            done += 1;
                        }
                        *f = (*f).max(info.finalized);
                    }
                    continue;
                }
                let event = tokio::time::timeout(Duration::from_secs(120), feed.recv())
                    .await
                    .map_err(|_| anyhow!("no event for 120 s ({done} of {} channels done)", side.len()))?;
                let (id, event) = match event {
                    Ok(NodeEvent::Channel { channel_id, event }) => (channel_id, event),
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        sweep = true;
                        continue;
                    }
                    Err(e) => return Err(anyhow!("the node's event feed: {e}")),
                };
                let Some(ch) = side.get(&id) else { continue };
                match *event {
                    ChannelEvent::Turn { height, .. } => move_on(&mut calls, ch, height),
                    ChannelEvent::Protocol(entente_node::ProtocolEvent::Finalized { height, .. }) => {
                        let f = finalized.entry(id).or_default();
                        if *f < per_channel && height >= per_channel {
                            done += 1;
                        }
                        *f = (*f).max(height);
                    }
                    _ => {}
                }
                while let Some(r) = calls.try_join_next() {
                    r.map_err(|e| anyhow!("a move task: {e}"))??;
                }
            }
            while let Some(r) = calls.join_next().await {
                r.map_err(|e| anyhow!("a move task: {e}"))??;
            }
            Ok::<u64, anyhow::Error>(finalized.values().map(|f| (*f).min(per_channel)).sum())
        }));
    }
    let mut total = u64::MAX;
    for d in drivers {
        total = total.min(d.await.map_err(|e| anyhow!("a driver: {e}"))??);
    }
    let elapsed = t0.elapsed();
    drop(nodes);
    drop(anvil);
    Ok((total as f64 / elapsed.as_secs_f64(), total, elapsed))
}
