//! Whether an honest participant co-signs a membership approval (docs/security.md, O4).
//!
//! A co-signed `JoinApproval` or `LeaveApproval` lets its holder change who is in the channel at
//! the approved state, through the chain, until its deadline. An approval signed carelessly is a
//! weapon: one of an old state rolls the channel back, one that removes the signer's own
//! participant takes its stake away, one with a far deadline holds the signer's signatures back
//! (see [`StateManager::hold_signing_above`]) long enough to stall the channel. The rules here are
//! the only ones under which this participant signs one; the node asks them before it signs.

use entente_types::{Address, MembershipApproval, MembershipChange, Signer, Timing, state_hash};

use crate::StateManager;

/// Why this participant does not co-sign an approval.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalRefusal {
    /// It is about another channel or fork than the current one.
    #[error("the approval is for fork {approval} but the channel is at fork {current}")]
    WrongFork {
        /// The approval's fork.
        approval: u64,
        /// The current fork.
        current: u64,
    },
    /// It does not approve our tip (an older state would roll the channel back; a newer one we
    /// have not seen).
    #[error("the approval binds height {approval} but our tip is {tip}")]
    NotTheTip {
        /// The approved height.
        approval: u64,
        /// Our tip.
        tip: u64,
    },
    /// Our tip is not final yet.
    #[error("height {height} is not final yet")]
    NotFinal {
        /// The approved height.
        height: u64,
    },
    /// The approved state hash is not that of our state at that height.
    #[error("the approved state is not ours at that height")]
    StateMismatch,
    /// It removes our own participant, and we did not ask to leave.
    #[error("the approval removes our own participant, and we did not ask to leave")]
    OwnRemoval,
    /// It removes someone who is not a participant of the current fork.
    #[error("{0} is not a participant of the current fork")]
    NotAParticipant(Address),
    /// It admits a newcomer our application did not allow.
    #[error("our application did not allow {0} to join")]
    JoinNotAllowed(Address),
    /// Its deadline has passed.
    #[error("its deadline {deadline} has passed (chain time {now})")]
    Expired {
        /// The approval's deadline.
        deadline: u64,
        /// Chain time as we know it.
        now: u64,
    },
    /// Its deadline is further than we hold our signatures back for.
    #[error("its deadline {deadline} is after {latest}, the latest we accept")]
    DeadlineTooFar {
        /// The approval's deadline.
        deadline: u64,
        /// The latest deadline we accept.
        latest: u64,
    },
    /// We write next, and the hold would last past the time we must write by.
    #[error("we write next and its deadline {deadline} is after our write-by time {write_by}")]
    BlocksOurTurn {
        /// The approval's deadline.
        deadline: u64,
        /// When our move is due (the tip's timestamp plus `p2pTime`).
        write_by: u64,
    },
    /// We have intents under way in an open state: the hold would keep us from sequencing them
    /// or taking them to the chain.
    #[error("our intents are under way")]
    IntentsUnderWay,
}

/// What the decision needs besides the channel's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApprovalContext {
    /// Chain time as we know it (the latest block's timestamp).
    pub chain_now: u64,
    /// We proposed this change ourselves (for a leave: our own participant asked to leave).
    pub sponsor: bool,
    /// For a join: our application allowed this newcomer.
    pub join_allowed: bool,
}

/// The longest a co-signed approval may run (chain seconds from now, doubled for clock skew in
/// [`StateManager::approval_refusal`]): one writer window, enough for the others to co-sign and
/// the submitter to reach the chain, short enough that the signatures it holds back do not stall
/// the channel.
pub fn approval_window(timing: &Timing) -> u64 {
    timing.p2p_time + timing.agreement_time + timing.chain_fallback_time
}

impl<S: Signer> StateManager<S> {
    /// `Ok` when this participant may co-sign `approval` (docs/security.md, O4): bound to our own
    /// final tip; a leave of our own participant only if we asked for it, a newcomer only one the
    /// application allowed; a deadline in the future and at most two approval windows away; and,
    /// when we write next, one that is over by the time our move is due. After signing, the host
    /// calls [`Self::hold_signing_above`] with the approved height.
    pub fn approval_refusal(
        &self,
        approval: &MembershipApproval,
        context: &ApprovalContext,
    ) -> Result<(), ApprovalRefusal> {
        let fork = self.fork();
        if approval.fork != fork.fork || approval.channel_id != self.spec().channel_id {
            return Err(ApprovalRefusal::WrongFork {
                approval: approval.fork,
                current: fork.fork,
            });
        }
        if approval.height != self.tip() {
            return Err(ApprovalRefusal::NotTheTip {
                approval: approval.height,
                tip: self.tip(),
            });
        }
        if approval.height > self.finalized_height() {
            return Err(ApprovalRefusal::NotFinal {
                height: approval.height,
            });
        }
        if self
            .state_at(approval.height)
            .is_none_or(|s| state_hash(s) != approval.state_hash)
        {
            return Err(ApprovalRefusal::StateMismatch);
        }
        match &approval.change {
            MembershipChange::Join { participant, .. } if !context.join_allowed => {
                return Err(ApprovalRefusal::JoinNotAllowed(*participant));
            }
            MembershipChange::Join { .. } => {}
            MembershipChange::Leave { participant } if *participant == self.me() => {
                if !context.sponsor {
                    return Err(ApprovalRefusal::OwnRemoval);
                }
            }
            MembershipChange::Leave { participant } => {
                if !fork.participants.contains(participant) {
                    return Err(ApprovalRefusal::NotAParticipant(*participant));
                }
            }
        }
        let timing = &self.spec().timing;
        if approval.deadline <= context.chain_now {
            return Err(ApprovalRefusal::Expired {
                deadline: approval.deadline,
                now: context.chain_now,
            });
        }
        let latest = context.chain_now + 2 * approval_window(timing);
        if approval.deadline > latest {
            return Err(ApprovalRefusal::DeadlineTooFar {
                deadline: approval.deadline,
                latest,
            });
        }
        let write_by = self.tip_timestamp() + timing.p2p_time;
        if self.obliged_writer() == Some(self.me()) && approval.deadline > write_by {
            return Err(ApprovalRefusal::BlocksOurTurn {
                deadline: approval.deadline,
                write_by,
            });
        }
        let me = self.me();
        if self.is_open() && self.pending_intents().any(|i| i.issuer == me) {
            return Err(ApprovalRefusal::IntentsUnderWay);
        }
        Ok(())
    }
}
