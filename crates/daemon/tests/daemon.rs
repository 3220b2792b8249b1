//! Two `entente` daemons (the real binary, as separate processes) and anvil: set up with `init`,
//! `deploy` and `register`, a whole tic-tac-toe game through the API, one daemon killed and
//! restarted mid-game with its event subscription resumed without a gap, and bad requests
//! answered with their error codes while the daemons keep running.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::disallowed_methods)] // a test drives processes in real time

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use entente_chain::Anvil;
use entente_daemon::client::{Client, ClientError};
use serde_json::{Value, json};

/// Bound on every wait (a chain call, a peer's message); generous for a loaded CI machine.
const WAIT: Duration = Duration::from_secs(120);

fn entente() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_entente"));
    c.env("ENTENTE_PASSWORD", "test password").env("RUST_LOG", "warn");
    c
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `entente init` for a home with the anvil key `key`.
fn init(home: &Path, key: &str, rpc: &str, manager: Option<&str>, p2p: u16, bootstrap: Option<&str>) {
    let mut c = entente();
    c.arg("--home").arg(home).args([
        "init",
        "--import-key-stdin",
        "--light-kdf",
        "--rpc-url",
        rpc,
        "--api",
        "127.0.0.1:0",
    ]);
    c.args([
        "--name",
        "player",
        "--listen",
        &format!("/ip4/127.0.0.1/tcp/{p2p}"),
    ]);
    if let Some(m) = manager {
        c.args(["--manager", m]);
    }
    if let Some(b) = bootstrap {
        c.args(["--bootstrap", b]);
    }
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{key}\n").as_bytes())
        .unwrap();
    ok(child.wait_with_output().unwrap());
}

/// A running `entente node`.
struct Daemon {
    child: Child,
    url: String,
    listen: String,
    token: String,
}

impl Daemon {
    fn start(home: &Path) -> Self {
        let mut child = entente()
            .arg("--home")
            .arg(home)
            .arg("node")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::sync_channel(256);
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut url, mut listen) = (None, None);
        let deadline = Instant::now() + WAIT;
        while url.is_none() {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("the daemon did not start");
            if let Some(rest) = line.strip_prefix("api url=") {
                url = Some(rest.to_string());
            }
            if line.starts_with("session ") {
                listen = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("listen="))
                    .map(str::to_string);
            }
        }
        let token = std::fs::read_to_string(home.join("api-token")).unwrap();
        Self {
            child,
            url: url.unwrap(),
            listen: listen.unwrap(),
            token,
        }
    }

    async fn client(&self) -> Client {
        Client::connect(&self.url, &self.token).await.unwrap()
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads notifications until one satisfies `want`; every one read is appended to `seen`.
async fn until(
    sub: &mut jsonrpsee::core::client::Subscription<Value>,
    seen: &mut Vec<Value>,
    what: &str,
    want: impl Fn(&Value) -> bool,
) {
    let wait = async {
        loop {
            let n = sub.next().await.expect("subscription ended").unwrap();
            seen.push(n.clone());
            if want(&n["event"]) {
                return;
            }
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"));
}

fn applied(height: u64) -> impl Fn(&Value) -> bool {
    move |e| e["Protocol"]["Applied"]["height"] == height
}

async fn me(c: &Client) -> String {
    c.call("session_list", json!({})).await.unwrap()[0]["address"]
        .as_str()
        .unwrap()
        .to_string()
}

fn code_of(e: ClientError) -> (i32, Value) {
    match e {
        ClientError::Api { code, data, .. } => (code, data.unwrap_or(Value::Null)),
        other => panic!("not an API error: {other}"),
    }
}

/// One HTTP POST to the API, its status line and body.
fn post(url: &str, token: Option<&str>, body: &str) -> (String, String) {
    let addr = url.trim_start_matches("ws://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(s, "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.lines().next().unwrap_or_default().to_string();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_play_a_game_one_restarts_mid_game_and_bad_requests_are_refused() {
    let anvil = Anvil::spawn().unwrap();
    let rpc = anvil.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let (alice_home, bob_home): (PathBuf, PathBuf) = (dir.path().join("alice"), dir.path().join("bob"));
    let key = |i: usize| format!("{}", anvil.keys()[i]);

    init(&alice_home, &key(0), &rpc, None, free_port(), None);
    let deployed = ok(entente()
        .arg("--home")
        .arg(&alice_home)
        .args(["deploy", "--machine", "tictactoe"])
        .output()
        .unwrap());
    let field = |what: &str| -> String {
        let line = deployed.lines().find(|l| l.starts_with(what)).unwrap();
        line.split_whitespace()
            .find_map(|w| w.strip_prefix("address="))
            .unwrap()
            .to_string()
    };
    let (manager, ttt) = (field("manager"), field("machine name=tictactoe"));

    let alice = Daemon::start(&alice_home);
    let bob_p2p = free_port();
    init(&bob_home, &key(1), &rpc, Some(&manager), bob_p2p, None);
    let mut bob = Daemon::start(&bob_home);
    ok(entente()
        .arg("--home")
        .arg(&bob_home)
        .args(["register", "tictactoe", &ttt, "--api", &bob.url])
        .output()
        .unwrap());

    let a = alice.client().await;
    let mut b = bob.client().await;
    let xa = me(&a).await;
    let ob = me(&b).await;

    // bob finds the network through alice, and keeps her in his address book (dialed at every
    // start: his restart below relies on it)
    let added = b
        .call("peer_add", json!({ "address": alice.listen }))
        .await
        .unwrap();
    assert_eq!(added["remembered"], json!(true), "{added}");
    let again = b
        .call("peer_add", json!({ "address": alice.listen }))
        .await
        .unwrap();
    assert_eq!(again["remembered"], json!(false), "{again}");
    let alice_peer = alice.listen.rsplit('/').next().unwrap().to_string();
    assert_eq!(added["peer_id"], json!(alice_peer));
    assert_eq!(
        code_of(
            b.call("peer_add", json!({ "address": "/ip4/1.2.3.4/tcp/1" }))
                .await
                .unwrap_err()
        )
        .0,
        1005
    );
    assert_eq!(
        code_of(
            b.call("peer_add", json!({ "address": "not an address" }))
                .await
                .unwrap_err()
        )
        .0,
        1005
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let peers = b.call("peer_list", json!({})).await.unwrap();
        assert_eq!(peers["book"], json!([alice.listen]));
        if peers["connected"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["peer_id"] == json!(alice_peer))
        {
            break;
        }
        assert!(Instant::now() < deadline, "bob never connected to alice: {peers}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // -------------------------------------------------------------- bad requests, each answered
    assert!(post(&alice.url, None, "{}").0.contains("401"), "no token");
    assert!(
        post(&alice.url, Some("not the token"), "{}").0.contains("401"),
        "wrong token"
    );
    assert!(Client::connect(&alice.url, "not the token").await.is_err());
    let (_, body) = post(
        &alice.url,
        Some(&alice.token),
        "{\"jsonrpc\": \"2.0\", \"method\": ",
    );
    assert!(body.contains("-32700"), "malformed JSON: {body}");
    let (_, body) = post(
        &alice.url,
        Some(&alice.token),
        r#"{"jsonrpc":"2.0","id":1,"method":"channel_fly","params":{}}"#,
    );
    assert!(body.contains("-32601"), "unknown method: {body}");
    let none = "0x0000000000000000000000000000000000000000000000000000000000000001";
    assert_eq!(
        code_of(
            a.call("channel_info", json!({ "channel_id": none }))
                .await
                .unwrap_err()
        )
        .0,
        1002
    );
    assert_eq!(
        code_of(
            a.call(
                "channel_info",
                json!({ "account": "mallory", "channel_id": none })
            )
            .await
            .unwrap_err()
        )
        .0,
        1001
    );
    assert_eq!(
        code_of(
            a.call("channel_info", json!({ "channel": none }))
                .await
                .unwrap_err()
        )
        .0,
        -32602
    );
    let artifact = entente_contracts::artifacts::TIC_TAC_TOE;
    let (code, data) = code_of(
        a.call(
            "machine_register",
            json!({ "name": "fake", "address": manager, "artifact": artifact }),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((code, data["kind"].as_str()), (1010, Some("CodeMismatch")));
    let propose = |genesis_args: Value| {
        json!({ "machine": "tictactoe", "participants": [xa, ob], "deposits": ["1000", "1000"],
                "genesis": { "function": "initialState", "args": genesis_args }, "timing": { "p2p": 30, "agreement": 10, "fallback": 60, "challenge": 120 } })
    };
    assert_eq!(
        code_of(
            a.call("proposal_make", propose(json!([xa, ob])))
                .await
                .unwrap_err()
        )
        .0,
        1005
    );
    assert_eq!(
        code_of(
            a.call("proposal_make", propose(json!([xa, "bob", "1000"])))
                .await
                .unwrap_err()
        )
        .0,
        1005
    );

    // -------------------------------------------------------------- the game
    let mut node_b = b
        .subscribe("node_subscribe", json!({}), "node_unsubscribe")
        .await
        .unwrap();
    let id = a
        .call("proposal_make", propose(json!([xa, ob, "1000"])))
        .await
        .unwrap()["channel_id"]
        .clone();
    let note = tokio::time::timeout(WAIT, node_b.next())
        .await
        .expect("no proposal notification")
        .unwrap()
        .unwrap();
    assert_eq!(note["Proposal"]["channel_id"], id, "{note}");
    assert_eq!(
        note["Proposal"]["from"].as_str().map(str::to_lowercase),
        Some(xa.to_lowercase())
    );
    let listed = b.call("proposal_list", json!({})).await.unwrap();
    assert_eq!(listed[0]["machine"], json!("tictactoe"));
    drop(node_b);
    let mut sa = a
        .subscribe(
            "channel_subscribe",
            json!({ "channel_id": id }),
            "channel_unsubscribe",
        )
        .await
        .unwrap();
    b.call("proposal_accept", json!({ "channel_id": id }))
        .await
        .unwrap();
    let mut sb = b
        .subscribe(
            "channel_subscribe",
            json!({ "channel_id": id }),
            "channel_unsubscribe",
        )
        .await
        .unwrap();
    let (mut seen_a, mut seen_b) = (Vec::new(), Vec::new());
    until(&mut sa, &mut seen_a, "live (alice)", |e| e.get("Live").is_some()).await;
    until(&mut sb, &mut seen_b, "live (bob)", |e| e.get("Live").is_some()).await;

    let play = |cell: u64| json!({ "channel_id": id, "function": "play", "args": [cell] });
    // a move out of turn, a wrong argument, a function the machine lacks
    assert_eq!(
        code_of(b.call("channel_call", play(4)).await.unwrap_err()).0,
        1006
    );
    assert_eq!(
        code_of(
            a.call(
                "channel_call",
                json!({ "channel_id": id, "function": "play", "args": ["x"] })
            )
            .await
            .unwrap_err()
        )
        .0,
        1005
    );
    assert_eq!(
        code_of(
            a.call(
                "channel_call",
                json!({ "channel_id": id, "function": "fly", "args": [] })
            )
            .await
            .unwrap_err()
        )
        .0,
        1004
    );

    a.call("channel_call", play(0)).await.unwrap();
    until(&mut sb, &mut seen_b, "move 1 at bob", applied(1)).await;
    b.call("channel_call", play(3)).await.unwrap();
    until(&mut sa, &mut seen_a, "move 2 at alice", applied(2)).await;
    // this move through the command line, waiting until it is final (signed by both)
    let cli = entente()
        .arg("--home")
        .arg(&alice_home)
        .args([
            "call",
            id.as_str().unwrap(),
            "play",
            "1",
            "--wait",
            "60",
            "--api",
            &alice.url,
        ])
        .output()
        .unwrap();
    assert!(ok(cli).contains("final height=3"));
    until(&mut sb, &mut seen_b, "move 3 at bob", applied(3)).await;

    // bob's daemon dies (SIGKILL) and comes back; bob resumes its subscription after the last
    // event it saw
    let last_b = seen_b.last().unwrap()["seq"].as_u64().unwrap();
    drop(sb);
    drop(b);
    bob.kill();
    bob = Daemon::start(&bob_home);
    b = bob.client().await;
    let mut sb = b
        .subscribe(
            "channel_subscribe",
            json!({ "channel_id": id, "from": last_b + 1 }),
            "channel_unsubscribe",
        )
        .await
        .unwrap();
    let view = b
        .call("channel_view", json!({ "channel_id": id, "function": "getGame" }))
        .await
        .unwrap();
    assert_eq!(view["board"], json!([1, 1, 0, 2, 0, 0, 0, 0, 0]), "{view}");

    b.call("channel_call", play(4)).await.unwrap();
    until(&mut sa, &mut seen_a, "move 4 at alice", applied(4)).await;
    a.call("channel_call", play(2)).await.unwrap();
    until(&mut sa, &mut seen_a, "alice's payout", |e| {
        e.get("Withdrawn").is_some()
    })
    .await;
    until(&mut sb, &mut seen_b, "the settlement at bob", |e| {
        e["Chain"].get("ChannelClosed").is_some()
    })
    .await;

    // no event lost or repeated across bob's restart: sequence numbers run on without a gap, and
    // every height's Applied is among them
    let seqs: Vec<u64> = seen_b.iter().map(|n| n["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "bob's events have a gap: {seqs:?}"
    );
    for h in 1..=5u64 {
        assert!(
            seen_b.iter().any(|n| applied(h)(&n["event"])),
            "bob never saw height {h}"
        );
    }
    let got = a
        .call("channel_withdrawal", json!({ "channel_id": id, "wait": 60 }))
        .await
        .unwrap();
    assert_eq!(got["withdrawn"], json!(["0x7d0"]), "{got}");
    let lost = b
        .call("channel_withdrawal", json!({ "channel_id": id }))
        .await
        .unwrap();
    assert_eq!(
        (lost["withdrawn"].clone(), lost["phase"].clone()),
        (json!([]), json!("Closed")),
        "{lost}"
    );
    let withdrawn = seen_a
        .iter()
        .find_map(|n| n["event"]["Withdrawn"]["amount"].as_str().map(str::to_string))
        .unwrap();
    let info = a.call("channel_info", json!({ "channel_id": id })).await.unwrap();
    let exits = info["exits"].as_array().unwrap();
    assert_eq!(
        exits[0]["amount"],
        json!(withdrawn),
        "alice withdrew her exit: {info}"
    );
    assert_eq!(
        u128::from_str_radix(withdrawn.trim_start_matches("0x"), 16)
            .ok()
            .or(withdrawn.parse().ok()),
        Some(2000),
        "the winner takes both stakes"
    );
    assert_eq!(
        exits[1]["amount"]
            .as_str()
            .map(|s| s.trim_start_matches("0x").trim_start_matches('0').is_empty()),
        Some(true),
        "{info}"
    );
}

#[test]
fn a_daemon_without_its_password_or_its_manager_does_not_start_and_says_why() {
    let anvil = Anvil::spawn().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    let nowhere = "0x00000000000000000000000000000000000000AA";
    init(
        &home,
        &format!("{}", anvil.keys()[2]),
        &anvil.endpoint(),
        Some(nowhere),
        free_port(),
        None,
    );
    let run = |password: &str| {
        let out = entente()
            .env("ENTENTE_PASSWORD", password)
            .arg("--home")
            .arg(&home)
            .arg("node")
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8(out.stderr).unwrap()
    };
    let e = run("not the password");
    assert!(e.contains("wrong password"), "{e}");
    let e = run("test password");
    assert!(e.contains("no contract at chain.manager"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_daemon_serves_several_accounts_each_with_its_own_key_and_channels() {
    let anvil = Anvil::spawn().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    init(
        &home,
        &format!("{}", anvil.keys()[3]),
        &anvil.endpoint(),
        None,
        free_port(),
        None,
    );
    ok(entente()
        .arg("--home")
        .arg(&home)
        .args(["deploy", "--machine", "tictactoe"])
        .output()
        .unwrap());
    // a second account with a key file of its own and its own password file
    let pw = dir.path().join("carol-password");
    std::fs::write(&pw, "carol's own").unwrap();
    let mut add = entente()
        .arg("--home")
        .arg(&home)
        .arg("--password-file")
        .arg(&pw)
        .args(["account", "new", "carol", "--import-key-stdin", "--light-kdf"])
        .args(["--listen", &format!("/ip4/127.0.0.1/tcp/{}", free_port())])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(format!("{}\n", anvil.keys()[4]).as_bytes())
        .unwrap();
    ok(add.wait_with_output().unwrap());
    // the daemon opens each key file with its own password: carol's from its file
    let config = home.join("entente.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace(
        "name = \"carol\"",
        &format!("name = \"carol\"\npassword_file = \"{}\"", pw.display()),
    );
    std::fs::write(&config, text).unwrap();
    let daemon = Daemon::start(&home);
    let c = daemon.client().await;
    let sessions = c.call("session_list", json!({})).await.unwrap();
    let names: Vec<&str> = sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["account"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["carol", "player"]);
    assert_ne!(sessions[0]["address"], sessions[1]["address"]);
    assert_ne!(sessions[0]["peer_id"], sessions[1]["peer_id"]);
    // with several accounts, a request names one
    assert_eq!(
        code_of(c.call("channel_list", json!({})).await.unwrap_err()).0,
        1001
    );
    assert_eq!(
        c.call("channel_list", json!({ "account": "carol" }))
            .await
            .unwrap(),
        json!([])
    );
    // a channel proposed by one account is that account's, and the other is invited to it
    let (p, q) = (sessions[1]["address"].clone(), sessions[0]["address"].clone());
    // the two nodes find each other as any two nodes do: through an address in the book
    let player_at = format!(
        "{}/p2p/{}",
        sessions[1]["listen"][0].as_str().unwrap(),
        sessions[1]["peer_id"].as_str().unwrap()
    );
    c.call("peer_add", json!({ "account": "carol", "address": player_at }))
        .await
        .unwrap();
    let mut carol_events = c
        .subscribe(
            "node_subscribe",
            json!({ "account": "carol" }),
            "node_unsubscribe",
        )
        .await
        .unwrap();
    let made = c
        .call(
            "proposal_make",
            json!({ "account": "player", "machine": "tictactoe", "participants": [p, q], "deposits": ["1", "1"],
                    "genesis": { "function": "initialState", "args": [p, q, "1"] } }),
        )
        .await
        .unwrap();
    let note = tokio::time::timeout(WAIT, carol_events.next())
        .await
        .expect("carol was not invited")
        .unwrap()
        .unwrap();
    assert_eq!(note["Proposal"]["channel_id"], made["channel_id"]);
    let mine = c
        .call("channel_list", json!({ "account": "player" }))
        .await
        .unwrap();
    assert_eq!(mine[0]["channel_id"], made["channel_id"]);
    assert_eq!(
        c.call("channel_list", json!({ "account": "carol" }))
            .await
            .unwrap(),
        json!([])
    );
    assert_eq!(
        c.call("proposal_list", json!({ "account": "carol" }))
            .await
            .unwrap()[0]["channel_id"],
        made["channel_id"]
    );
}

#[test]
fn a_daemon_started_before_its_chain_waits_for_it_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    let port = free_port();
    let rpc = format!("http://127.0.0.1:{port}");
    // a dev key of anvil; the chain comes up only later
    let key = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";
    init(
        &home,
        key,
        &rpc,
        Some("0x00000000000000000000000000000000000000AA"),
        free_port(),
        None,
    );
    let mut node = entente()
        .arg("--home")
        .arg(&home)
        .arg("node")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(node.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(
        first.starts_with(&format!("waiting for the chain at {rpc}")),
        "{first}"
    );
    let _anvil = entente_chain::AnvilBuilder::default().port(port).spawn().unwrap();
    // it goes on once the chain answers: here to find no manager there
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(!node.wait().unwrap().success());
    assert!(rest.iter().any(|l| l.contains("chain id")), "{rest:?}");
    assert!(
        rest.iter().any(|l| l.contains("no contract at chain.manager")),
        "{rest:?}"
    );
}
