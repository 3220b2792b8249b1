//! Two in-process nodes play tic-tac-toe over libp2p on loopback with a real anvil chain.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod support;

use std::time::Duration;

use entente_contracts::TicTacToe;
use entente_node::{ChannelEvent, Node, NodeError, Phase};
use support::{World, dial_addr, ether, play, tictactoe_proposal};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_game_settles_on_chain_and_pays_the_winner() {
    let world = World::new().await;
    let dir = tempfile::tempdir().unwrap();
    let alice = Node::start(world.config(1, &dir.path().join("alice"), vec![]))
        .await
        .unwrap();
    let bob = Node::start(world.config(2, &dir.path().join("bob"), vec![dial_addr(&alice).await]))
        .await
        .unwrap();
    let (a, b) = (alice.address(), bob.address());
    let (code, proposal) = tictactoe_proposal(&world, &alice, b).await;
    let before_a = alice.balance().await.unwrap();
    let before_b = bob.balance().await.unwrap();

    let game_a = alice.propose(proposal, code.clone()).await.unwrap();
    let mut events_a = game_a.events().await.unwrap();
    let (from, invitation) = bob.next_proposal(WAIT).await.unwrap();
    assert_eq!(from, a);
    assert_eq!(invitation.channel_id, game_a.id());
    // Not live yet: moves are refused with a clear error.
    let early = game_a.call(&TicTacToe::playCall { cell: 4 }).await;
    assert!(matches!(early, Err(NodeError::NotLive(_))), "{early:?}");
    let game_b = bob.accept(invitation.channel_id, code).await.unwrap();
    game_a.wait_live(WAIT).await.unwrap();
    game_b.wait_live(WAIT).await.unwrap();
    let mut events_b = game_b.events().await.unwrap();

    // X: 4, O: 0, X: 1, O: 2, X: 7 -> X (alice) wins the middle column.
    play(&game_a, a, 4).await;
    // Not bob's move to make twice, not alice's turn now.
    play(&game_b, b, 0).await;
    play(&game_a, a, 1).await;
    let occupied = game_b.call(&TicTacToe::playCall { cell: 1 }).await;
    assert!(matches!(occupied, Err(NodeError::Move(_))), "{occupied:?}");
    play(&game_b, b, 2).await;
    play(&game_a, a, 7).await;

    let closed_a = game_a.wait_closed(WAIT).await.unwrap();
    let closed_b = game_b.wait_closed(WAIT).await.unwrap();
    assert_eq!(closed_a.phase, Phase::Closed);
    let exits = closed_a.exits.clone().unwrap();
    assert_eq!(exits, vec![(a, ether(2)), (b, entente_types::U256::ZERO)]);
    assert_eq!(closed_b.exits.unwrap(), exits);
    // The game was final on bob's side before it settled.
    let mut finalized = 0;
    while let Some(event) = events_b.try_next().await.unwrap() {
        if let ChannelEvent::Protocol(entente_node::ProtocolEvent::Finalized { height, .. }) = event {
            finalized = finalized.max(height);
        }
    }
    assert_eq!(finalized, 5);
    // Alice withdrew both stakes (minus gas); bob lost his.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let a_now = alice.balance().await.unwrap();
        if a_now > before_a + ether(1) - ether(1) / entente_types::U256::from(100u64) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "alice was not paid: {before_a} -> {a_now}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let b_now = bob.balance().await.unwrap();
    assert!(b_now < before_b - ether(1) + ether(1) / entente_types::U256::from(100u64));
    // The final state of the settled channel can still be read.
    let game = game_a.view(&TicTacToe::getGameCall {}).await.unwrap();
    assert_eq!((game.winner, game.moves), (a, 5));
    // Every call alice made reports its gas, `open` included.
    let mut calls = Vec::new();
    while let Some(event) = events_a.try_next().await.unwrap() {
        if let ChannelEvent::ChainCall { what, outcome } = event {
            calls.push((what, outcome));
        }
    }
    let open = calls
        .iter()
        .find(|(what, _)| what == "open")
        .expect("open reported");
    assert!(matches!(open.1, Ok(gas) if gas > 21_000), "{calls:?}");
    // A move after the end is refused.
    let late = game_a.call(&TicTacToe::playCall { cell: 8 }).await;
    assert!(matches!(late, Err(NodeError::ChannelClosed(_))), "{late:?}");

    // Bob's whole event log, read from its start after the game: every event, in order.
    game_b
        .wait_until("bob's chain calls", WAIT, |i| i.calls_outstanding == 0)
        .await
        .unwrap();
    let mut log = Vec::new();
    let mut reader = game_b.events_from(0).await.unwrap();
    while let Some(event) = reader.try_next().await.unwrap() {
        log.push(event);
    }
    let applied = log
        .iter()
        .filter(|e| {
            matches!(
                e,
                ChannelEvent::Protocol(entente_node::ProtocolEvent::Applied { .. })
            )
        })
        .count();
    assert_eq!(applied, 5, "{log:#?}");
    assert!(log.iter().any(|e| matches!(e, ChannelEvent::Live { .. })));
    assert!(log.iter().any(|e| matches!(
        e,
        ChannelEvent::Chain(entente_node::ChainEvent::ChannelClosed { .. })
    )));
    // The log survives a restart of bob's node; a reader resumes from its cursor.
    let cursor = reader.cursor();
    assert_eq!(cursor, log.len() as u64);
    let channel_id = game_b.id();
    drop((reader, events_b, game_b, bob));
    let bob = restart(world.config(2, &dir.path().join("bob"), vec![dial_addr(&alice).await])).await;
    let game_b = bob.channel(channel_id).await.unwrap();
    let mut again = Vec::new();
    let mut reader = game_b.events_from(0).await.unwrap();
    while let Some(event) = reader.try_next().await.unwrap() {
        again.push(event);
    }
    assert_eq!(
        again[..log.len()],
        log[..],
        "the log after the restart begins with the log before"
    );
    let mut resumed = game_b.events_from(cursor).await.unwrap();
    let mut after = Vec::new();
    while let Some(event) = resumed.try_next().await.unwrap() {
        after.push(event);
    }
    assert_eq!(after[..], again[log.len()..]);
}

/// Starts a node on a data directory a stopped node may still hold for a moment.
async fn restart(config: entente_node::NodeConfig) -> Node {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match Node::start(config.clone()).await {
            Ok(node) => return node,
            Err(NodeError::Store(entente_store::StoreError::Locked { .. })) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the data directory stays locked"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("restart: {e}"),
        }
    }
}
