//! The node's event loop: one task that owns every channel's cores and the store, fed by the
//! application's commands, the network, the chain and its timers.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use entente_chain::{ChainClient, ListenerConfig, ListenerEvent};
use entente_channel::{
    Channel as ChannelCore, ChannelError, Effect, Invitations, Phase, ProposalPolicy, decline_message,
};
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

use crate::outbound::{Out, Outbound};
use crate::parts::{Chain, Inbound, InboundQueue, RpcChain, Transport};
use crate::prerecover::Prerecovered;
use crate::sync::{Report, Syncer};
use crate::worker::{self, Done, Job};
use crate::{ChannelEvent, Command, Node, NodeConfig, NodeError, NodeEvent};

const TARGET: &str = "entente::node";
/// How often expired invitations are dropped (each channel asks for its own ticks: its core's
/// `poll_timeout`).
const TICK: Duration = Duration::from_millis(500);
/// Most network messages, and apart from them most commands, handled in one turn (one write).
const GROUP_LIMIT: usize = 64;
/// How long after its last write the node lets the database take the journal's writes (a
/// redb write transaction: far more CPU than the journal's append, so not in a turn).
const APPLY_AFTER: Duration = Duration::from_millis(20);
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
    // With the libp2p transport, the signers of what peers send are recovered on its task, as
    // messages arrive, and the cores take the results (`prerecover`).
    let mut recover = None;
    let (transport, inbound) = match parts.transport {
        Some(parts) => (parts.transport, InboundQueue::Plain(parts.inbound)),
        None => {
            let prerecovered = Prerecovered::new(entente_types::Domain::new(chain_id, manager));
            recover = Some(prerecovered.recover());
            let mut p2p_config = P2pConfig::new(config.secret_key);
            p2p_config.inbound_hook = Some(prerecovered.hook());
            p2p_config.listen_addrs = config.listen.clone();
            p2p_config.bootstrap_addrs = config.bootstrap.clone();
            p2p_config.relay_addrs = config.relays.clone();
            p2p_config.public = config.public;
            let (p2p, p2p_events) = P2pManager::spawn(p2p_config)?;
            let transport: Arc<dyn Transport> = Arc::new(p2p);
            (transport, InboundQueue::P2p(p2p_events))
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

    // A store with a journal (on disk) syncs it on a thread of its own; in memory or on an
    // embedder's backend every batch is durable when written.
    let syncer = match store.journal_sync() {
        Some(journal) => Some(
            Syncer::spawn(journal, format!("entente-sync-{me}"))
                .map_err(|e| NodeError::Config(format!("cannot start the journal's sync thread: {e}")))?,
        ),
        None => None,
    };
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
                    outbound: Outbound::new(loop_transport.clone()),
                    transport: loop_transport,
                    jobs: jobs_tx,
                    events: loop_events,
                    started: Instant::now(),
                    channels: HashMap::new(),
                    dirty: HashSet::new(),
                    reads: Vec::new(),
                    syncer,
                    parked: VecDeque::new(),
                    unwritten: None,
                    in_flight: None,
                    apply_at: None,
                    idle: false,
                    timers: BTreeSet::new(),
                    machines: HashMap::new(),
                    invitations: Invitations::new(ProposalPolicy::default()),
                    cursor: None,
                    last_block_timestamp,
                    event_log_keep,
                    recover,
                };
                if let Err(e) = runtime.restore().await {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
                if !runtime.flush() || !runtime.settle().await {
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
    /// The channel's info as of its last durable turn, for those who wait on it (computed only
    /// while someone does).
    info: watch::Sender<entente_channel::ChannelInfo>,
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
    /// The turns' messages and changes of peers, in order.
    outbound: Outbound,
    jobs: mpsc::Sender<Job>,
    events: broadcast::Sender<NodeEvent>,
    started: Instant,
    channels: HashMap<B256, Hosted>,
    /// Channels an input reached since the last flush: only their effects are collected and
    /// their timers looked at again (a node may hold many quiet channels).
    dirty: HashSet<B256>,
    /// Read-only commands waiting for every turn so far to be durable (those that arrived
    /// behind other inputs of a turn, or while turns were parked): no answer shows what a
    /// failed write or a crash could still undo. No other input is taken while one waits.
    reads: Vec<Command>,
    /// The journal's sync thread (`None`: the store makes every batch durable when written).
    syncer: Option<Syncer>,
    /// Turns not durable yet (written to the store, or gathered for the next write), oldest
    /// first: what each releases.
    parked: VecDeque<Parked>,
    /// The writes of the turns gathered since the last write.
    unwritten: Option<entente_store::Detached>,
    /// The journal frame the sync thread is making durable.
    in_flight: Option<u64>,
    /// When the database takes the journal's writes, [`APPLY_AFTER`] after the last write.
    apply_at: Option<Instant>,
    /// No command or message was waiting when the turn ended: [`Self::flush`] syncs on the
    /// loop's thread.
    idle: bool,
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
    /// How the cores recover signers (`None`: themselves, on the loop).
    recover: Option<entente_state_manager::Recover>,
}

/// [`Parked::frame`] of a turn gathered for the next write.
const UNWRITTEN: u64 = u64::MAX;

/// A turn waiting for its journal frame to be durable: what it then releases, in this order.
struct Parked {
    /// The journal frame that holds its writes ([`UNWRITTEN`]: not written yet).
    frame: u64,
    outbox: Vec<Out>,
    calls: Vec<(B256, entente_channel::ChainCall)>,
    /// Each channel's event log length after the turn, and its info if someone waits on it.
    logged: Vec<(B256, u64, Option<entente_channel::ChannelInfo>)>,
    notes: Vec<(B256, ChannelEvent)>,
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

    fn host(&mut self, mut core: ChannelCore<NodeSigner>, machine: Arc<MachineSource>, next_event: u64) {
        if let Some(recover) = &self.recover {
            core.set_recover(recover.clone());
        }
        let (logged, _) = watch::channel(next_event);
        let (info, _) = watch::channel(core.info());
        let id = core.id();
        self.channels.insert(
            id,
            Hosted {
                core,
                machine,
                next_event,
                logged,
                info,
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
        mut inbound: InboundQueue,
        mut chain_events: mpsc::Receiver<ListenerEvent>,
        mut done: mpsc::Receiver<Done>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let wake = self.next_core_timeout();
            // While a read waits for the turns before it to be durable, only the sync's reports
            // are taken (the turns after it would keep it waiting).
            let open = self.reads.is_empty();
            // Everything the cores did so far is stored and durable: a read may be answered.
            let settled = self.parked.is_empty() && self.dirty.is_empty();
            // Inputs handled in this turn.
            let mut taken = 1;
            tokio::select! {
                command = commands.recv(), if open => match command {
                    Some(command) if command.is_read() && !settled => self.reads.push(command),
                    Some(command) => {
                        self.on_command(command).await;
                        taken += self.take_ready(&mut commands, &mut inbound).await;
                    }
                    None => break,
                },
                Some(message) = inbound.recv(), if open => {
                    self.on_message(message);
                    taken += self.take_ready(&mut commands, &mut inbound).await;
                }
                Some(event) = chain_events.recv(), if open => self.on_chain(event),
                Some(report) = done.recv(), if open => self.on_done(report),
                _ = tick.tick(), if open => self.invitations.expire(self.last_block_timestamp),
                _ = sleep_until(wake), if open => self.on_due(),
                // Nothing was written for a while: the database takes the journal's writes now,
                // not in a later turn (a node that never pauses applies them in groups as it
                // writes).
                _ = sleep_until(self.apply_at), if open => {
                    taken = 0;
                    self.apply_at = None;
                    if let Err(e) = self.store.apply_journaled() {
                        tracing::error!(target: TARGET, error = %e, "store failed to apply its journal: the node stops; restart it once the data directory works");
                        break;
                    }
                }
                report = next_report(&mut self.syncer) => {
                    taken = 0;
                    if !self.on_sync(report) {
                        break;
                    }
                }
                // Reads wait, nothing is parked, but channels still have effects to store
                // (touched while turns were released): store them now.
                () = std::future::ready(()), if !open && self.parked.is_empty() => taken = 0,
            }
            // A lone input and nothing waiting: the node is not busy, and the loop may as well
            // wait for the sync itself (it saves the hand-over to the sync thread and back).
            // Under load it goes on with the next inputs while the sync thread syncs.
            self.idle = taken == 1
                && commands.is_empty()
                && inbound.is_empty()
                && chain_events.is_empty()
                && done.is_empty();
            // A turn released in the flush may have touched channels (a chain call the
            // worker's queue refused): their effects are stored too before a read is answered.
            let mut stored = self.flush();
            let mut again = 0;
            while stored && !self.dirty.is_empty() && again < 3 {
                stored = self.flush();
                again += 1;
            }
            if !stored {
                break;
            }
            if !self.reads.is_empty() && self.parked.is_empty() && self.dirty.is_empty() {
                for command in std::mem::take(&mut self.reads) {
                    self.on_command(command).await;
                }
                if !self.flush() {
                    break;
                }
            }
        }
        info!(target: TARGET, me = %self.me, "node stopped");
    }

    /// Releases the parked turns the sync thread's report covers; `false` if a sync failed
    /// (the node stops: nothing of the turns not yet durable leaves).
    fn on_sync(&mut self, report: Report) -> bool {
        match report {
            Report::Durable(durable) => {
                self.release_durable(durable);
                // The turns gathered meanwhile go in the next write (the sync thread's: this
                // loop does not know here whether inputs wait).
                self.idle = false;
                self.write_gathered()
            }
            Report::Failed(reason) => {
                tracing::error!(target: TARGET, error = %reason, dropped = self.parked.len(), "journal sync failed: the turns not yet durable do not leave and the node stops; restart it once the data directory works");
                false
            }
        }
    }

    /// Releases, in order, every parked turn whose frame is durable.
    fn release_durable(&mut self, durable: u64) {
        if self.in_flight.is_some_and(|f| f <= durable) {
            self.in_flight = None;
        }
        let mut turns = Vec::new();
        while self.parked.front().is_some_and(|p| p.frame <= durable) {
            turns.extend(self.parked.pop_front());
        }
        if !turns.is_empty() {
            self.release(turns);
        }
    }

    /// Waits until every turn written so far is durable and released; `false` if a sync failed.
    async fn settle(&mut self) -> bool {
        while !self.parked.is_empty() {
            let report = next_report(&mut self.syncer).await;
            if !self.on_sync(report) {
                return false;
            }
        }
        true
    }

    /// Group commit: handles the messages and commands that are already waiting (up to
    /// [`GROUP_LIMIT`] of each) before the turn's one write, so that moves submitted and
    /// messages received together share one journal frame and leave together. A read-only
    /// command (info, view, events, ...) is put aside until every turn so far is durable, and
    /// ends the turn's commands: its answer may only show what is durable, and the caller's
    /// later commands come after it. Returns how many inputs it took.
    async fn take_ready(
        &mut self,
        commands: &mut mpsc::Receiver<Command>,
        inbound: &mut InboundQueue,
    ) -> usize {
        let (mut messages, mut taken) = (0, 0);
        loop {
            let mut progressed = false;
            if messages < GROUP_LIMIT
                && let Some(message) = inbound.try_recv()
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
            // Earlier turns whose sync completed meanwhile leave now, not after this one.
            self.release_synced();
        }
        messages + taken
    }

    /// Releases the parked turns already durable (the sync thread's report may still be on
    /// its way).
    fn release_synced(&mut self) {
        if let Some(durable) = self.syncer.as_ref().map(Syncer::durable) {
            self.release_durable(durable);
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
            Command::WatchInfo { channel_id, reply } => {
                // A read: answered once every turn so far is durable, so the core's info is.
                let result = match self.channels.get(&channel_id) {
                    Some(h) => {
                        let info = h.core.info();
                        h.info.send_if_modified(|current| {
                            let changed = *current != info;
                            *current = info;
                            changed
                        });
                        Ok(h.info.subscribe())
                    }
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
        // A channel hosted already (one this node expects to join, say) keeps its core.
        if self.channels.contains_key(&channel_id) {
            return Err(NodeError::BadProposal(format!("already in channel {channel_id}")));
        }
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

    /// Carries out a turn's messages and changes of peers, in order.
    fn send_all(&self, outbox: Vec<Out>) {
        for out in outbox {
            self.outbound.hand(out);
        }
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
                // Most channels of a busy node are quiet: for them a block changes nothing
                // but their chain time, and they are not looked at again.
                for (id, hosted) in &mut self.channels {
                    if hosted.core.handle_block(timestamp, now) {
                        self.dirty.insert(*id);
                    }
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

    /// Carries out the cores' effects: everything to store written in one batch, then, once
    /// that batch is durable (at once without a journal; when the sync thread says so with
    /// one), the messages, the chain calls and the observers, turn after turn in order. If the
    /// write fails nothing of this turn leaves.
    fn flush(&mut self) -> bool {
        let mut outbox: Vec<Out> = Vec::new();
        let mut calls = Vec::new();
        let mut notes = Vec::new();
        // Added to the writes of the turns since the last write (while a sync is in flight,
        // turns gather into the next write).
        let mut batch = match self.unwritten.take() {
            Some(writes) => self.store.reattach(writes),
            None => self.store.batch(),
        };
        let gathered = batch.len();
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
                    Effect::Broadcast(message) => {
                        outbox.push(Out::Message(*id, None, Box::new(Envelope::new(message))))
                    }
                    Effect::Send { to, message } => {
                        outbox.push(Out::Message(*id, Some(to), Box::new(Envelope::new(message))))
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
        let records = batch.len() - gathered;
        trace!(target: TARGET, records, messages = outbox.len(), "turn done");
        let logged = dirty
            .iter()
            .filter_map(|id| {
                let h = self.channels.get(id)?;
                let info = (h.info.receiver_count() > 0).then(|| h.core.info());
                Some((*id, h.next_event, info))
            })
            .collect();
        let mut turn = Parked {
            frame: UNWRITTEN,
            outbox,
            calls,
            logged,
            notes,
        };
        if batch.is_empty() {
            // Nothing to store: the turn leaves with the one before it (or now).
            match self.parked.back() {
                Some(last) => {
                    turn.frame = last.frame;
                    self.parked.push_back(turn);
                }
                None => self.release(vec![turn]),
            }
        } else {
            self.unwritten = Some(batch.detach());
            self.parked.push_back(turn);
        }
        if !self.write_gathered() {
            return false;
        }
        // Their next timeouts, after what this turn did to them (and to those a refused call
        // reached: their effects go with the next turn).
        let again: Vec<B256> = self.dirty.iter().copied().collect();
        for id in dirty.iter().chain(&again) {
            self.reschedule(*id);
        }
        true
    }

    /// Writes the turns gathered since the last write, in one batch, unless a sync is still in
    /// flight (they wait for it: one write and one sync then cover them all); releases what is
    /// durable. With nothing else waiting and no turn in flight the loop syncs itself (saving
    /// the hand-over to the sync thread and back); otherwise the sync thread does. `false` if
    /// the write or the sync failed: the cores believe these records stored, and carrying on
    /// could sign or send on top of what is not durable, so the node stops, as a crash would (a
    /// restart carries on from the store).
    fn write_gathered(&mut self) -> bool {
        if self.in_flight.is_some() {
            return true;
        }
        let Some(writes) = self.unwritten.take() else {
            return true;
        };
        let frame = match self.store.reattach(writes).write() {
            Ok(written) => written.frame(),
            Err(e) => {
                tracing::error!(target: TARGET, error = %e, dropped = self.parked.len(), "store write failed: nothing of the turns not yet durable leaves and the node stops; restart it once the data directory works");
                return false;
            }
        };
        let Some(frame) = frame else {
            // No journal: durable as written.
            for turn in &mut self.parked {
                turn.frame = 0;
            }
            self.release_durable(0);
            return true;
        };
        for turn in self.parked.iter_mut().rev().take_while(|t| t.frame == UNWRITTEN) {
            turn.frame = frame;
        }
        self.apply_at = Some(Instant::now() + APPLY_AFTER);
        trace!(target: TARGET, frame, turns = self.parked.len(), "turns written");
        let Some(syncer) = &self.syncer else {
            return true;
        };
        // A checkpoint (the journal was full) makes its frame durable at once.
        let mut durable = syncer.durable();
        if frame > durable {
            // No sync is in flight here: every earlier frame is durable.
            if self.idle {
                match syncer.sync_here() {
                    Ok(d) => durable = d,
                    Err(e) => {
                        tracing::error!(target: TARGET, error = %e, dropped = self.parked.len(), "journal sync failed: the turns not yet durable do not leave and the node stops; restart it once the data directory works");
                        return false;
                    }
                }
            } else {
                syncer.request();
                self.in_flight = Some(frame);
            }
        }
        self.release_durable(durable);
        true
    }

    /// Carries out durable turns, in order: their messages, chain calls, event log and events.
    fn release(&mut self, mut turns: Vec<Parked>) {
        // One hand-over for all their messages: a later turn's message cannot overtake an
        // earlier turn's change of peers.
        let mut outbox = Vec::new();
        for turn in &mut turns {
            outbox.append(&mut turn.outbox);
        }
        self.send_all(outbox);
        for turn in turns {
            self.release_rest(turn);
        }
    }

    /// A durable turn's chain calls, event log and events (its messages went already).
    fn release_rest(&mut self, turn: Parked) {
        let Parked {
            calls, logged, notes, ..
        } = turn;
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
        for (id, next_event, info) in logged {
            let Some(hosted) = self.channels.get_mut(&id) else {
                continue;
            };
            hosted.logged.send_if_modified(|logged| {
                let changed = *logged < next_event;
                *logged = (*logged).max(next_event);
                changed
            });
            if let Some(info) = info {
                hosted.info.send_if_modified(|current| {
                    let changed = *current != info;
                    *current = info;
                    changed
                });
            }
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
    }
}

/// The sync thread's next report (never, without one).
async fn next_report(syncer: &mut Option<Syncer>) -> Report {
    match syncer {
        Some(syncer) => syncer.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
