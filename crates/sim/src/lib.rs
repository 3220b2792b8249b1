//! A deterministic N-peer simulation of Entente channels.
//!
//! Every peer runs the channel core the node runs ([`entente_channel::Channel`]: the real
//! [`StateManager`] and, with a chain, the real dispute handler) with the real state-machine
//! bytecode in revm; the network is an in-memory event queue in virtual time, with per-message
//! latency drawn from a seeded RNG (which also reorders messages), loss, duplication and timed
//! partitions. Messages travel as encoded CBOR frames, exactly as over libp2p. The simulation
//! drives the cores exactly as the node does: it carries out their effects in order (persist,
//! then send, chain calls whose outcomes go back to the core, events), feeds them messages,
//! chain events and timer ticks, and asks a [`Player`] for a move when it is a peer's turn.
//! [`Scenario`] runs a live channel (opened on the in-process chain when it has one) with
//! byzantine peers; [`LifeScenario`] runs whole lives from the proposal, with crashes.
//!
//! The same seed gives the same run: every decision comes from one seeded RNG and the queue is
//! ordered by (time, sequence number). [`Simulation::trace_hash`] summarises a run so tests can
//! assert that a replay is identical; a failing run prints its seed and configuration.
//!
//! ```
//! use entente_sim::{Scenario, Game};
//! use entente_types::AgreementMode;
//!
//! let report = Scenario::new(Game::TicTacToe, 2, 7).mode(AgreementMode::ExplicitConfirmations).run().unwrap();
//! assert!(report.game_over);
//! assert_eq!(report.finalized_height, report.tip);
//! ```

mod attacker;
mod byzantine;
mod chain;
mod life;
mod network;
mod player;
mod queue;
mod recovery;
mod scenario;
mod simulation;

pub use byzantine::Strategy;
pub use chain::{ChainLink, ChainRecord, OpenedChannel};
pub use life::{LifePhase, LifeReport, LifeScenario, Membership};
pub use network::{NetConfig, Partition};
pub use player::{CounterPlayer, PaymentsPlayer, Player, TicTacToePlayer};
pub use recovery::shared_recover;
pub use scenario::{DEPOSIT, Game, Report, Scenario};
pub use simulation::{PeerStats, SimError, Simulation, TraceEntry};

/// Re-exported so fixtures can name the core they drive.
pub use entente_state_manager::StateManager;
