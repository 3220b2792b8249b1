//! Byzantine peers against the peer-to-peer protocol alone (no chain): honest peers never
//! finalize an invalid or conflicting state, and each fault is caught by the pipeline step meant
//! for it. Recovering liveness through the chain (calldata, removal, slashing) is tested with the
//! in-process chain.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use entente_sim::{Game, Scenario, Strategy};
use entente_types::AgreementMode;

/// Runs `strategy` with `count` byzantine peers among `n` for a bounded virtual time and returns
/// the honest peers' trace lines.
fn run(n: usize, count: usize, strategy: Strategy, seed: u64, mode: AgreementMode) -> Vec<String> {
    let scenario = Scenario::new(Game::Counter { target: 1_000 }, n, seed)
        .mode(mode)
        .byzantine(count, strategy);
    let mut sim = scenario.build().unwrap();
    if let Err(e) = sim.run(8_000) {
        panic!("{e}");
    }
    let honest = sim.honest();
    assert_eq!(honest.len(), n - count);
    sim.trace()
        .iter()
        .filter(|t| honest.contains(&t.peer))
        .map(|t| t.what.clone())
        .collect()
}

fn expect(lines: &[String], needle: &str, strategy: Strategy) {
    assert!(
        lines.iter().any(|l| l.contains(needle)),
        "{strategy:?}: no honest peer reported {needle}"
    );
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
                    // `Simulation::run` checks after the run that honest finalized prefixes agree.
                    let lines = run(n, count, strategy, seed, mode);
                    match strategy {
                        Strategy::InvalidTransition => expect(&lines, "StateHashMismatch", strategy),
                        Strategy::FutureTimestamp => expect(&lines, "FromTheFuture", strategy),
                        Strategy::OutOfOrderTimestamp => expect(&lines, "BeforeParent", strategy),
                        Strategy::StaleState => expect(&lines, "WrongPrevState", strategy),
                        Strategy::Equivocate if n - count >= 2 => expect(&lines, "Equivocation", strategy),
                        _ => {}
                    }
                }
            }
        }
    }
}
