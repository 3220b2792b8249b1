//! [`ChainClient`] on a real anvil: a channel's life through the dispute layer's actions, the
//! manager's refusals as typed errors, and an unreachable chain.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

mod common;

use std::time::Duration;

use alloy::primitives::{Address, Bytes, U256};
use alloy::sol_types::SolError;
use entente_chain::{Anvil, ChainClient, ChainError, ClientConfig, Revert};
use entente_contracts::{ChannelStatus, ManagerError, ManagerEvent, TicTacToe};
use entente_dispute::{ChainAction, ProofKind, StateProof};
use entente_types::Transaction;

#[tokio::test(flavor = "current_thread")]
async fn a_channel_through_the_dispute_layers_actions() {
    let live = common::live_channel().await;
    let channel = live.x.channel(live.channel_id).await.unwrap();
    assert_eq!(channel.status, ChannelStatus::Open as u8);
    assert_eq!(
        live.x.balance(live.x.manager().unwrap()).await.unwrap(),
        U256::from(2u64) * U256::from(10u64).pow(U256::from(18u64))
    );
    assert!(live.x.block_number().await.unwrap() >= live.opened_at);
    assert!(live.x.now().await.unwrap() >= live.x.block_timestamp(live.opened_at).await.unwrap());

    // A calldata post: mined, its event decoded, the fee paid.
    let before = live.x.balance(live.x.address()).await.unwrap();
    let receipt = live.post(1).await;
    assert!(receipt.success);
    assert!(receipt.fee() > U256::ZERO);
    assert_eq!(
        live.x.balance(live.x.address()).await.unwrap(),
        before - receipt.fee()
    );
    assert!(matches!(
        receipt.events().as_slice(),
        [ManagerEvent::CalldataPosted(p)] if p.channelId == live.channel_id && p.height == 1
    ));

    // The same post again (its parent is no longer the head): mined (explicit gas limit, no
    // estimation), reverted, and the
    // manager's error decoded from a replay at the parent block.
    let height = live.x.block_number().await.unwrap();
    let again = live
        .x
        .execute(live.channel_id, &live.post_action(1))
        .await
        .unwrap_err();
    assert!(
        matches!(again.manager_error(), Some(ManagerError::StaleProof(_))),
        "{again}"
    );
    assert!(again.to_string().contains("StaleProof"), "{again}");
    assert_eq!(
        live.x.block_number().await.unwrap(),
        height + 1,
        "the revert was mined"
    );

    // A timeout dispute against O before its deadline (a window from the post): TooEarly, with
    // its argument.
    let head = StateProof {
        kind: ProofKind::Posted,
        transaction: Transaction::default(),
        signatures: vec![],
        state: live.moves[0].2.clone(),
    };
    let early = live
        .x
        .execute(live.channel_id, &ChainAction::DisputeTimeout { latest: head })
        .await
        .unwrap_err();
    match early {
        ChainError::Reverted {
            revert: Revert::Manager(ManagerError::TooEarly(t)),
            ..
        } => assert!(t.notBefore > live.x.now().await.unwrap()),
        other => panic!("expected TooEarly, got {other}"),
    }

    // Withdrawing what was never credited: NothingToWithdraw.
    let nothing = live.o.withdraw_pending(Address::ZERO).await.unwrap_err();
    assert!(
        matches!(nothing.manager_error(), Some(ManagerError::NothingToWithdraw(_))),
        "{nothing}"
    );
    assert_eq!(
        live.o
            .pending_balance(live.o.address(), Address::ZERO)
            .await
            .unwrap(),
        U256::ZERO
    );
}

#[tokio::test(flavor = "current_thread")]
async fn reads_and_reverting_views_are_typed() {
    let live = common::live_channel().await;
    // A view that reverts with the machine's own error: raw revert data, its selector first.
    let refused = live
        .x
        .view(
            live.game,
            &TicTacToe::initialStateCall {
                x: Address::ZERO,
                o: Address::ZERO,
                stake: U256::ZERO,
            },
        )
        .await
        .unwrap_err();
    match refused {
        ChainError::Reverted {
            revert: Revert::Raw(data),
            ..
        } => assert_eq!(&data[..4], TicTacToe::InvalidPlayers::SELECTOR.as_slice()),
        other => panic!("expected a raw revert, got {other}"),
    }
    // Without a manager, manager operations say so.
    let bare = ChainClient::connect(&live.anvil.endpoint(), live.anvil.signer(3).unwrap())
        .await
        .unwrap();
    assert!(matches!(
        bare.channel(live.channel_id).await,
        Err(ChainError::NoManager)
    ));
    assert_eq!(bare.chain_id(), 31337);
}

#[tokio::test(flavor = "current_thread")]
async fn an_unreachable_chain_is_a_typed_error() {
    let port = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap().port()
    }; // closed again: nothing listens there
    let url = format!("http://127.0.0.1:{port}");
    let key = alloy::signers::local::PrivateKeySigner::random();
    let err = ChainClient::connect(&url, key.clone()).await.unwrap_err();
    assert!(err.is_unreachable(), "{err}");
    assert!(err.to_string().contains(&url), "{err}");

    let err = ChainClient::connect("not a url", key).await.unwrap_err();
    assert!(matches!(err, ChainError::BadUrl { .. }), "{err}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_transaction_that_is_never_mined_times_out() {
    let anvil = Anvil::builder().arg("--no-mining").spawn().unwrap();
    let config = ClientConfig {
        receipt_timeout: Duration::from_millis(300),
        receipt_poll_interval: Duration::from_millis(20),
        ..ClientConfig::default()
    };
    let client = ChainClient::connect_with(&anvil.endpoint(), anvil.signer(0).unwrap(), config)
        .await
        .unwrap();
    let err = client
        .send(anvil.address(1).unwrap(), Bytes::new(), U256::from(1u64))
        .await
        .unwrap_err();
    match err {
        ChainError::Timeout { waited, .. } => assert_eq!(waited, Duration::from_millis(300)),
        other => panic!("expected a timeout, got {other}"),
    }
}
