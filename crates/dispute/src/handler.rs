use std::collections::{BTreeMap, BTreeSet};

use entente_clock::Deadlines;
use entente_state_manager::{ForkInfo, StateManager};
use entente_types::{Address, Bytes, Signature, SignedTransaction, Signer, Transaction};

use crate::{ChainAction, ChainEvent, DisputeKind, DisputeRecord, FraudKind, ProofKind, StateProof};

/// Seconds after a chain deadline before acting on it, so the block that carries the call is
/// surely past it.
const DEADLINE_MARGIN: u64 = 1;

#[derive(Debug, Clone)]
struct Running {
    record: DisputeRecord,
    state: Bytes,
    finalize_sent: bool,
    challenge_sent: bool,
}

/// Decides, for one peer and one channel, when to go to the chain and with what proof.
///
/// It is sans-IO like the state manager it watches: the host calls [`Self::on_chain_event`]
/// for every event of the channel and [`Self::on_tick`] periodically, and carries out the
/// returned [`ChainAction`]s. Its rules (seed 002, "Timeout" and "DisputeHandler"):
///
/// - a writer whose transaction lacks N signatures when the confirmation deadline passes posts
///   it as calldata;
/// - when the next writer has neither N signatures nor calldata by its deadline
///   (`ts + p2pTime + agreementTime + chainFallbackTime`, chain time), raise a timeout dispute
///   with the latest provable state (posting it first if it is only issuer-signed);
/// - prove every equivocation seen;
/// - challenge a dispute when we hold a later N-signed state, or, accused of a timeout, our own
///   timely calldata;
/// - finalize a dispute once its challenge period is over;
/// - on `SetState`, move the state manager to the new fork; posted calldata of the next height is
///   applied like a received transaction.
#[derive(Debug, Clone)]
pub struct DisputeHandler {
    me: Address,
    /// Transactions seen posted on chain, by (fork, height).
    posted: BTreeMap<(u64, u64), (Transaction, Signature, u64)>,
    /// Calldata we asked to post and have not seen yet.
    posting: BTreeSet<(u64, u64)>,
    /// Timeout disputes we raised, by (fork, height of the latest state).
    timeouts_raised: BTreeSet<(u64, u64)>,
    /// Equivocations already proven: (signer, fork, height).
    proven: BTreeSet<(Address, u64, u64)>,
    /// Fraudulent transactions already proven, by digest.
    frauds_proven: BTreeSet<entente_types::B256>,
    running: Option<Running>,
    closed: bool,
    close_sent: bool,
    exit_sent: bool,
}

impl DisputeHandler {
    /// A handler for the participant `me`.
    pub fn new(me: Address) -> Self {
        Self {
            me,
            posted: BTreeMap::new(),
            posting: BTreeSet::new(),
            timeouts_raised: BTreeSet::new(),
            proven: BTreeSet::new(),
            frauds_proven: BTreeSet::new(),
            running: None,
            closed: false,
            close_sent: false,
            exit_sent: false,
        }
    }

    /// The dispute the chain is running, if any.
    pub fn running_dispute(&self) -> Option<&DisputeRecord> {
        self.running.as_ref().map(|r| &r.record)
    }

    /// True once the channel settled on chain.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Feeds one chain event; returns the calls to make.
    pub fn on_chain_event<S: Signer>(
        &mut self,
        sm: &mut StateManager<S>,
        event: ChainEvent,
        local_ms: u64,
    ) -> Vec<ChainAction> {
        let mut actions = Vec::new();
        match event {
            ChainEvent::Block { timestamp } => sm.observe_block(timestamp, local_ms),
            ChainEvent::CalldataPosted {
                transaction,
                signature,
                timestamp,
            } => {
                let key = (transaction.forkCnt, transaction.height);
                self.posting.remove(&key);
                self.posted
                    .entry(key)
                    .or_insert((transaction.clone(), signature, timestamp));
                if transaction.forkCnt == sm.fork().fork && transaction.height == sm.tip() + 1 {
                    let from = transaction.participant;
                    let st = SignedTransaction {
                        transaction,
                        signature,
                    };
                    let _ = sm.apply_posted(from, st, local_ms);
                }
            }
            ChainEvent::DisputeStarted { record, state }
            | ChainEvent::DisputeChallenged { record, state, .. } => {
                self.running = Some(Running {
                    record,
                    state,
                    finalize_sent: false,
                    challenge_sent: false,
                });
                actions.extend(self.maybe_challenge(sm));
            }
            ChainEvent::SetState {
                fork,
                genesis_height,
                genesis_timestamp,
                state,
                participants,
            } => {
                self.running = None;
                self.posting.clear();
                self.close_sent = false;
                self.exit_sent = false;
                let info = ForkInfo {
                    fork,
                    genesis_height,
                    genesis_timestamp,
                    genesis_state_hash: entente_types::state_hash(&state),
                    participants,
                };
                if let Err(e) = sm.apply_fork(info, &state, local_ms) {
                    tracing::error!(target: "entente::dispute", error = %e, fork, "the enforced state does not load");
                }
            }
            ChainEvent::ParticipantRemoved { .. }
            | ChainEvent::ChannelOpened { .. }
            | ChainEvent::Deposited { .. }
            | ChainEvent::ChannelActivated { .. }
            | ChainEvent::FundingCancelled => {}
            ChainEvent::ChannelClosed { .. } => {
                self.closed = true;
                self.running = None;
            }
        }
        actions
    }

    /// Periodic decisions at local time `local_ms`.
    pub fn on_tick<S: Signer>(&mut self, sm: &mut StateManager<S>, local_ms: u64) -> Vec<ChainAction> {
        if self.closed || !sm.fork().participants.contains(&self.me) {
            return Vec::new();
        }
        let now = sm.now_secs(local_ms);
        let mut actions = Vec::new();

        // A running dispute: finalize it when its period is over; challenge it if we can.
        if let Some(running) = &mut self.running {
            if now > running.record.deadline + DEADLINE_MARGIN && !running.finalize_sent {
                running.finalize_sent = true;
                actions.push(ChainAction::FinalizeDispute {
                    record: running.record.clone(),
                    state: running.state.clone(),
                });
            }
            actions.extend(self.maybe_challenge(sm));
            return actions;
        }

        // The game is over and final: settle with the N-signed final state.
        if sm.is_game_over()
            && sm.finalized_height() == sm.tip()
            && !self.close_sent
            && let Some(proof) = self
                .proof_at(sm, sm.tip())
                .filter(|p| p.kind == ProofKind::Signed)
        {
            self.close_sent = true;
            actions.push(ChainAction::Close { proof });
            return actions;
        }

        // The game is over but no N-signed final state came by the confirmation deadline (a peer
        // withholds its signature): settle through the chain with the latest provable state.
        if sm.is_game_over()
            && !self.exit_sent
            && now > Deadlines::after(sm.tip_timestamp(), &sm.spec().timing).confirm_by
        {
            let tip = sm.tip();
            match self.proof_at(sm, tip) {
                Some(latest) => {
                    self.exit_sent = true;
                    actions.push(ChainAction::RequestExit { latest });
                    return actions;
                }
                None => {
                    if let Some(entry) = sm.agreement().entry(tip)
                        && let Some(sig) = entry.signatures.get(&entry.transaction.participant)
                        && self.posting.insert((sm.fork().fork, tip))
                    {
                        actions.push(ChainAction::PostCalldata {
                            transaction: entry.transaction.clone(),
                            signature: *sig,
                        });
                        return actions;
                    }
                }
            }
        }

        // Equivocations: prove each once.
        let fork = sm.fork().fork;
        let evidence: Vec<_> = sm
            .evidence()
            .iter()
            .filter(|e| e.fork == fork && !self.proven.contains(&(e.signer, e.fork, e.height)))
            .filter_map(|e| {
                let second = e.second.0.clone()?;
                Some((e.signer, e.height, e.first.clone(), (second, e.second.2)))
            })
            .collect();
        if let Some((signer, height, a, b)) = evidence.into_iter().next() {
            self.proven.insert((signer, fork, height));
            if let Some(latest) = self.best_proof(sm) {
                actions.push(ChainAction::ProveDoubleSign {
                    latest,
                    a: Box::new(a),
                    b: Box::new(b),
                });
                return actions;
            }
        }

        // Fraud the pipeline refused: prove it once its parent state is provable.
        let frauds: Vec<_> = sm
            .fraud_evidence()
            .iter()
            .filter(|f| f.transaction.forkCnt == fork && !self.frauds_proven.contains(&f.digest))
            .cloned()
            .collect();
        for fraud in frauds {
            let parent = fraud.transaction.height.saturating_sub(1);
            let Some(prev) = self.proof_at(sm, parent) else {
                continue;
            };
            // A wrong parent is only fraud against a final parent (genesis or N-signed).
            if fraud.kind == FraudKind::WrongParent && prev.kind == ProofKind::Posted {
                continue;
            }
            self.frauds_proven.insert(fraud.digest);
            actions.push(ChainAction::ProveFraud {
                kind: fraud.kind,
                prev,
                transaction: fraud.transaction,
                signature: fraud.signature,
            });
            return actions;
        }

        let timing = sm.spec().timing;
        let tip = sm.tip();
        let parent_ts = self.timestamp_at(sm, tip.saturating_sub(1));

        // Our own transaction at the tip without N signatures by the confirmation deadline:
        // post it as calldata.
        if tip > sm.fork().genesis_height
            && let Some(entry) = sm.agreement().entry(tip)
            && entry.transaction.participant == self.me
            && entry.signatures.len() < sm.fork().participants.len()
            && now > Deadlines::after(parent_ts, &timing).confirm_by
            && !self.posted.contains_key(&(fork, tip))
            && self.posting.insert((fork, tip))
        {
            let signature = entry.signatures.get(&self.me).copied();
            if let Some(signature) = signature {
                actions.push(ChainAction::PostCalldata {
                    transaction: entry.transaction.clone(),
                    signature,
                });
            }
        }

        // The next writer missed its deadline: dispute it.
        let writer = sm.next_writer();
        let tip_ts = sm.tip_timestamp();
        if writer != self.me
            && writer != Address::ZERO
            && !sm.is_game_over()
            && now > Deadlines::after(tip_ts, &timing).calldata_by + DEADLINE_MARGIN
            && !self.posted.contains_key(&(fork, tip + 1))
            && !self.timeouts_raised.contains(&(fork, tip))
        {
            match self.proof_at(sm, tip) {
                Some(latest) => {
                    self.timeouts_raised.insert((fork, tip));
                    actions.push(ChainAction::DisputeTimeout { latest });
                }
                None => {
                    // Only issuer-signed: make it provable by posting it first.
                    if let Some(entry) = sm.agreement().entry(tip)
                        && let Some(sig) = entry.signatures.get(&entry.transaction.participant)
                        && self.posting.insert((fork, tip))
                    {
                        actions.push(ChainAction::PostCalldata {
                            transaction: entry.transaction.clone(),
                            signature: *sig,
                        });
                    }
                }
            }
        }
        actions
    }

    /// Challenge the running dispute when we can show better: a later N-signed state, or our
    /// own timely calldata against a timeout dispute that accuses us.
    fn maybe_challenge<S: Signer>(&mut self, sm: &StateManager<S>) -> Vec<ChainAction> {
        let Some(running) = &self.running else {
            return Vec::new();
        };
        if running.challenge_sent || running.record.challenged || running.record.fork != sm.fork().fork {
            return Vec::new();
        }
        let record = running.record.clone();
        let proof = self.own_timely_post(sm, &record).or_else(|| {
            // A later N-signed state replaces the disputed one (and defeats a timeout or exit).
            self.best_signed(sm)
                .filter(|p| p.transaction.height > record.height)
        });
        let Some(proof) = proof else { return Vec::new() };
        if let Some(running) = &mut self.running {
            running.challenge_sent = true;
        }
        vec![ChainAction::Challenge { record, proof }]
    }

    /// Accused of a timeout, our calldata at the next height, posted by the writer deadline.
    fn own_timely_post<S: Signer>(&self, sm: &StateManager<S>, record: &DisputeRecord) -> Option<StateProof> {
        if record.kind != DisputeKind::Timeout || record.target != self.me {
            return None;
        }
        let (tx, sig, ts) = self.posted.get(&(record.fork, record.height + 1))?;
        if *ts > record.writer_deadline {
            return None;
        }
        let state = sm.state_at(tx.height)?.clone();
        Some(StateProof {
            kind: ProofKind::Posted,
            transaction: tx.clone(),
            signatures: vec![*sig],
            state,
        })
    }

    /// Timestamp of the transaction at `height`, or of the fork's genesis.
    fn timestamp_at<S: Signer>(&self, sm: &StateManager<S>, height: u64) -> u64 {
        if height <= sm.fork().genesis_height {
            return sm.fork().genesis_timestamp;
        }
        sm.agreement()
            .entry(height)
            .map_or(sm.tip_timestamp(), |e| e.transaction.timestamp)
    }

    /// A proof of the state at `height` of the current fork: the genesis, N-signed, or posted on
    /// chain; `None` when the state has no such evidence (yet).
    pub fn proof_at<S: Signer>(&self, sm: &StateManager<S>, height: u64) -> Option<StateProof> {
        let fork = sm.fork();
        let state = sm.state_at(height)?.clone();
        if height == fork.genesis_height {
            return Some(StateProof {
                kind: ProofKind::Genesis,
                transaction: Transaction::default(),
                signatures: vec![],
                state,
            });
        }
        let entry = sm.agreement().entry(height)?;
        let ordered: Option<Vec<Signature>> = fork
            .participants
            .iter()
            .map(|p| entry.signatures.get(p).copied())
            .collect();
        if let Some(signatures) = ordered {
            return Some(StateProof {
                kind: ProofKind::Signed,
                transaction: entry.transaction.clone(),
                signatures,
                state,
            });
        }
        let (tx, sig, _) = self.posted.get(&(fork.fork, height))?;
        Some(StateProof {
            kind: ProofKind::Posted,
            transaction: tx.clone(),
            signatures: vec![*sig],
            state,
        })
    }

    /// The highest N-signed state we hold.
    fn best_signed<S: Signer>(&self, sm: &StateManager<S>) -> Option<StateProof> {
        let genesis = sm.fork().genesis_height;
        (genesis + 1..=sm.tip())
            .rev()
            .filter_map(|h| self.proof_at(sm, h))
            .find(|p| p.kind == ProofKind::Signed)
    }

    /// The highest provable state: N-signed, posted or the genesis.
    fn best_proof<S: Signer>(&self, sm: &StateManager<S>) -> Option<StateProof> {
        let genesis = sm.fork().genesis_height;
        (genesis..=sm.tip()).rev().find_map(|h| self.proof_at(sm, h))
    }
}
