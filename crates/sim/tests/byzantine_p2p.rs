//! Byzantine peers against the peer-to-peer protocol alone (no chain): honest peers never
//! finalize an invalid or conflicting state, each fault is caught by the pipeline step meant for
//! it and pinned on its author, and no honest peer is ever blamed. Recovering liveness through
//! the chain (calldata, removal, slashing) is tested with the in-process chain.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use entente_clock::TimestampError;
use entente_sim::{Game, Scenario, Simulation, Strategy};
use entente_state_manager::Rejection;
use entente_types::AgreementMode;

/// Runs `strategy` with the last `count` of `n` peers byzantine for a bounded virtual time.
fn run(n: usize, count: usize, strategy: Strategy, seed: u64, mode: AgreementMode) -> Simulation {
    let scenario = Scenario::new(Game::Counter { target: 1_000 }, n, seed)
        .mode(mode)
        .byzantine(count, strategy);
    let mut sim = scenario.build().unwrap();
    if let Err(e) = sim.run(8_000) {
        panic!("{e}");
    }
    assert_eq!(sim.honest().len(), n - count);
    sim
}

#[test]
fn every_strategy_is_caught_and_nothing_conflicting_is_finalized() {
    for mode in [
        AgreementMode::ExplicitConfirmations,
        AgreementMode::VirtualVotingOnly,
    ] {
        for (n, count) in [(2, 1), (4, 1), (4, 2), (4, 3)] {
            for strategy in Strategy::BYZANTINE {
                for seed in 0..2 {
                    // `Simulation::run` checks on every finalization that honest peers agree.
                    let sim = run(n, count, strategy, seed, mode);
                    check(
                        &sim,
                        n,
                        count,
                        strategy,
                        &format!("{strategy:?} n={n} count={count} {mode:?} seed {seed}"),
                    );
                }
            }
        }
    }
}

fn check(sim: &Simulation, n: usize, count: usize, strategy: Strategy, case: &str) {
    let honest = sim.honest();
    let honest_addresses: Vec<_> = honest.iter().map(|&i| sim.peer(i).me()).collect();
    // The first byzantine writer: its turn comes first (the counter goes round in order).
    let first = sim.peer(n - count).me();
    let by_honest = |pred: &dyn Fn(&Rejection) -> bool| {
        sim.rejections()
            .iter()
            .any(|(to, from, reason)| honest.contains(to) && *from == first && pred(reason))
    };
    // Nobody honest is ever blamed.
    for (to, from, reason) in sim.rejections() {
        assert!(
            !(honest_addresses.contains(from) && reason.is_misbehaviour()),
            "{case}: peer {to} blamed honest {from}: {reason}"
        );
    }
    for (to, signer) in sim.equivocations() {
        assert!(
            !honest_addresses.contains(signer),
            "{case}: peer {to} saw honest {signer} equivocate"
        );
    }
    let tips: Vec<u64> = honest.iter().map(|&i| sim.peer(i).tip()).collect();
    let caught = match strategy {
        Strategy::InvalidTransition => by_honest(&|r| matches!(r, Rejection::StateHashMismatch { .. })),
        Strategy::FutureTimestamp => {
            by_honest(&|r| matches!(r, Rejection::Timestamp(TimestampError::FromTheFuture { .. })))
        }
        Strategy::OutOfOrderTimestamp => {
            by_honest(&|r| matches!(r, Rejection::Timestamp(TimestampError::BeforeParent { .. })))
        }
        Strategy::StaleState => by_honest(&|r| matches!(r, Rejection::WrongPrevState { .. })),
        Strategy::Equivocate if n - count >= 2 => sim
            .equivocations()
            .iter()
            .any(|(to, signer)| honest.contains(to) && *signer == first),
        // Nothing to catch off-chain: the channel stops at the byzantine writer's turn (its
        // moves go to the chain only, or nowhere), and nobody is blamed.
        Strategy::Silent | Strategy::BackdatedPost | Strategy::JunkCalldata => {
            tips.iter().all(|&t| t == (n - count) as u64)
        }
        // Play by the rules off-chain (they attack on chain, or only hold their confirmations
        // back): the game goes on.
        _ => tips.iter().all(|&t| t > n as u64),
    };
    assert!(caught, "{case}: not caught as expected; honest tips {tips:?}");
}
