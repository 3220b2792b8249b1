//! `tictactoe-demo` as `scripts/demo` runs it: anvil, the contracts, two player processes, the
//! relayed output and the balances on chain.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::process::Command;

fn demo(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tictactoe-demo"))
        .args(args)
        .output()
        .expect("tictactoe-demo binary");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "exit {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_demo_plays_a_game_and_shows_the_payout_and_balances() {
    let out = demo(&[]);
    for needle in [
        "==> starting anvil",
        "O | waiting for a proposal",
        "X | deposit participant=",
        "X | board    X | O | X",
        "X | gameover height=7 winner=me",
        "X | closed payout=2.0000",
        "X | paid 2.0000",
        "O | closed payout=0.0000",
        "balances on chain",
        "demo finished",
    ] {
        assert!(out.contains(needle), "no {needle:?} in:\n{out}");
    }
}

#[test]
fn the_demo_shows_a_cheater_slashed() {
    let out = demo(&["--cheat"]);
    for needle in [
        "O | cheating cell=",
        "X | dispute kind=InvalidTransition",
        "slashed=true",
        "X | closed payout=2.0000",
    ] {
        assert!(out.contains(needle), "no {needle:?} in:\n{out}");
    }
}
