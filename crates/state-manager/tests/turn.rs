//! Whose turn it is, read as the court reads it: from the views of the tip's encoded state
//! (`nextToWriteOf`, `isGameOverOf`), never from a machine's views of its own storage, which a
//! machine may answer differently (a participant may propose a channel on such a machine).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use alloy_primitives::U256;
use alloy_sol_types::SolCall;
use entente_contracts::{RoundRobinCounter, artifacts};
use entente_evm_runtime::{MachineCode, MachineInstance};
use entente_state_manager::{Config, Effect, Rejection, StateManager, SubmitError};
use entente_types::{
    Address, AgreementMode, B256, Bytes, ChannelSpec, Domain, LocalSigner, Message, SignedTransaction,
    Signer, Timing, Transaction, state_hash,
};

mod common;
use common::{GENESIS_TS, key};

fn add(step: u64) -> Bytes {
    RoundRobinCounter::addCall { step }.abi_encode().into()
}

/// The transaction `peer` just broadcast (its other effects are dropped).
fn broadcast(peer: &mut StateManager<LocalSigner>) -> Message {
    peer.drain_effects()
        .find_map(|e| match e {
            Effect::Broadcast(m @ Message::Transaction(_)) => Some(m),
            _ => None,
        })
        .expect("a broadcast transaction")
}

#[test]
fn the_turn_is_the_one_the_court_reads_even_when_the_machine_s_own_views_say_otherwise() {
    let code = MachineCode::from_artifact_json(artifacts::TWO_FACED_COUNTER).unwrap();
    let (a, b) = (key(1), key(2));
    let participants = vec![a.address(), b.address()];
    let mut machine = MachineInstance::deploy(&code, 1_000_000).unwrap();
    let genesis = machine
        .view_decode(&RoundRobinCounter::initialStateCall {
            participants: participants.clone(),
            deposits: vec![U256::from(5u64); 2],
            target: 3,
        })
        .unwrap();
    // The machine's two faces: its own views name B and say the game is over; the views the
    // court asks of the same state name A and say it is not.
    machine.set_state(&genesis).unwrap();
    assert_eq!(machine.next_to_write().unwrap(), b.address());
    assert!(machine.is_game_over().unwrap());
    assert_eq!(machine.next_to_write_of(&genesis).unwrap(), a.address());
    assert!(!machine.is_game_over_of(&genesis).unwrap());

    let spec = ChannelSpec {
        channel_id: B256::repeat_byte(0xc2),
        domain: Domain::new(31337, Address::repeat_byte(0x99)),
        participants,
        state_machine: Address::ZERO,
        timing: Timing {
            p2p_time: 30,
            agreement_time: 10,
            chain_fallback_time: 60,
            challenge_time: 120,
        },
        agreement_mode: AgreementMode::ExplicitConfirmations,
        genesis_state: genesis.clone(),
        genesis_timestamp: GENESIS_TS,
    };
    let new = |signer: &LocalSigner| {
        StateManager::new(spec.clone(), signer.clone(), &code, Config::default(), 0).unwrap()
    };
    let (mut pa, mut pb) = (new(&a), new(&b));

    // A's turn, as the court would accuse A of silence; the game goes on.
    assert!(pa.is_my_turn());
    assert!(!pb.is_my_turn());
    assert!(!pa.is_game_over() && !pb.is_game_over());

    // B, whom the machine's own view names, may not write, locally or over the wire.
    assert_eq!(
        pb.submit(add(1), 1_000),
        Err(SubmitError::NotYourTurn {
            expected: a.address()
        })
    );
    let mut by_b = Transaction {
        channelId: spec.channel_id,
        forkCnt: 0,
        height: 1,
        participant: b.address(),
        timestamp: GENESIS_TS + 1,
        prevStateHash: state_hash(&genesis),
        stateHash: B256::ZERO,
        data: add(1),
    };
    by_b.stateHash = state_hash(&genesis);
    let signed = SignedTransaction {
        signature: b.sign_digest(&spec.domain.digest(&by_b)),
        transaction: by_b,
    };
    assert_eq!(
        pa.handle_message(b.address(), Message::Transaction(signed), 1_000),
        Err(Rejection::NotYourTurn {
            issuer: b.address(),
            expected: a.address()
        })
    );

    // A writes; B takes A's move; then it is B's turn, again as the court reads it.
    pa.submit(add(1), 1_000).unwrap();
    let message = broadcast(&mut pa);
    pb.handle_message(a.address(), message, 1_000).unwrap();
    assert!(pb.is_my_turn());
    assert!(!pa.is_my_turn());
    assert_eq!(pb.tip(), 1);
}
