//! Crash and restart: three state managers play the round-robin counter in memory, each host
//! persisting its manager's `Persist` effects through its own store (one batch per turn, committed
//! before the turn's messages leave). At seeded points one peer is killed, either before its
//! turn's commit (the turn is lost) or after it (its messages are lost); later it reopens its
//! store, restores its manager and the game goes on. Every run must end with all peers at the same
//! tip, state and finalized height, and no peer may ever have two different own signatures at one
//! (fork, height), counting what its store recorded and what it sent, across restarts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests

use std::collections::{BTreeMap, VecDeque};

use alloy_primitives::U256;
use alloy_sol_types::SolCall;
use entente_contracts::{RoundRobinCounter, artifacts};
use entente_evm_runtime::{MachineCode, MachineInstance};
use entente_state_manager::{Config, Effect, ForkInfo, PersistRecord, StateManager, SubmitError};
use entente_store::{ChannelRecord, ChannelStatus, MachineSource, Store, StoreError};
use entente_types::{
    Address, AgreementMode, B256, Bytes, ChannelSpec, Domain, LocalSigner, Message, Signer, Timing,
};

const GENESIS_TS: u64 = 1_700_000_000;
const STEP_MS: u64 = 100;
const N: usize = 3;
const TARGET: u64 = 24;

/// A tiny deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crash {
    /// Killed before the turn's batch is committed: its records and messages are lost.
    BeforeCommit,
    /// Killed after the commit, before the turn's messages leave.
    AfterCommit,
}

struct Peer {
    key: LocalSigner,
    dir: tempfile::TempDir,
    manager: Option<StateManager<LocalSigner>>,
    store: Option<Store>,
    down_until: u64,
    /// Every own signature that became durable or left the node, across incarnations.
    signed: BTreeMap<(u64, u64), B256>,
    restarts: u32,
}

impl Peer {
    fn note_signed(&mut self, fork: u64, height: u64, digest: B256, what: &str) {
        let me = self.key.address();
        let previous = *self.signed.entry((fork, height)).or_insert(digest);
        assert_eq!(
            previous, digest,
            "{me} produced two own signatures at fork {fork}, height {height} ({what})"
        );
    }
}

struct Run {
    spec: ChannelSpec,
    code: MachineCode,
    peers: Vec<Peer>,
    /// Messages delivered at the next step: (from, to, message).
    in_flight: VecDeque<(Address, Address, Message)>,
    now: u64,
}

fn setup(mode: AgreementMode) -> Run {
    let keys: Vec<LocalSigner> = (1..=N as u8)
        .map(|i| LocalSigner::from_bytes(&B256::repeat_byte(i)).unwrap())
        .collect();
    let participants: Vec<Address> = keys.iter().map(|k| k.address()).collect();
    let code = MachineCode::from_artifact_json(artifacts::ROUND_ROBIN_COUNTER).unwrap();
    let call = RoundRobinCounter::initialStateCall {
        participants: participants.clone(),
        deposits: vec![U256::from(100); N],
        target: TARGET,
    };
    let genesis: Bytes = MachineInstance::deploy(&code, 5_000_000)
        .unwrap()
        .view_decode(&call)
        .unwrap();
    let spec = ChannelSpec {
        channel_id: B256::repeat_byte(0xc4),
        domain: Domain::new(31337, Address::repeat_byte(0x99)),
        participants,
        state_machine: Address::repeat_byte(0x77),
        timing: Timing::default(),
        agreement_mode: mode,
        genesis_state: genesis,
        genesis_timestamp: GENESIS_TS,
    };
    let peers = keys
        .into_iter()
        .map(|key| {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::create(dir.path().join("data")).unwrap();
            let mut batch = store.batch();
            batch.put_channel(ChannelRecord {
                spec: spec.clone(),
                me: key.address(),
                machine: MachineSource::ArtifactJson(artifacts::ROUND_ROBIN_COUNTER.to_string()),
                status: ChannelStatus::Open,
            });
            batch.commit().unwrap();
            let manager = StateManager::new(spec.clone(), key.clone(), &code, Config::default(), 0).unwrap();
            Peer {
                key,
                dir,
                manager: Some(manager),
                store: Some(store),
                down_until: 0,
                signed: BTreeMap::new(),
                restarts: 0,
            }
        })
        .collect();
    Run {
        spec,
        code,
        peers,
        in_flight: VecDeque::new(),
        now: 0,
    }
}

impl Run {
    fn chain_secs(&self) -> u64 {
        GENESIS_TS + self.now / 1000
    }

    /// Reopens `i`'s store and restores its manager from it.
    fn restart(&mut self, i: usize) {
        let now = self.now;
        let chain_secs = self.chain_secs();
        let peer = &mut self.peers[i];
        let store = Store::open(peer.dir.path().join("data")).unwrap();
        let record = store.channel(&self.spec.channel_id).unwrap().unwrap();
        assert_eq!(record.spec, self.spec);
        assert_eq!(record.me, peer.key.address());
        let code = record.machine.load().unwrap();
        let snapshot = store.snapshot(&self.spec.channel_id).unwrap();
        let log = snapshot.own_signatures.clone();
        let mut manager =
            StateManager::restore(snapshot, peer.key.clone(), &code, Config::default(), now).unwrap();
        manager.observe_block(chain_secs, now);
        // The restored manager guards every recorded signature it could still be asked for.
        let guarded: BTreeMap<_, _> = manager.own_signatures().collect();
        for (at, digest) in &log {
            if at.1 > manager.finalized_height() {
                assert_eq!(
                    guarded.get(at),
                    Some(digest),
                    "own signature at {at:?} not restored"
                );
            }
        }
        peer.manager = Some(manager);
        peer.store = Some(store);
        peer.restarts += 1;
    }

    /// One step of virtual time: deliver, tick, move, and end every peer's turn.
    fn step(&mut self, rng: &mut Rng, crash: Option<(usize, Crash, u64)>) {
        self.now += STEP_MS;
        let now = self.now;
        for i in 0..N {
            if self.peers[i].manager.is_none() && self.peers[i].down_until <= now {
                self.restart(i);
            }
        }
        let deliveries: Vec<_> = self.in_flight.drain(..).collect();
        for (from, to, message) in deliveries {
            let Some(peer) = self.peers.iter_mut().find(|p| p.key.address() == to) else {
                continue;
            };
            if let Some(manager) = peer.manager.as_mut() {
                let _ = manager.handle_message(from, message, now);
            }
        }
        for i in 0..N {
            let Some(manager) = self.peers[i].manager.as_mut() else {
                continue;
            };
            manager.handle_timeout(now);
            if manager.is_my_turn() {
                match manager.submit(RoundRobinCounter::addCall { step: 1 }.abi_encode().into(), now) {
                    Ok(_) => {}
                    Err(e @ SubmitError::DoubleSignGuard { .. }) => panic!("restored peer {i}: {e}"),
                    Err(e) => panic!("peer {i} could not move: {e}"),
                }
            }
            let crash_here = crash.filter(|(victim, _, _)| *victim == i);
            self.end_turn(i, crash_here, rng);
        }
    }

    /// The host's end of turn: one batch with every `Persist`, committed before any message
    /// leaves (unless the peer is killed at this point).
    fn end_turn(&mut self, i: usize, crash: Option<(usize, Crash, u64)>, rng: &mut Rng) {
        let channel = self.spec.channel_id;
        let participants = self.spec.participants.clone();
        let domain = self.spec.domain.clone();
        let peer = &mut self.peers[i];
        let me = peer.key.address();
        let effects: Vec<Effect> = peer
            .manager
            .as_mut()
            .map(|m| m.drain_effects().collect())
            .unwrap_or_default();
        let mut records = Vec::new();
        let mut outgoing = Vec::new();
        for effect in effects {
            match effect {
                Effect::Persist(record) => records.push(record),
                Effect::Broadcast(message) => {
                    for to in participants.iter().filter(|p| **p != me) {
                        outgoing.push((*to, message.clone()));
                    }
                }
                Effect::Send { to, message } => outgoing.push((to, message)),
                Effect::Notify(_) => {}
            }
        }
        let kill = |peer: &mut Peer, rng: &mut Rng, down_for: u64| {
            peer.manager = None;
            peer.store = None;
            peer.down_until = self.now + STEP_MS * (1 + down_for + rng.below(4));
        };
        if let Some((_, Crash::BeforeCommit, down_for)) = crash {
            kill(peer, rng, down_for);
            return;
        }
        let store = peer.store.as_ref().unwrap();
        let mut batch = store.batch();
        batch.persist_all(channel, records.iter().cloned());
        match batch.commit() {
            Ok(()) => {}
            Err(e @ StoreError::DoubleSign { .. }) => panic!("peer {i} tried to double-sign: {e}"),
            Err(e) => panic!("peer {i}: commit failed: {e}"),
        }
        for record in &records {
            if let PersistRecord::OwnSignature { fork, height, digest } = record {
                peer.note_signed(*fork, *height, *digest, "recorded");
            }
        }
        if let Some((_, Crash::AfterCommit, down_for)) = crash {
            kill(peer, rng, down_for);
            return;
        }
        for (to, message) in outgoing {
            match &message {
                Message::Transaction(st) if st.transaction.participant == me => {
                    let digest = domain.digest(&st.transaction);
                    peer.note_signed(st.transaction.forkCnt, st.transaction.height, digest, "sent");
                    let recorded = peer.signed.get(&(st.transaction.forkCnt, st.transaction.height));
                    assert_eq!(recorded, Some(&digest), "sent before it was recorded");
                }
                Message::Confirmation(c)
                    if entente_types::recover_signer(&c.digest, &c.signature).ok() == Some(me) =>
                {
                    peer.note_signed(c.fork, c.height, c.digest, "sent");
                }
                _ => {}
            }
            self.in_flight.push_back((me, to, message));
        }
    }

    fn done(&self) -> bool {
        self.peers.iter().all(|p| {
            p.manager
                .as_ref()
                .is_some_and(|m| m.is_game_over() && m.finalized_height() == m.tip())
        })
    }
}

/// Runs one game with `crashes` kills at seeded steps; returns the restarts done.
fn run(mode: AgreementMode, seed: u64, crashes: usize) -> u32 {
    let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ mode as u64);
    let mut run = setup(mode);
    // Kill points spread over the game (a 24-move game takes some 30-60 steps here).
    let mut schedule: BTreeMap<u64, (usize, Crash, u64)> = BTreeMap::new();
    for _ in 0..crashes {
        let at = 1 + rng.below(50);
        let victim = rng.below(N as u64) as usize;
        let how = if rng.below(2) == 0 {
            Crash::BeforeCommit
        } else {
            Crash::AfterCommit
        };
        schedule.insert(at, (victim, how, rng.below(12)));
    }
    let mut step = 0u64;
    while !run.done() {
        step += 1;
        assert!(step < 5_000, "seed {seed}, {mode:?}: the game did not finish");
        let crash = schedule
            .get(&step)
            .copied()
            .filter(|(victim, _, _)| run.peers[*victim].manager.is_some());
        run.step(&mut rng, crash);
    }
    let first = run.peers[0].manager.as_ref().unwrap();
    let (tip, state, finalized, fork) = (
        first.tip(),
        first.tip_state_hash(),
        first.finalized_height(),
        first.fork().clone(),
    );
    assert_eq!(tip, TARGET, "one step per move");
    for (i, peer) in run.peers.iter().enumerate() {
        let m = peer.manager.as_ref().unwrap();
        assert_eq!(m.tip(), tip, "seed {seed}, peer {i}: tip");
        assert_eq!(m.tip_state_hash(), state, "seed {seed}, peer {i}: state");
        assert_eq!(
            m.finalized_height(),
            finalized,
            "seed {seed}, peer {i}: finalized"
        );
        assert_eq!(m.fork(), &fork);
        assert!(
            m.evidence().is_empty(),
            "seed {seed}, peer {i}: equivocation seen"
        );
        assert!(m.fraud_evidence().is_empty(), "seed {seed}, peer {i}: fraud seen");
        // What the store holds matches the manager, and a restore from it now agrees too.
        let store = peer.store.as_ref().unwrap();
        assert_eq!(
            store.finalized_height(&run.spec.channel_id, 0).unwrap(),
            Some(finalized)
        );
        let snapshot = store.snapshot(&run.spec.channel_id).unwrap();
        assert_eq!(snapshot.transactions.len() as u64, tip);
        let restored =
            StateManager::restore(snapshot, peer.key.clone(), &run.code, Config::default(), run.now).unwrap();
        assert_eq!(restored.tip_state_hash(), state);
        assert_eq!(restored.finalized_height(), finalized);
        assert!(restored.is_game_over());
    }
    run.peers.iter().map(|p| p.restarts).sum()
}

#[test]
fn no_crash_runs_to_the_end_in_both_modes() {
    for mode in [
        AgreementMode::ExplicitConfirmations,
        AgreementMode::VirtualVotingOnly,
    ] {
        assert_eq!(run(mode, 0, 0), 0);
    }
}

#[test]
fn killed_peers_restore_from_their_store_and_finish_the_game() {
    let mut restarts = 0;
    for mode in [
        AgreementMode::ExplicitConfirmations,
        AgreementMode::VirtualVotingOnly,
    ] {
        for seed in 0..16 {
            restarts += run(mode, seed, 3);
        }
    }
    assert!(restarts > 32, "only {restarts} restarts happened");
}

#[test]
fn a_restored_manager_refuses_to_sign_a_different_digest_at_a_recorded_height() {
    let mut run = setup(AgreementMode::ExplicitConfirmations);
    let mut rng = Rng(1);
    // Peer 0 writes first: it signs height 1, and its host commits the record and the transaction.
    run.step(&mut rng, None);
    let signed = run.peers[0].signed.get(&(0, 1)).copied().unwrap();
    // Now forge a store where the own-signature log holds another digest at height 2 than the
    // one peer 0 would sign, as if it had signed something else there before a crash.
    let store = run.peers[0].store.take().unwrap();
    let mut batch = store.batch();
    batch.persist(
        run.spec.channel_id,
        PersistRecord::OwnSignature {
            fork: 0,
            height: N as u64 + 1,
            digest: B256::repeat_byte(0xee),
        },
    );
    batch.commit().unwrap();
    drop(store);
    run.peers[0].manager = None;
    run.restart(0);
    let guarded: BTreeMap<_, _> = run.peers[0].manager.as_ref().unwrap().own_signatures().collect();
    assert_eq!(guarded.get(&(0, 1)), Some(&signed));
    // Play on until peer 0's next turn (height N + 1): the guard must refuse to sign it.
    for _ in 0..200 {
        let m = run.peers[0].manager.as_mut().unwrap();
        if m.is_my_turn() {
            let err = m
                .submit(
                    RoundRobinCounter::addCall { step: 1 }.abi_encode().into(),
                    run.now,
                )
                .unwrap_err();
            assert_eq!(
                err,
                SubmitError::DoubleSignGuard {
                    fork: 0,
                    height: N as u64 + 1
                }
            );
            return;
        }
        // Let the others move; peer 0 only listens.
        run.now += STEP_MS;
        let now = run.now;
        let deliveries: Vec<_> = run.in_flight.drain(..).collect();
        for (from, to, message) in deliveries {
            if let Some(p) = run.peers.iter_mut().find(|p| p.key.address() == to) {
                let _ = p.manager.as_mut().unwrap().handle_message(from, message, now);
            }
        }
        for i in 0..N {
            let m = run.peers[i].manager.as_mut().unwrap();
            m.handle_timeout(now);
            if i != 0 && m.is_my_turn() {
                m.submit(RoundRobinCounter::addCall { step: 1 }.abi_encode().into(), now)
                    .unwrap();
            }
            run.end_turn(i, None, &mut rng);
        }
    }
    panic!("peer 0's turn never came");
}

#[test]
fn a_restore_after_a_fork_starts_from_the_fork_genesis() {
    let mut run = setup(AgreementMode::ExplicitConfirmations);
    let mut rng = Rng(2);
    for _ in 0..10 {
        run.step(&mut rng, None);
    }
    // The chain enforced the state at height 2 (e.g. after a dispute): every peer moves to fork 1.
    let store = run.peers[1].store.as_ref().unwrap();
    let at2 = store.transactions(&run.spec.channel_id, 0).unwrap()[1].clone();
    let fork = ForkInfo {
        fork: 1,
        genesis_height: 2,
        genesis_timestamp: at2.transaction.timestamp + 5,
        genesis_state_hash: at2.transaction.stateHash,
        participants: run.spec.participants.clone(),
    };
    let now = run.now;
    for peer in &mut run.peers {
        let m = peer.manager.as_mut().unwrap();
        assert!(m.apply_fork(fork.clone(), &at2.state, now).unwrap());
        let mut batch = peer.store.as_ref().unwrap().batch();
        batch.put_fork(run.spec.channel_id, fork.clone(), at2.state.clone());
        batch.commit().unwrap();
    }
    let mut step = 0;
    while !run.done() {
        step += 1;
        assert!(step < 2_000, "the game did not finish on fork 1");
        let crash = (step == 3).then_some((1, Crash::AfterCommit, 2));
        run.step(&mut rng, crash);
    }
    for peer in &run.peers {
        let m = peer.manager.as_ref().unwrap();
        assert_eq!(m.fork().fork, 1);
        assert_eq!(
            m.tip(),
            2 + TARGET - 2,
            "fork 1 continues from the counter at height 2"
        );
    }
    assert_eq!(run.peers[1].restarts, 1);
}
