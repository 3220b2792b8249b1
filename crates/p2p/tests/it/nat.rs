//! NAT traversal for real: Linux network namespaces, two NAT routers (iptables MASQUERADE), a
//! public relay/bootstrap node, and one peer behind each NAT. The peers find each other through
//! the relay's DHT, connect through its circuit, and DCUtR must upgrade them to a direct
//! connection that then carries channel messages.
//!
//! ```text
//!            ns pub: br0 10.200.0.1 (relay + bootstrap)
//!              |                         |
//!   10.200.0.11 wan  ns ra        10.200.0.12 wan  ns rb     (MASQUERADE, drop NEW on wan)
//!   10.201.1.1  lan               10.201.2.1  lan
//!              |                         |
//!   10.201.1.2  ns a (peer A)     10.201.2.2  ns b (peer B)
//! ```
//!
//! Needs root, `ip netns` and iptables; otherwise it prints why and passes without running.
//! The peers run as separate processes of the crate's `entente-p2p-node` binary inside
//! `ip netns exec`; the test reads their JSON events with timeouts.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use entente_p2p::{eth_address_of, peer_id_of_secret};
use entente_types::{Address, B256};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;
use tokio::time::timeout;

use crate::util::key;

const NODE_BIN: &str = env!("CARGO_BIN_EXE_entente-p2p-node");
const STEP: Duration = Duration::from_secs(30);

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Why the lab cannot run here, if it cannot.
fn cannot_run() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not running as root (network namespaces and iptables need root)".into());
    }
    if run(&["iptables", "--version"]).is_err() {
        return Some("iptables is not installed (scripts/install-system-deps installs it)".into());
    }
    let probe = format!("ep2p-probe-{}", std::process::id());
    if let Err(e) = run(&["ip", "netns", "add", &probe]) {
        return Some(format!("`ip netns add` is not permitted here: {e}"));
    }
    let iptables = run(&["ip", "netns", "exec", &probe, "iptables", "-t", "nat", "-L", "-n"]);
    let _ = run(&["ip", "netns", "del", &probe]);
    if let Err(e) = iptables {
        return Some(format!("iptables does not work in a network namespace: {e}"));
    }
    None
}

/// The namespaces of one run, deleted on drop (even when the test fails).
struct Lab {
    namespaces: Vec<String>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = run(&["ip", "netns", "del", ns]);
        }
    }
}

impl Lab {
    fn ns(&self, i: usize) -> &str {
        &self.namespaces[i]
    }

    /// Runs `ip` inside namespace `i`.
    fn ip(&self, i: usize, args: &str) -> Result<(), String> {
        let mut all = vec!["ip", "-n", self.ns(i)];
        all.extend(args.split_whitespace());
        run(&all)
    }

    fn exec(&self, i: usize, args: &str) -> Result<(), String> {
        let mut all = vec!["ip", "netns", "exec", self.ns(i)];
        all.extend(args.split_whitespace());
        run(&all)
    }

    /// Deletes namespaces left by runs that were killed before their guard could run
    /// (their names carry the pid of a process that no longer exists).
    fn sweep_stale() {
        let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
            return;
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some(name) = line.split_whitespace().next() else {
                continue;
            };
            let Some(tag) = name.strip_prefix("ep2p-") else {
                continue;
            };
            let pid = tag.split('-').nth(1).and_then(|p| p.parse::<u32>().ok());
            if let Some(pid) = pid
                && !std::path::Path::new(&format!("/proc/{pid}")).exists()
            {
                let _ = run(&["ip", "netns", "del", name]);
            }
        }
    }

    /// Builds the topology; `random_fully` makes both NATs symmetric.
    fn build(random_fully: bool) -> Result<Lab, String> {
        Self::sweep_stale();
        static RUN: AtomicU32 = AtomicU32::new(0);
        let tag = format!("{}-{}", std::process::id(), RUN.fetch_add(1, Ordering::Relaxed));
        let lab = Lab {
            namespaces: ["pub", "ra", "rb", "a", "b"]
                .iter()
                .map(|n| format!("ep2p-{n}-{tag}"))
                .collect(),
        };
        for ns in &lab.namespaces {
            run(&["ip", "netns", "add", ns])?;
        }
        const PUB: usize = 0;
        lab.ip(PUB, "link set lo up")?;
        lab.ip(PUB, "link add br0 type bridge")?;
        lab.ip(PUB, "addr add 10.200.0.1/24 dev br0")?;
        lab.ip(PUB, "link set br0 up")?;
        for (router, lan, side) in [(1usize, 3usize, 1u8), (2, 4, 2)] {
            // WAN: a veth from the router to the public bridge (created inside the namespaces,
            // never touching the host's network).
            lab.ip(
                PUB,
                &format!(
                    "link add wan{side} type veth peer name wan netns {}",
                    lab.ns(router)
                ),
            )?;
            lab.ip(PUB, &format!("link set wan{side} master br0"))?;
            lab.ip(PUB, &format!("link set wan{side} up"))?;
            lab.ip(router, "link set lo up")?;
            lab.ip(router, &format!("addr add 10.200.0.1{side}/24 dev wan"))?;
            lab.ip(router, "link set wan up")?;
            // LAN: a veth from the router to the private peer.
            lab.ip(
                router,
                &format!("link add lan type veth peer name eth0 netns {}", lab.ns(lan)),
            )?;
            lab.ip(router, &format!("addr add 10.201.{side}.1/24 dev lan"))?;
            lab.ip(router, "link set lan up")?;
            lab.ip(lan, "link set lo up")?;
            lab.ip(lan, &format!("addr add 10.201.{side}.2/24 dev eth0"))?;
            lab.ip(lan, "link set eth0 up")?;
            lab.ip(lan, &format!("route add default via 10.201.{side}.1"))?;
            // NAT: forward LAN->WAN, established back, masquerade; drop unsolicited packets on
            // the WAN (otherwise an early punch packet gets a reset and the mapping moves).
            lab.exec(router, "sysctl -qw net.ipv4.ip_forward=1")?;
            lab.exec(router, "iptables -P FORWARD DROP")?;
            lab.exec(router, "iptables -A FORWARD -i lan -o wan -j ACCEPT")?;
            lab.exec(
                router,
                "iptables -A FORWARD -i wan -o lan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
            )?;
            let masquerade = if random_fully {
                "iptables -t nat -A POSTROUTING -o wan -j MASQUERADE --random-fully"
            } else {
                "iptables -t nat -A POSTROUTING -o wan -j MASQUERADE"
            };
            lab.exec(router, masquerade)?;
            lab.exec(
                router,
                "iptables -A INPUT -i wan -m conntrack --ctstate NEW,INVALID -j DROP",
            )?;
        }
        Ok(lab)
    }
}

/// One node process and the JSON events it printed.
struct Proc {
    name: &'static str,
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<Value>,
    seen: Vec<Value>,
    log: std::path::PathBuf,
}

impl Proc {
    fn spawn(name: &'static str, ns: &str, args: &[String], log_dir: &std::path::Path) -> Proc {
        let log = log_dir.join(format!("{name}.log"));
        let stderr = std::fs::File::create(&log).unwrap();
        let mut child = tokio::process::Command::new("ip")
            .args(["netns", "exec", ns, NODE_BIN])
            .args(args)
            .env(
                "ENTENTE_LOG",
                "entente::p2p=debug,libp2p_dcutr=debug,libp2p_relay=info",
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        let (tx, lines) = mpsc::channel(1024);
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if let Ok(value) = serde_json::from_str::<Value>(&line)
                    && tx.send(value).await.is_err()
                {
                    break;
                }
            }
        });
        Proc {
            name,
            child,
            stdin,
            lines,
            seen: Vec::new(),
            log,
        }
    }

    async fn wait(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(v) = self.seen.iter().find(|v| pred(v)) {
            return v.clone();
        }
        let found = timeout(STEP, async {
            while let Some(v) = self.lines.recv().await {
                self.seen.push(v.clone());
                if pred(&v) {
                    return Some(v);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(v)) => v,
            Ok(None) => panic!(
                "{}: process ended while waiting for {what}\n{}",
                self.name,
                self.report()
            ),
            Err(_) => panic!("{}: timed out waiting for {what}\n{}", self.name, self.report()),
        }
    }

    fn report(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log
            .lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("events: {:#?}\nlog tail:\n{}", self.seen, tail.join("\n"))
    }

    async fn command(&mut self, line: String) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn hex(b: &B256) -> String {
    format!("{b:#x}")
}

fn address_of(secret: &B256) -> Address {
    eth_address_of(&peer_id_of_secret(secret).unwrap()).unwrap()
}

fn is(event: &Value, kind: &str) -> bool {
    event["event"] == kind
}

fn same_address(value: &Value, address: &Address) -> bool {
    value.as_str().and_then(|s| s.parse::<Address>().ok()) == Some(*address)
}

struct Peers {
    a: Proc,
    b: Proc,
    relay: Proc,
    addr_a: Address,
    addr_b: Address,
}

/// Starts the relay in the public namespace and a peer in each LAN. A short connection
/// timeout keeps DCUtR's three attempts short when they cannot succeed.
async fn start(lab: &Lab, log_dir: &std::path::Path) -> Peers {
    let (relay_key, key_a, key_b) = (key(100), key(101), key(102));
    let relay_peer = peer_id_of_secret(&relay_key).unwrap();
    let relay_addr = format!("/ip4/10.200.0.1/tcp/4001/p2p/{relay_peer}");
    let mut relay = Proc::spawn(
        "relay",
        lab.ns(0),
        &[
            "--key".into(),
            hex(&relay_key),
            "--listen".into(),
            "/ip4/10.200.0.1/tcp/4001".into(),
            "--relay-server".into(),
            "--public".into(),
        ],
        log_dir,
    );
    relay.wait("relay listening", |e| is(e, "listening")).await;
    let channel = B256::repeat_byte(0x7a);
    let (addr_a, addr_b) = (address_of(&key_a), address_of(&key_b));
    let peer_args = |secret: &B256| -> Vec<String> {
        vec![
            "--key".into(),
            hex(secret),
            "--listen".into(),
            "/ip4/0.0.0.0/tcp/0".into(),
            "--connection-timeout-ms".into(),
            "2000".into(),
            "--bootstrap".into(),
            relay_addr.clone(),
            "--relay".into(),
            relay_addr.clone(),
            "--channel".into(),
            hex(&channel),
            "--participant".into(),
            format!("{addr_a:#x}"),
            "--participant".into(),
            format!("{addr_b:#x}"),
        ]
    };
    let a = Proc::spawn("peer-a", lab.ns(3), &peer_args(&key_a), log_dir);
    let b = Proc::spawn("peer-b", lab.ns(4), &peer_args(&key_b), log_dir);
    Peers {
        a,
        b,
        relay,
        addr_a,
        addr_b,
    }
}

fn log_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("entente-nat-").tempdir().unwrap()
}

/// Waits (bounded) for an event matching `pred` from either of two processes.
async fn wait_either(a: &mut Proc, b: &mut Proc, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    if let Some(v) = a.seen.iter().chain(b.seen.iter()).find(|v| pred(v)) {
        return v.clone();
    }
    let found = timeout(STEP, async {
        loop {
            let v = tokio::select! {
                v = a.lines.recv() => v.inspect(|v| a.seen.push(v.clone())),
                v = b.lines.recv() => v.inspect(|v| b.seen.push(v.clone())),
            };
            match v {
                Some(v) if pred(&v) => return Some(v),
                Some(_) => {}
                None => return None,
            }
        }
    })
    .await;
    match found {
        Ok(Some(v)) => v,
        _ => panic!("timed out waiting for {what}\n{}\n{}", a.report(), b.report()),
    }
}

/// Sends `height` from one peer to another and checks it arrived over the expected path.
async fn exchange(from: &mut Proc, to: &mut Proc, to_addr: &Address, height: u64, via: &str) {
    from.command(format!(
        r#"{{"op":"send","to":"{to_addr:#x}","height":{height}}}"#
    ))
    .await;
    let sent = from
        .wait("send outcome", |e| is(e, "sent") && e["height"] == height)
        .await;
    assert_eq!(
        sent["ok"],
        true,
        "{}: send failed: {sent}\n{}",
        from.name,
        from.report()
    );
    let got = to
        .wait("the message", |e| is(e, "message") && e["height"] == height)
        .await;
    assert_eq!(
        got["via"],
        via,
        "{}: message came {}\n{}",
        to.name,
        got["via"],
        to.report()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_behind_two_nats_are_upgraded_to_a_direct_connection_by_dcutr() {
    if let Some(reason) = cannot_run() {
        eprintln!("SKIPPED NAT traversal test: {reason}");
        return;
    }
    let lab = Lab::build(false).unwrap_or_else(|e| panic!("cannot build the NAT lab: {e}"));
    let logs = log_dir();
    let Peers {
        mut a,
        mut b,
        relay: _relay,
        addr_a,
        addr_b,
    } = start(&lab, logs.path()).await;
    let started = Instant::now();

    // Both reserve a slot on the relay and find each other through its DHT.
    a.wait("relay reservation", |e| is(e, "reservation")).await;
    b.wait("relay reservation", |e| is(e, "reservation")).await;
    a.wait("B found", |e| {
        is(e, "found") && same_address(&e["address"], &addr_b)
    })
    .await;
    b.wait("A found", |e| {
        is(e, "found") && same_address(&e["address"], &addr_a)
    })
    .await;
    let found = started.elapsed();

    // They meet through the relay, then DCUtR punches a direct connection.
    let relayed = |e: &Value| is(e, "connected") && e["kind"] == "relayed";
    let (mut first, mut second, second_addr) = if addr_a < addr_b {
        (a, b, addr_b)
    } else {
        (b, a, addr_a)
    };
    first.wait("relayed connection", |e| relayed(e)).await;
    let upgraded = first.wait("DCUtR upgrade", |e| is(e, "upgraded")).await;
    let direct = |e: &Value| {
        is(e, "connected") && e["kind"] == "direct" && !e["remote"].to_string().contains("10.200.0.1/")
    };
    let first_direct = first.wait("direct connection", |e| direct(e)).await;
    let second_direct = second.wait("direct connection", |e| direct(e)).await;
    // Each side sees the other's NAT (router WAN address), never a private LAN address.
    for seen in [&first_direct, &second_direct] {
        let remote = seen["remote"].as_str().unwrap_or_default();
        assert!(
            remote.starts_with("/ip4/10.200.0.1"),
            "direct connection to {remote}?"
        );
    }
    let upgraded_after = started.elapsed();

    // Channel messages both ways over the direct connection.
    let first_addr = if second_addr == addr_b { addr_a } else { addr_b };
    exchange(&mut first, &mut second, &second_addr, 1, "direct").await;
    exchange(&mut second, &mut first, &first_addr, 2, "direct").await;
    eprintln!(
        "NAT test: participants found in {found:?}; DCUtR upgrade {} µs after the relayed connection; \
         direct connection at {upgraded_after:?} ({} <-> {}); messages exchanged directly at {:?}",
        upgraded["after_us"],
        first_direct["remote"],
        second_direct["remote"],
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symmetric_nats_stay_relayed_and_messages_still_flow() {
    if let Some(reason) = cannot_run() {
        eprintln!("SKIPPED symmetric NAT test: {reason}");
        return;
    }
    let lab = Lab::build(true).unwrap_or_else(|e| panic!("cannot build the NAT lab: {e}"));
    let logs = log_dir();
    let Peers {
        mut a,
        mut b,
        relay: _relay,
        addr_a,
        addr_b,
    } = start(&lab, logs.path()).await;
    a.wait("B found", |e| {
        is(e, "found") && same_address(&e["address"], &addr_b)
    })
    .await;
    b.wait("A found", |e| {
        is(e, "found") && same_address(&e["address"], &addr_a)
    })
    .await;
    let relayed = |e: &Value| is(e, "connected") && e["kind"] == "relayed";
    a.wait("relayed connection", |e| relayed(e)).await;
    b.wait("relayed connection", |e| relayed(e)).await;
    // Messages flow through the relay whatever the hole punch does.
    exchange(&mut a, &mut b, &addr_b, 1, "relayed").await;
    exchange(&mut b, &mut a, &addr_a, 2, "relayed").await;
    // With both mappings randomised, hole punching must fail (DCUtR reports it on either side).
    let started = Instant::now();
    let outcome = wait_either(&mut a, &mut b, "hole punch outcome", |e| {
        is(e, "hole_punch_failed") || is(e, "upgraded")
    })
    .await;
    assert!(
        is(&outcome, "hole_punch_failed"),
        "hole punching succeeded through symmetric NATs: {outcome}"
    );
    eprintln!(
        "symmetric NAT test: DCUtR gave up after {:?}: {}",
        started.elapsed(),
        outcome["reason"]
    );
    exchange(&mut a, &mut b, &addr_b, 3, "relayed").await;
}
