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

const USAGE: &str = "usage: entente-bench gas [--n 2,8] [--out DIR] [--baseline FILE]\n       entente-bench core [--n 2,4,8,16,32,64] [--samples 200] [--mode explicit|vv] [--threads T (default: the cores)] [--out DIR]\n       entente-bench p2p [--n 2,4,8,16] [--samples 100] [--channels 100] [--per-channel 50] [--out DIR]\n       entente-bench idle [--channels 1000,10000] [--window 60] [--block-every 2 (seconds; 0: no second window)] [--out DIR]";

fn main() -> Result<()> {
    // `ENTENTE_BENCH_LOG=entente_node=trace,entente_p2p=trace` shows where a run spends its
    // time (timestamps in microseconds), on standard error.
    if let Ok(filter) = std::env::var("ENTENTE_BENCH_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .with_thread_names(true)
            .init();
    }
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("gas") => {}
        Some("core") => return core(args.collect()),
        Some("p2p") => return p2p(args.collect()),
        Some("idle") => return idle(args.collect()),
        Some("idle-node") => return entente_bench::idle::node_process(args.collect()),
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
            "-h" | "--help" => {
                writeln!(std::io::stdout(), "{USAGE}")?;
                return Ok(());
            }
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
    let mut threads: Option<usize> = None;
    let mut modes = vec![
        AgreementMode::ExplicitConfirmations,
        AgreementMode::VirtualVotingOnly,
    ];
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
            "--threads" => threads = Some(value()?.parse().context("--threads")?),
            "--mode" => {
                modes = match value()?.as_str() {
                    "explicit" => vec![AgreementMode::ExplicitConfirmations],
                    "vv" | "virtual-voting" => vec![AgreementMode::VirtualVotingOnly],
                    other => bail!("--mode takes explicit or vv, not {other}; {USAGE}"),
                };
            }
            "--out" => out = PathBuf::from(value()?),
            "-h" | "--help" => {
                writeln!(std::io::stdout(), "{USAGE}")?;
                return Ok(());
            }
            other => bail!("unknown argument {other}; {USAGE}"),
        }
    }
    let dir = tempfile::tempdir()?;
    let mut stdout = std::io::stdout().lock();
    let limits = entente_bench::limits::Primitives::measure(dir.path(), &ns)?;
    writeln!(
        stdout,
        "primitives (limits are computed from these):\n{}",
        limits.markdown()
    )?;
    // A channel's peers are independent parties: by default they share all the machine's cores.
    let threads = threads.unwrap_or(limits.cores).max(1);
    let mut figures = Vec::new();
    for &n in &ns {
        for &mode in &modes {
            // Fewer samples where one transition costs N² signature checks.
            let k = if mode == AgreementMode::ExplicitConfirmations && n >= 32 {
                (samples / 10).max(10)
            } else {
                samples
            };
            let run = dir.path().join(format!("n{n}-{mode:?}"));
            std::fs::create_dir_all(&run)?;
            let f = core::measure(n, mode, k, k, threads, &run)?;
            let p50 = core::percentile(&f.latencies, 50.0);
            let floor = limits.core_latency(n, mode, threads);
            let tps_limit = limits.core_throughput(n, mode, threads);
            let cpu_limit = limits.cpu_per_peer(n, mode);
            writeln!(
                stdout,
                "N={n:>2} {mode:?} ({threads} threads): p50 {:.2} ms (floor {:.2}: x{:.2}), p99 {:.2} ms, {:.0} finalized/s (limit {:.0}: {:.0}%), {:.0} us CPU per transition per peer (limit {:.0}: x{:.2})",
                p50.as_secs_f64() * 1e3,
                floor.as_secs_f64() * 1e3,
                core::ratio(p50.as_secs_f64(), floor.as_secs_f64()),
                core::percentile(&f.latencies, 99.0).as_secs_f64() * 1e3,
                f.throughput,
                tps_limit,
                100.0 * core::ratio(f.throughput, tps_limit),
                f.cpu_per_peer.as_secs_f64() * 1e6,
                cpu_limit.as_secs_f64() * 1e6,
                core::ratio(f.cpu_per_peer.as_secs_f64(), cpu_limit.as_secs_f64()),
            )?;
            figures.push(f);
        }
    }
    let mut concurrent = Vec::new();
    for &mode in &modes {
        let run = dir.path().join(format!("concurrent-{mode:?}"));
        std::fs::create_dir_all(&run)?;
        let tps = core::concurrent(
            100,
            mode,
            (samples as u64).max(20),
            core::CONCURRENT_THREADS,
            &run,
        )?;
        let limit = limits.concurrent_throughput(2, mode, core::CONCURRENT_THREADS);
        writeln!(
            stdout,
            "100 concurrent 2-party channels, {mode:?}: {tps:.0} finalized/s (limit {limit:.0}: {:.0}%)",
            100.0 * core::ratio(tps, limit)
        )?;
        concurrent.push((mode, 100, tps));
    }
    std::fs::create_dir_all(&out)?;
    let md = core::markdown(&figures, &concurrent, &limits);
    std::fs::write(out.join("core.md"), &md)?;
    std::fs::write(
        out.join("core.json"),
        serde_json::to_string_pretty(&core::json(&figures, &concurrent, &limits))?,
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
    let mut channels = 100usize;
    let mut per_channel = 50u64;
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
            "--channels" => channels = value()?.parse().context("--channels")?,
            "--per-channel" => per_channel = value()?.parse().context("--per-channel")?,
            "--out" => out = PathBuf::from(value()?),
            "-h" | "--help" => {
                writeln!(std::io::stdout(), "{USAGE}")?;
                return Ok(());
            }
            other => bail!("unknown argument {other}; {USAGE}"),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut stdout = std::io::stdout().lock();
    let limits = {
        let dir = tempfile::tempdir()?;
        entente_bench::limits::Primitives::measure(dir.path(), &ns)?
    };
    writeln!(
        stdout,
        "primitives (limits are computed from these):\n{}",
        limits.markdown()
    )?;
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
            // Each node on the runtime's threads; only the plot reads these figures.
            threads: limits.cores,
        });
        let (p50, p99) = (percentile(&lat, 50.0), percentile(&lat, 99.0));
        let floor = limits.p2p_latency(n);
        let ratio = entente_bench::core::ratio;
        writeln!(
            stdout,
            "N={n:>2} libp2p loopback, durable storage: p50 {:.2} ms (floor {:.2}: x{:.2}), p99 {:.2} ms (x{:.2}) ({} samples)",
            p50.as_secs_f64() * 1e3,
            floor.as_secs_f64() * 1e3,
            ratio(p50.as_secs_f64(), floor.as_secs_f64()),
            p99.as_secs_f64() * 1e3,
            ratio(p99.as_secs_f64(), floor.as_secs_f64()),
            lat.len()
        )?;
        rows.push((n, p50, p99, floor, lat.len()));
    }
    let ratio = entente_bench::core::ratio;
    let mut md = String::from(
        "Each latency beside its floor, computed in the same run from the measured primitives (below; \
         formula: `Primitives::p2p_latency` in `crates/bench/src/limits.rs`).\n\n\
         | N | latency p50 (ms) | latency p99 (ms) | floor (ms) | p50 / floor | p99 / floor | samples |\n\
         |---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (n, p50, p99, floor, k) in &rows {
        md.push_str(&format!(
            "| {n} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {k} |\n",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            floor.as_secs_f64() * 1e3,
            ratio(p50.as_secs_f64(), floor.as_secs_f64()),
            ratio(p99.as_secs_f64(), floor.as_secs_f64()),
        ));
    }
    let mut concurrent = None;
    if channels > 0 {
        let dir = tempfile::tempdir()?;
        let (tps, finalized, took) =
            runtime.block_on(entente_bench::p2p::concurrent(channels, per_channel, dir.path()))?;
        let limit = limits.concurrent_throughput(
            2,
            entente_types::AgreementMode::ExplicitConfirmations,
            limits.cores,
        );
        writeln!(
            stdout,
            "two nodes, {channels} channels between them (explicit): {tps:.0} finalized/s (limit {limit:.0}: {:.0}%; {finalized} transitions in {:.1} s)",
            100.0 * ratio(tps, limit),
            took.as_secs_f64()
        )?;
        md.push_str(&format!(
            "\nTwo nodes with {channels} channels between them (each node a party to all), explicit confirmations, every writer moving as soon as its node tells it its turn; limit: the cores over the CPU of one transition on both nodes (`Primitives::concurrent_throughput`).\n\n\
             | channels | finalized/s | limit | of limit | transitions | seconds |\n|---:|---:|---:|---:|---:|---:|\n\
             | {channels} | {tps:.0} | {limit:.0} | {:.0}% | {finalized} | {:.1} |\n",
            100.0 * ratio(tps, limit),
            took.as_secs_f64()
        ));
        concurrent = Some(serde_json::json!({
            "channels": channels, "per_channel": per_channel, "finalized_per_s": tps,
            "limit_finalized_per_s": limit, "finalized": finalized, "seconds": took.as_secs_f64(),
        }));
    }
    md.push_str("\nThe primitives, measured in this run:\n\n");
    md.push_str(&limits.markdown());
    let json = serde_json::json!({
        "concurrent": concurrent,
        "transport": "libp2p TCP+Noise+Yamux on loopback",
        "storage": "redb, durable group commit per event-loop turn",
        "mode": "explicit",
        "primitives": limits.json(),
        "rows": rows.iter().map(|(n, p50, p99, floor, k)| serde_json::json!({
            "n": n, "latency_p50_ms": p50.as_secs_f64() * 1e3, "latency_p99_ms": p99.as_secs_f64() * 1e3,
            "limit_latency_ms": floor.as_secs_f64() * 1e3, "samples": k,
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

/// Targets of issue 18 for one node holding many idle channels.
const IDLE_RSS_LIMIT: u64 = 1 << 30;
const IDLE_CPU_LIMIT: f64 = 0.01;
const IDLE_RESTART_LIMIT: f64 = 10.0;

fn idle(raw: Vec<String>) -> Result<()> {
    let mut counts = vec![1_000usize, 10_000];
    let mut window = 60u64;
    let mut block_every = 2u64;
    let mut out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/benchmarks");
    let mut it = raw.into_iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value; {USAGE}"));
        match arg.as_str() {
            "--channels" => {
                counts = value()?
                    .split(',')
                    .map(|n| n.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .context("--channels")?;
            }
            "--window" => window = value()?.parse().context("--window")?,
            "--block-every" => block_every = value()?.parse().context("--block-every")?,
            "--out" => out = PathBuf::from(value()?),
            "-h" | "--help" => {
                writeln!(std::io::stdout(), "{USAGE}")?;
                return Ok(());
            }
            other => bail!("unknown argument {other}; {USAGE}"),
        }
    }
    let exe = std::env::current_exe()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut stdout = std::io::stdout().lock();
    let mut md = format!(
        "One node holding many open, idle channels: two nodes open the channels between them on anvil (each a party to all), stop, and each starts again in a process of its own from its data directory; measured per node over a {window} s window after 5 s of settling, then (unless `--block-every 0`) over a second {window} s window in which the chain makes a block every {block_every} s (anvil makes blocks only for transactions: in the first window there are none; a real chain makes them all the time). Resident memory is the larger of the two windows'. Limits: the targets of issue 18 (resident memory 1 GiB, idle CPU 1% of a core, restart 10 s).\n\n\
         | channels | node | restart (s) | limit | resident memory (MiB) | limit | idle CPU, no blocks (% of a core) | idle CPU, a block every {block_every} s | limit | channels restored | opening all took (s) |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    let mut rows = Vec::new();
    for &channels in &counts {
        let dir = tempfile::tempdir()?;
        let report = runtime.block_on(entente_bench::idle::run(
            channels,
            std::time::Duration::from_secs(window),
            (block_every > 0).then(|| std::time::Duration::from_secs(block_every)),
            dir.path(),
            &exe,
        ))?;
        for (i, node) in report.nodes.iter().enumerate() {
            let (restart, rss, cpu) = (
                node.restart.as_secs_f64(),
                node.rss as f64 / (1u64 << 20) as f64,
                node.idle_cpu * 100.0,
            );
            let blocks = node
                .blocks_cpu
                .map_or_else(|| "-".to_string(), |c| format!("{:.2}", c * 100.0));
            writeln!(
                stdout,
                "{channels} channels, node {i}: restart {restart:.2} s (limit {IDLE_RESTART_LIMIT}), RSS {rss:.0} MiB (limit {}), idle CPU {cpu:.2}% without blocks, {blocks}% with a block every {block_every} s (limit {:.0}%), {} restored; opening took {:.0} s",
                IDLE_RSS_LIMIT >> 20,
                IDLE_CPU_LIMIT * 100.0,
                node.channels,
                report.open.as_secs_f64(),
            )?;
            md.push_str(&format!(
                "| {channels} | {i} | {restart:.2} | {IDLE_RESTART_LIMIT:.0} | {rss:.0} | {} | {cpu:.2} | {blocks} | {:.0} | {} | {:.0} |\n",
                IDLE_RSS_LIMIT >> 20,
                IDLE_CPU_LIMIT * 100.0,
                node.channels,
                report.open.as_secs_f64(),
            ));
            rows.push(serde_json::json!({
                "channels": channels, "node": i, "restart_s": restart, "limit_restart_s": IDLE_RESTART_LIMIT,
                "rss_bytes": node.rss, "limit_rss_bytes": IDLE_RSS_LIMIT, "idle_cpu_fraction": node.idle_cpu,
                "block_every_s": report.block_every.map(|d| d.as_secs()), "idle_cpu_with_blocks_fraction": node.blocks_cpu,
                "limit_idle_cpu_fraction": IDLE_CPU_LIMIT, "restored": node.channels,
                "open_s": report.open.as_secs_f64(), "window_s": report.window.as_secs_f64(),
            }));
        }
    }
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("idle.md"), &md)?;
    std::fs::write(
        out.join("idle.json"),
        serde_json::to_string_pretty(&serde_json::json!({ "rows": rows }))?,
    )?;
    writeln!(stdout, "{md}\nwrote idle.md and idle.json into {}", out.display())?;
    Ok(())
}
