//! Each weakened rule lets the colluders break a guarantee, and the checker finds how: these tests
//! assert that a counterexample is discovered and print its path (the search runs on one thread, so
//! the path is the same on every run).

#![allow(clippy::print_stdout)] // the tests print the counterexamples

use entente_court_model::{CourtModel, Report, Rules, check};

/// Checks a game of `max_height` moves (the counterexamples need no more), with leave approvals
/// only when `leave`.
fn counterexample(n: u8, rules: Rules, leave: bool, max_height: u8, property: &str) -> Report {
    let mut model = CourtModel::new(n, rules);
    model.max_height = max_height;
    model.leave = leave;
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
