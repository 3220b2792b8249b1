//! Shared fixtures: anvil with the manager and the example machines, and nodes on loopback.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use entente_chain::{Anvil, ChainClient};
use entente_contracts::{RoundRobinCounter, TicTacToe};
use entente_node::{Node, NodeConfig};
use entente_p2p::Multiaddr;
use entente_types::{Address, B256, U256};

pub const ETHER: u64 = 1_000_000_000_000_000_000;

pub fn ether(n: u64) -> U256 {
    U256::from(n) * U256::from(ETHER)
}

/// Anvil with the StateChannelManager and both example machines deployed by account 0.
pub struct World {
    pub anvil: Anvil,
    pub manager: Address,
    pub tictactoe: Address,
    pub counter: Address,
}

impl World {
    pub async fn new() -> Self {
        let anvil = Anvil::spawn().expect("anvil");
        let mut deployer = ChainClient::connect(&anvil.endpoint(), anvil.signer(0).unwrap())
            .await
            .unwrap();
        let manager = deployer.deploy_manager().await.unwrap();
        let tictactoe = deployer.deploy(TicTacToe::BYTECODE.clone()).await.unwrap();
        let counter = deployer
            .deploy(RoundRobinCounter::BYTECODE.clone())
            .await
            .unwrap();
        Self {
            anvil,
            manager,
            tictactoe,
            counter,
        }
    }

    /// The secret key of anvil account `i`.
    pub fn key(&self, i: usize) -> B256 {
        self.anvil.keys()[i]
    }

    pub fn config(&self, i: usize, dir: &std::path::Path, bootstrap: Vec<Multiaddr>) -> NodeConfig {
        let mut config = NodeConfig::new(self.key(i), self.anvil.endpoint(), self.manager, dir);
        config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
        config.bootstrap = bootstrap;
        config.public = true;
        config.poll_interval_ms = 100;
        config
    }
}

/// The node's first listen address with its PeerId, once it listens.
pub async fn dial_addr(node: &Node) -> Multiaddr {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let addrs = node.listen_addrs().await.unwrap();
        if let Some(a) = addrs.into_iter().find(|a| !a.to_string().ends_with("/tcp/0")) {
            return a.with_p2p(node.peer_id()).unwrap();
        }
        assert!(tokio::time::Instant::now() < deadline, "node does not listen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
