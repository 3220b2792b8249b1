//! Restoring a channel's [`StateManager`] after a restart, from what the host persisted.
//!
//! The host stores every [`PersistRecord`](crate::PersistRecord) the manager emits (durably,
//! before the effects that follow it leave the node). After a crash it loads a
//! [`ChannelSnapshot`] of the channel's current fork from its store and calls
//! [`StateManager::restore`]. Nothing is re-executed and no timestamp is judged again: the stored
//! transactions were validated when they were applied. The restore checks only that the snapshot
//! is self-consistent (digests, state hashes, the `prevStateHash` chain, heights, fork), which is
//! cheap (keccak only, no signature recovery and no EVM run except loading the tip's state).
//!
//! The own-signature log is restored too, so the manager never signs a second digest at a
//! (fork, height) it signed before the crash (`SubmitError::DoubleSignGuard`). Catch-up is left to
//! the protocol: the restored manager broadcasts a `SyncRequest` from its finalized height, and
//! [`StateManager::handle_timeout`] resends its unfinalized signatures as usual.
//!
//! This module is a child of `manager` (declared there) so it can build the manager's private
//! state without widening its fields.

use std::collections::{BTreeMap, VecDeque};

use entente_agreement::{AgreementError, AgreementManager};
use entente_clock::LogicalClock;
use entente_evm_runtime::{EvmError, MachineCode, MachineInstance};
use entente_types::{
    Address, B256, Bytes, ChannelSpec, Message, Signature, SignedIntent, Signer, SyncRequest, Transaction,
    state_hash,
};

use super::{Config, ForkInfo, StateManager};
use crate::Effect;

/// One stored transaction of the current fork with everything held about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTransaction {
    /// The transaction.
    pub transaction: Transaction,
    /// Its EIP-712 digest.
    pub digest: B256,
    /// The issuer's signature; none on a transaction the court wrote (a forced intent).
    pub signature: Option<Signature>,
    /// The encoded state it produced.
    pub state: Bytes,
    /// Signatures by other participants (confirmations), by signer. The issuer's own entry, if
    /// present, is ignored, except on a transaction the court wrote (the issuer may have signed
    /// it since).
    pub confirmations: BTreeMap<Address, Signature>,
}

/// What a restart needs to rebuild one channel's [`StateManager`]: produced by the store
/// (`entente-store`), consumed by [`StateManager::restore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSnapshot {
    /// The channel spec (fork 0's genesis included).
    pub spec: ChannelSpec,
    /// The current (latest known) fork.
    pub fork: ForkInfo,
    /// The encoded genesis state of the current fork.
    pub genesis_state: Bytes,
    /// The transactions of the current fork, in height order from `fork.genesis_height + 1`,
    /// without gaps.
    pub transactions: Vec<StoredTransaction>,
    /// The own-signature log: digests this node signed, by (fork, height).
    pub own_signatures: BTreeMap<(u64, u64), B256>,
    /// The finalized height last persisted for the current fork (a lower bound: the restore
    /// recomputes finality from the signatures and refuses a snapshot that finalizes less).
    pub finalized_height: u64,
    /// Our intents that had not expired, with when each was last sent (chain seconds).
    pub own_intents: Vec<(SignedIntent, u64)>,
}

/// Why a snapshot could not be restored. Every variant means the stored data is inconsistent or
/// does not belong to this signer; nothing was signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// The signer is neither a participant of the channel nor of its current fork.
    #[error("{0} is not a participant of the channel")]
    NotAParticipant(Address),
    /// The genesis state does not hash to the fork's genesis state hash.
    #[error("genesis state of fork {fork} hashes to {actual}, the fork says {expected}")]
    GenesisMismatch {
        /// Fork.
        fork: u64,
        /// From the fork info.
        expected: B256,
        /// Of the stored genesis state.
        actual: B256,
    },
    /// A stored transaction is not where the chain of transactions continues.
    #[error(
        "stored transaction at fork {fork}, height {height} of channel {channel}; expected height {expected} of fork {expected_fork}"
    )]
    Gap {
        /// Its channel.
        channel: B256,
        /// Its fork.
        fork: u64,
        /// Its height.
        height: u64,
        /// The fork expected.
        expected_fork: u64,
        /// The height expected.
        expected: u64,
    },
    /// A stored digest is not the transaction's digest.
    #[error("stored digest at height {0} is not the transaction's")]
    DigestMismatch(u64),
    /// A stored state does not hash to the transaction's `stateHash`.
    #[error("stored state at height {0} does not match the transaction's state hash")]
    StateMismatch(u64),
    /// A transaction does not build on the state before it.
    #[error("transaction at height {0} does not build on the stored state before it")]
    BrokenChain(u64),
    /// The agreement refused a stored transaction or signature.
    #[error("agreement: {0}")]
    Agreement(#[from] AgreementError),
    /// The stored signatures finalize less than the stored finalized height.
    #[error("stored finalized height {stored} but the stored signatures only finalize {computed}")]
    FinalizedAhead {
        /// Persisted.
        stored: u64,
        /// Recomputed.
        computed: u64,
    },
    /// Loading the machine or its state failed.
    #[error("state machine: {0}")]
    Machine(#[from] EvmError),
}

impl<S: Signer> StateManager<S> {
    /// Rebuilds a channel's manager after a restart from a [`ChannelSnapshot`] its host loaded
    /// from durable storage.
    ///
    /// The stored transactions are not re-executed and their timestamps are not judged against
    /// the current clock (they were accepted before); the snapshot is only checked for
    /// consistency. The own-signature log is restored, so the manager refuses to sign a different
    /// digest at any (fork, height) it signed before.
    ///
    /// The logical clock starts from a lower bound of chain time (the fork's genesis, or the tip's
    /// timestamp minus `agreementTime`); the host should call [`Self::observe_block`] with the
    /// latest block it knows before handing the manager any message. The first effect is a
    /// broadcast `SyncRequest` from the finalized height on, so the peers send what was missed;
    /// [`Self::handle_timeout`] then resends and syncs as usual.
    pub fn restore(
        snapshot: ChannelSnapshot,
        signer: S,
        code: &MachineCode,
        config: Config,
        local_ms: u64,
    ) -> Result<Self, RestoreError> {
        let ChannelSnapshot {
            spec,
            fork,
            genesis_state,
            transactions,
            own_signatures: stored_own,
            finalized_height: stored_finalized,
            own_intents,
        } = snapshot;
        let me = signer.address();
        if spec.participant_index(&me).is_none() && !fork.participants.contains(&me) {
            return Err(RestoreError::NotAParticipant(me));
        }
        let genesis_hash = state_hash(&genesis_state);
        if genesis_hash != fork.genesis_state_hash {
            return Err(RestoreError::GenesisMismatch {
                fork: fork.fork,
                expected: fork.genesis_state_hash,
                actual: genesis_hash,
            });
        }

        // Rebuild the agreement by replaying the stored votes (no EVM, no signature recovery).
        let mut agreement = AgreementManager::new(fork.fork, fork.genesis_height, fork.participants.clone());
        let mut own_signatures: BTreeMap<(u64, u64), B256> = stored_own
            .into_iter()
            .filter(|((f, _), _)| *f >= fork.fork)
            .collect();
        let mut tip_state_hash = genesis_hash;
        let mut tip_timestamp = fork.genesis_timestamp;
        let mut states: BTreeMap<u64, Bytes> = BTreeMap::new();
        let mut tip_state = genesis_state.clone();
        let mut forced_heights = std::collections::BTreeSet::new();
        for (expected, stored) in (fork.genesis_height + 1..).zip(transactions) {
            let StoredTransaction {
                transaction,
                digest,
                signature,
                state,
                confirmations,
            } = stored;
            let height = transaction.height;
            if transaction.channelId != spec.channel_id
                || transaction.forkCnt != fork.fork
                || height != expected
            {
                return Err(RestoreError::Gap {
                    channel: transaction.channelId,
                    fork: transaction.forkCnt,
                    height,
                    expected_fork: fork.fork,
                    expected,
                });
            }
            if spec.domain.digest(&transaction) != digest {
                return Err(RestoreError::DigestMismatch(height));
            }
            if transaction.prevStateHash != tip_state_hash {
                return Err(RestoreError::BrokenChain(height));
            }
            if state_hash(&state) != transaction.stateHash {
                return Err(RestoreError::StateMismatch(height));
            }
            tip_state_hash = transaction.stateHash;
            tip_timestamp = transaction.timestamp;
            let issuer = transaction.participant;
            match signature {
                Some(signature) => agreement.append(transaction, digest, signature)?,
                None => {
                    forced_heights.insert(height);
                    agreement.append_unsigned(transaction, digest)?
                }
            };
            for (who, sig) in confirmations {
                if who != issuer || signature.is_none() {
                    agreement.add_signature(height, digest, who, sig)?;
                }
            }
            // Whatever we signed is in the log, even if the log itself lost it.
            if agreement
                .entry(height)
                .is_some_and(|e| e.signatures.contains_key(&me))
            {
                own_signatures.entry((fork.fork, height)).or_insert(digest);
            }
            states.insert(height, state.clone());
            tip_state = state;
        }
        let finalized = agreement.finalized_height();
        if finalized < stored_finalized {
            return Err(RestoreError::FinalizedAhead {
                stored: stored_finalized,
                computed: finalized,
            });
        }
        // Keep what a running manager keeps: the genesis and the states the agreement holds, and
        // the own signatures that can still matter.
        let held_from = agreement
            .entries_from(0)
            .next()
            .map_or(fork.genesis_height, |e| e.transaction.height);
        states.retain(|h, _| *h >= held_from);
        states.insert(fork.genesis_height, genesis_state);
        let keep_from = finalized.saturating_sub(fork.participants.len() as u64 * 2);
        own_signatures.retain(|(f, h), _| *f > fork.fork || *h >= keep_from);

        let mut machine = MachineInstance::deploy(code, config.gas_limit)?;
        machine.set_state(&tip_state)?;
        // A lower bound of chain time: the fork's genesis, or the tip's timestamp less the
        // tolerance it was accepted with. `observe_block` moves it forward.
        let chain_secs = fork
            .genesis_timestamp
            .max(tip_timestamp.saturating_sub(spec.timing.agreement_time));
        let mut manager = Self {
            agreement,
            clock: LogicalClock::synced_at(chain_secs.saturating_mul(1000), local_ms),
            tip_state_hash,
            tip_timestamp,
            config,
            signer,
            me,
            machine,
            next_writer: Address::ZERO,
            game_over: false,
            open: false,
            intents: BTreeMap::new(),
            pruned_at: B256::ZERO,
            own_intents: BTreeMap::new(),
            court_hold: false,
            chain_tip: 0,
            forced_heights,
            open_heights: std::collections::BTreeSet::new(),
            future: BTreeMap::new(),
            early_confirmations: VecDeque::new(),
            own_signatures,
            unsigned: std::collections::BTreeSet::new(),
            states,
            last_checkpoint: finalized,
            resends: 0,
            fraud: Vec::new(),
            refused_by: std::collections::BTreeSet::new(),
            last_progress_ms: local_ms,
            signing_stopped: None,
            signing_holds: Vec::new(),
            turn_read: None,
            effects: VecDeque::new(),
            fork,
            spec,
        };
        manager.refresh_turn()?;
        manager.restore_own_intents(own_intents);
        manager
            .effects
            .push_back(Effect::Broadcast(Message::SyncRequest(SyncRequest {
                channel_id: manager.spec.channel_id,
                fork: manager.fork.fork,
                from_height: finalized + 1,
            })));
        Ok(manager)
    }

    /// Our intents kept in the store: each nonce stays taken while its intent may apply, and
    /// those the tip has not applied are under way again (sent once more, so that a sequencer
    /// that lost them holds them; a left-out one keeps its first sending time and goes to the
    /// court as before the restart).
    fn restore_own_intents(&mut self, own_intents: Vec<(SignedIntent, u64)>) {
        let applied = self.machine.intent_nonce_of(self.me).ok();
        for (intent, sent) in own_intents {
            if intent.issuer != self.me || intent.channel_id != self.spec.channel_id {
                continue;
            }
            if applied.is_some_and(|next| intent.nonce >= next) {
                self.intents.insert((self.me, intent.nonce), intent.clone());
                self.effects
                    .push_back(Effect::Broadcast(Message::Intent(Box::new(intent.clone()))));
            }
            self.own_intents.insert(intent.nonce, (intent, sent));
        }
    }

    /// The own-signature log this manager holds: the digest it signed at each (fork, height) it
    /// still guards (older, final heights are dropped as in normal operation).
    pub fn own_signatures(&self) -> impl Iterator<Item = ((u64, u64), B256)> + '_ {
        self.own_signatures.iter().map(|(k, v)| (*k, *v))
    }
}
