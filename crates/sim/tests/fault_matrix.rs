//! The fault matrix: every byzantine strategy, N ∈ {2, 4, 16}, with 1, N/2 and N-1 byzantine
//! peers, against the real StateChannelManager on the in-process chain.
//!
//! For every run: honest peers never finalize conflicting states (checked by the simulation);
//! the channel ends settled on chain; the cheaters get the right verdict (removal of the silent,
//! slashing of provable fraud); and no honest peer gets back less than its deposit.
//!
//! The on-chain attackers (`UnlinkedPost`, `BackdatedPost`, `JunkAtAccused`, `StaleProofs`,
//! `ChainChaos`; see docs/security.md, section 5.2) play by the rules off-chain and attack through
//! the StateChannelManager and the machine at every chain tick; their rows check that every
//! attack is refused: no honest peer is removed or slashed (checked by the simulation on every
//! chain event) and every honest peer is paid at least its deposit.
//!
//! CI runs 50 seeds per case (a case: N, number of byzantine peers, strategy, agreement mode),
//! 20 and 5 for the on-chain attackers at N = 4 and 16, one test per (N, strategy). A longer run,
//! 1,000 seeds per case for N = 2 and 4:
//! `FAULT_SEEDS=1000 cargo nextest run -p entente-sim --test fault_matrix n2_ n4_`
//! (`FAULT_SEEDS` sets the seeds of every case).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use alloy_primitives::U256;
use entente_dispute::ChainEvent;
use entente_sim::{DEPOSIT, Game, Scenario, Strategy};
use entente_types::{Address, AgreementMode};

/// Seeds per case: `FAULT_SEEDS` if set, else the CI slice's `default`.
fn seeds(default: u64) -> u64 {
    std::env::var("FAULT_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Runs one case; returns the number of chain calls the byzantine peers made (ok or refused), or
/// an error message with everything needed to replay it.
fn case(n: usize, count: usize, strategy: Strategy, seed: u64, mode: AgreementMode) -> Result<usize, String> {
    // Steps are 1 to 10: a target of 10n + 1 takes at least n + 1 moves, so every peer (the
    // byzantine ones are the last) gets a turn.
    let target = 10 * n as u64 + 1;
    let mut scenario = Scenario::new(Game::Counter { target }, n, seed)
        .mode(mode)
        .with_chain()
        .byzantine(count, strategy);
    if strategy.acts_on_chain() {
        // Players think for seconds, so the chain (ticked once a second) sees every phase of
        // the game and the attackers get their chances at every height.
        // A longer game (about 6N moves) gives them more of those chances (N = 16 keeps the
        // common length, for time).
        let target = if n <= 4 { 3 * target } else { target };
        scenario = Scenario::new(Game::Counter { target }, n, seed)
            .mode(mode)
            .with_chain()
            .byzantine(count, strategy)
            .think_ms(500, 4_000);
    }
    let mut sim = scenario.build().map_err(|e| e.to_string())?;
    sim.keep_trace(false);
    sim.run(3_600_000).map_err(|e| e.to_string())?;
    let replay = format!("replay: n={n} byzantine={count}x{strategy:?} seed={seed} mode={mode:?}");
    let link = sim.chain().unwrap();
    let records: Vec<String> = link
        .records()
        .iter()
        .map(|r| format!("{} {} {}", r.at_ms, r.peer, r.what))
        .collect();
    let tail = records
        .iter()
        .rev()
        .take(12)
        .rev()
        .cloned()
        .collect::<Vec<_>>()
        .join("\n  ");
    if !sim.settled() {
        return Err(format!("did not settle on chain; {replay}\n  {tail}"));
    }
    let events = link.events().to_vec();
    let byzantine: Vec<Address> = (0..n)
        .filter(|&i| sim.strategy(i) != Strategy::Honest)
        .map(|i| sim.peer(i).me())
        .collect();
    let honest: Vec<Address> = sim.honest().into_iter().map(|i| sim.peer(i).me()).collect();
    let removed = |slashed: bool| {
        events.iter().any(|e| {
            matches!(e, ChainEvent::ParticipantRemoved { participant, slashed: s } if *s == slashed && byzantine.contains(participant))
        })
    };
    for e in &events {
        if let ChainEvent::ParticipantRemoved { participant, .. } = e
            && honest.contains(participant)
        {
            return Err(format!("honest {participant} was removed; {replay}\n  {tail}"));
        }
    }
    // The equivocator sends one version to even-numbered peers and the other to odd ones: it is
    // only visible (and provable) when honest peers of both kinds exist.
    let honest_parities = sim
        .honest()
        .iter()
        .map(|i| i % 2)
        .collect::<std::collections::BTreeSet<_>>();
    let verdict_ok = match strategy {
        Strategy::Silent => removed(false),
        // Proving a wrong parent needs that parent final (N-signed or the fork's genesis). In
        // virtual-voting mode the stale writer's parent has only its issuer's signature, so the
        // writer that never produced a valid transaction is removed by timeout instead.
        Strategy::StaleState if mode == AgreementMode::VirtualVotingOnly => removed(true) || removed(false),
        Strategy::Equivocate if honest_parities.len() < 2 => true,
        Strategy::Equivocate
        | Strategy::InvalidTransition
        | Strategy::OutOfOrderTimestamp
        | Strategy::StaleState => removed(true),
        // A future stamp is refused, never proven (the chain judges it when the transaction is
        // posted: docs/security.md, R3, R7); a junk post is refused by the chain, which runs it.
        // Either way the writer has made no move: it is removed by timeout (or slashed, when it
        // also did something provable).
        Strategy::FutureTimestamp | Strategy::JunkCalldata => removed(false) || removed(true),
        // A false fraud proof reverts (R7) and changes nothing; the false disputer otherwise
        // plays by the rules, so no verdict is due (the honest payouts are checked below).
        Strategy::FalseDispute => true,
        // The on-chain attackers play their moves by the rules off-chain (a backdating peer makes
        // them on chain, inside its window): every attack is refused by the court, so no verdict
        // is due; what counts is that no honest peer is removed (checked on every chain event)
        // and every honest peer is paid (below).
        Strategy::UnlinkedPost
        | Strategy::BackdatedPost
        | Strategy::JunkAtAccused
        | Strategy::StaleProofs
        | Strategy::ChainChaos => true,
        // A withholder's own transactions still vote for everything before them (virtual
        // voting), so its withheld confirmations do not always block finality: the outcome is a
        // settlement either way (calldata accepted on chain where a deadline passed first).
        Strategy::WithholdConfirmations | Strategy::Honest => true,
        // Only for machines where anyone may write (`crates/sim/tests/payments.rs`); the matrix
        // runs turn-based games, where neither is anything but honest play.
        Strategy::Censor | Strategy::EquivocateIntents => true,
    };
    if !verdict_ok {
        return Err(format!(
            "no verdict against the byzantine peers; {replay}\n  {tail}"
        ));
    }
    // Payouts: what each honest account gained on chain (its withdrawn exit and credits) plus
    // what the manager still holds for it.
    for i in sim.honest() {
        let total = sim.paid(i);
        if total < U256::from(DEPOSIT) {
            let h = sim.peer(i).me();
            return Err(format!(
                "honest {h} got {total} back, less than its deposit; {replay}\n  {tail}"
            ));
        }
    }
    let link = sim.chain().unwrap();
    let calls = link
        .records()
        .iter()
        .filter(|r| r.peer < n && sim.strategy(r.peer) != Strategy::Honest)
        .count();
    Ok(calls)
}

fn run_matrix(ns: &[usize], strategies: &[Strategy], modes: &[AgreementMode], default_seeds: u64) {
    let mut failures = Vec::new();
    let mut runs = 0;
    let mut byzantine_calls = 0;
    for &n in ns {
        let mut counts = vec![1, n / 2, n - 1];
        counts.dedup();
        for &count in &counts {
            for &strategy in strategies {
                for &mode in modes {
                    for seed in 0..seeds(default_seeds) {
                        runs += 1;
                        match case(n, count, strategy, seed, mode) {
                            Ok(calls) => byzantine_calls += calls,
                            Err(e) => failures.push(e),
                        }
                    }
                }
            }
        }
    }
    // An on-chain attacker that never reached the chain would prove nothing.
    if strategies.iter().any(|s| s.acts_on_chain()) {
        assert!(byzantine_calls > 0, "the on-chain attackers made no chain call");
    }
    assert!(
        failures.is_empty(),
        "{} of {runs} runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

const MODES: [AgreementMode; 2] = [
    AgreementMode::ExplicitConfirmations,
    AgreementMode::VirtualVotingOnly,
];

/// One test per (N, strategy), so that the test runner spreads the matrix over every core.
macro_rules! matrix {
    ($($name:ident: $n:expr, $strategy:ident;)*) => {
        $(
            #[test]
            fn $name() {
                run_matrix(&[$n], &[Strategy::$strategy], &MODES, ci_seeds($n, Strategy::$strategy));
            }
        )*
        /// Every strategy has its row for every N.
        #[test]
        fn the_matrix_covers_every_strategy() {
            let listed: Vec<(usize, Strategy)> = vec![$(($n, Strategy::$strategy)),*];
            for n in [2, 4, 16] {
                for s in Strategy::BYZANTINE {
                    assert!(listed.contains(&(n, s)), "no row for N = {n}, {s:?}");
                }
            }
        }
    };
}

/// Seeds per case in CI: 50, fewer for the on-chain attackers at N = 4 and 16 (their runs
/// are longer and make many more chain calls).
fn ci_seeds(n: usize, strategy: Strategy) -> u64 {
    match (strategy.acts_on_chain(), n) {
        (false, _) | (true, 2) => 50,
        (true, 4) => 20,
        (true, _) => 5,
    }
}

matrix! {
    n2_silent: 2, Silent;
    n2_withhold_confirmations: 2, WithholdConfirmations;
    n2_equivocate: 2, Equivocate;
    n2_invalid_transition: 2, InvalidTransition;
    n2_future_timestamp: 2, FutureTimestamp;
    n2_out_of_order_timestamp: 2, OutOfOrderTimestamp;
    n2_stale_state: 2, StaleState;
    n2_junk_calldata: 2, JunkCalldata;
    n2_false_dispute: 2, FalseDispute;
    n2_unlinked_post: 2, UnlinkedPost;
    n2_backdated_post: 2, BackdatedPost;
    n2_junk_at_accused: 2, JunkAtAccused;
    n2_stale_proofs: 2, StaleProofs;
    n2_chain_chaos: 2, ChainChaos;
    n4_silent: 4, Silent;
    n4_withhold_confirmations: 4, WithholdConfirmations;
    n4_equivocate: 4, Equivocate;
    n4_invalid_transition: 4, InvalidTransition;
    n4_future_timestamp: 4, FutureTimestamp;
    n4_out_of_order_timestamp: 4, OutOfOrderTimestamp;
    n4_stale_state: 4, StaleState;
    n4_junk_calldata: 4, JunkCalldata;
    n4_false_dispute: 4, FalseDispute;
    n4_unlinked_post: 4, UnlinkedPost;
    n4_backdated_post: 4, BackdatedPost;
    n4_junk_at_accused: 4, JunkAtAccused;
    n4_stale_proofs: 4, StaleProofs;
    n4_chain_chaos: 4, ChainChaos;
    n16_silent: 16, Silent;
    n16_withhold_confirmations: 16, WithholdConfirmations;
    n16_equivocate: 16, Equivocate;
    n16_invalid_transition: 16, InvalidTransition;
    n16_future_timestamp: 16, FutureTimestamp;
    n16_out_of_order_timestamp: 16, OutOfOrderTimestamp;
    n16_stale_state: 16, StaleState;
    n16_junk_calldata: 16, JunkCalldata;
    n16_false_dispute: 16, FalseDispute;
    n16_unlinked_post: 16, UnlinkedPost;
    n16_backdated_post: 16, BackdatedPost;
    n16_junk_at_accused: 16, JunkAtAccused;
    n16_stale_proofs: 16, StaleProofs;
    n16_chain_chaos: 16, ChainChaos;
}
