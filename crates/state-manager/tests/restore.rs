//! `StateManager::restore`: a manager rebuilt from its persisted records continues where it
//! stopped, keeps its own-signature guard, and refuses an inconsistent snapshot.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use std::collections::BTreeMap;

use alloy_sol_types::SolCall;
use entente_contracts::TicTacToe;
use entente_evm_runtime::MachineCode;
use entente_state_manager::{
    ChannelSnapshot, Config, Effect, PersistRecord, RestoreError, StateManager, StoredTransaction,
};
use entente_types::{AgreementMode, B256, Bytes, LocalSigner, Message, Signer, Timing, state_hash};

mod common;
use common::{GENESIS_TS, key, tictactoe, tictactoe_spec};

/// What a host would have stored for one peer (an in-memory stand-in for `entente-store`).
#[derive(Default)]
struct Records {
    transactions: BTreeMap<u64, StoredTransaction>,
    own: BTreeMap<(u64, u64), B256>,
    finalized: u64,
    intents: BTreeMap<u64, (entente_types::SignedIntent, u64)>,
}

impl Records {
    fn keep(&mut self, record: PersistRecord) {
        match record {
            PersistRecord::Transaction {
                transaction,
                digest,
                signature,
                state,
            } => {
                self.transactions.insert(
                    transaction.height,
                    StoredTransaction {
                        transaction,
                        digest,
                        signature,
                        state,
                        confirmations: BTreeMap::new(),
                    },
                );
            }
            PersistRecord::Signature {
                height,
                signer,
                signature,
                ..
            } => {
                self.transactions
                    .get_mut(&height)
                    .unwrap()
                    .confirmations
                    .insert(signer, signature);
            }
            PersistRecord::OwnSignature { fork, height, digest } => {
                assert!(
                    self.own
                        .insert((fork, height), digest)
                        .is_none_or(|d| d == digest)
                );
            }
            PersistRecord::Finalized { height, .. } => self.finalized = self.finalized.max(height),
            PersistRecord::OwnIntent { intent, sent } => {
                self.intents.insert(intent.nonce, (*intent, sent));
            }
            PersistRecord::OwnIntentExpired { nonce } => {
                self.intents.remove(&nonce);
            }
        }
    }

    fn snapshot<S: Signer>(&self, peer: &StateManager<S>) -> ChannelSnapshot {
        ChannelSnapshot {
            spec: peer.spec().clone(),
            fork: peer.fork().clone(),
            genesis_state: peer.spec().genesis_state.clone(),
            transactions: self.transactions.values().cloned().collect(),
            own_signatures: self.own.clone(),
            finalized_height: self.finalized,
            own_intents: self.intents.values().cloned().collect(),
        }
    }
}

struct Game {
    code: MachineCode,
    peers: Vec<StateManager<LocalSigner>>,
    records: Vec<Records>,
    now: u64,
}

impl Game {
    fn new(mode: AgreementMode) -> Self {
        let code = tictactoe();
        let (x, o) = (key(1), key(2));
        let (spec, _) = tictactoe_spec(&code, x.address(), o.address(), Timing::default(), mode);
        let peers = [x, o]
            .into_iter()
            .map(|k| StateManager::new(spec.clone(), k, &code, Config::default(), 0).unwrap())
            .collect();
        Self {
            code,
            peers,
            records: vec![Records::default(), Records::default()],
            now: 0,
        }
    }

    /// Delivers everything pending (persisting first) until nothing moves.
    fn settle(&mut self) {
        loop {
            let mut mail = Vec::new();
            for (i, peer) in self.peers.iter_mut().enumerate() {
                let from = peer.me();
                for effect in peer.drain_effects().collect::<Vec<_>>() {
                    match effect {
                        Effect::Persist(r) => self.records[i].keep(r),
                        Effect::Broadcast(m) => mail.push((from, 1 - i, m)),
                        // Two peers: whatever is sent goes to the other one.
                        Effect::Send { message, .. } => mail.push((from, 1 - i, message)),
                        Effect::Notify(_) => {}
                    }
                }
            }
            if mail.is_empty() {
                return;
            }
            self.now += 50;
            for (from, to, m) in mail {
                let _ = self.peers[to].handle_message(from, m, self.now);
            }
        }
    }

    fn play(&mut self, cell: u8) {
        self.now += 100;
        let writer = self.peers.iter().position(|p| p.is_my_turn()).unwrap();
        self.peers[writer]
            .submit(TicTacToe::playCall { cell }.abi_encode().into(), self.now)
            .unwrap();
        self.settle();
    }
}

#[test]
fn a_restored_peer_equals_the_one_it_replaces_and_finishes_the_game() {
    for mode in [
        AgreementMode::ExplicitConfirmations,
        AgreementMode::VirtualVotingOnly,
    ] {
        let mut g = Game::new(mode);
        for cell in [0, 3, 1] {
            g.play(cell);
        }
        let snapshot = g.records[1].snapshot(&g.peers[1]);
        // Hours later: the stored transactions are not judged against the clock again.
        let later = g.now + 10 * 3600 * 1000;
        let mut restored =
            StateManager::restore(snapshot, key(2), &g.code, Config::default(), later).unwrap();
        let original = &mut g.peers[1];
        assert_eq!(restored.tip(), original.tip());
        assert_eq!(restored.tip_state_hash(), original.tip_state_hash());
        assert_eq!(restored.tip_timestamp(), original.tip_timestamp());
        assert_eq!(restored.finalized_height(), original.finalized_height());
        assert_eq!(restored.next_writer(), original.next_writer());
        assert_eq!(restored.fork(), original.fork());
        assert_eq!(restored.state().unwrap(), original.state().unwrap());
        assert_eq!(
            restored.own_signatures().collect::<Vec<_>>(),
            original.own_signatures().collect::<Vec<_>>()
        );
        for h in 0..=restored.tip() {
            assert_eq!(restored.state_at(h), original.state_at(h), "state at {h}");
        }
        // Its first word is a sync request from its finalized height.
        let first: Vec<Effect> = restored.drain_effects().collect();
        assert!(
            matches!(&first[..], [Effect::Broadcast(Message::SyncRequest(r))] if r.from_height == restored.finalized_height() + 1),
            "{first:?}"
        );
        // A restart seconds later (moves are due within p2pTime + agreementTime of their parent):
        // swap the restored peer in and finish the game: X wins on 0, 1, 2.
        let soon = g.now + 2_000;
        let snapshot = g.records[1].snapshot(&g.peers[1]);
        let mut restored = StateManager::restore(snapshot, key(2), &g.code, Config::default(), soon).unwrap();
        restored.observe_block(GENESIS_TS + soon / 1000, soon);
        g.peers[1] = restored;
        g.now = soon;
        g.play(4);
        g.play(2);
        let (x, o) = (&g.peers[0], &g.peers[1]);
        assert!(x.is_game_over() && o.is_game_over(), "{mode:?}");
        assert_eq!(o.tip(), 5);
        assert_eq!(o.tip_state_hash(), x.tip_state_hash());
        assert_eq!(o.finalized_height(), 5);
        assert_eq!(x.finalized_height(), 5);
    }
}

#[test]
fn an_inconsistent_snapshot_is_refused() {
    let mut g = Game::new(AgreementMode::ExplicitConfirmations);
    for cell in [0, 3, 1] {
        g.play(cell);
    }
    let good = g.records[1].snapshot(&g.peers[1]);
    let restore = |s: ChannelSnapshot, k: u8| {
        StateManager::restore(s, key(k), &g.code, Config::default(), 0).map(|_| ())
    };
    assert_eq!(restore(good.clone(), 2), Ok(()));
    assert_eq!(
        restore(good.clone(), 3),
        Err(RestoreError::NotAParticipant(key(3).address()))
    );

    let mut s = good.clone();
    s.transactions[1].digest = B256::repeat_byte(1);
    assert_eq!(restore(s, 2), Err(RestoreError::DigestMismatch(2)));

    let mut s = good.clone();
    s.transactions[2].state = Bytes::from_static(b"other");
    assert_eq!(restore(s, 2), Err(RestoreError::StateMismatch(3)));

    let mut s = good.clone();
    s.transactions.remove(1);
    assert!(matches!(
        restore(s, 2),
        Err(RestoreError::Gap {
            height: 3,
            expected: 2,
            ..
        })
    ));

    let mut s = good.clone();
    s.finalized_height = 3;
    s.transactions[2].confirmations.clear();
    assert_eq!(
        restore(s, 2),
        Err(RestoreError::FinalizedAhead {
            stored: 3,
            computed: 2
        })
    );

    let mut s = good.clone();
    s.genesis_state = Bytes::from_static(b"not the genesis");
    assert!(matches!(
        restore(s, 2),
        Err(RestoreError::GenesisMismatch { fork: 0, .. })
    ));

    // A transaction chained to another state than the one before it.
    let mut s = good;
    let second = s.transactions[1].clone();
    s.transactions[0] = StoredTransaction {
        state: second.state.clone(),
        ..second.clone()
    };
    s.transactions[0].transaction.height = 1;
    s.transactions[0].digest = g.peers[1].spec().domain.digest(&s.transactions[0].transaction);
    assert_eq!(
        state_hash(&s.transactions[0].state),
        s.transactions[0].transaction.stateHash
    );
    assert_eq!(restore(s, 2), Err(RestoreError::BrokenChain(1)));
}

#[test]
fn an_own_signature_missing_from_the_log_is_still_guarded() {
    let mut g = Game::new(AgreementMode::ExplicitConfirmations);
    g.play(0);
    let mut snapshot = g.records[0].snapshot(&g.peers[0]);
    snapshot.own_signatures.clear(); // as if the log had lost it
    let restored = StateManager::restore(snapshot, key(1), &g.code, Config::default(), g.now).unwrap();
    let digest = g.records[0].transactions[&1].digest;
    assert_eq!(
        restored.own_signatures().collect::<Vec<_>>(),
        vec![((0, 1), digest)]
    );
}
