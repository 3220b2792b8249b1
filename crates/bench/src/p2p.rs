//! Finality latency over libp2p on loopback: N real nodes (`entente-node`: libp2p, redb with
//! durable group commits, the chain listener) in one process, a RoundRobinCounter channel
//! opened on anvil, one transaction at a time from submit until every node reports it final.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use entente_chain::{Anvil, ChainClient};
use entente_contracts::{RoundRobinCounter, artifacts};
use entente_node::{Channel, MachineSource, Node, NodeConfig, ProposalBuilder};
use entente_types::{Address, AgreementMode, U256};

/// Submit-to-final-everywhere latencies of `samples` transactions in a channel of `n` nodes.
#[allow(clippy::disallowed_methods)] // a benchmark reads the wall clock
pub async fn latency(n: usize, samples: usize, data: &std::path::Path) -> Result<Vec<Duration>> {
    let anvil = Anvil::builder().accounts(n + 2).spawn()?;
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
    let participants: Vec<Address> = nodes.iter().map(|n| n.address()).collect();
    let deposits = vec![U256::from(1_000u64); n];
    let code = MachineSource::ArtifactJson(artifacts::ROUND_ROBIN_COUNTER.to_string());
    let proposal = ProposalBuilder::new(machine, participants.clone(), deposits.clone())
        .agreement_mode(AgreementMode::ExplicitConfirmations)
        .build(
            &nodes[0],
            &code,
            &RoundRobinCounter::initialStateCall {
                participants: participants.clone(),
                deposits,
                target: u64::MAX,
            },
        )
        .await?;
    let id = proposal.channel_id;
    let mut channels: Vec<Channel> = vec![nodes[0].propose(proposal, code.clone()).await?];
    for node in &nodes[1..] {
        let wait = Duration::from_secs(120);
        let (_, p) = node.next_proposal(wait).await?;
        channels.push(node.accept(p.channel_id, code.clone()).await?);
    }
    for ch in &channels {
        ch.wait_live(Duration::from_secs(300)).await?;
    }
    let mut latencies = Vec::with_capacity(samples);
    let wait = Duration::from_secs(60);
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
        for ch in &channels {
            ch.wait_final(info.tip + 1, wait).await?;
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
