//! The open machine (anyone may write, O9): intents, a rotating sequencer, and left-out intents
//! posted to the court and forced.
//!
//! With the court as first built the model found h slashed for a forced exit (G2): anyone could
//! post at a height where h had signed a transaction, or the court force an intent there, and the
//! others, keeping h's signature, cut the posted branch with it and defeated h's exit (R2, R6).
//! The sound rules now model the adopted fix: only the height's sequencer posts after an open
//! state, a held intent is forced only within its window, and h holds (confirms and writes
//! nothing, brings the head to its tip) while the court holds an intent and confirms in lockstep.
//! Every property holds with them (`exit_challenge_moves_only` off).
//!
//! In CI (debug): N = 2 to depth 10 and N = 3 to depth 8 (seconds each, not exhaustive).
//! Exhaustively, in release, one thread:
//! `cargo test -p entente-court-model --release --test open -- --ignored --nocapture`
//! (or `cargo run -p entente-court-model --release -- --machine open --n 3 --no-leave --threads 1`,
//! and `--n 2`).

#![allow(clippy::print_stdout)] // the tests print what they explored
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use entente_court_model::{Action, CourtModel, Fate, Report, Rules, State, check};

/// The open model under the sound rules, without leave approvals (orthogonal to O9: h co-signs
/// none while its intent is under way).
fn fixed(n: u8) -> CourtModel {
    let mut model = CourtModel::open(n, Rules::Sound);
    model.leave = false;
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
fn two_participants_to_depth_10() {
    let report = check(fixed(2), Some(10), 1);
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
fn three_participants_to_depth_8() {
    let report = check(fixed(3), Some(8), 1);
    assert_holds(&report);
}

#[test]
#[ignore = "about 17 s in release (1.3 million states, exhaustive): run with --release -- --ignored"]
fn two_participants_every_reachable_state() {
    let report = check(fixed(2), None, 1);
    assert_holds(&report);
    assert!(report.complete, "the search did not cover every reachable state");
}

#[test]
#[ignore = "about 7 minutes in release (22.7 million states, exhaustive, 2.2 GB): run with --release -- --ignored"]
fn three_participants_every_reachable_state() {
    let report = check(fixed(3), None, 1);
    assert_holds(&report);
    assert!(report.complete, "the search did not cover every reachable state");
}

/// The liveness gap the exhaustive N = 3 check found: h holds the first sequencer's transaction
/// N-signed above the head, the next sequencer (the other colluder) writes nothing, and h's intent
/// is left out. Nothing else made h bring its tip to the chain, and it posts its intent only with
/// the head at its tip, so the intent waited forever; now h brings the head up once the intent
/// was left out `p2pTime`, then posts it.
#[test]
fn a_left_out_intent_brings_the_head_to_the_tip() {
    let model = fixed(3);
    let mut s = model.initial();
    for a in [
        Action::Propose {
            mv: 0,
            ts: 0,
            applied: false,
        },
        Action::Confirm { height: 1 },
        Action::HIntent,
        Action::Tick,
    ] {
        s = model
            .step(&s, a)
            .unwrap_or_else(|| panic!("{a:?} refused in {s}"));
    }
    assert!(model.honest_due(&s), "{s}");
    let s = model
        .step(&s, Action::HCheckpoint { height: 1 })
        .unwrap_or_else(|| panic!("h does not bring its tip to the chain: {s}"));
    assert!(model.step(&s, Action::HPostIntent).is_some(), "{s}");
}

/// The reviewer's case against a broader rule: h's tip applies its intent (the sequencer's
/// transaction, freshly stamped, which h confirmed), so nothing is left out there (the node's
/// `left_out_intent` finds the intent nonce moved on). h neither brings the head up nor posts its
/// intent: time passes until that transaction's confirmation deadline, and only then does h bring
/// it to the chain (O2).
#[test]
fn an_intent_applied_at_the_tip_lets_time_pass() {
    let model = fixed(3);
    let mut s = model.initial();
    for a in [
        Action::HIntent,
        Action::Tick,
        // Participant 1, the sequencer of height 1, applies h's intent; h confirms it.
        Action::Propose {
            mv: 0,
            ts: 0,
            applied: true,
        },
    ] {
        s = model
            .step(&s, a)
            .unwrap_or_else(|| panic!("{a:?} refused in {s}"));
    }
    // Waiting `p2pTime` or more, unapplied at the head and not N-signed: only the tip applies it.
    assert!(model.intent_waiting(&s), "{s}");
    assert!(s.intent >= Some(model.timing.p2p as u8), "{s}");
    for _ in 0..2 {
        assert!(!model.honest_due(&s), "h must act before time passes: {s}");
        assert!(model.step(&s, Action::HPost { height: 1 }).is_none(), "{s}");
        assert!(model.step(&s, Action::HPostIntent).is_none(), "{s}");
        s = model
            .step(&s, Action::Tick)
            .unwrap_or_else(|| panic!("time may not pass: {s}"));
    }
    // The confirmation deadline passed without the signatures: h posts the transaction.
    assert!(model.honest_due(&s), "{s}");
    let s = model
        .step(&s, Action::HPost { height: 1 })
        .unwrap_or_else(|| panic!("h does not post its unconfirmed transaction: {s}"));
    assert!(!model.intent_waiting(&s), "{s}");
}

/// The slashed exit the checker found with the court as first built, step by step: now the
/// colluder's post at h's height is refused (only the height's sequencer posts after an open
/// state, `NotSequencer`), so h's transaction stays linked, h brings it to the chain before it
/// exits, and it exits; with anyone posting (`Rules::AnyonePostsInOpenStates`) h is slashed.
#[test]
fn a_cut_with_the_honest_signature_defeats_its_exit() {
    let post = Action::Post {
        issuer: 1,
        mv: 0,
        ts: 0,
        unlinked: false,
        applied: false,
    };
    let before = [
        // Participant 1 (the sequencer of height 1) posts its transaction.
        post,
        // h signs an intent and, the sequencer of height 2, writes it at once.
        Action::HIntent,
        Action::HWrite,
    ];
    let attack = [
        // Participant 1 posts its own transaction at height 2, h's height.
        post,
        // h, with nothing it can bring to the chain, requests an exit.
        Action::HExit,
        // Participant 1 adds its signature to h's transaction at height 2 and shows it: it cuts
        // the posted branch there (R2), a challenge that defeats the exit (R6).
        Action::Checkpoint { height: 2 },
        Action::Tick,
        Action::Tick,
        Action::Tick,
        Action::Finalize,
    ];
    let run = |model: &CourtModel, path: &[Action], mut s: State| {
        for a in path {
            s = model
                .step(&s, *a)
                .unwrap_or_else(|| panic!("{a:?} refused under {:?} in {s}", model.rules));
        }
        s
    };
    // The court as first built: h is slashed.
    let old = CourtModel::open(2, Rules::AnyonePostsInOpenStates);
    let s = run(&old, &before, old.initial());
    let s = run(&old, &attack, s);
    assert_eq!(s.fate, Fate::Slashed, "{s}");
    // Now: the post is refused, h cannot exit while its transaction can still reach the chain.
    let model = CourtModel::open(2, Rules::Sound);
    let s = run(&model, &before, model.initial());
    assert!(
        model.step(&s, attack[0]).is_none(),
        "participant 1 posted at h's height: {s}"
    );
    assert!(model.step(&s, Action::HExit).is_none(), "{s}");
    // Nothing is due: time passes until h's confirmation deadline, then h posts its transaction
    // (the head at its tip), and exits; the colluder has nothing left to cut with.
    let mut s = s;
    while !model.honest_due(&s) {
        s = model.step(&s, Action::Tick).expect("time passes");
    }
    let s = run(&model, &[Action::HPost { height: 2 }, Action::HExit], s);
    assert_eq!((s.head.height, s.head.applied), (2, true), "{s}");
    assert!(model.step(&s, Action::Checkpoint { height: 2 }).is_none(), "{s}");
    let s = run(
        &model,
        &[Action::Tick, Action::Tick, Action::Tick, Action::Finalize],
        s,
    );
    assert_eq!(s.fate, Fate::Exited, "{s}");
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
