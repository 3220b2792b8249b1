use alloy_primitives::U256;
use entente_channel::Channel;
use entente_contracts::{Payments, RoundRobinCounter, TicTacToe, artifacts};
use entente_evm_runtime::{MachineCode, MachineInstance};
use entente_state_manager::Config;
use entente_types::{
    Address, AgreementMode, B256, ChannelSpec, Domain, LocalSigner, Signer, Timing, keccak256,
};

use crate::{
    CounterPlayer, NetConfig, PaymentsPlayer, Player, SimError, Simulation, Strategy, TicTacToePlayer,
};

/// Each participant's deposit in simulated channels (wei).
pub const DEPOSIT: u64 = 1_000_000_000_000_000_000;

/// Chain time at which simulations start.
const GENESIS_TIMESTAMP: u64 = 1_700_000_000;

/// Which state machine the channel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Game {
    /// Two-player tic-tac-toe.
    TicTacToe,
    /// The N-party round-robin counter, over when the counter reaches `target`.
    Counter {
        /// The target.
        target: u64,
    },
    /// The N-party payment machine (anyone pays anyone at any time): each peer makes
    /// `payments` payments, then peer 0 settles.
    Payments {
        /// Payments per peer.
        payments: u64,
    },
}

/// A ready-made simulation: a game, N peers with keys derived from the seed, and the network.
#[derive(Debug, Clone)]
pub struct Scenario {
    game: Game,
    n: usize,
    seed: u64,
    mode: AgreementMode,
    net: NetConfig,
    think_ms: (u64, u64),
    max_ms: u64,
    config: Config,
    timing: Timing,
    byzantine: Vec<(usize, Strategy)>,
    with_chain: bool,
    clock_offsets: Vec<(usize, i64)>,
    chain_failure_permille: u32,
}

/// What a finished run shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Number of peers.
    pub n: usize,
    /// Tip height (equal on every peer when settled).
    pub tip: u64,
    /// Finalized height of peer 0.
    pub finalized_height: u64,
    /// Whether the game ended.
    pub game_over: bool,
    /// Hash of the full trace.
    pub trace_hash: B256,
    /// Virtual time the run took (ms).
    pub virtual_ms: u64,
    /// Frames put on the network.
    pub frames: u64,
    /// Finality latency percentiles (virtual ms): p50, p99.
    pub latency_p50_ms: u64,
    /// p99.
    pub latency_p99_ms: u64,
}

impl Scenario {
    /// `game` with `n` peers, seeded by `seed`.
    pub fn new(game: Game, n: usize, seed: u64) -> Self {
        Self {
            game,
            n,
            seed,
            mode: AgreementMode::ExplicitConfirmations,
            net: NetConfig::default(),
            think_ms: (1, 30),
            max_ms: 3_600_000,
            config: Config {
                recover: std::sync::Arc::new(crate::shared_recover),
                ..Config::default()
            },
            timing: Timing::default(),
            byzantine: Vec::new(),
            with_chain: false,
            clock_offsets: Vec::new(),
            chain_failure_permille: 0,
        }
    }

    /// Opens the channel for real on an in-process chain running the StateChannelManager, and
    /// gives every peer a dispute handler.
    pub fn with_chain(mut self) -> Self {
        self.with_chain = true;
        self
    }

    /// Makes peer `i`'s clock run `offset_ms` ahead of the others (negative: behind).
    pub fn clock_offset(mut self, i: usize, offset_ms: i64) -> Self {
        self.clock_offsets.push((i, offset_ms));
        self
    }

    /// Makes the last `count` peers follow `strategy`.
    pub fn byzantine(mut self, count: usize, strategy: Strategy) -> Self {
        let n = self.n;
        self.byzantine = (n.saturating_sub(count)..n).map(|i| (i, strategy)).collect();
        self
    }

    /// The agreement mode.
    pub fn mode(mut self, mode: AgreementMode) -> Self {
        self.mode = mode;
        self
    }

    /// The network conditions.
    pub fn net(mut self, net: NetConfig) -> Self {
        self.net = net;
        self
    }

    /// How long a player thinks before moving (uniform, ms).
    pub fn think_ms(mut self, lo: u64, hi: u64) -> Self {
        self.think_ms = (lo, hi);
        self
    }

    /// Upper bound of virtual time.
    pub fn max_ms(mut self, max_ms: u64) -> Self {
        self.max_ms = max_ms;
        self
    }

    /// The state managers' configuration (the default shares signature recovery between the
    /// peers: [`crate::shared_recover`]).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Makes each chain call of the peers' dispute handlers fail (not sent) with probability
    /// `permille` / 1000.
    pub fn chain_failures(mut self, permille: u32) -> Self {
        self.chain_failure_permille = permille;
        self
    }

    /// The channel's timing parameters.
    pub fn timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    /// The participant keys of this scenario (derived from the seed).
    pub fn keys(&self) -> Vec<LocalSigner> {
        (0..self.n as u64)
            .map(|i| {
                let mut material = self.seed.to_be_bytes().to_vec();
                material.extend_from_slice(&i.to_be_bytes());
                let mut key = keccak256(&material);
                // A keccak output is a valid secp256k1 scalar with overwhelming probability;
                // rehash in the astronomically rare case it is not.
                loop {
                    if let Ok(signer) = LocalSigner::from_bytes(&key) {
                        return signer;
                    }
                    key = keccak256(key);
                }
            })
            .collect()
    }

    fn describe(&self) -> String {
        format!(
            "{:?} n={} mode={:?} net={:?} think={:?} timing={:?} byzantine={:?} clock_offsets={:?} chain={} chain_failures={}/1000",
            self.game,
            self.n,
            self.mode,
            self.net,
            self.think_ms,
            self.timing,
            self.byzantine,
            self.clock_offsets,
            self.with_chain,
            self.chain_failure_permille
        )
    }

    /// Builds the simulation without running it.
    pub fn build(&self) -> Result<Simulation, SimError> {
        let fail = |reason: String| SimError {
            seed: self.seed,
            at_ms: 0,
            reason,
            scenario: self.describe(),
        };
        let keys = self.keys();
        let participants: Vec<Address> = keys.iter().map(|k| k.address()).collect();
        let (json, genesis_call): (&str, Vec<u8>) = match self.game {
            Game::TicTacToe => {
                if self.n != 2 {
                    return Err(fail("tic-tac-toe needs exactly 2 peers".into()));
                }
                use alloy_sol_types::SolCall;
                let call = TicTacToe::initialStateCall {
                    x: participants[0],
                    o: participants[1],
                    stake: U256::from(DEPOSIT),
                };
                (artifacts::TIC_TAC_TOE, call.abi_encode())
            }
            Game::Counter { target } => {
                use alloy_sol_types::SolCall;
                let call = RoundRobinCounter::initialStateCall {
                    participants: participants.clone(),
                    deposits: vec![U256::from(DEPOSIT); self.n],
                    target,
                };
                (artifacts::ROUND_ROBIN_COUNTER, call.abi_encode())
            }
            Game::Payments { .. } => {
                use alloy_sol_types::SolCall;
                let call = Payments::initialStateCall {
                    participants: participants.clone(),
                    deposits: vec![U256::from(DEPOSIT); self.n],
                };
                (artifacts::PAYMENTS, call.abi_encode())
            }
        };
        let code = MachineCode::from_artifact_json(json).map_err(|e| fail(e.to_string()))?;
        let genesis = {
            let mut m =
                MachineInstance::deploy(&code, self.config.gas_limit).map_err(|e| fail(e.to_string()))?;
            let raw = m.view(genesis_call.into()).map_err(|e| fail(e.to_string()))?;
            <alloy_sol_types::sol_data::Bytes as alloy_sol_types::SolType>::abi_decode(&raw)
                .map_err(|e| fail(e.to_string()))?
        };
        // With a chain, the channel is opened for real and the spec comes from the manager.
        let opened = if self.with_chain {
            let salt = keccak256(format!("entente-sim-{}", self.seed));
            Some(
                crate::chain::open_channel(
                    &participants,
                    U256::from(DEPOSIT),
                    json,
                    &genesis,
                    &self.timing,
                    self.config.gas_limit,
                    salt,
                    GENESIS_TIMESTAMP,
                )
                .map_err(fail)?,
            )
        } else {
            None
        };
        let spec = ChannelSpec {
            channel_id: opened.as_ref().map_or_else(
                || keccak256(format!("entente-sim-{}", self.seed)),
                |o| o.channel_id,
            ),
            domain: opened.as_ref().map_or_else(
                || Domain::new(31337, Address::repeat_byte(0x5c)),
                |o| o.domain.clone(),
            ),
            participants: participants.clone(),
            state_machine: opened.as_ref().map_or(Address::repeat_byte(0x3a), |o| o.machine),
            timing: self.timing,
            agreement_mode: self.mode,
            genesis_state: genesis,
            genesis_timestamp: opened.as_ref().map_or(GENESIS_TIMESTAMP, |o| o.genesis_timestamp),
        };
        // Every peer runs the channel core the node runs, live from the channel's genesis; its
        // dispute handler decides only when there is a chain.
        let mut peers: Vec<(Channel<LocalSigner>, Box<dyn Player>)> = Vec::with_capacity(self.n);
        for (i, key) in keys.into_iter().enumerate() {
            let core = Channel::live(
                key,
                spec.clone(),
                code.clone(),
                self.config.clone(),
                self.with_chain,
                0,
            )
            .map_err(|e| fail(e.to_string()))?;
            let player: Box<dyn Player> = match self.game {
                Game::TicTacToe => Box::new(TicTacToePlayer),
                Game::Counter { .. } => Box::new(CounterPlayer),
                Game::Payments { payments } => Box::new(PaymentsPlayer::new(payments, i == 0)),
            };
            peers.push((core, player));
        }
        let mut sim = Simulation::new(self.seed, self.describe(), peers, self.net.clone(), self.think_ms);
        let keys = self.keys();
        for &(i, strategy) in &self.byzantine {
            sim.set_strategy(i, strategy, code.clone(), keys[i].clone(), self.config.gas_limit);
        }
        sim.set_chain_failures(self.chain_failure_permille);
        for &(i, offset) in &self.clock_offsets {
            sim.set_clock_offset(i, offset);
        }
        if let Some(opened) = opened {
            sim.attach_chain(crate::chain::ChainLink::new(opened));
        }
        Ok(sim)
    }

    /// Builds and runs the simulation to the end of the game; fails if it does not settle.
    pub fn run(&self) -> Result<Report, SimError> {
        let mut sim = self.build()?;
        sim.keep_trace(false);
        sim.run(self.max_ms)?;
        if !sim.settled() {
            let tips: Vec<(u64, u64)> = (0..sim.len())
                .map(|i| (sim.peer(i).tip(), sim.peer(i).finalized_height()))
                .collect();
            return Err(SimError {
                seed: self.seed,
                at_ms: sim.now_ms(),
                reason: format!("did not settle; (tip, finalized) per peer: {tips:?}"),
                scenario: self.describe(),
            });
        }
        let mut latencies = sim.latencies().to_vec();
        latencies.sort_unstable();
        let pct = |p: f64| -> u64 {
            if latencies.is_empty() {
                return 0;
            }
            let idx = ((latencies.len() as f64 - 1.0) * p).round() as usize;
            latencies[idx.min(latencies.len() - 1)]
        };
        Ok(Report {
            seed: self.seed,
            n: self.n,
            tip: sim.peer(0).tip(),
            finalized_height: sim.peer(0).finalized_height(),
            game_over: sim.peer(0).is_game_over(),
            trace_hash: sim.trace_hash(),
            virtual_ms: sim.now_ms(),
            frames: sim.frames(),
            latency_p50_ms: pct(0.5),
            latency_p99_ms: pct(0.99),
        })
    }
}
