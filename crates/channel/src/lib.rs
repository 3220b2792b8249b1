//! The channel core: one channel's whole life as a sans-IO state machine, driven the same way by
//! the node (`entente-node`), the simulation (`entente-sim`), the benchmarks and the tests.
//!
//! A [`Channel`] owns the protocol core ([`StateManager`](entente_state_manager::StateManager))
//! and the [`DisputeHandler`](entente_dispute::DisputeHandler) once the channel runs, and
//! everything around them: the proposal and its answers, the opening and the deposits, the
//! cancellation and reclaim of a funding that failed, joins and leaves, the settlement and the
//! withdrawals. Its inputs are the application's commands, the peers' messages, the manager's
//! events, the outcomes of the chain calls it asked for (mined, reverted, not sent) and time; its
//! outputs are [`Effect`]s the host carries out in order. Every chain call that fails comes back
//! as an input and is decided again (a lifecycle call is retried with back-off until the chain
//! shows it landed or it became moot; the dispute handler's own calls follow its rules).
//!
//! # Life of a channel
//!
//! ```text
//!            propose / accept                 every answer yes          every deposit in
//!  (none) ───────────────────▶ Proposed ──────────────────────▶ Funding ─────────────────▶ Live
//!                                 │ a "no"                         │ funding period over        │
//!                                 ▼                                ▼ (cancelFunding, reclaim)    │
//!                             Cancelled ◀──────────────────────────┘                            │
//!                                                                                               │
//!  expect_join ──▶ Joining ── ticket, joinChannel, SetState with us ──────────────────────────▶ Live
//!                                                                                               │
//!  Live ── forks (verdicts) ──▶ Live      Live ── removed / left ──▶ Left (withdrawPending)      │
//!  Live ── close / exit / verdict settles ──▶ Closed (withdraw our exit) ◀───────────────────────┘
//! ```
//!
//! # Persistence
//!
//! Everything the channel needs after a crash leaves it as [`Effect::Persist`] before the other
//! effects of the same input: its [`Life`] (phase, proposal, answers, funding, approvals, the
//! chain calls it still owes), the dispute handler's view ([`Record::Court`]), the spec and forks,
//! and the protocol core's records. [`Channel::restore`] takes them back; a restart in any phase
//! carries on (a deposit is played or reclaimed, a running dispute is answered, a settled channel
//! is withdrawn).

mod call;
mod core;
mod event;
mod membership;
mod proposal;
mod record;

pub use call::{ChainCall, onchain_spec};
pub use core::{Channel, Effect, decline_message};
pub use entente_dispute::CallOutcome;
pub use event::{ChannelEvent, ChannelInfo, Phase};
pub use membership::{JoinTerms, TicketRefusal, check_ticket, to_join, to_leave};
pub use proposal::{
    Invitations, ProposalPolicy, ProposalRefusal, channel_id_of, check_deployed_code, check_genesis,
    check_machine_code, check_own_proposal,
};
pub use record::{Collecting, Duty, Life, Persisted, Record};

use entente_state_manager::SubmitError;

/// Why a channel refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// The command needs another phase.
    #[error("the channel is {phase:?}; this needs it {wanted}")]
    WrongPhase {
        /// Where the channel is.
        phase: Phase,
        /// Where it must be.
        wanted: &'static str,
    },
    /// The protocol core refused the move.
    #[error(transparent)]
    Submit(SubmitError),
    /// The state machine failed (a view).
    #[error("state machine: {0}")]
    Machine(entente_evm_runtime::EvmError),
    /// No state of the current fork can be proven on chain yet.
    #[error("no state of the current fork can be proven yet")]
    NothingToProve,
    /// The latest state is not final yet.
    #[error("the state at height {tip} is not final yet (final up to {finalized})")]
    NotFinal {
        /// Tip.
        tip: u64,
        /// Finalized height.
        finalized: u64,
    },
    /// A membership change was refused.
    #[error("membership: {0}")]
    Membership(String),
    /// The signer gave no signature (not ready yet, or failed): nothing was signed; try again.
    #[error("not signed: {0}")]
    Signer(entente_types::SignError),
    /// What was stored does not restore.
    #[error("cannot restore the channel: {0}")]
    Restore(String),
}
