//! [`ChainListener`] on a real anvil: confirmations, exactly-once delivery across a restart
//! from a saved cursor, and a chain that is down and comes back. Every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

mod common;

use std::time::Duration;

use alloy::primitives::B256;
use entente_chain::{Anvil, ChainError, ChainListener, ListenerConfig, ListenerEvent};
use entente_dispute::ChainEvent;

use common::WAIT;

fn config(confirmations: u64) -> ListenerConfig {
    ListenerConfig {
        poll_interval: Duration::from_millis(20),
        confirmations,
        max_backoff: Duration::from_millis(200),
        ..ListenerConfig::default()
    }
}

/// The next event, within [`WAIT`].
async fn next(listener: &mut ChainListener) -> ListenerEvent {
    tokio::time::timeout(WAIT, listener.next())
        .await
        .expect("an event in time")
        .expect("the listener runs")
}

/// Events until (and with) the marker of block `number`; health reports are not expected.
async fn until_block(listener: &mut ChainListener, number: u64) -> Vec<ListenerEvent> {
    let mut seen = Vec::new();
    loop {
        let event = next(listener).await;
        assert!(!matches!(event, ListenerEvent::Unavailable { .. }), "{event:?}");
        let done = matches!(event, ListenerEvent::Block { number: n, .. } if n == number);
        seen.push(event);
        if done {
            return seen;
        }
    }
}

fn posted_height(event: &ListenerEvent) -> Option<(B256, u64)> {
    match event {
        ListenerEvent::Channel {
            channel_id,
            event: ChainEvent::CalldataPosted { transaction, .. },
            ..
        } => Some((*channel_id, transaction.height)),
        _ => None,
    }
}

#[tokio::test(flavor = "current_thread")]
async fn events_wait_for_their_confirmations() {
    let live = common::live_channel().await;
    let manager = live.x.manager().unwrap();
    let k = 2;
    let mut listener = live.x.listen(0, config(k)).unwrap();
    assert_eq!(live.x.manager(), Some(manager));

    let post = live.post(1).await;
    let n = post.block_number;
    // Blocks up to n - k are delivered, in order, with their timestamps, and nothing of block n.
    let seen = until_block(&mut listener, n - k).await;
    let blocks: Vec<u64> = seen
        .iter()
        .filter_map(|e| match e {
            ListenerEvent::Block { number, .. } => Some(*number),
            _ => None,
        })
        .collect();
    assert_eq!(blocks, (0..=n - k).collect::<Vec<_>>());
    assert!(seen.iter().all(|e| posted_height(e).is_none()));
    assert_eq!(listener.cursor(), Some(n - k));

    // One more block: block n - 1 is confirmed, block n still is not.
    live.x.dev_mine().await.unwrap();
    let seen = until_block(&mut listener, n + 1 - k).await;
    assert!(seen.iter().all(|e| posted_height(e).is_none()), "{seen:?}");
    assert!(
        tokio::time::timeout(Duration::from_millis(200), listener.next())
            .await
            .is_err(),
        "nothing is delivered before block n has {k} blocks on top"
    );

    // The k-th block on top: the post arrives, then block n's marker with its timestamp.
    live.x.dev_mine().await.unwrap();
    let seen = until_block(&mut listener, n).await;
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(posted_height(&seen[0]), Some((live.channel_id, 1)));
    assert!(live.x.block_number().await.unwrap() >= n + k);
    match &seen[0] {
        ListenerEvent::Channel {
            block,
            event: ChainEvent::CalldataPosted { timestamp, .. },
            ..
        } => {
            assert_eq!(*block, n);
            assert_eq!(*timestamp, post.timestamp);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        seen[1].chain_event(),
        Some(ChainEvent::Block {
            timestamp: post.timestamp
        })
    );
    assert_eq!(listener.cursor(), Some(n));
}

/// A consumer that commits the events of a block together with its marker (as a node persists
/// them with the cursor): a restart from the saved cursor handles every event exactly once,
/// also when the listener died in the middle of a block.
#[tokio::test(flavor = "current_thread")]
async fn a_restart_from_the_saved_cursor_delivers_each_event_once() {
    let live = common::live_channel().await;
    let manager = live.x.manager().unwrap();
    let url = live.anvil.endpoint();

    let mut committed: Vec<u64> = Vec::new();
    let mut saved_cursor = None;
    let mut pending: Vec<u64> = Vec::new();

    let first = live.post(1).await.block_number;
    let second = live.post(2).await.block_number;
    let third = live.post(3).await.block_number;

    let mut listener = ChainListener::start(&url, manager, 0, config(0)).unwrap();
    // Handle everything up to the second post's block, then crash after receiving the third
    // post but before its block's marker.
    loop {
        let event = next(&mut listener).await;
        if let Some((_, height)) = posted_height(&event) {
            pending.push(height);
            if height == 3 {
                break;
            }
        }
        if let ListenerEvent::Block { number, .. } = event {
            committed.append(&mut pending);
            saved_cursor = Some(number);
            assert_eq!(listener.cursor(), Some(number));
        }
    }
    drop(listener);
    drop(pending); // lost with the crash
    assert_eq!(committed, vec![1, 2]);
    let cursor = saved_cursor.unwrap();
    assert!((second..third).contains(&cursor), "{cursor}");
    assert!(first < second);

    // More happens while the node is down.
    let fourth = live.post(4).await.block_number;

    let mut listener = ChainListener::resume(&url, manager, cursor, config(0)).unwrap();
    assert_eq!(listener.cursor(), Some(cursor));
    let mut pending = Vec::new();
    for event in until_block(&mut listener, fourth).await {
        if let Some((channel, height)) = posted_height(&event) {
            assert_eq!(channel, live.channel_id);
            pending.push(height);
        }
        if let ListenerEvent::Block { number, .. } = event {
            assert!(number > cursor, "block {number} delivered again");
            committed.append(&mut pending);
        }
    }
    assert_eq!(committed, vec![1, 2, 3, 4], "each post once, in order");
}

#[tokio::test(flavor = "current_thread")]
async fn an_unreachable_chain_is_reported_and_picked_up_when_it_comes_back() {
    let port = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap().port()
    }; // closed again: nothing listens there yet
    let url = format!("http://127.0.0.1:{port}");
    // The devchain's (and anvil's) manager address: anvil account 0's first deployment.
    let manager = "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0".parse().unwrap();
    let mut listener = ChainListener::start(&url, manager, 0, config(0)).unwrap();

    // Reported, with growing backoff, and the listener keeps trying.
    let mut retries = Vec::new();
    while retries.len() < 3 {
        match next(&mut listener).await {
            ListenerEvent::Unavailable {
                error,
                attempt,
                retry_in,
            } => {
                assert!(matches!(error, ChainError::Unreachable { .. }), "{error}");
                assert!(error.to_string().contains(&url), "{error}");
                assert_eq!(attempt as usize, retries.len() + 1);
                retries.push(retry_in);
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
    assert!(retries.windows(2).all(|w| w[0] <= w[1]), "{retries:?}");
    assert_eq!(listener.cursor(), None);

    // The chain comes up on that port: the listener recovers and follows it from block 0.
    let anvil = Anvil::builder().port(port).spawn().unwrap();
    let recovered = loop {
        match next(&mut listener).await {
            ListenerEvent::Unavailable { .. } => continue,
            other => break other,
        }
    };
    assert!(matches!(recovered, ListenerEvent::Recovered), "{recovered:?}");
    let live = common::live_channel_on(anvil).await;
    assert_eq!(live.x.manager(), Some(manager));
    let posted = live.post(1).await.block_number;
    let seen = until_block(&mut listener, posted).await;
    assert_eq!(
        seen.iter().filter_map(posted_height).collect::<Vec<_>>(),
        vec![(live.channel_id, 1)]
    );
    assert!(seen.iter().all(|e| !matches!(e, ListenerEvent::Recovered)));
}
