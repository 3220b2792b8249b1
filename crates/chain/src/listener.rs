//! [`ChainListener`]: follows the StateChannelManager's logs (the DLT event listener).

use std::collections::BTreeMap;
use std::time::Duration;

use alloy::primitives::{Address, B256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{BlockNumberOrTag, Filter, Log};
use entente_contracts::decode_manager_log;
use entente_dispute::{ChainEvent, decode_event};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::client::{block_timestamp, rpc_client};
use crate::error::ChainError;

/// Options of a [`ChainListener`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// How often to ask for new blocks once caught up. Default 1 s.
    pub poll_interval: Duration,
    /// Blocks that must be mined on top of a block before it is delivered: block `b` is
    /// processed once `latest - confirmations >= b`. 0 delivers the latest block at once (fine
    /// on anvil; a chain that reorganizes needs enough confirmations, the listener does not
    /// undo delivered events). Default 0.
    pub confirmations: u64,
    /// At most this many blocks per `eth_getLogs` request (nodes cap the range). Default 1,000.
    pub max_blocks_per_poll: u64,
    /// Events buffered for the consumer; the listener waits while the buffer is full. Default
    /// 1,024.
    pub capacity: usize,
    /// Longest wait between retries while the chain fails (the wait doubles from
    /// `poll_interval` up to this). Default 30 s.
    pub max_backoff: Duration,
    /// Timeout of each HTTP request. Default 10 s.
    pub request_timeout: Duration,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            confirmations: 0,
            max_blocks_per_poll: 1_000,
            capacity: 1_024,
            max_backoff: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// What a [`ChainListener`] delivers, in chain order.
#[derive(Debug)]
pub enum ListenerEvent {
    /// A manager event of a channel, decoded with `entente_dispute::decode_event` (events the
    /// dispute layer does not use are skipped).
    Channel {
        /// The block that holds it.
        block: u64,
        /// The channel.
        channel_id: B256,
        /// The event (its chain time is the block's timestamp).
        event: ChainEvent,
    },
    /// Block `number` is fully processed: every channel event of it was delivered before this.
    /// The listener's cursor moves to `number` when the consumer receives it.
    Block {
        /// The block number.
        number: u64,
        /// Its timestamp.
        timestamp: u64,
    },
    /// A request failed (the chain is down, or answered nonsense); the listener retries in
    /// `retry_in` from where it stopped.
    Unavailable {
        /// What failed.
        error: ChainError,
        /// Consecutive failures so far (1 for the first).
        attempt: u32,
        /// When the next attempt is made.
        retry_in: Duration,
    },
    /// The chain answers again after [`ListenerEvent::Unavailable`].
    Recovered,
}

impl ListenerEvent {
    /// The dispute layer's view of it: `ChainEvent::Block` for a processed block, the channel
    /// event for a channel event, nothing for the listener's own health reports.
    pub fn chain_event(&self) -> Option<ChainEvent> {
        match self {
            Self::Block { timestamp, .. } => Some(ChainEvent::Block {
                timestamp: *timestamp,
            }),
            Self::Channel { event, .. } => Some(event.clone()),
            Self::Unavailable { .. } | Self::Recovered => None,
        }
    }
}

/// Follows one StateChannelManager's logs by polling `eth_getLogs` and delivers, for every
/// block in order, its channel events and then a [`ListenerEvent::Block`] marker.
///
/// [`ChainListener::cursor`] is the last block whose marker the consumer received. A node that
/// persists the cursor together with the effects of the events it handled (atomically, at each
/// marker) resumes with [`ChainListener::resume`] exactly after it: every event is handled
/// once across a restart. Failures never stop the listener: each is reported as
/// [`ListenerEvent::Unavailable`] and retried with exponential backoff from the first
/// unprocessed block, and [`ListenerEvent::Recovered`] says when the chain answers again.
///
/// The polling task runs on the tokio runtime the listener was started in and stops when the
/// listener is dropped. Its buffer is bounded ([`ListenerConfig::capacity`]).
#[derive(Debug)]
pub struct ChainListener {
    events: mpsc::Receiver<ListenerEvent>,
    task: JoinHandle<()>,
    next_block: u64,
}

impl ChainListener {
    /// Starts following `manager` on the chain at `url`, from block `from_block` (the first
    /// block delivered). Must be called inside a tokio runtime; fails only on a bad URL or
    /// without a runtime (an unreachable chain is reported as events).
    pub fn start(
        url: &str,
        manager: Address,
        from_block: u64,
        config: ListenerConfig,
    ) -> Result<Self, ChainError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| ChainError::Local(format!("a ChainListener needs a tokio runtime: {e}")))?;
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_client(rpc_client(url, config.request_timeout)?)
            .erased();
        let (tx, rx) = mpsc::channel(config.capacity.max(1));
        let poller = Poller {
            provider,
            url: url.to_string(),
            manager,
            next_block: from_block,
            failures: 0,
            config,
            tx,
        };
        let task = runtime.spawn(poller.run());
        Ok(Self {
            events: rx,
            task,
            next_block: from_block,
        })
    }

    /// Resumes after `cursor`, the last block a previous listener fully delivered
    /// ([`ChainListener::cursor`]): the first block delivered is `cursor + 1`.
    pub fn resume(
        url: &str,
        manager: Address,
        cursor: u64,
        config: ListenerConfig,
    ) -> Result<Self, ChainError> {
        Self::start(url, manager, cursor.saturating_add(1), config)
    }

    /// The next event; `None` only if the polling task is gone (it ends only when the
    /// listener is dropped, or if the runtime shuts down).
    pub async fn next(&mut self) -> Option<ListenerEvent> {
        let event = self.events.recv().await?;
        if let ListenerEvent::Block { number, .. } = event {
            self.next_block = number.saturating_add(1);
        }
        Some(event)
    }

    /// The last block fully delivered to the consumer (its [`ListenerEvent::Block`] received);
    /// `None` while none was (and the start block was 0).
    pub fn cursor(&self) -> Option<u64> {
        self.next_block.checked_sub(1)
    }

    /// The first block not yet fully delivered.
    pub fn next_block(&self) -> u64 {
        self.next_block
    }
}

impl Drop for ChainListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The polling task.
struct Poller {
    provider: DynProvider,
    url: String,
    manager: Address,
    /// First block not yet processed.
    next_block: u64,
    /// Consecutive failed polls.
    failures: u32,
    config: ListenerConfig,
    tx: mpsc::Sender<ListenerEvent>,
}

/// The consumer dropped the listener.
struct Closed;

impl Poller {
    async fn run(mut self) {
        loop {
            let wait = match self.poll().await {
                Err(Closed) => return,
                Ok(Ok(true)) => self.config.poll_interval,
                Ok(Ok(false)) => Duration::ZERO,
                Ok(Err(error)) => {
                    self.failures = self.failures.saturating_add(1);
                    let retry_in = self.backoff();
                    tracing::warn!(target: "entente::chain", %error, attempt = self.failures, ?retry_in, "chain listener: poll failed");
                    let report = ListenerEvent::Unavailable {
                        error,
                        attempt: self.failures,
                        retry_in,
                    };
                    if self.tx.send(report).await.is_err() {
                        return;
                    }
                    retry_in
                }
            };
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
    }

    fn backoff(&self) -> Duration {
        let base = self.config.poll_interval.max(Duration::from_millis(1));
        let doublings = self.failures.saturating_sub(1).min(20);
        base.saturating_mul(1u32 << doublings)
            .min(self.config.max_backoff.max(base))
    }

    async fn send(&self, event: ListenerEvent) -> Result<(), Closed> {
        self.tx.send(event).await.map_err(|_| Closed)
    }

    /// One round: processes up to `max_blocks_per_poll` confirmed blocks. `Ok(Ok(caught_up))`,
    /// `Ok(Err(_))` when a request failed (progress made so far is kept).
    async fn poll(&mut self) -> Result<Result<bool, ChainError>, Closed> {
        let latest = match self.provider.get_block_number().await {
            Ok(latest) => latest,
            Err(e) => return Ok(Err(ChainError::from_rpc(&self.url, "eth_blockNumber", e))),
        };
        if self.failures > 0 {
            self.failures = 0;
            tracing::info!(target: "entente::chain", "chain listener: the chain answers again");
            self.send(ListenerEvent::Recovered).await?;
        }
        let Some(safe) = latest.checked_sub(self.config.confirmations) else {
            return Ok(Ok(true));
        };
        if self.next_block > safe {
            return Ok(Ok(true));
        }
        let span = self.config.max_blocks_per_poll.max(1) - 1;
        let to = safe.min(self.next_block.saturating_add(span));
        let filter = Filter::new()
            .address(self.manager)
            .from_block(self.next_block)
            .to_block(to);
        let logs = match self.provider.get_logs(&filter).await {
            Ok(logs) => logs,
            Err(e) => return Ok(Err(ChainError::from_rpc(&self.url, "eth_getLogs", e))),
        };
        let by_block = match self.group(logs, to) {
            Ok(by_block) => by_block,
            Err(e) => return Ok(Err(e)),
        };
        for number in self.next_block..=to {
            let timestamp =
                match block_timestamp(&self.provider, &self.url, BlockNumberOrTag::Number(number)).await {
                    Ok(timestamp) => timestamp,
                    Err(e) => return Ok(Err(e)),
                };
            for log in by_block.get(&number).into_iter().flatten() {
                let Some(event) = decode_manager_log(log.topics(), &log.data().data) else {
                    continue;
                };
                if let Some((channel_id, event)) = decode_event(&event, timestamp) {
                    self.send(ListenerEvent::Channel {
                        block: number,
                        channel_id,
                        event,
                    })
                    .await?;
                }
            }
            self.send(ListenerEvent::Block { number, timestamp }).await?;
            self.next_block = number + 1;
        }
        Ok(Ok(to == safe))
    }

    /// The logs of `next_block..=to` by block, each block's in log-index order; removed logs
    /// (reorganized away) dropped.
    fn group(&self, logs: Vec<Log>, to: u64) -> Result<BTreeMap<u64, Vec<Log>>, ChainError> {
        let mut by_block: BTreeMap<u64, Vec<Log>> = BTreeMap::new();
        for log in logs {
            if log.removed {
                continue;
            }
            let bad = |reason: &str| ChainError::BadResponse {
                url: self.url.clone(),
                method: "eth_getLogs",
                reason: reason.to_string(),
            };
            let number = log
                .block_number
                .ok_or_else(|| bad("a log without a block number"))?;
            if number < self.next_block || number > to || log.address() != self.manager {
                return Err(bad("a log outside the requested blocks or address"));
            }
            by_block.entry(number).or_default().push(log);
        }
        for logs in by_block.values_mut() {
            logs.sort_by_key(|log| log.log_index);
        }
        Ok(by_block)
    }
}
