//! Records per second made durable: one durable commit per record against grouped commits of 16
//! and 64 records (one redb write transaction, one fsync each). The records are what a peer
//! persists per transition: the transaction with its state, a confirmation and an own signature.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)] // bench harness

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use entente_state_manager::PersistRecord;
use entente_store::{ChannelRecord, ChannelStatus, MachineSource, Store};
use entente_types::{
    Address, AgreementMode, B256, Bytes, ChannelSpec, Domain, LocalSigner, Signer, Timing, Transaction,
    state_hash,
};

/// Records committed per measured iteration (a multiple of every group size).
const RECORDS: u64 = 64;

struct Fixture {
    store: Store,
    channel: B256,
    signer: LocalSigner,
    domain: Domain,
    next_height: u64,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        // On the real disk (not a tmpfs) so that fsync costs what it costs.
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let store = Store::create(dir.path()).unwrap();
        let signer = LocalSigner::from_bytes(&B256::repeat_byte(1)).unwrap();
        let domain = Domain::new(31337, Address::repeat_byte(0x99));
        let channel = B256::repeat_byte(0xc1);
        let spec = ChannelSpec {
            channel_id: channel,
            domain: domain.clone(),
            participants: vec![signer.address()],
            state_machine: Address::ZERO,
            timing: Timing::default(),
            agreement_mode: AgreementMode::ExplicitConfirmations,
            genesis_state: Bytes::from(vec![0u8; 320]),
            genesis_timestamp: 1_700_000_000,
        };
        let mut batch = store.batch();
        batch.put_channel(ChannelRecord {
            spec,
            me: signer.address(),
            machine: MachineSource::CreationCode(Bytes::from_static(&[0x60, 0x80])),
            status: ChannelStatus::Open,
        });
        batch.commit().unwrap();
        Self {
            store,
            channel,
            signer,
            domain,
            next_height: 1,
            _dir: dir,
        }
    }
}

struct Generator {
    signer: LocalSigner,
    domain: Domain,
    channel: B256,
    next_height: u64,
}

impl Generator {
    /// The records of the next transition: transaction (320-byte state), own signature and a
    /// confirmation, cycling so that every record is a distinct write.
    fn records(&mut self, count: u64) -> Vec<PersistRecord> {
        let mut out = Vec::with_capacity(count as usize);
        while (out.len() as u64) < count {
            let height = self.next_height;
            self.next_height += 1;
            let state = Bytes::from(vec![(height % 251) as u8; 320]);
            let transaction = Transaction {
                channelId: self.channel,
                forkCnt: 0,
                height,
                participant: self.signer.address(),
                timestamp: 1_700_000_000 + height,
                prevStateHash: B256::ZERO,
                stateHash: state_hash(&state),
                data: Bytes::from(vec![1u8; 36]),
            };
            let digest = self.domain.digest(&transaction);
            let signature = self.signer.sign_digest(&digest);
            out.push(PersistRecord::OwnSignature {
                fork: 0,
                height,
                digest,
            });
            out.push(PersistRecord::Transaction {
                transaction,
                digest,
                signature: Some(signature),
                state,
            });
            out.push(PersistRecord::Signature {
                fork: 0,
                height,
                digest,
                signer: Address::repeat_byte(2),
                signature,
            });
        }
        out.truncate(count as usize);
        out
    }
}

fn durable_commits(c: &mut Criterion) {
    let mut group = c.benchmark_group("durable_commit");
    group.sample_size(10);
    group.throughput(Throughput::Elements(RECORDS));
    for per_commit in [1u64, 16, 64] {
        let mut fx = Fixture::new();
        let mut generator = Generator {
            signer: fx.signer.clone(),
            domain: fx.domain.clone(),
            channel: fx.channel,
            next_height: fx.next_height,
        };
        let fx = &mut fx;
        group.bench_with_input(
            BenchmarkId::new("records_per_commit", per_commit),
            &per_commit,
            |b, &n| {
                b.iter_batched(
                    || generator.records(RECORDS),
                    |records| {
                        let mut records = records.into_iter();
                        for _ in 0..RECORDS / n {
                            let mut batch = fx.store.batch();
                            batch.persist_all(fx.channel, records.by_ref().take(n as usize));
                            black_box(batch.commit()).unwrap();
                        }
                    },
                    criterion::BatchSize::SmallInput,
                );
            },
        );
    }
    group.finish();
}

criterion_group!(benches, durable_commits);
criterion_main!(benches);
