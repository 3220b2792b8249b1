//! Whole channel lives through the channel core, from proposal to payout, with crashes at seeded
//! effect boundaries, lost chain calls, a participant that never deposits and one that goes
//! silent. `LIFE_SEEDS` sets the seeds per case (CI runs a slice; see docs/protocol.md for the
//! long run).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use entente_channel::Phase;
use entente_sim::{LifePhase, LifeScenario, Membership};

fn seeds(ci: u64) -> u64 {
    std::env::var("LIFE_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ci)
}

fn run_all(
    name: &str,
    count: u64,
    scenario: impl Fn(u64) -> LifeScenario,
    expect: Phase,
) -> Vec<entente_sim::LifeReport> {
    (0..count)
        .map(|seed| {
            let report = scenario(seed).run().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(report.outcome, expect, "{name} seed {seed}");
            report
        })
        .collect()
}

#[test]
fn proposal_to_payout() {
    for n in [2, 4] {
        run_all(
            "happy",
            seeds(5),
            |seed| LifeScenario::new(n, seed),
            Phase::Closed,
        );
    }
}

#[test]
fn a_participant_that_never_deposits_is_cancelled_and_every_deposit_reclaimed() {
    for n in [2, 4] {
        run_all(
            "no deposit",
            seeds(3),
            |seed| LifeScenario::new(n, seed).no_deposit(),
            Phase::Cancelled,
        );
    }
}

#[test]
fn a_silent_participant_is_removed_and_the_rest_settle() {
    for n in [2, 4] {
        run_all(
            "silent",
            seeds(3),
            |seed| LifeScenario::new(n, seed).silent(),
            Phase::Closed,
        );
    }
}

#[test]
fn lost_chain_calls_still_settle_and_pay() {
    for n in [2, 4] {
        let reports = run_all(
            "chain failures",
            seeds(5),
            |seed| LifeScenario::new(n, seed).chain_failures(200),
            Phase::Closed,
        );
        assert!(reports.iter().any(|r| r.lost_calls > 0), "no call was lost");
    }
}

#[test]
fn a_crash_in_any_phase_carries_on_after_the_restart() {
    let phases = [
        (LifePhase::Proposal, false),
        (LifePhase::Funding, false),
        (LifePhase::Live, false),
        (LifePhase::Dispute, true),
        (LifePhase::Settlement, false),
    ];
    for n in [2, 4] {
        for (phase, silent) in phases {
            let reports = run_all(
                &format!("crash in {phase:?} n={n}"),
                seeds(10),
                |seed| {
                    let s = LifeScenario::new(n, seed).crash(phase);
                    if silent { s.silent() } else { s }
                },
                Phase::Closed,
            );
            let crashed = reports.iter().filter(|r| !r.crashes.is_empty()).count();
            assert!(
                crashed * 2 >= reports.len(),
                "{phase:?} n={n}: only {crashed} of {} runs crashed",
                reports.len()
            );
        }
    }
}

#[test]
fn a_newcomer_joins_and_a_participant_leaves() {
    for n in [2, 4] {
        run_all(
            &format!("membership n={n}"),
            seeds(4),
            |seed| LifeScenario::new(n, seed).membership(Membership::Honest),
            Phase::Closed,
        );
    }
}

#[test]
fn a_newcomer_that_never_comes_holds_nobody_up() {
    for n in [2, 4] {
        run_all(
            &format!("absent newcomer n={n}"),
            seeds(3),
            |seed| LifeScenario::new(n, seed).membership(Membership::AbsentNewcomer),
            Phase::Closed,
        );
    }
}

#[test]
fn a_byzantine_member_cannot_stop_joins_leaves_or_payouts() {
    for n in [3, 4] {
        run_all(
            &format!("byzantine member n={n}"),
            seeds(4),
            |seed| LifeScenario::new(n, seed).membership(Membership::ByzantineMember),
            Phase::Closed,
        );
    }
}
