//! Byzantine peers against the whole system: the peer-to-peer protocol plus the real
//! StateChannelManager on the in-process revm chain. The chain's verdict ends every fault.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use entente_dispute::ChainEvent;
use entente_sim::{Game, Scenario, Strategy};

fn events(sim: &entente_sim::Simulation) -> Vec<ChainEvent> {
    sim.chain().map(|c| c.events().to_vec()).unwrap_or_default()
}

#[test]
fn honest_game_closes_on_chain() {
    let mut sim = Scenario::new(Game::TicTacToe, 2, 1).with_chain().build().unwrap();
    sim.run(3_600_000).unwrap_or_else(|e| panic!("{e}"));
    assert!(sim.settled(), "{:#?}", sim.chain().unwrap().records());
    assert!(
        events(&sim)
            .iter()
            .any(|e| matches!(e, ChainEvent::ChannelClosed { .. }))
    );
}

#[test]
fn silent_player_is_removed_by_timeout_and_the_other_is_paid() {
    let mut sim = Scenario::new(Game::TicTacToe, 2, 2)
        .with_chain()
        .byzantine(1, Strategy::Silent)
        .build()
        .unwrap();
    sim.run(3_600_000).unwrap_or_else(|e| panic!("{e}"));
    let silent = sim.peer(1).me();
    let records = sim.chain().unwrap().records().to_vec();
    assert!(sim.settled(), "{records:#?}");
    let ev = events(&sim);
    assert!(
        ev.iter().any(|e| matches!(e, ChainEvent::ParticipantRemoved { participant, slashed: false } if *participant == silent)),
        "{records:#?}"
    );
    // The silent player forfeits: the honest one takes both stakes.
    let honest = sim.peer(0).me();
    let paid: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            ChainEvent::ChannelClosed { exits, .. } => Some(exits.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(
        paid,
        vec![(honest, alloy_primitives::U256::from(2 * entente_sim::DEPOSIT))]
    );
}

#[test]
fn silent_peer_among_four_is_removed_and_the_rest_finish() {
    let mut sim = Scenario::new(Game::Counter { target: 60 }, 4, 3)
        .with_chain()
        .byzantine(1, Strategy::Silent)
        .build()
        .unwrap();
    sim.run(3_600_000).unwrap_or_else(|e| panic!("{e}"));
    let records = sim.chain().unwrap().records().to_vec();
    assert!(sim.settled(), "{records:#?}");
    let ev = events(&sim);
    assert!(
        ev.iter()
            .any(|e| matches!(e, ChainEvent::SetState { participants, .. } if participants.len() == 3)),
        "{records:#?}"
    );
    assert!(
        ev.iter().any(|e| matches!(e, ChainEvent::ChannelClosed { .. })),
        "{records:#?}"
    );
}

#[test]
fn a_false_fraud_proof_is_refused_and_changes_nothing() {
    let mut sim = Scenario::new(Game::TicTacToe, 2, 4)
        .with_chain()
        .byzantine(1, Strategy::FalseDispute)
        .build()
        .unwrap();
    sim.run(3_600_000).unwrap_or_else(|e| panic!("{e}"));
    let records = sim.chain().unwrap().records().to_vec();
    let lines: Vec<String> = records.iter().map(|r| format!("{} {}", r.peer, r.what)).collect();
    assert!(sim.settled(), "{lines:#?}");
    // The chain re-executed the honest move, found it valid and refused the claim at once
    // (docs/security.md, R7): no dispute, nobody judged on it.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("1 proveFraud refused") && l.contains("ClaimDoesNotHold")),
        "{lines:#?}"
    );
    let ev = events(&sim);
    assert!(
        !ev.iter().any(|e| matches!(e, ChainEvent::DisputeStarted { .. })),
        "{lines:#?}"
    );
    assert!(
        !ev.iter()
            .any(|e| matches!(e, ChainEvent::ParticipantRemoved { .. })),
        "{lines:#?}"
    );
    // The game was played to its end and settled with both players' agreement.
    assert!(
        ev.iter().any(|e| matches!(e, ChainEvent::ChannelClosed { .. })),
        "{lines:#?}"
    );
}

#[test]
fn a_failing_seed_names_its_replay_and_replays_identically() {
    // Too little virtual time to remove a silent peer (its deadline alone is 100 s after the
    // last move): the run fails, and says how to replay.
    let scenario = Scenario::new(Game::Counter { target: 41 }, 4, 9)
        .with_chain()
        .byzantine(1, Strategy::Silent)
        .max_ms(60_000);
    let err = scenario.run().unwrap_err();
    let message = err.to_string();
    assert!(message.contains("seed = 9"), "{message}");
    assert!(message.contains("Silent") && message.contains("n=4"), "{message}");
    // Replaying the same scenario gives the identical trace, entry for entry.
    let trace = |s: &Scenario| {
        let mut sim = s.build().unwrap();
        let _ = sim.run(60_000);
        (
            sim.trace_hash(),
            sim.trace().to_vec(),
            sim.chain().unwrap().records().to_vec(),
        )
    };
    let (h1, t1, c1) = trace(&scenario);
    let (h2, t2, c2) = trace(&scenario);
    assert_eq!(h1, h2);
    assert_eq!(t1, t2);
    assert_eq!(c1, c2);
    assert!(!c1.is_empty(), "the run reached the chain");
}

#[test]
fn games_settle_and_everyone_is_paid_with_a_fifth_of_chain_calls_lost() {
    // Every call of every dispute handler is lost with probability 1/5 (the handler hears it was
    // not sent, backs off and decides again).
    let mut lost = 0;
    let mut failures = Vec::new();
    for n in [2usize, 4] {
        for strategy in [
            Strategy::Honest,
            Strategy::Silent,
            Strategy::InvalidTransition,
            Strategy::WithholdConfirmations,
            Strategy::FalseDispute,
        ] {
            for seed in 0..8 {
                let mut scenario = Scenario::new(
                    Game::Counter {
                        target: 10 * n as u64 + 1,
                    },
                    n,
                    seed,
                )
                .with_chain()
                .chain_failures(
                    std::env::var("CHAIN_FAILURES")
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(200),
                );
                if strategy != Strategy::Honest {
                    scenario = scenario.byzantine(1, strategy);
                }
                let mut sim = scenario.build().unwrap();
                let replay = format!("n={n} {strategy:?} seed={seed}");
                if let Err(e) = sim.run(3_600_000) {
                    failures.push(format!("{replay}: {e}"));
                    continue;
                }
                lost += sim
                    .chain()
                    .unwrap()
                    .records()
                    .iter()
                    .filter(|r| r.what.contains("lost (simulated chain fault)"))
                    .count();
                if !sim.settled() {
                    failures.push(format!("{replay}: did not settle"));
                    continue;
                }
                for i in sim.honest() {
                    let got = sim.paid(i);
                    if got < alloy_primitives::U256::from(entente_sim::DEPOSIT) {
                        failures.push(format!("{replay}: honest peer {i} got {got}"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(lost >= 20, "the fault was hardly exercised: {lost} calls lost");
}

#[test]
fn one_designated_participant_closes_and_nobody_pays_for_a_duplicate() {
    for seed in 0..10 {
        let mut sim = Scenario::new(Game::Counter { target: 41 }, 4, seed)
            .with_chain()
            .build()
            .unwrap();
        sim.run(3_600_000).unwrap_or_else(|e| panic!("{e}"));
        assert!(sim.settled());
        let closes: Vec<String> = sim
            .chain()
            .unwrap()
            .records()
            .iter()
            .filter(|r| r.what.starts_with("close"))
            .map(|r| format!("{} {} {}", r.at_ms, r.peer, r.what))
            .collect();
        assert_eq!(closes.len(), 1, "seed {seed}: {closes:#?}");
    }
}
