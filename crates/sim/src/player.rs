use alloy_sol_types::SolCall;
use entente_contracts::{RoundRobinCounter, TicTacToe};
use entente_types::{Bytes, LocalSigner};
use rand::Rng;
use rand::rngs::StdRng;

use crate::StateManager;

/// Chooses a peer's move when it is its turn.
pub trait Player {
    /// The ABI-encoded move, or `None` to stay silent.
    fn choose(&mut self, peer: &mut StateManager<LocalSigner>, rng: &mut StdRng) -> Option<Bytes>;
}

/// Plays tic-tac-toe at random among the empty cells.
#[derive(Debug, Default, Clone)]
pub struct TicTacToePlayer;

impl Player for TicTacToePlayer {
    fn choose(&mut self, peer: &mut StateManager<LocalSigner>, rng: &mut StdRng) -> Option<Bytes> {
        let raw = peer.view(TicTacToe::getGameCall {}.abi_encode().into()).ok()?;
        let game = TicTacToe::getGameCall::abi_decode_returns(&raw).ok()?;
        let empty: Vec<u8> = (0u8..9).filter(|&c| game.board[c as usize] == 0).collect();
        if empty.is_empty() {
            return None;
        }
        let cell = empty[rng.random_range(0..empty.len())];
        Some(TicTacToe::playCall { cell }.abi_encode().into())
    }
}

/// Adds a random step (1 to 10) to the round-robin counter.
#[derive(Debug, Default, Clone)]
pub struct CounterPlayer;

impl Player for CounterPlayer {
    fn choose(&mut self, _peer: &mut StateManager<LocalSigner>, rng: &mut StdRng) -> Option<Bytes> {
        let step = rng.random_range(1..=10u64);
        Some(RoundRobinCounter::addCall { step }.abi_encode().into())
    }
}
