//! Round-trip latency and throughput of channel messages between two nodes on loopback, over
//! TCP (Noise, Yamux) and over QUIC. Prints a table.
//!
//! `cargo bench -p entente-p2p --bench roundtrip` (add `-- --quick` for a short run).
//!
//! Latency: one message at a time, `send` until the peer's acknowledgment (a request and its
//! answer on the peer's stream, plus the node's queueing and event delivery). Throughput: many senders at once,
//! the receiver draining its event stream.

use std::io::Write;

use anyhow::Context;
use std::sync::Arc;
use std::time::Duration;

use entente_p2p::{P2pConfig, P2pEvent, P2pHandle, P2pManager};
use entente_types::{
    Address, B256, Bytes, Domain, Envelope, LocalSigner, Message, SignedTransaction, Signer, SyncRequest,
    Transaction, keccak256,
};
use tokio::sync::watch;
use tokio::time::{Instant, timeout};

const WAIT: Duration = Duration::from_secs(30);

fn config(i: u8, quic: bool) -> anyhow::Result<P2pConfig> {
    let mut config = P2pConfig::new(keccak256([i]));
    let listen = if quic {
        "/ip4/127.0.0.1/udp/0/quic-v1"
    } else {
        "/ip4/127.0.0.1/tcp/0"
    };
    config.listen_addrs = vec![listen.parse()?];
    config.public = true;
    config.max_in_flight_per_peer = 64;
    config.peer_queue_size = 4096;
    config.event_queue_size = 4096;
    Ok(config)
}

fn small(channel_id: B256, height: u64) -> Envelope {
    Envelope::new(Message::SyncRequest(SyncRequest {
        channel_id,
        fork: 0,
        from_height: height,
    }))
}

/// A signed transaction with `data` bytes of payload.
fn transaction(channel_id: B256, data: usize) -> anyhow::Result<Envelope> {
    let signer = LocalSigner::from_bytes(&keccak256(b"bench signer"))?;
    let transaction = Transaction {
        channelId: channel_id,
        forkCnt: 0,
        height: 1,
        participant: signer.address(),
        timestamp: 1_700_000_000,
        prevStateHash: B256::ZERO,
        stateHash: B256::repeat_byte(2),
        data: Bytes::from(vec![0xab; data]),
    };
    let signature = signer.sign_digest(&Domain::new(31337, Address::repeat_byte(0x11)).digest(&transaction));
    Ok(Envelope::new(Message::Transaction(SignedTransaction {
        transaction,
        signature,
    })))
}

struct Pair {
    sender: P2pHandle,
    /// Keeps the receiving node running (its task stops when every handle is dropped).
    _receiver: P2pHandle,
    to: Address,
    channel_id: B256,
    /// How many messages Alice's application received so far.
    received: watch::Receiver<u64>,
}

async fn pair(quic: bool) -> anyhow::Result<Pair> {
    let (alice, mut alice_events) = P2pManager::spawn(config(1, quic)?)?;
    let address = timeout(WAIT, async {
        loop {
            if let Some(P2pEvent::Listening { address }) = alice_events.recv().await {
                return address;
            }
        }
    })
    .await?;
    let mut bob_config = config(2, quic)?;
    bob_config.bootstrap_addrs = vec![
        address
            .with_p2p(alice.local_peer_id())
            .map_err(|_| anyhow::anyhow!("p2p"))?,
    ];
    let (bob, mut bob_events) = P2pManager::spawn(bob_config)?;
    let channel_id = B256::repeat_byte(0xbe);
    let participants = vec![alice.local_address(), bob.local_address()];
    alice.join_channel(channel_id, participants.clone()).await?;
    bob.join_channel(channel_id, participants).await?;
    // Alice's application drains her events at once; each received message is counted.
    let (count, received) = watch::channel(0u64);
    tokio::spawn(async move {
        while let Some(event) = alice_events.recv().await {
            if matches!(event, P2pEvent::Message { .. }) {
                count.send_modify(|c| *c += 1);
            }
        }
    });
    tokio::spawn(async move { while bob_events.recv().await.is_some() {} });
    Ok(Pair {
        to: alice.local_address(),
        _receiver: alice,
        sender: bob,
        channel_id,
        received,
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn latency(
    pair: &mut Pair,
    envelope: &Envelope,
    rounds: usize,
) -> anyhow::Result<(Duration, Duration)> {
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let target = *pair.received.borrow() + 1;
        let start = Instant::now();
        timeout(WAIT, pair.sender.send(pair.channel_id, pair.to, envelope.clone()))
            .await
            .context("send timed out")??;
        samples.push(start.elapsed());
        timeout(WAIT, pair.received.wait_for(|c| *c >= target))
            .await
            .context("receive timed out")??;
    }
    samples.sort();
    Ok((percentile(&samples, 0.5), percentile(&samples, 0.99)))
}

async fn throughput(
    pair: &mut Pair,
    envelope: &Envelope,
    total: usize,
    senders: usize,
) -> anyhow::Result<f64> {
    let envelope = Arc::new(envelope.clone());
    let target = *pair.received.borrow() + total as u64;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..senders {
        let (handle, channel_id, to, envelope) =
            (pair.sender.clone(), pair.channel_id, pair.to, envelope.clone());
        let count = total / senders + usize::from(s < total % senders);
        tasks.push(tokio::spawn(async move {
            for _ in 0..count {
                handle.send(channel_id, to, (*envelope).clone()).await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        timeout(WAIT * 4, task).await.context("senders timed out")???;
    }
    timeout(WAIT, pair.received.wait_for(|c| *c >= target))
        .await
        .context("receiving all timed out")??;
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, total) = if quick { (300, 3_000) } else { (3_000, 30_000) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "entente-p2p loopback benchmark ({rounds} round trips, {total} messages per throughput run)"
    )?;
    writeln!(
        out,
        "| transport | message | size (B) | RTT p50 | RTT p99 | throughput (msg/s) | throughput (MB/s) |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|")?;
    runtime.block_on(async {
        for (name, quic) in [("TCP+Noise+Yamux", false), ("QUIC", true)] {
            let mut pair = pair(quic).await?;
            let messages = [
                ("SyncRequest", small(pair.channel_id, 1)),
                ("Transaction 1 KiB", transaction(pair.channel_id, 1024)?),
                ("Transaction 64 KiB", transaction(pair.channel_id, 64 * 1024)?),
            ];
            // Warm up: discovery, connection, and the allocator.
            latency(&mut pair, &messages[0].1, 200).await?;
            for (label, envelope) in &messages {
                let size = envelope.encode()?.len();
                let (p50, p99) = latency(&mut pair, envelope, rounds).await?;
                let count = if size > 16 * 1024 { total / 10 } else { total };
                let rate = throughput(&mut pair, envelope, count, 64).await?;
                writeln!(
                    out,
                    "| {name} | {label} | {size} | {:.0} µs | {:.0} µs | {rate:.0} | {:.1} |",
                    p50.as_secs_f64() * 1e6,
                    p99.as_secs_f64() * 1e6,
                    rate * size as f64 / 1e6
                )?;
            }
        }
        anyhow::Ok(())
    })?;
    Ok(())
}
