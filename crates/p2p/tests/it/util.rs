//! Helpers: nodes on loopback and waiting for their events with timeouts.

use std::time::Duration;

use entente_p2p::{Multiaddr, P2pConfig, P2pEvent, P2pHandle, P2pManager};
use entente_types::{B256, Envelope, Message, SyncRequest, keccak256};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// Every wait in these tests is bounded by this.
pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// A deterministic secret key for test participant `i`.
pub(crate) fn key(i: u32) -> B256 {
    keccak256(format!("entente p2p test key {i}"))
}

/// The Ethereum address of the participant holding `secret`.
pub(crate) fn address_of(secret: &B256) -> entente_types::Address {
    let peer = entente_p2p::keypair_from_secret(secret)
        .unwrap()
        .public()
        .to_peer_id();
    entente_p2p::eth_address_of(&peer).unwrap()
}

/// A loopback node listening on TCP or QUIC (or both).
pub(crate) fn loopback_config(i: u32, tcp: bool, quic: bool) -> P2pConfig {
    let mut config = P2pConfig::new(key(i));
    config.listen_addrs.clear();
    if tcp {
        config.listen_addrs.push("/ip4/127.0.0.1/tcp/0".parse().unwrap());
    }
    if quic {
        config
            .listen_addrs
            .push("/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap());
    }
    config.public = true;
    config.send_timeout = Duration::from_secs(20);
    config
}

/// A running node and every event it reported so far.
pub(crate) struct Node {
    pub(crate) handle: P2pHandle,
    events: mpsc::Receiver<P2pEvent>,
    pub(crate) seen: Vec<P2pEvent>,
}

impl Node {
    pub(crate) fn spawn(config: P2pConfig) -> Self {
        let (handle, events) = P2pManager::spawn(config).unwrap();
        Self {
            handle,
            events,
            seen: Vec::new(),
        }
    }

    /// Waits (bounded by [`WAIT`]) for an event matching `pred`, looking at past events first.
    pub(crate) async fn wait<T>(&mut self, what: &str, mut pred: impl FnMut(&P2pEvent) -> Option<T>) -> T {
        if let Some(found) = self.seen.iter().find_map(&mut pred) {
            return found;
        }
        let result = timeout(WAIT, async {
            loop {
                let event = self.events.recv().await.expect("p2p task stopped");
                let found = pred(&event);
                self.seen.push(event);
                if let Some(found) = found {
                    return found;
                }
            }
        })
        .await;
        match result {
            Ok(found) => found,
            Err(_) => panic!("timed out waiting for {what}; events seen: {:#?}", self.seen),
        }
    }

    /// Takes whatever events are ready now.
    pub(crate) fn drain(&mut self) {
        while let Ok(event) = self.events.try_recv() {
            self.seen.push(event);
        }
    }

    /// The first address the node listens on with the given transport, with `/p2p/<id>`.
    pub(crate) async fn listen_addr(&mut self, quic: bool) -> Multiaddr {
        let peer = self.handle.local_peer_id();
        self.wait("a listen address", |e| match e {
            P2pEvent::Listening { address } if address.to_string().contains("quic") == quic => {
                Some(address.clone().with_p2p(peer).unwrap())
            }
            _ => None,
        })
        .await
    }
}

/// A small channel message carrying `height`.
pub(crate) fn message(channel_id: B256, height: u64) -> Envelope {
    Envelope::new(Message::SyncRequest(SyncRequest {
        channel_id,
        fork: 0,
        from_height: height,
    }))
}

/// The `height` of a message built by [`message`].
pub(crate) fn height_of(envelope: &Envelope) -> Option<u64> {
    match &envelope.message {
        Message::SyncRequest(r) => Some(r.from_height),
        _ => None,
    }
}
