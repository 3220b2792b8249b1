//! The payments example as a user runs it: three nodes on anvil pay each other, partly at the
//! same moment, settle, and the program's own checks (payouts equal the payments' balances to the
//! wei, no call beyond approve, open, deposit, close and withdraw, nothing left in the manager)
//! hold, in ether and in an ERC20 token.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::Duration;

async fn run_example(extra: &[&str]) {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_payments"))
        .args(["--nodes", "3", "--payments", "90", "--seed", "7"])
        .args(extra)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the example finishes in 5 minutes")
        .expect("the example runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.lines().any(|l| l == "ok"), "{stdout}");
    let report = stdout
        .lines()
        .find(|l| l.starts_with("90 payments ("))
        .unwrap_or_else(|| panic!("no report line: {stdout}"));
    let concurrent: usize = report
        .trim_start_matches("90 payments (")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        concurrent >= 30,
        "a third or more from concurrent payers: {report}"
    );
}

#[tokio::test]
async fn three_nodes_pay_each_other_concurrently_and_are_paid_out_exactly() {
    run_example(&[]).await;
}

#[tokio::test]
async fn the_same_in_an_erc20_token() {
    run_example(&["--erc20"]).await;
}

#[tokio::test]
async fn bad_flags_are_refused_with_the_usage() {
    for args in [
        &["--nodes", "1"][..],
        &["--nodes", "x"],
        &["--payments"],
        &["--bogus"],
    ] {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_payments"))
            .args(args)
            .output()
            .await
            .expect("the example runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} accepted");
        assert!(
            stderr.contains("usage") || stderr.contains("--nodes") || stderr.contains("--payments"),
            "{args:?}: {stderr}"
        );
    }
}
