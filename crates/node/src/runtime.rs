//! The node's event loop: one task that owns every channel's cores and the store, fed by the
//! application's commands, the network, the chain and its timers.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use entente_chain::{ChainClient, ListenerConfig, ListenerEvent};
use entente_channel::{
    Channel as ChannelCore, ChannelError, Effect, Invitations, Phase, ProposalPolicy, decline_message,
};
use entente_dispute::ChainEvent;
use entente_evm_runtime::MachineCode;
use entente_p2p::{P2pConfig, P2pManager};
use entente_state_manager::PersistRecord;
use entente_store::{ChainCursor, MachineSource, OpenMode, Store};
use entente_types::{
    Address, B256, ChannelProposal, Envelope, LocalSigner, MembershipChange, Message, Signer,
};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, trace, warn};

use crate::parts::{Chain, Inbound, RpcChain, Transport};
use crate::worker::{self, Done, Job};
use crate::{ChannelEvent, Command, Node, NodeConfig, NodeError, NodeEvent};

const TARGET: &str = "entente::node";
/// How often expired invitations are dropped (each channel asks for its own ticks: its core's
/// `poll_timeout`).
const TICK: Duration = Duration::from_millis(500);
/// Most network messages, and apart from them most commands, handled before one durable commit.
const GROUP_LIMIT: usize = 64;
/// Buffered events per channel subscriber.
const EVENT_CAPACITY: usize = 1024;

pub(crate) async fn start(config: NodeConfig, parts: crate::NodeParts) -> Result<Node, NodeError> {
    let key_signer = LocalSigner::from_bytes(&config.secret_key)
        .map_err(|e| NodeError::Config(format!("secret key: {e}")))?;
    let me = key_signer.address();
    let signer: NodeSigner = match parts.signer {
        Some(signer) if signer.address() != me => {
            return Err(NodeError::Config(format!(
                "the signer signs for {}, the node's key is {me}",
                signer.address()
            )));
        }
        Some(signer) => signer,
        None => Arc::new(key_signer),
    };
    let store = match parts.store {
        Some(store) => store,
        None => {
            let mode = if config.create_data_dir {
                OpenMode::OpenOrCreate
            } else {
                OpenMode::Open
            };
            Store::open_with(&config.data_dir, mode)?
        }
    };
    let chain: Arc<dyn Chain> = match parts.chain {
        Some(chain) => chain,
        None => {
            let key = PrivateKeySigner::from_bytes(&config.secret_key)
                .map_err(|e| NodeError::Config(format!("secret key: {e}")))?;
            let listener = ListenerConfig {
                poll_interval: config.poll_interval(),
                confirmations: config.confirmations,
                ..ListenerConfig::default()
            };
            let client = ChainClient::connect(&config.rpc_url, key).await?;
            Arc::new(RpcChain::new(client, config.manager, listener))
        }
    };
    if chain.account() != me {
        return Err(NodeError::Config(format!(
            "the chain sends from {}, the node's key is {me}",
            chain.account()
        )));
    }
    let chain_id = chain.chain_id();
    let manager = chain.manager();

    let peer_id = entente_p2p::peer_id_of_secret(&config.secret_key)?;
    let (transport, inbound) = match parts.transport {
        Some(parts) => (parts.transport, parts.inbound),
        None => {
            let mut p2p_config = P2pConfig::new(config.secret_key);
            p2p_config.listen_addrs = config.listen.clone();
            p2p_config.bootstrap_addrs = config.bootstrap.clone();
            p2p_config.relay_addrs = config.relays.clone();
            p2p_config.public = config.public;
            let (p2p, p2p_events) = P2pManager::spawn(p2p_config)?;
            let transport: Arc<dyn Transport> = Arc::new(p2p);
            (transport, crate::parts::p2p_inbound(p2p_events))
        }
    };

    let cursor = store.cursor(chain_id, &manager)?;
    let from_block = match &cursor {
        Some(c) => c.block_number.saturating_add(1),
        None => chain.block_number().await?,
    };
    let chain_events = chain.follow(from_block)?;

    let (commands_tx, commands) = mpsc::channel(256);
    let (events, _) = broadcast::channel(EVENT_CAPACITY);
    let (jobs_tx, jobs) = mpsc::channel(256);
    let (done_tx, done) = mpsc::channel(256);
    worker::spawn(chain.clone(), jobs, done_tx);

    let event_log_keep = config.event_log_keep;
    let loop_transport = transport.clone();
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
                    transport: loop_transport,
                    jobs: jobs_tx,
                    events: loop_events,
                    started: Instant::now(),
                    channels: HashMap::new(),
                    dirty: HashSet::new(),
                    reads: Vec::new(),
                    timers: BTreeSet::new(),
                    machines: HashMap::new(),
                    invitations: Invitations::new(ProposalPolicy::default()),
                    cursor: None,
                    last_block_timestamp,
                    event_log_keep,
                };
                if let Err(e) = runtime.restore().await {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
                if !runtime.flush() {
                    let _ = ready_tx.send(Err(NodeError::Config(
                        "the data directory cannot be written".into(),
                    )));
                    return;
                }
                let _ = ready_tx.send(Ok(()));
                runtime.run(commands, inbound, chain_events, done).await;
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
        transport,
        chain,
    })
}

/// The signer of the node's channel signatures.
pub(crate) type NodeSigner = Arc<dyn Signer + Send + Sync>;

/// One channel of this node: its core and what the IO around it needs.
struct Hosted {
    core: ChannelCore<NodeSigner>,
    /// Shared by every channel that runs the same machine.
    machine: Arc<MachineSource>,
    /// The next sequence number of the channel's event log.
    next_event: u64,
    /// How many events the log holds, for subscribers.
    logged: watch::Sender<u64>,
    /// The core's `poll_timeout` as entered in [`Runtime::timers`].
    wake: Option<u64>,
}

struct Runtime {
    me: Address,
    signer: NodeSigner,
    chain_id: u64,
    manager: Address,
    store: Store,
    transport: Arc<dyn Transport>,
    jobs: mpsc::Sender<Job>,
    events: broadcast::Sender<NodeEvent>,
    started: Instant,
    channels: HashMap<B256, Hosted>,
    /// Channels an input reached since the last flush: only their effects are collected and
    /// their timers looked at again (a node may hold many quiet channels).
    dirty: HashSet<B256>,
    /// Read-only commands that arrived behind other inputs of a turn: answered once the turn
    /// is stored, so that no answer shows what a failed commit or a crash could still undo.
    reads: Vec<Command>,
    /// Every channel's next timeout (local ms), earliest first.
    timers: BTreeSet<(u64, B256)>,
    /// Every machine loaded, by [`MachineSource::digest`].
    machines: HashMap<B256, (Arc<MachineSource>, MachineCode)>,
    /// Proposals received and not answered yet.
    invitations: Invitations,
    /// The chain cursor to store with the next commit.
    cursor: Option<ChainCursor>,
    last_block_timestamp: u64,
    /// Events kept in each channel's log.
    event_log_keep: u64,
}

/// What a turn sends, in order.
enum Out {
    /// A message of a channel, to one peer or to all.
    Message(B256, Option<Address>, Box<Message>),
    /// A channel's peers from now on.
    Peers(B256, Vec<Address>),
}

impl Runtime {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Restores every channel of the data directory from what its core stored.
    async fn restore(&mut self) -> Result<(), NodeError> {
        let now = self.now_ms();
        for stored in self.store.stored_channels()? {
            let channel_id = stored.channel_id;
            if let Some(owner) = stored.me
                && owner != self.me
            {
                return Err(NodeError::Config(format!(
                    "the data directory belongs to {owner}, not to this key ({})",
                    self.me
                )));
            }
            let machine = stored
                .machine
                .ok_or_else(|| NodeError::Config(format!("channel {channel_id} has no stored machine")))?;
            let (machine, code) = self.load(machine)?;
            let core = ChannelCore::restore(
                self.signer.clone(),
                code,
                stored.persisted,
                self.last_block_timestamp,
                now,
            )
            .map_err(|e| NodeError::Config(format!("channel {channel_id} does not restore: {e}")))?;
            info!(target: TARGET, channel = %channel_id, phase = ?core.phase(), "channel restored");
            let next_event = self.store.event_count(&channel_id)?;
            self.host(core, machine, next_event);
        }
        Ok(())
    }

    /// The machine's source and code, loaded once for every channel that runs it.
    fn load(
        &mut self,
        machine: impl Into<Arc<MachineSource>>,
    ) -> Result<(Arc<MachineSource>, MachineCode), NodeError> {
        let machine = machine.into();
        let digest = machine.digest();
        if let Some((source, code)) = self.machines.get(&digest) {
            return Ok((source.clone(), code.clone()));
        }
        let code = machine.load()?;
        self.machines.insert(digest, (machine.clone(), code.clone()));
        Ok((machine, code))
    }

    fn host(&mut self, core: ChannelCore<NodeSigner>, machine: Arc<MachineSource>, next_event: u64) {
        let (logged, _) = watch::channel(next_event);
        let id = core.id();
        self.channels.insert(
            id,
            Hosted {
                core,
                machine,
                next_event,
                logged,
                wake: None,
            },
        );
        self.dirty.insert(id);
    }

    /// The channel an input is about to reach (its effects and timer are looked at in the
    /// next flush).
    fn touch(&mut self, channel_id: B256) -> Option<&mut Hosted> {
        let hosted = self.channels.get_mut(&channel_id)?;
        self.dirty.insert(channel_id);
        Some(hosted)
    }

    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut inbound: mpsc::Receiver<Inbound>,
        mut chain_events: mpsc::Receiver<ListenerEvent>,
        mut done: mpsc::Receiver<Done>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let wake = self.next_core_timeout();
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => {
                        self.on_command(command).await;
                        self.take_ready(&mut commands, &mut inbound).await;
                    }
                    None => break,
                },
                Some(message) = inbound.recv() => {
                    self.on_message(message);
                    self.take_ready(&mut commands, &mut inbound).await;
                }
                Some(event) = chain_events.recv() => self.on_chain(event),
                Some(report) = done.recv() => self.on_done(report),
                _ = tick.tick() => self.invitations.expire(self.last_block_timestamp),
                _ = sleep_until(wake) => self.on_due(),
            }
            if !self.flush() {
                break;
            }
            let reads = std::mem::take(&mut self.reads);
            if !reads.is_empty() {
                for command in reads {
                    self.on_command(command).await;
                }
                if !self.flush() {
                    break;
                }
            }
        }
        info!(target: TARGET, me = %self.me, "node stopped");
    }

    /// Group commit: handles the messages and commands that are already waiting (up to
    /// [`GROUP_LIMIT`] of each) before the turn's one durable commit, so that moves submitted
    /// and messages received together share one sync and leave together. A read-only command
    /// (info, view, events, ...) is put aside until the turn is stored, and ends the turn's
    /// commands: its answer may only show what is durable, and the caller's later commands come
    /// after it.
    async fn take_ready(
        &mut self,
        commands: &mut mpsc::Receiver<Command>,
        inbound: &mut mpsc::Receiver<Inbound>,
    ) {
        let (mut messages, mut taken) = (0, 0);
        loop {
            let mut progressed = false;
            if messages < GROUP_LIMIT
                && let Ok(message) = inbound.try_recv()
            {
                self.on_message(message);
                messages += 1;
                progressed = true;
            }
            if taken < GROUP_LIMIT
                && self.reads.is_empty()
                && let Ok(command) = commands.try_recv()
            {
                if command.is_read() {
                    self.reads.push(command);
                } else {
                    self.on_command(command).await;
                }
                taken += 1;
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
    }

    fn next_core_timeout(&self) -> Option<Instant> {
        let (due, _) = self.timers.first()?;
        Some(self.started + Duration::from_millis(*due))
    }

    /// Enters the channel's next timeout in [`Self::timers`].
    fn reschedule(&mut self, id: B256) {
        let Some(hosted) = self.channels.get_mut(&id) else {
            return;
        };
        let wake = hosted.core.poll_timeout();
        if wake != hosted.wake {
            if let Some(old) = hosted.wake {
                self.timers.remove(&(old, id));
            }
            if let Some(new) = wake {
                self.timers.insert((new, id));
            }
            hosted.wake = wake;
        }
    }

    /// Ticks the channels whose timeout is due.
    fn on_due(&mut self) {
        let now = self.now_ms();
        while let Some(&(due, id)) = self.timers.first()
            && due <= now
        {
            self.timers.pop_first();
            if let Some(hosted) = self.channels.get_mut(&id) {
                hosted.wake = None;
                hosted.core.handle_timeout(now);
                self.dirty.insert(id);
            }
        }
    }

    /// Ticks every channel (the signer is back: what it could not sign is asked again).
    fn tick_all(&mut self) {
        let now = self.now_ms();
        for (id, hosted) in &mut self.channels {
            hosted.core.handle_timeout(now);
            self.dirty.insert(*id);
        }
    }

    /// The node's error for a core's refusal in channel `channel_id`.
    fn refused(channel_id: B256, e: ChannelError) -> NodeError {
        match e {
            ChannelError::WrongPhase { phase, .. } if phase.is_over() => NodeError::ChannelClosed(channel_id),
            ChannelError::WrongPhase { .. } => NodeError::NotLive(channel_id),
            ChannelError::Submit(e) => NodeError::Move(e),
            ChannelError::Machine(e) => NodeError::Machine(e),
            ChannelError::NothingToProve => NodeError::NotLive(channel_id),
            other => NodeError::Refused(other),
        }
    }

    fn core(&mut self, channel_id: B256) -> Result<&mut ChannelCore<NodeSigner>, NodeError> {
        self.touch(channel_id)
            .map(|h| &mut h.core)
            .ok_or(NodeError::UnknownChannel(channel_id))
    }

    // ----- commands -----------------------------------------------------------------------

    async fn on_command(&mut self, command: Command) {
        let now = self.now_ms();
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
                deployed,
                reply,
            } => {
                let result = self.accept(channel_id, machine, &deployed).await;
                let _ = reply.send(result);
            }
            Command::Decline {
                channel_id,
                reason,
                reply,
            } => {
                let result = match self.invitations.take(&channel_id) {
                    Some((from, _)) => {
                        self.decline(channel_id, from, reason);
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
                trace!(target: TARGET, channel = %channel_id, "submit");
                let result = self
                    .core(channel_id)
                    .and_then(|c| c.submit(data, now).map_err(|e| Self::refused(channel_id, e)));
                let _ = reply.send(result);
            }
            Command::View {
                channel_id,
                data,
                reply,
            } => {
                let result = self
                    .core(channel_id)
                    .and_then(|c| c.view(data).map_err(|e| Self::refused(channel_id, e)));
                let _ = reply.send(result);
            }
            Command::Info { channel_id, reply } => {
                let result = match self.channels.get(&channel_id) {
                    Some(h) => Ok(h.core.info()),
                    None => Err(NodeError::UnknownChannel(channel_id)),
                };
                let _ = reply.send(result);
            }
            Command::Events {
                channel_id,
                from,
                max,
                reply,
            } => {
                let result = match self.channels.get(&channel_id) {
                    Some(h) => self
                        .read_events(channel_id, from, max)
                        .map(|events| (events, h.logged.subscribe())),
                    None => Err(NodeError::UnknownChannel(channel_id)),
                };
                let _ = reply.send(result);
            }
            Command::Exit { channel_id, reply } => {
                let result = self
                    .core(channel_id)
                    .and_then(|c| c.exit(now).map_err(|e| Self::refused(channel_id, e)));
                let _ = reply.send(result);
            }
            Command::Inject {
                channel_id,
                transaction,
                reply,
            } => {
                let result = self.core(channel_id).and_then(|c| {
                    c.inject(*transaction, now)
                        .map_err(|e| Self::refused(channel_id, e))
                });
                let _ = reply.send(result);
            }
            Command::AllowJoin {
                channel_id,
                joiner,
                reply,
            } => {
                let result = self.core(channel_id).and_then(|c| {
                    c.allow_join(joiner, now)
                        .map_err(|e| Self::refused(channel_id, e))
                });
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
                let result = self.propose_change(channel_id, change);
                let _ = reply.send(result);
            }
            Command::Leave { channel_id, reply } => {
                let change = MembershipChange::Leave { participant: self.me };
                let result = self.propose_change(channel_id, change);
                let _ = reply.send(result);
            }
            Command::ExpectJoin {
                terms,
                machine,
                reply,
            } => {
                let channel_id = terms.channel_id;
                let result = if self.channels.contains_key(&channel_id) {
                    Err(NodeError::BadProposal(format!("already in channel {channel_id}")))
                } else {
                    match self.load(machine) {
                        Ok((machine, code)) => {
                            let core = ChannelCore::expect_join(
                                self.signer.clone(),
                                *terms,
                                code,
                                self.last_block_timestamp,
                            );
                            self.host(core, machine, 0);
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                };
                let _ = reply.send(result);
            }
            Command::Invitations { reply } => {
                let _ = reply.send(Ok(self.invitations.list()));
            }
            Command::SignerReady => self.tick_all(),
            Command::Channels { reply } => {
                let mut ids: Vec<B256> = self
                    .channels
                    .iter()
                    .filter(|(_, h)| h.core.phase() != Phase::Joining)
                    .map(|(id, _)| *id)
                    .collect();
                ids.sort();
                let _ = reply.send(Ok(ids));
            }
        }
    }

    /// Up to `max` events of `channel_id`'s log from `from` on.
    fn read_events(
        &self,
        channel_id: B256,
        from: u64,
        max: usize,
    ) -> Result<Vec<(u64, ChannelEvent)>, NodeError> {
        self.store
            .events(&channel_id, from, max)?
            .into_iter()
            .map(|(seq, bytes)| {
                ChannelEvent::decode(&bytes)
                    .map(|event| (seq, event))
                    .map_err(|reason| {
                        NodeError::Store(entente_store::StoreError::Corrupt {
                            path: self.store.path().to_path_buf(),
                            reason: format!("event {seq} of channel {channel_id}: {reason}"),
                        })
                    })
            })
            .collect()
    }

    fn propose_change(&mut self, channel_id: B256, change: MembershipChange) -> Result<(), NodeError> {
        let now = self.now_ms();
        let core = self.core(channel_id)?;
        core.propose_change(change, now)
            .map_err(|e| Self::refused(channel_id, e))?;
        Ok(())
    }

    async fn propose(&mut self, proposal: ChannelProposal, machine: MachineSource) -> Result<(), NodeError> {
        let (machine, code) = self.load(machine)?;
        entente_channel::check_own_proposal(
            self.invitations.policy(),
            &proposal,
            self.me,
            self.chain_id,
            self.manager,
            &code,
        )
        .map_err(|e| match e {
            entente_channel::ProposalRefusal::NotAParticipant(a) => NodeError::NotAParticipant(a),
            entente_channel::ProposalRefusal::NotFromProposer { .. } => NodeError::BadProposal(
                "the proposer must be the first participant (it opens the channel)".into(),
            ),
            e => NodeError::BadProposal(e.to_string()),
        })?;
        let channel_id = proposal.channel_id;
        if self.channels.contains_key(&channel_id) {
            return Err(NodeError::BadProposal(format!(
                "channel {channel_id} exists already"
            )));
        }
        let core = ChannelCore::propose(self.signer.clone(), proposal, code, self.last_block_timestamp);
        self.host(core, machine, 0);
        Ok(())
    }

    async fn accept(
        &mut self,
        channel_id: B256,
        machine: MachineSource,
        deployed: &[u8],
    ) -> Result<(), NodeError> {
        let (machine, code) = self.load(machine)?;
        let (from, proposal) =
            self.invitations
                .accept(&channel_id, &code, deployed)
                .map_err(|e| match e {
                    entente_channel::ProposalRefusal::NoSuchInvitation(id) => NodeError::UnknownChannel(id),
                    e => NodeError::BadProposal(e.to_string()),
                })?;
        let core = ChannelCore::accept(
            self.signer.clone(),
            from,
            proposal,
            code,
            self.last_block_timestamp,
        );
        self.host(core, machine, 0);
        Ok(())
    }

    /// Declines a proposal: answered through a short-lived join of its channel.
    fn decline(&self, channel_id: B256, to: Address, reason: String) {
        let message = decline_message(channel_id, reason);
        let transport = self.transport.clone();
        let me = self.me;
        tokio::spawn(async move {
            if let Err(e) = transport.set_peers(channel_id, vec![me, to]).await {
                warn!(target: TARGET, error = %e, "cannot decline");
                return;
            }
            let _ = transport.send(channel_id, to, Envelope::new(message)).await;
            let _ = transport.set_peers(channel_id, Vec::new()).await;
        });
    }

    // ----- network ------------------------------------------------------------------------

    fn send(&self, channel_id: B256, to: Option<Address>, message: Message) {
        tokio::spawn(send_message(self.transport.clone(), channel_id, to, message));
    }

    /// Carries out a turn's messages in order. When a channel's peers change in the turn, the
    /// transport has them before any later message is handed to it.
    fn send_all(&self, outbox: Vec<Out>) {
        if !outbox.iter().any(|o| matches!(o, Out::Peers(..))) {
            for out in outbox {
                if let Out::Message(id, to, message) = out {
                    self.send(id, to, *message);
                }
            }
            return;
        }
        let transport = self.transport.clone();
        tokio::spawn(async move {
            for out in outbox {
                match out {
                    Out::Message(id, to, message) => {
                        tokio::spawn(send_message(transport.clone(), id, to, *message));
                    }
                    Out::Peers(id, peers) => {
                        if let Err(e) = transport.set_peers(id, peers).await {
                            warn!(target: TARGET, channel = %id, error = %e, "cannot update the channel's peers");
                        }
                    }
                }
            }
        });
    }
}

/// Sends one message of `channel_id` (to one peer, or to every other participant).
async fn send_message(
    transport: Arc<dyn Transport>,
    channel_id: B256,
    to: Option<Address>,
    message: Message,
) {
    let envelope = Envelope::new(message);
    let result = match to {
        Some(to) => transport.send(channel_id, to, envelope).await,
        None => transport.broadcast(channel_id, envelope).await,
    };
    if let Err(e) = result {
        debug!(target: TARGET, channel = %channel_id, error = %e, "not sent");
    }
}

impl Runtime {
    fn on_message(&mut self, message: Inbound) {
        let Inbound {
            from,
            channel_id,
            envelope,
        } = message;
        let now = self.now_ms();
        trace!(target: TARGET, channel = %channel_id, %from, "message in");
        if let Some(hosted) = self.touch(channel_id) {
            hosted.core.handle_message(from, envelope.message, now);
            return;
        }
        let Message::Proposal(proposal) = envelope.message else {
            debug!(target: TARGET, channel = %channel_id, %from, "message for an unknown channel");
            return;
        };
        let offered = self.invitations.receive(
            from,
            (*proposal).clone(),
            self.me,
            self.chain_id,
            self.manager,
            self.last_block_timestamp,
        );
        match offered {
            Ok(true) => {
                let _ = self.events.send(NodeEvent::Proposal { from, proposal });
            }
            Ok(false) => {}
            Err(e) => debug!(target: TARGET, %from, error = %e, "proposal refused"),
        }
    }

    // ----- chain --------------------------------------------------------------------------

    fn on_chain(&mut self, event: ListenerEvent) {
        let now = self.now_ms();
        match event {
            ListenerEvent::Block { number, timestamp } => {
                self.last_block_timestamp = timestamp;
                for (id, hosted) in &mut self.channels {
                    hosted
                        .core
                        .handle_chain_event(ChainEvent::Block { timestamp }, now);
                    self.dirty.insert(*id);
                }
                self.cursor = Some(ChainCursor {
                    block_number: number,
                    block_hash: B256::ZERO,
                    block_timestamp: timestamp,
                });
            }
            ListenerEvent::Channel {
                channel_id, event, ..
            } => {
                if let Some(hosted) = self.touch(channel_id) {
                    hosted.core.handle_chain_event(event, now);
                }
            }
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

    fn on_done(&mut self, report: Done) {
        let now = self.now_ms();
        if let Some(hosted) = self.touch(report.channel_id) {
            hosted
                .core
                .handle_call_outcome(&report.call, report.outcome, report.gas_used, now);
        }
    }

    // ----- effects ------------------------------------------------------------------------

    /// Carries out the cores' effects: one durable commit of everything to store, then the
    /// messages, the chain calls and the observers. If the commit fails nothing of this turn
    /// leaves.
    fn flush(&mut self) -> bool {
        let mut outbox: Vec<Out> = Vec::new();
        let mut calls = Vec::new();
        let mut notes = Vec::new();
        let mut batch = self.store.batch();
        if let Some(cursor) = self.cursor.take() {
            batch.put_cursor(self.chain_id, self.manager, cursor);
        }
        let dirty: Vec<B256> = self.dirty.drain().collect();
        for id in &dirty {
            let Some(hosted) = self.channels.get_mut(id) else {
                continue;
            };
            while let Some(effect) = hosted.core.poll_effect() {
                match effect {
                    Effect::Persist(record) => {
                        if let entente_channel::Record::Protocol(PersistRecord::OwnSignature {
                            fork,
                            height,
                            ..
                        }) = &record
                        {
                            debug!(target: TARGET, channel = %id, fork, height, "signing");
                        }
                        batch.record(*id, self.me, &hosted.machine, record);
                    }
                    Effect::Broadcast(message) => outbox.push(Out::Message(*id, None, Box::new(message))),
                    Effect::Send { to, message } => {
                        outbox.push(Out::Message(*id, Some(to), Box::new(message)))
                    }
                    Effect::Peers(peers) => outbox.push(Out::Peers(*id, peers)),
                    Effect::Call(call) => calls.push((*id, call)),
                    Effect::Notify(event) => {
                        // Logged with the turn's commit: a subscriber reads every event, however
                        // slow it is, and resumes from its cursor after a restart. Of the
                        // refused messages (which peers choose) only those that prove misbehaviour
                        // are logged (they also count against the sender's connection); the others
                        // go to the live feed only.
                        if event.is_durable() {
                            batch.put_event(*id, hosted.next_event, event.encode().into());
                            hosted.next_event += 1;
                            // The oldest events go, a thousand at a time, once the log is full.
                            let keep = self.event_log_keep.max(1);
                            if hosted.next_event > keep && hosted.next_event % 1_000 == 0 {
                                batch.prune_events(*id, hosted.next_event - keep);
                            }
                        }
                        notes.push((*id, event));
                    }
                }
            }
        }
        let records = batch.len();
        if !batch.is_empty()
            && let Err(e) = batch.commit()
        {
            // The cores believe these records stored: carrying on could sign or send on top of
            // what is not durable. Stop, as a crash would; a restart carries on from the store.
            tracing::error!(target: TARGET, error = %e, dropped = outbox.len(), "store commit failed: nothing of this turn leaves and the node stops; restart it once the data directory works");
            return false;
        }
        trace!(target: TARGET, records, messages = outbox.len(), "turn stored");
        self.send_all(outbox);
        for (channel_id, call) in calls {
            if let Err(e) = self.jobs.try_send(Job { channel_id, call }) {
                // The core hears that the call was not sent and decides again.
                let job = match e {
                    mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job) => job,
                };
                warn!(target: TARGET, channel = %channel_id, "chain worker queue full: call not sent");
                let now = self.now_ms();
                if let Some(hosted) = self.touch(channel_id) {
                    hosted.core.handle_call_outcome(
                        &job.call,
                        entente_channel::CallOutcome::NotSent("the chain worker's queue is full".into()),
                        0,
                        now,
                    );
                }
            }
        }
        for id in &dirty {
            let Some(hosted) = self.channels.get_mut(id) else {
                continue;
            };
            hosted.logged.send_if_modified(|logged| {
                let changed = *logged != hosted.next_event;
                *logged = hosted.next_event;
                changed
            });
        }
        // Their next timeouts, after what this turn did to them (and to those a refused call
        // reached above: their effects go with the next turn).
        let again: Vec<B256> = self.dirty.iter().copied().collect();
        for id in dirty.iter().chain(&again) {
            self.reschedule(*id);
        }
        for (id, event) in notes {
            // A message that proves its sender misbehaves counts against its connection.
            if let Some(from) = event.misbehaving_peer() {
                let transport = self.transport.clone();
                tokio::spawn(async move {
                    transport.report_misbehaviour(from).await;
                });
            }
            let _ = self.events.send(NodeEvent::Channel {
                channel_id: id,
                event: Box::new(event),
            });
        }
        true
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
