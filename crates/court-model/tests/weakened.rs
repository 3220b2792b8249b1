//! Each weakened rule lets the colluders break a guarantee, and the checker finds how: these tests
//! assert that a counterexample is discovered and print its path (the search runs on one thread, so
//! the path is the same on every run).

#![allow(clippy::print_stdout)] // the tests print the counterexamples

use entente_court_model::{Action, CourtModel, Report, Rules, State, check};

/// Checks a game of `max_height` moves (the counterexamples need no more), with leave approvals
/// only when `leave`.
fn counterexample(n: u8, rules: Rules, leave: bool, max_height: u8, property: &str) -> Report {
    let mut model = CourtModel::new(n, rules);
    model.max_height = max_height;
    model.leave = leave;
    counterexample_in(model, property)
}

/// Checks `model` and asserts that it finds a counterexample to `property`.
fn counterexample_in(model: CourtModel, property: &str) -> Report {
    let rules = model.rules;
    let report = check(model, None, 1);
    println!("{}", report.summary());
    assert!(
        report.failures.iter().any(|(name, _)| *name == property),
        "no counterexample to {property:?} under {rules:?}; found: {:?}",
        report.failures.iter().map(|(name, _)| name).collect::<Vec<_>>()
    );
    report
}

/// Attack 1: a post not linked to the head is run on a fabricated parent, and the head becomes a
/// state that pays the poster everything.
#[test]
fn unlinked_post_makes_an_invalid_head() {
    let report = counterexample(
        2,
        Rules::AcceptUnlinkedPost,
        false,
        2,
        "G1 head is never an invalid state",
    );
    let (_, path) = &report.failures[0];
    assert!(path.contains("unlinked: true"), "{path}");
}

#[test]
fn unlinked_post_makes_an_invalid_head_with_three() {
    counterexample(
        3,
        Rules::AcceptUnlinkedPost,
        false,
        2,
        "G1 head is never an invalid state",
    );
}

/// Attack 3: a writer stamps its move with its parent's time and posts it at the end of its window;
/// if the next window started at the stamp, h would be timed out before its own post is due (three
/// moves: h's turn must come after a colluder's).
#[test]
fn deadline_from_stamp_times_out_the_honest() {
    let report = counterexample(
        2,
        Rules::DeadlineFromTxTimestamp,
        false,
        3,
        "G2 h is never timed out or slashed",
    );
    let (_, path) = &report.failures[0];
    assert!(
        path.contains("Timeout { by: 1 }") && path.contains("h:TimedOut"),
        "{path}"
    );
}

/// Attack 4: a claim judged when the dispute ends ("stamp in the future") stops being true while the
/// dispute runs, and the honest prover is slashed.
#[test]
fn fraud_judged_later_slashes_the_honest_prover() {
    let report = counterexample(
        2,
        Rules::FraudJudgedLater,
        false,
        2,
        "G2 h is never timed out or slashed",
    );
    let (_, path) = &report.failures[0];
    assert!(
        path.contains("HFraudFuture") && path.contains("h:Slashed"),
        "{path}"
    );
}

/// O4 as first written: h co-signs leave approvals while it is the next writer, and signs nothing
/// above them until they expire; back-to-back approvals keep it from writing until it is timed out.
#[test]
fn approving_while_writer_times_out_the_honest() {
    let report = counterexample(
        2,
        Rules::ApproveWhileWriter,
        true,
        2,
        "G2 h is never timed out or slashed",
    );
    let (_, path) = &report.failures[0];
    assert!(path.contains("ApproveLeave"), "{path}");
}

/// R2 without the cut from below: the writer of a move h confirmed (and holds N-signed) posts
/// another move at its height, the next colluder posts on top of it, and a verdict carried out at
/// that branch rolls back h's state. It takes two colluders writing in a row, so N = 3: with N = 2
/// every other move is h's, and h never signs on a branch that contradicts what it signed (it holds
/// a double-sign proof), so no posted branch can grow over its state (the weakened N = 2 model has
/// exactly the sound model's states). A challenge period of 0 ticks shortens the search five times;
/// the default finds the same counterexample two ticks later.
#[test]
fn no_branch_cut_rolls_back_a_signed_state() {
    let mut model = CourtModel::new(3, Rules::NoBranchCut);
    model.leave = false;
    model.timing.challenge = 0;
    let report = counterexample_in(model, "G1 no verdict rolls back a state h holds N-signed");
    let (_, path) = &report.failures[0];
    assert!(
        path.contains("posted branch conflicts") && path.contains("ROLLED BACK"),
        "{path}"
    );
}

/// The same burial step by step: under the sound rules h cuts the colluders' branch with the state
/// it holds N-signed (the head moves down to it, and the next writer's window starts now, not at
/// the state's old stamp); without the cut from below it cannot.
#[test]
fn the_cut_from_below_brings_back_a_buried_state() {
    let path = [
        Action::HWrite,
        Action::Checkpoint { height: 1 },
        // Participant 1 proposes its move at height 2, stamped now; h confirms it.
        Action::Propose {
            mv: 0,
            ts: 0,
            applied: false,
        },
        Action::Tick,
        // Participant 1 posts another move at height 2, participant 2 builds on it.
        Action::Post {
            issuer: 1,
            mv: 1,
            ts: -1,
            unlinked: false,
            applied: false,
        },
        Action::Post {
            issuer: 2,
            mv: 0,
            ts: -1,
            unlinked: false,
            applied: false,
        },
        // The colluders hand h the signatures on the move it confirmed.
        Action::Confirm { height: 2 },
    ];
    for rules in [Rules::Sound, Rules::NoBranchCut] {
        let mut model = CourtModel::new(3, rules);
        model.leave = false;
        let mut s: State = model.initial();
        for a in path {
            s = model
                .step(&s, a)
                .unwrap_or_else(|| panic!("{a:?} refused under {rules:?} in {s}"));
        }
        assert_eq!((s.head.height, s.head.posted), (3, true), "{s}");
        assert_ne!(s.conflict & (1 << 2), 0, "{s}");
        let cut = model.step(&s, Action::HCheckpoint { height: 2 });
        match rules {
            Rules::NoBranchCut => assert!(cut.is_none(), "{s}"),
            _ => {
                let t = cut.unwrap_or_else(|| panic!("h cannot cut in {s}"));
                assert_eq!((t.head.height, t.head.mv, t.head.posted), (2, 0, false), "{t}");
                assert_eq!((t.head.ts, t.head.since, t.conflict), (-1, 0, 0), "{t}");
                // Then h proves the double sign it saw, at a head that holds its state.
                assert!(model.step(&t, Action::HFraud { target: 1 }).is_some(), "{t}");
            }
        }
    }
}

/// O9 as first built: an issuer whose intent was left out writes it as its own transaction at the
/// head's next height, where it had already confirmed the sequencer's; the colluders hold both
/// signatures (the checker finds it in the open machine at depth 4).
#[test]
fn the_old_escape_signs_two_transactions_at_one_height() {
    let mut model = CourtModel::open(2, Rules::SignTwoAtOneHeight);
    model.leave = false;
    let report = counterexample_in(model, "O9 h never signs two transactions at one height");
    let (_, path) = &report.failures[0];
    assert!(path.contains("HEscape") && path.contains("EQUIVOCATED"), "{path}");
}

/// Where the old escape writes a transaction, the sound node posts its intent to the court.
#[test]
fn the_sound_node_posts_its_intent_instead_of_escaping() {
    for rules in [Rules::Sound, Rules::SignTwoAtOneHeight] {
        let model = CourtModel::open(2, rules);
        let mut s = model.initial();
        for a in [Action::HIntent, Action::Tick] {
            s = model
                .step(&s, a)
                .unwrap_or_else(|| panic!("{a:?} refused in {s}"));
        }
        let escape = model.step(&s, Action::HEscape).is_some();
        let post = model.step(&s, Action::HPostIntent).is_some();
        assert_eq!(
            (escape, post),
            (rules != Rules::Sound, rules == Rules::Sound),
            "{s}"
        );
    }
}

/// The open model of a short game without leave approvals, for the weakenings of O9's rules.
fn open_short(rules: Rules, max_height: u8) -> CourtModel {
    let mut model = CourtModel::open(2, rules);
    model.leave = false;
    model.max_height = max_height;
    model
}

/// The court as first built: in an open state anyone posts at the head's next height. The colluder
/// posts its own transaction at h's height, over the one h wrote there as sequencer (no double
/// sign: it is not that transaction's issuer), adds its signature to h's when h requests an exit,
/// cuts the posted branch with it (R2) and defeats the exit (R6): h is slashed.
#[test]
fn anyone_posting_in_an_open_state_slashes_the_honest_exiter() {
    let report = counterexample_in(
        open_short(Rules::AnyonePostsInOpenStates, 2),
        "G2 h is never timed out or slashed",
    );
    let (_, path) = &report.failures[0];
    assert!(path.contains("HExit") && path.contains("h:Slashed"), "{path}");
}

/// h without the hold: it confirms the sequencer's transaction while a colluder's intent is held
/// and leaves it off the chain; the colluder forces its intent at that height, and with h's
/// signature on the transaction there cuts the forced branch when h requests an exit: h is slashed.
#[test]
fn without_the_hold_a_forced_intent_slashes_the_honest_exiter() {
    let report = counterexample_in(
        open_short(Rules::NoHoldWhileIntentHeld, 1),
        "G2 h is never timed out or slashed",
    );
    let (_, path) = &report.failures[0];
    assert!(path.contains("Force") && path.contains("h:Slashed"), "{path}");
}

/// The court before `IntentLapsed`: a colluder's intent is left to lapse, h confirms the
/// sequencer's transaction once the window is over, and the late force lands at that height; the
/// colluder cuts the forced branch with h's signature when h requests an exit: h is slashed.
#[test]
fn a_force_after_its_window_slashes_the_honest_exiter() {
    let report = counterexample_in(
        open_short(Rules::ForceAfterWindow, 1),
        "G2 h is never timed out or slashed",
    );
    let (_, path) = &report.failures[0];
    assert!(path.contains("Force") && path.contains("h:Slashed"), "{path}");
}
