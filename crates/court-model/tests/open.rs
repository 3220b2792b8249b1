//! The open machine (anyone may write, O9): intents, a rotating sequencer, and left-out intents
//! posted to the court and forced.
//!
//! Found by this model: with the court as built, h can be slashed for a forced exit in an open
//! channel (G2). Anyone may post at a height where h confirmed (or, as sequencer, wrote) a
//! transaction, or the court may force an intent there; no double sign shows it, and the others
//! keep h's signature on its transaction. When h requests an exit they add their signatures, cut
//! the posted branch with it (R2) and so defeat the exit, which slashes the exiter (R6).
//! `CourtModel::exit_challenge_moves_only` is the court change that closes it (a challenge moves
//! the head and the exit is carried out there); the depth-bounded checks below run with it, and
//! find every other property holding.
//!
//! In CI: N = 2 to depth 9 (1.2 million states) and N = 3 to depth 7 (0.9 million), seconds each. Deeper, in release:
//! `cargo test -p entente-court-model --release --test open -- --ignored --nocapture`
//! (or `cargo run -p entente-court-model --release -- --machine open --n 2 --no-leave
//! --exit-challenge-moves-only --depth 12`).

#![allow(clippy::print_stdout)] // the tests print what they explored
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use entente_court_model::{Action, CourtModel, Fate, Report, Rules, State, check};

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(2)
}

/// The open model with the court change the model suggests, without leave approvals (orthogonal
/// to O9: h co-signs none while its intent is under way).
fn fixed(n: u8) -> CourtModel {
    let mut model = CourtModel::open(n, Rules::Sound);
    model.leave = false;
    model.exit_challenge_moves_only = true;
    model
}

fn assert_holds(report: &Report) {
    println!("{}", report.summary());
    assert!(
        report.failures.is_empty(),
        "counterexamples:\n{}",
        report.summary()
    );
    assert!(
        report.unique_states > 1000,
        "suspiciously few states: {}",
        report.unique_states
    );
}

#[test]
fn two_participants_to_depth_9() {
    let report = check(fixed(2), Some(9), threads());
    assert_holds(&report);
    // The interesting paths exist within this depth.
    for name in [
        "a sequencer's transaction applies h's intent",
        "h posts its left-out intent to the court",
        "the court forces h's intent onto the head",
        "the court forces a colluder's intent",
    ] {
        assert!(report.examples.contains(&name), "never reached: {name}");
    }
}

#[test]
fn three_participants_to_depth_7() {
    let report = check(fixed(3), Some(7), threads());
    assert_holds(&report);
}

#[test]
#[ignore = "about four minutes in release (30 million states): run with --release -- --ignored"]
fn two_participants_to_depth_12() {
    let report = check(fixed(2), Some(12), threads());
    assert_holds(&report);
}

#[test]
#[ignore = "20 s in release (4.8 million states): run with --release -- --ignored"]
fn three_participants_to_depth_8() {
    let report = check(fixed(3), Some(8), threads());
    assert_holds(&report);
}

/// The checker finds the slashed exit by itself with the court as built (depth 10).
#[test]
#[ignore = "75 s in release (13 million states, depth 10): run with --release -- --ignored"]
fn as_built_the_checker_finds_the_slashed_exit() {
    let mut model = CourtModel::open(2, Rules::Sound);
    model.leave = false;
    let report = check(model, None, 1);
    println!("{}", report.summary());
    assert!(
        report
            .failures
            .iter()
            .any(|(name, _)| *name == "G2 h is never timed out or slashed"),
        "{}",
        report.summary()
    );
}

/// The slashed exit step by step: with the court as built h is slashed, with the change it exits.
#[test]
fn a_cut_with_the_honest_signature_defeats_its_exit() {
    let post = Action::Post {
        issuer: 1,
        mv: 0,
        ts: 0,
        unlinked: false,
        applied: false,
    };
    let path = [
        // Participant 1 (the sequencer of height 1) posts its transaction.
        post,
        // h signs an intent and, the sequencer of height 2, writes it at once.
        Action::HIntent,
        Action::HWrite,
        // Participant 1 posts its own transaction at height 2 (anyone may write in an open state):
        // not a double sign, it is not the issuer of h's.
        post,
        // h, with nothing it can bring to the chain, requests an exit.
        Action::HExit,
        // Participant 1 adds its signature to h's transaction at height 2 and shows it: it cuts
        // the posted branch there (R2), a challenge.
        Action::Checkpoint { height: 2 },
        Action::Tick,
        Action::Tick,
        Action::Tick,
        Action::Finalize,
    ];
    for fix in [false, true] {
        let mut model = CourtModel::open(2, Rules::Sound);
        model.exit_challenge_moves_only = fix;
        let mut s: State = model.initial();
        for a in path {
            s = model
                .step(&s, a)
                .unwrap_or_else(|| panic!("{a:?} refused (fix: {fix}) in {s}"));
        }
        let expected = if fix { Fate::Exited } else { Fate::Slashed };
        assert_eq!(s.fate, expected, "{s}");
    }
}

/// An idle participant has no duty in an open state: no timeout can be raised against it, however
/// long it stays silent, and it has nothing due; the same silence in round robin is a missed turn.
#[test]
fn an_idle_participant_is_never_obliged() {
    let open = CourtModel::open(2, Rules::Sound);
    let mut s = open.initial();
    for _ in 0..8 {
        assert!(!open.honest_due(&s), "h has something due in {s}");
        for p in 0..2 {
            assert_eq!(open.obliged(&s, s.head.height), None, "{s}");
            assert!(open.step(&s, Action::Timeout { by: p }).is_none(), "{s}");
        }
        s = open.step(&s, Action::Tick).expect("time passes");
    }
    assert!(open.step(&s, Action::HTimeout).is_none(), "{s}");
    // Round robin: h is the first writer, so it must write before time passes, and a silent
    // colluder is timed out once its window is over.
    let rr = CourtModel::new(2, Rules::Sound);
    let s = rr.initial();
    assert!(rr.honest_due(&s));
    assert!(rr.step(&s, Action::Tick).is_none());
    let mut s = rr.step(&s, Action::HWrite).expect("h writes");
    s = rr.step(&s, Action::Confirm { height: 1 }).expect("signed");
    s = rr.step(&s, Action::Checkpoint { height: 1 }).expect("shown");
    for _ in 0..4 {
        s = rr.step(&s, Action::Tick).expect("time passes");
    }
    assert!(rr.step(&s, Action::HTimeout).is_some(), "{s}");
}
