//! Bad input at the API gets a clear, typed error and loses nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod support;

use std::time::Duration;

use entente_contracts::{TicTacToe, artifacts};
use entente_node::{MachineSource, Node, NodeConfig, NodeError, ProposalBuilder};
use entente_store::StoreError;
use entente_types::{B256, U256};
use support::{World, dial_addr, ether};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_chain_is_a_chain_error_naming_the_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1.
    let config = NodeConfig::new(
        B256::repeat_byte(7),
        "http://127.0.0.1:1",
        Default::default(),
        dir.path(),
    );
    let err = Node::start(config).await.unwrap_err();
    match &err {
        NodeError::Chain(e) => assert!(e.is_unreachable(), "{e}"),
        other => panic!("expected a chain error, got {other:?}"),
    }
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_corrupt_data_directory_is_refused() {
    let world = World::new().await;
    let dir = tempfile::tempdir().unwrap();
    // Missing, when the node must not create it (a restart that lost its data).
    let mut config = world.config(1, &dir.path().join("gone"), vec![]);
    config.create_data_dir = false;
    let err = Node::start(config).await.unwrap_err();
    assert!(
        matches!(err, NodeError::Store(StoreError::MissingDir { .. })),
        "{err:?}"
    );
    // Corrupt: garbage where the database should be; the file is left as it was.
    let corrupt = dir.path().join("corrupt");
    std::fs::create_dir_all(&corrupt).unwrap();
    let db = corrupt.join(entente_store::DB_FILE);
    std::fs::write(&db, b"this is not a redb file, it is a shopping list").unwrap();
    let err = Node::start(world.config(1, &corrupt, vec![])).await.unwrap_err();
    assert!(
        matches!(err, NodeError::Store(StoreError::Corrupt { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains(corrupt.to_str().unwrap()), "{err}");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        b"this is not a redb file, it is a shopping list"
    );
    // A bad TOML file names the problem.
    let err = NodeConfig::from_toml_str("secret_key = 12").unwrap_err();
    assert!(matches!(err, NodeError::Config(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_moves_unknown_channels_and_turns_are_refused_without_harm() {
    let world = World::new().await;
    let dir = tempfile::tempdir().unwrap();
    let alice = Node::start(world.config(1, &dir.path().join("a"), vec![]))
        .await
        .unwrap();
    let bob = Node::start(world.config(2, &dir.path().join("b"), vec![dial_addr(&alice).await]))
        .await
        .unwrap();
    let (a, b) = (alice.address(), bob.address());
    let code = MachineSource::ArtifactJson(artifacts::TIC_TAC_TOE.to_string());
    let stake = ether(1);

    // Unknown channel.
    let unknown = B256::repeat_byte(0xee);
    assert!(matches!(
        alice.channel(unknown).await,
        Err(NodeError::UnknownChannel(_))
    ));
    assert!(matches!(
        bob.accept(unknown, code.clone()).await,
        Err(NodeError::UnknownChannel(_))
    ));
    // A proposal that does not include the proposer first is refused before anything is sent.
    let bad = ProposalBuilder::new(world.tictactoe, vec![b, a], vec![stake, stake])
        .build(&alice, &code, &TicTacToe::initialStateCall { x: b, o: a, stake })
        .await
        .unwrap();
    assert!(matches!(
        alice.propose(bad, code.clone()).await,
        Err(NodeError::BadProposal(_))
    ));
    // Mismatched lists.
    let err = ProposalBuilder::new(world.tictactoe, vec![a, b], vec![stake])
        .build(&alice, &code, &TicTacToe::initialStateCall { x: a, o: b, stake })
        .await
        .unwrap_err();
    assert!(matches!(err, NodeError::BadProposal(_)), "{err:?}");

    let proposal = ProposalBuilder::new(world.tictactoe, vec![a, b], vec![stake, stake])
        .build(&alice, &code, &TicTacToe::initialStateCall { x: a, o: b, stake })
        .await
        .unwrap();
    let game_a = alice.propose(proposal, code.clone()).await.unwrap();
    let (_, invitation) = bob.next_proposal(WAIT).await.unwrap();
    let game_b = bob.accept(invitation.channel_id, code).await.unwrap();
    game_a.wait_live(WAIT).await.unwrap();
    game_b.wait_live(WAIT).await.unwrap();

    // Not bob's turn (X moves first).
    let err = game_b.call(&TicTacToe::playCall { cell: 0 }).await.unwrap_err();
    assert!(
        matches!(
            err,
            NodeError::Move(entente_state_manager::SubmitError::NotYourTurn { .. })
        ),
        "{err:?}"
    );
    // A cell that does not exist: the machine reverts, nothing is sent.
    let err = game_a.call(&TicTacToe::playCall { cell: 9 }).await.unwrap_err();
    assert!(matches!(err, NodeError::Move(_)), "{err:?}");
    assert!(err.to_string().contains("CellOutOfRange"), "{err}");
    let info = game_a.info().await.unwrap();
    assert_eq!(info.tip, 0, "a refused move changes nothing");
    // The game goes on normally after the refusals.
    game_a.call(&TicTacToe::playCall { cell: 4 }).await.unwrap();
    game_b.wait_until("X's move", WAIT, |i| i.tip == 1).await.unwrap();
    let game = game_b.view(&TicTacToe::getGameCall {}).await.unwrap();
    assert_eq!(game.board[4], 1);
    let _ = U256::ZERO;
}

/// A peer on the network sends forged proposals and a forged join ticket: each is refused, and
/// the node keeps working (a valid proposal sent after them arrives, and nothing goes on chain).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_proposals_from_the_network_and_unknown_channels_to_join_are_refused() {
    use entente_types::{Address, Bytes, ChannelProposal, Envelope, Message, Timing};
    let world = World::new().await;
    let dir = tempfile::tempdir().unwrap();
    let alice = Node::start(world.config(1, &dir.path().join("a"), vec![]))
        .await
        .unwrap();
    let a = alice.address();
    let mut config = entente_p2p::P2pConfig::new(world.key(5));
    config.listen_addrs = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    config.bootstrap_addrs = vec![dial_addr(&alice).await];
    config.public = true;
    let (rogue, _rogue_events) = entente_p2p::P2pManager::spawn(config).unwrap();
    let r = rogue.local_address();
    // Each proposal carries the id of its terms (`salt` makes them differ).
    let proposal = |id: u8, participants: Vec<Address>, manager: Address| {
        let mut p = ChannelProposal {
            channel_id: B256::ZERO,
            chain_id: world.anvil.chain_id(),
            manager,
            participants,
            deposits: vec![ether(1), ether(1)],
            state_machine: world.tictactoe,
            token: Address::ZERO,
            timing: Timing::default(),
            funding_period: 3_600,
            machine_gas_limit: 5_000_000,
            salt: B256::repeat_byte(id),
            genesis_state: Bytes::from_static(b"\x00"),
            agreement_mode: Default::default(),
        };
        p.channel_id = entente_channel::channel_id_of(&p);
        p
    };
    let send = |p: ChannelProposal| {
        let rogue = rogue.clone();
        async move {
            rogue
                .join_channel(p.channel_id, p.participants.clone())
                .await
                .unwrap();
            rogue
                .send(p.channel_id, a, Envelope::new(Message::Proposal(Box::new(p))))
                .await
                .unwrap();
        }
    };
    // Not from its first participant (the opener): refused.
    send(proposal(1, vec![a, r], world.manager)).await;
    // For another manager: refused.
    send(proposal(2, vec![r, a], Address::repeat_byte(9))).await;
    // Joining a channel the chain does not know: refused before anything is awaited (tickets
    // on other terms are refused by the channel core, crates/channel/tests/join.rs).
    let code = MachineSource::ArtifactJson(artifacts::TIC_TAC_TOE.to_string());
    let unknown = alice.expect_join(B256::repeat_byte(3), r, ether(1), code).await;
    assert!(
        matches!(unknown, Err(NodeError::UnknownChannel(id)) if id == B256::repeat_byte(3)),
        "{unknown:?}"
    );
    // A valid proposal after all that arrives: the node is alive and saw the others first.
    // A proposal whose id is not that of its terms: refused.
    let mut wrong_id = proposal(5, vec![r, a], world.manager);
    wrong_id.channel_id = B256::repeat_byte(5);
    send(wrong_id).await;
    let valid = proposal(4, vec![r, a], world.manager);
    send(valid.clone()).await;
    let (from, got) = alice.next_proposal(WAIT).await.unwrap();
    assert_eq!((from, got.channel_id), (r, valid.channel_id));
    let invitations = alice.invitations().await.unwrap();
    assert_eq!(invitations.len(), 1, "only the valid proposal is an invitation");
    // The stranger floods alice with proposals naming her: at most four of its invitations are
    // kept, so the proposal of the opponent she waits for still arrives.
    for id in 10..40u8 {
        send(proposal(id, vec![r, a], world.manager)).await;
    }
    let bob = Node::start(world.config(2, &dir.path().join("b"), vec![dial_addr(&alice).await]))
        .await
        .unwrap();
    let code = MachineSource::ArtifactJson(artifacts::TIC_TAC_TOE.to_string());
    let stake = ether(1);
    let real = ProposalBuilder::new(world.tictactoe, vec![bob.address(), a], vec![stake, stake])
        .build(
            &bob,
            &code,
            &TicTacToe::initialStateCall {
                x: bob.address(),
                o: a,
                stake,
            },
        )
        .await
        .unwrap();
    let _game = bob.propose(real.clone(), code).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let invitations = alice.invitations().await.unwrap();
        if invitations.iter().any(|(_, p)| p.channel_id == real.channel_id) {
            let from_rogue = invitations.iter().filter(|(from, _)| *from == r).count();
            assert_eq!(from_rogue, 4, "the stranger keeps four invitations");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the real proposal never arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
