//! What a node talks to, as traits an embedder can replace: the network ([`Transport`]) and the
//! chain ([`Chain`]). The defaults are libp2p ([`P2pHandle`]) and a JSON-RPC endpoint
//! ([`RpcChain`]); the signer ([`entente_types::Signer`]) and the store are the other parts of
//! [`NodeParts`](crate::NodeParts).
//!
//! Both traits are IO only: the channel cores decide what to send, to whom, which call to make
//! and what its outcome means. A transport moves envelopes between addresses; a chain sends the
//! cores' calls from the node's account and reports the manager's events in chain order.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use entente_chain::{ChainClient, ChainError, ListenerConfig, ListenerEvent};
use entente_channel::{CallOutcome, ChainCall};
use entente_contracts::IStateChannelManager;
use entente_p2p::{Multiaddr, P2pEvent, P2pHandle, PeerId, PeerInfo, PostError, PostPeersError};
use entente_types::{Address, B256, Bytes, Envelope, U256};
use tokio::sync::mpsc;
use tracing::debug;

const TARGET: &str = "entente::node";

/// A future a part returns: sendable, boxed (the traits are used as trait objects).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A channel message that arrived from a peer, authenticated by the transport: `from` is the
/// address whose key the sending connection proved (the cores check every signature again).
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The sender's address.
    pub from: Address,
    /// The channel the message was sent on.
    pub channel_id: B256,
    /// The message.
    pub envelope: Envelope,
}

/// Why a transport could not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transport: {0}")]
pub struct TransportError(pub String);

impl From<entente_p2p::P2pError> for TransportError {
    fn from(e: entente_p2p::P2pError) -> Self {
        Self(e.to_string())
    }
}

/// The network between a node and its peers.
///
/// The node hands it each channel's participants ([`Transport::set_peers`], as the channel core
/// changes them) and the cores' messages; what arrives from peers it delivers as [`Inbound`]
/// on the receiver given with it in [`TransportParts`]. It may lose, delay or reorder
/// messages (the cores ask again for what they miss) but must not forge `from`: the cores check
/// every signature again, so a transport that lies costs liveness, never funds; one that lets
/// strangers flood a channel costs the node work (the libp2p transport accepts a channel's
/// messages from its participants only).
pub trait Transport: Send + Sync + 'static {
    /// The participants of channel `channel_id` from now on (they may include this node):
    /// messages of the channel go to them and are accepted from them only. An empty list means
    /// the node is done with the channel. Takes effect before any message handed over later.
    fn set_peers(&self, channel_id: B256, peers: Vec<Address>) -> BoxFuture<'_, Result<(), TransportError>>;

    /// Sends a message of channel `channel_id` to the participant `to`.
    fn send(
        &self,
        channel_id: B256,
        to: Address,
        envelope: Envelope,
    ) -> BoxFuture<'_, Result<(), TransportError>>;

    /// Sends a message of channel `channel_id` to every other participant.
    fn broadcast(&self, channel_id: B256, envelope: Envelope) -> BoxFuture<'_, Result<(), TransportError>>;

    /// Whether [`Transport::post`] and [`Transport::post_peers`] take outputs: if so, one that
    /// comes back means the transport's queue is full for now (the node offers it again until
    /// it is taken), and a transport that stopped takes (drops) everything.
    fn posts(&self) -> bool {
        false
    }

    /// Sets a channel's peers (as [`Transport::set_peers`]) without waiting, in order with the
    /// messages posted before and after it. Gives the peers back when the transport cannot take
    /// them at once; the node then calls [`Transport::set_peers`] from a task of its own and
    /// hands it everything after that in order (the default).
    fn post_peers(&self, channel_id: B256, peers: Vec<Address>) -> Option<Vec<Address>> {
        let _ = channel_id;
        Some(peers)
    }

    /// Hands a message of channel `channel_id` over without waiting for its outcome (to `to`, or
    /// to every other participant when `None`), in the order of the calls. Gives the envelope
    /// back when the transport cannot take it at once; the node then sends it with
    /// [`Transport::send`] or [`Transport::broadcast`] from a task of its own (the default).
    fn post(&self, channel_id: B256, to: Option<Address>, envelope: Envelope) -> Option<Envelope> {
        let _ = (channel_id, to);
        Some(envelope)
    }

    /// `peer` sent a message that proves it misbehaves (a bad signature, a false state); a
    /// transport may disconnect or throttle it.
    fn report_misbehaviour(&self, peer: Address) -> BoxFuture<'_, ()> {
        let _ = peer;
        Box::pin(async {})
    }

    /// The addresses the transport listens on, if it has any.
    fn listen_addrs(&self) -> BoxFuture<'_, Result<Vec<Multiaddr>, TransportError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Adds a node to reach the network through (a transport without a network refuses).
    fn add_peer(&self, address: Multiaddr) -> BoxFuture<'_, Result<PeerId, TransportError>> {
        Box::pin(async move { Err(TransportError(format!("this transport cannot dial {address}"))) })
    }

    /// The peers the transport is connected to.
    fn peers(&self) -> BoxFuture<'_, Result<Vec<PeerInfo>, TransportError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// A transport and what it received: the node reads `inbound` in its event loop.
pub struct TransportParts {
    /// The transport.
    pub transport: Arc<dyn Transport>,
    /// Messages from peers, in the order they arrived.
    pub inbound: mpsc::Receiver<Inbound>,
}

impl std::fmt::Debug for TransportParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportParts").finish_non_exhaustive()
    }
}

impl Transport for P2pHandle {
    fn set_peers(&self, channel_id: B256, peers: Vec<Address>) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            if peers.is_empty() {
                self.leave_channel(channel_id).await?;
            } else {
                self.join_channel(channel_id, peers).await?;
            }
            Ok(())
        })
    }

    fn send(
        &self,
        channel_id: B256,
        to: Address,
        envelope: Envelope,
    ) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move { Ok(P2pHandle::send(self, channel_id, to, envelope).await?) })
    }

    fn broadcast(&self, channel_id: B256, envelope: Envelope) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            for (to, outcome) in P2pHandle::broadcast(self, channel_id, envelope).await? {
                if let Err(e) = outcome {
                    debug!(target: TARGET, channel = %channel_id, %to, error = %e, "not delivered");
                }
            }
            Ok(())
        })
    }

    fn posts(&self) -> bool {
        true
    }

    fn post_peers(&self, channel_id: B256, peers: Vec<Address>) -> Option<Vec<Address>> {
        match P2pHandle::post_peers(self, channel_id, peers) {
            Ok(()) => None,
            Err(PostPeersError::Busy(peers)) => Some(peers),
            Err(PostPeersError::Stopped) => {
                debug!(target: TARGET, channel = %channel_id, "peers not set: the p2p task stopped");
                None
            }
        }
    }

    fn post(&self, channel_id: B256, to: Option<Address>, envelope: Envelope) -> Option<Envelope> {
        match P2pHandle::post(self, channel_id, to, envelope) {
            Ok(()) => None,
            Err(PostError::Busy(envelope)) => Some(*envelope),
            Err(PostError::Failed(e)) => {
                debug!(target: TARGET, channel = %channel_id, error = %e, "not sent");
                None
            }
        }
    }

    fn report_misbehaviour(&self, peer: Address) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let _ = P2pHandle::report_misbehaviour(self, peer).await;
        })
    }

    fn listen_addrs(&self) -> BoxFuture<'_, Result<Vec<Multiaddr>, TransportError>> {
        Box::pin(async move { Ok(P2pHandle::listen_addrs(self).await?) })
    }

    fn add_peer(&self, address: Multiaddr) -> BoxFuture<'_, Result<PeerId, TransportError>> {
        Box::pin(async move { Ok(P2pHandle::add_peer(self, address).await?) })
    }

    fn peers(&self) -> BoxFuture<'_, Result<Vec<PeerInfo>, TransportError>> {
        Box::pin(async move { Ok(P2pHandle::peers(self).await?) })
    }
}

/// Where the node reads its peers' messages.
pub(crate) enum InboundQueue {
    /// A transport's own queue of messages.
    Plain(mpsc::Receiver<Inbound>),
    /// The libp2p task's events, read directly (its other events are logged).
    P2p(mpsc::Receiver<P2pEvent>),
}

impl InboundQueue {
    /// The next message; `None` once the transport is gone. Cancel-safe.
    pub(crate) async fn recv(&mut self) -> Option<Inbound> {
        match self {
            Self::Plain(rx) => rx.recv().await,
            Self::P2p(rx) => loop {
                if let Some(inbound) = as_inbound(rx.recv().await?) {
                    return Some(inbound);
                }
            },
        }
    }

    /// A message that is ready now.
    pub(crate) fn try_recv(&mut self) -> Option<Inbound> {
        match self {
            Self::Plain(rx) => rx.try_recv().ok(),
            Self::P2p(rx) => loop {
                if let Some(inbound) = as_inbound(rx.try_recv().ok()?) {
                    return Some(inbound);
                }
            },
        }
    }

    /// Nothing is waiting (for libp2p: no event of any kind).
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Self::Plain(rx) => rx.is_empty(),
            Self::P2p(rx) => rx.is_empty(),
        }
    }
}

/// A libp2p event as a message, if it is one; the others are logged.
fn as_inbound(event: P2pEvent) -> Option<Inbound> {
    match event {
        P2pEvent::Message {
            from,
            channel_id,
            envelope,
            ..
        } => Some(Inbound {
            from,
            channel_id,
            envelope,
        }),
        event => {
            debug!(target: TARGET, ?event, "p2p");
            None
        }
    }
}

/// How one chain call went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallReport {
    /// Mined, reverted (with the decoded reason) or not sent.
    pub outcome: CallOutcome,
    /// Gas used, when mined.
    pub gas_used: u64,
}

impl CallReport {
    /// A call that never reached the chain, for `reason`.
    pub fn not_sent(reason: impl Into<String>) -> Self {
        Self {
            outcome: CallOutcome::NotSent(reason.into()),
            gas_used: 0,
        }
    }
}

/// The chain a node settles on: one StateChannelManager on one chain, and the node's account
/// there.
///
/// The node sends the cores' calls one at a time (one account, one nonce sequence) and reads
/// the manager's events from [`Chain::follow`]. Reads fail with a [`ChainError`]; a call that
/// fails comes back as its [`CallReport`] and the core decides again.
pub trait Chain: Send + Sync + 'static {
    /// The chain id (EIP-155).
    fn chain_id(&self) -> u64;

    /// The StateChannelManager's address.
    fn manager(&self) -> Address;

    /// The account calls are sent from: it must be the node's address (deposits and payouts
    /// are the participant's).
    fn account(&self) -> Address;

    /// Sends `call` of channel `channel_id` from [`Chain::account`] to
    /// [`ChainCall::target`] (the manager, or the token for an `approve`) and waits for its
    /// outcome.
    fn send(&self, channel_id: B256, call: ChainCall) -> BoxFuture<'_, CallReport>;

    /// The manager's record of channel `channel_id` (`getChannel`; all zero if unknown).
    fn channel(&self, channel_id: B256) -> BoxFuture<'_, Result<IStateChannelManager::Channel, ChainError>>;

    /// The code deployed at `account`.
    fn code(&self, account: Address) -> BoxFuture<'_, Result<Bytes, ChainError>>;

    /// `account`'s balance in wei.
    fn balance(&self, account: Address) -> BoxFuture<'_, Result<U256, ChainError>>;

    /// The number of the latest block.
    fn block_number(&self) -> BoxFuture<'_, Result<u64, ChainError>>;

    /// The latest block's timestamp (chain time, seconds).
    fn now(&self) -> BoxFuture<'_, Result<u64, ChainError>>;

    /// Follows the manager from block `from_block` on: for every block in order, its channel
    /// events and then [`ListenerEvent::Block`]; failures as [`ListenerEvent::Unavailable`]
    /// (and [`ListenerEvent::Recovered`]), never an end. The node stores the last block whose
    /// marker it handled and follows again from the next one after a restart. Deliver only
    /// blocks that will not be reorganized away (enough confirmations): the node does not undo
    /// an event it handled.
    fn follow(&self, from_block: u64) -> Result<mpsc::Receiver<ListenerEvent>, ChainError>;
}

/// The default [`Chain`]: a JSON-RPC endpoint (anvil, a testnet, a node), calls signed with the
/// node's key, events polled with `eth_getLogs` ([`entente_chain::ChainListener`]).
#[derive(Debug, Clone)]
pub struct RpcChain {
    client: Arc<ChainClient>,
    manager: Address,
    listener: ListenerConfig,
}

impl RpcChain {
    /// A chain over `client`, whose manager is `manager`, followed with `listener`'s settings.
    pub fn new(client: ChainClient, manager: Address, listener: ListenerConfig) -> Self {
        Self {
            client: Arc::new(client.with_manager(manager)),
            manager,
            listener,
        }
    }

    /// The JSON-RPC client (the node's account).
    pub fn client(&self) -> &ChainClient {
        &self.client
    }
}

impl Chain for RpcChain {
    fn chain_id(&self) -> u64 {
        self.client.chain_id()
    }

    fn manager(&self) -> Address {
        self.manager
    }

    fn account(&self) -> Address {
        self.client.address()
    }

    fn send(&self, channel_id: B256, call: ChainCall) -> BoxFuture<'_, CallReport> {
        Box::pin(async move {
            let result = self
                .client
                .send(call.target(self.manager), call.calldata(channel_id), call.value())
                .await
                .and_then(|r| r.into_result());
            match result {
                Ok(receipt) => CallReport {
                    outcome: CallOutcome::Mined,
                    gas_used: receipt.gas_used,
                },
                Err(e @ ChainError::Reverted { .. }) => CallReport {
                    outcome: CallOutcome::Reverted(e.to_string()),
                    gas_used: 0,
                },
                Err(e) => CallReport::not_sent(e.to_string()),
            }
        })
    }

    fn channel(&self, channel_id: B256) -> BoxFuture<'_, Result<IStateChannelManager::Channel, ChainError>> {
        Box::pin(self.client.channel(channel_id))
    }

    fn code(&self, account: Address) -> BoxFuture<'_, Result<Bytes, ChainError>> {
        Box::pin(self.client.code(account))
    }

    fn balance(&self, account: Address) -> BoxFuture<'_, Result<U256, ChainError>> {
        Box::pin(self.client.balance(account))
    }

    fn block_number(&self) -> BoxFuture<'_, Result<u64, ChainError>> {
        Box::pin(self.client.block_number())
    }

    fn now(&self) -> BoxFuture<'_, Result<u64, ChainError>> {
        Box::pin(self.client.now())
    }

    fn follow(&self, from_block: u64) -> Result<mpsc::Receiver<ListenerEvent>, ChainError> {
        let mut listener = self.client.listen(from_block, self.listener.clone())?;
        let (tx, rx) = mpsc::channel(self.listener.capacity.max(1));
        tokio::spawn(async move {
            // The listener stops polling when it is dropped: when the node stops reading.
            while let Some(event) = listener.next().await {
                if tx.send(event).await.is_err() {
                    break;
                }
            }
        });
        Ok(rx)
    }
}
