//! The example in `--sim` mode (deterministic, no anvil, no network): a run with a silent peer
//! prints the summary table and writes the latency plot.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::process::Command;

fn run(args: &[&str]) -> (String, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("plots").join("latency.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_simulation"))
        .args(args)
        .arg("--plot")
        .arg(&plot)
        .output()
        .expect("simulation binary");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "exit {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (stdout, plot, dir)
}

#[test]
fn sim_mode_with_a_silent_peer_prints_the_summary_and_writes_the_plot() {
    let (stdout, plot, _dir) = run(&["--sim", "--n", "4", "--silent", "1", "--seed", "3"]);
    for needle in [
        "summary",
        "deterministic simulation, seed 3",
        "transitions",
        "finality latency p50",
        "finality latency p99",
        "disputes               1",
        "Timeout against",
        "removed",
        "closed on chain",
        "silent",
        "latency plot written to",
    ] {
        assert!(stdout.contains(needle), "no {needle:?} in:\n{stdout}");
    }
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
        "{svg}"
    );
    assert!(svg.matches("<circle").count() > 10, "{svg}");
    assert!(svg.contains("<polyline"), "{svg}");
}

#[test]
fn sim_mode_is_deterministic() {
    let table = |stdout: &str| -> String {
        stdout
            .lines()
            .skip_while(|l| *l != "summary")
            .filter(|l| !l.contains("wall time") && !l.contains("plot written"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let args = [
        "--sim",
        "--n",
        "6",
        "--byzantine",
        "2",
        "--strategy",
        "invalid-transition",
        "--seed",
        "5",
    ];
    let (a, plot_a, _da) = run(&args);
    let (b, plot_b, _db) = run(&args);
    assert_eq!(table(&a), table(&b));
    assert!(a.contains("InvalidTransition"), "{a}");
    assert_eq!(
        std::fs::read_to_string(plot_a).unwrap(),
        std::fs::read_to_string(plot_b).unwrap()
    );
}
