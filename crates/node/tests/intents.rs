//! A payment channel between three nodes whose third goes silent for good: its sequencer heights
//! never come, and nothing is final off chain without its signature. A payment it leaves out
//! goes to the court (`postIntent`) and is forced onto the chain's head (`forceIntent`); nobody
//! is timed out (nobody is obliged to write), and the payer leaves through the chain with every
//! payment counted. Real nodes over libp2p on loopback, real anvil.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use entente_chain::ChainClient;
use entente_contracts::{Payments, artifacts};
use entente_node::{ChannelEvent, MachineSource, Node, ProposalBuilder};
use entente_types::{Address, U256};
use support::{World, dial_addr, ether};

const WAIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_a_silent_sequencer_leaves_out_is_forced_by_the_court_and_paid_out() {
    let world = World::new().await;
    let deployer = ChainClient::connect(&world.anvil.endpoint(), world.anvil.signer(0).unwrap())
        .await
        .unwrap();
    let machine = deployer.deploy(Payments::BYTECODE.clone()).await.unwrap();
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
    let who: Vec<Address> = [&alice, &bob, &carol].iter().map(|n| n.address()).collect();
    let (a, b) = (who[0], who[1]);
    let code = MachineSource::ArtifactJson(artifacts::PAYMENTS.to_string());
    let deposit = ether(1);
    // Short windows, so that the court's path takes seconds.
    let timing = entente_types::Timing {
        p2p_time: 2,
        agreement_time: 3,
        chain_fallback_time: 8,
        challenge_time: 4,
    };
    let proposal = ProposalBuilder::new(machine, who.clone(), vec![deposit; 3])
        .timing(timing)
        .build(
            &alice,
            &code,
            &Payments::initialStateCall {
                participants: who.clone(),
                deposits: vec![deposit; 3],
            },
        )
        .await
        .unwrap();
    let ch_a = alice.propose(proposal, code.clone()).await.unwrap();
    let mut channels = vec![ch_a.clone()];
    for node in [&bob, &carol] {
        let (_, invitation) = node.next_proposal(WAIT).await.unwrap();
        channels.push(node.accept(invitation.channel_id, code.clone()).await.unwrap());
    }
    for channel in &channels {
        channel.wait_live(WAIT).await.unwrap();
    }
    let ch_b = channels[1].clone();
    // Carol goes silent for good: her node stops.
    drop(channels);
    drop(carol);

    // Alice pays bob twice. Height 1 is bob's to sequence; height 2 is carol's, which never comes.
    let tenth = ether(1) / U256::from(10u64);
    for nonce in 0..2u64 {
        ch_a.call(&Payments::payCall { to: b, amount: tenth })
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + WAIT;
        while ch_a
            .view(&Payments::intentNonceOfCall { issuer: a })
            .await
            .unwrap()
            <= nonce
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "payment {nonce} was not applied"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Bob holds the same state (he took the court's transaction from the chain).
    let deadline = tokio::time::Instant::now() + WAIT;
    while ch_b
        .view(&Payments::intentNonceOfCall { issuer: a })
        .await
        .unwrap()
        < 2
    {
        assert!(tokio::time::Instant::now() < deadline, "bob lags behind");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Alice leaves through the chain with both payments counted: her exit is her balance, which
    // comes back to her account (less the gas of her calls).
    let before = alice.balance().await.unwrap();
    ch_a.exit().await.unwrap();
    ch_a.wait_closed(WAIT).await.unwrap();
    let owed = deposit - tenth - tenth;
    let gas = ether(1) / U256::from(100u64);
    let deadline = tokio::time::Instant::now() + WAIT;
    while alice.balance().await.unwrap() < before + owed - gas {
        assert!(tokio::time::Instant::now() < deadline, "alice was not paid");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        alice.balance().await.unwrap() <= before + owed,
        "paid more than her balance"
    );
    // Bob and carol carry on without her (a new fork).
    let info = ch_b
        .wait_until("the fork without alice", WAIT, |i| !i.participants.contains(&a))
        .await
        .unwrap();
    assert_eq!(info.participants, vec![b, who[2]]);

    let mut calls: BTreeMap<String, usize> = BTreeMap::new();
    for channel in [&ch_a, &ch_b] {
        let mut log = channel.events_from(0).await.unwrap();
        while let Some(event) = log.try_next().await.unwrap() {
            if let ChannelEvent::ChainCall { what, .. } = event {
                *calls.entry(what).or_default() += 1;
            }
        }
    }
    assert!(calls.contains_key("postIntent"), "{calls:?}");
    assert!(calls.contains_key("forceIntent"), "{calls:?}");
    assert!(
        !calls.contains_key("disputeTimeout"),
        "nobody is obliged: {calls:?}"
    );
}
