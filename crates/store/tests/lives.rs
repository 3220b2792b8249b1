//! A channel core's records in the store: its life, its machine, its dispute view and its event
//! log come back as stored; stored bytes that do not decode are a typed `Corrupt` error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use entente_channel::{ChannelEvent, Life, Phase};
use entente_store::{MachineSource, Store, StoreError};
use entente_types::{Address, AgreementMode, B256, Bytes, ChannelProposal, Timing, U256};

fn life(id: u8) -> Life {
    let proposal = ChannelProposal {
        channel_id: B256::repeat_byte(id),
        chain_id: 31337,
        manager: Address::repeat_byte(9),
        participants: vec![Address::repeat_byte(1), Address::repeat_byte(2)],
        deposits: vec![U256::from(5u64); 2],
        state_machine: Address::repeat_byte(7),
        token: Address::ZERO,
        timing: Timing::default(),
        funding_period: 600,
        machine_gas_limit: 1_000_000,
        salt: B256::ZERO,
        genesis_state: Bytes::from(vec![1u8, 2, 3]),
        agreement_mode: AgreementMode::default(),
    };
    Life::new(proposal, true, Phase::Proposed)
}

#[test]
fn a_life_its_machine_its_court_view_and_its_events_come_back_as_stored() {
    let store = Store::in_memory().unwrap();
    let id = B256::repeat_byte(1);
    let machine = MachineSource::CreationCode(Bytes::from(vec![0x60, 0x00]));
    let mut batch = store.batch();
    batch
        .put_life(id, life(1).encode())
        .put_machine(id, &machine)
        .put_court(id, Bytes::from(vec![0xa0]));
    let events = [
        ChannelEvent::Live { genesis_timestamp: 7 },
        ChannelEvent::Cancelled { reason: "no".into() },
    ];
    for (seq, event) in events.iter().enumerate() {
        batch.put_event(id, seq as u64, event.encode().into());
    }
    batch.commit().unwrap();
    let stored = store.stored_channels().unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].persisted.life, life(1));
    assert_eq!(stored[0].machine, Some(machine));
    assert_eq!(stored[0].persisted.court, Some(Bytes::from(vec![0xa0])));
    assert!(
        stored[0].persisted.snapshot.is_none(),
        "not live: no protocol snapshot"
    );
    assert_eq!(store.event_count(&id).unwrap(), 2);
    let read: Vec<ChannelEvent> = store
        .events(&id, 1, 10)
        .unwrap()
        .into_iter()
        .map(|(_, bytes)| ChannelEvent::decode(&bytes).unwrap())
        .collect();
    assert_eq!(read, events[1..]);
    assert_eq!(store.event_count(&B256::repeat_byte(2)).unwrap(), 0);
}

#[test]
fn stored_bytes_that_do_not_decode_are_a_corrupt_store() {
    let store = Store::in_memory().unwrap();
    let mut batch = store.batch();
    batch.put_life(B256::repeat_byte(1), Bytes::from(vec![0xff, 0x00, 0x13]));
    batch.commit().unwrap();
    assert!(matches!(store.stored_channels(), Err(StoreError::Corrupt { .. })));

    // A dispute view with no life before it.
    let store = Store::in_memory().unwrap();
    let mut batch = store.batch();
    batch.put_court(B256::repeat_byte(3), Bytes::from(vec![0xa0]));
    batch.commit().unwrap();
    assert!(matches!(store.lives(), Err(StoreError::Corrupt { .. })));
}

#[test]
fn the_oldest_events_of_a_log_can_be_dropped_and_only_those() {
    let store = Store::in_memory().unwrap();
    let (id, other) = (B256::repeat_byte(1), B256::repeat_byte(2));
    let event = ChannelEvent::Live { genesis_timestamp: 7 };
    let mut batch = store.batch();
    for seq in 0..10u64 {
        batch.put_event(id, seq, event.encode().into());
        batch.put_event(other, seq, event.encode().into());
    }
    batch.commit().unwrap();
    let mut batch = store.batch();
    batch.prune_events(id, 7);
    batch.commit().unwrap();
    let seqs = |c: &B256| -> Vec<u64> {
        store
            .events(c, 0, 100)
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect()
    };
    assert_eq!(
        seqs(&id),
        vec![7, 8, 9],
        "a reader from 0 goes on from the oldest kept"
    );
    assert_eq!(seqs(&other).len(), 10, "another channel's log is untouched");
    assert_eq!(store.event_count(&id).unwrap(), 10, "numbering goes on");
}
