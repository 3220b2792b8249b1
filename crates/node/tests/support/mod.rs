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

/// Waits at most this long for each step of a game.
pub const GAME_WAIT: Duration = Duration::from_secs(120);

/// The moves of a tic-tac-toe game X wins (X: 4, O: 0, X: 1, O: 2, X: 7, the middle column):
/// (X moves, cell).
pub const X_WINS: [(bool, u8); 5] = [(true, 4), (false, 0), (true, 1), (false, 2), (true, 7)];

/// The tic-tac-toe machine's code and a proposal from `x` to `o`, one ether each.
pub async fn tictactoe_proposal(
    world: &World,
    x: &Node,
    o: Address,
) -> (entente_node::MachineSource, entente_types::ChannelProposal) {
    let code =
        entente_node::MachineSource::ArtifactJson(entente_contracts::artifacts::TIC_TAC_TOE.to_string());
    let stake = ether(1);
    let a = x.address();
    let proposal = entente_node::ProposalBuilder::new(world.tictactoe, vec![a, o], vec![stake, stake])
        .build(x, &code, &TicTacToe::initialStateCall { x: a, o, stake })
        .await
        .unwrap();
    (code, proposal)
}

/// Waits for `me`'s turn (or the game's end) and plays `cell`.
pub async fn play(channel: &entente_node::Channel, me: Address, cell: u8) {
    channel
        .wait_until("my turn", GAME_WAIT, |i| i.next_writer == me || i.game_over)
        .await
        .unwrap();
    channel.call(&TicTacToe::playCall { cell }).await.unwrap();
}
