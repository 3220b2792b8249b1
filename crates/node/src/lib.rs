//! The embedding API of Entente: a [`Node`] runs one participant's channels, a [`Channel`]
//! handle plays in one of them.
//!
//! A node owns one event loop (on its own thread) that feeds one sans-IO channel core per
//! channel ([`entente_channel::Channel`]: the channel's whole life, with its
//! [`StateManager`](entente_state_manager::StateManager) and
//! [`DisputeHandler`](entente_dispute::DisputeHandler)) with what arrives from the peers (libp2p),
//! from the chain (the manager's events), from the chain worker (each call's outcome) and from the
//! application, and carries out what the cores ask for, in order: everything they want stored is
//! committed to the data directory (one grouped durable commit per turn, events included: a journal
//! append and one `fdatasync`, see `entente_store`)
//! before any message of that turn leaves, then messages go out, chain calls are queued for a
//! worker that sends them one by one from the node's account, and observers hear about it. The
//! node makes no protocol decision of its own; see `docs/node.md`.
//!
//! # Life of a channel
//!
//! 1. The proposer builds a [`ChannelProposal`] (with [`ProposalBuilder`]) and calls
//!    [`Node::propose`]: the invitees get it over the network as a [`NodeEvent::Proposal`].
//! 2. Each invitee calls [`Node::accept`] (or [`Node::decline`]). When all accepted, the
//!    proposer opens the channel on chain with its deposit, the others deposit when they see
//!    it opened, and the channel goes live when the last deposit lands.
//! 3. [`Channel::call`] submits a move (any `sol!` call of the state machine); every peer
//!    executes it, confirms it, and it becomes final. [`Channel::view`] reads the current
//!    state locally. [`Channel::events`] streams what happens.
//! 4. When the game is over and final, the node settles the channel on chain and withdraws
//!    its payout. If a peer goes silent or cheats, the node goes to the chain on its own:
//!    calldata, timeout disputes, fraud proofs, challenges; a verdict starts a new fork and the
//!    channel carries on.
//!
//! # Parts
//!
//! What the node talks to is replaceable ([`Node::start_with`], [`NodeParts`]): the signer of
//! the channel signatures (which may answer later or fail), the store, the network
//! ([`Transport`], libp2p by default) and the chain ([`Chain`], [`RpcChain`] over JSON-RPC by
//! default).
//!
//! After a crash the node restarts from its data directory: it restores every open channel,
//! asks its peers for what it missed, and resumes following the chain after the last block it
//! processed. It never signs two different transactions at one fork and height: every digest
//! it signs is durably recorded first, and the store refuses a different one.
//!
//! # Example
//!
//! ```no_run
//! use entente_contracts::{TicTacToe, artifacts};
//! use entente_node::{MachineSource, Node, NodeConfig, NodeEvent, ProposalBuilder};
//! use entente_types::{Address, B256, U256};
//!
//! # async fn demo(bob: Address, machine: Address) -> Result<(), entente_node::NodeError> {
//! let config = NodeConfig::new(B256::repeat_byte(1), "http://127.0.0.1:8545",
//!     "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0".parse().unwrap(), "/tmp/alice");
//! let alice = Node::start(config).await?;
//! let code = MachineSource::ArtifactJson(artifacts::TIC_TAC_TOE.to_string());
//! let stake = U256::from(10u64).pow(U256::from(18u64));
//! let genesis = TicTacToe::initialStateCall { x: alice.address(), o: bob, stake };
//! let proposal = ProposalBuilder::new(machine, vec![alice.address(), bob], vec![stake, stake])
//!     .build(&alice, &code, &genesis)
//!     .await?;
//! let game = alice.propose(proposal, code).await?;
//! game.wait_live(std::time::Duration::from_secs(60)).await?;
//! game.call(&TicTacToe::playCall { cell: 4 }).await?;
//! let state = game.view(&TicTacToe::getGameCall {}).await?;
//! # let _ = state;
//! # Ok(())
//! # }
//! ```

mod config;
mod error;
mod outbound;
mod parts;
mod prerecover;
mod runtime;
mod sync;
mod worker;

use std::time::Duration;

use alloy_sol_types::SolCall;
use entente_evm_runtime::MachineInstance;
use entente_types::{Address, AgreementMode, B256, Bytes, ChannelProposal, SignedTransaction, Timing, U256};
use tokio::sync::{broadcast, mpsc, oneshot};

pub use config::NodeConfig;
pub use entente_channel::{ChannelEvent, ChannelInfo, Phase, ProposalPolicy};
pub use entente_dispute::ChainEvent;
pub use entente_p2p::{Multiaddr, PeerId, PeerInfo};
pub use entente_state_manager::Event as ProtocolEvent;
pub use entente_store::MachineSource;
pub use error::NodeError;
pub use parts::{BoxFuture, CallReport, Chain, Inbound, RpcChain, Transport, TransportError, TransportParts};

/// Something that happened to the node.
#[derive(Debug, Clone)]
pub enum NodeEvent {
    /// A participant invites this node to a channel: answer with [`Node::accept`] or
    /// [`Node::decline`].
    Proposal {
        /// Who sent it.
        from: Address,
        /// What it proposes.
        proposal: Box<ChannelProposal>,
    },
    /// Something happened in one of the node's channels.
    Channel {
        /// The channel.
        channel_id: B256,
        /// What.
        event: Box<ChannelEvent>,
    },
    /// The chain stopped answering; the node keeps retrying.
    ChainUnavailable {
        /// The last error.
        error: String,
    },
    /// The chain answers again.
    ChainRecovered,
}

pub(crate) type Reply<T> = oneshot::Sender<Result<T, NodeError>>;

/// Events read from a channel's log (sequence number, event), and a watch of the log's length.
pub(crate) type EventPage = (Vec<(u64, ChannelEvent)>, tokio::sync::watch::Receiver<u64>);

pub(crate) enum Command {
    Propose {
        proposal: Box<ChannelProposal>,
        machine: MachineSource,
        reply: Reply<()>,
    },
    Accept {
        channel_id: B256,
        machine: MachineSource,
        /// The chain's code at the proposal's machine address.
        deployed: Bytes,
        reply: Reply<()>,
    },
    Decline {
        channel_id: B256,
        reason: String,
        reply: Reply<()>,
    },
    Submit {
        channel_id: B256,
        data: Bytes,
        reply: Reply<B256>,
    },
    View {
        channel_id: B256,
        data: Bytes,
        reply: Reply<Bytes>,
    },
    Info {
        channel_id: B256,
        reply: Reply<ChannelInfo>,
    },
    /// The channel's info as of its last durable turn, kept up to date.
    WatchInfo {
        channel_id: B256,
        reply: Reply<tokio::sync::watch::Receiver<ChannelInfo>>,
    },
    Events {
        channel_id: B256,
        from: u64,
        max: usize,
        reply: Reply<EventPage>,
    },
    Exit {
        channel_id: B256,
        reply: Reply<()>,
    },
    Inject {
        channel_id: B256,
        transaction: Box<SignedTransaction>,
        reply: Reply<()>,
    },
    Channels {
        reply: Reply<Vec<B256>>,
    },
    Invitations {
        reply: Reply<Vec<(Address, ChannelProposal)>>,
    },
    AllowJoin {
        channel_id: B256,
        joiner: Address,
        reply: Reply<()>,
    },
    ProposeJoin {
        channel_id: B256,
        joiner: Address,
        amount: U256,
        data: Bytes,
        reply: Reply<()>,
    },
    Leave {
        channel_id: B256,
        reply: Reply<()>,
    },
    SignerReady,
    ExpectJoin {
        terms: Box<entente_channel::JoinTerms>,
        machine: MachineSource,
        reply: Reply<()>,
    },
}

impl Command {
    /// A command that only reads (its answer shows state, it changes none).
    pub(crate) fn is_read(&self) -> bool {
        matches!(
            self,
            Command::View { .. }
                | Command::Info { .. }
                | Command::WatchInfo { .. }
                | Command::Events { .. }
                | Command::Channels { .. }
                | Command::Invitations { .. }
        )
    }
}

/// Parts an embedder replaces in a [`Node`] (see [`Node::start_with`]); `None` keeps the
/// default.
#[derive(Default)]
pub struct NodeParts {
    /// Signs the channel signatures (default: the config's key in memory).
    pub signer: Option<std::sync::Arc<dyn entente_types::Signer + Send + Sync>>,
    /// Stores the channels (default: the redb store in the config's data directory).
    pub store: Option<entente_store::Store>,
    /// Carries the channels' messages (default: libp2p with the config's listen, bootstrap
    /// and relay addresses).
    pub transport: Option<TransportParts>,
    /// Sends the chain calls and reports the manager's events (default: [`RpcChain`] on the
    /// config's `rpc_url` and `manager`). Its account must be the config key's address.
    pub chain: Option<std::sync::Arc<dyn Chain>>,
}

impl std::fmt::Debug for NodeParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeParts")
            .field("signer", &self.signer.as_ref().map(|s| s.address()))
            .field("store", &self.store)
            .field("transport", &self.transport.is_some())
            .field("chain", &self.chain.as_ref().map(|c| (c.chain_id(), c.manager())))
            .finish()
    }
}

/// A running node: one participant's key, network presence, chain account and data directory.
/// Cheap to clone; the event loop stops when the last clone and every [`Channel`] are dropped.
#[derive(Clone)]
pub struct Node {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<NodeEvent>,
    address: Address,
    peer_id: PeerId,
    transport: std::sync::Arc<dyn Transport>,
    chain: std::sync::Arc<dyn Chain>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("address", &self.address)
            .field("peer_id", &self.peer_id)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Opens the data directory, connects to the chain, starts the network and the event
    /// loop, and restores every channel the data directory holds.
    pub async fn start(config: NodeConfig) -> Result<Self, NodeError> {
        runtime::start(config, NodeParts::default()).await
    }

    /// [`Node::start`] with parts of its own: a signer for the channel signatures (a remote
    /// signer or a wallet, which may answer later or fail; it must sign for the config key's
    /// address, which the peers authenticate), a store (for example
    /// [`entente_store::Store::in_memory`]) instead of the data directory, a [`Transport`]
    /// instead of libp2p, a [`Chain`] instead of the JSON-RPC endpoint. The config's fields
    /// for a replaced part are not used.
    pub async fn start_with(config: NodeConfig, parts: NodeParts) -> Result<Self, NodeError> {
        runtime::start(config, parts).await
    }

    /// Tells the node that its signer has signatures ready: what waited for them is retried at
    /// once (otherwise on the next tick).
    pub async fn signer_ready(&self) -> Result<(), NodeError> {
        self.commands
            .send(Command::SignerReady)
            .await
            .map_err(|_| NodeError::Stopped)
    }

    /// This node's address (its participant identity and chain account).
    pub fn address(&self) -> Address {
        self.address
    }

    /// This node's libp2p PeerId (derived from its key, whatever its transport).
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The addresses the node's transport listens on (with no `/p2p` suffix).
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NodeError> {
        Ok(self.transport.listen_addrs().await?)
    }

    /// Adds a node to reach the network through (`.../p2p/<peer id>`), while running.
    pub async fn add_peer(&self, address: Multiaddr) -> Result<PeerId, NodeError> {
        Ok(self.transport.add_peer(address).await?)
    }

    /// The peers the node is connected to.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, NodeError> {
        Ok(self.transport.peers().await?)
    }

    /// The node's events: proposals, and everything that happens in its channels.
    pub fn events(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    /// The node's chain (its account): balances, the manager, chain time.
    pub fn chain(&self) -> &dyn Chain {
        self.chain.as_ref()
    }

    /// This node's balance on chain.
    pub async fn balance(&self) -> Result<U256, NodeError> {
        Ok(self.chain.balance(self.address).await?)
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, NodeError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)?
    }

    /// Proposes `proposal` to its other participants; `machine` is the state machine's code,
    /// which every peer runs locally. Returns the channel's handle at once: it goes live when
    /// everyone accepted and deposited ([`Channel::wait_live`]).
    pub async fn propose(
        &self,
        proposal: ChannelProposal,
        machine: MachineSource,
    ) -> Result<Channel, NodeError> {
        let channel_id = proposal.channel_id;
        self.ask(|reply| Command::Propose {
            proposal: Box::new(proposal),
            machine,
            reply,
        })
        .await?;
        Ok(self.handle(channel_id))
    }

    /// Accepts the proposal of channel `channel_id` (received as [`NodeEvent::Proposal`]);
    /// the node deposits once the proposer has opened the channel on chain.
    ///
    /// `machine` must be the code deployed at the proposal's machine address (checked against
    /// the chain), and the proposal's genesis state must load in it, name the proposal's
    /// participants and pay out exactly the deposits; otherwise [`NodeError::BadProposal`] and
    /// the invitation stays open.
    pub async fn accept(&self, channel_id: B256, machine: MachineSource) -> Result<Channel, NodeError> {
        let invitations = self.invitations().await?;
        let (_, proposal) = invitations
            .iter()
            .find(|(_, p)| p.channel_id == channel_id)
            .ok_or(NodeError::UnknownChannel(channel_id))?;
        let deployed = self.chain.code(proposal.state_machine).await?;
        self.ask(|reply| Command::Accept {
            channel_id,
            machine,
            deployed,
            reply,
        })
        .await?;
        Ok(self.handle(channel_id))
    }

    /// Declines the proposal of channel `channel_id`.
    pub async fn decline(&self, channel_id: B256, reason: impl Into<String>) -> Result<(), NodeError> {
        let reason = reason.into();
        self.ask(|reply| Command::Decline {
            channel_id,
            reason,
            reply,
        })
        .await
    }

    /// Proposals received and not answered yet, with their senders.
    pub async fn invitations(&self) -> Result<Vec<(Address, ChannelProposal)>, NodeError> {
        self.ask(|reply| Command::Invitations { reply }).await
    }

    /// Prepares to join the running channel `channel_id` with a deposit of `amount`, invited by
    /// its participant `sponsor`: when the sponsor sends this node a ticket (every participant
    /// approved the join, see [`Channel::propose_join`]) on these terms, the node pays its
    /// deposit through the chain and takes part from the fork that starts with it. `machine`
    /// must be the code deployed at the channel's state machine (checked against the chain);
    /// a ticket from anyone else, for another deposit, machine, token or manager is refused.
    /// [`NodeError::UnknownChannel`] if the manager does not know the channel (yet: it may not
    /// be open).
    pub async fn expect_join(
        &self,
        channel_id: B256,
        sponsor: Address,
        amount: U256,
        machine: MachineSource,
    ) -> Result<Channel, NodeError> {
        let code = machine.load()?;
        let onchain = self.chain.channel(channel_id).await?;
        let deployed = self.chain.code(onchain.stateMachine).await?;
        let manager = self.chain.manager();
        let terms = entente_channel::JoinTerms::from_onchain(
            channel_id,
            sponsor,
            amount,
            self.chain.chain_id(),
            manager,
            &onchain,
            &code,
            &deployed,
        )
        .map_err(|e| match e {
            entente_channel::ProposalRefusal::NoMachine => NodeError::UnknownChannel(channel_id),
            e => NodeError::BadProposal(e.to_string()),
        })?;
        self.ask(|reply| Command::ExpectJoin {
            terms: Box::new(terms),
            machine,
            reply,
        })
        .await?;
        Ok(self.handle(channel_id))
    }

    /// The first unanswered proposal, waiting for one (from anyone) for at most `timeout`.
    pub async fn next_proposal(&self, timeout: Duration) -> Result<(Address, ChannelProposal), NodeError> {
        let mut events = self.events.subscribe();
        if let Some(first) = self.invitations().await?.into_iter().next() {
            return Ok(first);
        }
        let wait = async {
            loop {
                match events.recv().await {
                    Ok(NodeEvent::Proposal { from, proposal }) => return Ok((from, *proposal)),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return Err(NodeError::Stopped),
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| NodeError::Timeout("a proposal".into()))?
    }

    /// The handle of a channel this node knows (live, pending or restored).
    pub async fn channel(&self, channel_id: B256) -> Result<Channel, NodeError> {
        self.ask(|reply| Command::Info { channel_id, reply }).await?;
        Ok(self.handle(channel_id))
    }

    /// Every channel this node knows.
    pub async fn channels(&self) -> Result<Vec<B256>, NodeError> {
        self.ask(|reply| Command::Channels { reply }).await
    }

    fn handle(&self, channel_id: B256) -> Channel {
        Channel {
            node: self.clone(),
            channel_id,
        }
    }
}

/// A handle on one channel of a [`Node`].
#[derive(Debug, Clone)]
pub struct Channel {
    node: Node,
    channel_id: B256,
}

impl Channel {
    /// The channel id.
    pub fn id(&self) -> B256 {
        self.channel_id
    }

    /// Submits a move: `call` is a call of the state machine (from its `sol!` bindings),
    /// executed locally, signed and sent to the peers. Returns the transaction's digest once
    /// it is applied locally (not yet final: see [`Channel::wait_final`]).
    pub async fn call<C: SolCall>(&self, call: &C) -> Result<B256, NodeError> {
        self.submit(call.abi_encode().into()).await
    }

    /// Submits raw calldata of the state machine (see [`Channel::call`]).
    pub async fn submit(&self, data: Bytes) -> Result<B256, NodeError> {
        let channel_id = self.channel_id;
        self.node
            .ask(|reply| Command::Submit {
                channel_id,
                data,
                reply,
            })
            .await
    }

    /// Runs a view of the state machine on the channel's current state, locally.
    pub async fn view<C: SolCall>(&self, call: &C) -> Result<C::Return, NodeError> {
        let out = self.view_raw(call.abi_encode().into()).await?;
        C::abi_decode_returns(&out).map_err(|e| {
            NodeError::Machine(entente_evm_runtime::EvmError::BadReturn {
                call: C::SIGNATURE,
                reason: e.to_string(),
            })
        })
    }

    /// Runs raw calldata of a view on the channel's current state, locally: the returned bytes
    /// (see [`Channel::view`]).
    pub async fn view_raw(&self, data: Bytes) -> Result<Bytes, NodeError> {
        let channel_id = self.channel_id;
        self.node
            .ask(|reply| Command::View {
                channel_id,
                data,
                reply,
            })
            .await
    }

    /// Where the channel stands.
    pub async fn info(&self) -> Result<ChannelInfo, NodeError> {
        let channel_id = self.channel_id;
        self.node.ask(|reply| Command::Info { channel_id, reply }).await
    }

    /// The channel's events from now on. Every event is kept in the channel's event log (in the
    /// data directory, with the commit that produced it), so a slow reader misses none.
    pub async fn events(&self) -> Result<EventStream, NodeError> {
        let mut stream = self.events_from(u64::MAX).await?;
        stream.next = *stream.logged.borrow();
        Ok(stream)
    }

    /// The channel's events from sequence number `from` on (0: from the first). A reader that
    /// stored [`EventStream::cursor`] resumes there after a restart, of its own or of the node.
    pub async fn events_from(&self, from: u64) -> Result<EventStream, NodeError> {
        let channel_id = self.channel_id;
        let (_, logged) = self
            .node
            .ask(|reply| Command::Events {
                channel_id,
                from: u64::MAX,
                max: 0,
                reply,
            })
            .await?;
        Ok(EventStream {
            node: self.node.clone(),
            channel_id,
            next: from,
            logged,
            buffer: std::collections::VecDeque::new(),
        })
    }

    /// Lets `joiner` join this channel when another participant proposes it (this node then
    /// co-signs the approval).
    pub async fn allow_join(&self, joiner: Address) -> Result<(), NodeError> {
        let channel_id = self.channel_id;
        self.node
            .ask(|reply| Command::AllowJoin {
                channel_id,
                joiner,
                reply,
            })
            .await
    }

    /// Proposes that `joiner` join with a deposit of `amount` (`data` goes to the machine's join
    /// hook), at this node's current state, which must be final. Every other participant must
    /// have allowed it ([`Channel::allow_join`]); the newcomer must expect it
    /// ([`Node::expect_join`]).
    pub async fn propose_join(&self, joiner: Address, amount: U256, data: Bytes) -> Result<(), NodeError> {
        let channel_id = self.channel_id;
        self.node
            .ask(|reply| Command::ProposeJoin {
                channel_id,
                joiner,
                amount,
                data,
                reply,
            })
            .await
    }

    /// Leaves the channel by agreement at the current (final) state, with the share the
    /// machine's remove hook gives; the others co-sign and the channel carries on without us.
    pub async fn leave(&self) -> Result<(), NodeError> {
        let channel_id = self.channel_id;
        self.node.ask(|reply| Command::Leave { channel_id, reply }).await
    }

    /// Leaves through the chain with the latest provable state (a finished game settles).
    pub async fn exit(&self) -> Result<(), NodeError> {
        let channel_id = self.channel_id;
        self.node.ask(|reply| Command::Exit { channel_id, reply }).await
    }

    /// Sends a signed transaction as is, bypassing every local check: for tests and demos of
    /// what the other peers and the chain do with a cheater. An honest application never
    /// needs it.
    #[doc(hidden)]
    pub async fn inject(&self, transaction: SignedTransaction) -> Result<(), NodeError> {
        let channel_id = self.channel_id;
        self.node
            .ask(|reply| Command::Inject {
                channel_id,
                transaction: Box::new(transaction),
                reply,
            })
            .await
    }

    /// The channel's [`ChannelInfo`] as of its last durable turn, kept up to date: the node
    /// publishes each turn's info once it is durable, so watching costs its event loop nothing.
    pub async fn watch_info(&self) -> Result<tokio::sync::watch::Receiver<ChannelInfo>, NodeError> {
        let channel_id = self.channel_id;
        self.node
            .ask(|reply| Command::WatchInfo { channel_id, reply })
            .await
    }

    /// Waits until `done` holds for the channel's [`ChannelInfo`], for at most `timeout`.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&ChannelInfo) -> bool,
    ) -> Result<ChannelInfo, NodeError> {
        let deadline = tokio::time::Instant::now() + timeout;
        // The node answers reads once its turns so far are durable: that wait counts too.
        let mut info = tokio::time::timeout_at(deadline, self.watch_info())
            .await
            .map_err(|_| NodeError::Timeout(what.to_string()))??;
        loop {
            {
                let current = info.borrow_and_update();
                if done(&current) {
                    return Ok(current.clone());
                }
            }
            match tokio::time::timeout_at(deadline, info.changed()).await {
                Err(_) => return Err(NodeError::Timeout(what.to_string())),
                Ok(Err(_)) => return Err(NodeError::Stopped),
                Ok(Ok(())) => {}
            }
        }
    }

    /// Waits until the channel is live.
    pub async fn wait_live(&self, timeout: Duration) -> Result<ChannelInfo, NodeError> {
        let info = self
            .wait_until("the channel to go live", timeout, |i| {
                i.phase == Phase::Live || i.phase.is_over()
            })
            .await?;
        match info.phase {
            Phase::Cancelled => Err(NodeError::ChannelClosed(self.channel_id)),
            _ => Ok(info),
        }
    }

    /// Waits until everything up to `height` is final (or the channel is over: what is final
    /// then is what the chain settled).
    pub async fn wait_final(&self, height: u64, timeout: Duration) -> Result<ChannelInfo, NodeError> {
        self.wait_until("finality", timeout, |i| {
            i.finalized >= height || i.phase.is_over()
        })
        .await
    }

    /// Waits until the channel has settled on chain.
    pub async fn wait_closed(&self, timeout: Duration) -> Result<ChannelInfo, NodeError> {
        self.wait_until("the settlement", timeout, |i| i.phase.is_over())
            .await
    }
}

/// A reader of one channel's event log: [`Self::recv`] yields every event in order, waiting for
/// the next one; none is skipped, however slow the reader.
#[derive(Debug)]
pub struct EventStream {
    node: Node,
    channel_id: B256,
    next: u64,
    logged: tokio::sync::watch::Receiver<u64>,
    buffer: std::collections::VecDeque<(u64, ChannelEvent)>,
}

/// Events read from the log at once.
const EVENT_PAGE: usize = 256;

impl EventStream {
    /// The sequence number of the next event this stream yields (store it to resume with
    /// [`Channel::events_from`]).
    pub fn cursor(&self) -> u64 {
        self.buffer.front().map_or(self.next, |(seq, _)| *seq)
    }

    /// The next event, waiting for it.
    pub async fn recv(&mut self) -> Result<ChannelEvent, NodeError> {
        Ok(self.recv_numbered().await?.1)
    }

    /// The next event with its sequence number in the log, waiting for it.
    pub async fn recv_numbered(&mut self) -> Result<(u64, ChannelEvent), NodeError> {
        loop {
            if let Some(event) = self.try_next_numbered().await? {
                return Ok(event);
            }
            self.logged.changed().await.map_err(|_| NodeError::Stopped)?;
        }
    }

    /// The next event if one is logged, without waiting.
    pub async fn try_next(&mut self) -> Result<Option<ChannelEvent>, NodeError> {
        Ok(self.try_next_numbered().await?.map(|(_, event)| event))
    }

    /// The next event with its sequence number, if one is logged, without waiting.
    pub async fn try_next_numbered(&mut self) -> Result<Option<(u64, ChannelEvent)>, NodeError> {
        if self.buffer.is_empty() && *self.logged.borrow_and_update() > self.next {
            let (channel_id, from) = (self.channel_id, self.next);
            let (events, _) = self
                .node
                .ask(|reply| Command::Events {
                    channel_id,
                    from,
                    max: EVENT_PAGE,
                    reply,
                })
                .await?;
            if let Some((last, _)) = events.last() {
                self.next = last + 1;
            }
            self.buffer.extend(events);
        }
        Ok(self.buffer.pop_front())
    }
}

/// Builds a [`ChannelProposal`]: the participants and their deposits, the state machine, and
/// the call of the machine that computes the genesis state (run locally).
#[derive(Debug, Clone)]
pub struct ProposalBuilder {
    state_machine: Address,
    participants: Vec<Address>,
    deposits: Vec<U256>,
    timing: Timing,
    agreement_mode: AgreementMode,
    funding_period: u64,
    machine_gas_limit: u64,
    salt: B256,
    token: Address,
}

impl ProposalBuilder {
    /// A proposal for `participants` (the proposer first) with `deposits`, running the machine
    /// deployed at `state_machine`.
    pub fn new(state_machine: Address, participants: Vec<Address>, deposits: Vec<U256>) -> Self {
        Self {
            state_machine,
            participants,
            deposits,
            timing: Timing::default(),
            agreement_mode: AgreementMode::ExplicitConfirmations,
            funding_period: 3_600,
            machine_gas_limit: 5_000_000,
            salt: B256::ZERO,
            token: Address::ZERO,
        }
    }

    /// The deposits' asset: an ERC20 token's address (default: zero, ether). Each participant's
    /// node gives the manager an allowance for its deposit before paying it.
    pub fn token(mut self, token: Address) -> Self {
        self.token = token;
        self
    }

    /// Timing parameters (seconds).
    pub fn timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    /// How signatures are collected.
    pub fn agreement_mode(mut self, mode: AgreementMode) -> Self {
        self.agreement_mode = mode;
        self
    }

    /// Seconds every participant has to deposit after the opening.
    pub fn funding_period(mut self, seconds: u64) -> Self {
        self.funding_period = seconds;
        self
    }

    /// Makes the channel id unique among channels with the same parameters.
    pub fn salt(mut self, salt: B256) -> Self {
        self.salt = salt;
        self
    }

    /// Computes the genesis state with `initial` (a view of the machine) and asks the manager
    /// for the channel id.
    pub async fn build<C: SolCall<Return = Bytes>>(
        self,
        node: &Node,
        machine: &MachineSource,
        initial: &C,
    ) -> Result<ChannelProposal, NodeError> {
        let code = machine.load()?;
        let mut scratch = MachineInstance::deploy(&code, self.machine_gas_limit)?;
        let genesis_state: Bytes = scratch.view_decode(initial)?;
        self.with_genesis(node, genesis_state)
    }

    /// Like [`Self::build`], with the calldata of the machine's view that returns the genesis state
    /// (its ABI-encoded `bytes`), for callers without `sol!` bindings.
    pub async fn build_with_calldata(
        self,
        node: &Node,
        machine: &MachineSource,
        initial: Bytes,
    ) -> Result<ChannelProposal, NodeError> {
        let code = machine.load()?;
        let mut scratch = MachineInstance::deploy(&code, self.machine_gas_limit)?;
        let out = scratch.view(initial)?;
        let genesis_state = <alloy_sol_types::sol_data::Bytes as alloy_sol_types::SolType>::abi_decode(&out)
            .map_err(|e| NodeError::BadProposal(format!("the genesis view does not return bytes: {e}")))?;
        self.with_genesis(node, genesis_state)
    }

    fn with_genesis(self, node: &Node, genesis_state: Bytes) -> Result<ChannelProposal, NodeError> {
        let chain = node.chain();
        let manager = chain.manager();
        let mut proposal = ChannelProposal {
            channel_id: B256::ZERO,
            chain_id: chain.chain_id(),
            manager,
            participants: self.participants,
            deposits: self.deposits,
            state_machine: self.state_machine,
            token: self.token,
            timing: self.timing,
            funding_period: self.funding_period,
            machine_gas_limit: self.machine_gas_limit,
            salt: self.salt,
            genesis_state,
            agreement_mode: self.agreement_mode,
        };
        proposal.channel_id = entente_channel::channel_id_of(&proposal);
        // The shape a peer checks (its first participant proposes it).
        let first = proposal.participants.first().copied().unwrap_or_default();
        ProposalPolicy::default()
            .check(&proposal, first, first, proposal.chain_id, manager)
            .map_err(|e| NodeError::BadProposal(e.to_string()))?;
        Ok(proposal)
    }
}
