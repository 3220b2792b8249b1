use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use entente_agreement::{AgreementManager, Equivocation};
use entente_clock::{LogicalClock, TimestampError, check_timestamp};
use entente_evm_runtime::{EvmError, MachineCode, MachineInstance, apply_intents_calldata};
use entente_types::{
    Address, AgreementMode, B256, Bytes, ChannelSpec, Confirmation, Envelope, Message, Signature,
    SignedIntent, SignedTransaction, Signer, SyncRequest, SyncResponse, Transaction, recover_signer,
    state_hash,
};

use crate::{Effect, Event, PersistRecord, Rejection, SetupError, SubmitError};

/// Tuning of one channel's state manager.
#[derive(Clone)]
pub struct Config {
    /// Gas limit of every state-machine call.
    pub gas_limit: u64,
    /// Most future-height transactions and early confirmations kept while waiting for a gap.
    pub max_buffered: usize,
    /// Resend own unfinalized transactions and confirmations after this long without finality
    /// progress (milliseconds of local time).
    pub resend_interval_ms: u64,
    /// Most records sent in one sync answer.
    pub sync_batch: usize,
    /// Recovers the signer of a digest ([`recover_signer`] by default). A host that runs many
    /// peers in one process, such as the simulation, can share the work between them, and a
    /// node can recover signers as messages arrive, off its event loop; the function must
    /// answer exactly as [`recover_signer`] does (malformed and high-s signatures refused).
    pub recover: Recover,
}

/// A signature-recovery function (see [`Config::recover`]).
pub type Recover = Arc<dyn Fn(&B256, &Signature) -> Result<Address, entente_types::TypesError> + Send + Sync>;

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("gas_limit", &self.gas_limit)
            .field("max_buffered", &self.max_buffered)
            .field("resend_interval_ms", &self.resend_interval_ms)
            .field("sync_batch", &self.sync_batch)
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            gas_limit: 5_000_000,
            max_buffered: 256,
            resend_interval_ms: 500,
            sync_batch: 64,
            recover: Arc::new(recover_signer),
        }
    }
}

/// What an accepted message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// A transaction was applied at this height (plus any buffered ones it unblocked).
    Applied(u64),
    /// Kept until the transactions before it arrive.
    Buffered,
    /// A confirmation was recorded.
    Confirmed,
    /// Nothing new (a duplicate confirmation, a sync request answered, ...).
    Noop,
}

/// Most fraud evidence kept per channel.
const MAX_FRAUD_EVIDENCE: usize = 16;
/// Most intents under way from one issuer.
const MAX_INTENTS_PER_ISSUER: usize = 64;
/// Most intents under way in all.
const MAX_INTENTS: usize = 1024;
/// Most intents one sequencer transaction applies.
const MAX_BATCH: usize = 64;
/// Largest move an intent may carry (bytes of calldata).
pub const MAX_INTENT_DATA: usize = 4 * 1024;
/// Most bytes of intent moves in one sequencer transaction (well under a message's and a
/// chain transaction's size).
const MAX_BATCH_BYTES: usize = 64 * 1024;
/// How far ahead of an issuer's next nonce an intent may be.
const NONCE_WINDOW: u64 = 64;

/// The fraud a refused, issuer-signed transaction shows (what `proveFraud` can claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FraudKind {
    /// It does not follow from its previous state (revert or another state hash).
    InvalidTransition,
    /// Its timestamp is before its parent's.
    TimestampOutOfOrder,
    /// It builds on another state than the one at its parent height.
    WrongParent,
}

/// A signed transaction the pipeline refused for a fraud its issuer can be slashed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FraudEvidence {
    /// The fraud.
    pub kind: FraudKind,
    /// The transaction.
    pub transaction: Transaction,
    /// Its issuer's signature.
    pub signature: Signature,
    /// Its digest.
    pub digest: B256,
}

/// Where a transaction came from: the network is judged by our clock, the chain by its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrival {
    Network,
    Chain,
}

/// Why [`StateManager`] did not sign.
enum Unsigned {
    /// Our own rules forbid it (a second digest at the height, a stop or a hold).
    Refused,
    /// The signer gave no signature (yet).
    Signer(entente_types::SignError),
}

/// The current fork: its genesis and participants.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ForkInfo {
    /// Fork number.
    pub fork: u64,
    /// Height of its genesis.
    pub genesis_height: u64,
    /// Chain time of its genesis.
    pub genesis_timestamp: u64,
    /// Hash of its genesis state.
    pub genesis_state_hash: B256,
    /// Its participants.
    pub participants: Vec<Address>,
}

/// One peer's view of one channel: the verification pipeline, the machine at the tip, the
/// agreement bookkeeping and the effects for the host. Sans-IO: time comes in as `local_ms`.
pub struct StateManager<S: Signer> {
    spec: ChannelSpec,
    config: Config,
    signer: S,
    me: Address,
    machine: MachineInstance,
    agreement: AgreementManager,
    clock: LogicalClock,
    fork: ForkInfo,
    tip_state_hash: B256,
    tip_timestamp: u64,
    next_writer: Address,
    game_over: bool,
    /// The tip's state names no writer and is not over: its next height is the sequencer's, and
    /// moves come as intents (docs/protocol.md, section 11).
    open: bool,
    /// Intents under way, by (issuer, nonce): signed, for this channel, not applied yet.
    intents: BTreeMap<(Address, u64), SignedIntent>,
    /// The tip state the pool was last pruned against.
    pruned_at: B256,
    /// Our own intents signed, by nonce, with their expiry and when we sent them (chain time):
    /// a nonce is never signed again while an earlier intent at it may still apply, and one the
    /// sequencers leave out past `p2pTime` goes to the chain.
    own_intents: BTreeMap<u64, (SignedIntent, u64)>,
    /// The court holds an intent on this fork (set by the dispute layer, which follows the
    /// chain): in an open state only the chain moves the channel until it is forced, let go or
    /// its window ends (docs/protocol.md, section 11).
    court_hold: bool,
    /// The highest height taken from the chain (a post or a forced intent) on this fork.
    chain_tip: u64,
    /// Heights of this fork the court wrote (forced intents).
    forced_heights: std::collections::BTreeSet<u64>,
    /// Heights written in an open state: their deadlines run from their own timestamp (nobody
    /// was obliged to write them).
    open_heights: std::collections::BTreeSet<u64>,
    /// Future transactions by height, waiting for the gap before them.
    future: BTreeMap<u64, SignedTransaction>,
    /// Confirmations of heights we do not hold yet.
    early_confirmations: VecDeque<Confirmation>,
    /// Own signatures by (fork, height): never sign two digests at one.
    own_signatures: BTreeMap<(u64, u64), B256>,
    /// Confirmations the signer could not give yet (fork, height, digest): tried again on the
    /// next timeout.
    unsigned: std::collections::BTreeSet<(u64, u64, B256)>,
    /// Encoded states of the fork's genesis and of the heights the agreement still holds, for
    /// the proofs the dispute layer builds.
    states: BTreeMap<u64, Bytes>,
    /// Highest height considered for a virtual-voting checkpoint.
    last_checkpoint: u64,
    /// Resends since the last progress (for the backoff).
    resends: u32,
    /// Refused transactions that prove fraud by their issuer.
    fraud: Vec<FraudEvidence>,
    /// Peers that did not confirm our transaction by its confirmation deadline: we do not
    /// confirm theirs until they do (they must then post calldata too).
    refused_by: std::collections::BTreeSet<Address>,
    last_progress_ms: u64,
    /// The fork on which this peer started a dispute: it signs nothing more there (seed 002,
    /// "DisputeHandler"; docs/security.md, O3).
    signing_stopped: Option<u64>,
    /// (fork, height): a membership approval this peer co-signed binds that height as the latest
    /// state; it signs nothing above it until the approval lands or expires (docs/security.md, O4).
    /// Co-signed membership approvals that hold our signatures: (fork, approved height, deadline).
    signing_holds: Vec<(u64, u64, u64)>,
    /// (tip height, tip state hash) the turn fields (`next_writer`, `open`, `game_over`) were
    /// last read for: the machine is asked again only when the tip moved (`None`: read again).
    turn_read: Option<(u64, B256)>,
    effects: VecDeque<Effect>,
}

impl<S: Signer> std::fmt::Debug for StateManager<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateManager")
            .field("channel", &self.spec.channel_id)
            .field("me", &self.me)
            .field("fork", &self.fork.fork)
            .field("tip", &self.agreement.tip())
            .field("finalized", &self.agreement.finalized_height())
            .finish_non_exhaustive()
    }
}

impl<S: Signer> StateManager<S> {
    /// Sets up a channel from its spec: deploys the machine, loads the genesis state and checks
    /// that its participants are the channel's.
    pub fn new(
        spec: ChannelSpec,
        signer: S,
        code: &MachineCode,
        config: Config,
        local_ms: u64,
    ) -> Result<Self, SetupError> {
        let me = signer.address();
        if spec.participant_index(&me).is_none() {
            return Err(SetupError::NotAParticipant(me));
        }
        let mut machine = MachineInstance::deploy(code, config.gas_limit)?;
        machine.set_state(&spec.genesis_state)?;
        // As the court reads it (`participantsOf`).
        let genesis = machine.participants_of(&spec.genesis_state)?;
        if genesis != spec.participants {
            return Err(SetupError::ParticipantsMismatch {
                genesis,
                spec: spec.participants.clone(),
            });
        }
        let genesis_state_hash = state_hash(&spec.genesis_state);
        let genesis_state_bytes = spec.genesis_state.clone();
        let fork = ForkInfo {
            fork: 0,
            genesis_height: 0,
            genesis_timestamp: spec.genesis_timestamp,
            genesis_state_hash,
            participants: spec.participants.clone(),
        };
        let mut manager = Self {
            agreement: AgreementManager::new(0, 0, spec.participants.clone()),
            tip_timestamp: spec.genesis_timestamp,
            tip_state_hash: genesis_state_hash,
            clock: LogicalClock::synced_at(spec.genesis_timestamp * 1000, local_ms),
            spec,
            config,
            signer,
            me,
            machine,
            fork,
            next_writer: Address::ZERO,
            game_over: false,
            open: false,
            intents: BTreeMap::new(),
            pruned_at: B256::ZERO,
            own_intents: BTreeMap::new(),
            court_hold: false,
            chain_tip: 0,
            forced_heights: std::collections::BTreeSet::new(),
            open_heights: std::collections::BTreeSet::new(),
            future: BTreeMap::new(),
            early_confirmations: VecDeque::new(),
            own_signatures: BTreeMap::new(),
            unsigned: std::collections::BTreeSet::new(),
            states: BTreeMap::from([(0, genesis_state_bytes.clone())]),
            last_checkpoint: 0,
            resends: 0,
            fraud: Vec::new(),
            refused_by: std::collections::BTreeSet::new(),
            last_progress_ms: local_ms,
            signing_stopped: None,
            signing_holds: Vec::new(),
            turn_read: None,
            effects: VecDeque::new(),
        };
        manager.refresh_turn()?;
        Ok(manager)
    }

    // ----- accessors -------------------------------------------------------------------------

    /// Gas limit of every state-machine call.
    pub fn gas_limit(&self) -> u64 {
        self.config.gas_limit
    }

    /// The channel spec.
    pub fn spec(&self) -> &ChannelSpec {
        &self.spec
    }

    /// This peer's address.
    pub fn me(&self) -> Address {
        self.me
    }

    /// The current fork.
    pub fn fork(&self) -> &ForkInfo {
        &self.fork
    }

    /// Height of the latest applied transaction.
    pub fn tip(&self) -> u64 {
        self.agreement.tip()
    }

    /// Hash of the state at the tip.
    pub fn tip_state_hash(&self) -> B256 {
        self.tip_state_hash
    }

    /// Highest final height.
    pub fn finalized_height(&self) -> u64 {
        self.agreement.finalized_height()
    }

    /// Who writes next (`Address::ZERO` when nobody can): the writer the machine names, or in
    /// an open state the height's sequencer.
    pub fn next_writer(&self) -> Address {
        self.next_writer
    }

    /// The writer the machine obliges to write next, if any: `None` in an open state (nobody is
    /// obliged; no timeout applies to anyone) and once the game is over.
    pub fn obliged_writer(&self) -> Option<Address> {
        (!self.game_over && !self.open && self.next_writer != Address::ZERO).then_some(self.next_writer)
    }

    /// True when the tip's state names no writer and is not over: any participant the machine
    /// allows may write, through an intent ([`Self::submit`]).
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// True when height `height` was written in an open state (its parent named no writer):
    /// its confirmation and calldata deadlines run from its own timestamp.
    pub fn written_open(&self, height: u64) -> bool {
        self.open_heights.contains(&height)
    }

    /// Intents under way (signed, not applied yet), in (issuer, nonce) order.
    pub fn pending_intents(&self) -> impl Iterator<Item = &SignedIntent> + '_ {
        self.intents.values()
    }

    /// True when the machine obliges this peer to write next. (In an open state nobody is
    /// obliged: a move is submitted whenever the application wants.)
    pub fn is_my_turn(&self) -> bool {
        self.obliged_writer() == Some(self.me)
    }

    /// True once the machine reports the game over.
    pub fn is_game_over(&self) -> bool {
        self.game_over
    }

    /// The agreement bookkeeping (signatures, evidence).
    pub fn agreement(&self) -> &AgreementManager {
        &self.agreement
    }

    /// Equivocations seen so far.
    pub fn evidence(&self) -> &[Equivocation] {
        self.agreement.evidence()
    }

    /// Signed transactions the pipeline refused for a provable fraud (at most 16 kept).
    pub fn fraud_evidence(&self) -> &[FraudEvidence] {
        &self.fraud
    }

    /// The machine at the tip, for read-only views (e.g. a typed game handle). Calls that
    /// change state are not exposed: the state only moves through transactions.
    pub fn view(&mut self, call: Bytes) -> Result<Bytes, EvmError> {
        self.machine.view(call)
    }

    /// The encoded state at the tip.
    pub fn state(&mut self) -> Result<Bytes, EvmError> {
        self.machine.state()
    }

    /// The encoded state at `height`, if still held (the fork's genesis and the heights the
    /// agreement holds).
    pub fn state_at(&self, height: u64) -> Option<&Bytes> {
        self.states.get(&height)
    }

    /// Timestamp of the transaction at the tip (or of the fork's genesis).
    pub fn tip_timestamp(&self) -> u64 {
        self.tip_timestamp
    }

    /// Logical time in seconds at local time `local_ms`.
    pub fn now_secs(&mut self, local_ms: u64) -> u64 {
        self.clock.now_secs(local_ms)
    }

    /// The logical clock.
    pub fn clock(&self) -> &LogicalClock {
        &self.clock
    }

    /// The chain enforced a state (`SetState`): drop what the new fork replaces and continue from
    /// its genesis with its participants. Forks only move forward; an older or equal fork is
    /// ignored (returns false).
    pub fn apply_fork(
        &mut self,
        fork: ForkInfo,
        genesis_state: &[u8],
        local_ms: u64,
    ) -> Result<bool, EvmError> {
        if fork.fork <= self.fork.fork {
            return Ok(false);
        }
        self.machine.set_state(genesis_state)?;
        self.agreement
            .reset_to_fork(fork.fork, fork.genesis_height, fork.participants.clone());
        self.tip_state_hash = state_hash(genesis_state);
        self.tip_timestamp = fork.genesis_timestamp;
        self.future.clear();
        self.signing_holds.clear();
        // The court's holds are per fork; so is what we took from the chain.
        self.court_hold = false;
        self.chain_tip = 0;
        self.forced_heights.clear();
        self.fraud.clear();
        self.early_confirmations.clear();
        self.states = BTreeMap::from([(fork.genesis_height, Bytes::copy_from_slice(genesis_state))]);
        self.last_checkpoint = fork.genesis_height;
        self.resends = 0;
        self.last_progress_ms = local_ms;
        self.effects.push_back(Effect::Notify(Event::ForkStarted {
            fork: fork.fork,
            genesis_height: fork.genesis_height,
            participants: fork.participants.clone(),
        }));
        self.fork = ForkInfo {
            genesis_state_hash: self.tip_state_hash,
            ..fork
        };
        // Another fork may name other participants for the same height and state.
        self.turn_read = None;
        self.refresh_turn()?;
        if self.game_over {
            self.effects.push_back(Effect::Notify(Event::GameOver {
                fork: self.fork.fork,
                height: self.fork.genesis_height,
            }));
        }
        self.reoffer_own_intents(local_ms);
        Ok(true)
    }

    /// After a fork: our intents the fork's genesis has not applied (they were on the branch the
    /// chain cut) go to the sequencers again, with their nonces and signatures: each still
    /// applies at most once.
    fn reoffer_own_intents(&mut self, local_ms: u64) {
        self.pruned_at = B256::ZERO;
        let Ok(applied) = self.machine.intent_nonce_of(self.me) else {
            return;
        };
        let now = self.clock.now_secs(local_ms);
        let floor = now.max(self.tip_timestamp);
        let again: Vec<SignedIntent> = self
            .own_intents
            .range(applied..)
            .map(|(_, (intent, _))| intent.clone())
            .filter(|i| i.not_after >= floor)
            .collect();
        for intent in again {
            // Sent again now: the sequencers get their `p2pTime` again.
            if let Some(entry) = self.own_intents.get_mut(&intent.nonce) {
                entry.1 = now;
            }
            self.effects.push_back(Effect::Persist(PersistRecord::OwnIntent {
                intent: Box::new(intent.clone()),
                sent: now,
            }));
            self.intents.insert((self.me, intent.nonce), intent.clone());
            self.effects
                .push_back(Effect::Broadcast(Message::Intent(Box::new(intent))));
        }
    }

    /// Stops signing on the current fork: called when this peer starts a dispute there (seed
    /// 002: "after initiating a dispute the peer stops signing transactions for the given
    /// fork"). A new fork (the dispute's verdict) lifts it.
    pub fn stop_signing(&mut self) {
        if self.signing_stopped != Some(self.fork.fork) {
            tracing::info!(target: "entente::state", fork = self.fork.fork, "dispute started: no more signatures on this fork");
        }
        self.signing_stopped = Some(self.fork.fork);
    }

    /// Lifts [`Self::stop_signing`] on the current fork: the dispute this peer tried to start
    /// did not start (the chain refused the call), so nothing it signs can be used against it.
    pub fn resume_signing(&mut self) {
        if self.signing_stopped == Some(self.fork.fork) {
            tracing::info!(target: "entente::state", fork = self.fork.fork, "the dispute did not start: signing again");
            self.signing_stopped = None;
        }
    }

    /// Signs nothing above `height` of the current fork until the approval that binds it (valid
    /// until chain time `deadline`) can no longer take effect (see [`Self::release_holds`]), or a
    /// new fork: the peer co-signed a membership approval of the state at `height`
    /// (docs/security.md, O4). Several holds may stand at once.
    pub fn hold_signing_above(&mut self, height: u64, deadline: u64) {
        self.signing_holds.push((self.fork.fork, height, deadline));
    }

    /// Lifts every hold.
    pub fn release_signing(&mut self) {
        self.signing_holds.clear();
    }

    /// Lifts the holds whose approval can no longer take effect: past its deadline at chain time
    /// `chain_now` (unless `leave_running`: a leave dispute on chain may be the approval itself,
    /// and its verdict starts a new fork), or below the chain's head `head_height` (the chain
    /// refuses an approval of a state below its head).
    pub fn release_holds(&mut self, chain_now: u64, head_height: u64, leave_running: bool) {
        let fork = self.fork.fork;
        self.signing_holds.retain(|(f, height, deadline)| {
            *f == fork && *height >= head_height && (*deadline >= chain_now || leave_running)
        });
    }

    /// Lets the machine's EVM go until its next call (it keeps only the machine's storage):
    /// what a host does with a channel that has been idle for a while.
    pub fn sleep_machine(&mut self) {
        self.machine.sleep();
    }

    /// True while the machine's EVM is let go (see [`Self::sleep_machine`]).
    pub fn machine_asleep(&self) -> bool {
        self.machine.is_asleep()
    }

    /// True while something here waits on time alone and is decided at every
    /// [`Self::handle_timeout`] rather than by [`Self::poll_timeout`]: confirmations the signer
    /// could not give yet, intents under way (pruned and sequenced by time; our own left out
    /// go to the court, which needs them in the pool too), approval holds (lifted at their
    /// deadline). A host may tick a channel for which this is false only at
    /// [`Self::poll_timeout`] and its dispute handler's wake.
    pub fn needs_ticks(&self) -> bool {
        !self.unsigned.is_empty() || !self.intents.is_empty() || !self.signing_holds.is_empty()
    }

    /// The lowest height a co-signed approval holds our signatures at, on the current fork.
    pub fn signing_held_at(&self) -> Option<u64> {
        let fork = self.fork.fork;
        self.signing_holds
            .iter()
            .filter(|(f, _, _)| *f == fork)
            .map(|(_, h, _)| *h)
            .min()
    }

    /// True when this peer signs nothing more on the current fork.
    pub fn signing_stopped(&self) -> bool {
        self.signing_stopped == Some(self.fork.fork)
    }

    /// Learns chain time from an observed block.
    pub fn observe_block(&mut self, timestamp: u64, local_ms: u64) {
        self.clock.observe_block(timestamp, local_ms);
    }

    /// The next effect for the host to carry out, in order.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// All pending effects, in order.
    pub fn drain_effects(&mut self) -> impl Iterator<Item = Effect> + '_ {
        self.effects.drain(..)
    }

    /// When [`Self::handle_timeout`] should be called next (local ms), if ever.
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.open
            && (self.next_writer == self.me || !self.own_intents.is_empty())
            && !self.intents.is_empty()
        {
            // Intents to write that could not be written yet (the signer answers later), or
            // ours that a sequencer may be leaving out.
            return Some(self.last_progress_ms + (self.config.resend_interval_ms << self.resends.min(5)));
        }
        if self.agreement.tip() > self.agreement.finalized_height() {
            // Back off exponentially while nothing progresses (a stalled channel waiting for the
            // chain must not flood the network), at most 32 intervals.
            let backoff = self.config.resend_interval_ms << self.resends.min(5);
            Some(self.last_progress_ms + backoff)
        } else {
            None
        }
    }

    // ----- local moves -----------------------------------------------------------------------

    /// Submits this peer's move (`data` is an ABI-encoded call of one of the machine's moves).
    /// When the machine names this peer as the next writer: executes it on the tip, signs it and
    /// broadcasts it, and returns its digest. In an open state: signs it as an intent with this
    /// peer's next nonce and sends it to every peer for the height's sequencer (this peer
    /// included), and returns the intent's digest.
    pub fn submit(&mut self, data: Bytes, local_ms: u64) -> Result<B256, SubmitError> {
        if self.open {
            return self.submit_intent(data, local_ms);
        }
        self.write(data, local_ms)
    }

    /// Signs and applies this peer's own transaction with `data` at the tip.
    /// (As the writer the machine names, or the height's sequencer.)
    fn write(&mut self, data: Bytes, local_ms: u64) -> Result<B256, SubmitError> {
        if !self.fork.participants.contains(&self.me) {
            return Err(SubmitError::NotAParticipant);
        }
        if self.signing_stopped == Some(self.fork.fork) {
            return Err(SubmitError::SigningStopped { fork: self.fork.fork });
        }
        if let Some(height) = self.signing_held_at() {
            return Err(SubmitError::SigningHeld { height });
        }
        if self.game_over {
            return Err(SubmitError::GameOver);
        }
        if self.next_writer != self.me {
            return Err(SubmitError::NotYourTurn {
                expected: self.next_writer,
            });
        }
        let now = self.clock.now_secs(local_ms);
        let mut transaction = self.own_next_transaction(data, now.max(self.tip_timestamp));
        let pending = self
            .machine
            .execute(&transaction, None)
            .map_err(SubmitError::InvalidMove)?;
        transaction.stateHash = pending.outcome().state_hash;
        let digest = self.spec.domain.digest(&transaction);
        let signature = match self.sign(transaction.forkCnt, transaction.height, digest) {
            Ok(signature) => signature,
            // Dropping `pending` leaves the machine at the tip: nothing was signed.
            Err(Unsigned::Refused) => {
                return Err(SubmitError::DoubleSignGuard {
                    fork: self.fork.fork,
                    height: transaction.height,
                });
            }
            Err(Unsigned::Signer(e)) => return Err(SubmitError::Signer(e)),
        };
        let outcome = self.machine.commit(pending);
        self.commit_applied(
            transaction.clone(),
            digest,
            Some(signature),
            outcome.state,
            local_ms,
        );
        self.effects
            .push_back(Effect::Broadcast(Message::Transaction(SignedTransaction {
                transaction,
                signature,
            })));
        self.after_apply();
        Ok(digest)
    }

    // ----- received messages -----------------------------------------------------------------

    /// Decodes and handles a frame received from `from` (the address the transport
    /// authenticated).
    pub fn handle_bytes(
        &mut self,
        from: Address,
        bytes: &[u8],
        local_ms: u64,
    ) -> Result<Accepted, Rejection> {
        let envelope = match Envelope::decode(bytes) {
            Ok(envelope) => envelope,
            Err(e) => return Err(self.reject(from, Rejection::Decode(e))),
        };
        self.handle_message(from, envelope.message, local_ms)
    }

    /// Handles a decoded message from `from`.
    pub fn handle_message(
        &mut self,
        from: Address,
        message: Message,
        local_ms: u64,
    ) -> Result<Accepted, Rejection> {
        if message.channel_id() != self.spec.channel_id {
            return Err(self.reject(from, Rejection::UnknownChannel(message.channel_id())));
        }
        let result = match message {
            Message::Transaction(st) => self.on_transaction(st, local_ms),
            Message::Confirmation(c) => self.on_confirmation(c, local_ms),
            Message::SyncRequest(r) => self.on_sync_request(from, r),
            Message::SyncResponse(r) => self.on_sync_response(from, r, local_ms),
            Message::Intent(intent) => self.on_intent(*intent, local_ms),
            Message::Proposal(_)
            | Message::ProposalAnswer(_)
            | Message::Approval(_)
            | Message::JoinTicket(_) => Err(Rejection::NotForRunningChannel),
        };
        self.maybe_sequence(local_ms);
        result.map_err(|reason| self.reject(from, reason))
    }

    /// Periodic work: resends what others may have missed when finality does not progress.
    pub fn handle_timeout(&mut self, local_ms: u64) {
        // Confirmations the signer could not give before: ask it again.
        if !self.unsigned.is_empty() {
            let fork = self.fork.fork;
            let retry: Vec<(u64, u64, B256)> = std::mem::take(&mut self.unsigned)
                .into_iter()
                .filter(|(f, h, d)| *f == fork && self.agreement.entry(*h).is_some_and(|e| e.digest == *d))
                .collect();
            for (f, h, d) in retry {
                self.confirm(f, h, d);
            }
        }
        self.maybe_sequence(local_ms);
        let Some(due) = self.poll_timeout() else { return };
        if local_ms < due {
            return;
        }
        self.last_progress_ms = local_ms;
        self.resends = self.resends.saturating_add(1);
        self.note_refusals(local_ms);
        let finalized = self.agreement.finalized_height();
        let mut resend = Vec::new();
        for entry in self.agreement.entries_from(finalized + 1) {
            let height = entry.transaction.height;
            if entry.transaction.participant == self.me {
                if let Some(signature) = entry.signatures.get(&self.me) {
                    resend.push(Message::Transaction(SignedTransaction {
                        transaction: entry.transaction.clone(),
                        signature: *signature,
                    }));
                }
            } else if let Some(signature) = entry.signatures.get(&self.me) {
                resend.push(Message::Confirmation(Confirmation {
                    channel_id: self.spec.channel_id,
                    fork: self.fork.fork,
                    height,
                    digest: entry.digest,
                    signature: *signature,
                }));
            }
        }
        for message in resend {
            self.effects.push_back(Effect::Broadcast(message));
        }
        // Ask one other participant (a different one each time) for what we miss: later
        // transactions and the signatures that would finalize ours (a peer that is already final
        // no longer resends on its own). One peer, not all: the answers are large.
        let others: Vec<Address> = self
            .fork
            .participants
            .iter()
            .copied()
            .filter(|p| *p != self.me)
            .collect();
        if !others.is_empty() {
            let to = others[self.resends as usize % others.len()];
            self.effects.push_back(Effect::Send {
                to,
                message: Message::SyncRequest(SyncRequest {
                    channel_id: self.spec.channel_id,
                    fork: self.fork.fork,
                    from_height: finalized + 1,
                }),
            });
        }
    }

    /// A message for fork `got` is for the current fork, or refused as stale or future.
    fn check_fork(&self, got: u64) -> Result<(), Rejection> {
        let current = self.fork.fork;
        match got.cmp(&current) {
            std::cmp::Ordering::Less => Err(Rejection::StaleFork { got, current }),
            std::cmp::Ordering::Greater => Err(Rejection::FutureFork { got, current }),
            std::cmp::Ordering::Equal => Ok(()),
        }
    }

    fn on_transaction(&mut self, st: SignedTransaction, local_ms: u64) -> Result<Accepted, Rejection> {
        let tx = &st.transaction;
        self.check_fork(tx.forkCnt)?;
        if tx.height <= self.fork.genesis_height {
            return Err(Rejection::BeforeGenesis {
                height: tx.height,
                genesis: self.fork.genesis_height,
            });
        }
        // Duplicate of what we hold (resends, duplicated frames): detected by comparing the
        // transaction itself, before any hashing or signature work.
        if let Some(entry) = self.agreement.entry(tx.height)
            && entry.transaction == *tx
        {
            return Err(Rejection::Duplicate(tx.height));
        }
        let digest = self.spec.domain.digest(tx);
        // Signature and participant.
        let signer = (self.config.recover)(&digest, &st.signature).map_err(Rejection::BadSignature)?;
        if signer != tx.participant {
            return Err(Rejection::WrongSigner {
                claimed: tx.participant,
                signer,
            });
        }
        if !self.fork.participants.contains(&signer) {
            return Err(Rejection::NotAParticipant(signer));
        }
        // Height.
        let tip = self.agreement.tip();
        if tx.height <= tip {
            if let Some(evidence) = self.agreement.observe_conflict(tx, digest, signer, st.signature) {
                self.effects.push_back(Effect::Notify(Event::Equivocation {
                    signer: evidence.signer,
                    fork: evidence.fork,
                    height: evidence.height,
                }));
            }
            return Err(Rejection::Conflict {
                height: tx.height,
                tip,
            });
        }
        if tx.height > tip + 1 {
            return self.buffer_future(st);
        }
        if self.open && self.court_hold {
            return Err(Rejection::CourtHoldsIntent);
        }
        if !self.tip_secure() {
            // The height's writer's transaction waits until the tip is final (or on chain).
            if tx.participant != self.next_writer {
                return Err(Rejection::NotYourTurn {
                    issuer: tx.participant,
                    expected: self.next_writer,
                });
            }
            if self.future.len() >= self.config.max_buffered {
                return Err(Rejection::BufferFull);
            }
            self.future.entry(tx.height).or_insert(st);
            return Ok(Accepted::Buffered);
        }
        self.validate_and_apply(st, digest, local_ms, Arrival::Network)?;
        self.drain_future(local_ms);
        Ok(Accepted::Applied(self.agreement.tip()))
    }

    /// A transaction posted as calldata on chain (picked up by the dispute layer): it runs the
    /// same pipeline as a received one, except that arriving late is no reason to refuse it: the
    /// chain, not our clock, judged its timing. `from` is whoever we attribute it to (its
    /// issuer).
    pub fn apply_posted(
        &mut self,
        from: Address,
        st: SignedTransaction,
        local_ms: u64,
    ) -> Result<Accepted, Rejection> {
        let tx = &st.transaction;
        if tx.channelId != self.spec.channel_id {
            return Err(self.reject(from, Rejection::UnknownChannel(tx.channelId)));
        }
        if tx.forkCnt != self.fork.fork || tx.height != self.agreement.tip() + 1 {
            return Ok(Accepted::Noop);
        }
        let digest = self.spec.domain.digest(tx);
        let result = (|| {
            let signer = (self.config.recover)(&digest, &st.signature).map_err(Rejection::BadSignature)?;
            if signer != st.transaction.participant {
                return Err(Rejection::WrongSigner {
                    claimed: st.transaction.participant,
                    signer,
                });
            }
            self.validate_and_apply(st, digest, local_ms, Arrival::Chain)
        })();
        match result {
            Ok(()) => {
                self.drain_future(local_ms);
                Ok(Accepted::Applied(self.agreement.tip()))
            }
            Err(reason) => Err(self.reject(from, reason)),
        }
    }

    /// The state `transaction` produces from `state` (a state of this channel's machine), run
    /// locally without changing anything held: how the dispute layer learns the state the chain
    /// computed from a posted transaction it holds no copy of.
    pub fn run_on(&mut self, state: &[u8], transaction: &Transaction) -> Result<Bytes, EvmError> {
        let tip = self
            .states
            .get(&self.agreement.tip())
            .cloned()
            .ok_or_else(|| EvmError::Internal("the tip's state is not held".into()))?;
        self.machine.set_state(state)?;
        let result = self
            .machine
            .execute(transaction, None)
            .map(|pending| pending.outcome().state.clone());
        // Back to the tip, whatever the run did.
        self.machine.set_state(&tip)?;
        result
    }

    /// Turn, previous state, timestamp, execution and resulting state; then apply. A refusal
    /// that shows fraud by the (signature-checked) issuer is kept as evidence for the dispute
    /// layer.
    fn validate_and_apply(
        &mut self,
        st: SignedTransaction,
        digest: B256,
        local_ms: u64,
        arrival: Arrival,
    ) -> Result<(), Rejection> {
        let kept = (st.transaction.clone(), st.signature);
        let result =
            self.validate_and_apply_inner(st.transaction, Some(st.signature), digest, local_ms, arrival);
        if let Err(reason) = &result {
            let kind = match reason {
                Rejection::WrongPrevState { .. } => Some(FraudKind::WrongParent),
                Rejection::Timestamp(TimestampError::BeforeParent { .. }) => {
                    Some(FraudKind::TimestampOutOfOrder)
                }
                Rejection::Execution(_) | Rejection::StateHashMismatch { .. } => {
                    Some(FraudKind::InvalidTransition)
                }
                _ => None,
            };
            if let Some(kind) = kind
                && self.fraud.len() < MAX_FRAUD_EVIDENCE
                && !self.fraud.iter().any(|f| f.digest == digest)
            {
                let (transaction, signature) = kept;
                self.fraud.push(FraudEvidence {
                    kind,
                    transaction,
                    signature,
                    digest,
                });
            }
        }
        result
    }

    fn validate_and_apply_inner(
        &mut self,
        transaction: Transaction,
        signature: Option<Signature>,
        digest: B256,
        local_ms: u64,
        arrival: Arrival,
    ) -> Result<(), Rejection> {
        let tx = &transaction;
        // In an open state the height is the sequencer's, but one posted on chain is whoever's
        // the machine let write there (the chain ran its write rule: `_mayWrite`).
        let posted_open = self.open && arrival == Arrival::Chain;
        if self.game_over || (tx.participant != self.next_writer && !posted_open) {
            return Err(Rejection::NotYourTurn {
                issuer: tx.participant,
                expected: self.next_writer,
            });
        }
        if tx.prevStateHash != self.tip_state_hash {
            return Err(Rejection::WrongPrevState {
                expected: self.tip_state_hash,
                got: tx.prevStateHash,
            });
        }
        let now = self.clock.now_secs(local_ms);
        match check_timestamp(tx.timestamp, self.tip_timestamp, now, &self.spec.timing) {
            Ok(()) => {}
            // The chain judged a posted transaction's timing (docs/security.md, R3, R4).
            Err(TimestampError::Late { .. } | TimestampError::Backdated { .. })
                if arrival == Arrival::Chain => {}
            // Nobody was obliged to write after an open state: no height there comes late.
            Err(TimestampError::Late { .. }) if self.open => {}
            Err(e) => return Err(Rejection::Timestamp(e)),
        }
        // Our intent the sequencers left out waits for the court: confirm nothing that leaves it
        // out (what the chain takes, we take).
        let held_out = if arrival == Arrival::Network {
            self.left_out_intent(local_ms).map(|i| i.nonce)
        } else {
            None
        };
        let outcome = match self.machine.apply(tx, Some(tx.stateHash)) {
            Ok(outcome) => outcome,
            Err(EvmError::StateHashMismatch { claimed, actual }) => {
                return Err(Rejection::StateHashMismatch { claimed, actual });
            }
            Err(e) => return Err(Rejection::Execution(e)),
        };
        if let Some(nonce) = held_out
            && self
                .machine
                .intent_nonce_of(self.me)
                .is_ok_and(|next| next <= nonce)
        {
            self.rewind_machine_to_tip();
            return Err(Rejection::LeavesOutIntent { nonce });
        }
        let (fork, height, issuer) = (transaction.forkCnt, transaction.height, transaction.participant);
        if arrival == Arrival::Chain {
            self.chain_tip = height;
        }
        self.commit_applied(transaction, digest, signature, outcome.state, local_ms);
        // Explicit mode confirms every valid transaction; virtual-voting mode confirms only the
        // one that ends the game (nothing comes after it to vote for it) and checkpoints.
        let confirm = match self.spec.agreement_mode {
            // ...except to a peer that refused to confirm ours (seed 002, "Timeout").
            AgreementMode::ExplicitConfirmations => !self.refused_by.contains(&issuer),
            // ...and, in an open state, every one: idle participants write nothing that would
            // vote for it.
            AgreementMode::VirtualVotingOnly => self.game_over_after_refresh() || self.open,
        };
        if confirm {
            self.confirm(fork, height, digest);
        }
        self.after_apply();
        Ok(())
    }

    fn game_over_after_refresh(&mut self) -> bool {
        let _ = self.refresh_turn();
        self.game_over
    }

    fn buffer_future(&mut self, st: SignedTransaction) -> Result<Accepted, Rejection> {
        if self.future.contains_key(&st.transaction.height) {
            return Ok(Accepted::Buffered);
        }
        if self.future.len() >= self.config.max_buffered {
            return Err(Rejection::BufferFull);
        }
        let issuer = st.transaction.participant;
        self.future.insert(st.transaction.height, st);
        // We missed something: ask the issuer for the gap.
        self.effects.push_back(Effect::Send {
            to: issuer,
            message: Message::SyncRequest(SyncRequest {
                channel_id: self.spec.channel_id,
                fork: self.fork.fork,
                from_height: self.agreement.tip() + 1,
            }),
        });
        Ok(Accepted::Buffered)
    }

    fn drain_future(&mut self, local_ms: u64) {
        loop {
            let next = self.agreement.tip() + 1;
            // Drop anything the chain has passed.
            while let Some((&h, _)) = self.future.first_key_value() {
                if h < next {
                    self.future.pop_first();
                } else {
                    break;
                }
            }
            if (self.open && self.court_hold) || !self.tip_secure() {
                break;
            }
            let Some(st) = self.future.remove(&next) else {
                break;
            };
            let digest = self.spec.domain.digest(&st.transaction);
            if let Err(reason) = self.validate_and_apply(st.clone(), digest, local_ms, Arrival::Network) {
                let from = st.transaction.participant;
                self.reject(from, reason);
                break;
            }
        }
        self.drain_early_confirmations();
    }

    fn on_confirmation(&mut self, c: Confirmation, local_ms: u64) -> Result<Accepted, Rejection> {
        // A confirmation we already hold, byte for byte: drop it before any signature work.
        if let Some(entry) = self.agreement.entry(c.height)
            && entry.digest == c.digest
            && entry.signatures.values().any(|s| *s == c.signature)
        {
            return Ok(Accepted::Noop);
        }
        self.check_fork(c.fork)?;
        let signer = (self.config.recover)(&c.digest, &c.signature).map_err(Rejection::BadSignature)?;
        if !self.fork.participants.contains(&signer) {
            return Err(Rejection::NotAParticipant(signer));
        }
        // The labels (channel, fork, height) are not covered by the signature, the digest is: a
        // signature over a transaction we hold at another height counts only there.
        if let Some(signed) = self
            .agreement
            .entries_from(0)
            .find(|e| e.digest == c.digest && e.transaction.height != c.height)
            .map(|e| e.transaction.height)
        {
            return Err(Rejection::MislabeledConfirmation {
                labelled: c.height,
                signed,
            });
        }
        if c.height > self.agreement.tip() {
            if self.early_confirmations.len() >= self.config.max_buffered {
                return Err(Rejection::BufferFull);
            }
            if !self.early_confirmations.contains(&c) {
                self.early_confirmations.push_back(c);
            }
            return Ok(Accepted::Buffered);
        }
        let accepted = self.record_confirmation(c.height, c.digest, signer, c.signature)?;
        // A final tip lets the transaction waiting above it in (open states sign in step).
        if self.future.contains_key(&(self.agreement.tip() + 1)) {
            self.drain_future(local_ms);
        }
        Ok(accepted)
    }

    fn record_confirmation(
        &mut self,
        height: u64,
        digest: B256,
        signer: Address,
        signature: Signature,
    ) -> Result<Accepted, Rejection> {
        let evidence_before = self.agreement.evidence().len();
        let outcome = self.agreement.add_signature(height, digest, signer, signature);
        self.notify_new_evidence(evidence_before);
        let outcome = outcome.map_err(Rejection::Agreement)?;
        if !outcome.new {
            return Ok(Accepted::Noop);
        }
        if self
            .agreement
            .entry(height)
            .is_some_and(|e| e.transaction.participant == self.me)
        {
            self.refused_by.remove(&signer);
        }
        self.effects.push_back(Effect::Persist(PersistRecord::Signature {
            fork: self.fork.fork,
            height,
            digest,
            signer,
            signature,
        }));
        if let Some(finalized) = outcome.finalized {
            self.on_finalized(finalized);
        }
        Ok(Accepted::Confirmed)
    }

    fn drain_early_confirmations(&mut self) {
        let tip = self.agreement.tip();
        let (ready, waiting): (Vec<_>, Vec<_>) =
            self.early_confirmations.drain(..).partition(|c| c.height <= tip);
        self.early_confirmations = waiting.into();
        for c in ready {
            if let Ok(signer) = (self.config.recover)(&c.digest, &c.signature) {
                let _ = self.record_confirmation(c.height, c.digest, signer, c.signature);
            }
        }
    }

    fn on_sync_request(&mut self, from: Address, request: SyncRequest) -> Result<Accepted, Rejection> {
        if !self.fork.participants.contains(&from) {
            return Err(Rejection::NotAParticipant(from));
        }
        self.check_fork(request.fork)?;
        let transactions: Vec<_> = self
            .agreement
            .entries_from(request.from_height)
            .take(self.config.sync_batch)
            // A height the court wrote has no issuer's signature to pass on: a peer behind it
            // takes it from the chain, as we did.
            .take_while(|e| !e.court_written())
            .map(|e| e.to_record())
            .collect();
        if transactions.is_empty() {
            return Ok(Accepted::Noop);
        }
        self.effects.push_back(Effect::Send {
            to: from,
            message: Message::SyncResponse(SyncResponse {
                channel_id: self.spec.channel_id,
                fork: self.fork.fork,
                transactions,
            }),
        });
        Ok(Accepted::Noop)
    }

    fn on_sync_response(
        &mut self,
        from: Address,
        response: SyncResponse,
        local_ms: u64,
    ) -> Result<Accepted, Rejection> {
        if response.transactions.len() > self.config.sync_batch {
            return Err(Rejection::OversizedSync(response.transactions.len()));
        }
        self.check_fork(response.fork)?;
        let mut accepted = Accepted::Noop;
        for record in response.transactions {
            let mut signatures = record.signatures.into_iter();
            let Some(issuer_signature) = signatures.next() else {
                continue;
            };
            let digest = self.spec.domain.digest(&record.transaction);
            let (height, fork) = (record.transaction.height, record.transaction.forkCnt);
            let st = SignedTransaction {
                transaction: record.transaction,
                signature: issuer_signature,
            };
            match self.on_transaction(st, local_ms) {
                Ok(a) => accepted = a,
                Err(Rejection::Duplicate(_)) => {}
                Err(reason) => {
                    self.reject(from, reason);
                    continue;
                }
            }
            for signature in signatures {
                let c = Confirmation {
                    channel_id: self.spec.channel_id,
                    fork,
                    height,
                    digest,
                    signature,
                };
                let _ = self.on_confirmation(c, local_ms);
            }
        }
        Ok(accepted)
    }

    // ----- internals -------------------------------------------------------------------------

    /// Peers missing from our own unfinalized transactions past their confirmation deadline
    /// refused us (explicit-confirmation mode).
    fn note_refusals(&mut self, local_ms: u64) {
        if self.spec.agreement_mode != AgreementMode::ExplicitConfirmations {
            return;
        }
        let now = self.clock.now_secs(local_ms);
        let timing = self.spec.timing;
        let mut parent_ts = self.fork.genesis_timestamp;
        let mut refused = Vec::new();
        let first = self.agreement.finalized_height() + 1;
        if let Some(parent) = first.checked_sub(1).and_then(|h| self.agreement.entry(h)) {
            parent_ts = parent.transaction.timestamp;
        }
        for entry in self.agreement.entries_from(first) {
            let start = if self.open_heights.contains(&entry.transaction.height) {
                entry.transaction.timestamp
            } else {
                parent_ts
            };
            // (A transaction the court wrote for our intent is not ours to have confirmed.)
            if entry.transaction.participant == self.me
                && !self.forced_heights.contains(&entry.transaction.height)
                && now > entente_clock::Deadlines::after(start, &timing).confirm_by
            {
                refused.extend(
                    self.fork
                        .participants
                        .iter()
                        .filter(|p| !entry.signatures.contains_key(*p))
                        .copied(),
                );
            }
            parent_ts = entry.transaction.timestamp;
        }
        for peer in refused {
            if self.refused_by.insert(peer) {
                tracing::info!(target: "entente::state", %peer, "peer did not confirm our transaction in time; we stop confirming theirs");
            }
        }
    }

    /// Peers we currently refuse to confirm (they refused ours).
    pub fn refusing(&self) -> impl Iterator<Item = &Address> {
        self.refused_by.iter()
    }

    /// Signs `digest` unless that would be a second, different signature at `fork`/`height`
    /// (or signing is stopped or held there). Records the digest (effect) before the signature
    /// can leave; if the signer gives no signature, the record is taken back (nothing was signed,
    /// so the height stays free).
    fn sign(&mut self, fork: u64, height: u64, digest: B256) -> Result<Signature, Unsigned> {
        if self.signing_stopped == Some(fork) {
            return Err(Unsigned::Refused);
        }
        if self
            .signing_holds
            .iter()
            .any(|(f, held, _)| *f == fork && height > *held)
        {
            return Err(Unsigned::Refused);
        }
        let mut recorded = false;
        match self.own_signatures.get(&(fork, height)) {
            Some(existing) if *existing != digest => return Err(Unsigned::Refused),
            Some(_) => {}
            None => {
                recorded = true;
                self.own_signatures.insert((fork, height), digest);
                self.effects
                    .push_back(Effect::Persist(PersistRecord::OwnSignature {
                        fork,
                        height,
                        digest,
                    }));
            }
        }
        match self.signer.try_sign_digest(&digest) {
            Ok(signature) => Ok(signature),
            Err(e) => {
                if recorded {
                    self.own_signatures.remove(&(fork, height));
                    self.effects.pop_back();
                }
                tracing::debug!(target: "entente::state", fork, height, error = %e, "not signed (yet)");
                Err(Unsigned::Signer(e))
            }
        }
    }

    fn confirm(&mut self, fork: u64, height: u64, digest: B256) {
        if self
            .agreement
            .entry(height)
            .is_some_and(|e| e.signatures.contains_key(&self.me))
        {
            return; // already signed (e.g. a checkpoint that is also the game's last move)
        }
        let signature = match self.sign(fork, height, digest) {
            Ok(signature) => signature,
            Err(Unsigned::Refused) => return,
            Err(Unsigned::Signer(_)) => {
                // Tried again on the next timeout.
                self.unsigned.insert((fork, height, digest));
                return;
            }
        };
        self.unsigned.remove(&(fork, height, digest));
        if self
            .record_confirmation(height, digest, self.me, signature)
            .is_ok()
        {
            self.effects
                .push_back(Effect::Broadcast(Message::Confirmation(Confirmation {
                    channel_id: self.spec.channel_id,
                    fork,
                    height,
                    digest,
                    signature,
                })));
        }
    }

    /// The machine already holds the new state; record it everywhere else.
    fn commit_applied(
        &mut self,
        transaction: Transaction,
        digest: B256,
        signature: Option<Signature>,
        state: Bytes,
        local_ms: u64,
    ) {
        let (fork, height, issuer) = (transaction.forkCnt, transaction.height, transaction.participant);
        if self.open {
            self.open_heights.insert(height);
            // Only the heights the agreement may still ask about.
            while self.open_heights.len() > 4096 {
                self.open_heights.pop_first();
            }
        }
        self.tip_state_hash = transaction.stateHash;
        self.tip_timestamp = transaction.timestamp;
        self.last_progress_ms = local_ms;
        self.resends = 0;
        self.states.insert(height, state.clone());
        self.effects
            .push_back(Effect::Persist(PersistRecord::Transaction {
                transaction: transaction.clone(),
                digest,
                signature,
                state,
            }));
        let appended = match signature {
            Some(signature) => self.agreement.append(transaction, digest, signature),
            None => self.agreement.append_unsigned(transaction, digest),
        };
        let finalized = match appended {
            Ok(finalized) => finalized,
            Err(e) => {
                // The pipeline checked fork and height; this cannot happen. Log loudly.
                tracing::error!(target: "entente::state", error = %e, "append after validation failed");
                None
            }
        };
        self.effects.push_back(Effect::Notify(Event::Applied {
            fork,
            height,
            issuer,
            digest,
            state_hash: self.tip_state_hash,
        }));
        if let Some(finalized) = finalized {
            self.on_finalized(finalized);
        }
    }

    fn after_apply(&mut self) {
        if let Err(e) = self.refresh_turn() {
            tracing::error!(target: "entente::state", error = %e, "reading the turn failed");
        }
        if self.game_over {
            self.effects.push_back(Effect::Notify(Event::GameOver {
                fork: self.fork.fork,
                height: self.agreement.tip(),
            }));
        }
    }

    /// Reads whose turn it is after the tip, as the court reads it: `nextToWriteOf(state)` and
    /// `isGameOverOf(state)` on the tip's state (a machine's `getNextToWrite()` may answer
    /// otherwise; the chain holds participants to the `...Of` answers). Asked once per tip.
    fn refresh_turn(&mut self) -> Result<(), EvmError> {
        let tip = self.agreement.tip();
        let read_for = (tip, self.tip_state_hash);
        if self.turn_read == Some(read_for) {
            return Ok(());
        }
        let state = match self.states.get(&tip) {
            Some(state) => state.clone(),
            None => self.machine.state()?,
        };
        let named = self.machine.next_to_write_of(&state)?;
        self.game_over = self.machine.is_game_over_of(&state)?;
        self.open = named == Address::ZERO && !self.game_over;
        self.next_writer = if self.open {
            self.sequencer_at(tip + 1)
        } else {
            named
        };
        self.turn_read = Some(read_for);
        Ok(())
    }

    /// The sequencer of height `height` in an open state: the fork's participants in turn.
    fn sequencer_at(&self, height: u64) -> Address {
        let participants = &self.fork.participants;
        match participants.len() {
            0 => Address::ZERO,
            n => participants[(height % n as u64) as usize],
        }
    }

    // ----- intents (open states) ---------------------------------------------------------------

    /// The nonce this peer's next intent takes: after the machine's count and the ones under way.
    fn next_own_nonce(&mut self, now: u64) -> Result<u64, SubmitError> {
        let applied = self
            .machine
            .intent_nonce_of(self.me)
            .map_err(SubmitError::InvalidMove)?;
        let pending = self
            .intents
            .range((self.me, 0)..=(self.me, u64::MAX))
            .map(|((_, n), _)| *n + 1)
            .max();
        let nonce = pending.map_or(applied, |p| p.max(applied));
        // An intent of ours at this nonce that was dropped may still apply somewhere until it
        // expires: signing another would let a sequencer pick which of the two applies.
        if let Some((intent, _)) = self.own_intents.get(&nonce)
            && intent.not_after >= now
        {
            return Err(SubmitError::IntentUnderWay {
                nonce,
                until: intent.not_after,
            });
        }
        Ok(nonce)
    }

    fn submit_intent(&mut self, data: Bytes, local_ms: u64) -> Result<B256, SubmitError> {
        if !self.fork.participants.contains(&self.me) {
            return Err(SubmitError::NotAParticipant);
        }
        if self.signing_stopped == Some(self.fork.fork) {
            return Err(SubmitError::SigningStopped { fork: self.fork.fork });
        }
        if data.len() > MAX_INTENT_DATA {
            return Err(SubmitError::IntentTooLarge {
                bytes: data.len(),
                limit: MAX_INTENT_DATA,
            });
        }
        let now = self.clock.now_secs(local_ms);
        // What the tip applied is no longer under way.
        self.prune_intents(now);
        let nonce = self.next_own_nonce(now)?;
        let timing = &self.spec.timing;
        // Valid while the sequencers have it and, failing them, while its issuer takes it to the
        // chain.
        let not_after = now.max(self.tip_timestamp)
            + timing.p2p_time
            + timing.agreement_time
            + timing.chain_fallback_time;
        let intent = SignedIntent::sign(&self.signer, self.spec.channel_id, nonce, not_after, data)
            .map_err(SubmitError::Signer)?;
        // Dry run behind our intents under way: a move the machine refuses goes nowhere (its
        // nonce stays free).
        let mut trial: Vec<SignedIntent> = self
            .intents
            .range((self.me, 0)..=(self.me, u64::MAX))
            .map(|(_, i)| i.clone())
            .collect();
        trial.push(intent.clone());
        self.try_intents(&trial, now.max(self.tip_timestamp))
            .map_err(SubmitError::InvalidMove)?;
        let digest = intent.intent().digest();
        self.own_intents.insert(nonce, (intent.clone(), now));
        self.effects.push_back(Effect::Persist(PersistRecord::OwnIntent {
            intent: Box::new(intent.clone()),
            sent: now,
        }));
        self.intents.insert((self.me, nonce), intent.clone());
        self.effects
            .push_back(Effect::Broadcast(Message::Intent(Box::new(intent))));
        self.maybe_sequence(local_ms);
        Ok(digest)
    }

    fn on_intent(&mut self, intent: SignedIntent, local_ms: u64) -> Result<Accepted, Rejection> {
        if !self.fork.participants.contains(&intent.issuer) {
            return Err(Rejection::NotAParticipant(intent.issuer));
        }
        let key = (intent.issuer, intent.nonce);
        if self.intents.get(&key) == Some(&intent) {
            return Ok(Accepted::Noop);
        }
        if intent.data.len() > MAX_INTENT_DATA {
            return Err(Rejection::IntentTooLarge {
                bytes: intent.data.len(),
                limit: MAX_INTENT_DATA,
            });
        }
        let signer = (self.config.recover)(&intent.intent().digest(), &intent.signature)
            .map_err(Rejection::BadSignature)?;
        if signer != intent.issuer {
            return Err(Rejection::IntentSignature {
                issuer: intent.issuer,
                nonce: intent.nonce,
            });
        }
        let next = self
            .machine
            .intent_nonce_of(intent.issuer)
            .map_err(Rejection::Execution)?;
        let now = self.clock.now_secs(local_ms);
        if intent.nonce < next || intent.not_after < now.max(self.tip_timestamp) {
            return Err(Rejection::StaleIntent {
                issuer: intent.issuer,
                nonce: intent.nonce,
                next,
            });
        }
        // Bounded ahead: no intent far beyond the issuer's next nonce, none valid for longer
        // than an honest issuer asks (its windows, plus the clock skew we tolerate).
        let timing = &self.spec.timing;
        let latest = now.max(self.tip_timestamp)
            + timing.p2p_time
            + 2 * timing.agreement_time
            + timing.chain_fallback_time;
        if intent.nonce >= next.saturating_add(NONCE_WINDOW) || intent.not_after > latest {
            return Err(Rejection::IntentOutOfBounds {
                issuer: intent.issuer,
                nonce: intent.nonce,
            });
        }
        // Each participant its share of the pool: one cannot crowd the others out.
        let share = (MAX_INTENTS / self.fork.participants.len().max(1)).clamp(1, MAX_INTENTS_PER_ISSUER);
        let of_issuer = self
            .intents
            .range((intent.issuer, 0)..=(intent.issuer, u64::MAX))
            .count();
        if of_issuer >= share || self.intents.len() >= MAX_INTENTS {
            return Err(Rejection::IntentPoolFull(intent.issuer));
        }
        // A second intent at one nonce: the later one replaces it (only one can ever apply).
        self.intents.insert(key, intent);
        Ok(Accepted::Noop)
    }

    /// Drops the intents the tip applied, those that expired, and (for a machine without
    /// intents) all.
    fn prune_intents(&mut self, now: u64) {
        if self.pruned_at != self.tip_state_hash {
            self.pruned_at = self.tip_state_hash;
            let issuers: std::collections::BTreeSet<Address> = self.intents.keys().map(|(a, _)| *a).collect();
            for issuer in issuers {
                match self.machine.intent_nonce_of(issuer) {
                    Ok(next) => self.intents.retain(|(a, n), _| *a != issuer || *n >= next),
                    Err(_) => self.intents.retain(|(a, _), _| *a != issuer),
                }
            }
        }
        let floor = now.max(self.tip_timestamp);
        self.intents.retain(|_, i| i.not_after >= floor);
        let expired: Vec<u64> = self
            .own_intents
            .iter()
            .filter(|(_, (intent, _))| intent.not_after < floor)
            .map(|(n, _)| *n)
            .collect();
        if !expired.is_empty() {
            // Ours that expired before anything applied them: the application hears of it (it
            // may sign the move again).
            let applied = self.machine.intent_nonce_of(self.me).unwrap_or(u64::MAX);
            for nonce in expired {
                let Some((intent, _)) = self.own_intents.remove(&nonce) else {
                    continue;
                };
                self.effects
                    .push_back(Effect::Persist(PersistRecord::OwnIntentExpired { nonce }));
                if nonce >= applied {
                    self.effects.push_back(Effect::Notify(Event::IntentDropped {
                        issuer: self.me,
                        nonce,
                        reason: "expired before a sequencer or the chain applied it".into(),
                        data: intent.data,
                    }));
                }
            }
        }
    }

    /// Replaces the signature-recovery function ([`Config::recover`]).
    pub fn set_recover(&mut self, recover: Recover) {
        self.config.recover = recover;
    }

    /// Tells the manager whether the court holds an intent on this fork (the dispute layer
    /// follows `IntentPosted`, `IntentForced`, `IntentVoided` and the window after `dueAt`).
    /// While it does, in an open state, no transaction from a peer is applied or confirmed and
    /// nothing is written: a forced intent then lands on the chain's head above every height we
    /// signed, not beside one (docs/protocol.md, section 11).
    pub fn set_court_hold(&mut self, held: bool) {
        if held != self.court_hold {
            tracing::debug!(target: "entente::state", held, "the court's hold on an open channel");
        }
        self.court_hold = held;
    }

    /// The chain's head as the dispute layer sees it: when it is our tip (one we posted, or an
    /// N-signed state shown), the tip counts as on chain, so the next open height may be signed.
    pub fn note_head(&mut self, height: u64, state_hash: B256, local_ms: u64) {
        if height == self.agreement.tip() && state_hash == self.tip_state_hash && self.chain_tip != height {
            self.chain_tip = height;
            self.drain_future(local_ms);
        }
    }

    /// True while [`Self::set_court_hold`] holds the channel.
    pub fn court_holds(&self) -> bool {
        self.court_hold
    }

    /// In an open state we sign at the tip's next height only when the tip is provable on chain:
    /// final (we hold every signature on it or on a later height) or taken from the chain. So at
    /// most one height we signed is not on chain, which one post brings there.
    fn tip_secure(&self) -> bool {
        let tip = self.agreement.tip();
        !self.open
            || tip <= self.fork.genesis_height
            || self.agreement.finalized_height() >= tip
            || self.chain_tip == tip
    }

    /// Our oldest intent under way that the sequencers have left out for `p2pTime` and that would
    /// still apply on the tip: it goes to the court (`postIntent`, by the dispute layer), and we
    /// confirm no transaction that leaves it out until it is applied, forced or let go
    /// (docs/protocol.md, section 11). `None` outside open states, and while we are the height's
    /// sequencer and may write (then we write it ourselves).
    pub fn left_out_intent(&mut self, local_ms: u64) -> Option<SignedIntent> {
        if !self.open || !self.fork.participants.contains(&self.me) {
            return None;
        }
        let may_write = self.signing_stopped != Some(self.fork.fork)
            && self.signing_held_at().is_none()
            && !self.court_hold
            && self.tip_secure();
        if self.next_writer == self.me && may_write {
            return None;
        }
        let now = self.clock.now_secs(local_ms);
        let applied = self.machine.intent_nonce_of(self.me).ok()?;
        let intent = self.intents.get(&(self.me, applied))?.clone();
        let (_, sent) = self.own_intents.get(&applied)?;
        if now < sent + self.spec.timing.p2p_time || intent.not_after < now {
            return None;
        }
        self.try_intents(std::slice::from_ref(&intent), now.max(self.tip_timestamp))
            .ok()?;
        Some(intent)
    }

    /// A transaction the court wrote at the next height (a forced intent: `IntentForced`): the
    /// issuer's intent applied on the chain's head, with the head's stamp, signed by nobody. It
    /// is taken like a posted transaction (the chain ran it; we run it too and check the state)
    /// and confirmed like any transaction of an open state, if we signed nothing else at its
    /// height. Heights other than the next one change nothing here.
    pub fn apply_forced(&mut self, transaction: Transaction, local_ms: u64) -> Result<Accepted, Rejection> {
        let issuer = transaction.participant;
        if transaction.channelId != self.spec.channel_id {
            return Err(self.reject(issuer, Rejection::UnknownChannel(transaction.channelId)));
        }
        if transaction.forkCnt != self.fork.fork || transaction.height != self.agreement.tip() + 1 {
            return Ok(Accepted::Noop);
        }
        if !self.fork.participants.contains(&issuer) {
            return Err(self.reject(issuer, Rejection::NotAParticipant(issuer)));
        }
        let digest = self.spec.domain.digest(&transaction);
        let height = transaction.height;
        match self.validate_and_apply_inner(transaction, None, digest, local_ms, Arrival::Chain) {
            Ok(()) => {
                self.forced_heights.insert(height);
                // Only the heights the agreement may still ask about.
                while self.forced_heights.len() > 4096 {
                    self.forced_heights.pop_first();
                }
                self.drain_future(local_ms);
                Ok(Accepted::Applied(self.agreement.tip()))
            }
            Err(reason) => Err(self.reject(issuer, reason)),
        }
    }

    /// Sets the machine back to the tip's state after a run that is not kept.
    fn rewind_machine_to_tip(&mut self) {
        let tip = self.states.get(&self.agreement.tip()).cloned();
        if let Some(state) = tip
            && let Err(e) = self.machine.set_state(&state)
        {
            tracing::error!(target: "entente::state", error = %e, "the tip's state does not load");
        }
    }

    /// Our transaction with `data` at the tip's next height, its state hash not filled in yet.
    fn own_next_transaction(&self, data: Bytes, timestamp: u64) -> Transaction {
        Transaction {
            channelId: self.spec.channel_id,
            forkCnt: self.fork.fork,
            height: self.agreement.tip() + 1,
            participant: self.me,
            timestamp,
            prevStateHash: self.tip_state_hash,
            stateHash: B256::ZERO,
            data,
        }
    }

    /// Runs `applyIntents(intents)` at the tip's next height as ours, without keeping it.
    fn try_intents(&mut self, intents: &[SignedIntent], timestamp: u64) -> Result<(), EvmError> {
        let transaction = self.own_next_transaction(apply_intents_calldata(intents), timestamp);
        self.machine.execute(&transaction, None).map(|_| ())
    }

    /// As the sequencer of an open tip, writes the intents under way that apply, in one
    /// transaction (bounded in count and bytes); an intent that does not apply even on its own
    /// is dropped (its issuer hears of it when its intent is not applied and may sign another
    /// once this one expires).
    fn maybe_sequence(&mut self, local_ms: u64) {
        if self.intents.is_empty() {
            return;
        }
        let now = self.clock.now_secs(local_ms);
        self.prune_intents(now);
        if !self.open
            || self.next_writer != self.me
            || self.intents.is_empty()
            || self.signing_stopped == Some(self.fork.fork)
            || self.signing_held_at().is_some()
            || self.court_hold
            || !self.tip_secure()
        {
            return;
        }
        let timestamp = now.max(self.tip_timestamp);
        let height = self.agreement.tip() + 1;
        // Issuers in turn from the height's own position, so that none is always first (or
        // last, when the batch is full).
        let participants = self.fork.participants.clone();
        let n = participants.len().max(1);
        let start = (height % n as u64) as usize;
        let order: Vec<Address> = (0..n).map(|k| participants[(start + k) % n]).collect();
        let mut batch: Vec<SignedIntent> = Vec::new();
        let mut bytes = 0usize;
        let mut dropped = Vec::new();
        'issuers: for issuer in order {
            let Ok(mut next) = self.machine.intent_nonce_of(issuer) else {
                continue;
            };
            let of_issuer: Vec<SignedIntent> = self
                .intents
                .range((issuer, next)..=(issuer, u64::MAX))
                .map(|(_, i)| i.clone())
                .collect();
            let mut own_accepted: Vec<SignedIntent> = Vec::new();
            for intent in of_issuer {
                if intent.nonce != next {
                    // A gap: the missing intent has not reached us (yet).
                    break;
                }
                if batch.len() >= MAX_BATCH || bytes + intent.data.len() > MAX_BATCH_BYTES {
                    break 'issuers;
                }
                let mut trial = batch.clone();
                trial.push(intent.clone());
                if self.try_intents(&trial, timestamp).is_ok() {
                    bytes += intent.data.len();
                    batch = trial;
                    own_accepted.push(intent);
                    next += 1;
                    continue;
                }
                // Refused with the others: on its own (behind its issuer's earlier ones)?
                let mut alone = own_accepted.clone();
                alone.push(intent.clone());
                if let Err(e) = self.try_intents(&alone, timestamp) {
                    dropped.push((intent.issuer, intent.nonce, e.to_string(), intent.data.clone()));
                    break;
                }
                // It applies, only not with all of these (a gas or size limit): next height.
                break 'issuers;
            }
        }
        for (issuer, nonce, reason, data) in dropped {
            self.intents.remove(&(issuer, nonce));
            self.effects.push_back(Effect::Notify(Event::IntentDropped {
                issuer,
                nonce,
                reason,
                data,
            }));
        }
        if batch.is_empty() {
            return;
        }
        match self.write(apply_intents_calldata(&batch), local_ms) {
            Ok(_) => self.prune_intents(now),
            // The signer may answer later: the intents stay and the next timeout tries again.
            Err(e) => tracing::debug!(target: "entente::state", error = %e, "sequencing deferred"),
        }
    }

    fn on_finalized(&mut self, height: u64) {
        let fork = self.fork.fork;
        self.resends = 0;
        let state_hash = self
            .agreement
            .entry(height)
            .map_or(self.tip_state_hash, |e| e.transaction.stateHash);
        self.effects
            .push_back(Effect::Persist(PersistRecord::Finalized { fork, height }));
        self.effects.push_back(Effect::Notify(Event::Finalized {
            fork,
            height,
            state_hash,
        }));
        // Own signatures below the finalized height can never be asked for again on this fork.
        let keep_from = height.saturating_sub(self.fork.participants.len() as u64 * 2);
        self.own_signatures
            .retain(|(f, h), _| *f > fork || *h >= keep_from);
        // Keep the states the agreement still holds (and the fork's genesis) for proofs.
        let genesis = self.fork.genesis_height;
        let held_from = self
            .agreement
            .entries_from(0)
            .next()
            .map_or(genesis, |e| e.transaction.height);
        self.states.retain(|h, _| *h == genesis || *h >= held_from);
        // Virtual voting: the chain only accepts a single transaction with N signatures as a
        // proof, so every N heights each peer confirms the transaction that just became final:
        // a checkpoint the dispute layer can show. Cost: one signature per peer per N heights.
        if self.spec.agreement_mode == AgreementMode::VirtualVotingOnly {
            let n = self.fork.participants.len().max(1) as u64;
            let checkpoints: Vec<(u64, B256)> = (self.last_checkpoint + 1..=height)
                .filter(|h| (h - genesis).is_multiple_of(n))
                .filter_map(|h| self.agreement.entry(h).map(|e| (h, e.digest)))
                .collect();
            self.last_checkpoint = self.last_checkpoint.max(height);
            for (h, digest) in checkpoints {
                if self
                    .agreement
                    .entry(h)
                    .is_some_and(|e| !e.signatures.contains_key(&self.me))
                {
                    self.confirm(fork, h, digest);
                }
            }
        }
    }

    fn notify_new_evidence(&mut self, before: usize) {
        let new: Vec<(Address, u64, u64)> = self.agreement.evidence()[before..]
            .iter()
            .map(|e| (e.signer, e.fork, e.height))
            .collect();
        for (signer, fork, height) in new {
            self.effects
                .push_back(Effect::Notify(Event::Equivocation { signer, fork, height }));
        }
    }

    fn reject(&mut self, from: Address, reason: Rejection) -> Rejection {
        tracing::debug!(target: "entente::state", peer = %from, channel = %self.spec.channel_id, %reason, "message refused");
        self.effects.push_back(Effect::Notify(Event::Rejected {
            from,
            reason: reason.clone(),
        }));
        reason
    }
}

// `StateManager::restore` (after a restart) lives in its own file; as a child module it can build
// the manager's private state.
#[path = "restore.rs"]
pub(crate) mod restore;
