//! The per-transaction path: its parts (EIP-712 hash, sign, recover, EVM execution, agreement
//! bookkeeping) and the whole transition with N real peers exchanging CBOR frames, for
//! N = 2, 16 and 64 in both agreement modes.
//!
//! Run: `cargo bench -p entente-state-manager --bench transition`. "per peer" figures are the
//! whole transition's time divided by N (criterion's elements/s with Throughput = N).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::VecDeque;
use std::hint::black_box;

use alloy_primitives::U256;
use alloy_sol_types::SolCall;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use entente_agreement::AgreementManager;
use entente_contracts::{RoundRobinCounter, artifacts};
use entente_evm_runtime::{MachineCode, MachineInstance};
use entente_state_manager::{Config, Effect, StateManager};
use entente_types::{
    Address, AgreementMode, B256, Bytes, ChannelSpec, Domain, Envelope, LocalSigner, Signer, Timing,
    Transaction, keccak256, recover_signer, state_hash,
};

fn keys(n: usize) -> Vec<LocalSigner> {
    (0..n as u64)
        .map(|i| LocalSigner::from_bytes(&keccak256(i.to_be_bytes())).unwrap())
        .collect()
}

fn genesis(code: &MachineCode, participants: &[Address]) -> Bytes {
    MachineInstance::deploy(code, 5_000_000)
        .unwrap()
        .view_decode(&RoundRobinCounter::initialStateCall {
            participants: participants.to_vec(),
            deposits: vec![U256::from(1); participants.len()],
            target: u64::MAX / 2,
        })
        .unwrap()
}

fn spec(participants: Vec<Address>, genesis: Bytes, mode: AgreementMode) -> ChannelSpec {
    ChannelSpec {
        channel_id: B256::repeat_byte(0xbe),
        domain: Domain::new(31337, Address::repeat_byte(0x11)),
        participants,
        state_machine: Address::ZERO,
        timing: Timing {
            p2p_time: 3600,
            agreement_time: 3600,
            chain_fallback_time: 3600,
            challenge_time: 3600,
        },
        agreement_mode: mode,
        genesis_state: genesis,
        genesis_timestamp: 1_700_000_000,
    }
}

fn parts(c: &mut Criterion) {
    let code = MachineCode::from_artifact_json(artifacts::ROUND_ROBIN_COUNTER).unwrap();
    let ks = keys(2);
    let addrs: Vec<Address> = ks.iter().map(|k| k.address()).collect();
    let g = genesis(&code, &addrs);
    let domain = Domain::new(31337, Address::repeat_byte(0x11));
    let tx = Transaction {
        channelId: B256::repeat_byte(1),
        forkCnt: 0,
        height: 1,
        participant: addrs[0],
        timestamp: 1_700_000_001,
        prevStateHash: state_hash(&g),
        stateHash: B256::repeat_byte(2),
        data: RoundRobinCounter::addCall { step: 3 }.abi_encode().into(),
    };
    let digest = domain.digest(&tx);
    let sig = ks[0].sign_digest(&digest);

    let mut group = c.benchmark_group("parts");
    group.bench_function("eip712_digest", |b| b.iter(|| domain.digest(black_box(&tx))));
    group.bench_function("sign", |b| b.iter(|| ks[0].sign_digest(black_box(&digest))));
    group.bench_function("recover", |b| {
        b.iter(|| recover_signer(black_box(&digest), black_box(&sig)).unwrap())
    });
    group.bench_function("frame_encode_decode", |b| {
        let message = entente_types::Message::Transaction(entente_types::SignedTransaction {
            transaction: tx.clone(),
            signature: sig,
        });
        b.iter(|| Envelope::decode(&Envelope::new(black_box(message.clone())).encode().unwrap()).unwrap())
    });
    let mut machine = MachineInstance::deploy(&code, 5_000_000).unwrap();
    machine.set_state(&g).unwrap();
    group.bench_function("evm_execute_transition", |b| {
        b.iter(|| machine.execute(black_box(&tx), None).unwrap())
    });
    for n in [2usize, 16, 64] {
        let ks = keys(n);
        let addrs: Vec<Address> = ks.iter().map(|k| k.address()).collect();
        let sigs: Vec<_> = ks.iter().map(|k| k.sign_digest(&digest)).collect();
        group.bench_with_input(
            BenchmarkId::new("agreement_append_and_n_signatures", n),
            &n,
            |b, _| {
                b.iter(|| {
                    let mut m = AgreementManager::new(0, 0, addrs.clone());
                    let mut t = tx.clone();
                    t.participant = addrs[0];
                    m.append(t, digest, sigs[0]).unwrap();
                    for (a, s) in addrs.iter().zip(&sigs).skip(1) {
                        m.add_signature(1, digest, *a, *s).unwrap();
                    }
                    assert_eq!(m.finalized_height(), 1);
                })
            },
        );
    }
    group.finish();
}

/// N real peers; one iteration = the writer submits and every frame is delivered until quiet.
struct Channel {
    peers: Vec<StateManager<LocalSigner>>,
    index: Vec<Address>,
    now: u64,
}

impl Channel {
    fn new(n: usize, mode: AgreementMode) -> Self {
        let code = MachineCode::from_artifact_json(artifacts::ROUND_ROBIN_COUNTER).unwrap();
        let ks = keys(n);
        let addrs: Vec<Address> = ks.iter().map(|k| k.address()).collect();
        let s = spec(addrs.clone(), genesis(&code, &addrs), mode);
        let peers = ks
            .into_iter()
            .map(|k| StateManager::new(s.clone(), k, &code, Config::default(), 0).unwrap())
            .collect();
        Self {
            peers,
            index: addrs,
            now: 0,
        }
    }

    fn transition(&mut self) {
        self.now += 1;
        let writer = self.peers.iter().position(|p| p.is_my_turn()).unwrap();
        self.peers[writer]
            .submit(
                RoundRobinCounter::addCall { step: 1 }.abi_encode().into(),
                self.now,
            )
            .unwrap();
        let mut queue: VecDeque<(usize, Vec<u8>)> = VecDeque::new();
        let outbox =
            |from: usize, peer: &mut StateManager<LocalSigner>, queue: &mut VecDeque<(usize, Vec<u8>)>| {
                for effect in peer.drain_effects() {
                    if let Effect::Broadcast(m) = effect {
                        queue.push_back((from, Envelope::new(m).encode().unwrap()));
                    }
                }
            };
        outbox(writer, &mut self.peers[writer], &mut queue);
        while let Some((from, bytes)) = queue.pop_front() {
            let sender = self.index[from];
            for i in 0..self.peers.len() {
                if i != from {
                    self.peers[i].handle_bytes(sender, &bytes, self.now).unwrap();
                    outbox(i, &mut self.peers[i], &mut queue);
                }
            }
        }
    }
}

fn whole_transition(c: &mut Criterion) {
    let mut group = c.benchmark_group("transition");
    group.sample_size(10);
    for mode in [
        AgreementMode::ExplicitConfirmations,
        AgreementMode::VirtualVotingOnly,
    ] {
        for n in [2usize, 16, 64] {
            let mut channel = Channel::new(n, mode);
            group.throughput(Throughput::Elements(n as u64));
            let name = match mode {
                AgreementMode::ExplicitConfirmations => "explicit_confirmations",
                AgreementMode::VirtualVotingOnly => "virtual_voting",
            };
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| channel.transition())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, parts, whole_transition);
criterion_main!(benches);
