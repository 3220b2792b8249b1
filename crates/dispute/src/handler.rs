use std::collections::{BTreeMap, BTreeSet};

use entente_clock::Deadlines;
use entente_state_manager::{ForkInfo, StateManager};
use entente_types::{Address, B256, Bytes, Signature, SignedIntent, SignedTransaction, Signer, Transaction};

use crate::{
    CallOutcome, ChainAction, ChainEvent, DisputeKind, DisputeRecord, FraudKind, ProofKind, StateProof,
};

/// Seconds after a chain deadline before acting on it, so the block that carries the call is
/// surely past it.
const DEADLINE_MARGIN: u64 = 1;

/// Local milliseconds to wait for a head move we asked for before asking again (the call may
/// have failed, or lost a race).
const HEAD_RETRY_MS: u64 = 20_000;

/// Longest wait (local ms) before a call that was not sent is decided again (the chain is down):
/// the wait doubles from one second up to this, or up to `agreementTime` if that is shorter.
const MAX_UNSENT_BACKOFF_MS: u64 = 16_000;

/// Longest wait (local ms) before a call the chain reverted is decided again: the wait doubles
/// from two seconds per revert of the same call up to this. A revert usually means the chain
/// moved on (another participant's call came first) and the next decision sees that; one that
/// keeps reverting spends a little gas once a minute, and is never given up (a call given up for
/// good could leave a channel unsettled).
const MAX_REVERT_BACKOFF_MS: u64 = 64_000;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Running {
    record: DisputeRecord,
    state: Bytes,
    finalize_sent: bool,
    challenged_to: u64,
}

/// The chain's head of the current fork as this peer last saw it (docs/security.md, R2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Head {
    fork: u64,
    height: u64,
    state_hash: B256,
    /// When the next writer's window starts (chain time).
    since: u64,
}

/// Decides, for one peer and one channel, when to go to the chain and with what proof.
///
/// It is sans-IO like the state manager it watches: the host calls [`Self::on_chain_event`]
/// for every event of the channel and [`Self::on_tick`] periodically, and carries out the
/// returned [`ChainAction`]s. It follows the chain's **head** (the latest state the chain can
/// prove: the fork's genesis, an N-signed state, or a posted transaction the chain ran) and
/// keeps the rules of `docs/security.md` (O1-O6):
///
/// - a transaction this peer signed (its own, or one it confirmed) that lacks N signatures
///   at its confirmation deadline is brought on chain: the head is moved up to it by showing
///   the highest N-signed state and posting each transaction above it, in order (O2);
/// - when the next writer has let its deadline (`since + p2pTime + agreementTime +
///   chainFallbackTime`, chain time) pass, raise a timeout dispute from the tip, after making
///   the head equal to the tip;
/// - prove every equivocation seen (also a posted transaction that conflicts with ours), and
///   every fraud the pipeline refused;
/// - challenge a dispute with an N-signed state above the head; while a dispute other than a
///   timeout runs, post what we hold above the head (the verdict applies to the head);
/// - finalize a dispute once its challenge period is over; settle a finished game;
/// - after starting any dispute, sign nothing more on the fork (O3);
/// - on `SetState`, move the state manager to the new fork; a posted transaction of the next
///   height is applied like a received one.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DisputeHandler {
    me: Address,
    head: Option<Head>,
    /// Transactions seen posted on chain, by (fork, height): the head's history (a transaction
    /// the court wrote for a forced intent has no signature).
    posted: BTreeMap<(u64, u64), (Transaction, Option<Signature>, u64)>,
    /// The head move we asked for: (fork, height it brings the head to, local ms sent).
    pending_head: Option<(u64, u64, u64)>,
    /// Timeout disputes we raised, by (fork, height of the head).
    timeouts_raised: BTreeSet<(u64, u64)>,
    /// Equivocations already proven: (signer, fork, height).
    proven: BTreeSet<(Address, u64, u64)>,
    /// A posted transaction that conflicts with the one we hold at its height (same issuer).
    conflicts: Vec<(Transaction, Signature, Transaction, Signature)>,
    /// Fraudulent transactions already proven, by digest.
    frauds_proven: BTreeSet<B256>,
    running: Option<Running>,
    closed: bool,
    close_sent: bool,
    exit_sent: bool,
    /// Failed calls to decide again, each at its local time (ms).
    retries: Vec<(ChainAction, u64)>,
    /// Disputes we sent whose outcome is not known yet (name, fork, height): we sign nothing on
    /// their fork until each is refused by the chain (O3; a dispute that starts keeps it so).
    disputes_sent: BTreeSet<(String, u64, u64)>,
    /// Calls not sent in a row (the back-off's exponent).
    unsent: u32,
    /// Reverts per call (its name, fork and height).
    reverts: BTreeMap<(String, u64, u64), u32>,
    /// When (local ms) this peer first saw it could close: others than the designated sender
    /// wait a grace period from then.
    close_ready_at: Option<u64>,
    /// Participants seen signing anything (a designated sender is chosen among them, so a silent
    /// participant never makes the others wait).
    alive: BTreeSet<Address>,
    /// The state of the head when we hold none at its height (a branch others posted), derived
    /// by running the posted transactions: (its hash, the state).
    #[serde(default)]
    head_bytes: Option<(B256, Bytes)>,
    /// Intents the court holds, by the issuer's index: (fork, intent, chain time it is due).
    #[serde(default)]
    held: BTreeMap<u64, (u64, SignedIntent, u64)>,
    /// Our last `postIntent` or `forceIntent`: (fork, intent digest, local ms sent), so it is not
    /// sent again while it may be on its way.
    #[serde(default)]
    intent_sent: Option<(u64, B256, u64)>,
    /// The chain's transaction at our tip's next height we last tried to take (a peer that missed
    /// its event, or was above it then, takes it once it links).
    #[serde(skip)]
    linked_tried: Option<(u64, u64)>,
    /// Our participant asked to leave through the chain (`Channel::exit`).
    #[serde(default)]
    exit_wanted: bool,
}

impl DisputeHandler {
    /// A handler for the participant `me`.
    pub fn new(me: Address) -> Self {
        Self {
            me,
            head: None,
            posted: BTreeMap::new(),
            pending_head: None,
            timeouts_raised: BTreeSet::new(),
            proven: BTreeSet::new(),
            conflicts: Vec::new(),
            frauds_proven: BTreeSet::new(),
            running: None,
            closed: false,
            close_sent: false,
            exit_sent: false,
            retries: Vec::new(),
            disputes_sent: BTreeSet::new(),
            unsent: 0,
            reverts: BTreeMap::new(),
            close_ready_at: None,
            alive: BTreeSet::new(),
            head_bytes: None,
            held: BTreeMap::new(),
            intent_sent: None,
            linked_tried: None,
            exit_wanted: false,
        }
    }

    /// Feeds the outcome of a call this handler asked for (`action`, as returned by
    /// [`Self::on_tick`] or [`Self::on_chain_event`]). A mined call changes nothing here (its
    /// events follow). A failed one is decided again later, by [`Self::on_tick`]: a call that
    /// could not be sent (the chain is down, the transaction was dropped) after a wait that
    /// doubles from one second up to 16 s (or `agreementTime`), one the chain reverted after a wait
    /// that doubles from two seconds per revert of the same call up to 64 s. Other decisions are
    /// never held up by a failed call.
    pub fn on_call_outcome<S: Signer>(
        &mut self,
        sm: &mut StateManager<S>,
        action: &ChainAction,
        outcome: &CallOutcome,
        local_ms: u64,
    ) {
        let key = Self::call_key(sm, action);
        let dispute_key = (action.name().to_string(), key.0, key.1);
        if !matches!(outcome, CallOutcome::NotSent(_)) && self.disputes_sent.remove(&dispute_key) {
            // O3 holds while a dispute of ours may start: a refused one lifts it, unless another
            // of ours runs or may still start on this fork.
            let fork = sm.fork().fork;
            let ours_running = self
                .running
                .as_ref()
                .is_some_and(|r| r.record.fork == fork && r.record.submitter == self.me);
            let others_pending = self.disputes_sent.iter().any(|(_, f, _)| *f == fork);
            // (An exit our participant asked for keeps signing stopped until it lands.)
            if matches!(outcome, CallOutcome::Reverted(_))
                && !ours_running
                && !others_pending
                && !self.exit_wanted
            {
                sm.resume_signing();
            }
        }
        let delay = match outcome {
            CallOutcome::Mined => {
                self.unsent = 0;
                return;
            }
            CallOutcome::NotSent(_) => {
                self.unsent = self.unsent.saturating_add(1);
                let cap = MAX_UNSENT_BACKOFF_MS.min(1_000 * sm.spec().timing.agreement_time.max(1));
                (1_000u64 << (self.unsent - 1).min(4)).min(cap)
            }
            CallOutcome::Reverted(reason) => {
                let count = self
                    .reverts
                    .entry((action.name().to_string(), key.0, key.1))
                    .or_insert(0);
                *count = count.saturating_add(1);
                tracing::debug!(target: "entente::dispute", call = action.name(), fork = key.0, height = key.1, reverts = *count, %reason, "call reverted: deciding again later");
                (2_000u64 << (*count - 1).min(5)).min(MAX_REVERT_BACKOFF_MS)
            }
        };
        self.retries.push((action.clone(), local_ms + delay));
    }

    /// Sends `action`, a call that starts a dispute: from now on nothing is signed on this fork
    /// (O3) until the chain refuses it (see [`Self::on_call_outcome`]).
    fn start_dispute<S: Signer>(&mut self, sm: &mut StateManager<S>, action: ChainAction) -> ChainAction {
        sm.stop_signing();
        let key = Self::call_key(sm, &action);
        self.disputes_sent
            .insert((action.name().to_string(), key.0, key.1));
        action
    }

    /// The (fork, height) a call is about.
    fn call_key<S: Signer>(sm: &StateManager<S>, action: &ChainAction) -> (u64, u64) {
        let genesis = sm.fork().genesis_height;
        match action {
            ChainAction::PostCalldata { transaction, .. } => (transaction.forkCnt, transaction.height),
            ChainAction::Checkpoint { proof } | ChainAction::Close { proof } => {
                (sm.fork().fork, proof.height(genesis))
            }
            ChainAction::DisputeTimeout { latest } | ChainAction::RequestExit { latest } => {
                (sm.fork().fork, latest.height(genesis))
            }
            ChainAction::ProveDoubleSign { a, .. } => (a.0.forkCnt, a.0.height),
            ChainAction::ProveFraud { transaction, .. } => (transaction.forkCnt, transaction.height),
            ChainAction::Challenge { record, .. } | ChainAction::FinalizeDispute { record, .. } => {
                (record.fork, record.height)
            }
            ChainAction::PostIntent { intent } | ChainAction::ForceIntent { intent, .. } => {
                (sm.fork().fork, intent.nonce)
            }
        }
    }

    /// Forgets that the failed calls now due were sent, so that this tick's decisions can send
    /// them again if they are still wanted.
    fn release_retries<S: Signer>(&mut self, sm: &StateManager<S>, local_ms: u64) {
        if self.retries.is_empty() {
            return;
        }
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.retries)
            .into_iter()
            .partition(|(_, at)| *at <= local_ms);
        self.retries = later;
        let genesis = sm.fork().genesis_height;
        for (action, _) in due {
            let key = Self::call_key(sm, &action);
            match &action {
                ChainAction::PostCalldata { .. } | ChainAction::Checkpoint { .. } => self.pending_head = None,
                ChainAction::DisputeTimeout { .. } => {
                    self.timeouts_raised.retain(|(f, _)| *f != key.0);
                }
                ChainAction::ProveDoubleSign { a, .. } => {
                    self.proven.remove(&(a.0.participant, key.0, key.1));
                }
                ChainAction::ProveFraud { transaction, .. } => {
                    self.frauds_proven.remove(&sm.spec().domain.digest(transaction));
                }
                ChainAction::Challenge { proof, .. } => {
                    if let Some(running) = &mut self.running
                        && running.challenged_to == proof.height(genesis)
                    {
                        running.challenged_to = 0;
                    }
                }
                ChainAction::FinalizeDispute { record, .. } => {
                    if let Some(running) = &mut self.running
                        && running.record == *record
                    {
                        running.finalize_sent = false;
                    }
                }
                ChainAction::RequestExit { .. } => self.exit_sent = false,
                ChainAction::Close { .. } => self.close_sent = false,
                ChainAction::PostIntent { .. } | ChainAction::ForceIntent { .. } => self.intent_sent = None,
            }
        }
    }

    /// Notes who signed the latest transactions (a few heights back: confirmations come late).
    fn note_alive<S: Signer>(&mut self, sm: &StateManager<S>) {
        let from = sm.tip().saturating_sub(3).max(sm.fork().genesis_height + 1);
        for h in from..=sm.tip() {
            if let Some(entry) = sm.agreement().entry(h) {
                self.alive.extend(entry.signatures.keys().copied());
            }
        }
    }

    /// The participant expected to send a call everyone could send: among the fork's
    /// participants seen signing (and this one), not `except` (the accused or the removed), the
    /// one `rotate` picks. The others send it only after a grace period, so nobody pays for a
    /// reverted duplicate when the designated sender is there, and nobody waits for one that
    /// never signed anything.
    fn designated<S: Signer>(&self, sm: &StateManager<S>, rotate: u64, except: Address) -> Option<Address> {
        let candidates: Vec<Address> = sm
            .fork()
            .participants
            .iter()
            .copied()
            .filter(|p| *p != except && (*p == self.me || self.alive.contains(p)))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        Some(candidates[(rotate % candidates.len() as u64) as usize])
    }

    /// Seconds others than the designated sender wait before sending the same call.
    fn grace<S: Signer>(&self, sm: &StateManager<S>, designated: Option<Address>) -> u64 {
        if designated == Some(self.me) {
            0
        } else {
            sm.spec().timing.agreement_time
        }
    }

    /// Carries a handler restored from its persisted view (serde) on after a restart: the local
    /// clock starts again, so every waiting decision is taken again from `local_ms` (failed calls
    /// are retried at once, a head move in flight may be resent, a grace period starts again),
    /// and the state manager signs nothing on a fork where a dispute of ours runs or may still
    /// start (O3 survives the restart).
    pub fn resume_after_restart<S: Signer>(&mut self, sm: &mut StateManager<S>, local_ms: u64) {
        for (_, at) in &mut self.retries {
            *at = local_ms;
        }
        if let Some((_, _, sent)) = &mut self.pending_head {
            *sent = local_ms;
        }
        if let Some(at) = &mut self.close_ready_at {
            *at = local_ms;
        }
        let fork = sm.fork().fork;
        let ours_running = self
            .running
            .as_ref()
            .is_some_and(|r| r.record.fork == fork && r.record.submitter == self.me);
        let ours_pending = self.disputes_sent.iter().any(|(_, f, _)| *f == fork);
        if ours_running || ours_pending || self.exit_wanted {
            sm.stop_signing();
        }
        let now = sm.now_secs(local_ms);
        self.update_court_hold(sm, now);
    }

    /// Leaves through the chain: signs nothing more on this fork (O3), brings the head up to our
    /// tip, then requests the exit from it (see [`Self::on_tick`]). An exit from a state below a
    /// height we signed could be defeated with that signature, which slashes the exiter (R6).
    pub fn request_exit<S: Signer>(&mut self, sm: &mut StateManager<S>) {
        sm.stop_signing();
        self.exit_wanted = true;
    }

    /// The dispute the chain is running, if any.
    pub fn running_dispute(&self) -> Option<&DisputeRecord> {
        self.running.as_ref().map(|r| &r.record)
    }

    /// True once the channel settled on chain.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Height and state hash of the chain's head of the current fork, as last seen.
    pub fn head<S: Signer>(&self, sm: &StateManager<S>) -> (u64, B256) {
        let h = self.current_head(sm);
        (h.height, h.state_hash)
    }

    fn current_head<S: Signer>(&self, sm: &StateManager<S>) -> Head {
        let fork = sm.fork();
        match self.head {
            Some(h) if h.fork == fork.fork => h,
            _ => Head {
                fork: fork.fork,
                height: fork.genesis_height,
                state_hash: fork.genesis_state_hash,
                since: fork.genesis_timestamp,
            },
        }
    }

    /// The state of `head` as bytes: the running dispute's, one we hold at its height, or, for a
    /// posted transaction we hold no state for (a branch others posted), the state it produces
    /// from its parent's, run locally down the posted chain from the nearest state we hold.
    fn head_state<S: Signer>(&self, sm: &mut StateManager<S>, head: Head) -> Option<Bytes> {
        let known = |sm: &StateManager<S>, height: u64, hash: B256| -> Option<Bytes> {
            if let Some(r) = &self.running
                && entente_types::state_hash(&r.state) == hash
            {
                return Some(r.state.clone());
            }
            sm.state_at(height)
                .filter(|s| entente_types::state_hash(s) == hash)
                .cloned()
        };
        // Down the posted chain to a state we hold.
        let mut chain = Vec::new();
        let (mut height, mut hash) = (head.height, head.state_hash);
        let mut state = loop {
            if let Some(state) = known(sm, height, hash) {
                break state;
            }
            let (transaction, _, _) = self.posted.get(&(head.fork, height))?;
            if transaction.stateHash != hash || height == 0 {
                return None;
            }
            chain.push(transaction.clone());
            hash = transaction.prevStateHash;
            height -= 1;
        };
        // And up again, running each posted transaction.
        for transaction in chain.iter().rev() {
            state = sm.run_on(&state, transaction).ok()?;
            if entente_types::state_hash(&state) != transaction.stateHash {
                return None;
            }
        }
        Some(state)
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
            } => self.on_posted(sm, transaction, signature, timestamp, local_ms),
            ChainEvent::Checkpointed {
                fork,
                height,
                state_hash,
            } => {
                if fork == sm.fork().fork {
                    // The chain's anchor is now this state: posts above it were cut (R2), posts
                    // below it can no longer be.
                    self.posted.retain(|(f, _), _| *f != fork);
                    // A state at or below the head replaced posted states: the next writer's
                    // window starts when the chain took it (R2), about now.
                    let mut since = self.timestamp_at(sm, height);
                    if height <= self.current_head(sm).height {
                        since = since.max(sm.now_secs(local_ms));
                    }
                    self.head = Some(Head {
                        fork,
                        height,
                        state_hash,
                        since,
                    });
                }
            }
            ChainEvent::DisputeStarted { record, state }
            | ChainEvent::DisputeChallenged { record, state, .. } => {
                if record.fork == sm.fork().fork && record.height >= self.current_head(sm).height {
                    let head = self.current_head(sm);
                    if record.height > head.height || record.state_hash != head.state_hash {
                        let since = self.timestamp_at(sm, record.height);
                        self.head = Some(Head {
                            fork: record.fork,
                            height: record.height,
                            state_hash: record.state_hash,
                            since,
                        });
                    }
                }
                let challenged_to = self.running.as_ref().map_or(0, |r| r.challenged_to);
                self.running = Some(Running {
                    record,
                    state,
                    finalize_sent: false,
                    challenged_to,
                });
                let now = sm.now_secs(local_ms);
                actions.extend(self.maybe_challenge(sm, now));
            }
            ChainEvent::SetState {
                fork,
                genesis_height,
                genesis_timestamp,
                state,
                participants,
            } => {
                self.running = None;
                self.pending_head = None;
                self.close_sent = false;
                self.close_ready_at = None;
                self.exit_sent = false;
                let state_hash = entente_types::state_hash(&state);
                self.head = Some(Head {
                    fork,
                    height: genesis_height,
                    state_hash,
                    since: genesis_timestamp,
                });
                let info = ForkInfo {
                    fork,
                    genesis_height,
                    genesis_timestamp,
                    genesis_state_hash: state_hash,
                    participants,
                };
                if let Err(e) = sm.apply_fork(info, &state, local_ms) {
                    tracing::error!(target: "entente::dispute", error = %e, fork, "the enforced state does not load");
                }
                // An exit our participant asked for still stands on the new fork.
                if self.exit_wanted {
                    sm.stop_signing();
                }
            }
            ChainEvent::IntentPosted {
                fork,
                index,
                intent,
                due_at,
            } => {
                self.held.retain(|_, (f, _, _)| *f >= fork);
                self.held.insert(index, (fork, *intent, due_at));
                self.intent_sent = None;
            }
            ChainEvent::IntentVoided { fork, index, digest } => {
                if self
                    .held
                    .get(&index)
                    .is_some_and(|(f, i, _)| *f == fork && i.intent().digest() == digest)
                {
                    self.held.remove(&index);
                }
                self.intent_sent = None;
            }
            ChainEvent::IntentForced {
                transaction,
                timestamp,
            } => self.on_forced(sm, transaction, timestamp, local_ms),
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
        self.derive_head_state(sm);
        let now = sm.now_secs(local_ms);
        self.update_court_hold(sm, now);
        actions
    }

    /// Whether the court holds an intent of the current fork that can still be forced (from its
    /// post to the end of its window): the state manager then lets only the chain move an open
    /// channel (docs/protocol.md, section 11). Lapsed intents are forgotten, one more
    /// `agreementTime` after their window on our clock (a block stamped behind our clock may
    /// still carry a force).
    fn update_court_hold<S: Signer>(&mut self, sm: &mut StateManager<S>, now: u64) {
        let fork = sm.fork().fork;
        let window = sm.spec().timing.agreement_time;
        self.held.retain(|_, (f, _, due)| {
            *f > fork || (*f == fork && now < due.saturating_add(2 * window) + DEADLINE_MARGIN)
        });
        sm.set_court_hold(self.held.values().any(|(f, _, _)| *f == fork));
    }

    /// Takes the chain's transaction at our tip's next height if it links to our tip and we have
    /// not tried it yet (its event came while we were elsewhere).
    fn take_linked_head<S: Signer>(&mut self, sm: &mut StateManager<S>, local_ms: u64) {
        let fork = sm.fork().fork;
        let next = sm.tip() + 1;
        if self.linked_tried == Some((fork, next)) {
            return;
        }
        let Some((transaction, signature, _)) = self.posted.get(&(fork, next)) else {
            return;
        };
        if transaction.prevStateHash != sm.tip_state_hash() {
            return;
        }
        self.linked_tried = Some((fork, next));
        let transaction = transaction.clone();
        let _ = match signature {
            Some(signature) => sm.apply_posted(
                transaction.participant,
                SignedTransaction {
                    transaction,
                    signature: *signature,
                },
                local_ms,
            ),
            None => sm.apply_forced(transaction, local_ms),
        };
    }

    /// Keeps the state of a head we hold no state for (see `head_bytes`), so that it can be
    /// shown on chain (an exit, a checkpoint) as any other.
    fn derive_head_state<S: Signer>(&mut self, sm: &mut StateManager<S>) {
        let head = self.current_head(sm);
        let held = sm
            .state_at(head.height)
            .is_some_and(|s| entente_types::state_hash(s) == head.state_hash);
        if held
            || self
                .head_bytes
                .as_ref()
                .is_some_and(|(h, _)| *h == head.state_hash)
        {
            return;
        }
        self.head_bytes = self.head_state(sm, head).map(|state| (head.state_hash, state));
    }

    /// A posted transaction: the chain ran it and its state is the new head.
    fn on_posted<S: Signer>(
        &mut self,
        sm: &mut StateManager<S>,
        transaction: Transaction,
        signature: Signature,
        timestamp: u64,
        local_ms: u64,
    ) {
        let fork = transaction.forkCnt;
        let height = transaction.height;
        if fork != sm.fork().fork {
            return;
        }
        self.head = Some(Head {
            fork,
            height,
            state_hash: transaction.stateHash,
            since: transaction.timestamp.max(timestamp),
        });
        self.posted
            .insert((fork, height), (transaction.clone(), Some(signature), timestamp));
        if height == sm.tip() + 1 {
            let from = transaction.participant;
            let st = SignedTransaction {
                transaction,
                signature,
            };
            let _ = sm.apply_posted(from, st, local_ms);
        } else if let Some(entry) = sm.agreement().entry(height)
            && entry.digest != sm.spec().domain.digest(&transaction)
            && entry.transaction.participant == transaction.participant
            && let Some(ours) = entry.signatures.get(&transaction.participant)
        {
            // The writer posted another transaction than the one it sent us: an equivocation.
            self.conflicts
                .push((entry.transaction.clone(), *ours, transaction, signature));
        }
    }

    /// A held intent the court applied on the head: its transaction (written by the court, signed
    /// by nobody) is the new head, as if posted.
    fn on_forced<S: Signer>(
        &mut self,
        sm: &mut StateManager<S>,
        transaction: Transaction,
        timestamp: u64,
        local_ms: u64,
    ) {
        let (fork, height) = (transaction.forkCnt, transaction.height);
        if fork != sm.fork().fork {
            return;
        }
        if let Some(index) = sm
            .fork()
            .participants
            .iter()
            .position(|p| *p == transaction.participant)
        {
            self.held.remove(&(index as u64));
        }
        self.intent_sent = None;
        self.head = Some(Head {
            fork,
            height,
            state_hash: transaction.stateHash,
            since: transaction.timestamp.max(timestamp),
        });
        self.posted
            .insert((fork, height), (transaction.clone(), None, timestamp));
        if height == sm.tip() + 1 {
            let _ = sm.apply_forced(transaction, local_ms);
        }
    }

    /// Our intent that the sequencers left out (docs/protocol.md, section 11): bring the chain's
    /// head up to our tip (so that the court's transaction for it lands on a height where we
    /// signed nothing), give it to the court, and force it once due, after any held intent that
    /// fell due before it.
    fn court_intent<S: Signer>(
        &mut self,
        sm: &mut StateManager<S>,
        now: u64,
        local_ms: u64,
    ) -> Option<ChainAction> {
        let fork = sm.fork().fork;
        let index = sm.fork().participants.iter().position(|p| *p == self.me)? as u64;
        let intent = sm.left_out_intent(local_ms)?;
        let digest = intent.intent().digest();
        if let Some((f, _, sent)) = self.intent_sent
            && f == fork
            && local_ms < sent + HEAD_RETRY_MS
        {
            return None;
        }
        let head = self.current_head(sm);
        let at_tip = head.height == sm.tip() && head.state_hash == sm.tip_state_hash();
        let ours_held = self
            .held
            .get(&index)
            .is_some_and(|(f, i, _)| *f == fork && i.intent().digest() == digest);
        if !ours_held {
            // The court takes it only if it lives until it is due.
            let timing = sm.spec().timing;
            if intent.not_after < now + timing.agreement_time + DEADLINE_MARGIN {
                return None;
            }
            if !at_tip {
                return self.advance_head(sm, sm.tip(), local_ms);
            }
            self.intent_sent = Some((fork, digest, local_ms));
            return Some(ChainAction::PostIntent {
                intent: Box::new(intent),
            });
        }
        let (_, _, due_at) = self.held.get(&index)?;
        if now < due_at + DEADLINE_MARGIN {
            return None;
        }
        if !at_tip {
            return self.advance_head(sm, sm.tip(), local_ms);
        }
        // Held intents go in the order they fell due: the first of them, ours or another's.
        let (first, (_, first_intent, _)) = self
            .held
            .iter()
            .filter(|(_, (f, _, _))| *f == fork)
            .min_by_key(|(i, (_, _, due))| (*due, **i))?;
        let (first, first_intent) = (*first, first_intent.clone());
        let parent = self.head_proof(sm)?;
        self.intent_sent = Some((fork, first_intent.intent().digest(), local_ms));
        Some(ChainAction::ForceIntent {
            index: first,
            intent: Box::new(first_intent),
            parent,
        })
    }

    /// Periodic decisions at local time `local_ms`.
    pub fn on_tick<S: Signer>(&mut self, sm: &mut StateManager<S>, local_ms: u64) -> Vec<ChainAction> {
        if self.closed || !sm.fork().participants.contains(&self.me) {
            return Vec::new();
        }
        self.release_retries(sm, local_ms);
        self.note_alive(sm);
        let now = sm.now_secs(local_ms);
        self.update_court_hold(sm, now);
        self.take_linked_head(sm, local_ms);
        // Our tip on chain counts as proven: the next open height may be signed (in step).
        let head = self.current_head(sm);
        sm.note_head(head.height, head.state_hash, local_ms);
        let mut actions = Vec::new();
        let fork = sm.fork().fork;
        let timing = sm.spec().timing;
        if let Some((f, height, _)) = self.pending_head
            && (f != fork || self.current_head(sm).height >= height)
        {
            self.pending_head = None;
        }

        // A running dispute: finalize it when its period is over; challenge it if we can; while
        // it is not a timeout, bring the head up to our tip (the verdict applies to the head).
        if let Some(running) = &self.running {
            let record = running.record.clone();
            let finalizer = self.designated(sm, record.height, record.target);
            let grace = self.grace(sm, finalizer);
            if now > record.deadline + DEADLINE_MARGIN + grace && !running.finalize_sent {
                let head = self.current_head(sm);
                if let Some(state) = self.head_state(sm, head) {
                    if let Some(running) = &mut self.running {
                        running.finalize_sent = true;
                    }
                    actions.push(ChainAction::FinalizeDispute { record, state });
                    return actions;
                }
            }
            actions.extend(self.maybe_challenge(sm, now));
            if actions.is_empty()
                && record.kind != DisputeKind::Timeout
                && now <= record.deadline
                && let Some(action) = self.advance_head(sm, sm.tip(), local_ms)
            {
                actions.push(action);
            }
            return actions;
        }

        // The game is over and final: settle with the N-signed final state.
        if sm.is_game_over()
            && sm.finalized_height() == sm.tip()
            && !self.close_sent
            && let Some(proof) = self.signed_proof(sm, sm.tip())
            && local_ms
                >= *self.close_ready_at.get_or_insert(local_ms)
                    + 1_000 * self.grace(sm, self.designated(sm, sm.tip(), Address::ZERO))
        {
            self.close_sent = true;
            actions.push(ChainAction::Close { proof });
            return actions;
        }

        // The game is over but no N-signed final state came by the confirmation deadline (a peer
        // withholds its signature), or our participant asked to leave: bring the head to our tip,
        // then exit through the chain from it (a finished game then settles for everyone).
        let game_stuck = sm.is_game_over() && now > Deadlines::after(sm.tip_timestamp(), &timing).confirm_by;
        if (game_stuck || self.exit_wanted) && !self.exit_sent {
            if let Some(action) = self.advance_head(sm, sm.tip(), local_ms) {
                actions.push(action);
                return actions;
            }
            if self.pending_head.is_none()
                && let Some(latest) = self.latest_proof(sm)
            {
                self.exit_sent = true;
                let action = self.start_dispute(sm, ChainAction::RequestExit { latest });
                actions.push(action);
                return actions;
            }
        }

        // Equivocations: prove each once.
        if let Some(action) = self.prove_equivocation(sm) {
            let action = self.start_dispute(sm, action);
            actions.push(action);
            return actions;
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
            let action = self.start_dispute(
                sm,
                ChainAction::ProveFraud {
                    kind: fraud.kind,
                    prev,
                    transaction: fraud.transaction,
                    signature: fraud.signature,
                },
            );
            actions.push(action);
            return actions;
        }

        // While the court holds an intent, bring the head up to our tip before it falls due: a
        // forced intent then lands above every height we signed (section 11 of docs/protocol.md).
        if sm.court_holds()
            && sm.is_open()
            && let Some(action) = self.advance_head(sm, sm.tip(), local_ms)
        {
            actions.push(action);
            return actions;
        }

        // Our intent the sequencers left out goes to the court.
        if let Some(action) = self.court_intent(sm, now, local_ms) {
            actions.push(action);
            return actions;
        }

        // A transaction we signed that lacks N signatures at its confirmation deadline: bring it
        // on chain (O2), so nobody can time us out or out-challenge us with it.
        if let Some(target) = self.unsecured_signed_height(sm, now)
            && let Some(action) = self.advance_head(sm, target, local_ms)
        {
            actions.push(action);
            return actions;
        }

        // The next writer let its deadline pass: dispute it from our tip, once the head is there.
        // Only a writer the machine obliges: in an open state nobody is (the chain refuses a
        // timeout there too, `NoWriterExpected`).
        let writer = sm.obliged_writer().unwrap_or(Address::ZERO);
        let tip = sm.tip();
        if writer != self.me
            && writer != Address::ZERO
            && !sm.is_game_over()
            && !self.timeouts_raised.contains(&(fork, tip))
            && now
                > Deadlines::after(self.since_at_tip(sm), &timing).calldata_by
                    + DEADLINE_MARGIN
                    + self.grace(sm, self.designated(sm, tip, writer))
        {
            match self.latest_proof(sm) {
                Some(latest) => {
                    self.timeouts_raised.insert((fork, tip));
                    let action = self.start_dispute(sm, ChainAction::DisputeTimeout { latest });
                    actions.push(action);
                }
                None => {
                    if let Some(action) = self.advance_head(sm, tip, local_ms) {
                        actions.push(action);
                    }
                }
            }
        }
        actions
    }

    /// The local time (ms) by which [`Self::on_tick`] must run again if no input comes before
    /// (a chain event, a call outcome, a change of the state manager): `Some(local_ms)` while it
    /// has something to look at on every tick (a dispute, a call to retry, a head move under
    /// way, a held intent, evidence to prove, a finished game, an exit), otherwise the first
    /// chain deadline it acts on (a signed height left unsecured, the obliged writer's timeout),
    /// converted to local time, or `None` when nothing would ever be due. Read-only: a host that
    /// holds many quiet channels ticks each one only then (and after its inputs), instead of
    /// every channel every few hundred milliseconds. Between an input and the next tick the
    /// handler's view (who is alive, the head) may be stale: hosts tick once after any input,
    /// and call this at the end of that tick.
    pub fn wake_at<S: Signer>(&self, sm: &StateManager<S>, local_ms: u64) -> Option<u64> {
        if self.closed || !sm.fork().participants.contains(&self.me) {
            return None;
        }
        let fork = sm.fork().fork;
        let busy = !self.retries.is_empty()
            || self.running.is_some()
            || self.pending_head.is_some()
            || !self.held.is_empty()
            || self.exit_wanted
            || sm.is_game_over()
            || sm.court_holds()
            || sm.needs_ticks()
            || self.posted.contains_key(&(fork, sm.tip() + 1))
                && self.linked_tried != Some((fork, sm.tip() + 1))
            || sm.evidence().iter().any(|e| {
                e.fork == fork && e.second.0.is_some() && !self.proven.contains(&(e.signer, e.fork, e.height))
            })
            || self
                .conflicts
                .iter()
                .any(|c| c.0.forkCnt == fork && !self.proven.contains(&(c.0.participant, fork, c.0.height)))
            || sm
                .fraud_evidence()
                .iter()
                .any(|f| f.transaction.forkCnt == fork && !self.frauds_proven.contains(&f.digest));
        if busy {
            return Some(local_ms);
        }
        let timing = sm.spec().timing;
        // The chain second after which a decision is taken (`now > due`), as local time.
        let at = |due: u64| sm.clock().local_ms_at(due.saturating_add(1));
        let mut wake: Option<u64> = None;
        let mut due = |t: u64| wake = Some(wake.map_or(t, |w| w.min(t)));
        // Signed heights no N-signed state covers: brought on chain at their deadline.
        let genesis = sm.fork().genesis_height;
        let signed_top = (genesis + 1..=sm.tip())
            .rev()
            .find(|h| self.n_signed(sm, *h))
            .unwrap_or(genesis);
        for h in signed_top + 1..=sm.tip() {
            if let Some(e) = sm.agreement().entry(h)
                && e.signatures.contains_key(&self.me)
            {
                let grace = if e.transaction.participant == self.me {
                    0
                } else {
                    timing.chain_fallback_time / 2
                };
                let start = if sm.written_open(h) {
                    e.transaction.timestamp
                } else {
                    self.timestamp_at(sm, h - 1)
                };
                due(at(Deadlines::after(start, &timing)
                    .confirm_by
                    .saturating_add(grace)));
            }
        }
        // The obliged writer's timeout.
        let tip = sm.tip();
        if let Some(writer) = sm.obliged_writer()
            && writer != self.me
            && !self.timeouts_raised.contains(&(fork, tip))
        {
            let grace = self.grace(sm, self.designated(sm, tip, writer));
            due(at(Deadlines::after(self.since_at_tip(sm), &timing)
                .calldata_by
                .saturating_add(DEADLINE_MARGIN)
                .saturating_add(grace)));
        }
        wake
    }

    /// Challenge the running dispute with an N-signed state above the head.
    fn maybe_challenge<S: Signer>(&mut self, sm: &StateManager<S>, now: u64) -> Vec<ChainAction> {
        let Some(running) = &self.running else {
            return Vec::new();
        };
        // The chain takes no challenge after the dispute's deadline, and a challenge of our own
        // undefeated timeout or exit would slash us.
        if now > running.record.deadline || self.own_slashable(&running.record) {
            return Vec::new();
        }
        if running.record.fork != sm.fork().fork {
            return Vec::new();
        }
        let head = self.current_head(sm);
        // A state above the head, or one that cuts a conflicting posted branch (R2).
        let Some(proof) = self
            .best_signed(sm)
            .filter(|p| p.transaction.height > head.height && p.transaction.height > running.challenged_to)
            .or_else(|| {
                self.conflicting_signed(sm)
                    .filter(|p| p.transaction.height != running.challenged_to)
            })
        else {
            return Vec::new();
        };
        let record = running.record.clone();
        if let Some(running) = &mut self.running {
            running.challenged_to = proof.transaction.height;
        }
        vec![ChainAction::Challenge { record, proof }]
    }

    /// A double signature to prove: one the agreement saw, or a posted transaction that conflicts
    /// with the one its writer sent us.
    fn prove_equivocation<S: Signer>(&mut self, sm: &StateManager<S>) -> Option<ChainAction> {
        let fork = sm.fork().fork;
        let mut found = sm
            .evidence()
            .iter()
            .filter(|e| e.fork == fork && !self.proven.contains(&(e.signer, e.fork, e.height)))
            .find_map(|e| {
                let second = e.second.0.clone()?;
                Some((e.signer, e.height, e.first.clone(), (second, e.second.2)))
            });
        if found.is_none() {
            found = self
                .conflicts
                .iter()
                .filter(|c| c.0.forkCnt == fork)
                .find(|c| !self.proven.contains(&(c.0.participant, fork, c.0.height)))
                .map(|c| {
                    (
                        c.0.participant,
                        c.0.height,
                        (c.0.clone(), c.1),
                        (c.2.clone(), c.3),
                    )
                });
        }
        let (signer, height, a, b) = found?;
        let latest = self.latest_proof(sm).or_else(|| self.head_proof(sm))?;
        self.proven.insert((signer, fork, height));
        Some(ChainAction::ProveDoubleSign {
            latest,
            a: Box::new(a),
            b: Box::new(b),
        })
    }

    /// The highest height at or below the tip that we signed (our transaction or a confirmation),
    /// that no N-signed state at or above it covers, and whose confirmation deadline passed.
    fn unsecured_signed_height<S: Signer>(&self, sm: &StateManager<S>, now: u64) -> Option<u64> {
        let fork = sm.fork();
        let timing = sm.spec().timing;
        let signed_top = (fork.genesis_height + 1..=sm.tip())
            .rev()
            .find(|h| self.n_signed(sm, *h))
            .unwrap_or(fork.genesis_height);
        (signed_top + 1..=sm.tip()).rev().find(|h| {
            sm.agreement().entry(*h).is_some_and(|e| {
                // Its writer posts first; the others who confirmed it wait half the fallback window
                // (it still lands before the writer's deadline), so that one post is the rule.
                let grace = if e.transaction.participant == self.me {
                    0
                } else {
                    timing.chain_fallback_time / 2
                };
                // A height written in an open state: nobody was obliged to write it, so its
                // window runs from its own timestamp, not from its parent's.
                let start = if sm.written_open(*h) {
                    e.transaction.timestamp
                } else {
                    self.timestamp_at(sm, h - 1)
                };
                e.signatures.contains_key(&self.me)
                    && now > Deadlines::after(start, &timing).confirm_by + grace
            })
        })
    }

    /// The next call that moves the chain's head towards `target` (at most our tip): show the
    /// highest N-signed state up to `target`, or post the next transaction above the head with
    /// its parent. `None` when the head is there, a move is under way, or we cannot.
    fn advance_head<S: Signer>(
        &mut self,
        sm: &StateManager<S>,
        target: u64,
        local_ms: u64,
    ) -> Option<ChainAction> {
        let head = self.current_head(sm);
        let fork = sm.fork().fork;
        if let Some((f, _, sent)) = self.pending_head
            && f == fork
            && local_ms < sent + HEAD_RETRY_MS
        {
            return None;
        }
        // The head may sit on a posted branch that conflicts with a state we hold N-signed (a
        // writer equivocated): the chain lets that state cut the branch (R2).
        if let Some(proof) = self.conflicting_signed(sm) {
            let action = self.show_signed(proof)?;
            self.pending_head = Some((fork, proof_height(&action), local_ms));
            return Some(action);
        }
        if head.height >= target {
            return None;
        }
        let signed = (head.height + 1..=target)
            .rev()
            .find(|h| self.n_signed(sm, *h))
            .and_then(|h| self.signed_proof(sm, h));
        let (action, reaches) = match signed {
            Some(proof) if proof.transaction.height == target => {
                let h = proof.transaction.height;
                (self.show_signed(proof)?, h)
            }
            Some(parent) => {
                let h = parent.transaction.height + 1;
                let (transaction, signature) = self.link(sm, h)?;
                (
                    ChainAction::PostCalldata {
                        transaction,
                        signature,
                        parent,
                    },
                    h,
                )
            }
            None => {
                let parent = self.head_proof(sm)?;
                let h = head.height + 1;
                let (transaction, signature) = self.link(sm, h)?;
                (
                    ChainAction::PostCalldata {
                        transaction,
                        signature,
                        parent,
                    },
                    h,
                )
            }
        };
        self.pending_head = Some((fork, reaches, local_ms));
        Some(action)
    }

    /// The call that makes the N-signed `proof` the head: `checkpoint`, or, while a dispute of
    /// this fork runs (when the chain takes no checkpoint), `challenge`, which moves the head the
    /// same way (R2).
    fn show_signed(&self, proof: StateProof) -> Option<ChainAction> {
        match &self.running {
            Some(running) if running.record.fork == proof.transaction.forkCnt => {
                (!self.own_slashable(&running.record)).then(|| ChainAction::Challenge {
                    record: running.record.clone(),
                    proof,
                })
            }
            _ => Some(ChainAction::Checkpoint { proof }),
        }
    }

    /// True for our own timeout or exit that nobody defeated: a challenge of it, by anyone,
    /// slashes its submitter (R5, R6), so we never send one.
    fn own_slashable(&self, record: &DisputeRecord) -> bool {
        record.submitter == self.me
            && !record.challenged
            && matches!(record.kind, DisputeKind::Timeout | DisputeKind::Exit)
    }

    /// Our highest N-signed state at a height where the chain's posted history holds another state.
    fn conflicting_signed<S: Signer>(&self, sm: &StateManager<S>) -> Option<StateProof> {
        let fork = sm.fork().fork;
        let head = self.current_head(sm);
        (sm.fork().genesis_height + 1..=sm.tip().min(head.height))
            .rev()
            .find_map(|h| {
                let (posted, _, _) = self.posted.get(&(fork, h))?;
                let entry = sm.agreement().entry(h)?;
                if posted.stateHash == entry.transaction.stateHash || !self.n_signed(sm, h) {
                    return None;
                }
                self.signed_proof(sm, h)
            })
    }

    /// Our transaction at `height` with its issuer's signature.
    fn link<S: Signer>(&self, sm: &StateManager<S>, height: u64) -> Option<(Transaction, Signature)> {
        let entry = sm.agreement().entry(height)?;
        let sig = entry.signatures.get(&entry.transaction.participant)?;
        Some((entry.transaction.clone(), *sig))
    }

    /// When the next writer's window after our tip started: the head's `since` if the head is our
    /// tip, else the tip's stamp (for an N-signed tip, that is what the chain uses; for a tip that
    /// must be posted first, it is when the post becomes due).
    fn since_at_tip<S: Signer>(&self, sm: &StateManager<S>) -> u64 {
        let head = self.current_head(sm);
        if head.height == sm.tip() && head.state_hash == sm.tip_state_hash() {
            head.since
        } else {
            sm.tip_timestamp()
        }
    }

    /// A proof that the chain accepts as the latest state at our tip: the head if it is our tip,
    /// or the tip N-signed.
    fn latest_proof<S: Signer>(&self, sm: &StateManager<S>) -> Option<StateProof> {
        let head = self.current_head(sm);
        let tip = sm.tip();
        if head.height == tip && head.state_hash == sm.tip_state_hash() {
            return self.head_proof(sm);
        }
        if head.height < tip {
            return self.signed_proof(sm, tip);
        }
        None
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

    /// Whether we hold every current participant's signature on our transaction at `height`.
    fn n_signed<S: Signer>(&self, sm: &StateManager<S>, height: u64) -> bool {
        let fork = sm.fork();
        height > fork.genesis_height
            && sm.agreement().entry(height).is_some_and(|entry| {
                entry.signatures.len() >= fork.participants.len()
                    && fork.participants.iter().all(|p| entry.signatures.contains_key(p))
            })
    }

    /// The N-signed proof of our transaction at `height`, if we hold every signature.
    fn signed_proof<S: Signer>(&self, sm: &StateManager<S>, height: u64) -> Option<StateProof> {
        let fork = sm.fork();
        if height <= fork.genesis_height {
            return None;
        }
        let entry = sm.agreement().entry(height)?;
        let signatures: Vec<Signature> = fork
            .participants
            .iter()
            .map(|p| entry.signatures.get(p).copied())
            .collect::<Option<_>>()?;
        Some(StateProof {
            kind: ProofKind::Signed,
            transaction: entry.transaction.clone(),
            signatures,
            state: sm.state_at(height)?.clone(),
        })
    }

    /// The head as a proof (`Genesis` at the fork's genesis, else `Posted`), if we hold its state.
    fn head_proof<S: Signer>(&self, sm: &StateManager<S>) -> Option<StateProof> {
        let head = self.current_head(sm);
        let state = sm
            .state_at(head.height)
            .filter(|s| entente_types::state_hash(s) == head.state_hash)
            .or_else(|| {
                self.head_bytes
                    .as_ref()
                    .filter(|(h, _)| *h == head.state_hash)
                    .map(|(_, s)| s)
            })?;
        let kind = if head.height == sm.fork().genesis_height {
            ProofKind::Genesis
        } else {
            ProofKind::Posted
        };
        Some(StateProof {
            kind,
            transaction: Transaction::default(),
            signatures: vec![],
            state: state.clone(),
        })
    }

    /// A proof of the state at `height` of the current fork: the genesis, N-signed, or the head;
    /// `None` when the state has no such evidence (yet).
    pub fn proof_at<S: Signer>(&self, sm: &StateManager<S>, height: u64) -> Option<StateProof> {
        let fork = sm.fork();
        if height == fork.genesis_height {
            return Some(StateProof {
                kind: ProofKind::Genesis,
                transaction: Transaction::default(),
                signatures: vec![],
                state: sm.state_at(height)?.clone(),
            });
        }
        if let Some(p) = self.signed_proof(sm, height) {
            return Some(p);
        }
        if self.current_head(sm).height == height {
            return self.head_proof(sm);
        }
        None
    }

    /// The highest N-signed state we hold.
    fn best_signed<S: Signer>(&self, sm: &StateManager<S>) -> Option<StateProof> {
        let genesis = sm.fork().genesis_height;
        (genesis + 1..=sm.tip())
            .rev()
            .find(|h| self.n_signed(sm, *h))
            .and_then(|h| self.signed_proof(sm, h))
    }
}

/// The height of the state a `checkpoint` or `challenge` shows.
fn proof_height(action: &ChainAction) -> u64 {
    match action {
        ChainAction::Checkpoint { proof } | ChainAction::Challenge { proof, .. } => proof.transaction.height,
        _ => 0,
    }
}
