//! Five participants and an outsider on loopback, knowing one bootstrap address only.

use std::collections::HashSet;
use std::time::Instant;

use entente_p2p::{P2pError, P2pEvent};
use entente_types::{Address, B256};

use crate::util::{Node, height_of, loopback_config, message};

const PARTICIPANTS: u32 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_peers_find_each_other_through_the_dht_and_refuse_an_outsider() {
    let started = Instant::now();
    // Node 0 is only a bootstrap node (not in the channel); it listens on TCP.
    let mut bootstrap = Node::spawn(loopback_config(0, true, false));
    let bootstrap_addr = bootstrap.listen_addr(false).await;

    // Participants 1..=5 listen on TCP and QUIC; they know the bootstrap address, nothing else.
    let mut peers: Vec<Node> = (1..=PARTICIPANTS)
        .map(|i| {
            let mut config = loopback_config(i, true, i % 2 == 0);
            config.bootstrap_addrs = vec![bootstrap_addr.clone()];
            Node::spawn(config)
        })
        .collect();
    let participants: Vec<Address> = peers.iter().map(|p| p.handle.local_address()).collect();
    let channel_id = B256::repeat_byte(0x42);
    for peer in &peers {
        peer.handle
            .join_channel(channel_id, participants.clone())
            .await
            .unwrap();
    }

    // Everyone finds every other participant, with a PeerId that proves its address.
    for peer in &mut peers {
        let me = peer.handle.local_address();
        let mut found = HashSet::new();
        while found.len() < participants.len() - 1 {
            let (address, peer_id) = peer
                .wait("all participants found", |e| match e {
                    P2pEvent::ParticipantFound {
                        channel_id: c,
                        address,
                        peer,
                    } if *c == channel_id && !found.contains(address) => Some((*address, *peer)),
                    _ => None,
                })
                .await;
            assert_ne!(address, me);
            assert_eq!(entente_p2p::eth_address_of(&peer_id), Some(address));
            found.insert(address);
        }
    }
    let discovered = started.elapsed();

    // Everyone broadcasts; everyone receives the other four messages.
    for (i, peer) in peers.iter().enumerate() {
        let outcomes = peer
            .handle
            .broadcast(channel_id, message(channel_id, i as u64))
            .await
            .unwrap();
        assert_eq!(outcomes.len(), participants.len() - 1);
        for (to, outcome) in outcomes {
            assert!(outcome.is_ok(), "{} -> {to}: {outcome:?}", participants[i]);
        }
    }
    for (i, peer) in peers.iter_mut().enumerate() {
        let mut from = HashSet::new();
        while from.len() < participants.len() - 1 {
            let sender = peer
                .wait("all broadcasts", |e| match e {
                    P2pEvent::Message {
                        from: f,
                        channel_id: c,
                        envelope,
                        ..
                    } if *c == channel_id && !from.contains(f) => {
                        let j = participants.iter().position(|p| p == f).unwrap();
                        assert_eq!(height_of(envelope), Some(j as u64));
                        Some(*f)
                    }
                    _ => None,
                })
                .await;
            assert_ne!(sender, participants[i]);
            from.insert(sender);
        }
    }
    let exchanged = started.elapsed();

    // An outsider (same bootstrap, its own view of the channel that includes itself) finds the
    // participants, but they refuse its messages.
    let mut outsider_config = loopback_config(99, true, false);
    outsider_config.bootstrap_addrs = vec![bootstrap_addr.clone()];
    let outsider = Node::spawn(outsider_config);
    let outsider_address = outsider.handle.local_address();
    let mut outsider_view = participants.clone();
    outsider_view.push(outsider_address);
    outsider
        .handle
        .join_channel(channel_id, outsider_view)
        .await
        .unwrap();
    let result = outsider
        .handle
        .send(channel_id, participants[0], message(channel_id, 666))
        .await;
    match result {
        Err(P2pError::Refused { peer, reason }) => {
            assert_eq!(peer, participants[0]);
            assert!(reason.contains("not a participant"), "{reason}");
        }
        other => panic!("outsider's message was not refused: {other:?}"),
    }
    let reason = peers[0]
        .wait("the outsider's message refused", |e| match e {
            P2pEvent::Refused {
                address: Some(a),
                reason,
                ..
            } if *a == outsider_address => Some(reason.clone()),
            _ => None,
        })
        .await;
    assert!(reason.contains("not a participant"));
    peers[0].drain();
    assert!(
        !peers[0]
            .seen
            .iter()
            .any(|e| matches!(e, P2pEvent::Message { from, .. } if *from == outsider_address)),
        "the outsider's message reached the application"
    );
    // Participants never take the outsider for one of theirs.
    for peer in &mut peers {
        peer.drain();
        assert!(!peer.seen.iter().any(
            |e| matches!(e, P2pEvent::ParticipantFound { address, .. } if *address == outsider_address)
        ));
    }
    // A participant cannot send to the outsider either.
    assert!(matches!(
        peers[1]
            .handle
            .send(channel_id, outsider_address, message(channel_id, 1))
            .await,
        Err(P2pError::NotParticipant { .. })
    ));
    bootstrap.drain();
    eprintln!(
        "loopback: {} participants found each other in {discovered:?}, all broadcasts delivered after {exchanged:?}",
        PARTICIPANTS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_waits_for_a_restarted_peer_and_is_delivered_after_reconnection() {
    let mut alice = Node::spawn(loopback_config(11, true, false));
    let alice_addr = alice.listen_addr(false).await;
    let mut bob_config = loopback_config(12, true, false);
    bob_config.bootstrap_addrs = vec![alice_addr.clone()];
    let bob = Node::spawn(bob_config.clone());
    let channel_id = B256::repeat_byte(0x17);
    let participants = vec![alice.handle.local_address(), bob.handle.local_address()];
    alice
        .handle
        .join_channel(channel_id, participants.clone())
        .await
        .unwrap();
    bob.handle
        .join_channel(channel_id, participants.clone())
        .await
        .unwrap();
    bob.handle
        .send(channel_id, participants[0], message(channel_id, 1))
        .await
        .unwrap();

    // Bob goes away; Alice notices.
    let bob_peer = bob.handle.local_peer_id();
    drop(bob);
    alice
        .wait("bob disconnected", |e| match e {
            P2pEvent::Disconnected { peer, .. } if *peer == bob_peer => Some(()),
            _ => None,
        })
        .await;

    // Alice's message waits in Bob's queue while she redials him with backoff.
    let sender = alice.handle.clone();
    let pending = tokio::spawn(async move {
        sender
            .send(channel_id, participants[1], message(channel_id, 2))
            .await
    });

    // Bob comes back at a new port; he finds Alice again and the message gets through.
    let mut bob = Node::spawn(bob_config);
    bob.handle
        .join_channel(
            channel_id,
            vec![alice.handle.local_address(), bob.handle.local_address()],
        )
        .await
        .unwrap();
    bob.wait("the queued message", |e| match e {
        P2pEvent::Message { envelope, .. } if height_of(envelope) == Some(2) => Some(()),
        _ => None,
    })
    .await;
    tokio::time::timeout(crate::util::WAIT, pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
