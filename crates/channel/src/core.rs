//! [`Channel`]: one channel's whole life as a sans-IO state machine.

use std::collections::{BTreeMap, VecDeque};

use entente_dispute::{CallOutcome, ChainAction, ChainEvent, DisputeHandler, DisputeKind};
use entente_evm_runtime::MachineCode;
use entente_state_manager::{
    ApprovalContext, Config, Effect as CoreEffect, ForkInfo, Recover, StateManager, SubmitError,
};
use entente_types::{
    Address, ApprovalSignature, B256, Bytes, ChannelProposal, JoinTicket, MAX_REASON_BYTES,
    MembershipApproval, MembershipChange, Message, ProposalAnswer, Signer, recover_signer, state_hash,
};
use tracing::{debug, info, warn};

use crate::call::{ChainCall, onchain_spec};
use crate::membership::{JoinTerms, TicketRefusal, check_ticket, to_join, to_leave};
use crate::record::{Collecting, Duty, Life, Persisted, Record};
use crate::{ChannelError, ChannelEvent, ChannelInfo, Phase};

const TARGET: &str = "entente::channel";
/// Most approvals being signed at once in one channel.
const MAX_APPROVALS: usize = 16;
/// Reverts of `open` before the proposal is given up.
const MAX_OPEN_REVERTS: u32 = 3;
/// Longest wait before a failed lifecycle call is tried again (ms).
const MAX_BACKOFF_MS: u64 = 64_000;
/// How often a proposal is sent again to the invitees that did not answer (ms).
const PROPOSAL_RESEND_MS: u64 = 5_000;
/// How often a sponsor sends a join ticket again until the newcomer is in.
const TICKET_RESEND_MS: u64 = 5_000;
/// Join tickets the chain may refuse before a newcomer gives up (each costs it gas).
const MAX_JOIN_REVERTS: u32 = 3;
/// Reverts of a payout for another reason than "nothing owed" before it is given up.
const MAX_PAYOUT_REVERTS: u32 = 5;
/// How soon after an input the periodic decisions run (and how often while something is under
/// way): the dispute handler's and the state manager's time-driven ones (ms).
const TICK_MS: u64 = 500;
/// How long after its last input a channel lets its machine's EVM go (ms): an idle channel
/// keeps only the machine's storage, and builds the EVM again on its next input.
const SLEEP_AFTER_MS: u64 = 10_000;

/// True when a payout's revert says there is nothing (more) to pay us: it was claimed, nothing
/// is credited, or the exit is not ours. Any other revert (out of gas, a failed transfer) may
/// pass on a later try.
fn nothing_to_pay(reason: &str) -> bool {
    [
        "AlreadyClaimed",
        "NothingToWithdraw",
        "NotFunded",
        "NotYourExit",
        "IndexOutOfRange",
        "StateHashMismatch",
        "WrongStatus",
    ]
    .iter()
    .any(|r| reason.contains(r))
}

/// What a channel asks its host to do, in order. Every [`Effect::Persist`] of one input comes
/// before that input's other effects: the host stores them durably before anything else leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Store this durably.
    Persist(Record),
    /// Send to every other participant.
    Broadcast(Message),
    /// Send to one peer.
    Send {
        /// The peer.
        to: Address,
        /// The message.
        message: Message,
    },
    /// Send this call to the manager from our account and report its outcome with
    /// [`Channel::handle_call_outcome`].
    Call(ChainCall),
    /// Tell the application.
    Notify(ChannelEvent),
    /// The peers this channel talks to from now on (its participants, and a newcomer we
    /// sponsor); empty: none any more (the channel is over). It comes before the messages that
    /// need it.
    Peers(Vec<Address>),
}

/// A lifecycle call's schedule (not stored: after a restart every duty is due at once).
#[derive(Debug, Clone, Copy, Default)]
struct Schedule {
    in_flight: bool,
    due_ms: u64,
    failures: u32,
}

/// The protocol cores of a channel once it runs.
struct Cores<S: Signer> {
    sm: StateManager<S>,
    handler: DisputeHandler,
}

/// One channel of one participant, from proposal to payout.
///
/// Sans-IO: the host feeds it application commands ([`Self::submit`], [`Self::exit`], ...), peer
/// messages ([`Self::handle_message`]), the manager's events ([`Self::handle_chain_event`]),
/// the outcomes of the calls it asked for ([`Self::handle_call_outcome`]) and time
/// ([`Self::handle_timeout`], at the latest at [`Self::poll_timeout`]); it carries out
/// [`Self::poll_effect`]'s effects in order. Everything the channel needs after a crash leaves
/// it as [`Effect::Persist`] before the effects that depend on it, and [`Self::restore`] takes it
/// back.
pub struct Channel<S: Signer + Clone> {
    id: B256,
    me: Address,
    signer: S,
    code: MachineCode,
    life: Life,
    cores: Option<Cores<S>>,
    schedule: BTreeMap<Duty, Schedule>,
    /// Latest block time seen.
    chain_now: u64,
    effects: VecDeque<Effect>,
    /// Persist records of the current input (they go out first).
    persists: Vec<Effect>,
    life_dirty: bool,
    /// The dispute handler's view as last stored.
    court_stored: Option<Bytes>,
    /// The dispute handler as last encoded: an input that leaves it as it was costs a
    /// comparison, not an encoding (most inputs of a quiet channel change nothing).
    court_seen: Option<Box<DisputeHandler>>,
    /// The turn last announced: (fork, height).
    turn_told: Option<(u64, u64)>,
    /// When (local ms) the proposal goes again to the invitees that did not answer.
    resend_proposal_at: Option<u64>,
    /// When (local ms) the tickets of the joins we sponsor go again.
    resend_tickets_at: Option<u64>,
    /// The dispute handler decides (false only for the peer protocol alone, see [`Self::live`]).
    court: bool,
    /// The peer set last given to the host.
    peers_told: Option<Vec<Address>>,
    /// When the periodic decisions are due next (local ms): [`TICK_MS`] after an input, then
    /// what the last tick found (see [`Self::periodic_wake`]). Part of [`Self::poll_timeout`].
    tick_due: Option<u64>,
    /// Set by a tick that found nothing periodic due before this time (and cleared by any
    /// input): a tick before it must decide nothing (checked in debug builds).
    quiet_until: Option<u64>,
    /// Local time of the last input that was not a tick.
    last_input_ms: u64,
    /// How the state manager recovers signers ([`Self::set_recover`]).
    recover: Recover,
}

impl<S: Signer + Clone> std::fmt::Debug for Channel<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("id", &self.id)
            .field("me", &self.me)
            .field("phase", &self.life.phase)
            .finish_non_exhaustive()
    }
}

impl<S: Signer + Clone> Channel<S> {
    fn with_life(signer: S, code: MachineCode, life: Life, chain_now: u64) -> Self {
        Self {
            id: life.proposal.channel_id,
            me: signer.address(),
            signer,
            code,
            life,
            cores: None,
            schedule: BTreeMap::new(),
            chain_now,
            effects: VecDeque::new(),
            persists: Vec::new(),
            life_dirty: true,
            court_stored: None,
            court_seen: None,
            turn_told: None,
            resend_proposal_at: None,
            resend_tickets_at: None,
            court: true,
            peers_told: None,
            tick_due: None,
            quiet_until: None,
            last_input_ms: 0,
            recover: Config::default().recover,
        }
    }

    /// Sets how the channel's state manager recovers the signers of what peers send (by
    /// default [`entente_types::recover_signer`]; see [`Config::recover`]): a host may recover
    /// them as messages arrive, elsewhere, and hand the results over this way.
    pub fn set_recover(&mut self, recover: Recover) {
        if let Some(cores) = &mut self.cores {
            cores.sm.set_recover(recover.clone());
        }
        self.recover = recover;
    }

    /// Proposes `proposal` (we are its first participant): it goes to the others, and once every
    /// one accepts we open the channel on chain with our deposit.
    pub fn propose(signer: S, proposal: ChannelProposal, code: MachineCode, chain_now: u64) -> Self {
        let me = signer.address();
        let mut life = Life::new(proposal, true, Phase::Proposed);
        life.accepted.insert(me);
        let message = Message::Proposal(Box::new(life.proposal.clone()));
        let mut channel = Self::with_life(signer, code, life, chain_now);
        channel.effects.push_back(Effect::Broadcast(message));
        channel.finish(0);
        info!(target: TARGET, channel = %channel.id, "proposed");
        channel
    }

    /// Accepts `proposal`, received from `from`: we answer, then deposit once it is opened.
    pub fn accept(
        signer: S,
        from: Address,
        proposal: ChannelProposal,
        code: MachineCode,
        chain_now: u64,
    ) -> Self {
        let me = signer.address();
        let mut life = Life::new(proposal, false, Phase::Funding);
        life.accepted.insert(me);
        life.accepted_at = Some(chain_now);
        let id = life.proposal.channel_id;
        let mut channel = Self::with_life(signer, code, life, chain_now);
        channel.effects.push_back(Effect::Send {
            to: from,
            message: Message::ProposalAnswer(ProposalAnswer {
                channel_id: id,
                accepted: true,
                reason: String::new(),
            }),
        });
        channel.finish(0);
        info!(target: TARGET, channel = %id, "accepted");
        channel
    }

    /// Expects to join a running channel on `terms` (one of its participants sends us a ticket;
    /// only a ticket on these terms is taken, see [`check_ticket`]).
    pub fn expect_join(signer: S, terms: JoinTerms, code: MachineCode, chain_now: u64) -> Self {
        let proposal = ChannelProposal {
            channel_id: terms.channel_id,
            chain_id: terms.chain_id,
            manager: terms.manager,
            participants: Vec::new(),
            deposits: Vec::new(),
            state_machine: terms.state_machine,
            token: terms.token,
            timing: entente_types::Timing::default(),
            funding_period: 0,
            machine_gas_limit: 0,
            salt: B256::ZERO,
            genesis_state: Bytes::new(),
            agreement_mode: entente_types::AgreementMode::default(),
        };
        let mut life = Life::new(proposal, false, Phase::Joining);
        life.join_terms = Some(terms);
        let mut channel = Self::with_life(signer, code, life, chain_now);
        channel.finish(0);
        channel
    }

    /// A channel already open on chain with `spec` (opened by whoever drives this core, as a
    /// simulation or a benchmark does), live from its genesis. With `court` false the dispute
    /// handler never decides: the peer protocol alone, for simulations and benchmarks without a
    /// chain; a real node always runs the court.
    pub fn live(
        signer: S,
        spec: entente_types::ChannelSpec,
        code: MachineCode,
        config: Config,
        court: bool,
        local_ms: u64,
    ) -> Result<Self, ChannelError> {
        let gas_limit = config.gas_limit;
        let life = Life::from_spec(&spec, gas_limit, false);
        let sm = StateManager::new(spec.clone(), signer.clone(), &code, config, local_ms)
            .map_err(|e| ChannelError::Restore(e.to_string()))?;
        let mut channel = Self::with_life(signer, code, life, spec.genesis_timestamp);
        channel.court = court;
        channel.cores = Some(Cores {
            handler: DisputeHandler::new(channel.me),
            sm,
        });
        channel
            .persists
            .push(Effect::Persist(Record::Spec(Box::new(spec))));
        channel.finish(local_ms);
        Ok(channel)
    }

    /// Rebuilds a channel from what it persisted, after a restart at local time `local_ms`, with
    /// `chain_now` the latest block time the host knows. Every chain call it still owes is due
    /// at once (a call whose fate is unknown is sent again; the chain refuses a duplicate).
    pub fn restore(
        signer: S,
        code: MachineCode,
        persisted: Persisted,
        chain_now: u64,
        local_ms: u64,
    ) -> Result<Self, ChannelError> {
        let Persisted {
            life,
            court,
            snapshot,
        } = persisted;
        let mut channel = Self::with_life(signer, code, life, chain_now);
        channel.life_dirty = false;
        if let Some(snapshot) = snapshot {
            let gas_limit = channel.life.proposal.machine_gas_limit;
            let config = if gas_limit == 0 {
                Config::default()
            } else {
                Config {
                    gas_limit,
                    ..Config::default()
                }
            };
            let mut sm =
                StateManager::restore(snapshot, channel.signer.clone(), &channel.code, config, local_ms)
                    .map_err(|e| ChannelError::Restore(e.to_string()))?;
            if chain_now > 0 {
                sm.observe_block(chain_now, local_ms);
            }
            let mut handler = match &court {
                Some(bytes) => ciborium::from_reader::<DisputeHandler, _>(bytes.as_ref())
                    .map_err(|e| ChannelError::Restore(format!("dispute handler: {e}")))?,
                None => DisputeHandler::new(channel.me),
            };
            handler.resume_after_restart(&mut sm, local_ms);
            // A node restores all its channels at once, most of them idle: their machines' EVMs
            // are built on their first input.
            sm.sleep_machine();
            // Approvals we co-signed still hold our signatures back (O4).
            for c in &channel.life.approvals {
                if c.signatures.contains_key(&channel.me) {
                    sm.hold_signing_above(c.approval.height, c.approval.deadline);
                }
            }
            channel.court_stored = court;
            channel.cores = Some(Cores { sm, handler });
        }
        for duty in channel.life.duties.clone() {
            channel.schedule.insert(
                duty,
                Schedule {
                    due_ms: local_ms,
                    ..Schedule::default()
                },
            );
        }
        channel.finish(local_ms);
        Ok(channel)
    }

    // ----- accessors ---------------------------------------------------------------------

    /// The channel id.
    pub fn id(&self) -> B256 {
        self.id
    }

    /// Where the channel is in its life.
    pub fn phase(&self) -> Phase {
        self.life.phase
    }

    /// The stored life (for inspection).
    pub fn life(&self) -> &Life {
        &self.life
    }

    /// The protocol core, once the channel runs.
    pub fn state_manager(&self) -> Option<&StateManager<S>> {
        self.cores.as_ref().map(|c| &c.sm)
    }

    /// The protocol core, mutably (tests and simulations).
    pub fn state_manager_mut(&mut self) -> Option<&mut StateManager<S>> {
        self.cores.as_mut().map(|c| &mut c.sm)
    }

    /// The dispute handler, once the channel runs.
    pub fn dispute_handler(&self) -> Option<&DisputeHandler> {
        self.cores.as_ref().map(|c| &c.handler)
    }

    /// True when nothing is left to do: settled (or left, or cancelled) and every call made.
    pub fn is_done(&self) -> bool {
        matches!(self.life.phase, Phase::Closed | Phase::Left | Phase::Cancelled)
            && self.life.duties.is_empty()
    }

    /// A snapshot for the application.
    pub fn info(&self) -> ChannelInfo {
        let mut info = ChannelInfo {
            channel_id: self.id,
            phase: self.life.phase,
            fork: 0,
            tip: 0,
            finalized: 0,
            tip_state_hash: B256::ZERO,
            tip_timestamp: 0,
            state_machine: self.life.proposal.state_machine,
            token: self.life.proposal.token,
            participants: self.life.proposal.participants.clone(),
            deposits: self
                .life
                .proposal
                .participants
                .iter()
                .copied()
                .zip(self.life.proposal.deposits.iter().copied())
                .collect(),
            next_writer: Address::ZERO,
            game_over: false,
            disputed: false,
            exits: self.life.exits.clone(),
            calls_outstanding: self.life.duties.len(),
        };
        if let Some(Cores { sm, handler }) = &self.cores {
            info.fork = sm.fork().fork;
            info.tip = sm.tip();
            info.finalized = sm.finalized_height();
            info.tip_state_hash = sm.tip_state_hash();
            info.tip_timestamp = sm.tip_timestamp();
            info.participants = sm.fork().participants.clone();
            info.next_writer = sm.next_writer();
            info.game_over = sm.is_game_over();
            info.disputed = handler.running_dispute().is_some();
        }
        info
    }

    /// The next effect to carry out.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// When (local ms) [`Self::handle_timeout`] must be called at the latest. It covers every
    /// time-driven decision of the channel, the dispute handler's included: a host need not
    /// call [`Self::handle_timeout`] at any other time (calling it more often is harmless). A
    /// quiet channel (nothing under way, nothing to prove) asks for it only at its next chain
    /// deadline, so a node holding many idle channels does not tick them all.
    pub fn poll_timeout(&self) -> Option<u64> {
        let core = self.cores.as_ref().and_then(|c| c.sm.poll_timeout());
        let duty = self
            .schedule
            .values()
            .filter(|s| !s.in_flight)
            .map(|s| s.due_ms)
            .chain(self.resend_proposal_at)
            .chain(self.resend_tickets_at)
            .chain(self.tick_due)
            .min();
        match (core, duty) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ----- application commands ----------------------------------------------------------

    /// Withdraws one of our proposals before every invitee accepted it (a proposal made to us
    /// that we do not want is answered with [`decline_message`] instead).
    /// A newcomer that no longer wants to join cancels too, unless its join is under way.
    pub fn cancel(&mut self, reason: String, local_ms: u64) -> Result<(), ChannelError> {
        let joining_idle = self.life.phase == Phase::Joining && self.life.ticket.is_none();
        if self.life.phase != Phase::Proposed && !joining_idle {
            return Err(ChannelError::WrongPhase {
                phase: self.life.phase,
                wanted: "proposed, or joining without a ticket",
            });
        }
        self.cancelled(reason);
        self.finish(local_ms);
        Ok(())
    }

    /// Submits our move (`data`: an ABI-encoded call of one of the machine's moves).
    pub fn submit(&mut self, data: Bytes, local_ms: u64) -> Result<B256, ChannelError> {
        let cores = self.live_cores()?;
        let result = cores.sm.submit(data, local_ms).map_err(ChannelError::Submit);
        self.finish(local_ms);
        result
    }

    /// Reads the current state with a view call of the machine (also once settled: the final
    /// state).
    pub fn view(&mut self, data: Bytes) -> Result<Bytes, ChannelError> {
        let phase = self.life.phase;
        let cores = self.cores.as_mut().ok_or(ChannelError::WrongPhase {
            phase,
            wanted: "live or closed",
        })?;
        cores.sm.view(data).map_err(ChannelError::Machine)
    }

    /// Leaves through the chain with our latest state (a finished game settles): from now on we
    /// sign nothing on this fork, the dispute layer brings the chain's head up to our tip (what we
    /// signed above the last N-signed state is posted first, so nobody can defeat the exit with
    /// it) and then requests the exit.
    pub fn exit(&mut self, local_ms: u64) -> Result<(), ChannelError> {
        let cores = self.live_cores()?;
        cores.handler.request_exit(&mut cores.sm);
        self.finish(local_ms);
        Ok(())
    }

    /// Sends `transaction` to the other participants as it is, unchecked and unsigned by us: a
    /// test and fault-injection hook (a real participant's own moves go through
    /// [`Self::submit`]).
    pub fn inject(
        &mut self,
        transaction: entente_types::SignedTransaction,
        local_ms: u64,
    ) -> Result<(), ChannelError> {
        self.live_cores()?;
        self.effects
            .push_back(Effect::Broadcast(Message::Transaction(transaction)));
        self.finish(local_ms);
        Ok(())
    }

    /// Lets `joiner` join: we co-sign an approval that admits it.
    pub fn allow_join(&mut self, joiner: Address, local_ms: u64) -> Result<(), ChannelError> {
        self.live_cores()?;
        self.life.allowed_joins.insert(joiner);
        self.life_dirty = true;
        for i in 0..self.life.approvals.len() {
            self.cosign(i);
        }
        self.finish(local_ms);
        Ok(())
    }

    /// Proposes `change` (a newcomer, or our own leave) at our final tip, signed by us.
    pub fn propose_change(&mut self, change: MembershipChange, local_ms: u64) -> Result<(), ChannelError> {
        let me = self.me;
        let id = self.id;
        let signer = self.signer.clone();
        let chain_now = self.chain_now;
        if self.life.approvals.len() >= MAX_APPROVALS {
            return Err(ChannelError::Membership("too many approvals in progress".into()));
        }
        let cores = self.live_cores()?;
        let sm = &mut cores.sm;
        if sm.tip() != sm.finalized_height() {
            return Err(ChannelError::NotFinal {
                tip: sm.tip(),
                finalized: sm.finalized_height(),
            });
        }
        let participants = sm.fork().participants.clone();
        match &change {
            MembershipChange::Join { participant, .. } if participants.contains(participant) => {
                return Err(ChannelError::Membership(format!(
                    "{participant} is a participant already"
                )));
            }
            MembershipChange::Leave { participant } if *participant != me => {
                return Err(ChannelError::Membership(
                    "only our own leave can be proposed".into(),
                ));
            }
            MembershipChange::Leave { .. } if participants.len() < 2 => {
                return Err(ChannelError::Membership("nobody left to approve".into()));
            }
            _ => {}
        }
        let chain_now = sm.now_secs(local_ms).max(chain_now);
        // Bound to the latest state and short-lived (over by the next writer's write-by time, so
        // it may co-sign); we sign nothing above it meanwhile (O4).
        let timing = sm.spec().timing;
        let approval = MembershipApproval {
            channel_id: id,
            fork: sm.fork().fork,
            height: sm.tip(),
            state_hash: sm.tip_state_hash(),
            change,
            deadline: (sm.tip_timestamp() + timing.p2p_time).max(chain_now + timing.agreement_time),
        };
        let digest = approval.digest(&sm.spec().domain);
        let signature = signer.try_sign_digest(&digest).map_err(ChannelError::Signer)?;
        sm.hold_signing_above(approval.height, approval.deadline);
        self.life.approvals.push(Collecting {
            approval: approval.clone(),
            signatures: BTreeMap::from([(me, signature)]),
            sponsor: true,
            done: false,
        });
        self.life_dirty = true;
        self.effects
            .push_back(Effect::Broadcast(Message::Approval(Box::new(
                ApprovalSignature { approval, signature },
            ))));
        let last = self.life.approvals.len() - 1;
        self.complete(last);
        self.finish(local_ms);
        Ok(())
    }

    fn live_cores(&mut self) -> Result<&mut Cores<S>, ChannelError> {
        let phase = self.life.phase;
        match (&mut self.cores, phase) {
            (Some(cores), Phase::Live) => Ok(cores),
            _ => Err(ChannelError::WrongPhase {
                phase,
                wanted: "live",
            }),
        }
    }

    // ----- peer messages -----------------------------------------------------------------

    /// A message from participant `from` (the host checked the frame and its sender).
    pub fn handle_message(&mut self, from: Address, message: Message, local_ms: u64) {
        match message {
            Message::ProposalAnswer(answer) => self.on_answer(from, answer),
            Message::Approval(approval) => self.on_approval(from, *approval),
            Message::JoinTicket(ticket) => self.on_ticket(from, *ticket),
            Message::Proposal(proposal) => {
                // Sent again: our answer was lost (or we crashed before it left).
                if !self.life.proposer
                    && self.life.phase == Phase::Funding
                    && !self.life.opened
                    && *proposal == self.life.proposal
                    && proposal.participants.first() == Some(&from)
                {
                    self.effects.push_back(Effect::Send {
                        to: from,
                        message: Message::ProposalAnswer(ProposalAnswer {
                            channel_id: self.id,
                            accepted: true,
                            reason: String::new(),
                        }),
                    });
                }
            }
            message => {
                if let Some(cores) = &mut self.cores {
                    let _ = cores.sm.handle_message(from, message, local_ms);
                }
            }
        }
        self.finish(local_ms);
    }

    fn on_answer(&mut self, from: Address, answer: ProposalAnswer) {
        if !self.life.proposer
            || self.life.phase != Phase::Proposed
            || self.life.proposal.participant_index(&from).is_none()
        {
            return;
        }
        let mut reason = answer.reason.clone();
        truncate_reason(&mut reason);
        self.effects.push_back(Effect::Notify(ChannelEvent::Answered {
            from,
            accepted: answer.accepted,
            reason,
        }));
        if !answer.accepted {
            self.cancelled(format!("{from} declined: {}", answer.reason));
            return;
        }
        self.life.accepted.insert(from);
        self.life_dirty = true;
        if self.life.accepted.len() == self.life.proposal.participants.len() {
            self.life.phase = Phase::Funding;
            self.add_duty(Duty::Open);
        }
    }

    fn cancelled(&mut self, mut reason: String) {
        truncate_reason(&mut reason);
        info!(target: TARGET, channel = %self.id, %reason, "cancelled");
        self.life.phase = Phase::Cancelled;
        self.life.cancel_reason = Some(reason.clone());
        self.life.duties.retain(|d| *d == Duty::Reclaim);
        self.schedule.retain(|d, _| *d == Duty::Reclaim);
        self.life_dirty = true;
        self.effects
            .push_back(Effect::Notify(ChannelEvent::Cancelled { reason }));
    }

    // ----- membership --------------------------------------------------------------------

    fn on_approval(&mut self, from: Address, message: ApprovalSignature) {
        let Some(cores) = &self.cores else { return };
        if !cores.sm.fork().participants.contains(&from) {
            return;
        }
        let digest = message.approval.digest(&cores.sm.spec().domain);
        match recover_signer(&digest, &message.signature) {
            Ok(signer) if signer == from => {}
            _ => {
                debug!(target: TARGET, channel = %self.id, %from, "approval signature does not match its sender");
                return;
            }
        }
        let index = match self
            .life
            .approvals
            .iter()
            .position(|c| c.approval == message.approval)
        {
            Some(i) => i,
            None if self.life.approvals.len() >= MAX_APPROVALS => {
                debug!(target: TARGET, channel = %self.id, "too many open approvals: dropped");
                return;
            }
            None => {
                self.life.approvals.push(Collecting {
                    approval: message.approval.clone(),
                    signatures: BTreeMap::new(),
                    sponsor: false,
                    done: false,
                });
                self.life.approvals.len() - 1
            }
        };
        self.life.approvals[index]
            .signatures
            .insert(from, message.signature);
        self.life_dirty = true;
        self.cosign(index);
        self.complete(index);
    }

    /// Signs approval `index` if we have not and it is acceptable (docs/security.md, O4), then
    /// sign nothing above the approved height until it lands or expires.
    fn cosign(&mut self, index: usize) {
        let Some(entry) = self.life.approvals.get(index) else {
            return;
        };
        if entry.signatures.contains_key(&self.me) {
            return;
        }
        let context = self.approval_context(entry);
        let Some(cores) = &mut self.cores else { return };
        let Some(entry) = self.life.approvals.get_mut(index) else {
            return;
        };
        let a = &entry.approval;
        if let Err(refusal) = cores.sm.approval_refusal(a, &context) {
            debug!(target: TARGET, channel = %self.id, %refusal, "approval not signed (yet)");
            return;
        }
        let digest = a.digest(&cores.sm.spec().domain);
        let signature = match self.signer.try_sign_digest(&digest) {
            Ok(signature) => signature,
            Err(e) => {
                // Asked again on the next timeout.
                debug!(target: TARGET, channel = %self.id, error = %e, "approval not signed yet");
                return;
            }
        };
        cores.sm.hold_signing_above(a.height, a.deadline);
        entry.signatures.insert(self.me, signature);
        let approval = entry.approval.clone();
        self.life_dirty = true;
        self.effects
            .push_back(Effect::Broadcast(Message::Approval(Box::new(
                ApprovalSignature { approval, signature },
            ))));
    }

    /// What deciding on an approval needs besides the channel's state.
    fn approval_context(&self, entry: &Collecting) -> ApprovalContext {
        ApprovalContext {
            chain_now: self.chain_now,
            sponsor: entry.sponsor,
            join_allowed: match &entry.approval.change {
                MembershipChange::Join { participant, .. } => self.life.allowed_joins.contains(participant),
                MembershipChange::Leave { .. } => false,
            },
        }
    }

    /// With every current participant's signature: the sponsor of a join sends the ticket, a
    /// leaver submits its leave.
    fn complete(&mut self, index: usize) {
        let Some(cores) = &self.cores else { return };
        let Some(entry) = self.life.approvals.get(index) else {
            return;
        };
        let participants = &cores.sm.fork().participants;
        if entry.done || !entry.sponsor || !participants.iter().all(|p| entry.signatures.contains_key(p)) {
            return;
        }
        match entry.approval.change.clone() {
            MembershipChange::Join { participant, .. } => {
                let Some(ticket) = self.ticket(index) else { return };
                info!(target: TARGET, channel = %self.id, %participant, "join approved by all: ticket sent");
                self.effects.push_back(Effect::Send {
                    to: participant,
                    message: Message::JoinTicket(Box::new(ticket)),
                });
            }
            MembershipChange::Leave { .. } => {
                info!(target: TARGET, channel = %self.id, "leave approved by all: submitting");
                self.add_duty(Duty::Leave);
            }
        }
        if let Some(entry) = self.life.approvals.get_mut(index) {
            entry.done = true;
        }
        self.life_dirty = true;
    }

    /// The ticket of complete join approval `index` (we sponsor it).
    fn ticket(&self, index: usize) -> Option<JoinTicket> {
        let cores = self.cores.as_ref()?;
        let entry = self.life.approvals.get(index)?;
        let participants = cores.sm.fork().participants.clone();
        let signatures: Vec<entente_types::Signature> = participants
            .iter()
            .map(|p| entry.signatures.get(p).copied())
            .collect::<Option<_>>()?;
        let state = cores.sm.state_at(entry.approval.height)?.clone();
        let spec = cores.sm.spec();
        let channel = ChannelProposal {
            channel_id: self.id,
            chain_id: spec.domain.chain_id(),
            manager: spec.domain.verifying_contract(),
            participants,
            deposits: Vec::new(),
            state_machine: spec.state_machine,
            token: self.life.proposal.token,
            timing: spec.timing,
            funding_period: 0,
            machine_gas_limit: cores.sm.gas_limit(),
            salt: B256::ZERO,
            genesis_state: state.clone(),
            agreement_mode: spec.agreement_mode,
        };
        Some(JoinTicket {
            approval: entry.approval.clone(),
            state,
            signatures,
            channel,
        })
    }

    /// The tickets of the joins we sponsor that can still land and whose newcomer is not in yet:
    /// sent again every few seconds (a ticket may be lost, or the newcomer's join may have
    /// reverted).
    fn pending_tickets(&self) -> Vec<(Address, JoinTicket)> {
        let Some(cores) = &self.cores else {
            return Vec::new();
        };
        let participants = &cores.sm.fork().participants;
        let mut tickets = Vec::new();
        for (index, entry) in self.life.approvals.iter().enumerate() {
            if let MembershipChange::Join { participant, .. } = &entry.approval.change
                && entry.sponsor
                && entry.done
                && entry.approval.deadline > self.chain_now
                && !participants.contains(participant)
                && let Some(ticket) = self.ticket(index)
            {
                tickets.push((*participant, ticket));
            }
        }
        tickets
    }

    /// A ticket to join: checked against our terms, then we pay our deposit through
    /// `joinChannel`. A ticket the chain refuses is dropped and the next one taken (anyone can
    /// send one; the sponsor sends the real one again until we joined).
    fn on_ticket(&mut self, from: Address, ticket: JoinTicket) {
        let refusal = match &self.life.join_terms {
            _ if self.life.phase != Phase::Joining || self.life.ticket.is_some() => {
                Some(TicketRefusal::Unexpected)
            }
            None => Some(TicketRefusal::Unexpected),
            Some(terms) => check_ticket(&ticket, from, terms, self.me).err(),
        };
        if let Some(refusal) = refusal {
            debug!(target: TARGET, channel = %self.id, %from, %refusal, "join ticket refused");
            return;
        }
        info!(target: TARGET, channel = %self.id, "join ticket received: joining on chain");
        self.life.proposal = ticket.channel.clone();
        self.life.ticket = Some(Box::new(ticket));
        self.life_dirty = true;
        self.add_duty(Duty::Join);
    }

    // ----- chain -------------------------------------------------------------------------

    /// Whether a block stamped `timestamp` reaching the channel at `local_ms` would change
    /// nothing here but the chain time it knows: the channel is quiet (no tick, timer or duty
    /// due by `local_ms`, no effect waiting), live or over, nothing in it waits on time alone (no
    /// confirmation the signer could not give, no intent, no approval hold), it keeps no
    /// approval (one it refused may become signable as chain time moves on, and one it keeps
    /// expires by chain time), its machine's EVM is let go or its wake already comes by the time
    /// a tick would let it go (a `view` builds it again without an input), and the block does not
    /// move its clock (so every deadline it wakes for stays where it is). The court's deadlines
    /// are decided at ticks, at the local time the clock maps them to.
    pub fn block_changes_nothing(&self, timestamp: u64, local_ms: u64) -> bool {
        self.quiet_until.is_some_and(|t| local_ms < t)
            && self.poll_timeout().is_none_or(|t| local_ms < t)
            && self.effects.is_empty()
            && self.persists.is_empty()
            && !self.life_dirty
            && (self.life.phase == Phase::Live || self.life.phase.is_over())
            && self.life.approvals.is_empty()
            && self.cores.as_ref().is_none_or(|c| {
                !c.sm.needs_ticks()
                    && !c.sm.clock().moved_by(timestamp, local_ms)
                    && (c.sm.machine_asleep()
                        || self.tick_due.is_some_and(|t| {
                            t <= self
                                .last_input_ms
                                .saturating_add(SLEEP_AFTER_MS)
                                .max(local_ms + TICK_MS)
                        }))
            })
    }

    /// A new block: what a host hands every channel. Returns false when it changed nothing
    /// here but the chain time the channel knows ([`Self::block_changes_nothing`]): no effect
    /// to collect, the wake unchanged. A node with thousands of quiet channels pays a few
    /// comparisons per channel and block instead of an input each.
    pub fn handle_block(&mut self, timestamp: u64, local_ms: u64) -> bool {
        if self.block_changes_nothing(timestamp, local_ms) {
            self.chain_now = self.chain_now.max(timestamp);
            return false;
        }
        self.handle_chain_event(ChainEvent::Block { timestamp }, local_ms);
        true
    }

    /// An event of this channel from the manager (or a new block).
    pub fn handle_chain_event(&mut self, event: ChainEvent, local_ms: u64) {
        // A block reaching a quiet channel before its next tick is due: if it changes nothing,
        // the channel stays quiet (only the clock moved, so its wake is computed again).
        let quiet_block = matches!(event, ChainEvent::Block { .. })
            && self.quiet_until.is_some_and(|t| local_ms < t)
            && self.effects.is_empty();
        // Checked on every block of every test and simulation: a block `handle_block` would
        // skip must indeed change nothing.
        #[cfg(debug_assertions)]
        let skippable = match &event {
            ChainEvent::Block { timestamp } => self.block_changes_nothing(*timestamp, local_ms),
            _ => false,
        };
        #[cfg(debug_assertions)]
        let wake_before = self.tick_due.unwrap_or(u64::MAX);
        let last_input = self.last_input_ms;
        let block = matches!(event, ChainEvent::Block { .. });
        match &event {
            ChainEvent::Block { timestamp } => self.on_block(*timestamp, local_ms),
            ChainEvent::ChannelOpened {
                genesis_state_hash, ..
            } => self.on_opened(*genesis_state_hash),
            ChainEvent::Deposited { participant, .. } if *participant == self.me => {
                self.life.deposit_sent = true;
                self.done_duty(Duty::Deposit);
            }
            ChainEvent::ChannelActivated { genesis_timestamp } => self.go_live(*genesis_timestamp, local_ms),
            ChainEvent::FundingCancelled => {
                if matches!(self.life.phase, Phase::Funding | Phase::Proposed) {
                    self.cancelled("the funding period passed without every deposit".into());
                }
                if self.life.deposit_sent {
                    self.add_duty(Duty::Reclaim);
                }
                self.done_duty(Duty::CancelFunding);
            }
            ChainEvent::SetState {
                fork,
                genesis_height,
                genesis_timestamp,
                state,
                participants,
            } if (self.life.phase == Phase::Joining
                || (self.life.phase == Phase::Cancelled && self.life.ticket.is_some()))
                && self.life.join_terms.is_some()
                && participants.contains(&self.me) =>
            {
                let info = ForkInfo {
                    fork: *fork,
                    genesis_height: *genesis_height,
                    genesis_timestamp: *genesis_timestamp,
                    genesis_state_hash: state_hash(state),
                    participants: participants.clone(),
                };
                self.joined(info, state, local_ms);
            }
            ChainEvent::ChannelClosed { .. } if self.life.phase == Phase::Joining => {
                // Too late to join (a join under way reverts; its deposit stays ours).
                self.cancelled("the channel closed before we joined".into());
            }
            ChainEvent::ParticipantRemoved { .. } => {
                self.life.credited = true;
                self.life_dirty = true;
            }
            _ => {}
        }
        if !matches!(event, ChainEvent::Block { .. }) && self.life.phase == Phase::Live {
            self.court_event(event.clone(), local_ms);
        }
        if let ChainEvent::ChannelClosed { fork, height, exits } = &event {
            self.settled(*fork, *height, exits.clone());
        }
        if !matches!(event, ChainEvent::Block { .. }) {
            self.effects.push_back(Effect::Notify(ChannelEvent::Chain(event)));
        }
        self.finish(local_ms);
        // A block that changed nothing here leaves a quiet channel quiet: only the clock moved,
        // so its wake is computed again instead of brought forward (every block reaches every
        // channel of a node).
        if block {
            // A block is not activity of this channel: it does not keep the machine's EVM awake.
            self.last_input_ms = last_input;
        }
        #[cfg(debug_assertions)]
        debug_assert!(
            !skippable || self.effects.is_empty(),
            "a block handle_block would skip had effects: {:?}",
            self.effects
        );
        if quiet_block && self.effects.is_empty() {
            self.settle_wake(local_ms);
        }
        // Nor may it bring the next wake forward (skipped, the wake stays where it was).
        #[cfg(debug_assertions)]
        debug_assert!(
            !skippable || self.tick_due.unwrap_or(u64::MAX) >= wake_before,
            "a block handle_block would skip brought the wake forward from {wake_before} to {:?}",
            self.tick_due
        );
    }

    fn on_block(&mut self, timestamp: u64, local_ms: u64) {
        self.chain_now = self.chain_now.max(timestamp);
        if let Some(Cores { sm, handler }) = &mut self.cores {
            // Approvals that can no longer take effect no longer hold our signatures.
            let leave_running = handler
                .running_dispute()
                .is_some_and(|d| d.kind == DisputeKind::Leave);
            let (head, _) = handler.head(sm);
            sm.release_holds(timestamp, head, leave_running);
            if self.court {
                let actions = handler.on_chain_event(sm, ChainEvent::Block { timestamp }, local_ms);
                self.court_calls(actions);
            }
        }
        // Approvals past their deadline are forgotten.
        let now = self.chain_now;
        let before = self.life.approvals.len();
        self.life.approvals.retain(|c| c.approval.deadline >= now);
        if self.life.approvals.len() != before {
            self.life_dirty = true;
        }
        // An invitee that accepted before its host had seen any block (a node that had just
        // started) does not know when it accepted: the wait for the proposer's open counts from
        // the first block it sees, not from time zero (which gave the channel up at once).
        if self.life.accepted_at == Some(0) && now > 0 {
            self.life.accepted_at = Some(now);
            self.life_dirty = true;
        }
        // An invitee whose channel is never opened gives it up (it paid nothing).
        if self.life.phase == Phase::Funding
            && !self.life.opened
            && !self.life.proposer
            && !self.life.deposit_sent
            && let Some(at) = self.life.accepted_at
            && now > at.saturating_add(2 * self.life.proposal.funding_period.max(60))
        {
            self.cancelled("the proposer never opened the channel".into());
        }
        // A funding period that passed without every deposit ends with a cancellation: the
        // proposer sends it first, the others a grace period later.
        if self.life.phase == Phase::Funding
            && let Some(deadline) = self.life.funding_deadline
            && self.life.deposit_sent
        {
            let grace = if self.life.proposal.participants.first() == Some(&self.me) {
                0
            } else {
                self.life.proposal.timing.agreement_time
            };
            if now > deadline + grace {
                self.add_duty(Duty::CancelFunding);
            }
        }
    }

    fn on_opened(&mut self, genesis_state_hash: B256) {
        if self.life.opened || !matches!(self.life.phase, Phase::Funding | Phase::Proposed) {
            return;
        }
        self.life.opened = true;
        self.life.funding_deadline = Some(self.chain_now + self.life.proposal.funding_period);
        self.life_dirty = true;
        self.done_duty(Duty::Open);
        if genesis_state_hash != state_hash(&self.life.proposal.genesis_state) {
            warn!(target: TARGET, channel = %self.id, "opened with another genesis state: not depositing");
            self.cancelled("opened with another genesis state".into());
            return;
        }
        self.life.phase = Phase::Funding;
        if !self.life.proposer && !self.life.deposit_sent {
            self.add_duty(Duty::Deposit);
        }
    }

    fn go_live(&mut self, genesis_timestamp: u64, local_ms: u64) {
        if self.life.phase != Phase::Funding || self.cores.is_some() {
            return;
        }
        let spec = self.life.proposal.channel_spec(genesis_timestamp);
        let config = Config {
            gas_limit: self.life.proposal.machine_gas_limit,
            recover: self.recover.clone(),
            ..Config::default()
        };
        let mut sm = match StateManager::new(spec.clone(), self.signer.clone(), &self.code, config, local_ms)
        {
            Ok(sm) => sm,
            Err(e) => {
                warn!(target: TARGET, channel = %self.id, error = %e, "channel does not start");
                return;
            }
        };
        if self.chain_now > 0 {
            sm.observe_block(self.chain_now, local_ms);
        }
        self.persists.push(Effect::Persist(Record::Spec(Box::new(spec))));
        info!(target: TARGET, channel = %self.id, genesis_timestamp, "channel live");
        self.cores = Some(Cores {
            sm,
            handler: DisputeHandler::new(self.me),
        });
        self.life.phase = Phase::Live;
        self.life.genesis_timestamp = Some(genesis_timestamp);
        self.life
            .duties
            .retain(|d| !matches!(d, Duty::Open | Duty::Deposit | Duty::CancelFunding));
        self.schedule
            .retain(|d, _| !matches!(d, Duty::Open | Duty::Deposit | Duty::CancelFunding));
        self.life_dirty = true;
        self.effects
            .push_back(Effect::Notify(ChannelEvent::Live { genesis_timestamp }));
    }

    /// The fork our join started: run the channel from its genesis.
    fn joined(&mut self, fork: ForkInfo, state: &Bytes, local_ms: u64) {
        let Some(ticket) = &self.life.ticket else { return };
        let mut channel = ticket.channel.clone();
        channel.participants = fork.participants.clone();
        channel.genesis_state = state.clone();
        let spec = channel.channel_spec(fork.genesis_timestamp);
        let config = Config {
            gas_limit: channel.machine_gas_limit,
            recover: self.recover.clone(),
            ..Config::default()
        };
        let mut sm = match StateManager::new(spec.clone(), self.signer.clone(), &self.code, config, local_ms)
        {
            Ok(sm) => sm,
            Err(e) => {
                warn!(target: TARGET, channel = %self.id, error = %e, "joined channel does not start");
                return;
            }
        };
        if let Err(e) = sm.apply_fork(fork.clone(), state, local_ms) {
            warn!(target: TARGET, channel = %self.id, error = %e, "joined fork does not load");
            return;
        }
        if self.chain_now > 0 {
            sm.observe_block(self.chain_now, local_ms);
        }
        self.persists.push(Effect::Persist(Record::Spec(Box::new(spec))));
        self.persists
            .push(Effect::Persist(Record::Fork(fork.clone(), state.clone())));
        info!(target: TARGET, channel = %self.id, fork = fork.fork, "joined");
        self.cores = Some(Cores {
            sm,
            handler: DisputeHandler::new(self.me),
        });
        self.life.proposal = channel;
        self.life.phase = Phase::Live;
        self.life.cancel_reason = None;
        self.life.genesis_timestamp = Some(fork.genesis_timestamp);
        self.done_duty(Duty::Join);
        self.life_dirty = true;
        self.effects.push_back(Effect::Notify(ChannelEvent::Live {
            genesis_timestamp: fork.genesis_timestamp,
        }));
    }

    /// Hands a chain event to the dispute handler, and follows the fork it may start.
    fn court_event(&mut self, event: ChainEvent, local_ms: u64) {
        let Some(Cores { sm, handler }) = &mut self.cores else {
            return;
        };
        let fork_before = sm.fork().fork;
        let actions = handler.on_chain_event(sm, event, local_ms);
        let fork = sm.fork().clone();
        let mut left = false;
        if fork.fork != fork_before {
            if let Some(state) = sm.state_at(fork.genesis_height).cloned() {
                self.persists
                    .push(Effect::Persist(Record::Fork(fork.clone(), state)));
            }
            left = !fork.participants.contains(&self.me);
            self.life.approvals.clear();
            self.life_dirty = true;
        }
        self.court_calls(actions);
        if left {
            // We left (or were removed): what the machine gave us waits in the pending ledger.
            info!(target: TARGET, channel = %self.id, "no longer a participant");
            self.life.phase = Phase::Left;
            self.life.credited = true;
            self.add_duty(Duty::WithdrawPending);
            self.done_duty(Duty::Leave);
        }
    }

    fn court_calls(&mut self, actions: Vec<ChainAction>) {
        for action in actions {
            self.effects
                .push_back(Effect::Call(ChainCall::Court(Box::new(action))));
        }
    }

    fn settled(&mut self, fork: u64, height: u64, exits: Vec<(Address, entente_types::U256)>) {
        if matches!(self.life.phase, Phase::Closed) {
            return;
        }
        info!(target: TARGET, channel = %self.id, fork, height, "channel settled");
        let mine = exits.iter().any(|(p, a)| *p == self.me && !a.is_zero());
        self.life.exits = Some(exits);
        self.life.settled_at = Some((fork, height));
        if self.life.phase == Phase::Live {
            self.life.phase = Phase::Closed;
        }
        if mine {
            self.add_duty(Duty::Withdraw);
        }
        if self.life.credited {
            self.add_duty(Duty::WithdrawPending);
        }
        self.life.approvals.clear();
        self.life_dirty = true;
    }

    /// What became of a call this channel asked for (`gas_used` when it was mined).
    pub fn handle_call_outcome(
        &mut self,
        call: &ChainCall,
        outcome: CallOutcome,
        gas_used: u64,
        local_ms: u64,
    ) {
        let report = match &outcome {
            CallOutcome::Mined => Ok(gas_used),
            CallOutcome::Reverted(reason) => Err(format!("reverted: {reason}")),
            CallOutcome::NotSent(reason) => Err(format!("not sent: {reason}")),
        };
        self.effects.push_back(Effect::Notify(ChannelEvent::ChainCall {
            what: call.name().to_string(),
            outcome: report,
        }));
        match call {
            ChainCall::Court(action) => {
                if let Some(Cores { sm, handler }) = &mut self.cores {
                    handler.on_call_outcome(sm, action, &outcome, local_ms);
                }
            }
            other => {
                if let Some(duty) = duty_of(other) {
                    self.duty_outcome(duty, other, &outcome, local_ms);
                }
            }
        }
        self.finish(local_ms);
    }

    fn duty_outcome(&mut self, duty: Duty, call: &ChainCall, outcome: &CallOutcome, local_ms: u64) {
        let Some(schedule) = self.schedule.get_mut(&duty) else {
            return;
        };
        schedule.in_flight = false;
        match outcome {
            CallOutcome::Mined => {
                match call {
                    ChainCall::Withdraw { exits, index } => {
                        if let Some((_, amount)) = exits.get(*index) {
                            self.effects
                                .push_back(Effect::Notify(ChannelEvent::Withdrawn { amount: *amount }));
                        }
                    }
                    ChainCall::Reclaim { .. } => {
                        if let Some(amount) = self.my_deposit() {
                            self.effects
                                .push_back(Effect::Notify(ChannelEvent::Withdrawn { amount }));
                        }
                    }
                    ChainCall::Open { .. } | ChainCall::Deposit { .. } => {
                        self.life.deposit_sent = true;
                        self.life_dirty = true;
                    }
                    _ => {}
                }
                // Deposit and cancel end with their event (a mined call may still be reorged
                // away), join with the fork it starts; the others are done.
                if duty == Duty::Approve {
                    // The deposit's call goes at once.
                    self.life.allowance = true;
                    self.life_dirty = true;
                    self.done_duty(duty);
                    for s in self.schedule.values_mut() {
                        if !s.in_flight {
                            s.due_ms = s.due_ms.min(local_ms);
                        }
                    }
                } else if duty == Duty::Open {
                    self.life.open_mined = true;
                    self.life_dirty = true;
                    self.done_duty(duty);
                } else if !matches!(duty, Duty::Deposit | Duty::CancelFunding) {
                    // A mined join ends with the fork the chain starts (`SetState` with us): it
                    // is never sent again (a second one would revert, and must not cost us the
                    // ticket).
                    self.done_duty(duty);
                } else {
                    schedule_retry(self.schedule.get_mut(&duty), local_ms, 16_000);
                }
            }
            CallOutcome::Reverted(reason) => {
                // A payout that reverts has nothing (more) to pay: done. The others are decided
                // again later; an `open` the chain keeps refusing ends the proposal.
                match duty {
                    Duty::Join if reason.contains("AlreadyParticipant") => {
                        // An earlier join of ours was mined: wait for its fork.
                        self.done_duty(duty);
                    }
                    Duty::Join => {
                        // The chain refused this ticket (a forged one, or one that came too
                        // late): wait for another.
                        self.life.ticket = None;
                        self.life.join_reverts += 1;
                        self.life_dirty = true;
                        self.done_duty(duty);
                        if self.life.join_reverts >= MAX_JOIN_REVERTS {
                            self.cancelled(format!(
                                "the chain refused {MAX_JOIN_REVERTS} join tickets, the last with {reason}"
                            ));
                        } else {
                            debug!(target: TARGET, channel = %self.id, %reason, "join refused: waiting for another ticket");
                        }
                    }
                    Duty::Withdraw | Duty::WithdrawPending | Duty::Reclaim
                        if !nothing_to_pay(reason) && schedule.failures + 1 < MAX_PAYOUT_REVERTS =>
                    {
                        // Not a refusal that says nothing is owed (out of gas, say): again later.
                        schedule.failures += 1;
                        schedule.due_ms = local_ms + backoff(2_000, schedule.failures);
                        warn!(target: TARGET, channel = %self.id, call = call.name(), %reason, "payout reverted: trying again");
                    }
                    Duty::Withdraw | Duty::WithdrawPending | Duty::Reclaim | Duty::Leave => {
                        debug!(target: TARGET, channel = %self.id, call = call.name(), %reason, "refused: nothing more to do");
                        self.done_duty(duty);
                    }
                    Duty::Open if reason.contains("ChannelExists") => {
                        // An earlier `open` of ours was mined: wait for its event.
                        self.life.open_mined = true;
                        self.life_dirty = true;
                        self.done_duty(duty);
                    }
                    Duty::Open => {
                        schedule.failures += 1;
                        let failures = schedule.failures;
                        if failures >= MAX_OPEN_REVERTS && !self.life.opened && !self.life.open_mined {
                            self.cancelled(format!("the manager refused to open it: {reason}"));
                        } else {
                            schedule.due_ms = local_ms + backoff(2_000, failures);
                        }
                    }
                    Duty::Deposit | Duty::CancelFunding | Duty::Approve => {
                        schedule.failures += 1;
                        schedule.due_ms = local_ms + backoff(2_000, schedule.failures);
                    }
                }
            }
            CallOutcome::NotSent(_) => {
                schedule.failures += 1;
                schedule.due_ms = local_ms + backoff(1_000, schedule.failures).min(16_000);
            }
        }
    }

    fn my_index(&self) -> Option<usize> {
        self.life.proposal.participant_index(&self.me)
    }

    fn my_deposit(&self) -> Option<entente_types::U256> {
        self.my_index()
            .and_then(|i| self.life.proposal.deposits.get(i).copied())
    }

    /// The ether a deposit of `amount` sends: all of it in a channel in ether, none in a token.
    fn in_ether(&self, amount: entente_types::U256) -> entente_types::U256 {
        if self.life.proposal.token == Address::ZERO {
            amount
        } else {
            entente_types::U256::ZERO
        }
    }

    // ----- time --------------------------------------------------------------------------

    /// Time passed: the protocol core's timers, the dispute handler's decisions and the chain
    /// calls that are due.
    pub fn handle_timeout(&mut self, local_ms: u64) {
        if self.life.proposer && self.life.phase == Phase::Proposed {
            match self.resend_proposal_at {
                Some(at) if at <= local_ms => {
                    self.resend_proposal_at = Some(local_ms + PROPOSAL_RESEND_MS);
                    for to in &self.life.proposal.participants {
                        if !self.life.accepted.contains(to) {
                            self.effects.push_back(Effect::Send {
                                to: *to,
                                message: Message::Proposal(Box::new(self.life.proposal.clone())),
                            });
                        }
                    }
                }
                Some(_) => {}
                None => self.resend_proposal_at = Some(local_ms + PROPOSAL_RESEND_MS),
            }
        } else {
            self.resend_proposal_at = None;
        }
        // Tickets of the joins we sponsor, again until the newcomer is in.
        let tickets = if self.life.phase == Phase::Live {
            self.pending_tickets()
        } else {
            Vec::new()
        };
        if tickets.is_empty() {
            self.resend_tickets_at = None;
        } else {
            match self.resend_tickets_at {
                Some(at) if at <= local_ms => {
                    self.resend_tickets_at = Some(local_ms + TICKET_RESEND_MS);
                    for (to, ticket) in tickets {
                        self.effects.push_back(Effect::Send {
                            to,
                            message: Message::JoinTicket(Box::new(ticket)),
                        });
                    }
                }
                Some(_) => {}
                None => self.resend_tickets_at = Some(local_ms + TICKET_RESEND_MS),
            }
        }
        // Approvals the signer could not sign before.
        if self.life.phase == Phase::Live {
            for i in 0..self.life.approvals.len() {
                self.cosign(i);
            }
        }
        let quiet = self.quiet_until.is_some_and(|t| local_ms < t);
        if let Some(Cores { sm, handler }) = &mut self.cores {
            sm.handle_timeout(local_ms);
            if self.court && (self.life.phase == Phase::Live || handler.running_dispute().is_some()) {
                let actions = handler.on_tick(sm, local_ms);
                debug_assert!(
                    !quiet || actions.is_empty(),
                    "a tick the last one found quiet decided {actions:?}"
                );
                self.court_calls(actions);
            }
        }
        let last_input = self.last_input_ms;
        self.finish(local_ms);
        self.last_input_ms = last_input;
        if local_ms >= last_input.saturating_add(SLEEP_AFTER_MS)
            && let Some(cores) = &mut self.cores
        {
            cores.sm.sleep_machine();
        }
        self.settle_wake(local_ms);
    }

    /// Takes the periodic decisions' next time as seen at the end of a tick (or of a block that
    /// changed nothing): quiet until then if that is further than the cadence, quiet for good
    /// if nothing is ever due.
    fn settle_wake(&mut self, local_ms: u64) {
        self.tick_due = self.periodic_wake(local_ms);
        self.quiet_until = match self.tick_due {
            None => Some(u64::MAX),
            Some(t) if t > local_ms + TICK_MS => Some(t),
            Some(_) => None,
        };
    }

    /// When the periodic decisions are due next, as seen at the end of a tick at `local_ms`:
    /// every [`TICK_MS`] while something waits on time alone (a lifecycle step, an approval to
    /// sign, a dispute, intents, ...), else at the dispute handler's next chain deadline (never
    /// sooner than [`TICK_MS`] from now, as when every channel was ticked that often), or never.
    fn periodic_wake(&self, local_ms: u64) -> Option<u64> {
        let decide = self.decisions_wake(local_ms);
        // And once the channel has been idle long enough to let its machine's EVM go.
        let sleep = self.cores.as_ref().filter(|c| !c.sm.machine_asleep()).map(|_| {
            self.last_input_ms
                .saturating_add(SLEEP_AFTER_MS)
                .max(local_ms + TICK_MS)
        });
        match (decide, sleep) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When the periodic decisions are due next (see [`Self::periodic_wake`]).
    fn decisions_wake(&self, local_ms: u64) -> Option<u64> {
        let cadence = local_ms + TICK_MS;
        if self.life.phase.is_over() {
            return None;
        }
        let Some(Cores { sm, handler }) = &self.cores else {
            return Some(cadence);
        };
        let running = handler.running_dispute().is_some();
        if self.life.phase != Phase::Live && !running {
            return Some(cadence);
        }
        // An approval we would sign but the signer could not yet (asked again every tick); one
        // we refuse waits for an input that changes that (a block, a message).
        let signable = |c: &Collecting| {
            !c.signatures.contains_key(&self.me)
                && sm
                    .approval_refusal(&c.approval, &self.approval_context(c))
                    .is_ok()
        };
        if sm.needs_ticks() || self.life.approvals.iter().any(signable) {
            return Some(cadence);
        }
        if !self.court {
            return None;
        }
        handler.wake_at(sm, local_ms).map(|t| t.max(cadence))
    }

    // ----- duties ------------------------------------------------------------------------

    fn add_duty(&mut self, duty: Duty) {
        if self.life.duties.insert(duty) {
            self.life_dirty = true;
        }
        self.schedule.entry(duty).or_default();
    }

    fn done_duty(&mut self, duty: Duty) {
        if self.life.duties.remove(&duty) {
            self.life_dirty = true;
        }
        self.schedule.remove(&duty);
    }

    /// Sends the duties that are due.
    fn drive(&mut self, local_ms: u64) {
        let due: Vec<Duty> = self
            .schedule
            .iter()
            .filter(|(_, s)| !s.in_flight && s.due_ms <= local_ms)
            .map(|(d, _)| *d)
            .collect();
        for duty in due {
            // In a token channel the manager takes the deposit by our allowance: give it first.
            if matches!(duty, Duty::Open | Duty::Deposit | Duty::Join)
                && self.life.proposal.token != Address::ZERO
                && !self.life.allowance
            {
                if !self.schedule.contains_key(&Duty::Approve) {
                    self.add_duty(Duty::Approve);
                    if let Some(call) = self.duty_call(Duty::Approve)
                        && let Some(s) = self.schedule.get_mut(&Duty::Approve)
                    {
                        s.in_flight = true;
                        self.effects.push_back(Effect::Call(call));
                    }
                }
                continue;
            }
            let Some(call) = self.duty_call(duty) else {
                // Not possible yet: looked at again at the cadence (and on every input), not
                // left due in the past (a host would tick it without pause).
                if let Some(s) = self.schedule.get_mut(&duty) {
                    s.due_ms = local_ms + TICK_MS;
                }
                continue;
            };
            if matches!(duty, Duty::Open | Duty::Deposit) && !self.life.deposit_sent {
                // From now on our deposit may be on chain: a cancellation reclaims it.
                self.life.deposit_sent = true;
                self.life_dirty = true;
            }
            if let Some(s) = self.schedule.get_mut(&duty) {
                s.in_flight = true;
            }
            self.effects.push_back(Effect::Call(call));
        }
    }

    fn duty_call(&mut self, duty: Duty) -> Option<ChainCall> {
        let index = self.my_index();
        match duty {
            Duty::Open => Some(ChainCall::Open {
                spec: Box::new(onchain_spec(&self.life.proposal)),
                genesis_state: self.life.proposal.genesis_state.clone(),
                value: self.in_ether(self.my_deposit().unwrap_or_default()),
            }),
            Duty::Deposit => Some(ChainCall::Deposit {
                index: index?,
                amount: self.in_ether(self.my_deposit()?),
            }),
            Duty::Approve => {
                let amount = match (self.life.phase, &self.life.ticket) {
                    (Phase::Joining, Some(ticket)) => match &ticket.approval.change {
                        MembershipChange::Join { amount, .. } => *amount,
                        MembershipChange::Leave { .. } => return None,
                    },
                    (Phase::Joining, None) => return None,
                    _ => self.my_deposit()?,
                };
                Some(ChainCall::Approve {
                    token: self.life.proposal.token,
                    spender: self.life.proposal.manager,
                    amount,
                })
            }
            Duty::CancelFunding => Some(ChainCall::CancelFunding),
            Duty::Reclaim => Some(ChainCall::Reclaim { index: index? }),
            Duty::Withdraw => {
                let exits = self.life.exits.clone()?;
                let index = exits.iter().position(|(p, _)| *p == self.me)?;
                Some(ChainCall::Withdraw { exits, index })
            }
            Duty::WithdrawPending => Some(ChainCall::WithdrawPending {
                token: self.life.proposal.token,
            }),
            Duty::Join => {
                let ticket = self.life.ticket.as_ref()?;
                let MembershipChange::Join {
                    participant,
                    amount,
                    data,
                } = ticket.approval.change.clone()
                else {
                    return None;
                };
                Some(ChainCall::Join {
                    value: self.in_ether(amount),
                    approval: Box::new(to_join(&ticket.approval, participant, amount, data)),
                    state: ticket.state.clone(),
                    signatures: signature_bytes(&ticket.signatures),
                })
            }
            Duty::Leave => {
                let cores = self.cores.as_ref()?;
                let participants = cores.sm.fork().participants.clone();
                let entry = self.life.approvals.iter().find(|c| {
                    c.sponsor && matches!(c.approval.change, MembershipChange::Leave { participant } if participant == self.me)
                })?;
                let signatures: Option<Vec<_>> = participants
                    .iter()
                    .map(|p| entry.signatures.get(p).copied())
                    .collect();
                let state = cores.sm.state_at(entry.approval.height)?.clone();
                Some(ChainCall::Leave {
                    approval: Box::new(to_leave(&entry.approval, self.me)),
                    state,
                    signatures: signature_bytes(&signatures?),
                })
            }
        }
    }

    // ----- effects -----------------------------------------------------------------------

    /// Ends an input: sends due duties, gathers the protocol core's effects, stores what changed
    /// and puts every persist record of this input before its other effects.
    fn finish(&mut self, local_ms: u64) {
        // Any input: the periodic decisions run soon (a tick recomputes what follows).
        let soon = local_ms + TICK_MS;
        self.tick_due = Some(self.tick_due.map_or(soon, |t| t.min(soon)));
        self.quiet_until = None;
        self.last_input_ms = local_ms;
        self.drive(local_ms);
        let mut others = Vec::new();
        if let Some(Cores { sm, handler }) = &mut self.cores {
            while let Some(effect) = sm.poll_effect() {
                match effect {
                    CoreEffect::Persist(record) => {
                        self.persists.push(Effect::Persist(Record::Protocol(record)))
                    }
                    CoreEffect::Broadcast(message) => others.push(Effect::Broadcast(message)),
                    CoreEffect::Send { to, message } => others.push(Effect::Send { to, message }),
                    CoreEffect::Notify(event) => others.push(Effect::Notify(ChannelEvent::Protocol(event))),
                }
            }
            let mut bytes = Vec::new();
            if self.court
                && self.court_seen.as_deref() != Some(&*handler)
                && ciborium::into_writer(&*handler, &mut bytes).is_ok()
            {
                let bytes = Bytes::from(bytes);
                if self.court_stored.as_ref() != Some(&bytes) {
                    self.persists.push(Effect::Persist(Record::Court(bytes.clone())));
                    self.court_stored = Some(bytes);
                }
                self.court_seen = Some(Box::new(handler.clone()));
            }
            // Our turn, once we may sign it: not while an approval we signed holds our
            // signatures at the tip (the turn is told when the hold ends).
            let held = sm.signing_held_at().is_some_and(|h| h <= sm.tip());
            if held || sm.signing_stopped() {
                // Told again once we may sign.
                self.turn_told = None;
            } else if self.life.phase == Phase::Live && sm.is_my_turn() {
                let turn = (sm.fork().fork, sm.tip() + 1);
                if self.turn_told != Some(turn) {
                    self.turn_told = Some(turn);
                    others.push(Effect::Notify(ChannelEvent::Turn {
                        fork: turn.0,
                        height: turn.1,
                    }));
                }
            }
        }
        if self.life_dirty {
            self.life_dirty = false;
            self.persists
                .insert(0, Effect::Persist(Record::Life(Box::new(self.life.clone()))));
        }
        let own: Vec<Effect> = self.effects.drain(..).collect();
        // Stored first, then who we talk to, then our own effects (answers, calls) and the
        // core's, in order.
        self.effects.extend(self.persists.drain(..));
        if let Some(peers) = self.peer_set()
            && self.peers_told.as_ref() != Some(&peers)
        {
            self.peers_told = Some(peers.clone());
            self.effects.push_back(Effect::Peers(peers));
        }
        self.effects.extend(own);
        self.effects.extend(others);
    }

    /// Who this channel talks to now: the proposal's participants while it opens, the fork's
    /// participants (and a newcomer whose join we sponsor) while it runs, nobody once it is
    /// over. `None` while waiting to join (the sponsor reaches us).
    fn peer_set(&self) -> Option<Vec<Address>> {
        match self.life.phase {
            Phase::Proposed | Phase::Funding => Some(self.life.proposal.participants.clone()),
            Phase::Joining => None,
            Phase::Live => {
                let cores = self.cores.as_ref()?;
                let mut peers = cores.sm.fork().participants.clone();
                for c in &self.life.approvals {
                    if let MembershipChange::Join { participant, .. } = &c.approval.change
                        && c.sponsor
                        && c.approval.deadline >= self.chain_now
                        && !peers.contains(participant)
                    {
                        peers.push(*participant);
                    }
                }
                Some(peers)
            }
            Phase::Closed | Phase::Left | Phase::Cancelled => Some(Vec::new()),
        }
    }
}

/// The message that declines `channel_id`'s proposal, for its proposer.
pub fn decline_message(channel_id: B256, mut reason: String) -> Message {
    truncate_reason(&mut reason);
    Message::ProposalAnswer(ProposalAnswer {
        channel_id,
        accepted: false,
        reason,
    })
}

/// Cuts `reason` to at most `MAX_REASON_BYTES`, at a character boundary (a peer chooses it).
pub(crate) fn truncate_reason(reason: &mut String) {
    if reason.len() > MAX_REASON_BYTES {
        let mut end = MAX_REASON_BYTES;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
}

fn duty_of(call: &ChainCall) -> Option<Duty> {
    Some(match call {
        ChainCall::Open { .. } => Duty::Open,
        ChainCall::Deposit { .. } => Duty::Deposit,
        ChainCall::Approve { .. } => Duty::Approve,
        ChainCall::CancelFunding => Duty::CancelFunding,
        ChainCall::Reclaim { .. } => Duty::Reclaim,
        ChainCall::Withdraw { .. } => Duty::Withdraw,
        ChainCall::WithdrawPending { .. } => Duty::WithdrawPending,
        ChainCall::Join { .. } => Duty::Join,
        ChainCall::Leave { .. } => Duty::Leave,
        ChainCall::Court(_) => return None,
    })
}

fn backoff(base_ms: u64, failures: u32) -> u64 {
    (base_ms << failures.saturating_sub(1).min(6)).min(MAX_BACKOFF_MS)
}

fn schedule_retry(schedule: Option<&mut Schedule>, local_ms: u64, after_ms: u64) {
    if let Some(s) = schedule {
        s.in_flight = false;
        s.due_ms = local_ms + after_ms;
    }
}

fn signature_bytes(signatures: &[entente_types::Signature]) -> Vec<Bytes> {
    signatures
        .iter()
        .map(|s| Bytes::copy_from_slice(s.as_bytes()))
        .collect()
}

impl From<SubmitError> for ChannelError {
    fn from(e: SubmitError) -> Self {
        Self::Submit(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_cut_at_a_character_boundary() {
        // 'é' is two bytes: one straddles the limit.
        let mut reason = format!("{}é{}", "a".repeat(MAX_REASON_BYTES - 1), "b".repeat(10));
        truncate_reason(&mut reason);
        assert_eq!(reason, "a".repeat(MAX_REASON_BYTES - 1));
        let mut short = "déclin".to_string();
        truncate_reason(&mut short);
        assert_eq!(short, "déclin");
        let message = decline_message(B256::ZERO, "é".repeat(MAX_REASON_BYTES));
        let Message::ProposalAnswer(answer) = message else {
            panic!("not an answer")
        };
        assert!(answer.reason.len() <= MAX_REASON_BYTES);
    }
}
