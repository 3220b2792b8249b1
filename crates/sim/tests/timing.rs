//! Timing windows at their edges, end to end with the chain: clock skew within and beyond the
//! tolerance (agreementTime = 10 s), and moves just before and just after the confirmation
//! deadline (p2pTime + agreementTime = 40 s after the parent).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use entente_dispute::ChainEvent;
use entente_sim::{Game, Scenario, Simulation};

fn run(scenario: Scenario) -> Simulation {
    let mut sim = scenario.build().unwrap();
    sim.run(3_600_000).unwrap_or_else(|e| panic!("{e}"));
    assert!(sim.settled(), "{:#?}", sim.chain().unwrap().records());
    sim
}

fn events(sim: &Simulation) -> Vec<ChainEvent> {
    sim.chain().unwrap().events().to_vec()
}

fn disputes(sim: &Simulation) -> usize {
    events(sim)
        .iter()
        .filter(|e| matches!(e, ChainEvent::DisputeStarted { .. }))
        .count()
}

fn posts(sim: &Simulation) -> usize {
    events(sim)
        .iter()
        .filter(|e| matches!(e, ChainEvent::CalldataPosted { .. }))
        .count()
}

#[test]
fn clock_ahead_within_tolerance_changes_nothing() {
    // Peer 2's clock runs 9 s ahead: its timestamps are in the future, but within 10 s.
    let sim = run(Scenario::new(Game::Counter { target: 31 }, 3, 1)
        .with_chain()
        .clock_offset(2, 9_000));
    assert_eq!(disputes(&sim), 0, "{:#?}", sim.chain().unwrap().records());
    assert_eq!(posts(&sim), 0);
}

#[test]
fn clock_ahead_beyond_tolerance_is_refused_never_slashed() {
    // 12 s ahead: every transaction of peer 2 is stamped beyond the tolerance. The others refuse
    // them (a future stamp is no fraud evidence: docs/security.md, R3, R7); the chain judges the
    // stamp when the transaction is posted. Nobody honest is removed and the channel settles.
    let sim = run(Scenario::new(Game::Counter { target: 31 }, 3, 1)
        .with_chain()
        .clock_offset(2, 12_000));
    let skewed = sim.peer(2).me();
    let ev = events(&sim);
    assert!(
        !ev.iter().any(
            |e| matches!(e, ChainEvent::ParticipantRemoved { participant, .. } if *participant != skewed)
        ),
        "{:#?}",
        sim.chain().unwrap().records()
    );
    assert!(
        ev.iter().any(
            |e| matches!(e, ChainEvent::ParticipantRemoved { participant, .. } if *participant == skewed)
        ) || posts(&sim) > 0,
        "the skewed peer's moves went through the chain or it was removed: {:#?}",
        sim.chain().unwrap().records()
    );
}

#[test]
fn clock_behind_within_tolerance_changes_nothing() {
    // 9 s behind: the others' timestamps look 9 s ahead to peer 2, within the tolerance.
    let sim = run(Scenario::new(Game::Counter { target: 31 }, 3, 2)
        .with_chain()
        .clock_offset(2, -9_000));
    assert_eq!(disputes(&sim), 0, "{:#?}", sim.chain().unwrap().records());
}

#[test]
fn move_just_before_the_confirmation_deadline_is_confirmed() {
    // Every move comes 38.5 s after its parent (latency up to 20 ms): inside the 40 s window.
    let sim = run(Scenario::new(Game::Counter { target: 31 }, 3, 3)
        .with_chain()
        .think_ms(38_500, 38_500));
    assert_eq!(posts(&sim), 0, "{:#?}", sim.chain().unwrap().records());
    assert_eq!(disputes(&sim), 0);
}

#[test]
fn move_just_after_the_confirmation_deadline_goes_through_calldata() {
    // 41 s after its parent: peers refuse to confirm it; its writer posts it as calldata, the
    // peers apply it from the chain, and nobody is removed (the calldata deadline is 100 s).
    let sim = run(Scenario::new(Game::Counter { target: 31 }, 3, 3)
        .with_chain()
        .think_ms(41_000, 41_000));
    let ev = events(&sim);
    assert!(posts(&sim) > 0, "{:#?}", sim.chain().unwrap().records());
    assert!(
        !ev.iter()
            .any(|e| matches!(e, ChainEvent::ParticipantRemoved { .. })),
        "{:#?}",
        sim.chain().unwrap().records()
    );
}

#[test]
fn clock_behind_beyond_tolerance_is_set_right_by_chain_time() {
    // 12 s behind: the peer's logical clock follows the chain's blocks (it never runs behind the
    // latest block time it saw), so the others' honest stamps are not from its future: nothing
    // is refused, nothing goes to the chain, nobody is removed.
    let sim = run(Scenario::new(Game::Counter { target: 31 }, 3, 2)
        .with_chain()
        .clock_offset(2, -12_000));
    assert_eq!(disputes(&sim), 0, "{:#?}", sim.chain().unwrap().records());
    assert_eq!(posts(&sim), 0, "{:#?}", sim.chain().unwrap().records());
    assert!(
        !events(&sim)
            .iter()
            .any(|e| matches!(e, ChainEvent::ParticipantRemoved { .. })),
        "{:#?}",
        sim.chain().unwrap().records()
    );
    let refused_future = sim.rejections().iter().any(|(_, _, r)| {
        matches!(
            r,
            entente_state_manager::Rejection::Timestamp(entente_clock::TimestampError::FromTheFuture { .. })
        )
    });
    assert!(!refused_future, "{:?}", sim.rejections());
}
