//! What stops a channel's signatures stops them across a restart too: a channel restored from its
//! store still signs nothing above a height bound by an approval it co-signed (docs/security.md,
//! O4), and nothing at all on a fork it asked to exit from (O3).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use alloy_primitives::U256;
use alloy_sol_types::SolCall;
use entente_channel::{Channel, Effect};
use entente_contracts::{RoundRobinCounter, artifacts};
use entente_evm_runtime::{MachineCode, MachineInstance};
use entente_state_manager::Config;
use entente_store::{MachineSource, Store};
use entente_types::{
    AgreementMode, B256, Bytes, ChannelSpec, Domain, LocalSigner, MembershipChange, Message, Signer, Timing,
};

const GENESIS: u64 = 1_700_000_000;

fn key(n: u8) -> LocalSigner {
    LocalSigner::from_bytes(&B256::repeat_byte(n)).unwrap()
}

/// What `from` sends, and its records committed to `store` first (the host's rule).
fn turn(from: &mut Channel<LocalSigner>, store: Option<&Store>, machine: &MachineSource) -> Vec<Message> {
    let me = from.state_manager().unwrap().me();
    let id = from.id();
    let mut batch = store.map(Store::batch);
    let mut out = Vec::new();
    while let Some(effect) = from.poll_effect() {
        match effect {
            Effect::Persist(record) => {
                if let Some(batch) = batch.as_mut() {
                    batch.record(id, me, machine, record);
                }
            }
            Effect::Broadcast(m) | Effect::Send { message: m, .. } => out.push(m),
            _ => {}
        }
    }
    if let Some(batch) = batch {
        batch.commit().unwrap();
    }
    out
}

/// Signatures `messages` carry at `height` (a transaction's or a confirmation's).
fn signs_at(messages: &[Message], height: u64) -> bool {
    messages.iter().any(|m| match m {
        Message::Transaction(st) => st.transaction.height == height,
        Message::Confirmation(c) => c.height == height,
        _ => false,
    })
}

/// X (writer of height 1) and O in a round-robin counter channel, height 1 final on both sides,
/// O to write next; X's records are in `store`.
struct Fixture {
    x: LocalSigner,
    o: LocalSigner,
    code: MachineCode,
    machine: MachineSource,
    store: Store,
    cx: Channel<LocalSigner>,
    co: Channel<LocalSigner>,
}

fn add() -> Bytes {
    Bytes::from(RoundRobinCounter::addCall { step: 1 }.abi_encode())
}

fn after_first_move() -> Fixture {
    let (x, o) = (key(1), key(2));
    let code = MachineCode::from_artifact_json(artifacts::ROUND_ROBIN_COUNTER).unwrap();
    let machine = MachineSource::ArtifactJson(artifacts::ROUND_ROBIN_COUNTER.to_string());
    let genesis: Bytes = MachineInstance::deploy(&code, 5_000_000)
        .unwrap()
        .view_decode(&RoundRobinCounter::initialStateCall {
            participants: vec![x.address(), o.address()],
            deposits: vec![U256::from(5); 2],
            target: 100,
        })
        .unwrap();
    let spec = ChannelSpec {
        channel_id: B256::repeat_byte(0x42),
        domain: Domain::new(31337, entente_types::Address::repeat_byte(0x99)),
        participants: vec![x.address(), o.address()],
        state_machine: entente_types::Address::repeat_byte(0x77),
        timing: Timing::default(),
        agreement_mode: AgreementMode::ExplicitConfirmations,
        genesis_state: genesis,
        genesis_timestamp: GENESIS,
    };
    let store = Store::in_memory().unwrap();
    let mut cx = Channel::live(x.clone(), spec.clone(), code.clone(), Config::default(), true, 0).unwrap();
    let mut co = Channel::live(o.clone(), spec, code.clone(), Config::default(), true, 0).unwrap();
    cx.submit(add(), 1_000).unwrap();
    loop {
        let (to_o, to_x) = (
            turn(&mut cx, Some(&store), &machine),
            turn(&mut co, None, &machine),
        );
        if to_o.is_empty() && to_x.is_empty() {
            break;
        }
        for m in to_o {
            co.handle_message(x.address(), m, 1_000);
        }
        for m in to_x {
            cx.handle_message(o.address(), m, 1_000);
        }
    }
    assert_eq!(cx.state_manager().unwrap().finalized_height(), 1);
    Fixture {
        x,
        o,
        code,
        machine,
        store,
        cx,
        co,
    }
}

/// X crashed: O writes height 2, X is restored from its store at local 3 s and handed O's move.
/// Returns the restored X and what it sent.
fn restart_and_receive_height_2(f: Fixture) -> (Channel<LocalSigner>, Vec<Message>) {
    let Fixture {
        x,
        o,
        code,
        machine,
        store,
        cx,
        mut co,
    } = f;
    drop(cx);
    let now = 3_000;
    co.submit(add(), now).unwrap();
    let move2 = turn(&mut co, None, &machine);
    assert!(signs_at(&move2, 2), "O wrote height 2");
    let stored = store.stored_channels().unwrap();
    assert_eq!(stored.len(), 1);
    let persisted = stored.into_iter().next().unwrap().persisted;
    let mut rx = Channel::restore(x, code, persisted, GENESIS + 3, now).unwrap();
    for m in move2 {
        rx.handle_message(o.address(), m, now);
    }
    rx.handle_timeout(now + 500);
    let sent = turn(&mut rx, Some(&store), &machine);
    (rx, sent)
}

#[test]
fn a_co_signed_approval_holds_our_signatures_back_after_a_restart() {
    let mut f = after_first_move();
    // X proposes its own leave of the state at height 1 and co-signs it: it holds its signatures
    // at height 1 until the approval's deadline. Its records go to the store; then it crashes,
    // and O does not sign the approval.
    f.cx.propose_change(
        MembershipChange::Leave {
            participant: f.x.address(),
        },
        2_000,
    )
    .unwrap();
    assert_eq!(f.cx.state_manager().unwrap().signing_held_at(), Some(1));
    let approval = turn(&mut f.cx, Some(&f.store), &f.machine);
    assert!(approval.iter().any(|m| matches!(m, Message::Approval(_))));
    let (rx, sent) = restart_and_receive_height_2(f);
    assert_eq!(
        rx.state_manager().unwrap().signing_held_at(),
        Some(1),
        "the co-signed approval holds X's signatures after the restart"
    );
    assert!(
        !signs_at(&sent, 2),
        "X signed above the approved height while its approval could still land: {sent:?}"
    );
}

#[test]
fn an_exit_keeps_signing_stopped_after_a_restart() {
    let mut f = after_first_move();
    // X asks to exit through the chain: it signs nothing more on this fork. Its records go to
    // the store; then it crashes.
    f.cx.exit(2_000).unwrap();
    assert!(f.cx.state_manager().unwrap().signing_stopped());
    let _ = turn(&mut f.cx, Some(&f.store), &f.machine);
    let (rx, sent) = restart_and_receive_height_2(f);
    assert!(
        rx.state_manager().unwrap().signing_stopped(),
        "signing stays stopped on the fork X exits from"
    );
    assert!(!signs_at(&sent, 2), "X confirmed after asking to exit: {sent:?}");
}
