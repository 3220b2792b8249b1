//! The verification pipeline fed arbitrary frames from a participant: it refuses or applies,
//! never panics, and never leaves the machine at a state other than the tip's.
#![no_main]

use std::cell::RefCell;

use alloy_primitives::U256;
use entente_contracts::{TicTacToe, artifacts};
use entente_evm_runtime::{MachineCode, MachineInstance};
use entente_state_manager::{Config, StateManager};
use entente_types::{
    Address, AgreementMode, B256, ChannelSpec, Domain, LocalSigner, Signer, Timing, state_hash,
};
use libfuzzer_sys::fuzz_target;

struct Setup {
    code: MachineCode,
    spec: ChannelSpec,
    o: LocalSigner,
    x: Address,
}

thread_local! {
    static SETUP: RefCell<Option<Setup>> = const { RefCell::new(None) };
}

fn setup() -> Setup {
    let code = MachineCode::from_artifact_json(artifacts::TIC_TAC_TOE).expect("artifact");
    let x = LocalSigner::from_bytes(&B256::repeat_byte(1)).expect("key");
    let o = LocalSigner::from_bytes(&B256::repeat_byte(2)).expect("key");
    let genesis = MachineInstance::deploy(&code, 1_000_000)
        .expect("deploy")
        .view_decode(&TicTacToe::initialStateCall {
            x: x.address(),
            o: o.address(),
            stake: U256::from(1),
        })
        .expect("genesis");
    let spec = ChannelSpec {
        channel_id: B256::repeat_byte(0xc1),
        domain: Domain::new(31337, Address::repeat_byte(0x99)),
        participants: vec![x.address(), o.address()],
        state_machine: Address::ZERO,
        timing: Timing::default(),
        agreement_mode: AgreementMode::ExplicitConfirmations,
        genesis_state: genesis,
        genesis_timestamp: 1_700_000_000,
    };
    Setup {
        code,
        spec,
        o,
        x: x.address(),
    }
}

fuzz_target!(|data: &[u8]| {
    SETUP.with(|cell| {
        let mut cell = cell.borrow_mut();
        let s = cell.get_or_insert_with(setup);
        let mut peer =
            StateManager::new(s.spec.clone(), s.o.clone(), &s.code, Config::default(), 0).expect("setup");
        // Several frames: split the input at 0xFF 0x00 markers.
        for (i, frame) in data.split(|b| *b == 0xff).enumerate() {
            let _ = peer.handle_bytes(s.x, frame, (i as u64) * 500);
            peer.drain_effects().for_each(drop);
        }
        let state = peer.state().expect("state readable");
        if peer.tip() == 0 {
            assert_eq!(state_hash(&state), state_hash(&s.spec.genesis_state));
        }
        assert_eq!(state_hash(&state), peer.tip_state_hash());
    });
});
