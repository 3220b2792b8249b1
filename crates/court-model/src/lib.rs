//! An abstract model of Entente's dispute game, checked exhaustively with [stateright].
//!
//! `docs/security.md` gives the court's rules (R1-R12), the honest node's rules (O1-O6) and the
//! guarantees (G1-G5). This crate models one channel of `N` = 2 or 3 participants in which
//! participant 0, `h`, is honest and the others collude, and lets the checker visit every state the
//! colluders can reach with every action the court allows, at every step:
//!
//! - **the machine** is `RoundRobinCounter` in the abstract: the writer of the transaction at height
//!   `k + 1` is the current participants' `k mod n`-th; a move is 0 or 1; balances never change with
//!   moves; an *invalid* transition is one whose claimed state differs from the real one (here: a
//!   state that pays its issuer everything, "junk"). The game is over at `max_height`.
//! - **the chain** keeps the head of the current fork (height, state, stamp, `since`, posted or
//!   N-signed), the heights of the head's posted branch above the anchor (the last head not set by
//!   a post) where the posted state is not the one `h` signed (R2's cut needs nothing more of the
//!   anchor and the posted history), the running dispute (timeout, exit, fraud, leave: target,
//!   submitter, defeated, deadline), who was removed or slashed, the genesis balances, what was
//!   paid, and whether the channel closed.
//! - **the colluders** sign anything with their own keys: they post fresh transactions of the writer
//!   whose turn it is with any stamp the chain accepts (from the head's, backdated, up to
//!   `agreementTime` ahead), post or N-sign any transaction `h` signed (only those can be N-signed),
//!   hand `h` signatures (until a verdict's challenge period is over) or withhold them, propose
//!   moves to `h`, equivocate (give `h` double-sign proofs, or post a different transaction than
//!   the one `h` confirmed), raise timeouts, exits and fraud proofs, co-sign and submit leave
//!   approvals, finalize, close, and let time pass. Actions the court refuses change nothing and
//!   are not steps.
//! - **h** follows O1-O6 and acts at once when something is due: it writes its move on its tip,
//!   confirms only valid, well-stamped proposals of its tip's writer (O1), posts what it signed that
//!   lacks N signatures after its confirmation deadline (from its parent's stamp), showing its
//!   highest N-signed state first (O2), proves fraud and double signing it sees, raises a timeout
//!   when the writer after its tip is late, cuts a posted branch that conflicts with a state it holds
//!   N-signed (R2), shows its highest N-signed state to any running dispute (a challenge),
//!   finalizes, and stops signing once it raised a dispute (O3) or while a leave approval it
//!   co-signed is pending (O4). It may also request an exit at any time, close on a final state it
//!   holds N-signed, and co-sign leave approvals.
//! - **time** is abstract ticks, kept relative to now; a tick passes only when `h` has nothing due
//!   (the colluders may still act before `h` within the tick: they front-run).
//!   Large gaps between stamps are shrunk (every comparison involves constants smaller than the
//!   writer window), so the state space is finite without a time horizon and the check is exhaustive.
//!   In the open machine nobody is obliged, so the bound is the confirmation window: older stamps
//!   keep only their order ([`Timing::open_floor`]).
//!
//! The properties (see [`CourtModel`]'s `properties`): G1 (`h` is paid its entitlement, no head is
//! ever an invalid state, no verdict is carried out at a head whose posted branch contradicts a
//! state `h` holds N-signed), G2 (`h` is never timed out or slashed), G3 (from every reachable
//! state, `h` alone settles the channel within a bound), G5 (conservation), and `sometimes`
//! properties showing that timeouts, fraud slashes, defeated disputes, exits, leaves and closes are
//! reachable.
//!
//! **The open machine** ([`CourtModel::open`], [`Machine::Open`]; `docs/protocol.md` section 11):
//! every state below the final height names no writer, so nobody is obliged and no timeout can be
//! raised. h signs an *intent* (once per game, at any time: `HIntent`); the sequencer of height `k`
//! (the current participants' `k mod n`-th) applies it or leaves it out (a state carries whether
//! h's intent is applied, compared with the rest of the state); h writes only as sequencer, with
//! its intent, and confirms only the sequencer's transactions. The court takes a post at height `k`
//! after an open state only from that height's sequencer (`NotSequencer`: a conflicting post is
//! its own double sign, which h proves). Any colluder may post an intent of its own (real or junk)
//! or h's to the court, re-post its own, and force held intents in the order they fell due, within
//! their window (`[dueAt, dueAt + agreementTime)`; a lapsed intent is let go, `IntentLapsed`);
//! while a held intent is within its window the chain takes no post. h confirms or writes at
//! height `k` only if its tip at `k - 1` is N-signed or the chain's head (lockstep); while the
//! court holds any intent it confirms and writes nothing and brings the head up to its tip at once
//! (the hold). When its intent was left out `p2pTime` (and its tip does not apply it, and it is not
//! the sequencer after its tip free to write it: the node's `left_out_intent`), h brings the head
//! to its tip, posts it (`HPostIntent`), confirms nothing that leaves it out from then on, and forces it when due
//! (`HForce`). A forced head is a posted head (R2 cuts it). Intents never expire here (`notAfter`
//! is beyond the game). Extra properties: "O9 h never signs two transactions at one height", "O9
//! h's intent is applied within the bound" (the ticks it waits unapplied, since it was signed or
//! last left unapplied, at most [`CourtModel::intent_bound`]), "O9 no timeout is raised in an open
//! state"; G3's strategy exits at once. With these rules every property holds (N = 2 and N = 3
//! exhaustively, without leave approvals); with the court as first built
//! ([`Rules::AnyonePostsInOpenStates`]), without the hold ([`Rules::NoHoldWhileIntentHeld`]) or
//! with forces after the window ([`Rules::ForceAfterWindow`]) the checker finds h slashed for an
//! exit (G2). [`CourtModel::exit_challenge_moves_only`], an alternative court change, stays as an
//! option, off by default.
//!
//! Reductions of the open model's state, each exact or giving the colluders more power, never
//! less (see [`CourtModel::normalize`]): stamps older than the confirmation window keep only their
//! order, and `since`, read only by the timeout rule, is dropped; with N = 3, once a colluder has
//! left, the other is called 1 (a symmetry); whether a colluder's held intent is a real move or
//! junk is chosen when it is forced ([`Held`]); while both colluders take part, their held intents
//! are kept sorted by due time.
//!
//! [`Rules`] weakens one rule back to an old bug (or, for [`Rules::ApproveWhileWriter`], drops a
//! refinement of O4 this model showed necessary); the checker must then find a counterexample.
//!
//! ```
//! use entente_court_model::{check, CourtModel, Rules};
//!
//! // The sound rules, the first 8 levels (the tests and the binary check every level).
//! let report = check(CourtModel::new(2, Rules::Sound), Some(8), 1);
//! assert!(report.failures.is_empty());
//! // An unlinked post accepted: the checker finds a head that no valid play reaches.
//! let report = check(CourtModel::new(2, Rules::AcceptUnlinkedPost), None, 1);
//! assert_eq!(report.failures[0].0, "G1 head is never an invalid state");
//! ```

mod model;

pub use model::{
    Action, Approval, CourtModel, Dispute, Entry, FORCED_HONEST, FORCED_OTHER, Fate, GENESIS_MOVE, HONEST,
    Head, Held, Kind, MAX_N, Machine, Rules, SLOTS, State, Timing,
};
use stateright::{Checker, HasDiscoveries, Model, Property};
use std::time::{Duration, Instant};

impl Model for CourtModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![self.initial()]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        self.candidates(state, actions);
    }

    fn next_state(&self, last_state: &State, action: Action) -> Option<State> {
        self.step(last_state, action)
    }

    fn format_step(&self, last_state: &State, action: Action) -> Option<String> {
        self.step(last_state, action).map(|s| s.to_string())
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let mut properties = vec![
            // G1: no head is ever a state that no valid play reaches; h is paid at least its
            // entitlement (deposit plus shares of slashed deposits) once it is settled, and its
            // balance in the enforced genesis is its entitlement while it takes part.
            Property::always("G1 head is never an invalid state", |_, s: &State| {
                s.head.thief.is_none()
            }),
            // G1: no state h signed as final is rolled back. Verdicts are carried out at the head;
            // a head whose posted branch holds another state at a height where h holds one
            // N-signed would roll it back (R2's cut prevents it).
            Property::always(
                "G1 no verdict rolls back a state h holds N-signed",
                |_, s: &State| !s.rolled_back,
            ),
            Property::always("G1 h is paid its entitlement", |_, s: &State| {
                let h = HONEST as usize;
                if s.closed || s.fate != Fate::Active {
                    s.paid[h] >= s.entitlement
                } else {
                    s.bal[h] >= s.entitlement
                }
            }),
            // G2: h is never removed by a timeout, never slashed (so it never loses a dispute it
            // raised: a defeated timeout or exit, or a false fraud claim, slashes its submitter).
            Property::always("G2 h is never timed out or slashed", |_, s: &State| {
                !matches!(s.fate, Fate::TimedOut | Fate::Slashed)
            }),
            // G3 as an invariant over a bound computed per state: if the others stop now, h's plain
            // strategy settles the channel (or h's own part of it) within `settle_bound` ticks. An
            // `eventually` property would not do: the model has cycles (time passing while nothing
            // happens), on which stateright's `eventually` gives false negatives.
            Property::always(
                "G3 h alone settles within the bound",
                |m: &CourtModel, s: &State| m.g3_holds(s),
            ),
            // G5: what was deposited is paid, credited or still locked, and the locked amount is the
            // genesis balances.
            Property::always("G5 conservation", |m: &CourtModel, s: &State| {
                let paid: u16 = s.paid.iter().map(|p| u16::from(*p)).sum();
                let bal: u16 = s.bal.iter().map(|b| u16::from(*b)).sum();
                paid + u16::from(s.locked) == u16::from(m.total()) && bal == u16::from(s.locked)
            }),
            // O9: h never signs two transactions at one height (nor one on a parent other than the
            // state it signed below it): its intents are not transactions, and it escapes a
            // censoring sequencer through the court, not with a transaction of its own.
            Property::always(
                "O9 h never signs two transactions at one height",
                |_, s: &State| !s.double_signed,
            ),
            // O9: an intent of h's is applied (at the head, or in a state h holds N-signed) within
            // `intent_bound` ticks of being signed or left unapplied (vacuous for round robin).
            Property::always(
                "O9 h's intent is applied within the bound",
                |m: &CourtModel, s: &State| m.intent_within_bound(s),
            ),
            Property::sometimes(
                "a fraud proof slashes",
                |_, s: &State| matches!(s.dispute, Some(d) if d.kind == Kind::Fraud && d.deadline < 0),
            ),
            Property::sometimes(
                "a timeout or exit is defeated by a challenge",
                |_, s: &State| matches!(s.dispute, Some(d) if d.challenged),
            ),
            Property::sometimes("h proves a double sign it saw on chain", |_, s: &State| {
                matches!(s.dispute, Some(d) if d.kind == Kind::Fraud && d.submitter == HONEST)
                    && s.head.posted
            }),
            Property::sometimes(
                "a leave is finalized",
                |_, s: &State| matches!(s.dispute, Some(d) if d.kind == Kind::Leave && d.deadline < 0),
            ),
            Property::sometimes("a colluder is slashed", |_, s: &State| s.slashed != 0),
            Property::sometimes("h exits", |_, s: &State| s.fate == Fate::Exited),
            Property::sometimes("the channel closes", |_, s: &State| s.closed),
            Property::sometimes(
                "the channel closes after a removal",
                |m: &CourtModel, s: &State| s.closed && s.active.count_ones() < u32::from(m.n),
            ),
        ];
        match self.machine {
            Machine::RoundRobin => properties.push(Property::sometimes(
                "a timeout is finalized",
                |_, s: &State| matches!(s.dispute, Some(d) if d.kind == Kind::Timeout && !d.challenged && d.deadline < 0),
            )),
            Machine::Open => properties.extend([
                // O9: in an open state nobody is obliged, so nobody is timed out (the chain refuses
                // `NoWriterExpected`): an idle participant loses nothing.
                Property::always("O9 no timeout is raised in an open state", |_, s: &State| {
                    !matches!(s.dispute, Some(d) if d.kind == Kind::Timeout)
                }),
                Property::sometimes("a sequencer's transaction applies h's intent", |_, s: &State| {
                    s.signed
                        .iter()
                        .flatten()
                        .any(|e| e.nsig && e.applied && e.issuer != HONEST)
                }),
                Property::sometimes("h posts its left-out intent to the court", |_, s: &State| {
                    s.intent_posted
                }),
                Property::sometimes("the court forces h's intent onto the head", |_, s: &State| {
                    s.head.mv == FORCED_HONEST
                }),
                Property::sometimes("the court forces a colluder's intent", |_, s: &State| {
                    s.head.mv == FORCED_OTHER
                }),
                Property::sometimes(
                    "h's intent is dropped from the court and the head, not posted, leaves it out",
                    |_, s: &State| {
                        s.intent_posted && s.held[HONEST as usize].is_none() && !s.head.applied && !s.head.posted
                    },
                ),
            ]),
        }
        properties
    }
}

/// The outcome of a check.
#[derive(Debug)]
pub struct Report {
    /// The model that was checked.
    pub model: CourtModel,
    /// States generated, counting revisits.
    pub states: usize,
    /// Distinct states.
    pub unique_states: usize,
    /// The deepest level reached.
    pub max_depth: usize,
    /// Whether the whole reachable state space was visited (no depth limit stopped it).
    pub complete: bool,
    /// Wall time.
    pub elapsed: Duration,
    /// The most ticks h needed to settle alone from any reachable state (G3), and the bound from the
    /// initial state.
    pub g3_ticks: (u32, u32),
    /// Open machine: the most ticks h's intent waited unapplied in any reachable state, and the bound.
    pub intent_ticks: (u32, u8),
    /// Violated `always` properties, each with a counterexample path rendered as text.
    pub failures: Vec<(&'static str, String)>,
    /// `sometimes` properties for which an example was found.
    pub examples: Vec<&'static str>,
    /// `sometimes` properties for which no example was found.
    pub missing: Vec<&'static str>,
}

/// Renders a path: the initial state, then each action and the state it leads to.
pub fn render_path(model: &CourtModel, path: &[(State, Option<Action>)]) -> String {
    let mut out = String::new();
    let mut step = 0;
    for (state, action) in path {
        if step == 0 {
            out.push_str(&format!("  0. init\n     {state}\n"));
        }
        if let Some(a) = action {
            step += 1;
            out.push_str(&format!("  {step}. {a:?}\n"));
            if let Some(next) = model.step(state, *a) {
                out.push_str(&format!("     {next}\n"));
            }
        } else if step == 0 {
            step += 1;
        }
    }
    out
}

/// Checks `model` with a breadth-first search over every reachable state (to `max_depth` levels if
/// given) on `threads` threads, and stops early once an `always` property fails. With one thread
/// the run is deterministic. A counterexample is short but not always a shortest one: stateright
/// keeps the last violation it saw in a block of states.
#[allow(clippy::disallowed_methods)] // a checking harness, not protocol code: it times itself
pub fn check(model: CourtModel, max_depth: Option<usize>, threads: usize) -> Report {
    let start = Instant::now();
    let mut builder = model
        .clone()
        .checker()
        .threads(threads)
        .finish_when(HasDiscoveries::AnyFailures);
    if let Some(d) = max_depth {
        builder = builder.target_max_depth(d);
    }
    let checker = builder.spawn_bfs().join();
    let elapsed = start.elapsed();
    let mut failures = Vec::new();
    let mut examples = Vec::new();
    let mut missing = Vec::new();
    for p in model.properties() {
        match (checker.discovery(p.name), p.expectation.discovery_is_failure()) {
            (Some(path), true) => {
                let path = path.into_vec();
                let mut text = render_path(&model, &path);
                if p.name.starts_with("G3")
                    && let Some((last, _)) = path.last()
                {
                    text.push_str("  then h alone:\n");
                    for (a, next) in model.honest_alone_path(last) {
                        text.push_str(&format!("     {a:?}: {next}\n"));
                    }
                }
                failures.push((p.name, text));
            }
            (Some(_), false) => examples.push(p.name),
            (None, false) => missing.push(p.name),
            (None, true) => {}
        }
    }
    let max = checker.max_depth();
    let g3_ticks = (
        model.g3_max_ticks.load(std::sync::atomic::Ordering::Relaxed),
        model.settle_bound(&model.initial()),
    );
    Report {
        g3_ticks,
        intent_ticks: (
            model.intent_max_ticks.load(std::sync::atomic::Ordering::Relaxed),
            model.intent_bound,
        ),
        complete: failures.is_empty() && max_depth.is_none_or(|d| max < d),
        model,
        states: checker.state_count(),
        unique_states: checker.unique_state_count(),
        max_depth: max,
        elapsed,
        failures,
        examples,
        missing,
    }
}

impl Report {
    /// A summary of the check in a few lines, then every counterexample.
    pub fn summary(&self) -> String {
        let m = &self.model;
        let mut out = format!(
            "N = {}, {:?} machine, rules = {:?}, max height {}, windows {:?}, leave {}\n\
             {} unique states ({} generated), depth {}, {:.1} s{}\n",
            m.n,
            m.machine,
            m.rules,
            m.max_height,
            m.timing,
            m.leave,
            self.unique_states,
            self.states,
            self.max_depth,
            self.elapsed.as_secs_f64(),
            if self.complete {
                ", exhaustive"
            } else {
                ", NOT exhaustive"
            },
        );
        out.push_str(&format!(
            "G3: h alone settled within {} ticks at most (bound from the initial state: {})\n",
            self.g3_ticks.0, self.g3_ticks.1
        ));
        if m.machine == Machine::Open {
            out.push_str(&format!(
                "O9: h's intent waited unapplied {} ticks at most (bound {})\n",
                self.intent_ticks.0, self.intent_ticks.1
            ));
        }
        out.push_str(&format!("reached: {}\n", self.examples.join("; ")));
        if !self.missing.is_empty() {
            out.push_str(&format!("never reached: {}\n", self.missing.join("; ")));
        }
        if self.failures.is_empty() {
            out.push_str("every always-property holds\n");
        }
        for (name, path) in &self.failures {
            out.push_str(&format!("COUNTEREXAMPLE to \"{name}\":\n{path}"));
        }
        out
    }
}
