//! Full games in the deterministic simulation, with the real bytecode.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use entente_sim::{Game, NetConfig, Partition, Scenario};
use entente_types::AgreementMode::{ExplicitConfirmations, VirtualVotingOnly};

fn run(s: Scenario) -> entente_sim::Report {
    match s.run() {
        Ok(report) => report,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn tictactoe_two_peers_to_the_end_in_both_modes() {
    for mode in [ExplicitConfirmations, VirtualVotingOnly] {
        for seed in 0..10 {
            let r = run(Scenario::new(Game::TicTacToe, 2, seed).mode(mode));
            assert!(r.game_over, "seed {seed}");
            assert!(
                (5..=9).contains(&r.tip),
                "a tic-tac-toe game has 5 to 9 moves, got {}",
                r.tip
            );
            assert_eq!(r.finalized_height, r.tip);
        }
    }
}

#[test]
fn same_seed_same_run_different_seed_different_run() {
    let a = run(Scenario::new(Game::TicTacToe, 2, 42));
    let b = run(Scenario::new(Game::TicTacToe, 2, 42));
    assert_eq!(a, b);
    let c = run(Scenario::new(Game::Counter { target: 60 }, 4, 42));
    let d = run(Scenario::new(Game::Counter { target: 60 }, 4, 42));
    assert_eq!(c.trace_hash, d.trace_hash);
    let e = run(Scenario::new(Game::Counter { target: 60 }, 4, 43));
    assert_ne!(c.trace_hash, e.trace_hash);
}

#[test]
fn round_robin_with_four_and_sixteen_peers_in_both_modes() {
    for n in [4usize, 16] {
        for mode in [ExplicitConfirmations, VirtualVotingOnly] {
            let r = run(Scenario::new(Game::Counter { target: 100 }, n, 7).mode(mode));
            assert!(r.game_over);
            assert_eq!(r.finalized_height, r.tip, "n={n} {mode:?}");
            assert!(r.tip >= 10, "at most 10 per move: at least 10 moves to reach 100");
        }
    }
}

#[test]
fn virtual_voting_sends_one_frame_per_peer_per_transaction() {
    let n = 4;
    let explicit = run(Scenario::new(Game::Counter { target: 200 }, n, 3).net(NetConfig::fixed(5)));
    let voting = run(Scenario::new(Game::Counter { target: 200 }, n, 3)
        .net(NetConfig::fixed(5))
        .mode(VirtualVotingOnly));
    // Virtual voting: each transaction is broadcast once (N-1 frames), plus confirmations by
    // the N-1 peers that did not issue it of every N-th height (checkpoints) and of the last.
    let n = n as u64;
    let confirmed = voting.tip / n + u64::from(!voting.tip.is_multiple_of(n));
    assert_eq!(
        voting.frames,
        voting.tip * (n - 1) + (n - 1) * (n - 1) * confirmed,
        "virtual voting frames"
    );
    // Explicit confirmations add N-1 confirmations, each broadcast to N-1 peers.
    assert!(explicit.frames >= explicit.tip * ((n - 1) + (n - 1) * (n - 1)));
    // Explicit: final in one round (about two hops); virtual voting waits for N-1 later writers.
    assert!(
        explicit.latency_p50_ms < voting.latency_p50_ms,
        "{explicit:?} vs {voting:?}"
    );
}

#[test]
fn lossy_reordering_duplicating_network_still_finishes() {
    let net = NetConfig {
        latency_ms: (1, 200),
        loss: 0.2,
        duplicate: 0.2,
        partitions: Vec::new(),
    };
    for seed in 0..5 {
        for mode in [ExplicitConfirmations, VirtualVotingOnly] {
            let r = run(Scenario::new(Game::Counter { target: 50 }, 4, seed)
                .mode(mode)
                .net(net.clone()));
            assert_eq!(r.finalized_height, r.tip);
        }
        let r = run(Scenario::new(Game::TicTacToe, 2, seed).net(net.clone()));
        assert!(r.game_over);
    }
}

#[test]
fn partition_heals_and_the_game_finishes() {
    let net = NetConfig {
        latency_ms: (1, 20),
        partitions: vec![Partition {
            from_ms: 50,
            until_ms: 5_000,
            group: vec![0, 1],
        }],
        ..NetConfig::default()
    };
    let r = run(Scenario::new(Game::Counter { target: 80 }, 4, 11).net(net));
    assert_eq!(r.finalized_height, r.tip);
    assert!(
        r.virtual_ms > 5_000,
        "nothing can finish while half the peers are cut off"
    );
}
