//! Replayed, duplicated or reordered messages change nothing: a fresh copy of a peer fed every
//! frame of a run, shuffled and each delivered several times, ends in exactly the state the
//! original peer reached.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use entente_sim::{Game, NetConfig, Scenario};
use entente_types::AgreementMode;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

fn check(game: Game, n: usize, seed: u64, mode: AgreementMode, shuffle_seed: u64) {
    let scenario = Scenario::new(game, n, seed).mode(mode).net(NetConfig::fixed(3));
    let mut sim = scenario.build().unwrap();
    sim.tap(true);
    sim.run(3_600_000).unwrap();
    assert!(sim.settled(), "seed {seed}");
    let (tip, state, finalized) = (
        sim.peer(0).tip(),
        sim.peer(0).tip_state_hash(),
        sim.peer(0).finalized_height(),
    );

    // Every frame of the run, shuffled, each delivered one to three times.
    let mut rng = StdRng::seed_from_u64(shuffle_seed);
    let mut frames: Vec<(usize, Vec<u8>)> = Vec::new();
    for frame in sim.tapped() {
        for _ in 0..rng.random_range(1..=3) {
            frames.push(frame.clone());
        }
    }
    frames.shuffle(&mut rng);

    let mut fresh = scenario.build().unwrap();
    let addresses: Vec<_> = (0..n).map(|i| fresh.peer(i).me()).collect();
    // Deliver in passes until nothing changes (out-of-order frames beyond the buffer are
    // dropped and come round again, as a resend would bring them).
    for _pass in 0..10 {
        let before = (fresh.peer(0).tip(), fresh.peer(0).finalized_height());
        for (from, bytes) in &frames {
            let peer = fresh.peer_mut(0);
            let _ = peer.handle_bytes(addresses[*from], bytes, 1_000);
            peer.drain_effects().for_each(drop);
        }
        if (fresh.peer(0).tip(), fresh.peer(0).finalized_height()) == before {
            break;
        }
    }
    assert_eq!(fresh.peer(0).tip(), tip);
    assert_eq!(fresh.peer(0).tip_state_hash(), state);
    assert_eq!(fresh.peer(0).finalized_height(), finalized);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn replayed_duplicated_reordered_frames_change_nothing(
        seed in 0u64..1_000, shuffle in any::<u64>(), explicit in any::<bool>(), n in 2usize..5,
    ) {
        let mode = if explicit { AgreementMode::ExplicitConfirmations } else { AgreementMode::VirtualVotingOnly };
        check(Game::Counter { target: 40 }, n, seed, mode, shuffle);
    }
}

#[test]
fn tictactoe_replay() {
    check(Game::TicTacToe, 2, 5, AgreementMode::ExplicitConfirmations, 99);
}
