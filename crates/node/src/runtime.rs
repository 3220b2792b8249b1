//! The node's event loop: one task that owns every channel's cores and the store, fed by the
//! application's commands, the network, the chain and its timers.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use entente_chain::{ChainClient, ChainListener, ListenerConfig, ListenerEvent};
use entente_contracts::IStateChannelManager;
use entente_dispute::{ChainAction, ChainEvent, DisputeHandler};
use entente_p2p::{P2pConfig, P2pEvent, P2pHandle, P2pManager};
use entente_state_manager::{Config, Effect, PersistRecord, StateManager};
use entente_store::{ChainCursor, ChannelRecord, ChannelStatus, MachineSource, OpenMode, Store};
use entente_types::{
    Address, ApprovalSignature, B256, ChannelProposal, Envelope, JoinTicket, LocalSigner, MAX_REASON_BYTES,
    MembershipApproval, MembershipChange, Message, ProposalAnswer, Signer, recover_signer,
};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::membership::{Collecting, approval_digest, to_join, to_leave};
use crate::worker::{self, Done, Job};
use crate::{ChannelEvent, ChannelInfo, Command, Node, NodeConfig, NodeError, NodeEvent, Phase};

const TARGET: &str = "entente::node";
/// How often the dispute handlers and the cores' timers are looked at.
const TICK: Duration = Duration::from_millis(500);
/// Most network messages handled before one durable commit.
const GROUP_LIMIT: usize = 64;
/// Buffered events per channel subscriber.
const EVENT_CAPACITY: usize = 1024;

/// Asks the manager for the id `open` will give `proposal`'s channel.
pub(crate) async fn compute_channel_id(
    chain: &ChainClient,
    proposal: &ChannelProposal,
) -> Result<B256, NodeError> {
    let manager = chain.manager().ok_or(NodeError::Config("no manager".into()))?;
    let call = IStateChannelManager::computeChannelIdCall {
        spec: onchain_spec(proposal),
        genesisState: proposal.genesis_state.clone(),
    };
    Ok(chain.view(manager, &call).await?)
}

/// The manager's `ChannelSpec` of a proposal.
pub(crate) fn onchain_spec(p: &ChannelProposal) -> IStateChannelManager::ChannelSpec {
    IStateChannelManager::ChannelSpec {
        participants: p.participants.clone(),
        deposits: p.deposits.clone(),
        stateMachine: p.state_machine,
        token: p.token,
        p2pTime: p.timing.p2p_time,
        agreementTime: p.timing.agreement_time,
        chainFallbackTime: p.timing.chain_fallback_time,
        challengeTime: p.timing.challenge_time,
        fundingPeriod: p.funding_period,
        machineGasLimit: p.machine_gas_limit,
        salt: p.salt,
    }
}

pub(crate) async fn start(config: NodeConfig) -> Result<Node, NodeError> {
    let signer = LocalSigner::from_bytes(&config.secret_key)
        .map_err(|e| NodeError::Config(format!("secret key: {e}")))?;
    let me = signer.address();
    let mode = if config.create_data_dir {
        OpenMode::OpenOrCreate
    } else {
        OpenMode::Open
    };
    let store = Store::open_with(&config.data_dir, mode)?;
    let key = PrivateKeySigner::from_bytes(&config.secret_key)
        .map_err(|e| NodeError::Config(format!("secret key: {e}")))?;
    let chain = Arc::new(
        ChainClient::connect(&config.rpc_url, key)
            .await?
            .with_manager(config.manager),
    );
    let chain_id = chain.chain_id();

    let mut p2p_config = P2pConfig::new(config.secret_key);
    p2p_config.listen_addrs = config.listen.clone();
    p2p_config.bootstrap_addrs = config.bootstrap.clone();
    p2p_config.relay_addrs = config.relays.clone();
    p2p_config.public = config.public;
    let (p2p, p2p_events) = P2pManager::spawn(p2p_config)?;
    let peer_id = p2p.local_peer_id();

    let listener_config = ListenerConfig {
        poll_interval: config.poll_interval(),
        confirmations: config.confirmations,
        ..ListenerConfig::default()
    };
    let cursor = store.cursor(chain_id, &config.manager)?;
    let listener = match &cursor {
        Some(c) => ChainListener::resume(&config.rpc_url, config.manager, c.block_number, listener_config)?,
        None => {
            let head = chain.block_number().await?;
            ChainListener::start(&config.rpc_url, config.manager, head, listener_config)?
        }
    };

    let (commands_tx, commands) = mpsc::channel(256);
    let (events, _) = broadcast::channel(EVENT_CAPACITY);
    let (jobs_tx, jobs) = mpsc::channel(256);
    let (done_tx, done) = mpsc::channel(256);
    worker::spawn(chain.clone(), jobs, done_tx);

    let manager = config.manager;
    let loop_p2p = p2p.clone();
    let loop_events = events.clone();
    let last_block_timestamp = cursor.as_ref().map_or(0, |c| c.block_timestamp);
    // The cores hold revm instances, which stay on one thread: the event loop gets its own
    // thread and a current-thread runtime. The network, the listener and the chain worker run
    // on the caller's runtime; they talk to the loop over channels.
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("entente-node-{me}"))
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(NodeError::Config(format!(
                        "cannot start the event loop: {e}"
                    ))));
                    return;
                }
            };
            rt.block_on(async move {
                let mut runtime = Runtime {
                    me,
                    signer,
                    chain_id,
                    manager,
                    store,
                    p2p: loop_p2p,
                    jobs: jobs_tx,
                    events: loop_events,
                    started: Instant::now(),
                    live: HashMap::new(),
                    pending: HashMap::new(),
                    invitations: HashMap::new(),
                    closed: HashMap::new(),
                    writes: Vec::new(),
                    last_block_timestamp,
                    approvals: HashMap::new(),
                    allowed_joins: HashMap::new(),
                    joining: HashMap::new(),
                };
                if let Err(e) = runtime.restore().await {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
                runtime.flush();
                let _ = ready_tx.send(Ok(()));
                runtime.run(commands, p2p_events, listener, done).await;
            });
        })
        .map_err(|e| NodeError::Config(format!("cannot start the event loop thread: {e}")))?;
    ready.await.map_err(|_| NodeError::Stopped)??;
    info!(target: TARGET, %me, %peer_id, "node started");
    Ok(Node {
        commands: commands_tx,
        events,
        address: me,
        peer_id,
        p2p,
        chain,
    })
}

/// A proposal on its way to becoming a live channel.
struct Pending {
    proposal: ChannelProposal,
    machine: MachineSource,
    proposer: bool,
    accepted: BTreeSet<Address>,
    open_sent: bool,
    opened: bool,
    deposit_sent: bool,
    cancelled: bool,
    events: broadcast::Sender<ChannelEvent>,
}

/// A live channel: its cores and its observers.
struct Live {
    sm: StateManager<LocalSigner>,
    handler: DisputeHandler,
    events: broadcast::Sender<ChannelEvent>,
}

/// A settled channel.
struct Closed {
    participants: Vec<Address>,
    exits: Vec<(Address, entente_types::U256)>,
    events: broadcast::Sender<ChannelEvent>,
}

/// A store write that is not a core's persist record.
enum Write {
    Channel(Box<ChannelRecord>),
    Fork(B256, entente_state_manager::ForkInfo, entente_types::Bytes),
    Status(B256, ChannelStatus),
    Cursor(ChainCursor),
}

struct Runtime {
    me: Address,
    signer: LocalSigner,
    chain_id: u64,
    manager: Address,
    store: Store,
    p2p: P2pHandle,
    jobs: mpsc::Sender<Job>,
    events: broadcast::Sender<NodeEvent>,
    started: Instant,
    live: HashMap<B256, Live>,
    pending: HashMap<B256, Pending>,
    /// Proposals received and not answered yet.
    invitations: HashMap<B256, (Address, ChannelProposal)>,
    closed: HashMap<B256, Closed>,
    /// Writes for the next commit.
    writes: Vec<Write>,
    last_block_timestamp: u64,
    /// Membership approvals being signed, by digest.
    approvals: HashMap<B256, Collecting>,
    /// Newcomers our application lets join, per channel.
    allowed_joins: HashMap<B256, BTreeSet<Address>>,
    /// Channels we expect to join.
    joining: HashMap<B256, Joining>,
}

/// A channel this node expects to join.
struct Joining {
    machine: MachineSource,
    events: broadcast::Sender<ChannelEvent>,
    ticket: Option<JoinTicket>,
}

impl Runtime {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Restores every open channel of the data directory.
    async fn restore(&mut self) -> Result<(), NodeError> {
        for record in self.store.channels()? {
            let channel_id = record.spec.channel_id;
            if record.me != self.me {
                return Err(NodeError::Config(format!(
                    "the data directory belongs to {}, not to this key ({})",
                    record.me, self.me
                )));
            }
            let (events, _) = broadcast::channel(EVENT_CAPACITY);
            if record.status == ChannelStatus::Closed {
                self.closed.insert(
                    channel_id,
                    Closed {
                        participants: record.spec.participants.clone(),
                        exits: Vec::new(),
                        events,
                    },
                );
                continue;
            }
            let snapshot = self.store.snapshot(&channel_id)?;
            let code = record.machine.load()?;
            let now = self.now_ms();
            let mut sm = StateManager::restore(snapshot, self.signer.clone(), &code, Config::default(), now)
                .map_err(|e| NodeError::Config(format!("channel {channel_id} does not restore: {e}")))?;
            if self.last_block_timestamp > 0 {
                sm.observe_block(self.last_block_timestamp, now);
            }
            self.p2p
                .join_channel(channel_id, sm.fork().participants.clone())
                .await?;
            info!(target: TARGET, channel = %channel_id, tip = sm.tip(), fork = sm.fork().fork, "channel restored");
            self.live.insert(
                channel_id,
                Live {
                    sm,
                    handler: DisputeHandler::new(self.me),
                    events,
                },
            );
        }
        Ok(())
    }

    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut p2p_events: mpsc::Receiver<P2pEvent>,
        mut listener: ChainListener,
        mut done: mpsc::Receiver<Done>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let wake = self.next_core_timeout();
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command).await,
                    None => break,
                },
                Some(event) = p2p_events.recv() => {
                    self.on_p2p(event).await;
                    // Group commit: handle what else has arrived before storing and sending
                    // once for all of it.
                    for _ in 0..GROUP_LIMIT {
                        match p2p_events.try_recv() {
                            Ok(event) => self.on_p2p(event).await,
                            Err(_) => break,
                        }
                    }
                }
                Some(event) = listener.next() => self.on_chain(event),
                Some(report) = done.recv() => self.on_done(report),
                _ = tick.tick() => self.on_tick(),
                _ = sleep_until(wake) => self.on_core_timeouts(),
            }
            self.flush();
        }
        info!(target: TARGET, me = %self.me, "node stopped");
    }

    fn next_core_timeout(&self) -> Option<Instant> {
        let due = self.live.values().filter_map(|l| l.sm.poll_timeout()).min()?;
        Some(self.started + Duration::from_millis(due))
    }

    fn on_core_timeouts(&mut self) {
        let now = self.now_ms();
        for live in self.live.values_mut() {
            live.sm.handle_timeout(now);
        }
    }

    fn on_tick(&mut self) {
        let now = self.now_ms();
        let mut jobs = Vec::new();
        for (id, live) in &mut self.live {
            live.sm.handle_timeout(now);
            for action in live.handler.on_tick(&mut live.sm, now) {
                jobs.push(Job::Action {
                    channel_id: *id,
                    action: Box::new(action),
                });
            }
        }
        for job in jobs {
            self.queue(job);
        }
    }

    fn queue(&mut self, job: Job) {
        if let Err(e) = self.jobs.try_send(job) {
            warn!(target: TARGET, error = %e, "chain worker queue full: call dropped (retried on the next tick)");
        }
    }

    fn emit(&self, channel_id: B256, event: ChannelEvent) {
        let sender = self
            .live
            .get(&channel_id)
            .map(|l| &l.events)
            .or_else(|| self.pending.get(&channel_id).map(|p| &p.events))
            .or_else(|| self.closed.get(&channel_id).map(|c| &c.events))
            .or_else(|| self.joining.get(&channel_id).map(|j| &j.events));
        if let Some(sender) = sender {
            let _ = sender.send(event.clone());
        }
        let _ = self.events.send(NodeEvent::Channel {
            channel_id,
            event: Box::new(event),
        });
    }

    // ----- commands -----------------------------------------------------------------------

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Propose {
                proposal,
                machine,
                reply,
            } => {
                let result = self.propose(*proposal, machine).await;
                let _ = reply.send(result);
            }
            Command::Accept {
                channel_id,
                machine,
                reply,
            } => {
                let result = self.accept(channel_id, machine).await;
                let _ = reply.send(result);
            }
            Command::Decline {
                channel_id,
                reason,
                reply,
            } => {
                let result = match self.invitations.remove(&channel_id) {
                    Some((from, _)) => {
                        self.answer(channel_id, from, false, reason);
                        Ok(())
                    }
                    None => Err(NodeError::UnknownChannel(channel_id)),
                };
                let _ = reply.send(result);
            }
            Command::Submit {
                channel_id,
                data,
                reply,
            } => {
                let now = self.now_ms();
                let result = match self.live.get_mut(&channel_id) {
                    Some(live) => live.sm.submit(data, now).map_err(NodeError::from),
                    None => Err(self.not_live(channel_id)),
                };
                let _ = reply.send(result);
            }
            Command::View {
                channel_id,
                data,
                reply,
            } => {
                let result = match self.live.get_mut(&channel_id) {
                    Some(live) => live.sm.view(data).map_err(NodeError::from),
                    None => Err(self.not_live(channel_id)),
                };
                let _ = reply.send(result);
            }
            Command::Info { channel_id, reply } => {
                let _ = reply.send(self.info(channel_id));
            }
            Command::Subscribe { channel_id, reply } => {
                let receiver = self
                    .live
                    .get(&channel_id)
                    .map(|l| l.events.subscribe())
                    .or_else(|| self.pending.get(&channel_id).map(|p| p.events.subscribe()))
                    .or_else(|| self.closed.get(&channel_id).map(|c| c.events.subscribe()))
                    .or_else(|| self.joining.get(&channel_id).map(|j| j.events.subscribe()))
                    .ok_or(NodeError::UnknownChannel(channel_id));
                let _ = reply.send(receiver);
            }
            Command::Exit { channel_id, reply } => {
                let result = match self.live.get(&channel_id) {
                    Some(live) => {
                        let sm = &live.sm;
                        let genesis = sm.fork().genesis_height;
                        let latest = (genesis..=sm.tip())
                            .rev()
                            .find_map(|h| live.handler.proof_at(sm, h));
                        match latest {
                            Some(latest) => {
                                self.queue(Job::Action {
                                    channel_id,
                                    action: Box::new(ChainAction::RequestExit { latest }),
                                });
                                Ok(())
                            }
                            None => Err(NodeError::NotLive(channel_id)),
                        }
                    }
                    None => Err(self.not_live(channel_id)),
                };
                let _ = reply.send(result);
            }
            Command::Inject {
                channel_id,
                transaction,
                reply,
            } => {
                let result = if self.live.contains_key(&channel_id) {
                    self.send(channel_id, None, Message::Transaction(*transaction));
                    Ok(())
                } else {
                    Err(self.not_live(channel_id))
                };
                let _ = reply.send(result);
            }
            Command::AllowJoin {
                channel_id,
                joiner,
                reply,
            } => {
                let result = if self.live.contains_key(&channel_id) {
                    self.allowed_joins.entry(channel_id).or_default().insert(joiner);
                    // Approvals that arrived before the permission can be signed now.
                    let pending: Vec<B256> = self
                        .approvals
                        .iter()
                        .filter(|(_, c)| c.approval.channel_id == channel_id)
                        .map(|(d, _)| *d)
                        .collect();
                    for digest in pending {
                        self.cosign(channel_id, digest);
                    }
                    Ok(())
                } else {
                    Err(self.not_live(channel_id))
                };
                let _ = reply.send(result);
            }
            Command::ProposeJoin {
                channel_id,
                joiner,
                amount,
                data,
                reply,
            } => {
                let change = MembershipChange::Join {
                    participant: joiner,
                    amount,
                    data,
                };
                let result = self.start_approval(channel_id, change).await;
                let _ = reply.send(result);
            }
            Command::Leave { channel_id, reply } => {
                let change = MembershipChange::Leave { participant: self.me };
                let result = self.start_approval(channel_id, change).await;
                let _ = reply.send(result);
            }
            Command::ExpectJoin {
                channel_id,
                machine,
                reply,
            } => {
                let result = if self.live.contains_key(&channel_id) {
                    Err(NodeError::BadProposal(format!("already in channel {channel_id}")))
                } else {
                    match machine.load() {
                        Ok(_) => {
                            let (events, _) = broadcast::channel(EVENT_CAPACITY);
                            self.joining.insert(
                                channel_id,
                                Joining {
                                    machine,
                                    events,
                                    ticket: None,
                                },
                            );
                            Ok(())
                        }
                        Err(e) => Err(e.into()),
                    }
                };
                let _ = reply.send(result);
            }
            Command::Invitations { reply } => {
                let mut list: Vec<(Address, ChannelProposal)> = self.invitations.values().cloned().collect();
                list.sort_by_key(|(_, p)| p.channel_id);
                let _ = reply.send(Ok(list));
            }
            Command::Channels { reply } => {
                let mut ids: Vec<B256> = self
                    .live
                    .keys()
                    .chain(self.pending.keys())
                    .chain(self.closed.keys())
                    .copied()
                    .collect();
                ids.sort();
                let _ = reply.send(Ok(ids));
            }
        }
    }

    fn not_live(&self, channel_id: B256) -> NodeError {
        if self.closed.contains_key(&channel_id) {
            NodeError::ChannelClosed(channel_id)
        } else if self.pending.contains_key(&channel_id) {
            NodeError::NotLive(channel_id)
        } else {
            NodeError::UnknownChannel(channel_id)
        }
    }

    fn info(&self, channel_id: B256) -> Result<ChannelInfo, NodeError> {
        if let Some(live) = self.live.get(&channel_id) {
            let sm = &live.sm;
            return Ok(ChannelInfo {
                channel_id,
                phase: Phase::Live,
                fork: sm.fork().fork,
                tip: sm.tip(),
                finalized: sm.finalized_height(),
                tip_state_hash: sm.tip_state_hash(),
                tip_timestamp: sm.tip_timestamp(),
                participants: sm.fork().participants.clone(),
                next_writer: sm.next_writer(),
                game_over: sm.is_game_over(),
                disputed: live.handler.running_dispute().is_some(),
                exits: None,
            });
        }
        if let Some(p) = self.pending.get(&channel_id) {
            let phase = if p.cancelled {
                Phase::Cancelled
            } else if p.open_sent || p.opened || (!p.proposer && p.accepted.contains(&self.me)) {
                Phase::Funding
            } else {
                Phase::Proposed
            };
            return Ok(ChannelInfo {
                channel_id,
                phase,
                fork: 0,
                tip: 0,
                finalized: 0,
                tip_state_hash: B256::ZERO,
                tip_timestamp: 0,
                participants: p.proposal.participants.clone(),
                next_writer: Address::ZERO,
                game_over: false,
                disputed: false,
                exits: None,
            });
        }
        if let Some(j) = self.joining.get(&channel_id) {
            return Ok(ChannelInfo {
                channel_id,
                phase: Phase::Funding,
                fork: 0,
                tip: 0,
                finalized: 0,
                tip_state_hash: B256::ZERO,
                tip_timestamp: 0,
                participants: j
                    .ticket
                    .as_ref()
                    .map(|t| t.channel.participants.clone())
                    .unwrap_or_default(),
                next_writer: Address::ZERO,
                game_over: false,
                disputed: false,
                exits: None,
            });
        }
        if let Some(c) = self.closed.get(&channel_id) {
            return Ok(ChannelInfo {
                channel_id,
                phase: Phase::Closed,
                fork: 0,
                tip: 0,
                finalized: 0,
                tip_state_hash: B256::ZERO,
                tip_timestamp: 0,
                participants: c.participants.clone(),
                next_writer: Address::ZERO,
                game_over: true,
                disputed: false,
                exits: Some(c.exits.clone()),
            });
        }
        Err(NodeError::UnknownChannel(channel_id))
    }

    /// Checks a proposal against this node: same chain and manager, consistent lists, and us
    /// among the participants.
    fn check_proposal(&self, p: &ChannelProposal) -> Result<(), NodeError> {
        if p.chain_id != self.chain_id || p.manager != self.manager {
            return Err(NodeError::BadProposal(format!(
                "for manager {} on chain {}, this node uses {} on chain {}",
                p.manager, p.chain_id, self.manager, self.chain_id
            )));
        }
        if p.participants.len() < 2 || p.participants.len() != p.deposits.len() {
            return Err(NodeError::BadProposal(
                "at least two participants, one deposit each".into(),
            ));
        }
        let distinct: BTreeSet<&Address> = p.participants.iter().collect();
        if distinct.len() != p.participants.len() {
            return Err(NodeError::BadProposal("a participant is listed twice".into()));
        }
        if p.participant_index(&self.me).is_none() {
            return Err(NodeError::NotAParticipant(self.me));
        }
        Ok(())
    }

    async fn propose(&mut self, proposal: ChannelProposal, machine: MachineSource) -> Result<(), NodeError> {
        self.check_proposal(&proposal)?;
        if proposal.participants.first() != Some(&self.me) {
            return Err(NodeError::BadProposal(
                "the proposer must be the first participant (it opens the channel)".into(),
            ));
        }
        let channel_id = proposal.channel_id;
        if self.live.contains_key(&channel_id) || self.pending.contains_key(&channel_id) {
            return Err(NodeError::BadProposal(format!(
                "channel {channel_id} exists already"
            )));
        }
        machine.load()?;
        self.p2p
            .join_channel(channel_id, proposal.participants.clone())
            .await?;
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let message = Message::Proposal(Box::new(proposal.clone()));
        self.pending.insert(
            channel_id,
            Pending {
                proposal,
                machine,
                proposer: true,
                accepted: BTreeSet::from([self.me]),
                open_sent: false,
                opened: false,
                deposit_sent: true,
                cancelled: false,
                events,
            },
        );
        self.send(channel_id, None, message);
        info!(target: TARGET, channel = %channel_id, "proposed");
        Ok(())
    }

    async fn accept(&mut self, channel_id: B256, machine: MachineSource) -> Result<(), NodeError> {
        let (from, proposal) = self
            .invitations
            .remove(&channel_id)
            .ok_or(NodeError::UnknownChannel(channel_id))?;
        machine.load()?;
        self.p2p
            .join_channel(channel_id, proposal.participants.clone())
            .await?;
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        self.pending.insert(
            channel_id,
            Pending {
                proposal,
                machine,
                proposer: false,
                accepted: BTreeSet::from([self.me]),
                open_sent: false,
                opened: false,
                deposit_sent: false,
                cancelled: false,
                events,
            },
        );
        self.answer(channel_id, from, true, String::new());
        info!(target: TARGET, channel = %channel_id, "accepted");
        Ok(())
    }

    fn answer(&mut self, channel_id: B256, to: Address, accepted: bool, mut reason: String) {
        reason.truncate(MAX_REASON_BYTES);
        let message = Message::ProposalAnswer(ProposalAnswer {
            channel_id,
            accepted,
            reason,
        });
        if accepted {
            self.send(channel_id, Some(to), message);
        } else {
            // Not joined: answer through a short-lived join of the proposal's channel.
            let p2p = self.p2p.clone();
            tokio::spawn(async move {
                if let Err(e) = p2p.join_channel(channel_id, vec![p2p.local_address(), to]).await {
                    warn!(target: TARGET, error = %e, "cannot decline");
                    return;
                }
                let _ = p2p.send(channel_id, to, Envelope::new(message)).await;
                let _ = p2p.leave_channel(channel_id).await;
            });
        }
    }

    // ----- network ------------------------------------------------------------------------

    fn send(&self, channel_id: B256, to: Option<Address>, message: Message) {
        let p2p = self.p2p.clone();
        let envelope = Envelope::new(message);
        tokio::spawn(async move {
            let result = match to {
                Some(to) => p2p.send(channel_id, to, envelope).await.map(|_| ()),
                None => p2p.broadcast(channel_id, envelope).await.map(|outcomes| {
                    for (to, outcome) in outcomes {
                        if let Err(e) = outcome {
                            debug!(target: TARGET, channel = %channel_id, %to, error = %e, "not delivered");
                        }
                    }
                }),
            };
            if let Err(e) = result {
                debug!(target: TARGET, channel = %channel_id, error = %e, "not sent");
            }
        });
    }

    async fn on_p2p(&mut self, event: P2pEvent) {
        let P2pEvent::Message {
            from,
            channel_id,
            envelope,
            ..
        } = event
        else {
            debug!(target: TARGET, ?event, "p2p");
            return;
        };
        let now = self.now_ms();
        match envelope.message {
            Message::Proposal(proposal) => {
                if self.live.contains_key(&channel_id) || self.pending.contains_key(&channel_id) {
                    return;
                }
                if let Err(e) = self.check_proposal(&proposal) {
                    warn!(target: TARGET, %from, error = %e, "proposal refused");
                    return;
                }
                if proposal.participants.first() != Some(&from) {
                    warn!(target: TARGET, %from, "proposal not from its first participant: refused");
                    return;
                }
                if self.invitations.len() >= 64 && !self.invitations.contains_key(&channel_id) {
                    warn!(target: TARGET, %from, "too many open invitations: proposal dropped");
                    return;
                }
                self.invitations.insert(channel_id, (from, (*proposal).clone()));
                let _ = self.events.send(NodeEvent::Proposal { from, proposal });
            }
            Message::ProposalAnswer(answer) => {
                let Some(p) = self.pending.get_mut(&channel_id) else {
                    return;
                };
                if !p.proposer || p.proposal.participant_index(&from).is_none() {
                    return;
                }
                if answer.accepted {
                    p.accepted.insert(from);
                } else {
                    p.cancelled = true;
                }
                let all = p.accepted.len() == p.proposal.participants.len();
                let open = all && !p.open_sent && !p.cancelled;
                if open {
                    p.open_sent = true;
                }
                let job = open.then(|| Job::Open {
                    channel_id,
                    spec: Box::new(onchain_spec(&p.proposal)),
                    genesis_state: p.proposal.genesis_state.clone(),
                });
                self.emit(
                    channel_id,
                    ChannelEvent::Answered {
                        from,
                        accepted: answer.accepted,
                        reason: answer.reason,
                    },
                );
                if let Some(job) = job {
                    self.queue(job);
                }
            }
            Message::Approval(approval) => self.on_approval(channel_id, from, *approval),
            Message::JoinTicket(ticket) => self.on_ticket(from, *ticket),
            message => {
                if let Some(live) = self.live.get_mut(&channel_id) {
                    let _ = live.sm.handle_message(from, message, now);
                }
            }
        }
    }

    // ----- membership ---------------------------------------------------------------------

    /// Starts an approval of `change` at our final tip, signed by us.
    async fn start_approval(&mut self, channel_id: B256, change: MembershipChange) -> Result<(), NodeError> {
        let now = self.now_ms();
        let last_block_timestamp = self.last_block_timestamp;
        let Some(live) = self.live.get_mut(&channel_id) else {
            return Err(self.not_live(channel_id));
        };
        let sm = &mut live.sm;
        if sm.tip() != sm.finalized_height() {
            return Err(NodeError::BadProposal(format!(
                "the state at height {} is not final yet (final up to {})",
                sm.tip(),
                sm.finalized_height()
            )));
        }
        let participants = sm.fork().participants.clone();
        match &change {
            MembershipChange::Join { participant, .. } if participants.contains(participant) => {
                return Err(NodeError::BadProposal(format!(
                    "{participant} is a participant already"
                )));
            }
            MembershipChange::Leave { .. } if participants.len() < 2 => {
                return Err(NodeError::BadProposal("nobody left to approve".into()));
            }
            _ => {}
        }
        let chain_now = sm.now_secs(now).max(last_block_timestamp);
        // Bound to the latest state: short-lived (over by the next writer's write-by time, so that
        // it may co-sign it), and we sign nothing above it meanwhile (O4).
        let timing = sm.spec().timing;
        let approval = MembershipApproval {
            channel_id,
            fork: sm.fork().fork,
            height: sm.tip(),
            state_hash: sm.tip_state_hash(),
            change,
            deadline: (sm.tip_timestamp() + timing.p2p_time).max(chain_now + timing.agreement_time),
        };
        sm.hold_signing_above(approval.height, approval.deadline);
        let digest = approval_digest(&sm.spec().domain, &approval);
        let signature = self.signer.sign_digest(&digest);
        if let MembershipChange::Join { participant, .. } = &approval.change {
            // The newcomer may talk to us from now on (its ticket comes from us).
            let mut with_joiner = participants.clone();
            with_joiner.push(*participant);
            self.p2p.join_channel(channel_id, with_joiner).await?;
        }
        self.approvals.insert(
            digest,
            Collecting {
                approval: approval.clone(),
                signatures: std::collections::BTreeMap::from([(self.me, signature)]),
                sponsor: true,
                done: false,
            },
        );
        self.send(
            channel_id,
            None,
            Message::Approval(Box::new(ApprovalSignature { approval, signature })),
        );
        self.complete(channel_id, digest);
        Ok(())
    }

    fn on_approval(&mut self, channel_id: B256, from: Address, message: ApprovalSignature) {
        let Some(live) = self.live.get(&channel_id) else {
            return;
        };
        if !live.sm.fork().participants.contains(&from) {
            return;
        }
        let digest = approval_digest(&live.sm.spec().domain, &message.approval);
        match recover_signer(&digest, &message.signature) {
            Ok(signer) if signer == from => {}
            _ => {
                warn!(target: TARGET, channel = %channel_id, %from, "approval signature does not match its sender");
                return;
            }
        }
        if self.approvals.len() >= 64 && !self.approvals.contains_key(&digest) {
            warn!(target: TARGET, channel = %channel_id, "too many open approvals: dropped");
            return;
        }
        let entry = self.approvals.entry(digest).or_insert_with(|| Collecting {
            approval: message.approval.clone(),
            signatures: std::collections::BTreeMap::new(),
            sponsor: false,
            done: false,
        });
        entry.signatures.insert(from, message.signature);
        self.cosign(channel_id, digest);
        self.complete(channel_id, digest);
    }

    /// Signs the approval `digest` if we have not and it is acceptable (docs/security.md, O4):
    /// bound to our own final tip, with a short deadline; as the next writer, only if it is over by
    /// our write-by time (the hold must not keep us from writing in our window); a leave of our own
    /// participant only if we asked for it; a newcomer only one our application allowed. We then
    /// sign nothing above the approved height until it lands or expires.
    fn cosign(&mut self, channel_id: B256, digest: B256) {
        let Some(live) = self.live.get_mut(&channel_id) else {
            return;
        };
        let Some(entry) = self.approvals.get_mut(&digest) else {
            return;
        };
        if entry.signatures.contains_key(&self.me) {
            return;
        }
        let a = &entry.approval;
        let context = entente_state_manager::ApprovalContext {
            chain_now: self.last_block_timestamp,
            sponsor: entry.sponsor,
            join_allowed: match &a.change {
                MembershipChange::Join { participant, .. } => self
                    .allowed_joins
                    .get(&channel_id)
                    .is_some_and(|set| set.contains(participant)),
                MembershipChange::Leave { .. } => false,
            },
        };
        if let Err(refusal) = live.sm.approval_refusal(a, &context) {
            debug!(target: TARGET, channel = %channel_id, %refusal, "approval not signed (yet)");
            return;
        }
        let height = a.height;
        let deadline = a.deadline;
        live.sm.hold_signing_above(height, deadline);
        let signature = self.signer.sign_digest(&digest);
        entry.signatures.insert(self.me, signature);
        let approval = entry.approval.clone();
        self.send(
            channel_id,
            None,
            Message::Approval(Box::new(ApprovalSignature { approval, signature })),
        );
    }

    /// With every current participant's signature: the sponsor of a join sends the ticket, a
    /// leaver submits its leave.
    fn complete(&mut self, channel_id: B256, digest: B256) {
        let Some(live) = self.live.get(&channel_id) else {
            return;
        };
        let Some(entry) = self.approvals.get_mut(&digest) else {
            return;
        };
        let participants = live.sm.fork().participants.clone();
        let ordered: Option<Vec<entente_types::Signature>> = participants
            .iter()
            .map(|p| entry.signatures.get(p).copied())
            .collect();
        let Some(signatures) = ordered else { return };
        if entry.done || !entry.sponsor {
            return;
        }
        let Some(state) = live.sm.state_at(entry.approval.height).cloned() else {
            return;
        };
        entry.done = true;
        let approval = entry.approval.clone();
        let bytes: Vec<entente_types::Bytes> = signatures
            .iter()
            .map(|s| entente_types::Bytes::copy_from_slice(s.as_bytes()))
            .collect();
        match approval.change.clone() {
            MembershipChange::Join {
                participant,
                amount,
                data,
            } => {
                let spec = live.sm.spec();
                let channel = ChannelProposal {
                    channel_id,
                    chain_id: spec.domain.chain_id(),
                    manager: spec.domain.verifying_contract(),
                    participants: participants.clone(),
                    deposits: Vec::new(),
                    state_machine: spec.state_machine,
                    token: Address::ZERO,
                    timing: spec.timing,
                    funding_period: 0,
                    machine_gas_limit: live.sm.gas_limit(),
                    salt: B256::ZERO,
                    genesis_state: state.clone(),
                    agreement_mode: spec.agreement_mode,
                };
                info!(target: TARGET, channel = %channel_id, %participant, "join approved by all: ticket sent");
                self.send(
                    channel_id,
                    Some(participant),
                    Message::JoinTicket(Box::new(JoinTicket {
                        approval: approval.clone(),
                        state,
                        signatures,
                        channel,
                    })),
                );
                let _ = (amount, data);
            }
            MembershipChange::Leave { participant } => {
                info!(target: TARGET, channel = %channel_id, "leave approved by all: submitting");
                self.queue(Job::Leave {
                    channel_id,
                    approval: Box::new(to_leave(&approval, participant)),
                    state,
                    signatures: bytes,
                });
            }
        }
    }

    /// A ticket to join: check every signature, then pay the deposit through `joinChannel`.
    fn on_ticket(&mut self, from: Address, ticket: JoinTicket) {
        let channel_id = ticket.approval.channel_id;
        let Some(joining) = self.joining.get_mut(&channel_id) else {
            debug!(target: TARGET, channel = %channel_id, %from, "unexpected join ticket");
            return;
        };
        if joining.ticket.is_some() {
            return;
        }
        let MembershipChange::Join {
            participant,
            amount,
            data,
        } = ticket.approval.change.clone()
        else {
            return;
        };
        if participant != self.me
            || ticket.channel.chain_id != self.chain_id
            || ticket.channel.manager != self.manager
            || entente_types::state_hash(&ticket.state) != ticket.approval.state_hash
            || ticket.signatures.len() != ticket.channel.participants.len()
        {
            warn!(target: TARGET, channel = %channel_id, %from, "join ticket refused: it does not match");
            return;
        }
        let domain = entente_types::Domain::new(self.chain_id, self.manager);
        let digest = approval_digest(&domain, &ticket.approval);
        let signed_by_all = ticket
            .channel
            .participants
            .iter()
            .zip(&ticket.signatures)
            .all(|(p, s)| recover_signer(&digest, s).is_ok_and(|a| a == *p));
        if !signed_by_all {
            warn!(target: TARGET, channel = %channel_id, %from, "join ticket refused: a signature does not match");
            return;
        }
        let signatures: Vec<entente_types::Bytes> = ticket
            .signatures
            .iter()
            .map(|s| entente_types::Bytes::copy_from_slice(s.as_bytes()))
            .collect();
        let job = Job::Join {
            channel_id,
            approval: Box::new(to_join(&ticket.approval, participant, amount, data)),
            state: ticket.state.clone(),
            signatures,
        };
        info!(target: TARGET, channel = %channel_id, "join ticket received: joining on chain");
        joining.ticket = Some(ticket);
        self.queue(job);
    }

    /// The fork our join started: run the channel from its genesis.
    fn joined(
        &mut self,
        channel_id: B256,
        fork: entente_state_manager::ForkInfo,
        state: &entente_types::Bytes,
        now: u64,
    ) {
        let Some(joining) = self.joining.remove(&channel_id) else {
            return;
        };
        let Some(ticket) = joining.ticket else {
            self.joining.insert(channel_id, joining);
            return;
        };
        let mut channel = ticket.channel;
        channel.participants = fork.participants.clone();
        channel.genesis_state = state.clone();
        let spec = channel.channel_spec(fork.genesis_timestamp);
        let code = match joining.machine.load() {
            Ok(code) => code,
            Err(e) => {
                warn!(target: TARGET, channel = %channel_id, error = %e, "machine does not load");
                return;
            }
        };
        let config = Config {
            gas_limit: channel.machine_gas_limit,
            ..Config::default()
        };
        let mut sm = match StateManager::new(spec.clone(), self.signer.clone(), &code, config, now) {
            Ok(sm) => sm,
            Err(e) => {
                warn!(target: TARGET, channel = %channel_id, error = %e, "joined channel does not start");
                return;
            }
        };
        if let Err(e) = sm.apply_fork(fork.clone(), state, now) {
            warn!(target: TARGET, channel = %channel_id, error = %e, "joined fork does not load");
            return;
        }
        if self.last_block_timestamp > 0 {
            sm.observe_block(self.last_block_timestamp, now);
        }
        self.writes.push(Write::Channel(Box::new(ChannelRecord {
            spec,
            me: self.me,
            machine: joining.machine,
            status: ChannelStatus::Open,
        })));
        self.writes
            .push(Write::Fork(channel_id, fork.clone(), state.clone()));
        self.rejoin_p2p(channel_id, fork.participants.clone());
        info!(target: TARGET, channel = %channel_id, fork = fork.fork, "joined");
        let genesis_timestamp = fork.genesis_timestamp;
        self.live.insert(
            channel_id,
            Live {
                sm,
                handler: DisputeHandler::new(self.me),
                events: joining.events,
            },
        );
        self.emit(channel_id, ChannelEvent::Live { genesis_timestamp });
    }

    fn rejoin_p2p(&self, channel_id: B256, participants: Vec<Address>) {
        let p2p = self.p2p.clone();
        tokio::spawn(async move {
            if let Err(e) = p2p.join_channel(channel_id, participants).await {
                warn!(target: TARGET, channel = %channel_id, error = %e, "cannot update the channel's peers");
            }
        });
    }

    // ----- chain --------------------------------------------------------------------------

    fn on_chain(&mut self, event: ListenerEvent) {
        let now = self.now_ms();
        match event {
            ListenerEvent::Block { number, timestamp } => {
                self.last_block_timestamp = timestamp;
                // Approvals that can no longer take effect (past their deadline, unless the leave
                // they approved runs on chain; below the chain's head) no longer hold our
                // signatures.
                for live in self.live.values_mut() {
                    let leave_running = live
                        .handler
                        .running_dispute()
                        .is_some_and(|d| d.kind == entente_dispute::DisputeKind::Leave);
                    let (head, _) = live.handler.head(&live.sm);
                    live.sm.release_holds(timestamp, head, leave_running);
                }
                for live in self.live.values_mut() {
                    let actions =
                        live.handler
                            .on_chain_event(&mut live.sm, ChainEvent::Block { timestamp }, now);
                    debug_assert!(actions.is_empty());
                }
                self.writes.push(Write::Cursor(ChainCursor {
                    block_number: number,
                    block_hash: B256::ZERO,
                    block_timestamp: timestamp,
                }));
            }
            ListenerEvent::Channel {
                channel_id, event, ..
            } => self.on_channel_event(channel_id, event, now),
            ListenerEvent::Unavailable { error, .. } => {
                let _ = self.events.send(NodeEvent::ChainUnavailable {
                    error: error.to_string(),
                });
            }
            ListenerEvent::Recovered => {
                let _ = self.events.send(NodeEvent::ChainRecovered);
            }
        }
    }

    fn on_channel_event(&mut self, channel_id: B256, event: ChainEvent, now: u64) {
        match &event {
            ChainEvent::ChannelOpened {
                genesis_state_hash, ..
            } => {
                if let Some(p) = self.pending.get_mut(&channel_id) {
                    p.opened = true;
                    if *genesis_state_hash != entente_types::state_hash(&p.proposal.genesis_state) {
                        warn!(target: TARGET, channel = %channel_id, "opened with another genesis state: not depositing");
                        p.cancelled = true;
                    } else if !p.deposit_sent
                        && let Some(index) = p.proposal.participant_index(&self.me)
                    {
                        p.deposit_sent = true;
                        let amount = p.proposal.deposits[index];
                        self.queue(Job::Deposit {
                            channel_id,
                            index,
                            amount,
                        });
                    }
                }
            }
            ChainEvent::ChannelActivated { genesis_timestamp } => {
                self.go_live(channel_id, *genesis_timestamp, now);
            }
            ChainEvent::FundingCancelled => {
                if let Some(p) = self.pending.get_mut(&channel_id) {
                    p.cancelled = true;
                    if p.deposit_sent
                        && let Some(index) = p.proposal.participant_index(&self.me)
                    {
                        self.queue(Job::Reclaim { channel_id, index });
                    }
                }
            }
            _ => {}
        }
        if let ChainEvent::SetState {
            fork,
            genesis_height,
            genesis_timestamp,
            state,
            participants,
        } = &event
            && self.joining.contains_key(&channel_id)
            && participants.contains(&self.me)
        {
            let info = entente_state_manager::ForkInfo {
                fork: *fork,
                genesis_height: *genesis_height,
                genesis_timestamp: *genesis_timestamp,
                genesis_state_hash: entente_types::state_hash(state),
                participants: participants.clone(),
            };
            self.joined(channel_id, info, state, now);
        }
        let mut left = false;
        if let Some(live) = self.live.get_mut(&channel_id) {
            let fork_before = live.sm.fork().fork;
            let actions = live.handler.on_chain_event(&mut live.sm, event.clone(), now);
            let fork = live.sm.fork().clone();
            if fork.fork != fork_before {
                if let Some(state) = live.sm.state_at(fork.genesis_height).cloned() {
                    self.writes.push(Write::Fork(channel_id, fork.clone(), state));
                }
                if fork.participants.contains(&self.me) {
                    self.rejoin_p2p(channel_id, fork.participants.clone());
                } else {
                    left = true;
                }
                self.approvals.retain(|_, c| c.approval.channel_id != channel_id);
            }
            for action in actions {
                self.queue(Job::Action {
                    channel_id,
                    action: Box::new(action),
                });
            }
        }
        if left {
            // We left (or were removed): what the machine gave us waits in the pending ledger.
            info!(target: TARGET, channel = %channel_id, "no longer a participant");
            self.settle(channel_id, Vec::new());
        }
        if let ChainEvent::ChannelClosed { exits, .. } = &event {
            self.settle(channel_id, exits.clone());
        }
        self.emit(channel_id, ChannelEvent::Chain(event));
    }

    fn go_live(&mut self, channel_id: B256, genesis_timestamp: u64, now: u64) {
        let Some(p) = self.pending.remove(&channel_id) else {
            return;
        };
        let spec = p.proposal.channel_spec(genesis_timestamp);
        let code = match p.machine.load() {
            Ok(code) => code,
            Err(e) => {
                warn!(target: TARGET, channel = %channel_id, error = %e, "machine does not load");
                return;
            }
        };
        let config = Config {
            gas_limit: p.proposal.machine_gas_limit,
            ..Config::default()
        };
        let mut sm = match StateManager::new(spec.clone(), self.signer.clone(), &code, config, now) {
            Ok(sm) => sm,
            Err(e) => {
                warn!(target: TARGET, channel = %channel_id, error = %e, "channel does not start");
                return;
            }
        };
        if self.last_block_timestamp > 0 {
            sm.observe_block(self.last_block_timestamp, now);
        }
        self.writes.push(Write::Channel(Box::new(ChannelRecord {
            spec,
            me: self.me,
            machine: p.machine,
            status: ChannelStatus::Open,
        })));
        info!(target: TARGET, channel = %channel_id, genesis_timestamp, "channel live");
        self.live.insert(
            channel_id,
            Live {
                sm,
                handler: DisputeHandler::new(self.me),
                events: p.events,
            },
        );
        self.emit(channel_id, ChannelEvent::Live { genesis_timestamp });
    }

    /// The channel settled: withdraw our exit and anything the hooks credited us.
    fn settle(&mut self, channel_id: B256, exits: Vec<(Address, entente_types::U256)>) {
        let Some(live) = self.live.remove(&channel_id) else {
            return;
        };
        let onchain: Vec<IStateChannelManager::Exit> = exits
            .iter()
            .map(|(participant, amount)| IStateChannelManager::Exit {
                participant: *participant,
                amount: *amount,
            })
            .collect();
        if let Some(index) = exits.iter().position(|(p, a)| *p == self.me && !a.is_zero()) {
            self.queue(Job::Withdraw {
                channel_id,
                exits: onchain,
                index,
            });
        }
        self.queue(Job::WithdrawPending {
            channel_id,
            token: Address::ZERO,
        });
        self.writes.push(Write::Status(channel_id, ChannelStatus::Closed));
        let participants = live.sm.fork().participants.clone();
        self.closed.insert(
            channel_id,
            Closed {
                participants,
                exits,
                events: live.events,
            },
        );
        info!(target: TARGET, channel = %channel_id, "channel settled");
    }

    fn on_done(&mut self, report: Done) {
        let Done {
            channel_id,
            what,
            outcome,
            withdrawn,
            action,
        } = report;
        let now = self.now_ms();
        if let Some((action, call_outcome)) = action
            && let Some(live) = self.live.get_mut(&channel_id)
        {
            live.handler
                .on_call_outcome(&mut live.sm, &action, &call_outcome, now);
        }
        if let Some(amount) = withdrawn
            && !amount.is_zero()
        {
            self.emit(channel_id, ChannelEvent::Withdrawn { amount });
        }
        if what == "open"
            && outcome.is_err()
            && let Some(p) = self.pending.get_mut(&channel_id)
        {
            p.cancelled = true;
        }
        self.emit(channel_id, ChannelEvent::ChainCall { what, outcome });
    }

    // ----- effects ------------------------------------------------------------------------

    /// Carries out the cores' effects: one durable commit of everything to store, then the
    /// messages, then the observers. If the commit fails nothing of this turn is sent.
    fn flush(&mut self) {
        let mut outbox: Vec<(B256, Option<Address>, Message)> = Vec::new();
        let mut notes = Vec::new();
        let mut batch = self.store.batch();
        for write in self.writes.drain(..) {
            match write {
                Write::Channel(record) => {
                    batch.put_channel(*record);
                }
                Write::Fork(id, fork, state) => {
                    batch.put_fork(id, fork, state);
                }
                Write::Status(id, status) => {
                    batch.set_status(id, status);
                }
                Write::Cursor(cursor) => {
                    batch.put_cursor(self.chain_id, self.manager, cursor);
                }
            }
        }
        for (id, live) in &mut self.live {
            while let Some(effect) = live.sm.poll_effect() {
                match effect {
                    Effect::Persist(record) => {
                        if let PersistRecord::OwnSignature { fork, height, .. } = &record {
                            debug!(target: TARGET, channel = %id, fork, height, "signing");
                        }
                        batch.persist(*id, record);
                    }
                    Effect::Broadcast(message) => outbox.push((*id, None, message)),
                    Effect::Send { to, message } => outbox.push((*id, Some(to), message)),
                    Effect::Notify(event) => notes.push((*id, event)),
                }
            }
        }
        if !batch.is_empty()
            && let Err(e) = batch.commit()
        {
            tracing::error!(target: TARGET, error = %e, dropped = outbox.len(), "store commit failed: nothing of this turn is sent");
            return;
        }
        for (id, to, message) in outbox {
            self.send(id, to, message);
        }
        for (id, event) in notes {
            self.emit(id, ChannelEvent::Protocol(event));
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
