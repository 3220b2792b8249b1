//! Byzantine behaviours, as fixtures of the simulation.
//!
//! A byzantine peer holds a real key and a real state manager (so it knows the channel's state),
//! but the simulation bends what it does: it stays silent, withholds confirmations, sends
//! different transactions to different peers, or forges transactions that break one rule of the
//! pipeline. Every forged transaction is properly signed with the peer's key: it is fraud the
//! honest peers can prove, not noise they can ignore.

use alloy_sol_types::SolCall;
use entente_contracts::Payments;
use entente_evm_runtime::{MachineCode, MachineInstance};
use entente_types::{
    B256, Bytes, LocalSigner, SignedIntent, SignedTransaction, Signer, Transaction, keccak256,
};

use crate::StateManager;

/// How a peer behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Strategy {
    /// Follows the protocol.
    Honest,
    /// Sends nothing and never moves.
    Silent,
    /// Moves, but never confirms others' transactions.
    WithholdConfirmations,
    /// Signs two different transactions at its height and sends each to half the peers.
    Equivocate,
    /// Claims a state its move does not produce.
    InvalidTransition,
    /// Stamps its transaction far in the future.
    FutureTimestamp,
    /// Stamps its transaction before its parent.
    OutOfOrderTimestamp,
    /// Builds on an older state than the tip (or on a wrong genesis).
    StaleState,
    /// Posts an invalid transition as calldata on chain instead of sending it to the peers.
    JunkCalldata,
    /// Plays its moves, but claims on chain that an honest peer's valid transaction is an invalid
    /// transition (a false fraud proof), then tries to close the channel before its own slash.
    FalseDispute,
    /// Plays its moves, and at every height posts a transaction of its own at a far height with
    /// a made-up parent, claiming a state that pays it everything, then exits and raises a
    /// timeout with it (docs/security.md, attack 1).
    UnlinkedPost,
    /// Withholds its moves off-chain and posts each on chain at the very end of its window,
    /// stamped with its parent's time; colluders try to time out the next writer as if its window
    /// had started at that stamp (attack 3).
    BackdatedPost,
    /// Plays its moves, and while an honest peer is the writer posts its own junk at that height
    /// first and raises a timeout against the writer (attack 5).
    JunkAtAccused,
    /// Plays its moves, and at random times exits, raises timeouts, checkpoints, closes and
    /// challenges with old states it once held, of this fork or older ones.
    StaleProofs,
    /// Plays its moves, and at random times calls anything it can build: every manager entry
    /// point with remembered or made-up proofs, transactions, heights and stamps, false fraud
    /// and double-sign claims, early finalization, and the machine's storage and hooks.
    ChainChaos,
    /// For machines where anyone may write: follows the protocol, but never takes peer 0's
    /// intents, so its sequencer heights leave them out (a censoring sequencer).
    Censor,
    /// For machines where anyone may write: signs two different intents at each of its nonces
    /// and sends each to half the peers (an issuer equivocating between two writes).
    EquivocateIntents,
}

impl Strategy {
    /// Every byzantine strategy (not `Honest`).
    pub const BYZANTINE: [Strategy; 14] = [
        Strategy::Silent,
        Strategy::WithholdConfirmations,
        Strategy::Equivocate,
        Strategy::InvalidTransition,
        Strategy::FutureTimestamp,
        Strategy::OutOfOrderTimestamp,
        Strategy::StaleState,
        Strategy::JunkCalldata,
        Strategy::FalseDispute,
        Strategy::UnlinkedPost,
        Strategy::BackdatedPost,
        Strategy::JunkAtAccused,
        Strategy::StaleProofs,
        Strategy::ChainChaos,
    ];

    /// The byzantine strategies that only mean something in a machine where anyone may write.
    pub const ANY_WRITER: [Strategy; 2] = [Strategy::Censor, Strategy::EquivocateIntents];

    /// True for the strategies that attack through the chain (see the `attacker` module).
    pub fn acts_on_chain(self) -> bool {
        crate::attacker::acts_on_chain(self)
    }

    /// True for the strategies that replace the peer's own move by a forged transaction.
    pub(crate) fn forges(self) -> bool {
        matches!(
            self,
            Strategy::InvalidTransition
                | Strategy::FutureTimestamp
                | Strategy::OutOfOrderTimestamp
                | Strategy::StaleState
                | Strategy::JunkCalldata
        )
    }
}

/// Builds signed transactions that break one rule, for a byzantine peer.
pub(crate) struct Forger {
    code: MachineCode,
    key: LocalSigner,
    /// Gas limit of the scratch machine that computes forged states (the channel's).
    gas_limit: u64,
    /// The scratch machine, deployed on first use.
    scratch: std::cell::RefCell<Option<MachineInstance>>,
}

impl Forger {
    pub(crate) fn new(code: MachineCode, key: LocalSigner, gas_limit: u64) -> Self {
        Self {
            code,
            key,
            gas_limit,
            scratch: std::cell::RefCell::new(None),
        }
    }

    /// Executes `data` on the state at `base` of `core` and returns the resulting state hash.
    fn execute(&self, core: &StateManager<LocalSigner>, base: u64, tx: &Transaction) -> Option<B256> {
        let state = core.state_at(base)?;
        let mut scratch = self.scratch.borrow_mut();
        if scratch.is_none() {
            *scratch = Some(MachineInstance::deploy(&self.code, self.gas_limit).ok()?);
        }
        let machine = scratch.as_mut()?;
        machine.set_state(state).ok()?;
        machine.apply(tx, None).ok().map(|o| o.state_hash)
    }

    fn sign(&self, core: &StateManager<LocalSigner>, transaction: Transaction) -> SignedTransaction {
        SignedTransaction {
            signature: self.sign_transaction(core, &transaction),
            transaction,
        }
    }

    /// The peer's signature of `transaction` in `core`'s channel domain.
    pub(crate) fn sign_transaction(
        &self,
        core: &StateManager<LocalSigner>,
        transaction: &Transaction,
    ) -> entente_types::Signature {
        self.key.sign_digest(&core.spec().domain.digest(transaction))
    }

    /// The state hash `transaction` produces on the state at its parent height (`None` when the
    /// move reverts or that state is unknown).
    pub(crate) fn state_after(
        &self,
        core: &StateManager<LocalSigner>,
        transaction: &Transaction,
    ) -> Option<B256> {
        self.execute(core, transaction.height.checked_sub(1)?, transaction)
    }

    /// A valid move `data` on the tip, stamped with the tip's own timestamp (a backdated stamp:
    /// its issuer claims it moved the moment its window opened).
    pub(crate) fn backdated(
        &self,
        core: &StateManager<LocalSigner>,
        data: Bytes,
    ) -> Option<SignedTransaction> {
        let mut tx = self.honest(core, data, core.tip_timestamp());
        tx.stateHash = self.execute(core, core.tip(), &tx)?;
        Some(self.sign(core, tx))
    }

    /// The honest transaction `core` would issue for `data` at `now` (seconds).
    fn honest(&self, core: &StateManager<LocalSigner>, data: Bytes, now: u64) -> Transaction {
        Transaction {
            channelId: core.spec().channel_id,
            forkCnt: core.fork().fork,
            height: core.tip() + 1,
            participant: self.key.address(),
            timestamp: now.max(core.tip_timestamp()),
            prevStateHash: core.tip_state_hash(),
            stateHash: B256::ZERO,
            data,
        }
    }

    /// A transaction breaking the rule of `strategy`, for the move `data` at `now` (seconds).
    pub(crate) fn forge(
        &self,
        strategy: Strategy,
        core: &StateManager<LocalSigner>,
        data: Bytes,
        now: u64,
    ) -> Option<SignedTransaction> {
        let tip = core.tip();
        let mut tx = self.honest(core, data, now);
        match strategy {
            Strategy::InvalidTransition | Strategy::JunkCalldata => {
                // A real move, but a claimed state it does not produce.
                tx.stateHash = keccak256(b"a state this move does not produce");
            }
            Strategy::FutureTimestamp => {
                tx.timestamp = now + 10 * core.spec().timing.agreement_time + 10;
                tx.stateHash = self.execute(core, tip, &tx)?;
            }
            Strategy::OutOfOrderTimestamp => {
                tx.timestamp = core.tip_timestamp().checked_sub(1)?;
                tx.stateHash = self.execute(core, tip, &tx)?;
            }
            Strategy::StaleState => {
                let genesis = core.fork().genesis_height;
                // Build on the state before the tip, as if the last transaction never happened
                // (or on a wrong genesis). Whatever it claims to produce, its parent is wrong.
                tx.stateHash = self.execute(core, tip, &tx)?;
                tx.prevStateHash = if tip > genesis {
                    keccak256(core.state_at(tip - 1)?)
                } else {
                    keccak256(b"not the genesis of this fork")
                };
            }
            _ => return None,
        }
        Some(self.sign(core, tx))
    }

    /// A second, different intent at the nonce of `original`: the same payment, one wei more (any
    /// other move: its data with one byte more, which the machine refuses).
    pub(crate) fn twin_intent(&self, original: &SignedIntent) -> Option<SignedIntent> {
        let data: Bytes = match Payments::payCall::abi_decode(&original.data) {
            Ok(call) => Payments::payCall {
                to: call.to,
                amount: call.amount + alloy_primitives::U256::from(1u8),
            }
            .abi_encode()
            .into(),
            Err(_) => [original.data.as_ref(), &[0u8]].concat().into(),
        };
        SignedIntent::sign(
            &self.key,
            original.channel_id,
            original.nonce,
            original.not_after,
            data,
        )
        .ok()
    }

    /// A second, different transaction at the same height as `original` (same move, one second
    /// later): an equivocation.
    pub(crate) fn twin(
        &self,
        core: &StateManager<LocalSigner>,
        original: &Transaction,
    ) -> Option<SignedTransaction> {
        let mut tx = original.clone();
        tx.timestamp += 1;
        let base = tx.height.checked_sub(1)?;
        tx.stateHash = self.execute(core, base, &tx)?;
        Some(self.sign(core, tx))
    }
}
