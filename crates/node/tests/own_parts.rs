//! An embedder's own transport and chain: two nodes that talk through an in-process message hub
//! (no libp2p, no sockets) and settle on an in-process chain (the real StateChannelManager
//! bytecode in revm, `entente-devchain`; no anvil) play a whole game from proposal to payout
//! with in-memory stores. Every message goes through the hub and every chain call and event
//! through the embedder's [`Chain`]: the node has no other way out.
//!
//! The same game with one node's store on a journaled disk whose syncs take a while (the node
//! writes each turn and syncs it off its event loop): every message that carries that node's
//! signature leaves only once the signature's record would survive a power cut.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use entente_chain::{ChainError, ListenerEvent};
use entente_channel::{CallOutcome, ChainCall};
use entente_contracts::{IStateChannelManager, TicTacToe, artifacts};
use entente_devchain::DevChain;
use entente_node::{
    BoxFuture, CallReport, Chain, Inbound, MachineSource, Node, NodeConfig, NodeParts, ProposalBuilder,
    Transport, TransportError, TransportParts,
};
use entente_types::{Address, B256, Bytes, Envelope, LocalSigner, Signer, U256};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(60);

fn ether(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
}

/// Looks at a message as it leaves its sender: `Err` says what is wrong with it.
type Check = Box<dyn Fn(Address, &Envelope) -> Result<(), String> + Send + Sync>;

/// Delivers channel messages between the nodes of one process.
#[derive(Default)]
struct Hub {
    inboxes: Mutex<HashMap<Address, mpsc::Sender<Inbound>>>,
    /// (node, channel) -> the channel's participants as that node set them.
    peers: Mutex<HashMap<(Address, B256), Vec<Address>>>,
    delivered: AtomicU64,
    /// Run on every message sent (each copy of a broadcast).
    check: Option<Check>,
    /// What the check found wrong.
    violations: Mutex<Vec<String>>,
}

impl Hub {
    fn attach(self: &Arc<Self>, me: Address) -> TransportParts {
        let (tx, inbound) = mpsc::channel(1024);
        self.inboxes.lock().unwrap().insert(me, tx);
        TransportParts {
            transport: Arc::new(HubTransport {
                hub: self.clone(),
                me,
            }),
            inbound,
        }
    }

    fn deliver(
        &self,
        from: Address,
        to: Address,
        channel_id: B256,
        envelope: Envelope,
    ) -> Result<(), TransportError> {
        if let Some(check) = &self.check
            && let Err(e) = check(from, &envelope)
        {
            self.violations.lock().unwrap().push(e);
        }
        let inbox = self.inboxes.lock().unwrap().get(&to).cloned();
        let inbox = inbox.ok_or_else(|| TransportError(format!("{to} is not on the hub")))?;
        inbox
            .try_send(Inbound {
                from,
                channel_id,
                envelope,
            })
            .map_err(|e| TransportError(format!("{to}: {e}")))?;
        self.delivered.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

struct HubTransport {
    hub: Arc<Hub>,
    me: Address,
}

impl Transport for HubTransport {
    fn set_peers(&self, channel_id: B256, peers: Vec<Address>) -> BoxFuture<'_, Result<(), TransportError>> {
        let mut all = self.hub.peers.lock().unwrap();
        if peers.is_empty() {
            all.remove(&(self.me, channel_id));
        } else {
            all.insert((self.me, channel_id), peers);
        }
        Box::pin(async { Ok(()) })
    }

    fn send(
        &self,
        channel_id: B256,
        to: Address,
        envelope: Envelope,
    ) -> BoxFuture<'_, Result<(), TransportError>> {
        let result = self.hub.deliver(self.me, to, channel_id, envelope);
        Box::pin(async move { result })
    }

    fn broadcast(&self, channel_id: B256, envelope: Envelope) -> BoxFuture<'_, Result<(), TransportError>> {
        let peers = self
            .hub
            .peers
            .lock()
            .unwrap()
            .get(&(self.me, channel_id))
            .cloned()
            .unwrap_or_default();
        let mut result = Ok(());
        for to in peers.into_iter().filter(|p| *p != self.me) {
            if let Err(e) = self.hub.deliver(self.me, to, channel_id, envelope.clone()) {
                result = Err(e);
            }
        }
        Box::pin(async move { result })
    }
}

/// Work for the chain's thread.
type Job = Box<dyn FnOnce(&mut DevChain) + Send>;

/// The in-process chain, shared by the nodes. revm's state stays on one thread: the chain
/// lives on its own and the nodes' parts send it work. Its clock follows the wall clock.
struct DevWorld {
    jobs: std::sync::mpsc::SyncSender<Job>,
    /// The calls the nodes sent, by name, in order.
    calls: Mutex<Vec<&'static str>>,
}

/// What the chain was set up with.
struct Setup {
    chain_id: u64,
    manager: Address,
    machine: Address,
}

impl DevWorld {
    /// A chain with the manager and tic-tac-toe deployed and `accounts` funded with 10 ether.
    fn start(accounts: Vec<Address>) -> (Arc<Self>, Setup) {
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(1024);
        let (setup_tx, setup_rx) = std::sync::mpsc::sync_channel(1);
        std::thread::spawn(move || {
            let mut chain = DevChain::with_manager().unwrap();
            let machine = chain
                .deploy_artifact(DevChain::DEPLOYER, artifacts::TIC_TAC_TOE)
                .unwrap();
            for who in accounts {
                chain.fund(who, ether(10)).unwrap();
            }
            #[allow(clippy::disallowed_methods)] // the embedder's chain follows the wall clock
            let (genesis, started) = (chain.timestamp(), Instant::now());
            setup_tx
                .send(Setup {
                    chain_id: chain.chain_id(),
                    manager: chain.manager().unwrap(),
                    machine,
                })
                .unwrap();
            for job in queue {
                let now = genesis + started.elapsed().as_secs();
                if now > chain.timestamp() {
                    chain.set_timestamp(now).unwrap();
                }
                job(&mut chain);
            }
        });
        let setup = setup_rx.recv().unwrap();
        let world = Arc::new(Self {
            jobs,
            calls: Mutex::new(Vec::new()),
        });
        (world, setup)
    }

    /// Runs `f` on the chain (at the wall clock's time) and returns what it returns.
    async fn run<T: Send + 'static>(&self, f: impl FnOnce(&mut DevChain) -> T + Send + 'static) -> T {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move |chain| {
                let _ = tx.send(f(chain));
            }))
            .expect("the chain's thread runs");
        rx.await.expect("the chain's thread answers")
    }
}

/// One node's account on the [`DevWorld`].
struct DevAccount {
    world: Arc<DevWorld>,
    account: Address,
    chain_id: u64,
    manager: Address,
}

fn local(e: impl std::fmt::Display) -> ChainError {
    ChainError::Local(e.to_string())
}

impl Chain for DevAccount {
    fn chain_id(&self) -> u64 {
        self.chain_id
    }

    fn manager(&self) -> Address {
        self.manager
    }

    fn account(&self) -> Address {
        self.account
    }

    fn send(&self, channel_id: B256, call: ChainCall) -> BoxFuture<'_, CallReport> {
        self.world.calls.lock().unwrap().push(call.name());
        let (from, to) = (self.account, call.target(self.manager));
        let (data, value) = (call.calldata(channel_id), call.value());
        Box::pin(
            self.world
                .run(move |chain| match chain.send(from, to, data, value) {
                    Ok(receipt) if receipt.success => CallReport {
                        outcome: CallOutcome::Mined,
                        gas_used: receipt.gas_used,
                    },
                    Ok(receipt) => CallReport {
                        outcome: CallOutcome::Reverted(receipt.failure()),
                        gas_used: receipt.gas_used,
                    },
                    Err(e) => CallReport::not_sent(e.to_string()),
                }),
        )
    }

    fn channel(&self, channel_id: B256) -> BoxFuture<'_, Result<IStateChannelManager::Channel, ChainError>> {
        Box::pin(
            self.world
                .run(move |chain| chain.channel(channel_id).map_err(local)),
        )
    }

    fn code(&self, account: Address) -> BoxFuture<'_, Result<Bytes, ChainError>> {
        Box::pin(self.world.run(move |chain| Ok(chain.code(account))))
    }

    fn balance(&self, account: Address) -> BoxFuture<'_, Result<U256, ChainError>> {
        Box::pin(self.world.run(move |chain| Ok(chain.balance(account))))
    }

    fn block_number(&self) -> BoxFuture<'_, Result<u64, ChainError>> {
        Box::pin(self.world.run(|chain| Ok(chain.block_number())))
    }

    fn now(&self) -> BoxFuture<'_, Result<u64, ChainError>> {
        Box::pin(self.world.run(|chain| Ok(chain.timestamp())))
    }

    fn follow(&self, from_block: u64) -> Result<mpsc::Receiver<ListenerEvent>, ChainError> {
        let (tx, rx) = mpsc::channel(1024);
        let world = self.world.clone();
        tokio::spawn(async move {
            let mut next = from_block;
            loop {
                // A block per second of chain time; the events of the blocks since `next`.
                let (events, head) = world
                    .run(move |chain| {
                        if chain.head().timestamp < chain.timestamp() {
                            chain.mine();
                        }
                        let mut events = Vec::new();
                        for log in chain.logs_since(next) {
                            let Some(event) = &log.event else { continue };
                            if let Some((channel_id, event)) =
                                entente_dispute::decode_event(event, log.timestamp)
                            {
                                events.push(ListenerEvent::Channel {
                                    block: log.block_number,
                                    channel_id,
                                    event,
                                });
                            }
                        }
                        (events, chain.head())
                    })
                    .await;
                if head.number >= next {
                    for event in events {
                        if tx.send(event).await.is_err() {
                            return;
                        }
                    }
                    let marker = ListenerEvent::Block {
                        number: head.number,
                        timestamp: head.timestamp,
                    };
                    if tx.send(marker).await.is_err() {
                        return;
                    }
                    next = head.number + 1;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Ok(rx)
    }
}

/// Waits for the first proposal `node` hears of.
async fn next_proposal(
    node: &Node,
    events: &mut tokio::sync::broadcast::Receiver<entente_node::NodeEvent>,
) -> B256 {
    let _ = node;
    tokio::time::timeout(WAIT, async {
        loop {
            if let entente_node::NodeEvent::Proposal { proposal, .. } = events.recv().await.unwrap() {
                return proposal.channel_id;
            }
        }
    })
    .await
    .expect("a proposal")
}

const KEYS: [B256; 2] = [B256::repeat_byte(0x11), B256::repeat_byte(0x22)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_its_own_transport_and_chain_plays_to_payout() {
    let hub = Arc::new(Hub::default());
    play_through_the_hub(hub, entente_store::Store::in_memory().unwrap()).await;
}

/// A disk that keeps what was synced apart from what was only written; a sync takes a while.
#[derive(Debug, Clone, Default)]
struct SlowDisk {
    /// (durable, current)
    bytes: Arc<Mutex<(Vec<u8>, Vec<u8>)>>,
    /// Syncs made by the node's sync thread (the others are the event loop's own).
    by_sync_thread: Arc<AtomicU64>,
    syncs: Arc<AtomicU64>,
}

impl SlowDisk {
    /// What a power cut would leave: the bytes as of the last sync.
    fn after_power_cut(&self) -> SlowDisk {
        let durable = self.bytes.lock().unwrap().0.clone();
        SlowDisk {
            bytes: Arc::new(Mutex::new((durable.clone(), durable))),
            by_sync_thread: Arc::default(),
            syncs: Arc::default(),
        }
    }
}

impl entente_store::StorageBackend for SlowDisk {
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.bytes.lock().unwrap().1.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        let bytes = self.bytes.lock().unwrap();
        let src = bytes
            .1
            .get(offset as usize..offset as usize + out.len())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "read past the end"))?;
        out.copy_from_slice(src);
        Ok(())
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.bytes.lock().unwrap().1.resize(len as usize, 0);
        Ok(())
    }

    fn sync_data(&self) -> std::io::Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        if std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("entente-sync"))
        {
            self.by_sync_thread.fetch_add(1, Ordering::Relaxed);
        }
        // Taken before the wait: only what was written before the sync starts is covered.
        let current = self.bytes.lock().unwrap().1.clone();
        std::thread::sleep(Duration::from_millis(3));
        let mut bytes = self.bytes.lock().unwrap();
        bytes.0 = current;
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let mut bytes = self.bytes.lock().unwrap();
        let end = offset as usize + data.len();
        if bytes.1.len() < end {
            bytes.1.resize(end, 0);
        }
        bytes.1[offset as usize..end].copy_from_slice(data);
        Ok(())
    }
}

/// Small, so that the game also goes through the journal's checkpoints.
const JOURNAL_CAPACITY: u64 = 32 << 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_leaves_only_once_its_record_survives_a_power_cut() {
    // A quiet node syncs on its event loop's thread; a busy one on its sync thread.
    let quiet = checked_game(false).await;
    assert!(
        quiet.1 < quiet.2,
        "the quiet node synced on its own thread too: {quiet:?}"
    );
    let busy = checked_game(true).await;
    assert!(
        busy.1 > 0,
        "the busy node's sync thread made some of the syncs: {busy:?}"
    );
}

/// A game in which every message of alice's that carries her signature is checked against the
/// store a power cut would leave; alice's node is busy (messages keep arriving) or not.
/// Returns (messages checked, syncs by the sync thread, syncs in all).
#[allow(clippy::print_stdout)] // what the run saw, in the test's output
async fn checked_game(busy: bool) -> (u64, u64, u64) {
    let alice = LocalSigner::from_bytes(&KEYS[0]).unwrap().address();
    let (db, journal) = (SlowDisk::default(), SlowDisk::default());
    let store =
        entente_store::Store::with_journal(db.clone(), journal.clone(), JOURNAL_CAPACITY, "alice").unwrap();
    let (threaded, syncs) = (journal.by_sync_thread.clone(), journal.syncs.clone());
    let checked = Arc::new(AtomicU64::new(0));
    let counted = checked.clone();
    // Every message of alice's that carries her signature on a transaction: the record of that
    // signature is in the store a power cut would leave at that moment.
    let check: Check = Box::new(move |from, envelope| {
        use entente_types::Message;
        if from != alice {
            return Ok(());
        }
        let (channel, fork, height, digest) = match &envelope.message {
            Message::Transaction(t) if t.transaction.participant == alice => (
                t.transaction.channelId,
                t.transaction.forkCnt,
                t.transaction.height,
                None,
            ),
            Message::Confirmation(c) => (c.channel_id, c.fork, c.height, Some(c.digest)),
            _ => return Ok(()),
        };
        counted.fetch_add(1, Ordering::Relaxed);
        let after = entente_store::Store::with_journal(
            db.after_power_cut(),
            journal.after_power_cut(),
            JOURNAL_CAPACITY,
            "alice after a power cut",
        )
        .map_err(|e| format!("the store does not open after a power cut: {e}"))?;
        match after.own_signature(&channel, fork, height).unwrap() {
            Some(d) if digest.is_none_or(|digest| d == digest) => Ok(()),
            other => Err(format!(
                "alice's signature at fork {fork} height {height} left while a power cut would leave {other:?} recorded"
            )),
        }
    });
    let hub = Arc::new(Hub {
        check: Some(check),
        ..Hub::default()
    });
    // A busy node: messages for a channel alice does not know keep arriving, so that her turns
    // take several inputs and her journal is synced by her sync thread (a quiet node's loop
    // syncs itself).
    let busy = Arc::new(std::sync::atomic::AtomicBool::new(busy));
    let noise = {
        let (hub, busy) = (hub.clone(), busy.clone());
        let bob = LocalSigner::from_bytes(&KEYS[1]).unwrap().address();
        std::thread::spawn(move || {
            let unknown = B256::repeat_byte(0xee);
            let message = entente_types::Message::SyncRequest(entente_types::SyncRequest {
                channel_id: unknown,
                fork: 0,
                from_height: 0,
            });
            while busy.load(Ordering::Relaxed) {
                // The inbox may be full or not attached yet: noise, either way.
                let _ = hub.deliver(bob, alice, unknown, Envelope::new(message.clone()));
                std::thread::sleep(Duration::from_micros(50));
            }
        })
    };
    play_through_the_hub(hub.clone(), store).await;
    busy.store(false, Ordering::Relaxed);
    noise.join().unwrap();
    let violations = hub.violations.lock().unwrap().clone();
    assert!(violations.is_empty(), "{violations:#?}");
    let checked = checked.load(Ordering::Relaxed);
    assert!(checked >= 5, "alice's signed messages were checked ({checked})");
    let (threaded, syncs) = (threaded.load(Ordering::Relaxed), syncs.load(Ordering::Relaxed));
    println!("{checked} signed messages checked; {threaded} of {syncs} journal syncs by the sync thread");
    (checked, threaded, syncs)
}

/// Alice (storing in `alice_store`) and bob play a game through `hub` on the in-process chain,
/// and are paid.
#[allow(clippy::print_stdout)] // what the run saw, in the test's output
async fn play_through_the_hub(hub: Arc<Hub>, alice_store: entente_store::Store) {
    let keys = KEYS;
    let [a, b] = keys.map(|k| LocalSigner::from_bytes(&k).unwrap().address());
    let (
        world,
        Setup {
            chain_id,
            manager,
            machine,
        },
    ) = DevWorld::start(vec![a, b]);
    let dir = tempfile::tempdir().unwrap();

    let mut nodes = Vec::new();
    let mut alice_store = Some(alice_store);
    for (key, who) in keys.iter().zip([a, b]) {
        // The config's chain and network settings point nowhere: nothing but the parts is used.
        let mut config = NodeConfig::new(
            *key,
            "http://127.0.0.1:9",
            Address::ZERO,
            dir.path().join("unused"),
        );
        config.listen = Vec::new();
        let store = match alice_store.take() {
            Some(store) => store,
            None => entente_store::Store::in_memory().unwrap(),
        };
        let parts = NodeParts {
            store: Some(store),
            transport: Some(hub.attach(who)),
            chain: Some(Arc::new(DevAccount {
                world: world.clone(),
                account: who,
                chain_id,
                manager,
            })),
            ..NodeParts::default()
        };
        nodes.push(Node::start_with(config, parts).await.unwrap());
    }
    let (alice, bob) = (nodes[0].clone(), nodes[1].clone());
    assert!(
        alice.listen_addrs().await.unwrap().is_empty(),
        "no libp2p: nothing listens"
    );
    assert!(
        !dir.path().join("unused").exists(),
        "no data directory was written"
    );

    let code = MachineSource::ArtifactJson(artifacts::TIC_TAC_TOE.to_string());
    let stake = ether(1);
    let proposal = ProposalBuilder::new(machine, vec![a, b], vec![stake, stake])
        .build(&alice, &code, &TicTacToe::initialStateCall { x: a, o: b, stake })
        .await
        .unwrap();
    assert_eq!(proposal.chain_id, chain_id);
    assert_eq!(proposal.manager, manager);
    let before = [alice.balance().await.unwrap(), bob.balance().await.unwrap()];

    let mut bob_events = bob.events();
    let game_a = alice.propose(proposal, code.clone()).await.unwrap();
    let channel_id = next_proposal(&bob, &mut bob_events).await;
    let game_b = bob.accept(channel_id, code).await.unwrap();
    game_a.wait_live(WAIT).await.unwrap();
    game_b.wait_live(WAIT).await.unwrap();

    // X (alice) wins down the middle column.
    for (x, cell) in [(true, 4u8), (false, 0), (true, 1), (false, 2), (true, 7)] {
        let (game, me) = if x { (&game_a, a) } else { (&game_b, b) };
        game.wait_until("my turn", WAIT, |i| i.next_writer == me || i.game_over)
            .await
            .unwrap();
        game.call(&TicTacToe::playCall { cell }).await.unwrap();
    }
    let closed = game_a.wait_closed(WAIT).await.unwrap();
    assert_eq!(closed.exits.unwrap(), vec![(a, ether(2)), (b, U256::ZERO)]);
    for game in [&game_a, &game_b] {
        game.wait_until("the withdrawal", WAIT, |i| i.calls_outstanding == 0)
            .await
            .unwrap();
    }
    // Gas costs nothing on this chain: the payouts are exact.
    let after = [alice.balance().await.unwrap(), bob.balance().await.unwrap()];
    assert_eq!(after[0], before[0] + stake, "alice is paid her deposit and bob's");
    assert_eq!(after[1], before[1] - stake, "bob lost his deposit");
    // A cooperative game: the moves went through the hub (nothing had to be posted on chain)
    // and the chain part carried the opening, the settlement and the payout, each once.
    let delivered = hub.delivered.load(Ordering::Relaxed);
    let calls = world.calls.lock().unwrap().clone();
    println!("{delivered} messages through the hub; chain calls through the embedder's chain: {calls:?}");
    assert_eq!(calls, ["open", "deposit", "close", "withdraw"]);
    assert!(
        delivered >= 10,
        "the moves went through the hub ({delivered} messages)"
    );
}

#[tokio::test]
async fn a_chain_part_for_another_account_is_refused() {
    let (world, setup) = DevWorld::start(Vec::new());
    let (chain_id, manager) = (setup.chain_id, setup.manager);
    let key = B256::repeat_byte(0x11);
    let other = LocalSigner::from_bytes(&B256::repeat_byte(0x22))
        .unwrap()
        .address();
    let dir = tempfile::tempdir().unwrap();
    let config = NodeConfig::new(
        key,
        "http://127.0.0.1:9",
        Address::ZERO,
        dir.path().join("unused"),
    );
    let hub = Arc::new(Hub::default());
    let parts = NodeParts {
        store: Some(entente_store::Store::in_memory().unwrap()),
        transport: Some(hub.attach(other)),
        chain: Some(Arc::new(DevAccount {
            world,
            account: other,
            chain_id,
            manager,
        })),
        ..NodeParts::default()
    };
    let error = Node::start_with(config, parts).await.unwrap_err();
    assert!(
        matches!(&error, entente_node::NodeError::Config(m) if m.contains("sends from")),
        "{error}"
    );
}
