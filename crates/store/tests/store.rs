//! The store on real files: every record kind round-trips, batches are atomic, a reopened store
//! sees everything committed, the own-signature log refuses a second digest, and a bad data
//! directory gives its own error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests

use std::collections::BTreeMap;

use entente_state_manager::{ForkInfo, PersistRecord};
use entente_store::{
    Batch, ChainCursor, ChannelRecord, ChannelStatus, DB_FILE, MachineSource, OpenMode, SCHEMA_VERSION,
    Store, StoreError,
};
use entente_types::{
    Address, AgreementMode, B256, Bytes, ChannelSpec, Domain, LocalSigner, Signer, Timing, Transaction,
    state_hash,
};

fn key(n: u8) -> LocalSigner {
    LocalSigner::from_bytes(&B256::repeat_byte(n)).unwrap()
}

fn spec(channel: u8) -> ChannelSpec {
    ChannelSpec {
        channel_id: B256::repeat_byte(channel),
        domain: Domain::new(31337, Address::repeat_byte(0x99)),
        participants: vec![key(1).address(), key(2).address()],
        state_machine: Address::repeat_byte(0x55),
        timing: Timing::default(),
        agreement_mode: AgreementMode::VirtualVotingOnly,
        genesis_state: Bytes::from_static(b"genesis"),
        genesis_timestamp: 1_700_000_000,
    }
}

fn channel(channel: u8) -> ChannelRecord {
    ChannelRecord {
        spec: spec(channel),
        me: key(1).address(),
        machine: MachineSource::CreationCode(Bytes::from_static(&[0x60, 0x80])),
        status: ChannelStatus::Open,
    }
}

/// A signed transaction record at `fork`/`height` of channel `ch`, issued by key `issuer`.
fn tx_record(ch: u8, fork: u64, height: u64, issuer: u8, salt: u8) -> (PersistRecord, B256) {
    let state = Bytes::from(vec![salt; 8 + height as usize]);
    let signer = key(issuer);
    let transaction = Transaction {
        channelId: B256::repeat_byte(ch),
        forkCnt: fork,
        height,
        participant: signer.address(),
        timestamp: 1_700_000_000 + height,
        prevStateHash: B256::repeat_byte(salt),
        stateHash: state_hash(&state),
        data: Bytes::from(vec![salt]),
    };
    let digest = spec(ch).domain.digest(&transaction);
    let signature = signer.sign_digest(&digest);
    (
        PersistRecord::Transaction {
            transaction,
            digest,
            signature: Some(signature),
            state,
        },
        digest,
    )
}

fn confirmation(fork: u64, height: u64, digest: B256, by: u8) -> PersistRecord {
    let signer = key(by);
    PersistRecord::Signature {
        fork,
        height,
        digest,
        signer: signer.address(),
        signature: signer.sign_digest(&digest),
    }
}

fn commit(mut f: impl FnMut(&mut Batch<'_>), store: &Store) -> Result<(), StoreError> {
    let mut batch = store.batch();
    f(&mut batch);
    batch.commit()
}

#[test]
fn every_record_kind_round_trips_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let ch = B256::repeat_byte(7);
    let (tx1, d1) = tx_record(7, 0, 1, 1, 0xa1);
    let (tx2, d2) = tx_record(7, 0, 2, 2, 0xa2);
    let fork1 = ForkInfo {
        fork: 1,
        genesis_height: 2,
        genesis_timestamp: 1_700_000_100,
        genesis_state_hash: B256::ZERO, // recomputed by the store
        participants: vec![key(2).address()],
    };
    let cursor = ChainCursor {
        block_number: 42,
        block_hash: B256::repeat_byte(0x42),
        block_timestamp: 1_700_000_420,
    };
    let manager = Address::repeat_byte(0x99);
    {
        let store = Store::create(&data).unwrap();
        commit(
            |b| {
                b.put_channel(channel(7))
                    .persist(ch, tx1.clone())
                    .persist(
                        ch,
                        PersistRecord::OwnSignature {
                            fork: 0,
                            height: 1,
                            digest: d1,
                        },
                    )
                    .persist(ch, confirmation(0, 1, d1, 2))
                    .persist(ch, tx2.clone())
                    .persist(ch, confirmation(0, 2, d2, 1))
                    .persist(
                        ch,
                        PersistRecord::OwnSignature {
                            fork: 0,
                            height: 2,
                            digest: d2,
                        },
                    )
                    .persist(ch, PersistRecord::Finalized { fork: 0, height: 2 })
                    .persist(ch, PersistRecord::Finalized { fork: 0, height: 1 }) // never goes back
                    .put_fork(ch, fork1.clone(), Bytes::from_static(b"fork one"))
                    .put_cursor(31337, manager, cursor);
            },
            &store,
        )
        .unwrap();
        commit(|b| _ = b.set_status(ch, ChannelStatus::Closing), &store).unwrap();
    }
    let store = Store::open(&data).unwrap();
    assert_eq!(store.path(), data.join(DB_FILE));

    let mut expected = channel(7);
    expected.status = ChannelStatus::Closing;
    assert_eq!(store.channel(&ch).unwrap(), Some(expected.clone()));
    assert_eq!(store.channels().unwrap(), vec![expected]);
    assert_eq!(store.channel(&B256::repeat_byte(8)).unwrap(), None);

    let forks = store.forks(&ch).unwrap();
    assert_eq!(forks.len(), 2);
    assert_eq!(forks[0].0.fork, 0);
    assert_eq!(forks[0].0.genesis_state_hash, state_hash(b"genesis"));
    assert_eq!(forks[0].1, Bytes::from_static(b"genesis"));
    assert_eq!(
        forks[1].0,
        ForkInfo {
            genesis_state_hash: state_hash(b"fork one"),
            ..fork1
        }
    );

    let txs = store.transactions(&ch, 0).unwrap();
    assert_eq!(txs.len(), 2);
    for (st, record) in txs.iter().zip([&tx1, &tx2]) {
        let PersistRecord::Transaction {
            transaction,
            digest,
            signature,
            state,
        } = record
        else {
            unreachable!()
        };
        assert_eq!(&st.transaction, transaction);
        assert_eq!(&st.digest, digest);
        assert_eq!(&st.signature, signature);
        assert_eq!(&st.state, state);
        assert_eq!(st.confirmations.len(), 2, "issuer's and the confirmer's");
    }
    let sigs = store.signatures(&ch, 0, 1).unwrap();
    assert_eq!(sigs.len(), 2);
    assert!(sigs.iter().all(|(_, d, _)| *d == d1));

    assert_eq!(store.own_signature(&ch, 0, 1).unwrap(), Some(d1));
    assert_eq!(store.own_signature(&ch, 0, 3).unwrap(), None);
    assert_eq!(
        store.own_signatures(&ch, 0).unwrap(),
        BTreeMap::from([((0, 1), d1), ((0, 2), d2)])
    );
    assert_eq!(store.finalized_height(&ch, 0).unwrap(), Some(2));
    assert_eq!(store.finalized_height(&ch, 1).unwrap(), None);
    assert_eq!(store.cursor(31337, &manager).unwrap(), Some(cursor));
    assert_eq!(store.cursor(1, &manager).unwrap(), None);

    // The snapshot is of the latest fork (fork 1: nothing applied on it yet).
    let snapshot = store.snapshot(&ch).unwrap();
    assert_eq!(snapshot.fork.fork, 1);
    assert_eq!(snapshot.genesis_state, Bytes::from_static(b"fork one"));
    assert!(snapshot.transactions.is_empty());
    assert_eq!(snapshot.finalized_height, 2, "a fork's genesis is final");
    assert!(matches!(
        store.snapshot(&B256::repeat_byte(8)),
        Err(StoreError::UnknownChannel(_))
    ));
}

#[test]
fn channels_and_forks_scan_in_order_without_leaking_into_neighbours() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    for c in [9u8, 3, 6] {
        let ch = B256::repeat_byte(c);
        commit(
            |b| {
                b.put_channel(channel(c));
                for h in (1..=20).rev() {
                    b.persist(ch, tx_record(c, 0, h, 1 + (h % 2) as u8, c).0);
                }
            },
            &store,
        )
        .unwrap();
    }
    let ids: Vec<u8> = store
        .channels()
        .unwrap()
        .iter()
        .map(|c| c.spec.channel_id[0])
        .collect();
    assert_eq!(ids, vec![3, 6, 9]);
    let heights: Vec<u64> = store
        .transactions(&B256::repeat_byte(6), 0)
        .unwrap()
        .iter()
        .map(|t| t.transaction.height)
        .collect();
    assert_eq!(heights, (1..=20).collect::<Vec<_>>());
    assert!(store.transactions(&B256::repeat_byte(6), 1).unwrap().is_empty());
}

#[test]
fn a_failed_batch_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    let ch = B256::repeat_byte(7);
    let (tx1, d1) = tx_record(7, 0, 1, 1, 1);
    commit(|b| _ = b.put_channel(channel(7)), &store).unwrap();
    // The status of an unknown channel fails the batch: the transaction before it is not kept.
    let err = commit(
        |b| {
            b.persist(ch, tx1.clone())
                .persist(
                    ch,
                    PersistRecord::OwnSignature {
                        fork: 0,
                        height: 1,
                        digest: d1,
                    },
                )
                .set_status(B256::repeat_byte(8), ChannelStatus::Closed);
        },
        &store,
    )
    .unwrap_err();
    assert!(matches!(err, StoreError::UnknownChannel(_)), "{err}");
    assert!(store.transactions(&ch, 0).unwrap().is_empty());
    assert_eq!(store.own_signature(&ch, 0, 1).unwrap(), None);
    // A transaction filed under another channel fails too.
    let err = commit(|b| _ = b.persist(B256::repeat_byte(8), tx1.clone()), &store).unwrap_err();
    assert!(matches!(err, StoreError::ChannelMismatch { .. }), "{err}");
    // An empty batch is fine and writes nothing.
    let batch = store.batch();
    assert!(batch.is_empty());
    batch.commit().unwrap();
}

#[test]
fn the_own_signature_log_refuses_a_second_digest_and_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let ch = B256::repeat_byte(7);
    let (tx1, d1) = tx_record(7, 0, 1, 1, 1);
    let (_, other) = tx_record(7, 0, 1, 1, 2);
    {
        let store = Store::create(dir.path()).unwrap();
        commit(
            |b| {
                b.put_channel(channel(7))
                    .persist(
                        ch,
                        PersistRecord::OwnSignature {
                            fork: 0,
                            height: 1,
                            digest: d1,
                        },
                    )
                    .persist(ch, tx1.clone());
            },
            &store,
        )
        .unwrap();
    }
    // After a restart, the log still refuses.
    let store = Store::open(dir.path()).unwrap();
    let (tx2, d2) = tx_record(7, 0, 2, 2, 3);
    let err = commit(
        |b| {
            b.persist(ch, tx2.clone())
                .persist(
                    ch,
                    PersistRecord::OwnSignature {
                        fork: 0,
                        height: 2,
                        digest: d2,
                    },
                )
                .persist(
                    ch,
                    PersistRecord::OwnSignature {
                        fork: 0,
                        height: 1,
                        digest: other,
                    },
                );
        },
        &store,
    )
    .unwrap_err();
    match err {
        StoreError::DoubleSign {
            channel,
            fork,
            height,
            recorded,
            attempted,
        } => {
            assert_eq!(
                (channel, fork, height, recorded, attempted),
                (ch, 0, 1, d1, other)
            );
        }
        other => panic!("expected DoubleSign, got {other}"),
    }
    assert_eq!(store.own_signature(&ch, 0, 1).unwrap(), Some(d1));
    assert_eq!(
        store.own_signature(&ch, 0, 2).unwrap(),
        None,
        "nothing of the batch"
    );
    assert_eq!(store.transactions(&ch, 0).unwrap().len(), 1);
    // Two different digests inside one batch are refused as well.
    let (_, d2b) = tx_record(7, 0, 2, 2, 4);
    let err = commit(
        |b| {
            b.persist(
                ch,
                PersistRecord::OwnSignature {
                    fork: 0,
                    height: 2,
                    digest: d2,
                },
            )
            .persist(
                ch,
                PersistRecord::OwnSignature {
                    fork: 0,
                    height: 2,
                    digest: d2b,
                },
            );
        },
        &store,
    )
    .unwrap_err();
    assert!(matches!(err, StoreError::DoubleSign { .. }), "{err}");
    assert_eq!(store.own_signature(&ch, 0, 2).unwrap(), None);
    // The same digest again is idempotent; another fork or channel is another slot.
    commit(
        |b| {
            b.persist(
                ch,
                PersistRecord::OwnSignature {
                    fork: 0,
                    height: 1,
                    digest: d1,
                },
            )
            .persist(
                ch,
                PersistRecord::OwnSignature {
                    fork: 1,
                    height: 1,
                    digest: other,
                },
            )
            .persist(
                B256::repeat_byte(8),
                PersistRecord::OwnSignature {
                    fork: 0,
                    height: 1,
                    digest: other,
                },
            );
        },
        &store,
    )
    .unwrap();
}

#[test]
fn a_different_transaction_at_a_stored_height_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    let ch = B256::repeat_byte(7);
    let (tx1, _) = tx_record(7, 0, 1, 1, 1);
    let (tx1b, _) = tx_record(7, 0, 1, 1, 2);
    commit(|b| _ = b.put_channel(channel(7)).persist(ch, tx1.clone()), &store).unwrap();
    commit(|b| _ = b.persist(ch, tx1.clone()), &store).unwrap(); // idempotent
    let err = commit(|b| _ = b.persist(ch, tx1b.clone()), &store).unwrap_err();
    assert!(
        matches!(err, StoreError::TransactionConflict { height: 1, .. }),
        "{err}"
    );
}

#[test]
fn opening_reports_a_missing_dir_a_missing_database_and_an_existing_store() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = Store::open(&missing).unwrap_err();
    assert!(matches!(err, StoreError::MissingDir { .. }), "{err}");
    assert!(err.to_string().contains(&*missing.to_string_lossy()), "{err}");
    assert!(!missing.exists(), "opening must not create anything");

    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::MissingDatabase { .. }), "{err}");
    assert!(err.to_string().contains(DB_FILE), "{err}");

    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let err = Store::open(&file).unwrap_err();
    assert!(matches!(err, StoreError::NotADirectory { .. }), "{err}");

    let nested = dir.path().join("a/b/c");
    drop(Store::create(&nested).unwrap());
    let err = Store::create(&nested).unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err}");
    drop(Store::open_with(&nested, OpenMode::OpenOrCreate).unwrap());
    drop(Store::open_with(dir.path().join("fresh"), OpenMode::OpenOrCreate).unwrap());
}

#[test]
fn a_garbage_or_truncated_file_is_corrupt_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    let garbage: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, &garbage).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), garbage, "nothing lost");
    // Creating over it is refused too.
    assert!(matches!(
        Store::create(dir.path()),
        Err(StoreError::AlreadyExists { .. })
    ));

    // A real store cut short.
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::create(dir.path()).unwrap();
        commit(|b| _ = b.put_channel(channel(7)), &store).unwrap();
    }
    let path = dir.path().join(DB_FILE);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len().min(100)]).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
}

#[test]
fn another_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::create(dir.path()).unwrap();
        store.force_schema_version(SCHEMA_VERSION + 1).unwrap();
    }
    let err = Store::open(dir.path()).unwrap_err();
    match &err {
        StoreError::SchemaVersion { found, expected, .. } => {
            assert_eq!((*found, *expected), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("expected SchemaVersion, got {other}"),
    }
    assert!(err.to_string().contains(DB_FILE), "{err}");
}

#[test]
fn a_store_open_elsewhere_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    assert!(err.to_string().contains(DB_FILE), "{err}");
    drop(store);
    Store::open(dir.path()).unwrap();
}

#[test]
fn machine_sources_load() {
    let source = MachineSource::ArtifactJson(entente_contracts::artifacts::TIC_TAC_TOE.to_string());
    assert!(source.load().is_ok());
    let source = MachineSource::ArtifactJson("{}".into());
    assert!(source.load().is_err());
}

#[test]
fn a_record_that_does_not_decode_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let ch = B256::repeat_byte(7);
    {
        let store = Store::create(dir.path()).unwrap();
        commit(|b| _ = b.put_channel(channel(7)), &store).unwrap();
        // In the database, not only in the journal (whose replay would write it again).
        store.apply_journaled().unwrap();
    }
    // Damage the channel record behind the store's back (a valid database, a bad value).
    {
        let db = redb::Database::open(dir.path().join(DB_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<'_, &[u8], &[u8]> = redb::TableDefinition::new("channels");
            let mut table = txn.open_table(def).unwrap();
            table.insert(ch.as_slice(), [1u8, 0xff, 0x00].as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let err = store.channel(&ch).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    let err = store.snapshot(&ch).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
}

/// The database and its journal belong together: a data directory whose journal is gone or
/// emptied is refused (acknowledged writes may live only there), and opens again once the
/// journal is back.
#[test]
fn a_store_without_its_journal_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::create(dir.path()).unwrap();
        commit(|b| _ = b.put_channel(channel(7)), &store).unwrap();
    }
    let journal = dir.path().join(entente_store::JOURNAL_FILE);
    let kept = std::fs::read(&journal).unwrap();
    std::fs::remove_file(&journal).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::MissingJournal { .. }), "{err:?}");
    assert!(!journal.exists(), "a refused open creates nothing");
    std::fs::write(&journal, b"").unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::MissingJournal { .. }), "{err:?}");
    // Nor is its database alone, as storage of the embedder's own.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.path().join(DB_FILE))
        .unwrap();
    let err = Store::with_backend(redb::backends::FileBackend::new(file).unwrap(), "db").unwrap_err();
    assert!(matches!(err, StoreError::MissingJournal { .. }), "{err:?}");
    std::fs::write(&journal, &kept).unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert!(store.channel(&B256::repeat_byte(7)).unwrap().is_some());
}

/// The database takes the journal's writes later, in groups: every check of a batch sees the
/// writes still waiting (a channel's status, a transaction at its height, an own signature, a
/// finalized height that only rises), and a clean close with part of the journal's round in
/// the database and the rest in the journal only loses nothing.
#[test]
fn checks_see_the_writes_the_database_has_not_taken_and_a_close_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let ch = B256::repeat_byte(7);
    let (tx, d1) = tx_record(7, 0, 1, 1, 1);
    let (other_tx, other) = tx_record(7, 0, 1, 1, 9);
    let own = |digest| PersistRecord::OwnSignature {
        fork: 0,
        height: 1,
        digest,
    };
    let finalized = |height| PersistRecord::Finalized { fork: 0, height };
    let refused = |store: &Store| {
        let e = commit(|b| _ = b.persist(ch, other_tx.clone()), store).unwrap_err();
        assert!(matches!(e, StoreError::TransactionConflict { .. }), "{e}");
        let e = commit(|b| _ = b.persist(ch, own(other)), store).unwrap_err();
        assert!(matches!(e, StoreError::DoubleSign { .. }), "{e}");
    };
    {
        let store = Store::create(dir.path()).unwrap();
        commit(|b| _ = b.put_channel(channel(7)), &store).unwrap();
        // The channel is in the journal only: setting its status finds it there.
        commit(|b| _ = b.set_status(ch, ChannelStatus::Closing), &store).unwrap();
        store.apply_journaled().unwrap();
        commit(
            |b| {
                b.persist(ch, tx.clone())
                    .persist(ch, own(d1))
                    .persist(ch, finalized(1));
            },
            &store,
        )
        .unwrap();
        refused(&store);
        commit(|b| _ = b.persist(ch, finalized(0)), &store).unwrap();
        // Closed with frames 1 and 2 in the database, 3 and 4 in the journal only.
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.channel(&ch).unwrap().unwrap().status,
        ChannelStatus::Closing
    );
    assert_eq!(store.own_signature(&ch, 0, 1).unwrap(), Some(d1));
    assert_eq!(store.transactions(&ch, 0).unwrap().len(), 1);
    assert_eq!(store.finalized_height(&ch, 0).unwrap(), Some(1));
    refused(&store);
}
