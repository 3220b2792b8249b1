//! Arbitrary move data against the real TicTacToe bytecode: a move either applies or reverts
//! with the state untouched; the runtime never panics.
#![no_main]

use alloy_primitives::U256;
use entente_contracts::{TicTacToe, artifacts};
use entente_evm_runtime::{MachineCode, MachineInstance};
use entente_types::{Address, Transaction};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let code = MachineCode::from_artifact_json(artifacts::TIC_TAC_TOE).expect("artifact");
    let mut m = MachineInstance::deploy(&code, 1_000_000).expect("deploy");
    let (x, o) = (Address::repeat_byte(1), Address::repeat_byte(2));
    let genesis = m
        .view_decode(&TicTacToe::initialStateCall {
            x,
            o,
            stake: U256::from(1),
        })
        .expect("genesis");
    m.set_state(&genesis).expect("load");
    let tx = Transaction {
        participant: x,
        height: 1,
        data: data.to_vec().into(),
        ..Default::default()
    };
    let before = m.state().expect("state");
    if m.apply(&tx, None).is_err() {
        assert_eq!(
            m.state().expect("state"),
            before,
            "a failed move changed the state"
        );
    }
});
