use alloy_sol_types::SolCall;
use entente_contracts::{Payments, RoundRobinCounter, TicTacToe};
use entente_types::{Bytes, LocalSigner};
use rand::Rng;
use rand::rngs::StdRng;

use crate::StateManager;

/// Chooses a peer's move when it is its turn.
pub trait Player {
    /// The ABI-encoded move, or `None` to stay silent.
    fn choose(&mut self, peer: &mut StateManager<LocalSigner>, rng: &mut StdRng) -> Option<Bytes>;

    /// True while the player wants to write in states that oblige nobody (a payment it has
    /// yet to make): it is then asked to move at random times, not only on its turn.
    fn writes_anytime(&self) -> bool {
        false
    }

    /// One of the player's own intents was dropped unapplied (it expired, or a verdict cut the
    /// branch that applied it and it expired before it could be offered again): `data` is the
    /// move it asked for. A player that still wants it signs it again.
    fn dropped(&mut self, _data: Bytes) {}
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

/// Makes `budget` payments of a random small amount to random other participants, at random
/// times; the settler then ends the channel once every participant's payments are applied (or
/// after 200 more of its moves' chances, when some never pay).
#[derive(Debug, Clone)]
pub struct PaymentsPlayer {
    budget: u64,
    made: u64,
    settler: bool,
    settled: bool,
    waited: u64,
    /// Payments that were dropped unapplied, to sign again.
    again: std::collections::VecDeque<Bytes>,
}

impl PaymentsPlayer {
    /// A player that pays `budget` times; the `settler` settles afterwards.
    pub fn new(budget: u64, settler: bool) -> Self {
        Self {
            budget,
            made: 0,
            settler,
            settled: false,
            waited: 0,
            again: std::collections::VecDeque::new(),
        }
    }
}

impl Player for PaymentsPlayer {
    fn choose(&mut self, peer: &mut StateManager<LocalSigner>, rng: &mut StdRng) -> Option<Bytes> {
        if !peer.is_open() {
            return None;
        }
        if let Some(data) = self.again.pop_front() {
            return Some(data);
        }
        let me = peer.me();
        if self.made < self.budget {
            let others: Vec<_> = peer
                .fork()
                .participants
                .iter()
                .copied()
                .filter(|p| *p != me)
                .collect();
            if others.is_empty() {
                return None;
            }
            let to = others[rng.random_range(0..others.len())];
            self.made += 1;
            let amount = alloy_primitives::U256::from(rng.random_range(1..=1_000u64));
            return Some(Payments::payCall { to, amount }.abi_encode().into());
        }
        if self.settler && !self.settled {
            // Once everyone's payments are in (or after a while: some participants may never
            // pay), settle.
            self.waited += 1;
            let participants = peer.fork().participants.clone();
            let mut all_in = true;
            for p in participants {
                let raw = peer
                    .view(Payments::intentNonceOfCall { issuer: p }.abi_encode().into())
                    .ok()?;
                let applied = Payments::intentNonceOfCall::abi_decode_returns(&raw).ok()?;
                all_in &= applied >= self.budget;
            }
            if all_in || self.waited > 200 {
                self.settled = true;
                return Some(Payments::settleCall {}.abi_encode().into());
            }
        }
        None
    }

    fn writes_anytime(&self) -> bool {
        !self.again.is_empty() || self.made < self.budget || (self.settler && !self.settled)
    }

    fn dropped(&mut self, data: Bytes) {
        // A payment is worth making again; a dropped settlement is asked for anew by the loop.
        if Payments::payCall::abi_decode(&data).is_ok() {
            self.again.push_back(data);
        } else if Payments::settleCall::abi_decode(&data).is_ok() {
            self.settled = false;
        }
    }
}
