//! A turn's messages and changes of peers, handed to the transport in order.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use entente_types::{Address, B256, Envelope};
use tokio::sync::Notify;
use tracing::{debug, warn};

use crate::parts::Transport;

const TARGET: &str = "entente::node";

/// What a turn hands to the transport.
#[derive(Debug)]
pub(crate) enum Out {
    /// A message of a channel, to one peer or to all.
    Message(B256, Option<Address>, Box<Envelope>),
    /// A channel's peers from now on.
    Peers(B256, Vec<Address>),
}

/// Outs waiting for the task at most; beyond that messages are dropped (a transport may drop
/// messages: the cores ask again for what they miss), changes of peers are always kept.
const MAX_BEHIND: usize = 16 * 1024;

/// Hands each [`Out`] to the transport in the order given: straight into the transport's queue
/// when it takes it at once ([`Transport::post`], [`Transport::post_peers`]: no task in between),
/// else through one task that offers them again, one after the other, until the transport takes
/// each (a transport that does not take posts: awaiting each change of peers, a task per
/// message). Once anything waits for that task, everything after it goes there too, so what is
/// handed over reaches a posting transport's queue in order.
pub(crate) struct Outbound {
    transport: Arc<dyn Transport>,
    behind: Arc<Behind>,
}

/// The outs waiting for the task, oldest first, and whether the task is carrying one out (taken
/// from the queue, not yet in the transport's queue: what comes after it must wait too).
#[derive(Default)]
struct Behind {
    state: Mutex<Waiting>,
    wake: Notify,
}

#[derive(Default)]
struct Waiting {
    outs: VecDeque<Out>,
    carrying: bool,
}

impl Behind {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        // A panic while holding the lock cannot leave the queue half-changed.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Outbound {
    /// Starts the task (on the current tokio runtime).
    pub(crate) fn new(transport: Arc<dyn Transport>) -> Self {
        let behind = Arc::new(Behind::default());
        let (carrier, queue) = (transport.clone(), behind.clone());
        tokio::spawn(async move {
            loop {
                let next = {
                    let mut waiting = queue.lock();
                    let next = waiting.outs.pop_front();
                    waiting.carrying = next.is_some();
                    next
                };
                let Some(out) = next else {
                    queue.wake.notified().await;
                    continue;
                };
                carry(&carrier, out).await;
                // Only now is it in the transport's queue (or done): what follows may go
                // straight in once nothing else waits.
                queue.lock().carrying = false;
            }
        });
        Self { transport, behind }
    }

    /// Hands `out` over after everything handed over before it.
    pub(crate) fn hand(&self, out: Out) {
        let mut waiting = self.behind.lock();
        let out = if waiting.carrying || !waiting.outs.is_empty() {
            out
        } else {
            match offer(self.transport.as_ref(), out) {
                None => return,
                Some(out) => out,
            }
        };
        if waiting.outs.len() >= MAX_BEHIND && matches!(out, Out::Message(..)) {
            warn!(target: TARGET, "{} messages wait for the transport: one dropped", waiting.outs.len());
            return;
        }
        waiting.outs.push_back(out);
        drop(waiting);
        self.behind.wake.notify_one();
    }
}

/// Posts `out` into the transport's queue; gives it back if the queue did not take it (full, or
/// a transport that does not take posts).
fn offer(transport: &dyn Transport, out: Out) -> Option<Out> {
    match out {
        Out::Message(channel_id, to, envelope) => transport
            .post(channel_id, to, *envelope)
            .map(|envelope| Out::Message(channel_id, to, Box::new(envelope))),
        Out::Peers(channel_id, peers) => transport
            .post_peers(channel_id, peers)
            .map(|peers| Out::Peers(channel_id, peers)),
    }
}

/// Carries out one out that waited: offered to a posting transport's queue again until it takes
/// it (so that it keeps its place before the outs after it); a transport that does not take
/// posts gets it the slow way (awaiting a change of peers, a task per message).
async fn carry(transport: &Arc<dyn Transport>, out: Out) {
    let mut out = out;
    if transport.posts() {
        loop {
            out = match offer(transport.as_ref(), out) {
                None => return,
                Some(out) => out,
            };
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    match out {
        Out::Message(channel_id, to, envelope) => {
            tokio::spawn(send(transport.clone(), channel_id, to, *envelope));
        }
        Out::Peers(channel_id, peers) => {
            if let Err(e) = transport.set_peers(channel_id, peers).await {
                warn!(target: TARGET, channel = %channel_id, error = %e, "cannot update the channel's peers");
            }
        }
    }
}

/// Sends one message of `channel_id` (to one peer, or to every other participant).
async fn send(transport: Arc<dyn Transport>, channel_id: B256, to: Option<Address>, envelope: Envelope) {
    let result = match to {
        Some(to) => transport.send(channel_id, to, envelope).await,
        None => transport.broadcast(channel_id, envelope).await,
    };
    if let Err(e) = result {
        debug!(target: TARGET, channel = %channel_id, error = %e, "not sent");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::parts::BoxFuture;
    use crate::parts::TransportError;
    use entente_types::{Message, SyncRequest};

    /// Records what it is asked, takes posts of messages at once, never takes a change of peers
    /// at once, and holds each `set_peers` until the test lets it go.
    #[derive(Default)]
    struct Recorder {
        log: Mutex<Vec<String>>,
        gate: Notify,
        /// Takes posts of changes of peers too, and refuses every post while `full`.
        posting: bool,
        full: std::sync::atomic::AtomicBool,
    }

    impl Recorder {
        fn note(&self, what: String) {
            self.log.lock().unwrap().push(what);
        }
    }

    fn height(envelope: &Envelope) -> u64 {
        match &envelope.message {
            Message::SyncRequest(r) => r.from_height,
            other => panic!("{other:?}"),
        }
    }

    impl Transport for Recorder {
        fn set_peers(&self, _: B256, peers: Vec<Address>) -> BoxFuture<'_, Result<(), TransportError>> {
            Box::pin(async move {
                self.gate.notified().await;
                self.note(format!("peers {}", peers.len()));
                Ok(())
            })
        }

        fn send(&self, _: B256, _: Address, envelope: Envelope) -> BoxFuture<'_, Result<(), TransportError>> {
            Box::pin(async move {
                self.note(format!("send {}", height(&envelope)));
                Ok(())
            })
        }

        fn broadcast(&self, _: B256, envelope: Envelope) -> BoxFuture<'_, Result<(), TransportError>> {
            Box::pin(async move {
                self.note(format!("send {}", height(&envelope)));
                Ok(())
            })
        }

        fn posts(&self) -> bool {
            self.posting
        }

        fn post(&self, _: B256, _: Option<Address>, envelope: Envelope) -> Option<Envelope> {
            if self.full.load(std::sync::atomic::Ordering::SeqCst) {
                return Some(envelope);
            }
            self.note(format!("post {}", height(&envelope)));
            None
        }

        fn post_peers(&self, _: B256, peers: Vec<Address>) -> Option<Vec<Address>> {
            if !self.posting || self.full.load(std::sync::atomic::Ordering::SeqCst) {
                return Some(peers);
            }
            self.note(format!("post peers {}", peers.len()));
            None
        }
    }

    fn message(height: u64) -> Out {
        let channel_id = B256::repeat_byte(1);
        let message = Message::SyncRequest(SyncRequest {
            channel_id,
            fork: 0,
            from_height: height,
        });
        Out::Message(channel_id, None, Box::new(Envelope::new(message)))
    }

    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn messages_handed_after_a_change_of_peers_wait_for_it() {
        let recorder = Arc::new(Recorder::default());
        let outbound = Outbound::new(recorder.clone());
        outbound.hand(message(1));
        outbound.hand(Out::Peers(B256::repeat_byte(1), vec![Address::repeat_byte(2)]));
        outbound.hand(message(2));
        settle().await;
        // The change of peers is under way: what follows still waits behind it.
        outbound.hand(message(3));
        settle().await;
        assert_eq!(*recorder.log.lock().unwrap(), ["post 1"]);
        recorder.gate.notify_one();
        settle().await;
        assert_eq!(
            *recorder.log.lock().unwrap(),
            ["post 1", "peers 1", "send 2", "send 3"]
        );
        // Nothing waits any more: straight to the transport again.
        outbound.hand(message(4));
        assert_eq!(recorder.log.lock().unwrap().last().unwrap(), "post 4");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn what_a_full_queue_refused_is_offered_again_in_order() {
        let recorder = Arc::new(Recorder {
            posting: true,
            ..Recorder::default()
        });
        let outbound = Outbound::new(recorder.clone());
        outbound.hand(message(1));
        recorder.full.store(true, std::sync::atomic::Ordering::SeqCst);
        outbound.hand(message(2));
        outbound.hand(Out::Peers(B256::repeat_byte(1), vec![Address::repeat_byte(2)]));
        settle().await;
        // The queue has room again: the task offers 2, then the peers; a message handed now
        // comes after them, not before.
        recorder.full.store(false, std::sync::atomic::Ordering::SeqCst);
        outbound.hand(message(3));
        // The task offers again every millisecond: wait for all four, bounded.
        tokio::time::timeout(Duration::from_secs(10), async {
            while recorder.log.lock().unwrap().len() < 4 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("the task never offered what waited");
        assert_eq!(
            *recorder.log.lock().unwrap(),
            ["post 1", "post 2", "post peers 1", "post 3"]
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_message_handed_while_the_task_carries_the_last_one_waits_for_it() {
        let recorder = Arc::new(Recorder {
            posting: true,
            ..Recorder::default()
        });
        let outbound = Outbound::new(recorder.clone());
        recorder.full.store(true, std::sync::atomic::Ordering::SeqCst);
        outbound.hand(message(1));
        settle().await;
        // The task took 1 (nothing else waits) and offers it again in a millisecond; the queue
        // has room now, but 2 may not go straight in ahead of it.
        recorder.full.store(false, std::sync::atomic::Ordering::SeqCst);
        outbound.hand(message(2));
        tokio::time::timeout(Duration::from_secs(10), async {
            while recorder.log.lock().unwrap().len() < 2 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("the task never offered what waited");
        assert_eq!(*recorder.log.lock().unwrap(), ["post 1", "post 2"]);
    }
}
