//! N peers in one channel playing the round-robin counter (`RoundRobinCounter`): peer 0
//! proposes to the N-1 others, each accepts, and they `add(step)` in turn until the counter
//! reaches its target; then the channel settles on chain.
//!
//! ```text
//! simulation [--n N] [--target T] [--step S] [--silent K] [--mode explicit|virtual]
//!            [--plot PATH] [--timeout SECS]
//! simulation --sim [--n N] [--target T] [--seed S] [--silent K | --byzantine K --strategy NAME]
//!            [--mode explicit|virtual] [--plot PATH]
//! ```
//!
//! By default every peer is a real [`entente_node::Node`] in this process, talking libp2p over
//! loopback, with anvil (started from `node_modules`) as the chain. `--sim` runs the same game
//! in the deterministic simulation instead (virtual time, in-memory network, the real
//! StateChannelManager on an in-process chain): the same seed gives the same run.
//!
//! `--silent K` makes the last K peers never write: the others remove them through the chain
//! by timeout disputes and carry on. With `--sim`, `--byzantine K --strategy NAME` gives the
//! last K peers any [`entente_sim::Strategy`] (`equivocate`, `invalid-transition`,
//! `false-dispute`, ...).
//!
//! While it runs, a progress line; at the end, a summary table (transitions, finality latency
//! p50/p99, disputes, outcomes per peer) and a latency plot written as SVG to `--plot`
//! (default `target/simulation-latency.svg`). Finality latency is measured from the moment a
//! peer submits a move to the moment each peer sees it final.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a command-line program

mod real;
mod report;
mod sim;

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use entente_sim::Strategy;
use entente_types::AgreementMode;

/// The command line.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) n: usize,
    pub(crate) target: Option<u64>,
    pub(crate) step: u64,
    pub(crate) byzantine: usize,
    pub(crate) strategy: Strategy,
    pub(crate) sim: bool,
    pub(crate) seed: u64,
    pub(crate) mode: AgreementMode,
    pub(crate) plot: PathBuf,
    pub(crate) timeout_secs: u64,
}

fn usage() -> &'static str {
    "usage: simulation [--n N] [--target T] [--step S] [--silent K] [--mode explicit|virtual] [--plot PATH] [--timeout SECS]\n       \
     simulation --sim [--n N] [--target T] [--seed S] [--silent K | --byzantine K --strategy NAME] [--mode explicit|virtual] [--plot PATH]\n\
     strategies: honest, silent, withhold-confirmations, equivocate, invalid-transition, future-timestamp,\n            \
     out-of-order-timestamp, stale-state, junk-calldata, false-dispute"
}

fn parse_strategy(name: &str) -> Result<Strategy> {
    let wanted: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    std::iter::once(Strategy::Honest)
        .chain(Strategy::BYZANTINE)
        .find(|s| format!("{s:?}").to_ascii_lowercase() == wanted)
        .ok_or_else(|| anyhow!("unknown strategy {name}\n{}", usage()))
}

fn parse(raw: Vec<String>) -> Result<Options> {
    let mut options = Options {
        n: 8,
        target: None,
        step: 1,
        byzantine: 0,
        strategy: Strategy::Silent,
        sim: false,
        seed: 1,
        mode: AgreementMode::ExplicitConfirmations,
        plot: PathBuf::from("target/simulation-latency.svg"),
        timeout_secs: 600,
    };
    let mut it = raw.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| anyhow!("{flag} needs a value\n{}", usage()))
        };
        match flag.as_str() {
            "--n" | "-n" => options.n = value()?.parse().context("--n")?,
            "--target" => options.target = Some(value()?.parse().context("--target")?),
            "--step" => options.step = value()?.parse().context("--step")?,
            "--silent" => {
                options.byzantine = value()?.parse().context("--silent")?;
                options.strategy = Strategy::Silent;
            }
            "--byzantine" => options.byzantine = value()?.parse().context("--byzantine")?,
            "--strategy" => options.strategy = parse_strategy(&value()?)?,
            "--sim" => options.sim = true,
            "--seed" => options.seed = value()?.parse().context("--seed")?,
            "--mode" => {
                options.mode = match value()?.as_str() {
                    "explicit" => AgreementMode::ExplicitConfirmations,
                    "virtual" => AgreementMode::VirtualVotingOnly,
                    other => bail!("--mode explicit|virtual, not {other}"),
                }
            }
            "--plot" => options.plot = PathBuf::from(value()?),
            "--timeout" => options.timeout_secs = value()?.parse().context("--timeout")?,
            "--help" | "-h" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            other => bail!("unknown option {other}\n{}", usage()),
        }
    }
    if options.n < 2 {
        bail!("--n must be at least 2");
    }
    if options.byzantine + 1 >= options.n && options.strategy != Strategy::Honest {
        bail!("at most N-2 byzantine peers: peer 0 proposes and at least two honest peers play");
    }
    if !options.sim && !matches!(options.strategy, Strategy::Silent | Strategy::Honest) {
        bail!("over libp2p and anvil only --silent K is available; use --sim for other strategies");
    }
    if !(1..=10).contains(&options.step) {
        bail!("--step must be between 1 and 10 (the machine's limit)");
    }
    Ok(options)
}

fn main() -> Result<()> {
    let options = parse(std::env::args().skip(1).collect())?;
    let level = match std::env::var("ENTENTE_LOG").as_deref() {
        Ok("debug") => tracing_subscriber::filter::LevelFilter::DEBUG,
        Ok("info") => tracing_subscriber::filter::LevelFilter::INFO,
        Ok("warn") => tracing_subscriber::filter::LevelFilter::WARN,
        _ => tracing_subscriber::filter::LevelFilter::ERROR,
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .try_init();
    let summary = if options.sim {
        sim::run(&options)?
    } else {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        runtime.block_on(real::run(&options))?
    };
    print!("{}", summary.table());
    if let Some(dir) = options.plot.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&options.plot, summary.svg())
        .with_context(|| format!("writing {}", options.plot.display()))?;
    println!("\nlatency plot written to {}", options.plot.display());
    Ok(())
}
