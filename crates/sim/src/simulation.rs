use std::collections::BTreeMap;
use std::fmt;

use entente_channel::{CallOutcome, ChainCall, Channel, ChannelEvent, Effect, Phase, Record};
use entente_dispute::DisputeHandler;
use entente_state_manager::{Event, PersistRecord, StateManager};
use entente_types::{
    Address, B256, Envelope, LocalSigner, Message, SignedIntent, SignedTransaction, U256, keccak256,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::attacker::{self, Attack, AttackMemory};
use crate::byzantine::{Forger, Strategy};
use crate::chain::ChainLink;
use crate::queue::EventQueue;
use crate::{NetConfig, Player};
use entente_dispute::{ChainAction, ChainEvent, FraudKind, ProofKind};

/// A failed run: everything needed to replay it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimError {
    /// The seed of the run.
    pub seed: u64,
    /// Virtual time of the failure.
    pub at_ms: u64,
    /// What went wrong.
    pub reason: String,
    /// The scenario, as given.
    pub scenario: String,
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "simulation failed at {} ms: {}\n  replay: seed = {}, scenario = {}",
            self.at_ms, self.reason, self.seed, self.scenario
        )
    }
}

impl std::error::Error for SimError {}

/// One line of a run's trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEntry {
    /// Virtual time.
    pub at_ms: u64,
    /// Peer index.
    pub peer: usize,
    /// What happened.
    pub what: String,
}

/// Counters per peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Moves submitted.
    pub submitted: u64,
    /// Transactions applied (own and received).
    pub applied: u64,
    /// Messages refused.
    pub rejected: u64,
    /// Frames sent.
    pub sent: u64,
    /// Equivocations detected.
    pub equivocations: u64,
}

enum Action {
    Deliver { to: usize, from: usize, bytes: Vec<u8> },
    Wake(usize),
    Act(usize),
    ChainTick,
}

/// The protocol core of a simulated channel: live from [`Channel::live`] on, it always has one.
#[allow(clippy::expect_used)]
fn sm(channel: &Channel<LocalSigner>) -> &StateManager<LocalSigner> {
    channel.state_manager().expect("a simulated channel is live")
}

/// [`sm`], mutably.
#[allow(clippy::expect_used)]
fn sm_mut(channel: &mut Channel<LocalSigner>) -> &mut StateManager<LocalSigner> {
    channel.state_manager_mut().expect("a simulated channel is live")
}

/// The dispute handler of a simulated channel (it has one from [`Channel::live`] on).
#[allow(clippy::expect_used)]
fn court(channel: &Channel<LocalSigner>) -> &DisputeHandler {
    channel.dispute_handler().expect("a simulated channel is live")
}

struct SimPeer {
    /// The channel core, as the node runs it.
    channel: Channel<LocalSigner>,
    /// The account's balance when the chain was attached (after its deposit).
    balance_at_start: U256,
    player: Box<dyn Player>,
    /// What the peer persisted, in order.
    stored: Vec<PersistRecord>,
    /// Own-signature log (from the persist effects): detects a double signature.
    own_signed: BTreeMap<(u64, u64), B256>,
    act_pending: bool,
    next_wake: Option<u64>,
    stats: PeerStats,
    strategy: Strategy,
    forger: Option<Forger>,
    /// How far this peer's local clock runs ahead of virtual time (negative: behind).
    clock_offset_ms: i64,
    /// Heights a forging peer already forged at (it forges once per height).
    forged: std::collections::BTreeSet<(u64, u64)>,
    /// Forks a false disputer raised its false fraud proof on (once per fork).
    false_disputed: std::collections::BTreeSet<u64>,
    /// A false disputer tried to close the channel before its slash.
    escape_tried: bool,
    /// An equivocator's twin of its transaction at (fork, height), made once and resent with it.
    twins: BTreeMap<(u64, u64), Option<SignedTransaction>>,
    /// An intent-equivocator's twin of its intent at each nonce.
    intent_twins: BTreeMap<u64, Option<SignedIntent>>,
    /// What an on-chain attacker remembers.
    attack: AttackMemory,
}

/// The simulation: peers, virtual time, the in-memory network.
pub struct Simulation {
    seed: u64,
    scenario: String,
    rng: StdRng,
    now: u64,
    queue: EventQueue<Action>,
    peers: Vec<SimPeer>,
    index: BTreeMap<Address, usize>,
    net: NetConfig,
    think_ms: (u64, u64),
    trace: Vec<TraceEntry>,
    trace_hash: B256,
    keep_trace: bool,
    /// The state each (fork, height) was finalized with, and by which honest peer first.
    finalized: BTreeMap<(u64, u64), (usize, B256)>,
    /// When each (fork, height) was submitted, for finality latency.
    submitted_at: BTreeMap<(u64, u64), u64>,
    /// Submit-to-final latency of every (peer, height), in virtual ms.
    latencies: Vec<u64>,
    last_final: Vec<u64>,
    frames: u64,
    /// Every frame put on the network (sender, bytes), when enabled.
    tap: Option<Vec<(usize, Vec<u8>)>>,
    /// The chain, when the simulation has one.
    chain: Option<ChainLink>,
    /// Probability (per mille) that a dispute handler's call is lost before the chain.
    chain_failure_permille: u32,
    /// Every refusal: (receiving peer, sender, reason).
    rejections: Vec<(usize, Address, entente_state_manager::Rejection)>,
    /// Every equivocation seen: (seeing peer, signer).
    equivocations: Vec<(usize, Address)>,
}

impl fmt::Debug for Simulation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulation")
            .field("seed", &self.seed)
            .field("now", &self.now)
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

impl Simulation {
    /// A simulation of `peers` (each a core and its player) under `net`, seeded by `seed`.
    /// `scenario` describes the run for replay messages.
    pub fn new(
        seed: u64,
        scenario: String,
        peers: Vec<(Channel<LocalSigner>, Box<dyn Player>)>,
        net: NetConfig,
        think_ms: (u64, u64),
    ) -> Self {
        let index = peers
            .iter()
            .enumerate()
            .map(|(i, (channel, _))| (sm(channel).me(), i))
            .collect();
        let n = peers.len();
        let peers = peers
            .into_iter()
            .map(|(channel, player)| SimPeer {
                channel,
                balance_at_start: U256::ZERO,
                player,
                stored: Vec::new(),
                own_signed: BTreeMap::new(),
                act_pending: false,
                next_wake: None,
                stats: PeerStats::default(),
                strategy: Strategy::Honest,
                forger: None,
                clock_offset_ms: 0,
                forged: std::collections::BTreeSet::new(),
                false_disputed: std::collections::BTreeSet::new(),
                escape_tried: false,
                twins: BTreeMap::new(),
                intent_twins: BTreeMap::new(),
                attack: AttackMemory::default(),
            })
            .collect();
        let mut sim = Self {
            seed,
            scenario,
            rng: StdRng::seed_from_u64(seed),
            now: 0,
            queue: EventQueue::new(),
            peers,
            index,
            net,
            think_ms,
            trace: Vec::new(),
            trace_hash: B256::ZERO,
            keep_trace: true,
            finalized: BTreeMap::new(),
            submitted_at: BTreeMap::new(),
            latencies: Vec::new(),
            last_final: vec![0; n],
            frames: 0,
            tap: None,
            chain: None,
            chain_failure_permille: 0,
            rejections: Vec::new(),
            equivocations: Vec::new(),
        };
        for i in 0..n {
            // What each channel asked for at its construction (its spec, stored).
            let _ = sim.carry_out(i);
            sim.schedule_turn(i);
        }
        sim
    }

    /// Makes peer `i` follow `strategy`; `code`, `key` and the channel's `gas_limit` let it forge
    /// signed transactions.
    pub fn set_strategy(
        &mut self,
        i: usize,
        strategy: Strategy,
        code: entente_evm_runtime::MachineCode,
        key: LocalSigner,
        gas_limit: u64,
    ) {
        let peer = &mut self.peers[i];
        peer.strategy = strategy;
        peer.forger = Some(Forger::new(code, key, gas_limit));
    }

    /// Makes peer `i`'s local clock run `offset_ms` ahead of virtual time (negative: behind).
    pub fn set_clock_offset(&mut self, i: usize, offset_ms: i64) {
        self.peers[i].clock_offset_ms = offset_ms;
    }

    /// Peer `i`'s local time now.
    fn local(&self, i: usize) -> u64 {
        self.now.saturating_add_signed(self.peers[i].clock_offset_ms)
    }

    /// Peer `i`'s strategy.
    pub fn strategy(&self, i: usize) -> Strategy {
        self.peers[i].strategy
    }

    /// Indices of the honest peers.
    pub fn honest(&self) -> Vec<usize> {
        (0..self.peers.len())
            .filter(|&i| self.peers[i].strategy == Strategy::Honest)
            .collect()
    }

    /// Connects the simulation to a chain (the peers' channels were built with their court on):
    /// from now on it is ticked once per second of virtual time, its events go to every peer's
    /// channel and the channels' calls to it.
    pub fn attach_chain(&mut self, mut link: ChainLink) {
        for p in &mut self.peers {
            p.balance_at_start = link.balance(sm(&p.channel).me());
        }
        self.chain = Some(link);
        self.push(self.now + 1_000, Action::ChainTick);
    }

    /// What peer `i`'s account gained on chain since the chain was attached (its payouts,
    /// withdrawn), plus what the manager still holds for it.
    pub fn paid(&mut self, i: usize) -> U256 {
        let me = sm(&self.peers[i].channel).me();
        let start = self.peers[i].balance_at_start;
        let Some(link) = self.chain.as_mut() else {
            return U256::ZERO;
        };
        link.balance(me).saturating_sub(start) + link.pending(me)
    }

    /// The chain, if any.
    pub fn chain(&self) -> Option<&ChainLink> {
        self.chain.as_ref()
    }

    /// The chain, mutably (reads such as pending balances).
    pub fn chain_mut(&mut self) -> Option<&mut ChainLink> {
        self.chain.as_mut()
    }

    /// Keep only the trace hash, not the entries (long runs).
    pub fn keep_trace(&mut self, keep: bool) {
        self.keep_trace = keep;
    }

    /// Record every frame put on the network (see [`Self::tapped`]).
    pub fn tap(&mut self, on: bool) {
        self.tap = on.then(Vec::new);
    }

    /// The frames recorded by [`Self::tap`]: (sender index, encoded frame), one per send.
    pub fn tapped(&self) -> &[(usize, Vec<u8>)] {
        self.tap.as_deref().unwrap_or(&[])
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Virtual time now (ms).
    pub fn now_ms(&self) -> u64 {
        self.now
    }

    /// The trace so far (empty if not kept).
    pub fn trace(&self) -> &[TraceEntry] {
        &self.trace
    }

    /// A hash of every trace entry so far: equal for identical runs.
    pub fn trace_hash(&self) -> B256 {
        self.trace_hash
    }

    /// Number of peers.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// True if there are no peers.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Peer `i`'s protocol core.
    pub fn peer(&self, i: usize) -> &StateManager<LocalSigner> {
        sm(&self.peers[i].channel)
    }

    /// Peer `i`'s protocol core, mutably (for views).
    pub fn peer_mut(&mut self, i: usize) -> &mut StateManager<LocalSigner> {
        sm_mut(&mut self.peers[i].channel)
    }

    /// Peer `i`'s channel.
    pub fn channel(&self, i: usize) -> &Channel<LocalSigner> {
        &self.peers[i].channel
    }

    /// Peer `i`'s counters.
    pub fn stats(&self, i: usize) -> &PeerStats {
        &self.peers[i].stats
    }

    /// What peer `i` persisted.
    pub fn stored(&self, i: usize) -> &[PersistRecord] {
        &self.peers[i].stored
    }

    /// Submit-to-final latencies (virtual ms) over every peer and height.
    pub fn latencies(&self) -> &[u64] {
        &self.latencies
    }

    /// Every refusal so far: (receiving peer, sender, reason).
    pub fn rejections(&self) -> &[(usize, Address, entente_state_manager::Rejection)] {
        &self.rejections
    }

    /// Every equivocation seen so far: (seeing peer, signer).
    pub fn equivocations(&self) -> &[(usize, Address)] {
        &self.equivocations
    }

    /// Frames put on the network.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// True when every peer sees the game over with everything final at the same tip.
    pub fn settled(&self) -> bool {
        if self.chain.is_some() {
            // With a chain, a run ends when the channel has settled on chain and every honest
            // peer has withdrawn what it is owed.
            return (0..self.peers.len())
                .filter(|&i| self.peers[i].strategy == Strategy::Honest)
                .all(|i| self.peers[i].channel.phase() == Phase::Closed && self.peers[i].channel.is_done());
        }
        let mut honest = self.peers.iter().filter(|p| p.strategy == Strategy::Honest);
        let Some(first) = honest.next() else {
            return true;
        };
        let tip = sm(&first.channel).tip();
        let done = |p: &SimPeer| {
            let core = sm(&p.channel);
            core.is_game_over() && core.tip() == tip && core.finalized_height() == tip
        };
        done(first) && honest.all(done)
    }

    /// Runs until every peer has settled, the queue is empty, or `max_ms` of virtual time.
    /// Checks the safety invariants after every step.
    pub fn run(&mut self, max_ms: u64) -> Result<(), SimError> {
        while let Some((at, action)) = self.queue.pop_until(max_ms) {
            self.now = at;
            self.step(action)?;
            if self.settled() {
                break;
            }
        }
        self.check_agreement()
    }

    fn step(&mut self, action: Action) -> Result<(), SimError> {
        let now = self.now;
        let peer = match action {
            Action::Deliver { to, from, bytes } => {
                let from_addr = sm(&self.peers[from].channel).me();
                let local = self.local(to);
                // The frame decoded as the node decodes it; one that does not decode is refused
                // by the protocol core (as the node reports it).
                match Envelope::decode(&bytes) {
                    // A censor never takes peer 0's intents.
                    Ok(envelope)
                        if self.peers[to].strategy == Strategy::Censor
                            && matches!(&envelope.message, Message::Intent(intent)
                                if intent.issuer == sm(&self.peers[0].channel).me()) => {}
                    Ok(envelope) => self.peers[to]
                        .channel
                        .handle_message(from_addr, envelope.message, local),
                    Err(_) => {
                        let _ = sm_mut(&mut self.peers[to].channel).handle_bytes(from_addr, &bytes, local);
                        self.peers[to].channel.handle_timeout(local);
                    }
                }
                to
            }
            Action::ChainTick => {
                self.chain_tick()?;
                return Ok(());
            }
            Action::Wake(i) => {
                self.peers[i].next_wake = None;
                let local = self.local(i);
                self.peers[i].channel.handle_timeout(local);
                i
            }
            Action::Act(i) => {
                self.peers[i].act_pending = false;
                let p = &mut self.peers[i];
                if p.strategy.forges() {
                    self.forge_move(i)?;
                } else if matches!(p.strategy, Strategy::Silent | Strategy::BackdatedPost) {
                    // Never moves off-chain (a backdating peer moves only on chain).
                } else if (sm(&p.channel).is_my_turn() || sm(&p.channel).is_open())
                    && let Some(data) = p.player.choose(sm_mut(&mut p.channel), &mut self.rng)
                {
                    match p
                        .channel
                        .submit(data, now.saturating_add_signed(p.clock_offset_ms))
                    {
                        Ok(_) => {
                            p.stats.submitted += 1;
                            let core = sm(&p.channel);
                            let key = (core.fork().fork, core.tip());
                            self.submitted_at.entry(key).or_insert(now);
                        }
                        Err(e) => self.record(i, format!("submit refused: {e}")),
                    }
                }
                i
            }
        };
        self.carry_out(peer)?;
        // A false disputer races the others to the chain at every step of its own, not only at
        // chain ticks (the channels' courts act at every step too).
        if self.peers[peer].strategy == Strategy::FalseDispute && self.chain.is_some() {
            self.false_dispute(peer);
        }
        self.schedule_turn(peer);
        Ok(())
    }

    /// Carries out peer `i`'s effects in order, as the node does: persist (and check the
    /// own-signature log), then sends, chain calls (whose outcome goes back to the channel at
    /// once) and events.
    fn carry_out(&mut self, i: usize) -> Result<(), SimError> {
        while let Some(effect) = self.peers[i].channel.poll_effect() {
            match effect {
                Effect::Persist(Record::Protocol(record)) => {
                    if let PersistRecord::OwnSignature { fork, height, digest } = &record {
                        let previous = self.peers[i].own_signed.insert((*fork, *height), *digest);
                        if let Some(previous) = previous
                            && previous != *digest
                        {
                            return Err(self.fail(format!(
                                "peer {i} signed two transactions at fork {fork} height {height}"
                            )));
                        }
                    }
                    self.peers[i].stored.push(record);
                }
                Effect::Persist(_) => {}
                Effect::Broadcast(message) => {
                    if !self.may_send(i, &message) {
                        continue;
                    }
                    if self.peers[i].strategy == Strategy::Equivocate
                        && let Message::Transaction(st) = &message
                        && st.transaction.participant == sm(&self.peers[i].channel).me()
                    {
                        self.equivocate(i, message)?;
                        continue;
                    }
                    if self.peers[i].strategy == Strategy::EquivocateIntents
                        && let Message::Intent(intent) = &message
                        && intent.issuer == sm(&self.peers[i].channel).me()
                    {
                        self.equivocate_intent(i, message)?;
                        continue;
                    }
                    let bytes = self.encode(i, message)?;
                    for j in 0..self.peers.len() {
                        if j != i {
                            self.send(i, j, bytes.clone());
                        }
                    }
                }
                Effect::Send { to, message } => {
                    if !self.may_send(i, &message) {
                        continue;
                    }
                    let bytes = self.encode(i, message)?;
                    if let Some(&j) = self.index.get(&to) {
                        self.send(i, j, bytes);
                    }
                }
                Effect::Call(call) => self.chain_call(i, call),
                Effect::Notify(ChannelEvent::Protocol(event)) => self.on_event(i, event)?,
                Effect::Notify(_) | Effect::Peers(_) => {}
            }
        }
        Ok(())
    }

    /// One second of chain: follow virtual time, deliver new events, let every channel's
    /// dispute handler decide, send what they ask for.
    fn chain_tick(&mut self) -> Result<(), SimError> {
        let now = self.now;
        let Some(link) = self.chain.as_mut() else {
            return Ok(());
        };
        link.follow(now).map_err(|e| self.fail(e.reason))?;
        let Some(link) = self.chain.as_mut() else {
            return Ok(());
        };
        let timestamp = link.chain_time(now);
        let mut events = vec![ChainEvent::Block { timestamp }];
        events.extend(link.new_events(now));
        self.deliver_chain_events(events)?;
        // False disputers race the honest handlers to the chain.
        for i in 0..self.peers.len() {
            if self.peers[i].strategy == Strategy::FalseDispute {
                self.false_dispute(i);
            }
            if attacker::acts_on_chain(self.peers[i].strategy) {
                self.chain_attack(i);
            }
        }
        for i in 0..self.peers.len() {
            if self.peers[i].strategy == Strategy::Silent {
                continue;
            }
            let local = self.local(i);
            self.peers[i].channel.handle_timeout(local);
            self.carry_out(i)?;
            self.schedule_turn(i);
        }
        let Some(link) = self.chain.as_mut() else {
            return Ok(());
        };
        let events = link.new_events(now);
        self.deliver_chain_events(events)?;
        if !self.settled() {
            self.push(now + 1_000, Action::ChainTick);
        }
        Ok(())
    }

    fn deliver_chain_events(&mut self, events: Vec<ChainEvent>) -> Result<(), SimError> {
        for event in events {
            // Safety, on every event: the court never removes or slashes an honest peer.
            if let ChainEvent::ParticipantRemoved { participant, slashed } = &event
                && let Some(&i) = self.index.get(participant)
                && self.peers[i].strategy == Strategy::Honest
            {
                return Err(self.fail(format!(
                    "the chain removed honest peer {i} ({participant}, slashed: {slashed})"
                )));
            }
            for i in 0..self.peers.len() {
                if self.peers[i].strategy == Strategy::Silent {
                    continue;
                }
                let local = self.local(i);
                self.peers[i].channel.handle_chain_event(event.clone(), local);
                self.carry_out(i)?;
                self.schedule_turn(i);
            }
        }
        Ok(())
    }

    /// A false disputer's moves on chain: once per fork, a fraud proof claiming that a valid
    /// transaction of another peer is an invalid transition (the chain re-executes it and turns
    /// the claim into a dispute against the claimant); once the game is over while that dispute
    /// runs, an attempt to settle with the N-signed final state before the slash lands.
    fn false_dispute(&mut self, i: usize) {
        let now = self.now;
        let Some(link) = self.chain.as_mut() else {
            return;
        };
        let p = &mut self.peers[i];
        let core = sm(&p.channel);
        let me = core.me();
        let handler = court(&p.channel);
        if handler.is_closed() || !core.fork().participants.contains(&me) {
            return;
        }
        let fork = core.fork().fork;
        let mut actions = Vec::new();
        match handler.running_dispute() {
            None if !p.false_disputed.contains(&fork) => {
                // The latest applied transaction of another peer whose parent state is provable.
                let genesis = core.fork().genesis_height;
                let target = (genesis + 1..=core.tip()).rev().find_map(|h| {
                    let entry = core.agreement().entry(h)?;
                    let issuer = entry.transaction.participant;
                    let signature = *entry.signatures.get(&issuer)?;
                    let prev = handler.proof_at(core, h - 1)?;
                    (issuer != me).then(|| (entry.transaction.clone(), signature, prev))
                });
                if let Some((transaction, signature, prev)) = target {
                    p.false_disputed.insert(fork);
                    actions.push(ChainAction::ProveFraud {
                        kind: FraudKind::InvalidTransition,
                        prev,
                        transaction,
                        signature,
                    });
                }
            }
            Some(record) if record.target == me && core.is_game_over() && !p.escape_tried => {
                if let Some(proof) = handler
                    .proof_at(core, core.tip())
                    .filter(|proof| proof.kind == ProofKind::Signed)
                {
                    p.escape_tried = true;
                    actions.push(ChainAction::Close { proof });
                }
            }
            _ => {}
        }
        for action in &actions {
            link.execute(now, i, me, action);
        }
    }

    /// Sends a call of peer `i`'s channel to the chain, lost with the configured probability,
    /// and gives the channel its outcome. A silent peer sends nothing.
    fn chain_call(&mut self, i: usize, call: ChainCall) {
        if self.peers[i].strategy == Strategy::Silent {
            return;
        }
        let now = self.now;
        let local = self.local(i);
        let from = sm(&self.peers[i].channel).me();
        let lost = self.chain_failure_permille > 0
            && self.rng.random_range(0..1000u32) < self.chain_failure_permille;
        let (outcome, gas) = match self.chain.as_mut() {
            None => (CallOutcome::NotSent("no chain in this simulation".into()), 0),
            Some(link) if lost => (link.lose(now, i, call.name()), 0),
            Some(link) => {
                let _ = link.follow(now);
                link.call(now, i, from, &call)
            }
        };
        self.peers[i]
            .channel
            .handle_call_outcome(&call, outcome, gas, local);
    }

    /// Makes every dispute-handler call fail to reach the chain with probability
    /// `permille` / 1000 (the handler hears that it was not sent).
    pub fn set_chain_failures(&mut self, permille: u32) {
        self.chain_failure_permille = permille.min(1000);
    }

    /// An on-chain attacker's calls at this tick (see `attacker`).
    fn chain_attack(&mut self, i: usize) {
        let now = self.now;
        let honest: Vec<Address> = self
            .honest()
            .iter()
            .map(|&j| sm(&self.peers[j].channel).me())
            .collect();
        let Some(link) = self.chain.as_mut() else {
            return;
        };
        let chain_now = link.chain_time(now);
        let p = &mut self.peers[i];
        let Some(forger) = p.forger.as_ref() else {
            return;
        };
        let me = sm(&p.channel).me();
        let view = attacker::View {
            core: sm(&p.channel),
            handler: court(&p.channel),
            forger,
            me,
            chain_now,
            honest: &honest,
        };
        let attacks = attacker::plan(p.strategy, &mut p.attack, &view, &mut self.rng);
        for attack in attacks {
            match attack {
                Attack::Manager(action) => {
                    link.execute(now, i, me, action.as_ref());
                }
                Attack::Machine { clone, data } => link.call_machine(now, i, me, clone, data),
            }
        }
    }

    /// What a byzantine peer lets out.
    fn may_send(&self, i: usize, message: &Message) -> bool {
        match self.peers[i].strategy {
            Strategy::Silent => false,
            Strategy::WithholdConfirmations => !matches!(message, Message::Confirmation(_)),
            _ => true,
        }
    }

    /// Sends the peer's own intent to half the peers and a signed twin at its nonce to the others.
    fn equivocate_intent(&mut self, i: usize, message: Message) -> Result<(), SimError> {
        let Message::Intent(intent) = &message else {
            return Ok(());
        };
        let p = &mut self.peers[i];
        let twin = match p.intent_twins.get(&intent.nonce) {
            Some(twin) => twin.clone(),
            None => {
                let twin = p.forger.as_ref().and_then(|f| f.twin_intent(intent));
                p.intent_twins.insert(intent.nonce, twin.clone());
                twin
            }
        };
        self.send_split(i, message, twin.map(|t| Message::Intent(Box::new(t))))
    }

    /// Sends `original` to the even-numbered peers and `twin` (or `original` when there is none)
    /// to the odd-numbered ones: an equivocation visible only to peers of both kinds.
    fn send_split(&mut self, i: usize, original: Message, twin: Option<Message>) -> Result<(), SimError> {
        let original = self.encode(i, original)?;
        let other = match twin {
            Some(twin) => self.encode(i, twin)?,
            None => original.clone(),
        };
        for j in 0..self.peers.len() {
            if j != i {
                let bytes = if j % 2 == 0 {
                    original.clone()
                } else {
                    other.clone()
                };
                self.send(i, j, bytes);
            }
        }
        Ok(())
    }

    /// Sends the peer's own transaction to half the peers and a signed twin to the others.
    fn equivocate(&mut self, i: usize, message: Message) -> Result<(), SimError> {
        let Message::Transaction(st) = &message else {
            return Ok(());
        };
        let key = (st.transaction.forkCnt, st.transaction.height);
        let p = &mut self.peers[i];
        let twin = match p.twins.get(&key) {
            Some(twin) => twin.clone(),
            None => {
                let twin = p
                    .forger
                    .as_ref()
                    .and_then(|f| f.twin(sm(&p.channel), &st.transaction));
                p.twins.insert(key, twin.clone());
                twin
            }
        };
        self.send_split(i, message, twin.map(Message::Transaction))?;
        self.record(i, "equivocated".into());
        Ok(())
    }

    /// A forging peer's turn: broadcast a signed transaction that breaks one rule.
    fn forge_move(&mut self, i: usize) -> Result<(), SimError> {
        let now = self.now;
        let p = &mut self.peers[i];
        if !sm(&p.channel).is_my_turn() {
            return Ok(());
        }
        let key = (sm(&p.channel).fork().fork, sm(&p.channel).tip() + 1);
        if !p.forged.insert(key) {
            return Ok(());
        }
        let Some(data) = p.player.choose(sm_mut(&mut p.channel), &mut self.rng) else {
            return Ok(());
        };
        let now_secs = sm_mut(&mut p.channel).now_secs(now.saturating_add_signed(p.clock_offset_ms));
        let core = sm(&p.channel);
        let forged = p
            .forger
            .as_ref()
            .and_then(|f| f.forge(p.strategy, core, data, now_secs));
        if let Some(st) = forged {
            let what = format!("forged {:?} at height {}", p.strategy, st.transaction.height);
            if p.strategy == Strategy::JunkCalldata {
                // Straight to the chain: the peers learn of it only from the calldata post.
                let from = core.me();
                // Claimed to build on the tip as the chain's head (the chain checks both).
                let parent = entente_dispute::StateProof {
                    kind: ProofKind::Posted,
                    transaction: entente_types::Transaction::default(),
                    signatures: vec![],
                    state: core.state_at(core.tip()).cloned().unwrap_or_default(),
                };
                if let Some(link) = self.chain.as_mut() {
                    let action = ChainAction::PostCalldata {
                        transaction: st.transaction,
                        signature: st.signature,
                        parent,
                    };
                    link.follow(now).map_err(|e| self.fail(e.reason))?;
                    if let Some(link) = self.chain.as_mut() {
                        link.execute(now, i, from, &action);
                    }
                }
                self.record(i, what);
                return Ok(());
            }
            let bytes = self.encode(i, Message::Transaction(st))?;
            for j in 0..self.peers.len() {
                if j != i {
                    self.send(i, j, bytes.clone());
                }
            }
            self.record(i, what);
        }
        Ok(())
    }

    fn encode(&self, i: usize, message: Message) -> Result<Vec<u8>, SimError> {
        Envelope::new(message)
            .encode()
            .map_err(|e| self.fail(format!("peer {i} produced an unsendable frame: {e}")))
    }

    fn on_event(&mut self, i: usize, event: Event) -> Result<(), SimError> {
        match &event {
            Event::Applied { .. } => self.peers[i].stats.applied += 1,
            Event::Rejected { from, reason } => {
                self.peers[i].stats.rejected += 1;
                self.rejections.push((i, *from, reason.clone()));
            }
            Event::Equivocation { signer, .. } => {
                self.peers[i].stats.equivocations += 1;
                self.equivocations.push((i, *signer));
            }
            Event::Finalized { fork, height, .. } => {
                for h in self.last_final[i] + 1..=*height {
                    if let Some(at) = self.submitted_at.get(&(*fork, h)) {
                        self.latencies.push(self.now - at);
                    }
                }
                // Safety, on every finalization: no two honest peers finalize different states
                // at one fork and height.
                if self.peers[i].strategy == Strategy::Honest {
                    let core = sm(&self.peers[i].channel);
                    let from = core.fork().genesis_height + 1;
                    for h in from.max(self.last_final[i] + 1)..=*height {
                        let Some(state) = core.agreement().entry(h).map(|e| e.transaction.stateHash) else {
                            continue;
                        };
                        if let Some((j, other)) = self.finalized.insert((*fork, h), (i, state))
                            && other != state
                        {
                            return Err(self.fail(format!(
                                "peers {i} and {j} finalized different states at fork {fork} height {h}"
                            )));
                        }
                    }
                }
                self.last_final[i] = self.last_final[i].max(*height);
            }
            Event::IntentDropped { issuer, data, .. } => {
                if *issuer == sm(&self.peers[i].channel).me() {
                    self.peers[i].player.dropped(data.clone());
                }
            }
            Event::GameOver { .. } | Event::ForkStarted { .. } => {}
        }
        self.record(i, format!("{event:?}"));
        Ok(())
    }

    fn send(&mut self, from: usize, to: usize, bytes: Vec<u8>) {
        self.peers[from].stats.sent += 1;
        self.frames += 1;
        if let Some(tap) = &mut self.tap {
            tap.push((from, bytes.clone()));
        }
        if self.net.blocked(from, to, self.now) {
            return;
        }
        if self.net.loss > 0.0 && self.rng.random_bool(self.net.loss.clamp(0.0, 1.0)) {
            return;
        }
        let (lo, hi) = self.net.latency_ms;
        let latency = self.rng.random_range(lo..=hi.max(lo));
        if self.net.duplicate > 0.0 && self.rng.random_bool(self.net.duplicate.clamp(0.0, 1.0)) {
            let again = self.rng.random_range(lo..=hi.max(lo));
            self.push(
                self.now + again,
                Action::Deliver {
                    to,
                    from,
                    bytes: bytes.clone(),
                },
            );
        }
        self.push(self.now + latency, Action::Deliver { to, from, bytes });
    }

    fn schedule_turn(&mut self, i: usize) {
        let p = &self.peers[i];
        let idle = matches!(p.strategy, Strategy::Silent | Strategy::BackdatedPost)
            || (p.strategy.forges()
                && p.forged
                    .contains(&(sm(&p.channel).fork().fork, sm(&p.channel).tip() + 1)));
        let wants = sm(&p.channel).is_my_turn() || (sm(&p.channel).is_open() && p.player.writes_anytime());
        if wants && !p.act_pending && !idle {
            self.peers[i].act_pending = true;
            let (lo, hi) = self.think_ms;
            let think = self.rng.random_range(lo..=hi.max(lo));
            self.push(self.now + think, Action::Act(i));
        }
        if let Some(due) = self.peers[i].channel.poll_timeout() {
            // The core speaks its local time; the queue runs on virtual time.
            let due = due
                .saturating_add_signed(-self.peers[i].clock_offset_ms)
                .max(self.now);
            if self.peers[i].next_wake.is_none_or(|w| due < w) {
                self.peers[i].next_wake = Some(due);
                self.push(due, Action::Wake(i));
            }
        }
    }

    fn push(&mut self, at: u64, action: Action) {
        self.queue.push(at, action);
    }

    fn record(&mut self, peer: usize, what: String) {
        let line = format!("{} {} {}", self.now, peer, what);
        let mut buf = Vec::with_capacity(32 + line.len());
        buf.extend_from_slice(self.trace_hash.as_slice());
        buf.extend_from_slice(line.as_bytes());
        self.trace_hash = keccak256(&buf);
        if self.keep_trace {
            self.trace.push(TraceEntry {
                at_ms: self.now,
                peer,
                what,
            });
        }
    }

    /// Safety: finalized prefixes agree between every pair of peers.
    fn check_agreement(&self) -> Result<(), SimError> {
        let honest = |(_, p): &(usize, &SimPeer)| p.strategy == Strategy::Honest;
        for (i, a) in self.peers.iter().enumerate().filter(honest) {
            for (j, b) in self.peers.iter().enumerate().skip(i + 1).filter(honest) {
                let (a, b) = (sm(&a.channel), sm(&b.channel));
                if a.fork().fork != b.fork().fork {
                    continue;
                }
                let common = a.finalized_height().min(b.finalized_height());
                let ea = a.agreement().entry(common).map(|e| e.transaction.stateHash);
                let eb = b.agreement().entry(common).map(|e| e.transaction.stateHash);
                if let (Some(x), Some(y)) = (ea, eb)
                    && x != y
                {
                    return Err(self.fail(format!(
                        "peers {i} and {j} finalized different states at height {common}"
                    )));
                }
            }
        }
        Ok(())
    }

    fn fail(&self, reason: String) -> SimError {
        SimError {
            seed: self.seed,
            at_ms: self.now,
            reason,
            scenario: self.scenario.clone(),
        }
    }
}
