//! An embedder's own parts: a node whose channel signatures come from an asynchronous signer
//! (it answers "not yet" while a remote party signs, and sometimes fails) and whose channels live
//! in an in-memory store plays a whole game against a default node and is paid.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use entente_contracts::TicTacToe;
use entente_node::{Channel, Node, NodeParts};
use entente_types::{Address, B256, LocalSigner, SignError, Signature, Signer};
use support::{World, X_WINS, dial_addr, ether, tictactoe_proposal};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(120);

/// A signer that signs elsewhere: the first request for a digest starts the work and answers
/// `Pending`; the signature is ready a few milliseconds later (the signer then says so on
/// `ready`); one request in five fails outright.
struct RemoteSigner {
    key: LocalSigner,
    done: Arc<Mutex<BTreeMap<B256, Signature>>>,
    started: Mutex<BTreeSet<B256>>,
    ready: mpsc::Sender<()>,
    coin: AtomicU64,
    pending: AtomicU64,
    failed: AtomicU64,
}

impl Signer for RemoteSigner {
    fn address(&self) -> Address {
        self.key.address()
    }

    fn try_sign_digest(&self, digest: &B256) -> Result<Signature, SignError> {
        if let Some(signature) = self.done.lock().unwrap().get(digest) {
            return Ok(*signature);
        }
        // xorshift64 on a shared counter: a seeded coin.
        let mut x = self.coin.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed) | 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if x.is_multiple_of(5) {
            self.failed.fetch_add(1, Ordering::Relaxed);
            return Err(SignError::Failed("the wallet is busy".into()));
        }
        if self.started.lock().unwrap().insert(*digest) {
            let (key, done, ready, digest) =
                (self.key.clone(), self.done.clone(), self.ready.clone(), *digest);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(5 + x % 30));
                done.lock().unwrap().insert(digest, key.sign_digest(&digest));
                // A wake-up: one waiting is enough.
                let _ = ready.try_send(());
            });
        }
        self.pending.fetch_add(1, Ordering::Relaxed);
        Err(SignError::Pending)
    }
}

/// Plays `cell` in `me`'s turn, asking again while the signer has no signature yet.
async fn play_signed(channel: &Channel, me: Address, cell: u8) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        channel
            .wait_until("my turn", WAIT, |i| i.next_writer == me || i.game_over)
            .await
            .unwrap();
        // The signer may not have the signature yet: the move is refused unsigned, and asked
        // again.
        match channel.call(&TicTacToe::playCall { cell }).await {
            Ok(_) => return,
            Err(entente_node::NodeError::Move(entente_state_manager::SubmitError::Signer(_))) => {
                assert!(tokio::time::Instant::now() < deadline, "never signed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("move refused: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_an_asynchronous_failing_signer_and_an_in_memory_store_plays_and_is_paid() {
    let world = World::new().await;
    let dir = tempfile::tempdir().unwrap();
    let (ready_tx, mut ready_rx) = mpsc::channel(64);
    let key = LocalSigner::from_bytes(&world.key(1)).unwrap();
    let signer = Arc::new(RemoteSigner {
        key,
        done: Arc::new(Mutex::new(BTreeMap::new())),
        started: Mutex::new(BTreeSet::new()),
        ready: ready_tx,
        coin: AtomicU64::new(0x5eed),
        pending: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    let parts = NodeParts {
        signer: Some(signer.clone()),
        store: Some(entente_store::Store::in_memory().unwrap()),
        ..NodeParts::default()
    };
    let alice = Node::start_with(world.config(1, &dir.path().join("unused"), vec![]), parts)
        .await
        .unwrap();
    assert!(
        !dir.path().join("unused").exists(),
        "the in-memory node wrote no data directory"
    );
    // The signer tells the node when it has signatures ready.
    let waker = alice.clone();
    tokio::spawn(async move {
        while ready_rx.recv().await.is_some() {
            if waker.signer_ready().await.is_err() {
                return;
            }
        }
    });
    let bob = Node::start(world.config(2, &dir.path().join("bob"), vec![dial_addr(&alice).await]))
        .await
        .unwrap();
    let (a, b) = (alice.address(), bob.address());
    let (code, proposal) = tictactoe_proposal(&world, &alice, b).await;
    let before_a = alice.balance().await.unwrap();
    let game_a = alice.propose(proposal, code.clone()).await.unwrap();
    let (_, invitation) = bob.next_proposal(WAIT).await.unwrap();
    let game_b = bob.accept(invitation.channel_id, code).await.unwrap();
    game_a.wait_live(WAIT).await.unwrap();
    game_b.wait_live(WAIT).await.unwrap();
    // Alice wins.
    for (x, cell) in X_WINS {
        if x {
            play_signed(&game_a, a, cell).await;
        } else {
            play_signed(&game_b, b, cell).await;
        }
    }
    let closed = game_a.wait_closed(WAIT).await.unwrap();
    assert_eq!(
        closed.exits.unwrap(),
        vec![(a, ether(2)), (b, entente_types::U256::ZERO)]
    );
    game_a
        .wait_until("alice's withdrawal", WAIT, |i| i.calls_outstanding == 0)
        .await
        .unwrap();
    let after_a = alice.balance().await.unwrap();
    assert!(after_a > before_a + ether(1) - ether(1) / entente_types::U256::from(100u64));
    let (pending, failed) = (
        signer.pending.load(Ordering::Relaxed),
        signer.failed.load(Ordering::Relaxed),
    );
    assert!(pending > 0 && failed > 0, "pending {pending}, failed {failed}");
    println!("the signer answered 'not yet' {pending} times and failed {failed} times");
}
