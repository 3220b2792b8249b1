//! The tic-tac-toe channel the state manager's tests play on.

#![allow(dead_code, unreachable_pub)] // each test file uses a part

use alloy_primitives::U256;
use entente_contracts::{TicTacToe, artifacts};
use entente_evm_runtime::{MachineCode, MachineInstance};
use entente_types::{Address, AgreementMode, B256, Bytes, ChannelSpec, Domain, LocalSigner, Timing};

/// Chain time of the channel's genesis.
pub const GENESIS_TS: u64 = 1_700_000_000;

/// A key made of one repeated byte.
pub fn key(n: u8) -> LocalSigner {
    LocalSigner::from_bytes(&B256::repeat_byte(n)).unwrap()
}

/// The tic-tac-toe machine.
pub fn tictactoe() -> MachineCode {
    MachineCode::from_artifact_json(artifacts::TIC_TAC_TOE).unwrap()
}

/// A tic-tac-toe channel between `x` and `o` (stake 5) with `timing` and `mode`, and its genesis
/// state.
pub fn tictactoe_spec(
    code: &MachineCode,
    x: Address,
    o: Address,
    timing: Timing,
    mode: AgreementMode,
) -> (ChannelSpec, Bytes) {
    let genesis = MachineInstance::deploy(code, 1_000_000)
        .unwrap()
        .view_decode(&TicTacToe::initialStateCall {
            x,
            o,
            stake: U256::from(5),
        })
        .unwrap();
    let spec = ChannelSpec {
        channel_id: B256::repeat_byte(0xc1),
        domain: Domain::new(31337, Address::repeat_byte(0x99)),
        participants: vec![x, o],
        state_machine: Address::ZERO,
        timing,
        agreement_mode: mode,
        genesis_state: genesis.clone(),
        genesis_timestamp: GENESIS_TS,
    };
    (spec, genesis)
}
