//! Payments between several Entente nodes on one machine, end to end: starts anvil (from
//! `node_modules`), deploys the StateChannelManager and the `Payments` machine, starts the nodes
//! (libp2p on loopback, each with its own data directory), opens one channel between all of them
//! with 1 ether each, and makes payments: anyone pays anyone at any time, a third of them from two
//! or three payers at the same moment. Nobody is obliged to write, so nobody is timed out; each
//! payment is a signed intent that the height's sequencer writes (docs/protocol.md, section 11).
//! Then one participant settles, the chain pays everyone out, and the program checks that the
//! payouts equal the payments' balances to the wei.
//!
//! ```text
//! payments [--nodes N] [--payments K] [--seed S] [--erc20]
//! ```
//!
//! `--erc20` runs the channel in an ERC20 token (`TestToken`, deployed and minted to the nodes)
//! instead of ether: each node gives the manager an allowance for its deposit before paying it.
//!
//! Prints the finality latency (from `call` until the height that applies the payment is final at
//! the payer), its p50 and p99, payments per second, the heights used, every chain call made, and
//! `ok` when every check held (exit status 1 otherwise).

#![allow(clippy::print_stdout)] // a command-line program
#![allow(clippy::disallowed_methods)] // Instant::now: wall time of the measured latencies

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use alloy_sol_types::SolCall;
use anyhow::{Context, Result, anyhow, bail};
use entente_chain::{Anvil, ChainClient};
use entente_contracts::{Payments, TestToken, artifacts};
use entente_node::{Channel, ChannelEvent, MachineSource, Multiaddr, Node, NodeConfig, ProposalBuilder};
use entente_types::{Address, Signer as _, U256};

const WAIT: Duration = Duration::from_secs(120);

struct Options {
    nodes: usize,
    payments: usize,
    seed: u64,
    erc20: bool,
}

fn usage() -> &'static str {
    "usage: payments [--nodes N (2-8, default 3)] [--payments K (default 1000)] [--seed S] [--erc20]"
}

fn parse() -> Result<Options> {
    let mut options = Options {
        nodes: 3,
        payments: 1000,
        seed: 1,
        erc20: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| anyhow!("{name} needs a value"));
        match arg.as_str() {
            "--nodes" => options.nodes = value("--nodes")?.parse().context("--nodes")?,
            "--payments" => options.payments = value("--payments")?.parse().context("--payments")?,
            "--seed" => options.seed = value("--seed")?.parse().context("--seed")?,
            "--erc20" => options.erc20 = true,
            "--help" | "-h" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            other => bail!("unknown option {other}\n{}", usage()),
        }
    }
    if !(2..=8).contains(&options.nodes) {
        bail!("--nodes must be 2 to 8\n{}", usage());
    }
    Ok(options)
}

/// xorshift64: the seeded choice of payers, payees and amounts.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn main() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(parse()?))
}

async fn listen_addr(node: &Node) -> Result<Multiaddr> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let addrs = node.listen_addrs().await?;
        if let Some(a) = addrs.into_iter().find(|a| !a.to_string().ends_with("/tcp/0")) {
            return a
                .with_p2p(node.peer_id())
                .map_err(|_| anyhow!("listen address with a PeerId"));
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the node does not listen");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Pays `amount` wei from `channel`'s node (`me`, whose `nonce`-th intent this is) to `to` and
/// waits until the height that applies it is final here; returns how long that took.
async fn pay(channel: Channel, me: Address, nonce: u64, to: Address, amount: u64) -> Result<Duration> {
    let started = Instant::now();
    let call = Payments::payCall {
        to,
        amount: U256::from(amount),
    };
    channel.call(&call).await.context("paying")?;
    // Applied when the tip's state counts the intent; final when that height is.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut events = channel.events().await?;
    loop {
        let applied = channel.view(&Payments::intentNonceOfCall { issuer: me }).await?;
        if applied > nonce {
            break;
        }
        tokio::time::timeout_at(deadline, events.recv())
            .await
            .map_err(|_| anyhow!("payment {nonce} of {me} was not applied in {WAIT:?}"))??;
    }
    let tip = channel.info().await?.tip;
    channel.wait_final(tip, WAIT).await?;
    Ok(started.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn run(options: Options) -> Result<()> {
    let n = options.nodes;
    let anvil = Anvil::builder()
        .spawn()
        .context("starting anvil (run `npm ci` in the repository root first)")?;
    let mut deployer = ChainClient::connect(&anvil.endpoint(), anvil.signer(0)?)
        .await
        .context("connecting to anvil")?;
    let manager = deployer.deploy_manager().await.context("deploying the manager")?;
    let machine = deployer
        .deploy(Payments::BYTECODE.clone())
        .await
        .context("deploying Payments")?;
    let deposit = U256::from(10u64).pow(U256::from(18u64));
    let token = if options.erc20 {
        let token = deployer
            .deploy(TestToken::BYTECODE.clone())
            .await
            .context("deploying TestToken")?;
        for i in 0..n {
            let key = anvil.keys()[i + 1];
            let to = entente_types::LocalSigner::from_bytes(&key)?.address();
            let mint = TestToken::mintCall { to, amount: deposit };
            deployer
                .send(token, mint.abi_encode().into(), U256::ZERO)
                .await?
                .into_result()?;
        }
        token
    } else {
        Address::ZERO
    };
    let dirs = tempfile::tempdir()?;

    let mut nodes: Vec<Node> = Vec::new();
    let mut bootstrap = Vec::new();
    for i in 0..n {
        let key = *anvil
            .keys()
            .get(i + 1)
            .ok_or_else(|| anyhow!("anvil has too few accounts"))?;
        let mut config = NodeConfig::new(
            key,
            anvil.endpoint(),
            manager,
            dirs.path().join(format!("node{i}")),
        );
        config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse()?];
        config.bootstrap = bootstrap.clone();
        config.public = true;
        config.poll_interval_ms = 100;
        let node = Node::start(config).await.context("starting a node")?;
        if i == 0 {
            bootstrap = vec![listen_addr(&node).await?];
        }
        nodes.push(node);
    }
    let who: Vec<Address> = nodes.iter().map(Node::address).collect();
    let code = MachineSource::ArtifactJson(artifacts::PAYMENTS.to_string());
    let proposal = ProposalBuilder::new(machine, who.clone(), vec![deposit; n])
        .token(token)
        .build(
            &nodes[0],
            &code,
            &Payments::initialStateCall {
                participants: who.clone(),
                deposits: vec![deposit; n],
            },
        )
        .await?;
    let mut channels = vec![nodes[0].propose(proposal, code.clone()).await?];
    for node in &nodes[1..] {
        let (_, invitation) = node.next_proposal(WAIT).await?;
        channels.push(node.accept(invitation.channel_id, code.clone()).await?);
    }
    for channel in &channels {
        channel.wait_live(WAIT).await?;
    }
    let asset = if options.erc20 { "TestToken" } else { "ether" };
    println!(
        "channel {} live between {n} nodes, deposits in {asset}",
        channels[0].id()
    );

    // The payments: a third of them in groups of two or three payers at once.
    let mut rng = Rng(options.seed.max(1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut balances: Vec<i128> = vec![10i128.pow(18); n];
    let mut nonces = vec![0u64; n];
    let mut latencies = Vec::with_capacity(options.payments);
    let (mut made, mut concurrent) = (0usize, 0usize);
    let started = Instant::now();
    while made < options.payments {
        let left = options.payments - made;
        let group = if rng.below(3) == 0 && left >= 2 {
            (2 + rng.below(2) as usize).min(n).min(left)
        } else {
            1
        };
        let first = rng.below(n as u64) as usize;
        let mut tasks = tokio::task::JoinSet::new();
        for k in 0..group {
            let from = (first + k) % n;
            let to = (from + 1 + rng.below(n as u64 - 1) as usize) % n;
            let amount = 1 + rng.below(1_000_000);
            balances[from] -= i128::from(amount);
            balances[to] += i128::from(amount);
            tasks.spawn(pay(
                channels[from].clone(),
                who[from],
                nonces[from],
                who[to],
                amount,
            ));
            nonces[from] += 1;
        }
        while let Some(done) = tasks.join_next().await {
            latencies.push(done??);
        }
        made += group;
        if group > 1 {
            concurrent += group;
        }
    }
    let elapsed = started.elapsed();
    let heights = channels[0].info().await?.tip;

    // Settle: any participant ends it; everyone is paid its balance.
    channels[n - 1].call(&Payments::settleCall {}).await?;
    let mut exits = None;
    for channel in &channels {
        let info = channel.wait_closed(WAIT).await?;
        channel
            .wait_until("the payouts", WAIT, |i| i.calls_outstanding == 0)
            .await?;
        exits = info.exits.or(exits);
    }
    let exits = exits.ok_or_else(|| anyhow!("the settlement reports no exits"))?;

    // Checks.
    let expected: Vec<(Address, U256)> = who
        .iter()
        .zip(&balances)
        .map(|(a, b)| (*a, U256::from(*b as u128)))
        .collect();
    if exits != expected {
        bail!("the chain's exits {exits:?} are not the payments' balances {expected:?}");
    }
    let mut calls: BTreeMap<String, usize> = BTreeMap::new();
    for (i, channel) in channels.iter().enumerate() {
        let mut log = channel.events_from(0).await?;
        let mut withdrawn = U256::ZERO;
        while let Some(event) = log.try_next().await? {
            match event {
                ChannelEvent::Withdrawn { amount } => withdrawn += amount,
                ChannelEvent::ChainCall { what, .. } => *calls.entry(what).or_default() += 1,
                _ => {}
            }
        }
        // Node 0 opened the channel and paid its deposit with `open`; the others withdrew theirs.
        if withdrawn != expected[i].1 {
            bail!("node {i} withdrew {withdrawn}, its exit is {}", expected[i].1);
        }
    }
    let disputes: Vec<&String> = calls
        .keys()
        .filter(|c| !matches!(c.as_str(), "open" | "deposit" | "close" | "withdraw" | "approve"))
        .collect();
    if !disputes.is_empty() {
        bail!("calls beyond the cooperative ones were made: {calls:?}");
    }
    let held = if options.erc20 {
        deployer
            .view(token, &TestToken::balanceOfCall { account: manager })
            .await?
    } else {
        deployer.balance(manager).await?
    };
    if !held.is_zero() {
        bail!("the manager still holds {held} of {asset}");
    }

    latencies.sort();
    println!(
        "{} payments ({concurrent} from concurrent payers) in {:.2} s: {:.0} payments/s, {heights} heights",
        options.payments,
        elapsed.as_secs_f64(),
        options.payments as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    println!(
        "finality latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    println!("chain calls: {calls:?}");
    println!("payouts on chain equal the payments' balances to the wei; the manager holds nothing");
    println!("ok");
    Ok(())
}
