//! The real compiled TicTacToe and RoundRobinCounter bytecode, driven through revm.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use alloy_primitives::{Address, B256, Bytes, U256};
use alloy_sol_types::SolCall;
use entente_contracts::{RoundRobinCounter, TicTacToe, artifacts};
use entente_evm_runtime::{EvmError, MachineCode, MachineInstance, Revert};
use entente_types::{Transaction, state_hash};

const GAS: u64 = 1_000_000;

fn tictactoe() -> (MachineInstance, Bytes, Address, Address) {
    let code = MachineCode::from_artifact_json(artifacts::TIC_TAC_TOE).unwrap();
    let mut m = MachineInstance::deploy(&code, GAS).unwrap();
    let (x, o) = (Address::repeat_byte(0xa1), Address::repeat_byte(0xb2));
    let genesis = m
        .view_decode(&TicTacToe::initialStateCall {
            x,
            o,
            stake: U256::from(100),
        })
        .unwrap();
    m.set_state(&genesis).unwrap();
    (m, genesis, x, o)
}

fn play(who: Address, height: u64, prev: B256, cell: u8) -> Transaction {
    Transaction {
        channelId: B256::repeat_byte(7),
        forkCnt: 0,
        height,
        participant: who,
        timestamp: 1_700_000_000 + height,
        prevStateHash: prev,
        stateHash: B256::ZERO,
        data: TicTacToe::playCall { cell }.abi_encode().into(),
    }
}

#[test]
fn tictactoe_plays_to_a_win_with_exits() {
    let (mut m, genesis, x, o) = tictactoe();
    assert_eq!(m.participants().unwrap(), vec![x, o]);
    let mut prev = state_hash(&genesis);
    // X: 0, 1, 2 (top row); O: 3, 4.
    for (h, (who, cell)) in [(x, 0), (o, 3), (x, 1), (o, 4), (x, 2)].into_iter().enumerate() {
        assert!(!m.is_game_over().unwrap());
        assert_eq!(m.next_to_write().unwrap(), who);
        let out = m.apply(&play(who, h as u64 + 1, prev, cell), None).unwrap();
        assert_eq!(out.state_hash, state_hash(&m.state().unwrap()));
        assert!(out.gas_used > 0 && out.gas_used < GAS);
        prev = out.state_hash;
    }
    assert!(m.is_game_over().unwrap());
    let exits = m.exits().unwrap();
    let paid: Vec<(Address, U256)> = exits.iter().map(|e| (e.participant, e.amount)).collect();
    assert!(
        paid.contains(&(x, U256::from(200))),
        "winner takes both stakes: {paid:?}"
    );
    assert_eq!(paid.iter().map(|(_, a)| *a).sum::<U256>(), U256::from(200));
}

#[test]
fn invalid_moves_revert_with_decoded_custom_errors_and_change_nothing() {
    let (mut m, genesis, x, o) = tictactoe();
    let g = state_hash(&genesis);
    // Not O's turn.
    match m.apply(&play(o, 1, g, 0), None) {
        Err(EvmError::Reverted(Revert::Custom { name, .. })) => assert_eq!(name, "NotYourTurn"),
        other => panic!("expected NotYourTurn, got {other:?}"),
    }
    // Out of range.
    match m.apply(&play(x, 1, g, 9), None) {
        Err(EvmError::Reverted(Revert::Custom { name, args })) => {
            assert_eq!(name, "CellOutOfRange");
            assert_eq!(args.len(), 1);
        }
        other => panic!("expected CellOutOfRange, got {other:?}"),
    }
    // Garbage data is not a move.
    let mut junk = play(x, 1, g, 0);
    junk.data = Bytes::from_static(&[0xde, 0xad, 0xbe, 0xef]);
    assert!(matches!(m.apply(&junk, None), Err(EvmError::Reverted(_))));
    // Nothing changed.
    assert_eq!(m.state().unwrap(), genesis);
    assert_eq!(m.next_to_write().unwrap(), x);
}

#[test]
fn wrong_claimed_state_hash_is_not_committed() {
    let (mut m, genesis, x, _) = tictactoe();
    let g = state_hash(&genesis);
    let err = m
        .apply(&play(x, 1, g, 4), Some(B256::repeat_byte(9)))
        .unwrap_err();
    assert!(matches!(err, EvmError::StateHashMismatch { .. }));
    assert_eq!(m.state().unwrap(), genesis);
    // The right hash is accepted.
    let expected = {
        let code = MachineCode::from_artifact_json(artifacts::TIC_TAC_TOE).unwrap();
        let mut other = MachineInstance::deploy(&code, GAS).unwrap();
        other.set_state(&genesis).unwrap();
        other.apply(&play(x, 1, g, 4), None).unwrap().state_hash
    };
    assert_eq!(
        m.apply(&play(x, 1, g, 4), Some(expected)).unwrap().state_hash,
        expected
    );
}

#[test]
fn gas_limit_bounds_every_call() {
    let (_, genesis, _, _) = tictactoe();
    let code = MachineCode::from_artifact_json(artifacts::TIC_TAC_TOE).unwrap();
    let mut m = MachineInstance::deploy(&code, 25_000).unwrap();
    // Loading a state writes several storage slots: more than 25k gas.
    assert!(matches!(m.set_state(&genesis), Err(EvmError::Halted { .. })));
}

#[test]
fn round_robin_counter_with_sixteen_participants() {
    let code = MachineCode::from_artifact_json(artifacts::ROUND_ROBIN_COUNTER).unwrap();
    let mut m = MachineInstance::deploy(&code, GAS).unwrap();
    let parts: Vec<Address> = (1..=16u8).map(Address::repeat_byte).collect();
    let deposits = vec![U256::from(10); 16];
    let genesis = m
        .view_decode(&RoundRobinCounter::initialStateCall {
            participants: parts.clone(),
            deposits,
            target: 40,
        })
        .unwrap();
    m.set_state(&genesis).unwrap();
    let mut prev = state_hash(&genesis);
    let mut height = 0u64;
    while !m.is_game_over().unwrap() {
        let who = m.next_to_write().unwrap();
        assert_eq!(who, parts[height as usize % 16]);
        height += 1;
        let tx = Transaction {
            height,
            participant: who,
            prevStateHash: prev,
            data: RoundRobinCounter::addCall { step: 3 }.abi_encode().into(),
            ..Default::default()
        };
        prev = m.apply(&tx, None).unwrap().state_hash;
    }
    assert_eq!(height, 14); // 14 * 3 = 42 >= 40
    let exits = m.exits().unwrap();
    assert_eq!(exits.len(), 16);
    assert!(exits.iter().all(|e| e.amount == U256::from(10)));
}

#[test]
fn remove_hook_forfeits_to_the_other_player() {
    let (mut m, _, x, o) = tictactoe();
    let leaving = m.remove_participant(x).unwrap();
    let staying = m.exits().unwrap();
    let total = leaving
        .iter()
        .chain(staying.iter())
        .map(|e| e.amount)
        .sum::<U256>();
    assert_eq!(total, U256::from(200), "value is conserved");
    let to_x = leaving
        .iter()
        .chain(staying.iter())
        .filter(|e| e.participant == x)
        .map(|e| e.amount)
        .sum::<U256>();
    let to_o = leaving
        .iter()
        .chain(staying.iter())
        .filter(|e| e.participant == o)
        .map(|e| e.amount)
        .sum::<U256>();
    assert_eq!(
        (to_x, to_o),
        (U256::ZERO, U256::from(200)),
        "the removed player forfeits its stake"
    );
}

#[test]
fn an_instance_that_sleeps_answers_as_one_that_does_not() {
    let (mut awake, genesis, x, o) = tictactoe();
    let (mut sleepy, ..) = tictactoe();
    let mut prev = state_hash(&genesis);
    // X: 0, 1, 2 (top row); O: 3, 4; the second instance sleeps before every call, and once
    // between executing a move and committing it.
    for (h, (who, cell)) in [(x, 0), (o, 3), (x, 1), (o, 4), (x, 2)].into_iter().enumerate() {
        sleepy.sleep();
        assert!(sleepy.is_asleep());
        assert_eq!(sleepy.next_to_write().unwrap(), awake.next_to_write().unwrap());
        assert!(!sleepy.is_asleep(), "a call wakes it");
        let tx = play(who, h as u64 + 1, prev, cell);
        let a = awake.apply(&tx, None).unwrap();
        sleepy.sleep();
        let pending = sleepy.execute(&tx, None).unwrap();
        sleepy.sleep();
        let b = sleepy.commit(pending);
        assert_eq!(a, b);
        sleepy.sleep();
        assert_eq!(sleepy.state().unwrap(), awake.state().unwrap());
        prev = a.state_hash;
    }
    sleepy.sleep();
    assert_eq!(sleepy.is_game_over().unwrap(), awake.is_game_over().unwrap());
    assert_eq!(sleepy.exits().unwrap(), awake.exits().unwrap());
    // A refused call leaves the state as it was, asleep or not.
    sleepy.sleep();
    let late = play(o, 6, prev, 5);
    assert!(sleepy.apply(&late, None).is_err());
    assert_eq!(sleepy.state().unwrap(), awake.state().unwrap());
}

#[test]
fn instances_of_one_machine_share_its_deployment() {
    let code = MachineCode::from_artifact_json(artifacts::TIC_TAC_TOE).unwrap();
    let a = MachineInstance::deploy(&code, GAS).unwrap();
    let b = MachineInstance::deploy(&code.clone(), GAS).unwrap();
    let (ca, cb) = (a.runtime_code(), b.runtime_code());
    assert!(!ca.is_empty());
    assert_eq!(a.address(), b.address());
    assert_eq!(
        ca.as_ptr(),
        cb.as_ptr(),
        "the runtime code is one allocation, not a copy per instance"
    );
    // A separately loaded copy of the same artifact deploys on its own, to the same code.
    let other = MachineCode::from_artifact_json(artifacts::TIC_TAC_TOE).unwrap();
    let c = MachineInstance::deploy(&other, GAS).unwrap();
    assert_eq!(c.runtime_code(), ca);
    assert_ne!(c.runtime_code().as_ptr(), ca.as_ptr());
}

#[test]
fn the_turn_of_a_given_state_is_read_from_that_state_not_from_the_machine_s_own() {
    // The court asks `nextToWriteOf(state)` / `isGameOverOf(state)`; the node asks the same, for
    // the tip's state it holds, whatever state the instance itself holds at that moment.
    let (mut m, genesis, x, o) = tictactoe();
    let mut prev = state_hash(&genesis);
    let mut states = vec![genesis.clone()];
    for (h, (who, cell)) in [(x, 0), (o, 3), (x, 1), (o, 4), (x, 2)].into_iter().enumerate() {
        let out = m.apply(&play(who, h as u64 + 1, prev, cell), None).unwrap();
        prev = out.state_hash;
        states.push(out.state);
    }
    // The instance holds the won game; each earlier state still answers for itself.
    assert!(m.is_game_over().unwrap());
    for (i, state) in states.iter().enumerate() {
        let over = i == states.len() - 1;
        let next = if over {
            Address::ZERO
        } else if i % 2 == 0 {
            x
        } else {
            o
        };
        assert_eq!(m.next_to_write_of(state).unwrap(), next, "state {i}");
        assert_eq!(m.is_game_over_of(state).unwrap(), over, "state {i}");
    }
    // Asking changed nothing.
    assert_eq!(m.state().unwrap(), states[5]);
    // A state the machine cannot decode is an error, not an answer.
    assert!(m.next_to_write_of(&Bytes::from_static(&[1, 2, 3])).is_err());
}
