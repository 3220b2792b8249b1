//! Benchmarks of Entente against its peers.
//!
//! `gas`: the transaction gas (receipt `gasUsed`) of every on-chain operation of Entente's
//! StateChannelManager for N = 2 and N = 8 participants, and of the comparable operations of
//! Nitro's `NitroAdjudicator` (`@statechannels/nitro-protocol` from npm), both deployed on one
//! anvil. [`measure`] runs the flows, [`report`] writes the side-by-side table (markdown), the
//! raw figures (JSON) and a grouped bar chart (SVG).
//!
//! Entente's flows run through the conformance fixture (`entente_conformance::World`) over
//! [`chain::BenchChain`], the same flows as `contracts/test/Gas.t.sol`; Nitro's states, outcomes
//! and signatures are built in [`nitro`].

use std::panic::{AssertUnwindSafe, catch_unwind};

use anyhow::{Result, anyhow};
use entente_conformance::World;

pub mod chain;
pub mod core;
pub mod entente;
pub mod idle;
pub mod limits;
pub mod nitro;
pub mod p2p;
pub mod report;

/// Whose contracts ran an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Framework {
    /// Entente's StateChannelManager.
    Entente,
    /// Nitro's NitroAdjudicator.
    Nitro,
}

impl Framework {
    /// Lower-case name, as in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Entente => "entente",
            Self::Nitro => "nitro",
        }
    }
}

/// The gas of one operation (or, for the totals, of a sequence of transactions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measured {
    /// Whose contracts.
    pub framework: Framework,
    /// Number of participants.
    pub n: usize,
    /// What was measured.
    pub operation: &'static str,
    /// Transaction gas (receipt `gasUsed`), summed for the totals.
    pub gas: u64,
}

/// Everything one run measured, with where it ran.
#[derive(Debug, Clone)]
pub struct GasReport {
    /// The participant counts measured.
    pub ns: Vec<usize>,
    /// Every figure.
    pub measured: Vec<Measured>,
    /// anvil's `--version`.
    pub anvil: chain::AnvilVersion,
    /// The chain id.
    pub chain_id: u64,
    /// The version of `@statechannels/nitro-protocol`.
    pub nitro_version: String,
    /// The repository's commit (`git rev-parse HEAD`, `-dirty` with local changes), if known.
    pub commit: Option<String>,
}

impl GasReport {
    /// The gas of `operation` by `framework` for `n` participants.
    pub fn gas(&self, framework: Framework, n: usize, operation: &str) -> Option<u64> {
        self.measured
            .iter()
            .find(|m| m.framework == framework && m.n == n && m.operation == operation)
            .map(|m| m.gas)
    }
}

/// Runs a closure that may panic (the conformance fixture panics on a broken chain) and turns a
/// panic into an error.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".into());
            Err(anyhow!("{what}: {message}"))
        }
    }
}

/// Starts anvil, measures Entente's operations and then Nitro's (deployed on the same anvil)
/// for each participant count in `ns` (each 2..=8).
pub fn measure(ns: &[usize]) -> Result<GasReport> {
    let anvil = chain::anvil_version()?;
    let nitro_version = nitro::package_version()?;
    let bench = chain::BenchChain::start()?;
    let chain_id = bench.anvil().chain_id();
    let mut measured = Vec::new();
    let mut world = guarded("setting up Entente's fixture", || Ok(World::new(bench)))?;
    for &n in ns {
        measured.extend(guarded(&format!("Entente N={n}"), || {
            entente::measure(&mut world, n)
        })?);
    }
    let bench = world.chain;
    for &n in ns {
        measured.extend(nitro::measure(&bench, n)?);
    }
    Ok(GasReport {
        ns: ns.to_vec(),
        measured,
        anvil,
        chain_id,
        nitro_version,
        commit: repository_commit(),
    })
}

/// `git rev-parse HEAD` of the repository this crate is in, `-dirty` with local changes.
fn repository_commit() -> Option<String> {
    let dir = env!("CARGO_MANIFEST_DIR");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "HEAD"])?;
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{head}-dirty") } else { head })
}
