//! A live TicTacToe channel on a fresh anvil, shared by the client and listener tests.

#![allow(dead_code, unreachable_pub)] // each test binary uses a part

use std::time::Duration;

use alloy::primitives::{Address, B256, Bytes, U256};
use entente_chain::{Anvil, ChainClient, Receipt};
use entente_contracts::IStateChannelManager::ChannelSpec;
use entente_contracts::TicTacToe;
use entente_dispute::ChainAction;
use entente_types::{Domain, LocalSigner, Signer, Transaction};

/// Every wait in these tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(20);

pub struct Live {
    pub anvil: Anvil,
    /// Participant 0 (anvil account 1), who opened the channel.
    pub x: ChainClient,
    /// Participant 1 (anvil account 2).
    pub o: ChainClient,
    pub x_key: LocalSigner,
    pub domain: Domain,
    pub channel_id: B256,
    pub genesis: Bytes,
    /// The TicTacToe machine.
    pub game: Address,
    /// The block of the last deposit (the channel went live).
    pub opened_at: u64,
}

pub async fn live_channel() -> Live {
    live_channel_on(Anvil::spawn().unwrap()).await
}

pub async fn live_channel_on(anvil: Anvil) -> Live {
    let url = anvil.endpoint();
    let mut deployer = ChainClient::connect(&url, anvil.signer(0).unwrap())
        .await
        .unwrap();
    let manager = deployer.deploy_manager().await.unwrap();
    let game = deployer.deploy(TicTacToe::BYTECODE.clone()).await.unwrap();
    let x = ChainClient::connect(&url, anvil.signer(1).unwrap())
        .await
        .unwrap()
        .with_manager(manager);
    let o = ChainClient::connect(&url, anvil.signer(2).unwrap())
        .await
        .unwrap()
        .with_manager(manager);
    let stake = U256::from(10u64).pow(U256::from(18u64));
    let genesis = x
        .view(
            game,
            &TicTacToe::initialStateCall {
                x: x.address(),
                o: o.address(),
                stake,
            },
        )
        .await
        .unwrap();
    let spec = ChannelSpec {
        participants: vec![x.address(), o.address()],
        deposits: vec![stake, stake],
        stateMachine: game,
        token: Address::ZERO,
        p2pTime: 30,
        agreementTime: 10,
        chainFallbackTime: 60,
        challengeTime: 3600,
        fundingPeriod: 86_400,
        machineGasLimit: 5_000_000,
        salt: B256::repeat_byte(7),
    };
    let channel_id = x.open(&spec, &genesis).await.unwrap();
    let activated = o.deposit(channel_id, 1, stake).await.unwrap();
    let x_key = LocalSigner::from_bytes(&anvil.keys()[1]).unwrap();
    let domain = Domain::new(x.chain_id(), manager);
    Live {
        anvil,
        x,
        o,
        x_key,
        domain,
        channel_id,
        genesis,
        game,
        opened_at: activated.block_number,
    }
}

impl Live {
    /// A transaction by x at `height` of fork 0 (its state hash is not checked by a post).
    pub fn x_tx(&self, height: u64) -> Transaction {
        Transaction {
            channelId: self.channel_id,
            forkCnt: 0,
            height,
            participant: self.x.address(),
            timestamp: 1,
            prevStateHash: B256::repeat_byte(1),
            stateHash: B256::repeat_byte(height as u8),
            data: Bytes::from_static(b"move"),
        }
    }

    /// Posts x's transaction at `height` as calldata.
    pub fn post_action(&self, height: u64) -> ChainAction {
        let transaction = self.x_tx(height);
        let signature = self.x_key.sign_digest(&self.domain.digest(&transaction));
        ChainAction::PostCalldata {
            transaction,
            signature,
        }
    }

    pub async fn post(&self, height: u64) -> Receipt {
        self.x
            .execute(self.channel_id, &self.post_action(height))
            .await
            .unwrap()
    }
}
