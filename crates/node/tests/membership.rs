//! A third participant joins a running round-robin channel, then one of the first two leaves;
//! the channel carries on through each fork and settles. Real nodes over libp2p on loopback,
//! real anvil.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod support;

use std::time::Duration;

use entente_contracts::{RoundRobinCounter, artifacts};
use entente_node::{Channel, MachineSource, Node, Phase, ProposalBuilder};
use entente_types::{Address, Bytes, U256};
use support::{World, dial_addr, ether};

const WAIT: Duration = Duration::from_secs(60);

/// Plays one move for whichever of `players` writes next, `moves` times.
async fn play(players: &[(&Channel, Address)], moves: usize) {
    for _ in 0..moves {
        let info = players[0].0.info().await.unwrap();
        let (channel, me) = players
            .iter()
            .find(|(_, a)| *a == info.next_writer)
            .expect("the next writer plays here");
        channel
            .wait_until("my turn", WAIT, |i| i.next_writer == *me && i.tip == info.tip)
            .await
            .unwrap();
        channel
            .call(&RoundRobinCounter::addCall { step: 1 })
            .await
            .unwrap();
        for (c, _) in players {
            c.wait_final(info.tip + 1, WAIT).await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_participant_joins_a_running_channel_and_one_leaves() {
    let world = World::new().await;
    let dir = tempfile::tempdir().unwrap();
    let alice = Node::start(world.config(1, &dir.path().join("a"), vec![]))
        .await
        .unwrap();
    let boot = dial_addr(&alice).await;
    let bob = Node::start(world.config(2, &dir.path().join("b"), vec![boot.clone()]))
        .await
        .unwrap();
    let carol = Node::start(world.config(3, &dir.path().join("c"), vec![boot]))
        .await
        .unwrap();
    let (a, b, c) = (alice.address(), bob.address(), carol.address());
    let code = MachineSource::ArtifactJson(artifacts::ROUND_ROBIN_COUNTER.to_string());
    let deposit = ether(1);
    // A short challenge window: a leave is carried out when it is over (docs/security.md, R11).
    let timing = entente_types::Timing {
        challenge_time: 4,
        ..entente_types::Timing::default()
    };
    let proposal = ProposalBuilder::new(world.counter, vec![a, b], vec![deposit, deposit])
        .timing(timing)
        .build(
            &alice,
            &code,
            &RoundRobinCounter::initialStateCall {
                participants: vec![a, b],
                deposits: vec![deposit, deposit],
                target: 12,
            },
        )
        .await
        .unwrap();
    let ch_a = alice.propose(proposal, code.clone()).await.unwrap();
    let (_, invitation) = bob.next_proposal(WAIT).await.unwrap();
    let ch_b = bob.accept(invitation.channel_id, code.clone()).await.unwrap();
    ch_a.wait_live(WAIT).await.unwrap();
    ch_b.wait_live(WAIT).await.unwrap();
    play(&[(&ch_a, a), (&ch_b, b)], 4).await;

    // Expecting to join with another machine's code is refused before anything is awaited.
    let wrong = MachineSource::ArtifactJson(artifacts::TIC_TAC_TOE.to_string());
    let refused = carol.expect_join(ch_a.id(), a, deposit, wrong).await;
    assert!(
        matches!(&refused, Err(entente_node::NodeError::BadProposal(r)) if r.contains("not the state machine")),
        "{refused:?}"
    );
    // Carol joins at height 4 with a deposit of 1 ether: bob allows it, alice proposes it.
    let ch_c = carol
        .expect_join(ch_a.id(), a, deposit, code.clone())
        .await
        .unwrap();
    ch_b.allow_join(c).await.unwrap();
    let carol_before = carol.balance().await.unwrap();
    ch_a.propose_join(c, deposit, Bytes::new()).await.unwrap();
    let joined = ch_c.wait_live(WAIT).await.unwrap();
    assert_eq!(joined.participants, vec![a, b, c]);
    assert_eq!(joined.fork, 1);
    for ch in [&ch_a, &ch_b] {
        let info = ch
            .wait_until("the fork with carol", WAIT, |i| i.fork == 1)
            .await
            .unwrap();
        assert_eq!(info.participants, vec![a, b, c]);
    }
    assert!(carol.balance().await.unwrap() < carol_before - deposit + ether(1) / U256::from(100u64));
    let state = ch_c
        .view(&RoundRobinCounter::getCounterStateCall {})
        .await
        .unwrap();
    assert_eq!(state.counter, 4, "carol starts from the approved state");
    play(&[(&ch_a, a), (&ch_b, b), (&ch_c, c)], 3).await;

    // Bob leaves with his deposit; alice and carol finish the game.
    let bob_before = bob.balance().await.unwrap();
    let tip = ch_b.info().await.unwrap().tip;
    ch_b.wait_final(tip, WAIT).await.unwrap();
    ch_b.leave().await.unwrap();
    let left = ch_b.wait_closed(WAIT).await.unwrap();
    assert_eq!(left.phase, Phase::Left);
    for ch in [&ch_a, &ch_c] {
        let info = ch
            .wait_until("the fork without bob", WAIT, |i| i.fork == 2)
            .await
            .unwrap();
        assert_eq!(info.participants, vec![a, c]);
    }
    // His deposit comes back (the node withdraws the credit).
    let deadline = tokio::time::Instant::now() + WAIT;
    while bob.balance().await.unwrap() < bob_before + deposit - ether(1) / U256::from(100u64) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "bob's deposit did not come back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    play(&[(&ch_a, a), (&ch_c, c)], 5).await;
    let closed = ch_a.wait_closed(WAIT).await.unwrap();
    // The settled channel reports the fork and height it settled at.
    assert_eq!((closed.phase, closed.fork), (Phase::Closed, 2));
    assert!(closed.game_over);
    let exits = closed.exits.unwrap();
    assert_eq!(exits, vec![(a, deposit), (c, deposit)]);
    ch_c.wait_closed(WAIT).await.unwrap();
}
