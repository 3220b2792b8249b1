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
    assert_eq!(stored[0].machine.as_deref(), Some(&machine));
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

/// Storage of an embedder's own: bytes that outlive the store, and a count of the syncs.
#[derive(Debug, Clone, Default)]
struct SharedBytes {
    bytes: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    syncs: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl entente_store::StorageBackend for SharedBytes {
    fn len(&self) -> Result<u64, std::io::Error> {
        Ok(self.bytes.lock().unwrap().len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        let bytes = self.bytes.lock().unwrap();
        let start = offset as usize;
        let slice = bytes
            .get(start..start + out.len())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "past the end"))?;
        out.copy_from_slice(slice);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.bytes.lock().unwrap().resize(len as usize, 0);
        Ok(())
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        self.syncs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        let mut bytes = self.bytes.lock().unwrap();
        let start = offset as usize;
        if bytes.len() < start + data.len() {
            bytes.resize(start + data.len(), 0);
        }
        bytes[start..start + data.len()].copy_from_slice(data);
        Ok(())
    }
}

#[test]
fn a_store_on_the_embedders_own_storage_syncs_through_it_and_opens_again() {
    let storage = SharedBytes::default();
    let id = B256::repeat_byte(3);
    {
        let store = Store::with_backend(storage.clone(), "shared").unwrap();
        let before = storage.syncs.load(std::sync::atomic::Ordering::Relaxed);
        let mut batch = store.batch();
        batch.put_life(id, life(3).encode());
        batch.commit().unwrap();
        assert!(
            storage.syncs.load(std::sync::atomic::Ordering::Relaxed) > before,
            "a commit syncs the embedder's storage"
        );
    }
    let store = Store::with_backend(storage.clone(), "shared").unwrap();
    let stored = store.stored_channels().unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].persisted.life, life(3));

    // Storage that holds something else is refused, and left as it was.
    let garbage = SharedBytes::default();
    garbage.bytes.lock().unwrap().extend_from_slice(&[0xAB; 4096]);
    let refused = Store::with_backend(garbage.clone(), "garbage");
    assert!(refused.is_err(), "garbage opened as a store");
    assert!(garbage.bytes.lock().unwrap().iter().all(|b| *b == 0xAB));
}

/// Many channels that run one machine share one copy of it in the store, and a record that
/// holds a machine in full (as stores did before the machines table) still loads.
#[test]
fn channels_that_run_one_machine_store_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let machine = MachineSource::ArtifactJson(entente_contracts::artifacts::ROUND_ROBIN_COUNTER.to_string());
    let before = {
        let store = Store::create(dir.path()).unwrap();
        let mut batch = store.batch();
        batch
            .put_life(B256::repeat_byte(1), life(1).encode())
            .put_machine(B256::repeat_byte(1), &machine);
        batch.commit().unwrap();
        drop(store);
        file_len(dir.path())
    };
    let store = Store::open(dir.path()).unwrap();
    for id in 2..=40u8 {
        let mut batch = store.batch();
        batch
            .put_life(B256::repeat_byte(id), life(id).encode())
            .put_machine(B256::repeat_byte(id), &machine);
        batch.commit().unwrap();
    }
    let stored = store.stored_channels().unwrap();
    assert_eq!(stored.len(), 40);
    for s in &stored {
        assert_eq!(s.machine.as_deref(), Some(&machine));
    }
    // One copy, shared: the same allocation for every channel.
    assert!(
        stored
            .windows(2)
            .all(|w| std::sync::Arc::ptr_eq(w[0].machine.as_ref().unwrap(), w[1].machine.as_ref().unwrap()))
    );
    drop(stored);
    drop(store);
    // 39 more channels cost far less than 39 copies of a 47 KB artifact.
    let grown = file_len(dir.path()).saturating_sub(before);
    assert!(
        grown < 39 * machine_len(&machine) / 4,
        "the store grew by {grown} bytes"
    );

    // A machine stored in full in the life record (the format before the machines table).
    {
        let db = redb::Database::open(dir.path().join(entente_store::DB_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<'_, &[u8], &[u8]> = redb::TableDefinition::new("channel_lives");
            let mut table = txn.open_table(def).unwrap();
            let mut key = [7u8; 33];
            key[32] = 2;
            let mut value = vec![1u8];
            ciborium::into_writer(
                &MachineSource::CreationCode(Bytes::from(vec![0x60, 0x01])),
                &mut value,
            )
            .unwrap();
            table.insert(key.as_slice(), value.as_slice()).unwrap();
            key[32] = 0;
            table.insert(key.as_slice(), life(7).encode().as_ref()).unwrap();
        }
        txn.commit().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let stored = store.stored_channels().unwrap();
    let old = stored
        .iter()
        .find(|s| s.channel_id == B256::repeat_byte(7))
        .unwrap();
    assert_eq!(
        old.machine.as_deref(),
        Some(&MachineSource::CreationCode(Bytes::from(vec![0x60, 0x01])))
    );
}

fn file_len(dir: &std::path::Path) -> u64 {
    std::fs::metadata(dir.join(entente_store::DB_FILE)).unwrap().len()
}

fn machine_len(machine: &MachineSource) -> u64 {
    match machine {
        MachineSource::ArtifactJson(json) => json.len() as u64,
        MachineSource::CreationCode(code) => code.len() as u64,
    }
}
