//! Every rejection of the verification pipeline, each provoked by exactly that bad input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use alloy_sol_types::SolCall;
use entente_agreement::AgreementError;
use entente_clock::TimestampError;
use entente_contracts::TicTacToe;
use entente_evm_runtime::{EvmError, MachineCode, MachineInstance};
use entente_state_manager::{
    Accepted, Config, Effect, Event, ForkInfo, Rejection, StateManager, SubmitError,
};
use entente_types::{
    Address, AgreementMode, B256, Bytes, ChannelSpec, Confirmation, Envelope, LocalSigner, MAX_MESSAGE_BYTES,
    Message, PROTOCOL_VERSION, Signature, SignedTransaction, Signer, SyncResponse, Timing, Transaction,
    TypesError, state_hash,
};

mod common;
use common::{GENESIS_TS, key, tictactoe, tictactoe_spec};

struct Fixture {
    code: MachineCode,
    spec: ChannelSpec,
    x: LocalSigner,
    o: LocalSigner,
    stranger: LocalSigner,
    genesis: Bytes,
}

fn fixture() -> Fixture {
    let code = tictactoe();
    let (x, o, stranger) = (key(1), key(2), key(3));
    let timing = Timing {
        p2p_time: 30,
        agreement_time: 10,
        chain_fallback_time: 60,
        challenge_time: 120,
    };
    let (spec, genesis) = tictactoe_spec(
        &code,
        x.address(),
        o.address(),
        timing,
        AgreementMode::ExplicitConfirmations,
    );
    Fixture {
        code,
        spec,
        x,
        o,
        stranger,
        genesis,
    }
}

impl Fixture {
    /// O's state manager: the receiver in these tests. Its clock reads GENESIS_TS at local 0.
    fn receiver(&self) -> StateManager<LocalSigner> {
        self.receiver_with(Config::default())
    }

    fn receiver_with(&self, config: Config) -> StateManager<LocalSigner> {
        StateManager::new(self.spec.clone(), self.o.clone(), &self.code, config, 0).unwrap()
    }

    /// X's move at height 1 on the genesis, correctly executed and signed by `signer`.
    fn move1(&self, cell: u8) -> Transaction {
        let mut tx = Transaction {
            channelId: self.spec.channel_id,
            forkCnt: 0,
            height: 1,
            participant: self.x.address(),
            timestamp: GENESIS_TS + 1,
            prevStateHash: state_hash(&self.genesis),
            stateHash: B256::ZERO,
            data: TicTacToe::playCall { cell }.abi_encode().into(),
        };
        tx.stateHash = self.execute(&tx);
        tx
    }

    fn execute(&self, tx: &Transaction) -> B256 {
        let mut m = MachineInstance::deploy(&self.code, 1_000_000).unwrap();
        m.set_state(&self.genesis).unwrap();
        m.apply(tx, None).unwrap().state_hash
    }

    fn sign(&self, tx: &Transaction, signer: &LocalSigner) -> SignedTransaction {
        let digest = self.spec.domain.digest(tx);
        SignedTransaction {
            transaction: tx.clone(),
            signature: signer.sign_digest(&digest),
        }
    }

    fn x_sends(&self, tx: &Transaction) -> Message {
        Message::Transaction(self.sign(tx, &self.x))
    }
}

/// The transaction `peer` just broadcast (its other effects are dropped).
fn broadcast_transaction(peer: &mut StateManager<LocalSigner>) -> Message {
    peer.drain_effects()
        .find_map(|e| match e {
            Effect::Broadcast(m @ Message::Transaction(_)) => Some(m),
            _ => None,
        })
        .expect("a broadcast transaction")
}

/// Sends `message` from X at local time 1 s and returns the rejection, checking it was also
/// reported as an event.
fn rejected(peer: &mut StateManager<LocalSigner>, from: Address, message: Message) -> Rejection {
    let reason = peer
        .handle_message(from, message, 1_000)
        .expect_err("should be refused");
    let reported = peer
        .drain_effects()
        .any(|e| matches!(&e, Effect::Notify(Event::Rejected { reason: r, .. }) if *r == reason));
    assert!(reported, "rejection {reason:?} was not reported as an event");
    reason
}

#[test]
fn valid_transaction_is_applied_and_confirmed() {
    let f = fixture();
    let mut o = f.receiver();
    let accepted = o
        .handle_message(f.x.address(), f.x_sends(&f.move1(4)), 1_000)
        .unwrap();
    assert_eq!(accepted, Accepted::Applied(1));
    let effects: Vec<Effect> = o.drain_effects().collect();
    // Persist the transaction, record the own signature, then broadcast the confirmation.
    let persist = effects.iter().position(|e| {
        matches!(
            e,
            Effect::Persist(entente_state_manager::PersistRecord::Transaction { .. })
        )
    });
    let own = effects.iter().position(|e| {
        matches!(
            e,
            Effect::Persist(entente_state_manager::PersistRecord::OwnSignature { .. })
        )
    });
    let sent = effects
        .iter()
        .position(|e| matches!(e, Effect::Broadcast(Message::Confirmation(_))));
    assert!(persist < own && own < sent, "order: {effects:#?}");
    assert_eq!(o.finalized_height(), 1);
    assert!(o.is_my_turn());
}

#[test]
fn decode_rejections() {
    let f = fixture();
    let mut o = f.receiver();
    let garbage = o.handle_bytes(f.x.address(), b"\x00\xffnot cbor", 0).unwrap_err();
    assert!(matches!(garbage, Rejection::Decode(TypesError::Malformed(_))));
    let big = vec![0u8; MAX_MESSAGE_BYTES + 1];
    assert!(matches!(
        o.handle_bytes(f.x.address(), &big, 0),
        Err(Rejection::Decode(TypesError::TooLarge { .. }))
    ));
    let mut env = Envelope::new(f.x_sends(&f.move1(4)));
    env.version = PROTOCOL_VERSION + 7;
    let mut bytes = Vec::new();
    ciborium::into_writer(&env, &mut bytes).unwrap();
    assert!(matches!(
        o.handle_bytes(f.x.address(), &bytes, 0),
        Err(Rejection::Decode(TypesError::UnsupportedVersion { .. }))
    ));
    let good = Envelope::new(f.x_sends(&f.move1(4))).encode().unwrap();
    let truncated = o
        .handle_bytes(f.x.address(), &good[..good.len() - 3], 0)
        .unwrap_err();
    assert!(matches!(truncated, Rejection::Decode(TypesError::Malformed(_))));
    assert_eq!(o.tip(), 0, "nothing applied");
}

#[test]
fn unknown_channel() {
    let f = fixture();
    let mut o = f.receiver();
    let mut tx = f.move1(4);
    tx.channelId = B256::repeat_byte(0xee);
    assert_eq!(
        rejected(&mut o, f.x.address(), f.x_sends(&tx)),
        Rejection::UnknownChannel(tx.channelId)
    );
}

#[test]
fn bad_signature() {
    let f = fixture();
    let mut o = f.receiver();
    // A well-formed, low-s signature whose r is not the x coordinate of any curve point cannot
    // be recovered.
    let mut raw = [0u8; 65];
    raw[63] = 1; // s = 1
    raw[64] = 27;
    let unrecoverable = (1u8..=255)
        .find_map(|r| {
            raw[31] = r;
            let sig = Signature::from_slice(&raw).ok()?;
            entente_types::recover_signer(&B256::repeat_byte(1), &sig)
                .is_err()
                .then_some(sig)
        })
        .expect("some small r has no curve point");
    let message = Message::Transaction(SignedTransaction {
        transaction: f.move1(4),
        signature: unrecoverable,
    });
    assert_eq!(
        rejected(&mut o, f.x.address(), message),
        Rejection::BadSignature(TypesError::SignatureInvalid)
    );
}

#[test]
fn wrong_signer() {
    let f = fixture();
    let mut o = f.receiver();
    // X's transaction signed by O.
    let message = Message::Transaction(f.sign(&f.move1(4), &f.o));
    assert_eq!(
        rejected(&mut o, f.x.address(), message),
        Rejection::WrongSigner {
            claimed: f.x.address(),
            signer: f.o.address()
        }
    );
}

#[test]
fn not_a_participant() {
    let f = fixture();
    let mut o = f.receiver();
    let mut tx = f.move1(4);
    tx.participant = f.stranger.address();
    let message = Message::Transaction(f.sign(&tx, &f.stranger));
    assert_eq!(
        rejected(&mut o, f.stranger.address(), message),
        Rejection::NotAParticipant(f.stranger.address())
    );
}

#[test]
fn not_your_turn() {
    let f = fixture();
    let mut x = StateManager::new(f.spec.clone(), f.x.clone(), &f.code, Config::default(), 0).unwrap();
    // O tries to move first.
    let mut tx = f.move1(4);
    tx.participant = f.o.address();
    let message = Message::Transaction(f.sign(&tx, &f.o));
    assert_eq!(
        rejected(&mut x, f.o.address(), message),
        Rejection::NotYourTurn {
            issuer: f.o.address(),
            expected: f.x.address()
        }
    );
    // And locally.
    let mut o = f.receiver();
    assert_eq!(
        o.submit(TicTacToe::playCall { cell: 0 }.abi_encode().into(), 0),
        Err(SubmitError::NotYourTurn {
            expected: f.x.address()
        })
    );
}

#[test]
fn duplicate() {
    let f = fixture();
    let mut o = f.receiver();
    let message = f.x_sends(&f.move1(4));
    o.handle_message(f.x.address(), message.clone(), 1_000).unwrap();
    o.drain_effects().for_each(drop);
    assert_eq!(rejected(&mut o, f.x.address(), message), Rejection::Duplicate(1));
    assert_eq!(o.tip(), 1);
}

#[test]
fn stale_and_future_fork() {
    let f = fixture();
    let mut o = f.receiver();
    let mut tx = f.move1(4);
    tx.forkCnt = 1;
    assert_eq!(
        rejected(&mut o, f.x.address(), f.x_sends(&tx)),
        Rejection::FutureFork { got: 1, current: 0 }
    );
    // The chain starts fork 1 from the genesis state: fork-0 messages are now stale.
    let fork = ForkInfo {
        fork: 1,
        genesis_height: 0,
        genesis_timestamp: GENESIS_TS,
        genesis_state_hash: B256::ZERO,
        participants: f.spec.participants.clone(),
    };
    assert!(o.apply_fork(fork.clone(), &f.genesis, 0).unwrap());
    assert!(!o.apply_fork(fork, &f.genesis, 0).unwrap(), "a fork applies once");
    o.drain_effects().for_each(drop);
    assert_eq!(
        rejected(&mut o, f.x.address(), f.x_sends(&f.move1(4))),
        Rejection::StaleFork { got: 0, current: 1 }
    );
    // And the new fork's transactions apply.
    assert_eq!(
        o.handle_message(f.x.address(), f.x_sends(&tx), 1_000),
        Ok(Accepted::Applied(1))
    );
}

#[test]
fn before_genesis() {
    let f = fixture();
    let mut o = f.receiver();
    let mut tx = f.move1(4);
    tx.height = 0;
    assert_eq!(
        rejected(&mut o, f.x.address(), f.x_sends(&tx)),
        Rejection::BeforeGenesis {
            height: 0,
            genesis: 0
        }
    );
}

#[test]
fn conflict_and_double_signature_evidence() {
    let f = fixture();
    let mut o = f.receiver();
    o.handle_message(f.x.address(), f.x_sends(&f.move1(4)), 1_000)
        .unwrap();
    o.drain_effects().for_each(drop);
    // X signs a different move at the same height: a conflict, and an equivocation.
    let reason = o
        .handle_message(f.x.address(), f.x_sends(&f.move1(0)), 1_000)
        .unwrap_err();
    assert_eq!(reason, Rejection::Conflict { height: 1, tip: 1 });
    let events: Vec<Effect> = o.drain_effects().collect();
    assert!(events.iter().any(|e| matches!(e, Effect::Notify(Event::Equivocation { signer, height: 1, .. }) if *signer == f.x.address())));
    assert_eq!(o.evidence().len(), 1);
}

#[test]
fn wrong_previous_state() {
    let f = fixture();
    let mut o = f.receiver();
    let mut tx = f.move1(4);
    tx.prevStateHash = B256::repeat_byte(0xab);
    assert_eq!(
        rejected(&mut o, f.x.address(), f.x_sends(&tx)),
        Rejection::WrongPrevState {
            expected: state_hash(&f.genesis),
            got: tx.prevStateHash
        }
    );
}

#[test]
fn timestamp_before_parent_in_the_future_and_late() {
    let f = fixture();
    let mut o = f.receiver();
    let mut tx = f.move1(4);
    tx.timestamp = GENESIS_TS - 1;
    tx.stateHash = f.execute(&tx);
    assert!(matches!(
        rejected(&mut o, f.x.address(), f.x_sends(&tx)),
        Rejection::Timestamp(TimestampError::BeforeParent { .. })
    ));
    // O's clock reads GENESIS_TS + 1 at local 1 s; the tolerance is agreementTime = 10 s.
    tx.timestamp = GENESIS_TS + 12;
    tx.stateHash = f.execute(&tx);
    assert!(matches!(
        rejected(&mut o, f.x.address(), f.x_sends(&tx)),
        Rejection::Timestamp(TimestampError::FromTheFuture { .. })
    ));
    // Arriving after p2pTime + agreementTime (40 s) past the genesis.
    let tx = f.move1(4);
    let reason = o
        .handle_message(f.x.address(), f.x_sends(&tx), 41_000)
        .unwrap_err();
    assert!(matches!(
        reason,
        Rejection::Timestamp(TimestampError::Late { .. })
    ));
    assert_eq!(o.tip(), 0);
}

#[test]
fn execution_failure() {
    let f = fixture();
    let mut o = f.receiver();
    let mut tx = f.move1(4);
    tx.data = TicTacToe::playCall { cell: 9 }.abi_encode().into();
    match rejected(&mut o, f.x.address(), f.x_sends(&tx)) {
        Rejection::Execution(EvmError::Reverted(revert)) => {
            assert!(revert.to_string().contains("CellOutOfRange"), "{revert}");
        }
        other => panic!("expected a revert, got {other:?}"),
    }
    assert_eq!(o.tip(), 0);
    assert_eq!(o.state().unwrap(), f.genesis, "the failed move left no trace");
}

#[test]
fn state_hash_mismatch() {
    let f = fixture();
    let mut o = f.receiver();
    let mut tx = f.move1(4);
    let actual = tx.stateHash;
    tx.stateHash = B256::repeat_byte(0x77);
    assert_eq!(
        rejected(&mut o, f.x.address(), f.x_sends(&tx)),
        Rejection::StateHashMismatch {
            claimed: tx.stateHash,
            actual
        }
    );
}

#[test]
fn future_height_is_buffered_until_the_gap_is_filled_and_the_buffer_is_bounded() {
    let f = fixture();
    let mut x = StateManager::new(f.spec.clone(), f.x.clone(), &f.code, Config::default(), 0).unwrap();
    let mut o = f.receiver_with(Config {
        max_buffered: 1,
        ..Config::default()
    });
    // X plays 4, O plays 0, X plays 8: produce heights 1..3 with a real second peer.
    let mut o_real = f.receiver();
    let mut frames: Vec<Message> = Vec::new();
    x.submit(TicTacToe::playCall { cell: 4 }.abi_encode().into(), 100)
        .unwrap();
    let m1 = broadcast_transaction(&mut x);
    o_real.handle_message(f.x.address(), m1.clone(), 200).unwrap();
    o_real.drain_effects().for_each(drop);
    frames.push(m1);
    o_real
        .submit(TicTacToe::playCall { cell: 0 }.abi_encode().into(), 300)
        .unwrap();
    let m2 = broadcast_transaction(&mut o_real);
    x.handle_message(f.o.address(), m2.clone(), 400).unwrap();
    x.drain_effects().for_each(drop);
    frames.push(m2);
    x.submit(TicTacToe::playCall { cell: 8 }.abi_encode().into(), 500)
        .unwrap();
    let m3 = broadcast_transaction(&mut x);
    frames.push(m3);

    // The fresh O gets height 3 first: buffered, with a sync request for the gap.
    assert_eq!(
        o.handle_message(f.x.address(), frames[2].clone(), 600).unwrap(),
        Accepted::Buffered
    );
    assert!(o.drain_effects().any(|e| matches!(
        e,
        Effect::Send {
            message: Message::SyncRequest(_),
            ..
        }
    )));
    // Buffer holds one: another future height is refused.
    let mut h4 = match &frames[2] {
        Message::Transaction(st) => st.transaction.clone(),
        _ => unreachable!(),
    };
    h4.height = 4;
    assert_eq!(
        rejected(&mut o, f.x.address(), f.x_sends(&h4)),
        Rejection::BufferFull
    );
    // Then heights 1 and 2 arrive: all three apply.
    o.handle_message(f.x.address(), frames[0].clone(), 700).unwrap();
    assert_eq!(
        o.handle_message(f.o.address(), frames[1].clone(), 800).unwrap(),
        Accepted::Applied(3)
    );
}

#[test]
fn conflicting_confirmation_is_refused() {
    let f = fixture();
    let mut o = f.receiver();
    o.handle_message(f.x.address(), f.x_sends(&f.move1(4)), 1_000)
        .unwrap();
    o.drain_effects().for_each(drop);
    let other = f.spec.domain.digest(&f.move1(0));
    let c = Confirmation {
        channel_id: f.spec.channel_id,
        fork: 0,
        height: 1,
        digest: other,
        signature: f.x.sign_digest(&other),
    };
    let reason = rejected(&mut o, f.x.address(), Message::Confirmation(c));
    assert!(matches!(
        reason,
        Rejection::Agreement(AgreementError::Conflicting { height: 1, .. })
    ));
    assert_eq!(o.evidence().len(), 1, "X signed two transactions at height 1");
}

#[test]
fn confirmation_from_a_stranger_and_oversized_sync() {
    let f = fixture();
    let mut o = f.receiver();
    o.handle_message(f.x.address(), f.x_sends(&f.move1(4)), 1_000)
        .unwrap();
    o.drain_effects().for_each(drop);
    let d = f.spec.domain.digest(&f.move1(4));
    let c = Confirmation {
        channel_id: f.spec.channel_id,
        fork: 0,
        height: 1,
        digest: d,
        signature: f.stranger.sign_digest(&d),
    };
    assert_eq!(
        rejected(&mut o, f.stranger.address(), Message::Confirmation(c)),
        Rejection::NotAParticipant(f.stranger.address())
    );

    let record = entente_types::TransactionRecord {
        transaction: f.move1(4),
        signatures: vec![],
    };
    let big = SyncResponse {
        channel_id: f.spec.channel_id,
        fork: 0,
        transactions: vec![record; 65],
    };
    assert_eq!(
        rejected(&mut o, f.x.address(), Message::SyncResponse(big)),
        Rejection::OversizedSync(65)
    );
}

#[test]
fn a_peer_that_refused_our_confirmation_gets_none_from_us() {
    let f = fixture();
    let mut x = StateManager::new(f.spec.clone(), f.x.clone(), &f.code, Config::default(), 0).unwrap();
    let mut o = f.receiver();
    // X moves; O applies it but its confirmation never reaches X.
    // X moves 20 s after the genesis; its confirmation deadline is 40 s after the genesis.
    x.submit(TicTacToe::playCall { cell: 4 }.abi_encode().into(), 20_000)
        .unwrap();
    let m1 = broadcast_transaction(&mut x);
    o.handle_message(f.x.address(), m1, 20_100).unwrap();
    o.drain_effects().for_each(drop);
    // Past the confirmation deadline (p2pTime + agreementTime = 40 s after the genesis), X notes
    // that O refused.
    x.handle_timeout(41_000);
    x.drain_effects().for_each(drop);
    assert_eq!(x.refusing().collect::<Vec<_>>(), vec![&f.o.address()]);
    // O's next move is applied by X, but X does not confirm it.
    o.submit(TicTacToe::playCall { cell: 0 }.abi_encode().into(), 45_000)
        .unwrap();
    let m2 = broadcast_transaction(&mut o);
    // Within height 2's window (its parent is stamped 20 s after the genesis).
    let result = x.handle_message(f.o.address(), m2, 45_100);
    assert_eq!(result, Ok(Accepted::Applied(2)));
    let effects: Vec<Effect> = x.drain_effects().collect();
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::Broadcast(Message::Confirmation(_)))),
        "X confirmed a peer that refused it"
    );
}

/// A confirmation's labels are not covered by its signature: X's signature over its move at
/// height 1, relabelled as a confirmation of O's move at height 2, counts for nothing and is no
/// evidence against X (docs/security.md, O6).
#[test]
fn a_relabelled_confirmation_is_refused_and_no_evidence() {
    let f = fixture();
    let mut o = f.receiver();
    let t1 = f.move1(4);
    o.handle_message(f.x.address(), f.x_sends(&t1), 1_000).unwrap();
    o.submit(TicTacToe::playCall { cell: 0 }.abi_encode().into(), 2_000)
        .unwrap();
    let _ = o.drain_effects().count();
    let digest1 = f.spec.domain.digest(&t1);
    let relabelled = Message::Confirmation(Confirmation {
        channel_id: f.spec.channel_id,
        fork: 0,
        height: 2,
        digest: digest1,
        signature: f.x.sign_digest(&digest1),
    });
    let reason = rejected(&mut o, f.x.address(), relabelled);
    assert_eq!(
        reason,
        Rejection::MislabeledConfirmation {
            labelled: 2,
            signed: 1
        }
    );
    assert!(o.evidence().is_empty());
    assert_eq!(
        o.finalized_height(),
        1,
        "height 2 is not final on X's relabelled signature"
    );
}
