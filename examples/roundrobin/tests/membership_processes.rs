//! Three `roundrobin` processes over libp2p on loopback and anvil: carol joins a running
//! channel of alice and bob, then bob leaves; alice and carol finish and are paid.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
#![allow(clippy::disallowed_methods)] // deadlines of a test driver, not protocol time

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use entente_chain::{Anvil, ChainClient};
use entente_contracts::RoundRobinCounter;
use entente_types::{Address, B256, LocalSigner, Signer};

const WAIT: Duration = Duration::from_secs(120);

struct Player {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Player {
    fn spawn(rpc: &str, manager: Address, key: B256, dir: &Path, extra: &[String]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_roundrobin"))
            .arg("--rpc")
            .arg(rpc)
            .arg("--manager")
            .arg(manager.to_string())
            .arg("--key")
            .arg(key.to_string())
            .arg("--data-dir")
            .arg(dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("roundrobin binary");
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

    fn wait_for(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(line) = self.lines().into_iter().find(|l| l.starts_with(prefix)) {
                return line;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                if let Some(line) = self.lines().into_iter().find(|l| l.starts_with(prefix)) {
                    return line;
                }
                panic!(
                    "exited ({status}) without {prefix:?}:\n{}",
                    self.lines().join("\n")
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {prefix:?}:\n{}",
                self.lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn value(line: &str) -> String {
        line.split_once(' ')
            .map(|(_, v)| v.to_string())
            .unwrap_or_default()
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_joins_and_another_leaves_across_processes() {
    let anvil = Anvil::spawn().expect("anvil");
    let mut deployer = ChainClient::connect(&anvil.endpoint(), anvil.signer(0).unwrap())
        .await
        .unwrap();
    let manager = deployer.deploy_manager().await.unwrap();
    let counter = deployer
        .deploy(RoundRobinCounter::BYTECODE.clone())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rpc = anvil.endpoint();
    let keys = anvil.keys().to_vec();
    let addr = |i: usize| LocalSigner::from_bytes(&keys[i]).unwrap().address();
    let (a, b, c) = (addr(1), addr(2), addr(3));

    let mut bob = Player::spawn(
        &rpc,
        manager,
        keys[2],
        &dir.path().join("b"),
        &[
            "--accept".into(),
            "--allow-join".into(),
            c.to_string(),
            "--leave-at".into(),
            "9".into(),
        ],
    );
    let bob_listen = Player::value(&bob.wait_for("listening "));
    let mut alice = Player::spawn(
        &rpc,
        manager,
        keys[1],
        &dir.path().join("a"),
        &[
            "--propose".into(),
            b.to_string(),
            "--machine".into(),
            counter.to_string(),
            "--target".into(),
            "40".into(),
            "--sponsor-join".into(),
            c.to_string(),
            "--at".into(),
            "4".into(),
            "--bootstrap".into(),
            bob_listen.clone(),
        ],
    );
    let channel = Player::value(&alice.wait_for("channel "));
    let mut carol = Player::spawn(
        &rpc,
        manager,
        keys[3],
        &dir.path().join("c"),
        &[
            "--join".into(),
            channel,
            "--invited-by".into(),
            a.to_string(),
            "--bootstrap".into(),
            bob_listen,
        ],
    );
    assert_eq!(carol.wait_for("live "), "live fork=1 participants=3");
    alice.wait_for("fork fork=1 participants=3");
    bob.wait_for("leaving ");
    bob.wait_for("left ");
    alice.wait_for("fork fork=2 participants=2");
    alice.wait_for("done ");
    carol.wait_for("done ");
    bob.wait_for("done ");
    let one_ether = "1000000000000000000";
    assert!(
        alice.lines().contains(&format!("closed payout_wei={one_ether}")),
        "{}",
        alice.lines().join("\n")
    );
    assert!(
        carol.lines().contains(&format!("closed payout_wei={one_ether}")),
        "{}",
        carol.lines().join("\n")
    );
    // Bob got his deposit back: he ends with his start balance minus gas only.
    let balance = Player::value(&bob.wait_for("balance "));
    let (start, end) = balance.split_once(' ').unwrap();
    let start: u128 = start.trim_start_matches("start_wei=").parse().unwrap();
    let end: u128 = end.trim_start_matches("end_wei=").parse().unwrap();
    assert!(
        start - end < 10u128.pow(16),
        "bob lost more than gas: {start} -> {end}"
    );
    let _ = a;
}
