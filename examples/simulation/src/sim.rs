//! `--sim`: the same game in the deterministic simulation (virtual time, in-memory network,
//! the real StateChannelManager on the in-process chain).

#![allow(clippy::disallowed_methods)] // Instant::now: wall time for the progress line only

use std::time::Instant;

use anyhow::{Result, anyhow};
use entente_node::ChainEvent;
use entente_sim::{DEPOSIT, Game, Scenario, Strategy};
use entente_types::U256;

use crate::Options;
use crate::report::{PeerRow, Progress, Sample, Summary, eth};

/// Virtual time the run may take at most.
const MAX_VIRTUAL_MS: u64 = 3_600_000;
/// Virtual time between two looks at the progress.
const SLICE_MS: u64 = 2_000;

pub(crate) fn run(options: &Options) -> Result<Summary> {
    let started = Instant::now();
    let n = options.n;
    // The simulated players add a random step of 1 to 10 (5.5 on average): about five rounds.
    let target = options.target.unwrap_or(5 * n as u64 * 11 / 2);
    let mut scenario = Scenario::new(Game::Counter { target }, n, options.seed)
        .mode(options.mode)
        .with_chain();
    if options.byzantine > 0 {
        scenario = scenario.byzantine(options.byzantine, options.strategy);
    }
    println!(
        "deterministic simulation: {n} peers, seed {}, counter target {target}, {} x {:?}",
        options.seed, options.byzantine, options.strategy
    );
    let mut sim = scenario.build().map_err(|e| anyhow!("{e}"))?;
    sim.keep_trace(false);
    let mut progress = Progress::new();
    let mut until = 0;
    while until < MAX_VIRTUAL_MS {
        until += SLICE_MS;
        sim.run(until).map_err(|e| anyhow!("{e}"))?;
        let disputes = sim
            .chain()
            .map(|c| {
                c.events()
                    .iter()
                    .filter(|e| matches!(e, ChainEvent::DisputeStarted { .. }))
                    .count()
            })
            .unwrap_or(0);
        let peer = sim.peer(0);
        progress.show(
            peer.finalized_height(),
            peer.tip().max(1),
            &format!(
                "final/tip on peer 0, virtual {:.0} s, disputes {disputes}",
                sim.now_ms() as f64 / 1000.0
            ),
            started.elapsed(),
        );
        if sim.settled() {
            break;
        }
    }
    progress.finish();
    if !sim.settled() {
        return Err(anyhow!(
            "the simulation did not settle within {} s of virtual time (seed {})",
            MAX_VIRTUAL_MS / 1000,
            options.seed
        ));
    }

    let samples: Vec<Sample> = sim
        .latencies()
        .iter()
        .enumerate()
        .map(|(i, ms)| Sample {
            x: i as u64 + 1,
            peer: 0,
            ms: *ms as f64,
        })
        .collect();
    let events = sim.chain().map(|c| c.events().to_vec()).unwrap_or_default();
    let mut disputes = Vec::new();
    let mut outcome = Vec::new();
    let mut exits: Vec<(entente_types::Address, U256)> = Vec::new();
    for event in &events {
        match event {
            ChainEvent::DisputeStarted { record, .. } => disputes.push(format!(
                "{:?} against {} (fork {}, slash {})",
                record.kind, record.target, record.fork, record.slash
            )),
            ChainEvent::ParticipantRemoved { participant, slashed } => outcome.push(format!(
                "{participant} {}",
                if *slashed { "slashed" } else { "removed" }
            )),
            ChainEvent::ChannelClosed {
                fork,
                height,
                exits: paid,
            } => {
                outcome.push(format!("closed on chain at fork {fork}, height {height}"));
                exits.extend(paid.iter().copied());
            }
            _ => {}
        }
    }
    let addresses: Vec<_> = (0..n).map(|i| sim.peer(i).me()).collect();
    let strategies: Vec<Strategy> = (0..n).map(|i| sim.strategy(i)).collect();
    let rows_base: Vec<(u64, u64)> = (0..n)
        .map(|i| (sim.stats(i).submitted, sim.peer(i).finalized_height()))
        .collect();
    let link = sim.chain_mut().ok_or_else(|| anyhow!("no chain"))?;
    let peers = (0..n)
        .map(|i| {
            let address = addresses[i];
            let paid: U256 = exits
                .iter()
                .filter(|(a, _)| *a == address)
                .map(|(_, v)| *v)
                .sum::<U256>()
                + link.pending(address);
            PeerRow {
                address: address.to_string(),
                role: {
                    let verdict = events.iter().find_map(|e| match e {
                        ChainEvent::ParticipantRemoved { participant, slashed }
                            if *participant == address =>
                        {
                            Some(if *slashed { ", slashed" } else { ", removed" })
                        }
                        _ => None,
                    });
                    format!(
                        "{}{}",
                        kebab(&format!("{:?}", strategies[i])),
                        verdict.unwrap_or("")
                    )
                },
                moves: rows_base[i].0,
                finalized: rows_base[i].1,
                payout: eth(paid),
                balance_change: Some(crate::report::signed_eth(U256::from(DEPOSIT), paid)),
            }
        })
        .collect();
    Ok(Summary {
        mode: format!("deterministic simulation, seed {}", options.seed),
        n,
        target,
        transitions: sim.peer(0).tip(),
        peers,
        samples,
        x_label: "sample (in order of finality, every peer)",
        per_peer_latency: false,
        unit: "virtual ms",
        disputes,
        outcome,
        wall: started.elapsed(),
        virtual_ms: Some(sim.now_ms()),
    })
}

/// `InvalidTransition` -> `invalid-transition`.
fn kebab(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}
