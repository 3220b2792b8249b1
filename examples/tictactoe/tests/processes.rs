//! End to end, as people run it: anvil, and each player a separate `tictactoe` process talking
//! libp2p over loopback. A full game with payout, a silent player removed by timeout, a cheater
//! slashed by a fraud proof, and a player killed with SIGKILL at random points that restarts
//! from its data directory and finishes without ever signing two transactions at one height.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout)] // test code
#![allow(clippy::disallowed_methods)] // deadlines of a test driver, not protocol time

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use entente_chain::{Anvil, ChainClient};
use entente_contracts::TicTacToe;
use entente_types::{Address, B256};

const WAIT: Duration = Duration::from_secs(120);
/// Short deadlines so faults resolve in seconds: p2p, agreement, chain fallback, challenge.
const FAST: &str = "3,2,3,4";

struct Chain {
    anvil: Anvil,
    manager: Address,
    tictactoe: Address,
}

async fn chain() -> Chain {
    let anvil = Anvil::spawn().expect("anvil");
    let mut deployer = ChainClient::connect(&anvil.endpoint(), anvil.signer(0).unwrap())
        .await
        .unwrap();
    let manager = deployer.deploy_manager().await.unwrap();
    let tictactoe = deployer.deploy(TicTacToe::BYTECODE.clone()).await.unwrap();
    Chain {
        anvil,
        manager,
        tictactoe,
    }
}

/// A `tictactoe` process and every line it printed.
struct Player {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Player {
    fn spawn(chain: &Chain, key: B256, dir: &Path, extra: &[String]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tictactoe"));
        cmd.arg("--rpc")
            .arg(chain.anvil.endpoint())
            .arg("--manager")
            .arg(chain.manager.to_string())
            .arg("--machine")
            .arg(chain.tictactoe.to_string())
            .arg("--key")
            .arg(key.to_string())
            .arg("--data-dir")
            .arg(dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("tictactoe binary");
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Self { child, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The first line starting with `prefix`, waiting for it at most `timeout`.
    fn wait_for(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.lines().into_iter().find(|l| l.starts_with(prefix)) {
                return line;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Exited: one last look (the reader may lag a moment behind).
                std::thread::sleep(Duration::from_millis(100));
                if let Some(line) = self.lines().into_iter().find(|l| l.starts_with(prefix)) {
                    return line;
                }
                panic!(
                    "exited ({status}) without printing {prefix:?}:\n{}",
                    self.lines().join("\n")
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {prefix:?} within {timeout:?}:\n{}",
                self.lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn has(&self, prefix: &str) -> bool {
        self.lines().iter().any(|l| l.starts_with(prefix))
    }

    fn value(line: &str) -> String {
        line.split_once(' ')
            .map(|(_, v)| v.to_string())
            .unwrap_or_default()
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts the invitee (O) then the proposer (X), which finds O through O's address.
fn start_game(chain: &Chain, dir: &Path, o_extra: &[String], x_extra: &[String]) -> (Player, Player) {
    let mut o = Player::spawn(chain, chain.anvil.keys()[2], &dir.join("o"), o_extra);
    let o_addr = Player::value(&o.wait_for("address ", WAIT));
    let o_listen = Player::value(&o.wait_for("listening ", WAIT));
    let mut args = vec![
        "--opponent".to_string(),
        o_addr,
        "--bootstrap".to_string(),
        o_listen,
    ];
    args.extend_from_slice(x_extra);
    let x = Player::spawn(chain, chain.anvil.keys()[1], &dir.join("x"), &args);
    (x, o)
}

fn fast(extra: &[&str]) -> Vec<String> {
    let mut v = vec!["--timing".to_string(), FAST.to_string()];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_play_a_full_game_and_the_winner_is_paid() {
    let chain = chain().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut x, mut o) = start_game(&chain, dir.path(), &[], &[]);
    x.wait_for("done ", WAIT);
    o.wait_for("done ", WAIT);
    // X plays first free cells 0, 2, 4, 6 and wins on the anti-diagonal: the whole pot.
    assert!(x.has("closed payout=2.0000"), "{}", x.lines().join("\n"));
    assert!(o.has("closed payout=0.0000"), "{}", o.lines().join("\n"));
    assert!(x.has("paid 2.0000"), "{}", x.lines().join("\n"));
    assert!(x.has("final height=7"), "{}", x.lines().join("\n"));
    // Each printed its whole event log up to the settlement before "done": no dispute in it.
    assert!(x.has("settled ") && o.has("settled "), "{}", x.lines().join("\n"));
    assert!(!x.has("dispute") && !o.has("dispute"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_player_is_removed_by_timeout_and_the_other_is_paid() {
    let chain = chain().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut x, mut o) = start_game(&chain, dir.path(), &fast(&["--silent-after", "1"]), &fast(&[]));
    let o_addr = Player::value(&o.wait_for("address ", WAIT));
    o.wait_for("silent ", WAIT);
    x.wait_for("done ", WAIT);
    let lines = x.lines().join("\n");
    assert!(x.has("dispute kind=Timeout"), "{lines}");
    assert!(
        x.has(&format!("removed participant={o_addr} slashed=false")),
        "{lines}"
    );
    assert!(x.has("closed payout=2.0000"), "{lines}");
    assert!(x.has("paid 2.0000"), "{lines}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cheating_player_is_slashed_by_a_fraud_proof() {
    let chain = chain().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut x, mut o) = start_game(&chain, dir.path(), &fast(&["--cheat-at", "1"]), &fast(&[]));
    let o_addr = Player::value(&o.wait_for("address ", WAIT));
    o.wait_for("cheating ", WAIT);
    x.wait_for("done ", WAIT);
    let lines = x.lines().join("\n");
    assert!(
        x.has(&format!(
            "rejected from={o_addr} reason=transition produces state"
        )),
        "{lines}"
    );
    assert!(x.has("dispute kind=InvalidTransition"), "{lines}");
    assert!(x.has("chain proveFraud ok"), "{lines}");
    assert!(
        x.has(&format!("removed participant={o_addr} slashed=true")),
        "{lines}"
    );
    assert!(x.has("closed payout=2.0000"), "{lines}");
}

/// Runs of the crash test: `CRASH_RUNS` if set (the CI slice is 20).
fn crash_runs() -> u64 {
    std::env::var("CRASH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
}

/// One crash run: O is killed with SIGKILL at a point chosen by `seed` (after some number of
/// applied moves, plus a few milliseconds), restarted from its data directory, and the game
/// must settle with every signature of O consistent.
async fn crash_run(chain: &Chain, seed: u64) -> Result<bool, String> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (mut x, mut o) = start_game(chain, dir.path(), &[], &[]);
    let x_listen = Player::value(&x.wait_for("listening ", WAIT));
    o.wait_for("live ", WAIT);
    let applied: usize = rng.random_range(0..=6);
    let extra_ms: u64 = rng.random_range(0..=10);
    let deadline = Instant::now() + WAIT;
    while o.lines().iter().filter(|l| l.starts_with("applied ")).count() < applied && !o.has("done ") {
        if Instant::now() > deadline {
            return Err(format!("seed {seed}: O never applied {applied} moves"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(extra_ms));
    let before_kill = o.lines();
    o.kill();
    let mid_game = !before_kill.iter().any(|l| l.starts_with("closed "));
    let channel = Player::value(
        before_kill
            .iter()
            .find(|l| l.starts_with("channel "))
            .ok_or(format!("seed {seed}: no channel line"))?,
    );
    // Restart from the data directory; it finds X again through X's address.
    let mut o2 = Player::spawn(
        chain,
        chain.anvil.keys()[2],
        &dir.path().join("o"),
        &["--resume".to_string(), "--bootstrap".to_string(), x_listen],
    );
    x.wait_for("done ", WAIT);
    o2.wait_for("done ", WAIT);
    let x_lines = x.lines();
    let o2_lines = o2.lines();
    drop(x);
    drop(o2);
    println!(
        "seed {seed}: killed after {applied} applied + {extra_ms} ms (mid-game: {mid_game}); after the restart O applied {} more; {:.1} s",
        o2_lines.iter().filter(|l| l.starts_with("applied ")).count(),
        started.elapsed().as_secs_f64()
    );
    if std::env::var("CRASH_VERBOSE").is_ok() {
        println!("{}", o2_lines.join("\n"));
    }
    if let Some(bad) = x_lines
        .iter()
        .find(|l| l.starts_with("equivocation") || l.starts_with("dispute"))
    {
        return Err(format!("seed {seed}: X saw {bad}"));
    }
    check_signatures(dir.path(), &channel)
        .map_err(|e| format!("seed {seed} (killed after {applied} moves + {extra_ms} ms): {e}"))?;
    Ok(mid_game)
}

/// Every digest O recorded as signed at a (fork, height) is the digest of the transaction X
/// holds there, and X saw no equivocation: O never signed two transactions at one height.
fn check_signatures(dir: &Path, channel: &str) -> Result<(), String> {
    let channel: B256 = channel.parse().map_err(|e| format!("channel id: {e}"))?;
    let o = entente_store::Store::open(dir.join("o")).map_err(|e| e.to_string())?;
    let x = entente_store::Store::open(dir.join("x")).map_err(|e| e.to_string())?;
    let own = o.own_signatures(&channel, 0).map_err(|e| e.to_string())?;
    if own.is_empty() {
        return Err("O recorded no signature".into());
    }
    let held = x.transactions(&channel, 0).map_err(|e| e.to_string())?;
    for ((fork, height), digest) in &own {
        let Some(tx) = held.iter().find(|t| t.transaction.height == *height) else {
            continue; // O signed it, X never got it before the end: no conflict possible
        };
        if tx.digest != *digest {
            return Err(format!(
                "O signed {digest} at fork {fork} height {height}, X holds {}",
                tx.digest
            ));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_killed_at_random_points_restarts_and_finishes_without_double_signing() {
    let chain = chain().await;
    let mut failures = Vec::new();
    let mut mid_game = 0;
    let runs = crash_runs();
    for seed in 0..runs {
        match crash_run(&chain, seed).await {
            Ok(true) => mid_game += 1,
            Ok(false) => {}
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "{} runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Most kills must land while the game runs, or the test proves little.
    assert!(
        mid_game * 2 >= runs,
        "only {mid_game} of {runs} kills landed mid-game"
    );
}

/// Bad command lines end with a clear message and a failure status, before touching anything.
#[test]
fn bad_flags_are_refused_with_a_message() {
    for (args, expected) in [
        (vec!["--bogus"], "unknown option --bogus"),
        (vec!["--key"], "--key needs a value"),
        (vec!["--key", "not-hex"], "--key"),
        (vec!["--timing", "1,2"], "--timing takes four numbers"),
        (
            vec![
                "--rpc",
                "http://127.0.0.1:1",
                "--manager",
                "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
            ],
            "--key is required",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_tictactoe"))
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}
