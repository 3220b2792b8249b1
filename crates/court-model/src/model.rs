//! The abstract dispute game: states, actions and the court's rules (see the crate docs and
//! `docs/security.md` §5.3 for the mapping to the contract's rules R1-R12 and the node's O1-O6).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// Most participants the model handles (participant 0 is honest, the others collude).
pub const MAX_N: usize = 3;
/// Slots for heights `0..SLOTS` (the model's `max_height` must be below it).
pub const SLOTS: usize = 6;
/// The honest participant's index.
pub const HONEST: u8 = 0;
/// The move recorded in a fork's genesis state (moves of transactions are 0 or 1).
pub const GENESIS_MOVE: u8 = 2;
/// The content of a state the court wrote by forcing h's held intent (open machine).
pub const FORCED_HONEST: u8 = 3;
/// The content of a state the court wrote by forcing a colluder's held intent (open machine).
pub const FORCED_OTHER: u8 = 4;

/// Which machine the channel runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Machine {
    /// `RoundRobinCounter`: the writer of height `k + 1` is the current participants' `k mod n`-th,
    /// and it is obliged to write (a timeout removes it when it does not).
    RoundRobin,
    /// A machine where anyone may write (`docs/protocol.md`, section 11): every state below the
    /// final height is open (`getNextToWrite() == 0`), nobody is obliged and no timeout applies;
    /// participants sign intents, the sequencer of height `k` (the current participants' `k mod n`-th)
    /// applies them, and a left-out intent is posted to the court and forced (O9).
    Open,
}

/// An intent the court holds for one participant of the current fork (`postIntent`).
///
/// Whether a colluder's intent applies when forced (a real move) or is refused by the machine
/// (junk: the force voids it) is not kept: the colluders choose it when the intent is forced
/// ([`Action::Force`]'s `applies`). That gives them at least the power of choosing when they post
/// it, and nothing else reads it. h's intent applies when the head has not applied it yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Held {
    /// Its `dueAt`, relative to now: from then on it may be forced, and for one `agreementTime`
    /// no post is taken on an open state until it is.
    pub due: i8,
}

/// Which rules the court enforces: the sound rules of `docs/security.md`, or one of them weakened
/// back to an old, broken form (the checker must then find a counterexample).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rules {
    /// R1-R12 as designed.
    Sound,
    /// Attack 1: a posted transaction is accepted without being linked to the head (`R3`'s
    /// `prevStateHash == head.stateHash` dropped): the chain runs it on whatever parent it is given.
    AcceptUnlinkedPost,
    /// Attack 3: a posted state's window starts at the transaction's own stamp instead of
    /// `max(stamp, post time)` (`R4` weakened).
    DeadlineFromTxTimestamp,
    /// Attack 4: fraud claims are judged when the dispute ends, and the prover is slashed if the claim
    /// no longer holds then (the old `TimestampInFuture` kind; `R7` weakened).
    FraudJudgedLater,
    /// A node rule, not the court's: O4 as first written. h co-signs a leave approval at its tip even
    /// when it is the next writer there, and signs nothing above the approval until it expires, so it
    /// can miss its own window unless the approval's deadline is below `chainFallbackTime`. The sound
    /// model's h refuses to co-sign while it is the next writer at its tip.
    ApproveWhileWriter,
    /// R2 without the cut from below: an N-signed state becomes the head only above it, or at its
    /// height replacing a posted head it differs from (the rule before `anchorHeight`). Colluders
    /// can then bury a state `h` holds N-signed under a branch of their own posts, and a verdict
    /// carried out at that head rolls it back.
    NoBranchCut,
    /// A node rule of the open machine, O9 as first built: an issuer whose intent was left out
    /// `p2pTime` writes it as its own transaction at the chain head's next height (the escape),
    /// instead of posting the intent to the court, although it may have confirmed a transaction at
    /// that height, or on a parent other than the head. It then signs two transactions at one height
    /// (or one on a parent it contradicts), and the colluders prove it.
    SignTwoAtOneHeight,
    /// The court as first built for the open machine: in a state that names no writer any
    /// participant may post at the head's next height, not only that height's sequencer
    /// (`NotSequencer` dropped). A colluder then posts its own transaction at a height where h
    /// holds the sequencer's (or wrote its own), which is no double sign; the others keep h's
    /// signature there, cut the posted branch with it when h requests an exit (R2), and the exit
    /// is defeated (R6): h is slashed.
    AnyonePostsInOpenStates,
    /// A node rule of the open machine: h without the hold. While the court holds an intent, h goes
    /// on confirming the sequencer's transactions (and writing as sequencer) and does not bring the
    /// chain's head up to its tip, so the court's forced transaction can land at a height where h
    /// signed another one; the others cut the forced branch with h's signature when h requests an
    /// exit, and h is slashed.
    NoHoldWhileIntentHeld,
    /// A node rule of the open machine: h without lockstep. It confirms (or writes) at height `k`
    /// although its transaction at `k - 1` is neither N-signed nor the chain's head, so more than
    /// one height it signed may be unprovable on chain when an intent is held. The checker finds no
    /// counterexample (N = 2 to depth 15): the model's h brings every transaction it signed above
    /// the head to the chain within one step, where the node's posts each take time.
    NoLockstep,
    /// The court before `IntentLapsed`: a held intent may be forced at any time from its `dueAt`
    /// (it still holds posts up only for one `agreementTime`), and a lapsed one stays held. Once
    /// its window has passed h confirms again, and a late force lands at a height where h
    /// confirmed the sequencer's transaction.
    ForceAfterWindow,
}

impl Rules {
    /// Every variant, sound first.
    pub const ALL: [Rules; 11] = [
        Rules::Sound,
        Rules::AcceptUnlinkedPost,
        Rules::DeadlineFromTxTimestamp,
        Rules::FraudJudgedLater,
        Rules::ApproveWhileWriter,
        Rules::NoBranchCut,
        Rules::SignTwoAtOneHeight,
        Rules::AnyonePostsInOpenStates,
        Rules::NoHoldWhileIntentHeld,
        Rules::NoLockstep,
        Rules::ForceAfterWindow,
    ];

    /// The name used on the command line (`--weaken NAME`).
    pub fn name(self) -> &'static str {
        match self {
            Rules::Sound => "none",
            Rules::AcceptUnlinkedPost => "unlinked-post",
            Rules::DeadlineFromTxTimestamp => "tx-timestamp-deadline",
            Rules::FraudJudgedLater => "fraud-judged-later",
            Rules::ApproveWhileWriter => "approve-while-writer",
            Rules::NoBranchCut => "no-branch-cut",
            Rules::SignTwoAtOneHeight => "sign-two-at-one-height",
            Rules::AnyonePostsInOpenStates => "anyone-posts-in-open-states",
            Rules::NoHoldWhileIntentHeld => "no-hold-while-intent-held",
            Rules::NoLockstep => "no-lockstep",
            Rules::ForceAfterWindow => "force-after-window",
        }
    }

    /// The variant named `name` (see [`Rules::name`]).
    pub fn from_name(name: &str) -> Option<Rules> {
        Rules::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// The channel's windows in abstract ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// `p2pTime`: a writer writes within it (the honest node writes at once).
    pub p2p: i8,
    /// `agreementTime`: the tolerance on stamps (O1, R3) and the time to collect signatures.
    pub agreement: i8,
    /// `chainFallbackTime`: the time to get a transaction onto the chain.
    pub fallback: i8,
    /// `challengeTime`: how long a dispute runs before it can be finalized.
    pub challenge: i8,
    /// How long a leave approval may be submitted after it is co-signed (O4's "short deadline").
    pub approval: i8,
}

impl Timing {
    /// The defaults: one tick each for `p2pTime`, `agreementTime` and `chainFallbackTime` (a writer
    /// window of 3 ticks), challenges of 2 ticks, approvals valid for 1 tick.
    pub const DEFAULT: Timing = Timing {
        p2p: 1,
        agreement: 1,
        fallback: 1,
        challenge: 2,
        approval: 1,
    };

    /// The writer window: `p2pTime + agreementTime + chainFallbackTime` after `since`.
    pub fn writer_window(&self) -> i8 {
        self.p2p + self.agreement + self.fallback
    }

    /// The confirmation window: a signed transaction without N signatures this long after its stamp
    /// is posted (O2).
    pub fn confirm_window(&self) -> i8 {
        self.p2p + self.agreement
    }

    /// The largest gap between two stamps that the model keeps exactly. Every comparison the model
    /// makes between two instants is `a + c < b` with `c` at most the writer window, so gaps larger
    /// than that can be shrunk to `window + 1` without changing any comparison (time is kept relative
    /// to now, and this keeps the state space finite without a time horizon).
    pub fn gap(&self) -> i8 {
        self.writer_window()
            .max(self.confirm_window())
            .max(self.challenge)
            + 1
    }

    /// The open machine's newest instant that is *old*, relative to now. There nobody is obliged,
    /// so the writer window is never compared with a stamp; every comparison of a stamp with now is
    /// `x + c < 0` with `c` at most the confirmation window (O2's deadline, from the parent's
    /// stamp), or with `0` or `±agreementTime` (a fresh stamp, `max(ts, now)`). An old stamp passes
    /// all of them now and at every later tick, and stamps are compared with each other only by
    /// order (and equality), so of old stamps only their order is kept.
    pub fn open_floor(&self) -> i8 {
        -(self.confirm_window().max(self.agreement) + 1)
    }
}

/// The chain's head of the current fork (R2): the state the chain computed or was shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Head {
    /// Height (heights continue across forks; a fork starts at the height of its genesis).
    pub height: u8,
    /// The state's content: the last move (0 or 1), or [`GENESIS_MOVE`] for a fork's genesis.
    pub mv: u8,
    /// `Some(p)` if the state is junk that pays participant `p` everything (an invalid state).
    pub thief: Option<u8>,
    /// The stamp of the transaction that made it (`head.txTimestamp`), relative to now.
    pub ts: i8,
    /// When the next writer's window starts (R4), relative to now (saturated in the past).
    pub since: i8,
    /// Whether it came from a post (then the last head not set by a post, the *anchor*, is below it).
    pub posted: bool,
    /// Open machine: whether the state has applied h's intent (part of the state's content).
    pub applied: bool,
}

/// A transaction the honest participant signed on the current fork (its own, or one it confirmed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    /// The move of the resulting state.
    pub mv: u8,
    /// Junk marker of the resulting state (only ever set when h followed a junk head under weakened
    /// rules).
    pub thief: Option<u8>,
    /// The transaction's stamp, relative to now.
    pub ts: i8,
    /// The stamp of the state it builds on: its confirmation deadline is `parent_ts + p2pTime +
    /// agreementTime`, as the node computes it.
    pub parent_ts: i8,
    /// Who issued it (the writer whose turn it was).
    pub issuer: u8,
    /// Whether h holds the signatures of every participant on it.
    pub nsig: bool,
    /// Open machine: whether the resulting state has applied h's intent.
    pub applied: bool,
}

/// The kind of a running dispute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// R5: the next writer missed its window.
    Timeout,
    /// R6: a forced exit.
    Exit,
    /// R7: a fraud or double-sign proof (a slash verdict).
    Fraud,
    /// R11: an approved leave.
    Leave,
}

/// The running dispute (R5-R8, R11).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dispute {
    /// Its kind.
    pub kind: Kind,
    /// Who the finalization removes or slashes.
    pub target: u8,
    /// Who raised it.
    pub submitter: u8,
    /// A timeout or exit defeated by a higher N-signed state: the submitter is now the target and is
    /// slashed.
    pub challenged: bool,
    /// The end of the challenge period, relative to now (`-1`: passed).
    pub deadline: i8,
    /// Under [`Rules::FraudJudgedLater`]: the stamp the claim says is too far in the future.
    pub claim_ts: Option<i8>,
}

impl Dispute {
    /// Whether its finalization slashes (a fraud verdict, or a defeated timeout or exit).
    pub fn is_slash(&self) -> bool {
        self.kind == Kind::Fraud || self.challenged
    }
}

/// A leave approval co-signed by every participant, h included (R11, O4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Approval {
    /// Who leaves.
    pub leaver: u8,
    /// The approved state (h's tip when it co-signed).
    pub height: u8,
    /// The approved state's move.
    pub mv: u8,
    /// The approved state's junk marker.
    pub thief: Option<u8>,
    /// The stamp of the approved state.
    pub ts: i8,
    /// The approved state has applied h's intent.
    pub applied: bool,
    /// The approval's deadline, relative to now.
    pub deadline: i8,
}

/// What became of the honest participant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fate {
    /// Still a participant.
    Active,
    /// Left by its own forced exit.
    Exited,
    /// Left by an approved leave.
    Left,
    /// Removed by a timeout (a G2 violation).
    TimedOut,
    /// Slashed (a G2 violation).
    Slashed,
}

/// One state of the model: the chain's view of the channel and the honest participant's knowledge.
/// All instants are relative to now (now is 0); the colluding participants' knowledge is not stored:
/// they know everything and can sign anything with their own keys at any step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// Bit `i`: participant `i` is a current participant.
    pub active: u8,
    /// Bit `i`: participant `i` was slashed.
    pub slashed: u8,
    /// Balances in the current fork's genesis (its exits), per participant.
    pub bal: [u8; MAX_N],
    /// Paid out or credited so far (removal exits, closing exits), per participant.
    pub paid: [u8; MAX_N],
    /// What the channel still holds.
    pub locked: u8,
    /// The channel is settled.
    pub closed: bool,
    /// Height of the current fork's genesis.
    pub gen_height: u8,
    /// The head of the current fork.
    pub head: Head,
    /// The running dispute, if any.
    pub dispute: Option<Dispute>,
    /// A co-signed leave approval not yet submitted, if any.
    pub approval: Option<Approval>,
    /// The transactions h signed on this fork, by height. Those below the head are kept only from the
    /// lowest height in [`State::conflict`] up (a cut may bring the head back to them); lower ones can
    /// no longer move the head.
    pub signed: [Option<Entry>; SLOTS],
    /// The chain's posted history as far as R2 needs it. Bit `k`: the head's branch above the anchor
    /// (the last head not set by a post: the fork's genesis, a checkpoint, an approval; the
    /// contract's `anchorHeight`) holds at height `k` a posted state other than the one h signed there
    /// (the contract's `_postedState` at `k` differs from h's transaction). An N-signed state at such
    /// a height cuts the branch and becomes the head. Set when a post lands, cleared whenever the
    /// anchor moves (every head not set by a post), so only heights in `anchor < k <= head` are set.
    pub conflict: u8,
    /// A verdict was carried out at a head whose posted history conflicts with a state h held
    /// N-signed: it rolled back a state h signed as final (a G1 violation).
    pub rolled_back: bool,
    /// Bit `i`: h holds a proof of fraud or double signing by participant `i` on this fork.
    pub evidence: u8,
    /// Under [`Rules::FraudJudgedLater`]: h saw a transaction by `.0` stamped `.1` (beyond
    /// `now + agreementTime`) and, as the old node did, will claim fraud with it.
    pub future_evidence: Option<(u8, i8)>,
    /// h raised a dispute on this fork, so it signs nothing more on it (O3).
    pub disputed: bool,
    /// h's entitlement (G1): its deposit plus its shares of slashed deposits while it takes part.
    pub entitlement: u8,
    /// What became of h.
    pub fate: Fate,
    /// Open machine: h signed an intent (one per game): `Some(ticks)` it has waited, since it was
    /// signed or last left unapplied, without being applied at the head or in a state h holds
    /// N-signed (0 while it is applied).
    pub intent: Option<u8>,
    /// h posted its intent to the court on this fork: from then on it confirms no transaction that
    /// leaves it out.
    pub intent_posted: bool,
    /// The intents the court holds on this fork, per participant (`postedIntent`).
    pub held: [Option<Held>; MAX_N],
    /// h signed two transactions at one height, or one on a parent other than a state it signed
    /// at the height below (a provable equivocation; only under [`Rules::SignTwoAtOneHeight`]).
    pub double_signed: bool,
}

/// Everything that can happen in one step. Actions without the `H` prefix are the colluding
/// participants' (or anyone's, for [`Action::Finalize`]); `H…` actions are the honest node's
/// reactions (O1-O6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// A colluder signs a fresh transaction (never shown to h) and posts it: the writer `issuer`'s
    /// move `mv` stamped `ts`; `unlinked`: built on a fabricated parent that pays it everything
    /// instead of on the head (accepted only under [`Rules::AcceptUnlinkedPost`]).
    Post {
        /// The issuer.
        issuer: u8,
        /// The move.
        mv: u8,
        /// The stamp, relative to now.
        ts: i8,
        /// Built on a fabricated parent.
        unlinked: bool,
        /// Open machine: the transaction applies h's intent (the colluders hold it once h signed it).
        applied: bool,
    },
    /// Anyone posts a transaction h signed (the colluders have every transaction h signed).
    PostSigned {
        /// Its height.
        height: u8,
    },
    /// The colluders add their signatures to a transaction h signed and show it (a checkpoint, the
    /// `latest` of a dispute, or a challenge).
    Checkpoint {
        /// Its height.
        height: u8,
    },
    /// The colluders send h their signatures on a transaction h signed.
    Confirm {
        /// Its height.
        height: u8,
    },
    /// The writer at h's tip proposes its move to h, stamped `ts` (only proposals h accepts under O1
    /// change anything; the others are refused and not listed).
    Propose {
        /// The move.
        mv: u8,
        /// The stamp, relative to now.
        ts: i8,
        /// Open machine: the transaction applies h's intent (a censoring sequencer leaves it out).
        applied: bool,
    },
    /// Under [`Rules::FraudJudgedLater`]: the writer sends h a transaction stamped beyond
    /// `now + agreementTime`.
    ProposeFuture,
    /// A colluder hands h a proof that `target` signed two transactions at one height.
    Evidence {
        /// The participant the proof convicts.
        target: u8,
    },
    /// A colluder raises a timeout against the head's next writer (R5).
    Timeout {
        /// The accuser.
        by: u8,
    },
    /// A colluder requests a forced exit (R6).
    Exit {
        /// The exiter.
        by: u8,
    },
    /// A colluder proves fraud by `target` (a colluder: claims against h never hold, R7).
    Fraud {
        /// The convicted participant.
        target: u8,
    },
    /// h co-signs a leave approval at its tip (by policy for a colluder, or at its own request).
    ApproveLeave {
        /// Who leaves.
        leaver: u8,
    },
    /// A colluder submits the leave approval (R11).
    SubmitLeave,
    /// Anyone finalizes the running dispute after its challenge period (R10).
    Finalize,
    /// A colluder closes on a final state h signed, adding the other signatures.
    Close,
    /// h signs its own move on its tip (it writes at once).
    HWrite,
    /// h shows its highest N-signed state (O2, or a challenge).
    HCheckpoint {
        /// Its height.
        height: u8,
    },
    /// h posts the next transaction it signed above the head (O2).
    HPost {
        /// Its height.
        height: u8,
    },
    /// h proves fraud or double signing by `target` (R7).
    HFraud {
        /// The convicted participant.
        target: u8,
    },
    /// Under [`Rules::FraudJudgedLater`]: h claims the far-future stamp it saw (the old fraud kind).
    HFraudFuture,
    /// h raises a timeout against the head's next writer (R5).
    HTimeout,
    /// h requests a forced exit (R6).
    HExit,
    /// h submits its own leave approval.
    HSubmitLeave,
    /// h closes on a final state it holds N-signed.
    HClose,
    /// Open machine: a colluder posts an intent to the court (`postIntent`): its own (`index` is
    /// the poster; a real move or junk, decided when it is forced), or h's signed intent (`index`
    /// 0).
    PostIntent {
        /// Whose intent.
        index: u8,
    },
    /// Open machine: anyone forces the held intent of participant `index` (`forceIntent`): due, and
    /// first in the order the held intents fell due.
    Force {
        /// Whose intent.
        index: u8,
        /// A colluder's intent: whether it was a real move the machine applies (else junk it
        /// refuses, and the court voids it); h's: always `true` (it applies when the head has not
        /// applied it yet).
        applies: bool,
    },
    /// Open machine: h signs an intent (it decides to pay; at any time, once per game).
    HIntent,
    /// Open machine: h posts its intent to the court, once it is left out
    /// (`CourtModel::left_out`: `p2pTime`, not applied at h's tip, h not free to write it) and the
    /// head is at h's tip.
    HPostIntent,
    /// Open machine: h forces a held intent in due order, its own held one being due.
    HForce {
        /// Whose intent.
        index: u8,
        /// As for [`Action::Force`]: for a colluder's intent, the colluders' choice (made when
        /// they posted it) of a real move or junk.
        applies: bool,
    },
    /// Under [`Rules::SignTwoAtOneHeight`]: h writes its left-out intent as its own transaction at
    /// the head's next height, on the head.
    HEscape,
    /// One tick passes (only when h has nothing due now: it acts within every window).
    Tick,
}

/// The model: `n` participants, moves up to `max_height`, a set of rules and windows.
#[derive(Clone, Debug)]
pub struct CourtModel {
    /// Number of participants (2 or 3).
    pub n: u8,
    /// The game is over (the state is final) at this height.
    pub max_height: u8,
    /// The rules the court enforces.
    pub rules: Rules,
    /// The windows.
    pub timing: Timing,
    /// Whether leave approvals (R11, O4) are modelled.
    pub leave: bool,
    /// Every participant's deposit.
    pub deposit: u8,
    /// The machine.
    pub machine: Machine,
    /// Open machine: the bound on the ticks h's intent waits unapplied (O9).
    pub intent_bound: u8,
    /// A change to the court an earlier version of this model suggested, not adopted, off by
    /// default: a challenge to a forced exit moves the head and restarts the challenge period, and
    /// the exit is carried out at the new head, instead of defeating it and slashing the exiter. It
    /// closed the slashed exit found with the court as first built (anyone posting, or a forced
    /// intent landing, at a height where h signed a transaction; see
    /// [`Rules::AnyonePostsInOpenStates`]); the adopted fix is the sequencer-only post, the force
    /// window and the node's hold and lockstep, which the sound rules model.
    pub exit_challenge_moves_only: bool,
    /// The most ticks h needed to settle alone from any state checked so far (see
    /// [`CourtModel::honest_alone_settles`]); shared by the clones the checker makes.
    pub g3_max_ticks: Arc<AtomicU32>,
    /// Open machine: the most ticks h's intent waited unapplied in any state checked so far.
    pub intent_max_ticks: Arc<AtomicU32>,
}

/// h's tip: the state it builds on next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tip {
    height: u8,
    mv: u8,
    thief: Option<u8>,
    ts: i8,
    applied: bool,
}

fn bit(p: u8) -> u8 {
    1 << p
}

impl CourtModel {
    /// A model of `n` participants (2 or 3) under `rules`, with the default windows, moves up to
    /// height 3, leaves modelled, deposits of 6.
    pub fn new(n: u8, rules: Rules) -> CourtModel {
        assert!((2..=MAX_N as u8).contains(&n), "2 <= n <= {MAX_N}");
        CourtModel {
            n,
            max_height: 3,
            rules,
            timing: Timing::DEFAULT,
            leave: true,
            deposit: 6,
            machine: Machine::RoundRobin,
            intent_bound: 0,
            exit_challenge_moves_only: false,
            g3_max_ticks: Arc::new(AtomicU32::new(0)),
            intent_max_ticks: Arc::new(AtomicU32::new(0)),
        }
    }

    /// A model of the open machine (anyone may write, O9) with `n` participants under `rules`;
    /// otherwise as [`CourtModel::new`].
    pub fn open(n: u8, rules: Rules) -> CourtModel {
        let mut m = CourtModel::new(n, rules);
        m.machine = Machine::Open;
        m.intent_bound = Self::default_intent_bound(n);
        m
    }

    /// The default O9 bound for `n` participants with the default windows (see
    /// [`CourtModel::intent_bound`]).
    pub fn default_intent_bound(n: u8) -> u8 {
        if n <= 2 { 13 } else { 21 }
    }

    /// Everything deposited.
    pub fn total(&self) -> u8 {
        self.n * self.deposit
    }

    /// The initial state: everyone funded, the genesis at height 0 is the head, now is its time.
    pub fn initial(&self) -> State {
        let mut bal = [0; MAX_N];
        for b in bal.iter_mut().take(self.n as usize) {
            *b = self.deposit;
        }
        State {
            active: (1u8 << self.n) - 1,
            slashed: 0,
            bal,
            paid: [0; MAX_N],
            locked: self.total(),
            closed: false,
            gen_height: 0,
            head: Head {
                height: 0,
                mv: GENESIS_MOVE,
                thief: None,
                ts: 0,
                since: 0,
                posted: false,
                applied: false,
            },
            dispute: None,
            approval: None,
            signed: [None; SLOTS],
            conflict: 0,
            rolled_back: false,
            evidence: 0,
            future_evidence: None,
            disputed: false,
            entitlement: self.deposit,
            fate: Fate::Active,
            intent: None,
            intent_posted: false,
            held: [None; MAX_N],
            double_signed: false,
        }
    }

    // ------------------------------------------------------------------ helpers

    /// Whether anything can still happen that matters to h: the channel is open and h takes part.
    /// Once h has left, what it was paid is credited and nothing the others do changes it, so such
    /// states are terminal.
    pub fn live(&self, s: &State) -> bool {
        !s.closed && s.fate == Fate::Active
    }

    fn is_active(s: &State, p: u8) -> bool {
        s.active & bit(p) != 0
    }

    fn n_active(s: &State) -> u8 {
        s.active.count_ones() as u8
    }

    fn adversaries(&self, s: &State) -> impl Iterator<Item = u8> + '_ {
        let active = s.active;
        (1..self.n).filter(move |p| active & bit(*p) != 0)
    }

    /// The writer of the transaction that builds on a state at `height`: round robin over the
    /// current participants in index order; `None` when the state is final.
    pub fn writer(&self, s: &State, height: u8) -> Option<u8> {
        if height >= self.max_height {
            return None;
        }
        let count = Self::n_active(s);
        if count == 0 {
            return None;
        }
        (0..self.n)
            .filter(|p| Self::is_active(s, *p))
            .nth((height % count) as usize)
    }

    /// The sequencer of the transaction that builds on a state at `height` in the open machine: the
    /// current participants' `(height + 1) mod n`-th; `None` when the state is final.
    pub fn sequencer(&self, s: &State, height: u8) -> Option<u8> {
        if height >= self.max_height {
            return None;
        }
        let count = Self::n_active(s);
        if count == 0 {
            return None;
        }
        (0..self.n)
            .filter(|p| Self::is_active(s, *p))
            .nth(((height + 1) % count) as usize)
    }

    /// Who must write the transaction that builds on a state at `height` (`getNextToWrite()`): the
    /// round-robin writer; nobody in the open machine (every state is open, no timeout applies).
    pub fn obliged(&self, s: &State, height: u8) -> Option<u8> {
        match self.machine {
            Machine::RoundRobin => self.writer(s, height),
            Machine::Open => None,
        }
    }

    /// Whose transaction h confirms on a state at `height` (O1): the writer, or the sequencer.
    fn proposer(&self, s: &State, height: u8) -> Option<u8> {
        match self.machine {
            Machine::RoundRobin => self.writer(s, height),
            Machine::Open => self.sequencer(s, height),
        }
    }

    /// Whether the chain takes a post by `issuer` at the head's next height: the machine's write
    /// rule (`_mayWrite`) lets the round-robin writer write; in an open state the court takes it
    /// only from that height's sequencer (`_checkOpenPost`, `NotSequencer`; anyone under
    /// [`Rules::AnyonePostsInOpenStates`] and [`Rules::SignTwoAtOneHeight`]).
    fn may_post(&self, s: &State, issuer: u8) -> bool {
        match self.machine {
            Machine::RoundRobin => self.writer(s, s.head.height) == Some(issuer),
            // The old escape (h posting its own transaction at a height not its to sequence) was
            // built for that court too.
            Machine::Open
                if matches!(
                    self.rules,
                    Rules::AnyonePostsInOpenStates | Rules::SignTwoAtOneHeight
                ) =>
            {
                Self::is_active(s, issuer) && s.head.height < self.max_height
            }
            Machine::Open => self.sequencer(s, s.head.height) == Some(issuer),
        }
    }

    /// O9, the hold: while the court holds an intent on this fork (anyone's, h's included) that
    /// is not yet forced, voided or lapsed, h confirms no transaction from its peers and writes
    /// nothing as sequencer, and brings the chain's head up to its tip at once (not under
    /// [`Rules::NoHoldWhileIntentHeld`]). Lapsed intents are dropped from the state (normalize).
    fn holding(&self, s: &State) -> bool {
        self.machine == Machine::Open
            && self.rules != Rules::NoHoldWhileIntentHeld
            && s.held.iter().flatten().any(|d| !self.lapsed(d))
    }

    /// A held intent whose window has passed (`dueAt + agreementTime`): it can no longer be forced
    /// (except under [`Rules::ForceAfterWindow`]) and anyone may replace it.
    fn lapsed(&self, d: &Held) -> bool {
        d.due <= -self.timing.agreement
    }

    /// O9, lockstep: h confirms (or writes) on its tip only if its tip is N-signed or is the
    /// chain's head, so at most one height it signed is not provable on chain (not under
    /// [`Rules::NoLockstep`]; round robin: always).
    fn lockstep_ok(&self, s: &State) -> bool {
        if self.machine != Machine::Open || self.rules == Rules::NoLockstep {
            return true;
        }
        let tip = Self::tip(s);
        match s.signed[tip.height as usize] {
            Some(e) if e.nsig => true,
            Some(e) => tip.height == s.head.height && Self::same_state(&e, &s.head),
            // Nothing h signed at its tip: the tip is the head.
            None => tip.height == s.head.height,
        }
    }

    /// Whether held intent `i` is due, within its window (`[dueAt, dueAt + agreementTime)`, else
    /// `IntentLapsed`), and first in the order the held intents fell due (ties by index), so it may
    /// be forced (`_takePostedIntent`). Lapsed intents hold nobody up (they are dropped).
    fn forceable(s: &State, i: u8, lapse: i8, rules: Rules) -> bool {
        let Some(Some(me)) = s.held.get(i as usize) else {
            return false;
        };
        me.due <= 0
            && (me.due > -lapse || rules == Rules::ForceAfterWindow)
            && s.held.iter().enumerate().all(|(j, o)| match o {
                Some(o) if j != i as usize => !(o.due < me.due || (o.due == me.due && j < i as usize)),
                _ => true,
            })
    }

    /// O9: no post is taken on an open state while a held intent is due, for one `agreementTime`
    /// from its `dueAt` (`IntentDue`).
    fn intent_due(&self, s: &State) -> bool {
        self.machine == Machine::Open
            && s.head.height < self.max_height
            && s.held
                .iter()
                .flatten()
                .any(|d| d.due <= 0 && d.due > -self.timing.agreement)
    }

    /// h's intent is applied: at the head, or in a state h holds N-signed.
    pub fn intent_applied(s: &State) -> bool {
        s.head.applied || s.signed.iter().flatten().any(|e| e.nsig && e.applied)
    }

    /// h's intent waits: signed, not applied, and the game not over, at the head or in a final
    /// state h holds N-signed (a model artefact: the real channel has no final height; there h, the
    /// next sequencer after a colluder's final height, would write its intent on that state).
    pub fn intent_waiting(&self, s: &State) -> bool {
        s.intent.is_some()
            && !Self::intent_applied(s)
            && s.head.height < self.max_height
            && !matches!(s.signed[self.max_height as usize], Some(e) if e.nsig)
    }

    /// h signs the transaction `e` at height `k` (the own-signature log): signing a second one at a
    /// height, or one whose parent is not the state h signed below it, is an equivocation the others
    /// can prove.
    fn sign(t: &mut State, k: u8, e: Entry, parent: (u8, Option<u8>, bool)) {
        let ku = k as usize;
        if matches!(t.signed[ku], Some(old) if old != e) {
            t.double_signed = true;
        }
        if ku > 0 && matches!(t.signed[ku - 1], Some(p) if (p.mv, p.thief, p.applied) != parent) {
            t.double_signed = true;
        }
        t.signed[ku] = Some(e);
    }

    fn undefeated(d: &Dispute, kind: Kind) -> bool {
        d.kind == kind && !d.challenged
    }

    /// Posts are refused while an undefeated timeout runs (R5), once the head is final, and in an
    /// open state while a held intent is due (O9).
    fn posts_open(&self, s: &State) -> bool {
        !matches!(s.dispute, Some(d) if Self::undefeated(&d, Kind::Timeout))
            && s.head.height < self.max_height
            && !self.intent_due(s)
    }

    /// A fraud proof may start a dispute, or replace an undefeated timeout or exit (R8).
    fn fraud_allowed(s: &State) -> bool {
        match s.dispute {
            None => true,
            Some(d) => (d.kind == Kind::Timeout || d.kind == Kind::Exit) && !d.challenged,
        }
    }

    fn top_entry(s: &State) -> Option<(u8, Entry)> {
        (0..SLOTS).rev().find_map(|k| s.signed[k].map(|e| (k as u8, e)))
    }

    fn entries_above_head(s: &State) -> bool {
        ((s.head.height as usize + 1)..SLOTS).any(|k| s.signed[k].is_some())
    }

    /// What h signed above the head that can still reach the chain: a state it holds N-signed (a
    /// checkpoint jumps), or a transaction at the head's next height that builds on the head and is
    /// stamped no earlier (a post of the same state stamped later leaves it behind).
    /// Round robin: anything signed above the head (what cannot land there comes with a double-sign
    /// proof h uses first). Open machine: a forced head is written by the court, so it can leave
    /// h's branch above it without any proof; h keeps that branch (it never signs on a parent
    /// other than the one it signed) and goes on without it (`docs/protocol.md` section 11, a
    /// replaced height).
    fn holds_above_head(&self, s: &State) -> bool {
        match self.machine {
            Machine::RoundRobin => Self::entries_above_head(s),
            Machine::Open => {
                let next = s.head.height + 1;
                ((next as usize)..SLOTS).any(|k| matches!(s.signed[k], Some(e) if e.nsig))
                    || (matches!(s.signed.get(next as usize), Some(Some(e)) if e.ts >= s.head.ts)
                        && Self::linked(s, next))
            }
        }
    }

    fn tip(s: &State) -> Tip {
        match Self::top_entry(s) {
            Some((k, e)) if k >= s.head.height => Tip {
                height: k,
                mv: e.mv,
                thief: e.thief,
                ts: e.ts,
                applied: e.applied,
            },
            _ => Tip {
                height: s.head.height,
                mv: s.head.mv,
                thief: s.head.thief,
                ts: s.head.ts,
                applied: s.head.applied,
            },
        }
    }

    /// Whether h's transaction at the head's height gives the head's state (the chain compares state
    /// hashes; a state is its height, move and junk marker).
    fn same_state(e: &Entry, h: &Head) -> bool {
        e.mv == h.mv && e.thief == h.thief && e.applied == h.applied
    }

    /// R2's cut: h's transaction at `k` may become the head although it is not above it, because
    /// the head's branch above the anchor holds another posted state at `k` (a writer equivocated).
    /// At the head's height that replaces a posted head; below it, it cuts the posted branch (not
    /// under [`Rules::NoBranchCut`]).
    fn cuttable(&self, s: &State, k: u8) -> bool {
        k <= s.head.height
            && s.conflict & bit(k) != 0
            && (self.rules != Rules::NoBranchCut || k == s.head.height)
    }

    /// Whether an N-signed state at `k` moves the head (the contract's `_canCheckpoint`, without
    /// its "already the head" case): above the head, or cutting a posted branch it conflicts with.
    fn moves_head(&self, s: &State, k: u8) -> bool {
        k > s.head.height || self.cuttable(s, k)
    }

    /// The head's posted branch conflicts with a state h holds N-signed that can cut it: h shows it
    /// (the `DisputeHandler`'s `conflicting_signed`).
    fn cut_due(&self, s: &State) -> bool {
        (0..=s.head.height)
            .any(|k| self.cuttable(s, k) && matches!(s.signed.get(k as usize), Some(Some(e)) if e.nsig))
    }

    /// Whether h's transaction at `k` builds on the head: the head is at `k - 1` and is the state h
    /// built on (its own entry there, or the head h followed; the genesis).
    fn linked(s: &State, k: u8) -> bool {
        let p = k.wrapping_sub(1);
        if k == 0 || s.head.height != p {
            return false;
        }
        match s.signed[p as usize] {
            Some(e) => Self::same_state(&e, &s.head),
            None => true,
        }
    }

    /// h signs only while it has raised no dispute on this fork (O3), holds no unused proof (it proves
    /// first), and has no leave approval pending or running (O4).
    fn honest_signs(s: &State) -> bool {
        !s.disputed
            && s.evidence == 0
            && s.future_evidence.is_none()
            && s.approval.is_none()
            && !matches!(s.dispute, Some(d) if d.kind == Kind::Leave)
    }

    fn has_usable_evidence(s: &State) -> bool {
        s.evidence & s.active != 0 || s.future_evidence.is_some()
    }

    /// O2: h wants the head at its tip when a transaction it signed lacks N signatures after its
    /// confirmation deadline (measured from its parent's stamp, strictly after, as the node's
    /// `DisputeHandler` does), when the writer after its tip is late (it will raise a timeout), when
    /// it is about to prove fraud, or when the head's posted branch conflicts with a state it holds
    /// N-signed (R2: it cuts the branch at once; the handler shows that state first whenever it moves
    /// the head, and a verdict carried out at the branch would roll it back).
    fn bring_due(&self, s: &State) -> bool {
        let confirm = self.timing.confirm_window();
        let window = self.timing.writer_window();
        let unconfirmed = ((s.head.height as usize + 1)..SLOTS)
            .any(|k| matches!(s.signed[k], Some(e) if !e.nsig && e.parent_ts + confirm < 0));
        let late_writer = match Self::top_entry(s) {
            Some((k, e)) if k > s.head.height => {
                e.ts + window < 0 && matches!(self.obliged(s, k), Some(w) if w != HONEST)
            }
            _ => false,
        };
        // O9, the hold: while the court holds an intent, h brings the head up to its tip at once.
        let hold = self.holding(s) && self.holds_above_head(s);
        // O9: a left-out intent goes to the court with the head at h's tip, so h brings the head
        // up first (the dispute handler's `court_intent`). Without it the N = 3 check finds h's
        // intent waiting forever: h holds a colluder's transaction N-signed above the head, the
        // next sequencer is the other colluder, and nothing else brings it to the chain.
        let left_out = self.left_out(s) && self.holds_above_head(s);
        unconfirmed || late_writer || hold || left_out || Self::has_usable_evidence(s) || self.cut_due(s)
    }

    /// O9: h's intent is left out, as the node's `StateManager::left_out_intent` finds it: it
    /// waited `p2pTime` unapplied, the court does not hold it (else h forces it when due), h's tip
    /// does not apply it (there the intent nonce moved on: h waits for that transaction's
    /// confirmation, O2), and h is not the sequencer after its tip free to write (then it writes
    /// the intent itself, [`Action::HWrite`]). The node also gives up an intent past its
    /// `notAfter` (`court_intent`: one that would expire before it is due); intents never expire
    /// in the model.
    fn left_out(&self, s: &State) -> bool {
        self.machine == Machine::Open
            && self.rules != Rules::SignTwoAtOneHeight
            && self.intent_waiting(s)
            && s.intent >= Some(self.timing.p2p as u8)
            && s.held[0].is_none_or(|d| self.lapsed(&d))
            && !Self::tip(s).applied
            && !self.writes_as_sequencer(s)
    }

    /// h is the writer (round robin) or the sequencer (open machine) after its tip and may write
    /// there: it signs (O3, O4), the court holds no intent and its tip is in lockstep (O9).
    fn writes_as_sequencer(&self, s: &State) -> bool {
        Self::honest_signs(s)
            && !self.holding(s)
            && self.lockstep_ok(s)
            && self.proposer(s, Self::tip(s).height) == Some(HONEST)
    }

    /// A running dispute h can still challenge: the `DisputeHandler` shows its highest N-signed
    /// state above the head to any running dispute (`maybe_challenge`), since the verdict is carried
    /// out at the head. An undefeated timeout or exit is then defeated, a leave cancelled, and any
    /// other verdict carried out at a head that holds h's state.
    fn challenge_wanted(s: &State) -> bool {
        matches!(s.dispute, Some(d) if d.deadline >= 0)
    }

    /// The highest state h signed that can move the head: above it, or at or below it cutting a
    /// posted branch it conflicts with (R2); with `nsig`, only those h holds N-signed.
    fn checkpoint_candidate(&self, s: &State, nsig: bool) -> Option<u8> {
        (0..SLOTS).rev().find_map(|k| {
            let e = s.signed[k]?;
            let k8 = k as u8;
            (self.moves_head(s, k8) && (!nsig || e.nsig)).then_some(k8)
        })
    }

    // ------------------------------------------------------------------ actions

    /// Every action that can be tried in `s` (those the rules refuse make `step` return `None`).
    pub fn candidates(&self, s: &State, out: &mut Vec<Action>) {
        if !self.live(s) {
            return;
        }
        let stamps = self.post_stamps(s);
        let posters: Vec<u8> = match self.machine {
            Machine::RoundRobin => self.writer(s, s.head.height).into_iter().collect(),
            Machine::Open => self.adversaries(s).filter(|p| self.may_post(s, *p)).collect(),
        };
        for w in posters.into_iter().filter(|w| *w != HONEST) {
            for applied in self.applied_choices(s, s.head.applied) {
                for mv in 0..2 {
                    for &ts in &stamps {
                        out.push(Action::Post {
                            issuer: w,
                            mv,
                            ts,
                            unlinked: false,
                            applied,
                        });
                    }
                }
            }
            if self.rules == Rules::AcceptUnlinkedPost {
                out.push(Action::Post {
                    issuer: w,
                    mv: 0,
                    ts: s.head.ts,
                    unlinked: true,
                    applied: false,
                });
            }
        }
        if self.machine == Machine::Open {
            for i in 0..self.n {
                out.push(Action::PostIntent { index: i });
                out.push(Action::Force {
                    index: i,
                    applies: true,
                });
                if i != HONEST {
                    out.push(Action::Force {
                        index: i,
                        applies: false,
                    });
                }
            }
        }
        for k in 0..SLOTS as u8 {
            if s.signed[k as usize].is_some() {
                out.push(Action::PostSigned { height: k });
                out.push(Action::Checkpoint { height: k });
                out.push(Action::Confirm { height: k });
            }
        }
        let tip = Self::tip(s);
        if matches!(self.proposer(s, tip.height), Some(w) if w != HONEST) {
            let a = self.timing.agreement;
            for applied in self.applied_choices(s, tip.applied) {
                for mv in 0..2 {
                    for ts in -a..=a {
                        out.push(Action::Propose { mv, ts, applied });
                    }
                }
            }
            if self.rules == Rules::FraudJudgedLater {
                out.push(Action::ProposeFuture);
            }
        }
        for p in self.adversaries(s) {
            out.push(Action::Evidence { target: p });
            out.push(Action::Timeout { by: p });
            out.push(Action::Exit { by: p });
            out.push(Action::Fraud { target: p });
        }
        if self.leave {
            for p in 0..self.n {
                out.push(Action::ApproveLeave { leaver: p });
            }
            out.push(Action::SubmitLeave);
        }
        out.push(Action::Close);
        out.extend(self.honest_candidates(s));
        out.push(Action::Tick);
    }

    /// Whether a colluder's transaction on a parent that has (`parent_applied`) or has not applied
    /// h's intent may apply it: it must once the parent did, and can only once h signed it.
    fn applied_choices(&self, s: &State, parent_applied: bool) -> Vec<bool> {
        if parent_applied {
            vec![true]
        } else if s.intent.is_some() {
            vec![false, true]
        } else {
            vec![false]
        }
    }

    /// h's possible reactions in `s`, most urgent first.
    fn honest_candidates(&self, s: &State) -> Vec<Action> {
        let mut out = vec![Action::Finalize];
        if self.machine == Machine::Open {
            for i in 0..self.n {
                out.push(Action::HForce {
                    index: i,
                    applies: true,
                });
                if i != HONEST {
                    out.push(Action::HForce {
                        index: i,
                        applies: false,
                    });
                }
            }
            out.extend([Action::HPostIntent, Action::HEscape, Action::HIntent]);
        }
        if let Some(k) = self.checkpoint_candidate(s, true) {
            out.push(Action::HCheckpoint { height: k });
        }
        out.push(Action::HPost {
            height: s.head.height + 1,
        });
        for p in self.adversaries(s) {
            if s.evidence & bit(p) != 0 {
                out.push(Action::HFraud { target: p });
            }
        }
        if s.future_evidence.is_some() {
            out.push(Action::HFraudFuture);
        }
        out.extend([
            Action::HSubmitLeave,
            Action::HTimeout,
            Action::HWrite,
            Action::HClose,
        ]);
        out.push(Action::HExit);
        out
    }

    /// Actions h must take before time may pass (it acts within every window; here: at once).
    fn urgent(a: &Action) -> bool {
        matches!(
            a,
            Action::Finalize
                | Action::HCheckpoint { .. }
                | Action::HPost { .. }
                | Action::HFraud { .. }
                | Action::HFraudFuture
                | Action::HSubmitLeave
                | Action::HTimeout
                | Action::HWrite
                | Action::HPostIntent
                | Action::HForce { .. }
                | Action::HEscape
        )
    }

    /// Whether h has something due now (time cannot pass before it acts).
    pub fn honest_due(&self, s: &State) -> bool {
        self.honest_candidates(s)
            .into_iter()
            .any(|a| Self::urgent(&a) && self.step_raw(s, a).is_some())
    }

    /// The stamps worth trying for a colluder's fresh post: every stamp the chain accepts
    /// (`head.ts ..= now + agreementTime`), one per class of equivalent stamps. A stamp is compared
    /// with other stamps (by order) and with now (by constants up to the writer window), so the
    /// classes are: each instant from `now - window - 1` on, and below that, the head's stamp and each
    /// stored stamp or the instant just above it.
    fn post_stamps(&self, s: &State) -> Vec<i8> {
        let lo = s.head.ts;
        let hi = self.timing.agreement;
        let near = match self.machine {
            Machine::RoundRobin => -(self.timing.writer_window() + 1),
            Machine::Open => self.timing.open_floor(),
        };
        let mut v: Vec<i8> = (near.max(lo)..=hi).collect();
        v.push(lo);
        let mut stored: Vec<i8> = s.signed.iter().flatten().map(|e| e.ts).collect();
        if let Some(a) = s.approval {
            stored.push(a.ts);
        }
        for t in stored {
            v.push(t);
            v.push(t + 1);
        }
        v.retain(|t| *t >= lo && *t <= hi);
        v.sort_unstable();
        v.dedup();
        v
    }

    // ------------------------------------------------------------------ transitions

    /// The successor of `s` by `a`, normalized; `None` if the rules refuse `a`.
    pub fn step(&self, s: &State, a: Action) -> Option<State> {
        let mut t = self.step_raw(s, a)?;
        self.normalize(&mut t);
        Some(t)
    }

    fn step_raw(&self, s: &State, a: Action) -> Option<State> {
        if !self.live(s) {
            return None;
        }
        let mut t = *s;
        let c = self.timing.challenge;
        match a {
            Action::Post {
                issuer,
                mv,
                ts,
                unlinked,
                applied,
            } => {
                if !self.posts_open(s) || issuer == HONEST {
                    return None;
                }
                if !self.may_post(s, issuer) {
                    return None;
                }
                if (s.head.applied && !applied) || (applied && !s.head.applied && s.intent.is_none()) {
                    return None;
                }
                if unlinked && self.rules != Rules::AcceptUnlinkedPost {
                    return None;
                }
                if ts < s.head.ts || ts > self.timing.agreement {
                    return None;
                }
                // R3: the chain runs the transaction on the head (or, weakened, on the parent it is
                // given) and gets exactly the claimed state: the only claims it accepts are the real
                // results, so a junk claim is refused unless its parent was junk already.
                let thief = if unlinked { Some(issuer) } else { s.head.thief };
                if s.head.height + 1 > self.max_height {
                    return None;
                }
                self.land_post(&mut t, s.head.height + 1, (mv, thief, applied), ts, Some(issuer));
            }
            Action::PostSigned { height } | Action::HPost { height } => {
                let e = s.signed.get(height as usize).copied().flatten()?;
                if matches!(a, Action::HPost { .. })
                    && (!self.bring_due(s) || self.checkpoint_candidate(s, true).is_some())
                {
                    return None;
                }
                if !self.posts_open(s) || !Self::linked(s, height) || e.ts < s.head.ts {
                    return None;
                }
                if self.machine == Machine::Open && !self.may_post(s, e.issuer) {
                    return None;
                }
                self.land_post(&mut t, height, (e.mv, e.thief, e.applied), e.ts, Some(e.issuer));
            }
            Action::Checkpoint { height } | Action::HCheckpoint { height } => {
                let e = s.signed.get(height as usize).copied().flatten()?;
                if let Action::HCheckpoint { .. } = a {
                    let wanted = self.bring_due(s) || Self::challenge_wanted(s);
                    if !wanted || self.checkpoint_candidate(s, true) != Some(height) {
                        return None;
                    }
                }
                // R2: above the head, or cutting a posted branch it conflicts with.
                if !self.moves_head(s, height) {
                    return None;
                }
                if matches!(s.dispute, Some(d) if d.deadline < 0) {
                    return None;
                }
                // R4: an N-signed state's window starts at its stamp; one that replaces posted states
                // (at or below the head) starts it now at the earliest, since the next writer may
                // have been kept from posting on the real history.
                let since = if height > s.head.height { e.ts } else { e.ts.max(0) };
                t.head = Head {
                    height,
                    mv: e.mv,
                    thief: e.thief,
                    ts: e.ts,
                    since,
                    posted: false,
                    applied: e.applied,
                };
                // The anchor is now the head: nothing above it was posted.
                t.conflict = 0;
                // Shown during a dispute, any state that moves the head is a challenge (the
                // contract's `challenge` accepts it when `_canCheckpoint` holds). During a leave the
                // anchor is the approved state, so a cut too is above the approved height.
                if let Some(d) = t.dispute.as_mut() {
                    match d.kind {
                        // The fix this model suggests for the open machine (see
                        // `CourtModel::exit_challenge_moves_only`): the exit goes on at the new head.
                        Kind::Exit if !d.challenged && self.exit_challenge_moves_only => d.deadline = c,
                        Kind::Timeout | Kind::Exit if !d.challenged => {
                            // Defeated: the submitter is slashed instead (R5, R6).
                            d.challenged = true;
                            d.target = d.submitter;
                            d.deadline = c;
                        }
                        // R11: an N-signed state above the approval cancels the leave.
                        Kind::Leave => t.dispute = None,
                        _ => d.deadline = c,
                    }
                }
            }
            Action::Confirm { height } => {
                // Signatures handed to h once a verdict's challenge period is over can no longer
                // move the head before it is carried out; they are not modelled (h would hold a
                // state N-signed only after the chain's decision was taken).
                if matches!(s.dispute, Some(d) if d.deadline < 0) {
                    return None;
                }
                let e = t.signed.get_mut(height as usize)?.as_mut()?;
                if e.nsig {
                    return None;
                }
                e.nsig = true;
            }
            Action::Propose { mv, ts, applied } => {
                // O9: no confirmation while the court holds an intent, and only in lockstep.
                if !Self::honest_signs(s) || self.holding(s) || !self.lockstep_ok(s) {
                    return None;
                }
                let tip = Self::tip(s);
                let w = self.proposer(s, tip.height)?;
                let a = self.timing.agreement;
                // O1: h refuses a stamp more than agreementTime away from its clock, or before the
                // parent's; it confirms only its tip's writer's (the sequencer's) valid move.
                if w == HONEST || ts < -a || ts > a || ts < tip.ts || mv > 1 {
                    return None;
                }
                // An intent applies once (it cannot be undone), and only once h signed it; O9: once h
                // posted its intent to the court it confirms no transaction that leaves it out.
                if (tip.applied && !applied)
                    || (applied && !tip.applied && s.intent.is_none())
                    || (s.intent_posted && !applied)
                {
                    return None;
                }
                Self::sign(
                    &mut t,
                    tip.height + 1,
                    Entry {
                        mv,
                        thief: tip.thief,
                        ts,
                        issuer: w,
                        parent_ts: tip.ts,
                        nsig: false,
                        applied,
                    },
                    (tip.mv, tip.thief, tip.applied),
                );
            }
            Action::ProposeFuture => {
                if self.rules != Rules::FraudJudgedLater
                    || !Self::honest_signs(s)
                    || s.future_evidence.is_some()
                {
                    return None;
                }
                let w = self.writer(s, Self::tip(s).height)?;
                if w == HONEST {
                    return None;
                }
                t.future_evidence = Some((w, self.timing.agreement + 1));
            }
            Action::Evidence { target } => {
                if target == HONEST || !Self::is_active(s, target) || s.evidence & bit(target) != 0 {
                    return None;
                }
                t.evidence |= bit(target);
            }
            Action::Timeout { .. } | Action::HTimeout => {
                let by = if let Action::Timeout { by } = a {
                    by
                } else {
                    HONEST
                };
                if !Self::is_active(s, by) || s.dispute.is_some() {
                    return None;
                }
                // In an open state nobody is obliged: the chain refuses (`NoWriterExpected`).
                let accused = self.obliged(s, s.head.height)?;
                if accused == by || s.head.since + self.timing.writer_window() >= 0 {
                    return None;
                }
                if by == HONEST {
                    // O2: h raises it only with the head at its tip (nothing it signed above, no
                    // posted branch it can cut), and proves fraud first when it can.
                    if Self::entries_above_head(s) || Self::has_usable_evidence(s) || self.cut_due(s) {
                        return None;
                    }
                    t.disputed = true;
                }
                t.dispute = Some(Dispute {
                    kind: Kind::Timeout,
                    target: accused,
                    submitter: by,
                    challenged: false,
                    deadline: c,
                    claim_ts: None,
                });
            }
            Action::Exit { .. } | Action::HExit => {
                let by = if let Action::Exit { by } = a { by } else { HONEST };
                if !Self::is_active(s, by) || s.dispute.is_some() {
                    return None;
                }
                if by == HONEST {
                    if self.holds_above_head(s)
                        || Self::has_usable_evidence(s)
                        || self.cut_due(s)
                        || s.approval.is_some()
                    {
                        return None;
                    }
                    t.disputed = true;
                }
                t.dispute = Some(Dispute {
                    kind: Kind::Exit,
                    target: by,
                    submitter: by,
                    challenged: false,
                    deadline: c,
                    claim_ts: None,
                });
            }
            Action::Fraud { target } if target == HONEST => {
                // Claims against h hold only if h equivocated (judged at once, R7).
                if !s.double_signed || !Self::is_active(s, HONEST) || !Self::fraud_allowed(s) {
                    return None;
                }
                t.dispute = Some(Dispute {
                    kind: Kind::Fraud,
                    target: HONEST,
                    submitter: self.adversaries(s).next()?,
                    challenged: false,
                    deadline: c,
                    claim_ts: None,
                });
            }
            Action::Fraud { target } | Action::HFraud { target } => {
                if target == HONEST || !Self::is_active(s, target) || !Self::fraud_allowed(s) {
                    return None;
                }
                let submitter = if let Action::HFraud { .. } = a {
                    if s.evidence & bit(target) == 0 || self.bring_step(s).is_some() {
                        return None;
                    }
                    t.evidence &= !bit(target);
                    t.disputed = true;
                    HONEST
                } else {
                    // Who proves it does not matter for a fraud verdict.
                    self.adversaries(s).next()?
                };
                t.dispute = Some(Dispute {
                    kind: Kind::Fraud,
                    target,
                    submitter,
                    challenged: false,
                    deadline: c,
                    claim_ts: None,
                });
            }
            Action::HFraudFuture => {
                let (target, ts) = s.future_evidence?;
                if !Self::is_active(s, target) || !Self::fraud_allowed(s) || self.bring_step(s).is_some() {
                    return None;
                }
                t.future_evidence = None;
                t.disputed = true;
                t.dispute = Some(Dispute {
                    kind: Kind::Fraud,
                    target,
                    submitter: HONEST,
                    challenged: false,
                    deadline: c,
                    claim_ts: Some(ts),
                });
            }
            Action::ApproveLeave { leaver } => {
                // O4: h co-signs only at its tip, with a short deadline, and (a refinement this model
                // found necessary, see `Rules::ApproveWhileWriter`) not while it is the next writer
                // there: it signs nothing above the approval until it expires, so it would miss its
                // own window.
                if !self.leave
                    || s.approval.is_some()
                    || s.dispute.is_some()
                    || !Self::honest_signs(s)
                    || !Self::is_active(s, leaver)
                    || Self::n_active(s) < 2
                {
                    return None;
                }
                let tip = Self::tip(s);
                if self.rules != Rules::ApproveWhileWriter && self.obliged(s, tip.height) == Some(HONEST) {
                    return None;
                }
                // O9: no approval is co-signed while h's intent is under way (the hold would keep it
                // from posting or forcing it).
                if self.intent_waiting(s) {
                    return None;
                }
                t.approval = Some(Approval {
                    leaver,
                    height: tip.height,
                    mv: tip.mv,
                    thief: tip.thief,
                    ts: tip.ts,
                    applied: tip.applied,
                    deadline: self.timing.approval,
                });
            }
            Action::SubmitLeave | Action::HSubmitLeave => {
                let ap = s.approval?;
                if let Action::HSubmitLeave = a {
                    if ap.leaver != HONEST {
                        return None;
                    }
                    t.disputed = true;
                }
                if s.dispute.is_some() || ap.deadline < 0 || ap.height < s.head.height {
                    return None;
                }
                if ap.height == s.head.height
                    && (ap.mv != s.head.mv || ap.thief != s.head.thief || ap.applied != s.head.applied)
                {
                    return None;
                }
                // R11: the approved state becomes the head (and the anchor); the leave runs as a
                // dispute.
                t.head = Head {
                    height: ap.height,
                    mv: ap.mv,
                    thief: ap.thief,
                    ts: ap.ts,
                    since: 0,
                    posted: false,
                    applied: ap.applied,
                };
                t.conflict = 0;
                t.approval = None;
                t.dispute = Some(Dispute {
                    kind: Kind::Leave,
                    target: ap.leaver,
                    submitter: if let Action::HSubmitLeave = a {
                        HONEST
                    } else {
                        ap.leaver
                    },
                    challenged: false,
                    deadline: c,
                    claim_ts: None,
                });
            }
            Action::Finalize => {
                let d = s.dispute?;
                if d.deadline >= 0 {
                    return None;
                }
                self.finalize(&mut t, d);
            }
            Action::Close | Action::HClose => {
                let k = self.max_height;
                let e = s.signed[k as usize]?;
                if matches!(s.dispute, Some(d) if d.is_slash()) {
                    return None;
                }
                // `close` takes a final state at or above the head (the head's own state at its
                // height), or one that cuts a posted branch (R2).
                if !(self.moves_head(s, k) || (k == s.head.height && Self::same_state(&e, &s.head))) {
                    return None;
                }
                if a == Action::HClose && !e.nsig {
                    return None;
                }
                let exits = t.bal;
                Self::close(&mut t, exits);
            }
            Action::HWrite => {
                // O9: nothing written as sequencer while the court holds an intent, and only in
                // lockstep.
                if !self.writes_as_sequencer(s) {
                    return None;
                }
                let tip = Self::tip(s);
                // A sequencer writes only when it has something to include (here: its own intent).
                let applied = match self.machine {
                    Machine::RoundRobin => false,
                    Machine::Open if s.intent.is_some() && !tip.applied => true,
                    Machine::Open => return None,
                };
                Self::sign(
                    &mut t,
                    tip.height + 1,
                    Entry {
                        mv: 0,
                        thief: tip.thief,
                        ts: tip.ts.max(0),
                        issuer: HONEST,
                        parent_ts: tip.ts,
                        nsig: false,
                        applied,
                    },
                    (tip.mv, tip.thief, tip.applied),
                );
            }
            Action::HIntent => {
                if self.machine != Machine::Open
                    || s.intent.is_some()
                    || s.disputed
                    || s.head.height >= self.max_height
                {
                    return None;
                }
                t.intent = Some(0);
            }
            Action::PostIntent { index } => {
                // `postIntent`: anyone, with the issuer's signature; a held intent is replaced only
                // by its issuer, or by anyone once it lapsed (then it is no longer in the state;
                // intents never expire in the model).
                if self.machine != Machine::Open || !Self::is_active(s, index) {
                    return None;
                }
                if index == HONEST {
                    if s.intent.is_none() || s.held[0].is_some_and(|d| !self.lapsed(&d)) {
                        return None;
                    }
                } else if index >= self.n {
                    return None;
                }
                t.held[index as usize] = Some(Held {
                    due: self.timing.agreement,
                });
            }
            Action::HPostIntent => {
                // O9: h posts its intent once it was left out (`CourtModel::left_out`), with the
                // chain's head at its tip (nothing it signed above it, no branch to cut, no proof to
                // give first).
                if !self.left_out(s)
                    || self.holds_above_head(s)
                    || self.cut_due(s)
                    || Self::has_usable_evidence(s)
                {
                    return None;
                }
                t.held[0] = Some(Held {
                    due: self.timing.agreement,
                });
                t.intent_posted = true;
            }
            Action::Force { index, applies } | Action::HForce { index, applies } => {
                if self.machine != Machine::Open
                    || (index == HONEST && !applies)
                    || matches!(s.dispute, Some(d) if Self::undefeated(&d, Kind::Timeout))
                    || !Self::forceable(s, index, self.timing.agreement, self.rules)
                {
                    return None;
                }
                // h forces (in due order) only to get its own held intent forced.
                if matches!(a, Action::HForce { .. }) && s.held[0].is_none() {
                    return None;
                }
                s.held[index as usize]?;
                t.held[index as usize] = None;
                let applies = if index == HONEST { !s.head.applied } else { applies };
                if applies && s.head.height < self.max_height {
                    // The court's own transaction at the head's next height: writer the issuer,
                    // stamp the head's, signed by nobody.
                    let content = if index == HONEST {
                        (FORCED_HONEST, s.head.thief, true)
                    } else {
                        (FORCED_OTHER, s.head.thief, s.head.applied)
                    };
                    self.land_post(&mut t, s.head.height + 1, content, s.head.ts, None);
                }
                // Otherwise the machine refuses it and the court lets it go (`IntentVoided`).
            }
            Action::HEscape => {
                // O9 as first built: the left-out intent becomes h's own transaction at the head's
                // next height, on the head, whatever h signed there.
                if self.machine != Machine::Open
                    || self.rules != Rules::SignTwoAtOneHeight
                    || !Self::honest_signs(s)
                    || !self.intent_waiting(s)
                    || s.intent < Some(self.timing.p2p as u8)
                    || matches!(s.signed[s.head.height as usize + 1], Some(e) if e.issuer == HONEST)
                {
                    return None;
                }
                let k = s.head.height + 1;
                Self::sign(
                    &mut t,
                    k,
                    Entry {
                        mv: 0,
                        thief: s.head.thief,
                        ts: s.head.ts.max(0),
                        issuer: HONEST,
                        parent_ts: s.head.ts,
                        nsig: false,
                        applied: true,
                    },
                    (s.head.mv, s.head.thief, s.head.applied),
                );
                for e in t.signed.iter_mut().skip(k as usize + 1) {
                    *e = None;
                }
            }
            Action::Tick => {
                if self.honest_due(s) {
                    return None;
                }
                Self::for_each_stamp(&mut t, true, |x| *x -= 1);
                t.head.since -= 1;
                if self.intent_waiting(s)
                    && let Some(age) = t.intent.as_mut()
                {
                    *age = (*age + 1).min(self.intent_bound.saturating_add(1));
                }
                if let Some(d) = t.dispute.as_mut() {
                    d.deadline -= 1;
                }
                if let Some(ap) = t.approval.as_mut() {
                    ap.deadline -= 1;
                }
            }
        }
        Some(t)
    }

    /// h's next step to bring the head to its tip (O2): show its highest N-signed state, else post
    /// the next transaction it signed.
    fn bring_step(&self, s: &State) -> Option<Action> {
        if let Some(k) = self.checkpoint_candidate(s, true) {
            let a = Action::HCheckpoint { height: k };
            if self.step_raw(s, a).is_some() {
                return Some(a);
            }
        }
        let a = Action::HPost {
            height: s.head.height + 1,
        };
        self.step_raw(s, a).map(|_| a)
    }

    /// A post lands (R3), or a forced intent (`signer` `None`: the court wrote it): the head becomes
    /// its result, the state `content` (move, junk marker, h's intent applied); h compares it with
    /// what it signed there (O5).
    fn land_post(&self, t: &mut State, k: u8, content: (u8, Option<u8>, bool), ts: i8, signer: Option<u8>) {
        let (mv, thief, applied) = content;
        if let Some(e) = t.signed[k as usize]
            && (e.mv, e.thief, e.ts, e.applied) != (mv, thief, ts, applied)
            && e.issuer != HONEST
            && signer == Some(e.issuer)
        {
            // The issuer signed two transactions at this height: a double-sign proof.
            t.evidence |= bit(e.issuer);
        }
        // The chain records the posted state at this height (`_postedState`); R2 needs only whether
        // it is another state than the one h signed here.
        if let Some(e) = t.signed[k as usize]
            && (e.mv, e.thief, e.applied) != content
        {
            t.conflict |= bit(k);
        }
        let since = match self.rules {
            Rules::DeadlineFromTxTimestamp => ts,
            _ => ts.max(0),
        };
        t.head = Head {
            height: k,
            mv,
            thief,
            ts,
            since,
            posted: true,
            applied,
        };
    }

    fn close(t: &mut State, exits: [u8; MAX_N]) {
        for p in 0..MAX_N as u8 {
            if Self::is_active(t, p) {
                t.paid[p as usize] += exits[p as usize];
            }
        }
        t.bal = [0; MAX_N];
        t.locked = 0;
        t.closed = true;
        t.dispute = None;
    }

    /// Shares `target`'s balance among the other current participants (the first ones get the
    /// remainder), as `RoundRobinCounter`'s slash hook does.
    fn slash_in(arr: &mut [u8; MAX_N], active: u8, target: u8) -> u8 {
        let amount = arr[target as usize];
        arr[target as usize] = 0;
        let rest: Vec<u8> = (0..MAX_N as u8)
            .filter(|p| *p != target && active & bit(*p) != 0)
            .collect();
        if rest.is_empty() {
            return amount;
        }
        let m = rest.len() as u8;
        for (i, p) in rest.iter().enumerate() {
            arr[*p as usize] += amount / m + u8::from((i as u8) < amount % m);
        }
        0
    }

    /// R10: applies the verdict at the head, then starts a new fork or settles.
    fn finalize(&self, t: &mut State, d: Dispute) {
        t.dispute = None;
        // G1: the verdict is carried out at the head; if the head's posted history holds another
        // state at a height where h holds one N-signed, that state is rolled back.
        if (0..SLOTS).any(|k| t.conflict & bit(k as u8) != 0 && matches!(t.signed[k], Some(e) if e.nsig)) {
            t.rolled_back = true;
        }
        let final_head = t.head.height >= self.max_height;
        // The exits the chain enforces at the head (junk pays its thief everything) and the ones a
        // valid play would give (h's entitlement).
        let mut actual = match t.head.thief {
            Some(x) => {
                let mut e = [0; MAX_N];
                e[x as usize] = t.locked;
                e
            }
            None => t.bal,
        };
        let mut valid = t.bal;
        let (target, slash) = match d.kind {
            Kind::Fraud => {
                let mut target = d.target;
                if let (Rules::FraudJudgedLater, Some(ts)) = (self.rules, d.claim_ts) {
                    // Judged now: the stamp is no longer beyond now + agreementTime, so the claim is
                    // false and the prover is slashed.
                    if ts <= self.timing.agreement {
                        target = d.submitter;
                    }
                }
                (target, true)
            }
            _ if d.challenged => (d.target, true),
            Kind::Exit if final_head => {
                // A finished game settles for everyone.
                Self::close(t, actual);
                return;
            }
            _ => (d.target, false),
        };
        if slash {
            let left = Self::slash_in(&mut actual, t.active, target);
            Self::slash_in(&mut valid, t.active, target);
            t.paid[target as usize] += left;
            t.locked -= left;
            t.slashed |= bit(target);
        } else {
            let amount = actual[target as usize];
            t.paid[target as usize] += amount;
            t.locked -= amount;
            actual[target as usize] = 0;
            valid[target as usize] = 0;
        }
        t.active &= !bit(target);
        if target == HONEST {
            t.fate = match (slash, d.kind) {
                (true, _) => Fate::Slashed,
                (false, Kind::Timeout) => Fate::TimedOut,
                (false, Kind::Leave) => Fate::Left,
                (false, _) => Fate::Exited,
            };
        } else if Self::is_active(t, HONEST) {
            t.entitlement = valid[HONEST as usize];
        }
        t.bal = actual;
        if Self::n_active(t) < 2 || final_head {
            let exits = t.bal;
            Self::close(t, exits);
        } else {
            // A new fork from the verdict's state (SetState): its genesis is the head (with the
            // intents it applied); the court's held intents are keyed by fork and dropped.
            t.gen_height = t.head.height;
            t.head = Head {
                height: t.gen_height,
                mv: GENESIS_MOVE,
                thief: None,
                ts: 0,
                since: 0,
                posted: false,
                applied: t.head.applied,
            };
            t.signed = [None; SLOTS];
            t.conflict = 0;
            t.evidence = 0;
            t.future_evidence = None;
            t.disputed = false;
            t.approval = None;
            t.held = [None; MAX_N];
            t.intent_posted = false;
        }
    }

    /// Calls `f` on every instant in the state (with `parents`, the entries' parent stamps too).
    fn for_each_stamp(t: &mut State, parents: bool, mut f: impl FnMut(&mut i8)) {
        f(&mut t.head.ts);
        for e in t.signed.iter_mut().flatten() {
            f(&mut e.ts);
            if parents {
                f(&mut e.parent_ts);
            }
        }
        if let Some(a) = t.approval.as_mut() {
            f(&mut a.ts);
        }
        if let Some((_, ts)) = t.future_evidence.as_mut() {
            f(ts);
        }
        if let Some(ts) = t.dispute.as_mut().and_then(|d| d.claim_ts.as_mut()) {
            f(ts);
        }
        for d in t.held.iter_mut().flatten() {
            f(&mut d.due);
        }
    }

    /// Puts a state in canonical form: drops what can no longer matter and shrinks large gaps
    /// between stamps (see [`Timing::gap`]), so that equivalent states are one state. In the open
    /// machine also: old stamps keep only their order ([`Timing::open_floor`]) and `since` is
    /// dropped; with N = 3, the colluder left alone is called 1 ([`CourtModel::swap_colluders`]);
    /// the held intents of two colluders are sorted by due time. Each step maps a state to one
    /// the checker cannot tell from it: the same actions are open in both, lead to states equal up
    /// to the same mapping, and every property reads the same in both.
    pub fn normalize(&self, t: &mut State) {
        if self.machine == Machine::Open && self.n == 3 && t.active & 0b110 == 0b100 {
            Self::swap_colluders(t);
        }
        if !self.live(t) {
            // Terminal: keep only what the properties read.
            t.gen_height = 0;
            t.head = Head {
                height: 0,
                mv: 0,
                thief: None,
                ts: 0,
                since: 0,
                posted: false,
                applied: false,
            };
            t.dispute = None;
            t.approval = None;
            t.signed = [None; SLOTS];
            t.conflict = 0;
            t.evidence = 0;
            t.future_evidence = None;
            t.disputed = false;
            t.intent = None;
            t.intent_posted = false;
            t.held = [None; MAX_N];
            return;
        }
        // O9: an applied intent waits no more (if it is left unapplied again, a cut back below it,
        // it waits anew).
        if Self::intent_applied(t)
            && let Some(age) = t.intent.as_mut()
        {
            *age = 0;
        }
        // A held intent of a participant no longer in the channel is of no fork that matters, and
        // one whose window has passed (`IntentLapsed`) can no longer be forced, holds no post or
        // force up, and may be replaced by anyone: it is as if the court held none.
        // (Under `Rules::ForceAfterWindow` a lapsed intent stays held, its `dueAt` kept as "lapsed".)
        let lapse = self.timing.agreement;
        for (i, d) in t.held.iter_mut().enumerate() {
            if t.active & bit(i as u8) == 0 {
                *d = None;
            } else if let Some(h) = d
                && h.due <= -lapse
            {
                if self.rules == Rules::ForceAfterWindow {
                    h.due = -lapse;
                } else {
                    *d = None;
                }
            }
        }
        // While both colluders take part, their held intents differ only by their due instants:
        // a forced one lands the same state whoever posted it (or is voided, at the colluders'
        // choice), each colluder may re-post its own at any time, and the force order breaks ties
        // by index only between intents that are otherwise the same. So only the multiset counts:
        // keep them sorted.
        if self.machine == Machine::Open && self.n == 3 && t.active & 0b110 == 0b110 {
            let key = |d: &Option<Held>| d.map_or(i8::MAX, |d| d.due);
            if key(&t.held[2]) < key(&t.held[1]) {
                t.held.swap(1, 2);
            }
        }
        // Below the head, only what a cut may still bring back counts: from the lowest height where
        // the posted branch conflicts with what h signed.
        let keep_from = if t.conflict != 0 {
            (t.conflict.trailing_zeros() as u8).min(t.head.height)
        } else {
            t.head.height
        };
        for k in 0..(keep_from as usize).min(SLOTS) {
            t.signed[k] = None;
        }
        if let Some(ap) = t.approval {
            let void = ap.deadline < 0
                || ap.height < t.head.height
                || (ap.height == t.head.height
                    && (ap.mv, ap.thief, ap.applied) != (t.head.mv, t.head.thief, t.head.applied));
            if void {
                t.approval = None;
            }
        }
        t.evidence &= t.active & !bit(HONEST);
        if matches!(t.future_evidence, Some((p, _)) if !Self::is_active(t, p)) {
            t.future_evidence = None;
        }
        t.head.since = t.head.since.max(-(self.timing.writer_window() + 1));
        if self.machine == Machine::Open {
            // `since` is read only by the timeout rule (R5), which needs an obliged writer; in the
            // open machine nobody is obliged, so it never matters.
            t.head.since = 0;
        }
        if let Some(d) = t.dispute.as_mut() {
            d.deadline = d.deadline.max(-1);
        }
        // In the open machine a parent's stamp is compared only with now (O2's deadline), never
        // with another stamp: it is left out of the renumbering and, once old, set to the floor.
        let parents = self.machine == Machine::RoundRobin;
        let mut vals = vec![0i8];
        Self::for_each_stamp(t, parents, |x| vals.push(*x));
        vals.sort_unstable_by(|a, b| b.cmp(a));
        vals.dedup();
        let mut map: Vec<(i8, i8)> = Vec::with_capacity(vals.len());
        match self.machine {
            Machine::RoundRobin => {
                // Shrink gaps between stamps to at most `gap`, keeping their order and now at 0.
                let gap = self.timing.gap();
                for (i, v) in vals.iter().enumerate() {
                    let nv = if i == 0 { *v } else { (*v).max(map[i - 1].1 - gap) };
                    map.push((*v, nv));
                }
            }
            Machine::Open => {
                // Stamps above `floor` are kept exactly; at or below it, only their order counts
                // (see `Timing::open_floor`), so they are renumbered two apart from just under the
                // floor, which keeps an instant above the highest of them and between any two (a
                // fresh post's stamp may fall there, `post_stamps`).
                let floor = self.timing.open_floor();
                let mut next = floor - 1;
                for v in &vals {
                    let nv = if *v > floor {
                        *v
                    } else {
                        let nv = next;
                        next -= 2;
                        nv
                    };
                    map.push((*v, nv));
                }
            }
        }
        Self::for_each_stamp(t, parents, |x| {
            if let Some((_, nv)) = map.iter().find(|(ov, _)| ov == x) {
                *x = *nv;
            }
        });
        if !parents {
            let floor = self.timing.open_floor();
            for e in t.signed.iter_mut().flatten() {
                e.parent_ts = e.parent_ts.max(floor);
            }
        }
    }

    /// Renames colluders 1 and 2 into each other (N = 3, open machine), once colluder 1 has left
    /// and colluder 2 is still in: the state where colluder 2 alone is left is then the one where
    /// colluder 1 alone is. This is a symmetry: with one colluder left, every rule reads a
    /// colluder's index only through its rank among the current participants (the sequencer
    /// rotation; `h`, index 0, comes first in it and in every tie: the force order, the shares of
    /// a slashed deposit), which is the same for both, and the colluder who left has no part in
    /// the game beyond what it was paid and whether it was slashed (its balance is 0, its held
    /// intent and the proofs against it are dropped), which the properties read only summed over
    /// the colluders or as "some colluder".
    pub fn swap_colluders(t: &mut State) {
        let swap = |p: u8| match p {
            1 => 2,
            2 => 1,
            p => p,
        };
        let swap_bits = |b: u8| (b & 0b001) | ((b & 0b010) << 1) | ((b & 0b100) >> 1) | (b & !0b111);
        t.active = swap_bits(t.active);
        t.slashed = swap_bits(t.slashed);
        t.evidence = swap_bits(t.evidence);
        t.bal.swap(1, 2);
        t.paid.swap(1, 2);
        t.held.swap(1, 2);
        t.head.thief = t.head.thief.map(swap);
        for e in t.signed.iter_mut().flatten() {
            e.issuer = swap(e.issuer);
            e.thief = e.thief.map(swap);
        }
        if let Some(d) = t.dispute.as_mut() {
            d.target = swap(d.target);
            d.submitter = swap(d.submitter);
        }
        if let Some(a) = t.approval.as_mut() {
            a.leaver = swap(a.leaver);
            a.thief = a.thief.map(swap);
        }
        if let Some((p, _)) = t.future_evidence.as_mut() {
            *p = swap(*p);
        }
    }

    /// h's actions enabled in `s`, in its order of preference.
    pub fn honest_enabled(&self, s: &State) -> Vec<Action> {
        self.honest_candidates(s)
            .into_iter()
            .filter(|a| self.step_raw(s, *a).is_some())
            .collect()
    }

    /// G3: the ticks h needs, acting alone (the others stopped), to see the channel settled from `s`,
    /// following its plain strategy (everything due first, then close on a final state it holds
    /// N-signed, then exit on a final head, else wait); `None` if it does not settle within `limit`.
    pub fn honest_alone_settles(&self, s: &State, limit: u32) -> Option<u32> {
        self.honest_alone(s, limit, None)
    }

    /// The steps h takes alone from `s` (as [`CourtModel::honest_alone_settles`]), to explain a G3
    /// counterexample: each action and the state it leads to.
    pub fn honest_alone_path(&self, s: &State) -> Vec<(Action, State)> {
        let mut path = Vec::new();
        self.honest_alone(s, self.settle_bound(s), Some(&mut path));
        path
    }

    fn honest_alone(
        &self,
        s: &State,
        limit: u32,
        mut trace: Option<&mut Vec<(Action, State)>>,
    ) -> Option<u32> {
        let mut cur = *s;
        let mut ticks = 0;
        for _ in 0..(limit as usize + 1) * 16 {
            if cur.closed || cur.fate != Fate::Active {
                return Some(ticks);
            }
            let acts = self.honest_enabled(&cur);
            let pick = acts
                .iter()
                .copied()
                .find(|a| Self::urgent(a) || *a == Action::HClose)
                .or_else(|| {
                    // In the open machine nobody is obliged to write and no timeout ends the
                    // others' silence: h exits at once.
                    acts.iter().copied().find(|a| {
                        *a == Action::HExit
                            && (cur.head.height >= self.max_height || self.machine == Machine::Open)
                    })
                })
                .or_else(|| {
                    // Open machine, to exit: first show the highest state it holds N-signed above
                    // the head (anyone may; nothing makes it due, since nobody is late).
                    (self.machine == Machine::Open)
                        .then(|| self.checkpoint_candidate(&cur, true))
                        .flatten()
                        .map(|k| Action::Checkpoint { height: k })
                        .filter(|a| self.step_raw(&cur, *a).is_some())
                });
            let a = match pick {
                // A colluder's held intent in the way: whether it applies is the colluders' choice
                // (see `Held`), so h must settle after either; follow the worse.
                Some(Action::HForce { index, .. }) if index != HONEST => {
                    let rest = limit - ticks;
                    let mut worst: Option<(Option<u32>, Action, State)> = None;
                    for applies in [true, false] {
                        let b = Action::HForce { index, applies };
                        let next = self.step(&cur, b)?;
                        let r = self.honest_alone(&next, rest, None);
                        let worse = match &worst {
                            None => true,
                            Some((w, _, _)) => w.is_some() && r.is_none_or(|r| Some(r) > *w),
                        };
                        if worse {
                            worst = Some((r, b, next));
                        }
                    }
                    let (_, b, next) = worst?;
                    if let Some(t) = trace.as_deref_mut() {
                        t.push((b, next));
                    }
                    return Some(ticks + self.honest_alone(&next, rest, trace)?);
                }
                Some(a) => a,
                None => {
                    ticks += 1;
                    if ticks > limit {
                        return None;
                    }
                    Action::Tick
                }
            };
            cur = self.step(&cur, a)?;
            if let Some(t) = trace.as_deref_mut() {
                t.push((a, cur));
            }
        }
        None
    }

    /// G3 at `s`: h alone settles within [`CourtModel::settle_bound`] ticks (and the ticks it needed
    /// are recorded in [`CourtModel::g3_max_ticks`]).
    pub fn g3_holds(&self, s: &State) -> bool {
        match self.honest_alone_settles(s, self.settle_bound(s)) {
            Some(ticks) => {
                self.g3_max_ticks.fetch_max(ticks, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// O9 at `s`: h's intent has waited unapplied at most [`CourtModel::intent_bound`] ticks (and the
    /// most seen is recorded in [`CourtModel::intent_max_ticks`]).
    pub fn intent_within_bound(&self, s: &State) -> bool {
        let age = s.intent.unwrap_or(0);
        self.intent_max_ticks.fetch_max(u32::from(age), Ordering::Relaxed);
        age <= self.intent_bound
    }

    /// The bound G3 promises from `s`, in ticks: signatures due first (`p2p + agreement`), a running
    /// dispute or approval to end, then at most one dispute per participant, each after a writer
    /// window, plus h's own move before each.
    pub fn settle_bound(&self, s: &State) -> u32 {
        let t = self.timing;
        let per = (t.confirm_window() + t.writer_window() + 1 + t.challenge + 1) as u32;
        let start = (t.confirm_window() + t.challenge + 1 + t.approval + 1) as u32;
        start + per * Self::n_active(s) as u32
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.closed || self.fate != Fate::Active {
            return write!(
                f,
                "{} active={:03b} slashed={:03b} paid={:?} locked={} h:{:?} entitled={}{}",
                if self.closed { "CLOSED" } else { "h gone" },
                self.active,
                self.slashed,
                self.paid,
                self.locked,
                self.fate,
                self.entitlement,
                if self.rolled_back {
                    " ROLLED BACK a state h held N-signed"
                } else {
                    ""
                }
            );
        }
        let h = &self.head;
        let junk = |t: Option<u8>| t.map(|p| format!(" JUNK(pays {p})")).unwrap_or_default();
        let mv = |m: u8| match m {
            GENESIS_MOVE => "G".to_string(),
            FORCED_HONEST => "F(h)".to_string(),
            FORCED_OTHER => "F(other)".to_string(),
            _ => m.to_string(),
        };
        write!(
            f,
            "head h{}:{}{}{} ts{} since{}{} | gen h{} active={:03b} bal={:?}",
            h.height,
            mv(h.mv),
            if h.applied { "+i" } else { "" },
            junk(h.thief),
            h.ts,
            h.since,
            if h.posted { " posted" } else { "" },
            self.gen_height,
            self.active,
            self.bal
        )?;
        if let Some(d) = self.dispute {
            write!(
                f,
                " | {:?}{} target {} by {} ends {}",
                d.kind,
                if d.challenged { "(defeated)" } else { "" },
                d.target,
                d.submitter,
                d.deadline
            )?;
        }
        if let Some(a) = self.approval {
            write!(
                f,
                " | approval: {} leaves at h{} until {}",
                a.leaver, a.height, a.deadline
            )?;
        }
        write!(f, " | h signed [")?;
        let mut first = true;
        for (k, e) in self.signed.iter().enumerate() {
            if let Some(e) = e {
                if !first {
                    write!(f, " ")?;
                }
                first = false;
                write!(
                    f,
                    "h{k}:{}{} by {} ts{}{}{}",
                    e.mv,
                    if e.applied { "+i" } else { "" },
                    e.issuer,
                    e.ts,
                    if e.nsig { " N-signed" } else { "" },
                    junk(e.thief)
                )?;
            }
        }
        write!(f, "]")?;
        if self.conflict != 0 {
            let heights: Vec<String> = (0..SLOTS as u8)
                .filter(|k| self.conflict & bit(*k) != 0)
                .map(|k| format!("h{k}"))
                .collect();
            write!(f, " posted branch conflicts at {}", heights.join(" "))?;
        }
        if self.rolled_back {
            write!(f, " ROLLED BACK a state h held N-signed")?;
        }
        if self.evidence != 0 {
            write!(f, " proofs against {:03b}", self.evidence)?;
        }
        if let Some((p, ts)) = self.future_evidence {
            write!(f, " saw {p}'s stamp {ts}")?;
        }
        if self.disputed {
            write!(f, " (h disputed: signs no more)")?;
        }
        if let Some(age) = self.intent {
            write!(f, " | h's intent waited {age}")?;
            if self.intent_posted {
                write!(f, " (posted)")?;
            }
        }
        for (i, d) in self.held.iter().enumerate() {
            if let Some(d) = d {
                write!(f, " | held {i}'s intent due {}", d.due)?;
            }
        }
        if self.double_signed {
            write!(f, " | h EQUIVOCATED")?;
        }
        Ok(())
    }
}
