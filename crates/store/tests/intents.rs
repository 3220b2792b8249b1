//! Own intents across a restart: a payer of a payment channel (a machine where anyone may write)
//! signs intents, its host persists the manager's records in a real store on disk, and the
//! process dies. Restored from the store, the manager keeps every nonce it signed taken while its
//! intent may still apply (no second intent at a nonce), has its intents under way again (sent
//! once more), still takes a left-out one to the court from its first sending time, and forgets
//! the ones that expired.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests

use alloy_primitives::U256;
use alloy_sol_types::SolCall;
use entente_contracts::{Payments, artifacts};
use entente_evm_runtime::{MachineCode, MachineInstance};
use entente_state_manager::{Config, Effect, Event, StateManager, SubmitError};
use entente_store::{ChannelRecord, ChannelStatus, MachineSource, Store};
use entente_types::{
    Address, AgreementMode, B256, Bytes, ChannelSpec, Domain, LocalSigner, Message, Signer, Timing,
};

const GENESIS_TS: u64 = 1_700_000_000;

fn pay(to: Address, amount: u64) -> Bytes {
    Payments::payCall {
        to,
        amount: U256::from(amount),
    }
    .abi_encode()
    .into()
}

/// Persists every `Persist` effect in one batch (as the node does before anything leaves) and
/// returns the other effects.
fn flush(manager: &mut StateManager<LocalSigner>, store: &Store, spec: &ChannelSpec) -> Vec<Effect> {
    let mut batch = store.batch();
    let mut rest = Vec::new();
    while let Some(effect) = manager.poll_effect() {
        match effect {
            Effect::Persist(record) => {
                batch.persist(spec.channel_id, record);
            }
            other => rest.push(other),
        }
    }
    batch.commit().unwrap();
    rest
}

#[test]
fn a_restarted_payer_keeps_its_intents_and_their_nonces() {
    let keys: Vec<LocalSigner> = (1..=3u8)
        .map(|i| LocalSigner::from_bytes(&B256::repeat_byte(i)).unwrap())
        .collect();
    let who: Vec<Address> = keys.iter().map(Signer::address).collect();
    let code = MachineCode::from_artifact_json(artifacts::PAYMENTS).unwrap();
    let genesis: Bytes = MachineInstance::deploy(&code, 5_000_000)
        .unwrap()
        .view_decode(&Payments::initialStateCall {
            participants: who.clone(),
            deposits: vec![U256::from(100); 3],
        })
        .unwrap();
    let spec = ChannelSpec {
        channel_id: B256::repeat_byte(0xc5),
        domain: Domain::new(31337, Address::repeat_byte(0x99)),
        participants: who.clone(),
        state_machine: Address::repeat_byte(0x77),
        timing: Timing::default(),
        agreement_mode: AgreementMode::ExplicitConfirmations,
        genesis_state: genesis,
        genesis_timestamp: GENESIS_TS,
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let store = Store::create(&path).unwrap();
    let mut batch = store.batch();
    batch.put_channel(ChannelRecord {
        spec: spec.clone(),
        me: who[0],
        machine: MachineSource::ArtifactJson(artifacts::PAYMENTS.to_string()),
        status: ChannelStatus::Open,
    });
    batch.commit().unwrap();

    // Peer 0 pays twice (height 1's sequencer is peer 1, which never answers).
    let mut payer = StateManager::new(spec.clone(), keys[0].clone(), &code, Config::default(), 0).unwrap();
    payer.observe_block(GENESIS_TS, 0);
    payer.submit(pay(who[2], 4), 1_000).unwrap();
    payer.submit(pay(who[1], 5), 2_000).unwrap();
    let sent: Vec<Effect> = flush(&mut payer, &store, &spec);
    assert_eq!(
        sent.iter()
            .filter(|e| matches!(e, Effect::Broadcast(Message::Intent(_))))
            .count(),
        2
    );
    drop(payer);
    drop(store);

    // The process dies; a new one opens the store and restores the channel.
    let store = Store::open(&path).unwrap();
    let snapshot = store.snapshot(&spec.channel_id).unwrap();
    assert_eq!(snapshot.own_intents.len(), 2, "both intents kept");
    let mut payer =
        StateManager::restore(snapshot, keys[0].clone(), &code, Config::default(), 5_000).unwrap();
    payer.observe_block(GENESIS_TS + 5, 5_000);
    let pending: Vec<u64> = payer.pending_intents().map(|i| i.nonce).collect();
    assert_eq!(pending, [0, 1], "under way again");
    let again = flush(&mut payer, &store, &spec);
    assert_eq!(
        again
            .iter()
            .filter(|e| matches!(e, Effect::Broadcast(Message::Intent(_))))
            .count(),
        2,
        "sent once more"
    );
    // The next payment takes nonce 2: nonces 0 and 1 stay taken.
    payer.submit(pay(who[2], 1), 6_000).unwrap();
    let nonces: Vec<u64> = payer.pending_intents().map(|i| i.nonce).collect();
    assert_eq!(nonces, [0, 1, 2]);
    flush(&mut payer, &store, &spec);
    // Left out for p2pTime since it was first sent (before the restart): it goes to the court.
    let left = payer
        .left_out_intent(1_000 + 1_000 * spec.timing.p2p_time)
        .unwrap();
    assert_eq!(left.nonce, 0);

    // Once they expire they are reported, forgotten by the store, and the nonces come free.
    let late_ms =
        1_000 * (spec.timing.p2p_time + spec.timing.agreement_time + spec.timing.chain_fallback_time + 60);
    payer.observe_block(GENESIS_TS + late_ms / 1000, late_ms);
    payer.handle_timeout(late_ms);
    let effects = flush(&mut payer, &store, &spec);
    let dropped = effects
        .iter()
        .filter(|e| matches!(e, Effect::Notify(Event::IntentDropped { .. })))
        .count();
    assert_eq!(dropped, 3);
    assert!(store.snapshot(&spec.channel_id).unwrap().own_intents.is_empty());
    match payer.submit(pay(who[2], 1), late_ms + 1) {
        Ok(_) => {}
        Err(SubmitError::IntentUnderWay { .. }) => panic!("an expired nonce stays taken"),
        Err(e) => panic!("{e}"),
    }
    assert_eq!(payer.pending_intents().next().map(|i| i.nonce), Some(0));
}
