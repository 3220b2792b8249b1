//! The payment machine (anyone pays anyone at any time) in the deterministic simulation, with
//! the real StateChannelManager on the in-process chain: concurrent payers, idle participants,
//! byzantine ones. For every run: honest peers never finalize conflicting states and never sign
//! two transactions at one height (checked by the simulation on every event), nobody is timed
//! out (nobody is ever obliged to write), the channel settles, and every honest peer is paid
//! exactly its balance in the settled state.
//!
//! CI runs a few seeds per case; `PAYMENT_SEEDS=200 cargo nextest run -p entente-sim --test
//! payments` runs more. Byzantine rows: a silent participant, one withholding confirmations, an
//! equivocating sequencer, a censoring sequencer (never takes peer 0's intents), and a payer
//! that signs two intents at each nonce and sends each to half the peers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use alloy_primitives::U256;
use alloy_sol_types::SolCall;
use entente_contracts::DisputeKind;
use entente_dispute::ChainEvent;
use entente_sim::{DEPOSIT, Game, Scenario, Strategy};
use entente_types::AgreementMode;

fn seeds(default: u64) -> u64 {
    std::env::var("PAYMENT_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Runs one case and checks its outcome; returns an error to replay it.
fn case(
    n: usize,
    byzantine: usize,
    strategy: Strategy,
    seed: u64,
    mode: AgreementMode,
) -> Result<(), String> {
    let replay = format!("replay: n={n} byzantine={byzantine}x{strategy:?} seed={seed} mode={mode:?}");
    let scenario = Scenario::new(Game::Payments { payments: 6 }, n, seed)
        .mode(mode)
        .with_chain()
        .byzantine(byzantine, strategy)
        .think_ms(20, 400);
    let mut sim = scenario.build().map_err(|e| format!("{e}\n{replay}"))?;
    sim.keep_trace(false);
    sim.run(3_600_000).map_err(|e| format!("{e}\n{replay}"))?;
    if !sim.settled() {
        let tips: Vec<(u64, u64)> = (0..n)
            .map(|i| (sim.peer(i).tip(), sim.peer(i).finalized_height()))
            .collect();
        return Err(format!("did not settle; (tip, finalized): {tips:?}\n{replay}"));
    }
    let events = sim.chain().map(|c| c.events().to_vec()).unwrap_or_default();
    if let Some(e) = events.iter().find(|e| {
        matches!(
            e,
            ChainEvent::DisputeStarted { .. } | ChainEvent::ParticipantRemoved { .. }
        ) && byzantine == 0
    }) {
        return Err(format!("a dispute in an honest run: {e:?}\n{replay}"));
    }
    // A silent participant never writes its sequencer heights: the intents left out went to the
    // court, which forced them onto the chain's head (and nobody was timed out).
    if strategy == Strategy::Silent
        && !events
            .iter()
            .any(|e| matches!(e, ChainEvent::IntentForced { .. }))
    {
        return Err(format!("no intent was forced by the court\n{replay}"));
    }
    // Whatever the others do, nobody is ever timed out: nobody is obliged to write.
    if let Some(e) = events.iter().find(
        |e| matches!(e, ChainEvent::DisputeStarted { record, .. } if record.kind == DisputeKind::Timeout),
    ) {
        return Err(format!(
            "a timeout dispute although nobody is obliged to write: {e:?}\n{replay}"
        ));
    }
    let exits = sim
        .channel(0)
        .info()
        .exits
        .clone()
        .ok_or(format!("no exits\n{replay}"))?;
    let mut total = U256::ZERO;
    for i in sim.honest() {
        let me = sim.peer(i).me();
        let paid = sim.paid(i);
        let owed = exits
            .iter()
            .find(|(a, _)| *a == me)
            .map_or(U256::ZERO, |(_, v)| *v);
        if paid != owed {
            return Err(format!(
                "peer {i} was paid {paid}, its balance is {owed}\n{replay}"
            ));
        }
        total += paid;
    }
    if byzantine == 0 && total != U256::from(DEPOSIT) * U256::from(n as u64) {
        return Err(format!("paid {total} in all\n{replay}"));
    }
    // The payments happened: every peer's 6 (and the settlement) are in the state.
    let applied: u64 = (0..n).map(|i| applied_of(&mut sim, i)).sum();
    if byzantine == 0 && applied < 6 * n as u64 {
        return Err(format!("only {applied} intents applied\n{replay}"));
    }
    // A censor's sequencer heights leave peer 0's intents out: they are applied all the same
    // (by the other sequencers, or by peer 0 itself through the chain).
    if strategy == Strategy::Censor && applied_of(&mut sim, 0) < 6 {
        return Err(format!(
            "peer 0 was censored: {} of its 6 payments applied\n{replay}",
            applied_of(&mut sim, 0)
        ));
    }
    if exits.iter().all(|(_, v)| *v == U256::from(DEPOSIT)) {
        return Err(format!("no balance moved\n{replay}"));
    }
    Ok(())
}

/// How many of peer `i`'s intents the settled state applied (as peer 0 holds it).
fn applied_of(sim: &mut entente_sim::Simulation, i: usize) -> u64 {
    let me = sim.peer(i).me();
    let raw = sim
        .peer_mut(0)
        .view(
            entente_contracts::Payments::intentNonceOfCall { issuer: me }
                .abi_encode()
                .into(),
        )
        .unwrap();
    entente_contracts::Payments::intentNonceOfCall::abi_decode_returns(&raw).unwrap()
}

fn run(n: usize, byzantine: usize, strategy: Strategy, mode: AgreementMode, default_seeds: u64) {
    let failures: Vec<String> = (0..seeds(default_seeds))
        .filter_map(|seed| case(n, byzantine, strategy, seed, mode).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn concurrent_payers_settle_exactly_n3() {
    run(3, 0, Strategy::Honest, AgreementMode::ExplicitConfirmations, 10);
}

#[test]
fn concurrent_payers_settle_exactly_n4_virtual_voting() {
    run(4, 0, Strategy::Honest, AgreementMode::VirtualVotingOnly, 5);
}

#[test]
fn a_silent_participant_n3() {
    run(3, 1, Strategy::Silent, AgreementMode::ExplicitConfirmations, 3);
}

#[test]
fn a_participant_withholding_confirmations_n3() {
    run(
        3,
        1,
        Strategy::WithholdConfirmations,
        AgreementMode::ExplicitConfirmations,
        3,
    );
}

#[test]
fn an_equivocating_sequencer_n3() {
    run(
        3,
        1,
        Strategy::Equivocate,
        AgreementMode::ExplicitConfirmations,
        3,
    );
}

#[test]
fn a_censoring_sequencer_n3() {
    run(3, 1, Strategy::Censor, AgreementMode::ExplicitConfirmations, 3);
}

#[test]
fn a_censoring_sequencer_n4_virtual_voting() {
    run(4, 1, Strategy::Censor, AgreementMode::VirtualVotingOnly, 3);
}

#[test]
fn a_payer_equivocating_between_two_intents_n3() {
    run(
        3,
        1,
        Strategy::EquivocateIntents,
        AgreementMode::ExplicitConfirmations,
        3,
    );
}

#[test]
fn a_payer_equivocating_between_two_intents_n4_virtual_voting() {
    run(
        4,
        1,
        Strategy::EquivocateIntents,
        AgreementMode::VirtualVotingOnly,
        3,
    );
}
