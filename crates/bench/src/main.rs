//! `entente-bench`: benchmarks of Entente against its peers.
//!
//! ```text
//! entente-bench gas [--n 2,8] [--out docs/benchmarks]
//! ```
//!
//! `gas` starts anvil, measures the gas of every on-chain operation of Entente and of Nitro's
//! comparable ones on it, prints the table and writes `gas.md`, `gas.json` and `gas.svg` into the
//! output directory (default: the repository's `docs/benchmarks`).

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

const USAGE: &str = "usage: entente-bench gas [--n 2,8] [--out DIR]";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("gas") => {}
        Some("-h" | "--help") => {
            writeln!(std::io::stdout(), "{USAGE}")?;
            return Ok(());
        }
        _ => bail!("{USAGE}"),
    }
    let mut ns = vec![2, 8];
    let mut out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/benchmarks");
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("{arg} needs a value; {USAGE}"))
        };
        match arg.as_str() {
            "--n" => {
                ns = value()?
                    .split(',')
                    .map(|n| n.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .context("--n takes participant counts such as 2,8")?;
            }
            "--out" => out = PathBuf::from(value()?),
            other => bail!("unknown argument {other}; {USAGE}"),
        }
    }
    let report = entente_bench::measure(&ns)?;
    entente_bench::report::write(&report, &out)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", entente_bench::report::markdown(&report))?;
    writeln!(
        stdout,
        "wrote gas.md, gas.json and gas.svg into {}",
        out.display()
    )?;
    Ok(())
}
