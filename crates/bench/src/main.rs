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

const USAGE: &str = "usage: entente-bench gas [--n 2,8] [--out DIR] [--baseline FILE]\n       entente-bench core [--n 2,4,8,16,32,64] [--samples 200] [--out DIR]\n       entente-bench p2p [--n 2,4,8,16] [--samples 100] [--out DIR]";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("gas") => {}
        Some("core") => return core(args.collect()),
        Some("p2p") => return p2p(args.collect()),
        Some("-h" | "--help") => {
            writeln!(std::io::stdout(), "{USAGE}")?;
            return Ok(());
        }
        _ => bail!("{USAGE}"),
    }
    let mut ns = vec![2, 8];
    let mut out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/benchmarks");
    let mut baseline: Option<PathBuf> = None;
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
            "--baseline" => baseline = Some(PathBuf::from(value()?)),
            other => bail!("unknown argument {other}; {USAGE}"),
        }
    }
    // The figures to compare with: `--baseline`, else `gas-baseline.json` beside the output.
    let baseline = match baseline {
        Some(path) => Some(entente_bench::report::Baseline::read(&path)?),
        None => {
            let path = out.join("gas-baseline.json");
            path.exists()
                .then(|| entente_bench::report::Baseline::read(&path))
                .transpose()?
        }
    };
    let report = entente_bench::measure(&ns)?;
    entente_bench::report::write(&report, baseline.as_ref(), &out)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", entente_bench::report::markdown(&report))?;
    writeln!(
        stdout,
        "wrote gas.md, gas.json and gas.svg into {}",
        out.display()
    )?;
    Ok(())
}

/// `entente-bench core`: latency, throughput and CPU of the protocol core over an in-memory
/// transport with durable storage, and 100 concurrent two-party channels.
#[allow(clippy::disallowed_methods)] // a benchmark reads the wall clock
fn core(raw: Vec<String>) -> Result<()> {
    use entente_bench::core;
    use entente_types::AgreementMode;
    let mut ns = vec![2, 4, 8, 16, 32, 64];
    let mut samples = 200usize;
    let mut out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/benchmarks");
    let mut it = raw.into_iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value; {USAGE}"));
        match arg.as_str() {
            "--n" => {
                ns = value()?
                    .split(',')
                    .map(|n| n.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .context("--n")?;
            }
            "--samples" => samples = value()?.parse().context("--samples")?,
            "--out" => out = PathBuf::from(value()?),
            other => bail!("unknown argument {other}; {USAGE}"),
        }
    }
    let dir = tempfile::tempdir()?;
    let mut stdout = std::io::stdout().lock();
    let mut figures = Vec::new();
    for &n in &ns {
        for mode in [
            AgreementMode::ExplicitConfirmations,
            AgreementMode::VirtualVotingOnly,
        ] {
            // Fewer samples where one transition costs N² signature checks.
            let k = if mode == AgreementMode::ExplicitConfirmations && n >= 32 {
                (samples / 10).max(10)
            } else {
                samples
            };
            let run = dir.path().join(format!("n{n}-{mode:?}"));
            std::fs::create_dir_all(&run)?;
            let f = core::measure(n, mode, k, k, &run)?;
            writeln!(
                stdout,
                "N={n:>2} {mode:?}: p50 {:.2} ms, p99 {:.2} ms, {:.0} finalized/s, {:.0} us CPU per transition per peer",
                core::percentile(&f.latencies, 50.0).as_secs_f64() * 1e3,
                core::percentile(&f.latencies, 99.0).as_secs_f64() * 1e3,
                f.throughput,
                f.cpu_per_peer.as_secs_f64() * 1e6
            )?;
            figures.push(f);
        }
    }
    let mut concurrent = Vec::new();
    for mode in [
        AgreementMode::ExplicitConfirmations,
        AgreementMode::VirtualVotingOnly,
    ] {
        let run = dir.path().join(format!("concurrent-{mode:?}"));
        std::fs::create_dir_all(&run)?;
        let tps = core::concurrent(100, mode, (samples as u64).max(20), 2, &run)?;
        writeln!(
            stdout,
            "100 concurrent 2-party channels, {mode:?}: {tps:.0} finalized/s"
        )?;
        concurrent.push((mode, 100, tps));
    }
    std::fs::create_dir_all(&out)?;
    let md = core::markdown(&figures, &concurrent);
    std::fs::write(out.join("core.md"), &md)?;
    std::fs::write(
        out.join("core.json"),
        serde_json::to_string_pretty(&core::json(&figures, &concurrent))?,
    )?;
    std::fs::write(
        out.join("core-latency.svg"),
        core::svg(
            &figures,
            "Finality latency, all peers in one process (in-memory transport, durable storage)",
        ),
    )?;
    writeln!(stdout, "{md}")?;
    writeln!(
        stdout,
        "wrote core.md, core.json and core-latency.svg into {}",
        out.display()
    )?;
    Ok(())
}

/// `entente-bench p2p`: finality latency over libp2p on loopback, real nodes with durable
/// storage, explicit confirmations.
fn p2p(raw: Vec<String>) -> Result<()> {
    use entente_bench::core::percentile;
    let mut ns = vec![2, 4, 8, 16];
    let mut samples = 100usize;
    let mut out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/benchmarks");
    let mut it = raw.into_iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value; {USAGE}"));
        match arg.as_str() {
            "--n" => {
                ns = value()?
                    .split(',')
                    .map(|n| n.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .context("--n")?;
            }
            "--samples" => samples = value()?.parse().context("--samples")?,
            "--out" => out = PathBuf::from(value()?),
            other => bail!("unknown argument {other}; {USAGE}"),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut stdout = std::io::stdout().lock();
    let mut rows = Vec::new();
    let mut figures = Vec::new();
    for &n in &ns {
        let dir = tempfile::tempdir()?;
        let lat = runtime.block_on(entente_bench::p2p::latency(n, samples, dir.path()))?;
        figures.push(entente_bench::core::CoreFigures {
            n,
            mode: entente_types::AgreementMode::ExplicitConfirmations,
            latencies: lat.clone(),
            throughput: 0.0,
            cpu_per_peer: std::time::Duration::ZERO,
        });
        let (p50, p99) = (percentile(&lat, 50.0), percentile(&lat, 99.0));
        writeln!(
            stdout,
            "N={n:>2} libp2p loopback, durable storage: p50 {:.2} ms, p99 {:.2} ms ({} samples)",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            lat.len()
        )?;
        rows.push((n, p50, p99, lat.len()));
    }
    let mut md =
        String::from("| N | latency p50 (ms) | latency p99 (ms) | samples |\n|---:|---:|---:|---:|\n");
    for (n, p50, p99, k) in &rows {
        md.push_str(&format!(
            "| {n} | {:.2} | {:.2} | {k} |\n",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        ));
    }
    let json = serde_json::json!({
        "transport": "libp2p TCP+Noise+Yamux on loopback",
        "storage": "redb, durable group commit per event-loop turn",
        "mode": "explicit",
        "rows": rows.iter().map(|(n, p50, p99, k)| serde_json::json!({
            "n": n, "latency_p50_ms": p50.as_secs_f64() * 1e3, "latency_p99_ms": p99.as_secs_f64() * 1e3, "samples": k,
        })).collect::<Vec<_>>(),
    });
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("p2p.md"), &md)?;
    std::fs::write(out.join("p2p.json"), serde_json::to_string_pretty(&json)?)?;
    std::fs::write(
        out.join("p2p-latency.svg"),
        entente_bench::core::svg(
            &figures,
            "Finality latency, real nodes over libp2p on loopback (durable storage)",
        ),
    )?;
    writeln!(stdout, "{md}")?;
    writeln!(
        stdout,
        "wrote p2p.md, p2p.json and p2p-latency.svg into {}",
        out.display()
    )?;
    Ok(())
}
