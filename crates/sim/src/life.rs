//! Whole channel lives in the simulation: every peer runs the node's channel core
//! ([`entente_channel::Channel`]) with an in-memory store (the node's redb store on an in-memory
//! backend), the in-process chain running the real StateChannelManager and the in-memory network,
//! from the proposal to the payout. A peer can be crashed at a seeded effect boundary of a chosen
//! phase and restarted from what it stored; chain calls can fail at random.
//!
//! Checked on every event: no peer signs two transactions at one fork and height (the store
//! refuses the commit), no two peers finalize different states at one fork and height. Checked
//! at the end: the channel settled, every honest peer's calls are done, and every honest peer's
//! balance is back where it started plus what the game paid it (the counter game pays each
//! participant its deposit back).

use std::collections::BTreeMap;

use alloy_primitives::U256;
use alloy_sol_types::SolCall;
use entente_channel::{CallOutcome, ChainCall, Channel, ChannelEvent, Effect, JoinTerms, Phase, Record};
use entente_contracts::{RoundRobinCounter, artifacts};
use entente_devchain::{DevChain, DevChainConfig};
use entente_dispute::{ChainEvent, decode_event};
use entente_evm_runtime::{MachineCode, MachineInstance};
use entente_state_manager::{Config, Event};
use entente_store::{ChainCursor, MachineSource, Store, StoreError};
use entente_types::{
    Address, AgreementMode, B256, Bytes, ChannelProposal, JoinTicket, LocalSigner, MembershipApproval,
    MembershipChange, Message, Signer, Timing, keccak256,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::SimError;
use crate::queue::EventQueue;

/// Chain time at which life simulations start.
const START: u64 = 1_700_000_000;
/// Each participant's deposit (wei).
const DEPOSIT: u64 = 1_000_000_000_000_000_000;

/// A phase of a channel's life a crash can be aimed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifePhase {
    /// Proposed, answers under way.
    Proposal,
    /// Opening and deposits.
    Funding,
    /// Moves.
    Live,
    /// A dispute runs on chain.
    Dispute,
    /// Settled, withdrawals under way.
    Settlement,
}

/// Who joins and leaves a running channel in a life run ([`LifeScenario::membership`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// A newcomer joins (sponsored by peer 0, allowed by the others) and peer 1 leaves.
    Honest,
    /// As [`Self::Honest`], but the newcomer never comes: it takes no ticket and pays nothing.
    AbsentNewcomer,
    /// As [`Self::Honest`], and the last participant attacks through membership: it approves the
    /// newcomer, but proposes joins of strangers and leaves of its own that it never carries out
    /// (each holding the others' signatures back while it runs), and sends the newcomer tickets
    /// of its own making.
    ByzantineMember,
}

/// A whole-life run: N peers play the round-robin counter to `target` from the proposal to the
/// payout.
#[derive(Debug, Clone)]
pub struct LifeScenario {
    n: usize,
    seed: u64,
    target: u64,
    mode: AgreementMode,
    crash: Option<LifePhase>,
    chain_failure_permille: u32,
    /// The last participant accepts but never deposits.
    no_deposit: bool,
    /// The last participant goes silent after the opening (a dispute removes it).
    silent: bool,
    membership: Option<Membership>,
    max_ms: u64,
}

/// What a finished life run shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifeReport {
    /// The seed.
    pub seed: u64,
    /// Crashes carried out (peer, phase).
    pub crashes: Vec<(usize, LifePhase)>,
    /// How the channel ended: settled (`Closed`) or `Cancelled`.
    pub outcome: Phase,
    /// Virtual time (ms).
    pub virtual_ms: u64,
    /// Chain calls lost on purpose.
    pub lost_calls: u64,
}

impl LifeScenario {
    /// `n` peers, seeded by `seed`, counting to `4 * n`.
    pub fn new(n: usize, seed: u64) -> Self {
        Self {
            n,
            seed,
            target: 4 * n as u64,
            mode: AgreementMode::ExplicitConfirmations,
            crash: None,
            chain_failure_permille: 0,
            no_deposit: false,
            silent: false,
            membership: None,
            max_ms: 3_600_000,
        }
    }

    /// Crashes a random peer at a random effect boundary in `phase`, and restarts it.
    pub fn crash(mut self, phase: LifePhase) -> Self {
        self.crash = Some(phase);
        self
    }

    /// Loses `permille` / 1000 of all chain calls (the caller hears it was not sent; half of them
    /// were in fact mined).
    pub fn chain_failures(mut self, permille: u32) -> Self {
        self.chain_failure_permille = permille.min(1000);
        self
    }

    /// The last participant accepts and never deposits: the funding is cancelled and reclaimed.
    pub fn no_deposit(mut self) -> Self {
        self.no_deposit = true;
        self
    }

    /// The last participant goes silent once the channel is live.
    pub fn silent(mut self) -> Self {
        self.silent = true;
        self
    }

    /// The agreement mode.
    pub fn mode(mut self, mode: AgreementMode) -> Self {
        self.mode = mode;
        self
    }

    /// A newcomer (an extra peer, not in the proposal) joins the running channel and peer 1
    /// leaves it, as `membership` says; the counter goes to `10 * n`.
    pub fn membership(mut self, membership: Membership) -> Self {
        self.membership = Some(membership);
        self.target = 10 * self.n as u64;
        self
    }

    fn describe(&self) -> String {
        format!(
            "life n={} target={} mode={:?} crash={:?} chain_failures={}/1000 no_deposit={} silent={} membership={:?}",
            self.n,
            self.target,
            self.mode,
            self.crash,
            self.chain_failure_permille,
            self.no_deposit,
            self.silent,
            self.membership
        )
    }

    /// Runs the life to its end.
    pub fn run(&self) -> Result<LifeReport, SimError> {
        LifeSim::new(self)?.run()
    }
}

struct Peer {
    signer: LocalSigner,
    store: Store,
    channel: Option<Channel<LocalSigner>>,
    /// Down until this virtual time (ms) after a crash.
    down_until: Option<u64>,
    /// Effect boundaries passed in the phase the crash aims at.
    boundaries: u64,
    byzantine: bool,
    initial_balance: U256,
    next_act: Option<u64>,
    next_wake: Option<u64>,
}

enum Action {
    Deliver {
        to: usize,
        from: Address,
        message: Box<Message>,
    },
    ChainTick,
    Wake(usize),
    Act(usize),
    Restart(usize),
}

struct LifeSim {
    scenario: LifeScenario,
    rng: StdRng,
    now: u64,
    queue: EventQueue<Action>,
    peers: Vec<Peer>,
    index: BTreeMap<Address, usize>,
    chain: DevChain,
    manager: Address,
    channel_id: B256,
    proposal: ChannelProposal,
    code: MachineCode,
    machine: MachineSource,
    /// First block of the channel's life.
    cursor: u64,
    /// Finalized states, by (fork, height), for the agreement check.
    finalized: BTreeMap<(u64, u64), B256>,
    /// The crash still to carry out: (peer, boundary within the phase).
    crash_plan: Option<(usize, u64)>,
    crashes: Vec<(usize, LifePhase)>,
    lost_calls: u64,
    /// The peer that joins the running channel (not in the proposal).
    newcomer: Option<usize>,
    /// When the sponsor last proposed the newcomer's join (ms).
    join_proposed_at: Option<u64>,
    /// When the leaver last proposed its leave (ms).
    leave_proposed_at: Option<u64>,
    /// The latest chain calls and events, for failure messages.
    trace: std::collections::VecDeque<String>,
    /// Participants the chain removed (and whether slashed).
    removed: BTreeMap<Address, bool>,
}

impl LifeSim {
    fn new(scenario: &LifeScenario) -> Result<Self, SimError> {
        let fail = |reason: String| SimError {
            seed: scenario.seed,
            at_ms: 0,
            reason,
            scenario: scenario.describe(),
        };
        let n = scenario.n;
        let newcomer = scenario.membership.map(|_| n);
        let keys = crate::Scenario::new(
            crate::Game::Counter { target: 1 },
            n + usize::from(newcomer.is_some()),
            scenario.seed,
        )
        .keys();
        let everyone: Vec<Address> = keys.iter().map(|k| k.address()).collect();
        let participants: Vec<Address> = everyone[..n].to_vec();
        let config = DevChainConfig {
            genesis_timestamp: START,
            ..DevChainConfig::default()
        };
        let mut chain = DevChain::with_manager_config(config).map_err(|e| fail(e.to_string()))?;
        let manager = chain.manager().ok_or_else(|| fail("no manager".into()))?;
        let machine_address = chain
            .deploy_artifact(DevChain::DEPLOYER, artifacts::ROUND_ROBIN_COUNTER)
            .map_err(|e| fail(e.to_string()))?;
        let code = MachineCode::from_artifact_json(artifacts::ROUND_ROBIN_COUNTER)
            .map_err(|e| fail(e.to_string()))?;
        let genesis = {
            let call = RoundRobinCounter::initialStateCall {
                participants: participants.clone(),
                deposits: vec![U256::from(DEPOSIT); n],
                target: scenario.target,
            };
            let mut m = MachineInstance::deploy(&code, Config::default().gas_limit)
                .map_err(|e| fail(e.to_string()))?;
            let raw = m
                .view(call.abi_encode().into())
                .map_err(|e| fail(e.to_string()))?;
            <alloy_sol_types::sol_data::Bytes as alloy_sol_types::SolType>::abi_decode(&raw)
                .map_err(|e| fail(e.to_string()))?
        };
        let mut peers = Vec::new();
        for (i, signer) in keys.into_iter().enumerate() {
            let funds = U256::from(DEPOSIT) + U256::from(10u64).pow(U256::from(20u64));
            chain
                .fund(signer.address(), funds)
                .map_err(|e| fail(e.to_string()))?;
            let byzantine = match scenario.membership {
                Some(Membership::AbsentNewcomer) => Some(i) == newcomer,
                Some(Membership::ByzantineMember) => i == n - 1,
                _ => (scenario.no_deposit || scenario.silent) && i == n - 1,
            };
            peers.push(Peer {
                initial_balance: chain.balance(signer.address()),
                signer,
                store: Store::in_memory().map_err(|e| fail(e.to_string()))?,
                channel: None,
                down_until: None,
                boundaries: 0,
                byzantine,
                next_act: None,
                next_wake: None,
            });
        }
        let domain = chain.domain().map_err(|e| fail(e.to_string()))?;
        let mut proposal = ChannelProposal {
            channel_id: B256::ZERO,
            chain_id: domain.chain_id(),
            manager,
            participants: participants.clone(),
            deposits: vec![U256::from(DEPOSIT); n],
            state_machine: machine_address,
            token: Address::ZERO,
            timing: Timing::default(),
            funding_period: 600,
            machine_gas_limit: Config::default().gas_limit,
            salt: keccak256(format!("entente-life-{}", scenario.seed)),
            genesis_state: genesis,
            agreement_mode: scenario.mode,
        };
        // The proposer asks the manager for the id its `open` will give (a view, as the node does).
        proposal.channel_id = chain
            .compute_channel_id(&entente_channel::onchain_spec(&proposal), &proposal.genesis_state)
            .map_err(|e| fail(e.to_string()))?;
        let mut rng = StdRng::seed_from_u64(scenario.seed);
        let crash_plan = scenario.crash.map(|_| {
            let candidates: Vec<usize> = (0..n).filter(|i| !peers[*i].byzantine).collect();
            // Boundaries a peer passes in each phase: a few while proposing and funding, many
            // while live.
            let within = match scenario.crash {
                Some(LifePhase::Proposal) => 3,
                Some(LifePhase::Funding | LifePhase::Settlement) => 6,
                _ => 16,
            };
            (
                candidates[rng.random_range(0..candidates.len())],
                rng.random_range(0..within),
            )
        });
        let index = everyone.iter().enumerate().map(|(i, a)| (*a, i)).collect();
        let cursor = chain.block_number() + 1;
        let mut sim = Self {
            scenario: scenario.clone(),
            rng,
            now: 0,
            queue: EventQueue::new(),
            peers,
            index,
            chain,
            manager,
            channel_id: proposal.channel_id,
            proposal: proposal.clone(),
            code: code.clone(),
            machine: MachineSource::ArtifactJson(artifacts::ROUND_ROBIN_COUNTER.to_string()),
            cursor,
            finalized: BTreeMap::new(),
            crash_plan,
            crashes: Vec::new(),
            lost_calls: 0,
            newcomer,
            join_proposed_at: None,
            leave_proposed_at: None,
            trace: std::collections::VecDeque::new(),
            removed: BTreeMap::new(),
        };
        let signer = sim.peers[0].signer.clone();
        sim.peers[0].channel = Some(Channel::propose(signer, proposal.clone(), code.clone(), START));
        sim.push(0, Action::ChainTick);
        sim.carry_out(0)?;
        // The newcomer's application agreed to join with a deposit, invited by peer 0.
        if let Some(k) = newcomer
            && !sim.peers[k].byzantine
        {
            let terms = JoinTerms {
                channel_id: proposal.channel_id,
                sponsor: participants[0],
                chain_id: proposal.chain_id,
                manager,
                state_machine: machine_address,
                token: Address::ZERO,
                amount: U256::from(DEPOSIT),
                timing: Timing::default(),
                machine_gas_limit: Config::default().gas_limit,
                data: Bytes::new(),
            };
            let signer = sim.peers[k].signer.clone();
            sim.peers[k].channel = Some(Channel::expect_join(signer, terms, code, START));
            sim.carry_out(k)?;
        }
        Ok(sim)
    }

    fn fail(&self, reason: String) -> SimError {
        let trace: Vec<&str> = self.trace.iter().map(String::as_str).collect();
        SimError {
            seed: self.scenario.seed,
            at_ms: self.now,
            reason: format!(
                "{reason}\n  latest chain calls and events:\n    {}",
                trace.join("\n    ")
            ),
            scenario: self.scenario.describe(),
        }
    }

    fn note(&mut self, line: String) {
        if self.trace.len() >= 40 {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("{} ms: {line}", self.now));
    }

    fn push(&mut self, at: u64, action: Action) {
        self.queue.push(at, action);
    }

    fn up(&self, i: usize) -> bool {
        self.peers[i].down_until.is_none()
    }

    /// The silent peer says and does nothing once the channel is live.
    fn muted(&self, i: usize) -> bool {
        self.scenario.silent
            && self.peers[i].byzantine
            && self.peers[i]
                .channel
                .as_ref()
                .is_some_and(|c| c.phase() != Phase::Proposed && c.phase() != Phase::Funding)
    }

    fn done(&self) -> bool {
        (0..self.peers.len())
            .filter(|&i| !self.peers[i].byzantine)
            .all(|i| {
                self.peers[i].channel.as_ref().is_some_and(|c| c.is_done())
                    && self.peers[i].down_until.is_none()
            })
    }

    /// Where every peer is, for failure messages.
    fn status(&self) -> String {
        let mut out = Vec::new();
        for (i, p) in self.peers.iter().enumerate() {
            match &p.channel {
                Some(c) => {
                    let info = c.info();
                    out.push(format!(
                        "peer {i}: {:?} fork {} tip {} final {} game over {} duties {:?} cancelled: {:?}",
                        info.phase,
                        info.fork,
                        info.tip,
                        info.finalized,
                        info.game_over,
                        c.life().duties,
                        c.life().cancel_reason
                    ));
                }
                None => out.push(format!("peer {i}: no channel")),
            }
        }
        out.join("; ")
    }

    fn run(mut self) -> Result<LifeReport, SimError> {
        while let Some((at, action)) = self.queue.pop_until(self.scenario.max_ms) {
            self.now = at;
            self.step(action)?;
            if self.done() {
                return self.finish();
            }
        }
        if self.queue.is_empty() {
            return Err(self.fail("nothing left to do but the life did not end".into()));
        }
        Err(self.fail(format!("the life did not end in time: {}", self.status())))
    }

    fn step(&mut self, action: Action) -> Result<(), SimError> {
        let now = self.now;
        match action {
            Action::ChainTick => {
                self.chain_tick()?;
                if self.scenario.membership.is_some() {
                    self.membership_tick()?;
                }
                self.push(now + 1_000, Action::ChainTick);
            }
            Action::Deliver { to, from, message } => {
                if !self.up(to) || self.muted(to) {
                    return Ok(());
                }
                if let Message::Proposal(proposal) = &*message
                    && self.peers[to].channel.is_none()
                    && proposal.participants.contains(&self.peers[to].signer.address())
                {
                    // The application: an invitee accepts a proposal naming it, once its machine
                    // is the one deployed and its genesis pays out the deposits.
                    let deployed = self.chain.code(proposal.state_machine);
                    let me = self.peers[to].signer.address();
                    let checked = entente_channel::ProposalPolicy::default()
                        .check(proposal, from, me, proposal.chain_id, self.manager)
                        .and_then(|()| entente_channel::check_deployed_code(&self.code, proposal, &deployed))
                        .and_then(|()| entente_channel::check_genesis(&self.code, proposal));
                    if let Err(e) = checked {
                        return Err(self.fail(format!("peer {to} refuses the proposal: {e}")));
                    }
                    let signer = self.peers[to].signer.clone();
                    let chain_now = self.chain.timestamp();
                    self.peers[to].channel = Some(Channel::accept(
                        signer,
                        from,
                        (**proposal).clone(),
                        self.code.clone(),
                        chain_now,
                    ));
                } else if let Some(channel) = self.peers[to].channel.as_mut() {
                    channel.handle_message(from, *message, now);
                }
                self.carry_out(to)?;
            }
            Action::Wake(i) => {
                if self.up(i) && !self.muted(i) {
                    if let Some(c) = self.peers[i].channel.as_mut() {
                        c.handle_timeout(now);
                    }
                    self.carry_out(i)?;
                }
            }
            Action::Act(i) => {
                self.peers[i].next_act = None;
                if self.up(i) && !self.muted(i) {
                    self.act(i)?;
                }
            }
            Action::Restart(i) => self.restart(i)?,
        }
        Ok(())
    }

    /// The player: on its turn, increments the counter.
    fn act(&mut self, i: usize) -> Result<(), SimError> {
        let now = self.now;
        let Some(channel) = self.peers[i].channel.as_mut() else {
            return Ok(());
        };
        if channel.phase() == Phase::Live
            && channel
                .state_manager()
                .is_some_and(|sm| sm.is_my_turn() && !sm.is_game_over())
            && let Err(e) = channel.submit(RoundRobinCounter::addCall { step: 1 }.abi_encode().into(), now)
        {
            self.note(format!("peer {i} move refused: {e}"));
        }
        self.carry_out(i)
    }

    fn chain_tick(&mut self) -> Result<(), SimError> {
        let t = START + self.now / 1000;
        if t > self.chain.timestamp() {
            self.chain
                .set_timestamp(t)
                .map_err(|e| self.fail(e.to_string()))?;
        }
        // Each peer follows the chain from its own stored cursor, as the node's listener does:
        // events a peer missed while down (or was handling when it crashed) come again.
        let chain_id = self.chain.chain_id();
        let head = self.chain.block_number();
        for i in 0..self.peers.len() {
            if !self.up(i) || self.muted(i) {
                continue;
            }
            let cursor = self.peers[i]
                .store
                .cursor(chain_id, &self.manager)
                .map_err(|e| self.fail(e.to_string()))?
                .map_or(self.cursor, |c| c.block_number + 1);
            let mut events = vec![ChainEvent::Block { timestamp: t }];
            for log in self.chain.logs_since(cursor) {
                let Some(event) = &log.event else { continue };
                if let Some((channel, event)) = decode_event(event, log.timestamp)
                    && channel == self.channel_id
                {
                    events.push(event);
                }
            }
            for event in events {
                if let Some(c) = self.peers[i].channel.as_mut() {
                    c.handle_chain_event(event, self.now);
                }
                self.carry_out(i)?;
            }
            if self.peers[i].channel.is_some() {
                let mut batch = self.peers[i].store.batch();
                batch.put_cursor(
                    chain_id,
                    self.manager,
                    ChainCursor {
                        block_number: head,
                        block_hash: B256::ZERO,
                        block_timestamp: t,
                    },
                );
                batch.commit().map_err(|e| self.fail(e.to_string()))?;
            }
        }
        for i in 0..self.peers.len() {
            if self.up(i) && !self.muted(i) {
                if let Some(c) = self.peers[i].channel.as_mut() {
                    c.handle_timeout(self.now);
                }
                self.carry_out(i)?;
            }
        }
        Ok(())
    }

    /// The applications' membership decisions, once a second: the participants allow the
    /// newcomer, peer 0 sponsors its join once the counter reached 2, peer 1 leaves once the
    /// newcomer is in (or, with an absent newcomer, halfway), and a byzantine member attacks.
    fn membership_tick(&mut self) -> Result<(), SimError> {
        let Some(k) = self.newcomer else { return Ok(()) };
        let newcomer = self.peers[k].signer.address();
        let absent = self.scenario.membership == Some(Membership::AbsentNewcomer);
        let now = self.now;
        for i in 0..self.scenario.n {
            if !self.up(i) || self.peers[i].byzantine {
                continue;
            }
            let Some(c) = self.peers[i].channel.as_mut() else {
                continue;
            };
            let Some(sm) = c.state_manager() else { continue };
            if c.phase() != Phase::Live {
                continue;
            }
            let me = sm.me();
            let in_fork = sm.fork().participants.contains(&newcomer);
            let settled_tip = sm.tip() == sm.finalized_height() && !sm.is_game_over();
            let tip = sm.tip();
            let still_in = sm.fork().participants.contains(&me);
            if !c.life().allowed_joins.contains(&newcomer) {
                let _ = c.allow_join(newcomer, now);
            }
            let again = |at: Option<u64>| at.is_none_or(|at| !absent && now > at + 30_000);
            if i == 0 && !in_fork && tip >= 2 && settled_tip && again(self.join_proposed_at) {
                let change = MembershipChange::Join {
                    participant: newcomer,
                    amount: U256::from(DEPOSIT),
                    data: Bytes::new(),
                };
                if c.propose_change(change, now).is_ok() {
                    self.join_proposed_at = Some(now);
                }
            }
            let leave_due = if absent {
                tip >= self.scenario.target / 2
            } else {
                in_fork
            };
            if i == 1
                && leave_due
                && settled_tip
                && still_in
                && self.leave_proposed_at.is_none_or(|at| now > at + 30_000)
            {
                let change = MembershipChange::Leave { participant: me };
                if c.propose_change(change, now).is_ok() {
                    self.leave_proposed_at = Some(now);
                }
            }
            self.carry_out(i)?;
        }
        if self.scenario.membership == Some(Membership::ByzantineMember) {
            self.byzantine_membership(self.scenario.n - 1, k)?;
        }
        Ok(())
    }

    /// A byzantine member's membership attacks, chosen at random each second.
    fn byzantine_membership(&mut self, b: usize, k: usize) -> Result<(), SimError> {
        let now = self.now;
        let newcomer = self.peers[k].signer.address();
        let Some(c) = self.peers[b].channel.as_mut() else {
            return Ok(());
        };
        let Some(sm) = c.state_manager() else {
            return Ok(());
        };
        if c.phase() != Phase::Live {
            return Ok(());
        }
        let me = sm.me();
        // It approves the newcomer (a member that vetoes every join is within its rights), and
        // attacks with approvals of its own.
        if !c.life().allowed_joins.contains(&newcomer) {
            let _ = c.allow_join(newcomer, now);
        }
        let Some(sm) = c.state_manager() else {
            return Ok(());
        };
        let fork = sm.fork().clone();
        let tip_hash = sm.tip_state_hash();
        let tip = sm.tip();
        let state = sm.state_at(tip).cloned().unwrap_or_default();
        let domain = sm.spec().domain.clone();
        match self.rng.random_range(0..4u32) {
            0 => {
                // A stranger's join, which the others have not allowed.
                let stranger = Address::from(self.rng.random::<[u8; 20]>());
                let change = MembershipChange::Join {
                    participant: stranger,
                    amount: U256::from(1u64),
                    data: Bytes::new(),
                };
                let _ = c.propose_change(change, now);
            }
            1 => {
                // Its own leave, never carried out (its `leaveChannel` calls are dropped).
                let _ = c.propose_change(MembershipChange::Leave { participant: me }, now);
            }
            2 => {
                // A ticket of its own making for the newcomer: a channel where it alone signs,
                // letting the newcomer in for a larger deposit.
                let approval = MembershipApproval {
                    channel_id: self.channel_id,
                    fork: fork.fork,
                    height: tip,
                    state_hash: tip_hash,
                    change: MembershipChange::Join {
                        participant: newcomer,
                        amount: U256::from(DEPOSIT) * U256::from(10u64),
                        data: Bytes::new(),
                    },
                    deadline: self.chain.timestamp() + 60,
                };
                let signature = self.peers[b].signer.sign_digest(&approval.digest(&domain));
                let mut channel = self.proposal.clone();
                channel.participants = vec![me];
                channel.genesis_state = state.clone();
                let ticket = JoinTicket {
                    approval,
                    state,
                    signatures: vec![signature],
                    channel,
                };
                self.send(k, me, Message::JoinTicket(Box::new(ticket)));
            }
            _ => {}
        }
        self.carry_out(b)
    }

    /// The phase peer `i` is in, as a crash target.
    fn life_phase(&self, i: usize) -> Option<LifePhase> {
        let c = self.peers[i].channel.as_ref()?;
        Some(match c.phase() {
            Phase::Proposed => LifePhase::Proposal,
            Phase::Funding if !c.life().opened => LifePhase::Proposal,
            Phase::Funding | Phase::Cancelled | Phase::Joining => LifePhase::Funding,
            Phase::Live if c.dispute_handler().is_some_and(|h| h.running_dispute().is_some()) => {
                LifePhase::Dispute
            }
            Phase::Live => LifePhase::Live,
            Phase::Closed | Phase::Left => LifePhase::Settlement,
        })
    }

    /// Carries out peer `i`'s effects: persist records of an input are committed in one batch
    /// before its first other effect; a planned crash drops the rest.
    fn carry_out(&mut self, i: usize) -> Result<(), SimError> {
        let me = self.peers[i].signer.address();
        let mut batch: Vec<Record> = Vec::new();
        loop {
            // The crash: at a boundary between two effects of the aimed phase.
            if let Some((peer, at)) = self.crash_plan
                && peer == i
                && self.life_phase(i) == self.scenario.crash
            {
                if self.peers[i].boundaries >= at {
                    return self.crash(i);
                }
                self.peers[i].boundaries += 1;
            }
            let Some(effect) = self.peers[i].channel.as_mut().and_then(|c| c.poll_effect()) else {
                break;
            };
            if let Effect::Persist(record) = effect {
                batch.push(record);
                continue;
            }
            self.commit(i, &mut batch)?;
            match effect {
                Effect::Persist(_) => {}
                Effect::Broadcast(message) => {
                    if self.muted(i) {
                        continue;
                    }
                    for j in 0..self.peers.len() {
                        if j != i {
                            self.send(j, me, message.clone());
                        }
                    }
                }
                Effect::Send { to, message } => {
                    if let Some(&j) = self.index.get(&to)
                        && !self.muted(i)
                    {
                        self.send(j, me, message);
                    }
                }
                Effect::Call(call) => self.call(i, call)?,
                Effect::Notify(event) => self.on_event(i, event)?,
                // Every peer reaches every other in the in-memory network.
                Effect::Peers(_) => {}
            }
        }
        self.commit(i, &mut batch)?;
        self.schedule(i);
        Ok(())
    }

    fn commit(&mut self, i: usize, batch: &mut Vec<Record>) -> Result<(), SimError> {
        if batch.is_empty() {
            return Ok(());
        }
        let me = self.peers[i].signer.address();
        let mut b = self.peers[i].store.batch();
        for record in batch.drain(..) {
            b.record(self.channel_id, me, &self.machine, record);
        }
        match b.commit() {
            Ok(()) => Ok(()),
            Err(e @ StoreError::DoubleSign { .. }) => {
                Err(self.fail(format!("peer {i} tried to sign twice: {e}")))
            }
            Err(e) => Err(self.fail(format!("peer {i} store commit failed: {e}"))),
        }
    }

    fn send(&mut self, to: usize, from: Address, message: Message) {
        let delay = self.rng.random_range(1..30u64);
        self.push(
            self.now + delay,
            Action::Deliver {
                to,
                from,
                message: Box::new(message),
            },
        );
    }

    fn call(&mut self, i: usize, call: ChainCall) -> Result<(), SimError> {
        let from = self.peers[i].signer.address();
        let lost = self.scenario.chain_failure_permille > 0
            && self.rng.random_range(0..1000u32) < self.scenario.chain_failure_permille;
        // The silent peer's own deposit never happens when it is the one that never deposits.
        let refused = (self.scenario.no_deposit
            && self.peers[i].byzantine
            && matches!(call, ChainCall::Deposit { .. }))
            || (self.scenario.membership == Some(Membership::ByzantineMember)
                && self.peers[i].byzantine
                && matches!(call, ChainCall::Leave { .. }));
        // Half the lost calls never reach the chain; the other half are mined but their answer
        // is lost (the caller hears "not sent" either way).
        let mined_unseen = lost && self.rng.random_bool(0.5);
        let (outcome, gas) = if (lost && !mined_unseen) || refused {
            self.lost_calls += u64::from(lost);
            (CallOutcome::NotSent("simulated chain fault".into()), 0)
        } else if mined_unseen {
            self.lost_calls += 1;
            let _ = self
                .chain
                .send(from, self.manager, call.calldata(self.channel_id), call.value());
            (CallOutcome::NotSent("simulated lost answer".into()), 0)
        } else {
            match self
                .chain
                .send(from, self.manager, call.calldata(self.channel_id), call.value())
            {
                Ok(receipt) if receipt.success => (CallOutcome::Mined, receipt.gas_used),
                Ok(receipt) => (CallOutcome::Reverted(receipt.failure()), receipt.gas_used),
                Err(e) => (CallOutcome::NotSent(e.to_string()), 0),
            }
        };
        self.note(format!("peer {i} {}: {outcome:?}", call.name()));
        if let Some(c) = self.peers[i].channel.as_mut() {
            c.handle_call_outcome(&call, outcome, gas, self.now);
        }
        Ok(())
    }

    fn on_event(&mut self, i: usize, event: ChannelEvent) -> Result<(), SimError> {
        if let ChannelEvent::Chain(e) = &event
            && i == 0
        {
            let line = format!("chain: {e:?}");
            self.note(line.chars().take(200).collect());
        }
        // Safety, on every event: the chain never removes an honest peer, but for the leaver's
        // own leave.
        if let ChannelEvent::Chain(ChainEvent::ParticipantRemoved { participant, slashed }) = &event
            && self.removed.insert(*participant, *slashed).is_none()
            && let Some(&j) = self.index.get(participant)
            && !self.peers[j].byzantine
        {
            let leaving = j == 1 && !slashed && self.leave_proposed_at.is_some();
            if !leaving {
                return Err(self.fail(format!(
                    "the chain removed honest peer {j} ({participant}, slashed: {slashed})"
                )));
            }
        }
        if std::env::var("LIFE_TRACE").is_ok() && !matches!(event, ChannelEvent::Chain(_)) {
            let line = format!("peer {i}: {event:?}");
            self.note(line.chars().take(200).collect());
        }
        if let ChannelEvent::Protocol(Event::Finalized {
            fork,
            height,
            state_hash,
        }) = event
        {
            match self.finalized.insert((fork, height), state_hash) {
                Some(previous) if previous != state_hash => {
                    return Err(self.fail(format!(
                        "peer {i} finalized {state_hash} at fork {fork} height {height}, another peer {previous}"
                    )));
                }
                _ => {}
            }
        }
        if let ChannelEvent::Turn { .. } = event
            && self.peers[i].next_act.is_none()
        {
            // With joins and leaves, players think long enough for them to happen mid-game.
            let think = if self.scenario.membership.is_some() {
                self.rng.random_range(200..1_500u64)
            } else {
                self.rng.random_range(1..40u64)
            };
            let at = self.now + think;
            self.peers[i].next_act = Some(at);
            self.push(at, Action::Act(i));
        }
        Ok(())
    }

    fn schedule(&mut self, i: usize) {
        if let Some(at) = self.peers[i].channel.as_ref().and_then(|c| c.poll_timeout()) {
            let at = at.max(self.now + 1);
            if self.peers[i].next_wake != Some(at) {
                self.peers[i].next_wake = Some(at);
                self.push(at, Action::Wake(i));
            }
        }
    }

    fn crash(&mut self, i: usize) -> Result<(), SimError> {
        let phase = self.scenario.crash.unwrap_or(LifePhase::Live);
        self.crash_plan = None;
        self.crashes.push((i, phase));
        // Everything not committed is lost with the process.
        self.peers[i].channel = None;
        let downtime = self.rng.random_range(200..5_000u64);
        self.peers[i].down_until = Some(self.now + downtime);
        self.push(self.now + downtime, Action::Restart(i));
        Ok(())
    }

    fn restart(&mut self, i: usize) -> Result<(), SimError> {
        self.peers[i].down_until = None;
        let stored = self.peers[i]
            .store
            .stored_channels()
            .map_err(|e| self.fail(format!("peer {i} store: {e}")))?;
        let chain_now = self.chain.timestamp();
        for s in stored {
            let signer = self.peers[i].signer.clone();
            let channel = Channel::restore(signer, self.code.clone(), s.persisted, chain_now, self.now)
                .map_err(|e| self.fail(format!("peer {i} does not restore: {e}")))?;
            self.peers[i].channel = Some(channel);
        }
        // Nothing stored (a crash before its first commit): the proposer's application proposes
        // again (its command failed); an invitee waits for the proposal to come again.
        if self.peers[i].channel.is_none() && i == 0 {
            let signer = self.peers[i].signer.clone();
            self.peers[i].channel = Some(Channel::propose(
                signer,
                self.proposal.clone(),
                self.code.clone(),
                chain_now,
            ));
        }
        self.carry_out(i)
    }

    fn finish(mut self) -> Result<LifeReport, SimError> {
        let outcome = self.peers[0]
            .channel
            .as_ref()
            .map_or(Phase::Proposed, |c| c.phase());
        if outcome == Phase::Cancelled && !self.scenario.no_deposit {
            return Err(self.fail(format!("cancelled: {}", self.status())));
        }
        if let Some(k) = self.newcomer {
            let absent = self.scenario.membership == Some(Membership::AbsentNewcomer);
            let joined = self.peers[k].channel.as_ref().map(|c| c.phase());
            let leaver = self.peers[1].signer.address();
            let left = self.removed.get(&leaver) == Some(&false);
            if (!absent && joined != Some(Phase::Closed)) || !left {
                return Err(self.fail(format!(
                    "the newcomer ends {joined:?} (not Closed) or the leaver did not leave ({left}): {}",
                    self.status()
                )));
            }
        }
        let mut manager_holds = self.chain.balance(self.manager);
        for (i, peer) in self.peers.iter().enumerate() {
            let address = peer.signer.address();
            let balance = self.chain.balance(address);
            if peer.byzantine {
                continue;
            }
            // The counter game pays every participant its deposit back; a silent peer's removal
            // only adds to the others. Gas is free on this chain.
            if balance < peer.initial_balance {
                return Err(self.fail(format!(
                    "honest peer {i} ends with {balance}, it started with {}",
                    peer.initial_balance
                )));
            }
        }
        let byzantine: Vec<Address> = self
            .peers
            .iter()
            .filter(|p| p.byzantine)
            .map(|p| p.signer.address())
            .collect();
        for address in byzantine {
            let pending = self
                .chain
                .pending_balance(address, Address::ZERO)
                .unwrap_or_default();
            manager_holds = manager_holds.saturating_sub(pending);
        }
        if !manager_holds.is_zero() {
            return Err(self.fail(format!(
                "the manager still holds {manager_holds} wei for honest peers"
            )));
        }
        Ok(LifeReport {
            seed: self.scenario.seed,
            crashes: self.crashes,
            outcome,
            virtual_ms: self.now,
            lost_calls: self.lost_calls,
        })
    }
}
