//! The channel core's lifecycle decisions, driven by hand: what it asks of the chain and what it
//! does with each outcome.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use alloy_primitives::U256;
use entente_channel::{CallOutcome, ChainCall, Channel, Effect, Phase, channel_id_of};
use entente_contracts::{TicTacToe, artifacts};
use entente_evm_runtime::{MachineCode, MachineInstance};
use entente_types::{
    Address, AgreementMode, B256, ChannelProposal, LocalSigner, Message, ProposalAnswer, Signer, Timing,
};

fn key(n: u8) -> LocalSigner {
    LocalSigner::from_bytes(&B256::repeat_byte(n)).unwrap()
}

fn proposal(x: &LocalSigner, o: &LocalSigner) -> (MachineCode, ChannelProposal) {
    let code = MachineCode::from_artifact_json(artifacts::TIC_TAC_TOE).unwrap();
    let genesis = MachineInstance::deploy(&code, 5_000_000)
        .unwrap()
        .view_decode(&TicTacToe::initialStateCall {
            x: x.address(),
            o: o.address(),
            stake: U256::from(5),
        })
        .unwrap();
    let mut p = ChannelProposal {
        channel_id: B256::ZERO,
        chain_id: 31337,
        manager: Address::repeat_byte(0x99),
        participants: vec![x.address(), o.address()],
        deposits: vec![U256::from(5); 2],
        state_machine: Address::repeat_byte(0x77),
        token: Address::ZERO,
        timing: Timing::default(),
        funding_period: 600,
        machine_gas_limit: 5_000_000,
        salt: B256::ZERO,
        genesis_state: genesis,
        agreement_mode: AgreementMode::ExplicitConfirmations,
    };
    p.channel_id = channel_id_of(&p);
    (code, p)
}

fn calls(channel: &mut Channel<LocalSigner>) -> Vec<ChainCall> {
    let mut out = Vec::new();
    while let Some(effect) = channel.poll_effect() {
        if let Effect::Call(call) = effect {
            out.push(call);
        }
    }
    out
}

/// The proposer once every invitee accepted: its `open` call.
fn accepted(x: &LocalSigner, o: &LocalSigner) -> (Channel<LocalSigner>, ChainCall) {
    let (code, p) = proposal(x, o);
    let id = p.channel_id;
    let mut channel = Channel::propose(x.clone(), p, code, 1_700_000_000);
    calls(&mut channel);
    channel.handle_message(
        o.address(),
        Message::ProposalAnswer(ProposalAnswer {
            channel_id: id,
            accepted: true,
            reason: String::new(),
        }),
        10,
    );
    let open = calls(&mut channel);
    assert!(matches!(open.as_slice(), [ChainCall::Open { .. }]), "{open:?}");
    (channel, open[0].clone())
}

#[test]
fn an_open_that_was_mined_is_never_given_up() {
    let (x, o) = (key(1), key(2));
    let (mut channel, open) = accepted(&x, &o);
    // The first attempt was mined, but its answer was lost; every retry then meets the channel
    // it opened. Its event is slow to come: the proposal must not be given up.
    let mut now = 100;
    channel.handle_call_outcome(&open, CallOutcome::NotSent("the answer was lost".into()), 0, now);
    for _ in 0..10 {
        now += 70_000;
        channel.handle_timeout(now);
        for call in calls(&mut channel) {
            assert!(matches!(call, ChainCall::Open { .. }), "{call:?}");
            channel.handle_call_outcome(&call, CallOutcome::Reverted("ChannelExists(0x..)".into()), 0, now);
        }
    }
    assert_eq!(
        channel.phase(),
        Phase::Funding,
        "{:?}",
        channel.life().cancel_reason
    );
    assert!(channel.life().open_mined);
    assert!(
        calls(&mut channel).is_empty(),
        "no more open once the manager says it exists"
    );
}

#[test]
fn an_open_the_manager_keeps_refusing_ends_the_proposal() {
    let (x, o) = (key(1), key(2));
    let (mut channel, open) = accepted(&x, &o);
    let mut now = 100;
    channel.handle_call_outcome(&open, CallOutcome::Reverted("InvalidSpec".into()), 0, now);
    for _ in 0..10 {
        now += 70_000;
        channel.handle_timeout(now);
        for call in calls(&mut channel) {
            channel.handle_call_outcome(&call, CallOutcome::Reverted("InvalidSpec".into()), 0, now);
        }
    }
    assert_eq!(channel.phase(), Phase::Cancelled);
    assert!(
        channel
            .life()
            .cancel_reason
            .as_deref()
            .unwrap_or_default()
            .contains("InvalidSpec")
    );
}

#[test]
fn a_decline_with_a_long_multibyte_reason_cancels_without_panicking() {
    let (x, o) = (key(1), key(2));
    let (code, p) = proposal(&x, &o);
    let id = p.channel_id;
    let mut channel = Channel::propose(x, p, code, 1_700_000_000);
    channel.handle_message(
        o.address(),
        Message::ProposalAnswer(ProposalAnswer {
            channel_id: id,
            accepted: false,
            reason: "é".repeat(10_000),
        }),
        10,
    );
    assert_eq!(channel.phase(), Phase::Cancelled);
}
