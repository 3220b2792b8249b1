//! Many idle channels per node: two real nodes open `channels` RoundRobinCounter channels
//! between them on anvil (each node a party to all), stop, and start again, each in a process of
//! its own (`entente-bench idle-node`), from its data directory. Reported per node: the time to
//! start again (store opened, every channel restored, network up), its resident memory, and the
//! CPU it uses while nothing happens (chain polling, network keep-alives, timers), over a window.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use entente_contracts::{RoundRobinCounter, artifacts};
use entente_node::{MachineSource, Node, NodeConfig, ProposalBuilder};
use entente_types::{AgreementMode, B256, U256};

/// One node of the idle run, started again in its own process.
#[derive(Debug, Clone)]
pub struct IdleNode {
    /// Seconds from the process's start until the node was running with every channel restored.
    pub restart: Duration,
    /// Resident memory at the end of the window (VmRSS), bytes.
    pub rss: u64,
    /// CPU used over the window, as a fraction of one core.
    pub idle_cpu: f64,
    /// CPU used over a second window in which the chain makes a block every `block_every`, as a
    /// fraction of one core (`None`: not measured).
    pub blocks_cpu: Option<f64>,
    /// Channels it restored.
    pub channels: usize,
}

/// What the idle run measured.
#[derive(Debug, Clone)]
pub struct IdleReport {
    /// Channels between the two nodes.
    pub channels: usize,
    /// Time to open them all.
    pub open: Duration,
    /// Length of the idle window.
    pub window: Duration,
    /// The chain's block interval in the second window (`None`: no second window).
    pub block_every: Option<Duration>,
    /// The two nodes.
    pub nodes: Vec<IdleNode>,
}

/// Opens `channels` channels between two nodes, stops them, starts each again as a child process
/// (`exe idle-node ...`) and measures it over `window`; then, with `block_every`, over a second
/// `window` in which the chain makes a block at that interval (anvil makes blocks only for
/// transactions, so the first window has none; a real chain makes them all the time).
#[allow(clippy::disallowed_methods)] // a benchmark reads the wall clock
pub async fn run(
    channels: usize,
    window: Duration,
    block_every: Option<Duration>,
    data: &Path,
    exe: &Path,
) -> Result<IdleReport> {
    let crate::p2p::Cluster {
        nodes,
        machine,
        manager,
        _anvil: anvil,
    } = crate::p2p::cluster(2, data).await?;
    let t0 = std::time::Instant::now();
    open_many(&nodes, machine, channels).await?;
    let open = t0.elapsed();
    drop(nodes);

    let keys = anvil.keys();
    let mut children: Vec<Running> = Vec::new();
    let mut bootstrap: Option<String> = None;
    for i in 0..2 {
        let mut command = Command::new(exe);
        command
            .arg("idle-node")
            .arg(data.join(format!("node{i}")))
            .arg(format!("{}", keys[i + 1]))
            .arg(anvil.endpoint())
            .arg(manager.to_string());
        if let Some(b) = &bootstrap {
            command.arg(b);
        }
        let child = Running::spawn(command)?;
        bootstrap.get_or_insert_with(|| child.listen.clone());
        children.push(child);
    }
    // Let the start-up settle (connections, the first chain polls), then measure.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before: Vec<u64> = children
        .iter()
        .map(|c| cpu_ticks(c.child.id()))
        .collect::<Result<_>>()?;
    let w0 = std::time::Instant::now();
    tokio::time::sleep(window).await;
    let elapsed = w0.elapsed();
    let ticks = clock_ticks();
    let mut out = Vec::new();
    let mut after = Vec::new();
    for (child, before) in children.iter_mut().zip(before) {
        let now = cpu_ticks(child.child.id())?;
        after.push(now);
        let used = now.saturating_sub(before) as f64 / ticks;
        out.push(IdleNode {
            restart: child.restart,
            rss: rss(child.child.id())?,
            idle_cpu: used / elapsed.as_secs_f64(),
            blocks_cpu: None,
            channels: child.channels,
        });
    }
    if let Some(every) = block_every {
        // A block every `every` from anvil's first account, measured over a second window.
        let client = entente_chain::ChainClient::connect(&anvil.endpoint(), anvil.signer(0)?).await?;
        let w1 = std::time::Instant::now();
        let mut blocks = 0u64;
        while w1.elapsed() < window {
            client.dev_mine().await?;
            blocks += 1;
            tokio::time::sleep(every).await;
        }
        let elapsed = w1.elapsed();
        for ((child, before), node) in children.iter_mut().zip(after).zip(&mut out) {
            let used = cpu_ticks(child.child.id())?.saturating_sub(before) as f64 / ticks;
            node.blocks_cpu = Some(used / elapsed.as_secs_f64());
            node.rss = node.rss.max(rss(child.child.id())?);
        }
        let _ = writeln!(
            std::io::stderr(),
            "{blocks} blocks in {:.0} s",
            elapsed.as_secs_f64()
        );
    }
    drop(children);
    drop(anvil);
    Ok(IdleReport {
        channels,
        open,
        window: elapsed,
        block_every,
        nodes: out,
    })
}

/// Opens `count` channels, node 0 proposing and node 1 accepting, as many at a time as a node
/// keeps invitations from one sender. Their windows are a day long: nobody moves, and nobody
/// is late for a day.
async fn open_many(nodes: &[Node], machine: entente_types::Address, count: usize) -> Result<()> {
    let (a, b) = (nodes[0].clone(), nodes[1].clone());
    let code = MachineSource::ArtifactJson(artifacts::ROUND_ROBIN_COUNTER.to_string());
    // Node 1 accepts every proposal it receives.
    let accept_code = code.clone();
    let acceptor = tokio::spawn(async move {
        let mut accepting = tokio::task::JoinSet::new();
        // A proposer sends its proposal again until it is accepted: accept each channel once.
        let mut seen = std::collections::HashSet::new();
        while seen.len() < count {
            let (_, p) = b.next_proposal(Duration::from_secs(600)).await?;
            if !seen.insert(p.channel_id) {
                continue;
            }
            let (b, code) = (b.clone(), accept_code.clone());
            accepting.spawn(async move {
                let ch = b.accept(p.channel_id, code).await?;
                ch.wait_live(Duration::from_secs(600)).await?;
                Ok::<_, anyhow::Error>(())
            });
            while let Some(r) = accepting.try_join_next() {
                r.map_err(|e| anyhow!("an accept task: {e}"))??;
            }
        }
        while let Some(r) = accepting.join_next().await {
            r.map_err(|e| anyhow!("an accept task: {e}"))??;
        }
        Ok::<_, anyhow::Error>(())
    });
    let participants = vec![a.address(), nodes[1].address()];
    let deposits = vec![U256::from(1_000u64); 2];
    let gate = Arc::new(tokio::sync::Semaphore::new(
        entente_channel::ProposalPolicy::default().per_sender,
    ));
    let day = 24 * 3600;
    let timing = entente_types::Timing {
        p2p_time: day,
        agreement_time: day,
        chain_fallback_time: day,
        challenge_time: day,
    };
    let mut proposing = tokio::task::JoinSet::new();
    for c in 0..count {
        let permit = gate.clone().acquire_owned().await?;
        let (a, code, participants, deposits) =
            (a.clone(), code.clone(), participants.clone(), deposits.clone());
        if c % 100 == 0 {
            let _ = writeln!(std::io::stderr(), "opening channel {c} of {count}");
        }
        proposing.spawn(async move {
            let _permit = permit;
            let proposal = ProposalBuilder::new(machine, participants.clone(), deposits.clone())
                .agreement_mode(AgreementMode::ExplicitConfirmations)
                .timing(timing)
                .salt(entente_types::keccak256(format!("idle {c}")))
                .build(
                    &a,
                    &code,
                    &RoundRobinCounter::initialStateCall {
                        participants,
                        deposits,
                        target: u64::MAX,
                    },
                )
                .await?;
            let ch = a.propose(proposal, code).await?;
            ch.wait_live(Duration::from_secs(600)).await?;
            Ok::<_, anyhow::Error>(())
        });
        while let Some(r) = proposing.try_join_next() {
            r.map_err(|e| anyhow!("a propose task: {e}"))??;
        }
    }
    while let Some(r) = proposing.join_next().await {
        r.map_err(|e| anyhow!("a propose task: {e}"))??;
    }
    acceptor.await.map_err(|e| anyhow!("the acceptor: {e}"))??;
    Ok(())
}

/// A node started again in a child process.
struct Running {
    child: Child,
    listen: String,
    restart: Duration,
    channels: usize,
}

impl Running {
    fn spawn(mut command: Command) -> Result<Self> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting an idle node")?;
        let stdout = child.stdout.take().context("the idle node's output")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = lines
            .next()
            .context("the idle node ended before it was ready")??;
        // "ready <restart µs> <channels> <listen address>"
        let mut words = line.split_whitespace();
        if words.next() != Some("ready") {
            bail!("the idle node said {line:?}");
        }
        let restart = Duration::from_micros(words.next().context("restart time")?.parse()?);
        let channels = words.next().context("channels")?.parse()?;
        let listen = words.next().context("listen address")?.to_string();
        Ok(Self {
            child,
            listen,
            restart,
            channels,
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Closing its input stops it; make sure.
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn proc_file(pid: u32, name: &str) -> Result<String> {
    std::fs::read_to_string(format!("/proc/{pid}/{name}")).with_context(|| format!("/proc/{pid}/{name}"))
}

/// utime + stime of process `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = proc_file(pid, "stat")?;
    // The command name (field 2) may hold spaces: count from after its closing parenthesis.
    let rest = stat.rsplit_once(')').context("/proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the whole line are the 12th and 13th after the name.
    let utime: u64 = fields.get(11).context("utime")?.parse()?;
    let stime: u64 = fields.get(12).context("stime")?.parse()?;
    Ok(utime + stime)
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf reads a constant of the system.
    #[allow(unsafe_code)]
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// Resident memory of process `pid`, bytes.
fn rss(pid: u32) -> Result<u64> {
    let status = proc_file(pid, "status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("VmRSS")?;
    let kib: u64 = line.split_whitespace().nth(1).context("VmRSS value")?.parse()?;
    Ok(kib * 1024)
}

/// The child side: starts the node of `data` and says when it is ready; runs until its input
/// closes. Arguments: data directory, secret key, RPC endpoint, manager, optional bootstrap.
#[allow(clippy::disallowed_methods)] // a benchmark reads the wall clock
pub fn node_process(args: Vec<String>) -> Result<()> {
    let [data, key, rpc, manager, rest @ ..] = args.as_slice() else {
        bail!("usage: entente-bench idle-node DATA KEY RPC MANAGER [BOOTSTRAP]");
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut config = NodeConfig::new(
            key.parse::<B256>().context("key")?,
            rpc.clone(),
            manager.parse().context("manager")?,
            PathBuf::from(data),
        );
        config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse()?];
        config.public = true;
        config.create_data_dir = false;
        if let Some(b) = rest.first() {
            config.bootstrap = vec![b.parse().context("bootstrap")?];
        }
        // The node that ran before in the parent may still be closing its store.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let (node, restart) = loop {
            let t0 = std::time::Instant::now();
            match Node::start(config.clone()).await {
                Ok(node) => break (node, t0.elapsed()),
                Err(entente_node::NodeError::Store(entente_store::StoreError::Locked { .. }))
                    if std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e).context("starting the node"),
            }
        };
        let channels = node.channels().await?.len();
        let listen = loop {
            let addrs = node.listen_addrs().await?;
            if let Some(a) = addrs.into_iter().find(|a| !a.to_string().ends_with("/tcp/0")) {
                break a
                    .with_p2p(node.peer_id())
                    .map_err(|_| anyhow!("listen address"))?;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "ready {} {channels} {listen}", restart.as_micros())?;
        stdout.flush()?;
        drop(stdout);
        // Until the parent closes our input.
        tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin()
                .read_line(&mut sink)
                .map(|n| n > 0)
                .unwrap_or(false)
            {}
        })
        .await?;
        drop(node);
        Ok(())
    })
}
